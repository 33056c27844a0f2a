//! The daemon: wires the store, the workflows, the actors, intake, timers
//! and the HTTP server together, recovers, serves, and shuts down
//! gracefully.
//!
//! [`Daemon::start`] returns once the server listens (recovery runs on, and
//! `/readyz` turns 200 when it is done); [`Daemon::shutdown`] stops intake,
//! lets in-flight steps reach a checkpoint within the grace period and
//! flushes. [`run`] is the binary's whole life: start, wait for a signal
//! (SIGHUP reloads workflows), shut down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::actors::RuntimeHandle;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::runtime::effects::Executor;
use crate::runtime::intake::Intake;
use crate::runtime::{timers, Clock, Registry};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("loading workflows: {0}")]
    Runtime(#[from] crate::runtime::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Daemon {
    pub addr: SocketAddr,
    pub runtime: RuntimeHandle,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub ready: Arc<AtomicBool>,
    stop: CancellationToken,
    server: actix_web::dev::ServerHandle,
    grace: Duration,
}

impl Daemon {
    /// Starts everything inside the current actix `System`.
    pub async fn start(cfg: Config, clock: Clock) -> Result<Daemon, Error> {
        let metrics = crate::metrics::install();
        std::fs::create_dir_all(&cfg.store.data_dir).map_err(|source| Error::DataDir {
            path: cfg.store.data_dir.display().to_string(),
            source,
        })?;
        let store = Store::open(
            &cfg.store.data_dir,
            cfg.store.cache_bytes,
            cfg.store.max_batch,
        )?;
        let registry = Arc::new(Registry::load(cfg.workflows.dir.clone(), store.clone()).await?);
        for d in registry.current().definitions.iter() {
            tracing::info!(workflow = %d.key(), path = %d.path, "Workflow loaded");
        }
        let executor = Executor::new(cfg.actions.http_timeout.0);
        let runtime = RuntimeHandle::start(
            store.clone(),
            registry.clone(),
            executor,
            clock.clone(),
            cfg.runtime.clone(),
            cfg.runtime.arbiters,
        );
        let intake = Intake::new(store.clone(), runtime.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let state = AppState {
            intake: intake.clone(),
            runtime: runtime.clone(),
            store: store.clone(),
            registry: registry.clone(),
            ready: ready.clone(),
            metrics,
        };
        let max_body = cfg.server.max_body_bytes;
        let listen = cfg.server.listen.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(http::routes)
        })
        .workers(2)
        .shutdown_timeout(cfg.runtime.shutdown_grace.0.as_secs().max(1))
        .disable_signals()
        .bind(&listen)
        .map_err(|source| Error::Listen {
            addr: listen.clone(),
            source,
        })?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| Error::Listen {
                addr: listen.clone(),
                source: std::io::Error::other("no address bound"),
            })?;
        let server = server.run();
        let server_handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        let stop = CancellationToken::new();
        actix::spawn(timers::run(
            store.clone(),
            runtime.clone(),
            clock,
            stop.clone(),
        ));
        // Recovery: orders with effects in flight get their actor back (it
        // re-issues them with the same keys); stored events not yet applied
        // are delivered; timers are simply due.
        let rec_runtime = runtime.clone();
        let rec_store = store.clone();
        let rec_ready = ready.clone();
        actix::spawn(async move {
            let started = std::time::Instant::now();
            let running = rec_store.running().unwrap_or_default();
            for id in &running {
                let _ = rec_runtime.wake(id).await;
            }
            let redelivered = intake.redeliver_inbox().await.unwrap_or(0);
            rec_ready.store(true, Ordering::Release);
            tracing::info!(
                resumed = running.len(),
                redelivered,
                took_ms = started.elapsed().as_millis() as u64,
                "Recovery finished; ready"
            );
        });
        tracing::info!(%addr, data_dir = %cfg.store.data_dir.display(), "orderflow listening");
        Ok(Daemon {
            addr,
            runtime,
            store,
            registry,
            ready,
            stop,
            server: server_handle,
            grace: cfg.runtime.shutdown_grace.0,
        })
    }

    /// Stops intake, waits (up to the grace period) for in-flight steps to
    /// reach a checkpoint, flushes.
    pub async fn shutdown(self) {
        tracing::info!("Shutting down: intake stopped, letting in-flight steps finish");
        self.server.stop(true).await;
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.runtime.effects_in_process() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        let left = self.runtime.effects_in_process();
        if left > 0 {
            tracing::warn!(
                effects = left,
                "Grace period over; unfinished effects are re-issued on the next start"
            );
        }
        if let Err(e) = self.store.db.flush_async().await {
            tracing::error!(error = %e, "Final flush failed");
        }
        tracing::info!("Stopped");
    }
}

/// The daemon's whole life, for `orderflow run`.
pub async fn run(cfg: Config) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let daemon = Daemon::start(cfg, Clock::system()).await?;
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("Could not install signal handlers");
            daemon.shutdown().await;
            return Ok(());
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match daemon.registry.reload().await {
                    Ok(keys) => tracing::info!(workflows = ?keys, "Workflows reloaded"),
                    Err(e) => tracing::warn!(error = %e, "Workflow reload rejected; the previous versions keep running"),
                }
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}
