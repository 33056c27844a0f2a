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
//! - **Shard map** (`[tenant] shard_map`): the file (a ConfigMap applied
//!   from Git) naming every tenant's epoch and shops, shared by all cells.
//!   It is the one authority a copy can not carry with it: a daemon runs
//!   only at the epoch the map gives its tenant, and a store copied
//!   before the move's fence (it never ran with, nor was fenced for, the
//!   new epoch) refuses it. A running daemon re-reads the map and stops
//!   when its tenant's epoch moves past its own.
//! - **Epochs rise only through a fence:** a store that last ran with
//!   epoch N takes a daemon at N+1 or more only once fenced for it, so a
//!   copy taken before the fence never runs at either epoch.
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
    /// The TikTok shops this tenant owns (empty: every shop it connects,
    /// or the shard map's list).
    pub shops: Vec<String>,
    /// The shard map (TOML: `[tenants.<id>] epoch, shops, cell`), when
    /// orderflow runs as cells: this daemon runs only at the epoch it
    /// gives the tenant, and takes its shops from it.
    pub shard_map: Option<std::path::PathBuf>,
    /// How often a running daemon re-reads the shard map.
    pub shard_map_check: crate::config::Dur,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            id: "default".into(),
            epoch: 0,
            shops: Vec::new(),
            shard_map: None,
            shard_map_check: crate::config::Dur(std::time::Duration::from_secs(5)),
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

    /// This tenant as the shard map (if any) gives it: the shops come from
    /// the map, and the map's epoch must be this daemon's.
    pub fn resolve(&self) -> Result<TenantConfig, Error> {
        let Some(path) = &self.shard_map else {
            return Ok(self.clone());
        };
        let map = ShardMap::read(path)?;
        let entry = map.entry(path, &self.id)?;
        if entry.epoch != self.epoch {
            return Err(Error::MapEpoch {
                map: entry.epoch,
                ours: self.epoch,
            });
        }
        let mut out = self.clone();
        if out.shops.is_empty() {
            out.shops = entry.shops.clone();
        } else {
            let (mut a, mut b) = (out.shops.clone(), entry.shops.clone());
            a.sort();
            b.sort();
            if a != b {
                return Err(Error::MapShops {
                    map: entry.shops.clone(),
                    ours: out.shops.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Whether this tenant's process handles `shop`.
    pub fn owns(&self, shop: &str) -> bool {
        self.shops.is_empty() || self.shops.iter().any(|s| s == shop)
    }
}

/// The shard map: every tenant's epoch, shops and cell, as applied from
/// Git to every cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMap {
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, ShardEntry>,
}

/// One tenant in the shard map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    pub epoch: u64,
    #[serde(default)]
    pub shops: Vec<String>,
    /// Where it runs (for people and the ingress; not read by the daemon).
    #[serde(default)]
    pub cell: Option<String>,
}

impl ShardMap {
    pub fn read(path: &std::path::Path) -> Result<ShardMap, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::MapRead {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| Error::MapParse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Sets a tenant's epoch (never lower), and its shops and cell when
    /// given, and writes the map back atomically (a new file renamed over
    /// the old, flushed): readers see the old map or the new one.
    pub fn set(
        path: &std::path::Path,
        id: &str,
        epoch: u64,
        shops: Option<Vec<String>>,
        cell: Option<String>,
    ) -> Result<ShardMap, Error> {
        let mut map = if path.exists() {
            ShardMap::read(path)?
        } else {
            ShardMap::default()
        };
        let e = map.tenants.entry(id.to_string()).or_default();
        if epoch < e.epoch {
            return Err(Error::MapLower {
                map: e.epoch,
                asked: epoch,
            });
        }
        e.epoch = epoch;
        if let Some(shops) = shops {
            e.shops = shops;
        }
        if cell.is_some() {
            e.cell = cell;
        }
        let text = toml::to_string(&map).map_err(|source| Error::MapWrite {
            path: path.display().to_string(),
            source: std::io::Error::other(source),
        })?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = path.with_extension("toml.new");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|source| Error::MapWrite {
            path: path.display().to_string(),
            source,
        })?;
        Ok(map)
    }

    fn entry(&self, path: &std::path::Path, id: &str) -> Result<&ShardEntry, Error> {
        self.tenants.get(id).ok_or_else(|| Error::NotInMap {
            path: path.display().to_string(),
            id: id.to_string(),
        })
    }
}

/// Whether the shard map still gives this daemon's tenant its epoch:
/// `Err(Superseded)` once it gives a newer one or drops the tenant. A map
/// that can not be read right now (being rewritten) counts as unchanged.
pub fn still_current(cfg: &TenantConfig) -> Result<(), Error> {
    let Some(path) = &cfg.shard_map else {
        return Ok(());
    };
    let Ok(map) = ShardMap::read(path) else {
        return Ok(());
    };
    match map.tenants.get(&cfg.id) {
        Some(e) if e.epoch <= cfg.epoch => Ok(()),
        Some(e) => Err(Error::Superseded {
            map: e.epoch,
            ours: cfg.epoch,
        }),
        None => Err(Error::Removed { ours: cfg.epoch }),
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
    #[error("this store last ran with epoch {stored} and was never fenced for epoch {ours}: it is a copy taken before the move's fence (start the fenced copy, or run `orderflow store fence {ours}` on this one if it is the only one)")]
    Unfenced { stored: u64, ours: u64 },
    #[error("the shard map gives this tenant epoch {map}; this daemon runs epoch {ours} ([tenant] epoch must be the map's: an old cell, or a map not yet updated)")]
    MapEpoch { map: u64, ours: u64 },
    #[error("the shard map gives this tenant the shops {map:?}; [tenant] shops says {ours:?}")]
    MapShops { map: Vec<String>, ours: Vec<String> },
    #[error(
        "the shard map gives this tenant epoch {map}; an epoch never goes down (asked {asked})"
    )]
    MapLower { map: u64, asked: u64 },
    #[error("writing the shard map {path}: {source}")]
    MapWrite {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the shard map {path} has no tenant {id:?}")]
    NotInMap { path: String, id: String },
    #[error("reading the shard map {path}: {source}")]
    MapRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the shard map {path} is not valid: {source}")]
    MapParse {
        path: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("the shard map moved this tenant on to epoch {map}; this daemon runs epoch {ours}: stopping, the tenant runs elsewhere now")]
    Superseded { map: u64, ours: u64 },
    #[error("the shard map no longer lists this tenant (this daemon runs epoch {ours}): stopping")]
    Removed { ours: u64 },
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
    // An epoch rises only through a fence: a store that ran at N and was
    // not fenced for the daemon's higher epoch is a copy from before the
    // move (a new store, with no record, takes any epoch).
    if !r.id.is_empty() && cfg.epoch > r.epoch && r.fence < cfg.epoch {
        return Err(Error::Unfenced {
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
            ..TenantConfig::default()
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
        // A newer epoch runs only once the store is fenced for it (a copy
        // from before a move's fence never does); the older one is then
        // stale.
        let e = claim(&store, &cfg("acme", 2)).await.unwrap_err();
        assert!(matches!(e, Error::Unfenced { stored: 1, ours: 2 }), "{e}");
        fence(&store, 2).await.unwrap();
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
    fn the_shard_map_sets_the_epoch_and_the_shops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shards.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write("[tenants.acme]\nepoch = 2\nshops = [\"s1\", \"s2\"]\ncell = \"cell-a\"\n[tenants.globex]\nepoch = 1\nshops = [\"s3\"]\n");
        let mut c = cfg("acme", 2);
        c.shard_map = Some(path.clone());
        let r = c.resolve().unwrap();
        assert_eq!(r.shops, vec!["s1", "s2"]);
        assert!(r.owns("s2") && !r.owns("s3"));
        still_current(&c).unwrap();
        // An old cell (epoch 1) and a map not yet raised (epoch 3): both
        // refused, naming both epochs.
        let e = cfg_with(&path, 1).resolve().unwrap_err();
        assert!(matches!(e, Error::MapEpoch { map: 2, ours: 1 }), "{e}");
        assert!(e.to_string().contains("epoch 2") && e.to_string().contains("epoch 1"));
        assert!(matches!(
            cfg_with(&path, 3).resolve().unwrap_err(),
            Error::MapEpoch { map: 2, ours: 3 }
        ));
        // Shops that disagree with the map, a tenant it lacks, a bad file.
        c.shops = vec!["s1".into()];
        assert!(matches!(c.resolve().unwrap_err(), Error::MapShops { .. }));
        let mut other = cfg_with(&path, 1);
        other.id = "initech".into();
        assert!(matches!(
            other.resolve().unwrap_err(),
            Error::NotInMap { .. }
        ));
        // The map moves acme on: the running daemon learns it.
        write("[tenants.acme]\nepoch = 3\nshops = [\"s1\", \"s2\"]\n");
        assert!(matches!(
            still_current(&c).unwrap_err(),
            Error::Superseded { map: 3, ours: 2 }
        ));
        write("[tenants.globex]\nepoch = 1\n");
        assert!(matches!(
            still_current(&c).unwrap_err(),
            Error::Removed { ours: 2 }
        ));
        write("[tenants.acme]\nepoch = \"three\"\n");
        assert!(matches!(c.resolve().unwrap_err(), Error::MapParse { .. }));
        // Being rewritten: unreadable right now counts as unchanged.
        still_current(&c).unwrap();
        // `shards set`: raises, keeps what it is not given, never lowers.
        std::fs::remove_file(&path).unwrap();
        ShardMap::set(
            &path,
            "acme",
            2,
            Some(vec!["s1".into()]),
            Some("cell-a".into()),
        )
        .unwrap();
        let m = ShardMap::set(&path, "acme", 3, None, Some("cell-b".into())).unwrap();
        assert_eq!(m, ShardMap::read(&path).unwrap());
        let e = &m.tenants["acme"];
        assert_eq!(
            (e.epoch, e.shops.clone(), e.cell.as_deref()),
            (3, vec!["s1".to_string()], Some("cell-b"))
        );
        assert!(matches!(
            ShardMap::set(&path, "acme", 2, None, None).unwrap_err(),
            Error::MapLower { map: 3, asked: 2 }
        ));
    }

    fn cfg_with(path: &std::path::Path, epoch: u64) -> TenantConfig {
        TenantConfig {
            shard_map: Some(path.to_path_buf()),
            ..cfg("acme", epoch)
        }
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
