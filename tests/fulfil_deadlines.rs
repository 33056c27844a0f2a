//! Ship-by deadlines: an unshipped order with less than
//! `runtime.at_risk_margin` left before its ship-by deadline raises the
//! `orderflow_orders_at_risk` gauge and sends exactly one warning to the
//! alerts channel (tried again on the next pass when the channel fails),
//! before the deadline passes. Time is a manual clock the
//! test moves forward; the orders come from the simulator (its ship-by is
//! real time plus what the test asks for).

mod common;

use common::{sim_rig, SimRig};

use std::time::Duration;

use common::{eventually, get_json, metric, orders_counted, post_json, wait_ready, Inbox};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;

/// Orders wait (unshipped) for an event that never comes.
const WORKFLOW: &str = r#"
name: parked
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: park
    wait:
      until: "event.type == 'never'"
      timeout: 30d
  - id: done
    end: fulfilled
"#;

const AT_RISK: &str = "orderflow_orders_at_risk";

async fn create(client: &reqwest::Client, sim: &str, ship_by_in_secs: i64) -> String {
    let (st, v) = post_json(
        client,
        &format!("{sim}/sim/orders"),
        &serde_json::json!({"status": "AWAITING_SHIPMENT", "ship_by_in_secs": ship_by_in_secs}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["orders"][0]["order_id"].as_str().unwrap().to_string()
}

/// Waits until the order is parked, then until a report pass has counted
/// `n` orders (so the watcher has seen it).
async fn parked(client: &reqwest::Client, base: &str, id: &str, n: f64) {
    eventually(Duration::from_secs(30), "the order to be parked", || {
        let (c, b, id) = (client.clone(), base.to_string(), id.to_string());
        async move {
            let (st, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
            (st == 200 && o["step"] == "park").then_some(())
        }
    })
    .await;
    eventually(Duration::from_secs(30), "a watcher pass over it", || {
        let (c, b) = (client.clone(), base.to_string());
        async move { (orders_counted(&c, &b).await == n).then_some(()) }
    })
    .await;
}

#[actix_rt::test]
async fn an_order_nearing_its_ship_by_deadline_is_warned_about_once() {
    let inbox = Inbox::start();
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "dl",
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            shops: 1,
            ..Default::default()
        },
        50.0,
        ("parked.yaml", WORKFLOW),
    )
    .await;
    let sim_url = sim.base_url();
    cfg.notify.channels.insert(
        "ops".into(),
        orderflow::notify::Secret::new(inbox.url()).into(),
    );
    cfg.notify.default_channel = "ops".into();
    cfg.notify.alerts_channel = Some("ops".into());
    cfg.notify.max_attempts = 2;
    cfg.notify.backoff_base = Duration::from_millis(10);
    cfg.notify.backoff_max = Duration::from_millis(20);
    cfg.runtime.at_risk_margin = orderflow::config::Dur(Duration::from_secs(6 * 3600));
    cfg.runtime.deadline_check = orderflow::config::Dur(Duration::from_millis(200));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (clock, control) = Clock::manual(now);
    let daemon = Daemon::start(cfg.clone(), clock.clone()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;

    // Ship-by 7 h away, margin 6 h: not at risk, no warning.
    let a = create(&client, &sim_url, 7 * 3600).await;
    parked(&client, &base, &a, 1.0).await;
    assert_eq!(metric(&client, &base, AT_RISK, "").await, 0.0);
    assert!(inbox.attempts().is_empty(), "{:?}", inbox.attempts());

    // Two hours later 5 h are left: at risk, one warning.
    control.advance(Duration::from_secs(2 * 3600));
    eventually(Duration::from_secs(30), "the gauge and the warning", || {
        let (c, b, n) = (client.clone(), base.clone(), inbox.delivered().len());
        async move { (metric(&c, &b, AT_RISK, "").await == 1.0 && n >= 1).then_some(()) }
    })
    .await;
    let warned = inbox.delivered();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let w = &warned[0];
    let text = w["text"].as_str().unwrap();
    assert!(text.contains(&a), "{w}");
    assert!(text.contains("ship"), "{w}");
    assert_eq!(w["event"]["data"]["order_id"], a.as_str(), "{w}");
    let left = w["event"]["data"]["time_left_s"].as_i64().unwrap();
    assert!(
        (4 * 3600..=5 * 3600).contains(&left),
        "about 5 h left: {left} s"
    );
    let (_, o) = get_json(&client, &format!("{base}/api/v1/orders/{a}")).await;
    assert_eq!(
        w["event"]["data"]["ship_by"], o["deadlines"]["rts_sla_time"],
        "{o}"
    );

    // A second order, 8 h from its deadline on the daemon's clock: once a
    // pass has counted it, the first order has still been warned about
    // only once.
    let b = create(&client, &sim_url, 10 * 3600).await;
    parked(&client, &base, &b, 2.0).await;
    assert_eq!(metric(&client, &base, AT_RISK, "").await, 1.0);
    assert_eq!(inbox.attempts().len(), 1, "{:#?}", inbox.attempts());

    // Three hours on, the second order is at risk too: one more warning,
    // for it. The channel fails both attempts of the first try; the next
    // pass tries again.
    inbox.fail_next(2);
    control.advance(Duration::from_secs(3 * 3600));
    eventually(Duration::from_secs(30), "the second warning", || {
        let (c, b, n) = (client.clone(), base.clone(), inbox.delivered().len());
        async move { (metric(&c, &b, AT_RISK, "").await == 2.0 && n >= 2).then_some(()) }
    })
    .await;
    // And the passes after it repeat neither: wait for a pass that counts a
    // third order.
    let c3 = create(&client, &sim_url, 30 * 3600).await;
    parked(&client, &base, &c3, 3.0).await;
    let warned: Vec<(String, u16)> = inbox
        .attempts()
        .iter()
        .map(|(w, s)| {
            (
                w["event"]["data"]["order_id"].as_str().unwrap().to_string(),
                *s,
            )
        })
        .collect();
    assert_eq!(
        warned,
        [
            (a.clone(), 200),
            (b.clone(), 500),
            (b.clone(), 500),
            (b.clone(), 200)
        ]
    );

    // A new watcher over the same store (what a restart starts) warns
    // nobody again: the warnings are remembered in the store.
    let watcher = orderflow::runtime::deadlines::DeadlineWatcher {
        store: daemon.store.clone(),
        clock: clock.clone(),
        notifier: orderflow::notify::Notifier::new(cfg.notify.clone()).unwrap(),
        margin_s: 6 * 3600,
        interval: Duration::from_secs(1),
        time_scale: 1.0,
    };
    assert_eq!(watcher.pass().await, []);
    assert_eq!(inbox.attempts().len(), 4, "{:#?}", inbox.attempts());

    daemon.shutdown().await;
    sim.stop().await;
}
