//! The disk guard: whether the store can take writes.
//!
//! sled 0.34.7 does not survive running out of disk in-process. When a
//! write of its log fails (ENOSPC included) it records a *global error*:
//! from then on every write and every `flush` of that `sled::Db` returns the
//! same error until the database is opened again, while reads still see the
//! batch that was applied in memory but never reached the disk. A store that
//! kept serving after that would read back things it never stored (a
//! webhook's dedupe key, for one) and acknowledge a redelivery of them.
//!
//! So sled must not be the one to find out the disk is full. Before the
//! group-commit writer applies a batch it asks this guard, which looks at
//! the free space of the data directory's file system (`statvfs`, a few
//! microseconds): below `store.min_free_bytes` the batch is refused with
//! [`Error::DiskFull`] *without touching sled*, the writers are not
//! acknowledged (a webhook gets 503), `/readyz` says "degraded", and the
//! next batch after space returns goes through as usual. Orders whose
//! checkpoint was refused meanwhile stopped their actor; the daemon wakes
//! every order with an effect in flight when space returns
//! ([`DiskGuard::recovered`]), as recovery does after a restart.
//!
//! If sled fails anyway (another process took the last bytes between the
//! check and the write, or an I/O error of any other kind), the guard turns
//! [`Status::Failed`] for good: every later commit is refused with
//! [`Error::Failed`] before sled is touched, intake answers 503 before its
//! duplicate check, and `daemon::run` stops the daemon with exit status 75
//! so the service manager restarts it; the restarted daemon recovers what
//! was flushed, as after a crash.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use tokio::sync::Notify;

use super::Error;
use crate::metrics as m;

/// What the guard last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Writable,
    /// Less free space than the configured minimum: writes are refused
    /// until there is more.
    DiskFull {
        free: u64,
        min: u64,
    },
    /// sled failed a write: nothing more is written until a restart.
    Failed,
}

const WRITABLE: u8 = 0;
const DISK_FULL: u8 = 1;
const FAILED: u8 = 2;

/// Shared by the commit thread, intake and `/readyz`.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    state: AtomicU8,
    free: AtomicU64,
    failed: Notify,
    recovered: Notify,
}

impl DiskGuard {
    /// A guard of the file system holding `dir`; `min_free` 0 turns the
    /// free-space check off (sled then finds a full disk itself).
    pub fn new(dir: PathBuf, min_free: u64) -> DiskGuard {
        metrics::gauge!(m::STORE_WRITABLE).set(1.0);
        DiskGuard {
            dir,
            min_free,
            state: AtomicU8::new(WRITABLE),
            free: AtomicU64::new(u64::MAX),
            failed: Notify::new(),
            recovered: Notify::new(),
        }
    }

    /// Looks at the disk again and says whether a batch may be written.
    pub fn admit(&self) -> Result<(), Error> {
        match self.check() {
            Status::Writable => Ok(()),
            Status::DiskFull { free, min } => Err(Error::DiskFull { free, min }),
            Status::Failed => Err(Error::Failed),
        }
    }

    /// The current status, measuring the free space anew.
    pub fn check(&self) -> Status {
        if self.state.load(Ordering::Acquire) == FAILED {
            return Status::Failed;
        }
        if self.min_free == 0 {
            return Status::Writable;
        }
        let free = match fs2::available_space(&self.dir) {
            Ok(f) => f,
            // Cannot tell: let sled try (it reports real failures).
            Err(_) => return Status::Writable,
        };
        self.free.store(free, Ordering::Relaxed);
        metrics::gauge!(m::STORE_FREE_BYTES).set(free as f64);
        let full = free < self.min_free;
        let new = if full { DISK_FULL } else { WRITABLE };
        let old = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != FAILED).then_some(new)
            })
            .unwrap_or(FAILED);
        if old == FAILED {
            return Status::Failed;
        }
        if old != new {
            if full {
                tracing::error!(
                    free_bytes = free,
                    min_free_bytes = self.min_free,
                    "Disk nearly full: refusing writes (webhooks get 503) until space returns"
                );
            } else {
                tracing::info!(
                    free_bytes = free,
                    "Disk space is back: accepting writes again"
                );
                self.recovered.notify_waiters();
            }
            metrics::gauge!(m::STORE_WRITABLE).set(if full { 0.0 } else { 1.0 });
        }
        if full {
            Status::DiskFull {
                free,
                min: self.min_free,
            }
        } else {
            Status::Writable
        }
    }

    /// The status without measuring (cheap; for hot paths).
    pub fn status(&self) -> Status {
        match self.state.load(Ordering::Acquire) {
            WRITABLE => Status::Writable,
            DISK_FULL => Status::DiskFull {
                free: self.free.load(Ordering::Relaxed),
                min: self.min_free,
            },
            _ => Status::Failed,
        }
    }

    /// sled failed a write: the store takes no more until a restart.
    pub fn fail(&self, e: &Error) {
        if self.state.swap(FAILED, Ordering::AcqRel) != FAILED {
            tracing::error!(error = %e, "The store failed a write; refusing all writes until the daemon restarts");
            metrics::gauge!(m::STORE_WRITABLE).set(-1.0);
            self.failed.notify_waiters();
        }
    }

    /// Resolves the next time writes are accepted again after a full disk.
    pub async fn recovered(&self) {
        self.recovered.notified().await;
    }

    /// Resolves once the store has failed.
    pub async fn failed(&self) {
        loop {
            let n = self.failed.notified();
            if self.state.load(Ordering::Acquire) == FAILED {
                return;
            }
            n.await;
        }
    }
}
