//! The admin API and CLI against the real daemon: listing with stable
//! pages, interventions and their error cases, a bulk job over 1,000
//! orders, stats, workflow validation and reload, the bearer token, and
//! the refusal to listen beyond loopback without one.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, wire_order, Daemon};
use serde_json::{json, Value};

const TOKEN: &str = "test-admin-token-0123456789";
const N: usize = 1000;

fn workflow() -> &'static str {
    // The first call fails at once (nothing listens on port 1) and has no
    // retries: every order parks in exception, waiting for an operator.
    "name: fragile\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: call_partner\n    call: http.request\n    with: { url: \"http://127.0.0.1:1/partner\" }\n  - id: tag\n    call: order.tag\n    with: { tags: [recovered] }\n  - id: done\n    end: fulfilled\n"
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn wait_state(&self, state: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, v) = self.get("/api/v1/stats/lifecycle").await;
            if v["by_lifecycle"][state].as_u64() == Some(n) {
                return;
            }
            assert!(Instant::now() < deadline, "never {n} {state}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("fragile.yaml"), workflow()).unwrap();
    // System alerts (an order needs an operator) go to the default channel.
    let alerts = common::Recorder::start();
    let alerts_url = alerts.url();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &wf,
        &dir.path().join("log"),
        &[
            ("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN),
            ("ORDERFLOW_NOTIFY__CHANNELS__DEFAULT", alerts_url.as_str()),
        ],
    );
    let api = Api {
        http: reqwest::Client::new(),
        base: daemon.base.clone(),
    };
    common::wait_ready(&api.http, &api.base).await;

    // Without the token, or with a wrong one: 401.
    let r = api
        .http
        .get(format!("{}/api/v1/orders", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = api
        .http
        .get(format!("{}/api/v1/orders", api.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Health and metrics stay open.
    assert!(api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());

    // 1,000 orders through intake.
    let mut tasks = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
        let chunk = chunk.to_vec();
        let (http, base) = (api.http.clone(), api.base.clone());
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                let body = json!({"id": format!("e{i}"), "shop_id": if i % 2 == 0 { "shop-a" } else { "shop-b" },
                                  "order": wire_order(&format!("o{i:04}"), 1_764_000_000 + i as i64)});
                let r = http.post(format!("{base}/api/v1/events")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                assert!(r.status().is_success());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    api.wait_state("exception", N as u64).await;
    // Every order that needs an operator raised one alert.
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.seen.lock().unwrap().requests < N as u64 {
        assert!(
            Instant::now() < deadline,
            "alerts: {}",
            alerts.seen.lock().unwrap().requests
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Listing: filters and stable pages that cover everything once, newest
    // first by default; by id, and by total, when asked.
    let pages = |sort: &'static str| {
        let api = &api;
        async move {
            let mut seen: Vec<(String, i64)> = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let q = match &after {
                    Some(a) => format!("/api/v1/orders?state=exception&limit=300{sort}&after={a}"),
                    None => format!("/api/v1/orders?state=exception&limit=300{sort}"),
                };
                let (s, v) = api.get(&q).await;
                assert_eq!(s, 200, "{v}");
                assert_eq!(v["matched"], N as u64, "counted: {v}");
                assert!(v["counts"]["exception"].as_u64().unwrap() >= N as u64);
                for o in v["orders"].as_array().unwrap() {
                    seen.push((
                        o["order_id"].as_str().unwrap().to_string(),
                        o["received_ms"].as_i64().unwrap(),
                    ));
                    assert_eq!(o["lifecycle"], "exception");
                }
                match v["next"].as_str() {
                    Some(n) => after = Some(n.to_string()),
                    None => break,
                }
            }
            assert_eq!(seen.len(), N);
            assert_eq!(seen.iter().map(|x| &x.0).collect::<HashSet<_>>().len(), N);
            seen
        }
    };
    let newest = pages("").await;
    assert!(
        newest.windows(2).all(|w| w[0].1 >= w[1].1),
        "newest received first"
    );
    let by_id = pages("&sort=id").await;
    assert!(by_id.windows(2).all(|w| w[0].0 < w[1].0), "id order");
    let oldest = pages("&sort=received").await;
    assert!(oldest.windows(2).all(|w| w[0].1 <= w[1].1), "oldest first");
    let (s, v) = api.get("/api/v1/orders?sort=bogus").await;
    assert_eq!(s, 400, "{v}");
    // The same list as CSV: a header and one line per order.
    let csv = api
        .http
        .get(format!(
            "{}/api/v1/orders?state=exception&format=csv",
            api.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("order_id,shop_id,received"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), N + 1, "{csv}");
    assert!(lines[1..].iter().all(|l| l.contains(",exception,")));
    let (_, v) = api.get("/api/v1/orders?shop=shop-b&limit=1000").await;
    assert_eq!(v["orders"].as_array().unwrap().len(), N / 2);
    let (_, v) = api.get("/api/v1/orders?q=o0042").await;
    assert_eq!(v["orders"][0]["order_id"], "o0042");

    // One order in detail.
    let (s, o) = api.get("/api/v1/orders/o0007").await;
    assert_eq!(s, 200);
    assert_eq!(o["step"], "call_partner");
    assert!(
        o["last_error"].as_str().unwrap().contains("call_partner"),
        "{o}"
    );

    // The audit trail as JSON lines.
    let text = api
        .http
        .get(format!("{}/api/v1/audit/export?order_id=o0007", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| l["seq"] == i as u64 + 1 && l["order_id"] == "o0007"));

    // Error cases.
    let (s, v) = api.get("/api/v1/orders/nope").await;
    assert_eq!((s, v["error"].as_str().unwrap()), (404, "no order nope"));
    let (s, v) = api
        .post("/api/v1/orders/o0007/actions/approve", json!({}))
        .await;
    assert_eq!(s, 409);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot approve order o0007: no approval is pending"),
        "{v}"
    );
    let (s, _) = api
        .post("/api/v1/orders/o0007/actions/teleport", json!({}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .post("/api/v1/orders/o0007/actions/run_from", json!({}))
        .await;
    assert_eq!(s, 400);

    // Hold, release, note on one order.
    assert_eq!(
        api.post(
            "/api/v1/orders/o0001/actions/hold",
            json!({"reason": "check address"})
        )
        .await
        .0,
        202
    );
    api.wait_state("on_hold", 1).await;
    assert_eq!(
        api.post("/api/v1/orders/o0001/actions/hold", json!({}))
            .await
            .0,
        409,
        "already held"
    );
    assert_eq!(
        api.post("/api/v1/orders/o0001/actions/release", json!({}))
            .await
            .0,
        202
    );
    api.wait_state("on_hold", 0).await;
    assert_eq!(
        api.post(
            "/api/v1/orders/o0001/actions/note",
            json!({"note": "buyer called: leave at door"})
        )
        .await
        .0,
        202
    );

    // Bulk: skip the failed step of every order in exception.
    let (s, v) = api
        .post(
            "/api/v1/bulk",
            json!({"action": "skip", "filter": {"state": "exception"}}),
        )
        .await;
    assert_eq!(s, 202);
    let job = v["job"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let (_, j) = api.get(&format!("/api/v1/bulk/{job}")).await;
        if j["state"] == "finished" {
            break j;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["total"], N);
    assert_eq!(job["succeeded"], N);
    assert_eq!(job["results"].as_array().unwrap().len(), N);
    api.wait_state("fulfilled", N as u64).await;
    let (_, a) = api.get("/api/v1/orders/o0001/audit").await;
    let details: Vec<&str> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("note: buyer called")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("operator skipped call_partner")),
        "{details:?}"
    );

    // Stats.
    let (_, st) = api.get("/api/v1/stats").await;
    assert_eq!(st["total"], N);
    assert_eq!(st["exceptions_open"], 0);
    assert_eq!(st["top_skus"][0][0], "SKU-1");
    assert_eq!(st["top_skus"][0][1], N);

    // Workflows: list, validate a broken candidate, reload.
    let (_, w) = api.get("/api/v1/workflows").await;
    assert_eq!(w[0]["name"], "fragile");
    let r = api
        .http
        .post(format!("{}/api/v1/workflows/validate", api.base))
        .bearer_auth(TOKEN)
        .body(
            "name: x\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: a\n    call: nope.nope\n",
        )
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(
        (
            v["diagnostics"][0]["line"].as_u64(),
            v["diagnostics"][0]["col"].as_u64()
        ),
        (Some(6), Some(11))
    );
    let (s, _) = api.post("/api/v1/workflows/reload", json!({})).await;
    assert_eq!(s, 200);

    // The CLI: a table, JSON, and clear errors.
    let out = Command::new(bin())
        .args([
            "--url", &api.base, "--token", TOKEN, "orders", "list", "--limit", "3", "--sort", "id",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ORDER"), "{text}");
    assert!(
        text.contains("o0000") && text.contains("fulfilled"),
        "{text}"
    );
    // Newest first by default; --since and --csv.
    let out = Command::new(bin())
        .args([
            "--url", &api.base, "--token", TOKEN, "orders", "list", "--since", "1h", "--csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("order_id,"), "{csv}");
    assert!(
        csv.lines().count() > N,
        "every order of the last hour: {}",
        csv.lines().count()
    );
    let out = Command::new(bin())
        .args([
            "--url",
            &api.base,
            "--token",
            TOKEN,
            "orders",
            "list",
            "--since",
            "yesterday-ish",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
    let out = Command::new(bin())
        .args([
            "--url", &api.base, "--token", TOKEN, "--json", "orders", "show", "o0002",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lifecycle"], "fulfilled");
    let out = Command::new(bin())
        .args(["--url", &api.base, "--token", "wrong", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));
    let out = Command::new(bin())
        .args(["--url", "http://127.0.0.1:1", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the daemon"));
    let out = Command::new(bin())
        .args([
            "--url", &api.base, "--token", TOKEN, "orders", "resume", "o0003",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "resume of a fulfilled order is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));

    // Inventory through the CLI: set, adjust, show, import (and a bad CSV).
    let cli = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.args(["--url", &api.base, "--token", TOKEN]).args(args);
        c.output().unwrap()
    };
    assert!(cli(&["inventory", "set", "CLI-SKU", "10"]).status.success());
    assert!(cli(&["inventory", "adjust", "CLI-SKU", "-3"])
        .status
        .success());
    let out = cli(&["--json", "inventory", "show", "CLI-SKU"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["on_hand"].as_u64(), v["available"].as_u64()),
        (Some(7), Some(7)),
        "{v}"
    );
    let csv = dir.path().join("stock.csv");
    std::fs::write(&csv, "sku_id,warehouse_id,on_hand\nCSV-SKU,,25\n").unwrap();
    assert!(cli(&["inventory", "import", csv.to_str().unwrap()])
        .status
        .success());
    let out = cli(&["inventory", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CSV-SKU") && text.contains("25"), "{text}");
    std::fs::write(&csv, "sku_id,warehouse_id,on_hand\nBAD,,lots\n").unwrap();
    let out = cli(&["inventory", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["inventory", "adjust", "CLI-SKU", "-100"]);
    assert_eq!(out.status.code(), Some(1), "on hand never goes negative");

    let status = daemon.terminate();
    assert!(status.success());
}

#[test]
fn refuses_to_listen_beyond_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["run", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.admin_token is required when listening on 0.0.0.0:0, which is not a loopback address"), "{err}");
}
