//! A crash between "label bought" and "checkpoint written". The label API
//! answers slowly (its latency comes *after* the purchase, like a provider
//! whose answer is lost), and the real daemon process is SIGKILLed right
//! after a purchase lands, several times, with several orders in flight.
//! EasyPost takes no idempotency key: the restarted daemon finds the
//! purchase it had recorded as started at the provider (by the shipment it
//! recorded, else the order's reference) and takes that label: the
//! simulator's ledger shows exactly one `buy` per order, the orders whose
//! answer was lost say their label was `recovered`, and every order ships
//! with the tracking number of its one label, its one unit of stock
//! committed.

mod common;

use common::free_addr;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    eventually, get_json, import_stock, post_json, sim_daemon_config, sim_first_sku, sim_orders,
    standard_workflows, wait_ready, Daemon,
};

const PER_ROUND: usize = 3;
const KILLS: usize = 3;
const ORDERS: usize = PER_ROUND * KILLS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_bought_before_a_crash_is_never_bought_again() {
    let listen = free_addr();
    let (sim_url, shops) = common::one_shop_simulator("cr", &listen);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let stock = sim_first_sku(&client, &sim_url).await;
    let sku = stock.1.clone();

    let dir = tempfile::tempdir().unwrap();
    let wf = standard_workflows(dir.path());
    let config = sim_daemon_config(
        dir.path(),
        &sim_url,
        &shops[0],
        ("cr-app-key", "cr-app-secret", "cr-access-token"),
        "[sync]\npoll_interval = \"1s\"",
    );
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let start = || Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);

    let mut daemon = start();
    wait_ready(&client, &daemon.base).await;
    import_stock(&client, &daemon.base, &stock, 100).await;

    // Every label API answer comes 3 s after the work is done (room for a
    // busy machine to notice a purchase and kill in between).
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({"latency_ms": 3000}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let bought = |client: reqwest::Client, sim_url: String| async move {
        let (_, l) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
        l["bought"].as_u64().unwrap()
    };
    let mut seen = 0;
    let mut ids: Vec<String> = Vec::new();
    for kill in 0..KILLS {
        // A few new orders each round.
        ids.extend(sim_orders(&client, &sim_url, &sku, PER_ROUND).await);
        // A purchase just landed; its answer is still 3 s away.
        seen = eventually(Duration::from_secs(40), "a label purchase", || {
            let (c, s) = (client.clone(), sim_url.clone());
            async move {
                let n = bought(c, s).await;
                (n > seen).then_some(n)
            }
        })
        .await;
        println!("kill {kill}: {seen} labels bought");
        daemon.kill9();
        common::assert_indexes_match(&data);
        daemon = start();
        wait_ready(&client, &daemon.base).await;
    }

    // Every order ships, the label API answers at once again.
    let (st, _) = post_json(
        &client,
        &format!("{sim_url}/sim/labels/faults"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(st, 200);
    let base = daemon.base.clone();
    for id in &ids {
        common::shipped(&client, &base, id, Duration::from_secs(40)).await;
    }

    // One purchase per order; the crashes show up as replays.
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    let entries = labels["entries"].as_array().unwrap();
    let count = |a: &str| entries.iter().filter(|e| e["action"] == a).count();
    assert_eq!(count("buy"), ORDERS, "{labels:#}");
    assert_eq!(count("refund"), 0, "{labels:#}");
    let mut recovered = 0;
    for id in &ids {
        let (_, l) = get_json(&client, &format!("{base}/api/v1/orders/{id}/label")).await;
        if l["label"]["recovered"] == true {
            recovered += 1;
        }
    }
    assert!(
        recovered >= 1,
        "no kill landed while a purchase was unanswered: {labels:#}"
    );
    let buys: BTreeSet<String> = entries
        .iter()
        .filter(|e| e["action"] == "buy")
        .map(|e| e["tracking_number"].as_str().unwrap().to_string())
        .collect();
    // TikTok got the tracking number of each order's one label.
    let mut tracked = BTreeSet::new();
    for id in &ids {
        let (_, o) = get_json(&client, &format!("{sim_url}/sim/orders/{id}")).await;
        let tn = o["order"]["tracking_number"].as_str().unwrap().to_string();
        assert!(buys.contains(&tn), "{id}: {tn} is not a bought label");
        tracked.insert(tn);
    }
    assert_eq!(tracked, buys);
    // Nor was stock taken twice: each order's one unit is committed.
    let (_, stock) = get_json(&client, &format!("{base}/api/v1/inventory/{sku}")).await;
    assert_eq!(
        (stock["on_hand"].as_u64(), stock["reserved"].as_u64()),
        (Some(100 - ORDERS as u64), Some(0)),
        "{stock}"
    );
    println!(
        "{} buys, {recovered} found at the provider after a kill, over {KILLS} kills",
        count("buy")
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}
