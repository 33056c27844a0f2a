//! The seller's catalogue as TikTok has it: each connected shop's products
//! and SKUs (`sku_id`, `seller_sku`, product, title, variant attributes,
//! image, price, and for a virtual bundle the SKUs it is made of), so
//! people see names and images instead of bare ids, and each shop's
//! inventory push knows which SKUs the shop sells.
//!
//! **Sync.** Search Products (`/product/202502/products/search`, pages of
//! 100) lists every product with its SKUs; one query pages through at most
//! 10,000 results (12052180), so a larger catalogue is walked in windows of
//! creation time, halved until each fits; Get Product
//! (`/product/202309/products/{id}`) adds images, variant attributes and
//! bundles, only for products whose `update_time` moved since the last
//! sync. Every call goes through the gateway at background priority, so a
//! sync of thousands of SKUs stays inside the shop's rate limit and never
//! delays an order's call. It runs when a shop is connected, every
//! `[catalogue] interval`, on demand (`orderflow catalogue sync`), and for
//! one product on the product webhooks (5 PRODUCT_STATUS_CHANGE, 15
//! PRODUCT_INFORMATION_CHANGE, 16 PRODUCT_CREATION).
//!
//! **Storage.** The `catalogue` tree: `p shop \0 product` →
//! [`ProductRecord`], `k sku` → [`SkuInfo`]; values in the versioned
//! envelope. It is TikTok's data, read again on every sync: written without
//! waiting for a flush, flushed once at the end of each sync.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::codec;
use crate::tiktok::dto::{Product, SearchProductsRequest};
use crate::tiktok::GatewayHandle;

pub const TREE: &str = "catalogue";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tiktok(#[from] crate::tiktok::Error),
    #[error("catalogue storage: {0}")]
    Storage(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] crate::store::codec::Error),
}

/// The `[catalogue]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogueConfig {
    /// How often each connected shop's catalogue is read again.
    #[serde(with = "crate::config::human")]
    pub interval: Duration,
}

impl Default for CatalogueConfig {
    fn default() -> Self {
        CatalogueConfig {
            interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// A SKU as people should see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkuInfo {
    pub sku_id: String,
    pub seller_sku: String,
    pub product_id: String,
    pub product_title: String,
    /// The variant attributes, e.g. `Color: Red, Size: M`.
    pub variant: String,
    pub image_url: Option<String>,
    /// TikTok's display price as written (decimal), and its currency.
    pub price: String,
    pub currency: String,
    /// The shops that list it.
    pub shops: Vec<String>,
    /// For a virtual bundle: (sku_id, units) of the SKUs it is made of.
    pub bundle: Vec<(String, u32)>,
}

impl SkuInfo {
    /// `Title (variant)`.
    pub fn name(&self) -> String {
        if self.variant.is_empty() {
            self.product_title.clone()
        } else {
            format!("{} ({})", self.product_title, self.variant)
        }
    }
}

/// A product of a shop, as last read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub shop_id: String,
    pub id: String,
    pub title: String,
    pub status: String,
    pub image_url: Option<String>,
    pub update_time: i64,
    pub sku_ids: Vec<String>,
    /// Whether Get Product was read for this `update_time`.
    pub detailed: bool,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub shop_id: String,
    pub products: usize,
    pub skus: usize,
    /// Products read in full (new or changed since the last sync).
    pub detailed: usize,
    pub pages: usize,
    /// Times the walk was split into creation-time windows, for TikTok's
    /// cap of 10,000 results per query.
    pub windows: usize,
}

/// TikTok's cap on the results one Search Products query pages through.
pub const SEARCH_CAP: i64 = 10_000;
/// "The total number of search results can not exceed 10000."
const CAP_EXCEEDED: i64 = 12052180;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn product_key(shop: &str, product: &str) -> Vec<u8> {
    format!("p{shop}\u{0}{product}").into_bytes()
}

fn sku_key(sku: &str) -> Vec<u8> {
    format!("k{sku}").into_bytes()
}

/// Called for every SKU a shop lists, with the shop: the inventory learns
/// which shops sell what, and each SKU's seller SKU (its item).
pub type SoldBy = std::sync::Arc<dyn Fn(&SkuInfo, &str) + Send + Sync>;

/// The catalogue. Cheap to clone.
#[derive(Clone)]
pub struct Catalogue {
    tree: sled::Tree,
    db: sled::Db,
    gateway: GatewayHandle,
    config: CatalogueConfig,
    sold_by: Option<SoldBy>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").finish()
    }
}

fn variant(p: &crate::tiktok::dto::ProductSku) -> String {
    p.sales_attributes
        .iter()
        .filter(|a| !a.value_name.is_empty())
        .map(|a| {
            if a.name.is_empty() {
                a.value_name.clone()
            } else {
                format!("{}: {}", a.name, a.value_name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Catalogue {
    pub fn open(
        db: &sled::Db,
        gateway: GatewayHandle,
        config: CatalogueConfig,
        sold_by: Option<SoldBy>,
    ) -> Result<Catalogue, Error> {
        Ok(Catalogue {
            tree: db.open_tree(TREE)?,
            db: db.clone(),
            gateway,
            config,
            sold_by,
        })
    }

    pub fn sku(&self, sku_id: &str) -> Option<SkuInfo> {
        let v = self.tree.get(sku_key(sku_id)).ok()??;
        codec::decode(&v).ok()
    }

    /// SKUs in id order after `after`, at most `limit`.
    pub fn skus(&self, after: Option<&str>, limit: usize) -> Result<Vec<SkuInfo>, Error> {
        let start = match after {
            Some(a) => {
                let mut k = sku_key(a);
                k.push(0);
                k
            }
            None => b"k".to_vec(),
        };
        let mut out = Vec::new();
        for r in self.tree.range(start..b"l".to_vec()).take(limit) {
            let (_, v) = r?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    fn product(&self, shop: &str, id: &str) -> Option<ProductRecord> {
        let v = self.tree.get(product_key(shop, id)).ok()??;
        codec::decode(&v).ok()
    }

    /// Stores a product and its SKUs as read (`detail`: from Get Product).
    fn store(&self, shop: &str, p: &Product, detail: bool) -> Result<usize, Error> {
        let image = p
            .main_images
            .first()
            .and_then(|i| i.best())
            .map(str::to_string);
        let old = self.product(shop, &p.id);
        for s in &p.skus {
            let mut info = self.sku(&s.id).unwrap_or_default();
            info.sku_id = s.id.clone();
            info.seller_sku = s.seller_sku.clone();
            info.product_id = p.id.clone();
            info.product_title = p.title.clone();
            // Only Get Product has these: a search result keeps what it
            // told us until the product is read again.
            if detail {
                info.variant = variant(s);
                info.image_url = s
                    .sales_attributes
                    .iter()
                    .find_map(|a| a.sku_img.as_ref().and_then(|i| i.best()))
                    .map(str::to_string)
                    .or_else(|| image.clone());
                info.bundle = s
                    .combined_skus
                    .iter()
                    .map(|c| (c.sku_id.clone(), c.sku_count.max(1)))
                    .collect();
            }
            info.price = s.price.sale_price.clone();
            info.currency = s.price.currency.clone();
            if !info.shops.iter().any(|x| x == shop) {
                info.shops.push(shop.to_string());
                info.shops.sort();
            }
            self.tree.insert(sku_key(&s.id), codec::encode(&info)?)?;
            if let Some(cb) = &self.sold_by {
                cb(&info, shop);
            }
        }
        let rec = ProductRecord {
            shop_id: shop.to_string(),
            id: p.id.clone(),
            title: p.title.clone(),
            status: p.status.clone(),
            image_url: if detail {
                image
            } else {
                old.as_ref().and_then(|o| o.image_url.clone())
            },
            update_time: p.update_time,
            sku_ids: p.skus.iter().map(|s| s.id.clone()).collect(),
            // Still current when the search shows the same update time.
            detailed: detail
                || old
                    .as_ref()
                    .is_some_and(|o| o.detailed && o.update_time == p.update_time),
        };
        self.tree
            .insert(product_key(shop, &p.id), codec::encode(&rec)?)?;
        Ok(p.skus.len())
    }

    /// Reads one product in full (a product webhook, a changed product).
    pub async fn refresh_product(&self, shop: &str, product_id: &str) -> Result<(), Error> {
        let p = self.gateway.get_product(shop, product_id).await?;
        self.store(shop, &p, true)?;
        Ok(())
    }

    /// Reads the shop's whole catalogue: every page of Search Products,
    /// then Get Product for the products new or changed since last time.
    pub async fn sync_shop(&self, shop: &str) -> Result<SyncReport, Error> {
        let mut report = SyncReport {
            shop_id: shop.to_string(),
            ..Default::default()
        };
        let mut changed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Windows of creation time still to walk, each under TikTok's cap
        // on one query's results (the whole catalogue first).
        let mut windows: Vec<(i64, i64)> = vec![(0, now_secs())];
        let mut whole = true;
        while let Some((ge, le)) = windows.pop() {
            let req = if whole {
                SearchProductsRequest::default()
            } else {
                SearchProductsRequest {
                    create_time_ge: Some(ge),
                    create_time_le: Some(le),
                    ..Default::default()
                }
            };
            let mut token = String::new();
            // Counted once the window is walked to its end (a window split
            // halfway is counted through its halves).
            let (mut products, mut skus) = (0, 0);
            let done = loop {
                let r = self
                    .gateway
                    .search_products(shop, req.clone(), 100, token.clone())
                    .await;
                let too_many = match &r {
                    Ok(p) => token.is_empty() && p.total_count > SEARCH_CAP,
                    Err(e) => e.code() == Some(CAP_EXCEEDED),
                };
                if too_many && ge < le {
                    // Halves, walked oldest first; products already stored
                    // from this window are stored again, harmlessly.
                    let mid = ge + (le - ge) / 2;
                    windows.push((mid + 1, le));
                    windows.push((ge, mid));
                    report.windows += 1;
                    break false;
                }
                let page = match r {
                    Ok(p) => p,
                    Err(e) if e.code() == Some(CAP_EXCEEDED) => {
                        tracing::warn!(shop_id = %shop, create_time = ge, "More products created in one second than one search returns; the rest are read when their webhooks come");
                        break true;
                    }
                    Err(e) => return Err(e.into()),
                };
                report.pages += 1;
                for p in &page.products {
                    let stale = self
                        .product(shop, &p.id)
                        .is_none_or(|o| !o.detailed || o.update_time != p.update_time);
                    skus += self.store(shop, p, false)?;
                    products += 1;
                    if stale && seen.insert(p.id.clone()) {
                        changed.push(p.id.clone());
                    }
                }
                if page.next_page_token.is_empty() || page.products.is_empty() {
                    break true;
                }
                token = page.next_page_token;
            };
            if done {
                report.products += products;
                report.skus += skus;
            }
            whole = false;
        }
        for id in changed {
            match self.refresh_product(shop, &id).await {
                Ok(()) => report.detailed += 1,
                Err(e) => {
                    tracing::warn!(shop_id = %shop, product_id = %id, error = %e, "Could not read a product in full; kept as the search listed it")
                }
            }
        }
        self.db.flush_async().await?;
        metrics::counter!(SYNCS_TOTAL, "outcome" => "ok").increment(1);
        tracing::info!(shop_id = %shop, products = report.products, skus = report.skus, detailed = report.detailed, "Catalogue synced");
        Ok(report)
    }

    /// The shop's sync now, then every `interval`, until `stop`.
    pub async fn run(self, shop: String, stop: CancellationToken) {
        loop {
            if let Err(e) = self.sync_shop(&shop).await {
                metrics::counter!(SYNCS_TOTAL, "outcome" => "failed").increment(1);
                tracing::warn!(shop_id = %shop, error = %e, "Catalogue sync failed; tried again at the next interval");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }
}

/// Counter, label `outcome` (`ok`, `failed`): catalogue syncs.
pub const SYNCS_TOTAL: &str = "orderflow_catalogue_syncs_total";

pub fn describe_metrics() {
    metrics::describe_counter!(SYNCS_TOTAL, "Catalogue syncs by outcome");
}
