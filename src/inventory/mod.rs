//! Inventory: stock per item and warehouse, TikTok SKUs mapped to items
//! ([`mapping`]), reservations that never oversell, and the push of
//! available quantities to TikTok. (The stock records and their errors say
//! "SKU" for the item key: an item may be keyed by a TikTok SKU id.)
//!
//! Orders take stock in two steps. `reserve` sets units aside the moment a
//! workflow decides to fulfil (all SKUs of the order or none), `commit`
//! turns the reservation into a shipment (on hand and reserved both drop),
//! and `release` gives the units back when the order is cancelled. Every
//! call is idempotent per order, because the runtime replays effects after a
//! crash. What a seller can still sell is `available = on_hand − reserved`,
//! and that is what [`push`] sends to TikTok after changes settle.
//!
//! # Storage and the single writer
//!
//! Sled trees, opened from the daemon's `sled::Db`:
//! - `inventory_skus`: item → [`SkuRecord`] (every warehouse's on hand and
//!   reserved, plus the TikTok product id) — one key per item;
//! - `inventory_reservations`: order id → [`Reservation`] (its lines are
//!   items);
//! - `inventory_mappings`: TikTok SKU → items, and what indexes them
//!   ([`mapping`]); a reservation's transaction spans all three.
//!
//! Values are a versioned envelope: byte 0 is the format version
//! ([`FORMAT_VERSION`]), the rest bincode 2 (serde, standard config).
//!
//! **Why sled transactions rather than an inventory actor.** Each mutation
//! is one sled transaction over both trees. In sled 0.34.7 a transaction
//! holds the process-wide concurrency-control write lock from the first read
//! to the commit, and plain writes take its read side, so no two
//! transactions interleave: the SKU record a transaction read is still the
//! record when it commits. That makes the transaction the one writer of
//! every SKU it touches, with three advantages over an actor: a reservation
//! across several SKUs and its reservation record commit atomically (all or
//! nothing, even across a crash); there is no in-memory copy that can
//! disagree with disk after a restart; and there is no mailbox to size or
//! supervise. The cost — transactions are serialised process-wide — is a
//! few microseconds each, far below the flush that follows. Transactions run
//! on the blocking pool (`spawn_blocking`) so they never hold an async
//! worker, and every call that changed something waits for a flush before
//! it returns `Ok`: an acknowledged reservation survives a crash. Flushes
//! are group commits, one at a time on the blocking pool (see
//! `InventoryHandle::durable` for the sled deadlock that rules out one
//! `flush_async` per call).
//!
//! # Rules
//! - `reserved ≤ on_hand` for every (SKU, warehouse), always, so available
//!   is never negative. Counts are unsigned and arithmetic is checked.
//! - `set` and `adjust` may not take on hand below what is reserved there:
//!   such a request is refused with [`Error::BelowReserved`] and changes
//!   nothing. Stock that physically vanished while reserved is resolved by
//!   releasing (cancelling) orders first, never by silently overselling.
//! - A reservation without a warehouse takes each SKU's units from its
//!   warehouses in key order (the unnamed warehouse first), splitting if
//!   needed; the reservation records exactly where every unit came from, so
//!   commit and release undo precisely what reserve did.
//! - Re-reserving an order whose reservation is held or committed returns
//!   it unchanged; after a release, `reserve` reserves afresh.

pub mod csv;
pub mod journal;
pub mod mapping;
pub mod push;
pub mod restock;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sled::transaction::{abort, ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::mpsc;

pub use mapping::{Component, KnownSku, Mapping, UnmappedSku};
pub use push::{Drift, DriftReport, LowStock};

/// Byte 0 of every stored value.
pub const FORMAT_VERSION: u8 = 1;
/// Tree of SKU records.
pub const SKUS_TREE: &str = "inventory_skus";
/// Tree of reservations by order id.
pub const RESERVATIONS_TREE: &str = "inventory_reservations";
/// `sku \0 shop`: the shops that sell a SKU.
pub const SKU_SHOPS_TREE: &str = "inventory_sku_shops";

/// Longest SKU, warehouse, product or order id accepted.
const MAX_ID_LEN: usize = 128;

/// Gauge, label `sku`: available units, for the SKUs in `watched_skus`
/// only (a label per SKU of a large catalogue would be unbounded).
pub const AVAILABLE: &str = "orderflow_inventory_available";
/// Counter, label `outcome` (`reserved`, `replayed`, `out_of_stock`,
/// `unmapped_sku`).
pub const RESERVATIONS_TOTAL: &str = "orderflow_inventory_reservations_total";
/// Counter, label `outcome` (`ok`, `failed`, `skipped`): SKUs pushed to
/// TikTok by the debouncer.
pub const PUSHES_TOTAL: &str = "orderflow_inventory_pushes_total";
/// Counter: low-stock crossings reported to the callback.
pub const LOW_STOCK_TOTAL: &str = "orderflow_inventory_low_stock_total";
/// Counter: orders told that stock they waited for arrived.
pub const RESTOCK_WAKEUPS_TOTAL: &str = "orderflow_inventory_restock_wakeups_total";
/// Gauge: TikTok SKUs orders are held for because they are mapped to no
/// item.
pub const UNMAPPED_SKUS: &str = "orderflow_inventory_unmapped_skus";

/// Registers the metric descriptions. Idempotent.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        AVAILABLE,
        Unit::Count,
        "Available units (on hand minus reserved) of a watched SKU"
    );
    describe_counter!(
        RESERVATIONS_TOTAL,
        Unit::Count,
        "Inventory reservation attempts by outcome"
    );
    describe_counter!(
        RESTOCK_WAKEUPS_TOTAL,
        Unit::Count,
        "Orders waiting for stock told that it arrived"
    );
    describe_counter!(
        PUSHES_TOTAL,
        Unit::Count,
        "SKU quantities pushed to TikTok by outcome"
    );
    describe_gauge!(
        UNMAPPED_SKUS,
        Unit::Count,
        "TikTok SKUs orders are held for because no item is mapped to them"
    );
    describe_counter!(
        LOW_STOCK_TOTAL,
        Unit::Count,
        "Times a SKU's available quantity fell to the low-stock threshold"
    );
}

/// Errors of the inventory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not enough available units; nothing was reserved.
    /// `sku` is the item short of stock (the TikTok SKU's own id when
    /// stock is kept under it).
    #[error("out of stock: item {sku} needs {requested} units but {available} are available")]
    OutOfStock {
        sku: String,
        requested: u32,
        available: u32,
    },
    /// No stock was ever recorded for the SKU: a gap of ours (it is not
    /// mapped to anything the seller stocks), never the buyer's. Nothing
    /// was reserved.
    #[error("SKU {sku} is not mapped to stock: no item is mapped to it and none is keyed by its id or seller SKU (map it, or set the stock of its seller SKU)")]
    UnmappedSku { sku: String },
    /// `set`/`adjust` would take on hand below the reserved units.
    #[error("SKU {sku} warehouse {warehouse:?}: on hand {on_hand} would be below the {reserved} reserved units; release reservations first")]
    BelowReserved {
        sku: String,
        warehouse: Option<String>,
        on_hand: i64,
        reserved: u32,
    },
    #[error("order {0} holds no reservation")]
    NoReservation(String),
    #[error("order {order_id}: the reservation was released and cannot be committed")]
    Released { order_id: String },
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Every problem of a CSV import; nothing was imported.
    #[error("CSV import rejected, nothing changed: {}", .0.join("; "))]
    Import(Vec<String>),
    #[error("stored value in {tree} is unreadable: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error("inventory storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("TikTok: {0}")]
    Tiktok(#[from] crate::tiktok::Error),
    #[error("inventory task failed: {0}")]
    Task(String),
}

impl Error {
    /// The workflow error kind this maps to, as text (the stock API's and
    /// the reservation metric's): [`crate::actions::ErrorKind::from_inventory`].
    pub fn kind(&self) -> &'static str {
        crate::actions::ErrorKind::from_inventory(self).as_str()
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The `[inventory]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InventoryConfig {
    /// How long after a SKU's first unpushed change its quantity goes to
    /// TikTok. Changes inside the window ride along, so a burst of orders
    /// costs one call, and no change waits longer than this.
    #[serde(with = "crate::config::human")]
    pub push_debounce: Duration,
    /// Attempts per push before it is dropped until the next change.
    pub push_max_attempts: u32,
    /// When a SKU's available units fall to this or below (from above), the
    /// low-stock callback runs. None: never.
    pub low_stock_threshold: Option<u32>,
    /// SKUs whose available units are exported as a gauge.
    pub watched_skus: Vec<String>,
    /// SKU → TikTok product id. Wins over a product id stored with the SKU
    /// (from `set_product_id` or the CSV's `product_id` column).
    pub products: BTreeMap<String, String>,
    /// The seller's default warehouse (a TikTok warehouse id): stock
    /// recorded without a warehouse is pushed under it (None: under each
    /// shop's only warehouse, else not pushed), and serves orders naming a
    /// warehouse the SKU is not stocked in.
    pub default_warehouse: Option<String>,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            push_debounce: Duration::from_secs(2),
            push_max_attempts: 5,
            low_stock_threshold: None,
            watched_skus: Vec::new(),
            products: BTreeMap::new(),
            default_warehouse: None,
        }
    }
}

impl InventoryConfig {
    /// Every problem at once; empty when usable.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.push_debounce > Duration::from_secs(3600) {
            p.push("inventory.push_debounce: at most 1h".into());
        }
        if self.push_max_attempts == 0 {
            p.push("inventory.push_max_attempts: at least 1".into());
        }
        for s in &self.watched_skus {
            if let Err(e) = check_id("watched SKU", s) {
                p.push(format!("inventory.watched_skus: {e}"));
            }
        }
        for (s, pid) in &self.products {
            if check_id("SKU", s).is_err() || check_id("product id", pid).is_err() {
                p.push(format!(
                    "inventory.products: {s:?} → {pid:?} is not a valid id pair"
                ));
            }
        }
        if let Some(w) = &self.default_warehouse {
            if check_id("warehouse", w).is_err() {
                p.push(format!(
                    "inventory.default_warehouse: {w:?} is not a valid id"
                ));
            }
        }
        p
    }
}

/// Ids are non-empty, at most 128 characters, no control characters.
fn check_id(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{what} {s:?} must be 1..={MAX_ID_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// One warehouse's counts. Invariant: `reserved <= on_hand`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub on_hand: u32,
    pub reserved: u32,
}

impl Counts {
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// What is stored per SKU. The warehouse key `""` is stock recorded
/// without a warehouse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkuRecord {
    pub product_id: Option<String>,
    pub warehouses: BTreeMap<String, Counts>,
}

impl SkuRecord {
    fn available(&self) -> u64 {
        self.warehouses
            .values()
            .map(|c| u64::from(c.available()))
            .sum()
    }
}

/// A warehouse's stock as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarehouseStock {
    /// None: stock recorded without a warehouse.
    pub warehouse: Option<String>,
    pub on_hand: u32,
    pub reserved: u32,
    pub available: u32,
}

/// A SKU's stock over all its warehouses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkuStock {
    pub sku: String,
    pub product_id: Option<String>,
    pub warehouses: Vec<WarehouseStock>,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

impl SkuStock {
    fn from_record(sku: &str, r: &SkuRecord) -> SkuStock {
        let warehouses: Vec<WarehouseStock> = r
            .warehouses
            .iter()
            .map(|(w, c)| WarehouseStock {
                warehouse: (!w.is_empty()).then(|| w.clone()),
                on_hand: c.on_hand,
                reserved: c.reserved,
                available: c.available(),
            })
            .collect();
        SkuStock {
            sku: sku.to_string(),
            product_id: r.product_id.clone(),
            on_hand: warehouses.iter().map(|w| u64::from(w.on_hand)).sum(),
            reserved: warehouses.iter().map(|w| u64::from(w.reserved)).sum(),
            available: warehouses.iter().map(|w| u64::from(w.available)).sum(),
            warehouses,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationState {
    Held,
    Committed,
    Released,
}

/// Units of one SKU taken from one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    pub sku: String,
    /// None: the unnamed warehouse.
    pub warehouse: Option<String>,
    pub units: u32,
}

/// An order's reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: String,
    pub state: ReservationState,
    pub lines: Vec<ReservedLine>,
    /// Unix milliseconds of the reserve call that created it.
    pub created_at_ms: i64,
}

impl Reservation {
    /// Units per SKU over all warehouses.
    pub fn units(&self) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for l in &self.lines {
            *m.entry(l.sku.clone()).or_insert(0) += l.units;
        }
        m
    }
    pub fn total_units(&self) -> u64 {
        self.lines.iter().map(|l| u64::from(l.units)).sum()
    }

    /// The `inventory.reserve` action's output (`steps.<id>.*`):
    /// `reservation_id` (the order id: one reservation per order), `units`
    /// (total), plus `state` and the per-SKU `by_sku`.
    pub fn output(&self) -> serde_json::Value {
        serde_json::json!({
            "reservation_id": self.order_id,
            "units": self.total_units(),
            "state": match self.state {
                ReservationState::Held => "held",
                ReservationState::Committed => "committed",
                ReservationState::Released => "released",
            },
            "by_sku": self.units(),
        })
    }
}

/// What a CSV import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Data rows applied.
    pub rows: usize,
    /// Distinct SKUs touched.
    pub skus: usize,
    /// (SKU, warehouse) pairs that did not exist before.
    pub created: usize,
    /// Rows that carried a product id.
    pub products: usize,
}

// ---- codec ----------------------------------------------------------------

fn encode<T: Serialize>(tree: &'static str, v: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(v, &mut out, bincode::config::standard()).map_err(
        |e| Error::Corrupt {
            tree,
            message: format!("encode: {e}"),
        },
    )?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map(|(v, _)| v)
                .map_err(|e| Error::Corrupt {
                    tree,
                    message: e.to_string(),
                })
        }
        Some((v, _)) => Err(Error::Corrupt {
            tree,
            message: format!("unknown format version {v}"),
        }),
        None => Err(Error::Corrupt {
            tree,
            message: "empty value".into(),
        }),
    }
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

fn tx_get<T: serde::de::DeserializeOwned>(
    t: &TransactionalTree,
    tree: &'static str,
    key: &str,
) -> TxResult<Option<T>> {
    match t.get(key.as_bytes())? {
        None => Ok(None),
        Some(v) => decode(tree, &v).map(Some).or_else(abort),
    }
}

fn tx_put<T: Serialize>(
    t: &TransactionalTree,
    tree: &'static str,
    key: &str,
    v: &T,
) -> TxResult<()> {
    let bytes = encode(tree, v).or_else(abort)?;
    t.insert(key.as_bytes(), bytes)?;
    Ok(())
}

/// A SKU whose available quantity a call changed.
#[derive(Debug, Clone)]
struct Change {
    sku: String,
    before: u64,
    after: u64,
}

fn change(sku: &str, before: &SkuRecord, after: &SkuRecord) -> Change {
    Change {
        sku: sku.to_string(),
        before: before.available(),
        after: after.available(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The low-stock callback: runs synchronously after the change is durable;
/// spawn from it if it needs to do I/O (e.g. `Notifier::send`).
pub type LowStockCallback = Arc<dyn Fn(LowStock) + Send + Sync>;

struct Inner {
    db: sled::Db,
    skus: sled::Tree,
    reservations: sled::Tree,
    cfg: InventoryConfig,
    /// One running pusher per shop: its channel, with a generation so a
    /// replaced pusher cannot remove its successor's.
    pushers: RwLock<HashMap<String, (u64, mpsc::UnboundedSender<String>)>>,
    /// Which shops sell which SKU: `sku \0 shop` → empty, learned from the
    /// orders each shop sends.
    sku_shops: sled::Tree,
    low_stock: RwLock<Option<LowStockCallback>>,
    /// Orders waiting for stock, per SKU ([`restock`]).
    waiting: sled::Tree,
    /// Mappings of TikTok SKUs to items ([`mapping`]).
    mappings: sled::Tree,
    restock: RwLock<Option<restock::RestockCallback>>,
    /// Writes committed so far (a sequence for the group commit).
    committed: std::sync::atomic::AtomicU64,
    /// The `committed` value the last completed flush covered.
    flushed: tokio::sync::Mutex<u64>,
    /// The daemon's group-commit writer: when set, durability comes from
    /// its flush, so the whole database has one flusher (see `durable`).
    flusher: std::sync::OnceLock<crate::store::Committer>,
}

/// Opens the inventory.
pub struct Inventory;

impl Inventory {
    /// Opens (creating if needed) the inventory trees in `db`.
    pub fn open(db: &sled::Db, cfg: InventoryConfig) -> Result<InventoryHandle> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("; ")));
        }
        Ok(InventoryHandle {
            inner: Arc::new(Inner {
                db: db.clone(),
                skus: db.open_tree(SKUS_TREE)?,
                reservations: db.open_tree(RESERVATIONS_TREE)?,
                cfg,
                pushers: RwLock::new(HashMap::new()),
                sku_shops: db.open_tree(SKU_SHOPS_TREE)?,
                low_stock: RwLock::new(None),
                waiting: db.open_tree(restock::WAITING_TREE)?,
                mappings: db.open_tree(mapping::MAPPINGS_TREE)?,
                restock: RwLock::new(None),
                committed: std::sync::atomic::AtomicU64::new(0),
                flushed: tokio::sync::Mutex::new(0),
                flusher: std::sync::OnceLock::new(),
            }),
        })
    }
}

/// The cheap-to-clone handle every caller holds.
#[derive(Clone)]
pub struct InventoryHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InventoryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryHandle")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

fn wh_key(w: Option<&str>) -> Result<String> {
    match w {
        None | Some("") => Ok(String::new()),
        Some(w) => {
            check_id("warehouse", w)?;
            Ok(w.to_string())
        }
    }
}

fn wh_opt(k: &str) -> Option<String> {
    (!k.is_empty()).then(|| k.to_string())
}

impl InventoryHandle {
    /// Makes the daemon's group-commit writer the one flusher of the
    /// database this inventory shares with the store.
    pub fn use_flusher(&self, c: crate::store::Committer) {
        let _ = self.inner.flusher.set(c);
    }

    pub fn config(&self) -> &InventoryConfig {
        &self.inner.cfg
    }

    /// Runs one transaction over both trees on the blocking pool, then
    /// flushes, then reports the changes (push, low stock, gauges).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(
                &TransactionalTree,
                &TransactionalTree,
                &TransactionalTree,
            ) -> TxResult<(T, Vec<Change>)>
            + Send
            + 'static,
    {
        let (skus, res, maps) = (
            self.inner.skus.clone(),
            self.inner.reservations.clone(),
            self.inner.mappings.clone(),
        );
        let (out, changes) = tokio::task::spawn_blocking(move || {
            (&skus, &res, &maps).transaction(|(s, r, m)| f(s, r, m))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => Error::Storage(e),
        })?;
        // Also when this call changed nothing: a replay may be returning a
        // reservation a concurrent call committed and is still flushing, and
        // the caller must not see it before it is durable. The group commit
        // makes this cheap.
        self.durable().await?;
        if !changes.is_empty() {
            self.after_changes(&changes);
        }
        Ok(out)
    }

    /// Group commit: returns once a flush that started after the caller's
    /// write has completed. At most one flush runs at a time, on the
    /// blocking pool: in sled 0.34.7, hundreds of concurrent `flush_async`
    /// calls occupy sled's own I/O pool while holding its concurrency-control
    /// read lock, and together with transactions waiting for the write side
    /// that deadlocks (observed in the 1,000-order test). One flush covers
    /// every write committed before it started.
    async fn durable(&self) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some(c) = self.inner.flusher.get() {
            // An empty request: the writer flushes after taking it, so the
            // flush covers this transaction, and it is the only flusher.
            return c
                .commit(Vec::new())
                .await
                .map_err(|e| Error::Task(e.to_string()));
        }
        let mine = self.inner.committed.fetch_add(1, SeqCst) + 1;
        let mut flushed = self.inner.flushed.lock().await;
        if *flushed >= mine {
            return Ok(());
        }
        let target = self.inner.committed.load(SeqCst);
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        *flushed = target;
        Ok(())
    }

    fn after_changes(&self, changes: &[Change]) {
        let cfg = &self.inner.cfg;
        // An empty SKU marks a write that touched no stock (a reservation
        // of no units): durable, but nothing to push or report.
        let changes: Vec<&Change> = changes.iter().filter(|c| !c.sku.is_empty()).collect();
        self.wake_waiting(&changes);
        for c in &changes {
            // Every TikTok SKU drawing on the item goes to the pushers; the
            // item itself too when it is a TikTok SKU's own stock (kept
            // under the SKU id) or maps nothing.
            let skus = self.skus_of_item(&c.sku);
            if skus.is_empty() || self.product_id_of(&c.sku).is_some() {
                self.send_to_pushers(&c.sku);
            }
            for sku in &skus {
                self.send_to_pushers(sku);
            }
            if c.after > c.before {
                // Orders held because a SKU was unmapped wait under the
                // SKU: mapped since (perhaps to an item with no stock
                // then), they are told as far as its stock now goes.
                for sku in &skus {
                    let now = self.sku_available(sku).unwrap_or(0);
                    if now > 0 {
                        let ch = Change {
                            sku: sku.clone(),
                            before: 0,
                            after: now,
                        };
                        self.wake_waiting(&[&ch]);
                    }
                }
                // Stock of an item named by SKUs' seller SKU maps them.
                self.map_by_seller_sku(&c.sku);
            }
        }
        for c in &changes {
            if cfg.watched_skus.iter().any(|w| w == &c.sku) {
                metrics::gauge!(AVAILABLE, "sku" => c.sku.clone()).set(c.after as f64);
            }
        }
        if let Some(t) = cfg.low_stock_threshold {
            let t = u64::from(t);
            let cb = self.inner.low_stock.read().clone();
            for c in changes.iter().filter(|c| c.before > t && c.after <= t) {
                metrics::counter!(LOW_STOCK_TOTAL).increment(1);
                tracing::warn!(sku = %c.sku, available = c.after, threshold = t, "Low stock");
                if let Some(cb) = &cb {
                    cb(LowStock {
                        sku: c.sku.clone(),
                        available: c.after,
                        threshold: t,
                    });
                }
            }
        }
    }

    /// Sends a TikTok SKU to the pushers of the shops that sell it (a SKU
    /// no shop has sold yet: to the only pusher, when there is one).
    fn send_to_pushers(&self, sku: &str) {
        let pushers = self.inner.pushers.read();
        if pushers.is_empty() {
            return;
        }
        let shops = self.shops_selling(sku);
        for (shop, (_, tx)) in pushers.iter() {
            let sells = if shops.is_empty() {
                pushers.len() == 1
            } else {
                shops.contains(shop)
            };
            if sells {
                // A pusher only stops when its shop is disconnected or at
                // shutdown; a lost push then is fine.
                let _ = tx.send(sku.to_string());
            }
        }
    }

    /// Sets the callback run when a SKU's available units fall to
    /// `low_stock_threshold` or below (edge-triggered: once per crossing).
    pub fn on_low_stock(&self, cb: LowStockCallback) {
        *self.inner.low_stock.write() = Some(cb);
    }

    /// Installs the pusher's sender; returns its generation.
    pub(crate) fn set_push_sender(&self, shop: &str, tx: mpsc::UnboundedSender<String>) -> u64 {
        // One sequence for all pushers: a generation never repeats, so an
        // old pusher ending late cannot remove a newer one's sender.
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .pushers
            .write()
            .insert(shop.to_string(), (generation, tx));
        generation
    }

    /// Removes the shop's sender, unless a newer pusher replaced it.
    pub(crate) fn clear_push_sender(&self, shop: &str, generation: u64) {
        let mut g = self.inner.pushers.write();
        if g.get(shop).is_some_and(|(n, _)| *n == generation) {
            g.remove(shop);
        }
    }

    /// Records that `shop` sells `sku` (from an order of the shop): its
    /// pusher keeps TikTok's numbers of the SKU in step from now on.
    pub fn note_sold_by(&self, sku: &str, shop: &str) -> Result<()> {
        if shop.is_empty() {
            return Ok(());
        }
        let mut k = sku.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(shop.as_bytes());
        if !self.inner.sku_shops.contains_key(&k)? {
            self.inner.sku_shops.insert(k, &[])?;
        }
        Ok(())
    }

    /// The shops known to sell `sku`.
    pub fn shops_selling(&self, sku: &str) -> Vec<String> {
        let mut p = sku.as_bytes().to_vec();
        p.push(0);
        self.inner
            .sku_shops
            .scan_prefix(&p)
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| String::from_utf8_lossy(&k[p.len()..]).into_owned())
            .collect()
    }

    /// Reserves every unit of an order, all or nothing, the map keyed by
    /// TikTok SKU (see [`InventoryHandle::reserve_demand`]).
    pub async fn reserve(
        &self,
        order_id: &str,
        units: &BTreeMap<String, u32>,
        warehouse: Option<&str>,
    ) -> Result<Reservation> {
        let demand: Vec<crate::order::Demand> = units
            .iter()
            .map(|(k, n)| crate::order::Demand {
                sku_id: k.clone(),
                seller_sku: String::new(),
                product_id: String::new(),
                units: *n,
            })
            .collect();
        self.reserve_demand(order_id, &demand, warehouse).await
    }

    /// Reserves every unit of an order, all or nothing: each TikTok SKU is
    /// resolved to the items it takes ([`mapping`]), and the items' units
    /// are reserved. Idempotent: an order whose reservation is held or
    /// committed gets it back unchanged. A SKU mapped to no item fails the
    /// whole reservation with [`Error::UnmappedSku`]; an item short of
    /// stock with [`Error::OutOfStock`] naming the item.
    pub async fn reserve_demand(
        &self,
        order_id: &str,
        demand: &[crate::order::Demand],
        warehouse: Option<&str>,
    ) -> Result<Reservation> {
        check_id("order id", order_id)?;
        for d in demand {
            check_id("SKU", &d.sku_id)?;
        }
        let wanted_wh = match warehouse {
            None => None,
            Some(w) => Some(wh_key(Some(w))?),
        };
        let default_wh = self.inner.cfg.default_warehouse.clone();
        let order_id = order_id.to_string();
        let demand = demand.to_vec();
        let created_at_ms = now_ms();
        let r = self
            .write(move |s, r, m| {
                if let Some(existing) = tx_get::<Reservation>(r, RESERVATIONS_TREE, &order_id)? {
                    if existing.state != ReservationState::Released {
                        return Ok(((existing, true), Vec::new()));
                    }
                }
                let units = mapping::item_units(s, m, &demand)?;
                let mut lines = Vec::new();
                let mut changes = Vec::new();
                for (sku, need) in &units {
                    // An item mapped but never stocked has none.
                    let before: SkuRecord = tx_get(s, SKUS_TREE, sku)?.unwrap_or_default();
                    let mut rec = before.clone();
                    let out_of_stock = |available: u64| {
                        abort(Error::OutOfStock {
                            sku: sku.clone(),
                            requested: *need,
                            available: available.min(u64::from(u32::MAX)) as u32,
                        })
                    };
                    // A warehouse the order names but the SKU is not stocked
                    // in: the seller's default stock serves it (recorded
                    // without a warehouse, the configured default, or the
                    // SKU's only warehouse). The reservation's lines say
                    // where the units came from.
                    let wanted = wanted_wh.as_ref().map(|w| {
                        if rec.warehouses.contains_key(w) {
                            return w.clone();
                        }
                        let default = default_wh
                            .as_ref()
                            .filter(|d| rec.warehouses.contains_key(*d));
                        match (rec.warehouses.contains_key(""), default) {
                            (true, _) => String::new(),
                            (false, Some(d)) => d.clone(),
                            _ if rec.warehouses.len() == 1 => {
                                rec.warehouses.keys().next().cloned().unwrap_or_default()
                            }
                            _ => w.clone(),
                        }
                    });
                    match &wanted {
                        Some(w) => {
                            let c = rec.warehouses.get(w).copied().unwrap_or_default();
                            if c.available() < *need {
                                return out_of_stock(u64::from(c.available()));
                            }
                            rec.warehouses.insert(
                                w.clone(),
                                Counts {
                                    on_hand: c.on_hand,
                                    reserved: c.reserved + need,
                                },
                            );
                            lines.push(ReservedLine {
                                sku: sku.clone(),
                                warehouse: wh_opt(w),
                                units: *need,
                            });
                        }
                        None => {
                            if rec.available() < u64::from(*need) {
                                return out_of_stock(rec.available());
                            }
                            let mut left = *need;
                            for (w, c) in rec.warehouses.iter_mut() {
                                let take = left.min(c.available());
                                if take == 0 {
                                    continue;
                                }
                                c.reserved += take;
                                left -= take;
                                lines.push(ReservedLine {
                                    sku: sku.clone(),
                                    warehouse: wh_opt(w),
                                    units: take,
                                });
                                if left == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    tx_put(s, SKUS_TREE, sku, &rec)?;
                    changes.push(change(sku, &before, &rec));
                }
                let res = Reservation {
                    order_id: order_id.clone(),
                    state: ReservationState::Held,
                    lines: lines.clone(),
                    created_at_ms,
                };
                tx_put(r, RESERVATIONS_TREE, &order_id, &res)?;
                // The record is new even when no SKU changed (no units).
                if changes.is_empty() {
                    changes.push(Change {
                        sku: String::new(),
                        before: 0,
                        after: 0,
                    });
                }
                Ok(((res, false), changes))
            })
            .await;
        match r {
            Ok((res, replayed)) => {
                let outcome = if replayed { "replayed" } else { "reserved" };
                metrics::counter!(RESERVATIONS_TOTAL, "outcome" => outcome).increment(1);
                Ok(res)
            }
            Err(e) => {
                if matches!(e, Error::OutOfStock { .. } | Error::UnmappedSku { .. }) {
                    metrics::counter!(RESERVATIONS_TOTAL, "outcome" => e.kind()).increment(1);
                }
                Err(e)
            }
        }
    }

    /// Applies `f` to every line of a held reservation and sets its new
    /// state. Returns whether anything changed.
    async fn settle(&self, order_id: &str, to: ReservationState) -> Result<bool> {
        check_id("order id", order_id)?;
        let order_id = order_id.to_string();
        self.write(move |s, r, _m| {
            let Some(mut res) = tx_get::<Reservation>(r, RESERVATIONS_TREE, &order_id)? else {
                return match to {
                    ReservationState::Committed => abort(Error::NoReservation(order_id.clone())),
                    _ => Ok((false, Vec::new())),
                };
            };
            match (res.state, to) {
                (ReservationState::Held, _) => {}
                (ReservationState::Released, ReservationState::Committed) => {
                    return abort(Error::Released {
                        order_id: order_id.clone(),
                    })
                }
                // Already settled: idempotent no-op (release after commit
                // included: shipped units are gone).
                _ => return Ok((false, Vec::new())),
            }
            let mut records: BTreeMap<String, (SkuRecord, SkuRecord)> = BTreeMap::new();
            for l in &res.lines {
                if !records.contains_key(&l.sku) {
                    let rec: SkuRecord = tx_get(s, SKUS_TREE, &l.sku)?.unwrap_or_default();
                    records.insert(l.sku.clone(), (rec.clone(), rec));
                }
                let (_, rec) = records.get_mut(&l.sku).expect("inserted above");
                let key = l.warehouse.clone().unwrap_or_default();
                let c = rec.warehouses.entry(key).or_default();
                // The invariant guarantees these; checked so a corrupt
                // record cannot wrap around.
                let reserved = c.reserved.checked_sub(l.units);
                let on_hand = match to {
                    ReservationState::Committed => c.on_hand.checked_sub(l.units),
                    _ => Some(c.on_hand),
                };
                match (reserved, on_hand) {
                    (Some(reserved), Some(on_hand)) => {
                        c.reserved = reserved;
                        c.on_hand = on_hand;
                    }
                    _ => {
                        return abort(Error::Corrupt {
                            tree: SKUS_TREE,
                            message: format!(
                                "SKU {} holds fewer units than order {order_id} reserved",
                                l.sku
                            ),
                        })
                    }
                }
            }
            let mut changes = Vec::new();
            for (sku, (before, after)) in &records {
                tx_put(s, SKUS_TREE, sku, after)?;
                changes.push(change(sku, before, after));
            }
            res.state = to;
            tx_put(r, RESERVATIONS_TREE, &order_id, &res)?;
            if changes.is_empty() {
                changes.push(Change {
                    sku: String::new(),
                    before: 0,
                    after: 0,
                });
            }
            Ok((true, changes))
        })
        .await
    }

    /// Gives a held reservation's units back. `Ok(false)` when there is
    /// nothing to release (none, already released, or committed).
    pub async fn release(&self, order_id: &str) -> Result<bool> {
        self.settle(order_id, ReservationState::Released).await
    }

    /// Ships a held reservation: on hand and reserved both drop by its
    /// units. `Ok(false)` when already committed; an error when the order
    /// holds no reservation or it was released.
    pub async fn commit(&self, order_id: &str) -> Result<bool> {
        self.settle(order_id, ReservationState::Committed).await
    }

    /// Sets on hand; refused below the reserved units (see the module docs).
    pub async fn set(&self, sku: &str, warehouse: Option<&str>, on_hand: u32) -> Result<SkuStock> {
        self.update("set", sku, warehouse, move |_| Some(i64::from(on_hand)))
            .await
    }

    /// Adds `delta` (possibly negative) to on hand; refused when the result
    /// would be negative, above `u32::MAX`, or below the reserved units.
    pub async fn adjust(&self, sku: &str, warehouse: Option<&str>, delta: i64) -> Result<SkuStock> {
        self.update("adjust", sku, warehouse, move |cur| {
            i64::from(cur).checked_add(delta)
        })
        .await
    }

    /// `kind` names the change in the journal.
    async fn update<F>(
        &self,
        kind: &'static str,
        sku: &str,
        warehouse: Option<&str>,
        f: F,
    ) -> Result<SkuStock>
    where
        F: Fn(u32) -> Option<i64> + Send + 'static,
    {
        check_id("SKU", sku)?;
        let w = wh_key(warehouse)?;
        let sku = sku.to_string();
        let jt = journal::expired_now(&self.inner.mappings);
        self.write(move |s, _r, m| {
            let before: SkuRecord = tx_get(s, SKUS_TREE, &sku)?.unwrap_or_default();
            let mut rec = before.clone();
            let c = rec.warehouses.entry(w.clone()).or_default();
            let Some(new) = f(c.on_hand) else {
                return abort(Error::Invalid("on hand overflows".into()));
            };
            if new < i64::from(c.reserved) {
                return abort(Error::BelowReserved {
                    sku: sku.clone(),
                    warehouse: wh_opt(&w),
                    on_hand: new,
                    reserved: c.reserved,
                });
            }
            let Ok(new) = u32::try_from(new) else {
                return abort(Error::Invalid(format!(
                    "on hand {new} exceeds {}",
                    u32::MAX
                )));
            };
            let old = c.on_hand;
            c.on_hand = new;
            tx_put(s, SKUS_TREE, &sku, &rec)?;
            let wh = if w.is_empty() {
                "(default)"
            } else {
                w.as_str()
            };
            journal::record(
                m,
                &jt,
                kind,
                &sku,
                format!("warehouse {wh}: on hand {old} → {new}"),
            )?;
            let ch = change(&sku, &before, &rec);
            Ok((SkuStock::from_record(&sku, &rec), vec![ch]))
        })
        .await
    }

    /// Records the TikTok product id a SKU belongs to (used by the push when
    /// the configuration does not map the SKU).
    pub async fn set_product_id(&self, sku: &str, product_id: &str) -> Result<()> {
        check_id("SKU", sku)?;
        check_id("product id", product_id)?;
        let (sku, pid) = (sku.to_string(), product_id.to_string());
        self.write(move |s, _r, _m| {
            let before: SkuRecord = tx_get(s, SKUS_TREE, &sku)?.unwrap_or_default();
            let mut rec = before.clone();
            rec.product_id = Some(pid.clone());
            tx_put(s, SKUS_TREE, &sku, &rec)?;
            Ok(((), vec![change(&sku, &before, &rec)]))
        })
        .await
    }

    /// A SKU's stock; None when the inventory never heard of it.
    pub async fn get(&self, sku: &str) -> Result<Option<SkuStock>> {
        let sku_owned = sku.to_string();
        let tree = self.inner.skus.clone();
        let v = tokio::task::spawn_blocking(move || tree.get(sku_owned.as_bytes()))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        match v {
            None => Ok(None),
            Some(v) => {
                let rec: SkuRecord = decode(SKUS_TREE, &v)?;
                Ok(Some(SkuStock::from_record(sku, &rec)))
            }
        }
    }

    /// The stored record of a SKU (for the pusher and reconcile).
    pub(crate) async fn record(&self, sku: &str) -> Result<Option<SkuRecord>> {
        let (tree, key) = (self.inner.skus.clone(), sku.to_string());
        let v = tokio::task::spawn_blocking(move || tree.get(key.as_bytes()))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        v.map(|v| decode(SKUS_TREE, &v)).transpose()
    }

    /// Every SKU, in SKU order.
    pub async fn list(&self) -> Result<Vec<SkuStock>> {
        let tree = self.inner.skus.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for kv in tree.iter() {
                let (k, v) = kv?;
                let sku = String::from_utf8_lossy(&k).into_owned();
                let rec: SkuRecord = decode(SKUS_TREE, &v)?;
                out.push(SkuStock::from_record(&sku, &rec));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// An order's reservation, in whatever state.
    pub async fn reservation(&self, order_id: &str) -> Result<Option<Reservation>> {
        let (tree, key) = (self.inner.reservations.clone(), order_id.to_string());
        let v = tokio::task::spawn_blocking(move || tree.get(key.as_bytes()))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        v.map(|v| decode(RESERVATIONS_TREE, &v)).transpose()
    }

    /// Imports `sku_id,warehouse_id,on_hand[,product_id]` (header row
    /// first, columns in any order). All or nothing: every problem is
    /// reported with its line number and nothing changes unless all rows
    /// are valid. An empty `warehouse_id` is the unnamed warehouse.
    pub async fn import_csv(&self, text: &str) -> Result<ImportReport> {
        let rows = csv::parse(text).map_err(Error::Import)?;
        let jt = journal::expired_now(&self.inner.mappings);
        self.write(move |s, _r, m| {
            let mut problems = Vec::new();
            let mut records: BTreeMap<String, (SkuRecord, SkuRecord)> = BTreeMap::new();
            let mut report = ImportReport {
                rows: rows.len(),
                ..ImportReport::default()
            };
            for row in &rows {
                if !records.contains_key(&row.sku) {
                    let rec: SkuRecord = tx_get(s, SKUS_TREE, &row.sku)?.unwrap_or_default();
                    records.insert(row.sku.clone(), (rec.clone(), rec));
                }
                let (_, rec) = records.get_mut(&row.sku).expect("inserted above");
                let w = row.warehouse.clone().unwrap_or_default();
                let existed = rec.warehouses.contains_key(&w);
                let c = rec.warehouses.entry(w).or_default();
                if row.on_hand < c.reserved {
                    problems.push(format!(
                        "line {}: on_hand {} for SKU {} is below the {} units reserved",
                        row.line, row.on_hand, row.sku, c.reserved
                    ));
                    continue;
                }
                c.on_hand = row.on_hand;
                report.created += usize::from(!existed);
                if let Some(p) = &row.product_id {
                    rec.product_id = Some(p.clone());
                    report.products += 1;
                }
            }
            if !problems.is_empty() {
                return abort(Error::Import(problems));
            }
            report.skus = records.len();
            journal::record(
                m,
                &jt,
                "import",
                "CSV",
                format!(
                    "{} rows, {} items ({} new warehouse entries)",
                    report.rows, report.skus, report.created
                ),
            )?;
            let mut changes = Vec::new();
            for (sku, (before, after)) in &records {
                tx_put(s, SKUS_TREE, sku, after)?;
                changes.push(change(sku, before, after));
            }
            Ok((report.clone(), changes))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_unknown_versions() {
        let r = SkuRecord {
            product_id: Some("P1".into()),
            warehouses: [(
                "W1".to_string(),
                Counts {
                    on_hand: 5,
                    reserved: 2,
                },
            )]
            .into(),
        };
        let bytes = encode(SKUS_TREE, &r).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<SkuRecord>(SKUS_TREE, &bytes).unwrap(), r);
        let mut future = bytes.clone();
        future[0] = 9;
        let e = decode::<SkuRecord>(SKUS_TREE, &future).unwrap_err();
        assert!(e.to_string().contains("unknown format version 9"), "{e}");
        assert!(decode::<SkuRecord>(SKUS_TREE, &[]).is_err());
        assert!(decode::<SkuRecord>(SKUS_TREE, &[FORMAT_VERSION, 0xff, 0xff]).is_err());
    }

    #[test]
    fn config_validation_reports_every_problem() {
        let cfg = InventoryConfig {
            push_max_attempts: 0,
            watched_skus: vec![String::new()],
            default_warehouse: Some("a\u{0}b".into()),
            ..InventoryConfig::default()
        };
        assert_eq!(cfg.validate().len(), 3, "{:?}", cfg.validate());
        assert!(InventoryConfig::default().validate().is_empty());
        let parsed: InventoryConfig =
            toml::from_str("push_debounce = \"250ms\"\nlow_stock_threshold = 5").unwrap();
        assert_eq!(parsed.push_debounce, Duration::from_millis(250));
        assert!(toml::from_str::<InventoryConfig>("bogus = 1").is_err());
    }
}
