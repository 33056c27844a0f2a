//! Cancellation races between the label and the ship call, each ending
//! `cancelled` with the label voided and the stock released, never in
//! exception (simulator over HTTP, real label API, polling off):
//!
//! - TikTok cancels the order (its ship-by time passed) and the webhook
//!   saying so is lost: the ship call is refused, the daemon reads the
//!   order, sees it cancelled, and the workflow compensates;
//! - the buyer asks to cancel: the workflow's `on_cancel_request` approves,
//!   TikTok cancels, and the workflow compensates before it ships.

mod common;

use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::json;

const RACE: &str = r#"
name: race
trigger:
  on: AWAITING_SHIPMENT
on_cancel_request:
  before_shipping: approve
steps:
  - id: reserve
    call: inventory.reserve
    compensate:
      call: inventory.release
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: USPS
    compensate:
      call: shipping.void_label
      with:
        label_id: "${{ steps.buy_label.label_id }}"
  - id: pause
    sleep: 6s
  - id: mark_shipped
    call: tiktok.mark_shipped
    with:
      tracking_number: "${{ steps.buy_label.tracking_number }}"
      shipping_provider_id: "${{ steps.buy_label.shipping_provider_id }}"
  - id: done
    end: fulfilled
"#;

#[actix_rt::test]
async fn an_order_cancelled_under_the_ship_call_compensates_and_ends_cancelled() {
    race("race", Canceller::Tiktok).await;
}

#[actix_rt::test]
async fn a_buyer_who_cancels_after_the_label_gets_the_label_voided_and_the_stock_back() {
    race("race-buyer", Canceller::Buyer).await;
}

#[derive(PartialEq)]
enum Canceller {
    /// TikTok's ship-by passes (the webhook lost).
    Tiktok,
    /// The buyer asks; the workflow approves.
    Buyer,
}

async fn race(tag: &str, who: Canceller) {
    let mut rig = common::sim_rig(
        tag,
        SimulatorArgs {
            // 100,000× simulated time: TikTok's 7 days to ship pass in
            // about 6 s. The buyer's case runs in real time.
            time_scale: if who == Canceller::Tiktok {
                100_000.0
            } else {
                1.0
            },
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        1000.0,
        ("race.yaml", RACE),
    )
    .await;
    let sim = rig.sim.base_url();
    common::sim_labels(&mut rig.cfg, &sim, &[("USPS", "6617675021119438849")]);
    rig.cfg.sync.poll_interval = orderflow::config::Dur(Duration::from_secs(3600));
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;
    let sku = common::stock_first_sku(&c, &sim, &base, 5).await;
    let id = common::sim_create(
        &c,
        &sim,
        json!({"items": [{"sku_id": sku}], "status": "AWAITING_SHIPMENT"}),
    )
    .await
    .remove(0);
    // The label is bought and the workflow pauses before shipping.
    common::eventually(Duration::from_secs(20), "the label bought", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            (o["step"] == "pause").then_some(())
        }
    })
    .await;
    let (st, v) = match who {
        // From now on TikTok's webhooks are lost.
        Canceller::Tiktok => {
            common::post_json(
                &c,
                &format!("{sim}/sim/faults"),
                &json!({"webhook_drop_rate": 1.0}),
            )
            .await
        }
        Canceller::Buyer => {
            common::post_json(
                &c,
                &format!("{sim}/sim/orders/{id}/buyer_cancel"),
                &json!({}),
            )
            .await
        }
    };
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        common::get_json(&c, &format!("{base}/api/v1/inventory/{sku}"))
            .await
            .1["reserved"],
        1
    );
    let o = common::eventually(Duration::from_secs(40), "the order ended", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            // Ended: in exception, or its workflow finished (a cancelled
            // order's compensations run after TikTok's status says so).
            let finished = matches!(o["instance_state"].as_str(), Some(s)
                if s == "cancelled" || s == "failed" || s.starts_with("completed"));
            (o["lifecycle"] == "exception" || finished).then_some(o)
        }
    })
    .await;
    let audit = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/audit"))
        .await
        .1;
    assert_eq!(o["lifecycle"], "cancelled", "{o}\n{audit}");
    // Nothing shipped: not counted as fulfilled in the figures.
    assert!(o["fulfillment_ms"].is_null(), "{o}");
    // TikTok cancelled it (its ship-by passed, or the buyer's request was
    // approved) and shipped nothing.
    let (_, l) = common::get_json(&c, &format!("{sim}/sim/ledger?order_id={id}")).await;
    let entries = l["entries"].as_array().unwrap();
    let cause = match who {
        Canceller::Tiktok => "auto_cancel",
        Canceller::Buyer => "approve_cancellation",
    };
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == cause && e["ok"] != false),
        "{l}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["ok"] == true && e["action"] == "mark_shipped"),
        "{l}"
    );
    // The label is voided and the stock released.
    let labels = common::get_json(&c, &format!("{sim}/sim/labels/ledger"))
        .await
        .1;
    assert_eq!(
        (labels["bought"].as_u64(), labels["voided"].as_u64()),
        (Some(1), Some(1)),
        "{labels}"
    );
    let s = common::get_json(&c, &format!("{base}/api/v1/inventory/{sku}"))
        .await
        .1;
    assert_eq!(
        (s["on_hand"].as_u64(), s["reserved"].as_u64()),
        (Some(5), Some(0)),
        "{s}"
    );
    if who == Canceller::Tiktok {
        assert!(
            audit
                .to_string()
                .contains("TikTok cancelled the order before it shipped"),
            "{audit}"
        );
    }
    daemon.shutdown().await;
}
