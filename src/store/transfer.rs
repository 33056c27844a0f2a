//! A closed store as one file, and back: `orderflow store export | import
//! | checksum`, for moving a tenant to another cell.
//!
//! The file holds every sled tree (its name, then each key and value in key
//! order) and every file under the data directory's `documents/` (labels to
//! print) and `archive/` (archived orders), then a SHA-256 over all of it. `checksum` computes the same
//! digest from a store in place, so `checksum` at the source, the export's
//! trailer and `checksum` after `import` must all agree.
//!
//! Record format (all lengths u32 little-endian): a magic line, then
//! records `1 name key value` (a tree entry), `2 path bytes` (a document),
//! `0 digest` (the end, 32 bytes). The digest covers every record before it.
//! A backup taken while the daemon runs ([`super::backup`]) adds, after the
//! copy's records, the changes made while it was read: `3 name key value`
//! (set) and `4 name key` (removed), applied in order on import.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub(super) const MAGIC: &[u8] = b"ORDERFLOW-STORE-EXPORT v1\n";
/// Bounds on what a record may claim, so a damaged file is an error, not
/// an allocation of gigabytes.
const MAX_FIELD: u32 = 256 << 20;

/// Errors of export, import and checksum.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an orderflow store export (bad header)")]
    NotAnExport,
    #[error("the export is damaged: {0}")]
    Damaged(String),
    #[error(
        "the export's checksum {stored} does not match its content {computed}: nothing was kept"
    )]
    Checksum { stored: String, computed: String },
    #[error("{0} is not empty: import only into a new data directory")]
    NotEmpty(String),
}

/// What was read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub trees: usize,
    pub entries: u64,
    pub documents: u64,
    /// SHA-256, hex.
    pub checksum: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} trees, {} entries, {} documents, sha256 {}",
            self.trees, self.entries, self.documents, self.checksum
        )
    }
}

pub(super) fn field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Every document under `dir/documents`, as (relative path, absolute path),
/// in a stable order.
pub(super) fn documents(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    // The label documents and the archive files (`crate::retention`; only
    // ever appended to, so a copy taken after the cut holds every member
    // the copied archive tree points at).
    let mut stack = vec![dir.join("documents"), dir.join(crate::retention::DIR)];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for e in rd {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let rel = rel.to_string_lossy().into_owned();
                // Half-written temporaries are not documents.
                if !rel.rsplit('/').next().is_some_and(|n| n.starts_with('.')) {
                    out.push((rel, p));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Walks the store and its documents, handing each record to `sink`.
fn walk(
    db: &sled::Db,
    dir: &Path,
    mut sink: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<Summary, Error> {
    let mut hash = Sha256::new();
    let (mut trees, mut entries, mut docs) = (0, 0, 0);
    let mut names = db.tree_names();
    names.sort();
    for name in names {
        let tree = db.open_tree(&name)?;
        trees += 1;
        for kv in tree.iter() {
            let (k, v) = kv?;
            let mut rec = vec![1u8];
            field(&mut rec, &name);
            field(&mut rec, &k);
            field(&mut rec, &v);
            hash.update(&rec);
            sink(&rec)?;
            entries += 1;
        }
    }
    for (rel, path) in documents(dir)? {
        let mut rec = vec![2u8];
        field(&mut rec, rel.as_bytes());
        field(&mut rec, &std::fs::read(path)?);
        hash.update(&rec);
        sink(&rec)?;
        docs += 1;
    }
    Ok(Summary {
        trees,
        entries,
        documents: docs,
        checksum: hex::encode(hash.finalize()),
    })
}

/// The digest of a store in place (its daemon stopped).
pub fn checksum(db: &sled::Db, dir: &Path) -> Result<Summary, Error> {
    walk(db, dir, |_| Ok(()))
}

/// Writes the store and its documents to `out`.
pub fn export(db: &sled::Db, dir: &Path, out: &mut impl Write) -> Result<Summary, Error> {
    out.write_all(MAGIC)?;
    let s = walk(db, dir, |rec| Ok(out.write_all(rec)?))?;
    let mut end = vec![0u8];
    let digest = hex::decode(&s.checksum).map_err(|e| Error::Damaged(e.to_string()))?;
    field(&mut end, &digest);
    out.write_all(&end)?;
    out.flush()?;
    Ok(s)
}

fn read_field(r: &mut impl Read) -> Result<Vec<u8>, Error> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| Error::Damaged(format!("truncated: {e}")))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FIELD {
        return Err(Error::Damaged(format!("a field claims {len} bytes")));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)
        .map_err(|e| Error::Damaged(format!("truncated: {e}")))?;
    Ok(b)
}

/// Reads an export into `dir`, which must be new or empty. The store is
/// flushed and the documents synced; on a damaged file or a checksum that
/// does not match, the directory is removed again.
pub fn import(input: &mut impl Read, dir: &Path) -> Result<Summary, Error> {
    import_open(input, dir).map(|(s, _)| s)
}

/// [`import`], handing back the imported database still open (sled holds
/// its folder's lock until the last handle is dropped).
pub fn import_open(input: &mut impl Read, dir: &Path) -> Result<(Summary, sled::Db), Error> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Error::NotEmpty(dir.display().to_string()));
    }
    let r = import_into(input, dir);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

fn import_into(input: &mut impl Read, dir: &Path) -> Result<(Summary, sled::Db), Error> {
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| Error::NotAnExport)?;
    if magic != MAGIC {
        return Err(Error::NotAnExport);
    }
    std::fs::create_dir_all(dir)?;
    let db = sled::Config::new().path(dir).open()?;
    let mut hash = Sha256::new();
    let (mut entries, mut docs) = (0u64, 0u64);
    let mut trees = std::collections::BTreeSet::new();
    loop {
        let mut kind = [0u8; 1];
        input
            .read_exact(&mut kind)
            .map_err(|e| Error::Damaged(format!("truncated: {e}")))?;
        match kind[0] {
            1 => {
                let (name, k, v) = (read_field(input)?, read_field(input)?, read_field(input)?);
                let mut rec = vec![1u8];
                field(&mut rec, &name);
                field(&mut rec, &k);
                field(&mut rec, &v);
                hash.update(&rec);
                db.open_tree(&name)?.insert(k, v)?;
                trees.insert(name);
                entries += 1;
            }
            3 | 4 => {
                let name = read_field(input)?;
                let k = read_field(input)?;
                let mut rec = vec![kind[0]];
                field(&mut rec, &name);
                field(&mut rec, &k);
                let tree = db.open_tree(&name)?;
                if kind[0] == 3 {
                    let v = read_field(input)?;
                    field(&mut rec, &v);
                    tree.insert(k, v)?;
                } else {
                    tree.remove(k)?;
                }
                hash.update(&rec);
                trees.insert(name);
                entries += 1;
            }
            2 => {
                let (rel, bytes) = (read_field(input)?, read_field(input)?);
                let rel = String::from_utf8(rel.clone())
                    .map_err(|_| Error::Damaged("a document path is not UTF-8".into()))?;
                // Only plain relative paths under documents/ and archive/.
                let p = Path::new(&rel);
                let archive = format!("{}/", crate::retention::DIR);
                if !(rel.starts_with("documents/") || rel.starts_with(&archive))
                    || p.components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    return Err(Error::Damaged(format!("document path {rel:?}")));
                }
                let mut rec = vec![2u8];
                field(&mut rec, rel.as_bytes());
                field(&mut rec, &bytes);
                hash.update(&rec);
                let path = dir.join(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut f = std::fs::File::create(&path)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                docs += 1;
            }
            0 => {
                let stored = hex::encode(read_field(input)?);
                let computed = hex::encode(hash.finalize());
                if stored != computed {
                    return Err(Error::Checksum { stored, computed });
                }
                db.flush()?;
                // The default tree is always there; count what the source had.
                let names = db.tree_names().len().max(trees.len());
                return Ok((
                    Summary {
                        trees: names,
                        entries,
                        documents: docs,
                        checksum: computed,
                    },
                    db,
                ));
            }
            k => return Err(Error::Damaged(format!("unknown record kind {k}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_import_and_checksum_agree_and_damage_is_refused() {
        let src = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(src.path()).open().unwrap();
            db.open_tree("orders").unwrap().insert("o1", "v1").unwrap();
            db.open_tree("labels").unwrap().insert("o/1", "x").unwrap();
            db.insert("meta", "m").unwrap();
            db.flush().unwrap();
        }
        std::fs::create_dir_all(src.path().join("documents/576")).unwrap();
        std::fs::write(src.path().join("documents/576/label-0.pdf"), b"%PDF-1.5 x").unwrap();
        std::fs::create_dir_all(src.path().join("archive")).unwrap();
        std::fs::write(
            src.path().join("archive/2026-01-02.jsonl.gz"),
            b"\x1f\x8b archived",
        )
        .unwrap();
        std::fs::write(
            src.path().join("documents/576/.label-1.pdf.tmp"),
            b"partial",
        )
        .unwrap();
        let db = sled::Config::new().path(src.path()).open().unwrap();
        let before = checksum(&db, src.path()).unwrap();
        let mut file = Vec::new();
        let exported = export(&db, src.path(), &mut file).unwrap();
        assert_eq!(exported, before);
        assert_eq!((exported.entries, exported.documents), (3, 2));
        drop(db);

        let dst = tempfile::tempdir().unwrap();
        let to = dst.path().join("data");
        let imported = import(&mut file.as_slice(), &to).unwrap();
        assert_eq!(imported.checksum, before.checksum);
        let db2 = sled::Config::new().path(&to).open().unwrap();
        assert_eq!(checksum(&db2, &to).unwrap().checksum, before.checksum);
        assert_eq!(
            std::fs::read(to.join("archive/2026-01-02.jsonl.gz")).unwrap(),
            b"\x1f\x8b archived"
        );
        assert_eq!(
            std::fs::read(to.join("documents/576/label-0.pdf")).unwrap(),
            b"%PDF-1.5 x"
        );
        drop(db2);

        // Not into a store that has data.
        assert!(matches!(
            import(&mut file.as_slice(), &to),
            Err(Error::NotEmpty(_))
        ));
        // A flipped byte, a cut file, a wrong header: refused, nothing kept.
        let bad = dst.path().join("bad");
        let mut flipped = file.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        assert!(import(&mut flipped.as_slice(), &bad).is_err());
        assert!(!bad.exists());
        assert!(import(&mut &file[..file.len() - 5], &bad).is_err());
        assert!(matches!(
            import(&mut &b"hello"[..], &bad),
            Err(Error::NotAnExport)
        ));
    }
}
