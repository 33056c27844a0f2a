//! The durable store: sled trees, every value in a versioned envelope
//! ([`codec`]), every write group-committed ([`commit`]).
//!
//! One key per order holds its whole checkpoint ([`OrderRecord`]: the
//! order, its lifecycle, its workflow instance and the effects it has
//! started), so an order's state changes atomically. Around it:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `orders` | order id | [`OrderRecord`] (the checkpoint); under `0xFF`, its indexes and counters ([`index`]) |
//! | `inbox` | sequence (u64 BE) | [`InboxEvent`] received, not yet applied |
//! | `dedupe` | event id | sequence: duplicates are answered, not stored |
//! | `timers` | due ms (u64 BE) + order id + 0 + timer | [`TimerEntry`] |
//! | `running` | order id | empty: orders with work to resume after a crash |
//! | `audit` | order id + 0 + seq (u64 BE) | the [`AuditEntry`]s one checkpoint wrote, from `seq` on ([`encode_audit_group`]) |
//! | `definitions` | `name@version` | the workflow's YAML |
//! | `effects` | idempotency key | no longer written (see below) |
//! | `cursors` | name | polling cursors and other small state; `tenant`: the tenant, epoch and fence ([`crate::tenant`]) |
//! | `labels` | `o/`, `t/`, `a/`, `s/`, `d/` + … | each order's label, tracking → order, parcels in transit, labels per day (`crate::shipping::book`) |
//! | `push` | `k`; `s` + channel + 0 + SHA-256 of the endpoint | the Web Push (VAPID) key, sealed; the browsers subscribed to each web_push channel (`crate::notify::push`) |
//!
//! # The `effects` tree
//!
//! Earlier versions wrote every effect's result here, keyed by its
//! idempotency key, in the checkpoint that finished it. Nothing ever read
//! it: recovery re-issues what a checkpoint's `in_flight` still lists (the
//! same key, so the far side deduplicates), and a finished effect's result
//! lives on in the instance it was fed to. The write was a fifth of a
//! flow's sled writes, so it is gone; the tree is still opened, and data an
//! older version left in it is kept and ignored.
//!
//! # A full disk
//!
//! Writes are refused, not lost: below `store.min_free_bytes` of free
//! space the commit writer refuses every batch untouched
//! ([`Error::DiskFull`]), intake answers 503, `/readyz` says "degraded" and
//! `orderflow_store_writable` is 0; the first batch after space returns is
//! written as usual. If sled hits ENOSPC (or any I/O error) itself, its
//! database refuses all writes until it is reopened, so the store turns
//! failed ([`Error::Failed`]) and the daemon exits with status 75 to be
//! restarted. Details in [`space`].

pub mod backup;
pub mod codec;
pub mod commit;
pub mod index;
pub mod space;
pub mod transfer;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use commit::{CommitStats, Committer, Op};

use crate::lifecycle::Lifecycle;
use crate::order::Order;
use crate::workflow::interpreter::{EffectId, Instance, TimerId};
use crate::workflow::value::Data;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("sled: {0}")]
    Sled(String),
    #[error(transparent)]
    Codec(#[from] std::sync::Arc<codec::Error>),
    #[error("the commit thread has stopped")]
    Closed,
    #[error("disk nearly full: {free} bytes free, writes need at least {min}")]
    DiskFull { free: u64, min: u64 },
    #[error("the store failed a write and takes no more until the daemon restarts")]
    Failed,
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Sled(e.to_string())
    }
}

impl From<codec::Error> for Error {
    fn from(e: codec::Error) -> Self {
        Error::Codec(Arc::new(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    Orders,
    Inbox,
    Dedupe,
    Timers,
    Running,
    Audit,
    Definitions,
    /// Not written any more (see the module doc); opened so old data stays
    /// where it was.
    Effects,
    Cursors,
    /// What TikTok sent that orderflow could not act on, as received
    /// ([`Quarantined`]).
    Quarantine,
    /// Connected shops, their grants (tokens sealed) and authorization
    /// states (`crate::shops`).
    Shops,
    /// Each order's label (one per order: `crate::shipping::book`), the
    /// tracking number → order index, parcels still travelling and the
    /// day's printable labels.
    Labels,
    /// Orders moved to the archive files: where each one is ([`Archived`]),
    /// and the dedupe keys' expiry index (`crate::retention`).
    Archive,
    /// Bulk interventions: each job, its progress and results.
    Jobs,
    /// The console's people: users, their API tokens and sessions
    /// (`crate::people`).
    People,
    /// Workflow saves, by time: who saved which version over which
    /// (`crate::http::workflows`).
    History,
    /// Web Push: the VAPID key (sealed) and the browsers subscribed to
    /// each web_push channel (`crate::notify::push`).
    Push,
}

pub struct Trees {
    pub orders: sled::Tree,
    pub inbox: sled::Tree,
    pub dedupe: sled::Tree,
    pub timers: sled::Tree,
    pub running: sled::Tree,
    pub audit: sled::Tree,
    pub definitions: sled::Tree,
    pub effects: sled::Tree,
    pub cursors: sled::Tree,
    pub quarantine: sled::Tree,
    pub shops: sled::Tree,
    pub labels: sled::Tree,
    pub archive: sled::Tree,
    pub jobs: sled::Tree,
    pub people: sled::Tree,
    pub history: sled::Tree,
    pub push: sled::Tree,
}

impl Trees {
    pub fn get(&self, t: Tree) -> &sled::Tree {
        match t {
            Tree::Orders => &self.orders,
            Tree::Inbox => &self.inbox,
            Tree::Dedupe => &self.dedupe,
            Tree::Timers => &self.timers,
            Tree::Running => &self.running,
            Tree::Audit => &self.audit,
            Tree::Definitions => &self.definitions,
            Tree::Effects => &self.effects,
            Tree::Cursors => &self.cursors,
            Tree::Quarantine => &self.quarantine,
            Tree::Shops => &self.shops,
            Tree::Labels => &self.labels,
            Tree::Archive => &self.archive,
            Tree::Jobs => &self.jobs,
            Tree::People => &self.people,
            Tree::History => &self.history,
            Tree::Push => &self.push,
        }
    }
}

/// An effect the order has started and not yet seen finish: re-issued with
/// the same key after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedEffect {
    pub effect: EffectId,
    pub key: String,
    pub action: String,
    pub args: Data,
    pub attempt: u32,
    pub timeout_ms: Option<u64>,
    pub started_ms: i64,
}

/// A timer the order has armed, with the index key that finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmedTimer {
    pub timer: TimerId,
    pub due_ms: i64,
}

/// An order's checkpoint: everything about it, written atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: String,
    pub shop_id: String,
    pub order: Option<Order>,
    pub lifecycle: Lifecycle,
    /// `name@version` of the workflow the instance runs.
    pub workflow: Option<String>,
    pub instance: Option<Instance>,
    pub in_flight: Vec<StartedEffect>,
    pub timers: Vec<ArmedTimer>,
    /// The last audit entry's sequence number: entries are 1..=audit_seq.
    pub audit_seq: u64,
    pub received_ms: i64,
    pub updated_ms: i64,
    /// When TikTok took the ship / mark-shipped call (its success came
    /// back): until then the order is unshipped in the figures, at risk
    /// and late as its ship-by deadline says.
    pub fulfillment_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Lifecycle to return to when an operator releases a hold.
    pub held_from: Option<Lifecycle>,
    /// The operator's note on the order (e.g. about the address).
    pub note: Option<String>,
    /// Recent event ids, so a redelivered event is applied once.
    pub recent_events: Vec<String>,
    /// Workflow inputs that arrived while an operator held the order,
    /// replayed in order on release.
    pub deferred: Vec<crate::workflow::interpreter::Input>,
    // From store format V3 on (read as defaults from V1 values).
    /// Where the answer to the buyer's latest cancellation request stands:
    /// each request is answered once.
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub cancel_answer: Option<CancelAnswerState>,
    /// The order's returns, latest state of each (RETURN_STATUS_CHANGE).
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub returns: Vec<crate::runtime::event::ReturnUpdate>,
    // From store format V4 on.
    /// When the order became eligible to ship: received first in
    /// AWAITING_SHIPMENT (after payment and TikTok's buyer-cancel hold).
    /// The SLA clock starts here.
    #[serde(default, deserialize_with = "crate::store::codec::since_v4")]
    pub eligible_ms: Option<i64>,
}

/// The answer to one buyer cancellation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelAnswerState {
    pub cancel_id: String,
    pub state: AnswerState,
    /// Whether orderflow held the order for this request (the hold is
    /// released once TikTok takes the answer; no other hold is touched).
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnswerState {
    /// A person must approve or reject (alerted before TikTok's deadline).
    AwaitingOperator,
    /// Sent to TikTok (approve or reject).
    Sent { approve: bool },
    /// TikTok did not take the answer: a person must answer.
    Failed,
}

impl AnswerState {
    /// Whether a person still has to answer.
    pub fn needs_operator(self) -> bool {
        matches!(self, AnswerState::AwaitingOperator | AnswerState::Failed)
    }
}

impl OrderRecord {
    /// The pending request's answer state, if it is about `cancel_id`.
    /// The buyer's cancellation request TikTok flags as pending, with
    /// whether orderflow has already sent its answer.
    pub fn pending_cancel_request(&self) -> Option<(&crate::order::CancelRequest, bool)> {
        let req = self
            .order
            .as_ref()
            .filter(|o| o.buyer_cancel_requested)
            .and_then(|o| o.cancel_request.as_ref())?;
        let answered = matches!(
            self.answer_for(&req.cancel_id),
            Some(AnswerState::Sent { .. })
        );
        Some((req, answered))
    }

    pub fn answer_for(&self, cancel_id: &str) -> Option<AnswerState> {
        self.cancel_answer
            .as_ref()
            .filter(|a| a.cancel_id == cancel_id)
            .map(|a| a.state)
    }

    pub fn new(order_id: &str, shop_id: &str, now_ms: i64) -> OrderRecord {
        OrderRecord {
            order_id: order_id.to_string(),
            shop_id: shop_id.to_string(),
            order: None,
            lifecycle: Lifecycle::Pending,
            workflow: None,
            instance: None,
            in_flight: Vec::new(),
            timers: Vec::new(),
            audit_seq: 0,
            received_ms: now_ms,
            updated_ms: now_ms,
            fulfillment_ms: None,
            last_error: None,
            held_from: None,
            note: None,
            recent_events: Vec::new(),
            deferred: Vec::new(),
            cancel_answer: None,
            returns: Vec::new(),
            eligible_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// webhook, poll, workflow, operator, api, system.
    pub source: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerEntry {
    pub order_id: String,
    pub timer: TimerId,
    pub due_ms: i64,
}

/// Key prefixes of the quarantine tree: entries by arrival, and the keys
/// that make each arrival stored once.
const QUARANTINE_ENTRY: &[u8] = b"e";
const QUARANTINE_ONCE: &[u8] = b"o";
/// Entries waiting for their shop to be connected: `w shop \0 seq`.
const QUARANTINE_WAITING: &[u8] = b"w";

/// What TikTok sent that orderflow could not act on, kept as it came for
/// an operator: a signed webhook (TikTok accepts only 200 or 401, so it is
/// stored, never refused) or an order of a batch that did not decode (the
/// rest of the batch and the poll cursor move on without it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    pub received_ms: i64,
    /// Why it is here: `malformed` (not a webhook envelope), `unreadable`
    /// (a known topic whose data does not fit), `unknown_topic`,
    /// `unhandled` (a topic orderflow reads but does not act on yet),
    /// `handled` (acted on, kept as received: deauthorization and
    /// authorization-expiry notices), `shop_not_connected` (kept until the
    /// shop is connected, then replayed),
    /// `undecodable_order` (an order TikTok's API returned that could not
    /// be read).
    pub reason: String,
    pub kind: Option<i64>,
    pub shop_id: Option<String>,
    pub notification_id: Option<String>,
    /// The body as received (lossless for UTF-8; TikTok sends JSON).
    pub body: String,
}

/// Where an archived order is: the archive tree's value under its id
/// (`crate::retention`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archived {
    /// The archive file, relative to the data directory
    /// (`archive/YYYY-MM-DD.jsonl.gz`, the day it was received).
    pub file: String,
    /// Its gzip member: byte offset and length.
    pub offset: u64,
    pub len: u64,
    pub shop_id: String,
    pub lifecycle: String,
    /// Its last update before it was archived, Unix ms.
    pub updated_ms: i64,
    pub archived_ms: i64,
    /// What it still counts for in the stats.
    pub history: index::History,
}

/// A received event, stored before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEvent {
    pub seq: u64,
    pub event: crate::runtime::event::OrderEvent,
}

/// The database and its trees. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub db: sled::Db,
    pub trees: Arc<Trees>,
    pub committer: Committer,
    /// Whether writes can be taken (free space, sled's health).
    pub guard: Arc<space::DiskGuard>,
}

pub fn timer_key(order_id: &str, t: &TimerId, due_ms: i64) -> Vec<u8> {
    let mut k = (due_ms.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(order_id.as_bytes());
    k.push(0);
    k.extend_from_slice(format!("{}:{}:{:?}", t.step, t.visit, t.kind).as_bytes());
    k
}

/// The audit value of one checkpoint's entries: one sled write per
/// checkpoint, not one per entry (about a third of a step's writes). Keyed
/// by the first entry's `seq`, so a retry after a torn batch (which starts
/// from the same durable `audit_seq`) overwrites what the torn one left.
pub fn encode_audit_group(entries: &[AuditEntry]) -> Result<Vec<u8>, codec::Error> {
    codec::encode_version(codec::FORMAT_V2_AUDIT_GROUP, &entries)
}

/// The entries of one audit value: a group, or a single entry written
/// before groups existed.
pub fn decode_audit(bytes: &[u8]) -> Result<Vec<AuditEntry>, codec::Error> {
    match bytes.split_first() {
        Some((&codec::FORMAT_V2_AUDIT_GROUP, body)) => codec::decode_body(body),
        _ => Ok(vec![codec::decode(bytes)?]),
    }
}

pub fn audit_key(order_id: &str, seq: u64) -> Vec<u8> {
    let mut k = order_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Opens the store with the free-space check off (benches, tools).
    pub fn open(dir: &Path, cache_bytes: u64, max_batch: usize) -> Result<Store, Error> {
        Store::open_guarded(dir, cache_bytes, max_batch, 0)
    }

    /// Opens the store; writes are refused while the file system holding
    /// `dir` has less than `min_free_bytes` free (0: never).
    pub fn open_guarded(
        dir: &Path,
        cache_bytes: u64,
        max_batch: usize,
        min_free_bytes: u64,
    ) -> Result<Store, Error> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let trees = Arc::new(Trees {
            orders: db.open_tree("orders")?,
            inbox: db.open_tree("inbox")?,
            dedupe: db.open_tree("dedupe")?,
            timers: db.open_tree("timers")?,
            running: db.open_tree("running")?,
            audit: db.open_tree("audit")?,
            definitions: db.open_tree("definitions")?,
            effects: db.open_tree("effects")?,
            cursors: db.open_tree("cursors")?,
            quarantine: db.open_tree("quarantine")?,
            shops: db.open_tree("shops")?,
            labels: db.open_tree("labels")?,
            archive: db.open_tree("archive")?,
            jobs: db.open_tree("jobs")?,
            people: db.open_tree("people")?,
            history: db.open_tree("history")?,
            push: db.open_tree("push")?,
        });
        // The order indexes are complete before anything writes.
        index::ensure(&trees.orders, &trees.archive)?;
        let guard = Arc::new(space::DiskGuard::new(dir.to_path_buf(), min_free_bytes));
        let committer = Committer::start(db.clone(), trees.clone(), max_batch, guard.clone());
        Ok(Store {
            db,
            trees,
            committer,
            guard,
        })
    }

    /// Whether a write would be taken now (measures the free space again unless
    /// the last look found it fine): callers
    /// that would answer from what is stored (intake's duplicate check) ask
    /// first, so a failed store never answers from a write that did not
    /// land.
    pub fn writable(&self) -> Result<(), Error> {
        match self.guard.status() {
            space::Status::Writable => Ok(()),
            _ => self.guard.admit(),
        }
    }

    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), Error> {
        self.committer.commit(ops).await
    }

    pub fn next_id(&self) -> Result<u64, Error> {
        Ok(self.db.generate_id()?)
    }

    pub fn load_order(&self, order_id: &str) -> Result<Option<OrderRecord>, Error> {
        match self.trees.orders.get(order_id.as_bytes())? {
            None => Ok(None),
            Some(b) => Ok(Some(codec::decode(&b)?)),
        }
    }

    /// Every checkpoint (for listings; the daemon never needs this on a hot
    /// path).
    pub fn orders(&self) -> impl Iterator<Item = Result<OrderRecord, Error>> + '_ {
        self.trees.orders.range(..vec![index::PREFIX]).map(|r| {
            let (_, v) = r?;
            Ok(codec::decode(&v)?)
        })
    }

    /// The newest `limit` quarantined entries, newest first.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, Error> {
        let mut out = Vec::new();
        for r in self
            .trees
            .quarantine
            .scan_prefix(QUARANTINE_ENTRY)
            .rev()
            .take(limit)
        {
            let (_, v) = r?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    /// Keeps `entry` in the quarantine, durably, once per `once` (what
    /// makes two arrivals the same thing: a notification id, a hash of the
    /// raw bytes). Returns false when it was already there. The quarantine
    /// tree holds both the entries (in arrival order) and their once-keys,
    /// under two prefixes, so the dedupe tree stays the order events' own.
    pub async fn quarantine(&self, entry: &Quarantined, once: &str) -> Result<bool, Error> {
        self.quarantine_inner(entry, once, None).await
    }

    /// Like [`Store::quarantine`], and remembered as waiting for `shop` to
    /// be connected ([`Store::waiting_for_shop`]), in the same write.
    pub async fn quarantine_until_connected(
        &self,
        entry: &Quarantined,
        once: &str,
        shop: &str,
    ) -> Result<bool, Error> {
        self.quarantine_inner(entry, once, Some(shop)).await
    }

    /// The operation that keeps `entry` in the quarantine, for a caller
    /// that commits it with its own operations.
    pub fn quarantine_op(&self, entry: &Quarantined) -> Result<Op, Error> {
        let mut key = QUARANTINE_ENTRY.to_vec();
        key.extend_from_slice(&self.next_id()?.to_be_bytes());
        Ok(Op::Put {
            tree: Tree::Quarantine,
            key,
            value: codec::encode(entry)?,
        })
    }

    fn waiting_prefix(shop: &str) -> Vec<u8> {
        let mut k = QUARANTINE_WAITING.to_vec();
        k.extend_from_slice(shop.as_bytes());
        k.push(0);
        k
    }

    /// The entries kept because their shop was not connected, oldest
    /// first, with the key that [`Store::replayed`] takes.
    pub fn waiting_for_shop(&self, shop: &str) -> Result<Vec<(Vec<u8>, Quarantined)>, Error> {
        let mut out = Vec::new();
        for r in self
            .trees
            .quarantine
            .scan_prefix(Self::waiting_prefix(shop))
        {
            let (k, entry_key) = r?;
            if let Some(v) = self.trees.quarantine.get(&entry_key)? {
                out.push((k.to_vec(), codec::decode(&v)?));
            }
        }
        Ok(out)
    }

    /// The entry at `waiting_key` was delivered: no longer waiting (it
    /// stays in the quarantine's history).
    pub async fn replayed(&self, waiting_key: Vec<u8>) -> Result<(), Error> {
        self.commit(vec![Op::Del {
            tree: Tree::Quarantine,
            key: waiting_key,
        }])
        .await
    }

    async fn quarantine_inner(
        &self,
        entry: &Quarantined,
        once: &str,
        waiting_for: Option<&str>,
    ) -> Result<bool, Error> {
        self.writable()?;
        let mut once_key = QUARANTINE_ONCE.to_vec();
        once_key.extend_from_slice(once.as_bytes());
        if self.trees.quarantine.contains_key(&once_key)? {
            return Ok(false);
        }
        let seq = self.next_id()?;
        let mut entry_key = QUARANTINE_ENTRY.to_vec();
        entry_key.extend_from_slice(&seq.to_be_bytes());
        let mut ops = vec![Op::Put {
            tree: Tree::Quarantine,
            key: entry_key.clone(),
            value: codec::encode(entry)?,
        }];
        if let Some(shop) = waiting_for {
            let mut k = Self::waiting_prefix(shop);
            k.extend_from_slice(&seq.to_be_bytes());
            ops.push(Op::Put {
                tree: Tree::Quarantine,
                key: k,
                value: entry_key,
            });
        }
        // The once-key last: a failed write leaves no key without its entry.
        ops.push(Op::Put {
            tree: Tree::Quarantine,
            key: once_key,
            value: seq.to_be_bytes().to_vec(),
        });
        self.commit(ops).await?;
        Ok(true)
    }

    /// Every order id, in key order, without decoding a checkpoint; a key
    /// that cannot be read is skipped. Owns its iterator, so a blocking
    /// task can walk it.
    pub fn order_ids(&self) -> impl Iterator<Item = String> + Send + 'static {
        self.trees
            .orders
            .range(..vec![index::PREFIX])
            .keys()
            .filter_map(|k| k.ok())
            .filter_map(|k| String::from_utf8(k.to_vec()).ok())
    }

    pub fn audit(&self, order_id: &str) -> Result<Vec<AuditEntry>, Error> {
        let mut prefix = order_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for r in self.trees.audit.scan_prefix(&prefix) {
            let (_, v) = r?;
            out.extend(decode_audit(&v)?);
        }
        Ok(out)
    }

    /// Orders with work to resume (an effect in flight).
    pub fn running(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for r in self.trees.running.iter() {
            let (k, _) = r?;
            out.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(out)
    }

    pub fn inbox(&self) -> Result<Vec<InboxEvent>, Error> {
        let mut out = Vec::new();
        for r in self.trees.inbox.iter() {
            let (_, v) = r?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    /// Timers due at or before `now_ms`, earliest first, at most `limit`.
    pub fn due_timers(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, TimerEntry)>, Error> {
        let end = ((now_ms.max(0) as u64) + 1).to_be_bytes();
        let mut out = Vec::new();
        for r in self.trees.timers.range(..end.to_vec()) {
            let (k, v) = r?;
            out.push((k.to_vec(), codec::decode(&v)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// When the earliest timer is due.
    pub fn next_timer_ms(&self) -> Result<Option<i64>, Error> {
        Ok(self.trees.timers.first()?.and_then(|(k, _)| {
            let b: [u8; 8] = k.get(..8)?.try_into().ok()?;
            Some(u64::from_be_bytes(b) as i64)
        }))
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms: 7,
            source: "workflow".into(),
            kind: "step".into(),
            detail: format!("entry {seq}"),
        }
    }

    #[test]
    fn audit_reads_groups_and_single_entries_written_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20, 16).unwrap();
        store
            .committer
            .commit_blocking(vec![
                // As a daemon before audit groups wrote it.
                Op::Put {
                    tree: Tree::Audit,
                    key: audit_key("o1", 1),
                    value: codec::encode(&entry(1)).unwrap(),
                },
                Op::Put {
                    tree: Tree::Audit,
                    key: audit_key("o1", 2),
                    value: encode_audit_group(&[entry(2), entry(3)]).unwrap(),
                },
                Op::Put {
                    tree: Tree::Audit,
                    key: audit_key("o10", 1),
                    value: encode_audit_group(&[entry(1)]).unwrap(),
                },
            ])
            .unwrap();
        let seqs: Vec<u64> = store.audit("o1").unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(store.audit("o1").unwrap()[2], entry(3));
        assert_eq!(store.audit("o10").unwrap().len(), 1);
        assert!(decode_audit(&[codec::FORMAT_V2_AUDIT_GROUP, 0xff]).is_err());
    }
}
