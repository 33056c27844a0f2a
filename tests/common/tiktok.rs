//! Shared helpers for the TikTok gateway and simulator tests: start an
//! in-process simulator on 127.0.0.1:0 and build a matching configuration.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use orderflow::simulator::{self, SimulatorArgs, SimulatorHandle};
use orderflow::tiktok::{Secret, ShopConfig, TiktokConfig};
use parking_lot::Mutex;
use serde_json::Value;

pub async fn start_sim(args: SimulatorArgs) -> SimulatorHandle {
    simulator::start(args).await.expect("simulator starts")
}

/// A configuration for every simulated shop, ciphers omitted (fetched from
/// Get Authorized Shops), rate limit `qps` per shop.
pub fn config(sim: &SimulatorHandle, qps: f64) -> TiktokConfig {
    TiktokConfig {
        base_url: sim.base_url(),
        auth_url: sim.base_url(),
        app_key: "sim-app-key".into(),
        app_secret: Secret::new("sim-app-secret"),
        shops: sim
            .shops()
            .iter()
            .map(|(id, _)| ShopConfig {
                id: id.clone(),
                cipher: None,
                access_token: Secret::new("sim-access-token"),
                refresh_token: Secret::new("sim-refresh-token"),
                qps,
                region: None,
            })
            .collect(),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(1000),
        ..TiktokConfig::default()
    }
}

pub async fn sim_get(sim: &SimulatorHandle, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sim.base_url()))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json")
}

pub async fn sim_post(sim: &SimulatorHandle, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
    resp.json().await.expect("json")
}

/// `(order_id, package_id)` of newly created orders.
pub async fn create_orders(sim: &SimulatorHandle, body: Value) -> Vec<(String, String)> {
    let v = sim_post(sim, "/sim/orders", body).await;
    v["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap().to_string(),
                o["package_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Endpoint statistics from `/sim/stats`: (total, ok, throttled, faulted, rejected).
pub async fn endpoint_stats(sim: &SimulatorHandle, endpoint: &str) -> (u64, u64, u64, u64, u64) {
    let s = sim_get(sim, "/sim/stats").await;
    let e = &s["endpoints"][endpoint];
    let n = |k: &str| e[k].as_u64().unwrap_or(0);
    (
        n("total"),
        n("ok"),
        n("throttled"),
        n("faulted"),
        n("rejected"),
    )
}

/// The most requests the simulator saw for `shop_id` in one second.
pub async fn max_per_second(sim: &SimulatorHandle, shop_id: &str) -> u64 {
    let s = sim_get(sim, "/sim/stats").await;
    s["shops"][shop_id]["max_per_second"].as_u64().unwrap_or(0)
}

/// A token sink that remembers what it was handed.
#[derive(Default)]
pub struct RecordingSink(pub Mutex<Vec<(String, String)>>);

impl orderflow::tiktok::TokenSink for RecordingSink {
    fn tokens_refreshed(&self, shop_id: &str, tokens: &orderflow::tiktok::Tokens) {
        self.0.lock().push((
            shop_id.to_string(),
            tokens.access_token.expose().to_string(),
        ));
    }
}

pub fn sink() -> Arc<RecordingSink> {
    Arc::new(RecordingSink::default())
}
