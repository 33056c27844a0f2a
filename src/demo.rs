//! Demo mode: with no TikTok credentials the daemon runs the built-in
//! simulator (TikTok Shop, EasyPost, Shippo) in-process, and says so.
//!
//! - **One clock.** The simulator runs on the real clock
//!   ([`crate::simulator::SimulatorArgs::real_clock`]): TikTok's timestamps
//!   are real time and its durations (the buyer-cancel hold, the ship-by
//!   windows, the carrier's steps, answer deadlines) are divided by
//!   `[demo] time_scale`. The daemon keeps its own clock and every
//!   production code path that reads it; the deadlines it reads from
//!   TikTok are the ones the simulator enforces, so its at-risk, late and
//!   late-dispatch figures are the simulator's (`GET /sim/deadlines`).
//!   `[runtime] at_risk_margin` and `deadline_check` are TikTok time here
//!   and are divided by the scale likewise ([`configure`]).
//! - **Restarts continue.** A run number kept in the store (`cursors`,
//!   [`RUN_KEY`]), one more at every start, is in every id the simulator
//!   makes ([`next_run`]), so a demo started again in the same folder never
//!   repeats an order or notification id of an earlier run. A daemon that
//!   stops cleanly saves the simulator's orders, packages, stock, deadline
//!   counts, shipments and labels ([`saved_state`]), and the next start
//!   takes them back, so orders the earlier run left unfinished go on.
//!   After `kill -9` nothing is saved, and those orders are unknown to the
//!   new simulator (their TikTok calls fail).
//! - **Stock that lasts.** Every simulated SKU gets [`SEED_UNITS`] on the
//!   first start ([`seed_stock`]); [`restock`] adds [`RESTOCK_UNITS`]
//!   whenever a SKU's available units in a warehouse fall below
//!   [`RESTOCK_BELOW`], through the inventory's `adjust` (journaled, and
//!   waking orders that wait for stock), as a seller's restock is.
//! - **Notifications that land somewhere.** The channels the bundled
//!   workflows name (`creator`) and the default channel go to the
//!   simulator's `/sim/notify/{channel}` when the config lacks them.
//! - **Said out loud.** [`Info`] is what `GET /api/v1/about` answers, for
//!   the console's DEMO banner.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Dur};
use crate::inventory::InventoryHandle;
use crate::simulator::{SimulatorArgs, SimulatorHandle};
use crate::store::Store;

/// Errors of demo mode's own bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the demo's run number in the store: {0}")]
    Store(#[from] sled::Error),
}

/// Store key (in `cursors`) of the last demo run number.
pub const RUN_KEY: &str = "demo:simulator_run";
/// Units of every simulated SKU on the first start.
pub const SEED_UNITS: u32 = 500;
/// A warehouse's available units below which [`restock`] adds more.
pub const RESTOCK_BELOW: u32 = 250;
/// Units one restock adds.
pub const RESTOCK_UNITS: u32 = 500;
/// How often [`restock`] looks.
pub const RESTOCK_EVERY: Duration = Duration::from_secs(2);
/// Channels the bundled workflows send to by name.
pub const WORKFLOW_CHANNELS: &[&str] = &["creator"];

/// What `GET /api/v1/about` says about the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// TikTok's durations are this many times shorter than TikTok's own.
    pub time_scale: f64,
    pub orders_per_second: f64,
    /// This start's run number (see [`next_run`]).
    pub run: u32,
    /// The simulator's address (its `/sim/...` control endpoints).
    pub simulator: String,
}

/// Where a demo daemon keeps its simulator's state between runs
/// (`demo-simulator.json` in the data directory).
pub fn saved_state(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("demo-simulator.json")
}

/// The next run number (1 to [`crate::simulator::MAX_RUN`], then 1 again),
/// stored and flushed before the simulator makes its first id.
pub fn next_run(store: &Store) -> Result<u32, Error> {
    let tree = &store.trees.cursors;
    let last = tree
        .get(RUN_KEY.as_bytes())?
        .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
        .map_or(0, u32::from_be_bytes);
    let run = last % crate::simulator::MAX_RUN + 1;
    tree.insert(RUN_KEY.as_bytes(), &run.to_be_bytes()[..])?;
    tree.flush()?;
    Ok(run)
}

/// The simulator the demo runs: webhooks to `addr`, on the real clock,
/// ids of run `run`.
pub fn simulator_args(cfg: &Config, addr: SocketAddr, run: u32) -> SimulatorArgs {
    SimulatorArgs {
        listen: "127.0.0.1:0".into(),
        app_key: "demo-app-key".into(),
        app_secret: "demo-app-secret".into(),
        access_token: "demo-access-token".into(),
        webhook_url: Some(format!("http://{addr}/webhooks/tiktok")),
        // Tracking webhooks of the simulated EasyPost and Shippo.
        tracking_webhook_base: Some(format!("http://{addr}")),
        // The demo connects shops as a real seller would: the simulator's
        // authorization page sends the browser back here.
        redirect_url: Some(format!("http://{addr}/oauth/tiktok/callback")),
        // Access tokens expire on the demo's fast clock (refreshed every
        // few minutes, as the keeper is meant to); the seller's
        // authorization lasts a real year.
        authorization_ttl_secs: (365.0 * 86_400.0 * cfg.demo.time_scale.max(1.0)) as i64,
        orders_per_second: cfg.demo.orders_per_second,
        time_scale: cfg.demo.time_scale,
        real_clock: true,
        run,
        // Other buyers, parcels and tracking numbers at every run.
        seed: u64::from(run),
        shops: 1,
        ..Default::default()
    }
}

/// A TikTok duration of the config in the demo's time: divided by the
/// scale, at least a second.
fn compressed(d: Duration, scale: f64) -> Duration {
    let secs = d.as_secs().min(i64::MAX as u64) as i64;
    Duration::from_secs(crate::simulator::state::scaled(secs, scale).max(1) as u64)
}

/// The demo's settings around the running simulator: its notification
/// channels where the config has none of the name, and the ship-by margins
/// on its clock.
pub fn configure(cfg: &mut Config, sim: &SimulatorHandle) {
    configure_at(cfg, &sim.base_url());
}

/// [`configure`] for a simulator at `sim_base`.
fn configure_at(cfg: &mut Config, sim_base: &str) {
    let n = &mut cfg.notify;
    let names = WORKFLOW_CHANNELS
        .iter()
        .map(|c| c.to_string())
        .chain([n.default_channel.clone()])
        .chain(n.alerts_channel.clone());
    for name in names.collect::<Vec<_>>() {
        n.channels.entry(name.clone()).or_insert_with(|| {
            crate::notify::Secret::new(format!("{sim_base}/sim/notify/{name}")).into()
        });
    }
    let scale = cfg.demo.time_scale;
    let r = &mut cfg.runtime;
    r.at_risk_margin = Dur(compressed(r.at_risk_margin.0, scale));
    r.deadline_check = Dur(compressed(r.deadline_check.0, scale).min(r.deadline_check.0));
}

/// Gives every simulated SKU not yet in stock [`SEED_UNITS`] in every
/// warehouse (and its product id), so demo orders can be reserved. Returns
/// the simulated SKUs: the only ones [`restock`] tops up (stock the seller
/// keeps for anything else is theirs alone).
pub async fn seed_stock(inventory: &InventoryHandle, sim_base: &str) -> Vec<String> {
    let skus = match reqwest::get(format!("{sim_base}/sim/shops")).await {
        Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the simulator's SKUs");
            return Vec::new();
        }
    };
    let mut simulated = Vec::new();
    let warehouses: Vec<Option<String>> = {
        let w: Vec<Option<String>> = skus["shops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["warehouse_id"].as_str().map(|w| Some(w.to_string())))
            .collect();
        if w.is_empty() {
            vec![None]
        } else {
            w
        }
    };
    for s in skus["skus"].as_array().into_iter().flatten() {
        let (Some(id), Some(product)) = (s["id"].as_str(), s["product_id"].as_str()) else {
            continue;
        };
        simulated.push(id.to_string());
        if inventory.get(id).await.ok().flatten().is_some() {
            continue;
        }
        for w in &warehouses {
            let _ = inventory.set(id, w.as_deref(), SEED_UNITS).await;
        }
        let _ = inventory.set_product_id(id, product).await;
    }
    tracing::info!(
        units = SEED_UNITS,
        "Demo stock: every simulated SKU stocked in every warehouse"
    );
    simulated
}

/// One look at the simulated SKUs' stock: [`RESTOCK_UNITS`] more wherever
/// fewer than [`RESTOCK_BELOW`] are available. Returns the restocks made.
pub async fn restock_once(inventory: &InventoryHandle, skus: &[String]) -> usize {
    let stock = match inventory.list().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "Demo restock: could not read the stock");
            return 0;
        }
    };
    let mut made = 0;
    for s in stock.into_iter().filter(|s| skus.contains(&s.sku)) {
        for w in s.warehouses.iter().filter(|w| w.available < RESTOCK_BELOW) {
            match inventory
                .adjust(&s.sku, w.warehouse.as_deref(), i64::from(RESTOCK_UNITS))
                .await
            {
                Ok(_) => {
                    made += 1;
                    tracing::info!(sku = %s.sku, warehouse = ?w.warehouse, available = w.available, added = RESTOCK_UNITS, "Demo restock");
                }
                Err(e) => {
                    tracing::warn!(sku = %s.sku, error = %e, "Demo restock failed")
                }
            }
        }
    }
    made
}

/// [`restock_once`] every [`RESTOCK_EVERY`] until `stop`.
pub async fn restock(inventory: InventoryHandle, skus: Vec<String>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RESTOCK_EVERY) => {}
        }
        restock_once(&inventory, &skus).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiktok_durations_are_divided_by_the_scale_at_least_a_second() {
        let h6 = Duration::from_secs(6 * 3600);
        assert_eq!(compressed(h6, 3600.0), Duration::from_secs(6));
        assert_eq!(compressed(h6, 7000.0), Duration::from_secs(4));
        assert_eq!(compressed(h6, 1.0), h6);
        assert_eq!(compressed(h6, 1e6), Duration::from_secs(1));
        assert_eq!(compressed(Duration::ZERO, 3600.0), Duration::from_secs(1));
    }

    #[test]
    fn every_channel_the_bundled_workflows_name_exists_in_the_demo() {
        let mut cfg = Config::default();
        cfg.notify.channels.insert(
            "creator".into(),
            crate::notify::Secret::new("https://example.com/mine").into(),
        );
        configure_at(&mut cfg, "http://127.0.0.1:9");
        let n = &cfg.notify;
        assert!(n.validate().is_empty(), "{:?}", n.validate());
        // The operator's own channel is kept; the default is the simulator.
        assert_eq!(
            n.channels["creator"].url.as_ref().map(|u| u.expose()),
            Some("https://example.com/mine")
        );
        assert_eq!(
            n.channels[&n.default_channel]
                .url
                .as_ref()
                .map(|u| u.expose())
                .unwrap_or_default(),
            "http://127.0.0.1:9/sim/notify/default"
        );
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let mut named = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                if let Some(c) = line.trim().strip_prefix("channel:") {
                    let c = c.trim().trim_matches('"');
                    assert!(
                        WORKFLOW_CHANNELS.contains(&c) || c == n.default_channel,
                        "{}: channel {c:?} is not in the demo's config",
                        path.display()
                    );
                    named += 1;
                }
            }
        }
        assert!(named > 0, "the bundled workflows name their channels");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn low_stock_is_restocked_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let inv = crate::inventory::Inventory::open(&db, Default::default()).unwrap();
        inv.set("LOW", Some("W1"), RESTOCK_BELOW - 1).await.unwrap();
        inv.set("LOW", Some("W2"), RESTOCK_BELOW).await.unwrap();
        inv.set("FULL", None, SEED_UNITS).await.unwrap();
        inv.set("SELLERS-OWN", None, 1).await.unwrap();
        let simulated = ["LOW".to_string(), "FULL".to_string()];
        assert_eq!(restock_once(&inv, &simulated).await, 1);
        let low = inv.get("LOW").await.unwrap().unwrap();
        let on_hand: Vec<u32> = low.warehouses.iter().map(|w| w.on_hand).collect();
        assert_eq!(on_hand, [RESTOCK_BELOW - 1 + RESTOCK_UNITS, RESTOCK_BELOW]);
        let full = inv.get("FULL").await.unwrap().unwrap();
        assert_eq!(full.on_hand, u64::from(SEED_UNITS));
        let j = inv.journal_entries(None, 1).await.unwrap();
        assert_eq!(
            (j[0].kind.as_str(), j[0].subject.as_str()),
            ("adjust", "LOW")
        );
        assert_eq!(restock_once(&inv, &simulated).await, 0, "enough now");
        let own = inv.get("SELLERS-OWN").await.unwrap().unwrap();
        assert_eq!(own.on_hand, 1, "only the simulated SKUs are topped up");
    }

    #[test]
    fn run_numbers_go_up_and_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20, 8).unwrap();
        assert_eq!(next_run(&store).unwrap(), 1);
        assert_eq!(next_run(&store).unwrap(), 2);
        let max = crate::simulator::MAX_RUN;
        store
            .trees
            .cursors
            .insert(RUN_KEY.as_bytes(), &max.to_be_bytes()[..])
            .unwrap();
        assert_eq!(next_run(&store).unwrap(), 1);
    }
}
