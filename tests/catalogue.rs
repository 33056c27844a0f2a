//! The catalogue is read from TikTok's Product API (Search Products 202502,
//! Get Product 202309) for every connected shop, over HTTP against the
//! simulator: names, variants, images and prices show on the SKUs, the
//! order's line items and the stock list; a product webhook reads one
//! product again; and every SKU a shop lists is one its inventory push
//! carries.

mod common;

use std::time::Duration;

use common::{eventually, get_json, post_json, wait_ready};
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::json;

#[actix_rt::test]
async fn every_shops_catalogue_is_read_and_shown() {
    let rig = common::sim_rig(
        "cat",
        SimulatorArgs {
            shops: 2,
            ..Default::default()
        },
        50.0,
        ("hold_still.yaml", common::WAIT_WORKFLOW),
    )
    .await;
    let c = reqwest::Client::new();
    let daemon = orderflow::daemon::Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let sim = rig.sim.base_url();
    let (_, shops) = get_json(&c, &format!("{sim}/sim/shops")).await;
    let sku = shops["skus"][0]["id"].as_str().unwrap().to_string();
    let (a, b) = (rig.sim.shops()[0].0.clone(), rig.sim.shops()[1].0.clone());

    // Read at connect (start), both shops, without anyone asking.
    let info = eventually(Duration::from_secs(20), "the catalogue read", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/catalogue/{sku}"));
        async move {
            let (st, v) = get_json(&c, &u).await;
            (st == 200 && v["shops"].as_array().is_some_and(|s| s.len() == 2) && v["variant"] != "")
                .then_some(v)
        }
    })
    .await;
    assert_eq!(info["product_title"], "Cotton T-Shirt", "{info}");
    assert_eq!(info["variant"], "Variant: S", "{info}");
    assert_eq!(info["name"], "Cotton T-Shirt (Variant: S)", "{info}");
    assert_eq!(
        (info["price"].as_str(), info["currency"].as_str()),
        (Some("19.99"), Some("USD"))
    );
    assert!(
        info["image_url"].as_str().unwrap().starts_with("https://"),
        "{info}"
    );
    // Every simulated SKU, read in full for both shops.
    eventually(Duration::from_secs(20), "the whole catalogue read", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/catalogue?limit=500"));
        async move {
            let (_, all) = get_json(&c, &u).await;
            let skus = all["skus"].as_array()?.clone();
            (skus.len() == 15
                && skus.iter().all(|s| {
                    s["variant"] != "" && s["shops"].as_array().is_some_and(|x| x.len() == 2)
                }))
            .then_some(())
        }
    })
    .await;

    // On demand, for one shop: one page, products read in full only when
    // they changed since (they did not).
    let (st, r) = post_json(
        &c,
        &format!("{base}/api/v1/catalogue/sync?shop={a}"),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["synced"][0]["products"], 5, "{r}");
    // Once read in full, a product is not read again until it changes.
    let (_, again) = post_json(
        &c,
        &format!("{base}/api/v1/catalogue/sync?shop={a}"),
        &json!({}),
    )
    .await;
    assert_eq!(
        again["synced"][0]["detailed"], 0,
        "nothing changed: {again}"
    );
    // Calls went at background priority through each shop's own limiter.
    let (_, stats) = get_json(&c, &format!("{sim}/sim/stats")).await;
    assert!(
        stats["endpoints"]["search_products"]["ok"]
            .as_u64()
            .unwrap()
            >= 3,
        "{stats}"
    );
    assert!(
        stats["endpoints"]["get_product"]["ok"].as_u64().unwrap() >= 10,
        "{stats}"
    );

    // The SKU shows with its name on an order and in the stock list.
    let ids = common::sim_orders_in(&c, &sim, &b, "AWAITING_SHIPMENT", 1).await;
    let o = eventually(Duration::from_secs(20), "the order", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{}", ids[0]));
        async move {
            let (st, v) = get_json(&c, &u).await;
            (st == 200 && v["line_items"].as_array().is_some_and(|l| !l.is_empty())).then_some(v)
        }
    })
    .await;
    let li = &o["line_items"][0];
    assert!(
        li["image_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{o}"
    );
    assert!(
        li["variant"]
            .as_str()
            .is_some_and(|v| v.starts_with("Variant: ")),
        "{o}"
    );
    let (st, _) = post_json(
        &c,
        &format!("{base}/api/v1/inventory/{sku}"),
        &json!({"on_hand": 3}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, stock) = get_json(&c, &format!("{base}/api/v1/inventory")).await;
    let row = stock["skus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sku"] == sku)
        .unwrap()
        .clone();
    assert_eq!(row["name"], "Cotton T-Shirt (Variant: S)", "{row}");
    // And among the top SKUs of the figures.
    let (_, figures) = get_json(&c, &format!("{base}/api/v1/stats")).await;
    assert_eq!(
        figures["top_sku_names"][&sku]["name"], "Cotton T-Shirt (Variant: S)",
        "{figures}"
    );

    // A product webhook (PRODUCT_INFORMATION_CHANGE, type 15) reads that
    // product again.
    let before = stats["endpoints"]["get_product"]["ok"].as_u64().unwrap();
    let product = shops["skus"][0]["product_id"].as_str().unwrap().to_string();
    let (st, v) = post_json(
        &c,
        &format!("{sim}/sim/webhooks/push"),
        &json!({"shop_id": a, "type": 15, "data": {"product_id": product, "change_source": "SELLER_CENTER", "changed_fields": ["title"], "update_time": 1_700_000_100}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    eventually(Duration::from_secs(15), "the product read again", || {
        let (c, u) = (c.clone(), format!("{sim}/sim/stats"));
        async move {
            let (_, s) = get_json(&c, &u).await;
            (s["endpoints"]["get_product"]["ok"].as_u64().unwrap_or(0) > before).then_some(())
        }
    })
    .await;
    daemon.shutdown().await;
}

#[actix_rt::test]
async fn a_catalogue_beyond_the_search_cap_is_read_in_windows_of_creation_time() {
    let rig = common::sim_rig(
        "capped",
        SimulatorArgs {
            shops: 1,
            ..Default::default()
        },
        // Below the simulator's 50 calls per second per shop, as a real
        // seller's gateway is set below TikTok's limit: a gateway set above
        // it lives on retries and can run out of them.
        45.0,
        ("hold_still.yaml", common::WAIT_WORKFLOW),
    )
    .await;
    let c = reqwest::Client::new();
    let sim = rig.sim.base_url();
    // 250 more products, one created a minute; the simulator's Search
    // Products pages through at most 100 results of one query (TikTok's cap
    // is 10,000, code 12052180), so one walk cannot read them all.
    let (st, v) = post_json(
        &c,
        &format!("{sim}/sim/skus"),
        &json!({"generate": {"products": 250, "skus_per_product": 1}, "search_limit": 100}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let daemon = orderflow::daemon::Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let shop = rig.sim.shops()[0].0.clone();
    let c2 = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (st, r) = post_json(
        &c2,
        &format!("{base}/api/v1/catalogue/sync?shop={shop}"),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let report = &r["synced"][0];
    assert!(report["windows"].as_u64().unwrap_or(0) >= 1, "{r}");
    // Every product read once per sync (5 built-in, 250 generated).
    assert_eq!(report["products"], 255, "{r}");
    for sku in [
        "1732000000000001001",
        "1732000000000125001",
        "1732000000000250001",
    ] {
        let (st, v) = get_json(&c, &format!("{base}/api/v1/catalogue/{sku}")).await;
        assert_eq!(st, 200, "{sku}: {v}");
    }
    let (_, stats) = get_json(&c, &format!("{sim}/sim/stats")).await;
    assert!(
        stats["endpoints"]["search_products"]["rejected"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the cap was met and the walk split: {stats}"
    );
}
