//! The simulator's world: shops, catalog, orders and their lifecycle, the
//! clock, tokens, the ledger, request statistics and fault settings.
//!
//! Everything lives in one `parking_lot::Mutex<World>`; no lock is held
//! across an `.await`. Order time runs on a scalable clock (`time_scale`
//! simulated seconds per real second) so a test can watch an order go from
//! UNPAID to COMPLETED in seconds; rate limits and the timestamp window use
//! real time, as TikTok's do.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::order::{Money, TiktokStatus};
use crate::tiktok::dto::*;

pub(crate) fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// TikTok's clock. Two ways to run `scale` times faster than real time:
///
/// - **Simulated time** (the default): `now` is simulated seconds since the
///   epoch, running `scale` times real time from the real time at start;
///   TikTok's durations are as TikTok has them. Timestamps and deadlines
///   run ahead of any real clock.
/// - **Real clock** (`--real-clock`, the demo's): `now` is real time, and
///   TikTok's durations (the hold, the ship-by windows, the carrier's
///   steps, answer deadlines) are divided by `scale`. A client on a real
///   clock (the demo's daemon) then sees the deadlines the simulator keeps:
///   what it counts late is what the simulator cancels or counts late.
///
/// Everything the world schedules is `now() + span(d)` for a TikTok
/// duration `d`, so both read the same to the rest of the simulator.
pub(crate) struct SimClock {
    base_real: Instant,
    base_sim: f64,
    scale: f64,
    real: bool,
}

impl SimClock {
    pub(crate) fn new(scale: f64, real: bool) -> SimClock {
        SimClock {
            base_real: Instant::now(),
            base_sim: real_now_ms() as f64 / 1000.0,
            scale,
            real,
        }
    }
    pub(crate) fn now(&self) -> f64 {
        let rate = if self.real { 1.0 } else { self.scale };
        self.base_sim + self.base_real.elapsed().as_secs_f64() * rate
    }
    pub(crate) fn now_secs(&self) -> i64 {
        self.now() as i64
    }
    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }
    /// Whether `now` is real time (durations divided by the scale).
    pub(crate) fn is_real(&self) -> bool {
        self.real
    }
    /// A TikTok duration of `secs`, on this clock.
    pub(crate) fn span(&self, secs: f64) -> f64 {
        if self.real {
            secs / self.scale.max(1e-9)
        } else {
            secs
        }
    }
    /// [`Self::span`] in whole seconds (rounded up; at least one for a
    /// positive duration).
    pub(crate) fn span_secs(&self, secs: i64) -> i64 {
        match secs {
            _ if !self.real => secs,
            0 => 0,
            s if s > 0 => scaled(s, self.scale),
            s => -scaled(-s, self.scale),
        }
    }
    /// Changes the speed from now on without jumping (on the real clock:
    /// the durations that begin from now on).
    pub(crate) fn set_scale(&mut self, scale: f64) {
        self.base_sim = self.now();
        self.base_real = Instant::now();
        self.scale = scale;
    }
}

/// Faults injected on demand (`POST /sim/faults` replaces them all).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction of API calls failing transiently: half HTTP 503, half
    /// HTTP 200 with code 36009003.
    pub error_rate: f64,
    /// Extra latency added to every API call, in milliseconds.
    pub latency_ms: u64,
    /// Random extra latency on top, up to this many milliseconds.
    pub latency_jitter_ms: u64,
    /// Fraction of API calls answered 429 / 36009002 regardless of quota.
    pub throttle_rate: f64,
    /// A 429 storm: every API call is throttled for this many milliseconds
    /// from the moment the faults are set.
    pub storm_ms: u64,
    /// Fraction of webhook pushes never sent (no retries either).
    pub webhook_drop_rate: f64,
    /// Fraction of webhook pushes sent twice.
    pub webhook_duplicate_rate: f64,
    /// Fraction of webhook pushes held back and sent after the next one.
    pub webhook_reorder_rate: f64,
    /// The next this many ship, mark-shipped and cancel calls that succeed
    /// take effect, but their reply is held back `lost_reply_ms` (the
    /// caller times out and must re-issue). Counts down.
    pub lost_replies: u32,
    /// How long a lost reply is held; 0 means 30 s.
    pub lost_reply_ms: u64,
    /// The code a re-issued ship or mark-shipped call is answered with: one
    /// of the "already shipped" codes TikTok lists for that endpoint (0,
    /// or one it does not list there, means the first it lists).
    pub already_shipped_code: i64,
}

impl Faults {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("webhook_drop_rate", self.webhook_drop_rate),
            ("webhook_duplicate_rate", self.webhook_duplicate_rate),
            ("webhook_reorder_rate", self.webhook_reorder_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within [0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// One mutating call, as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    /// Real time, Unix milliseconds.
    pub at_ms: i64,
    pub shop_id: String,
    /// `ship`, `mark_shipped`, `update_shipping_info`, `cancel`,
    /// `inventory_update`, `buyer_cancel`, `carrier`, `auto_cancel`.
    pub action: String,
    pub order_id: Option<String>,
    pub package_id: Option<String>,
    pub sku_id: Option<String>,
    /// Whether the call changed anything (a duplicate ship is `false`).
    pub ok: bool,
    /// The envelope code answered (0 on success).
    pub code: i64,
    pub detail: String,
}

/// What the simulator counts against TikTok's deadlines (`GET
/// /sim/deadlines`), judged as TikTok does: a package shipped after its
/// ship-by deadline (the earliest of `rts_sla_time`, `shipping_due_time`
/// and `cancel_order_sla_time`, whole seconds) is a late dispatch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeadlineCounts {
    /// Packages shipped (ship or mark-shipped calls that took effect).
    pub shipped: u64,
    /// Of those, shipped after the ship-by deadline.
    pub shipped_late: u64,
    /// Orders TikTok cancelled because they were not shipped by
    /// `shipping_due_time`.
    pub auto_cancelled: u64,
}

/// A message the simulator received on `POST /sim/notify/{channel}` (the
/// demo's notification channels).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub channel: String,
    pub text: String,
    /// The event's kind (`workflow`, `alert`), when the body carried one.
    pub kind: Option<String>,
    pub order_id: Option<String>,
    /// Real time, Unix milliseconds.
    pub at_ms: i64,
}

/// How many notifications `GET /sim/notifications` keeps (the counts per
/// channel cover all).
pub(crate) const NOTIFICATIONS_KEPT: usize = 500;

#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointStats {
    pub total: u64,
    pub ok: u64,
    pub throttled: u64,
    pub faulted: u64,
    pub rejected: u64,
}

pub(crate) struct SimShop {
    pub id: String,
    pub name: String,
    pub region: String,
    pub cipher: String,
    pub warehouse_id: String,
}

#[derive(Clone)]
pub(crate) struct SimSku {
    pub id: String,
    pub product_id: String,
    pub product_name: String,
    pub sku_name: String,
    /// May be empty: TikTok does not require one.
    pub seller_sku: String,
    pub price: Money,
    /// A virtual bundle's source SKUs and counts (empty: a plain SKU).
    pub combined: Vec<(String, u32)>,
    /// The shops listing it (None: every shop).
    pub shops: Option<BTreeSet<String>>,
    /// Its product's creation time (Unix seconds).
    pub create_time: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SimOrder {
    pub shop_id: String,
    pub wire: WireOrder,
    pub package_id: String,
    /// Simulated times of the automatic steps.
    pub pay_at: Option<f64>,
    pub hold_until: Option<f64>,
    pub buyer_cancel_at: Option<f64>,
    pub next_carrier_at: Option<f64>,
    /// Fields the API shows in place of the true ones (`POST
    /// /sim/orders/{id}/wire`): values TikTok's schemas allow that a strict
    /// decoder refuses (an unknown status, `null`, a number as a string).
    pub wire_patch: serde_json::Map<String, serde_json::Value>,
    /// The buyer's cancellation request, once made after the hold.
    pub cancellation: Option<SimCancellation>,
    /// The buyer's returns and refunds.
    pub returns: Vec<SimReturn>,
}

/// A return as Search Returns shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SimReturn {
    pub return_id: String,
    pub return_type: String,
    pub return_status: String,
    pub create_time: i64,
    pub update_time: i64,
    pub deadline: i64,
}

/// A buyer's cancellation request as Search Cancellations shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SimCancellation {
    pub cancel_id: String,
    /// CANCELLATION_REQUEST_PENDING, _SUCCESS (approved) or _CANCEL
    /// (rejected, or closed by the shipment).
    pub status: String,
    pub create_time: i64,
    pub update_time: i64,
    /// TikTok's deadline for the seller's answer.
    pub deadline: i64,
    /// The idempotency key of the answer that decided it.
    pub answered_with: Option<String>,
}

/// How long the simulator gives a seller to answer a buyer's request.
pub(crate) const RESPOND_WITHIN_SECS: i64 = 48 * 3600;

pub(crate) struct TokenState {
    pub expires_at: i64,
    pub expired: bool,
    /// The shops the token may act for; `None`: every shop (the token
    /// given on the command line).
    pub shops: Option<BTreeSet<String>>,
}

/// A refresh token: valid until it expires or is rotated by a refresh.
#[derive(Debug, Clone)]
pub(crate) struct RefreshState {
    pub expires_at: i64,
    pub shops: Option<BTreeSet<String>>,
    pub open_id: String,
}

/// An authorization code handed out by the authorization page: once,
/// within 30 minutes (TikTok's rule).
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub shops: BTreeSet<String>,
    pub open_id: String,
    pub expires_at: i64,
}

/// A webhook to push.
pub(crate) struct Push {
    pub url: String,
    pub body: Vec<u8>,
    pub notification_id: String,
    pub kind: i64,
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub notification_id: String,
    #[serde(rename = "type")]
    pub kind: i64,
    pub order_id: Option<String>,
    /// 0 for the first push, 1..=4 for retries.
    pub attempt: u32,
    /// `delivered`, `failed` (will retry), `gave_up`, `dropped`,
    /// `duplicated`, `reordered`.
    pub outcome: String,
    pub http_status: Option<u16>,
    pub at_ms: i64,
}

pub(crate) struct World {
    pub rng: StdRng,
    pub clock: SimClock,
    pub shops: Vec<SimShop>,
    /// Search Products' cap on results one query may page through
    /// (TikTok's is 10,000, code 12052180); lowered by tests.
    pub product_search_limit: usize,
    pub skus: BTreeMap<String, SimSku>,
    /// (sku, warehouse) → quantity.
    pub inventory: BTreeMap<(String, String), i64>,
    pub orders: HashMap<String, SimOrder>,
    pub by_package: HashMap<String, String>,
    pub order_seq: u64,
    /// The run number (`--run`): the top four digits of every id's
    /// counter, so a simulator started again with the next number never
    /// repeats an id of an earlier run.
    pub run: u32,
    pub access: HashMap<String, TokenState>,
    pub refresh: HashMap<String, RefreshState>,
    pub used_codes: HashSet<String>,
    /// Codes issued by `/open/authorize`, not yet exchanged.
    pub codes: HashMap<String, AuthCode>,
    /// How long a seller's authorization (its refresh tokens) lasts, in
    /// simulated seconds.
    pub authorization_ttl_secs: i64,
    /// Every token string ever issued (access and refresh), for tests that
    /// look for them where they must not be.
    pub issued_tokens: Vec<String>,
    pub token_seq: u64,
    pub ledger: Vec<LedgerEntry>,
    pub deadlines: DeadlineCounts,
    /// New orders generated per real second (`GET`/`POST /sim/stream`).
    pub orders_per_second: f64,
    /// The latest notifications received, oldest first, and how many per
    /// channel in all.
    pub notifications: std::collections::VecDeque<Notification>,
    pub notified: BTreeMap<String, u64>,
    pub faults: Faults,
    pub storm_until: Option<Instant>,
    /// Fixed one-second windows per (app, shop): (unix second, count).
    pub windows: HashMap<(String, String), (i64, u32)>,
    /// Requests per shop per real second, for `/sim/stats`.
    pub per_second: BTreeMap<String, BTreeMap<i64, u32>>,
    pub endpoints: BTreeMap<&'static str, EndpointStats>,
    /// (shop, event type) → registration.
    pub webhooks: BTreeMap<(String, String), ShopWebhook>,
    pub deliveries: Vec<DeliveryRecord>,
    pub notification_seq: u64,
    pub request_seq: u64,
    pub outbox: Vec<Push>,
    pub buyer_cancel_rate: f64,
    pub auto_carrier: bool,
    pub default_webhook_url: Option<String>,
    /// Where `/open/authorize` sends the seller (the app's redirect URL).
    pub redirect_url: Option<String>,
    /// Pushes to a registered https address go to this base instead (the
    /// address's path kept): a DNS override, so tests can register the
    /// https address TikTok requires and still receive on 127.0.0.1.
    pub webhook_resolve: Option<String>,
}

/// Simulated durations, in seconds (reference §7; US defaults).
pub(crate) const HOLD_SECS: f64 = 3600.0;
const DAY: i64 = 86_400;
const COLLECT_AFTER: f64 = 4.0 * 3600.0;
const DELIVER_AFTER: f64 = 2.0 * 86_400.0;
const COMPLETE_AFTER: f64 = 7.0 * 86_400.0;

const FIRST_NAMES: [&str; 8] = ["Ava", "Liam", "Mia", "Noah", "Zoe", "Ethan", "Lena", "Omar"];
const LAST_NAMES: [&str; 6] = ["Garcia", "Smith", "Nguyen", "Khan", "Rossi", "Okafor"];
const CITIES: [(&str, &str, &str); 5] = [
    ("Austin", "Texas", "78701"),
    ("Seattle", "Washington", "98101"),
    ("Columbus", "Ohio", "43004"),
    ("Denver", "Colorado", "80202"),
    ("Miami", "Florida", "33101"),
];
const STREETS: [&str; 5] = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm Blvd"];
const PRODUCTS: [(&str, [&str; 3], i64); 5] = [
    ("Cotton T-Shirt", ["S", "M", "L"], 1999),
    ("Phone Case", ["Black", "Clear", "Pink"], 1299),
    ("Water Bottle", ["500ml", "750ml", "1L"], 2450),
    ("Yoga Mat", ["Blue", "Grey", "Green"], 3999),
    ("LED Desk Lamp", ["White", "Black", "Silver"], 4575),
];

pub(crate) fn webhook_status(s: &str) -> &str {
    // The ORDER_STATUS_CHANGE webhook spells it CANCEL (reference §4.1).
    if s == "CANCELLED" {
        "CANCEL"
    } else {
        s
    }
}

/// What a demo simulator keeps across a restart of the daemon
/// ([`super::SimulatorHandle::save`]): its orders and their packages, the
/// stock it holds and its deadline counts, so orders an earlier run left
/// unfinished go on. Tokens, faults, the request ledger and webhook
/// deliveries start afresh; ids stay unique through the run number.
#[derive(Serialize)]
struct SavedRef<'a> {
    orders: &'a HashMap<String, SimOrder>,
    by_package: &'a HashMap<String, String>,
    inventory: Vec<(&'a (String, String), &'a i64)>,
    deadlines: &'a DeadlineCounts,
}

/// [`SavedRef`], read back.
#[derive(Deserialize)]
struct Saved {
    orders: HashMap<String, SimOrder>,
    by_package: HashMap<String, String>,
    inventory: Vec<((String, String), i64)>,
    deadlines: DeadlineCounts,
}

impl World {
    /// What a restart keeps (see [`SavedRef`]).
    pub(crate) fn saved(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(SavedRef {
            orders: &self.orders,
            by_package: &self.by_package,
            inventory: self.inventory.iter().collect(),
            deadlines: &self.deadlines,
        })
    }

    /// Takes back what [`World::saved`] kept: orders this run does not
    /// know yet (its own are never replaced), their packages, the stock of
    /// the SKUs it sells and the deadline counts. Returns how many orders
    /// it took; a part it cannot read changes nothing.
    pub(crate) fn restore(&mut self, saved: serde_json::Value) -> serde_json::Result<usize> {
        let saved: Saved = serde_json::from_value(saved)?;
        let mut taken = 0;
        for (id, o) in saved.orders {
            if let std::collections::hash_map::Entry::Vacant(e) = self.orders.entry(id) {
                e.insert(o);
                taken += 1;
            }
        }
        for (package, order) in saved.by_package {
            self.by_package.entry(package).or_insert(order);
        }
        for ((sku, warehouse), qty) in saved.inventory {
            if self.skus.contains_key(&sku) {
                self.inventory.insert((sku, warehouse), qty);
            }
        }
        self.deadlines = saved.deadlines;
        Ok(taken)
    }
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        seed: u64,
        shops: u32,
        time_scale: f64,
        access_token: &str,
        refresh_token: &str,
        token_ttl_secs: i64,
        authorization_ttl_secs: i64,
        buyer_cancel_rate: f64,
        auto_carrier: bool,
        default_webhook_url: Option<String>,
    ) -> World {
        let shops = (0..shops.max(1))
            .map(|i| SimShop {
                id: format!("74940000000000{:05}", i + 1),
                name: format!("Sim Shop {}", i + 1),
                region: "US".into(),
                cipher: format!("ROW_sim{:02}AAAAcipher{:04}", i + 1, 7 * (i + 3)),
                warehouse_id: format!("73000000000000{:05}", i + 1),
            })
            .collect::<Vec<_>>();
        let mut skus = BTreeMap::new();
        let mut inventory = BTreeMap::new();
        for (p, (name, variants, cents)) in PRODUCTS.iter().enumerate() {
            let product_id = format!("17290000000000{:05}", p + 1);
            for (v, variant) in variants.iter().enumerate() {
                let id = format!("17300000000000{:03}{:02}", p + 1, v + 1);
                skus.insert(
                    id.clone(),
                    SimSku {
                        id: id.clone(),
                        product_id: product_id.clone(),
                        product_name: name.to_string(),
                        sku_name: variant.to_string(),
                        seller_sku: format!(
                            "{}-{}",
                            &name[..3].to_uppercase(),
                            variant.to_uppercase()
                        ),
                        price: Money(cents + 100 * v as i64),
                        combined: Vec::new(),
                        shops: None,
                        create_time: 1_700_000_000 + p as i64,
                    },
                );
                for s in &shops {
                    inventory.insert((id.clone(), s.warehouse_id.clone()), 100);
                }
            }
        }
        let clock = SimClock::new(time_scale, false);
        let now = real_now_ms() / 1000;
        let mut access = HashMap::new();
        access.insert(
            access_token.to_string(),
            TokenState {
                expires_at: now + scaled(token_ttl_secs, time_scale),
                expired: false,
                shops: None,
            },
        );
        let mut refresh = HashMap::new();
        refresh.insert(
            refresh_token.to_string(),
            RefreshState {
                expires_at: now + scaled(authorization_ttl_secs, time_scale),
                shops: None,
                open_id: "sim-open-id".into(),
            },
        );
        World {
            rng: StdRng::seed_from_u64(seed),
            clock,
            shops,
            skus,
            inventory,
            orders: HashMap::new(),
            by_package: HashMap::new(),
            order_seq: 0,
            run: 0,
            access,
            refresh,
            used_codes: HashSet::new(),
            codes: HashMap::new(),
            issued_tokens: vec![access_token.to_string(), refresh_token.to_string()],
            authorization_ttl_secs,
            token_seq: 0,
            ledger: Vec::new(),
            deadlines: DeadlineCounts::default(),
            orders_per_second: 0.0,
            notifications: Default::default(),
            notified: BTreeMap::new(),
            faults: Faults::default(),
            storm_until: None,
            windows: HashMap::new(),
            per_second: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            deliveries: Vec::new(),
            notification_seq: 0,
            request_seq: 0,
            outbox: Vec::new(),
            buyer_cancel_rate,
            auto_carrier,
            default_webhook_url,
            redirect_url: None,
            webhook_resolve: None,
            product_search_limit: 10_000,
        }
    }

    /// Numbers the ids of run `run` from: the run number in the top four
    /// of `digits` digits.
    pub(crate) fn run_base(&self, digits: u32) -> u64 {
        u64::from(self.run) * 10u64.pow(digits.saturating_sub(4))
    }

    /// Starts the id counters of run `run` (before any id is made).
    pub(crate) fn set_run(&mut self, run: u32) {
        self.run = run;
        self.order_seq = self.run_base(15);
        self.notification_seq = self.run_base(17);
    }

    pub(crate) fn shop_by_cipher(&self, cipher: &str) -> Option<&SimShop> {
        self.shops.iter().find(|s| s.cipher == cipher)
    }

    pub(crate) fn record(&mut self, mut e: LedgerEntry) {
        e.seq = self.ledger.len() as u64 + 1;
        e.at_ms = real_now_ms();
        self.ledger.push(e);
    }

    /// A SKU by id, created with a default price if the catalog lacks it
    /// (tests may name their own SKUs).
    pub(crate) fn sku(&mut self, id: &str) -> SimSku {
        if let Some(s) = self.skus.get(id) {
            return s.clone();
        }
        let s = SimSku {
            id: id.to_string(),
            product_id: format!("P-{id}"),
            product_name: format!("Product {id}"),
            sku_name: "Default".into(),
            seller_sku: id.to_string(),
            price: Money(999),
            combined: Vec::new(),
            shops: None,
            create_time: 1_700_000_000,
        };
        self.skus.insert(id.to_string(), s.clone());
        for shop in &self.shops {
            self.inventory
                .insert((id.to_string(), shop.warehouse_id.clone()), 100);
        }
        s
    }

    /// Creates an order. `status` is where it starts: UNPAID (the full
    /// lifecycle runs), ON_HOLD or AWAITING_SHIPMENT.
    pub(crate) fn create_order(
        &mut self,
        shop_idx: usize,
        items: &[(String, u32)],
        status: TiktokStatus,
        ship_by_in_secs: Option<i64>,
    ) -> (String, String) {
        self.order_seq += 1;
        let now = self.clock.now();
        let now_s = now as i64;
        let id = format!("5769{:015}", self.order_seq);
        let package_id = format!("1152{:015}", self.order_seq);
        let shop = &self.shops[shop_idx.min(self.shops.len() - 1)];
        let (shop_id, warehouse_id) = (shop.id.clone(), shop.warehouse_id.clone());
        let mut line_items = Vec::new();
        let mut original = Money(0);
        let mut seller_discount = Money(0);
        for (sku_id, qty) in items {
            let sku = self.sku(sku_id);
            for _ in 0..(*qty).max(1) {
                let discount = if self.rng.random_bool(0.2) {
                    Money(100)
                } else {
                    Money(0)
                };
                let sale = Money(sku.price.0 - discount.0);
                original.0 += sku.price.0;
                seller_discount.0 += discount.0;
                line_items.push(WireLineItem {
                    id: format!("{id}{:03}", line_items.len() + 1),
                    sku_id: sku.id.clone(),
                    product_id: Some(sku.product_id.clone()),
                    product_name: Some(sku.product_name.clone()),
                    sku_name: Some(sku.sku_name.clone()),
                    seller_sku: Some(sku.seller_sku.clone()),
                    original_price: Some(sku.price.to_string()),
                    sale_price: Some(sale.to_string()),
                    platform_discount: Some("0.00".into()),
                    seller_discount: Some(discount.to_string()),
                    currency: Some("USD".into()),
                    display_status: Some(status.as_str().into()),
                    package_id: None,
                    package_status: Some("TO_FULFILL".into()),
                    tracking_number: None,
                    shipping_provider_id: None,
                    is_gift: Some(false),
                    combined_listing_skus: sku
                        .combined
                        .iter()
                        .map(|(id, n)| {
                            let src = self.skus.get(id).cloned();
                            crate::tiktok::dto::CombinedSku {
                                sku_id: id.clone(),
                                sku_count: *n,
                                product_id: src
                                    .as_ref()
                                    .map(|s| s.product_id.clone())
                                    .unwrap_or_default(),
                                seller_sku: src.map(|s| s.seller_sku).unwrap_or_default(),
                            }
                        })
                        .collect(),
                });
            }
        }
        let sub_total = Money(original.0 - seller_discount.0);
        let shipping = Money(if sub_total.0 >= 3500 { 0 } else { 599 });
        let tax = Money((sub_total.0 * 825 + 5000) / 10_000);
        let total = Money(sub_total.0 + shipping.0 + tax.0);
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        let (city, state, zip) = CITIES[self.rng.random_range(0..CITIES.len())];
        let street = format!(
            "{} {}",
            self.rng.random_range(10..9999),
            STREETS[self.rng.random_range(0..STREETS.len())]
        );
        // TikTok's durations on the clock (see `SimClock`).
        let span = |d: i64| self.clock.span_secs(d);
        let paid_base = match status {
            TiktokStatus::Unpaid => now_s + span(120),
            TiktokStatus::OnHold => now_s,
            _ => now_s - span(HOLD_SECS as i64),
        };
        let rts = match ship_by_in_secs {
            Some(s) => now_s + span(s),
            None => paid_base + span(2 * DAY),
        };
        let shipping_due = rts.max(paid_base + span(7 * DAY));
        let wire = WireOrder {
            id: id.clone(),
            status: status.as_str().into(),
            order_type: Some("NORMAL".into()),
            create_time: now_s,
            update_time: now_s,
            paid_time: (status != TiktokStatus::Unpaid).then_some(paid_base),
            user_id: Some(format!("7{:017}", self.rng.random_range(0..10u64.pow(17)))),
            buyer_email: Some(format!(
                "v{:08}@scs.tiktokw.us",
                self.rng.random_range(0..100_000_000u64)
            )),
            buyer_message: Some(String::new()),
            fulfillment_type: Some("FULFILLMENT_BY_SELLER".into()),
            shipping_type: Some("SELLER".into()),
            delivery_type: Some("HOME_DELIVERY".into()),
            delivery_option_id: Some(super::api::SELLER_DELIVERY_OPTION.into()),
            delivery_option_name: Some("Standard shipping".into()),
            warehouse_id: Some(warehouse_id),
            is_on_hold_order: Some(status == TiktokStatus::OnHold),
            is_cod: Some(false),
            is_sample_order: Some(false),
            is_replacement_order: Some(false),
            has_updated_recipient_address: Some(false),
            is_buyer_request_cancel: Some(false),
            rts_sla_time: Some(rts),
            tts_sla_time: Some(rts + span(DAY)),
            shipping_due_time: Some(shipping_due),
            cancel_order_sla_time: Some(shipping_due),
            collection_due_time: Some(shipping_due + span(2 * DAY)),
            delivery_due_time: Some(shipping_due + span(9 * DAY)),
            delivery_sla_time: Some(rts + span(6 * DAY)),
            payment: Some(WirePayment {
                currency: "USD".into(),
                sub_total: Some(sub_total.to_string()),
                shipping_fee: Some(shipping.to_string()),
                seller_discount: Some(seller_discount.to_string()),
                platform_discount: Some("0.00".into()),
                total_amount: Some(total.to_string()),
                original_total_product_price: Some(original.to_string()),
                original_shipping_fee: Some(shipping.to_string()),
                shipping_fee_seller_discount: Some("0.00".into()),
                shipping_fee_platform_discount: Some("0.00".into()),
                tax: Some(tax.to_string()),
                product_tax: Some(tax.to_string()),
                shipping_fee_tax: Some("0.00".into()),
                retail_delivery_fee: Some("0.00".into()),
            }),
            recipient_address: Some(WireAddress {
                name: Some(format!("{first} {last}")),
                first_name: Some(first.into()),
                last_name: Some(last.into()),
                phone_number: Some(format!(
                    "(+1)555{:07}",
                    self.rng.random_range(0..10_000_000)
                )),
                full_address: Some(format!("{street}, {city}, {state}, {zip}, United States")),
                address_detail: Some(String::new()),
                address_line1: Some(street.clone()),
                address_line2: Some(String::new()),
                address_line3: None,
                address_line4: None,
                postal_code: Some(zip.into()),
                region_code: Some("US".into()),
                district_info: vec![
                    WireDistrict {
                        address_level_name: Some("Country".into()),
                        address_name: Some("United States".into()),
                        address_level: Some("L0".into()),
                    },
                    WireDistrict {
                        address_level_name: Some("State".into()),
                        address_name: Some(state.into()),
                        address_level: Some("L1".into()),
                    },
                    WireDistrict {
                        address_level_name: Some("City".into()),
                        address_name: Some(city.into()),
                        address_level: Some("L3".into()),
                    },
                ],
            }),
            line_items,
            ..WireOrder::default()
        };
        let buyer_cancel_at = (matches!(status, TiktokStatus::Unpaid | TiktokStatus::OnHold)
            && self.rng.random_bool(self.buyer_cancel_rate.clamp(0.0, 1.0)))
        .then(|| {
            let after = self.rng.random_range(60.0..HOLD_SECS - 60.0);
            paid_base as f64 + self.clock.span(after)
        });
        let mut o = SimOrder {
            shop_id: shop_id.clone(),
            wire,
            package_id: package_id.clone(),
            pay_at: (status == TiktokStatus::Unpaid).then_some(paid_base as f64),
            hold_until: matches!(status, TiktokStatus::Unpaid | TiktokStatus::OnHold)
                .then_some(paid_base as f64 + self.clock.span(HOLD_SECS)),
            buyer_cancel_at,
            next_carrier_at: None,
            wire_patch: Default::default(),
            cancellation: None,
            returns: Vec::new(),
        };
        if status == TiktokStatus::AwaitingShipment {
            attach_package(&mut o);
        }
        self.by_package.insert(package_id.clone(), id.clone());
        self.orders.insert(id.clone(), o);
        self.notify_status(&id);
        (id, package_id)
    }

    /// Queues an ORDER_STATUS_CHANGE push for the order's current status.
    pub(crate) fn notify_status(&mut self, order_id: &str) {
        let Some(o) = self.orders.get(order_id) else {
            return;
        };
        let shop_id = o.shop_id.clone();
        let data = serde_json::json!({
            "order_id": order_id,
            "order_status": webhook_status(&o.wire.status),
            "is_on_hold_order": o.wire.is_on_hold_order.unwrap_or(false),
            "update_time": o.wire.update_time,
        });
        self.notify(
            &shop_id,
            1,
            "ORDER_STATUS_CHANGE",
            Some(order_id.to_string()),
            data,
        );
    }

    pub(crate) fn notify(
        &mut self,
        shop_id: &str,
        kind: i64,
        event_type: &str,
        order_id: Option<String>,
        data: serde_json::Value,
    ) {
        let url = self
            .webhooks
            .get(&(shop_id.to_string(), event_type.to_string()))
            .map(
                |w| match (&self.webhook_resolve, reqwest::Url::parse(&w.address)) {
                    (Some(base), Ok(a)) => format!("{}{}", base.trim_end_matches('/'), a.path()),
                    _ => w.address.clone(),
                },
            )
            .or_else(|| self.default_webhook_url.clone());
        let Some(url) = url else {
            return;
        };
        self.notification_seq += 1;
        let notification_id = format!("73{:017}", self.notification_seq);
        let env = crate::tiktok::webhook::WebhookEnvelope {
            kind,
            tts_notification_id: Some(notification_id.clone()),
            shop_id: shop_id.to_string(),
            timestamp: self.clock.now_secs(),
            data,
        };
        let Ok(body) = serde_json::to_vec(&env) else {
            return;
        };
        self.outbox.push(Push {
            url,
            body,
            notification_id,
            kind,
            order_id,
        });
    }

    pub(crate) fn set_status(&mut self, order_id: &str, status: TiktokStatus) {
        let now = self.clock.now_secs();
        if let Some(o) = self.orders.get_mut(order_id) {
            o.wire.status = status.as_str().into();
            o.wire.update_time = now;
            o.wire.is_on_hold_order = Some(status == TiktokStatus::OnHold);
            for li in &mut o.wire.line_items {
                li.display_status = Some(status.as_str().into());
                li.package_status = Some(
                    match status {
                        TiktokStatus::AwaitingCollection => "PROCESSING",
                        TiktokStatus::InTransit | TiktokStatus::Delivered => "FULFILLING",
                        TiktokStatus::Completed => "COMPLETED",
                        TiktokStatus::Cancelled => "CANCELLED",
                        _ => "TO_FULFILL",
                    }
                    .into(),
                );
            }
            match status {
                TiktokStatus::InTransit => o.wire.collection_time = Some(now),
                TiktokStatus::Delivered => o.wire.delivery_time = Some(now),
                TiktokStatus::Cancelled => o.wire.cancel_time = Some(now),
                _ => {}
            }
            self.notify_status(order_id);
        }
    }

    pub(crate) fn cancel(&mut self, order_id: &str, initiator: &str, reason: &str) {
        if let Some(o) = self.orders.get_mut(order_id) {
            o.wire.cancellation_initiator = Some(initiator.into());
            o.wire.cancel_reason = Some(reason.into());
            o.next_carrier_at = None;
        }
        self.set_status(order_id, TiktokStatus::Cancelled);
    }

    /// Marks a package shipped: AWAITING_SHIPMENT → AWAITING_COLLECTION.
    pub(crate) fn ship(&mut self, order_id: &str, tracking: Option<&str>, provider: Option<&str>) {
        let now = self.clock.now();
        let collect_after = self.clock.span(COLLECT_AFTER);
        let auto = self.auto_carrier;
        let tn = tracking
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("9400{:018}", self.rng.random_range(0..10u64.pow(18))));
        let pid = provider
            .filter(|p| !p.is_empty())
            .unwrap_or(PROVIDERS[0].0)
            .to_string();
        if let Some(o) = self.orders.get(order_id) {
            self.deadlines.shipped += 1;
            if ship_by(&o.wire).is_some_and(|due| now as i64 > due) {
                self.deadlines.shipped_late += 1;
            }
        }
        if let Some(o) = self.orders.get_mut(order_id) {
            o.wire.rts_time = Some(now as i64);
            o.wire.tracking_number = Some(tn.clone());
            o.wire.shipping_provider_id = Some(pid.clone());
            o.wire.shipping_provider = PROVIDERS
                .iter()
                .find(|p| p.0 == pid)
                .map(|p| p.1.to_string());
            for li in &mut o.wire.line_items {
                li.tracking_number = Some(tn.clone());
                li.shipping_provider_id = Some(pid.clone());
            }
            o.next_carrier_at = auto.then_some(now + collect_after);
        }
        self.set_status(order_id, TiktokStatus::AwaitingCollection);
        // In the US, TikTok closes a buyer's pending request when the
        // seller ships (v202309: "the cancellation request will be rejected
        // automatically"); elsewhere the seller answers it.
        let pending = self.orders.get(order_id).is_some_and(|o| {
            o.cancellation
                .as_ref()
                .is_some_and(|c| c.status == "CANCELLATION_REQUEST_PENDING")
                && self
                    .shops
                    .iter()
                    .any(|s| s.id == o.shop_id && s.region == "US")
        });
        if pending {
            self.close_cancellation(order_id, "CANCELLATION_REQUEST_CANCEL", None);
        }
    }

    /// Moves a shipped order one carrier step (or to `to`).
    pub(crate) fn carrier_step(
        &mut self,
        order_id: &str,
        to: Option<TiktokStatus>,
    ) -> Result<TiktokStatus, String> {
        let Some(o) = self.orders.get(order_id) else {
            return Err("no such order".into());
        };
        let cur = TiktokStatus::parse(&o.wire.status).unwrap_or(TiktokStatus::Unpaid);
        let next = match cur {
            TiktokStatus::AwaitingCollection => TiktokStatus::InTransit,
            TiktokStatus::InTransit => TiktokStatus::Delivered,
            TiktokStatus::Delivered => TiktokStatus::Completed,
            s => return Err(format!("order is {s}: the carrier has nothing to do")),
        };
        let target = to.unwrap_or_else(|| next.clone());
        if target.rank() < next.rank() || target.rank() > TiktokStatus::Completed.rank() {
            return Err(format!("cannot move from {cur} to {target}"));
        }
        let mut s = cur.clone();
        while s != target {
            s = match s {
                TiktokStatus::AwaitingCollection => TiktokStatus::InTransit,
                TiktokStatus::InTransit => TiktokStatus::Delivered,
                _ => TiktokStatus::Completed,
            };
            self.set_status(order_id, s.clone());
        }
        let now = self.clock.now();
        let (deliver_after, complete_after) = (
            self.clock.span(DELIVER_AFTER),
            self.clock.span(COMPLETE_AFTER),
        );
        let auto = self.auto_carrier;
        if let Some(o) = self.orders.get_mut(order_id) {
            o.next_carrier_at = match s {
                TiktokStatus::InTransit if auto => Some(now + deliver_after),
                TiktokStatus::Delivered if auto => Some(now + complete_after),
                _ => None,
            };
        }
        Ok(s)
    }

    /// Advances every order whose next automatic step is due.
    pub(crate) fn tick(&mut self) {
        let now = self.clock.now();
        let mut due: Vec<(String, &'static str)> = Vec::new();
        for (id, o) in &self.orders {
            let status = TiktokStatus::parse(&o.wire.status).unwrap_or(TiktokStatus::Unpaid);
            let step = match status {
                TiktokStatus::Unpaid if o.buyer_cancel_at.is_some_and(|t| t <= now) => {
                    "buyer_cancel"
                }
                TiktokStatus::Unpaid if o.pay_at.is_some_and(|t| t <= now) => "pay",
                TiktokStatus::OnHold if o.buyer_cancel_at.is_some_and(|t| t <= now) => {
                    "buyer_cancel"
                }
                TiktokStatus::OnHold if o.hold_until.is_some_and(|t| t <= now) => "release",
                TiktokStatus::AwaitingShipment
                    if o.wire.shipping_due_time.is_some_and(|t| (t as f64) <= now) =>
                {
                    "auto_cancel"
                }
                TiktokStatus::AwaitingCollection
                | TiktokStatus::InTransit
                | TiktokStatus::Delivered
                    if o.next_carrier_at.is_some_and(|t| t <= now) =>
                {
                    "carrier"
                }
                _ => continue,
            };
            due.push((id.clone(), step));
        }
        due.sort();
        for (id, step) in due {
            let shop_id = self
                .orders
                .get(&id)
                .map(|o| o.shop_id.clone())
                .unwrap_or_default();
            match step {
                "pay" => {
                    let now_s = now as i64;
                    if let Some(o) = self.orders.get_mut(&id) {
                        o.wire.paid_time = Some(now_s);
                        o.pay_at = None;
                    }
                    self.set_status(&id, TiktokStatus::OnHold);
                }
                "release" => {
                    if let Some(o) = self.orders.get_mut(&id) {
                        o.hold_until = None;
                        attach_package(o);
                    }
                    self.set_status(&id, TiktokStatus::AwaitingShipment);
                }
                "buyer_cancel" => {
                    let reason = buyer_cancel_reason(self.orders.get(&id));
                    self.cancel(&id, "BUYER", reason);
                    self.record_simple(&shop_id, "buyer_cancel", &id);
                }
                "auto_cancel" => {
                    self.deadlines.auto_cancelled += 1;
                    self.cancel(&id, "SYSTEM", "system_cancel_order_reason_shipping_timeout");
                    self.record_simple(&shop_id, "auto_cancel", &id);
                }
                _ => {
                    let _ = self.carrier_step(&id, None);
                }
            }
        }
    }

    pub(crate) fn record_simple(&mut self, shop_id: &str, action: &str, order_id: &str) {
        self.record(LedgerEntry {
            seq: 0,
            at_ms: 0,
            shop_id: shop_id.to_string(),
            action: action.into(),
            order_id: Some(order_id.to_string()),
            package_id: None,
            sku_id: None,
            ok: true,
            code: 0,
            detail: String::new(),
        });
    }

    /// Buyer cancel during the hold (control endpoint).
    pub(crate) fn buyer_cancel(&mut self, order_id: &str) -> Result<(), String> {
        let Some(o) = self.orders.get(order_id) else {
            return Err("no such order".into());
        };
        match TiktokStatus::parse(&o.wire.status) {
            Some(TiktokStatus::Unpaid | TiktokStatus::OnHold) => {
                let shop_id = o.shop_id.clone();
                let reason = buyer_cancel_reason(Some(o));
                self.cancel(order_id, "BUYER", reason);
                self.record_simple(&shop_id, "buyer_cancel", order_id);
                Ok(())
            }
            // After the hold, the buyer can only ask, until the parcel is
            // collected; the seller answers.
            Some(TiktokStatus::AwaitingShipment | TiktokStatus::AwaitingCollection)
                if o.cancellation.is_none() =>
            {
                let shop_id = o.shop_id.clone();
                let now = self.clock.now_secs();
                let respond_within = self.clock.span_secs(RESPOND_WITHIN_SECS);
                let cancel_id = format!(
                    "4035{:015}",
                    self.run_base(15) + self.ledger.len() as u64 + 1
                );
                if let Some(o) = self.orders.get_mut(order_id) {
                    o.wire.is_buyer_request_cancel = Some(true);
                    o.wire.request_cancel_time = Some(now);
                    o.wire.update_time = now;
                    o.cancellation = Some(SimCancellation {
                        cancel_id: cancel_id.clone(),
                        status: "CANCELLATION_REQUEST_PENDING".into(),
                        create_time: now,
                        update_time: now,
                        deadline: now + respond_within,
                        answered_with: None,
                    });
                }
                self.record_simple(&shop_id, "buyer_cancel_request", order_id);
                self.notify_cancellation(order_id);
                Ok(())
            }
            s => Err(format!(
                "buyers cancel freely only while UNPAID or ON_HOLD, and ask once while AWAITING_SHIPMENT; the order is {}",
                s.as_ref().map_or("?", |s| s.as_str())
            )),
        }
    }

    /// Pushes CANCELLATION_STATUS_CHANGE (type 11) for the order's request.
    pub(crate) fn notify_cancellation(&mut self, order_id: &str) {
        let Some(o) = self.orders.get(order_id) else {
            return;
        };
        let Some(c) = o.cancellation.clone() else {
            return;
        };
        let shop_id = o.shop_id.clone();
        self.notify(
            &shop_id,
            11,
            "CANCELLATION_STATUS_CHANGE",
            Some(order_id.to_string()),
            serde_json::json!({
                "order_id": order_id, "cancellations_role": "BUYER",
                "cancel_status": c.status, "cancel_id": c.cancel_id,
                "create_time": c.create_time,
            }),
        );
    }

    /// Closes a pending request with `status` (the order is left as is).
    pub(crate) fn close_cancellation(&mut self, order_id: &str, status: &str, key: Option<&str>) {
        let now = self.clock.now_secs();
        if let Some(o) = self.orders.get_mut(order_id) {
            if let Some(c) = o.cancellation.as_mut() {
                c.status = status.to_string();
                c.update_time = now;
                c.answered_with = key.map(str::to_string);
            }
            o.wire.is_buyer_request_cancel = Some(false);
            o.wire.update_time = now;
        }
        self.notify_cancellation(order_id);
    }

    /// A new token pair for `shops` (`None`: every shop), expiring after
    /// `ttl_secs` of simulated time (the refresh token after a year).
    pub(crate) fn issue_tokens(
        &mut self,
        ttl_secs: i64,
        shops: Option<BTreeSet<String>>,
        open_id: &str,
        authorization_ends: Option<i64>,
    ) -> TokenData {
        self.token_seq += 1;
        let access = format!(
            "sim-at-{}-{:016x}",
            self.token_seq,
            self.rng.random::<u64>()
        );
        let refresh = format!(
            "sim-rt-{}-{:016x}",
            self.token_seq,
            self.rng.random::<u64>()
        );
        self.issued_tokens.push(access.clone());
        self.issued_tokens.push(refresh.clone());
        let now = real_now_ms() / 1000;
        let scale = self.clock.scale();
        let access_at = now + scaled(ttl_secs, scale);
        // The refresh token lives as long as the seller's authorization:
        // a refresh rotates it, the end stays.
        let refresh_at =
            authorization_ends.unwrap_or_else(|| now + scaled(self.authorization_ttl_secs, scale));
        self.access.insert(
            access.clone(),
            TokenState {
                expires_at: access_at,
                expired: false,
                shops: shops.clone(),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            RefreshState {
                expires_at: refresh_at,
                shops,
                open_id: open_id.to_string(),
            },
        );
        TokenData {
            access_token: access,
            access_token_expire_in: access_at,
            refresh_token: refresh,
            refresh_token_expire_in: refresh_at,
            open_id: open_id.to_string(),
            seller_name: format!("Sim Seller {open_id}"),
            seller_base_region: "US".into(),
            user_type: 0,
            granted_scopes: vec![
                "seller.order.info".into(),
                "seller.fulfillment.basic".into(),
            ],
        }
    }

    /// The seller revoked the app for `shop`: no token acts for it any
    /// more (TikTok answers 105001).
    pub(crate) fn deauthorize(&mut self, shop: &str) -> usize {
        let all: BTreeSet<String> = self.shops.iter().map(|s| s.id.clone()).collect();
        let mut n = 0;
        let mut drop = |set: &mut Option<BTreeSet<String>>| {
            let s = set.get_or_insert_with(|| all.clone());
            if s.remove(shop) {
                n += 1;
            }
        };
        for t in self.access.values_mut() {
            drop(&mut t.shops);
        }
        for t in self.refresh.values_mut() {
            drop(&mut t.shops);
        }
        n
    }
}

/// The order's ship-by deadline, as the daemon reads it
/// (`order::Deadlines::ship_by`): the earliest of TikTok's three.
pub(crate) fn ship_by(o: &WireOrder) -> Option<i64> {
    [o.rts_sla_time, o.shipping_due_time, o.cancel_order_sla_time]
        .into_iter()
        .flatten()
        .min()
}

/// `secs` of simulated time in real seconds (at least one).
pub(crate) fn scaled(secs: i64, time_scale: f64) -> i64 {
    ((secs as f64 / time_scale.max(1e-9)).ceil() as i64).max(1)
}

/// Shipping providers every delivery option offers.
pub(crate) const PROVIDERS: [(&str, &str); 3] = [
    ("6617675021119438849", "USPS"),
    ("6617675021119438850", "UPS"),
    ("6617675021119438851", "FedEx"),
];

/// A buyer's own reason key from TikTok's list (US): "no longer needed",
/// the unpaid or the to-ship variant.
fn buyer_cancel_reason(o: Option<&SimOrder>) -> &'static str {
    match o.map(|o| o.wire.status.as_str()) {
        Some("UNPAID") => "ecom_order_unpaid_canceled_reason_no_longer_needed",
        _ => "ecom_order_to_ship_canceled_reason_no_longer_needed",
    }
}

fn attach_package(o: &mut SimOrder) {
    o.wire.packages = vec![WirePackageRef {
        id: o.package_id.clone(),
    }];
    for li in &mut o.wire.line_items {
        li.package_id = Some(o.package_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(scale: f64, real: bool) -> World {
        let mut w = World::new(1, 1, scale, "at", "rt", 7 * DAY, 365 * DAY, 0.0, true, None);
        w.clock = SimClock::new(scale, real);
        w
    }

    #[test]
    fn on_the_real_clock_tiktok_durations_are_divided_by_the_scale() {
        let c = SimClock::new(3600.0, true);
        let real = real_now_ms() as f64 / 1000.0;
        assert!((c.now() - real).abs() < 1.0, "real time, not run ahead");
        assert_eq!(c.span(3600.0), 1.0);
        assert_eq!(c.span_secs(2 * DAY), 48);
        assert_eq!(c.span_secs(60), 1, "rounded up");
        assert_eq!(c.span_secs(-2 * DAY), -48);
        assert_eq!(c.span_secs(0), 0);
        // Simulated time: durations as TikTok has them, the clock ahead.
        let c = SimClock::new(3600.0, false);
        assert_eq!((c.span(3600.0), c.span_secs(2 * DAY)), (3600.0, 2 * DAY));
    }

    #[test]
    fn a_real_clock_orders_deadlines_are_real_times_a_client_can_keep() {
        let mut w = world(3600.0, true);
        let now = real_now_ms() / 1000;
        let items = [("sku-1".to_string(), 1)];
        let (id, _) = w.create_order(0, &items, TiktokStatus::AwaitingShipment, None);
        let o = &w.orders[&id].wire;
        // Paid an hour ago (a second here): ship by 2 days after payment
        // (48 s), TikTok cancels 7 days after (168 s).
        let rts = o.rts_sla_time.unwrap();
        assert!((now + 47..=now + 48).contains(&rts), "{rts} vs {now}");
        assert_eq!(ship_by(o), Some(rts));
        assert_eq!(o.shipping_due_time.unwrap() - rts, 120);
        // Shipped in time, then one shipped after its deadline.
        w.ship(&id, None, None);
        let (late, _) = w.create_order(0, &items, TiktokStatus::AwaitingShipment, Some(-5));
        w.ship(&late, None, None);
        let c = &w.deadlines;
        assert_eq!((c.shipped, c.shipped_late), (2, 1));
    }

    #[test]
    fn a_runs_ids_start_at_its_number() {
        let mut w = world(1.0, false);
        w.set_run(7);
        w.default_webhook_url = Some("http://127.0.0.1:9/hook".into());
        let (id, package) = w.create_order(0, &[("s".into(), 1)], TiktokStatus::Unpaid, None);
        assert_eq!(id, "5769000700000000001");
        assert_eq!(package, "1152000700000000001");
        assert_eq!(w.outbox[0].notification_id, "7300070000000000001");
        let mut first = world(1.0, false);
        first.set_run(6);
        let (id6, _) = first.create_order(0, &[("s".into(), 1)], TiktokStatus::Unpaid, None);
        assert_ne!(id, id6);
    }
}
