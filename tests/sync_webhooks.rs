//! `POST /webhooks/tiktok` against hand-computed signatures: an in-process
//! daemon whose TikTok is a real simulator (the accepted notification is
//! hydrated through the simulator's order detail).
//!
//! The signatures below were computed once, independently of orderflow,
//! with Python's standard library:
//!
//! ```python
//! import hmac, hashlib
//! hmac.new(b"itest-app-secret", b"itest-app-key" + body, hashlib.sha256).hexdigest()
//! ```
//!
//! where `body` is the exact byte string of the constant next to it.

mod common;

use std::time::Duration;

use common::{eventually, get_json, metric, sim_config, wait_ready};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs};

const APP_KEY: &str = "itest-app-key";
const APP_SECRET: &str = "itest-app-secret";
/// The first shop and first order the simulator creates (seeded ids).
const SHOP: &str = "7494000000000000001";
const ORDER: &str = "5769000000000000001";

/// An ORDER_STATUS_CHANGE for `ORDER`.
const SIGNED: &str = r#"{"type":1,"tts_notification_id":"7327112393057371910","shop_id":"7494000000000000001","timestamp":1764070000,"data":{"order_id":"5769000000000000001","order_status":"UNPAID","is_on_hold_order":false,"update_time":1764070000}}"#;
const SIGNED_SIG: &str = "937f1a831f62dd83c34b495f693aeb44425f25af54640869061e2bd783ac0a57";
/// Truncated JSON, correctly signed.
const MALFORMED: &str = r#"{"type":1,"tts_notification_id":"7327112393057371911","shop_id":"7494000000000000001","timestamp":1764070000,"data":{"order_id":"#;
const MALFORMED_SIG: &str = "30120053bd272bd5dfe4e121bd5dd0b836347a9e2ec9c10f7ea632085827e8af";
/// Topic 1 (known) with a `data` that is not an order status change,
/// correctly signed.
const UNKNOWN_SHAPE: &str = r#"{"type":1,"tts_notification_id":"7327112393057371912","shop_id":"7494000000000000001","timestamp":1764070000,"data":{"unexpected":true}}"#;
const UNKNOWN_SHAPE_SIG: &str = "a72e356e4855954931cd7cd5db4c4cae60ac2c5af0bddbd9bd8e82ceb24f442c";

/// The next notification for `ORDER` (the buyer cancelled).
const NEXT: &str = r#"{"type":1,"tts_notification_id":"7327112393057371913","shop_id":"7494000000000000001","timestamp":1764070100,"data":{"order_id":"5769000000000000001","order_status":"CANCELLED","is_on_hold_order":false,"update_time":1764070100}}"#;
const NEXT_SIG: &str = "765984a28eaf0250d8ff6ac361a33f0e9b452bc2bbe4dc72f48b1af5cae54e38";

const W: &str = "orderflow_webhooks_total";

async fn push(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    sig: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("Authorization", s);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[actix_rt::test]
async fn signed_webhooks_are_verified_stored_once_and_hydrated() {
    let sim = simulator::start(SimulatorArgs {
        app_key: APP_KEY.into(),
        app_secret: APP_SECRET.into(),
        access_token: "itest-access-token".into(),
        webhook_url: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let mut cfg = sim_config(
        &sim,
        APP_KEY,
        APP_SECRET,
        "itest-access-token",
        50.0,
        &dir.path().join("data"),
        &wf,
    );
    cfg.sync.webhook_max_bytes = 1024;
    // Polling must not bring the order in behind the webhooks' back.
    cfg.sync.poll_interval = orderflow::config::Dur(Duration::from_secs(3600));
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let url = format!("{base}/webhooks/tiktok");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &base).await;

    // Polling starts with one search per shop; let it pass before the
    // order exists so that only webhooks can bring the order in.
    let sim_stats = format!("{}/sim/stats", sim.base_url());
    eventually(Duration::from_secs(30), "the first polls", || {
        let (c, u) = (client.clone(), sim_stats.clone());
        async move {
            let (_, v) = get_json(&c, &u).await;
            (v["endpoints"]["search_orders"]["ok"].as_u64() >= Some(2)).then_some(())
        }
    })
    .await;
    // The order the signed notification names exists on "TikTok".
    let (st, created) = common::post_json(
        &client,
        &format!("{}/sim/orders", sim.base_url()),
        &serde_json::json!({"status": "UNPAID"}),
    )
    .await;
    assert_eq!(st, 200, "{created}");
    assert_eq!(created["orders"][0]["order_id"], ORDER);
    assert_eq!(created["orders"][0]["shop_id"], SHOP);

    let stored = |d: &Daemon| (d.store.trees.dedupe.len(), d.store.inbox().unwrap().len());

    // Malformed JSON and an unknown shape of a known topic, both correctly
    // signed: 200 with an empty body (TikTok accepts only 200 or 401 and
    // retries anything else for hours), stored as received in the
    // quarantine, once each, and no order.
    for _ in 0..2 {
        let (st, body) = push(&client, &url, MALFORMED.as_bytes(), Some(MALFORMED_SIG)).await;
        assert_eq!((st, body.len()), (200, 0), "malformed JSON");
        let (st, body) = push(
            &client,
            &url,
            UNKNOWN_SHAPE.as_bytes(),
            Some(UNKNOWN_SHAPE_SIG),
        )
        .await;
        assert_eq!((st, body.len()), (200, 0), "unknown shape of topic 1");
    }
    assert_eq!(
        metric(
            &client,
            &base,
            "orderflow_webhooks_quarantined_total",
            r#"reason="malformed""#
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &client,
            &base,
            "orderflow_webhooks_quarantined_total",
            r#"reason="unreadable""#
        )
        .await,
        1.0
    );
    let (_, q) = get_json(&client, &format!("{base}/api/v1/webhooks/quarantine")).await;
    let kept: Vec<&str> = q["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        vec![UNKNOWN_SHAPE, MALFORMED],
        "stored as received, newest first"
    );
    assert_eq!(
        stored(&daemon),
        (0, 0),
        "a webhook we cannot read became an order event"
    );
    let (st, _) = get_json(&client, &format!("{base}/api/v1/orders/{ORDER}")).await;
    assert_eq!(st, 404, "a webhook we cannot read created the order");

    // One byte changed under the original signature; no signature at all;
    // a signature over the right body with a different key.
    let tampered = SIGNED.replace("\"UNPAID\"", "\"UNPAIE\"");
    assert_eq!(tampered.len(), SIGNED.len());
    assert_eq!(
        tampered
            .bytes()
            .zip(SIGNED.bytes())
            .filter(|(a, b)| a != b)
            .count(),
        1
    );
    let (st, body) = push(&client, &url, tampered.as_bytes(), Some(SIGNED_SIG)).await;
    assert_eq!((st, body.len()), (401, 0), "one changed byte must fail");
    let (st, body) = push(&client, &url, SIGNED.as_bytes(), None).await;
    assert_eq!((st, body.len()), (401, 0), "missing Authorization");
    let mut wrong = SIGNED_SIG.to_string();
    wrong.replace_range(0..1, "0");
    assert_ne!(wrong, SIGNED_SIG);
    let (st, body) = push(&client, &url, SIGNED.as_bytes(), Some(&wrong)).await;
    assert_eq!((st, body.len()), (401, 0), "a wrong signature");
    assert_eq!(
        metric(&client, &base, W, r#"result="bad_signature""#).await,
        3.0
    );

    // Over `sync.webhook_max_bytes` (1024): 413 whatever it says.
    let big = format!(
        r#"{{"type":1,"shop_id":"{SHOP}","timestamp":1,"data":{{"order_id":"{ORDER}","order_status":"UNPAID","pad":"{}"}}}}"#,
        "x".repeat(1100)
    );
    let (st, _) = push(&client, &url, big.as_bytes(), Some(SIGNED_SIG)).await;
    assert_eq!(st, 413);
    assert_eq!(
        metric(&client, &base, W, r#"result="too_large""#).await,
        1.0
    );
    assert_eq!(
        stored(&daemon),
        (0, 0),
        "a refused webhook stored something"
    );

    // The correctly signed notification: 200 with an empty body, stored,
    // then hydrated into the full order through the simulator.
    let (st, body) = push(&client, &url, SIGNED.as_bytes(), Some(SIGNED_SIG)).await;
    assert_eq!((st, body.len()), (200, 0));
    assert_eq!(metric(&client, &base, W, r#"result="accepted""#).await, 1.0);
    let order = eventually(Duration::from_secs(30), "the webhook's order", || {
        let (c, b) = (client.clone(), base.clone());
        async move {
            let (st, v) = get_json(&c, &format!("{b}/api/v1/orders/{ORDER}")).await;
            (st == 200 && v["tiktok_status"] == "UNPAID").then_some(v)
        }
    })
    .await;
    assert_eq!(order["shop_id"], SHOP);
    assert!(
        order["line_items"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "hydrated from order detail: {order}"
    );
    eventually(Duration::from_secs(30), "the inbox to drain", || {
        let n = daemon.store.inbox().unwrap().len();
        async move { (n == 0).then_some(()) }
    })
    .await;

    // TikTok's truth moves on (the buyer cancels). A replay of the same
    // notification is acknowledged but not processed again: had it been
    // accepted it would sit in the inbox before the 200 (stored before the
    // answer) and its hydration would bring CANCELLED.
    let (st, v) = common::post_json(
        &client,
        &format!("{}/sim/orders/{ORDER}/buyer_cancel", sim.base_url()),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, body) = push(&client, &url, SIGNED.as_bytes(), Some(SIGNED_SIG)).await;
    assert_eq!((st, body.len()), (200, 0), "a replay is acknowledged");
    assert_eq!(
        metric(&client, &base, W, r#"result="duplicate""#).await,
        1.0
    );
    assert_eq!(metric(&client, &base, W, r#"result="accepted""#).await, 1.0);
    assert_eq!(stored(&daemon), (1, 0), "the replay was stored again");
    let (_, order) = get_json(&client, &format!("{base}/api/v1/orders/{ORDER}")).await;
    assert_eq!(order["tiktok_status"], "UNPAID", "the replay was processed");
    let (_, audit) = get_json(&client, &format!("{base}/api/v1/orders/{ORDER}/audit")).await;
    let from_webhooks: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "webhook" && e["kind"] == "status")
        .collect();
    assert_eq!(from_webhooks.len(), 1, "one application: {audit:#}");
    let (_, v) = get_json(&client, &sim_stats).await;
    assert_eq!(
        v["endpoints"]["order_detail"]["total"], 1,
        "one order detail lookup for one notification: {v}"
    );

    // The next notification, delivered eight times at the same moment (as
    // TikTok's duplicate deliveries come): all acknowledged, one stored,
    // one hydration bringing CANCELLED.
    let copies = futures::future::join_all(
        (0..8).map(|_| push(&client, &url, NEXT.as_bytes(), Some(NEXT_SIG))),
    )
    .await;
    assert!(
        copies.iter().all(|(st, b)| *st == 200 && b.is_empty()),
        "{copies:?}"
    );
    assert_eq!(metric(&client, &base, W, r#"result="accepted""#).await, 2.0);
    assert_eq!(
        metric(&client, &base, W, r#"result="duplicate""#).await,
        8.0
    );
    assert_eq!(daemon.store.trees.dedupe.len(), 2, "one stored copy");
    eventually(Duration::from_secs(30), "the cancellation applied", || {
        let (c, b) = (client.clone(), base.clone());
        async move {
            let (_, v) = get_json(&c, &format!("{b}/api/v1/orders/{ORDER}")).await;
            (v["tiktok_status"] == "CANCELLED").then_some(())
        }
    })
    .await;
    eventually(Duration::from_secs(30), "the inbox to drain", || {
        let n = daemon.store.inbox().unwrap().len();
        async move { (n == 0).then_some(()) }
    })
    .await;
    let (_, v) = get_json(&client, &sim_stats).await;
    assert_eq!(v["endpoints"]["order_detail"]["total"], 2, "{v}");

    daemon.shutdown().await;
    sim.stop().await;
}
