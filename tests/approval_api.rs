//! Approvals through the admin API: approve, reject, and re-running the
//! workflow from a chosen step; and resync without TikTok configured.

mod common;

use std::time::{Duration, Instant};

use common::{wait_ready, wire_order, Daemon};
use serde_json::{json, Value};

const WF: &str = "name: gated\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: approve\n    approval:\n      message: \"ship ${{ order.id }}?\"\n      timeout: 1h\n      on_reject: refuse\n  - id: done\n    end: fulfilled\n  - id: refuse\n    end: cancelled\n";

async fn order(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/api/v1/orders/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn until(http: &reqwest::Client, base: &str, id: &str, lifecycle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = order(http, base, id).await;
        if o["lifecycle"] == lifecycle {
            return o;
        }
        assert!(Instant::now() < deadline, "{id} never {lifecycle}: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_reject_and_run_from() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("gated.yaml"), WF).unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &wf, &dir.path().join("log"), &[]);
    let http = reqwest::Client::new();
    let base = daemon.base.clone();
    wait_ready(&http, &base).await;
    for id in ["a1", "a2", "a3"] {
        let body = json!({"id": format!("e-{id}"), "shop_id": "s", "order": wire_order(id, 1_764_000_000)});
        assert!(http
            .post(format!("{base}/api/v1/events"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .is_success());
    }
    for id in ["a1", "a2", "a3"] {
        let o = until(&http, &base, id, "on_hold").await;
        assert_eq!(o["step"], "approve");
        assert_eq!(o["waiting"]["approval"], format!("ship {id}?"));
    }
    let post = |id: &str, action: &str, body: Value| {
        let (http, url) = (
            http.clone(),
            format!("{base}/api/v1/orders/{id}/actions/{action}"),
        );
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post("a1", "approve", json!({"by": "ana", "note": "ok"})).await,
        202
    );
    assert_eq!(post("a2", "reject", json!({"by": "ana"})).await, 202);
    assert_eq!(post("a3", "run_from", json!({"step": "done"})).await, 202);
    until(&http, &base, "a1", "fulfilled").await;
    until(&http, &base, "a2", "cancelled").await;
    until(&http, &base, "a3", "fulfilled").await;
    // Approving again is refused: nothing waits for an approval now.
    assert_eq!(post("a1", "approve", json!({})).await, 409);
    let audit: Vec<Value> = http
        .get(format!("{base}/api/v1/orders/a1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|e| e["detail"].as_str().unwrap().contains("approved by ana")));
    // Resync needs TikTok configured: demo mode has it, so it answers; a
    // malformed request is refused.
    let r = http
        .post(format!("{base}/api/v1/sync/resync"))
        .json(&json!({"from": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let status = daemon.terminate();
    assert!(status.success());
}
