//! Intake: how an event about an order enters the daemon.
//!
//! The rule is "acknowledged only after it is durably stored": an event is
//! deduplicated, written to the inbox under group commit, and only then is
//! the caller (a webhook sender, the poller, an operator) told it was
//! received. Delivery to the order's actor happens after, and the inbox
//! entry is removed in the same checkpoint that applies the event — so a
//! crash between the two redelivers it on recovery. How many orders are
//! delivered at once is bounded by admission ([`super::admission`]): past
//! `[runtime] max_active_orders`, stored events wait as keys, oldest
//! ship-by first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::admission::Admission;
use super::core::Msg;
use super::event::OrderEvent;
use super::Error;
use crate::actors::RuntimeHandle;
use crate::store::{codec, InboxEvent, Op, Store, Tree};

/// Stripes of the lock that makes "is it a duplicate? then store it" one
/// step per dedupe key.
const DEDUPE_STRIPES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub duplicate: bool,
}

#[derive(Clone)]
pub struct Intake {
    store: Store,
    runtime: RuntimeHandle,
    admission: Admission,
    /// The task that starts waiting orders as slots free: started with the
    /// first order that has to wait, stopped by [`Intake::close`].
    dispatcher: Arc<AtomicBool>,
    closed: CancellationToken,
    hydrator: Option<crate::sync::Hydrator>,
    /// Held from the duplicate check until the event is stored, by stripe
    /// of its dedupe key: TikTok delivers a duplicated webhook twice at
    /// the same moment, and without it both copies pass the check.
    dedupe_locks: Arc<[tokio::sync::Mutex<()>]>,
}

impl Intake {
    pub fn new(store: Store, runtime: RuntimeHandle) -> Intake {
        let cfg = &runtime.shared.config;
        let admission = Admission::new(
            cfg.max_active_orders,
            cfg.memory_budget,
            runtime.shared.pressure.clone(),
        );
        Intake {
            store,
            runtime,
            admission,
            dispatcher: Arc::new(AtomicBool::new(false)),
            closed: CancellationToken::new(),
            hydrator: None,
            dedupe_locks: (0..DEDUPE_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Notifications that carry only an id are fetched through `h` before
    /// they are applied.
    pub fn with_hydrator(mut self, h: crate::sync::Hydrator) -> Intake {
        self.hydrator = Some(h);
        self
    }

    /// Hands a stored event to its order (through the hydrator when it
    /// needs fetching).
    async fn dispatch(
        runtime: RuntimeHandle,
        hydrator: Option<crate::sync::Hydrator>,
        seq: u64,
        event: OrderEvent,
    ) {
        let order_id = event.order_id.clone();
        if let (Some(h), super::event::EventKind::Refresh { .. }) = (&hydrator, &event.kind) {
            h.hydrate_and_deliver(&runtime, seq, event).await;
            return;
        }
        let event = match (&hydrator, event) {
            // A polled return was read from Search Returns already.
            (Some(h), mut e)
                if matches!(e.kind, super::event::EventKind::Return(_))
                    && e.source != super::event::Source::Poll =>
            {
                h.read_return(&mut e).await;
                e
            }
            (_, e) => e,
        };
        if let Err(e) = runtime
            .deliver(
                &order_id,
                Msg::Event {
                    inbox_seq: Some(seq),
                    event,
                },
            )
            .await
        {
            tracing::warn!(order_id = %order_id, error = %e, "Event stored but not yet applied; it is redelivered on recovery");
        }
    }

    /// Stores the event durably (or recognises a duplicate), then hands it
    /// to its order. Returns once it is safe to acknowledge.
    pub async fn submit(&self, event: OrderEvent) -> Result<Submitted, Error> {
        let dedupe_key = format!("{}\u{0}{}", event.shop_id, event.id);
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            dedupe_key.hash(&mut h);
            (h.finish() % DEDUPE_STRIPES as u64) as usize
        };
        let guard = self.dedupe_locks[stripe].lock().await;
        // A store that cannot write may hold, in memory, a dedupe key whose
        // write never landed: refuse before answering from it.
        self.store.writable()?;
        if let Some(seen) = self
            .store
            .trees
            .dedupe
            .get(dedupe_key.as_bytes())
            .map_err(crate::store::Error::from)?
        {
            if self.stands_for_something(&seen, &event.order_id)? {
                metrics::counter!(crate::metrics::EVENTS_TOTAL, "result" => "duplicate")
                    .increment(1);
                return Ok(Submitted { duplicate: true });
            }
            // A key whose event is neither waiting in the inbox nor applied
            // to a stored order: its event never landed (a failed write
            // before the dedupe key was ordered last). Taking the event now
            // is the only way it is ever stored.
            metrics::counter!(crate::metrics::EVENTS_TOTAL, "result" => "stale_dedupe")
                .increment(1);
            tracing::warn!(order_id = %event.order_id, event_id = %event.id, "A dedupe key without its event: storing the event again");
        }
        let seq = self.store.next_id()?;
        let inbox = InboxEvent {
            seq,
            event: event.clone(),
        };
        let ops = vec![
            // When the key expires ([`crate::retention`]).
            Op::Put {
                tree: Tree::Archive,
                key: crate::retention::dedupe_time_key(event.received_ms, dedupe_key.as_bytes()),
                value: Vec::new(),
            },
            Op::Put {
                tree: Tree::Dedupe,
                key: dedupe_key.into_bytes(),
                value: seq.to_be_bytes().to_vec(),
            },
            Op::Put {
                tree: Tree::Inbox,
                key: seq.to_be_bytes().to_vec(),
                value: codec::encode(&inbox).map_err(crate::store::Error::from)?,
            },
        ];
        self.store.commit(ops).await?;
        drop(guard);
        metrics::counter!(crate::metrics::EVENTS_TOTAL, "result" => "accepted").increment(1);
        metrics::counter!(crate::metrics::ORDERS_RECEIVED_TOTAL, "source" => event.source.as_str())
            .increment(1);
        if self.admission.try_now(seq, &event.order_id) {
            let (runtime, hydrator) = (self.runtime.clone(), self.hydrator.clone());
            let admission = self.admission.clone();
            actix::spawn(async move {
                let order_id = event.order_id.clone();
                Intake::dispatch(runtime, hydrator, seq, event).await;
                admission.delivered(&order_id, &[seq]);
            });
        } else {
            self.wait_for_room(seq, &event);
        }
        Ok(Submitted { duplicate: false })
    }

    /// Queues a stored event until its order may start (admission), and
    /// makes sure the dispatcher runs.
    fn wait_for_room(&self, seq: u64, event: &OrderEvent) {
        if !self.admission.enqueue(seq, event) {
            return;
        }
        if !self.dispatcher.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            actix::spawn(async move {
                // Whenever the task ends (closed, or its arbiter stopped and
                // dropped it), the next waiting order starts a new one.
                struct Running(Arc<AtomicBool>);
                impl Drop for Running {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Release);
                    }
                }
                let _running = Running(this.dispatcher.clone());
                this.run_dispatcher().await
            });
        }
    }

    /// Starts waiting orders as slots free, each order's stored events read
    /// back from the inbox and delivered in the order they were stored.
    async fn run_dispatcher(self) {
        loop {
            let admitted = tokio::select! {
                _ = self.closed.cancelled() => return,
                a = self.admission.next() => a,
            };
            let this = self.clone();
            actix::spawn(async move {
                for seq in &admitted.seqs {
                    let stored = this
                        .store
                        .trees
                        .inbox
                        .get(seq.to_be_bytes())
                        .map_err(crate::store::Error::from)
                        .and_then(|v| {
                            v.map(|v| codec::decode::<InboxEvent>(&v))
                                .transpose()
                                .map_err(crate::store::Error::from)
                        });
                    match stored {
                        // Applied meanwhile (a redelivery got there first).
                        Ok(None) => {}
                        Ok(Some(e)) => {
                            let (runtime, hydrator) = (this.runtime.clone(), this.hydrator.clone());
                            Intake::dispatch(runtime, hydrator, e.seq, e.event).await;
                        }
                        Err(e) => {
                            tracing::warn!(order_id = %admitted.order_id, seq, error = %e, "A waiting event could not be read back; the inbox sweep tries again");
                        }
                    }
                }
                this.admission.delivered(&admitted.order_id, &admitted.seqs);
            });
        }
    }

    /// Orders waiting to start, the longest wait, the memory verdict.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Stops the dispatcher (shutdown): events still waiting stay in the
    /// inbox and are delivered on the next start.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Does a dedupe key (whose value is its event's inbox sequence) stand
    /// for an event that is stored: still in the inbox, or applied to an
    /// order that is stored (or archived)?
    fn stands_for_something(&self, seen: &[u8], order_id: &str) -> Result<bool, Error> {
        let trees = &self.store.trees;
        if seen.len() == 8
            && trees
                .inbox
                .contains_key(seen)
                .map_err(crate::store::Error::from)?
        {
            return Ok(true);
        }
        // An archived order's events are answered from the key too.
        Ok(trees
            .orders
            .contains_key(order_id.as_bytes())
            .map_err(crate::store::Error::from)?
            || trees
                .archive
                .contains_key(order_id.as_bytes())
                .map_err(crate::store::Error::from)?)
    }

    /// Delivers again the stored events older than `older_than_ms` that are
    /// still not applied (a hydration that failed, an actor that died):
    /// the periodic sweep that makes "stored" imply "eventually applied"
    /// without waiting for a restart. Events waiting for admission or being
    /// delivered now are left alone. Redelivery is harmless: an order
    /// applies an event id once.
    pub async fn redeliver_stale(&self, now_ms: i64, older_than_ms: i64) -> Result<usize, Error> {
        self.requeue(|e| now_ms - e.event.received_ms > older_than_ms, None)
    }

    /// Delivers every stored event not yet applied (recovery): queued for
    /// admission, oldest ship-by first, and returns once every one of them
    /// has been delivered (recovery is finished, `/readyz` says, only when
    /// what was acknowledged before the restart is applied).
    pub async fn redeliver_inbox(&self) -> Result<usize, Error> {
        let mut queued = Vec::new();
        let n = self.requeue(|_| true, Some(&mut queued))?;
        while !queued.is_empty() {
            tokio::select! {
                _ = self.closed.cancelled() => return Err(Error::ShuttingDown),
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
            queued.retain(|s| self.admission.knows(*s));
        }
        Ok(n)
    }

    fn requeue(
        &self,
        pick: impl Fn(&InboxEvent) -> bool,
        mut queued: Option<&mut Vec<u64>>,
    ) -> Result<usize, Error> {
        let mut n = 0;
        for r in self.store.trees.inbox.iter() {
            let (k, v) = r.map_err(crate::store::Error::from)?;
            let seq = match <[u8; 8]>::try_from(k.as_ref()) {
                Ok(b) => u64::from_be_bytes(b),
                Err(_) => continue,
            };
            if self.admission.knows(seq) {
                continue;
            }
            let e: InboxEvent = codec::decode(&v).map_err(crate::store::Error::from)?;
            if pick(&e) {
                self.wait_for_room(e.seq, &e.event);
                if let Some(q) = queued.as_deref_mut() {
                    q.push(e.seq);
                }
                n += 1;
            }
        }
        Ok(n)
    }
}
