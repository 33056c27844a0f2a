//! Who this process is, beyond one machine: a tenant (a creator account:
//! its shops, its store) with an epoch, and the fence that keeps an old
//! copy of its store from running after the tenant moved.
//!
//! - **Identity and epoch** (`[tenant] id`, `[tenant] epoch`). The store
//!   records the tenant and the highest epoch it ran with (key `tenant` of
//!   the `cursors` tree). A daemon refuses to start on a store of another
//!   tenant, or one that last ran with a newer epoch than its own (it is a
//!   stale copy, or its configuration is old).
//! - **Fence** (`orderflow store fence --epoch N`, on a closed store): a
//!   tombstone; a daemon whose epoch is below N refuses to start on it. A
//!   move fences the old store before copying it, so the old place can
//!   never run again, and starts the copy with the new epoch. This is how
//!   Temporal fences shard owners with a range id, without a coordinator:
//!   the epoch lives in the tenant's (GitOps) configuration.
//! - **Ownership** (`[tenant] shops`): a webhook for a shop the tenant does
//!   not own is acknowledged and dropped with a counter
//!   (`orderflow_tenant_foreign_total{source}`), never stored as work; no
//!   shop outside the list is polled. An empty list owns every shop (one
//!   tenant per machine, the default).

use serde::{Deserialize, Serialize};

use crate::store::{codec, Op, Store, Tree};

/// Counter, label `source` (`webhook`, `poll`): work for a shop this
/// tenant does not own, acknowledged and dropped.
pub const FOREIGN_TOTAL: &str = "orderflow_tenant_foreign_total";

pub fn describe_metrics() {
    metrics::describe_counter!(
        FOREIGN_TOTAL,
        metrics::Unit::Count,
        "Webhooks and poll results for shops this tenant does not own, acknowledged and dropped"
    );
}

/// The `[tenant]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's id: letters, digits, `-` and `_` (it is also the path
    /// prefix of its webhooks: `/t/{id}/webhooks/tiktok`).
    pub id: String,
    /// Raised by one at each move; a store that ran with a newer one, or is
    /// fenced above this one, does not start.
    pub epoch: u64,
    /// The TikTok shops this tenant owns (empty: every shop it connects).
    pub shops: Vec<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            id: "default".into(),
            epoch: 0,
            shops: Vec::new(),
        }
    }
}

impl TenantConfig {
    /// Every problem at once.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.id.is_empty()
            || self.id.len() > 63
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            p.push(format!(
                "tenant.id: {:?} must be 1-63 letters, digits, '-' or '_'",
                self.id
            ));
        }
        p
    }

    /// Whether this tenant's process handles `shop`.
    pub fn owns(&self, shop: &str) -> bool {
        self.shops.is_empty() || self.shops.iter().any(|s| s == shop)
    }
}

/// What a store remembers about its tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The highest epoch a daemon ran with on this store.
    pub epoch: u64,
    /// Daemons below this epoch refuse the store (0: not fenced).
    pub fence: u64,
}

/// Errors of identity and fencing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this store belongs to tenant {store:?}, not {ours:?}: check [tenant] id and the data directory")]
    OtherTenant { store: String, ours: String },
    #[error("this store was fenced at epoch {fence}; this daemon runs epoch {ours}: it is an old copy of a tenant that moved (run the copy in its new place, with [tenant] epoch = {fence} or more)")]
    Fenced { fence: u64, ours: u64 },
    #[error("this store last ran with epoch {stored}, newer than this daemon's epoch {ours}: a stale copy or an old configuration ([tenant] epoch)")]
    Stale { stored: u64, ours: u64 },
    #[error("a fence must be above the epoch the store last ran with ({stored}); got {asked}")]
    FenceTooLow { stored: u64, asked: u64 },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

const KEY: &[u8] = b"tenant";

/// The store's record, if it has one.
pub fn read(store: &Store) -> Result<Option<Record>, Error> {
    match store
        .trees
        .get(Tree::Cursors)
        .get(KEY)
        .map_err(crate::store::Error::from)?
    {
        None => Ok(None),
        Some(v) => Ok(Some(codec::decode(&v).map_err(crate::store::Error::from)?)),
    }
}

async fn write(store: &Store, r: &Record) -> Result<(), Error> {
    let value = codec::encode(r).map_err(crate::store::Error::from)?;
    store
        .commit(vec![Op::Put {
            tree: Tree::Cursors,
            key: KEY.to_vec(),
            value,
        }])
        .await?;
    Ok(())
}

/// Checks, at start, that this daemon may run on the store, and records
/// its tenant and epoch (durably) before anything else is done.
pub async fn claim(store: &Store, cfg: &TenantConfig) -> Result<Record, Error> {
    let mut r = read(store)?.unwrap_or_default();
    if !r.id.is_empty() && r.id != cfg.id {
        return Err(Error::OtherTenant {
            store: r.id,
            ours: cfg.id.clone(),
        });
    }
    if r.fence > cfg.epoch {
        return Err(Error::Fenced {
            fence: r.fence,
            ours: cfg.epoch,
        });
    }
    if r.epoch > cfg.epoch {
        return Err(Error::Stale {
            stored: r.epoch,
            ours: cfg.epoch,
        });
    }
    if r.id != cfg.id || r.epoch != cfg.epoch {
        r.id = cfg.id.clone();
        r.epoch = cfg.epoch;
        write(store, &r).await?;
    }
    Ok(r)
}

/// Fences a (closed) store at `epoch`: daemons below it refuse to run on
/// it from now on.
pub async fn fence(store: &Store, epoch: u64) -> Result<Record, Error> {
    let mut r = read(store)?.unwrap_or_default();
    if epoch <= r.epoch {
        return Err(Error::FenceTooLow {
            stored: r.epoch,
            asked: epoch,
        });
    }
    r.fence = r.fence.max(epoch);
    write(store, &r).await?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(id: &str, epoch: u64) -> TenantConfig {
        TenantConfig {
            id: id.into(),
            epoch,
            shops: Vec::new(),
        }
    }

    #[actix_rt::test]
    async fn a_fenced_or_newer_store_refuses_an_older_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20, 8).unwrap();
        claim(&store, &cfg("acme", 1)).await.unwrap();
        // Another tenant's daemon pointed at it: refused.
        let e = claim(&store, &cfg("globex", 1)).await.unwrap_err();
        assert!(matches!(e, Error::OtherTenant { .. }), "{e}");
        // A newer epoch runs and is recorded; the older one is then stale.
        claim(&store, &cfg("acme", 2)).await.unwrap();
        let e = claim(&store, &cfg("acme", 1)).await.unwrap_err();
        assert!(
            e.to_string().contains("epoch 2") && e.to_string().contains("epoch 1"),
            "{e}"
        );
        // A fence at 3: epoch 2 refuses, naming both epochs; 3 runs.
        assert!(matches!(
            fence(&store, 2).await.unwrap_err(),
            Error::FenceTooLow { .. }
        ));
        fence(&store, 3).await.unwrap();
        let e = claim(&store, &cfg("acme", 2)).await.unwrap_err();
        assert!(matches!(e, Error::Fenced { fence: 3, ours: 2 }), "{e}");
        assert!(e.to_string().contains("fenced at epoch 3") && e.to_string().contains("epoch 2"));
        assert_eq!(claim(&store, &cfg("acme", 3)).await.unwrap().epoch, 3);
    }

    #[test]
    fn ownership_and_ids() {
        let mut c = TenantConfig::default();
        assert!(c.validate().is_empty() && c.owns("any"));
        c.shops = vec!["7494000000000000001".into()];
        assert!(c.owns("7494000000000000001") && !c.owns("7494000000000000002"));
        c.id = "no/slash".into();
        assert_eq!(c.validate().len(), 1);
    }
}
