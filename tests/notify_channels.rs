//! A channel the configuration does not define (issue 21): the validator
//! refuses a workflow that names one, at start, on upload and when asked,
//! and a send to one at run time stops the order for an operator instead
//! of "succeeding" with nothing sent. (Its own process: the metrics are
//! process-wide.)

mod common;

use std::time::Duration;

use common::{eventually, get_json, metric, post_json, sim_rig, wait_ready, Inbox, SimRig};
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
      text: "Order ${{ order.id }} is ready to pack"
  - id: done
    end: notified
"#;

/// A channel the configuration does not define: a workflow that names one
/// is taken out of force at start (the others run), and refused on upload
/// and by validation, at the `line:col` of the name and with the channels
/// that are defined; a name an expression computes, which nothing could
/// check before, stops the order for an operator with the reason instead
/// of "succeeding" with nothing sent.
#[actix_rt::test]
async fn a_channel_the_config_does_not_define_is_refused_and_never_silently_dropped() {
    let inbox = Inbox::start();
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "nc",
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
    let typo = WORKFLOW
        .replace("name: tell_ops", "name: typo")
        .replace("channel: ops", "channel: opz")
        .replace(
            "  on: AWAITING_SHIPMENT",
            "  on: AWAITING_SHIPMENT\n  when: \"order.id == 'never'\"",
        );
    std::fs::write(cfg.workflows.dir.join("typo.yaml"), &typo).unwrap();
    cfg.notify.channels.insert(
        "ops".into(),
        orderflow::notify::Secret::new(inbox.url()).into(),
    );
    cfg.notify.default_channel = "ops".into();
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = common::http();
    wait_ready(&client, &base).await;

    // At start: the workflow with the typo is out of force, the other runs.
    let (_, list) = get_json(&client, &format!("{base}/api/v1/workflows")).await;
    let in_force: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["current"] == true)
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(in_force, ["tell_ops"], "{list}");
    assert_eq!(
        metric(&client, &base, "orderflow_workflows_invalid", "").await,
        1.0
    );

    // Upload and validation refuse it, saying where and what is defined.
    let line = typo.lines().position(|l| l.contains("opz")).unwrap() + 1;
    let col = typo.lines().nth(line - 1).unwrap().find("opz").unwrap() + 1;
    let refused = |v: &serde_json::Value| {
        let d = &v["diagnostics"][0];
        assert_eq!(v["valid"], false, "{v}");
        assert_eq!(
            (d["line"].as_u64(), d["col"].as_u64()),
            (Some(line as u64), Some(col as u64)),
            "{v}"
        );
        let m = d["message"].as_str().unwrap();
        assert!(
            m.contains("channel \"opz\"") && m.contains("[notify.channels]: ops"),
            "{m}"
        );
    };
    let r = client
        .put(format!("{base}/api/v1/workflows/typo"))
        .body(typo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    refused(&r.json().await.unwrap());
    let r = client
        .post(format!("{base}/api/v1/workflows/validate"))
        .body(typo.clone())
        .send()
        .await
        .unwrap();
    refused(&r.json().await.unwrap());
    // Fixed, it saves (and reloads: the folder holds no invalid file).
    let r = client
        .put(format!("{base}/api/v1/workflows/typo"))
        .body(typo.replace("opz", "ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    // A name computed at run time that is not defined: the order stops for
    // an operator, with why; nothing is "sent".
    let computed = WORKFLOW.replace("channel: ops", "channel: \"${{ 'op' + 'z' }}\"");
    let r = client
        .put(format!("{base}/api/v1/workflows/tell_ops"))
        .body(computed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/orders"),
        &serde_json::json!({"status": "AWAITING_SHIPMENT"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["orders"][0]["order_id"].as_str().unwrap().to_string();
    let o = eventually(Duration::from_secs(30), "the order stopped", || {
        let (c, u) = (client.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = get_json(&c, &u).await;
            (o["lifecycle"] == "exception").then_some(o)
        }
    })
    .await;
    let why = o["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("tell") && why.contains("\"opz\"") && why.contains("[notify.channels]: ops"),
        "{o}"
    );
    assert!(
        !inbox
            .attempts()
            .iter()
            .any(|(b, _)| b["event"]["order_id"] == id.as_str()),
        "nothing sent"
    );
    daemon.shutdown().await;
    sim.stop().await;
}
