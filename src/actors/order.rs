//! One actix actor per active order. It owns the order's checkpoint in
//! memory, runs [`crate::runtime::core::process`] for each message, commits
//! the result (group commit), and only then starts the effects it decided.
//!
//! Messages are handled one at a time *including* the commit (an
//! `AtomicResponse`), so every update to one order is serialised: that is
//! our conflict resolution. Handlers never panic: a failed commit stops the
//! actor, and the supervisor rebuilds it from its last checkpoint on the
//! next message.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix::prelude::*;

use super::{Passivated, Shared};
use crate::runtime::core::{self, Msg};
use crate::runtime::Error;
use crate::store::{OrderRecord, StartedEffect};
use crate::workflow::expr;

/// Process one message; answered once its checkpoint is durable.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Process(pub Msg);

/// Move the finished order to the archive (`crate::retention`): `ops`
/// (its archive entry, its audit and label keys removed) are committed with
/// the checkpoint's removal, only if the record is still the one the pass
/// archived (`updated_ms`) and still finished. `Ok(true)` once durable,
/// `Ok(false)` if it changed; the actor stops either way after a move.
#[derive(Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct Archive {
    pub updated_ms: i64,
    pub ops: Vec<crate::store::Op>,
}

/// Stop without telling the supervisor, as an unexpected death would
/// (tests use it to show the supervisor rebuilds a dead actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Die;

pub struct OrderActor {
    id: String,
    shared: Arc<Shared>,
    rec: Option<OrderRecord>,
    last_active: Instant,
    /// The actor could not load its checkpoint: it refuses work and stops.
    broken: bool,
    notify_supervisor: bool,
    /// The `running` marker as this actor last committed it (`None` until
    /// its first commit): lets a step skip rewriting an unchanged marker.
    running_marker: Option<bool>,
    /// `rec`'s order as CEL sees it, kept from the step that built it
    /// (see `core::Env::order_val`); `None` whenever `rec` is replaced
    /// from elsewhere.
    order_val: Option<expr::Val>,
    /// The index projection as this actor last committed it (`None` until
    /// its first commit): a step that changes nothing indexed writes no
    /// index operation (see `core::Env::projection`).
    projection: Option<crate::store::index::Projection>,
    /// The order was moved to the archive: events for it are kept in the
    /// quarantine, never applied to a new empty order.
    archived: bool,
}

impl OrderActor {
    pub fn new(id: String, shared: Arc<Shared>) -> OrderActor {
        OrderActor {
            id,
            shared,
            rec: None,
            last_active: Instant::now(),
            broken: false,
            notify_supervisor: true,
            running_marker: None,
            order_val: None,
            projection: None,
            archived: false,
        }
    }

    /// A message for an archived order: an event is kept in the quarantine
    /// (its inbox entry consumed) with an alert; a stale timer is removed.
    fn archived_message(&mut self, msg: Msg) -> AtomicResponse<Self, Result<(), Error>> {
        use crate::store::{Op, Tree};
        let mut ops = Vec::new();
        let mut alert = None;
        match msg {
            Msg::Event { inbox_seq, event } => {
                if let Some(seq) = inbox_seq {
                    ops.push(Op::Del {
                        tree: Tree::Inbox,
                        key: seq.to_be_bytes().to_vec(),
                    });
                }
                let q = crate::store::Quarantined {
                    received_ms: event.received_ms,
                    reason: "archived_order".into(),
                    kind: None,
                    shop_id: Some(event.shop_id.clone()),
                    notification_id: Some(event.id.clone()),
                    body: serde_json::to_string(&event).unwrap_or_default(),
                };
                match self.shared.store.quarantine_op(&q) {
                    Ok(op) => ops.push(op),
                    Err(e) => {
                        return AtomicResponse::new(Box::pin(fut::ready(Err(Error::Store(e)))))
                    }
                }
                alert = Some((
                    format!(
                        "An event arrived for order {}, which was archived; it is kept in the quarantine, not applied",
                        self.id
                    ),
                    serde_json::json!({"order_id": self.id, "event_id": event.id, "source": event.source.as_str()}),
                ));
            }
            Msg::Timer { key, .. } => ops.push(Op::Del {
                tree: Tree::Timers,
                key,
            }),
            Msg::EffectDone { .. } => {}
        }
        if ops.is_empty() {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let store = self.shared.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.commit(ops).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    res.map_err(Error::Store)?;
                    if let Some((text, data)) = alert {
                        metrics::counter!(crate::retention::metrics::ARCHIVED_EVENTS_TOTAL)
                            .increment(1);
                        act.shared.executor.alert(text, data);
                    }
                    Ok(())
                }),
        ))
    }

    /// Starts the effects a committed checkpoint decided, unless this
    /// process already runs them (an actor rebuilt while its effect task
    /// still runs must not issue it twice).
    ///
    /// The result goes straight back to this actor's own address: asking
    /// the supervisor first would add a round trip through its arbiter to
    /// every step. Only if this actor has stopped meanwhile (passivated or
    /// died) does the result take the supervisor's way, which rebuilds it.
    fn start_effects(&self, effects: Vec<StartedEffect>, me: Addr<OrderActor>) {
        for e in effects {
            if !self.shared.in_process.lock().insert(e.key.clone()) {
                continue;
            }
            let shared = self.shared.clone();
            let order = self
                .rec
                .as_ref()
                .and_then(|r| r.order.clone())
                .map(Arc::new);
            let order_id = self.id.clone();
            let me = me.clone();
            actix::spawn(async move {
                let result = shared.executor.run(order, &e).await;
                let msg = Msg::EffectDone {
                    effect: e.effect.clone(),
                    result,
                };
                let msg = match me.send(Process(msg.clone())).await {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => {
                        tracing::warn!(order_id = %order_id, error = %err, "Could not deliver an effect result; it is re-issued on recovery");
                        None
                    }
                    Err(_) => Some(msg),
                };
                if let (Some(msg), Some(h)) = (msg, shared.handle()) {
                    if let Err(err) = h.deliver(&order_id, msg).await {
                        tracing::warn!(order_id = %order_id, error = %err, "Could not deliver an effect result; it is re-issued on recovery");
                    }
                }
                shared.in_process.lock().remove(&e.key);
            });
        }
    }

    fn idle(&self) -> bool {
        let running = self.shared.in_process.lock();
        let in_flight = self
            .rec
            .as_ref()
            .is_some_and(|r| r.in_flight.iter().any(|e| running.contains(&e.key)));
        !in_flight
            && (self.shared.pressure.on()
                || self.last_active.elapsed() >= self.shared.config.passivate_after.0)
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.shared.config.mailbox);
        match self.shared.store.load_order(&self.id) {
            Ok(rec) => {
                if rec.is_none() {
                    self.archived = crate::retention::is_archived(&self.shared.store, &self.id)
                        .unwrap_or(false);
                }
                self.rec = rec
            }
            Err(e) => {
                tracing::error!(order_id = %self.id, error = %e, "Could not load the checkpoint");
                self.broken = true;
                ctx.stop();
                return;
            }
        }
        metrics::gauge!(crate::metrics::ACTORS_ACTIVE).increment(1.0);
        // Effects started before a crash (or before this actor died) and
        // not running in this process: re-issue them with the same key.
        if let Some(r) = &self.rec {
            let pending = r.in_flight.clone();
            if !pending.is_empty() {
                tracing::info!(order_id = %self.id, effects = pending.len(), "Re-issuing effects started before a restart");
            }
            self.start_effects(pending, ctx.address());
        }
        let every = (self.shared.config.passivate_after.0 / 2).max(Duration::from_millis(5));
        ctx.run_interval(every, |act, ctx| {
            if act.idle() {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        if !self.broken {
            metrics::gauge!(crate::metrics::ACTORS_ACTIVE).decrement(1.0);
        }
        if self.notify_supervisor {
            self.shared.supervisor_signal(Passivated {
                order_id: self.id.clone(),
                addr: ctx.address(),
            });
        }
    }
}

impl Handler<Process> for OrderActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: Process, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if self.broken {
            let e = Error::CheckpointUnreadable(self.id.clone());
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        if self.archived {
            return self.archived_message(msg.0);
        }
        let shop = match &msg.0 {
            Msg::Event { event, .. } => event.shop_id.clone(),
            _ => String::new(),
        };
        let now_ms = self.shared.clock.now_ms();
        // The record is moved into `process`, not cloned (a deep copy per
        // step). Whatever happens next, `self.rec` ends up as before or as
        // the committed record: put back below when nothing changed,
        // reloaded from its (identical) durable copy if processing fails,
        // replaced once the commit lands, and unused after a failed commit
        // (the actor stops). While the commit is in flight the actor
        // handles nothing else (`AtomicResponse`).
        let had_record = self.rec.is_some();
        let was_done = self
            .rec
            .as_ref()
            .and_then(|r| r.instance.as_ref())
            .is_some_and(|i| i.is_terminal());
        let was_exception = self
            .rec
            .as_ref()
            .is_some_and(|r| r.lifecycle == crate::lifecycle::Lifecycle::Exception);
        let rec = self
            .rec
            .take()
            .unwrap_or_else(|| OrderRecord::new(&self.id, &shop, now_ms));
        let env = core::Env {
            registry: &self.shared.registry,
            now_ms,
            running_marker: self.running_marker,
            order_val: self.order_val.take(),
            projection: self.projection.as_ref(),
        };
        let plan = match core::process(rec, &msg.0, &env) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(order_id = %self.id, error = %e, "Could not process a message");
                if had_record {
                    // `order_val` was taken above: rebuilt when needed.
                    match self.shared.store.load_order(&self.id) {
                        Ok(rec) => self.rec = rec,
                        Err(le) => {
                            tracing::error!(order_id = %self.id, error = %le, "Could not reload the checkpoint; stopping the actor");
                            ctx.stop();
                        }
                    }
                }
                return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
            }
        };
        if plan.ops.is_empty() {
            if had_record {
                self.rec = Some(plan.record);
                self.order_val = plan.order_val;
            }
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        let store = self.shared.store.clone();
        let (ops, record, start, order_val, alerts, projection) = (
            plan.ops,
            plan.record,
            plan.start,
            plan.order_val,
            plan.alerts,
            plan.projection,
        );
        AtomicResponse::new(Box::pin(
            async move { store.commit(ops).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(()) => {
                        let done = record.instance.as_ref().is_some_and(|i| i.is_terminal());
                        if record.lifecycle == crate::lifecycle::Lifecycle::Exception && !was_exception {
                            // An order needs an operator: a system alert.
                            act.shared.executor.alert(
                                format!(
                                    "Order {} needs an operator: {}",
                                    act.id,
                                    record.last_error.clone().unwrap_or_default()
                                ),
                                serde_json::json!({"order_id": act.id, "error": record.last_error}),
                            );
                        }
                        for (text, data) in alerts {
                            act.shared.executor.alert(text, data);
                        }
                        if done && !was_done {
                            if let Some(tx) = act.shared.on_finished.get() {
                                let _ = tx.send(act.id.clone());
                            }
                        }
                        act.running_marker = Some(!record.in_flight.is_empty());
                        act.projection = projection;
                        act.rec = Some(record);
                        act.order_val = order_val;
                        act.shared.publish_change(&act.id);
                        act.last_active = Instant::now();
                        let idle = start.is_empty()
                            && act.rec.as_ref().is_some_and(|r| r.in_flight.is_empty());
                        act.start_effects(start, ctx.address());
                        if idle && act.shared.pressure.on() {
                            // Orders wait to start, or memory is over
                            // budget: make room now (admission).
                            metrics::counter!(
                                crate::runtime::admission::metrics::EAGER_PASSIVATIONS_TOTAL
                            )
                            .increment(1);
                            ctx.stop();
                        }
                        Ok(())
                    }
                    Err(e) => {
                        // The checkpoint did not land: forget the in-memory
                        // state and let the supervisor rebuild from disk.
                        tracing::error!(order_id = %act.id, error = %e, "Checkpoint failed; stopping the actor");
                        ctx.stop();
                        Err(Error::Store(e))
                    }
                }),
        ))
    }
}

impl Handler<Archive> for OrderActor {
    type Result = AtomicResponse<Self, Result<bool, Error>>;

    fn handle(&mut self, m: Archive, _: &mut Context<Self>) -> Self::Result {
        // An event stored for it and not applied yet (waiting for
        // admission, being hydrated) keeps it hot: it must be applied.
        let finished = !self.broken
            && !self.shared.pressure.holds(&self.id)
            && self.rec.as_ref().is_some_and(|r| {
                r.updated_ms == m.updated_ms
                    && r.lifecycle.is_terminal()
                    && r.in_flight.is_empty()
                    && r.timers.is_empty()
                    && r.instance.as_ref().is_none_or(|i| i.is_terminal())
            });
        if !finished {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(false))));
        }
        let mut ops = m.ops;
        ops.push(crate::store::Op::Archive {
            order_id: self.id.clone(),
        });
        let store = self.shared.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.commit(ops).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    // Moved or not, what this actor holds is stale now.
                    ctx.stop();
                    res.map_err(Error::Store)?;
                    act.rec = None;
                    act.order_val = None;
                    act.projection = None;
                    act.running_marker = None;
                    act.archived = true;
                    act.shared.publish_change(&act.id);
                    Ok(true)
                }),
        ))
    }
}

impl Handler<Die> for OrderActor {
    type Result = ();

    fn handle(&mut self, _: Die, ctx: &mut Context<Self>) {
        self.notify_supervisor = false;
        ctx.stop();
    }
}
