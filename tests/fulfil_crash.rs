//! A crash between "label bought" and "checkpoint written". The label API
//! answers slowly (its latency comes *after* the purchase, like a provider
//! whose answer is lost), and the real daemon process is SIGKILLed right
//! after a purchase lands, several times, with several orders in flight.
//! The restarted daemon re-issues the purchase with the same idempotency
//! key: the label simulator's ledger shows exactly one `buy` per order
//! (repeats appear as `buy_replayed`), and every order ships with the
//! tracking number of its one label, its one unit of stock committed.

mod common;

use common::free_addr;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, get_json, post_json, wait_ready, Daemon};
use orderflow::simulator::{self, SimulatorArgs};

const PER_ROUND: usize = 3;
const KILLS: usize = 3;
const ORDERS: usize = PER_ROUND * KILLS;

/// The simulator in its own thread and actix system, so it outlives the
/// daemons and the test's blocking waits never stall it.
fn start_simulator(args: SimulatorArgs) -> (String, Vec<(String, String)>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let sim = simulator::start(args).await.unwrap();
            tx.send((sim.base_url(), sim.shops().to_vec())).unwrap();
            std::future::pending::<()>().await;
        })
    });
    rx.recv().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_bought_before_a_crash_is_never_bought_again() {
    let listen = free_addr();
    let (sim_url, shops) = start_simulator(SimulatorArgs {
        app_key: "cr-app-key".into(),
        app_secret: "cr-app-secret".into(),
        access_token: "cr-access-token".into(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 10_000,
        ..Default::default()
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (_, sim_shops) = get_json(&client, &format!("{sim_url}/sim/shops")).await;
    let warehouse = sim_shops["shops"][0]["warehouse_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sku = sim_shops["skus"][0]["id"].as_str().unwrap().to_string();
    let product = sim_shops["skus"][0]["product_id"]
        .as_str()
        .unwrap()
        .to_string();

    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/standard.yaml"),
        wf.join("standard.yaml"),
    )
    .unwrap();
    let (shop, cipher) = &shops[0];
    let config = dir.path().join("orderflow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[tiktok]
base_url = "{sim_url}"
auth_url = "{sim_url}"
app_key = "cr-app-key"
app_secret = "cr-app-secret"

[[tiktok.shops]]
id = "{shop}"
cipher = "{cipher}"
access_token = "cr-access-token"
refresh_token = "sim-refresh-token"
qps = 1000.0

[shipping]
label_api_url = "{sim_url}/labels/v1"

[shipping.provider_ids]
USPS = "6617675021119438849"
UPS = "6617675021119438850"
FedEx = "6617675021119438851"

[sync]
poll_interval = "1s"
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let start = || Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);

    let mut daemon = start();
    wait_ready(&client, &daemon.base).await;
    let r = client
        .post(format!("{}/api/v1/inventory/import", daemon.base))
        .body(format!(
            "sku_id,warehouse_id,on_hand,product_id\n{sku},{warehouse},100,{product}\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

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
        let (st, v) = post_json(
            &client,
            &format!("{sim_url}/sim/orders"),
            &serde_json::json!({"items": [{"sku_id": sku, "quantity": 1}], "count": PER_ROUND, "status": "AWAITING_SHIPMENT"}),
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
        eventually(Duration::from_secs(40), "the order shipped", || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                (o["step"] == "wait_delivery").then_some(())
            }
        })
        .await;
    }

    // One purchase per order; the crashes show up as replays.
    let (_, labels) = get_json(&client, &format!("{sim_url}/sim/labels/ledger")).await;
    let entries = labels["entries"].as_array().unwrap();
    let count = |a: &str| entries.iter().filter(|e| e["action"] == a).count();
    assert_eq!(count("buy"), ORDERS, "{labels:#}");
    assert_eq!(count("void"), 0, "{labels:#}");
    assert!(
        count("buy_replayed") >= 1,
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
        "{} buys, {} replays over {KILLS} kills",
        count("buy"),
        count("buy_replayed")
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}
