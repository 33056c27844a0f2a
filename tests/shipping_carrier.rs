//! Carrier selection: CEL rules, region, weight, value and deadline
//! conditions, first match wins, the default otherwise.

use orderflow::order::Order;
use orderflow::shipping::{select_carrier, CarrierRouter, CarrierRule, ErrorKind, ShippingConfig};
use orderflow::tiktok::dto::WireOrder;
use serde_json::json;

const NOW: i64 = 1_764_000_000;

/// An order to Austin, Texas: `units` of SKU A, total `total`, ship-by
/// `ship_by_in` seconds from NOW.
fn order(units: usize, total: &str, ship_by_in: i64, state: &str) -> Order {
    let items: Vec<_> = (0..units)
        .map(|i| json!({"id": format!("li{i}"), "sku_id": "A", "sale_price": "10.00"}))
        .collect();
    let w: WireOrder = serde_json::from_value(json!({
        "id": "576461413038785752", "status": "AWAITING_SHIPMENT",
        "paid_time": NOW - 7200, "create_time": NOW - 7200, "update_time": NOW - 3600,
        "rts_sla_time": NOW + ship_by_in,
        "packages": [{"id": "1152921504606846976"}],
        "payment": {"currency": "USD", "total_amount": total, "sub_total": total},
        "recipient_address": {
            "name": "Ava Garcia", "address_line1": "12 Oak St", "postal_code": "78701",
            "region_code": "US",
            "district_info": [
                {"address_level_name": "Country", "address_name": "United States"},
                {"address_level_name": "State", "address_name": state},
                {"address_level_name": "City", "address_name": "Austin"}
            ]
        },
        "line_items": items
    }))
    .unwrap();
    Order::from_wire("7494000000000000001", &w).unwrap()
}

fn rule(carrier: &str, service: &str) -> CarrierRule {
    CarrierRule {
        carrier: carrier.into(),
        service: Some(service.into()),
        ..CarrierRule::default()
    }
}

#[test]
fn cel_rules_pick_the_first_match_else_the_default() {
    let rules = vec![
        CarrierRule {
            when: Some("order.payment.total_amount >= 100.0".into()),
            ..rule("UPS", "2ndDayAir")
        },
        CarrierRule {
            when: Some("order.item_count > 2 && order.recipient.region_code == 'US'".into()),
            ..rule("FedEx", "Ground")
        },
        CarrierRule {
            // Never reached for big orders: the first rule wins.
            when: Some("order.payment.total_amount >= 50.0".into()),
            ..rule("USPS", "Priority")
        },
    ];
    let big = select_carrier(&rules, "USPS", &order(1, "150.00", 86_400, "Texas")).unwrap();
    assert_eq!(
        (big.carrier.as_str(), big.service.as_deref(), big.rule),
        ("UPS", Some("2ndDayAir"), Some(0))
    );
    let many = select_carrier(&rules, "USPS", &order(3, "30.00", 86_400, "Texas")).unwrap();
    assert_eq!((many.carrier.as_str(), many.rule), ("FedEx", Some(1)));
    let mid = select_carrier(&rules, "USPS", &order(1, "60.00", 86_400, "Texas")).unwrap();
    assert_eq!((mid.carrier.as_str(), mid.rule), ("USPS", Some(2)));
    let small = select_carrier(&rules, "DHL", &order(1, "20.00", 86_400, "Texas")).unwrap();
    assert_eq!(
        (small.carrier.as_str(), small.service, small.rule),
        ("DHL", None, None)
    );
}

#[test]
fn config_rules_by_region_weight_value_and_deadline() {
    let cfg: ShippingConfig = toml::from_str(
        r#"
        default_carrier = "USPS"
        default_service = "GroundAdvantage"
        default_item_weight_grams = 400
        sku_weights_grams = { HEAVY = 5000 }
        provider_ids = { UPS = "6617675021119438850", USPS = "6617675021119438849" }

        [[rules]]
        ship_within = "12h"
        carrier = "FedEx"
        service = "Express"
        shipping_provider_id = "6617675021119438851"

        [[rules]]
        regions = ["alaska", "HI"]
        carrier = "USPS"
        service = "Priority"

        [[rules]]
        min_weight_grams = 2000
        carrier = "UPS"
        service = "Ground"

        [[rules]]
        min_value = "200.00"
        max_value = "999.99"
        postal_prefixes = ["787"]
        carrier = "UPS"
        service = "2ndDayAir"

        [[rules]]
        when = "order.weight_grams <= 400"
        carrier = "USPS"
        service = "GroundAdvantage"
        "#,
    )
    .unwrap();
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    let router = CarrierRouter::new(&cfg).unwrap();

    // Due in 6 h: express, whatever else holds; its own provider id.
    let s = router
        .select(&order(9, "500.00", 6 * 3600, "Texas"), NOW)
        .unwrap();
    assert_eq!(
        (
            s.carrier.as_str(),
            s.service.as_deref(),
            s.shipping_provider_id.as_deref()
        ),
        ("FedEx", Some("Express"), Some("6617675021119438851"))
    );
    // Region by district name, case-insensitive.
    let s = router
        .select(&order(1, "10.00", 86_400, "Alaska"), NOW)
        .unwrap();
    assert_eq!(
        (s.carrier.as_str(), s.service.as_deref()),
        ("USPS", Some("Priority"))
    );
    // 5 × 400 g = 2000 g: weight rule (min inclusive); provider id from the map.
    let s = router
        .select(&order(5, "50.00", 86_400, "Texas"), NOW)
        .unwrap();
    assert_eq!(
        (
            s.carrier.as_str(),
            s.rule,
            s.shipping_provider_id.as_deref()
        ),
        ("UPS", Some(2), Some("6617675021119438850"))
    );
    assert_eq!(
        router.weight_grams(&order(5, "50.00", 86_400, "Texas")),
        2000
    );
    // Value window and postal prefix.
    let s = router
        .select(&order(2, "250.00", 86_400, "Texas"), NOW)
        .unwrap();
    assert_eq!(
        (s.carrier.as_str(), s.service.as_deref()),
        ("UPS", Some("2ndDayAir"))
    );
    let s = router
        .select(&order(2, "1000.00", 86_400, "Texas"), NOW)
        .unwrap();
    assert_eq!(s.rule, None, "above max_value, 800 g: no rule");
    assert_eq!(
        (s.carrier.as_str(), s.service.as_deref()),
        ("USPS", Some("GroundAdvantage"))
    );
    // The CEL rule sees the computed weight.
    let s = router
        .select(&order(1, "10.00", 86_400, "Texas"), NOW)
        .unwrap();
    assert_eq!(s.rule, Some(4));

    // Workflow rules go first; a workflow default replaces the configured one.
    let wf = router
        .with_workflow_rules(
            &[CarrierRule {
                when: Some("'vip' in order.tags".into()),
                ..rule("UPS", "NextDayAir")
            }],
            Some("DHL"),
        )
        .unwrap();
    let mut vip = order(1, "10.00", 86_400, "Texas");
    vip.tags.push("vip".into());
    assert_eq!(
        wf.select(&vip, NOW).unwrap().service.as_deref(),
        Some("NextDayAir")
    );
    let s = wf
        .select(&order(2, "1000.00", 86_400, "Texas"), NOW)
        .unwrap();
    assert_eq!((s.carrier.as_str(), s.service), ("DHL", None));
}

#[test]
fn bad_rules_are_reported_and_failing_expressions_are_errors() {
    let cfg = ShippingConfig {
        rules: vec![
            CarrierRule {
                when: Some("order.payment.total_amount >".into()),
                ..rule("UPS", "Ground")
            },
            CarrierRule {
                min_value: Some("ten".into()),
                ship_within: Some("soon".into()),
                ..rule("", "Ground")
            },
            CarrierRule {
                when: Some("vars.x == 1".into()),
                min_weight_grams: Some(10),
                max_weight_grams: Some(5),
                ..rule("UPS", "Ground")
            },
        ],
        ..ShippingConfig::default()
    };
    let problems = cfg.validate();
    println!("{problems:#?}");
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].starts_with("shipping rule 0: `when` at column"));

    // Evaluation errors (a missing field) are errors, not silent skips.
    let e = select_carrier(
        &[CarrierRule {
            when: Some("order.nope.deeper == 1".into()),
            ..rule("UPS", "Ground")
        }],
        "USPS",
        &order(1, "10.00", 86_400, "Texas"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("order.nope.deeper"), "{e}");
    // A non-boolean condition is an error too.
    let e = select_carrier(
        &[CarrierRule {
            when: Some("order.item_count".into()),
            ..rule("UPS", "Ground")
        }],
        "USPS",
        &order(1, "10.00", 86_400, "Texas"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("must be true or false"), "{e}");
}
