//! An operator's cancel goes through TikTok (a seller cancellation, once)
//! and runs the workflow's compensations.

mod common;

use std::time::Duration;

use common::{eventually, get_json, post_json, sim_config, wait_ready, Recorder};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs};

#[actix_rt::test]
async fn operator_cancel_cancels_on_tiktok_and_compensates() {
    let recorder = Recorder::start();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = l.local_addr().unwrap().to_string();
    drop(l);
    let sim = simulator::start(SimulatorArgs {
        app_key: "op-app".into(),
        app_secret: "op-secret".into(),
        access_token: "op-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(
        wf.join("w.yaml"),
        format!(
            "name: w\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: reserve\n    call: http.request\n    with: {{ url: \"{url}\", body: {{ order: \"${{{{ order.id }}}}\", step: reserve }} }}\n    compensate:\n      call: http.request\n      with: {{ url: \"{url}\", body: {{ order: \"${{{{ order.id }}}}\", step: unreserve }} }}\n  - id: wait_ok\n    wait:\n      until: \"event.type == 'ok'\"\n      timeout: 1d\n  - id: done\n    end: fulfilled\n",
            url = recorder.url()
        ),
    )
    .unwrap();
    let mut cfg = sim_config(
        &sim,
        "op-app",
        "op-secret",
        "op-token",
        50.0,
        &dir.path().join("data"),
        &wf,
    );
    cfg.server.listen = listen;
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let sim_url = sim.base_url();
    let (_, v) = post_json(
        &client,
        &format!("{sim_url}/sim/orders"),
        &serde_json::json!({"status": "AWAITING_SHIPMENT"}),
    )
    .await;
    let id = v["orders"][0]["order_id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), "the order to wait", || {
        let (c, u) = (client.clone(), format!("{base}/api/v1/orders/{id}"));
        async move { (get_json(&c, &u).await.1["step"] == "wait_ok").then_some(()) }
    })
    .await;
    let (s, _) = post_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/actions/cancel"),
        &serde_json::json!({"reason": "buyer asked by phone"}),
    )
    .await;
    assert_eq!(s, 202);
    eventually(
        Duration::from_secs(30),
        "TikTok to have the order cancelled",
        || {
            let (c, u) = (client.clone(), format!("{sim_url}/sim/orders/{id}"));
            async move { (get_json(&c, &u).await.1["status"] == "CANCELLED").then_some(()) }
        },
    )
    .await;
    let o = eventually(
        Duration::from_secs(30),
        "the order to be cancelled here",
        || {
            let (c, u) = (client.clone(), format!("{base}/api/v1/orders/{id}"));
            async move {
                let o = get_json(&c, &u).await.1;
                (o["lifecycle"] == "cancelled"
                    && o["tiktok_status"] == "CANCELLED"
                    && o["in_flight"].as_array()?.is_empty())
                .then_some(o)
            }
        },
    )
    .await;
    assert_eq!(o["tiktok_status"], "CANCELLED");
    let (_, ledger) = get_json(&client, &format!("{sim_url}/sim/ledger?order_id={id}")).await;
    let cancels: Vec<_> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or("").contains("cancel") && e["ok"] == true)
        .collect();
    assert_eq!(cancels.len(), 1, "{ledger}");
    assert_eq!(recorder.arrivals(&id), ["reserve", "unreserve"]);
    // A second cancel is refused: the order is already cancelled.
    let (s, _) = post_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/actions/cancel"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 409);
    // The reconcile command's endpoint answers with a drift report (the
    // comparison itself is tested in tests/inventory_push.rs).
    let (s, r) = get_json(&client, &format!("{base}/api/v1/inventory/reconcile")).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["checked"].is_u64() && r["drifts"].is_array(), "{r}");
    daemon.shutdown().await;
    sim.stop().await;
}
