//! Webhook delivery as TikTok does it: signed with `Authorization` = hex
//! HMAC-SHA256(app secret, app key + body), answered with 200 or retried
//! +2 min, +30 min, +3 h and +12 h later (simulated time, so divided by the
//! time scale), then dropped. Faults can drop, duplicate or reorder pushes.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{real_now_ms, DeliveryRecord, Push};
use super::Shared;
use crate::tiktok::sign::webhook_signature;

/// TikTok's retry schedule after a failed push, in simulated seconds.
pub const RETRY_SCHEDULE_SECS: [f64; 4] = [120.0, 1800.0, 3.0 * 3600.0, 12.0 * 3600.0];

fn record(sim: &Shared, p: &Push, attempt: u32, outcome: &str, http_status: Option<u16>) {
    sim.world.lock().deliveries.push(DeliveryRecord {
        notification_id: p.notification_id.clone(),
        kind: p.kind,
        order_id: p.order_id.clone(),
        attempt,
        outcome: outcome.to_string(),
        http_status,
        at_ms: real_now_ms(),
    });
}

/// Sends one push and, on failure, schedules its retries.
fn deliver(
    sim: Arc<Shared>,
    http: reqwest::Client,
    p: Arc<Push>,
    attempt: u32,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let sig = webhook_signature(&sim.app_key, &sim.app_secret, &p.body);
        let res = http
            .post(&p.url)
            .header("content-type", "application/json")
            .header("Authorization", sig)
            .timeout(Duration::from_secs(3))
            .body(p.body.clone())
            .send()
            .await;
        let status = res.as_ref().ok().map(|r| r.status().as_u16());
        if status == Some(200) {
            record(&sim, &p, attempt, "delivered", status);
            return;
        }
        let Some(delay) = RETRY_SCHEDULE_SECS.get(attempt as usize) else {
            record(&sim, &p, attempt, "gave_up", status);
            return;
        };
        record(&sim, &p, attempt, "failed", status);
        let scale = sim.world.lock().clock.scale().max(1e-6);
        let real = Duration::from_secs_f64((delay / scale).min(86_400.0 * 30.0));
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(real) => deliver(sim, http, p, attempt + 1, cancel),
        }
    });
}

/// The pusher: takes pushes in the order the world produced them and
/// applies the webhook faults.
pub(crate) async fn run(
    sim: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Push>,
    cancel: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut held: Option<Arc<Push>> = None;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)), if held.is_some() => None,
            p = rx.recv() => match p {
                Some(p) => Some(p),
                None => break,
            },
        };
        let Some(p) = next else {
            // Nothing followed the held push for a second: send it anyway.
            if let Some(h) = held.take() {
                deliver(sim.clone(), http.clone(), h, 0, cancel.clone());
            }
            continue;
        };
        let p = Arc::new(p);
        let (drop_it, dup, reorder) = {
            let mut w = sim.world.lock();
            let f = w.faults.clone();
            let mut roll = |r: f64| r > 0.0 && w.rng.random_bool(r.clamp(0.0, 1.0));
            (
                roll(f.webhook_drop_rate),
                roll(f.webhook_duplicate_rate),
                roll(f.webhook_reorder_rate),
            )
        };
        if drop_it {
            record(&sim, &p, 0, "dropped", None);
            continue;
        }
        if reorder && held.is_none() {
            record(&sim, &p, 0, "reordered", None);
            held = Some(p);
            continue;
        }
        deliver(sim.clone(), http.clone(), p.clone(), 0, cancel.clone());
        if dup {
            record(&sim, &p, 0, "duplicated", None);
            deliver(sim.clone(), http.clone(), p, 0, cancel.clone());
        }
        if let Some(h) = held.take() {
            deliver(sim.clone(), http.clone(), h, 0, cancel.clone());
        }
    }
}
