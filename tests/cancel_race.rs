//! A cancellation race: TikTok cancels an order (its ship-by time passed)
//! after the label was bought and before the ship call, and the webhook
//! saying so is lost. The ship call is refused; the daemon reads the order,
//! sees it cancelled, and the workflow compensates: the label is voided,
//! the stock released, and the order ends `cancelled`, never in exception.
//! Simulator over HTTP, real label API, polling off.

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
    // 100,000× simulated time: TikTok's 7 days to ship pass in about 6 s.
    let mut rig = common::sim_rig(
        "race",
        SimulatorArgs {
            time_scale: 100_000.0,
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
    // The label is bought and the workflow pauses before shipping; from
    // now on TikTok's webhooks are lost.
    common::eventually(Duration::from_secs(20), "the label bought", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = common::get_json(&c, &u).await;
            (o["step"] == "pause").then_some(())
        }
    })
    .await;
    let (st, _) = common::post_json(
        &c,
        &format!("{sim}/sim/faults"),
        &json!({"webhook_drop_rate": 1.0}),
    )
    .await;
    assert_eq!(st, 200);
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
            matches!(
                o["lifecycle"].as_str(),
                Some("cancelled" | "exception" | "fulfilled")
            )
            .then_some(o)
        }
    })
    .await;
    let audit = common::get_json(&c, &format!("{base}/api/v1/orders/{id}/audit"))
        .await
        .1;
    assert_eq!(o["lifecycle"], "cancelled", "{o}\n{audit}");
    // Nothing shipped: not counted as fulfilled in the figures.
    assert!(o["fulfillment_ms"].is_null(), "{o}");
    // TikTok cancelled it (its ship-by passed), refused the ship call, and
    // shipped nothing.
    let (_, l) = common::get_json(&c, &format!("{sim}/sim/ledger?order_id={id}")).await;
    let entries = l["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["action"] == "auto_cancel"), "{l}");
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
    assert!(
        audit
            .to_string()
            .contains("TikTok cancelled the order before it shipped"),
        "{audit}"
    );
    daemon.shutdown().await;
}
