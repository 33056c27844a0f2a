//! Online backup: a consistent copy of a running daemon's store, and its
//! restore into a new data directory.
//!
//! sled has no snapshot, and copying its files while it writes can give an
//! unreadable copy. Pausing every writer for the whole copy would hold
//! webhook acknowledgements for seconds on a large store. So a backup is
//! taken as databases take a base backup with its log:
//!
//! 1. every tree is watched (sled's subscribers deliver each insert and
//!    removal, in order, and never drop one: a full channel slows the
//!    writer instead), with the group commit held between two batches
//!    while the watches start;
//! 2. every tree is read into the file as it is then (a fuzzy copy: keys
//!    change while it is read);
//! 3. the group commit is held again between two batches (the *cut*: every
//!    commit acknowledged before it is applied, none is half-written), the
//!    watches are drained, and it goes on; the pause is measured and
//!    reported;
//! 4. the changes seen between 1 and 3 follow the copy in the file, to be
//!    applied in order after it: each key ends with its last change, or
//!    with the value the copy read if nothing changed it;
//! 5. the documents (label files, written before the checkpoints that name
//!    them) are added after the cut, then a SHA-256 over everything.
//!
//! The file is the export format ([`super::transfer`]), so `orderflow
//! restore` is an import, checked against the digest, followed by the
//! index check ([`super::index::check`]). The folder holds `store.backup`
//! and `manifest.json` (what, when, how long, the file's size and the
//! SHA-256 its trailer holds over every record).
//!
//! What the group commit writes (checkpoints, inbox, dedupe keys, timers,
//! audit, labels) is in the backup exactly as at the cut. The few writers
//! that write sled directly (stock and mappings, the catalogue, refreshed
//! shop tokens, deadline warnings sent) are caught per key, as of a moment
//! within milliseconds of the cut.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::transfer::{self, field, MAGIC};
use super::Store;

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Transfer(#[from] transfer::Error),
    #[error("the store: {0}")]
    Store(#[from] super::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not empty: a backup goes into a new folder")]
    NotEmpty(String),
    #[error("the backup folder must be an absolute path, got {0}")]
    NotAbsolute(String),
    #[error("{0} has no manifest.json: not an orderflow backup")]
    NoManifest(String),
    #[error("the manifest is not valid: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("store.backup is damaged: its SHA-256 is {computed}, the manifest says {stored}")]
    Damaged { stored: String, computed: String },
    #[error("the restored indexes disagree with the checkpoints: {0:?}")]
    Indexes(Vec<String>),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When the backup began and ended (Unix ms).
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The tenant the store belongs to, and the epoch it ran with.
    pub tenant: Option<String>,
    pub epoch: Option<u64>,
    pub trees: usize,
    /// Keys read by the copy.
    pub entries: u64,
    /// Changes recorded while the copy was read.
    pub changes: u64,
    pub documents: u64,
    /// How long the group commit was held at the cut (and to start the
    /// watches), milliseconds.
    pub paused_ms: f64,
    pub took_ms: f64,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Key in the `cursors` tree: when the store was restored (u64 BE, Unix
/// ms). Effects done after the backup was taken are unknown to a restored
/// store; label purchases ask the provider first for orders older than
/// this (`crate::shipping::purchase`).
pub const RESTORED_KEY: &[u8] = b"restored_at";

const FILE: &str = "store.backup";
const MANIFEST: &str = "manifest.json";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A change seen while the copy was read.
struct Change {
    tree: sled::IVec,
    key: sled::IVec,
    value: Option<sled::IVec>,
}

fn send(
    tx: &mpsc::Sender<Change>,
    tree: &sled::IVec,
    ev: sled::Event,
) -> Result<(), mpsc::SendError<Change>> {
    let (key, value) = match ev {
        sled::Event::Insert { key, value } => (key, Some(value)),
        sled::Event::Remove { key } => (key, None),
    };
    tx.send(Change {
        tree: tree.clone(),
        key,
        value,
    })
}

/// Backs up the running store (data directory `data_dir`) into the new
/// folder `to`. Blocking: run it off the async workers.
pub fn backup(store: &Store, data_dir: &Path, to: &Path) -> Result<Manifest, Error> {
    let started = Instant::now();
    let started_ms = now_ms();
    if !to.is_absolute() {
        return Err(Error::NotAbsolute(to.display().to_string()));
    }
    if to.exists() && std::fs::read_dir(to).map_err(io(to))?.next().is_some() {
        return Err(Error::NotEmpty(to.display().to_string()));
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    let db = &store.db;
    let mut names = db.tree_names();
    names.sort();

    // 1. Watch every tree, with no commit half-written meanwhile.
    let (tx, rx) = mpsc::channel::<Change>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    let pause = Instant::now();
    let guard = store.committer.pause()?;
    for name in &names {
        let tree = db.open_tree(name)?;
        let mut sub = tree.watch_prefix(vec![]);
        let (tx, stop, name) = (tx.clone(), stop.clone(), sled::IVec::from(name.as_ref()));
        watchers.push(std::thread::spawn(move || loop {
            // After the cut, a writer that does not go through the group
            // commit may keep writing: take what arrived within 200 ms.
            if stop.load(Ordering::Acquire) {
                let cut = Instant::now();
                while cut.elapsed() < Duration::from_millis(200) {
                    let Ok(ev) = sub.next_timeout(Duration::from_millis(20)) else {
                        return;
                    };
                    if send(&tx, &name, ev).is_err() {
                        return;
                    }
                }
                return;
            }
            if let Ok(ev) = sub.next_timeout(Duration::from_millis(20)) {
                if send(&tx, &name, ev).is_err() {
                    return;
                }
            }
        }));
    }
    drop(guard);
    let mut paused = pause.elapsed();
    drop(tx);
    // A write that reserved its event before the watch began is applied
    // within microseconds; give it far longer before reading.
    std::thread::sleep(Duration::from_millis(50));

    // The changes go to a side file while the copy is read.
    let side_path = to.join(".changes");
    let side = std::fs::File::create(&side_path).map_err(io(&side_path))?;
    let collector = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut w = std::io::BufWriter::new(side);
        let mut n = 0u64;
        for c in rx {
            let mut rec = vec![if c.value.is_some() { 3u8 } else { 4u8 }];
            field(&mut rec, &c.tree);
            field(&mut rec, &c.key);
            if let Some(v) = &c.value {
                field(&mut rec, v);
            }
            w.write_all(&rec)?;
            n += 1;
        }
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(n)
    });

    // 2. The copy.
    let path = to.join(FILE);
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let mut out = Records {
        out: std::io::BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    };
    out.out.write_all(MAGIC).map_err(io(&path))?;
    let mut entries = 0u64;
    for name in &names {
        let tree = db.open_tree(name)?;
        for kv in tree.iter() {
            let (k, v) = kv?;
            out.record(1, &[name, &k, &v]).map_err(io(&path))?;
            entries += 1;
        }
    }

    // 3. The cut.
    let cut = Instant::now();
    let guard = store.committer.pause()?;
    stop.store(true, Ordering::Release);
    for w in watchers {
        let _ = w.join();
    }
    drop(guard);
    paused += cut.elapsed();
    let changes = match collector.join() {
        Ok(r) => r.map_err(io(&side_path))?,
        Err(_) => {
            return Err(Error::Io {
                path: side_path.display().to_string(),
                source: std::io::Error::other("the change collector panicked"),
            })
        }
    };

    // 4. The changes, in order, after the copy (already records).
    let mut side = std::fs::File::open(&side_path).map_err(io(&side_path))?;
    std::io::copy(&mut side, &mut out).map_err(io(&side_path))?;
    let _ = std::fs::remove_file(&side_path);

    // 5. The documents, then the digest.
    let mut documents = 0u64;
    for (rel, p) in transfer::documents(data_dir)? {
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            // Removed meanwhile (a voided label's file): not needed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&p)(e)),
        };
        out.record(2, &[rel.as_bytes(), &bytes])
            .map_err(io(&path))?;
        documents += 1;
    }
    let digest = out.hash.finalize();
    let mut end = vec![0u8];
    field(&mut end, &digest);
    out.out.write_all(&end).map_err(io(&path))?;
    let file = out
        .out
        .into_inner()
        .map_err(|e| io(&path)(e.into_error()))?;
    file.sync_all().map_err(io(&path))?;
    let bytes = file.metadata().map_err(io(&path))?.len();
    drop(file);
    let sha256 = hex::encode(digest);
    let tenant = crate::tenant::read(store).ok().flatten();
    let manifest = Manifest {
        format: 1,
        started_ms,
        finished_ms: now_ms(),
        tenant: tenant.as_ref().map(|t| t.id.clone()),
        epoch: tenant.map(|t| t.epoch),
        trees: names.len(),
        entries,
        changes,
        documents,
        paused_ms: paused.as_secs_f64() * 1000.0,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        file: FILE.into(),
        bytes,
        sha256,
    };
    let mpath = to.join(MANIFEST);
    let mut m = std::fs::File::create(&mpath).map_err(io(&mpath))?;
    m.write_all(&serde_json::to_vec_pretty(&manifest)?)
        .and_then(|()| m.sync_all())
        .map_err(io(&mpath))?;
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(io(to))?;
    Ok(manifest)
}

/// The backup file being written: every byte after the header also goes
/// into the digest of the trailer (what import checks).
struct Records {
    out: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
}

impl Records {
    /// A record of `kind` with its fields, as [`field`] lays them out,
    /// without building it in memory first.
    fn record(&mut self, kind: u8, fields: &[&[u8]]) -> std::io::Result<()> {
        self.write_all(&[kind])?;
        for f in fields {
            self.write_all(&(f.len() as u32).to_le_bytes())?;
            self.write_all(f)?;
        }
        Ok(())
    }
}

impl Write for Records {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    pub summary: transfer::Summary,
    pub data_dir: PathBuf,
}

/// Restores the backup in folder `from` into the new data directory
/// `data_dir`: the file is checked against the manifest, imported (copy,
/// then changes, then documents; checked against its digest), and the
/// order indexes checked against the checkpoints. Nothing is kept on any
/// failure.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored, Error> {
    let mpath = from.join(MANIFEST);
    let text = std::fs::read(&mpath).map_err(|_| Error::NoManifest(from.display().to_string()))?;
    let manifest: Manifest = serde_json::from_slice(&text)?;
    let path = from.join(&manifest.file);
    let mut input =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).map_err(io(&path))?);
    // Import checks every record against the trailer's digest, and the
    // trailer must be the one the manifest names.
    let (summary, db) = transfer::import_open(&mut input, data_dir)?;
    if summary.checksum != manifest.sha256 {
        drop(db);
        let _ = std::fs::remove_dir_all(data_dir);
        return Err(Error::Damaged {
            stored: manifest.sha256.clone(),
            computed: summary.checksum,
        });
    }
    let checked = (|| -> Result<Vec<String>, Error> {
        let orders = db.open_tree("orders")?;
        let bad = super::index::check(&orders, &db.open_tree("archive")?, 20)?;
        db.open_tree("cursors")?
            .insert(RESTORED_KEY, &now_ms().to_be_bytes())?;
        db.flush()?;
        Ok(bad)
    })();
    drop(db);
    match checked {
        Ok(bad) if bad.is_empty() => Ok(Restored {
            manifest,
            summary,
            data_dir: data_dir.to_path_buf(),
        }),
        Ok(bad) => {
            let _ = std::fs::remove_dir_all(data_dir);
            Err(Error::Indexes(bad))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(data_dir);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Op, Tree};

    #[test]
    fn a_backup_restores_what_the_store_held() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data, 1 << 20, 8).unwrap();
        fn put(k: &str, v: &str) -> Op {
            Op::Put {
                tree: Tree::Cursors,
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            }
        }
        store
            .committer
            .commit_blocking(vec![put("a", "1"), put("b", "2")])
            .unwrap();
        std::fs::create_dir_all(data.join("documents/o1")).unwrap();
        std::fs::write(data.join("documents/o1/label-0.pdf"), b"%PDF-1.4").unwrap();
        // Writes keep coming while it is taken.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut ops = vec![put(&format!("k{}", i % 50), &format!("v{i}"))];
                    if i % 7 == 0 {
                        ops.push(Op::Del {
                            tree: Tree::Cursors,
                            key: format!("k{}", (i + 3) % 50).into_bytes(),
                        });
                    }
                    store.committer.commit_blocking(ops).unwrap();
                    i += 1;
                }
                i
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        let to = dir.path().join("backup");
        let m = backup(&store, &data, &to).unwrap();
        stop.store(true, Ordering::Relaxed);
        let writes = writer.join().unwrap();
        assert!(m.changes > 0, "{m:?} after {writes} writes");
        assert_eq!(m.documents, 1);
        drop(store);
        let restored = dir.path().join("restored");
        let r = restore(&to, &restored).unwrap();
        assert_eq!(r.summary.checksum, m.sha256);
        let db = sled::open(&restored).unwrap();
        let t = db.open_tree("cursors").unwrap();
        assert_eq!(t.get("b").unwrap().unwrap().as_ref(), b"2");
        assert_eq!(
            std::fs::read(restored.join("documents/o1/label-0.pdf")).unwrap(),
            b"%PDF-1.4"
        );
    }
}
