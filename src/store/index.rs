//! Secondary indexes and counters over the checkpoints, so lists, counts
//! and the deadline watcher read what they return instead of decoding
//! every order.
//!
//! They live in the `orders` tree itself, under the byte `0xFF` (no order
//! id starts with it: ids are UTF-8), and the commit writer derives them
//! from each checkpoint in the same sled batch as the checkpoint: sled
//! applies one tree's batch atomically, so after any crash the indexes and
//! counters describe exactly the checkpoints that survived.
//!
//! | key | value | what |
//! |---|---|---|
//! | `FF p` id | [`Projection`] | what the order's entries were made from |
//! | `FF L` lifecycle `0` id | | by lifecycle state |
//! | `FF T` TikTok status `0` id | | by TikTok status |
//! | `FF H` shop `0` id | | by shop |
//! | `FF K` sku `0` id | | by SKU |
//! | `FF Q` term `0` id | | search terms (lowercase): id, buyer id, email, name, tracking number, seller SKUs, tags |
//! | `FF B` ship-by (u64 BE, s) id | | unshipped orders by ship-by deadline |
//! | `FF A` respond-by (u64 BE, s) id | | buyer cancellations awaiting an answer, by TikTok's deadline |
//! | `FF E` finished (u64 BE, s) id | | finished orders (terminal, no workflow running) by their last update: what retention archives |
//! | `FF U` updated (u64 BE, hours) id | | every order by the hour of its last update (date ranges, the audit export since a time) |
//! | `FF R` received (u64 BE, hours) id | | every order by the hour it was received (date ranges) |
//! | `FF C l` lifecycle | u64 BE | orders per lifecycle state |
//! | `FF C s` shop `0` lifecycle | u64 BE | per shop and state |
//! | `FF C d` day (`YYYY-MM-DD`, received) | u64 BE | orders received per day |
//! | `FF V` | version | the indexes are complete (absent or older: rebuilt at open) |
//!
//! Archiving an order ([`Batcher::archive`]) removes its entries and takes
//! it out of the counters of what is stored now (lifecycle, shop, SKU,
//! workflow), but not out of the history (received, fulfilled and late per
//! day, the fulfilment sketches): those count archived orders too, which
//! [`rebuild`] and [`check`] read from the archive's own tree.
//!
//! The writer is the only writer of the `orders` tree, so it reads the
//! previous projection and counter values and writes the difference.
//! [`rebuild`] recomputes everything from the checkpoints
//! (`orderflow admin reindex`); [`check`] compares (`orderflow admin
//! check-index`, run by the crash tests after every SIGKILL).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use super::{codec, Error, OrderRecord};
use crate::lifecycle::Lifecycle;

pub const PREFIX: u8 = 0xFF;
const HOUR_MS: i64 = 3_600_000;
const VERSION_KEY: &[u8] = &[PREFIX, b'V'];
const VERSION: u8 = 2;

/// The part of a checkpoint the indexes are made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    pub lifecycle: String,
    pub tiktok_status: Option<String>,
    pub shop: String,
    pub received_ms: i64,
    /// Unshipped orders only (the at-risk and late lists).
    pub ship_by: Option<i64>,
    /// A buyer's cancellation awaiting the seller's answer: its deadline.
    pub respond_by: Option<i64>,
    pub skus: BTreeSet<String>,
    pub terms: BTreeSet<String>,
    /// Once TikTok took the ship call: what the stats count.
    pub fulfilled: Option<Fulfilled>,
    /// The workflow (`name@version`) while its instance still runs.
    pub running: Option<String>,
    /// A finished order (terminal lifecycle, no workflow running): its
    /// last update, Unix seconds.
    #[serde(default)]
    pub finished: Option<i64>,
    /// The hour (since the epoch) of its last update: coarse, so a busy
    /// order moves in this index at most once an hour.
    #[serde(default)]
    pub updated_h: i64,
}

/// An order's fulfilment, for the stats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfilled {
    /// UTC day of the ship call.
    pub day: String,
    /// Receipt → ship call, seconds.
    pub receipt_s: f64,
    /// Eligible to ship → ship call, seconds (the SLA clock).
    pub eligible_s: Option<f64>,
    /// TikTok took the ship call after the ship-by deadline.
    pub late: bool,
}

impl Eq for Fulfilled {}

/// Lowercase words of `s` worth finding an order by (2 characters or more).
fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .map(|w| w.trim().to_lowercase().replace('\0', ""))
        .filter(|w| w.chars().count() >= 2)
}

impl Projection {
    pub fn of(r: &OrderRecord) -> Projection {
        let mut p = Projection {
            lifecycle: r.lifecycle.as_str().to_string(),
            shop: r.shop_id.clone(),
            received_ms: r.received_ms,
            ..Default::default()
        };
        p.terms.extend(words(&r.order_id));
        if let (Some(k), Some(i)) = (&r.workflow, &r.instance) {
            if !i.is_terminal() {
                p.running = Some(k.clone());
            }
        }
        if let Some(f) = r.fulfillment_ms {
            p.fulfilled = Some(Fulfilled {
                day: day(f),
                receipt_s: (f - r.received_ms).max(0) as f64 / 1000.0,
                eligible_s: r.eligible_ms.map(|e| (f - e).max(0) as f64 / 1000.0),
                late: r
                    .order
                    .as_ref()
                    .and_then(|o| o.deadlines.ship_by())
                    .is_some_and(|due| f / 1000 > due),
            });
        }
        if r.lifecycle.is_terminal() && p.running.is_none() {
            p.finished = Some(r.updated_ms / 1000);
        }
        p.updated_h = r.updated_ms.max(0) / HOUR_MS;
        if let Some(o) = &r.order {
            p.tiktok_status = Some(o.status.as_str().to_string());
            if crate::runtime::report::unshipped(r) {
                p.ship_by = o.deadlines.ship_by();
            }
            if let Some(req) = &o.cancel_request {
                if o.buyer_cancel_requested
                    && !r.lifecycle.is_terminal()
                    && r.answer_for(&req.cancel_id)
                        .is_some_and(super::AnswerState::needs_operator)
                {
                    p.respond_by = req.respond_by;
                }
            }
            for li in &o.line_items {
                p.skus.insert(li.sku_id.clone());
                p.terms.extend(words(&li.seller_sku));
            }
            for s in [&o.buyer_user_id, &o.buyer_email] {
                p.terms.extend(words(s));
            }
            if let Some(a) = &o.recipient {
                p.terms.extend(words(&a.name));
            }
            if let Some(t) = &o.tracking_number {
                p.terms.extend(words(t));
            }
            for t in &o.tags {
                p.terms.extend(words(t));
            }
        }
        p
    }

    /// Every index key of the order (not its projection or counters).
    fn entries(&self, id: &str) -> BTreeSet<Vec<u8>> {
        let mut out = BTreeSet::new();
        out.insert(named(b'L', &self.lifecycle, id));
        if let Some(s) = &self.tiktok_status {
            out.insert(named(b'T', s, id));
        }
        out.insert(named(b'H', &self.shop, id));
        for s in &self.skus {
            out.insert(named(b'K', s, id));
        }
        for t in &self.terms {
            out.insert(named(b'Q', t, id));
        }
        if let Some(t) = self.ship_by {
            out.insert(timed(b'B', t, id));
        }
        if let Some(t) = self.respond_by {
            out.insert(timed(b'A', t, id));
        }
        if let Some(t) = self.finished {
            out.insert(timed(b'E', t, id));
        }
        out.insert(timed(b'U', self.updated_h, id));
        out.insert(timed(b'R', self.received_ms.max(0) / HOUR_MS, id));
        out
    }

    /// The counters the order adds one to.
    fn counters(&self) -> Vec<Vec<u8>> {
        let mut out = vec![
            counter(&[b"l", self.lifecycle.as_bytes()]),
            counter(&[b"s", self.shop.as_bytes(), b"\0", self.lifecycle.as_bytes()]),
            counter(&[b"d", day(self.received_ms).as_bytes()]),
        ];
        for s in &self.skus {
            out.push(counter(&[b"k", s.as_bytes()]));
        }
        if let Some(w) = &self.running {
            out.push(counter(&[b"w", w.as_bytes()]));
        }
        if let Some(f) = &self.fulfilled {
            out.push(counter(&[b"f", f.day.as_bytes()]));
            if f.late {
                out.push(counter(&[b"x", f.day.as_bytes()]));
            }
        }
        out
    }

    /// The sketches the order's fulfilment times go to: `(key, seconds)`.
    fn samples(&self) -> Vec<(Vec<u8>, f64)> {
        samples(self.fulfilled.as_ref())
    }
}

fn samples(f: Option<&Fulfilled>) -> Vec<(Vec<u8>, f64)> {
    let Some(f) = f else {
        return Vec::new();
    };
    let mut out = vec![(sketch_key(b'r', &f.day), f.receipt_s)];
    if let Some(e) = f.eligible_s {
        out.push((sketch_key(b'e', &f.day), e));
    }
    out
}

/// The history counters an order adds one to (received per day; shipped
/// and late per day): kept when it is archived.
fn history_counters(received_ms: i64, f: Option<&Fulfilled>) -> Vec<Vec<u8>> {
    let mut out = vec![counter(&[b"d", day(received_ms).as_bytes()])];
    if let Some(f) = f {
        out.push(counter(&[b"f", f.day.as_bytes()]));
        if f.late {
            out.push(counter(&[b"x", f.day.as_bytes()]));
        }
    }
    out
}

fn is_history(counter_key: &[u8]) -> bool {
    matches!(counter_key.get(2), Some(b'd' | b'f' | b'x'))
}

/// What an archived order still counts for: the history counters and the
/// fulfilment sketches (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub received_ms: i64,
    pub fulfilled: Option<Fulfilled>,
}

impl History {
    pub fn of(p: &Projection) -> History {
        History {
            received_ms: p.received_ms,
            fulfilled: p.fulfilled.clone(),
        }
    }
}

fn named(kind: u8, value: &str, id: &str) -> Vec<u8> {
    let mut k = vec![PREFIX, kind];
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn timed(kind: u8, secs: i64, id: &str) -> Vec<u8> {
    let mut k = vec![PREFIX, kind];
    k.extend_from_slice(&(secs.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn counter(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![PREFIX, b'C'];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn sketch_key(kind: u8, day: &str) -> Vec<u8> {
    let mut k = vec![PREFIX, b'S', kind];
    k.extend_from_slice(day.as_bytes());
    k
}

fn load_sketch(tree: &sled::Tree, k: &[u8]) -> Result<DDSketch, Error> {
    Ok(match tree.get(k)? {
        Some(v) => codec::decode(&v)?,
        None => DDSketch::new(SketchConfig::defaults()),
    })
}

fn projection_key(id: &str) -> Vec<u8> {
    let mut k = vec![PREFIX, b'p'];
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn read_u64(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn load(tree: &sled::Tree, id: &str) -> Result<Option<Projection>, Error> {
    match tree.get(projection_key(id))? {
        None => Ok(None),
        Some(v) => Ok(Some(codec::decode(&v)?)),
    }
}

/// The index part of one group commit: the writer hands it every
/// checkpoint written and every order removed, into the same batch.
#[derive(Default)]
pub struct Batcher {
    /// Projections as this batch leaves them.
    projections: HashMap<String, Option<Projection>>,
    deltas: BTreeMap<Vec<u8>, i64>,
    /// Fulfilment times to add, per day's sketch. A sketch takes no
    /// removal: a time is added once, when the order is first fulfilled.
    samples: BTreeMap<Vec<u8>, Vec<f64>>,
}

impl Batcher {
    /// The order `id` now has `new` (None: removed).
    pub fn index(
        &mut self,
        tree: &sled::Tree,
        b: &mut sled::Batch,
        id: &str,
        new: Option<Projection>,
    ) -> Result<(), Error> {
        let old = match self.projections.get(id) {
            Some(p) => p.clone(),
            None => load(tree, id)?,
        };
        if old == new {
            return Ok(());
        }
        let before = old.as_ref().map(|p| p.entries(id)).unwrap_or_default();
        let after = new.as_ref().map(|p| p.entries(id)).unwrap_or_default();
        for k in before.difference(&after) {
            b.remove(k.as_slice());
        }
        for k in after.difference(&before) {
            b.insert(k.as_slice(), &[] as &[u8]);
        }
        for (p, d) in [(&old, -1), (&new, 1)] {
            if let Some(p) = p {
                for c in p.counters() {
                    *self.deltas.entry(c).or_default() += d;
                }
            }
        }
        if let (Some(n), false) = (&new, old.as_ref().is_some_and(|o| o.fulfilled.is_some())) {
            for (k, v) in n.samples() {
                self.samples.entry(k).or_default().push(v);
            }
        }
        match &new {
            Some(p) => b.insert(projection_key(id), codec::encode(p)?),
            None => b.remove(projection_key(id)),
        }
        self.projections.insert(id.to_string(), new);
        Ok(())
    }

    /// The order `id` leaves for the archive: its entries and projection go,
    /// and it leaves every counter but the history ones (see the module
    /// doc).
    pub fn archive(
        &mut self,
        tree: &sled::Tree,
        b: &mut sled::Batch,
        id: &str,
    ) -> Result<(), Error> {
        let old = match self.projections.get(id) {
            Some(p) => p.clone(),
            None => load(tree, id)?,
        };
        let Some(old) = old else {
            return Ok(());
        };
        for k in old.entries(id) {
            b.remove(k.as_slice());
        }
        for c in old.counters() {
            if !is_history(&c) {
                *self.deltas.entry(c).or_default() -= 1;
            }
        }
        b.remove(projection_key(id));
        self.projections.insert(id.to_string(), None);
        Ok(())
    }

    /// Writes the counters the batch changed.
    pub fn finish(self, tree: &sled::Tree, b: &mut sled::Batch) -> Result<(), Error> {
        for (k, values) in self.samples {
            let mut sk = load_sketch(tree, &k)?;
            for v in values {
                sk.add(v);
            }
            b.insert(k, codec::encode(&sk)?);
        }
        for (k, d) in self.deltas {
            if d == 0 {
                continue;
            }
            let cur = tree.get(&k)?.map(|v| read_u64(&v)).unwrap_or(0) as i64;
            let next = (cur + d).max(0) as u64;
            if next == 0 {
                b.remove(k);
            } else {
                b.insert(k, &next.to_be_bytes());
            }
        }
        Ok(())
    }
}

/// Whether `key` of the `orders` tree is an index entry, not a checkpoint.
pub fn is_index_key(key: &[u8]) -> bool {
    key.first() == Some(&PREFIX)
}

/// Whether the indexes are complete.
pub fn present(tree: &sled::Tree) -> Result<bool, Error> {
    Ok(tree
        .get(VERSION_KEY)?
        .is_some_and(|v| v.as_ref() == [VERSION]))
}

/// Recomputes every index entry and counter from the checkpoints (the
/// store closed, or before its writer starts). Returns the orders indexed.
pub fn rebuild(tree: &sled::Tree, archived: &sled::Tree) -> Result<u64, Error> {
    // Incomplete from here on, until the end.
    tree.remove(VERSION_KEY)?;
    tree.flush()?;
    let mut b = sled::Batch::default();
    for k in tree.range(vec![PREFIX]..).keys() {
        b.remove(k?);
    }
    tree.apply_batch(b)?;
    let mut counters: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut sketches: BTreeMap<Vec<u8>, DDSketch> = BTreeMap::new();
    let (mut n, mut b, mut pending) = (0u64, sled::Batch::default(), 0usize);
    for kv in tree.range(..vec![PREFIX]) {
        let (k, v) = kv?;
        let r: OrderRecord = codec::decode(&v)?;
        let id = String::from_utf8_lossy(&k).into_owned();
        let p = Projection::of(&r);
        for e in p.entries(&id) {
            b.insert(e, &[] as &[u8]);
            pending += 1;
        }
        for c in p.counters() {
            *counters.entry(c).or_default() += 1;
        }
        for (k, v) in p.samples() {
            sketches
                .entry(k)
                .or_insert_with(|| DDSketch::new(SketchConfig::defaults()))
                .add(v);
        }
        b.insert(projection_key(&id), codec::encode(&p)?);
        n += 1;
        if pending >= 50_000 {
            tree.apply_batch(std::mem::take(&mut b))?;
            pending = 0;
        }
    }
    for h in archived_history(tree, archived)? {
        for c in history_counters(h.received_ms, h.fulfilled.as_ref()) {
            *counters.entry(c).or_default() += 1;
        }
        for (k, v) in samples(h.fulfilled.as_ref()) {
            sketches
                .entry(k)
                .or_insert_with(|| DDSketch::new(SketchConfig::defaults()))
                .add(v);
        }
    }
    for (k, v) in counters {
        b.insert(k, &v.to_be_bytes());
    }
    for (k, sk) in sketches {
        b.insert(k, codec::encode(&sk)?);
    }
    tree.apply_batch(b)?;
    tree.flush()?;
    tree.insert(VERSION_KEY, &[VERSION])?;
    tree.flush()?;
    Ok(n)
}

/// Where the indexes disagree with the checkpoints (at most `limit`
/// findings; empty: they agree).
pub fn check(tree: &sled::Tree, archived: &sled::Tree, limit: usize) -> Result<Vec<String>, Error> {
    let mut bad = Vec::new();
    let mut note = |s: String| {
        if bad.len() < limit {
            bad.push(s);
        }
    };
    if !present(tree)? {
        note("the indexes are incomplete (no version key)".into());
    }
    let mut counters: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut ids = 0u64;
    for kv in tree.range(..vec![PREFIX]) {
        let (k, v) = kv?;
        let r: OrderRecord = codec::decode(&v)?;
        let id = String::from_utf8_lossy(&k).into_owned();
        let p = Projection::of(&r);
        if load(tree, &id)?.as_ref() != Some(&p) {
            note(format!(
                "{id}: its stored projection differs from its checkpoint"
            ));
        }
        for e in p.entries(&id) {
            if !tree.contains_key(&e)? {
                note(format!("{id}: index entry {} is missing", show(&e)));
            }
        }
        for c in p.counters() {
            *counters.entry(c).or_default() += 1;
        }
        ids += 1;
    }
    for h in archived_history(tree, archived)? {
        for c in history_counters(h.received_ms, h.fulfilled.as_ref()) {
            *counters.entry(c).or_default() += 1;
        }
    }
    // Every stored entry belongs to its order's projection.
    let mut projections = 0u64;
    let mut sketched: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let shipped: BTreeMap<Vec<u8>, u64> = counters
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&[PREFIX, b'C', b'f'][..])
                .map(|d| (d.to_vec(), *v))
        })
        .collect();
    for kv in tree.range(vec![PREFIX]..) {
        let (k, v) = kv?;
        match k.get(1) {
            Some(b'p') => projections += 1,
            Some(b'C') => {
                let want = counters.remove(k.as_ref()).unwrap_or(0);
                if read_u64(&v) != want {
                    note(format!(
                        "counter {} is {}, the checkpoints say {want}",
                        show(&k),
                        read_u64(&v)
                    ));
                }
            }
            Some(b'V') => {}
            // A sketch holds one time per order first fulfilled that day.
            Some(b'S') => {
                let sk: DDSketch = codec::decode(&v)?;
                if k.get(2) == Some(&b'r') {
                    *sketched.entry(k[3..].to_vec()).or_default() += sk.count() as u64;
                }
            }
            Some(_) => {
                let Some(id) = entry_id(&k) else {
                    note(format!("unreadable index key {}", show(&k)));
                    continue;
                };
                let owned = load(tree, &id)?.is_some_and(|p| p.entries(&id).contains(k.as_ref()));
                if !owned {
                    note(format!("stray index entry {}", show(&k)));
                }
            }
            None => note("an empty index key".into()),
        }
    }
    for (k, want) in counters {
        note(format!(
            "counter {} is missing, the checkpoints say {want}",
            show(&k)
        ));
    }
    if projections != ids {
        note(format!("{projections} projections for {ids} orders"));
    }
    if sketched != shipped {
        note(format!(
            "fulfilment sketches hold {} times, {} orders were shipped",
            sketched.values().sum::<u64>(),
            shipped.values().sum::<u64>()
        ));
    }
    Ok(bad)
}

/// The history of every archived order that is not also stored hot (an
/// order archived again after a late change, or one whose archiving a
/// crash interrupted, counts once, as the hot one).
fn archived_history(tree: &sled::Tree, archived: &sled::Tree) -> Result<Vec<History>, Error> {
    let mut out = Vec::new();
    // Order ids are UTF-8, whose bytes never reach 0xF8; the archive
    // tree's other keys start above it.
    for kv in archived.range(..vec![0xF8u8]) {
        let (k, v) = kv?;
        if tree.contains_key(&k)? {
            continue;
        }
        let e: crate::store::Archived = codec::decode(&v)?;
        out.push(e.history);
    }
    Ok(out)
}

/// Finished orders last updated before `before_s` (Unix seconds), after
/// the index key `after` (exclusive), at most `limit`: `(key, id)`.
pub fn finished_before(
    tree: &sled::Tree,
    before_s: i64,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, String)>, Error> {
    let mut start = vec![PREFIX, b'E'];
    let end = {
        let mut e = start.clone();
        e.extend_from_slice(&(before_s.max(0) as u64).to_be_bytes());
        e
    };
    if let Some(a) = after {
        start = a.to_vec();
        start.push(0);
    }
    let mut out = Vec::new();
    for k in tree.range(start..end).keys() {
        let k = k?;
        if let Some(id) = entry_id(&k) {
            out.push((k.to_vec(), id));
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(&k[1..]).replace('\0', "/")
}

/// The order id at the end of an index key.
fn entry_id(k: &[u8]) -> Option<String> {
    let rest = match k.get(1)? {
        b'B' | b'A' | b'E' | b'U' | b'R' => k.get(10..)?,
        _ => {
            let body = k.get(2..)?;
            &body[body.iter().position(|&b| b == 0)? + 1..]
        }
    };
    String::from_utf8(rest.to_vec()).ok()
}

// ---------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------

/// Which time an order list's date range is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Its last update (`FF U`).
    Updated,
    /// When it was received (`FF R`).
    Received,
}

/// Ids of the orders whose time (`when`, to the hour) may fall in
/// `[from_ms, to_ms]` (either end open): a superset by at most the hour at
/// each end, which the caller's exact filter trims.
pub fn in_hours(
    tree: &sled::Tree,
    when: When,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<String>, Error> {
    let kind = match when {
        When::Updated => b'U',
        When::Received => b'R',
    };
    let start = timed(kind, from_ms.unwrap_or(0).max(0) / HOUR_MS, "");
    let end = match to_ms {
        Some(t) => timed(kind, t.max(0) / HOUR_MS + 1, ""),
        None => vec![PREFIX, kind + 1],
    };
    let mut out = Vec::new();
    for k in tree.range(start..end).keys() {
        let k = k?;
        out.push(String::from_utf8_lossy(&k[10..]).into_owned());
    }
    Ok(out)
}

/// Order ids by the hour they were received or last updated, then by id:
/// newest hour first (ids descending) with `newest_first`. With `after`
/// (an hour and an id), only what comes after it in that order. Each item
/// is read as it is needed, so a page costs its own orders however many
/// orders share an hour.
pub fn by_hour<'a>(
    tree: &'a sled::Tree,
    when: When,
    after: Option<(i64, &str)>,
    newest_first: bool,
) -> impl Iterator<Item = Result<(i64, String), Error>> + use<'a> {
    let kind = match when {
        When::Updated => b'U',
        When::Received => b'R',
    };
    let lo = timed(kind, 0, "");
    let hi = vec![PREFIX, kind + 1];
    let keys: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = match (after, newest_first) {
        (Some((h, id)), true) => Box::new(
            tree.range(lo..timed(kind, h, id))
                .rev()
                .map(|kv| kv.map(|(k, _)| k)),
        ),
        (None, true) => Box::new(tree.range(lo..hi).rev().map(|kv| kv.map(|(k, _)| k))),
        (Some((h, id)), false) => {
            let mut start = timed(kind, h, id);
            start.push(0);
            Box::new(tree.range(start..hi).keys())
        }
        (None, false) => Box::new(tree.range(lo..hi).keys()),
    };
    keys.map(|k| {
        let k = k?;
        let hour = k
            .get(2..10)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, |b| u64::from_be_bytes(b) as i64);
        Ok((hour, String::from_utf8_lossy(&k[10..]).into_owned()))
    })
}

/// The hour of `ms`, as the hour indexes key it.
pub fn hour_of(ms: i64) -> i64 {
    ms.max(0) / HOUR_MS
}

/// The indexes a list can walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Lifecycle,
    TiktokStatus,
    Shop,
    Sku,
}

impl By {
    fn kind(self) -> u8 {
        match self {
            By::Lifecycle => b'L',
            By::TiktokStatus => b'T',
            By::Shop => b'H',
            By::Sku => b'K',
        }
    }
}

/// Order ids with `value` in index `by`, in id order, after `after`.
pub fn ids<'a>(
    tree: &'a sled::Tree,
    by: By,
    value: &str,
    after: Option<&str>,
) -> impl Iterator<Item = Result<String, Error>> + 'a {
    let prefix = named(by.kind(), value, "");
    let start = match after {
        Some(a) => {
            let mut k = named(by.kind(), value, a);
            k.push(0);
            k
        }
        None => prefix.clone(),
    };
    let n = prefix.len();
    tree.range(start..)
        .keys()
        .take_while(move |k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
        .map(move |k| Ok(String::from_utf8_lossy(&k?[n..]).into_owned()))
}

/// Order ids with a search term starting with `text` (lowercase), sorted,
/// at most `cap` of them.
pub fn search(tree: &sled::Tree, text: &str, cap: usize) -> Result<Vec<String>, Error> {
    let text = text.trim().to_lowercase();
    let mut prefix = vec![PREFIX, b'Q'];
    prefix.extend_from_slice(text.as_bytes());
    let mut out = BTreeSet::new();
    for k in tree.scan_prefix(&prefix).keys() {
        let k = k?;
        if let Some(id) = entry_id(&k) {
            out.insert(id);
            if out.len() >= cap {
                break;
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Unshipped orders whose ship-by is before `until_s`, earliest first:
/// `(ship_by, id)`.
pub fn ship_by_before(
    tree: &sled::Tree,
    until_s: i64,
) -> impl Iterator<Item = Result<(i64, String), Error>> + '_ {
    timed_before(tree, b'B', until_s)
}

/// Buyer cancellations awaiting an answer whose deadline is before
/// `until_s`: `(respond_by, id)`.
pub fn respond_by_before(
    tree: &sled::Tree,
    until_s: i64,
) -> impl Iterator<Item = Result<(i64, String), Error>> + '_ {
    timed_before(tree, b'A', until_s)
}

fn timed_before(
    tree: &sled::Tree,
    kind: u8,
    until_s: i64,
) -> impl Iterator<Item = Result<(i64, String), Error>> + '_ {
    let end = timed(kind, until_s, "");
    tree.range(vec![PREFIX, kind]..end).keys().map(|k| {
        let k = k?;
        let t = k.get(2..10).map(read_u64).unwrap_or(0) as i64;
        Ok((t, String::from_utf8_lossy(&k[10..]).into_owned()))
    })
}

/// Orders per lifecycle state.
pub fn by_lifecycle(tree: &sled::Tree) -> Result<BTreeMap<&'static str, u64>, Error> {
    let mut out = BTreeMap::new();
    for l in Lifecycle::ALL {
        let v = tree.get(counter(&[b"l", l.as_str().as_bytes()]))?;
        out.insert(l.as_str(), v.map(|v| read_u64(&v)).unwrap_or(0));
    }
    Ok(out)
}

/// Orders received per day (`YYYY-MM-DD`), the last `days` days that have any.
pub fn per_day(tree: &sled::Tree, days: usize) -> Result<BTreeMap<String, u64>, Error> {
    let prefix = counter(&[b"d"]);
    let mut out = BTreeMap::new();
    for kv in tree.scan_prefix(&prefix).rev().take(days) {
        let (k, v) = kv?;
        out.insert(
            String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
            read_u64(&v),
        );
    }
    Ok(out)
}

/// The stats' figures over every day: fulfilment-time sketches
/// (receipt → ship call, eligible → ship call), orders shipped and
/// shipped late, and orders per SKU.
pub struct Fulfilment {
    pub receipt: DDSketch,
    pub eligible: DDSketch,
    pub shipped: u64,
    pub late: u64,
    pub per_sku: BTreeMap<String, u64>,
}

pub fn fulfilment(tree: &sled::Tree) -> Result<Fulfilment, Error> {
    let mut f = Fulfilment {
        receipt: DDSketch::new(SketchConfig::defaults()),
        eligible: DDSketch::new(SketchConfig::defaults()),
        shipped: 0,
        late: 0,
        per_sku: BTreeMap::new(),
    };
    for kv in tree.scan_prefix([PREFIX, b'S']) {
        let (k, v) = kv?;
        let sk: DDSketch = codec::decode(&v)?;
        let into = if k.get(2) == Some(&b'r') {
            &mut f.receipt
        } else {
            &mut f.eligible
        };
        // Same configuration everywhere: merging cannot fail.
        let _ = into.merge(&sk);
    }
    for (kind, into) in [(b'f', &mut f.shipped), (b'x', &mut f.late)] {
        for kv in tree.scan_prefix([PREFIX, b'C', kind]) {
            *into += read_u64(&kv?.1);
        }
    }
    let prefix = [PREFIX, b'C', b'k'];
    for kv in tree.scan_prefix(prefix) {
        let (k, v) = kv?;
        f.per_sku.insert(
            String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
            read_u64(&v),
        );
    }
    Ok(f)
}

/// Orders whose workflow instance still runs, per `name@version`.
pub fn running_per_workflow(tree: &sled::Tree) -> Result<HashMap<String, u64>, Error> {
    let prefix = [PREFIX, b'C', b'w'];
    let mut out = HashMap::new();
    for kv in tree.scan_prefix(prefix) {
        let (k, v) = kv?;
        out.insert(
            String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
            read_u64(&v),
        );
    }
    Ok(out)
}

/// Ensures the indexes are complete (rebuilding them from the checkpoints
/// if an older version left none): at open, before the writer starts.
pub fn ensure(tree: &sled::Tree, archived: &sled::Tree) -> Result<(), Error> {
    if present(tree)? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let n = rebuild(tree, archived)?;
    if n > 0 {
        tracing::info!(
            orders = n,
            took_ms = started.elapsed().as_millis() as u64,
            "Order indexes built"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Op, Store, Tree};

    fn checkpoint(r: &OrderRecord) -> Vec<Op> {
        vec![
            Op::Put {
                tree: Tree::Orders,
                key: r.order_id.as_bytes().to_vec(),
                value: codec::encode(r).unwrap(),
            },
            Op::Index {
                order_id: r.order_id.clone(),
                projection: Box::new(Projection::of(r)),
            },
        ]
    }

    #[test]
    fn indexes_follow_the_checkpoints_and_a_rebuild_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20, 8).unwrap();
        let tree = &store.trees.orders;
        let mut a = OrderRecord::new("577000000000000001", "shop-1", 1_764_072_000_000);
        let mut b = OrderRecord::new("577000000000000002", "shop-2", 1_764_158_400_000);
        // Both in one group commit, then `a` twice in another.
        let mut ops = checkpoint(&a);
        ops.extend(checkpoint(&b));
        store.committer.commit_blocking(ops).unwrap();
        a.lifecycle = Lifecycle::Exception;
        let mut ops = checkpoint(&a);
        a.lifecycle = Lifecycle::OnHold;
        ops.extend(checkpoint(&a));
        store.committer.commit_blocking(ops).unwrap();
        assert_eq!(
            check(tree, &store.trees.archive, 10).unwrap(),
            Vec::<String>::new()
        );
        let counts = by_lifecycle(tree).unwrap();
        assert_eq!(
            (counts["on_hold"], counts["pending"], counts["exception"]),
            (1, 1, 0)
        );
        let ids = |by, v| {
            ids(tree, by, v, None)
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(ids(By::Lifecycle, "on_hold"), vec![a.order_id.clone()]);
        assert_eq!(ids(By::Shop, "shop-2"), vec![b.order_id.clone()]);
        assert_eq!(search(tree, "5770000000000000", 10).unwrap().len(), 2);
        assert_eq!(per_day(tree, 10).unwrap().values().sum::<u64>(), 2);
        // Removed: its entries and counts go with it.
        store
            .committer
            .commit_blocking(vec![Op::Del {
                tree: Tree::Orders,
                key: b.order_id.as_bytes().to_vec(),
            }])
            .unwrap();
        b.lifecycle = Lifecycle::Pending;
        assert!(ids(By::Shop, "shop-2").is_empty());
        assert_eq!(
            check(tree, &store.trees.archive, 10).unwrap(),
            Vec::<String>::new()
        );
        // A rebuild from the checkpoints writes exactly the same keys.
        let before: Vec<_> = tree
            .range(vec![PREFIX]..)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rebuild(tree, &store.trees.archive).unwrap(), 1);
        let after: Vec<_> = tree
            .range(vec![PREFIX]..)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(before, after);
        // The check finds a stray entry, a missing one and a wrong count.
        tree.insert(named(b'L', "cancelled", &b.order_id), &[] as &[u8])
            .unwrap();
        tree.remove(named(b'H', "shop-1", &a.order_id)).unwrap();
        tree.insert(counter(&[b"l", b"on_hold"]), &7u64.to_be_bytes())
            .unwrap();
        let bad = check(tree, &store.trees.archive, 10).unwrap();
        assert_eq!(bad.len(), 3, "{bad:?}");
        rebuild(tree, &store.trees.archive).unwrap();
        assert!(check(tree, &store.trees.archive, 10).unwrap().is_empty());
    }

    #[test]
    fn the_deadline_indexes_hold_unshipped_orders_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20, 8).unwrap();
        let tree = &store.trees.orders;
        let mut r = OrderRecord::new("o1", "s", 0);
        let w: crate::tiktok::dto::WireOrder = serde_json::from_value(serde_json::json!({
            "id": "o1", "status": "AWAITING_SHIPMENT", "rts_sla_time": 1000,
            "buyer_email": "Jo@Example.com", "line_items": [{"id": "1", "sku_id": "S", "seller_sku": "MUG-RED"}]
        }))
        .unwrap();
        let o = crate::order::Order::from_wire("s", &w).unwrap();
        assert_eq!(o.deadlines.rts_sla_time, Some(1_000));
        r.order = Some(o);
        store.committer.commit_blocking(checkpoint(&r)).unwrap();
        // Found by email and by seller SKU, whatever the case.
        assert_eq!(search(tree, "jo@ex", 10).unwrap(), vec!["o1"]);
        assert_eq!(search(tree, "MUG", 10).unwrap(), vec!["o1"]);
        let due: Vec<_> = ship_by_before(tree, 2_000)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(due, vec![(1_000, "o1".to_string())]);
        assert!(ship_by_before(tree, 1_000).next().is_none());
        r.fulfillment_ms = Some(1_500_000);
        store.committer.commit_blocking(checkpoint(&r)).unwrap();
        assert!(ship_by_before(tree, 2_000).next().is_none());
        // Shipped 1,500 s after receipt, past its ship-by (1,000 s): in the
        // day's sketch (1% relative accuracy) and the late count, once,
        // however often the checkpoint is written again.
        store.committer.commit_blocking(checkpoint(&r)).unwrap();
        let f = fulfilment(tree).unwrap();
        assert_eq!((f.shipped, f.late, f.receipt.count()), (1, 1, 1));
        let p50 = f.receipt.quantile(0.5).unwrap().unwrap();
        assert!((p50 - 1_500.0).abs() <= 15.0, "{p50}");
        assert_eq!(f.per_sku.get("S"), Some(&1));
        assert!(check(tree, &store.trees.archive, 10).unwrap().is_empty());
    }

    #[test]
    fn date_ranges_read_the_hour_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::open(dir.path()).unwrap().open_tree("orders").unwrap();
        let mut b = sled::Batch::default();
        let hour = 3_600_000i64;
        for (id, received, updated) in [("a", 10, 20), ("b", 11, 11), ("c", 30, 31)] {
            let p = Projection {
                received_ms: received * hour + 5,
                updated_h: updated,
                ..Default::default()
            };
            for e in p.entries(id) {
                b.insert(e, &[] as &[u8]);
            }
        }
        tree.apply_batch(b).unwrap();
        let got = |w, f: Option<i64>, t: Option<i64>| {
            let mut v = in_hours(&tree, w, f.map(|h| h * hour), t.map(|h| h * hour)).unwrap();
            v.sort();
            v
        };
        assert_eq!(got(When::Received, Some(10), Some(11)), ["a", "b"]);
        assert_eq!(got(When::Received, Some(12), None), ["c"]);
        assert_eq!(got(When::Updated, None, Some(19)), ["b"]);
        assert_eq!(got(When::Updated, Some(20), None), ["a", "c"]);
    }
}
