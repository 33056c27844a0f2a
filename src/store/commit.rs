//! Group commit: many actors' checkpoints under one `flush`.
//!
//! sled makes writes durable only at `flush`, and a flush costs about the
//! same for one write as for a hundred (~6,000 flushed single writes/s
//! against ~65,000 writes/s in batches of 100 on this machine). So every
//! writer hands its operations to one writer thread, which takes whatever
//! has queued up (up to `max_batch` requests), applies them, flushes once,
//! and only then answers every writer in the batch. Nobody is told "done"
//! before their bytes are on disk.
//!
//! Within a batch the writer applies additions first, then checkpoints
//! (the `orders` tree), then deletions, and the dedupe keys last. sled
//! recovers a prefix of its log, so after a crash a checkpoint implies the
//! audit entries, timers and inbox records written with it, an inbox
//! record or timer is never gone while the checkpoint that consumed it is
//! not, and a dedupe key implies the event it deduplicates. The last holds
//! on a failed write too: sled fails the tree's batch whole, and the
//! writer stops at the first failure, so an event whose inbox record
//! failed never leaves its dedupe key behind (a full disk made TikTok's
//! retry of an unstored webhook look like a duplicate). A torn batch may
//! leave one audit group past an order's checkpoint; the next of the
//! order's checkpoints with audit entries writes its group under the same
//! key (the first entry's sequence, which follows the durable
//! `audit_seq`) and so replaces it.
//!
//! Before a batch is applied the disk guard ([`super::space`]) is asked:
//! on a nearly full disk, or after sled has failed a write, the batch is
//! refused untouched and its writers get the error, never an "ok".
//!
//! The writer is a plain thread: a blocking flush must never run on an
//! actix arbiter or a tokio worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use tokio::sync::oneshot;

use super::space::DiskGuard;
use super::{Error, Tree};
use crate::metrics as m;

#[derive(Debug, Clone)]
pub enum Op {
    Put {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Del {
        tree: Tree,
        key: Vec<u8>,
    },
    /// The indexes of the order whose checkpoint the same request writes
    /// ([`super::index`]): applied in the checkpoint's own sled batch.
    Index {
        order_id: String,
        projection: Box<super::index::Projection>,
    },
    /// The order leaves the `orders` tree for the archive: its checkpoint
    /// and index entries go, and it leaves the counters of what is stored
    /// now ([`super::index::Batcher::archive`]), in the checkpoints' batch.
    Archive {
        order_id: String,
    },
}

struct Request {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), Error>>,
}

enum Msg {
    Commit(Request),
    /// Stop between batches until `resume` says go (or is dropped).
    Pause {
        paused: mpsc::SyncSender<()>,
        resume: mpsc::Receiver<()>,
    },
}

/// While held, the writer takes no batch: every commit acknowledged before
/// [`Committer::pause`] returned is applied and flushed, and none is in
/// progress. Dropping it lets the writer go on.
pub struct PauseGuard {
    _resume: mpsc::Sender<()>,
}

/// Counters for benchmarks and the load tool.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub ops: AtomicU64,
    pub flush_micros: AtomicU64,
}

/// A cheap-to-clone handle to the writer thread.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<CommitStats>,
}

impl Committer {
    pub(super) fn start(
        db: sled::Db,
        trees: Arc<super::Trees>,
        max_batch: usize,
        guard: Arc<DiskGuard>,
    ) -> Committer {
        let (tx, rx) = mpsc::channel::<Msg>();
        let stats = Arc::new(CommitStats::default());
        let s = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("orderflow-commit".into())
            .spawn(move || writer(db, trees, rx, max_batch.max(1), s, guard));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "Could not start the commit thread");
        }
        Committer { tx, stats }
    }

    /// Applies `ops` durably: returns once they are flushed to disk.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Commit(Request { ops, done }))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The same, for callers outside async code (tests, benches, tools).
    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Commit(Request { ops, done }))
            .map_err(|_| Error::Closed)?;
        rx.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Waits until the writer is between batches and holds it there while
    /// the guard lives (blocking: call it off the async workers). Writers
    /// meanwhile queue, as they would behind a slow flush.
    pub fn pause(&self) -> Result<PauseGuard, Error> {
        let (paused, is_paused) = mpsc::sync_channel(1);
        let (resume_tx, resume) = mpsc::channel();
        self.tx
            .send(Msg::Pause { paused, resume })
            .map_err(|_| Error::Closed)?;
        is_paused.recv().map_err(|_| Error::Closed)?;
        Ok(PauseGuard { _resume: resume_tx })
    }
}

fn writer(
    db: sled::Db,
    trees: Arc<super::Trees>,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    stats: Arc<CommitStats>,
    guard: Arc<DiskGuard>,
) {
    let mut carried: Option<Msg> = None;
    loop {
        let msg = match carried.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        let first = match msg {
            Msg::Commit(r) => r,
            Msg::Pause { paused, resume } => {
                let _ = paused.send(());
                // Until the guard says go or is dropped.
                let _ = resume.recv();
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Commit(r)) => batch.push(r),
                Ok(pause) => {
                    // After this batch.
                    carried = Some(pause);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = guard.admit() {
            for r in batch {
                let _ = r.done.send(Err(e.clone()));
            }
            continue;
        }
        let started = Instant::now();
        let n_ops: usize = batch.iter().map(|r| r.ops.len()).sum();
        let result =
            apply(&trees, &batch).and_then(|()| db.flush().map(|_| ()).map_err(Error::from));
        let took = started.elapsed();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.ops.fetch_add(n_ops as u64, Ordering::Relaxed);
        stats
            .flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        metrics::histogram!(m::CHECKPOINT_BATCH_SIZE).record(batch.len() as f64);
        metrics::histogram!(m::CHECKPOINT_FLUSH_SECONDS).record(took.as_secs_f64());
        if let Err(e) = &result {
            tracing::error!(error = %e, requests = batch.len(), "Group commit failed");
            guard.fail(e);
        }
        for r in batch {
            let _ = r.done.send(result.clone());
        }
    }
}

/// Applies a group in four phases: additions, checkpoints, deletions, and
/// last the dedupe keys, so a dedupe key is never visible (or recovered)
/// without the inbox record it stands for.
///
/// The checkpoints' phase also carries their index entries and counters
/// ([`super::index`]), in the `orders` tree's one batch: sled applies a
/// tree's batch atomically, so indexes never disagree with checkpoints.
fn apply(trees: &super::Trees, batch: &[Request]) -> Result<(), Error> {
    for phase in 0..4 {
        let mut per_tree: Vec<(Tree, sled::Batch)> = Vec::new();
        let mut index = super::index::Batcher::default();
        for op in batch.iter().flat_map(|r| r.ops.iter()) {
            let (tree, this_phase) = match op {
                Op::Put { tree, .. } if *tree == Tree::Dedupe => (*tree, 3),
                Op::Put { tree, .. } if *tree == Tree::Orders => (*tree, 1),
                Op::Del { tree, .. } if *tree == Tree::Orders => (*tree, 1),
                Op::Index { .. } | Op::Archive { .. } => (Tree::Orders, 1),
                Op::Put { tree, .. } => (*tree, 0),
                Op::Del { tree, .. } => (*tree, 2),
            };
            if this_phase != phase {
                continue;
            }
            let idx = match per_tree.iter().position(|(t, _)| *t == tree) {
                Some(i) => i,
                None => {
                    per_tree.push((tree, sled::Batch::default()));
                    per_tree.len() - 1
                }
            };
            let b = &mut per_tree[idx].1;
            match op {
                Op::Put { key, value, .. } => b.insert(key.as_slice(), value.as_slice()),
                Op::Del { tree, key } => {
                    b.remove(key.as_slice());
                    if *tree == Tree::Orders && !super::index::is_index_key(key) {
                        let id = String::from_utf8_lossy(key);
                        index.index(&trees.orders, b, &id, None)?;
                    }
                }
                Op::Index {
                    order_id,
                    projection,
                } => index.index(&trees.orders, b, order_id, Some((**projection).clone()))?,
                Op::Archive { order_id } => {
                    b.remove(order_id.as_bytes());
                    index.archive(&trees.orders, b, order_id)?;
                }
            }
        }
        if let Some((_, b)) = per_tree.iter_mut().find(|(t, _)| *t == Tree::Orders) {
            index.finish(&trees.orders, b)?;
        }
        for (tree, b) in per_tree {
            trees.get(tree).apply_batch(b)?;
        }
    }
    Ok(())
}
