//! A stopped daemon catches up from its polling cursor. The real
//! `orderflow` process syncs with a simulator run by this test; it is
//! stopped while TikTok moves on (buyers cancel, the carrier delivers, new
//! orders arrive) and every webhook about that fails against the dead
//! address. After a restart on the same address, every order's status is
//! the simulator's truth again — brought by polling from the durable
//! cursor: the pushes of the downtime were never delivered, and the
//! daemon's lookback without a cursor (1 s) would not reach back to them.

mod common;

use common::free_addr;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{eventually, get_json, post_json, Daemon};
use orderflow::simulator::{self, SimulatorArgs};

const APP_KEY: &str = "catchup-app-key";
const APP_SECRET: &str = "catchup-app-secret";
const TOKEN: &str = "catchup-access-token";

const WORKFLOW: &str = r#"
name: ship_once
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: "TN${{ order.id }}"
      shipping_provider_id: "6617675021119438850"
    retry: { max_attempts: 20, initial_delay: 200ms, max_delay: 2s }
  - id: done
    end: shipped
"#;

async fn ships(client: &reqwest::Client, sim: &str) -> usize {
    let (_, v) = get_json(client, &format!("{sim}/sim/ledger?action=mark_shipped")).await;
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ok"] == true)
        .count()
}

/// Orders whose status in the daemon differs from the simulator's.
async fn behind(client: &reqwest::Client, sim: &str, base: &str, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let (_, truth) = get_json(client, &format!("{sim}/sim/orders/{id}")).await;
        let ours = match client
            .get(format!("{base}/api/v1/orders/{id}"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.unwrap(),
            _ => serde_json::Value::Null,
        };
        if ours["tiktok_status"] != truth["status"] {
            out.push(id.clone());
        }
    }
    out
}

#[actix_rt::test]
async fn a_stopped_daemon_catches_up_from_its_polling_cursor() {
    let listen = free_addr();
    let sim = simulator::start(SimulatorArgs {
        app_key: APP_KEY.into(),
        app_secret: APP_SECRET.into(),
        access_token: TOKEN.into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        qps: 200,
        manual_carrier: true,
        buyer_cancel_rate: 0.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let sim_url = sim.base_url();
    let shops: Vec<String> = sim.shops().iter().map(|(id, _)| id.clone()).collect();

    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("ship_once.yaml"), WORKFLOW).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let mut toml = format!(
        "[tiktok]\nbase_url = \"{sim_url}\"\nauth_url = \"{sim_url}\"\napp_key = \"{APP_KEY}\"\napp_secret = \"{APP_SECRET}\"\n"
    );
    for (id, cipher) in sim.shops() {
        toml += &format!(
            "\n[[tiktok.shops]]\nid = \"{id}\"\ncipher = \"{cipher}\"\naccess_token = \"{TOKEN}\"\nrefresh_token = \"sim-refresh-token\"\nqps = 200.0\n"
        );
    }
    // Without a cursor a shop is polled from 1 s back only: what happened
    // during the downtime is reachable through the cursor alone.
    toml += "\n[sync]\npoll_interval = \"1s\"\npoll_overlap = \"1s\"\ninitial_lookback = \"1s\"\n";
    let config = dir.path().join("orderflow.toml");
    std::fs::write(&config, toml).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Up: orders on hold and orders to ship, in sync through webhooks and
    // polling.
    let daemon = Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);
    common::wait_ready(&client, &daemon.base).await;
    let on_hold = common::sim_orders_in(&client, &sim_url, &shops[0], "ON_HOLD", 60).await;
    let mut to_ship =
        common::sim_orders_in(&client, &sim_url, &shops[0], "AWAITING_SHIPMENT", 50).await;
    to_ship
        .extend(common::sim_orders_in(&client, &sim_url, &shops[1], "AWAITING_SHIPMENT", 50).await);
    let mut all: Vec<String> = on_hold.iter().chain(&to_ship).cloned().collect();
    eventually(Duration::from_secs(180), "the first orders in sync", || {
        let (c, s, b, ids) = (
            client.clone(),
            sim_url.clone(),
            daemon.base.clone(),
            all.clone(),
        );
        async move {
            (ships(&c, &s).await == 100 && behind(&c, &s, &b, &ids).await.is_empty()).then_some(())
        }
    })
    .await;

    // Down: TikTok moves on and its pushes fail.
    let status = daemon.terminate();
    assert!(status.success(), "graceful stop: {status}");
    let (_, hooks) = get_json(&client, &format!("{sim_url}/sim/webhooks")).await;
    // Pushes of before the stop that were still on their way are not the
    // downtime's: only notifications first seen from now on are.
    let known: HashSet<String> = hooks["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["notification_id"].as_str().unwrap().to_string())
        .collect();
    let down_from_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let down_since = Instant::now();
    let cancelled: Vec<String> = on_hold.iter().step_by(2).cloned().collect();
    for id in &cancelled {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders/{id}/buyer_cancel"),
            &serde_json::json!({}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/carrier"),
        &serde_json::json!({"order_ids": to_ship, "to": "DELIVERED"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["advanced"].as_array().unwrap().len(),
        to_ship.len(),
        "{v}"
    );
    let fresh = common::sim_orders_in(&client, &sim_url, &shops[1], "AWAITING_SHIPMENT", 40).await;
    all.extend(fresh.iter().cloned());
    // Every push of the downtime fails (nothing listens).
    let changed = cancelled.len() + to_ship.len() + fresh.len();
    let down_notifications: HashSet<String> = eventually(
        Duration::from_secs(60),
        "the downtime's pushes to fail",
        || {
            let (c, s, known) = (client.clone(), sim_url.clone(), known.clone());
            async move {
                let (_, hooks) = get_json(&c, &format!("{s}/sim/webhooks")).await;
                let d: Vec<&serde_json::Value> = hooks["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| {
                        d["at_ms"].as_i64().unwrap() >= down_from_ms
                            && !known.contains(d["notification_id"].as_str().unwrap())
                    })
                    .collect();
                assert!(
                    d.iter().all(|d| d["outcome"] != "delivered"),
                    "a push was delivered while the daemon was down"
                );
                let failed: HashSet<String> = d
                    .iter()
                    .filter(|d| d["outcome"] == "failed")
                    .map(|d| d["notification_id"].as_str().unwrap().to_string())
                    .collect();
                (failed.len() >= changed).then_some(failed)
            }
        },
    )
    .await;
    // Stopped for a while: longer than the lookback a daemon without a
    // cursor would use.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The latest change of each shop while the daemon was down.
    let mut latest_down: HashMap<String, i64> = HashMap::new();
    for id in &all {
        let (_, v) = get_json(&client, &format!("{sim_url}/sim/orders/{id}")).await;
        let t = latest_down
            .entry(v["shop_id"].as_str().unwrap().to_string())
            .or_default();
        *t = (*t).max(v["order"]["update_time"].as_i64().unwrap());
    }

    // Up again, on the same address. The deadline is under TikTok's first
    // retry (two minutes): webhooks cannot be what brings the changes.
    let restarted = Instant::now();
    let daemon = Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);
    common::wait_ready(&client, &daemon.base).await;
    eventually(
        Duration::from_secs(100),
        "every order in sync again",
        || {
            let (c, s, b, ids) = (
                client.clone(),
                sim_url.clone(),
                daemon.base.clone(),
                all.clone(),
            );
            async move {
                (ships(&c, &s).await == 140 && behind(&c, &s, &b, &ids).await.is_empty())
                    .then_some(())
            }
        },
    )
    .await;
    println!(
        "{} orders in sync {:?} after the restart, down for {:?}",
        all.len(),
        restarted.elapsed(),
        restarted - down_since
    );

    // The downtime's pushes were never delivered (TikTok's first retry is
    // two minutes away): polling brought every change.
    let (_, hooks) = get_json(&client, &format!("{sim_url}/sim/webhooks")).await;
    let delivered_late: Vec<&serde_json::Value> = hooks["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["outcome"] == "delivered"
                && down_notifications.contains(d["notification_id"].as_str().unwrap())
        })
        .collect();
    assert!(delivered_late.is_empty(), "{delivered_late:?}");
    // Each order's audit shows the downtime's change, and who brought it.
    let mut sources: HashMap<String, usize> = HashMap::new();
    let groups: [(&[String], &str); 3] = [
        (&cancelled, "→ CANCELLED"),
        (&to_ship, "→ DELIVERED"),
        (&fresh, "new → AWAITING_SHIPMENT"),
    ];
    for (ids, change) in groups {
        for id in ids {
            let (_, audit) = get_json(
                &client,
                &format!("{}/api/v1/orders/{id}/audit", daemon.base),
            )
            .await;
            let entry = audit
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "status" && e["detail"].as_str().unwrap().ends_with(change))
                .unwrap_or_else(|| panic!("order {id}: no `{change}` in {audit:#}"));
            *sources
                .entry(entry["source"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(
        sources.get("poll").copied(),
        Some(cancelled.len() + to_ship.len() + fresh.len()),
        "the downtime's changes came by polling: {sources:?}"
    );

    // The cursor is durable and covers the downtime's latest change of
    // each shop.
    let status = daemon.terminate();
    assert!(status.success(), "graceful stop: {status}");
    let store = orderflow::store::Store::open(&data, 1 << 20, 64).unwrap();
    for shop in &shops {
        let raw = store
            .trees
            .cursors
            .get(format!("poll:{shop}"))
            .unwrap()
            .unwrap_or_else(|| panic!("no cursor for shop {shop}"));
        let cursor: i64 = orderflow::store::codec::decode(&raw).unwrap();
        let latest = latest_down[shop.as_str()];
        assert!(cursor >= latest, "shop {shop}: cursor {cursor} < {latest}");
    }
    sim.stop().await;
}
