//! Retention: what leaves the hot store, and the archive it goes to.
//!
//! - **Finished orders** (a terminal lifecycle, no workflow running, no
//!   effect or timer left) whose last update is older than
//!   `[retention] keep_days` move to the archive: one gzip member per
//!   order, holding one JSON line (the checkpoint, its audit and its label
//!   record), appended to `archive/YYYY-MM-DD.jsonl.gz` in the data
//!   directory (the day it was received, UTC; `zcat` reads a file whole,
//!   unless a crash tore a member mid-write: the index's offsets still
//!   read every archived order).
//!   The archive tree keeps, per order, its file, offset and length, so an
//!   archived order is read by id with one seek; the order leaves the
//!   `orders`, `audit` and `labels` trees and the indexes, and the stats
//!   keep counting it in their per-day history.
//! - **Dedupe keys** expire `[retention] dedupe_days` after their event
//!   arrived (TikTok retries a webhook for up to 72 hours), through an
//!   index of their arrival time in the archive tree.
//! - **Bulk jobs** finished more than `keep_days` ago are deleted.
//!
//! The protocol, so a crash anywhere loses nothing and a change never
//! loses to the archive:
//!
//! 1. the pass reads a batch of candidates from the finished index and
//!    writes their members to the files, then syncs the files;
//! 2. each order's own actor commits the move (archive entry, then the
//!    checkpoint's removal, in one group commit), and only if its record is
//!    still the one archived (same last update, still finished); otherwise
//!    it refuses and the order stays hot.
//!
//! A member no archive entry points at (a crash between 1 and 2, a refusal)
//! is left in the file; the archive tree is the authority. An event that
//! arrives for an archived order is kept in the quarantine with the reason
//! `archived_order` and an alert, never applied to a new empty order.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actors::RuntimeHandle;
use crate::config::Dur;
use crate::store::{codec, Archived, AuditEntry, Op, OrderRecord, Store, Tree};

const DAY_MS: i64 = 86_400_000;
/// Orders read and written per round of a pass.
const BATCH: usize = 256;
/// Archive moves committed at once.
const CONCURRENT_MOVES: usize = 64;
/// The folder, in the data directory.
pub const DIR: &str = "archive";
/// Archive-tree keys of the dedupe expiry index start with this byte (no
/// order id does).
const DEDUPE_PREFIX: u8 = 0xFE;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding: {0}")]
    Codec(#[from] crate::store::codec::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("archive entry of {order_id} is unreadable: {detail}")]
    Unreadable { order_id: String, detail: String },
    #[error("the pass stopped: {0}")]
    Task(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished orders last updated longer ago than this many days move to
    /// the archive (0: never).
    pub keep_days: u32,
    /// Dedupe keys expire this many days after their event arrived: well
    /// past TikTok's retries (up to 72 hours). 0: never.
    pub dedupe_days: u32,
    /// How often the pass runs (the first one a minute after start).
    pub check_every: Dur,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_days: 90,
            dedupe_days: 7,
            check_every: Dur(Duration::from_secs(3600)),
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.dedupe_days != 0 && self.dedupe_days < 4 {
            problems.push(
                "retention.dedupe_days must be 0 (never) or at least 4: TikTok retries a webhook for up to 72 hours"
                    .into(),
            );
        }
        if self.check_every.0 < Duration::from_secs(1) {
            problems.push("retention.check_every must be at least 1s".into());
        }
    }
}

/// One archived order as its file holds it (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub order_id: String,
    pub archived_ms: i64,
    pub record: OrderRecord,
    pub audit: Vec<AuditEntry>,
    /// Its label record (`crate::shipping::book::Entry`), if it had one.
    pub label: Option<serde_json::Value>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub archived: u64,
    /// Candidates that changed, or were not finished after all.
    pub skipped: u64,
    pub dedupe_expired: u64,
    pub jobs_pruned: u64,
    pub bytes_written: u64,
    pub took_ms: u64,
}

/// Runs retention passes over a store.
#[derive(Clone)]
pub struct Retention {
    store: Store,
    runtime: RuntimeHandle,
    dir: PathBuf,
    cfg: RetentionConfig,
    /// One pass at a time: two would append to the same file at once, and
    /// each member's offset is read before it is written.
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Retention {
    pub fn new(
        store: Store,
        runtime: RuntimeHandle,
        data_dir: &Path,
        cfg: RetentionConfig,
    ) -> Retention {
        Retention {
            store,
            runtime,
            dir: data_dir.join(DIR),
            cfg,
            running: Default::default(),
        }
    }

    /// One pass at `now_ms`: archive, expire dedupe keys, prune jobs.
    pub async fn pass(&self, now_ms: i64) -> Result<Report, Error> {
        let _one = self.running.lock().await;
        let started = std::time::Instant::now();
        let mut report = Report::default();
        if self.cfg.keep_days > 0 {
            let before_s = (now_ms - i64::from(self.cfg.keep_days) * DAY_MS) / 1000;
            let mut after: Option<Vec<u8>> = None;
            loop {
                let (store, dir, from) = (self.store.clone(), self.dir.clone(), after.clone());
                let round = tokio::task::spawn_blocking(move || {
                    write_round(&store, &dir, before_s, from.as_deref(), now_ms)
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
                let Some(round) = round else { break };
                after = Some(round.last_key);
                report.skipped += round.skipped;
                report.bytes_written += round.bytes;
                for chunk in round.moves.chunks(CONCURRENT_MOVES) {
                    let outcomes = futures::future::join_all(chunk.iter().map(|m| {
                        self.runtime
                            .archive(&m.order_id, m.updated_ms, m.ops.clone())
                    }))
                    .await;
                    for (m, o) in chunk.iter().zip(outcomes) {
                        match o {
                            Ok(true) => report.archived += 1,
                            Ok(false) => report.skipped += 1,
                            Err(e) => {
                                report.skipped += 1;
                                tracing::warn!(order_id = %m.order_id, error = %e, "Could not archive an order; it stays and is tried again next pass");
                            }
                        }
                    }
                }
            }
        }
        if self.cfg.dedupe_days > 0 {
            let before = now_ms - i64::from(self.cfg.dedupe_days) * DAY_MS;
            report.dedupe_expired = self.expire_dedupe(before).await?;
        }
        if self.cfg.keep_days > 0 {
            let before = now_ms - i64::from(self.cfg.keep_days) * DAY_MS;
            report.jobs_pruned = crate::http::admin::prune_jobs(&self.store, before).await?;
        }
        report.took_ms = started.elapsed().as_millis() as u64;
        ::metrics::counter!(metrics::ARCHIVED_TOTAL).increment(report.archived);
        ::metrics::counter!(metrics::DEDUPE_EXPIRED_TOTAL).increment(report.dedupe_expired);
        Ok(report)
    }

    async fn expire_dedupe(&self, before_ms: i64) -> Result<u64, Error> {
        let mut n = 0u64;
        loop {
            let mut ops = Vec::new();
            let end = dedupe_time_key(before_ms, b"");
            for k in self
                .store
                .trees
                .archive
                .range(vec![DEDUPE_PREFIX]..end)
                .keys()
                .take(2_000)
            {
                let k = k?;
                ops.push(Op::Del {
                    tree: Tree::Dedupe,
                    key: k[9..].to_vec(),
                });
                ops.push(Op::Del {
                    tree: Tree::Archive,
                    key: k.to_vec(),
                });
            }
            if ops.is_empty() {
                return Ok(n);
            }
            n += (ops.len() / 2) as u64;
            self.store.commit(ops).await?;
        }
    }

    /// Runs a pass every `check_every` until `stop`.
    pub async fn run(
        self,
        clock: crate::runtime::Clock,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut wait = Duration::from_secs(60).min(self.cfg.check_every.0);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = self.cfg.check_every.0;
            match self.pass(clock.now_ms()).await {
                Ok(r) if r.archived + r.dedupe_expired + r.jobs_pruned > 0 => tracing::info!(
                    archived = r.archived,
                    skipped = r.skipped,
                    dedupe_expired = r.dedupe_expired,
                    jobs_pruned = r.jobs_pruned,
                    took_ms = r.took_ms,
                    "Retention pass"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Retention pass failed; it runs again later"),
            }
        }
    }
}

/// The dedupe expiry index key of a dedupe key that arrived at `at_ms`
/// (written by intake with the dedupe key).
pub fn dedupe_time_key(at_ms: i64, dedupe_key: &[u8]) -> Vec<u8> {
    let mut k = vec![DEDUPE_PREFIX];
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(dedupe_key);
    k
}

/// The archive-tree key saying every dedupe key has its expiry entry.
pub const DEDUPE_TIMES_DONE: &[u8] = &[DEDUPE_PREFIX - 1, b'V'];

/// Gives dedupe keys stored before their expiry index existed an arrival
/// time of `now_ms` (once; marked done in the archive tree). Before the
/// writer starts.
pub fn ensure_dedupe_times(trees: &crate::store::Trees, now_ms: i64) -> Result<(), Error> {
    if trees.archive.contains_key(DEDUPE_TIMES_DONE)? {
        return Ok(());
    }
    let mut b = sled::Batch::default();
    let mut n = 0usize;
    for k in trees.dedupe.iter().keys() {
        b.insert(dedupe_time_key(now_ms, &k?), &[] as &[u8]);
        n += 1;
        if n % 50_000 == 0 {
            trees.archive.apply_batch(std::mem::take(&mut b))?;
        }
    }
    trees.archive.apply_batch(b)?;
    trees.archive.insert(DEDUPE_TIMES_DONE, &[1u8])?;
    trees.archive.flush()?;
    Ok(())
}

struct Move {
    order_id: String,
    updated_ms: i64,
    ops: Vec<Op>,
}

struct Round {
    moves: Vec<Move>,
    skipped: u64,
    bytes: u64,
    last_key: Vec<u8>,
}

/// Step 1 of the protocol for one batch: the candidates' members written
/// and synced, and the operations that move each one.
fn write_round(
    store: &Store,
    dir: &Path,
    before_s: i64,
    after: Option<&[u8]>,
    now_ms: i64,
) -> Result<Option<Round>, Error> {
    let found = crate::store::index::finished_before(&store.trees.orders, before_s, after, BATCH)?;
    let Some((last_key, _)) = found.last() else {
        return Ok(None);
    };
    let mut round = Round {
        moves: Vec::new(),
        skipped: 0,
        bytes: 0,
        last_key: last_key.clone(),
    };
    // Per file: the members to append.
    let mut files: std::collections::BTreeMap<String, Vec<(Line, Vec<Op>)>> = Default::default();
    for (_, id) in found {
        let Some(rec) = store.load_order(&id)? else {
            continue;
        };
        let finished = rec.lifecycle.is_terminal()
            && rec.in_flight.is_empty()
            && rec.timers.is_empty()
            && rec.instance.as_ref().is_none_or(|i| i.is_terminal());
        if !finished {
            round.skipped += 1;
            continue;
        }
        let mut ops = Vec::new();
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(0);
        for k in store.trees.audit.scan_prefix(&prefix).keys() {
            ops.push(Op::Del {
                tree: Tree::Audit,
                key: k?.to_vec(),
            });
        }
        let audit: Vec<AuditEntry> = store
            .audit(&id)?
            .into_iter()
            .filter(|e| e.seq <= rec.audit_seq)
            .collect();
        let label = label_of(store, &id, &mut ops)?;
        let file = format!(
            "{DIR}/{}.jsonl.gz",
            crate::store::index::day(rec.received_ms)
        );
        files.entry(file).or_default().push((
            Line {
                order_id: id.clone(),
                archived_ms: now_ms,
                record: rec,
                audit,
                label,
            },
            ops,
        ));
    }
    if !files.is_empty() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let data_dir = dir.parent().unwrap_or(dir);
    for (file, lines) in files {
        let path = data_dir.join(&file);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut offset = f.seek(SeekFrom::End(0)).map_err(io(&path))?;
        let mut pending = Vec::new();
        for (line, mut ops) in lines {
            let member = gzip_line(&line).map_err(io(&path))?;
            f.write_all(&member).map_err(io(&path))?;
            let p = crate::store::index::Projection::of(&line.record);
            let entry = Archived {
                file: file.clone(),
                offset,
                len: member.len() as u64,
                shop_id: line.record.shop_id.clone(),
                lifecycle: line.record.lifecycle.as_str().to_string(),
                updated_ms: line.record.updated_ms,
                archived_ms: now_ms,
                history: crate::store::index::History::of(&p),
            };
            offset += member.len() as u64;
            round.bytes += member.len() as u64;
            ops.push(Op::Put {
                tree: Tree::Archive,
                key: line.order_id.as_bytes().to_vec(),
                value: codec::encode(&entry)?,
            });
            pending.push(Move {
                order_id: line.order_id,
                updated_ms: line.record.updated_ms,
                ops,
            });
        }
        f.sync_all().map_err(io(&path))?;
        round.moves.extend(pending);
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(Some(round))
}

/// The order's label record as JSON, and the deletion of its keys in the
/// labels tree (the record, its tracking number, its open parcel and scans).
fn label_of(
    store: &Store,
    id: &str,
    ops: &mut Vec<Op>,
) -> Result<Option<serde_json::Value>, Error> {
    use crate::shipping::book;
    let labels = &store.trees.labels;
    let Some(v) = labels.get(book::entry_key(id))? else {
        return Ok(None);
    };
    let entry: book::Entry = codec::decode(&v).map_err(crate::store::Error::from)?;
    let mut keys = vec![
        book::entry_key(id),
        book::active_key(id),
        book::scans_key(id),
    ];
    for l in entry.label().into_iter().chain(entry.voided.iter()) {
        keys.push(book::tracking_key(&l.tracking_number));
        // The day's printable labels (the purchase's day; within a few
        // ms of `bought_ms`, so the day after too).
        for at in [l.bought_ms, l.bought_ms + 60_000] {
            keys.push(book::day_key(&book::day_of(at), id));
        }
    }
    for key in keys {
        if labels.contains_key(&key)? {
            ops.push(Op::Del {
                tree: Tree::Labels,
                key,
            });
        }
    }
    Ok(serde_json::to_value(&entry).ok())
}

fn gzip_line(line: &Line) -> std::io::Result<Vec<u8>> {
    let mut json = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    json.push(b'\n');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

/// An archived order, read by id (None: not archived).
pub fn read(
    store: &Store,
    data_dir: &Path,
    order_id: &str,
) -> Result<Option<(Archived, Line)>, Error> {
    let Some(v) = store.trees.archive.get(order_id.as_bytes())? else {
        return Ok(None);
    };
    let entry: Archived = codec::decode(&v).map_err(crate::store::Error::from)?;
    let path = data_dir.join(&entry.file);
    let mut f = std::fs::File::open(&path).map_err(io(&path))?;
    f.seek(SeekFrom::Start(entry.offset)).map_err(io(&path))?;
    let mut member = vec![0u8; entry.len as usize];
    f.read_exact(&mut member).map_err(io(&path))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(member.as_slice())
        .read_to_end(&mut json)
        .map_err(io(&path))?;
    let line: Line = serde_json::from_slice(&json).map_err(|e| Error::Unreadable {
        order_id: order_id.to_string(),
        detail: e.to_string(),
    })?;
    Ok(Some((entry, line)))
}

/// Is this order in the archive?
pub fn is_archived(store: &Store, order_id: &str) -> Result<bool, Error> {
    Ok(store.trees.archive.contains_key(order_id.as_bytes())?)
}

/// Names of the metrics retention exports.
pub mod metrics {
    pub const ARCHIVED_TOTAL: &str = "orderflow_orders_archived_total";
    pub const DEDUPE_EXPIRED_TOTAL: &str = "orderflow_dedupe_keys_expired_total";
    pub const ARCHIVED_EVENTS_TOTAL: &str = "orderflow_events_for_archived_orders_total";

    pub fn describe() {
        use ::metrics::describe_counter;
        describe_counter!(
            ARCHIVED_TOTAL,
            "Finished orders moved to the archive files by retention."
        );
        describe_counter!(
            DEDUPE_EXPIRED_TOTAL,
            "Dedupe keys removed after [retention] dedupe_days."
        );
        describe_counter!(
            ARCHIVED_EVENTS_TOTAL,
            "Events that arrived for an archived order (kept in the quarantine, not applied)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipping::book::{Entry, State};
    use crate::shipping::provider::{Label, LabelFormat, ProviderKind};

    #[test]
    fn a_label_record_survives_its_archive_line() {
        let label = Label {
            provider: ProviderKind::Easypost,
            label_id: "shp_1".into(),
            shipment_id: "shp_1".into(),
            reference: "576-L0".into(),
            tracking_number: "9400100000000000000001".into(),
            label_url: Some("https://example.test/l.pdf".into()),
            format: LabelFormat::Pdf,
            carrier: "USPS".into(),
            service: Some("Priority".into()),
            shipping_provider_id: Some("6617675021119438849".into()),
            cost: None,
            tracker_id: Some("trk_1".into()),
            bought_ms: 1_764_072_000_000,
            recovered: false,
        };
        let entry = Entry {
            order_id: "576".into(),
            state: State::Bought(label),
            ..Default::default()
        };
        let line = Line {
            order_id: "576".into(),
            archived_ms: 1,
            record: OrderRecord::new("576", "shop", 1),
            audit: Vec::new(),
            label: serde_json::to_value(&entry).ok(),
        };
        let member = gzip_line(&line).unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(member.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        let back: Line = serde_json::from_slice(&json).unwrap();
        let e: Entry = serde_json::from_value(back.label.unwrap()).unwrap();
        assert_eq!(e, entry);
        assert_eq!(back.record.order_id, "576");
    }
}
