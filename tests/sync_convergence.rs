//! Sync converges through lossy webhooks: the simulator drops 30% of its
//! webhooks, duplicates 20% and reorders the rest, while 1,000 orders go
//! through a workflow that marks each shipped on TikTok once. Afterwards
//! every order's status in orderflow is the simulator's truth, reached by
//! polling within a couple of polling intervals of the simulator settling,
//! and the simulator's ledger shows exactly one successful ship per order.

mod common;

use common::{sim_rig, SimRig};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{eventually, get_json, post_json, wait_ready};
use orderflow::config::Dur;
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;

const ORDERS_PER_SHOP: usize = 500;
const POLL_INTERVAL: Duration = Duration::from_secs(2);
const QPS: u32 = 500;

const WORKFLOW: &str = r#"
name: ship_once
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: ship
    call: tiktok.mark_shipped
    with:
      tracking_number: "TN${{ order.id }}"
      shipping_provider_id: "6617675021119438849"
    retry: { max_attempts: 20, initial_delay: 200ms, max_delay: 2s }
  - id: done
    end: shipped
"#;

#[actix_rt::test]
async fn lossy_webhooks_and_polling_converge_with_one_ship_per_order() {
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "conv",
        SimulatorArgs {
            qps: QPS,
            manual_carrier: true,
            webhook_drop_rate: 0.3,
            webhook_duplicate_rate: 0.2,
            webhook_reorder_rate: 1.0,
            workers: 2,
            ..Default::default()
        },
        f64::from(QPS),
        ("ship_once.yaml", WORKFLOW),
    )
    .await;
    let sim_url = sim.base_url();
    cfg.sync.poll_interval = Dur(POLL_INTERVAL);
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;

    // 1,000 orders awaiting shipment, across both shops.
    let started = Instant::now();
    let mut ids = Vec::new();
    for (shop, _) in sim.shops() {
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders"),
            &serde_json::json!({"shop_id": shop, "count": ORDERS_PER_SHOP}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        ids.extend(
            v["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(ids.len(), 2 * ORDERS_PER_SHOP);

    // The workflow ships every order on TikTok.
    let ledger_url = format!("{sim_url}/sim/ledger?action=mark_shipped");
    eventually(Duration::from_secs(600), "every order shipped", || {
        let (c, u) = (client.clone(), ledger_url.clone());
        let n = ids.len();
        async move {
            let (_, v) = get_json(&c, &u).await;
            let ok = v["entries"]
                .as_array()?
                .iter()
                .filter(|e| e["ok"] == true)
                .count();
            (ok >= n).then_some(())
        }
    })
    .await;
    println!(
        "all {} orders shipped after {:?}",
        ids.len(),
        started.elapsed()
    );

    // The carrier moves half of them on (more webhooks, lossy as ever);
    // then nothing changes any more: the simulator has settled.
    let moved: Vec<&String> = ids.iter().step_by(2).collect();
    common::sim_deliver(&client, &sim_url, &moved).await;
    let settled = Instant::now();
    let mut truth: HashMap<String, String> = HashMap::new();
    for id in &ids {
        let (st, v) = get_json(&client, &format!("{sim_url}/sim/orders/{id}")).await;
        assert_eq!(st, 200);
        truth.insert(id.clone(), v["status"].as_str().unwrap().to_string());
    }
    let delivered = truth.values().filter(|s| *s == "DELIVERED").count();
    assert_eq!(delivered, moved.len(), "the simulator's truth: {delivered}");

    // Every order converges to the truth.
    let store = daemon.store.clone();
    let mut lagging = None;
    eventually(Duration::from_secs(300), "every order to converge", || {
        let behind: Vec<&String> = ids
            .iter()
            .filter(|id| {
                let s = store
                    .load_order(id)
                    .ok()
                    .flatten()
                    .and_then(|r| r.order.map(|o| o.status.as_str().to_string()));
                s.as_deref() != Some(truth[*id].as_str())
            })
            .collect();
        lagging.get_or_insert(behind.len());
        async move { behind.is_empty().then_some(()) }
    })
    .await;
    let took = settled.elapsed();
    println!(
        "converged {} orders {:?} after the simulator settled ({:.1} polling intervals of {:?}); {} were still behind at the first check",
        ids.len(),
        took,
        took.as_secs_f64() / POLL_INTERVAL.as_secs_f64(),
        POLL_INTERVAL,
        lagging.unwrap_or(0)
    );

    // Zero duplicate effects: one successful ship per order on TikTok, and
    // every workflow finished.
    let (_, v) = get_json(&client, &ledger_url).await;
    let entries = v["entries"].as_array().unwrap();
    let mut ok_per_order: HashMap<&str, usize> = HashMap::new();
    for e in entries.iter().filter(|e| e["ok"] == true) {
        *ok_per_order
            .entry(e["order_id"].as_str().unwrap())
            .or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            ok_per_order.get(id.as_str()).copied().unwrap_or(0),
            1,
            "order {id} shipped a number of times other than one"
        );
    }
    assert_eq!(ok_per_order.len(), ids.len(), "ships of unknown orders");
    for id in &ids {
        let (_, o) = get_json(&client, &format!("{base}/api/v1/orders/{id}")).await;
        assert_eq!(o["instance_state"], "completed:shipped", "{o}");
    }
    let outcomes = common::webhook_outcomes(&client, &sim_url).await;
    let (_, hooks) = get_json(&client, &format!("{sim_url}/sim/webhooks")).await;
    assert!(
        outcomes.get("dropped").copied().unwrap_or(0) > 0,
        "the simulator dropped no webhook: {outcomes:?}"
    );
    let (_, stats) = get_json(&client, &format!("{sim_url}/sim/stats")).await;
    println!(
        "webhook deliveries by outcome: {outcomes:?}; mark_shipped calls: {} ({} failed or duplicate); TikTok endpoint calls: {}",
        entries.len(),
        entries.len() - ids.len(),
        stats["endpoints"]
    );
    // Each notification is stored and processed once, however many times
    // (and however simultaneously) it was delivered: orderflow accepted at
    // least every notification it answered 200 to, and at most every one
    // the simulator tried to deliver.
    let distinct = |outcomes: &[&str]| {
        hooks["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| outcomes.contains(&d["outcome"].as_str().unwrap()))
            .map(|d| d["notification_id"].as_str().unwrap())
            .collect::<std::collections::HashSet<_>>()
            .len() as f64
    };
    let accepted = common::metric(
        &client,
        &base,
        "orderflow_webhooks_total",
        r#"result="accepted""#,
    )
    .await;
    assert!(
        distinct(&["delivered"]) <= accepted && accepted <= distinct(&["delivered", "failed"]),
        "{accepted} webhooks accepted for {} distinct notifications delivered",
        distinct(&["delivered"])
    );
    println!(
        "duplicates refused by orderflow: {}",
        common::metric(
            &client,
            &base,
            "orderflow_webhooks_total",
            r#"result="duplicate""#
        )
        .await
    );

    daemon.shutdown().await;
    sim.stop().await;
}
