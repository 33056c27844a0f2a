//! The ship-by deadline watcher: warns a person before an order misses its
//! ship-by deadline, and keeps the lifecycle and at-risk gauges current.
//!
//! Every `runtime.deadline_check` it makes one pass over the orders
//! ([`report::summarize`] for the gauges, [`report::is_at_risk`] for the
//! warnings). Each unshipped order with less than `runtime.at_risk_margin`
//! left gets **one** notification through [`Notifier::alert`] (the alerts
//! channel, else the default channel). That an order was warned about is
//! kept in the store (`cursors`, key `deadline_alert:{order}`), so a
//! restart does not warn again; a delivery that failed after all the
//! notifier's retries is tried again on the next pass, because the warning
//! is only useful if somebody reads it.
//!
//! The same pass warns, once per request, about a buyer's cancellation
//! request held for an operator whose answer TikTok needs within the
//! margin (its `respond_by`, from Search Cancellations); marker
//! `cancel_request_alert:{cancel_id}`.
//!
//! Time comes from the runtime's [`Clock`], so tests move it by hand.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::notify::Notifier;
use crate::runtime::report;
use crate::runtime::Clock;
use crate::store::index;
use crate::store::Store;

/// Store key (in `cursors`) recording that `order_id` was warned about.
fn marker(order_id: &str) -> String {
    format!("deadline_alert:{order_id}")
}

/// Store key (in `cursors`) recording that a cancellation request was
/// warned about.
fn cancel_marker(cancel_id: &str) -> String {
    format!("cancel_request_alert:{cancel_id}")
}

/// A buyer's cancellation request held for an operator, its answer due
/// within `margin_s`: `(cancel_id, respond_by)`.
fn cancel_answer_due(
    r: &crate::store::OrderRecord,
    now_ms: i64,
    margin_s: i64,
) -> Option<(String, i64)> {
    let o = r.order.as_ref()?;
    let req = o.cancel_request.as_ref()?;
    let respond_by = req.respond_by?;
    (r.answer_for(&req.cancel_id)
        .is_some_and(crate::store::AnswerState::needs_operator)
        && o.buyer_cancel_requested
        && !r.lifecycle.is_terminal()
        && respond_by - now_ms / 1000 < margin_s)
        .then(|| (req.cancel_id.clone(), respond_by))
}

/// Warnings sent at the same time by one pass.
const WARNINGS_IN_PARALLEL: usize = 16;

/// An order that needs a warning now.
#[derive(Debug, Clone, PartialEq)]
pub struct AtRisk {
    pub order_id: String,
    pub shop_id: String,
    /// Unix seconds.
    pub ship_by: i64,
    pub time_left_s: i64,
    /// Set for a buyer's cancellation request awaiting an operator's
    /// answer (then `ship_by` is TikTok's deadline for that answer).
    pub cancel_id: Option<String>,
}

/// The words of a warning. `time_scale` above 1 (demo mode) turns the
/// real seconds left into TikTok's time and says so.
fn warning_text(o: &AtRisk, time_scale: f64) -> String {
    let scaled = time_scale.is_finite() && time_scale > 1.0;
    let left = if scaled {
        (o.time_left_s as f64 * time_scale).round() as i64
    } else {
        o.time_left_s
    };
    let suffix = if scaled {
        format!(" of demo time ({time_scale}x real time)")
    } else {
        String::new()
    };
    let hm = |s: i64| format!("{} h {} min", s.max(0) / 3600, (s.max(0) % 3600) / 60);
    if let Some(c) = &o.cancel_id {
        format!(
            "Order {}: the buyer's cancellation request {c} waits for an answer, due within {}{suffix}; approve or reject it",
            o.order_id,
            hm(left)
        )
    } else if left < 0 {
        format!(
            "Order {} is not shipped and missed its ship-by deadline {} min ago{suffix}",
            o.order_id,
            -left / 60
        )
    } else {
        format!(
            "Order {} is not shipped yet and must ship within {}{suffix} (ship-by deadline)",
            o.order_id,
            hm(left)
        )
    }
}

/// Everything the watcher needs; `run` is its whole life.
#[derive(Clone)]
pub struct DeadlineWatcher {
    pub store: Store,
    pub clock: Clock,
    pub notifier: Notifier,
    /// `runtime.at_risk_margin`, seconds.
    pub margin_s: i64,
    /// `runtime.deadline_check`: time between passes.
    pub interval: Duration,
    /// How much faster than real time TikTok's deadlines run: 1 in
    /// production; `[demo] time_scale` in demo mode, where a ship-by
    /// window of days passes in minutes. Warnings give the time left in
    /// TikTok's time, and say so when it is scaled.
    pub time_scale: f64,
}

impl DeadlineWatcher {
    /// Passes until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            self.pass().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Sends one warning; records it unless it should be tried again.
    /// Returns the order when the warning was delivered.
    async fn warn(&self, o: AtRisk) -> Option<AtRisk> {
        let text = warning_text(&o, self.time_scale);
        let d = self
            .notifier
            .alert(
                &text,
                serde_json::json!({
                    "kind": if o.cancel_id.is_some() { "cancel_request_due" } else { "ship_by_at_risk" },
                    "cancel_id": o.cancel_id,
                    "order_id": o.order_id,
                    "shop_id": o.shop_id,
                    "ship_by": o.ship_by,
                    "time_left_s": o.time_left_s,
                }),
            )
            .await;
        // No channel configured at all: the alert is logged, and retrying
        // cannot help.
        let unroutable = d.attempts == 0;
        if !(d.delivered || unroutable) {
            tracing::warn!(order_id = %o.order_id, error = ?d.error, "Deadline warning not delivered; retrying on the next pass");
            return None;
        }
        let key = match &o.cancel_id {
            Some(c) => cancel_marker(c),
            None => marker(&o.order_id),
        };
        if let Err(e) = self.store.trees.cursors.insert(key.as_bytes(), &b"1"[..]) {
            tracing::error!(order_id = %o.order_id, error = %e, "Could not record the deadline warning");
        }
        d.delivered.then_some(o)
    }

    /// One pass: publish the gauges, warn about orders newly at risk.
    /// Returns the orders warned about (delivered) in this pass.
    pub async fn pass(&self) -> Vec<AtRisk> {
        let store = self.store.clone();
        let now = self.clock.now_ms();
        let margin = self.margin_s;
        let scanned = tokio::task::spawn_blocking(move || {
            let sum = report::counts(&store, now, margin);
            let marked =
                |k: String| matches!(store.trees.cursors.contains_key(k.as_bytes()), Ok(true));
            // Only the orders whose deadline falls before now + margin,
            // from the deadline indexes.
            let until = now / 1000 + margin;
            let mut ids: Vec<String> = index::respond_by_before(&store.trees.orders, until)
                .chain(index::ship_by_before(&store.trees.orders, until))
                .flatten()
                .map(|(_, id)| id)
                .collect();
            ids.sort();
            ids.dedup();
            let mut due: Vec<AtRisk> = Vec::new();
            for r in ids
                .iter()
                .filter_map(|id| store.load_order(id).ok().flatten())
            {
                if let Some((cancel_id, respond_by)) = cancel_answer_due(&r, now, margin) {
                    if !marked(cancel_marker(&cancel_id)) {
                        due.push(AtRisk {
                            order_id: r.order_id.clone(),
                            shop_id: r.shop_id.clone(),
                            ship_by: respond_by,
                            time_left_s: respond_by - now / 1000,
                            cancel_id: Some(cancel_id),
                        });
                    }
                }
                if report::is_at_risk(&r, now, margin) && !marked(marker(&r.order_id)) {
                    let ship_by = r.order.as_ref().and_then(|o| o.deadlines.ship_by());
                    if let (Some(ship_by), Some(time_left_s)) =
                        (ship_by, report::time_left_s(&r, now))
                    {
                        due.push(AtRisk {
                            ship_by,
                            time_left_s,
                            order_id: r.order_id,
                            shop_id: r.shop_id,
                            cancel_id: None,
                        });
                    }
                }
            }
            (sum, due)
        })
        .await;
        let (sum, due) = match scanned {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "Deadline pass failed");
                return Vec::new();
            }
        };
        report::publish(&sum);
        // Several at once, so a slow or dead channel costs one notifier
        // budget per batch, not per order.
        let results: Vec<Option<AtRisk>> = futures::stream::iter(due)
            .map(|o| self.warn(o))
            .buffer_unordered(WARNINGS_IN_PARALLEL)
            .collect()
            .await;
        let warned: Vec<AtRisk> = results.into_iter().flatten().collect();
        if !warned.is_empty() {
            let _ = self.store.db.flush_async().await;
        }
        warned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_risk(time_left_s: i64, cancel_id: Option<&str>) -> AtRisk {
        AtRisk {
            order_id: "576".into(),
            shop_id: "s".into(),
            ship_by: 0,
            time_left_s,
            cancel_id: cancel_id.map(str::to_string),
        }
    }

    #[test]
    fn warnings_give_the_time_left_in_tiktoks_time() {
        // Production: real time, no mention of a scale.
        let t = warning_text(&at_risk(5 * 3600 + 12 * 60, None), 1.0);
        assert!(t.contains("within 5 h 12 min (ship-by deadline)"), "{t}");
        assert!(!t.contains("demo"), "{t}");
        // Demo at 3,600x: 5.2 real seconds are 5 h 12 min of TikTok's time.
        let t = warning_text(&at_risk(5, None), 3600.0);
        assert!(
            t.contains("within 5 h 0 min of demo time (3600x real time)"),
            "{t}"
        );
        let t = warning_text(&at_risk(-2, None), 3600.0);
        assert!(
            t.contains("missed its ship-by deadline 120 min ago of demo time"),
            "{t}"
        );
        let t = warning_text(&at_risk(3, Some("c1")), 3600.0);
        assert!(
            t.contains("request c1 waits for an answer, due within 3 h 0 min of demo time"),
            "{t}"
        );
    }
}
