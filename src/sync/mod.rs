//! Order sync with TikTok Shop, both ways in: signed webhooks
//! ([`webhook`]) and polling as the backup ([`poll`]), with webhook
//! notifications hydrated into full orders through the gateway's batched
//! order detail ([`Hydrator`]).
//!
//! Webhooks carry only ids and statuses, arrive late, twice, out of order or
//! not at all. So a webhook is stored (inbox) and acknowledged, then the
//! order is fetched — 50 ids per detail call when many arrive together —
//! and applied as a snapshot; the order actor ignores anything older than
//! what it has (by `update_time`). Polling by `update_time` from a durable
//! cursor catches whatever webhooks missed, so every order converges.

pub mod poll;
pub mod webhook;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actors::RuntimeHandle;
use crate::config::Dur;
use crate::runtime::core::Msg;
use crate::runtime::event::{EventKind, OrderEvent};
use crate::tiktok::{GatewayHandle, Priority};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// How often each shop is polled for orders updated since its cursor.
    pub poll_interval: Dur,
    /// How far before the cursor each poll starts again (late writes on
    /// TikTok's side).
    pub poll_overlap: Dur,
    /// Where polling starts for a shop with no cursor yet.
    pub initial_lookback: Dur,
    /// Largest webhook body accepted (bytes); larger gets 413.
    pub webhook_max_bytes: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            poll_interval: Dur(Duration::from_secs(60)),
            poll_overlap: Dur(Duration::from_secs(300)),
            initial_lookback: Dur(Duration::from_secs(86_400)),
            webhook_max_bytes: 256 * 1024,
        }
    }
}

impl SyncConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.poll_interval.0 < Duration::from_millis(100) {
            p.push("sync.poll_interval must be at least 100ms".into());
        }
        if self.webhook_max_bytes < 1024 {
            p.push("sync.webhook_max_bytes must be at least 1024".into());
        }
        p
    }
}

/// Reads the buyer's pending cancellation request of every order that has
/// one (`is_buyer_request_cancel`), with one Search Cancellations call per
/// 50 such orders: orders without one cost nothing. A transient failure is
/// returned, so the caller fetches again; one no retry fixes (the app lacks
/// the Return & Refund scope) leaves the orders flagged without the
/// request, which holds them for a person.
pub async fn attach_cancel_requests(
    gateway: &GatewayHandle,
    shop: &str,
    orders: &mut [crate::order::Order],
    priority: Priority,
) -> Result<(), crate::tiktok::Error> {
    let wanted: Vec<String> = orders
        .iter()
        .filter(|o| o.buyer_cancel_requested && o.cancel_request.is_none())
        .map(|o| o.id.clone())
        .collect();
    for ids in wanted.chunks(50) {
        match gateway
            .pending_cancellations(shop, ids.to_vec(), priority)
            .await
        {
            Ok(found) => {
                for c in &found {
                    if let Some(o) = orders.iter_mut().find(|o| o.id == c.order_id) {
                        o.cancel_request = Some(crate::order::CancelRequest::from_wire(c));
                    }
                }
            }
            Err(e) if e.is_fatal() => {
                tracing::error!(shop_id = %shop, error = %e, "Cannot read buyers' cancellation requests (check the app's Return & Refund scope); the orders are held for a person")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fetches full orders for notifications that carry only an id, then
/// applies them. Lookups go through the gateway, which coalesces up to 50
/// ids per Order Detail call.
#[derive(Clone)]
pub struct Hydrator {
    pub gateway: GatewayHandle,
}

impl Hydrator {
    /// Adds the reason and the seller's deadline of a return (Search
    /// Returns) to its event. A failed read leaves the event as the webhook
    /// had it: the return is still kept and given to the workflow.
    pub async fn read_return(&self, event: &mut OrderEvent) {
        let EventKind::Return(r) = &mut event.kind else {
            return;
        };
        if r.return_id.is_empty() {
            return;
        }
        match self
            .gateway
            .return_order(&event.shop_id, &r.return_id, Priority::background())
            .await
        {
            Ok(Some(found)) => {
                let read = crate::runtime::event::ReturnUpdate::from_search(&found);
                r.reason = read.reason;
                r.reason_text = read.reason_text;
                r.respond_by = read.respond_by;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(order_id = %event.order_id, return_id = %r.return_id, error = %e, "Could not read the return from TikTok; kept as the webhook told it")
            }
        }
    }

    /// Fetches the order and delivers it as a snapshot, consuming the inbox
    /// entry `seq` when applied. On failure the entry stays in the inbox:
    /// it is retried a few times here, redelivered on the next start, and
    /// polling converges the order meanwhile.
    pub async fn hydrate_and_deliver(&self, runtime: &RuntimeHandle, seq: u64, event: OrderEvent) {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            match self
                .gateway
                .order_detail(&event.shop_id, &event.order_id, Priority::sync(None))
                .await
            {
                Ok(order) => {
                    let mut one = [order];
                    if let Err(e) = attach_cancel_requests(
                        &self.gateway,
                        &event.shop_id,
                        &mut one,
                        Priority::sync(None),
                    )
                    .await
                    {
                        if attempt < 5 {
                            tracing::warn!(order_id = %event.order_id, attempt, error = %e, "Reading the buyer's cancellation request failed; fetching again");
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                            continue;
                        }
                    }
                    let [order] = one;
                    let snap = OrderEvent {
                        kind: EventKind::Snapshot(Box::new(order)),
                        ..event.clone()
                    };
                    if let Err(e) = runtime
                        .deliver(
                            &event.order_id,
                            Msg::Event {
                                inbox_seq: Some(seq),
                                event: snap,
                            },
                        )
                        .await
                    {
                        tracing::warn!(order_id = %event.order_id, error = %e, "Hydrated order not applied; redelivered on recovery");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(order_id = %event.order_id, attempt, error = %e, "Fetching an order for a webhook failed");
                    if e.is_fatal() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }
}
