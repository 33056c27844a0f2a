//! The events `workflows/README.md` promises come from the daemon's own
//! paths: a changed recipient (RECIPIENT_ADDRESS_UPDATE) is an `address`
//! event, a changed package or tracking number (PACKAGE_UPDATE) a
//! `package` event, a buyer's cancellation request (CANCELLATION_STATUS_
//! CHANGE) a `cancellation` event, a return or refund (RETURN_STATUS_
//! CHANGE, Search Returns) a `return` event. Each wakes a `wait` on it. The simulator
//! changes the order and pushes TikTok's webhook; the daemon reads the
//! order and tells the workflow what changed. With every webhook lost, the
//! same changes come by polling (Search Orders by update time) and wake the
//! same waits.

mod common;

use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::{json, Value};

const WATCH: &str = r#"
name: watch
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: wait_address
    wait:
      until: "event.type == 'address' && event.postal_code == '10001'"
      timeout: 1h
  - id: wait_package
    wait:
      until: "event.type == 'package' && event.tracking_number == 'TRK-EVENT-1'"
      timeout: 1h
  - id: wait_return
    wait:
      until: "event.type == 'return' && event.return_type == 'REFUND' && event.return_status == 'RETURN_OR_REFUND_REQUEST_PENDING'"
      timeout: 1h
  - id: wait_cancellation
    wait:
      until: "event.type == 'cancellation' && event.state == 'requested'"
      timeout: 1h
  - id: done
    end: fulfilled
"#;

async fn step_is(c: &reqwest::Client, base: &str, id: &str, step: &'static str) -> Value {
    common::eventually(Duration::from_secs(20), step, || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            (o["step"] == step).then_some(o)
        }
    })
    .await
}

#[actix_rt::test]
async fn address_package_return_and_cancellation_events_wake_waits() {
    events_wake_waits("events", false).await;
}

#[actix_rt::test]
async fn the_same_events_come_by_polling_when_webhooks_are_lost() {
    events_wake_waits("events-poll", true).await;
}

/// The scenario, by webhook, or with every webhook lost (`by_polling`:
/// the daemon polls every 200 ms).
async fn events_wake_waits(tag: &str, by_polling: bool) {
    let mut rig = common::sim_rig(
        tag,
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        1000.0,
        ("watch.yaml", WATCH),
    )
    .await;
    let sim = rig.sim.base_url();
    let c = common::http();
    rig.cfg.sync.poll_interval = orderflow::config::Dur(if by_polling {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3600)
    });
    if by_polling {
        let (st, _) = common::post_json(
            &c,
            &format!("{sim}/sim/faults"),
            &json!({"webhook_drop_rate": 1.0}),
        )
        .await;
        assert_eq!(st, 200);
    }
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;
    let shop = rig.sim.shops()[0].0.clone();
    let id = common::sim_create(
        &c,
        &sim,
        json!({"shop_id": shop, "status": "AWAITING_SHIPMENT"}),
    )
    .await
    .remove(0);
    step_is(&c, &base, &id, "wait_address").await;

    // The buyer edits the address: TikTok shows the new one and pushes
    // RECIPIENT_ADDRESS_UPDATE.
    let address = json!({"full_address": "350 5th Ave, New York, NY 10001", "name": "Ava Garcia",
        "address_line1": "350 5th Ave", "postal_code": "10001", "region_code": "US",
        "district_info": [{"address_name": "United States"}, {"address_name": "New York"}, {"address_name": "New York"}]});
    let push = |kind: u32, data: Value| {
        let (c, sim, shop) = (c.clone(), sim.clone(), shop.clone());
        async move {
            let (st, v) = common::post_json(
                &c,
                &format!("{sim}/sim/webhooks/push"),
                &json!({"shop_id": shop, "type": kind, "data": data}),
            )
            .await;
            assert_eq!(st, 200, "{v}");
        }
    };
    let (st, _) = common::post_json(
        &c,
        &format!("{sim}/sim/orders/{id}/wire"),
        &json!({"recipient_address": address}),
    )
    .await;
    assert_eq!(st, 200);
    push(3, json!({"order_id": id, "update_time": 1_900_000_000})).await;
    step_is(&c, &base, &id, "wait_package").await;

    // TikTok's package changes (a tracking number): PACKAGE_UPDATE.
    let (st, _) = common::post_json(
        &c,
        &format!("{sim}/sim/orders/{id}/wire"),
        &json!({"recipient_address": address, "tracking_number": "TRK-EVENT-1"}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, detail) = common::get_json(&c, &format!("{sim}/sim/orders/{id}")).await;
    let package = detail["package_id"].as_str().unwrap().to_string();
    push(
        4,
        json!({"sc_type": "SPLIT", "role_type": "ROLE_SYSTEM", "update_time": 1_900_000_001,
            "package_list": [{"package_id": package, "order_id_list": [id]}]}),
    )
    .await;
    step_is(&c, &base, &id, "wait_return").await;

    // The buyer asks for a refund: RETURN_STATUS_CHANGE.
    let (st, refund) = common::post_json(
        &c,
        &format!("{sim}/sim/orders/{id}/return"),
        &json!({"return_type": "REFUND"}),
    )
    .await;
    assert_eq!(st, 200, "{refund}");
    step_is(&c, &base, &id, "wait_cancellation").await;

    // The buyer asks to cancel: the simulator pushes
    // CANCELLATION_STATUS_CHANGE itself.
    let (st, v) = common::post_json(
        &c,
        &format!("{sim}/sim/orders/{id}/buyer_cancel"),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let o = common::eventually(Duration::from_secs(20), "the workflow done", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            (o["instance_state"] == "completed:fulfilled").then_some(o)
        }
    })
    .await;
    let audit = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/audit"))
        .await
        .1;
    assert_eq!(
        o["cancel_request"]["cancel_id"].as_str().map(str::len),
        Some(19),
        "{o}"
    );
    assert_eq!(o["returns"][0]["return_id"], refund["return_id"], "{o}");
    // Each event came by the path under test: TikTok's webhook, or polling.
    let source = if by_polling { "poll" } else { "webhook" };
    let came = |ty: &str| {
        audit.as_array().unwrap().iter().any(|e| {
            e["source"] == source
                && match ty {
                    "return" => e["kind"] == "return",
                    _ => {
                        e["kind"] == "event"
                            && e["detail"]
                                .as_str()
                                .is_some_and(|d| d.contains(&format!("\"type\":\"{ty}\"")))
                    }
                }
        })
    };
    for ty in ["address", "package", "return", "cancellation"] {
        assert!(came(ty), "{ty} by {source}: {o}\n{audit}");
    }
    if by_polling {
        // Reading the same order again (every 200 ms) is no new event: the
        // record is not touched.
        let updated = || {
            let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
            async move { common::get_json(&c, &u).await.1["updated_ms"].clone() }
        };
        let before = updated().await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            updated().await,
            before,
            "an unchanged order polled again is no event"
        );
    }
    daemon.shutdown().await;
}
