//! An operator's cancel goes through TikTok (a seller cancellation, once)
//! and runs the workflow's compensations. The operator picks a reason
//! kind; TikTok gets the official key for the shop's market and the
//! order's status (paid, unpaid, UK).

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
    // The second shop is a UK shop: orderflow reads its market from Get
    // Authorized Shops (the configuration does not say).
    let uk_shop = sim.shops()[1].0.clone();
    let (s, v) = post_json(
        &reqwest::Client::new(),
        &format!("{}/sim/shops/{uk_shop}", sim.base_url()),
        &serde_json::json!({"region": "GB"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
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
    // Without a TikTok reason the cancel is refused while TikTok would take
    // one; the reasons offered are those of a paid US order.
    let (s, v) = post_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/actions/cancel"),
        &serde_json::json!({"reason": "buyer asked by phone"}),
    )
    .await;
    assert_eq!(s, 400, "a cancel_reason is needed: {v}");
    assert!(
        v["error"].as_str().unwrap().contains("cancel_reason"),
        "{v}"
    );
    let (s, offered) = get_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/cancel-reasons"),
    )
    .await;
    assert_eq!(s, 200, "{offered}");
    let keys: Vec<&str> = offered["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "seller_cancel_reason_out_of_stock",
            "seller_cancel_reason_wrong_price",
            "seller_cancel_paid_reason_address_not_deliver",
            "seller_cancel_paid_reason_buyer_requested_cancellation"
        ],
        "{offered}"
    );
    let (s, _) = post_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/actions/cancel"),
        &serde_json::json!({"reason": "buyer asked by phone", "cancel_reason": "buyer_requested"}),
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
    assert_eq!(
        cancels[0]["detail"],
        "cancelled: seller_cancel_paid_reason_buyer_requested_cancellation"
    );
    assert_eq!(recorder.arrivals(&id), ["reserve", "unreserve"]);
    // A second cancel is refused: the order is already cancelled.
    let (s, _) = post_json(
        &client,
        &format!("{base}/api/v1/orders/{id}/actions/cancel"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 409);
    // An unpaid order gets the unpaid key; a UK shop's order the _uk key.
    let shops: Vec<String> = sim.shops().iter().map(|(s, _)| s.clone()).collect();
    let unpaid = common::sim_orders_in(&client, &sim_url, &shops[0], "UNPAID", 1).await;
    let uk = common::sim_orders_in(&client, &sim_url, &shops[1], "AWAITING_SHIPMENT", 1).await;
    for (order, want) in [
        (
            &unpaid[0],
            "cancelled: seller_cancel_unpaid_reason_out_of_stock",
        ),
        (&uk[0], "cancelled: seller_cancel_reason_out_of_stock_uk"),
    ] {
        eventually(Duration::from_secs(30), "the order to be fetched", || {
            let (c, u) = (client.clone(), format!("{base}/api/v1/orders/{order}"));
            async move {
                get_json(&c, &u).await.1["tiktok_status"]
                    .is_string()
                    .then_some(())
            }
        })
        .await;
        // The CLI lists what TikTok takes for this order, and cancels with
        // a kind (the CLI blocks: off the daemon's thread).
        let cli = |args: Vec<String>| {
            let base = base.clone();
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new(common::bin())
                    .args(["--url", &base])
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                String::from_utf8(out.stdout).unwrap()
            })
        };
        let s = |x: &str| x.to_string();
        // A reason TikTok has not for this order is refused here, before
        // anything is cancelled (the UK lists no "buyer requested").
        if order == &uk[0] {
            let (st, v) = post_json(
                &client,
                &format!("{base}/api/v1/orders/{order}/actions/cancel"),
                &serde_json::json!({"cancel_reason": "buyer_requested"}),
            )
            .await;
            assert_eq!(st, 409, "{v}");
            assert!(
                v["error"]
                    .as_str()
                    .unwrap()
                    .contains("out_of_stock (seller_cancel_reason_out_of_stock_uk)"),
                "{v}"
            );
            let (_, o) = get_json(&client, &format!("{base}/api/v1/orders/{order}")).await;
            assert_ne!(o["lifecycle"], "cancelled", "{o}");
        }
        let offered = cli(vec![s("orders"), s("cancel-reasons"), order.clone()])
            .await
            .unwrap();
        let key = want.trim_start_matches("cancelled: ");
        assert!(offered.contains(key), "{offered}");
        cli(vec![
            s("orders"),
            s("cancel"),
            order.clone(),
            s("--reason"),
            s("no stock"),
            s("--cancel-reason"),
            s("out_of_stock"),
        ])
        .await
        .unwrap();
        let entry = eventually(Duration::from_secs(30), "TikTok's cancel", || {
            let (c, u) = (
                client.clone(),
                format!("{sim_url}/sim/ledger?order_id={order}&action=cancel"),
            );
            async move {
                let l = get_json(&c, &u).await.1;
                l["entries"].as_array()?.first().cloned()
            }
        })
        .await;
        assert_eq!(entry["detail"], want, "{entry}");
        assert_eq!(entry["ok"], true, "{entry}");
    }
    // The reconcile command's endpoint answers with a drift report (the
    // comparison itself is tested in tests/inventory_push.rs).
    let (s, r) = get_json(&client, &format!("{base}/api/v1/inventory/reconcile")).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["checked"].is_u64() && r["drifts"].is_array(), "{r}");
    daemon.shutdown().await;
    sim.stop().await;
}
