//! Secrets at rest: shop tokens are sealed with XChaCha20-Poly1305 under a
//! key kept outside the data directory (`[secrets] key_file`), so a copy
//! of the data directory without the key reveals no token.
//!
//! The key file holds 64 hex characters (256 bits). It is created with mode
//! 0600 on first start when absent; one readable by others is refused. Each
//! sealed value is `version (1) ‖ nonce (24) ‖ ciphertext+tag`, bound to
//! what it is (`aad`, e.g. the grant and the field), so a sealed value
//! cannot be moved to another record and still open.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::Digest;

const VERSION: u8 = 1;
const NONCE: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secrets key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secrets key file {path} is not 64 hex characters (a 256-bit key)")]
    BadKey { path: PathBuf },
    #[error(
        "secrets key file {path} is readable by group or others (mode {mode:o}); `chmod 600` it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    /// The sealed value is not ours: another key, or tampered with.
    #[error(
        "a sealed secret does not open with this key (another key file, or the data was altered)"
    )]
    WrongKey,
    #[error("a sealed secret is truncated or of an unknown version")]
    Malformed,
}

/// Seals and opens secrets with the operator's key. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Keys fingerprints, so no stored fingerprint helps a guesser without
    /// the key file.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// Reads the key at `path`, creating it (mode 0600, 256 random bits)
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Sealer, Error> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::Exposed {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(mut f) => {
                        f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                            .map_err(io)?;
                        f.sync_all().map_err(io)?;
                        tracing::warn!(path = %path.display(), "Created a new secrets key: keep it (and back it up) apart from the data directory; without it the stored shop tokens cannot be read");
                    }
                    // Another process created it first: read theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bytes = hex::decode(text.trim()).map_err(|_| Error::BadKey {
            path: path.to_path_buf(),
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| Error::BadKey {
            path: path.to_path_buf(),
        })?;
        Ok(Sealer::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> Sealer {
        let mut mac = sha2::Sha256::new();
        mac.update(b"orderflow fingerprint key\0");
        mac.update(key);
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
            mac_key: mac.finalize().into(),
        }
    }

    /// `plain` sealed and bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            // Encryption fails only for inputs beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// What [`Sealer::seal`] sealed with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < 1 + NONCE + 16 || sealed[0] != VERSION {
            return Err(Error::Malformed);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..1 + NONCE]),
                Payload {
                    msg: &sealed[1 + NONCE..],
                    aad,
                },
            )
            .map_err(|_| Error::WrongKey)
    }

    /// A keyed fingerprint of a secret: equal secrets, equal prints; the
    /// print reveals nothing without the key.
    pub fn fingerprint(&self, secret: &str) -> String {
        use hmac::Mac;
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut m) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.mac_key) else {
            return String::new();
        };
        m.update(secret.as_bytes());
        hex::encode(&m.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_binding() {
        let a = Sealer::from_key([7; 32]);
        let b = Sealer::from_key([8; 32]);
        let s = a.seal(b"grant:1/access", b"TTP_token");
        assert!(!s.windows(9).any(|w| w == b"TTP_token"));
        assert_eq!(a.open(b"grant:1/access", &s).unwrap(), b"TTP_token");
        assert!(matches!(
            b.open(b"grant:1/access", &s),
            Err(Error::WrongKey)
        ));
        assert!(matches!(
            a.open(b"grant:2/access", &s),
            Err(Error::WrongKey)
        ));
        assert!(matches!(a.open(b"x", &s[..10]), Err(Error::Malformed)));
        assert_ne!(
            a.seal(b"x", b"y"),
            a.seal(b"x", b"y"),
            "fresh nonce each time"
        );
        assert_eq!(a.fingerprint("t"), a.fingerprint("t"));
        assert_ne!(a.fingerprint("t"), b.fingerprint("t"));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let a = Sealer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = a.seal(b"k", b"v");
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open(b"k", &sealed).unwrap(), b"v");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Sealer::load_or_create(&path),
            Err(Error::Exposed { .. })
        ));
        std::fs::write(dir.path().join("bad.key"), "nothex").unwrap();
        std::fs::set_permissions(
            dir.path().join("bad.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(matches!(
            Sealer::load_or_create(&dir.path().join("bad.key")),
            Err(Error::BadKey { .. })
        ));
    }
}
