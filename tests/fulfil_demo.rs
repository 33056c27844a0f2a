//! The README's demo: `orderflow run` with no configuration at all starts
//! the built-in simulator, and its demo orders flow through the bundled
//! standard workflow to fulfilled and then **delivered** (the simulator's
//! carrier moves shipped parcels on, at `ORDERFLOW_DEMO__TIME_SCALE`).
//! A real process on embedded defaults, the repository's own workflows.

mod common;

use std::time::Duration;

use common::{eventually, get_json, wait_ready, Daemon};

#[actix_rt::test]
async fn demo_orders_are_shipped_and_delivered_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let workflows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let d = Daemon::start(
        &dir.path().join("data"),
        &workflows,
        &dir.path().join("log"),
        &[
            // A simulated day in under 5 s: 1 h on hold, 4 h to collection,
            // 2 days in transit.
            ("ORDERFLOW_DEMO__TIME_SCALE", "20000"),
            ("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "4"),
        ],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &d.base).await;
    let base = d.base.clone();
    let counts = eventually(
        Duration::from_secs(50),
        "three delivered demo orders",
        || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let (_, v) = get_json(&c, &format!("{b}/api/v1/stats/lifecycle")).await;
                let delivered = v["by_lifecycle"]["delivered"].as_u64()?
                    + v["by_lifecycle"]["completed"].as_u64()?;
                (delivered >= 3).then_some(v)
            }
        },
    )
    .await;
    assert_eq!(counts["by_lifecycle"]["exception"], 0, "{counts}");
    let (_, list) = get_json(
        &client,
        &format!("{base}/api/v1/orders?state=delivered&limit=5"),
    )
    .await;
    let orders = list["orders"].as_array().unwrap();
    assert!(!orders.is_empty(), "{list}");
    for o in orders {
        let id = o["order_id"].as_str().unwrap();
        let (_, o) = get_json(&client, &format!("{base}/api/v1/orders/{id}")).await;
        assert!(
            o["workflow"].as_str().unwrap().starts_with("standard@"),
            "{o}"
        );
        assert!(
            o["tiktok_status"] == "DELIVERED" || o["tiktok_status"] == "COMPLETED",
            "{o}"
        );
        assert_eq!(o["instance_state"], "completed:fulfilled", "{o}");
        assert!(o["fulfillment_ms"].is_i64(), "{o}");
        let (_, audit) = get_json(&client, &format!("{base}/api/v1/orders/{id}/audit")).await;
        let text = audit.to_string();
        for step in [
            "reserve: succeeded",
            "buy_label: succeeded",
            "mark_shipped: succeeded",
            "commit_stock: succeeded",
            "delivered: end (fulfilled)",
        ] {
            assert!(text.contains(step), "{id} lacks {step:?}: {audit:#}");
        }
    }
    // The demo shop's access token lasts 7 days of the demo's clock (30 s
    // here) and is refreshed before it expires.
    let shop_of = |c: reqwest::Client, b: String| async move {
        let (_, v) = get_json(&c, &format!("{b}/api/v1/shops")).await;
        v["shops"][0].clone()
    };
    eventually(
        Duration::from_secs(40),
        "the demo's token refreshed",
        || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let s = shop_of(c, b).await;
                (s["token_source"] == "refresh").then_some(())
            }
        },
    )
    .await;
    let status = d.terminate();
    assert!(status.success(), "{status:?}");

    // A restart: the simulator is new and knows only the demo's own tokens,
    // so those are used again, and calls to it succeed.
    let d = Daemon::start(
        &dir.path().join("data"),
        &workflows,
        &dir.path().join("log"),
        &[
            ("ORDERFLOW_DEMO__TIME_SCALE", "20000"),
            ("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "0"),
        ],
    );
    wait_ready(&client, &d.base).await;
    let base = d.base.clone();
    let s = eventually(
        Duration::from_secs(30),
        "a call to the new simulator",
        || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let s = shop_of(c, b).await;
                s["last_call"].is_i64().then_some(s)
            }
        },
    )
    .await;
    assert_eq!(s["status"], "connected", "{s}");
    assert_eq!(s["token_source"], "config", "{s}");
    assert!(s["refresh_error"].is_null(), "{s}");
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
}
