//! Admission control with a real daemon process and the simulator: at most
//! `[runtime] max_active_orders` orders are live at once; the rest are
//! stored, acknowledged and wait (reported on `/readyz` and in the
//! metrics); a SIGKILL while orders wait loses none of them; every order is
//! shipped once with one label.

mod common;

use std::time::Duration;

use common::{
    free_addr, get_json, import_stock, labels_per_order, metric, post_json, ships_per_order,
    sim_daemon_config, sim_first_sku, sim_orders, standard_workflows, wait_ready, Daemon,
};

const MAX_ACTIVE: usize = 3;
const ORDERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_past_the_limit_wait_stored_and_all_finish_once_even_across_a_kill() {
    let listen = free_addr();
    let (sim_url, shops) = common::one_shop_simulator("ad", &listen);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let stock = sim_first_sku(&client, &sim_url).await;
    let dir = tempfile::tempdir().unwrap();
    let wf = standard_workflows(dir.path());
    let config = sim_daemon_config(
        dir.path(),
        &sim_url,
        &shops[0],
        ("ad-app-key", "ad-app-secret", "ad-access-token"),
        &format!("[runtime]\nmax_active_orders = {MAX_ACTIVE}\n\n[sync]\npoll_interval = \"1s\""),
    );
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let start = || Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);
    let mut daemon = start();
    wait_ready(&client, &daemon.base).await;
    import_stock(&client, &daemon.base, &stock, 1_000).await;

    // Each label takes 400 ms to buy, so an order holds its slot a while.
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({"latency_ms": 400}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let ids = sim_orders(&client, &sim_url, &stock.1, ORDERS).await;

    // While they arrive: never more live actors than the limit, and a
    // backlog that /readyz and the metrics report.
    let mut peak_active = 0.0f64;
    let mut said_backlog = None;
    let mut peak_waiting = 0.0f64;
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < watch_until {
        peak_active =
            peak_active.max(metric(&client, &daemon.base, "orderflow_actors_active", "").await);
        let waiting = metric(&client, &daemon.base, "orderflow_admission_waiting", "").await;
        peak_waiting = peak_waiting.max(waiting);
        let r = client
            .get(format!("{}/readyz", daemon.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "waiting orders keep the daemon ready"
        );
        let text = r.text().await.unwrap();
        if text.contains("backlog") {
            said_backlog = Some(text);
        }
        if said_backlog.is_some() && waiting >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said = said_backlog.expect("/readyz never reported the backlog");
    assert!(said.contains("orders waiting to start"), "{said}");
    assert!(peak_waiting >= 5.0, "orders waited: {peak_waiting}");

    // Killed while orders wait: their events are in the inbox.
    daemon.kill9();
    common::assert_indexes_match(&data);
    daemon = start();
    wait_ready(&client, &daemon.base).await;
    let (st, _) = post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({"latency_ms": 100}),
    )
    .await;
    assert_eq!(st, 200);
    let base = daemon.base.clone();
    // Sampled all the while the backlog drains after the restart.
    let sampler = {
        let (c, b) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
            while tokio::time::Instant::now() < give_up {
                let waiting = metric(&c, &b, "orderflow_admission_waiting", "").await;
                peak = peak.max(metric(&c, &b, "orderflow_actors_active", "").await);
                if waiting == 0.0 && peak > 0.0 {
                    return peak;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let mut done = 0;
    for id in &ids {
        common::shipped(&client, &base, id, Duration::from_secs(120)).await;
        done += 1;
    }
    peak_active = peak_active.max(sampler.await.unwrap());
    assert_eq!(done, ORDERS);
    println!("peak live actors {peak_active}, peak waiting {peak_waiting}");
    assert!(
        peak_active <= MAX_ACTIVE as f64,
        "at most {MAX_ACTIVE} orders live at once, saw {peak_active}"
    );
    assert!(
        metric(
            &client,
            &base,
            "orderflow_admission_eager_passivations_total",
            ""
        )
        .await
            >= 1.0,
        "idle actors made room while orders waited"
    );

    // Exactly one label and one ship per order.
    let labels = labels_per_order(&client, &sim_url).await;
    let ships = ships_per_order(&client, &sim_url).await;
    for id in &ids {
        assert_eq!(labels.get(id), Some(&(1, 0)), "{id}: {labels:?}");
        assert_eq!(ships.get(id), Some(&1), "{id}: {ships:?}");
    }
    // The backlog drains: /readyz says plain "ready" again.
    common::eventually(Duration::from_secs(30), "no backlog", || {
        let (c, u) = (client.clone(), format!("{base}/readyz"));
        async move {
            let r = c.get(u).send().await.ok()?;
            (r.text().await.ok()? == "ready").then_some(())
        }
    })
    .await;
    let (_, stats) = get_json(&client, &format!("{base}/api/v1/stats")).await;
    assert!(stats.is_object(), "{stats}");
    daemon.kill9();
    common::assert_indexes_match(&data);
}
