//! Label providers against the simulator (TikTok and label API on one
//! server, 127.0.0.1:0): one key buys one label, voids, fault and timeout
//! mapping, and TikTok shipping through the gateway.

#[path = "common/tiktok.rs"]
mod common;

use std::time::Duration;

use common::*;
use orderflow::order::Order;
use orderflow::shipping::labels::{CreateShipment, LabelAddress, Parcel};
use orderflow::shipping::{
    CarrierRouter, Error, ErrorKind, LabelApiClient, LabelProvider, LabelRequest, Selection,
    ShippingConfig,
};
use orderflow::simulator::{SimulatorArgs, SimulatorHandle};
use orderflow::tiktok::dto::WireOrder;
use orderflow::tiktok::{GatewayHandle, Priority, Secret};
use serde_json::{json, Value};

fn order() -> Order {
    let w: WireOrder = serde_json::from_value(json!({
        "id": "576461413038785752", "status": "AWAITING_SHIPMENT", "paid_time": 1764000000,
        "packages": [{"id": "1152921504606846976"}],
        "payment": {"currency": "USD", "total_amount": "42.00"},
        "recipient_address": {
            "name": "Ava Garcia", "address_line1": "12 Oak St", "postal_code": "78701",
            "region_code": "US", "phone_number": "+1 512 555 0100",
            "district_info": [{"address_name": "United States"}, {"address_name": "Texas"}, {"address_name": "Austin"}]
        },
        "line_items": [{"id": "1", "sku_id": "A"}, {"id": "2", "sku_id": "A"}]
    }))
    .unwrap();
    Order::from_wire("7494000000000000001", &w).unwrap()
}

fn selection(carrier: &str, service: Option<&str>) -> Selection {
    Selection {
        carrier: carrier.into(),
        service: service.map(str::to_string),
        shipping_provider_id: Some("6617675021119438849".into()),
        rule: None,
    }
}

fn cfg(sim: &SimulatorHandle, key: &str, timeout: Duration) -> ShippingConfig {
    ShippingConfig {
        label_api_url: format!("{}/labels/v1", sim.base_url()),
        label_api_key: Secret::new(key),
        label_api_timeout: timeout,
        ship_from: LabelAddress {
            name: "Sim Shop 1".into(),
            street1: "1 Warehouse Way".into(),
            city: "Austin".into(),
            state: "TX".into(),
            postal_code: "78702".into(),
            country: "US".into(),
            ..LabelAddress::default()
        },
        ..ShippingConfig::default()
    }
}

async fn label_ledger(sim: &SimulatorHandle) -> Value {
    sim_get(sim, "/sim/labels/ledger").await
}

async fn faults(sim: &SimulatorHandle, f: Value) {
    sim_post(sim, "/sim/labels/faults", f).await;
}

#[actix_rt::test]
async fn one_idempotency_key_buys_one_label_and_void_is_idempotent() {
    let sim = start_sim(SimulatorArgs {
        label_api_key: Some("lbl-key".into()),
        ..SimulatorArgs::default()
    })
    .await;
    let cfg = cfg(&sim, "lbl-key", Duration::from_secs(5));
    let provider = LabelProvider::label_api(&cfg).unwrap();
    let o = order();
    let router = CarrierRouter::new(&cfg).unwrap();
    let sel = selection("UPS", Some("Ground"));
    let req = LabelRequest {
        order: &o,
        selection: &sel,
        idempotency_key: "576461413038785752/buy_label",
        weight_grams: router.weight_grams(&o),
    };
    let a = provider.buy_label(&req).await.unwrap();
    let b = provider.buy_label(&req).await.unwrap();
    assert_eq!(a, b, "the replay returns the same label");
    assert_eq!(
        (a.carrier.as_str(), a.service.as_deref()),
        ("UPS", Some("Ground"))
    );
    assert!(a.tracking_number.starts_with("1Z"), "{a:?}");
    let pdf = reqwest::get(a.label_url.as_deref().unwrap()).await.unwrap();
    assert_eq!(pdf.status(), 200);
    assert!(pdf.text().await.unwrap().contains(&a.tracking_number));
    // 2 units × 500 g = 1000 g: 6.99 + 10 × 0.30.
    assert_eq!(a.cost.map(|m| m.to_string()).as_deref(), Some("9.99"));
    assert_eq!(
        a.shipping_provider_id.as_deref(),
        Some("6617675021119438849")
    );

    let l = label_ledger(&sim).await;
    assert_eq!(l["bought"], 1, "{l}");
    let actions: Vec<&str> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["buy", "buy_replayed"]);
    assert_eq!(
        l["entries"][0]["idempotency_key"],
        "576461413038785752/buy_label"
    );

    // A different key is a different purchase (for a new shipment).
    let c = provider
        .buy_label(&LabelRequest {
            idempotency_key: "576461413038785752/buy_label_2",
            ..req
        })
        .await
        .unwrap();
    assert_ne!(c.label_id, a.label_id);
    assert_eq!(label_ledger(&sim).await["bought"], 2);

    // No rate for the carrier: rejected, with what was offered.
    let e = provider
        .buy_label(&LabelRequest {
            selection: &selection("DHL", None),
            idempotency_key: "k-dhl",
            ..req
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoRate { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Rejected);
    assert!(e.to_string().contains("FedEx Express"), "{e}");

    // Void, void again (idempotent), void after the carrier scanned it.
    assert!(provider.void_label(&a.label_id).await.unwrap());
    assert!(provider.void_label(&a.label_id).await.unwrap());
    let l = label_ledger(&sim).await;
    assert_eq!(l["voided"], 1, "{l}");
    sim_post(
        &sim,
        "/sim/labels/scan",
        json!({"tracking_number": c.tracking_number, "status": "in_transit"}),
    )
    .await;
    let e = provider.void_label(&c.label_id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
    let e = provider.void_label("lbl_999999").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(label_ledger(&sim).await["voided"], 1);

    // The wrong API key is refused.
    let bad = LabelProvider::label_api(&ShippingConfig {
        label_api_key: Secret::new("wrong"),
        ..cfg.clone()
    })
    .unwrap();
    let e = bad.buy_label(&req).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Provider {
                status: Some(401),
                kind: ErrorKind::Rejected,
                ..
            }
        ),
        "{e}"
    );
    sim.stop().await;
}

#[actix_rt::test]
async fn faults_map_to_the_workflow_kinds() {
    let sim = start_sim(SimulatorArgs::default()).await;
    let client = LabelApiClient::new(
        &format!("{}/labels/v1", sim.base_url()),
        Secret::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let body = CreateShipment {
        reference: Some("o1".into()),
        to: LabelAddress {
            postal_code: "78701".into(),
            country: "US".into(),
            ..LabelAddress::default()
        },
        parcel: Parcel { weight_grams: 800 },
        ..CreateShipment::default()
    };
    for (status, kind) in [
        (503, ErrorKind::Transient),
        (500, ErrorKind::Transient),
        (429, ErrorKind::RateLimited),
        (422, ErrorKind::Invalid),
        (400, ErrorKind::Invalid),
        (401, ErrorKind::Rejected),
        (402, ErrorKind::Rejected),
        (404, ErrorKind::NotFound),
        (504, ErrorKind::Timeout),
    ] {
        faults(&sim, json!({"fail_next": 1, "fail_status": status})).await;
        let e = client.create_shipment(&body, None).await.unwrap_err();
        assert_eq!(e.kind(), kind, "HTTP {status}: {e}");
        assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
    }
    // The fault was used up: the next call succeeds.
    let s = client.create_shipment(&body, None).await.unwrap();
    assert_eq!(s.rates.len(), 6);

    // Business errors of the simulator map the same way.
    let e = client
        .create_shipment(&CreateShipment::default(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("invalid_address"), "{e}");
    let e = client.buy("shp_424242", "rate_x", "k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client.buy(&s.id, "rate_nope", "k1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    client.buy(&s.id, &s.rates[0].id, "k2").await.unwrap();
    // A key reused for another rate is refused, not silently bought.
    let e = client.buy(&s.id, &s.rates[1].id, "k2").await.unwrap_err();
    assert!(e.to_string().contains("idempotency_mismatch"), "{e}");
    // A second purchase of a bought shipment under a new key: conflict.
    let e = client.buy(&s.id, &s.rates[1].id, "k3").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected, "{e}");
    assert_eq!(label_ledger(&sim).await["bought"], 1);

    // Nothing listening: transient.
    let dead = LabelApiClient::new(
        "http://127.0.0.1:9/labels/v1",
        Secret::default(),
        Duration::from_secs(2),
    )
    .unwrap();
    let e = dead.create_shipment(&body, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    sim.stop().await;
}

#[actix_rt::test]
async fn a_timeout_maps_to_timeout_and_the_retry_gets_the_same_label() {
    let sim = start_sim(SimulatorArgs::default()).await;
    let cfg = cfg(&sim, "", Duration::from_millis(300));
    let provider = LabelProvider::label_api(&cfg).unwrap();
    let o = order();
    let sel = selection("USPS", None);
    let req = LabelRequest {
        order: &o,
        selection: &sel,
        idempotency_key: "576461413038785752/label",
        weight_grams: 1000,
    };
    // Every answer comes 800 ms late, after the work is done.
    faults(&sim, json!({"latency_ms": 800})).await;
    let started = std::time::Instant::now();
    let e = provider.buy_label(&req).await.unwrap_err();
    println!("timed out after {:?}: {e}", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(matches!(e, Error::Provider { status: None, .. }));
    // Let the simulator finish its (slow) work; the create-shipment call
    // timed out, so nothing was bought yet.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(label_ledger(&sim).await["bought"], 0);

    // Retry: the shipment call now succeeds, the buy times out — but the
    // label was bought server-side.
    faults(&sim, json!({"latency_ms": 0})).await;
    let client = LabelApiClient::new(
        &cfg.label_api_url,
        Secret::default(),
        Duration::from_millis(300),
    )
    .unwrap();
    let ship = client
        .create_shipment(
            &CreateShipment {
                reference: Some(o.id.clone()),
                from: cfg.ship_from.clone(),
                to: LabelAddress {
                    name: "Ava Garcia".into(),
                    street1: "12 Oak St".into(),
                    city: "Austin".into(),
                    state: "Texas".into(),
                    postal_code: "78701".into(),
                    country: "US".into(),
                    phone: "+1 512 555 0100".into(),
                    ..LabelAddress::default()
                },
                parcel: Parcel { weight_grams: 1000 },
            },
            Some("576461413038785752/label/shipment"),
        )
        .await
        .unwrap();
    faults(&sim, json!({"latency_ms": 800})).await;
    let cheapest_usps = ship
        .rates
        .iter()
        .filter(|r| r.carrier == "USPS")
        .min_by_key(|r| orderflow::order::Money::parse(&r.amount).unwrap())
        .unwrap()
        .id
        .clone();
    let e = client
        .buy(&ship.id, &cheapest_usps, "576461413038785752/label")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        label_ledger(&sim).await["bought"],
        1,
        "bought despite the timeout"
    );

    // The workflow's retry (same key, full provider path) gets that label.
    faults(&sim, json!({})).await;
    let label = provider.buy_label(&req).await.unwrap();
    let l = label_ledger(&sim).await;
    assert_eq!(l["bought"], 1, "{l}");
    assert_eq!(l["entries"][0]["label_id"], label.label_id.as_str());
    assert_eq!(l["entries"][1]["action"], "buy_replayed");
    sim.stop().await;
}

#[actix_rt::test]
async fn tiktok_shipping_ships_once_and_reads_the_tracking_number() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        manual_carrier: true,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let (order_id, package_id) =
        create_orders(&sim, json!({"shop_id": shop, "shipping_type": "TIKTOK"})).await[0].clone();
    let gw = GatewayHandle::start(&config(&sim, 50.0), sink()).unwrap();
    let o = gw
        .order_detail(&shop, &order_id, Priority::sync(None))
        .await
        .unwrap();
    let provider = LabelProvider::tiktok(gw.clone());
    let sel = selection("USPS", None);
    let req = LabelRequest {
        order: &o,
        selection: &sel,
        idempotency_key: "unused-by-tiktok",
        weight_grams: 500,
    };
    let a = provider.buy_label(&req).await.unwrap();
    assert_eq!(a.provider, "tiktok");
    assert_eq!(a.label_id, package_id);
    assert!(!a.tracking_number.is_empty());
    assert!(a.label_url.is_none());
    // A replay hits "already shipped" and reads the same tracking number.
    let b = provider.buy_label(&req).await.unwrap();
    assert_eq!(a, b);
    let ledger = sim_get(
        &sim,
        &format!("/sim/ledger?order_id={order_id}&action=ship"),
    )
    .await;
    let oks: Vec<bool> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, vec![true, false], "one real ship, one duplicate");
    let e = provider.void_label(&a.label_id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Rejected);
    // An order with no package cannot ship.
    let mut none = o.clone();
    none.packages.clear();
    let e = provider
        .buy_label(&LabelRequest {
            order: &none,
            ..req
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    sim.stop().await;
}
