//! Operators and the one label per order, through a real daemon, the CLI
//! and the simulators: `resume` of an order whose label step failed after
//! the purchase reached the provider (its answer came after the timeout)
//! takes that label, it does not buy another; `run-from --new-label` voids
//! the label first and only then buys a new one; `resume --new-label` on
//! an order whose parcel is already moving is refused by the provider and
//! buys nothing, and a plain `resume` then goes on with the label it has.

mod common;

use std::process::Command;
use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::{json, Value};

const WORKFLOW: &str = r#"
name: label_once
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: USPS
  - id: wait_delivery
    wait:
      until: "event.type == 'status' && event.status == 'DELIVERED'"
      timeout: 14d
  - id: delivered
    end: delivered
"#;

fn cli(base: &str, args: &[&str]) -> String {
    let out = Command::new(common::bin())
        .args(args)
        .args(["--url", base])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

async fn order(c: &reqwest::Client, base: &str, id: &str) -> Value {
    common::get_json(c, &format!("{base}/api/v1/orders/{id}"))
        .await
        .1
}

async fn actions(c: &reqwest::Client, sim: &str) -> Vec<String> {
    let (_, l) = common::get_json(c, &format!("{sim}/sim/labels/ledger?provider=easypost")).await;
    l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[actix_rt::test]
async fn resume_takes_the_label_a_lost_answer_bought_and_a_new_label_voids_first() {
    let mut rig = common::sim_rig(
        "label-ops",
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        1000.0,
        ("label_once.yaml", WORKFLOW),
    )
    .await;
    let sim = rig.sim.base_url();
    common::sim_labels(&mut rig.cfg, &sim, &[("USPS", "6617675021119438849")]);
    rig.cfg.shipping.provider_timeout = Duration::from_millis(800);
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;

    // The purchase is made, its answer held past the daemon's timeout: the
    // step fails (no retry in this workflow) and the order waits for an
    // operator.
    let (st, _) = common::post_json(
        &c,
        &format!("{sim}/sim/labels/faults"),
        &json!({"late_purchases": 1, "timeout_ms": 2000}),
    )
    .await;
    assert_eq!(st, 200);
    let shop = rig.sim.shops()[0].0.clone();
    let id = common::sim_create(
        &c,
        &sim,
        json!({"shop_id": shop, "status": "AWAITING_SHIPMENT"}),
    )
    .await
    .remove(0);
    let failed = common::eventually(Duration::from_secs(20), "the label step failed", || {
        let (c, b, id) = (c.clone(), base.clone(), id.clone());
        async move {
            let o = order(&c, &b, &id).await;
            (o["lifecycle"] == "exception").then_some(o)
        }
    })
    .await;
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("timeout"),
        "{failed}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        actions(&c, &sim).await,
        ["buy"],
        "the purchase reached the provider"
    );

    // Resume: the label the lost answer bought is the order's.
    cli(&base, &["orders", "resume", &id]);
    common::eventually(Duration::from_secs(20), "the order has its label", || {
        let (c, b, id) = (c.clone(), base.clone(), id.clone());
        async move { (order(&c, &b, &id).await["step"] == "wait_delivery").then_some(()) }
    })
    .await;
    assert_eq!(actions(&c, &sim).await, ["buy"], "resume bought nothing");
    let (_, first) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/label")).await;
    assert_eq!(first["label"]["recovered"], true, "{first}");

    // An explicit new label: the old one is refunded, then one is bought.
    cli(
        &base,
        &["orders", "run-from", &id, "buy_label", "--new-label"],
    );
    let second = common::eventually(Duration::from_secs(20), "a new label", || {
        let (c, b, id) = (c.clone(), base.clone(), id.clone());
        async move {
            let (_, l) = common::get_json(&c, &format!("{b}/api/v1/orders/{id}/label")).await;
            (l["generation"] == 1 && l["state"] == "bought").then_some(l)
        }
    })
    .await;
    assert_eq!(actions(&c, &sim).await, ["buy", "refund", "buy"]);
    assert_eq!(
        second["voided"][0]["label_id"], first["label"]["label_id"],
        "{second}"
    );
    assert_ne!(
        second["label"]["tracking_number"],
        first["label"]["tracking_number"]
    );

    // Once the parcel moves, a new label cannot void it: nothing is bought.
    let tracking = second["label"]["tracking_number"].as_str().unwrap();
    common::post_json(
        &c,
        &format!("{sim}/sim/labels/scan"),
        &json!({"tracking_number": tracking, "status": "in_transit", "silent": true}),
    )
    .await;
    let r = c
        .post(format!("{base}/api/v1/orders/{id}/actions/run_from"))
        .json(&json!({"step": "buy_label", "new_label": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    common::eventually(
        Duration::from_secs(20),
        "the refused void stops the step",
        || {
            let (c, b, id) = (c.clone(), base.clone(), id.clone());
            async move { (order(&c, &b, &id).await["lifecycle"] == "exception").then_some(()) }
        },
    )
    .await;
    let a = actions(&c, &sim).await;
    assert_eq!(a.iter().filter(|x| *x == "buy").count(), 2, "{a:?}");
    assert!(a.contains(&"refund_refused".to_string()), "{a:?}");
    // The request is spent: resume goes on with the label the order has.
    cli(&base, &["orders", "resume", &id]);
    common::eventually(
        Duration::from_secs(20),
        "back to waiting for delivery",
        || {
            let (c, b, id) = (c.clone(), base.clone(), id.clone());
            async move { (order(&c, &b, &id).await["step"] == "wait_delivery").then_some(()) }
        },
    )
    .await;
    let a = actions(&c, &sim).await;
    assert_eq!(a.iter().filter(|x| *x == "buy").count(), 2, "{a:?}");
    let (_, l) = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/label")).await;
    assert_eq!(l["label"]["tracking_number"], tracking, "{l}");
    daemon.shutdown().await;
}
