//! A buyer cancellation, as TikTok reports it (the simulator's webhook,
//! hydrated into a CANCELLED order), stops the running workflow and runs
//! the compensations of the steps already done, in reverse order, once
//! each. The steps and compensations are `http.request` calls to a
//! recording server, which also holds one call in flight on demand: a
//! cancellation arriving then waits for that call and compensates it too.

mod common;

use common::{sim_rig, SimRig};

use std::time::Duration;

use common::{eventually, get_json, post_json, wait_ready, Recorder};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;

fn workflow(url: &str) -> String {
    let call = |step: &str| {
        format!(
            "call: http.request\n    with:\n      url: \"{url}\"\n      body: {{ order: \"${{{{ order.id }}}}\", step: {step} }}"
        )
    };
    let comp = |step: &str| {
        format!(
            "compensate:\n      call: http.request\n      with:\n        url: \"{url}\"\n        body: {{ order: \"${{{{ order.id }}}}\", step: {step} }}"
        )
    };
    format!(
        r#"
name: saga
trigger:
  on: ON_HOLD
steps:
  - id: reserve
    {}
    {}
  - id: label
    {}
    {}
  - id: notify
    {}
    {}
  - id: wait_release
    wait:
      until: "event.type == 'status' && event.status == 'AWAITING_SHIPMENT'"
      timeout: 1h
  - id: done
    end: fulfilled
"#,
        call("reserve"),
        comp("release"),
        call("label"),
        comp("void"),
        call("notify"),
        comp("unnotify"),
    )
}

async fn order(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    get_json(client, &format!("{base}/api/v1/orders/{id}"))
        .await
        .1
}

#[actix_rt::test]
async fn a_buyer_cancellation_compensates_done_steps_in_reverse_once_each() {
    let recorder = Recorder::start();
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "cancel",
        SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            ..Default::default()
        },
        50.0,
        ("saga.yaml", &workflow(&recorder.url())),
    )
    .await;
    let sim_url = sim.base_url();
    // A held call must outlast the cancellation, not time out.
    cfg.actions.http_timeout = orderflow::config::Dur(Duration::from_secs(120));
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;
    let create = |client: reqwest::Client, sim_url: String| async move {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders"),
            &serde_json::json!({"status": "ON_HOLD"}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        v["orders"][0]["order_id"].as_str().unwrap().to_string()
    };
    let cancel = |client: reqwest::Client, sim_url: String, id: String| async move {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders/{id}/buyer_cancel"),
            &serde_json::json!({}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    };

    // 1. Every step done, the workflow waiting: the buyer cancels.
    let a = create(client.clone(), sim_url.clone()).await;
    eventually(Duration::from_secs(60), "order A to wait", || {
        let (c, b, a) = (client.clone(), base.clone(), a.clone());
        async move {
            let o = order(&c, &b, &a).await;
            (o["step"] == "wait_release" && o["in_flight"].as_array()?.is_empty()).then_some(())
        }
    })
    .await;
    assert_eq!(recorder.arrivals(&a), ["reserve", "label", "notify"]);
    cancel(client.clone(), sim_url.clone(), a.clone()).await;
    let done = eventually(Duration::from_secs(60), "order A cancelled", || {
        let (c, b, a) = (client.clone(), base.clone(), a.clone());
        let n = recorder.arrivals(&a).len();
        async move {
            let o = order(&c, &b, &a).await;
            (o["instance_state"] == "cancelled" && n >= 6).then_some(o)
        }
    })
    .await;
    assert_eq!(done["tiktok_status"], "CANCELLED");
    assert_eq!(
        recorder.arrivals(&a),
        ["reserve", "label", "notify", "unnotify", "void", "release"],
        "compensations in reverse order, once each"
    );

    // 2. The buyer cancels while `label` is in flight: the cancellation
    // waits for it, then compensates it too; `notify` never runs.
    recorder.hold("label");
    let b = create(client.clone(), sim_url.clone()).await;
    eventually(
        Duration::from_secs(60),
        "order B's label call in flight",
        || {
            let n = recorder.arrivals(&b);
            async move { (n == ["reserve", "label"]).then_some(()) }
        },
    )
    .await;
    cancel(client.clone(), sim_url.clone(), b.clone()).await;
    let seen = eventually(
        Duration::from_secs(60),
        "order B to learn of the cancellation",
        || {
            let (c, base, b) = (client.clone(), base.clone(), b.clone());
            async move {
                let o = order(&c, &base, &b).await;
                (o["tiktok_status"] == "CANCELLED").then_some(o)
            }
        },
    )
    .await;
    // Give a wrong implementation the chance to compensate early; a right
    // one passes whatever the wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recorder.arrivals(&b),
        ["reserve", "label"],
        "nothing compensated while label is in flight: {seen}"
    );
    let o = order(&client, &base, &b).await;
    assert_ne!(o["instance_state"], "cancelled", "{o}");
    assert!(
        o["in_flight"]
            .as_array()
            .is_some_and(|f| f.iter().any(|e| e["action"] == "http.request")),
        "label still in flight: {o}"
    );
    recorder.release("label");
    eventually(Duration::from_secs(60), "order B cancelled", || {
        let (c, base, b) = (client.clone(), base.clone(), b.clone());
        let n = recorder.arrivals(&b).len();
        async move {
            let o = order(&c, &base, &b).await;
            (o["instance_state"] == "cancelled" && n >= 4).then_some(())
        }
    })
    .await;
    assert_eq!(
        recorder.arrivals(&b),
        ["reserve", "label", "void", "release"],
        "the in-flight label voided after it finished, then the reservation released"
    );
    {
        let r = recorder.seen.lock().unwrap();
        let answered: Vec<&str> = r
            .answered
            .iter()
            .filter(|(o, _)| *o == b)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(answered, ["reserve", "label", "void", "release"]);
        // Once each: one idempotency key per (order, step), applied once,
        // and no request repeated.
        for id in [&a, &b] {
            for ((o, step), keys) in r.keys.iter().filter(|((o, _), _)| o == id) {
                assert_eq!(keys.len(), 1, "{o} {step}: {keys:?}");
            }
        }
        assert_eq!(r.duplicates, 0);
        assert_eq!(r.requests, 10);
    }
    // The audit tells the same story: TikTok (a webhook) reported the
    // cancellation, and each done step was compensated once, last first.
    for (id, expected) in [
        (&a, vec!["notify", "label", "reserve"]),
        (&b, vec!["label", "reserve"]),
    ] {
        let (_, audit) = get_json(&client, &format!("{base}/api/v1/orders/{id}/audit")).await;
        let entries = audit.as_array().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e["source"] == "webhook"
                    && e["detail"] == "TikTok status ON_HOLD → CANCELLED"),
            "{audit:#}"
        );
        let compensated: Vec<&str> = entries
            .iter()
            .filter_map(|e| {
                e["detail"]
                    .as_str()?
                    .strip_suffix(": compensated with http.request")
            })
            .collect();
        assert_eq!(compensated, expected, "{audit:#}");
    }

    daemon.shutdown().await;
    sim.stop().await;
}
