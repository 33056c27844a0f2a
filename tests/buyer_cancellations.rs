//! Buyers' cancellation requests (TikTok's CANCELLATION_STATUS_CHANGE and
//! Search Cancellations), answered as the workflow's `on_cancel_request`
//! says, against the simulator over real HTTP:
//!
//! - before the parcel ships, the bundled standard workflow approves: TikTok
//!   cancels the order, the reserved stock is released, no label is bought;
//! - after it ships (a UK shop, where the request outlives the shipment),
//!   it rejects with TikTok's "packed" reason for the UK;
//! - a workflow that leaves the answer to a person holds the order, warns
//!   once before TikTok's deadline, and the operator's approval goes to
//!   TikTok.

mod common;

use std::time::Duration;

use common::{eventually, get_json, post_json, sim_rig, wait_ready, Inbox, SimRig};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;

async fn order(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    get_json(client, &format!("{base}/api/v1/orders/{id}"))
        .await
        .1
}

async fn until(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(Duration::from_secs(30), what, || {
        let f = order(client, base, id);
        let ok = &ok;
        async move {
            let v = f.await;
            ok(&v).then_some(v)
        }
    })
    .await
}

async fn buyer_asks(client: &reqwest::Client, sim_url: &str, id: &str) {
    let (s, v) = post_json(
        client,
        &format!("{sim_url}/sim/orders/{id}/buyer_cancel"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

async fn tiktok_ledger(
    client: &reqwest::Client,
    sim_url: &str,
    id: &str,
) -> Vec<serde_json::Value> {
    let (_, l) = get_json(client, &format!("{sim_url}/sim/ledger?order_id={id}")).await;
    l["entries"].as_array().unwrap().clone()
}

fn bundled(rig: &SimRig, file: &str) {
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("workflows")
            .join(file),
        rig.cfg.workflows.dir.join(file),
    )
    .unwrap();
}

/// A simulator with one quiet shop and a daemon config running `workflow`.
async fn one_shop(tag: &str, workflow: (&str, &str)) -> SimRig {
    sim_rig(
        tag,
        SimulatorArgs {
            shops: 1,
            ..common::quiet_sim()
        },
        200.0,
        workflow,
    )
    .await
}

/// Alerts to `inbox`, and a warning for every order within 6 hours of a
/// deadline, checked every 200 ms.
fn warned_within_six_hours(rig: &mut SimRig, inbox: &Inbox) {
    common::alerts_to(&mut rig.cfg, inbox.url());
    rig.cfg.runtime.at_risk_margin = orderflow::config::Dur(Duration::from_secs(6 * 3600));
    rig.cfg.runtime.deadline_check = orderflow::config::Dur(Duration::from_millis(200));
}

#[actix_rt::test]
async fn before_shipping_the_standard_workflow_approves_and_releases_the_stock() {
    let mut rig = one_shop("bc-approve", ("standard.yaml", "")).await;
    bundled(&rig, "standard.yaml");
    let sim_url = rig.sim.base_url();
    common::sim_labels(
        &mut rig.cfg,
        &sim_url,
        &[
            ("USPS", "6617675021119438849"),
            ("UPS", "6617675021119438850"),
        ],
    );
    let c = common::http();
    // The label API is down: the order waits with its stock reserved and
    // no label, as a parcel waits to be packed.
    let (s, v) = post_json(
        &c,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({"error_rate": 1.0}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let sku = common::sim_first_sku(&c, &sim_url).await;
    common::import_stock(&c, &base, &sku, 10).await;
    let id = common::sim_orders(&c, &sim_url, &sku.1, 1).await.remove(0);
    until(&c, &base, &id, "the label to be tried", |o| {
        o["step"] == "buy_label"
    })
    .await;
    let (_, inv) = get_json(&c, &format!("{base}/api/v1/inventory/{}", sku.1)).await;
    assert_eq!(inv["reserved"], 1, "{inv}");

    buyer_asks(&c, &sim_url, &id).await;
    let o = until(&c, &base, &id, "the order cancelled", |o| {
        o["lifecycle"] == "cancelled" && o["in_flight"].as_array().is_some_and(|f| f.is_empty())
    })
    .await;
    assert_eq!(o["tiktok_status"], "CANCELLED", "{o}");
    let (_, inv) = get_json(&c, &format!("{base}/api/v1/inventory/{}", sku.1)).await;
    assert_eq!(
        (inv["reserved"].as_u64(), inv["available"].as_u64()),
        (Some(0), Some(10)),
        "{inv}"
    );
    let (_, labels) = get_json(&c, &format!("{sim_url}/sim/labels/ledger")).await;
    assert_eq!(labels["bought"], 0, "{labels}");
    let approvals: Vec<_> = tiktok_ledger(&c, &sim_url, &id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "approve_cancellation")
        .collect();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    daemon.shutdown().await;
    rig.sim.stop().await;
}

#[actix_rt::test]
async fn after_shipping_the_standard_workflow_rejects_with_the_markets_reason() {
    let mut rig = one_shop("bc-reject", ("standard.yaml", "")).await;
    bundled(&rig, "standard.yaml");
    let sim_url = rig.sim.base_url();
    let shop = rig.sim.shops()[0].0.clone();
    let c = common::http();
    let (s, v) = post_json(
        &c,
        &format!("{sim_url}/sim/shops/{shop}"),
        &serde_json::json!({"region": "GB"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    common::sim_labels(
        &mut rig.cfg,
        &sim_url,
        &[
            ("USPS", "6617675021119438849"),
            ("UPS", "6617675021119438850"),
        ],
    );
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let sku = common::sim_first_sku(&c, &sim_url).await;
    common::import_stock(&c, &base, &sku, 10).await;
    let id = common::sim_orders(&c, &sim_url, &sku.1, 1).await.remove(0);
    until(&c, &base, &id, "the order shipped", |o| {
        o["step"] == "wait_delivery"
    })
    .await;

    buyer_asks(&c, &sim_url, &id).await;
    let rejected = eventually(Duration::from_secs(30), "TikTok's rejection", || {
        let f = tiktok_ledger(&c, &sim_url, &id);
        async move {
            f.await
                .into_iter()
                .find(|e| e["action"] == "reject_cancellation")
        }
    })
    .await;
    assert_eq!(
        rejected["detail"], "rejected: seller_reject_apply_product_has_been_packed",
        "{rejected}"
    );
    assert_eq!(rejected["ok"], true, "{rejected}");
    // The order goes on to delivery.
    let o = order(&c, &base, &id).await;
    assert_eq!(o["step"], "wait_delivery", "{o}");
    assert_eq!(o["lifecycle"], "fulfilled", "{o}");
    daemon.shutdown().await;
    rig.sim.stop().await;
}

const ASK_A_PERSON: &str = r#"
name: ask_a_person
trigger:
  on: AWAITING_SHIPMENT
on_cancel_request:
  before_shipping: operator
  after_shipping: operator
steps:
  - id: wait_packed
    wait:
      until: "event.type == 'packed'"
      timeout: 30d
  - id: done
    end: shipped
"#;

#[actix_rt::test]
async fn a_request_left_to_a_person_is_held_and_warned_about_before_the_deadline() {
    let inbox = Inbox::start();
    let mut rig = one_shop("bc-person", ("ask_a_person.yaml", ASK_A_PERSON)).await;
    let sim_url = rig.sim.base_url();
    warned_within_six_hours(&mut rig, &inbox);
    let (clock, control) = common::manual_clock();
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), clock).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let shop = rig.sim.shops()[0].0.clone();
    // Ship-by far away, so the only warning can be about the request.
    let id = common::sim_create(
        &c,
        &sim_url,
        serde_json::json!({"shop_id": shop, "status": "AWAITING_SHIPMENT", "ship_by_in_secs": 30 * 86_400}),
    )
    .await
    .remove(0);
    until(&c, &base, &id, "the order waiting", |o| {
        o["step"] == "wait_packed"
    })
    .await;
    buyer_asks(&c, &sim_url, &id).await;
    let held = until(&c, &base, &id, "the order held for a person", |o| {
        o["lifecycle"] == "on_hold"
    })
    .await;
    assert!(held["cancel_request"]["respond_by"].is_i64(), "{held}");
    // 48 h to answer, 6 h margin: nothing yet.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let about_request = |inbox: &Inbox| {
        inbox
            .delivered()
            .into_iter()
            .filter(|m| m.to_string().contains("cancel_request_due"))
            .count()
    };
    assert_eq!(about_request(&inbox), 0);
    // 43 h later 5 h are left: one warning, and only one.
    control.advance(Duration::from_secs(43 * 3600));
    eventually(Duration::from_secs(30), "the warning", || {
        let n = about_request(&inbox);
        async move { (n == 1).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(about_request(&inbox), 1);
    // The person approves; TikTok cancels the order.
    let (s, v) = post_json(
        &c,
        &format!("{base}/api/v1/orders/{id}/actions/approve_cancel_request"),
        &serde_json::json!({"by": "ana"}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    until(&c, &base, &id, "the order cancelled", |o| {
        o["lifecycle"] == "cancelled" && o["tiktok_status"] == "CANCELLED"
    })
    .await;
    daemon.shutdown().await;
    rig.sim.stop().await;
}

const SHIP_THEN_ASK: &str = r#"
name: ship_then_ask
trigger:
  on: AWAITING_SHIPMENT
on_cancel_request:
  before_shipping: operator
  after_shipping: operator
steps:
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: "TN${{ order.id }}"
      shipping_provider_id: "6617675021119438849"
  - id: wait_delivery
    wait:
      until: "event.type == 'status' && event.status == 'DELIVERED'"
      timeout: 30d
  - id: done
    end: delivered
"#;

/// After shipping an order cannot be held, yet a request left to a person
/// still reaches one: the warning comes before the deadline, and the
/// person's rejection goes to TikTok with the market's key.
#[actix_rt::test]
async fn a_request_after_shipping_left_to_a_person_is_still_warned_about() {
    let inbox = Inbox::start();
    let mut rig = one_shop("bc-after", ("ship_then_ask.yaml", SHIP_THEN_ASK)).await;
    let sim_url = rig.sim.base_url();
    let shop = rig.sim.shops()[0].0.clone();
    let c = common::http();
    let (s, v) = post_json(
        &c,
        &format!("{sim_url}/sim/shops/{shop}"),
        &serde_json::json!({"region": "GB"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    warned_within_six_hours(&mut rig, &inbox);
    let (clock, control) = common::manual_clock();
    let daemon = Daemon::start(rig.cfg.clone(), clock).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&c, &base).await;
    let id = common::sim_create(
        &c,
        &sim_url,
        serde_json::json!({"shop_id": shop, "status": "AWAITING_SHIPMENT", "ship_by_in_secs": 30 * 86_400}),
    )
    .await
    .remove(0);
    until(&c, &base, &id, "the order shipped", |o| {
        o["step"] == "wait_delivery" && o["lifecycle"] == "fulfilled"
    })
    .await;
    buyer_asks(&c, &sim_url, &id).await;
    let o = until(&c, &base, &id, "the request on the order", |o| {
        o["cancel_request"]["respond_by"].is_i64()
    })
    .await;
    assert_eq!(o["lifecycle"], "fulfilled", "{o}");
    let about_request = |inbox: &Inbox| {
        inbox
            .delivered()
            .into_iter()
            .filter(|m| m.to_string().contains("cancel_request_due"))
            .count()
    };
    control.advance(Duration::from_secs(43 * 3600));
    eventually(Duration::from_secs(30), "the warning", || {
        let n = about_request(&inbox);
        async move { (n == 1).then_some(()) }
    })
    .await;
    let (s, v) = post_json(
        &c,
        &format!("{base}/api/v1/orders/{id}/actions/reject_cancel_request"),
        &serde_json::json!({"by": "ana", "reason": "packed"}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let rejected = eventually(Duration::from_secs(30), "TikTok's rejection", || {
        let f = tiktok_ledger(&c, &sim_url, &id);
        async move {
            f.await
                .into_iter()
                .find(|e| e["action"] == "reject_cancellation")
        }
    })
    .await;
    assert_eq!(
        rejected["detail"],
        "rejected: seller_reject_apply_product_has_been_packed"
    );
    // Answered: a second answer is refused.
    let (s, _) = post_json(
        &c,
        &format!("{base}/api/v1/orders/{id}/actions/approve_cancel_request"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 409);
    daemon.shutdown().await;
    rig.sim.stop().await;
}

/// A request a person was to answer, withdrawn by the buyer: the hold
/// placed for it goes, and the order goes on.
#[actix_rt::test]
async fn a_withdrawn_request_releases_its_hold() {
    let rig = one_shop("bc-withdraw", ("ask_a_person.yaml", ASK_A_PERSON)).await;
    let sim_url = rig.sim.base_url();
    let c = common::http();
    let (daemon, base) = common::start_daemon(&rig.cfg).await;
    let shop = rig.sim.shops()[0].0.clone();
    let id = common::sim_orders_in(&c, &sim_url, &shop, "AWAITING_SHIPMENT", 1)
        .await
        .remove(0);
    until(&c, &base, &id, "the order waiting", |o| {
        o["step"] == "wait_packed"
    })
    .await;
    buyer_asks(&c, &sim_url, &id).await;
    until(&c, &base, &id, "the order held for a person", |o| {
        o["lifecycle"] == "on_hold"
    })
    .await;
    let (s, v) = post_json(
        &c,
        &format!("{sim_url}/sim/orders/{id}/buyer_cancel/withdraw"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let o = until(&c, &base, &id, "the hold released", |o| {
        o["lifecycle"] == "processing"
    })
    .await;
    assert!(o["cancel_request"].is_null(), "{o}");
    assert_eq!(o["step"], "wait_packed", "{o}");
    // Nothing was sent to TikTok about the request.
    assert!(tiktok_ledger(&c, &sim_url, &id)
        .await
        .iter()
        .all(|e| e["action"] != "approve_cancellation" && e["action"] != "reject_cancellation"));
    daemon.shutdown().await;
    rig.sim.stop().await;
}
