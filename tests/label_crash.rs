//! Exactly one label per shipped order across both label providers, with
//! the daemon SIGKILLed ten times and purchases answered after the
//! client's timeout. Neither EasyPost nor Shippo takes an idempotency key:
//! the one-label protocol (record the purchase as started with the order's
//! reference and the shipment and rate about to be bought, look it up at
//! the provider on replay) is what keeps each order at one label. 300
//! orders, half through each simulator (a carrier rule names the
//! provider); then, from each simulator's ledger, every shipped order has
//! exactly one bought, unrefunded label, TikTok holds its tracking number,
//! and its document is on disk and in the API.
//!
//! `LABEL_CRASH_ORDERS` and `LABEL_CRASH_KILLS` change the size (300, 10).

mod common;

use common::free_addr;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{
    eventually, get_json, post_json, sim_daemon_config, sim_orders_in, wait_ready, Daemon,
};

struct Dir(std::path::PathBuf);
impl Dir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}
/// Removes the test's folder, unless `LABEL_CRASH_KEEP` is set.
struct Cleanup(std::path::PathBuf, bool);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_label_per_order_across_both_providers_through_kills_and_late_answers() {
    let orders = env_or("LABEL_CRASH_ORDERS", 300);
    let kills = env_or("LABEL_CRASH_KILLS", 10);
    let started = Instant::now();
    let listen = free_addr();
    let (sim_url, shops) = common::one_shop_simulator("lc", &listen);
    let client = common::unpooled_client();
    let dir = tempfile::tempdir().unwrap();
    let dir = if std::env::var("LABEL_CRASH_KEEP").is_ok() {
        tempfile::TempDir::with_prefix_in("label-crash-", "/tmp")
            .unwrap()
            .keep()
    } else {
        dir.keep()
    };
    let _cleanup = Cleanup(dir.clone(), std::env::var("LABEL_CRASH_KEEP").is_err());
    let dir = Dir(dir);
    let wf = common::labels_workflows(dir.path());
    // Orders whose id ends in an even digit go to Shippo, the rest to
    // EasyPost (the default provider).
    let config = sim_daemon_config(
        dir.path(),
        &sim_url,
        &shops[0],
        ("lc-app-key", "lc-app-secret", "lc-access-token"),
        r#"
[sync]
poll_interval = "1s"

[shipping]
provider_timeout = "2s"

[[shipping.rules]]
when = "order.id.matches('[02468]$')"
carrier = "USPS"
provider = "shippo"
"#,
    );
    // 10% of answers come 2.5 s after the work is done, past the daemon's
    // 2 s timeout; every answer takes 100 ms, so kills land mid-purchase.
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({"timeout_rate": 0.1, "timeout_ms": 2500, "latency_ms": 100}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let start = || Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);
    let mut daemon = start();
    wait_ready(&client, &daemon.base).await;
    let mut ids: Vec<String> = Vec::new();

    // Kill whenever a few more labels have been bought since the last kill.
    let bought = || {
        let (c, s) = (client.clone(), sim_url.clone());
        async move {
            let (_, l) = get_json(&c, &format!("{s}/sim/labels/ledger")).await;
            l["bought"].as_u64().unwrap_or(0)
        }
    };
    // The orders come in batches, one before each kill; each kill lands
    // once about half of its batch has a label, with purchases in flight.
    let batch = orders.div_ceil(kills.max(1));
    let mut seen = 0;
    for k in 0..kills {
        let n = batch.min(orders - ids.len());
        ids.extend(sim_orders_in(&client, &sim_url, &shops[0].0, "AWAITING_SHIPMENT", n).await);
        let target = seen + (n as u64 / 2).max(1);
        seen = eventually(Duration::from_secs(120), "more labels bought", || {
            let b = bought();
            async move {
                let n = b.await;
                (n >= target).then_some(n)
            }
        })
        .await;
        println!("kill {k}: {seen} labels bought (log: {})", log.display());
        daemon.kill9();
        common::assert_indexes_match(&data);
        daemon = start();
        wait_ready(&client, &daemon.base).await;
    }
    post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({}),
    )
    .await;

    // Every order ships.
    let base = daemon.base.clone();
    for id in &ids {
        common::shipped(&client, &base, id, Duration::from_secs(120)).await;
    }
    assert_eq!(ids.len(), orders);
    // Held answers finish before the ledgers are read.
    tokio::time::sleep(Duration::from_millis(2600)).await;

    // Each simulator's ledger: bought and refunded labels per order.
    let mut per_order: BTreeMap<String, (u32, u32, String, String)> = BTreeMap::new();
    let mut per_provider = BTreeMap::new();
    for p in ["easypost", "shippo"] {
        let (_, l) = get_json(
            &client,
            &format!("{sim_url}/sim/labels/ledger?provider={p}"),
        )
        .await;
        let entries = l["entries"].as_array().unwrap();
        *per_provider.entry(p).or_insert(0) +=
            entries.iter().filter(|e| e["action"] == "buy").count();
        for e in entries {
            let reference = e["reference"].as_str().unwrap();
            let order = reference
                .rsplit_once("-L")
                .map_or(reference, |x| x.0)
                .to_string();
            let slot = per_order
                .entry(order)
                .or_insert((0, 0, String::new(), String::new()));
            match e["action"].as_str().unwrap() {
                "buy" => {
                    slot.0 += 1;
                    slot.2 = e["tracking_number"].as_str().unwrap().to_string();
                    slot.3 = p.to_string();
                }
                "refund" => slot.1 += 1,
                _ => {}
            }
        }
    }
    let mut recovered = 0;
    for id in &ids {
        let (bought, refunded, tracking, provider) = per_order
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("{id}: no label in either ledger"));
        assert_eq!(
            (bought, refunded),
            (1, 0),
            "{id}: one bought, unrefunded label"
        );
        let expect = if id.ends_with(['0', '2', '4', '6', '8']) {
            "shippo"
        } else {
            "easypost"
        };
        assert_eq!(provider, expect, "{id}");
        // TikTok holds that label's tracking number.
        let (_, o) = get_json(&client, &format!("{sim_url}/sim/orders/{id}")).await;
        assert_eq!(o["order"]["tracking_number"], tracking.as_str(), "{id}");
        // Its document: in the API and on disk, a PDF.
        let (_, l) = get_json(&client, &format!("{base}/api/v1/orders/{id}/label")).await;
        assert_eq!(
            l["label"]["tracking_number"],
            tracking.as_str(),
            "{id}: {l}"
        );
        if l["label"]["recovered"] == true {
            recovered += 1;
        }
        let name = l["documents"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no document: {l}"));
        let path = data.join("documents").join(id).join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(b"%PDF-"), "{id}");
        let r = client
            .get(format!("{base}/api/v1/orders/{id}/documents/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice(), "{id}");
    }
    assert!(
        per_provider["easypost"] > 0 && per_provider["shippo"] > 0,
        "{per_provider:?}"
    );
    println!(
        "{orders} orders, {kills} SIGKILLs: {per_provider:?} labels bought, 0 twice, 0 refunded; \
         {recovered} found at the provider after a lost answer; {:?}",
        started.elapsed()
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}
