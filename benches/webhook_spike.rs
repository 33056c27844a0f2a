//! A viral spike: 10,000 ORDER_STATUS_CHANGE webhooks for one shop within
//! 60 seconds, signed as TikTok signs them, against the daemon with the
//! simulator as TikTok (50 QPS per shop). Prints the webhook answer
//! latencies (stored durably before each 200) and how many order-detail
//! calls hydration cost. `cargo bench --bench webhook_spike`
//! (`-- --orders N --seconds S` to change the spike).

use std::time::{Duration, Instant};

use orderflow::config::Config;
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs};

fn arg(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = arg("--orders").unwrap_or(if quick { 300 } else { 10_000 }) as usize;
    let secs = arg("--seconds").unwrap_or(if quick { 3 } else { 60 });
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(&wf).unwrap();
    // A workflow that only starts (so hydration is all the daemon does).
    std::fs::write(
        wf.join("hold.yaml"),
        "name: hold\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: wait_ok\n    wait:\n      until: \"event.type == 'ok'\"\n      timeout: 1d\n  - id: done\n    end: fulfilled\n",
    )
    .unwrap();
    let system = actix_rt::System::new();
    system.block_on(async move {
        let (key, secret, token) = ("spike-app", "spike-secret", "spike-token");
        let sim = simulator::start(SimulatorArgs {
            app_key: key.into(),
            app_secret: secret.into(),
            access_token: token.into(),
            shops: 1,
            qps: 50,
            manual_carrier: true,
            buyer_cancel_rate: 0.0,
            ..Default::default()
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        let sim_url = sim.base_url();
        let (shop, cipher) = sim.shops()[0].clone();
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let count = (n - ids.len()).min(5_000);
            let v: serde_json::Value = http
                .post(format!("{sim_url}/sim/orders"))
                .json(&serde_json::json!({"status": "AWAITING_SHIPMENT", "count": count}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for o in v["orders"].as_array().unwrap() {
                ids.push(o["order_id"].as_str().unwrap().to_string());
            }
        }
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.store.data_dir = dir.path().join("data");
        cfg.workflows.dir = wf.clone();
        cfg.tiktok.base_url = sim_url.clone();
        cfg.tiktok.auth_url = sim_url.clone();
        cfg.tiktok.app_key = key.into();
        cfg.tiktok.app_secret = orderflow::tiktok::Secret::new(secret);
        cfg.tiktok.shops = vec![orderflow::tiktok::ShopConfig {
            id: shop.clone(),
            cipher: Some(cipher),
            access_token: orderflow::tiktok::Secret::new(token),
            qps: 50.0,
            ..Default::default()
        }];
        cfg.sync.poll_interval = orderflow::config::Dur(Duration::from_secs(3600));
        let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
        let base = format!("http://{}", daemon.addr);
        while !daemon.ready.load(std::sync::atomic::Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before: serde_json::Value = http.get(format!("{sim_url}/sim/stats")).send().await.unwrap().json().await.unwrap();
        let detail_before = before["endpoints"]["order_detail"]["total"].as_u64().unwrap_or(0);

        let start = tokio::time::Instant::now();
        let spacing = Duration::from_secs(secs).as_secs_f64() / n as f64;
        let mut tasks = Vec::with_capacity(n);
        for (i, id) in ids.iter().enumerate() {
            let at = start + Duration::from_secs_f64(spacing * i as f64);
            let body = serde_json::json!({
                "type": 1,
                "tts_notification_id": format!("spike-{i}"),
                "shop_id": shop,
                "timestamp": 1_764_072_000 + i as i64,
                "data": {"order_id": id, "order_status": "AWAITING_SHIPMENT", "is_on_hold_order": false, "update_time": 1_764_072_000},
            })
            .to_string();
            let sig = orderflow::tiktok::sign::webhook_signature(key, secret, body.as_bytes());
            let (http, url) = (http.clone(), format!("{base}/webhooks/tiktok"));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let t = Instant::now();
                let r = http
                    .post(url)
                    .header("Authorization", sig)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                (t.elapsed().as_secs_f64() * 1000.0, r.unwrap_or(0))
            }));
        }
        let mut lat = Vec::with_capacity(n);
        let mut non_200 = 0;
        for t in tasks {
            let (ms, status) = t.await.unwrap();
            if status != 200 {
                non_200 += 1;
            }
            lat.push(ms);
        }
        let sent_in = start.elapsed();
        lat.sort_by(|a, b| a.total_cmp(b));
        // Every order fetched and its workflow started.
        loop {
            let v: serde_json::Value = http.get(format!("{base}/api/v1/stats/lifecycle")).send().await.unwrap().json().await.unwrap();
            if v["by_lifecycle"]["processing"].as_u64() == Some(n as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drained = start.elapsed();
        let after: serde_json::Value = http.get(format!("{sim_url}/sim/stats")).send().await.unwrap().json().await.unwrap();
        let detail = after["endpoints"]["order_detail"]["total"].as_u64().unwrap_or(0) - detail_before;
        let throttled = after["endpoints"]["order_detail"]["throttled"].as_u64().unwrap_or(0);
        println!("| Webhooks | Sent over | Non-200 | Ack p50 | Ack p95 | Ack p99 | Ack max | Detail calls | Orders per call | 429s | All hydrated after |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {n} | {:.1} s | {non_200} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {detail} | {:.1} | {throttled} | {:.1} s |",
            sent_in.as_secs_f64(),
            pct(&lat, 0.5),
            pct(&lat, 0.95),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0),
            n as f64 / detail.max(1) as f64,
            drained.as_secs_f64()
        );
        daemon.shutdown().await;
        sim.stop().await;
    });
}
