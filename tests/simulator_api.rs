//! The simulator as TikTok: its checks reject what TikTok rejects, and the
//! client's endpoints, error mapping and token refresh work against it.

#[path = "common/tiktok.rs"]
mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use orderflow::order::{Order, TiktokStatus};
use orderflow::simulator::SimulatorArgs;
use orderflow::tiktok::dto::*;
use orderflow::tiktok::{sign, Client, Error, Secret, Shipment};
use serde_json::{json, Value};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends a hand-signed request: `sign_body` is what the signature covers,
/// `send_body` what actually goes out.
async fn raw(
    base: &str,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, String)],
    sign_body: &[u8],
    send_body: &[u8],
    token: &str,
) -> Value {
    let sig = sign::sign(
        "sim-app-secret",
        path,
        params.iter().map(|(k, v)| (*k, v.as_str())),
        Some(sign_body),
    );
    let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.query_pairs_mut().append_pair("sign", &sig);
    reqwest::Client::new()
        .request(method, url)
        .header("x-tts-access-token", token)
        .header("content-type", "application/json")
        .body(send_body.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[actix_rt::test]
async fn simulator_rejects_tampered_bodies_stale_timestamps_and_bad_credentials() {
    let sim = start_sim(SimulatorArgs::default()).await;
    let base = sim.base_url();
    let cipher = sim.shops()[0].1.clone();
    let path = "/order/202309/orders/search";
    let params = |ts: i64| {
        vec![
            ("app_key", "sim-app-key".to_string()),
            ("timestamp", ts.to_string()),
            ("shop_cipher", cipher.clone()),
            ("page_size", "10".to_string()),
        ]
    };
    let body = br#"{"order_status":"AWAITING_SHIPMENT"}"#;
    let ok = raw(
        &base,
        reqwest::Method::POST,
        path,
        &params(now()),
        body,
        body,
        "sim-access-token",
    )
    .await;
    assert_eq!(ok["code"], 0, "{ok}");
    assert!(ok["data"]["orders"].is_array());

    // The body changed after signing.
    let changed = br#"{"order_status":"AWAITING_COLLECTION"}"#;
    let r = raw(
        &base,
        reqwest::Method::POST,
        path,
        &params(now()),
        body,
        changed,
        "sim-access-token",
    )
    .await;
    assert_eq!(r["code"], 106001, "{r}");

    // Correctly signed, but outside [now - 5 min, now + 30 s].
    for ts in [now() - 301 - 5, now() + 31 + 5] {
        let r = raw(
            &base,
            reqwest::Method::POST,
            path,
            &params(ts),
            body,
            body,
            "sim-access-token",
        )
        .await;
        assert_eq!(r["code"], 36009004, "timestamp {ts}: {r}");
    }
    // Inside the window at both edges (with a little slack for the clock).
    for ts in [now() - 295, now() + 25] {
        let r = raw(
            &base,
            reqwest::Method::POST,
            path,
            &params(ts),
            body,
            body,
            "sim-access-token",
        )
        .await;
        assert_eq!(r["code"], 0, "timestamp {ts}: {r}");
    }
    // Unknown token, missing cipher, unexpected cipher on /authorization.
    let r = raw(
        &base,
        reqwest::Method::POST,
        path,
        &params(now()),
        body,
        body,
        "nope",
    )
    .await;
    assert_eq!(r["code"], 36009004, "{r}");
    let no_cipher: Vec<_> = params(now())
        .into_iter()
        .filter(|(k, _)| *k != "shop_cipher")
        .collect();
    let r = raw(
        &base,
        reqwest::Method::POST,
        path,
        &no_cipher,
        body,
        body,
        "sim-access-token",
    )
    .await;
    assert_eq!(r["code"], 106013, "{r}");
    let shops = raw(
        &base,
        reqwest::Method::GET,
        "/authorization/202309/shops",
        &params(now()),
        b"",
        b"",
        "sim-access-token",
    )
    .await;
    assert_eq!(shops["code"], 36009004, "{shops}");
    let (total, ok_n, _, _, rejected) = endpoint_stats(&sim, "search_orders").await;
    assert_eq!((total, ok_n, rejected), (8, 3, 5));
    sim.stop().await;
}

#[actix_rt::test]
async fn client_endpoints_round_trip_and_shipping_is_idempotent() {
    let sim = start_sim(SimulatorArgs {
        manual_carrier: true,
        ..SimulatorArgs::default()
    })
    .await;
    let cfg = config(&sim, 50.0);
    let shop = cfg.shops[0].id.clone();
    let client = Client::new(&cfg, sink()).unwrap();

    // The cipher is fetched from authorized shops on first use.
    let shops = client.authorized_shops(&shop).await.unwrap();
    assert_eq!(shops.len(), 2);
    assert_eq!(shops[0].cipher, sim.shops()[0].1);

    let sku_a = "1730000000000000101";
    let orders = create_orders(
        &sim,
        json!({"shop_id": shop, "count": 3,
        "items": [{"sku_id": sku_a, "quantity": 2}, {"sku_id": "CUSTOM-1", "quantity": 1}]}),
    )
    .await;
    let ids: Vec<String> = orders.iter().map(|o| o.0.clone()).collect();

    // Search with pagination covers all three exactly once.
    let mut seen = Vec::new();
    let mut page = SearchOrdersPage {
        page_size: 2,
        ..Default::default()
    };
    loop {
        let d = client
            .search_orders(
                &shop,
                &SearchOrdersFilter {
                    order_status: Some("AWAITING_SHIPMENT".into()),
                    ..Default::default()
                },
                &page,
            )
            .await
            .unwrap();
        assert_eq!(d.total_count, 3);
        seen.extend(d.orders.into_iter().map(|o| o.id));
        if d.next_page_token.is_empty() {
            break;
        }
        page.page_token = Some(d.next_page_token);
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);

    // Detail converts into the domain order: one line item per unit.
    let wire = client.order_detail(&shop, &ids).await.unwrap();
    assert_eq!(wire.len(), 3);
    let o = Order::from_wire(&shop, &wire[0]).unwrap();
    assert_eq!(o.status, TiktokStatus::AwaitingShipment);
    assert_eq!(o.units_by_sku().get(sku_a), Some(&2));
    assert_eq!(o.line_items.len(), 3);
    let p = &o.payment;
    assert_eq!(
        p.sub_total.0,
        p.original_total_product_price.0 - p.seller_discount.0 - p.platform_discount.0
    );
    assert_eq!(p.total_amount.0, p.sub_total.0 + p.shipping_fee.0 + p.tax.0);
    assert!(o.recipient.is_some());
    assert!(o.deadlines.ship_by().is_some());

    // Ship once, then again: the second is "already shipped", a success.
    let (oid, pkg) = &orders[0];
    let ship = ShipPackageRequest {
        self_shipment: Some(SelfShipment {
            tracking_number: "1Z999".into(),
            shipping_provider_id: "6617675021119438850".into(),
        }),
        ..Default::default()
    };
    assert_eq!(
        client.ship_package(&shop, pkg, &ship).await.unwrap(),
        Shipment::Shipped(())
    );
    assert!(client
        .ship_package(&shop, pkg, &ship)
        .await
        .unwrap()
        .is_already_shipped());
    let ledger = sim_get(&sim, &format!("/sim/ledger?order_id={oid}&action=ship")).await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries.iter().filter(|e| e["ok"] == true).count(), 1);
    assert_eq!(entries[1]["code"], 11006021);
    let truth = sim_get(&sim, &format!("/sim/orders/{oid}")).await;
    assert_eq!(truth["status"], "AWAITING_COLLECTION");
    assert_eq!(truth["order"]["tracking_number"], "1Z999");

    // Tracking update, carrier steps.
    client
        .update_shipping_info(
            &shop,
            oid,
            &UpdateShippingInfoRequest {
                tracking_number: "1Z1000".into(),
                shipping_provider_id: "6617675021119438849".into(),
            },
        )
        .await
        .unwrap();
    let adv = sim_post(
        &sim,
        "/sim/carrier",
        json!({"order_ids": [oid], "to": "DELIVERED"}),
    )
    .await;
    assert_eq!(adv["advanced"][0]["status"], "DELIVERED");
    let d = client
        .order_detail(&shop, std::slice::from_ref(oid))
        .await
        .unwrap();
    assert_eq!(d[0].status, "DELIVERED");
    assert_eq!(d[0].tracking_number.as_deref(), Some("1Z1000"));

    // Mark-as-shipped on the second order, twice.
    let mark = MarkShippedRequest {
        tracking_number: "TN2".into(),
        shipping_provider_id: "6617675021119438849".into(),
        order_line_item_ids: vec![],
    };
    match client
        .mark_package_shipped(&shop, &orders[1].0, &mark)
        .await
        .unwrap()
    {
        Shipment::Shipped(d) => assert_eq!(d.package_id, orders[1].1),
        s => panic!("{s:?}"),
    }
    assert!(client
        .mark_package_shipped(&shop, &orders[1].0, &mark)
        .await
        .unwrap()
        .is_already_shipped());

    // Reasons as TikTok takes them: a key no market lists (the old
    // default) is unknown (25001014); an unpaid-order key on a paid order
    // and a UK key on a US shop do not match (25001021).
    for (reason, code) in [
        ("seller_cancel_reason_other", 25001014),
        ("seller_cancel_unpaid_reason_out_of_stock", 25001021),
        ("seller_cancel_reason_out_of_stock_uk", 25001021),
    ] {
        let wrong = CancelOrderRequest {
            order_id: orders[2].0.clone(),
            cancel_reason: reason.into(),
            ..Default::default()
        };
        match client.cancel_order(&shop, &wrong).await {
            Err(Error::Api { code: c, .. }) if c == code => {}
            r => panic!("{reason}: {r:?}"),
        }
    }
    // Seller cancel, then cancelling again is a business error, not retried.
    let cancel = CancelOrderRequest {
        order_id: orders[2].0.clone(),
        cancel_reason: "seller_cancel_reason_out_of_stock".into(),
        ..Default::default()
    };
    assert_eq!(
        client
            .cancel_order(&shop, &cancel)
            .await
            .unwrap()
            .cancel_status,
        "CANCELLATION_REQUEST_SUCCESS"
    );
    match client.cancel_order(&shop, &cancel).await {
        Err(Error::Api { code: 25001051, .. }) => {}
        r => panic!("{r:?}"),
    }
    let shipped_after_cancel = client
        .ship_package(&shop, &orders[2].1, &ShipPackageRequest::default())
        .await;
    assert!(
        matches!(shipped_after_cancel, Err(Error::Api { .. })),
        "{shipped_after_cancel:?}"
    );

    // Inventory update and search.
    let product = "1729000000000000001";
    let warehouse = sim_get(&sim, "/sim/shops").await["shops"][0]["warehouse_id"]
        .as_str()
        .unwrap()
        .to_string();
    let upd = UpdateInventoryRequest {
        skus: vec![SkuInventory {
            id: sku_a.into(),
            inventory: vec![WarehouseQuantity {
                warehouse_id: warehouse.clone(),
                quantity: 42,
            }],
        }],
    };
    assert!(client
        .update_inventory(&shop, product, &upd)
        .await
        .unwrap()
        .errors
        .is_empty());
    let bad = UpdateInventoryRequest {
        skus: vec![SkuInventory {
            id: "1730000000000000201".into(),
            inventory: vec![],
        }],
    };
    assert_eq!(
        client
            .update_inventory(&shop, product, &bad)
            .await
            .unwrap()
            .errors
            .len(),
        1
    );
    let inv = client
        .inventory_search(
            &shop,
            &InventorySearchRequest {
                sku_ids: vec![sku_a.into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(inv.inventory[0].skus[0].total_available_quantity, 42);
    let ledger = sim_get(&sim, "/sim/ledger?action=inventory_update").await;
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 2);

    // Providers and webhook registration.
    assert_eq!(
        client
            .shipping_providers(&shop, "7091146663229654785")
            .await
            .unwrap()
            .len(),
        3
    );
    client
        .put_webhook(
            &shop,
            &UpdateWebhookRequest {
                address: "https://example.com/hook".into(),
                event_type: "ORDER_STATUS_CHANGE".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.webhooks(&shop).await.unwrap()[0].address,
        "https://example.com/hook"
    );
    client
        .delete_webhook(&shop, "ORDER_STATUS_CHANGE")
        .await
        .unwrap();
    assert!(client.webhooks(&shop).await.unwrap().is_empty());

    // A token from the auth host.
    let t = client.get_token("code-1").await.unwrap();
    assert!(t.access_token.starts_with("sim-at-"));
    assert!(matches!(
        client.get_token("code-1").await,
        Err(Error::TokenRefresh { code: 36004005, .. })
    ));
    sim.stop().await;
}

#[actix_rt::test]
async fn expired_token_is_refreshed_once_for_concurrent_callers() {
    let sim = start_sim(SimulatorArgs::default()).await;
    let cfg = config(&sim, 50.0);
    let shop = cfg.shops[0].id.clone();
    let tokens = sink();
    let client = Client::new(&cfg, tokens.clone()).unwrap();
    let ids: Vec<String> = create_orders(&sim, json!({"shop_id": shop, "count": 20}))
        .await
        .into_iter()
        .map(|o| o.0)
        .collect();
    // Warm up (fetches the cipher), then expire every token.
    client.order_detail(&shop, &ids[..1]).await.unwrap();
    assert_eq!(
        sim_post(&sim, "/sim/tokens/expire", json!({})).await["expired"],
        1
    );

    let calls = ids.iter().map(|id| {
        let (c, s, id) = (client.clone(), shop.clone(), id.clone());
        async move { c.order_detail(&s, &[id]).await }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().len(), 1);
    }
    let refreshed = tokens.0.lock().clone();
    assert_eq!(refreshed.len(), 1, "exactly one refresh");
    assert_eq!(refreshed[0].0, shop);
    assert_eq!(
        client.tokens(&shop).unwrap().access_token,
        Secret::new(refreshed[0].1.clone())
    );
    assert_ne!(refreshed[0].1, "sim-access-token");
    let (total, ok, ..) = endpoint_stats(&sim, "token_refresh").await;
    assert_eq!((total, ok), (1, 1));
    sim.stop().await;
}

#[actix_rt::test]
async fn credential_errors_are_fatal_and_transient_errors_respect_the_budget() {
    let sim = start_sim(SimulatorArgs::default()).await;
    let mut cfg = config(&sim, 50.0);
    cfg.shops[0].cipher = Some(sim.shops()[0].1.clone());
    let shop = cfg.shops[0].id.clone();

    let mut wrong = cfg.clone();
    wrong.app_secret = Secret::new("not-the-secret");
    let c = Client::new(&wrong, sink()).unwrap();
    let e = c.order_detail(&shop, &["1".into()]).await.unwrap_err();
    assert!(matches!(e, Error::Config { code: 106001, .. }), "{e:?}");
    assert!(e.is_fatal());
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));
    let (total, ..) = endpoint_stats(&sim, "order_detail").await;
    assert_eq!(total, 1, "a signature error is not retried");

    cfg.max_attempts = 3;
    let c = Client::new(&cfg, sink()).unwrap();
    sim_post(&sim, "/sim/faults", json!({"error_rate": 1.0})).await;
    let e = c.order_detail(&shop, &["1".into()]).await.unwrap_err();
    assert!(
        matches!(e, Error::RetriesExhausted { attempts: 3, .. }),
        "{e:?}"
    );
    let (total, _, _, faulted, _) = endpoint_stats(&sim, "order_detail").await;
    assert_eq!((total, faulted), (4, 3));

    // Transient faults that clear up are absorbed.
    sim_post(&sim, "/sim/faults", json!({"error_rate": 0.5})).await;
    let ids: Vec<String> = create_orders(&sim, json!({"shop_id": shop, "count": 10}))
        .await
        .into_iter()
        .map(|o| o.0)
        .collect();
    let mut cfg8 = cfg.clone();
    cfg8.max_attempts = 12;
    let c = Client::new(&cfg8, sink()).unwrap();
    for id in &ids {
        assert_eq!(
            c.order_detail(&shop, std::slice::from_ref(id))
                .await
                .unwrap()[0]
                .id,
            *id
        );
    }
    sim.stop().await;
}

/// A webhook receiver answering 500 to the first push of every
/// notification and 200 afterwards.
async fn receiver() -> (
    String,
    std::sync::Arc<parking_lot::Mutex<Vec<(Vec<u8>, String)>>>,
    actix_web::dev::ServerHandle,
) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    type Got = std::sync::Arc<parking_lot::Mutex<Vec<(Vec<u8>, String)>>>;
    let got: Got = Default::default();
    let g = got.clone();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let g = g.clone();
            async move {
                let auth = req
                    .headers()
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut v = g.lock();
                let first = !v.iter().any(|(b, _)| *b == body.to_vec());
                v.push((body.to_vec(), auth));
                if first {
                    HttpResponse::InternalServerError().finish()
                } else {
                    HttpResponse::Ok().finish()
                }
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(l)
    .unwrap()
    .run();
    let h = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}/hook"), got, h)
}

#[actix_rt::test]
async fn lifecycle_runs_on_the_scaled_clock_and_webhooks_are_signed_and_retried() {
    let (url, got, rh) = receiver().await;
    let sim = start_sim(SimulatorArgs {
        webhook_url: Some(url),
        time_scale: 3600.0, // one simulated hour per real second
        manual_carrier: true,
        buyer_cancel_rate: 0.0,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let unpaid = create_orders(
        &sim,
        json!({"shop_id": shop, "status": "UNPAID", "shipping_type": "TIKTOK"}),
    )
    .await;
    let held = create_orders(&sim, json!({"shop_id": shop, "status": "ON_HOLD"})).await;
    let (oid, pkg) = unpaid[0].clone();

    // The buyer cancels the second during its hold; after the hold nothing
    // the buyer does counts.
    sim_post(
        &sim,
        &format!("/sim/orders/{}/buyer_cancel", held[0].0),
        json!({}),
    )
    .await;

    // UNPAID → ON_HOLD (+2 simulated minutes) → AWAITING_SHIPMENT (+1 h).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = sim_get(&sim, &format!("/sim/orders/{oid}")).await;
        if s["status"] == "AWAITING_SHIPMENT" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "order stuck in {}",
            s["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // After the hold the buyer can only ask, once; the order stands.
    let ask = || {
        reqwest::Client::new()
            .post(format!("{}/sim/orders/{oid}/buyer_cancel", sim.base_url()))
            .send()
    };
    assert_eq!(ask().await.unwrap().status(), 200);
    let s = sim_get(&sim, &format!("/sim/orders/{oid}")).await;
    assert_eq!(
        (&s["status"], &s["order"]["is_buyer_request_cancel"]),
        (&json!("AWAITING_SHIPMENT"), &json!(true))
    );
    assert_eq!(ask().await.unwrap().status(), 409);

    let mut cfg = config(&sim, 50.0);
    cfg.shops.truncate(1);
    let client = Client::new(&cfg, sink()).unwrap();
    assert!(!client
        .ship_package(&shop, &pkg, &ShipPackageRequest::default())
        .await
        .unwrap()
        .is_already_shipped());
    // A US shop's shipment closes the request.
    let s = sim_get(&sim, &format!("/sim/orders/{oid}")).await;
    assert_eq!(s["order"]["is_buyer_request_cancel"], false);
    for to in ["IN_TRANSIT", "DELIVERED", "COMPLETED"] {
        sim_post(&sim, "/sim/carrier", json!({"order_ids": [oid], "to": to})).await;
    }

    // Every push arrives signed; each was refused once and retried
    // (+2 simulated minutes = 33 ms here).
    let want_statuses = [
        "UNPAID",
        "ON_HOLD",
        "AWAITING_SHIPMENT",
        "AWAITING_COLLECTION",
        "IN_TRANSIT",
        "DELIVERED",
        "COMPLETED",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let v = got.lock().clone();
        let mut events = Vec::new();
        for (body, auth) in &v {
            let ev = orderflow::tiktok::webhook::verify_and_parse(
                "sim-app-key",
                "sim-app-secret",
                body,
                auth,
            )
            .expect("signed push");
            events.push(ev);
        }
        let delivered_twice = events
            .iter()
            .filter(|e| e.order_id() == Some(oid.as_str()))
            .count()
            >= 2 * want_statuses.len();
        if delivered_twice {
            break events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pushes so far: {}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut statuses: Vec<(i64, String)> = Vec::new();
    let mut ids = std::collections::HashMap::<String, usize>::new();
    for e in &events {
        *ids.entry(e.notification_id.clone().unwrap()).or_default() += 1;
        if let orderflow::tiktok::webhook::Topic::OrderStatusChange(d) = &e.topic {
            if d.order_id == oid && !statuses.iter().any(|(_, s)| *s == d.order_status) {
                statuses.push((e.timestamp, d.order_status.clone()));
            }
            if d.order_id == held[0].0 && d.status() == Some(TiktokStatus::Cancelled) {
                assert_eq!(d.order_status, "CANCEL", "topic 1 spells it CANCEL");
            }
        }
    }
    assert_eq!(
        statuses.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        want_statuses
    );
    assert!(ids.values().all(|n| *n <= 2), "{ids:?}");
    let deliveries = sim_get(&sim, "/sim/webhooks").await;
    let d = deliveries["deliveries"].as_array().unwrap();
    assert!(d
        .iter()
        .any(|x| x["outcome"] == "failed" && x["attempt"] == 0 && x["http_status"] == 500));
    assert!(d
        .iter()
        .any(|x| x["outcome"] == "delivered" && x["attempt"] == 1));
    sim.stop().await;
    rh.stop(true).await;
}
