//! The durable runtime: what turns the pure interpreter into orders that
//! move.
//!
//! - [`event`]: the events about an order, as stored in the inbox.
//! - [`core`]: one order's state machine step: an event, an action's result
//!   or a timer in; the next checkpoint, its store operations and the
//!   effects to start out. Synchronous and free of I/O, so the actor that
//!   runs it stays small and the logic is testable without actix.
//! - [`effects`]: performs actions (HTTP calls, order tags, …) with the
//!   idempotency key of the effect.
//! - [`intake`]: durable acceptance of events (the path webhooks use).
//! - [`timers`]: fires due timers from the on-disk timer index.
//! - [`deadlines`]: warns before an order misses its ship-by deadline and
//!   keeps the at-risk gauge current.
//! - [`Registry`]: the workflow definitions in force and every older version
//!   an instance may still run on.
//! - [`Clock`]: the one source of time (tokio's clock, so tests can pause it).

pub mod admission;
pub mod core;
pub mod deadlines;
pub mod effects;
pub mod event;
pub mod intake;
pub mod interventions;
pub mod report;
pub mod timers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::store::{Op, Store, Tree};
use crate::workflow::{Catalog, Definition, Report};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("workflow {0} is not known (neither loaded nor stored)")]
    UnknownWorkflow(String),
    #[error(transparent)]
    Workflow(#[from] crate::workflow::Error),
    #[error("the runtime is shutting down")]
    ShuttingDown,
    #[error("order {0}: its actor is unavailable")]
    ActorUnavailable(String),
    /// The order's checkpoint could not be read: its actor refuses work
    /// (the error is logged where it was met).
    #[error("order {0}: its checkpoint cannot be read")]
    CheckpointUnreadable(String),
}

/// Time for the whole runtime: wall-clock milliseconds at start plus
/// tokio's monotonic time since, so timers and `now` agree. Tests use a
/// [`Clock::manual`] clock they move forward by hand: the commit thread is
/// real I/O, and tokio's paused time would race ahead on its own whenever
/// the runtime waits for a flush.
#[derive(Clone, Debug)]
pub struct Clock {
    base_ms: i64,
    base: tokio::time::Instant,
    offset: Option<Arc<std::sync::atomic::AtomicI64>>,
}

/// Moves a manual clock forward.
#[derive(Clone, Debug)]
pub struct ClockControl(Arc<std::sync::atomic::AtomicI64>);

impl ClockControl {
    pub fn advance(&self, d: std::time::Duration) {
        self.0
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock {
    pub fn system() -> Clock {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock::starting_at(base_ms)
    }

    /// A clock that reads `base_ms` now and then runs with real time.
    pub fn starting_at(base_ms: i64) -> Clock {
        Clock {
            base_ms,
            base: tokio::time::Instant::now(),
            offset: None,
        }
    }

    /// A clock that reads `base_ms` plus real time plus whatever the
    /// control has advanced it by.
    pub fn manual(base_ms: i64) -> (Clock, ClockControl) {
        let off = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let mut c = Clock::starting_at(base_ms);
        c.offset = Some(off.clone());
        (c, ClockControl(off))
    }

    fn offset_ms(&self) -> i64 {
        self.offset
            .as_ref()
            .map_or(0, |o| o.load(std::sync::atomic::Ordering::SeqCst))
    }

    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64 + self.offset_ms()
    }

    /// The tokio instant at which wall-clock `ms` is reached (as far as
    /// anyone can know now).
    pub fn instant_at(&self, ms: i64) -> tokio::time::Instant {
        let delta = (ms - self.base_ms - self.offset_ms()).max(0) as u64;
        self.base + std::time::Duration::from_millis(delta)
    }
}

/// The writes that store every version of `cat`.
fn version_ops(cat: &Catalog) -> Result<Vec<Op>, Error> {
    cat.definitions
        .iter()
        .map(|d| {
            Ok(Op::Put {
                tree: Tree::Definitions,
                key: d.key().into_bytes(),
                value: crate::store::codec::encode(&d.source).map_err(crate::store::Error::from)?,
            })
        })
        .collect()
}

/// The workflows in force, and every version an instance may run on.
pub struct Registry {
    dir: PathBuf,
    store: Store,
    current: RwLock<Arc<Catalog>>,
    versions: RwLock<HashMap<String, Arc<Definition>>>,
    /// The notification channels the configuration defines, once the
    /// daemon has told (see [`Registry::use_channels`]): every later load,
    /// save and validation checks the channels `notify.send` names.
    channels: RwLock<Option<crate::workflow::Channels>>,
}

impl Registry {
    /// Loads `dir` at start. A file that is invalid (a workflow that no
    /// longer passes validation, say after the expression cost limit came
    /// in) is logged with every problem, counted in
    /// `orderflow_workflows_invalid` and skipped: one bad file must not
    /// keep the daemon, and every valid workflow, from starting. Fails only
    /// if the folder cannot be read or the store refuses the versions.
    pub async fn load(dir: PathBuf, store: Store) -> Result<Registry, Error> {
        let r = Registry {
            dir,
            store,
            current: RwLock::new(Arc::new(Catalog::default())),
            versions: RwLock::new(HashMap::new()),
            channels: RwLock::new(None),
        };
        let (cat, invalid) = Catalog::load_valid(std::slice::from_ref(&r.dir))?;
        for report in &invalid {
            tracing::error!(
                path = %report.path,
                problems = report.diagnostics.len(),
                "Workflow file is invalid and was skipped:\n{report}"
            );
        }
        metrics::gauge!(crate::metrics::WORKFLOWS_INVALID).set(invalid.len() as f64);
        let ops = version_ops(&cat)?;
        match r.store.commit(ops.clone()).await {
            Ok(()) => {}
            // A disk below the free-space floor at start: the daemon starts
            // degraded (writes refused, `/readyz` 503, webhooks 503) rather
            // than exits, with the workflows in force from memory; their
            // versions are stored as soon as the disk takes writes again,
            // before any instance on them can checkpoint much (every
            // checkpoint is refused meanwhile too).
            Err(crate::store::Error::DiskFull { free, min }) => {
                tracing::error!(
                    free_bytes = free,
                    min_free_bytes = min,
                    "Disk nearly full at start: serving degraded (writes refused) until space returns"
                );
                let store = r.store.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        match store.commit(ops.clone()).await {
                            Ok(()) => {
                                tracing::info!(
                                    "Workflow versions stored now that the disk takes writes"
                                );
                                return;
                            }
                            Err(crate::store::Error::DiskFull { .. }) => continue,
                            Err(e) => {
                                tracing::error!(error = %e, "Could not store the workflow versions");
                                return;
                            }
                        }
                    }
                });
            }
            Err(e) => return Err(e.into()),
        }
        r.put_in_force(cat);
        Ok(r)
    }

    /// Makes `cat` the workflows in force, every version of it reachable.
    fn put_in_force(&self, cat: Catalog) {
        {
            let mut v = self.versions.write();
            for d in &cat.definitions {
                v.insert(d.key(), d.clone());
            }
        }
        *self.current.write() = Arc::new(cat);
    }

    /// Re-reads the folder. A folder with any invalid file is rejected with
    /// its errors and the workflows in force stay as they were. Every
    /// version loaded is stored, so instances on it survive later edits.
    pub async fn reload(&self) -> Result<Vec<String>, Error> {
        let channels = self.channels();
        let cat = Catalog::load_with(std::slice::from_ref(&self.dir), channels.as_ref())?;
        let keys = self.install(cat).await?;
        metrics::gauge!(crate::metrics::WORKFLOWS_INVALID).set(0.0);
        Ok(keys)
    }

    /// Stores every version of `cat` and puts it in force.
    async fn install(&self, cat: Catalog) -> Result<Vec<String>, Error> {
        self.store.commit(version_ops(&cat)?).await?;
        let keys = cat.definitions.iter().map(|d| d.key()).collect();
        self.put_in_force(cat);
        Ok(keys)
    }

    /// Takes the notification channels the configuration defines, and
    /// checks the workflows in force against them: one that names a
    /// channel not defined is taken out of force, logged with the
    /// `line:col` of the name and counted in `orderflow_workflows_invalid`
    /// (as an invalid file is at start; versions already running keep
    /// running, and a send to a channel that does not exist stops the
    /// order for an operator). Every later reload, save and validation
    /// checks the same. With no channel defined, notifications are off:
    /// the workflows that would send are named in a warning. Returns the
    /// reports of the workflows taken out.
    pub fn use_channels(&self, channels: crate::workflow::Channels) -> Vec<Report> {
        *self.channels.write() = Some(channels.clone());
        let cat = self.current();
        let mut kept = Vec::new();
        let mut invalid = Vec::new();
        for d in &cat.definitions {
            match crate::workflow::parse_workflow_with(&d.path, &d.source, Some(&channels)) {
                Ok(_) => kept.push(d.clone()),
                Err(r) => invalid.push(r),
            }
        }
        for report in &invalid {
            tracing::error!(
                path = %report.path,
                problems = report.diagnostics.len(),
                "Workflow names a notification channel the configuration does not define; it was taken out of force:\n{report}"
            );
        }
        if !invalid.is_empty() {
            metrics::gauge!(crate::metrics::WORKFLOWS_INVALID).increment(invalid.len() as f64);
            *self.current.write() = Arc::new(Catalog { definitions: kept });
        }
        if channels.is_empty() {
            let senders: Vec<String> = self
                .current()
                .definitions
                .iter()
                .filter(|d| d.sends_notifications())
                .map(|d| d.name.clone())
                .collect();
            if !senders.is_empty() {
                tracing::warn!(
                    workflows = %senders.join(", "),
                    "Notifications are off: [notify.channels] defines no channel, so the notify.send steps of these workflows send nothing (each one's audit says so)"
                );
            }
        }
        invalid
    }

    /// The notification channels workflows are checked against, once
    /// known.
    pub fn channels(&self) -> Option<crate::workflow::Channels> {
        self.channels.read().clone()
    }

    /// The folder the workflows are read from.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn current(&self) -> Arc<Catalog> {
        self.current.read().clone()
    }

    /// A definition by `name@version`: from memory, else from the store.
    /// A stored version that no longer passes validation is an
    /// [`Error::Workflow`]: the orders on it stop with that reason (see
    /// `core::process`), nothing else does.
    pub fn get(&self, key: &str) -> Result<Arc<Definition>, Error> {
        if let Some(d) = self.versions.read().get(key) {
            return Ok(d.clone());
        }
        let stored = self
            .store
            .trees
            .definitions
            .get(key.as_bytes())
            .map_err(crate::store::Error::from)?
            .ok_or_else(|| Error::UnknownWorkflow(key.to_string()))?;
        let source: String =
            crate::store::codec::decode(&stored).map_err(crate::store::Error::from)?;
        let def = crate::workflow::parse_workflow(&format!("<stored {key}>"), &source)
            .map_err(|r| crate::workflow::Error::Invalid(vec![r]))?;
        let def = Arc::new(def);
        self.versions.write().insert(key.to_string(), def.clone());
        Ok(def)
    }

    /// Versions known in memory, with their keys.
    pub fn versions(&self) -> Vec<Arc<Definition>> {
        let mut v: Vec<_> = self.versions.read().values().cloned().collect();
        v.sort_by_key(|d| d.key());
        v
    }
}
