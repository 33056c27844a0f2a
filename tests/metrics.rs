//! `/metrics` after a run of demo orders: the text parses as Prometheus
//! exposition format and every metric operators rely on is there with a
//! plausible value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orderflow::config::{Config, Dur};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;

/// Parses the exposition text: `name{labels} value` lines and `#` lines.
fn parse(text: &str) -> HashMap<String, Vec<(String, f64)>> {
    let mut out: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                assert!(rest.ends_with('}'), "unterminated labels: {line}");
                (n, rest.trim_end_matches('}').to_string())
            }
            None => (series, String::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label in {line}"));
            assert!(
                k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name: {line}"
            );
            assert!(!v.contains('\n'));
        }
        out.entry(name.to_string())
            .or_default()
            .push((labels, value));
    }
    out
}

fn sum(m: &HashMap<String, Vec<(String, f64)>>, name: &str, label: &str) -> f64 {
    m.get(name)
        .unwrap_or_else(|| panic!("metric {name} missing"))
        .iter()
        .filter(|(l, _)| l.contains(label))
        .map(|(_, v)| v)
        .sum()
}

#[actix_rt::test]
async fn metrics_after_a_run_of_orders() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.store.data_dir = dir.path().join("data");
    cfg.workflows.dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workflows");
    cfg.demo.orders_per_second = 20.0;
    // An hour of buyer-cancel hold passes in a second.
    cfg.demo.time_scale = 3600.0;
    cfg.runtime.deadline_check = Dur(Duration::from_millis(200));
    cfg.runtime.at_risk_margin = Dur(Duration::from_secs(10 * 86_400));
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let m = parse(&text);
        let fulfilled = m
            .get("orderflow_order_fulfillment_seconds_count")
            .map(|v| v.iter().map(|(_, x)| x).sum::<f64>())
            .unwrap_or(0.0);
        // A fulfilment counts once TikTok took the ship call, its step's
        // duration once the answer is back: wait for both.
        let shipped_steps = m
            .get("orderflow_step_duration_seconds_count")
            .map(|v| {
                v.iter()
                    .filter(|(l, _)| l.contains("step=\"mark_shipped\""))
                    .map(|(_, x)| x)
                    .sum::<f64>()
            })
            .unwrap_or(0.0);
        if fulfilled >= 20.0 && shipped_steps >= 20.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "no fulfilments yet:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let received = sum(&m, "orderflow_orders_received_total", "source=\"webhook\"");
    assert!(received >= 20.0, "{received}");
    let states = sum(&m, "orderflow_orders", "state=");
    assert!(states >= 1.0, "orders per state: {states}");
    assert!(m["orderflow_orders"]
        .iter()
        .any(|(l, _)| l.contains("state=\"fulfilled\"")));
    assert!(sum(&m, "orderflow_workflow_steps_total", "outcome=\"ok\"") >= 20.0);
    assert!(m["orderflow_workflow_steps_total"]
        .iter()
        .any(|(l, _)| l.contains("workflow=\"standard\"") && l.contains("step=\"buy_label\"")));
    assert!(
        sum(
            &m,
            "orderflow_step_duration_seconds_count",
            "step=\"mark_shipped\""
        ) >= 20.0
    );
    let fsum = sum(&m, "orderflow_order_fulfillment_seconds_sum", "");
    let fcount = sum(&m, "orderflow_order_fulfillment_seconds_count", "");
    assert!(
        fsum >= 0.0 && fsum / fcount < 60.0,
        "mean receipt→fulfilment {}",
        fsum / fcount
    );
    assert!(sum(&m, "orderflow_webhooks_total", "result=\"accepted\"") >= 20.0);
    assert!(
        sum(
            &m,
            "orderflow_tiktok_requests_total",
            "endpoint=\"mark_package_shipped\""
        ) >= 20.0
    );
    assert!(
        sum(
            &m,
            "orderflow_tiktok_request_duration_seconds_count",
            "endpoint=\"order_detail\""
        ) >= 1.0
    );
    assert!(m.contains_key("orderflow_tiktok_throttled_total"));
    assert!(m.contains_key("orderflow_gateway_queue_depth"));
    assert!(sum(&m, "orderflow_checkpoint_batch_size_count", "") >= 1.0);
    assert!(sum(&m, "orderflow_checkpoint_flush_seconds_count", "") >= 1.0);
    assert!(sum(&m, "orderflow_actors_active", "") >= 0.0);
    assert!(m.contains_key("orderflow_orders_at_risk"));
    // No order id ever becomes a label.
    for (name, series) in &m {
        for (labels, _) in series {
            assert!(!labels.contains("order_id"), "{name}{{{labels}}}");
        }
    }
    daemon.shutdown().await;
}
