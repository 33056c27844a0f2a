//! The SLA clock starts when TikTok lets the seller ship. An order seen
//! first as UNPAID, paid, held by TikTok for the buyer-cancel hour and then
//! AWAITING_SHIPMENT is measured from that AWAITING_SHIPMENT: the
//! eligible → fulfilment histogram shows seconds where receipt → fulfilment
//! shows the hour. The daemon runs on a manual clock moved by an hour while
//! the simulator holds the order; its webhooks arrive over HTTP.

mod common;

use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::simulator::SimulatorArgs;

const SHIP_NOW: &str = r#"
name: ship_now
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: "SLA-TRACK-1"
      shipping_provider_id: "6617675021119438849"
"#;

#[actix_rt::test]
async fn the_sla_clock_starts_at_awaiting_shipment_not_at_the_first_webhook() {
    // 600× time: payment 2 simulated minutes after creation (0.2 s), the
    // buyer-cancel hold an hour (6 s).
    let rig = common::sim_rig(
        "sla",
        SimulatorArgs {
            time_scale: 600.0,
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        1000.0,
        ("ship_now.yaml", SHIP_NOW),
    )
    .await;
    let sim_url = rig.sim.base_url();
    let (clock, control) = common::manual_clock();
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), clock).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;
    let shop = rig.sim.shops()[0].0.clone();
    let id = common::sim_create(
        &c,
        &sim_url,
        serde_json::json!({"shop_id": shop, "status": "UNPAID", "ship_by_in_secs": 3 * 86_400}),
    )
    .await
    .remove(0);
    // The UNPAID webhook is in: the order is known, not yet eligible.
    let o = common::eventually(Duration::from_secs(10), "the unpaid order", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (st, v) = common::get_json(&c, &u).await;
            (st == 200).then_some(v)
        }
    })
    .await;
    assert_ne!(o["tiktok_status"], "AWAITING_SHIPMENT", "{o}");
    // TikTok's hour passes on the daemon's clock before the order may ship.
    control.advance(Duration::from_secs(3600));
    common::eventually(Duration::from_secs(30), "the order shipped", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, v) = common::get_json(&c, &u).await;
            (v["lifecycle"] == "fulfilled" || v["tiktok_status"] == "AWAITING_COLLECTION")
                .then_some(())
        }
    })
    .await;
    let m = |name: &'static str, what: &'static str| {
        let (c, base) = (c.clone(), base.clone());
        async move { common::metric(&c, &base, &format!("{name}_{what}"), "").await }
    };
    // The fulfilment counts once TikTok's answer to the ship call is back
    // (its webhook may come first).
    common::eventually(Duration::from_secs(10), "the fulfilment counted", || async move {
        (m("orderflow_order_fulfillment_seconds", "count").await >= 1.0).then_some(())
    })
    .await;
    let eligible = (
        m("orderflow_order_eligible_to_fulfillment_seconds", "count").await,
        m("orderflow_order_eligible_to_fulfillment_seconds", "sum").await,
    );
    let receipt = (
        m("orderflow_order_fulfillment_seconds", "count").await,
        m("orderflow_order_fulfillment_seconds", "sum").await,
    );
    println!(
        "eligible → ship call: {:.1} s; receipt → ship call: {:.1} s",
        eligible.1, receipt.1
    );
    assert_eq!((eligible.0, receipt.0), (1.0, 1.0));
    assert!(eligible.1 < 60.0, "seconds, not the hour: {eligible:?}");
    assert!(
        receipt.1 >= 3600.0,
        "receipt → ship includes the hold: {receipt:?}"
    );
    // The figures say the same, with the target beside them.
    let (_, st) = common::get_json(&c, &format!("{base}/api/v1/stats")).await;
    assert!(
        st["eligible_fulfillment_p95_s"].as_f64().unwrap() < 60.0,
        "{st}"
    );
    // The stats' percentiles come from a DDSketch with 1% relative
    // accuracy.
    assert!(
        st["fulfillment_p95_s"].as_f64().unwrap() >= 3600.0 * 0.99,
        "{st}"
    );
    assert_eq!(st["fulfillment_target_s"], 30.0, "{st}");
    assert_eq!(
        common::metric(&c, &base, "orderflow_sla_fulfillment_target_seconds", "").await,
        30.0
    );
    daemon.shutdown().await;
}
