//! Polling: the backup that makes sync converge when webhooks are lost.
//!
//! Per shop, every `poll_interval`, search orders by `update_time` from the
//! shop's durable cursor minus an overlap, through every page, and feed
//! each order into the same intake as webhooks (deduplicated by order,
//! status, update time and content). Returns and refunds are searched the
//! same way (Search Returns by `update_time`, their own cursor), so a lost
//! RETURN_STATUS_CHANGE still reaches the order. Each cursor advances only
//! after everything up to it is stored, so after a restart polling resumes
//! where it left off.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::SyncConfig;
use crate::order::Order;
use crate::runtime::event::{EventKind, OrderEvent, Source};
use crate::runtime::intake::Intake;
use crate::runtime::Clock;
use crate::store::{codec, Op, Store, Tree};
use crate::tiktok::dto::{SearchOrdersFilter, SearchOrdersPage};
use crate::tiktok::{GatewayHandle, Priority};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gateway(#[from] crate::tiktok::Error),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

#[derive(Clone)]
pub struct Poller {
    pub gateway: GatewayHandle,
    /// The configured shops (for operator tools that need a default).
    pub shop_ids: Vec<String>,
    pub intake: Intake,
    pub store: Store,
    pub config: SyncConfig,
    pub clock: Clock,
}

fn cursor_key(shop: &str) -> Vec<u8> {
    format!("poll:{shop}").into_bytes()
}

fn returns_cursor_key(shop: &str) -> Vec<u8> {
    format!("poll-returns:{shop}").into_bytes()
}

impl Poller {
    /// The shop's cursor (Unix seconds): orders updated before it are in.
    pub fn cursor(&self, shop: &str) -> Result<Option<i64>, Error> {
        self.read_cursor(cursor_key(shop))
    }

    fn read_cursor(&self, key: Vec<u8>) -> Result<Option<i64>, Error> {
        Ok(
            match self
                .store
                .trees
                .cursors
                .get(key)
                .map_err(crate::store::Error::from)?
            {
                Some(v) => Some(codec::decode(&v).map_err(crate::store::Error::from)?),
                None => None,
            },
        )
    }

    /// Where a poll starts: the cursor minus the overlap, or the initial
    /// lookback when there is none yet; and the stored cursor.
    fn window(&self, key: &[u8]) -> Result<(i64, Option<i64>), Error> {
        let now_s = self.clock.now_ms() / 1000;
        let stored = self.read_cursor(key.to_vec())?;
        let cursor = stored.unwrap_or(now_s - self.config.initial_lookback.0.as_secs() as i64);
        Ok((cursor, stored))
    }

    /// Moves a cursor to `latest` when that is later (or anchors it the
    /// first time, so that after a restart polling resumes from here rather
    /// than from "now minus the lookback" again).
    async fn advance_cursor(
        &self,
        key: Vec<u8>,
        cursor: i64,
        stored: Option<i64>,
        latest: i64,
    ) -> Result<(), Error> {
        if latest > cursor || stored.is_none() {
            let latest = latest.max(cursor);
            self.store
                .commit(vec![Op::Put {
                    tree: Tree::Cursors,
                    key,
                    value: codec::encode(&latest).map_err(crate::store::Error::from)?,
                }])
                .await?;
        }
        Ok(())
    }

    /// Submits every return updated in `[from, now)` as a return event;
    /// how many were new to intake and the latest update time seen.
    async fn poll_returns(&self, shop: &str, from: i64) -> Result<(usize, i64), Error> {
        let filter = crate::tiktok::dto::SearchReturnsFilter {
            update_time_ge: Some(from),
            ..Default::default()
        };
        let (mut fresh, mut latest, mut page) = (0, from, None);
        loop {
            let data = self
                .gateway
                .search_returns(shop, filter.clone(), page, Priority::background())
                .await?;
            for r in &data.return_orders {
                latest = latest.max(r.update_time);
                let ev = OrderEvent {
                    id: format!(
                        "poll-return:{}:{}:{}",
                        r.return_id, r.return_status, r.update_time
                    ),
                    order_id: r.order_id.clone(),
                    shop_id: shop.to_string(),
                    source: Source::Poll,
                    received_ms: self.clock.now_ms(),
                    kind: EventKind::Return(crate::runtime::event::ReturnUpdate::from_search(r)),
                };
                if !self.intake.submit(ev).await?.duplicate {
                    fresh += 1;
                }
            }
            if data.next_page_token.is_empty() || data.return_orders.is_empty() {
                break;
            }
            page = Some(data.next_page_token);
        }
        Ok((fresh, latest))
    }

    /// Submits every order updated in `[from, to)` (Unix seconds); returns
    /// how many were new to intake and the latest update time seen.
    pub async fn poll_range(
        &self,
        shop: &str,
        from: i64,
        to: Option<i64>,
    ) -> Result<(usize, i64), Error> {
        let mut page = SearchOrdersPage {
            page_size: 100,
            page_token: None,
            sort_field: Some("update_time".into()),
            sort_order: Some("ASC".into()),
        };
        let filter = SearchOrdersFilter {
            update_time_ge: Some(from),
            update_time_lt: to,
            ..Default::default()
        };
        let mut fresh = 0;
        let mut latest = from;
        loop {
            let data = self
                .gateway
                .search_orders(shop, filter.clone(), page.clone(), Priority::background())
                .await?;
            let mut orders = Vec::with_capacity(data.orders.len());
            let mut seen = std::collections::HashMap::with_capacity(data.orders.len());
            for w in &data.orders {
                match Order::from_wire(shop, w) {
                    Ok(o) => {
                        seen.insert(o.id.clone(), content_digest(w));
                        orders.push(o)
                    }
                    Err(e) => {
                        tracing::warn!(shop_id = %shop, error = %e, "An order TikTok sent that we cannot read: kept in the quarantine, the rest of the page goes on");
                        self.quarantine(shop, w, &e).await?;
                    }
                }
            }
            // A transient failure fails the page: the cursor stays, the
            // next poll reads it again.
            super::attach_cancel_requests(&self.gateway, shop, &mut orders, Priority::background())
                .await?;
            for order in orders {
                latest = latest.max(order.update_time);
                // The same order read again (pages overlap, polls repeat)
                // is one event; a change within the same second of
                // update_time (TikTok's resolution) is another.
                let digest = seen.remove(&order.id).unwrap_or_default();
                let ev = OrderEvent {
                    id: format!(
                        "poll:{}:{}:{}:{digest}",
                        order.id, order.status, order.update_time
                    ),
                    order_id: order.id.clone(),
                    shop_id: shop.to_string(),
                    source: Source::Poll,
                    received_ms: self.clock.now_ms(),
                    kind: EventKind::Snapshot(Box::new(order)),
                };
                if !self.intake.submit(ev).await?.duplicate {
                    fresh += 1;
                }
            }
            if data.next_page_token.is_empty() || data.orders.is_empty() {
                break;
            }
            page.page_token = Some(data.next_page_token);
        }
        Ok((fresh, latest))
    }

    /// Keeps an order that could not be read as TikTok sent it, once per
    /// order and content, counted in `orderflow_orders_undecodable_total`.
    async fn quarantine(
        &self,
        shop: &str,
        w: &crate::tiktok::dto::WireOrder,
        e: &crate::order::Error,
    ) -> Result<(), Error> {
        use sha2::Digest;
        let raw = match &w.undecodable {
            Some(u) => u.raw.clone(),
            None => serde_json::to_string(w).unwrap_or_default(),
        };
        let once = format!(
            "order\u{0}{shop}\u{0}{}",
            hex::encode(sha2::Sha256::digest(raw.as_bytes()))
        );
        let entry = crate::store::Quarantined {
            received_ms: self.clock.now_ms(),
            reason: "undecodable_order".into(),
            kind: None,
            shop_id: Some(shop.to_string()),
            notification_id: (!w.id.is_empty()).then(|| w.id.clone()),
            body: format!("{raw}\n{e}"),
        };
        if !self.store.quarantine(&entry, &once).await? {
            return Ok(());
        }
        metrics::counter!(crate::metrics::ORDERS_UNDECODABLE_TOTAL).increment(1);
        Ok(())
    }

    /// One poll of a shop from its cursor; advances the cursor durably.
    pub async fn poll_once(&self, shop: &str) -> Result<usize, Error> {
        let overlap = self.config.poll_overlap.0.as_secs() as i64;
        let (cursor, stored) = self.window(&cursor_key(shop))?;
        let (mut fresh, latest) = self
            .poll_range(shop, (cursor - overlap).max(0), None)
            .await?;
        self.advance_cursor(cursor_key(shop), cursor, stored, latest)
            .await?;
        let (cursor, stored) = self.window(&returns_cursor_key(shop))?;
        let (returns, latest) = self.poll_returns(shop, (cursor - overlap).max(0)).await?;
        self.advance_cursor(returns_cursor_key(shop), cursor, stored, latest)
            .await?;
        fresh += returns;
        if fresh > 0 {
            tracing::info!(shop_id = %shop, fresh, "Polling found changes webhooks had not brought");
        }
        Ok(fresh)
    }

    /// Polls `shop` until `stop`.
    pub async fn run(self, shop: String, stop: CancellationToken) {
        loop {
            if let Err(e) = self.poll_once(&shop).await {
                tracing::warn!(shop_id = %shop, error = %e, "Polling failed; trying again next interval");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.poll_interval.0.max(Duration::from_millis(100))) => {}
            }
        }
    }
}

/// A short digest of an order as TikTok sent it (16 hex digits of its
/// SHA-256): what tells two reads of one order apart.
fn content_digest(w: &crate::tiktok::dto::WireOrder) -> String {
    use sha2::Digest;
    let raw = serde_json::to_vec(w).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&raw)[..8])
}
