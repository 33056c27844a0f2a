//! The demo tells the truth: `orderflow run` with no configuration runs the
//! built-in simulator on the daemon's clock, so the at-risk, late and
//! late-dispatch figures the daemon reports are the ones the simulated
//! TikTok counts (`GET /sim/deadlines`); `GET /api/v1/about` says it is a
//! demo, at which time scale; and a demo started again in the same folder
//! keeps receiving new orders (the simulator's ids never repeat a run's).
//! Real processes on embedded defaults, the repository's own workflows.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eventually, get_json, metric, post_json, wait_ready, Daemon};
use serde_json::Value;

fn workflows() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `GET /api/v1/about`'s `demo`.
async fn about(c: &reqwest::Client, base: &str) -> Value {
    let (st, v) = get_json(c, &format!("{base}/api/v1/about")).await;
    assert_eq!(st, 200, "{v}");
    v["demo"].clone()
}

async fn orders_total(c: &reqwest::Client, base: &str) -> u64 {
    let (_, v) = get_json(c, &format!("{base}/api/v1/stats")).await;
    v["total"].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn a_demo_restarted_in_the_same_folder_keeps_receiving_new_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("log"));
    let env = [("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "20")];
    let c = client();
    let d = Daemon::start(&data, &workflows(), &log, &env);
    wait_ready(&c, &d.base).await;
    let demo = about(&c, &d.base).await;
    assert_eq!(demo["time_scale"], 3600.0, "{demo}");
    assert_eq!(demo["run"], 1, "{demo}");
    let base = d.base.clone();
    let before = eventually(Duration::from_secs(30), "20 demo orders", || {
        let (c, b) = (c.clone(), base.clone());
        async move {
            let n = orders_total(&c, &b).await;
            (n >= 20).then_some(n)
        }
    })
    .await;
    d.kill9();

    // The same folder: the simulator starts again with the next run
    // number, so its order and notification ids are new to the daemon.
    let d = Daemon::start(&data, &workflows(), &log, &env);
    wait_ready(&c, &d.base).await;
    assert_eq!(about(&c, &d.base).await["run"], 2);
    let base = d.base.clone();
    let after = eventually(Duration::from_secs(30), "20 more demo orders", || {
        let (c, b) = (c.clone(), base.clone());
        async move {
            let n = orders_total(&c, &b).await;
            (n >= before + 20).then_some(n)
        }
    })
    .await;
    let accepted = metric(&c, &base, "orderflow_webhooks_total", "result=\"accepted\"").await;
    let duplicates = metric(
        &c,
        &base,
        "orderflow_webhooks_total",
        "result=\"duplicate\"",
    )
    .await;
    println!(
        "orders before the restart: {before}, after: {after}; webhooks accepted since: {accepted}, duplicates: {duplicates}"
    );
    assert!(accepted >= 20.0, "{accepted}");
    assert_eq!(duplicates, 0.0, "no new webhook is taken for an old one");
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
}

/// Ids of the daemon's orders in lifecycle `state` (up to 200).
async fn in_state(c: &reqwest::Client, base: &str, state: &str) -> Vec<String> {
    let (_, v) = get_json(c, &format!("{base}/api/v1/orders?state={state}&limit=200")).await;
    v["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str().map(str::to_string))
        .collect()
}

#[actix_rt::test]
async fn a_demo_stopped_cleanly_goes_on_with_the_orders_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("log"));
    // TikTok's 2 days of delivery pass in 4.3 s, its 7 days to completion
    // in 15 s: orders shipped just before the stop are still travelling.
    let env = [
        ("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "20"),
        ("ORDERFLOW_DEMO__TIME_SCALE", "40000"),
    ];
    let c = client();
    let d = Daemon::start(&data, &workflows(), &log, &env);
    wait_ready(&c, &d.base).await;
    let sim = about(&c, &d.base).await["simulator"]
        .as_str()
        .unwrap()
        .to_string();
    let base = d.base.clone();
    let travelling = eventually(
        Duration::from_secs(30),
        "10 orders shipped, not delivered",
        || {
            let (c, b) = (c.clone(), base.clone());
            async move {
                let ids = in_state(&c, &b, "fulfilled").await;
                (ids.len() >= 10).then_some(ids)
            }
        },
    )
    .await;
    let (st, v) = post_json(
        &c,
        &format!("{sim}/sim/stream"),
        &serde_json::json!({"orders_per_second": 0}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        data.join("demo-simulator.json").is_file(),
        "a clean stop saves the simulator"
    );

    // The next run's simulator takes them back: the parcels travel on,
    // TikTok's webhooks say so, and the daemon's orders are delivered.
    let d = Daemon::start(&data, &workflows(), &log, &env);
    wait_ready(&c, &d.base).await;
    assert_eq!(about(&c, &d.base).await["run"], 2);
    let base = d.base.clone();
    let want = travelling.clone();
    eventually(
        Duration::from_secs(60),
        "the orders left travelling delivered",
        || {
            let (c, b, want) = (c.clone(), base.clone(), want.clone());
            async move {
                let mut done = in_state(&c, &b, "delivered").await;
                done.extend(in_state(&c, &b, "completed").await);
                want.iter().all(|id| done.contains(id)).then_some(())
            }
        },
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the simulator took back the orders and labels of the earlier run"),
        "the start says so"
    );
    assert!(
        !text.contains("was not returned by order detail"),
        "no earlier order is unknown"
    );
    println!(
        "{} orders left travelling were delivered after the restart",
        travelling.len()
    );
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
}

#[actix_rt::test]
async fn a_saved_simulator_state_is_taken_back_and_a_damaged_one_refused() {
    use orderflow::simulator::{start, Error, Restored, SimulatorArgs};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo-simulator.json");
    let args = |run| SimulatorArgs {
        listen: "127.0.0.1:0".into(),
        run,
        ..Default::default()
    };
    let first = start(args(1)).await.unwrap();
    let shop = first.shops()[0].0.clone();
    let ids =
        common::sim_orders_in(&client(), &first.base_url(), &shop, "AWAITING_SHIPMENT", 3).await;
    assert_eq!(first.save(&path).await.unwrap(), 3);
    first.stop().await;

    let second = start(args(2)).await.unwrap();
    assert_eq!(
        second.restore(&path).await.unwrap(),
        Some(Restored {
            orders: 3,
            labels: 0
        })
    );
    // The next run's simulator answers for the earlier run's orders.
    let (st, v) = get_json(
        &client(),
        &format!("{}/sim/orders/{}", second.base_url(), ids[0]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        second.restore(&path).await.unwrap(),
        Some(Restored {
            orders: 0,
            labels: 0
        }),
        "what it knows already is never replaced"
    );

    // Nothing saved; cut short; another version's: said, nothing taken.
    let missing = dir.path().join("none.json");
    assert_eq!(second.restore(&missing).await.unwrap(), None);
    std::fs::write(&path, br#"{"version":1,"tiktok":{"orders":"#).unwrap();
    let e = second.restore(&path).await.unwrap_err();
    assert!(matches!(e, Error::SavedJson(_)), "{e}");
    std::fs::write(&path, br#"{"version":7,"tiktok":{},"labels":{}}"#).unwrap();
    let e = second.restore(&path).await.unwrap_err();
    assert!(
        matches!(e, Error::SavedVersion { found: 7, reads: 1 }),
        "{e}"
    );
    assert!(e.to_string().contains("version 7"), "{e}");
    second.stop().await;
}

/// The daemon's figures and the simulator's, read one after the other.
async fn figures(c: &reqwest::Client, base: &str, sim: &str) -> (Value, Value) {
    let (_, ours) = get_json(c, &format!("{base}/api/v1/stats")).await;
    // The daemon's default margin (6 h of TikTok's time), as the
    // simulator counts it.
    let (_, theirs) = get_json(c, &format!("{sim}/sim/deadlines?at_risk_margin_secs=21600")).await;
    (ours, theirs)
}

#[actix_rt::test]
async fn the_demos_late_and_at_risk_figures_are_the_simulators() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    // TikTok's 2 days to ship pass in 4.3 s, its 7 days before it cancels
    // an unshipped order in 15 s.
    let d = Daemon::start(
        &dir.path().join("data"),
        &workflows(),
        &dir.path().join("log"),
        &[
            ("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "20"),
            ("ORDERFLOW_DEMO__TIME_SCALE", "40000"),
        ],
    );
    wait_ready(&c, &d.base).await;
    let demo = about(&c, &d.base).await;
    assert_eq!(demo["time_scale"], 40000.0, "{demo}");
    let sim = demo["simulator"].as_str().unwrap().to_string();
    let base = d.base.clone();
    // 3 s of orders shipped in time, then 3 s of orders that cannot get a
    // label (the simulated EasyPost answers 503), then no more orders.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let faults = format!("{sim}/sim/labels/faults");
    let (st, v) = post_json(&c, &faults, &serde_json::json!({"error_rate": 1.0})).await;
    assert_eq!(st, 200, "{v}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stream = format!("{sim}/sim/stream");
    let (st, v) = post_json(&c, &stream, &serde_json::json!({"orders_per_second": 0})).await;
    assert_eq!(st, 200, "{v}");

    // Those orders pass their ship-by deadline unshipped: the daemon
    // counts them late and at risk as the simulator does.
    let (ours, theirs) = eventually(
        Duration::from_secs(15),
        "the same late orders on both sides",
        || {
            let (c, b, s) = (c.clone(), base.clone(), sim.clone());
            async move {
                let (ours, theirs) = figures(&c, &b, &s).await;
                (theirs["late_unshipped"].as_u64()? >= 10
                    && ours["late"] == theirs["late_unshipped"]
                    && ours["at_risk"] == theirs["at_risk"])
                    .then_some((ours, theirs))
            }
        },
    )
    .await;
    println!(
        "unshipped: daemon late {} at risk {}; simulator late {} at risk {}",
        ours["late"], ours["at_risk"], theirs["late_unshipped"], theirs["at_risk"]
    );

    // Labels again: those still retrying ship, late. Once nothing is left
    // to ship (shipped, or cancelled by TikTok), the late dispatches agree.
    let (st, v) = post_json(&c, &faults, &serde_json::json!({})).await;
    assert_eq!(st, 200, "{v}");
    let (ours, theirs) = eventually(Duration::from_secs(40), "nothing left to ship", || {
        let (c, b, s) = (c.clone(), base.clone(), sim.clone());
        async move {
            let (ours, theirs) = figures(&c, &b, &s).await;
            (theirs["at_risk"] == 0 && ours["at_risk"] == 0 && ours["shipped"] == theirs["shipped"])
                .then_some((ours, theirs))
        }
    })
    .await;
    println!(
        "daemon: shipped {} late {} (rate {}); simulator: shipped {} late {}, cancelled for not shipping {}",
        ours["shipped"],
        ours["late_dispatches"],
        ours["late_dispatch_rate"],
        theirs["shipped"],
        theirs["shipped_late"],
        theirs["auto_cancelled"]
    );
    assert!(theirs["shipped"].as_u64().unwrap() >= 20, "{theirs}");
    assert_eq!(
        ours["late_dispatches"], theirs["shipped_late"],
        "{ours}\n{theirs}"
    );
    assert!(
        theirs["shipped_late"].as_u64().unwrap() + theirs["auto_cancelled"].as_u64().unwrap() >= 10,
        "the orders without labels were late: {theirs}"
    );
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
}
