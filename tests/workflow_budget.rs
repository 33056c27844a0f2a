//! A workflow too expensive to run (here: an expression over the cost
//! limit) never keeps the daemon from starting: the real binary starts with
//! a folder holding one valid and one such file, reports the bad one, and
//! runs orders on the valid one. Before the limit, such an expression
//! crash-looped the daemon out of memory.

mod common;

use std::time::Duration;

use common::{eventually, metric, wait_ready, wire_order, Daemon};

const GOOD: &str = "name: good\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: tag\n    call: order.tag\n    with: { tags: [ok] }\n  - id: done\n    end: fulfilled\n";

fn expensive() -> String {
    let digits = "[0,1,2,3,4,5,6,7,8,9]";
    let mut body = "a + b + c + d + e + f + g + h".to_string();
    for v in ["h", "g", "f", "e", "d", "c", "b", "a"] {
        body = format!("{digits}.map({v}, {body})");
    }
    format!(
        "name: bomb\ntrigger:\n  on: AWAITING_SHIPMENT\n  priority: 10\n  when: \"size({body}) > 0\"\nsteps:\n  - id: done\n    end: fulfilled\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_workflow_file_is_skipped_and_the_valid_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("good.yaml"), GOOD).unwrap();
    std::fs::write(wf.join("bomb.yaml"), expensive()).unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = Daemon::start(&dir.path().join("data"), &wf, &log, &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&client, &daemon.base).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("bomb.yaml"), "{text}");
    assert!(text.contains("expression is too expensive"), "{text}");
    assert_eq!(
        metric(&client, &daemon.base, "orderflow_workflows_invalid", "").await,
        1.0
    );

    let r = client
        .post(format!("{}/api/v1/events", daemon.base))
        .json(&serde_json::json!({
            "id": "evt-1", "shop_id": "shop-1", "order": wire_order("ord-1", 1_764_000_000),
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    eventually(Duration::from_secs(30), "the order is fulfilled", || {
        let client = client.clone();
        let base = daemon.base.clone();
        async move {
            let stats: serde_json::Value = client
                .get(format!("{base}/api/v1/stats/lifecycle"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (stats["by_lifecycle"]["fulfilled"].as_u64() == Some(1)).then_some(())
        }
    })
    .await;

    // Validation says why, without running anything.
    let r: serde_json::Value = client
        .post(format!("{}/api/v1/workflows/validate", daemon.base))
        .body(expensive())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], false);
    assert!(
        r["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the limit is"),
        "{r}"
    );
}
