//! One label per order: the purchase protocol and its durable record.
//!
//! Neither EasyPost nor Shippo takes an idempotency key on a purchase, and a
//! workflow step's own key changes when an operator resumes or re-runs it.
//! So the order, not the step, owns its label, in the `labels` tree:
//!
//! 1. Before any call that can cost money, the entry is moved to
//!    [`State::Started`] with the order's reference
//!    (`{order_id}-L{generation}`), and that write is flushed.
//! 2. The shipment is created carrying the reference (EasyPost's
//!    `reference`, Shippo's `metadata`); the rate is chosen; TikTok's
//!    provider id for the chosen carrier is checked; the shipment and rate
//!    ids are recorded (flushed); the rate is bought.
//! 3. The label is recorded as [`State::Bought`] (flushed), its tracking
//!    number indexed, and its document fetched to disk.
//!
//! A replay (crash, timeout, retry, `resume`, `run_from`) that finds
//! `Started` first asks the provider for the recorded shipment (EasyPost),
//! the recorded rate's purchases (Shippo), or else a shipment with the
//! reference: a
//! bought one is taken as the order's label, an unbought one is bought, and
//! only when none exists is a new shipment created. A replay that finds
//! `Bought` reuses the label without calling anyone (and fetches its
//! document if that is missing). A new label comes only when an operator
//! asks for it ([`LabelBook::request_renewal`]): the current label is voided
//! first, the generation moves on, and with it the reference.
//!
//! Keys of the `labels` tree:
//!
//! | key | value |
//! |---|---|
//! | `o/{order_id}` | [`Entry`] |
//! | `t/{tracking_number}` | order id (tracking webhooks find their order) |
//! | `a/{order_id}` | [`Active`]: a parcel still travelling (the tracking poll walks only these) |
//! | `s/{order_id}` | the parcel's [`ScanRecord`]s (apart from the entry: tracking never writes what a purchase writes) |
//! | `d/{YYYY-MM-DD}/{order_id}` | empty: the order's label was bought that day (UTC), for the day's print batch |

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::provider::{Label, ProviderKind};
use super::Error;
use crate::store::{codec, Op, Store, Tree};

/// Where an order's label stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// No label (never bought, or the last one was voided).
    #[default]
    Empty,
    /// A purchase may have reached the provider: look it up by `reference`
    /// before buying.
    Started {
        provider: ProviderKind,
        reference: String,
        started_ms: i64,
        /// The shipment created for it, once known.
        shipment_id: Option<String>,
        /// The rate about to be bought, once chosen.
        rate_id: Option<String>,
    },
    /// The order's label.
    Bought(Label),
}

impl State {
    /// A purchase that may have reached the provider: where, and what is
    /// known of it.
    pub fn started(&self) -> Option<(ProviderKind, super::provider::Started<'_>)> {
        match self {
            State::Started {
                provider,
                reference,
                started_ms,
                shipment_id,
                rate_id,
            } => Some((
                *provider,
                super::provider::Started {
                    reference,
                    since_ms: *started_ms,
                    shipment_id: shipment_id.as_deref(),
                    rate_id: rate_id.as_deref(),
                },
            )),
            _ => None,
        }
    }
}

/// A printable document kept with the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// File name under the order's documents folder, e.g. `label-0.pdf`.
    pub name: String,
    /// `label` (the carrier's) or `tiktok_shipping_document` (TikTok's
    /// label and packing slip).
    pub kind: String,
    pub content_type: String,
    pub bytes: u64,
    pub label_id: String,
    pub created_ms: i64,
}

/// One tracking event of the order's parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// `pre_transit`, `in_transit`, `out_for_delivery`, `delivered`,
    /// `exception`, `return_to_sender` ([`super::tracking::ScanStatus`]).
    pub status: String,
    /// The provider's own status and text.
    pub detail: String,
    /// When the carrier saw it, Unix seconds.
    pub at: i64,
    pub received_ms: i64,
}

/// The order's label record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub order_id: String,
    /// Moves on each time the label is voided for a new one.
    pub generation: u32,
    pub state: State,
    /// An operator asked for a new label: the next purchase voids the
    /// current one first.
    pub renew: bool,
    /// Labels voided for this order, oldest first.
    pub voided: Vec<Label>,
    pub documents: Vec<Document>,
}

impl Entry {
    /// The reference a purchase of this generation carries.
    pub fn reference(&self) -> String {
        format!("{}-L{}", self.order_id, self.generation)
    }

    /// The label, when bought and not voided.
    pub fn label(&self) -> Option<&Label> {
        match &self.state {
            State::Bought(l) => Some(l),
            _ => None,
        }
    }
}

/// A parcel whose tracking is still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Active {
    pub order_id: String,
    pub shop_id: String,
    pub provider: ProviderKind,
    pub carrier: String,
    pub tracking_number: String,
    /// The provider's tracker id, when it has one (EasyPost `trk_…`).
    pub tracker_id: Option<String>,
    pub last_status: String,
}

pub(crate) fn entry_key(order_id: &str) -> Vec<u8> {
    format!("o/{order_id}").into_bytes()
}
pub(crate) fn tracking_key(tracking: &str) -> Vec<u8> {
    format!("t/{tracking}").into_bytes()
}
pub(crate) fn active_key(order_id: &str) -> Vec<u8> {
    format!("a/{order_id}").into_bytes()
}
pub(crate) fn scans_key(order_id: &str) -> Vec<u8> {
    format!("s/{order_id}").into_bytes()
}
pub(crate) fn day_key(day: &str, order_id: &str) -> Vec<u8> {
    format!("d/{day}/{order_id}").into_bytes()
}

/// The UTC day of a time in ms, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The label record and the documents folder; cheap to clone.
#[derive(Clone)]
pub struct LabelBook {
    store: Store,
    docs: PathBuf,
    /// `[server] public_url`: document links in notifications are absolute
    /// with it, paths of this daemon's API without it.
    public_url: Option<String>,
    /// Document writes syncing at once. Each holds a blocking-pool thread
    /// through two fsyncs; unbounded, a burst of orders grew every
    /// runtime's blocking pool to its 512 threads (over 1,000 threads and
    /// 3.4 GiB resident at 1,000 orders/s, each thread with its own
    /// allocator heap) for no more throughput than a few writers give.
    writes: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Document writes syncing at once (see `LabelBook::writes`).
const DOCUMENT_WRITERS: usize = 8;

impl std::fmt::Debug for LabelBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelBook")
            .field("docs", &self.docs)
            .finish()
    }
}

/// An order id as a folder name: TikTok's ids are digits; anything else is
/// refused rather than trusted as a path.
fn safe(id: &str) -> Result<&str, Error> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        || id.starts_with('.')
    {
        return Err(Error::Invalid(format!("{id:?} is not a valid id")));
    }
    Ok(id)
}

impl LabelBook {
    /// Documents live in `{data_dir}/documents/{order_id}/`.
    pub fn new(store: Store, data_dir: &Path) -> LabelBook {
        LabelBook {
            store,
            docs: data_dir.join("documents"),
            public_url: None,
            writes: std::sync::Arc::new(tokio::sync::Semaphore::new(DOCUMENT_WRITERS)),
        }
    }

    /// When this store was restored from a backup (Unix ms), if it was:
    /// labels bought after the backup are unknown to it
    /// ([`crate::store::backup::RESTORED_KEY`]).
    pub fn restored_at_ms(&self) -> Option<i64> {
        self.store
            .trees
            .cursors
            .get(crate::store::backup::RESTORED_KEY)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes)
    }

    /// Links to documents start with `url` (`[server] public_url`).
    pub fn with_public_url(mut self, url: Option<String>) -> LabelBook {
        self.public_url = url
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());
        self
    }

    /// The link to the document of `label_id` (the admin API serves it),
    /// if the order has one.
    pub fn document_url(&self, order_id: &str, label_id: &str) -> Result<Option<String>, Error> {
        let Some(e) = self.load(order_id)? else {
            return Ok(None);
        };
        Ok(e.documents
            .iter()
            .find(|d| d.label_id == label_id)
            .map(|d| {
                format!(
                    "{}/api/v1/orders/{order_id}/documents/{}",
                    self.public_url.as_deref().unwrap_or(""),
                    d.name
                )
            }))
    }

    fn tree(&self) -> &sled::Tree {
        self.store.trees.get(Tree::Labels)
    }

    pub fn load(&self, order_id: &str) -> Result<Option<Entry>, Error> {
        match self.tree().get(entry_key(order_id)).map_err(store_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(codec::decode(&v).map_err(|e| Error::Store(e.into()))?)),
        }
    }

    /// The entry, or a new empty one.
    pub fn entry(&self, order_id: &str) -> Result<Entry, Error> {
        Ok(self.load(order_id)?.unwrap_or_else(|| Entry {
            order_id: order_id.to_string(),
            ..Entry::default()
        }))
    }

    /// Writes the entry and `more`, durably (group commit: flushed before
    /// this returns).
    pub async fn save(&self, e: &Entry, mut more: Vec<Op>) -> Result<(), Error> {
        let value = codec::encode(e).map_err(|x| Error::Store(x.into()))?;
        more.push(Op::Put {
            tree: Tree::Labels,
            key: entry_key(&e.order_id),
            value,
        });
        self.store.commit(more).await.map_err(Error::Store)
    }

    /// Writes `ops` durably (group commit).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), Error> {
        self.store.commit(ops).await.map_err(Error::Store)
    }

    /// The order owning a tracking number.
    pub fn order_for_tracking(&self, tracking: &str) -> Result<Option<String>, Error> {
        Ok(self
            .tree()
            .get(tracking_key(tracking))
            .map_err(store_err)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The scans of the order's parcel, oldest first.
    pub fn scans(&self, order_id: &str) -> Result<Vec<ScanRecord>, Error> {
        match self.tree().get(scans_key(order_id)).map_err(store_err)? {
            None => Ok(Vec::new()),
            Some(v) => codec::decode(&v).map_err(|x| Error::Store(x.into())),
        }
    }

    /// Writes the order's scans.
    pub fn scans_op(&self, order_id: &str, scans: &[ScanRecord]) -> Result<Op, Error> {
        Ok(Op::Put {
            tree: Tree::Labels,
            key: scans_key(order_id),
            value: codec::encode(&scans.to_vec()).map_err(|x| Error::Store(x.into()))?,
        })
    }

    /// The order's parcel, while it is still travelling.
    pub fn active_of(&self, order_id: &str) -> Result<Option<Active>, Error> {
        match self.tree().get(active_key(order_id)).map_err(store_err)? {
            None => Ok(None),
            Some(v) => Ok(Some(codec::decode(&v).map_err(|x| Error::Store(x.into()))?)),
        }
    }

    /// Parcels still travelling, at most `limit`, from after `after` (an
    /// order id) on: the tracking poll's pages.
    pub fn active(&self, after: Option<&str>, limit: usize) -> Result<Vec<Active>, Error> {
        let start = match after {
            Some(a) => {
                let mut k = active_key(a);
                k.push(0);
                k
            }
            None => b"a/".to_vec(),
        };
        let mut out = Vec::new();
        for kv in self.tree().range(start..) {
            let (k, v) = kv.map_err(store_err)?;
            if !k.starts_with(b"a/") || out.len() >= limit {
                break;
            }
            if let Ok(a) = codec::decode::<Active>(&v) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Order ids whose label was bought on `day` (UTC `YYYY-MM-DD`).
    pub fn bought_on(&self, day: &str) -> Result<Vec<String>, Error> {
        let prefix = format!("d/{day}/");
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(prefix.as_bytes()) {
            let (k, _) = kv.map_err(store_err)?;
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    /// The ops that record a bought label: its tracking number, the day's
    /// batch, and an open tracker for the poll (not for TikTok Shipping,
    /// whose parcels TikTok follows).
    pub fn bought_ops(
        &self,
        e: &Entry,
        l: &Label,
        shop_id: &str,
        now_ms: i64,
    ) -> Result<Vec<Op>, Error> {
        let mut ops = vec![Op::Put {
            tree: Tree::Labels,
            key: day_key(&day_of(now_ms), &e.order_id),
            value: Vec::new(),
        }];
        if !l.tracking_number.is_empty() {
            ops.push(Op::Put {
                tree: Tree::Labels,
                key: tracking_key(&l.tracking_number),
                value: e.order_id.clone().into_bytes(),
            });
        }
        if !l.tracking_number.is_empty() && l.provider != ProviderKind::Tiktok {
            let active = Active {
                order_id: e.order_id.clone(),
                shop_id: shop_id.to_string(),
                provider: l.provider,
                carrier: l.carrier.clone(),
                tracking_number: l.tracking_number.clone(),
                tracker_id: l.tracker_id.clone(),
                last_status: "pre_transit".into(),
            };
            ops.push(Op::Put {
                tree: Tree::Labels,
                key: active_key(&e.order_id),
                value: codec::encode(&active).map_err(|x| Error::Store(x.into()))?,
            });
        }
        Ok(ops)
    }

    /// Writes an open tracker again (its last status), or closes it.
    pub fn active_op(&self, a: &Active, open: bool) -> Result<Op, Error> {
        Ok(if open {
            Op::Put {
                tree: Tree::Labels,
                key: active_key(&a.order_id),
                value: codec::encode(a).map_err(|x| Error::Store(x.into()))?,
            }
        } else {
            Op::Del {
                tree: Tree::Labels,
                key: active_key(&a.order_id),
            }
        })
    }

    /// Marks that the next purchase for the order must void its label and
    /// buy a new one (an operator's explicit "new label"). `Ok(false)` when
    /// the order has no label to replace.
    pub async fn request_renewal(&self, order_id: &str) -> Result<bool, Error> {
        let mut e = self.entry(order_id)?;
        if matches!(e.state, State::Empty) {
            return Ok(false);
        }
        e.renew = true;
        self.save(&e, Vec::new()).await?;
        Ok(true)
    }

    /// The folder of an order's documents.
    pub fn folder(&self, order_id: &str) -> Result<PathBuf, Error> {
        Ok(self.docs.join(safe(order_id)?))
    }

    /// A document's path, when the order has it.
    pub fn document_path(
        &self,
        order_id: &str,
        name: &str,
    ) -> Result<Option<(Document, PathBuf)>, Error> {
        let e = match self.load(order_id)? {
            Some(e) => e,
            None => return Ok(None),
        };
        let Some(d) = e.documents.iter().find(|d| d.name == name) else {
            return Ok(None);
        };
        let path = self.folder(order_id)?.join(safe(&d.name)?);
        Ok(Some((d.clone(), path)))
    }

    /// Writes a document to the order's folder durably (file and folder
    /// synced, on the blocking pool) and returns its size.
    pub async fn write_document(
        &self,
        order_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<u64, Error> {
        let dir = self.folder(order_id)?;
        let name = safe(name)?.to_string();
        let _permit = self
            .writes
            .acquire()
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(&name))?;
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(bytes.len() as u64)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
        .map_err(Error::Io)
    }
}

fn store_err(e: sled::Error) -> Error {
    Error::Store(crate::store::Error::from(e))
}
