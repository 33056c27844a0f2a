//! Restock wakes orders: an order whose reservation failed for want of
//! stock (or because inventory had no record of a SKU) is remembered per
//! SKU; when the SKU's available units go up (a set, an adjust, a CSV
//! import, a released reservation, a SKU recorded for the first time), the
//! waiting orders are told (`{type: "restock", sku_id, available}`), oldest
//! ship-by first, as far as the new stock goes. A told order is forgotten
//! (if its next reservation fails again it is remembered again), and so is
//! one whose reservation succeeds.
//!
//! The `inventory_waiting` tree: `s sku \0 ship_by (8 bytes, big-endian)
//! \0 order_id` → [`Waiting`], so one prefix scan lists a SKU's orders in
//! ship-by order; and `o order_id \0 sku` → that key, so an order that
//! reserves is forgotten without reading the SKU's whole queue. Entries are plain writes (a lost one costs a wake-up,
//! which the workflow's wait timeout covers); telling an order twice is
//! harmless.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{decode, encode, Change, InventoryHandle, Result};

pub const WAITING_TREE: &str = "inventory_waiting";

/// An order waiting for a SKU's stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub order_id: String,
    pub shop_id: String,
    /// Units of the SKU the order needs.
    pub units: u32,
    /// The order's ship-by deadline (Unix seconds; `i64::MAX` when none).
    pub ship_by: i64,
}

/// An order to tell that stock of `sku` arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Restock {
    pub order_id: String,
    pub shop_id: String,
    pub sku: String,
    pub available: u64,
}

/// Runs after the change is durable, synchronously: spawn to do I/O.
pub type RestockCallback = Arc<dyn Fn(Vec<Restock>) + Send + Sync>;

/// The order's index entry for `sku`.
fn order_key(order_id: &str, sku: &str) -> Vec<u8> {
    let mut k = b"o".to_vec();
    k.extend_from_slice(order_id.as_bytes());
    k.push(0);
    k.extend_from_slice(sku.as_bytes());
    k
}

fn key(sku: &str, ship_by: i64, order_id: &str) -> Vec<u8> {
    let mut k = prefix(sku);
    // Offset so negative times still sort before positive ones.
    k.extend_from_slice(&((ship_by as u64) ^ (1 << 63)).to_be_bytes());
    k.push(0);
    k.extend_from_slice(order_id.as_bytes());
    k
}

fn prefix(sku: &str) -> Vec<u8> {
    let mut k = b"s".to_vec();
    k.extend_from_slice(sku.as_bytes());
    k.push(0);
    k
}

impl InventoryHandle {
    /// Remembers that `order_id` waits for `units` of each SKU.
    pub fn wait_for_stock(
        &self,
        order_id: &str,
        shop_id: &str,
        ship_by: Option<i64>,
        units: &std::collections::BTreeMap<String, u32>,
    ) -> Result<()> {
        let ship_by = ship_by.unwrap_or(i64::MAX);
        for (sku, n) in units.iter().filter(|(_, n)| **n > 0) {
            let w = Waiting {
                order_id: order_id.to_string(),
                shop_id: shop_id.to_string(),
                units: *n,
                ship_by,
            };
            let k = key(sku, ship_by, order_id);
            // A wait with another ship-by before: replaced.
            if let Some(old) = self
                .inner
                .waiting
                .insert(order_key(order_id, sku), k.clone())?
            {
                if old.as_ref() != k.as_slice() {
                    self.inner.waiting.remove(old)?;
                }
            }
            self.inner.waiting.insert(k, encode(WAITING_TREE, &w)?)?;
        }
        Ok(())
    }

    /// `order_id` no longer waits for these SKUs (it reserved them).
    pub fn forget_waiting(
        &self,
        order_id: &str,
        units: &std::collections::BTreeMap<String, u32>,
    ) -> Result<()> {
        for sku in units.keys() {
            if let Some(k) = self.inner.waiting.remove(order_key(order_id, sku))? {
                self.inner.waiting.remove(k)?;
            }
        }
        Ok(())
    }

    /// Orders waiting for `sku`, ship-by first.
    pub fn waiting_for(&self, sku: &str) -> Result<Vec<Waiting>> {
        let mut out = Vec::new();
        for r in self.inner.waiting.scan_prefix(prefix(sku)) {
            let (_, v) = r?;
            out.push(decode(WAITING_TREE, &v)?);
        }
        Ok(out)
    }

    /// How many orders wait for `sku`.
    pub fn waiting_count(&self, sku: &str) -> usize {
        self.inner.waiting.scan_prefix(prefix(sku)).count()
    }

    /// Called with the orders to tell when stock arrives.
    pub fn on_restock(&self, cb: RestockCallback) {
        *self.inner.restock.write() = Some(cb);
    }

    /// After a durable change: for each SKU whose available units went up,
    /// the waiting orders the stock now available can serve, oldest ship-by
    /// first; one that needs more than is left keeps waiting.
    pub(super) fn wake_waiting(&self, changes: &[&Change]) {
        let Some(cb) = self.inner.restock.read().clone() else {
            return;
        };
        let mut told = Vec::new();
        for c in changes.iter().filter(|c| c.after > c.before) {
            let mut left = c.after;
            for r in self.inner.waiting.scan_prefix(prefix(&c.sku)) {
                let Ok((k, v)) = r else { break };
                let w: Waiting = match decode(WAITING_TREE, &v) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!(error = %e, "An unreadable waiting entry: dropped");
                        let _ = self.inner.waiting.remove(k);
                        continue;
                    }
                };
                // One that needs more than is left keeps its place; later
                // ones the stock covers go on (a stale entry blocks no one).
                if u64::from(w.units) > left {
                    continue;
                }
                left = left.saturating_sub(u64::from(w.units));
                let _ = self.inner.waiting.remove(k);
                let _ = self.inner.waiting.remove(order_key(&w.order_id, &c.sku));
                told.push(Restock {
                    order_id: w.order_id,
                    shop_id: w.shop_id,
                    sku: c.sku.clone(),
                    available: c.after,
                });
            }
        }
        if !told.is_empty() {
            metrics::counter!(super::RESTOCK_WAKEUPS_TOTAL).increment(told.len() as u64);
            cb(told);
        }
    }
}
