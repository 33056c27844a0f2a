//! The debounced push reaches the simulator (one Update Inventory per burst,
//! with the settled quantity), and reconcile reports drift.

#[path = "common/tiktok.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use orderflow::inventory::{Inventory, InventoryConfig};
use orderflow::simulator::{SimulatorArgs, SimulatorHandle};
use orderflow::tiktok::GatewayHandle;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

async fn updates(sim: &SimulatorHandle, sku: &str) -> Vec<Value> {
    let l = sim_get(sim, "/sim/ledger?action=inventory_update").await;
    l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["sku_id"] == sku)
        .cloned()
        .collect()
}

async fn wait_for(sim: &SimulatorHandle, sku: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = updates(sim, sku).await;
        if u.len() >= n || Instant::now() > deadline {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn one(sku: &str) -> BTreeMap<String, u32> {
    [(sku.to_string(), 1)].into()
}

#[actix_rt::test]
async fn bursts_are_pushed_once_each_and_reconcile_sees_drift() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let info = sim_get(&sim, "/sim/shops").await;
    let wh = info["shops"][0]["warehouse_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sku = |i: usize| info["skus"][i]["id"].as_str().unwrap().to_string();
    let product = |i: usize| info["skus"][i]["product_id"].as_str().unwrap().to_string();
    let (a, b) = (sku(0), sku(4));

    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let window = Duration::from_millis(300);
    let inv = Inventory::open(
        &db,
        InventoryConfig {
            push_debounce: window,
            push_max_attempts: 2,
            // B's product comes from the configuration, A's from the store.
            products: [(b.clone(), product(4))].into(),
            default_warehouse: Some(wh.clone()),
            ..InventoryConfig::default()
        },
    )
    .unwrap();
    let gw = GatewayHandle::start(&config(&sim, 50.0), sink()).unwrap();
    let cancel = CancellationToken::new();
    let pusher = inv.start_push(gw.clone(), shop.clone(), cancel.clone());

    // A burst: stock set, then five orders, well inside one window.
    let started = Instant::now();
    inv.set_product_id(&a, &product(0)).await.unwrap();
    inv.set(&a, Some(&wh), 50).await.unwrap();
    for i in 0..5 {
        inv.reserve(&format!("o{i}"), &one(&a), None).await.unwrap();
    }
    let burst = started.elapsed();
    let u = wait_for(&sim, &a, 1).await;
    let latency = started.elapsed();
    println!("burst took {burst:?}; first push seen after {latency:?} (window {window:?})");
    assert!(latency >= window, "pushed before the window closed");
    // Nothing more arrives for the burst.
    tokio::time::sleep(window * 3).await;
    let u2 = updates(&sim, &a).await;
    assert_eq!(u2.len(), 1, "one push per burst: {u2:?}");
    assert_eq!(u[0]["ok"], true);
    assert_eq!(
        u[0]["detail"], "quantity 45",
        "the settled available quantity"
    );

    // Unnamed-warehouse stock goes out under the default warehouse, with the
    // configured product id.
    inv.set(&b, None, 7).await.unwrap();
    let ub = wait_for(&sim, &b, 1).await;
    assert_eq!(ub.len(), 1);
    assert_eq!(ub[0]["ok"], true, "{ub:?}");
    assert_eq!(ub[0]["detail"], "quantity 7");

    // A second burst (two releases and a commit) → one more push.
    inv.release("o0").await.unwrap();
    inv.release("o1").await.unwrap();
    inv.commit("o2").await.unwrap();
    let u = wait_for(&sim, &a, 2).await;
    assert_eq!(u.len(), 2);
    assert_eq!(u[1]["detail"], "quantity 47", "49 on hand − 2 reserved");

    // Reconcile: in step now.
    let r = inv.reconcile(&gw, &shop).await.unwrap();
    assert_eq!(r.checked, 2);
    assert!(r.drifts.is_empty(), "{r:?}");

    // A local-only SKU (TikTok does not know it) and one with no product id.
    inv.set("LOCAL-1", Some(&wh), 3).await.unwrap();
    inv.set_product_id("LOCAL-1", "9999").await.unwrap();
    inv.set("NOPROD", Some(&wh), 3).await.unwrap();
    // Change A and reconcile before the push window closes: drift.
    inv.adjust(&a, Some(&wh), 10).await.unwrap();
    let r = inv.reconcile(&gw, &shop).await.unwrap();
    println!("{r:?}");
    assert_eq!(r.drifts.len(), 1, "{r:?}");
    assert_eq!(r.drifts[0].sku, a);
    assert_eq!((r.drifts[0].ours, r.drifts[0].theirs), (57, Some(47)));
    assert_eq!(r.missing_on_tiktok, vec!["LOCAL-1".to_string()]);
    assert_eq!(r.without_product, vec!["NOPROD".to_string()]);
    // Once pushed, the drift is gone.
    wait_for(&sim, &a, 3).await;
    let r = inv.reconcile(&gw, &shop).await.unwrap();
    assert!(r.drifts.is_empty(), "{r:?}");
    // TikTok refused the unknown SKU; the push gave up after its attempts.
    let bad = wait_for(&sim, "LOCAL-1", 2).await;
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad.iter().all(|e| e["ok"] == false));
    tokio::time::sleep(window * 4).await;
    assert_eq!(updates(&sim, "LOCAL-1").await.len(), 2, "no third attempt");

    cancel.cancel();
    pusher.await.unwrap();
    sim.stop().await;
}
