//! The order scenarios' rig and driver: the simulator in this process, the
//! daemon as a child configured to treat it as TikTok, stock for every
//! order, and [`Rig::run`], which sends signed `ORDER_STATUS_CHANGE`
//! webhooks at a given rate (open loop: a slow answer does not slow the
//! arrivals) and measures what happened to those orders.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::daemon::{Checkpoints, DaemonProcess};
use super::{io, mib, ms, pct, Error, Result};
use crate::simulator::{self, SimulatorArgs, SimulatorHandle};

const APP_KEY: &str = "loadtest-app";
const APP_SECRET: &str = "loadtest-secret";
const ACCESS_TOKEN: &str = "loadtest-token";

/// The bundled standard workflow, so the load test runs from any folder.
pub const STANDARD_WORKFLOW: &str = include_str!("../../workflows/standard.yaml");

/// Units of stock each SKU gets: no order waits for a restock.
const STOCK: u32 = 100_000_000;

/// How the rig is set up.
#[derive(Debug, Clone)]
pub struct RigOptions {
    pub exe: PathBuf,
    pub shops: u32,
    /// TikTok's limit per shop.
    pub qps: u32,
    pub batch_window: Duration,
    pub safety_margin: Option<f64>,
    pub keep: bool,
}

/// The simulator, the daemon and the HTTP client that drives them.
pub struct Rig {
    pub sim: SimulatorHandle,
    pub daemon: DaemonProcess,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    keep: bool,
    /// The cheapest SKU: orders of it stay below the approval threshold.
    sku: String,
    seq: usize,
}

/// What one run of arrivals did.
#[derive(Debug, Clone)]
pub struct Run {
    pub orders: usize,
    pub rate: f64,
    /// Webhooks not answered 200.
    pub non_200: usize,
    /// Sorted, ms.
    pub ack: Vec<f64>,
    /// Receipt → fulfilment initiated, per completed order; sorted, ms.
    pub fulfil: Vec<f64>,
    /// From the first webhook sent to the last order's ship call.
    pub drain: Duration,
    /// Calls TikTok's API counted (429s included).
    pub tiktok_calls: u64,
    pub throttled: u64,
    pub checkpoints: Checkpoints,
    pub peak_rss: Option<u64>,
    /// CPU seconds the daemon used during the run.
    pub daemon_cpu: Option<f64>,
}

impl Run {
    pub fn completed(&self) -> usize {
        self.fulfil.len()
    }

    pub fn completed_per_sec(&self) -> f64 {
        self.completed() as f64 / self.drain.as_secs_f64().max(1e-3)
    }

    pub fn calls_per_order(&self) -> f64 {
        self.tiktok_calls as f64 / self.orders.max(1) as f64
    }

    /// The columns every order scenario prints.
    pub const HEADER: [&'static str; 19] = [
        "Orders",
        "Offered/s",
        "Completed",
        "Completed/s",
        "Ack p50",
        "Ack p95",
        "Ack p99",
        "Receipt→fulfil p50",
        "p95",
        "p99",
        "TikTok calls/order",
        "429s",
        "Batches/s",
        "Mean batch",
        "Flushes/s",
        "Mean flush",
        "Non-200",
        "Daemon CPU/order",
        "Daemon peak RSS",
    ];

    pub fn cells(&self) -> Vec<String> {
        let secs = self.drain.as_secs_f64().max(1e-3);
        vec![
            self.orders.to_string(),
            format!("{:.0}", self.rate),
            self.completed().to_string(),
            format!("{:.0}", self.completed_per_sec()),
            ms(pct(&self.ack, 0.5)),
            ms(pct(&self.ack, 0.95)),
            ms(pct(&self.ack, 0.99)),
            ms(pct(&self.fulfil, 0.5)),
            ms(pct(&self.fulfil, 0.95)),
            ms(pct(&self.fulfil, 0.99)),
            format!("{:.3}", self.calls_per_order()),
            self.throttled.to_string(),
            format!("{:.0}", self.checkpoints.batches / secs),
            format!("{:.1}", self.checkpoints.mean_batch()),
            format!("{:.0}", self.checkpoints.flushes / secs),
            ms(self.checkpoints.mean_flush_ms()),
            self.non_200.to_string(),
            self.daemon_cpu
                .map(|c| ms(c * 1000.0 / self.orders.max(1) as f64))
                .unwrap_or_else(|| "?".into()),
            self.peak_rss.map(mib).unwrap_or_else(|| "?".into()),
        ]
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    super::json(http.get(url), url).await
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: reqwest::Body,
    ctype: &str,
) -> Result<Value> {
    super::json(http.post(url).header("Content-Type", ctype).body(body), url).await
}

fn answer(url: &str, detail: impl Into<String>) -> Error {
    Error::Answer {
        url: url.into(),
        detail: detail.into(),
    }
}

/// Calls TikTok's API counted so far, and how many of them were 429s.
async fn tiktok_calls(http: &reqwest::Client, sim: &str) -> Result<(u64, u64, u64)> {
    let v = get_json(http, &format!("{sim}/sim/stats")).await?;
    let ep = v["endpoints"].as_object().cloned().unwrap_or_default();
    let sum = |f: &str| ep.values().map(|e| e[f].as_u64().unwrap_or(0)).sum::<u64>();
    let ships = ["mark_package_shipped", "ship_package", "batch_ship"]
        .iter()
        .map(|n| {
            ep.get(*n)
                .map(|e| e["ok"].as_u64().unwrap_or(0))
                .unwrap_or(0)
        })
        .sum();
    Ok((sum("total"), sum("throttled"), ships))
}

fn unix_ms_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl Rig {
    /// Starts the simulator and the daemon, and stocks every SKU.
    pub async fn start(o: &RigOptions) -> Result<Rig> {
        let dir = super::workdir(o.keep)?;
        let sim = simulator::start(SimulatorArgs {
            app_key: APP_KEY.into(),
            app_secret: APP_SECRET.into(),
            access_token: ACCESS_TOKEN.into(),
            shops: o.shops.max(1),
            qps: o.qps.max(1),
            manual_carrier: true,
            buyer_cancel_rate: 0.0,
            ..Default::default()
        })
        .await?;
        let sim_url = sim.base_url();
        let wf = dir.path().join("workflows");
        std::fs::create_dir_all(&wf).map_err(io("creating the workflows folder"))?;
        std::fs::write(wf.join("standard.yaml"), STANDARD_WORKFLOW)
            .map_err(io("writing the workflow"))?;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut cfg = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndata_dir = {}\n\n[workflows]\ndir = {}\n\n\
             [sync]\n# Webhooks carry the load; no poll competes for the rate limit.\npoll_interval = \"1h\"\n\n\
             [shipping.providers.easypost]\nbase_url = {}\napi_key = \"EZTKsimulated\"\n\n[shipping.provider_ids]\nUSPS = \"6617675021119438849\"\nUPS = \"6617675021119438850\"\nFedEx = \"6617675021119438851\"\n\n\
             [tiktok]\nbase_url = {}\nauth_url = {}\napp_key = {}\nbatch_window = {}\n",
            q(&dir.path().join("data").display().to_string()),
            q(&wf.display().to_string()),
            q(&format!("{sim_url}/easypost/v2")),
            q(&sim_url),
            q(&sim_url),
            q(APP_KEY),
            q(&humantime::format_duration(o.batch_window).to_string()),
        );
        if let Some(m) = o.safety_margin {
            cfg.push_str(&format!("safety_margin = {m}\n"));
        }
        let mut env = vec![(
            "ORDERFLOW_TIKTOK__APP_SECRET".to_string(),
            APP_SECRET.to_string(),
        )];
        for (i, (id, cipher)) in sim.shops().iter().enumerate() {
            cfg.push_str(&format!(
                "\n[[tiktok.shops]]\nid = {}\ncipher = {}\nqps = {}\n",
                q(id),
                q(cipher),
                o.qps
            ));
            env.push((
                format!("ORDERFLOW_TIKTOK__SHOPS__{i}__ACCESS_TOKEN"),
                ACCESS_TOKEN.into(),
            ));
        }
        let config = dir.path().join("orderflow.toml");
        std::fs::write(&config, cfg).map_err(io("writing the daemon config"))?;
        let http = super::client()?;
        let mut daemon = DaemonProcess::spawn(
            &o.exe,
            &config,
            &env,
            &dir.path().join("daemon.log"),
            Duration::from_secs(60),
        )
        .await?;
        daemon.wait_ready(&http, Duration::from_secs(60)).await?;
        let sku = stock(&http, &sim_url, &daemon.base).await?;
        Ok(Rig {
            sim,
            daemon,
            http,
            dir,
            keep: o.keep,
            sku,
            seq: 0,
        })
    }

    /// Creates `n` orders awaiting shipment in the simulator, round-robin
    /// over the shops: `(order id, shop id)`.
    pub async fn create_orders(&self, n: usize) -> Result<Vec<(String, String)>> {
        let url = format!("{}/sim/orders", self.sim.base_url());
        let shops: Vec<String> = self.sim.shops().iter().map(|(id, _)| id.clone()).collect();
        let mut per_shop: Vec<Vec<String>> = vec![Vec::new(); shops.len()];
        for (s, shop) in shops.iter().enumerate() {
            let mut want = n / shops.len() + usize::from(s < n % shops.len());
            while want > 0 {
                let count = want.min(5_000);
                let body = json!({"shop_id": shop, "count": count, "status": "AWAITING_SHIPMENT",
                                  "items": [{"sku_id": self.sku, "quantity": 1}]});
                let v = post(
                    &self.http,
                    &url,
                    body.to_string().into(),
                    "application/json",
                )
                .await?;
                let got = v["orders"]
                    .as_array()
                    .ok_or_else(|| answer(&url, "no orders"))?;
                for o in got {
                    let id = o["order_id"]
                        .as_str()
                        .ok_or_else(|| answer(&url, "an order without order_id"))?;
                    per_shop[s].push(id.to_string());
                }
                want -= count;
            }
        }
        // Interleave the shops, as a viral product's orders would be.
        let mut out = Vec::with_capacity(n);
        for i in 0..per_shop.iter().map(Vec::len).max().unwrap_or(0) {
            for (s, ids) in per_shop.iter().enumerate() {
                if let Some(id) = ids.get(i) {
                    out.push((id.clone(), shops[s].clone()));
                }
            }
        }
        Ok(out)
    }

    /// Sends one webhook per order, `rate` a second, then waits until every
    /// order's ship call reached TikTok (or nothing moved for `stall`), and
    /// measures.
    pub async fn run(
        &mut self,
        orders: &[(String, String)],
        rate: f64,
        stall: Duration,
    ) -> Result<Run> {
        let sim_url = self.sim.base_url();
        let before = self.daemon.metrics(&self.http).await?.checkpoints();
        let cpu0 = self.daemon.cpu_seconds();
        let (calls0, throttled0, ships0) = tiktok_calls(&self.http, &sim_url).await?;
        let hook = format!("{}/webhooks/tiktok", self.daemon.base);
        let start = tokio::time::Instant::now();
        let first_sent = unix_ms_now();
        let mut sent_at = HashMap::with_capacity(orders.len());
        let mut tasks = Vec::with_capacity(orders.len());
        let hook = Arc::new(hook);
        let rate = rate.max(1e-3);
        for (i, (id, shop)) in orders.iter().enumerate() {
            // The i-th order is due at i / rate. Timers tick in whole
            // milliseconds, so above 1,000/s several go out per tick.
            while (start.elapsed().as_secs_f64() * rate) < i as f64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            self.seq += 1;
            let now_s = (unix_ms_now() / 1000.0) as i64;
            let body = json!({
                "type": 1,
                "tts_notification_id": format!("loadtest-{}", self.seq),
                "shop_id": shop,
                "timestamp": now_s,
                "data": {"order_id": id, "order_status": "AWAITING_SHIPMENT", "is_on_hold_order": false, "update_time": now_s},
            })
            .to_string();
            let sig = crate::tiktok::sign::webhook_signature(APP_KEY, APP_SECRET, body.as_bytes());
            let (http, hook) = (self.http.clone(), hook.clone());
            sent_at.insert(id.clone(), unix_ms_now());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = http
                    .post(hook.as_str())
                    .header("Authorization", sig)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                (t.elapsed().as_secs_f64() * 1000.0, r.unwrap_or(0))
            }));
        }
        let mut ack = Vec::with_capacity(orders.len());
        let mut non_200 = 0;
        let mut failures: std::collections::BTreeMap<u16, usize> = Default::default();
        for t in tasks {
            let (ms, status) = t.await.unwrap_or((0.0, 0));
            if status != 200 {
                non_200 += 1;
                *failures.entry(status).or_default() += 1;
            }
            ack.push(ms);
        }
        if !failures.is_empty() {
            // Not retried (TikTok would): those orders never ship.
            eprintln!("(webhooks not answered 200, by status, 0 = no answer: {failures:?})");
        }
        ack.sort_by(f64::total_cmp);
        // Wait for the ships.
        let want = orders.len() as u64;
        let mut last = (0u64, Instant::now());
        loop {
            let (_, _, ships) = tiktok_calls(&self.http, &sim_url).await?;
            let done = ships.saturating_sub(ships0);
            if done >= want {
                break;
            }
            if done != last.0 {
                last = (done, Instant::now());
            } else if last.1.elapsed() >= stall {
                eprintln!("(gave up waiting: {done} of {want} orders shipped, none for {stall:?})");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (calls1, throttled1, _) = tiktok_calls(&self.http, &sim_url).await?;
        let after = self.daemon.metrics(&self.http).await?.checkpoints();
        let cpu1 = self.daemon.cpu_seconds();
        // The ledger: when TikTok saw each order's first successful ship.
        let mut fulfil = Vec::with_capacity(orders.len());
        let mut last_ship = first_sent;
        for action in ["mark_shipped", "ship"] {
            let url = format!("{sim_url}/sim/ledger?action={action}");
            let v = get_json(&self.http, &url).await?;
            for e in v["entries"].as_array().into_iter().flatten() {
                if e["ok"] != true {
                    continue;
                }
                let Some(id) = e["order_id"].as_str() else {
                    continue;
                };
                if let Some(sent) = sent_at.remove(id) {
                    let at = e["at_ms"].as_f64().unwrap_or(0.0);
                    fulfil.push((at - sent).max(0.0));
                    last_ship = last_ship.max(at);
                }
            }
        }
        fulfil.sort_by(f64::total_cmp);
        Ok(Run {
            orders: orders.len(),
            rate,
            non_200,
            ack,
            fulfil,
            drain: Duration::from_secs_f64(((last_ship - first_sent) / 1000.0).max(0.0)),
            tiktok_calls: calls1 - calls0,
            throttled: throttled1 - throttled0,
            checkpoints: after.since(&before),
            peak_rss: self.daemon.peak_rss(),
            daemon_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        })
    }

    /// Stops the simulator and the daemon; keeps the temp dir if asked.
    pub async fn stop(self) {
        let Rig {
            sim,
            daemon,
            dir,
            keep,
            ..
        } = self;
        drop(daemon);
        sim.stop().await;
        super::finish_workdir(dir, keep);
    }
}

/// Gives every simulated SKU plenty of stock in every shop's warehouse,
/// with its TikTok product id (for the inventory push); returns the
/// cheapest SKU.
async fn stock(http: &reqwest::Client, sim: &str, daemon: &str) -> Result<String> {
    let url = format!("{sim}/sim/shops");
    let v = get_json(http, &url).await?;
    let warehouses: Vec<&str> = v["shops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["warehouse_id"].as_str())
        .collect();
    let mut csv = String::from("sku_id,warehouse_id,on_hand,product_id\n");
    let mut cheapest: Option<(f64, String)> = None;
    for s in v["skus"].as_array().into_iter().flatten() {
        let (Some(id), Some(product)) = (s["id"].as_str(), s["product_id"].as_str()) else {
            continue;
        };
        for w in &warehouses {
            csv.push_str(&format!("{id},{w},{STOCK},{product}\n"));
        }
        let price: f64 = s["price"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or(f64::MAX);
        if cheapest.as_ref().is_none_or(|(p, _)| price < *p) {
            cheapest = Some((price, id.to_string()));
        }
    }
    let (_, sku) = cheapest.ok_or_else(|| answer(&url, "no SKUs"))?;
    post(
        http,
        &format!("{daemon}/api/v1/inventory/import"),
        csv.into(),
        "text/csv",
    )
    .await?;
    Ok(sku)
}
