//! Cancellations against real stock and real labels, 1,000 orders, 10%
//! cancelled. The workflow reserves stock while TikTok holds an order,
//! buys the label once the hold ends (TikTok hides the address before),
//! and ships when the warehouse says the parcel is packed.
//!
//! - The buyer cancels 5% during the hold: the reservation is released
//!   (the saga's compensation), no label was ever bought.
//! - The seller cancels another 5% with the label bought but the parcel not
//!   shipped (TikTok's simulator lets buyers cancel only on hold, so the
//!   operator's cancel action stands in): the label is voided and the
//!   reservation released.
//! - The other 900 ship, and the stock adds up exactly: on hand is what
//!   there was less what shipped, nothing stays reserved, available equals
//!   on hand.

mod common;

use common::free_addr;

use std::time::Duration;

use common::{eventually, get_json, post_json, sim_config, wait_ready, Inbox};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs};

const WORKFLOW: &str = r#"
name: prepare_on_hold
trigger:
  on: ON_HOLD
steps:
  - id: reserve
    call: inventory.reserve
    compensate:
      call: inventory.release
  - id: wait_release
    wait:
      until: "event.type == 'status' && event.status == 'AWAITING_SHIPMENT'"
      timeout: 30d
  - id: choose_carrier
    call: shipping.select_carrier
    with:
      default: USPS
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: "${{ steps.choose_carrier.carrier }}"
      service: "${{ steps.choose_carrier.service }}"
    retry:
      max_attempts: 5
      initial_delay: 1s
    compensate:
      call: shipping.void_label
      with:
        label_id: "${{ steps.buy_label.label_id }}"
  - id: wait_packed
    wait:
      until: "event.type == 'packed'"
      timeout: 30d
  - id: mark_shipped
    call: tiktok.mark_shipped
    with:
      tracking_number: "${{ steps.buy_label.tracking_number }}"
      shipping_provider_id: "${{ steps.buy_label.shipping_provider_id }}"
    retry:
      max_attempts: 8
      initial_delay: 1s
  - id: commit_stock
    call: inventory.commit
  - id: wait_delivery
    wait:
      until: "event.type == 'status' && event.status == 'DELIVERED'"
      timeout: 30d
  - id: done
    end: fulfilled
"#;

async fn stock(client: &reqwest::Client, base: &str, sku: &str) -> (u64, u64, u64) {
    let (st, v) = get_json(client, &format!("{base}/api/v1/inventory/{sku}")).await;
    assert_eq!(st, 200, "{v}");
    let t = (
        v["on_hand"].as_u64().unwrap(),
        v["reserved"].as_u64().unwrap(),
        v["available"].as_u64().unwrap(),
    );
    assert!(t.1 <= t.0 && t.2 == t.0 - t.1, "{v}");
    t
}

async fn order(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    get_json(client, &format!("{base}/api/v1/orders/{id}"))
        .await
        .1
}

#[actix_rt::test]
async fn cancellations_release_stock_and_void_labels_and_stock_adds_up() {
    const ORDERS: usize = 1000;
    let inbox = Inbox::start();
    let listen = free_addr();
    let sim = simulator::start(SimulatorArgs {
        app_key: "cx-app-key".into(),
        app_secret: "cx-app-secret".into(),
        access_token: "cx-access-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 100_000,
        // Holds last an hour of simulated time: as long as the test wants.
        time_scale: 1.0,
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
    let shop = shops["shops"][0]["id"].as_str().unwrap().to_string();
    let warehouse = shops["shops"][0]["warehouse_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two SKUs: one unit per order of the first, two of the second.
    let skus: Vec<(String, String, u64, u64)> = [(0usize, 1u64, 600u64), (1, 2, 1100)]
        .iter()
        .map(|&(i, qty, initial)| {
            (
                shops["skus"][i]["id"].as_str().unwrap().to_string(),
                shops["skus"][i]["product_id"].as_str().unwrap().to_string(),
                qty,
                initial,
            )
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("prepare.yaml"), WORKFLOW).unwrap();
    let mut cfg = sim_config(
        &sim,
        "cx-app-key",
        "cx-app-secret",
        "cx-access-token",
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
    cfg.notify.channels.insert(
        "default".into(),
        orderflow::notify::Secret::new(inbox.url()).into(),
    );
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&client, &base).await;

    let mut csv = String::from("sku_id,warehouse_id,on_hand,product_id\n");
    for (sku, product, _, initial) in &skus {
        csv.push_str(&format!("{sku},{warehouse},{initial},{product}\n"));
    }
    let r = client
        .post(format!("{base}/api/v1/inventory/import"))
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);

    // 1,000 orders, half of each SKU, all on hold.
    let mut ids: Vec<(String, usize)> = Vec::new();
    for (k, (sku, _, qty, _)) in skus.iter().enumerate() {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders"),
            &serde_json::json!({"items": [{"sku_id": sku, "quantity": qty}], "count": ORDERS / 2, "status": "ON_HOLD"}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        for o in v["orders"].as_array().unwrap() {
            ids.push((o["order_id"].as_str().unwrap().to_string(), k));
        }
    }
    assert_eq!(ids.len(), ORDERS);

    // Every order holds its stock and waits for the hold to end.
    wait_all(&client, &base, &ids, "wait_release").await;
    check_stock(&client, &base, &skus, &ids, &[]).await;
    // Nobody can take on hand below what orders hold.
    for body in [
        serde_json::json!({"warehouse_id": warehouse, "on_hand": 0}),
        // 600 on hand, 500 held: 101 fewer would leave 499.
        serde_json::json!({"warehouse_id": warehouse, "delta": -101}),
    ] {
        let (st, v) = post_json(
            &client,
            &format!("{base}/api/v1/inventory/{}", skus[0].0),
            &body,
        )
        .await;
        assert_eq!(st, 422, "{body} -> {v}");
    }
    check_stock(&client, &base, &skus, &ids, &[]).await;

    // The buyer cancels every twentieth order during the hold.
    let by_buyer: Vec<(String, usize)> = ids.iter().step_by(20).cloned().collect();
    for (id, _) in &by_buyer {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders/{id}/buyer_cancel"),
            &serde_json::json!({}),
        )
        .await;
        assert_eq!(st, 200, "{id}: {v}");
    }
    wait_cancelled(&client, &base, &by_buyer).await;
    check_stock(&client, &base, &skus, &ids, &by_buyer).await;
    assert_eq!(
        compensations(&client, &base, &by_buyer[0].0).await,
        ["inventory.release"]
    );

    // The holds end (an hour passes in under 2 s): labels for the 950
    // others, which then wait to be packed.
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/clock"),
        &serde_json::json!({"time_scale": 2000.0}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let live: Vec<(String, usize)> = ids
        .iter()
        .filter(|i| !by_buyer.contains(i))
        .cloned()
        .collect();
    wait_all(&client, &base, &live, "wait_packed").await;
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    assert_eq!(
        (labels["bought"].as_u64(), labels["voided"].as_u64()),
        (Some(live.len() as u64), Some(0)),
        "a label per order not cancelled on hold"
    );

    // The seller cancels 50 of them, label bought, parcel not shipped.
    let by_seller: Vec<(String, usize)> = ids.iter().skip(10).step_by(20).cloned().collect();
    for (id, _) in &by_seller {
        let (st, v) = post_json(
            &client,
            &format!("{base}/api/v1/orders/{id}/actions/cancel"),
            &serde_json::json!({"reason": "customer called", "cancel_reason": "buyer_requested"}),
        )
        .await;
        assert_eq!(st, 202, "{id}: {v}");
    }
    wait_cancelled(&client, &base, &by_seller).await;
    let cancelled: Vec<(String, usize)> = by_buyer.iter().chain(&by_seller).cloned().collect();
    assert_eq!(cancelled.len(), ORDERS / 10);
    check_stock(&client, &base, &skus, &ids, &cancelled).await;
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    assert_eq!(
        labels["voided"],
        by_seller.len(),
        "one void per label of a cancelled order"
    );
    assert_eq!(
        compensations(&client, &base, &by_seller[0].0).await,
        ["shipping.void_label", "inventory.release"]
    );

    // The warehouse packs the other 900: they ship.
    let shipping: Vec<(String, usize)> = live
        .iter()
        .filter(|i| !by_seller.contains(i))
        .cloned()
        .collect();
    for (id, _) in &shipping {
        let (st, v) = post_json(
            &client,
            &format!("{base}/api/v1/events"),
            &serde_json::json!({"id": format!("packed-{id}"), "shop_id": shop, "order_id": id, "signal": {"type": "packed"}}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    wait_all(&client, &base, &shipping, "wait_delivery").await;
    let (_, counts) = get_json(&client, &format!("{base}/api/v1/stats/lifecycle")).await;
    assert_eq!(
        counts["by_lifecycle"]["fulfilled"],
        shipping.len(),
        "{counts}"
    );
    assert_eq!(
        counts["by_lifecycle"]["cancelled"],
        cancelled.len(),
        "{counts}"
    );

    // TikTok saw exactly the 900 ships.
    let (_, ledger) = get_json(&client, &format!("{sim_url}/sim/ledger")).await;
    let shipped: std::collections::BTreeSet<String> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(e["action"].as_str(), Some("ship" | "mark_shipped")) && e["ok"] == true
        })
        .map(|e| e["order_id"].as_str().unwrap().to_string())
        .collect();
    let want: std::collections::BTreeSet<String> =
        shipping.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(shipped, want);

    // And the stock: on hand = initial - shipped units, nothing reserved.
    for (k, (sku, _, qty, initial)) in skus.iter().enumerate() {
        let out = shipping.iter().filter(|(_, s)| *s == k).count() as u64 * qty;
        assert_eq!(
            stock(&client, &base, sku).await,
            (initial - out, 0, initial - out),
            "{sku}"
        );
    }
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    assert_eq!(
        (labels["bought"].as_u64(), labels["voided"].as_u64()),
        (Some(950), Some(50))
    );
    assert!(inbox.attempts().is_empty());

    daemon.shutdown().await;
    sim.stop().await;
}

/// Waits until every order rests at `step` with nothing in flight.
async fn wait_all(client: &reqwest::Client, base: &str, ids: &[(String, usize)], step: &str) {
    for (id, _) in ids {
        eventually(Duration::from_secs(40), step, || {
            let (c, b) = (client.clone(), base.to_string());
            async move {
                let o = order(&c, &b, id).await;
                (o["step"] == step && o["in_flight"].as_array()?.is_empty()).then_some(())
            }
        })
        .await;
    }
}

async fn wait_cancelled(client: &reqwest::Client, base: &str, ids: &[(String, usize)]) {
    for (id, _) in ids {
        eventually(Duration::from_secs(30), "the order cancelled", || {
            let (c, b) = (client.clone(), base.to_string());
            async move {
                let o = order(&c, &b, id).await;
                (o["instance_state"] == "cancelled" && o["in_flight"].as_array()?.is_empty())
                    .then_some(())
            }
        })
        .await;
    }
}

/// Every order not cancelled holds its units; nothing has shipped yet.
async fn check_stock(
    client: &reqwest::Client,
    base: &str,
    skus: &[(String, String, u64, u64)],
    ids: &[(String, usize)],
    cancelled: &[(String, usize)],
) {
    for (k, (sku, _, qty, initial)) in skus.iter().enumerate() {
        let held = ids
            .iter()
            .filter(|i| i.1 == k && !cancelled.contains(i))
            .count() as u64;
        assert_eq!(
            stock(client, base, sku).await,
            (*initial, held * qty, initial - held * qty),
            "{sku}: {held} orders hold stock"
        );
    }
}

/// The actions an order's compensations ran, in order.
async fn compensations(client: &reqwest::Client, base: &str, id: &str) -> Vec<String> {
    let (_, audit) = get_json(client, &format!("{base}/api/v1/orders/{id}/audit")).await;
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let (_, a) = e["detail"].as_str()?.split_once(": compensated with ")?;
            Some(a.to_string())
        })
        .collect()
}
