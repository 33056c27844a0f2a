//! Items and mappings: stock belongs to the seller's **items** (their own
//! key for a thing on a shelf, by default its seller SKU); a **mapping**
//! says which items, and how many units of each, one TikTok SKU takes.
//!
//! - `1 × item`: a plain listing; `N × item`: a multipack; several items: a
//!   bundle. TikTok's virtual bundles need no mapping of their own: an
//!   order's bundle line names its source SKUs (`combined_listing_skus`),
//!   and each of those is resolved like any other SKU.
//! - A TikTok SKU resolves, in order, through: its explicit mapping; an
//!   item whose key is the SKU id itself (stock entered by SKU id); an item
//!   whose key is the SKU's seller SKU (as the order line or the catalogue
//!   gives it), which is recorded as an automatic mapping. Nothing else:
//!   the SKU is **unmapped** ([`super::Error::UnmappedSku`]), our gap.
//! - One item behind listings of several shops is one pool: reservations
//!   take items, so the all-or-nothing, never-oversell rule holds across
//!   shops.
//!
//! The `inventory_mappings` tree, values in the inventory's envelope:
//! - `m sku_id` → [`Mapping`];
//! - `r item \0 sku_id` → empty: the SKUs drawing on an item (what a stock
//!   change pushes);
//! - `k sku_id` → [`KnownSku`]: a SKU seen in the catalogue or in an
//!   order, with its seller SKU, product and name;
//! - `s seller_sku \0 sku_id` → empty: known SKUs by seller SKU (an item
//!   created later maps them automatically);
//! - `u sku_id` → [`Unmapped`]: SKUs an order was held for.
//!
//! Manual mappings are written in the inventory's transaction and flushed
//! before the call returns; automatic ones are derived again from the
//! seller SKU whenever they are needed, so losing one in a crash loses
//! nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::{abort, TransactionalTree};

use super::{
    check_id, decode, encode, now_ms, tx_get, tx_put, Change, Error, InventoryHandle, Result,
    SkuRecord, TxResult, SKUS_TREE,
};
use crate::order::Demand;

/// The tree of mappings and what they index.
pub const MAPPINGS_TREE: &str = "inventory_mappings";

/// Most items one TikTok SKU may take (a bundle).
pub const MAX_COMPONENTS: usize = 20;
/// Most units of one item a TikTok SKU may take (a multipack).
pub const MAX_UNITS: u32 = 10_000;

/// Units of one item a TikTok SKU takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub item: String,
    /// 1 when a JSON body leaves it out.
    #[serde(default = "one")]
    pub units: u32,
}

fn one() -> u32 {
    1
}

/// Where a mapping came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An operator (CLI, API, CSV, console).
    Manual,
    /// The SKU's seller SKU names an item.
    SellerSku,
}

/// What one TikTok SKU takes from stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub sku_id: String,
    pub components: Vec<Component>,
    pub source: Source,
    pub updated_ms: i64,
}

/// A TikTok SKU orderflow has seen (catalogue or order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnownSku {
    pub sku_id: String,
    pub seller_sku: String,
    pub product_id: String,
    pub name: String,
    /// A virtual bundle's own SKU: its sales take its source SKUs, so it
    /// needs no mapping and is never pushed (TikTok refuses a combo's
    /// stock).
    pub virtual_bundle: bool,
}

/// A SKU an order was held for because it resolved to no item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unmapped {
    pub sku_id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Reservations refused for it so far.
    pub refusals: u64,
}

/// A row of the unmapped list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnmappedSku {
    pub sku_id: String,
    pub seller_sku: String,
    pub product_id: String,
    pub name: String,
    /// Orders held waiting for it.
    pub orders_waiting: usize,
    /// Unix ms of the first order held for it (None: only the catalogue
    /// lists it).
    pub first_held_ms: Option<i64>,
}

fn key(tag: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![tag];
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// `2 × CUP + LID`.
pub fn describe(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| {
            if c.units == 1 {
                c.item.clone()
            } else {
                format!("{} × {}", c.units, c.item)
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Checks a mapping's components; merges repeated items.
pub fn normalize(components: &[Component]) -> Result<Vec<Component>> {
    if components.is_empty() {
        return Err(Error::Invalid(
            "a mapping takes at least one item (remove it to unmap)".into(),
        ));
    }
    let mut m: BTreeMap<String, u32> = BTreeMap::new();
    for c in components {
        check_id("item", &c.item)?;
        if c.units == 0 || c.units > MAX_UNITS {
            return Err(Error::Invalid(format!(
                "item {}: units must be 1..={MAX_UNITS}, not {}",
                c.item, c.units
            )));
        }
        let u = m.entry(c.item.clone()).or_insert(0);
        *u = u.saturating_add(c.units).min(MAX_UNITS);
    }
    if m.len() > MAX_COMPONENTS {
        return Err(Error::Invalid(format!(
            "a mapping takes at most {MAX_COMPONENTS} items"
        )));
    }
    Ok(m.into_iter()
        .map(|(item, units)| Component { item, units })
        .collect())
}

fn put_mapping(m: &TransactionalTree, map: &Mapping) -> TxResult<()> {
    if let Some(old) = tx_get::<Mapping>(m, MAPPINGS_TREE, &key_str(b'm', &map.sku_id))? {
        for c in &old.components {
            m.remove(key(b'r', &[&c.item, &old.sku_id]))?;
        }
    }
    for c in &map.components {
        m.insert(key(b'r', &[&c.item, &map.sku_id]), &[] as &[u8])?;
    }
    m.remove(key(b'u', &[&map.sku_id]))?;
    tx_put(m, MAPPINGS_TREE, &key_str(b'm', &map.sku_id), map)
}

/// `tx_get`/`tx_put` take string keys; a tag byte below 0x80 keeps the key
/// valid UTF-8.
fn key_str(tag: u8, sku: &str) -> String {
    let mut s = String::with_capacity(sku.len() + 1);
    s.push(char::from(tag));
    s.push_str(sku);
    s
}

/// Resolves one TikTok SKU to the items it takes, inside the inventory's
/// transaction; an automatic mapping found through the seller SKU is
/// recorded. None: unmapped.
pub(super) fn resolve(
    s: &TransactionalTree,
    m: &TransactionalTree,
    d: &Demand,
) -> TxResult<Option<Vec<Component>>> {
    if let Some(map) = tx_get::<Mapping>(m, MAPPINGS_TREE, &key_str(b'm', &d.sku_id))? {
        return Ok(Some(map.components));
    }
    if s.get(d.sku_id.as_bytes())?.is_some() {
        return Ok(Some(vec![Component {
            item: d.sku_id.clone(),
            units: 1,
        }]));
    }
    let seller = if d.seller_sku.is_empty() {
        tx_get::<KnownSku>(m, MAPPINGS_TREE, &key_str(b'k', &d.sku_id))?
            .map(|k| k.seller_sku)
            .unwrap_or_default()
    } else {
        d.seller_sku.clone()
    };
    if !seller.is_empty()
        && check_id("item", &seller).is_ok()
        && s.get(seller.as_bytes())?.is_some()
    {
        let map = Mapping {
            sku_id: d.sku_id.clone(),
            components: vec![Component {
                item: seller,
                units: 1,
            }],
            source: Source::SellerSku,
            updated_ms: now_ms(),
        };
        put_mapping(m, &map)?;
        return Ok(Some(map.components));
    }
    Ok(None)
}

/// The item units a set of demands takes, all resolved, or the first SKU
/// that is not mapped.
pub(super) fn item_units(
    s: &TransactionalTree,
    m: &TransactionalTree,
    demand: &[Demand],
) -> TxResult<BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for d in demand.iter().filter(|d| d.units > 0) {
        let Some(components) = resolve(s, m, d)? else {
            return abort(Error::UnmappedSku {
                sku: d.sku_id.clone(),
            });
        };
        for c in components {
            let Some(n) = c.units.checked_mul(d.units) else {
                return abort(Error::Invalid(format!(
                    "SKU {}: {} × {} units overflows",
                    d.sku_id, d.units, c.units
                )));
            };
            let u = out.entry(c.item).or_insert(0);
            let Some(t) = u.checked_add(n) else {
                return abort(Error::Invalid("units overflow".into()));
            };
            *u = t;
        }
    }
    Ok(out)
}

impl InventoryHandle {
    /// Maps a TikTok SKU to items (replacing its mapping). Items without
    /// stock yet are created empty. Durable when it returns; orders held
    /// for the SKU are told (`restock`) as far as its stock goes, and its
    /// quantity is pushed.
    pub async fn set_mapping(&self, sku_id: &str, components: &[Component]) -> Result<Mapping> {
        check_id("SKU", sku_id)?;
        let components = normalize(components)?;
        let map = Mapping {
            sku_id: sku_id.to_string(),
            components,
            source: Source::Manual,
            updated_ms: now_ms(),
        };
        self.set_mappings(vec![map.clone()]).await?;
        Ok(map)
    }

    /// Writes mappings set by hand in one transaction (one, or a CSV
    /// import). Automatic ones are written by `auto_map`.
    pub(super) async fn set_mappings(&self, maps: Vec<Mapping>) -> Result<()> {
        let skus: Vec<String> = maps.iter().map(|m| m.sku_id.clone()).collect();
        let jt = super::journal::expired_now(&self.inner.mappings);
        self.write(move |s, _r, m| {
            for map in &maps {
                check_id("SKU", &map.sku_id).or_else(abort)?;
                for c in &map.components {
                    if s.get(c.item.as_bytes())?.is_none() {
                        tx_put(s, SKUS_TREE, &c.item, &SkuRecord::default())?;
                    }
                }
                put_mapping(m, map)?;
                super::journal::record(m, &jt, "map", &map.sku_id, describe(&map.components))?;
            }
            // Stock is unchanged; the mapped SKUs are told and pushed below.
            Ok(((), Vec::new()))
        })
        .await?;
        for sku in skus {
            self.after_mapping(&sku);
        }
        self.update_unmapped_gauge();
        Ok(())
    }

    /// Imports a mapping CSV (`sku_id,item[,units]`; see
    /// [`super::csv::parse_mappings`]): each SKU listed gets exactly the
    /// rows given (several rows: a bundle), replacing its mapping. All or
    /// nothing. Returns the SKUs mapped.
    pub async fn import_mappings(&self, text: &str) -> Result<Vec<String>> {
        let rows = super::csv::parse_mappings(text).map_err(Error::Import)?;
        let mut by_sku: BTreeMap<String, Vec<Component>> = BTreeMap::new();
        for r in rows {
            by_sku.entry(r.sku).or_default().push(Component {
                item: r.item,
                units: r.units,
            });
        }
        let mut maps = Vec::new();
        let mut problems = Vec::new();
        for (sku, comps) in by_sku {
            match normalize(&comps) {
                Ok(components) => maps.push(Mapping {
                    sku_id: sku,
                    components,
                    source: Source::Manual,
                    updated_ms: now_ms(),
                }),
                Err(e) => problems.push(format!("SKU {sku}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Import(problems));
        }
        let skus = maps.iter().map(|m| m.sku_id.clone()).collect();
        self.set_mappings(maps).await?;
        Ok(skus)
    }

    /// Removes a TikTok SKU's mapping set by hand; `Ok(false)` when it had
    /// none. The SKU then resolves as if never mapped (its own id, then its
    /// seller SKU) and its quantity is pushed as that says; an automatic
    /// mapping cannot be removed (it follows the seller SKU: map the SKU to
    /// another item instead). Reservations already made keep their items.
    pub async fn remove_mapping(&self, sku_id: &str) -> Result<bool> {
        check_id("SKU", sku_id)?;
        let sku = sku_id.to_string();
        let jt = super::journal::expired_now(&self.inner.mappings);
        let removed = self
            .write(move |_s, _r, m| {
                let k = key_str(b'm', &sku);
                let Some(old) = tx_get::<Mapping>(m, MAPPINGS_TREE, &k)? else {
                    return Ok((false, Vec::new()));
                };
                if old.source == Source::SellerSku {
                    return abort(Error::Invalid(format!(
                        "SKU {sku} takes the item of its seller SKU automatically; map it to another item instead"
                    )));
                }
                for c in &old.components {
                    m.remove(key(b'r', &[&c.item, &sku]))?;
                }
                m.remove(k.as_bytes())?;
                super::journal::record(m, &jt, "unmap", &sku, describe(&old.components))?;
                Ok((true, Vec::new()))
            })
            .await?;
        if removed {
            self.send_to_pushers(sku_id);
        }
        Ok(removed)
    }

    /// A TikTok SKU's mapping: explicit or automatic as recorded, else the
    /// SKU's own item (stock entered by SKU id), else None.
    pub fn mapping(&self, sku_id: &str) -> Result<Option<Mapping>> {
        let m = &self.inner.mappings;
        if let Some(v) = m.get(key(b'm', &[sku_id]))? {
            return decode(MAPPINGS_TREE, &v).map(Some);
        }
        if self.inner.skus.contains_key(sku_id.as_bytes())? {
            return Ok(Some(Mapping {
                sku_id: sku_id.to_string(),
                components: vec![Component {
                    item: sku_id.to_string(),
                    units: 1,
                }],
                source: Source::SellerSku,
                updated_ms: 0,
            }));
        }
        let seller = self
            .known(sku_id)?
            .map(|k| k.seller_sku)
            .unwrap_or_default();
        if !seller.is_empty() && self.inner.skus.contains_key(seller.as_bytes())? {
            return Ok(Some(Mapping {
                sku_id: sku_id.to_string(),
                components: vec![Component {
                    item: seller,
                    units: 1,
                }],
                source: Source::SellerSku,
                updated_ms: 0,
            }));
        }
        Ok(None)
    }

    /// Recorded mappings (explicit and automatic), in SKU order, from
    /// after `after`, at most `limit`.
    pub fn mappings(&self, after: Option<&str>, limit: usize) -> Result<Vec<Mapping>> {
        let start = match after {
            Some(a) => {
                let mut k = key(b'm', &[a]);
                k.push(0);
                k
            }
            None => vec![b'm'],
        };
        let mut out = Vec::new();
        for r in self.inner.mappings.range(start..vec![b'n']) {
            let (_, v) = r?;
            out.push(decode(MAPPINGS_TREE, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// What orderflow knows of a TikTok SKU (catalogue or order).
    pub fn known(&self, sku_id: &str) -> Result<Option<KnownSku>> {
        self.inner
            .mappings
            .get(key(b'k', &[sku_id]))?
            .map(|v| decode(MAPPINGS_TREE, &v))
            .transpose()
    }

    /// Records a TikTok SKU seen in the catalogue or an order, and that
    /// `shop` sells it. Plain writes, only when something changed.
    pub fn learn_sku(&self, k: &KnownSku, shop: &str) -> Result<()> {
        if check_id("SKU", &k.sku_id).is_err() {
            return Ok(());
        }
        self.note_sold_by(&k.sku_id, shop)?;
        let t = &self.inner.mappings;
        let old = self.known(&k.sku_id)?;
        let mut new = old.clone().unwrap_or_else(|| KnownSku {
            sku_id: k.sku_id.clone(),
            ..KnownSku::default()
        });
        for (slot, v) in [
            (&mut new.seller_sku, &k.seller_sku),
            (&mut new.product_id, &k.product_id),
            (&mut new.name, &k.name),
        ] {
            if !v.trim().is_empty() {
                *slot = v.trim().to_string();
            }
        }
        new.virtual_bundle |= k.virtual_bundle;
        if old.as_ref() == Some(&new) {
            return self.auto_map(&new);
        }
        // A seller SKU that is no valid item key (control characters, too
        // long) is kept as said but maps nothing and is not indexed.
        if check_id("item", &new.seller_sku).is_err() {
            new.seller_sku.clear();
        }
        if let Some(o) = &old {
            if o.seller_sku != new.seller_sku {
                if !o.seller_sku.is_empty() {
                    t.remove(key(b's', &[&o.seller_sku, &k.sku_id]))?;
                }
                self.drop_automatic(&k.sku_id)?;
            }
        }
        if !new.seller_sku.is_empty() {
            t.insert(key(b's', &[&new.seller_sku, &k.sku_id]), &[] as &[u8])?;
        }
        t.insert(key(b'k', &[&k.sku_id]), encode(MAPPINGS_TREE, &new)?)?;
        self.auto_map(&new)
    }

    /// Records the automatic mapping of a known SKU whose seller SKU names
    /// an item, when nothing else maps it, and tells its held orders and
    /// pushers. Plain writes: the mapping is derived again if lost. (A
    /// mapping found inside a reservation that then fails is rolled back
    /// with it; this records it regardless.)
    fn auto_map(&self, k: &KnownSku) -> Result<()> {
        let (t, s) = (&self.inner.mappings, &self.inner.skus);
        if k.seller_sku.is_empty()
            || k.virtual_bundle
            || check_id("item", &k.seller_sku).is_err()
            || t.contains_key(key(b'm', &[&k.sku_id]))?
            || s.contains_key(k.sku_id.as_bytes())?
            || !s.contains_key(k.seller_sku.as_bytes())?
        {
            return Ok(());
        }
        let map = Mapping {
            sku_id: k.sku_id.clone(),
            components: vec![Component {
                item: k.seller_sku.clone(),
                units: 1,
            }],
            source: Source::SellerSku,
            updated_ms: now_ms(),
        };
        // Only where nothing is recorded, checked in the same transaction:
        // an operator's mapping landing meanwhile wins.
        let written = t
            .transaction(|m| {
                if m.get(key(b'm', &[&map.sku_id]))?.is_some() {
                    return Ok(false);
                }
                put_mapping(m, &map)?;
                Ok(true)
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) => e,
                sled::transaction::TransactionError::Storage(e) => Error::Storage(e),
            })?;
        if !written {
            return Ok(());
        }
        self.update_unmapped_gauge();
        tracing::info!(sku = %k.sku_id, item = %k.seller_sku, "Mapped a TikTok SKU to the item of its seller SKU");
        self.after_mapping(&k.sku_id);
        Ok(())
    }

    /// Forgets a SKU's automatic mapping (its seller SKU changed); one set
    /// by hand stays.
    fn drop_automatic(&self, sku_id: &str) -> Result<()> {
        self.inner
            .mappings
            .transaction(|m| {
                let k = key_str(b'm', sku_id);
                match tx_get::<Mapping>(m, MAPPINGS_TREE, &k)? {
                    Some(old) if old.source == Source::SellerSku => {
                        for c in &old.components {
                            m.remove(key(b'r', &[&c.item, sku_id]))?;
                        }
                        m.remove(k.as_bytes())?;
                    }
                    _ => {}
                }
                Ok(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) => e,
                sled::transaction::TransactionError::Storage(e) => Error::Storage(e),
            })
    }

    /// The product id a TikTok SKU is pushed under: configuration, then
    /// what the catalogue or an order said, then the id stored with the
    /// SKU's own item.
    pub(crate) fn product_id_of(&self, sku_id: &str) -> Option<String> {
        if let Some(p) = self.config().products.get(sku_id) {
            return Some(p.clone());
        }
        if let Ok(Some(k)) = self.known(sku_id) {
            if !k.product_id.is_empty() {
                return Some(k.product_id);
            }
        }
        self.inner
            .skus
            .get(sku_id.as_bytes())
            .ok()
            .flatten()
            .and_then(|v| decode::<SkuRecord>(SKUS_TREE, &v).ok())
            .and_then(|r| r.product_id)
    }

    /// The TikTok SKUs drawing on `item` through a recorded mapping.
    pub fn skus_of_item(&self, item: &str) -> Vec<String> {
        let p = key(b'r', &[item, ""]);
        self.inner
            .mappings
            .scan_prefix(&p)
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| String::from_utf8_lossy(&k[p.len()..]).into_owned())
            .collect()
    }

    /// Remembers that an order was held because `sku_id` is unmapped.
    pub(crate) fn note_unmapped(&self, sku_id: &str) -> Result<()> {
        let k = key(b'u', &[sku_id]);
        let now = now_ms();
        let u = match self.inner.mappings.get(&k)? {
            Some(v) => {
                let mut u: Unmapped = decode(MAPPINGS_TREE, &v)?;
                u.last_ms = now;
                u.refusals += 1;
                u
            }
            None => Unmapped {
                sku_id: sku_id.to_string(),
                first_ms: now,
                last_ms: now,
                refusals: 1,
            },
        };
        self.inner.mappings.insert(k, encode(MAPPINGS_TREE, &u)?)?;
        self.update_unmapped_gauge();
        Ok(())
    }

    /// Sets the unmapped-SKU gauge (a scan of the unmapped SKUs only).
    pub(crate) fn update_unmapped_gauge(&self) {
        let n = self.inner.mappings.scan_prefix([b'u']).count();
        metrics::gauge!(super::UNMAPPED_SKUS).set(n as f64);
    }

    /// SKUs that resolve to no item: first those orders are held for, then
    /// the catalogue's; at most `limit`. Reads the unmapped and known SKUs
    /// (bounded by the catalogue, never by orders).
    pub async fn unmapped(&self, limit: usize) -> Result<Vec<UnmappedSku>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.unmapped_blocking(limit))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    fn unmapped_blocking(&self, limit: usize) -> Result<Vec<UnmappedSku>> {
        let t = &self.inner.mappings;
        let mut out = Vec::new();
        let mut listed = std::collections::HashSet::new();
        let row = |sku: &str, first: Option<i64>| -> Result<UnmappedSku> {
            let k = self.known(sku)?.unwrap_or_default();
            Ok(UnmappedSku {
                sku_id: sku.to_string(),
                seller_sku: k.seller_sku,
                product_id: k.product_id,
                name: k.name,
                orders_waiting: self.waiting_count(sku),
                first_held_ms: first,
            })
        };
        let mut stale = Vec::new();
        for r in t.scan_prefix([b'u']) {
            let (k, v) = r?;
            let u: Unmapped = decode(MAPPINGS_TREE, &v)?;
            if self.mapping(&u.sku_id)?.is_some() {
                stale.push(k);
                continue;
            }
            listed.insert(u.sku_id.clone());
            if out.len() < limit {
                out.push(row(&u.sku_id, Some(u.first_ms))?);
            }
        }
        for k in stale {
            t.remove(k)?;
        }
        if !listed.is_empty() {
            self.update_unmapped_gauge();
        }
        for r in t.scan_prefix([b'k']) {
            if out.len() >= limit {
                break;
            }
            let (_, v) = r?;
            let k: KnownSku = decode(MAPPINGS_TREE, &v)?;
            if k.virtual_bundle || listed.contains(&k.sku_id) || self.mapping(&k.sku_id)?.is_some()
            {
                continue;
            }
            out.push(row(&k.sku_id, None)?);
        }
        Ok(out)
    }

    /// Available units of a TikTok SKU over all warehouses: for each item
    /// it takes, available ÷ units, the least of them (0 when unmapped).
    /// A few point reads.
    pub fn sku_available(&self, sku_id: &str) -> Result<u64> {
        let Some(map) = self.mapping(sku_id)? else {
            return Ok(0);
        };
        let mut least = u64::MAX;
        for c in &map.components {
            let a = match self.inner.skus.get(c.item.as_bytes())? {
                Some(v) => decode::<SkuRecord>(SKUS_TREE, &v)?.available(),
                None => 0,
            };
            least = least.min(a / u64::from(c.units.max(1)));
        }
        Ok(if least == u64::MAX { 0 } else { least })
    }

    /// After a mapping changed: the SKU's orders held for it are told as
    /// far as its stock goes, and its quantity is pushed.
    fn after_mapping(&self, sku_id: &str) {
        let after = match self.sku_available(sku_id) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(sku = %sku_id, error = %e, "Could not read the stock of a mapped SKU");
                return;
            }
        };
        let c = Change {
            sku: sku_id.to_string(),
            before: 0,
            after,
        };
        self.wake_waiting(&[&c]);
        self.send_to_pushers(sku_id);
    }

    /// After an item's stock went up: known TikTok SKUs whose seller SKU is
    /// the item and that resolve to nothing else get their automatic
    /// mapping, and their held orders are told.
    pub(super) fn map_by_seller_sku(&self, item: &str) {
        let p = key(b's', &[item, ""]);
        let skus: Vec<String> = self
            .inner
            .mappings
            .scan_prefix(&p)
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| String::from_utf8_lossy(&k[p.len()..]).into_owned())
            .collect();
        for sku in skus {
            let mapped = self.known(&sku).and_then(|k| match k {
                Some(k) => self.auto_map(&k),
                None => Ok(()),
            });
            if let Err(e) = mapped {
                tracing::warn!(sku = %sku, error = %e, "Could not map a SKU by its seller SKU");
            }
        }
    }
}
