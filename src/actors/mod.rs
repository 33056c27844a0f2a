//! The actors: a [`supervisor::Supervisor`] that knows which orders have a
//! live actor, and one [`order::OrderActor`] per active order.
//!
//! Callers never touch an `Addr`: they hold a [`RuntimeHandle`], which
//! finds (or spawns) the order's actor, sends with `send().await` (bounded
//! mailboxes are backpressure), and rebuilds an actor whose mailbox turned
//! out closed (it died) before trying again.

pub mod order;
pub mod supervisor;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use parking_lot::Mutex;

use crate::config::RuntimeConfig;
use crate::runtime::core::Msg;
use crate::runtime::effects::Executor;
use crate::runtime::{Clock, Error, Registry};
use crate::store::Store;

use self::order::{Archive, Die, OrderActor, Process};
use self::supervisor::{Count, Dead, GetOrSpawn, Supervisor};

/// An actor stopped (idle, or after a failure); the supervisor forgets it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Passivated {
    pub order_id: String,
    pub addr: Addr<OrderActor>,
}

/// What every order actor shares.
pub struct Shared {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub executor: Executor,
    pub clock: Clock,
    pub config: RuntimeConfig,
    /// Idempotency keys of effects running in this process right now.
    pub in_process: Mutex<HashSet<String>>,
    handle: OnceLock<RuntimeHandle>,
    /// Told the id of every order whose workflow finishes (load tools and
    /// benchmarks measure start → completion with it).
    pub on_finished: OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The id of every order whose checkpoint just landed, for live views
    /// (the console's server-sent events). Sent only while someone listens;
    /// a slow listener lags and skips, it never slows an order.
    pub changes: tokio::sync::broadcast::Sender<String>,
    /// How many actors are live, and whether they should make room for
    /// orders waiting to start ([`crate::runtime::admission`]).
    pub pressure: Arc<crate::runtime::admission::Pressure>,
    /// Checkpoints landed so far (what live views are computed from).
    pub generation: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn handle(&self) -> Option<RuntimeHandle> {
        self.handle.get().cloned()
    }

    /// Tells live views that `order_id`'s checkpoint changed.
    pub fn publish_change(&self, order_id: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(order_id.to_string());
        }
    }

    fn supervisor_signal(&self, p: Passivated) {
        if let Some(h) = self.handle.get() {
            // A rare signal, not work: `do_send` is right here.
            h.supervisor.do_send(p);
        }
    }
}

/// The runtime as callers see it. Cheap to clone.
#[derive(Clone)]
pub struct RuntimeHandle {
    supervisor: Addr<Supervisor>,
    pub shared: Arc<Shared>,
}

impl RuntimeHandle {
    /// Starts the supervisor on the current arbiter and `arbiters` threads
    /// for order actors (0: everything on the current arbiter, as tests
    /// with paused time need).
    pub fn start(
        store: Store,
        registry: Arc<Registry>,
        executor: Executor,
        clock: Clock,
        config: RuntimeConfig,
        arbiters: usize,
    ) -> RuntimeHandle {
        let shared = Arc::new(Shared {
            store,
            registry,
            executor,
            clock,
            config,
            in_process: Mutex::new(HashSet::new()),
            handle: OnceLock::new(),
            on_finished: OnceLock::new(),
            changes: tokio::sync::broadcast::channel(4096).0,
            pressure: Arc::default(),
            generation: Default::default(),
        });
        let arbs: Vec<ArbiterHandle> = (0..arbiters).map(|_| Arbiter::new().handle()).collect();
        let supervisor = Supervisor::new(shared.clone(), arbs).start();
        let h = RuntimeHandle {
            supervisor,
            shared: shared.clone(),
        };
        let _ = shared.handle.set(h.clone());
        h
    }

    /// Delivers a message to an order's actor and waits until its effect
    /// on the order is durable.
    pub async fn deliver(&self, order_id: &str, msg: Msg) -> Result<(), Error> {
        for _ in 0..3 {
            let addr = self
                .supervisor
                .send(GetOrSpawn(order_id.to_string()))
                .await
                .map_err(|_| Error::ShuttingDown)?;
            match addr.send(Process(msg.clone())).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(order_id = %order_id, error = %e, "Delivery failed");
                    return Err(e);
                }
                Err(MailboxError::Closed) | Err(MailboxError::Timeout) => {
                    let _ = self
                        .supervisor
                        .send(Dead {
                            order_id: order_id.to_string(),
                            addr,
                        })
                        .await;
                }
            }
        }
        Err(Error::ActorUnavailable(order_id.to_string()))
    }

    /// Moves a finished order to the archive through its own actor (see
    /// [`order::Archive`]): `Ok(false)` when it changed meanwhile.
    pub async fn archive(
        &self,
        order_id: &str,
        updated_ms: i64,
        ops: Vec<crate::store::Op>,
    ) -> Result<bool, Error> {
        let addr = self
            .supervisor
            .send(GetOrSpawn(order_id.to_string()))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        match addr.send(Archive { updated_ms, ops }).await {
            Ok(r) => r,
            Err(_) => Err(Error::ActorUnavailable(order_id.to_string())),
        }
    }

    /// Makes sure the order has a live actor (which re-issues its
    /// unfinished effects as it starts).
    pub async fn wake(&self, order_id: &str) -> Result<(), Error> {
        self.supervisor
            .send(GetOrSpawn(order_id.to_string()))
            .await
            .map(|_| ())
            .map_err(|_| Error::ShuttingDown)
    }

    pub async fn active_actors(&self) -> usize {
        self.supervisor.send(Count).await.unwrap_or(0)
    }

    /// Kills an order's actor without telling the supervisor, as a crash
    /// inside it would. For tests of the supervisor's rebuild.
    pub async fn kill_actor(&self, order_id: &str) {
        if let Ok(addr) = self.supervisor.send(GetOrSpawn(order_id.to_string())).await {
            let _ = addr.send(Die).await;
        }
    }

    /// Effects running in this process right now.
    pub fn effects_in_process(&self) -> usize {
        self.shared.in_process.lock().len()
    }
}
