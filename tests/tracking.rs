//! Tracking: the label providers' webhooks, verified as each documents
//! (EasyPost's `X-Hmac-Signature`, Shippo's URL token; 401 otherwise, and
//! nothing is read), become `scan` events that reach the order's timeline
//! and wake a workflow's `wait`; with the webhooks lost, the tracking poll
//! finds the same scans. Both providers, a real daemon, the simulators on
//! 127.0.0.1.

mod common;

use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::{json, Value};

fn track(provider: &str) -> String {
    format!(
        r#"
name: track
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: USPS
      provider: {provider}
  - id: wait_transit
    wait:
      until: "event.type == 'scan' && event.status == 'in_transit'"
      timeout: 1h
  - id: wait_delivered
    wait:
      until: "event.type == 'scan' && event.status == 'delivered' && event.tracking_number == steps.buy_label.tracking_number"
      timeout: 1h
  - id: done
    end: fulfilled
"#
    )
}

async fn step_is(c: &reqwest::Client, base: &str, id: &str, step: &'static str) -> Value {
    common::eventually(Duration::from_secs(30), step, || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            (o["step"] == step || (step.is_empty() && o["instance_state"] == "completed:fulfilled"))
                .then_some(o)
        }
    })
    .await
}

#[actix_rt::test]
async fn easypost_scans_reach_the_order_and_wake_its_wait() {
    scans("track-ep", "easypost", false).await;
}

#[actix_rt::test]
async fn shippo_scans_reach_the_order_and_wake_its_wait() {
    scans("track-sh", "shippo", false).await;
}

#[actix_rt::test]
async fn with_the_webhooks_lost_the_tracking_poll_finds_the_scans() {
    scans("track-poll", "easypost", true).await;
}

async fn scans(tag: &str, provider: &str, by_polling: bool) {
    let workflow = track(provider);
    let mut rig = common::sim_rig(
        tag,
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        1000.0,
        ("track.yaml", workflow.as_str()),
    )
    .await;
    let sim = rig.sim.base_url();
    common::sim_labels(&mut rig.cfg, &sim, &[("USPS", "6617675021119438849")]);
    if by_polling {
        rig.cfg.shipping.tracking_poll_interval = Duration::from_millis(300);
    }
    let c = common::http();
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
    step_is(&c, &base, &id, "wait_transit").await;
    let (_, label) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/label")).await;
    assert_eq!(label["label"]["provider"], provider, "{label}");
    let tracking = label["label"]["tracking_number"]
        .as_str()
        .unwrap()
        .to_string();

    // A forged or unsigned tracking webhook is refused and changes nothing.
    let forged = json!({"object": "Event", "description": "tracker.updated",
        "result": {"tracking_code": tracking, "status": "delivered"}});
    let r = c
        .post(format!("{base}/webhooks/easypost"))
        .header("X-Hmac-Signature", "hmac-sha256-hex=00")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{base}/webhooks/easypost"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{base}/webhooks/shippo?token=wrong"))
        .json(
            &json!({"event": "track_updated", "data": {"tracking_number": tracking,
            "tracking_status": {"status": "DELIVERED"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{base}/webhooks/shippo"))
        .json(&json!({"event": "track_updated", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, o) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}")).await;
    assert_eq!(o["step"], "wait_transit", "{o}");

    // The carrier scans the parcel: the provider's signed webhook (or, with
    // it lost, the poll) moves the order on.
    let scan = |status: &str| {
        let (c, sim, tracking) = (c.clone(), sim.clone(), tracking.clone());
        let body = json!({"tracking_number": tracking, "status": status, "silent": by_polling});
        async move {
            let (st, v) = common::post_json(&c, &format!("{sim}/sim/labels/scan"), &body).await;
            assert_eq!(st, 200, "{v}");
            if !by_polling {
                assert_eq!(v["webhook_status"], 200, "{v}");
            }
        }
    };
    scan("in_transit").await;
    step_is(&c, &base, &id, "wait_delivered").await;
    scan("delivered").await;
    step_is(&c, &base, &id, "").await;

    // The timeline has both scans; the label record too.
    let (_, audit) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/audit")).await;
    let text = audit.to_string();
    for s in ["in_transit", "delivered"] {
        assert!(
            text.contains(&format!("\\\"status\\\":\\\"{s}\\\"")),
            "{s}: {audit}"
        );
    }
    let (_, label) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/label")).await;
    let statuses: Vec<&str> = label["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["in_transit", "delivered"], "{label}");
    daemon.shutdown().await;
}
