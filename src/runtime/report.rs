//! Figures over all orders: lifecycle counts, orders at risk of missing
//! their ship-by deadline, fulfilment times, late dispatches, top SKUs.
//!
//! One pass over the checkpoints. The admin API's stats and the Prometheus
//! gauges both come from here (the gauges are refreshed periodically, not
//! per transition, so a restart never leaves them wrong).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lifecycle::Lifecycle;
use crate::store::{OrderRecord, Store};

/// The `[sla]` section: what the eligible-to-fulfilment time should stay
/// under (alert `FulfilmentSlowerThanTarget`, the console's figures).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    #[serde(with = "crate::config::human")]
    pub fulfilment_target: std::time::Duration,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            fulfilment_target: std::time::Duration::from_secs(30),
        }
    }
}

impl SlaConfig {
    /// Every problem at once; empty when usable.
    pub fn validate(&self) -> Vec<String> {
        if self.fulfilment_target.is_zero() {
            vec!["sla.fulfilment_target: must be above 0".into()]
        } else {
            Vec::new()
        }
    }

    /// Publishes the target as a gauge, for the alert rule.
    pub fn publish(&self) {
        metrics::gauge!(crate::metrics::SLA_FULFILLMENT_TARGET_SECONDS)
            .set(self.fulfilment_target.as_secs_f64());
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub total: u64,
    pub by_lifecycle: BTreeMap<&'static str, u64>,
    /// Not yet shipped, with less than the margin left before ship-by.
    pub at_risk: u64,
    /// Not yet shipped and past ship-by.
    pub late: u64,
    pub exceptions_open: u64,
    /// Orders received per UTC day (`YYYY-MM-DD`).
    pub orders_per_day: BTreeMap<String, u64>,
    /// Receipt → fulfilment initiated, seconds.
    pub fulfillment_p50_s: Option<f64>,
    pub fulfillment_p95_s: Option<f64>,
    /// Eligible to ship (first AWAITING_SHIPMENT) → fulfilment initiated,
    /// seconds: the SLA clock, without payment and TikTok's hold.
    pub eligible_fulfillment_p50_s: Option<f64>,
    pub eligible_fulfillment_p95_s: Option<f64>,
    /// `[sla] fulfilment_target`, seconds.
    pub fulfillment_target_s: Option<f64>,
    /// Shipped orders whose ship call came after their ship-by deadline,
    /// over all shipped orders.
    pub late_dispatch_rate: Option<f64>,
    /// SKUs by units ordered, most first (top 10).
    pub top_skus: Vec<(String, u64)>,
}

/// Not yet shipped: the ship-by deadline still matters.
pub fn unshipped(r: &OrderRecord) -> bool {
    matches!(
        r.lifecycle,
        Lifecycle::Pending | Lifecycle::Processing | Lifecycle::OnHold | Lifecycle::Exception
    ) && r.fulfillment_ms.is_none()
}

/// Seconds left before the order's ship-by deadline (negative: late).
pub fn time_left_s(r: &OrderRecord, now_ms: i64) -> Option<i64> {
    let due = r.order.as_ref()?.deadlines.ship_by()?;
    Some(due - now_ms / 1000)
}

pub fn is_at_risk(r: &OrderRecord, now_ms: i64, margin_s: i64) -> bool {
    unshipped(r) && time_left_s(r, now_ms).is_some_and(|left| left < margin_s)
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn summarize(store: &Store, now_ms: i64, margin_s: i64) -> Summary {
    let mut s = Summary {
        by_lifecycle: Lifecycle::ALL.iter().map(|l| (l.as_str(), 0)).collect(),
        ..Default::default()
    };
    let mut fulfil = Vec::new();
    let mut eligible = Vec::new();
    let (mut shipped, mut late_shipped) = (0u64, 0u64);
    let mut skus: BTreeMap<String, u64> = BTreeMap::new();
    for r in store.orders().flatten() {
        s.total += 1;
        *s.by_lifecycle.entry(r.lifecycle.as_str()).or_default() += 1;
        *s.orders_per_day.entry(day(r.received_ms)).or_default() += 1;
        if r.lifecycle == Lifecycle::Exception {
            s.exceptions_open += 1;
        }
        if is_at_risk(&r, now_ms, margin_s) {
            s.at_risk += 1;
            if time_left_s(&r, now_ms).is_some_and(|l| l < 0) {
                s.late += 1;
            }
        }
        if let Some(f) = r.fulfillment_ms {
            fulfil.push((f - r.received_ms).max(0) as f64 / 1000.0);
            if let Some(e) = r.eligible_ms {
                eligible.push((f - e).max(0) as f64 / 1000.0);
            }
            shipped += 1;
            if let Some(due) = r.order.as_ref().and_then(|o| o.deadlines.ship_by()) {
                if f / 1000 > due {
                    late_shipped += 1;
                }
            }
        }
        if let Some(o) = &r.order {
            for li in &o.line_items {
                *skus.entry(li.sku_id.clone()).or_default() += 1;
            }
        }
    }
    fulfil.sort_by(|a, b| a.total_cmp(b));
    eligible.sort_by(|a, b| a.total_cmp(b));
    let pct = |v: &[f64], p: f64| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied()
    };
    s.fulfillment_p50_s = pct(&fulfil, 0.5);
    s.fulfillment_p95_s = pct(&fulfil, 0.95);
    s.eligible_fulfillment_p50_s = pct(&eligible, 0.5);
    s.eligible_fulfillment_p95_s = pct(&eligible, 0.95);
    s.late_dispatch_rate = (shipped > 0).then(|| late_shipped as f64 / shipped as f64);
    let mut top: Vec<(String, u64)> = skus.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    s.top_skus = top;
    s
}

/// Publishes the gauges from a summary.
pub fn publish(s: &Summary) {
    for (state, n) in &s.by_lifecycle {
        metrics::gauge!(crate::metrics::ORDERS, "state" => *state).set(*n as f64);
    }
    metrics::gauge!(crate::metrics::ORDERS_AT_RISK).set(s.at_risk as f64);
    metrics::gauge!(crate::metrics::ORDERS_LATE).set(s.late as f64);
}
