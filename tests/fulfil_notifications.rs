//! Notifications from a workflow's `notify.send` arrive at a real receiver
//! with the text and data the workflow wrote; a receiver that fails is
//! retried; one that keeps failing is given up on, the failure recorded
//! (the step's output, the failure counter), and the order goes on to
//! complete all the same.

mod common;

use common::{sim_rig, SimRig};

use std::time::Duration;

use common::{eventually, get_json, metric, post_json, wait_ready, Inbox};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;

const WORKFLOW: &str = r#"
name: tell_ops
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: tell
    call: notify.send
    with:
      channel: ops
      text: "Order ${{ order.id }} for ${{ order.payment.total_amount }} ${{ order.payment.currency }} is ready to pack"
      data:
        order: "${{ order.id }}"
        items: "${{ size(order.line_items) }}"
  - id: check
    switch:
      - when: "steps.tell.delivered"
        goto: told
      - default: untold
  - id: told
    end: notified
  - id: untold
    end: not_notified
"#;

#[actix_rt::test]
async fn workflow_notifications_arrive_are_retried_and_never_block_the_order() {
    let inbox = Inbox::start();
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "nt",
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            shops: 1,
            ..Default::default()
        },
        50.0,
        ("tell.yaml", WORKFLOW),
    )
    .await;
    let sim_url = sim.base_url();
    cfg.notify.channels.insert(
        "ops".into(),
        orderflow::notify::Secret::new(inbox.url()).into(),
    );
    cfg.notify.default_channel = "ops".into();
    cfg.notify.max_attempts = 3;
    cfg.notify.backoff_base = Duration::from_millis(20);
    cfg.notify.backoff_max = Duration::from_millis(100);
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;

    let run = |fail: u32| {
        let (client, base, sim_url, inbox) =
            (client.clone(), base.clone(), sim_url.clone(), inbox.clone());
        async move {
            inbox.fail_next(fail);
            let (st, v) = post_json(
                &client,
                &format!("{sim_url}/sim/orders"),
                &serde_json::json!({"status": "AWAITING_SHIPMENT"}),
            )
            .await;
            assert_eq!(st, 200, "{v}");
            let id = v["orders"][0]["order_id"].as_str().unwrap().to_string();
            let o = eventually(Duration::from_secs(30), "the order to finish", || {
                let (c, b, id) = (client.clone(), base.clone(), id.clone());
                async move {
                    let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                    o["instance_state"]
                        .as_str()?
                        .starts_with("completed")
                        .then_some(o)
                }
            })
            .await;
            let attempts: Vec<u16> = inbox
                .attempts()
                .iter()
                .filter(|(b, _)| b["event"]["order_id"] == id.as_str())
                .map(|(_, s)| *s)
                .collect();
            (id, o, attempts)
        }
    };

    // A receiver that answers: one notification, with the workflow's text
    // and data.
    let (a, o, attempts) = run(0).await;
    assert_eq!(o["instance_state"], "completed:notified", "{o}");
    assert_eq!(attempts, [200]);
    let body = inbox
        .delivered()
        .into_iter()
        .find(|b| b["event"]["order_id"] == a.as_str())
        .unwrap();
    let (_, sim_order) = get_json(&client, &format!("{sim_url}/sim/orders/{a}")).await;
    let payment = &sim_order["order"]["payment"];
    assert_eq!(
        body["text"],
        format!(
            "Order {a} for {} {} is ready to pack",
            payment["total_amount"].as_str().unwrap(),
            payment["currency"].as_str().unwrap()
        ),
        "{body}"
    );
    assert_eq!(body["event"]["kind"], "workflow", "{body}");
    assert_eq!(body["event"]["data"]["order"], a.as_str(), "{body}");
    assert_eq!(body["event"]["data"]["items"], 1, "{body}");

    // A receiver failing twice: retried, delivered on the third attempt.
    let (_, o, attempts) = run(2).await;
    assert_eq!(o["instance_state"], "completed:notified", "{o}");
    assert_eq!(attempts, [500, 500, 200]);

    // A receiver that keeps failing: three attempts, then the failure is
    // recorded and the order completes anyway.
    let (c, o, attempts) = run(u32::MAX).await;
    assert_eq!(o["instance_state"], "completed:not_notified", "{o}");
    assert_eq!(attempts, [500, 500, 500]);
    assert_eq!(
        metric(
            &client,
            &base,
            "orderflow_notifications_total",
            "kind=\"webhook\",outcome=\"failed\""
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &client,
            &base,
            "orderflow_notifications_total",
            "kind=\"webhook\",outcome=\"delivered\""
        )
        .await,
        2.0
    );
    let (_, audit) = get_json(&client, &format!("{base}/api/v1/orders/{c}/audit")).await;
    assert!(
        audit.to_string().contains("tell: succeeded"),
        "the step itself does not fail: {audit:#}"
    );

    daemon.shutdown().await;
    sim.stop().await;
}
