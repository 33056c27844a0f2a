//! Stock under a burst: 100 units of a SKU and 1,000 orders for it arriving
//! at once. Exactly 100 orders are reserved, labelled and shipped (the
//! simulator's ledger counts 100 successful ships), the other 900 take the
//! out-of-stock path (the creator is told, the order waits for a restock),
//! the stock never goes below what is reserved and never above what there
//! was, and TikTok is told the final available quantity.
//!
//! The whole bundled standard workflow runs: the simulator is TikTok and
//! the label API, the notification channels are a test receiver.

mod common;

use common::free_addr;

use std::time::Duration;

use common::{eventually, get_json, post_json, sim_config, wait_ready, Inbox};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs};

/// The stock of `sku`, checked for consistency: available is on hand less
/// reserved, nothing is reserved that is not on hand, and on hand never
/// exceeds `initial` (nothing is invented) — what a negative count would
/// break.
async fn stock(client: &reqwest::Client, base: &str, sku: &str, initial: u64) -> (u64, u64, u64) {
    let (st, v) = get_json(client, &format!("{base}/api/v1/inventory/{sku}")).await;
    assert_eq!(st, 200, "{v}");
    let (on_hand, reserved, available) = (
        v["on_hand"].as_u64().unwrap(),
        v["reserved"].as_u64().unwrap(),
        v["available"].as_u64().unwrap(),
    );
    assert!(reserved <= on_hand, "reserved above on hand: {v}");
    assert_eq!(available, on_hand - reserved, "{v}");
    assert!(on_hand <= initial, "stock appeared from nowhere: {v}");
    for w in v["warehouses"].as_array().unwrap() {
        assert!(w["reserved"].as_u64() <= w["on_hand"].as_u64(), "{v}");
    }
    (on_hand, reserved, available)
}

#[actix_rt::test]
async fn a_thousand_orders_for_a_hundred_units_ship_exactly_a_hundred() {
    const STOCK: u64 = 100;
    const ORDERS: usize = 1000;
    let inbox = Inbox::start();
    let listen = free_addr();
    let sim = simulator::start(SimulatorArgs {
        app_key: "cc-app-key".into(),
        app_secret: "cc-app-secret".into(),
        access_token: "cc-access-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 100_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let sim_url = sim.base_url();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (_, shops) = get_json(&client, &format!("{sim_url}/sim/shops")).await;
    let warehouse = shops["shops"][0]["warehouse_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sku = shops["skus"][0]["id"].as_str().unwrap().to_string();
    let product = shops["skus"][0]["product_id"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/standard.yaml"),
        wf.join("standard.yaml"),
    )
    .unwrap();
    let mut cfg = sim_config(
        &sim,
        "cc-app-key",
        "cc-app-secret",
        "cc-access-token",
        10_000.0,
        &dir.path().join("data"),
        &wf,
    );
    cfg.server.listen = listen;
    orderflow::simulator::carriers::demo_config(&mut cfg.shipping, &sim_url);
    for (carrier, id) in [
        ("USPS", "6617675021119438849"),
        ("UPS", "6617675021119438850"),
        ("FedEx", "6617675021119438851"),
    ] {
        cfg.shipping.provider_ids.insert(carrier.into(), id.into());
    }
    for ch in ["default", "creator"] {
        cfg.notify.channels.insert(
            ch.into(),
            orderflow::notify::Secret::new(inbox.url()).into(),
        );
    }
    cfg.inventory.push_debounce = Duration::from_millis(300);
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&client, &base).await;

    let (st, v) = client
        .post(format!("{base}/api/v1/inventory/import"))
        .body(format!(
            "sku_id,warehouse_id,on_hand,product_id\n{sku},{warehouse},{STOCK},{product}\n"
        ))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(st, 200, "{:?}", v.text().await);
    assert_eq!(stock(&client, &base, &sku, STOCK).await, (STOCK, 0, STOCK));

    // 1,000 orders at once.
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/orders"),
        &serde_json::json!({"items": [{"sku_id": sku, "quantity": 1}], "count": ORDERS, "status": "AWAITING_SHIPMENT"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let ids: Vec<String> = v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), ORDERS);

    // Until every order has settled, check the stock at every look.
    let mut samples = 0u32;
    let mut lowest = STOCK;
    let until = std::time::Instant::now() + Duration::from_secs(50);
    let counts = loop {
        let (_, _, available) = stock(&client, &base, &sku, STOCK).await;
        samples += 1;
        lowest = lowest.min(available);
        let (_, v) = get_json(&client, &format!("{base}/api/v1/stats/lifecycle")).await;
        let f = v["by_lifecycle"]["fulfilled"].as_u64().unwrap();
        // Those that found no stock are held, waiting for a restock.
        let p = v["by_lifecycle"]["on_hold"].as_u64().unwrap();
        if v["total"] == ORDERS && f == STOCK && p == ORDERS as u64 - STOCK {
            break v;
        }
        assert!(
            std::time::Instant::now() < until,
            "orders never settled: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counts["by_lifecycle"]["exception"], 0, "{counts}");

    // Per order: 100 shipped and waiting for delivery, 900 waiting for a
    // restock, each with its stock committed or never reserved.
    let (mut shipped, mut waiting_restock) = (Vec::new(), Vec::new());
    for id in &ids {
        let o = eventually(Duration::from_secs(20), "the order to rest", || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                o["in_flight"].as_array()?.is_empty().then_some(o)
            }
        })
        .await;
        match o["step"].as_str() {
            Some("wait_delivery") => shipped.push(id.clone()),
            Some("wait_restock") => waiting_restock.push(id.clone()),
            _ => panic!("order {id} is neither shipped nor waiting for stock: {o}"),
        }
    }
    assert_eq!(shipped.len(), STOCK as usize);
    assert_eq!(waiting_restock.len(), ORDERS - STOCK as usize);

    // The stock: all 100 gone, nothing left reserved.
    let (on_hand, reserved, available) = stock(&client, &base, &sku, STOCK).await;
    assert_eq!((on_hand, reserved, available), (0, 0, 0));

    // TikTok: exactly 100 successful ships, for exactly the shipped orders,
    // and no ship of an order that waits for stock.
    let (_, ledger) = get_json(&client, &format!("{sim_url}/sim/ledger")).await;
    let entries = ledger["entries"].as_array().unwrap();
    let mut ships: Vec<String> = entries
        .iter()
        .filter(|e| {
            matches!(e["action"].as_str(), Some("ship" | "mark_shipped")) && e["ok"] == true
        })
        .map(|e| e["order_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ships.sort();
    let mut want = shipped.clone();
    want.sort();
    assert_eq!(ships, want, "one successful ship per shipped order");

    // The label API sold exactly 100 labels.
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    assert_eq!(labels["bought"], STOCK, "{}", labels["bought"]);

    // The creator heard about each order without stock, once.
    let notes = inbox.delivered();
    let mut told: Vec<String> = notes
        .iter()
        .filter_map(|n| {
            let t = n["text"].as_str()?;
            t.contains("out of stock")
                .then(|| {
                    waiting_restock
                        .iter()
                        .find(|id| t.contains(id.as_str()))
                        .cloned()
                })
                .flatten()
        })
        .collect();
    told.sort();
    let mut want = waiting_restock.clone();
    want.sort();
    assert_eq!(told, want);

    // TikTok was told the final quantity: the last push of the SKU says 0.
    eventually(Duration::from_secs(20), "the push of quantity 0", || {
        let (c, s, sku) = (client.clone(), sim_url.clone(), sku.clone());
        async move {
            let (_, l) = get_json(&c, &format!("{s}/sim/ledger?action=inventory_update")).await;
            let last = l["entries"]
                .as_array()?
                .iter()
                .rfind(|e| e["sku_id"] == sku.as_str() && e["ok"] == true)?
                .clone();
            (last["detail"] == "quantity 0").then_some(())
        }
    })
    .await;
    eprintln!("stock sampled {samples} times while the orders ran; lowest available seen {lowest}");
    assert!(samples > 1);

    daemon.shutdown().await;
    sim.stop().await;
}
