//! Keeping TikTok's numbers in step with ours.
//!
//! - The **debounced push**: every stock change sends its SKU to the
//!   background task of each shop that sells it. A SKU's quantity goes out `push_debounce` after its
//!   first unpushed change (later changes in the window ride along), as the
//!   *current* available units of every warehouse of the SKU — TikTok's
//!   Update Inventory wants the full list. Due SKUs of one product share a
//!   call. Calls go through the gateway at background priority, so ships
//!   and cancels are never starved by stock sync. A failed push is retried
//!   with doubling delays up to `push_max_attempts`, then dropped until the
//!   next change (the reconcile catches anything lost).
//! - **One pusher per shop**, started and stopped with the shop (connected,
//!   disconnected, deauthorized), each with the shop's own credentials and
//!   carrying the SKUs the shop sells (learned from its orders; a SKU no
//!   shop has sold yet goes to the only pusher when there is one), each
//!   warehouse its own quantity, and only the shop's own warehouses.
//! - **Reconcile**: compare our available units with TikTok's Inventory
//!   Search, per shop, and report the drift; with `fix`, push ours for the
//!   drifted SKUs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Error, InventoryHandle, SkuRecord, PUSHES_TOTAL};

use crate::tiktok::dto::{
    InventorySearchRequest, SkuInventory, UpdateInventoryRequest, WarehouseQuantity,
};
use crate::tiktok::{GatewayHandle, Priority};

/// TikTok's largest accepted quantity (Update Inventory).
pub const MAX_TIKTOK_QUANTITY: u32 = 99_999;

/// Passed to the low-stock callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowStock {
    pub sku: String,
    pub available: u64,
    pub threshold: u64,
}

/// One (SKU, warehouse) whose numbers differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub sku: String,
    /// TikTok's warehouse id.
    pub warehouse_id: String,
    pub ours: u64,
    /// None: TikTok lists no quantity for this warehouse.
    pub theirs: Option<i64>,
}

/// What [`InventoryHandle::reconcile`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftReport {
    /// SKUs compared (those with a product id).
    pub checked: usize,
    pub drifts: Vec<Drift>,
    /// Our SKUs TikTok's search did not return.
    pub missing_on_tiktok: Vec<String>,
    /// Our SKUs with no product id, which cannot be looked up or pushed.
    pub without_product: Vec<String>,
    /// With `fix`: the drifted SKUs pushed with our numbers...
    pub fixed: Vec<String>,
    /// ...and those TikTok refused (see the log for why).
    pub not_fixed: Vec<String>,
}

impl InventoryHandle {
    /// The quantities to send for a SKU to a shop whose sales warehouses
    /// are `shop_warehouses` (None: not known, every warehouse goes): each
    /// warehouse its own available units; the stock recorded without a
    /// warehouse under `default_warehouse`, or under the shop's only
    /// warehouse (skipped otherwise); another shop's warehouses left out.
    fn tiktok_quantities(
        &self,
        rec: &SkuRecord,
        shop_warehouses: Option<&[String]>,
    ) -> BTreeMap<String, u64> {
        let only = shop_warehouses
            .filter(|w| w.len() == 1)
            .map(|w| w[0].clone());
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for (w, c) in &rec.warehouses {
            let id = if w.is_empty() {
                match self
                    .config()
                    .default_warehouse
                    .clone()
                    .or_else(|| only.clone())
                {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                w.clone()
            };
            if shop_warehouses.is_some_and(|ws| !ws.contains(&id)) {
                continue;
            }
            *out.entry(id).or_insert(0) += u64::from(c.available());
        }
        out
    }

    /// The quantities to send for a TikTok SKU: per warehouse, the least
    /// over the items it takes of the item's available units ÷ the units
    /// the SKU takes (a warehouse missing an item has 0). None: the SKU is
    /// mapped to no item.
    async fn sku_quantities(
        &self,
        sku: &str,
        shop_warehouses: Option<&[String]>,
    ) -> Result<Option<BTreeMap<String, u64>>, Error> {
        let Some(map) = self.mapping(sku)? else {
            return Ok(None);
        };
        let mut out: Option<BTreeMap<String, u64>> = None;
        for c in &map.components {
            let rec = self.record(&c.item).await?.unwrap_or_default();
            let q: BTreeMap<String, u64> = self
                .tiktok_quantities(&rec, shop_warehouses)
                .into_iter()
                .map(|(w, a)| (w, a / u64::from(c.units.max(1))))
                .collect();
            out = Some(match out {
                None => q,
                Some(prev) => {
                    let mut ws: std::collections::BTreeSet<String> = prev.keys().cloned().collect();
                    ws.extend(q.keys().cloned());
                    ws.into_iter()
                        .map(|w| {
                            let a = prev.get(&w).copied().unwrap_or(0);
                            let b = q.get(&w).copied().unwrap_or(0);
                            (w, a.min(b))
                        })
                        .collect()
                }
            });
        }
        Ok(out)
    }

    /// Every TikTok SKU whose quantity orderflow keeps: stock kept under a
    /// SKU id (an item with a product id, or one no mapping names), mapped
    /// SKUs, and known SKUs that resolve.
    fn tiktok_skus(&self) -> Result<Vec<String>, Error> {
        let mut out = std::collections::BTreeSet::new();
        for k in self.inner.skus.iter().keys() {
            let k = String::from_utf8_lossy(&k?).into_owned();
            // An item only mappings name is not a TikTok SKU.
            if self.product_id_of(&k).is_some() || self.skus_of_item(&k).is_empty() {
                out.insert(k);
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.mappings(after.as_deref(), 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.sku_id.clone());
            out.extend(page.into_iter().map(|m| m.sku_id));
        }
        for r in self.inner.mappings.scan_prefix([b'k']) {
            let (k, _) = r?;
            let sku = String::from_utf8_lossy(&k[1..]).into_owned();
            if !out.contains(&sku) && self.mapping(&sku)?.is_some() {
                out.insert(sku);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The shop's sales warehouses, as TikTok lists them (None when that
    /// cannot be read).
    async fn shop_warehouses(&self, gateway: &GatewayHandle, shop: &str) -> Option<Vec<String>> {
        match gateway.warehouses(shop).await {
            Ok(list) => Some(
                list.into_iter()
                    .filter(|w| w.kind.is_empty() || w.kind == "SALES_WAREHOUSE")
                    .map(|w| w.id)
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(shop_id = %shop, error = %e, "Could not read the shop's warehouses; its inventory push waits for them");
                None
            }
        }
    }

    /// Whether `shop` should carry `sku`: it sold it, or no shop has yet.
    fn carries(&self, shop: &str, sku: &str) -> bool {
        let shops = self.shops_selling(sku);
        shops.is_empty() || shops.iter().any(|s| s == shop)
    }

    /// Starts the debounced push to `shop_id` through `gateway` (one per
    /// shop, with the shop's own credentials; a shop's pusher gets the SKUs
    /// the shop sells). Runs until `cancel` fires (or another `start_push`
    /// for the same shop replaces it); stock changes
    /// made before the call are not pushed (run
    /// [`InventoryHandle::reconcile`] or touch the SKU). Spawns on the
    /// current tokio runtime.
    pub fn start_push(
        &self,
        gateway: GatewayHandle,
        shop_id: impl Into<String>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shop = shop_id.into();
        let generation = self.set_push_sender(&shop, tx);
        let me = self.clone();
        tokio::spawn(async move {
            me.push_loop(gateway, shop.clone(), rx, cancel).await;
            me.clear_push_sender(&shop, generation);
        })
    }

    async fn push_loop(
        &self,
        gateway: GatewayHandle,
        shop: String,
        mut rx: mpsc::UnboundedReceiver<String>,
        cancel: CancellationToken,
    ) {
        let window = self.config().push_debounce;
        let max_attempts = self.config().push_max_attempts.max(1);
        // SKU → (when due, failed attempts so far).
        let mut pending: HashMap<String, (Instant, u32)> = HashMap::new();
        // The shop's warehouses, read before the first push and hourly.
        let mut warehouses: Option<(Instant, Vec<String>)> = None;
        loop {
            let next = pending.values().map(|(at, _)| *at).min();
            tokio::select! {
                _ = cancel.cancelled() => return,
                msg = rx.recv() => match msg {
                    None => return,
                    Some(sku) => {
                        pending.entry(sku).or_insert((Instant::now() + window, 0));
                    }
                },
                _ = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    let due: Vec<(String, u32)> = pending
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(s, (_, n))| (s.clone(), *n))
                        .collect();
                    for (s, _) in &due {
                        pending.remove(s);
                    }
                    if warehouses.as_ref().is_none_or(|(at, _)| at.elapsed() > Duration::from_secs(3600)) {
                        if let Some(w) = self.shop_warehouses(&gateway, &shop).await {
                            warehouses = Some((Instant::now(), w));
                        }
                    }
                    // Without the shop's warehouses nothing is sent (another
                    // shop's could be): retried like a failed push.
                    let pushed = match &warehouses {
                        Some((_, w)) => self.push_now(&gateway, &shop, Some(w), due).await,
                        None => due.into_iter().map(|(s, n)| (s, n + 1)).collect(),
                    };
                    for (sku, attempts) in pushed {
                        if attempts >= max_attempts {
                            tracing::warn!(sku = %sku, attempts, "Giving up pushing inventory to TikTok until the next change");
                            metrics::counter!(PUSHES_TOTAL, "outcome" => "failed").increment(1);
                            continue;
                        }
                        let delay = window.max(Duration::from_millis(100)) * 2u32.saturating_pow(attempts.min(10));
                        // A change that arrived meanwhile keeps its earlier slot.
                        pending.entry(sku).or_insert((Instant::now() + delay, attempts));
                    }
                }
            }
        }
    }

    /// Pushes `due` SKUs grouped by product; returns those to retry with
    /// their attempt counts.
    async fn push_now(
        &self,
        gateway: &GatewayHandle,
        shop: &str,
        shop_warehouses: Option<&[String]>,
        due: Vec<(String, u32)>,
    ) -> Vec<(String, u32)> {
        let mut by_product: BTreeMap<String, Vec<(SkuInventory, u32)>> = BTreeMap::new();
        for (sku, attempts) in due {
            let quantities = match self.sku_quantities(&sku, shop_warehouses).await {
                Ok(Some(q)) => q,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(sku = %sku, error = %e, "Cannot read the SKU's stock to push it");
                    continue;
                }
            };
            let Some(product) = self.product_id_of(&sku) else {
                tracing::warn!(sku = %sku, "SKU has no TikTok product id; not pushed");
                metrics::counter!(PUSHES_TOTAL, "outcome" => "skipped").increment(1);
                continue;
            };
            let inventory: Vec<WarehouseQuantity> = quantities
                .into_iter()
                .map(|(warehouse_id, q)| WarehouseQuantity {
                    warehouse_id,
                    quantity: q.min(u64::from(MAX_TIKTOK_QUANTITY)) as u32,
                })
                .collect();
            if inventory.is_empty() {
                tracing::warn!(sku = %sku, "SKU has no warehouse TikTok knows (set inventory.default_warehouse); not pushed");
                metrics::counter!(PUSHES_TOTAL, "outcome" => "skipped").increment(1);
                continue;
            }
            by_product
                .entry(product)
                .or_default()
                .push((SkuInventory { id: sku, inventory }, attempts));
        }
        let mut retry = Vec::new();
        for (product, skus) in by_product {
            let attempts: HashMap<String, u32> =
                skus.iter().map(|(s, n)| (s.id.clone(), *n)).collect();
            let body = UpdateInventoryRequest {
                skus: skus.into_iter().map(|(s, _)| s).collect(),
            };
            match gateway
                .update_inventory(shop, &product, body, Priority::background())
                .await
            {
                Ok(data) => {
                    let failed: Vec<String> = data
                        .errors
                        .iter()
                        .filter_map(|e| {
                            tracing::warn!(product = %product, code = e.code, error = %e.message, "TikTok refused a SKU's inventory");
                            e.detail["sku_id"].as_str().map(str::to_string)
                        })
                        .collect();
                    for (sku, n) in attempts {
                        if failed.contains(&sku) {
                            retry.push((sku, n + 1));
                        } else {
                            metrics::counter!(PUSHES_TOTAL, "outcome" => "ok").increment(1);
                            tracing::debug!(sku = %sku, product = %product, "Inventory pushed to TikTok");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(product = %product, error = %e, "Inventory push failed");
                    retry.extend(attempts.into_iter().map(|(s, n)| (s, n + 1)));
                }
            }
        }
        retry
    }

    /// Compares our available units with TikTok's Inventory Search for
    /// `shop_id`. Read-only on both sides.
    pub async fn reconcile(
        &self,
        gateway: &GatewayHandle,
        shop_id: &str,
    ) -> Result<DriftReport, Error> {
        self.reconcile_with(gateway, shop_id, false).await
    }

    /// Like [`InventoryHandle::reconcile`], and with `fix` the drifted SKUs
    /// are pushed to the shop at once (our numbers win); what was fixed and
    /// what TikTok refused are in the report.
    pub async fn reconcile_with(
        &self,
        gateway: &GatewayHandle,
        shop_id: &str,
        fix: bool,
    ) -> Result<DriftReport, Error> {
        let mut report = DriftReport::default();
        let shop_warehouses = self.shop_warehouses(gateway, shop_id).await;
        let mut ours: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let me = self.clone();
        let skus = tokio::task::spawn_blocking(move || me.tiktok_skus())
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        for sku in skus {
            if !self.carries(shop_id, &sku) {
                continue;
            }
            if self.product_id_of(&sku).is_none() {
                report.without_product.push(sku);
                continue;
            }
            if let Some(q) = self
                .sku_quantities(&sku, shop_warehouses.as_deref())
                .await?
            {
                ours.insert(sku, q);
            }
        }
        report.checked = ours.len();
        let skus: Vec<String> = ours.keys().cloned().collect();
        let mut theirs: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for chunk in skus.chunks(600) {
            let data = gateway
                .inventory_search(
                    shop_id,
                    InventorySearchRequest {
                        product_ids: Vec::new(),
                        sku_ids: chunk.to_vec(),
                    },
                    Priority::background(),
                )
                .await?;
            for p in data.inventory {
                for s in p.skus {
                    theirs.insert(
                        s.id,
                        s.warehouse_inventory
                            .into_iter()
                            .map(|w| (w.warehouse_id, w.available_quantity))
                            .collect(),
                    );
                }
            }
        }
        for (sku, warehouses) in ours {
            let Some(t) = theirs.get(&sku) else {
                report.missing_on_tiktok.push(sku);
                continue;
            };
            for (w, q) in warehouses {
                let expect = q.min(u64::from(MAX_TIKTOK_QUANTITY));
                let got = t.get(&w).copied();
                if got != i64::try_from(expect).ok() {
                    report.drifts.push(Drift {
                        sku: sku.clone(),
                        warehouse_id: w,
                        ours: q,
                        theirs: got,
                    });
                }
            }
        }
        if fix && !report.drifts.is_empty() {
            let mut skus: Vec<String> = report.drifts.iter().map(|d| d.sku.clone()).collect();
            skus.dedup();
            if shop_warehouses.is_none() {
                // Without the shop's warehouses nothing is sent (another
                // shop's could be).
                report.not_fixed = skus;
                return Ok(report);
            }
            let due = skus.iter().map(|s| (s.clone(), 0)).collect();
            let refused: Vec<String> = self
                .push_now(gateway, shop_id, shop_warehouses.as_deref(), due)
                .await
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            for s in skus {
                if refused.contains(&s) {
                    report.not_fixed.push(s);
                } else {
                    report.fixed.push(s);
                }
            }
            tracing::info!(shop_id = %shop_id, fixed = ?report.fixed, not_fixed = ?report.not_fixed, "Reconcile corrected TikTok's inventory with ours");
        }
        let mut detail = format!(
            "{} SKUs compared, {} drifts, {} missing on TikTok, {} without a product id",
            report.checked,
            report.drifts.len(),
            report.missing_on_tiktok.len(),
            report.without_product.len()
        );
        if fix {
            detail += &format!(
                "; fixed {:?}, not fixed {:?}",
                report.fixed, report.not_fixed
            );
        }
        let kind = if fix { "reconcile_fix" } else { "reconcile" };
        if let Err(e) = self.journal(kind, shop_id, detail) {
            tracing::warn!(error = %e, "Could not write the reconcile to the stock journal");
        }
        Ok(report)
    }
}
