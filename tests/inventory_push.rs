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

/// One pusher per shop, each with its own credentials: a SKU goes to the
/// shops that sell it, with only that shop's warehouses (stock recorded
/// without a warehouse under the shop's only one); a stopped shop's pusher
/// sends nothing; reconcile with `fix` corrects TikTok's numbers.
#[actix_rt::test]
async fn each_shop_gets_its_own_skus_with_its_own_warehouses() {
    let sim = start_sim(SimulatorArgs {
        shops: 2,
        ..SimulatorArgs::default()
    })
    .await;
    let (a, b) = (sim.shops()[0].0.clone(), sim.shops()[1].0.clone());
    let info = sim_get(&sim, "/sim/shops").await;
    let wh = |i: usize| {
        info["shops"][i]["warehouse_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sku = |i: usize| info["skus"][i]["id"].as_str().unwrap().to_string();
    let product = |i: usize| info["skus"][i]["product_id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let inv = Inventory::open(
        &db,
        InventoryConfig {
            push_debounce: Duration::from_millis(100),
            push_max_attempts: 2,
            ..InventoryConfig::default()
        },
    )
    .unwrap();
    let gw = GatewayHandle::start(&config(&sim, 50.0), sink()).unwrap();
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let pa = inv.start_push(gw.clone(), a.clone(), stop_a.clone());
    let pb = inv.start_push(gw.clone(), b.clone(), stop_b.clone());
    // Shop A sells SKU 0, shop B SKU 4, both SKU 8.
    let (s0, s4, s8) = (sku(0), sku(4), sku(8));
    inv.note_sold_by(&s0, &a).unwrap();
    inv.note_sold_by(&s4, &b).unwrap();
    inv.note_sold_by(&s8, &a).unwrap();
    inv.note_sold_by(&s8, &b).unwrap();
    for (s, p) in [(&s0, product(0)), (&s4, product(4)), (&s8, product(8))] {
        inv.set_product_id(s, &p).await.unwrap();
    }
    inv.set(&s0, Some(&wh(0)), 10).await.unwrap();
    inv.set(&s4, Some(&wh(1)), 20).await.unwrap();
    // One pool for the SKU both shops sell, recorded without a warehouse.
    inv.set(&s8, None, 30).await.unwrap();
    let by_shop = |entries: Vec<Value>| -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| {
                (
                    e["shop_id"].as_str().unwrap_or_default().to_string(),
                    e["detail"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        by_shop(wait_for(&sim, &s0, 1).await),
        vec![(a.clone(), "quantity 10".to_string())]
    );
    assert_eq!(
        by_shop(wait_for(&sim, &s4, 1).await),
        vec![(b.clone(), "quantity 20".to_string())]
    );
    let mut both = by_shop(wait_for(&sim, &s8, 2).await);
    both.sort();
    let mut want = vec![
        (a.clone(), "quantity 30".to_string()),
        (b.clone(), "quantity 30".to_string()),
    ];
    want.sort();
    assert_eq!(
        both, want,
        "the shared pool goes to both shops, each its own warehouse"
    );
    for e in updates(&sim, &s8).await {
        assert_eq!(e["ok"], true, "{e}");
    }

    // Shop B is disconnected: its pusher stops; A's goes on.
    stop_b.cancel();
    pb.await.unwrap();
    inv.adjust(&s8, None, -5).await.unwrap();
    wait_for(&sim, &s8, 3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_stop = by_shop(updates(&sim, &s8).await).split_off(2);
    assert_eq!(
        after_stop,
        vec![(a.clone(), "quantity 25".to_string())],
        "only the connected shop is told"
    );
    // B's numbers drifted meanwhile; reconcile finds and fixes them.
    let r = inv.reconcile(&gw, &b).await.unwrap();
    assert_eq!(r.drifts.len(), 1, "{r:?}");
    assert_eq!(
        (
            r.drifts[0].sku.as_str(),
            r.drifts[0].ours,
            r.drifts[0].theirs
        ),
        (s8.as_str(), 25, Some(30))
    );
    assert!(
        r.drifts.iter().all(|d| d.sku != s0),
        "A's SKU is not B's business"
    );
    let fixed = inv.reconcile_with(&gw, &b, true).await.unwrap();
    assert_eq!(fixed.fixed, vec![s8.clone()], "{fixed:?}");
    let again = inv.reconcile(&gw, &b).await.unwrap();
    assert!(again.drifts.is_empty(), "{again:?}");
    // The correction is in the stock journal, newest first.
    let j = inv.journal_entries(None, 10).await.unwrap();
    assert_eq!(
        (j[0].kind.as_str(), j[0].subject.as_str()),
        ("reconcile", b.as_str())
    );
    assert_eq!(j[1].kind, "reconcile_fix", "{j:?}");
    assert!(j[1].detail.contains(&format!("fixed [\"{s8}\"]")), "{j:?}");
    assert!(
        j.iter().any(|e| e.kind == "set"),
        "stock set by hand: {j:?}"
    );

    stop_a.cancel();
    pa.await.unwrap();
    sim.stop().await;
}
