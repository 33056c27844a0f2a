//! The stock journal: what changed stock or mappings by hand, and what a
//! reconcile found and corrected, newest first. Orders' own reservations
//! are in their audit, not here.
//!
//! Entries live in the `inventory_mappings` tree under `j` + time (8 bytes,
//! big-endian Unix ms) + a sequence (8 bytes), written in the same
//! transaction as the change they describe (a reconcile's after its
//! pushes). Kept [`RETENTION_DAYS`]: every write removes up to two entries
//! older than that, so the journal never needs a sweep.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

use super::mapping::MAPPINGS_TREE;
use super::{decode, encode, now_ms, Error, InventoryHandle, Result, TxResult};

/// How long entries are kept.
pub const RETENTION_DAYS: i64 = 90;

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: i64,
    /// `set`, `adjust`, `import`, `map`, `unmap`, `reconcile`.
    pub kind: String,
    /// The item, SKU or shop concerned.
    pub subject: String,
    pub detail: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn key(at_ms: i64) -> Vec<u8> {
    let mut k = vec![b'j'];
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    k
}

fn entry(kind: &str, subject: &str, detail: String) -> Entry {
    Entry {
        at_ms: now_ms(),
        kind: kind.to_string(),
        subject: subject.to_string(),
        detail,
    }
}

/// The oldest keys due for removal (at most two). Read before the
/// transaction that writes the entry: a sled iterator inside a
/// transaction waits for the lock the transaction holds.
pub(super) fn expired(tree: &sled::Tree, now: i64) -> Vec<sled::IVec> {
    let cutoff = now - RETENTION_DAYS * 86_400_000;
    let mut end = vec![b'j'];
    end.extend_from_slice(&(cutoff.max(0) as u64).to_be_bytes());
    tree.range(vec![b'j']..end)
        .keys()
        .take(2)
        .filter_map(|k| k.ok())
        .collect()
}

tokio::task_local! {
    /// The person the changes in scope are made by.
    static ACTOR: String;
}

/// Runs `f`; the changes it makes are journaled as made by `by` (the
/// HTTP handlers name the person who asked).
pub async fn acting_as<F: std::future::Future>(by: String, f: F) -> F::Output {
    ACTOR.scope(by, f).await
}

/// What a journaled change needs, read before its transaction: the keys
/// due for removal ([`expired`]) and who is making it.
pub(super) struct Before {
    expired: Vec<sled::IVec>,
    by: Option<String>,
}

/// [`expired`] as of now, and the person in scope ([`acting_as`]).
pub(super) fn expired_now(tree: &sled::Tree) -> Before {
    Before {
        expired: expired(tree, now_ms()),
        by: ACTOR.try_with(|a| a.clone()).ok(),
    }
}

/// Appends an entry inside the inventory's transaction, removing the
/// `expired` keys read before it ([`expired`]).
pub(super) fn record(
    m: &TransactionalTree,
    before: &Before,
    kind: &str,
    subject: &str,
    detail: String,
) -> TxResult<()> {
    let detail = match &before.by {
        Some(by) => format!("{detail} (by {by})"),
        None => detail,
    };
    let e = entry(kind, subject, detail);
    for k in &before.expired {
        m.remove(k.clone())?;
    }
    let bytes = encode(MAPPINGS_TREE, &e).or_else(sled::transaction::abort)?;
    m.insert(key(e.at_ms), bytes)?;
    Ok(())
}

impl InventoryHandle {
    /// Appends an entry outside a transaction (a reconcile's result).
    pub(super) fn journal(&self, kind: &str, subject: &str, detail: String) -> Result<()> {
        let t = &self.inner.mappings;
        let e = entry(kind, subject, detail);
        for k in expired(t, e.at_ms) {
            t.remove(k)?;
        }
        t.insert(key(e.at_ms), encode(MAPPINGS_TREE, &e)?)?;
        Ok(())
    }

    /// The newest `limit` entries, newest first; `before_ms` pages back.
    pub async fn journal_entries(
        &self,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let t = self.inner.mappings.clone();
        tokio::task::spawn_blocking(move || {
            let mut end = vec![b'j'];
            match before_ms {
                Some(b) => end.extend_from_slice(&(b.max(0) as u64).to_be_bytes()),
                None => end = vec![b'k'],
            }
            let mut out = Vec::new();
            for r in t.range(vec![b'j']..end).rev().take(limit) {
                let (_, v) = r?;
                out.push(decode(MAPPINGS_TREE, &v)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}
