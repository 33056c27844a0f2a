//! Figures over all orders: lifecycle counts, orders at risk of missing
//! their ship-by deadline, fulfilment times, late dispatches, top SKUs.
//!
//! One pass over the checkpoints. The admin API's stats and the Prometheus
//! gauges both come from here (the gauges are refreshed periodically, not
//! per transition, so a restart never leaves them wrong).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lifecycle::Lifecycle;
use crate::store::{index, OrderRecord, Store};

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
    /// Receipt → fulfilment (TikTok took the ship call), seconds.
    pub fulfillment_p50_s: Option<f64>,
    pub fulfillment_p95_s: Option<f64>,
    /// Eligible to ship (first AWAITING_SHIPMENT) → fulfilment,
    /// seconds: the SLA clock, without payment and TikTok's hold.
    pub eligible_fulfillment_p50_s: Option<f64>,
    pub eligible_fulfillment_p95_s: Option<f64>,
    /// `[sla] fulfilment_target`, seconds.
    pub fulfillment_target_s: Option<f64>,
    /// Shipped orders whose ship call TikTok took after their ship-by
    /// deadline, over all shipped orders.
    pub late_dispatch_rate: Option<f64>,
    /// Orders whose ship call TikTok took (the rate's denominator).
    pub shipped: u64,
    /// Of those, taken after the ship-by deadline (the rate's numerator).
    pub late_dispatches: u64,
    /// SKUs by units ordered, most first (top 10).
    pub top_skus: Vec<(String, u64)>,
}

/// Not yet shipped (no ship call TikTok took): the ship-by deadline still
/// matters.
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

/// The counts, from the counters and the ship-by index: no order is
/// decoded, so it costs the same on a store of any age.
pub fn counts(store: &Store, now_ms: i64, margin_s: i64) -> Summary {
    let tree = &store.trees.orders;
    let mut s = Summary::default();
    s.by_lifecycle = index::by_lifecycle(tree).unwrap_or_default();
    s.total = s.by_lifecycle.values().sum();
    s.exceptions_open = s
        .by_lifecycle
        .get(Lifecycle::Exception.as_str())
        .copied()
        .unwrap_or(0);
    s.orders_per_day = index::per_day(tree, usize::MAX).unwrap_or_default();
    let now_s = now_ms / 1000;
    for (due, _) in index::ship_by_before(tree, now_s + margin_s).flatten() {
        s.at_risk += 1;
        if due < now_s {
            s.late += 1;
        }
    }
    s
}

/// [`counts`], with the fulfilment figures from the per-day sketches and
/// counters kept with the checkpoints: fulfilment-time percentiles
/// (DDSketch, 1% relative accuracy), the late-dispatch rate and the top
/// SKUs by orders. No order is read.
pub fn summarize(store: &Store, now_ms: i64, margin_s: i64) -> Summary {
    let mut s = counts(store, now_ms, margin_s);
    let Ok(f) = index::fulfilment(&store.trees.orders) else {
        return s;
    };
    let pct = |sk: &sketches_ddsketch::DDSketch, q: f64| sk.quantile(q).ok().flatten();
    s.fulfillment_p50_s = pct(&f.receipt, 0.5);
    s.fulfillment_p95_s = pct(&f.receipt, 0.95);
    s.eligible_fulfillment_p50_s = pct(&f.eligible, 0.5);
    s.eligible_fulfillment_p95_s = pct(&f.eligible, 0.95);
    s.late_dispatch_rate = (f.shipped > 0).then(|| f.late as f64 / f.shipped as f64);
    (s.shipped, s.late_dispatches) = (f.shipped, f.late);
    let mut top: Vec<(String, u64)> = f.per_sku.into_iter().collect();
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
