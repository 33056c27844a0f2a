//! Retention on a real store with a clock moved by the test: finished
//! orders older than `keep_days` leave the hot trees for the archive files
//! and stay readable by id; what is not finished, or is recent, stays; the
//! stats' history keeps counting archived orders; dedupe keys expire and a
//! late event for an archived order is kept in the quarantine, never turned
//! into a new order; finished bulk jobs are kept in the store and pruned.
//! (`loadtest --scenario retention` runs the same on a daemon process over
//! hundreds of days, with a restart.)

mod common;

use std::io::Read;
use std::time::Duration;

use common::{get_json, post_json, wire_order, WAIT_WORKFLOW};
use orderflow::daemon::Daemon;
use serde_json::json;

const DAY: Duration = Duration::from_secs(86_400);

fn order(id: &str, status: &str, update_time: i64) -> serde_json::Value {
    let mut o = wire_order(id, update_time);
    o["status"] = json!(status);
    o
}

async fn post_order(
    c: &reqwest::Client,
    base: &str,
    shop: &str,
    event: &str,
    o: serde_json::Value,
) -> serde_json::Value {
    let (st, v) = post_json(
        c,
        &format!("{base}/api/v1/events"),
        &json!({"id": event, "shop_id": shop, "order": o}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// Orders `58000000000000NN` for NN in `range`, in `status`, each through
/// its own event `ev-<id>`: their ids.
async fn post_orders(
    c: &reqwest::Client,
    base: &str,
    shop: &str,
    range: std::ops::Range<usize>,
    status: &str,
    update_time: i64,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in range {
        let id = format!("58000000000000{i:02}");
        post_order(
            c,
            base,
            shop,
            &format!("ev-{id}"),
            order(&id, status, update_time),
        )
        .await;
        ids.push(id);
    }
    ids
}

#[actix_rt::test]
async fn finished_orders_move_to_the_archive_and_stay_readable_by_id() {
    let rig = common::sim_rig(
        "ret",
        common::quiet_sim(),
        50.0,
        ("hold_still.yaml", WAIT_WORKFLOW),
    )
    .await;
    let mut cfg = rig.cfg.clone();
    cfg.retention.keep_days = 90;
    cfg.retention.dedupe_days = 7;
    // Passes only when the test asks.
    cfg.retention.check_every = orderflow::config::Dur(Duration::from_secs(86_400 * 365));
    let data = cfg.store.data_dir.clone();
    let shop = rig.sim.shops()[0].0.clone();
    let (clock, control) = common::manual_clock();
    let daemon = Daemon::start(cfg.clone(), clock.clone()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let c = reqwest::Client::new();
    common::wait_ready(&c, &base).await;
    let t0 = clock.now_ms() / 1000;

    // Day 0: 6 completed, 3 cancelled, 3 still being worked on.
    let mut old = post_orders(&c, &base, &shop, 0..6, "COMPLETED", t0).await;
    old.extend(post_orders(&c, &base, &shop, 6..9, "CANCELLED", t0).await);
    let working = post_orders(&c, &base, &shop, 9..12, "AWAITING_SHIPMENT", t0).await;
    common::eventually(Duration::from_secs(20), "every order stored", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders?limit=100"));
        async move {
            let (_, v) = get_json(&c, &u).await;
            (v["orders"].as_array()?.len() == 12).then_some(())
        }
    })
    .await;
    let (_, stats_before) = get_json(&c, &format!("{base}/api/v1/stats")).await;

    // Day 60: two more complete (recent when the pass runs).
    control.advance(DAY * 60);
    let t60 = clock.now_ms() / 1000;
    let recent = post_orders(&c, &base, &shop, 12..14, "COMPLETED", t60).await;

    // A bulk job (hold the orders being worked on), finished and stored:
    // 31 days old at the pass, so kept.
    let (st, job) = post_json(
        &c,
        &format!("{base}/api/v1/bulk"),
        &json!({"action": "hold", "ids": working, "by": "test", "reason": "stock count"}),
    )
    .await;
    assert_eq!(st, 202, "{job}");
    let job_id = job["job"].as_str().unwrap().to_string();
    common::eventually(Duration::from_secs(20), "the job finished", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/bulk/{job_id}"));
        async move {
            let (_, j) = get_json(&c, &u).await;
            (j["state"] == "finished").then_some(j)
        }
    })
    .await;
    // Day 91: the pass archives the nine finished on day 0, nothing else.
    control.advance(DAY * 31);
    let (st, r) = post_json(&c, &format!("{base}/api/v1/admin/retention"), &json!({})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["archived"], 9, "{r}");
    assert!(r["dedupe_expired"].as_u64().unwrap() >= 12, "{r}");
    assert_eq!(r["jobs_pruned"], 0, "{r}");
    // A second pass finds nothing more.
    let (_, r2) = post_json(&c, &format!("{base}/api/v1/admin/retention"), &json!({})).await;
    assert_eq!(r2["archived"], 0, "{r2}");

    // The hot lists hold only what stayed.
    let (_, list) = get_json(&c, &format!("{base}/api/v1/orders?limit=100")).await;
    let mut hot: Vec<String> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    hot.sort();
    let mut want: Vec<String> = working.iter().chain(&recent).cloned().collect();
    want.sort();
    assert_eq!(hot, want);

    // Date ranges read the hour indexes: received since day 60, updated
    // since day 60 (the held ones too), and the audit export since then.
    let ids_of = |v: &serde_json::Value| {
        let mut ids: Vec<String> = v["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let since = t60 * 1000 - 1;
    let (_, v) = get_json(&c, &format!("{base}/api/v1/orders?created_from={since}")).await;
    assert_eq!(ids_of(&v), recent);
    let (_, v) = get_json(&c, &format!("{base}/api/v1/orders?updated_from={since}")).await;
    assert_eq!(ids_of(&v), want);
    let export = c
        .get(format!("{base}/api/v1/audit/export?since={since}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut exported: Vec<String> = export
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    exported.sort();
    exported.dedup();
    assert_eq!(exported, want, "{export}");

    // An archived order: read by id, with its audit, found by searching
    // its id, and nothing may be done to it.
    let (st, o) = get_json(&c, &format!("{base}/api/v1/orders/{}", old[0])).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["order_id"], old[0].as_str(), "{o}");
    assert_eq!(o["lifecycle"], "completed", "{o}");
    assert!(
        o["archived"]["file"]
            .as_str()
            .unwrap()
            .starts_with("archive/"),
        "{o}"
    );
    assert_eq!(o["interventions"], json!([]), "{o}");
    let (st, audit) = get_json(&c, &format!("{base}/api/v1/orders/{}/audit", old[0])).await;
    assert_eq!(st, 200);
    assert!(!audit.as_array().unwrap().is_empty(), "{audit}");
    let (_, found) = get_json(&c, &format!("{base}/api/v1/orders?q={}", old[7])).await;
    assert_eq!(found["orders"][0]["order_id"], old[7].as_str(), "{found}");
    assert!(found["orders"][0]["archived"].is_object(), "{found}");

    // The stats: the history still counts them, the lifecycle counts only
    // the hot store.
    let (_, stats) = get_json(&c, &format!("{base}/api/v1/stats")).await;
    let day0 = stats_before["orders_per_day"].as_object().unwrap();
    assert_eq!(day0.len(), 1, "{stats_before}");
    let (day0, n) = day0.iter().next().unwrap();
    assert_eq!(n, 12, "{stats_before}");
    assert_eq!(
        stats["orders_per_day"][day0], 12,
        "day 0's orders are still counted: {stats}"
    );
    assert_eq!(
        stats["by_lifecycle"]["completed"], 2,
        "only the recent ones are hot: {stats}"
    );
    assert_eq!(stats["by_lifecycle"]["cancelled"], 0, "{stats}");

    // TikTok sends an old notification again, long after its dedupe key
    // expired: kept in the quarantine, not a new order.
    post_order(
        &c,
        &base,
        &shop,
        &format!("ev-{}", old[1]),
        order(&old[1], "COMPLETED", t0),
    )
    .await;
    common::eventually(
        Duration::from_secs(20),
        "the late event quarantined",
        || {
            let (c, u) = (c.clone(), format!("{base}/api/v1/webhooks/quarantine"));
            async move {
                let (_, q) = get_json(&c, &u).await;
                q.to_string().contains("archived_order").then_some(())
            }
        },
    )
    .await;
    let (_, o) = get_json(&c, &format!("{base}/api/v1/orders/{}", old[1])).await;
    assert!(
        o["archived"].is_object(),
        "still archived, not recreated: {o}"
    );

    // The archive files are plain gzip of JSON lines.
    let mut lines = 0;
    for f in std::fs::read_dir(data.join("archive")).unwrap() {
        let f = f.unwrap().path();
        assert!(f.to_string_lossy().ends_with(".jsonl.gz"), "{f:?}");
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&f).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                old.contains(&v["order_id"].as_str().unwrap().to_string()),
                "{l}"
            );
            lines += 1;
        }
    }
    assert_eq!(lines, 9);

    // The finished job is read from the store, with its results.
    let (st, j) = get_json(&c, &format!("{base}/api/v1/bulk/{job_id}")).await;
    assert_eq!((st, j["state"].as_str()), (200, Some("finished")), "{j}");
    assert_eq!(j["succeeded"], 3, "{j}");
    // Once the job is older than keep_days it is pruned.
    control.advance(DAY * 100);
    let (_, r) = post_json(&c, &format!("{base}/api/v1/admin/retention"), &json!({})).await;
    assert_eq!(r["jobs_pruned"], 1, "{r}");
    let (st, _) = get_json(&c, &format!("{base}/api/v1/bulk/{job_id}")).await;
    assert_eq!(st, 404);
    daemon.shutdown().await;
}
