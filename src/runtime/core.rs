//! One order's step: a message in; the next checkpoint, the store
//! operations that make it durable and the effects to start, out.
//!
//! This is the effect protocol's bookkeeping. An action the interpreter asks
//! for is recorded as *started* (with its idempotency key) in the same
//! checkpoint that moved the instance to `calling`; only after that
//! checkpoint is flushed does the actor perform it. Its result is recorded
//! (*finished*) in the checkpoint that feeds it to the interpreter. After a
//! crash, a started-but-unfinished effect is re-issued with the same key.
//!
//! Everything here is synchronous and deterministic given its inputs.

use std::sync::Arc;

use super::event::{EventKind, OperatorAction, OrderEvent};
use super::{Error, Registry};
use crate::actions::{ActionName, ErrorKind};
use crate::lifecycle::Lifecycle;
use crate::order::{Order, TiktokStatus};
use crate::store::{
    audit_key, codec, encode_audit_group, timer_key, ArmedTimer, AuditEntry, Op, OrderRecord,
    StartedEffect, TimerEntry, Tree,
};
use crate::workflow::interpreter::{
    advance, rebase, rerunnable, ActionError, Ctx, Effect, EffectId, Input, Instance, State,
    Terminal, TimerId, TimerKind,
};
use crate::workflow::value::Data;
use crate::workflow::{expr, Definition};

/// The pseudo-step of an operator's cancellation on TikTok (not a workflow
/// step: its result is recorded, not fed to the instance).
pub const OPERATOR_CANCEL: &str = "_operator_cancel";

/// The pseudo-step of an answer to a buyer's cancellation request.
pub const CANCEL_REQUEST_ANSWER: &str = "_cancel_request_answer";

/// A Unix time as RFC 3339 (UTC), for messages.
fn fmt_unix(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.to_rfc3339())
}

/// How many recent event ids a checkpoint remembers, to drop redeliveries.
const RECENT_EVENTS: usize = 64;

/// What an order actor is asked to do.
#[derive(Debug, Clone)]
pub enum Msg {
    Event {
        inbox_seq: Option<u64>,
        event: OrderEvent,
    },
    EffectDone {
        effect: EffectId,
        result: Result<Data, ActionError>,
    },
    Timer {
        key: Vec<u8>,
        entry: TimerEntry,
    },
}

/// The outcome of one step.
pub struct Plan {
    pub record: OrderRecord,
    /// Store operations; empty when nothing changed.
    pub ops: Vec<Op>,
    /// Effects to perform once `ops` are durable.
    pub start: Vec<StartedEffect>,
    /// `record`'s order as CEL sees it, if this step built it (or was
    /// given it): hand it to the next step as [`Env::order_val`].
    pub order_val: Option<expr::Val>,
    /// System alerts to send once `ops` are durable (text, details).
    pub alerts: Vec<(String, serde_json::Value)>,
    /// The index projection of `record` when `ops` write its checkpoint:
    /// hand it to the next step as [`Env::projection`] once durable.
    pub projection: Option<crate::store::index::Projection>,
}

pub struct Env<'a> {
    pub registry: &'a Registry,
    pub now_ms: i64,
    /// Whether the order's `running` marker is durably present (`Some`)
    /// as of the record being processed, when the caller knows it; `None`
    /// (a record just loaded or created) writes the marker either way,
    /// which also clears a marker a torn batch left behind.
    pub running_marker: Option<bool>,
    /// The record's order as CEL sees it, from the [`Plan`] that produced
    /// the record (`None`: built when first needed). Converting the order
    /// is the largest cost of a step in a workflow that reads it, and the
    /// order changes at a few messages only; a step that changes it drops
    /// the value.
    pub order_val: Option<expr::Val>,
    /// The index projection of the record as last committed, when the
    /// caller knows it (`None`: written with the checkpoint either way).
    /// Most steps change nothing the indexes hold, and then write no index
    /// operation: the commit writer's work stays with what changed.
    pub projection: Option<&'a crate::store::index::Projection>,
}

struct W<'a> {
    rec: OrderRecord,
    ops: Vec<Op>,
    start: Vec<StartedEffect>,
    env: &'a Env<'a>,
    def: Option<Arc<Definition>>,
    /// `None`, or `rec`'s order as CEL sees it: whatever changes
    /// `rec.order` (or the shop id a stand-in order shows) drops it.
    order_val: Option<expr::Val>,
    changed: bool,
    /// Audit entries of this step, written as one value in `finish`.
    audit_entries: Vec<AuditEntry>,
    alerts: Vec<(String, serde_json::Value)>,
}

/// Runs one message against a record (a fresh record for a new order).
pub fn process(rec: OrderRecord, msg: &Msg, env: &Env) -> Result<Plan, Error> {
    // A stored version that no longer loads (it fails validation now, e.g.
    // the expression cost limit) stops only this order, with the reason.
    let mut unusable = None;
    let def = match &rec.workflow {
        Some(k) => match env.registry.get(k) {
            Ok(d) => Some(d),
            Err(Error::Workflow(e)) => {
                unusable = Some(format!("workflow {k} can no longer be loaded: {e}"));
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut w = W {
        rec,
        ops: Vec::new(),
        start: Vec::new(),
        env,
        def,
        order_val: env.order_val.clone(),
        changed: false,
        audit_entries: Vec::new(),
        alerts: Vec::new(),
    };
    if let Some(why) = unusable {
        if w.rec.last_error.as_deref() != Some(why.as_str()) {
            tracing::error!(order_id = %w.rec.order_id, "{why}");
            w.rec.last_error = Some(why);
            w.changed = true;
            w.set_lifecycle(
                Lifecycle::Exception,
                "system",
                "its workflow can no longer be loaded",
            );
        }
    }
    match msg {
        Msg::Event { inbox_seq, event } => {
            if w.rec.recent_events.iter().any(|e| e == &event.id) {
                // Already applied (a redelivery after a crash): only tidy
                // the inbox.
            } else {
                w.on_event(event)?;
                w.rec.recent_events.push(event.id.clone());
                let n = w.rec.recent_events.len();
                if n > RECENT_EVENTS {
                    w.rec.recent_events.drain(..n - RECENT_EVENTS);
                }
                w.changed = true;
            }
            if let Some(seq) = inbox_seq {
                w.ops.push(Op::Del {
                    tree: Tree::Inbox,
                    key: seq.to_be_bytes().to_vec(),
                });
            }
        }
        Msg::EffectDone { effect, result } => w.on_effect_done(effect, result)?,
        Msg::Timer { key, entry } => w.on_timer(key, entry)?,
    }
    w.finish()
}

impl W<'_> {
    fn audit(&mut self, source: &str, kind: &str, detail: impl Into<String>) {
        self.rec.audit_seq += 1;
        let entry = AuditEntry {
            seq: self.rec.audit_seq,
            at_ms: self.env.now_ms,
            source: source.into(),
            kind: kind.into(),
            detail: detail.into(),
        };
        self.audit_entries.push(entry);
        self.changed = true;
    }

    fn set_lifecycle(&mut self, to: Lifecycle, source: &str, why: &str) {
        let from = self.rec.lifecycle;
        if from == to || !from.can_move_to(to) {
            return;
        }
        self.rec.lifecycle = to;
        self.audit(source, "lifecycle", format!("{from} → {to} ({why})"));
        metrics::counter!(crate::metrics::LIFECYCLE_TRANSITIONS_TOTAL, "to" => to.as_str())
            .increment(1);
    }

    /// TikTok reported a status orderflow does not know: nothing is done
    /// on a guess. The order keeps the raw status (shown as it came) and is
    /// held for an operator, with the reason in its audit and an alert
    /// (`orderflow_orders_unknown_status_total`).
    fn hold_unknown_status(&mut self, status: &TiktokStatus) {
        metrics::counter!(crate::metrics::ORDERS_UNKNOWN_STATUS_TOTAL).increment(1);
        let reason = format!(
            "TikTok reports status {status}, which orderflow does not know: held for an operator"
        );
        self.audit("tiktok", "unknown_status", reason.clone());
        let _ = self.hold_for("tiktok", &reason);
    }

    /// A buyer's pending cancellation request, answered once per request
    /// as the workflow's `on_cancel_request` says (without a workflow, or
    /// without the key, a person decides): approve before shipping (TikTok
    /// cancels; the compensations release the stock and void an unused
    /// label), reject with an official reason, or leave it to an operator
    /// (the order held where it can be, alerted before TikTok's deadline).
    fn on_cancel_request(&mut self) {
        let Some(order) = self.rec.order.as_ref() else {
            return;
        };
        if !order.buyer_cancel_requested || self.rec.lifecycle.is_terminal() {
            // The buyer withdrew a request a person was to answer (or TikTok
            // closed it): the hold placed for it goes.
            let ours = self
                .rec
                .cancel_answer
                .as_mut()
                .filter(|a| a.held && a.state.needs_operator());
            if let Some(a) = ours {
                a.held = false;
                self.changed = true;
                if self.held() {
                    self.audit(
                        "tiktok",
                        "cancel_request",
                        "the request is closed on TikTok",
                    );
                    self.release_hold("tiktok");
                }
            }
            return;
        }
        let Some(req) = order.cancel_request.clone() else {
            // Flagged, but the request could not be read: the sync tries
            // again; meanwhile a person is told (once).
            if self.held() {
                return;
            }
            let _ = self.hold_for(
                "tiktok",
                "the buyer asks to cancel, and TikTok's request could not be read yet",
            );
            return;
        };
        if self.rec.answer_for(&req.cancel_id).is_some() {
            return;
        }
        let status = &order.status;
        let shipped = matches!(
            self.rec.lifecycle,
            Lifecycle::Fulfilled | Lifecycle::Delivered | Lifecycle::Completed
        ) || status.rank() >= TiktokStatus::PartiallyShipping.rank();
        let policy = self
            .def
            .as_ref()
            .map(|d| d.on_cancel_request)
            .unwrap_or_default();
        use crate::workflow::model::CancelAnswer;
        let answer = if !status.is_known() {
            // Shipped or not is a guess: a person decides.
            CancelAnswer::Operator
        } else if shipped {
            policy.after_shipping
        } else {
            policy.before_shipping
        };
        metrics::counter!(crate::metrics::CANCEL_REQUESTS_TOTAL, "answer" => answer.as_str())
            .increment(1);
        self.audit(
            "tiktok",
            "cancel_request",
            format!(
                "the buyer asks to cancel ({}, {}); {} shipping, the workflow answers: {}",
                req.reason,
                req.reason_text,
                if shipped { "after" } else { "before" },
                answer.as_str()
            ),
        );
        match answer {
            CancelAnswer::Approve => self.answer_cancel_request(&req.cancel_id, true, None, false),
            CancelAnswer::Reject => self.answer_cancel_request(
                &req.cancel_id,
                false,
                Some(policy.reject_reason.as_str().to_string()),
                false,
            ),
            CancelAnswer::Operator => {
                let by = req
                    .respond_by
                    .map(|t| format!(" before {}", fmt_unix(t)))
                    .unwrap_or_default();
                let held = self.hold_for(
                    "tiktok",
                    &format!("the buyer asks to cancel: approve or reject the request{by}"),
                );
                self.rec.cancel_answer = Some(crate::store::CancelAnswerState {
                    cancel_id: req.cancel_id.clone(),
                    state: crate::store::AnswerState::AwaitingOperator,
                    held,
                });
                self.changed = true;
            }
        }
    }

    /// Sends the answer to TikTok (a pseudo-step effect). An automatic
    /// answer is keyed by the request (a replay is the same call); an
    /// operator's by the visit too (a retry after a refusal is a new call).
    fn answer_cancel_request(
        &mut self,
        cancel_id: &str,
        approve: bool,
        reason: Option<String>,
        by_operator: bool,
    ) {
        let visit = self.rec.audit_seq as u32;
        let (action, verb) = if approve {
            (ActionName::TiktokApproveCancellation.as_str(), "approve")
        } else {
            (ActionName::TiktokRejectCancellation.as_str(), "reject")
        };
        let mut args = vec![("cancel_id", Data::from(cancel_id))];
        if let Some(r) = &reason {
            args.push(("reason", Data::from(r.as_str())));
        }
        let mut key = format!("{}:cancel-request:{cancel_id}:{verb}", self.rec.order_id);
        if by_operator {
            key.push_str(&format!(":{visit}"));
        }
        let held = self
            .rec
            .cancel_answer
            .as_ref()
            .is_some_and(|a| a.cancel_id == cancel_id && a.held);
        self.rec.cancel_answer = Some(crate::store::CancelAnswerState {
            cancel_id: cancel_id.to_string(),
            state: crate::store::AnswerState::Sent { approve },
            held,
        });
        self.changed = true;
        self.start_side_effect(CANCEL_REQUEST_ANSWER, visit, key, action, Data::map(args));
        self.audit(
            "tiktok",
            "cancel_request",
            format!(
                "asking TikTok to {verb} the buyer's cancellation request {cancel_id}{}",
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        );
    }

    /// Ends a hold: back to where the order was, and the workflow inputs
    /// that waited behind it are applied in order.
    fn release_hold(&mut self, source: &str) {
        if let Some(from) = self.rec.held_from.take() {
            let back = if from == Lifecycle::OnHold {
                Lifecycle::Processing
            } else {
                from
            };
            self.set_lifecycle(back, source, "released");
            let deferred = std::mem::take(&mut self.rec.deferred);
            for input in deferred {
                self.drive(input);
            }
            self.sync_lifecycle();
        }
    }

    /// Starts an effect of a pseudo-step (not a workflow step: its result
    /// is recorded, not fed to the instance), recorded in flight first.
    fn start_side_effect(&mut self, step: &str, visit: u32, key: String, action: &str, args: Data) {
        let started = StartedEffect {
            key,
            effect: EffectId {
                step: step.into(),
                visit,
                compensation: false,
            },
            action: action.into(),
            args,
            attempt: 1,
            timeout_ms: None,
            started_ms: self.env.now_ms,
        };
        self.rec.in_flight.push(started.clone());
        self.start.push(started);
    }

    /// Holds the order (as an operator's hold does) with `reason`, where
    /// its lifecycle allows a hold; whether this call held it. The reason
    /// is in the audit either way.
    fn hold_for(&mut self, source: &str, reason: &str) -> bool {
        if !self.rec.lifecycle.is_terminal() && !self.held() {
            self.rec.held_from = Some(self.rec.lifecycle);
            self.set_lifecycle(Lifecycle::OnHold, source, reason);
            if self.rec.lifecycle == Lifecycle::OnHold {
                return true;
            }
            self.rec.held_from = None;
        }
        self.audit(source, "attention", reason);
        false
    }

    fn held(&self) -> bool {
        self.rec.lifecycle == Lifecycle::OnHold && self.rec.held_from.is_some()
    }

    fn order_val(&mut self) -> expr::Val {
        if let Some(v) = &self.order_val {
            return v.clone();
        }
        let json = match &self.rec.order {
            Some(o) => o.to_json(),
            None => serde_json::json!({"id": self.rec.order_id, "shop_id": self.rec.shop_id}),
        };
        let v: expr::Val = Arc::from(Data::from_json(&json).to_val());
        self.order_val = Some(v.clone());
        v
    }

    /// Feeds the instance one input (or defers it while held).
    fn drive(&mut self, input: Input) {
        // Without a definition the instance stays as it is.
        let Some(def) = self.def.clone() else {
            return;
        };
        let Some(inst) = self.rec.instance.take() else {
            return;
        };
        if self.held() && !matches!(input, Input::Cancel { .. }) {
            self.rec.instance = Some(inst);
            self.rec.deferred.push(input);
            self.audit(
                "system",
                "deferred",
                "input held until the order is released",
            );
            return;
        }
        let ctx = self.ctx_for(&def);
        let out = advance(&def, inst, &input, &ctx);
        self.apply_advance(out);
    }

    /// Takes what the interpreter decided: the new instance, its trace in
    /// the audit, its calls started (recorded in flight), its timers armed
    /// or disarmed; then the lifecycle follows.
    fn apply_advance(&mut self, out: crate::workflow::interpreter::Advance) {
        let Some(def) = self.def.clone() else {
            return;
        };
        self.changed = true;
        self.rec.instance = Some(out.instance);
        for t in out.trace {
            self.audit("workflow", "step", t);
        }
        let order_id = self.rec.order_id.clone();
        for e in out.effects {
            match e {
                Effect::Call {
                    effect,
                    action,
                    args,
                    attempt,
                    timeout,
                } => {
                    let started = StartedEffect {
                        key: effect.key(&order_id, &def.version),
                        effect: effect.clone(),
                        action: action.clone(),
                        args,
                        attempt,
                        timeout_ms: timeout.map(|d| d.as_millis() as u64),
                        started_ms: self.env.now_ms,
                    };
                    self.rec.in_flight.retain(|s| s.effect != effect);
                    self.rec.in_flight.push(started.clone());
                    self.start.push(started);
                }
                Effect::StartTimer { timer, due_ms } => {
                    let entry = TimerEntry {
                        order_id: order_id.clone(),
                        timer: timer.clone(),
                        due_ms,
                    };
                    if let Ok(v) = codec::encode(&entry) {
                        self.ops.push(Op::Put {
                            tree: Tree::Timers,
                            key: timer_key(&order_id, &timer, due_ms),
                            value: v,
                        });
                    }
                    self.rec.timers.push(ArmedTimer { timer, due_ms });
                }
                Effect::CancelTimer { timer } => {
                    if let Some(pos) = self.rec.timers.iter().position(|t| t.timer == timer) {
                        let t = self.rec.timers.remove(pos);
                        self.ops.push(Op::Del {
                            tree: Tree::Timers,
                            key: timer_key(&order_id, &t.timer, t.due_ms),
                        });
                    }
                }
            }
        }
        self.sync_lifecycle();
    }

    /// The lifecycle follows the instance: exception, approval, the end.
    fn sync_lifecycle(&mut self) {
        let Some(inst) = &self.rec.instance else {
            return;
        };
        match inst.state.clone() {
            State::Exception { error } => {
                self.rec.last_error = Some(format!(
                    "{} ({}): {}",
                    error.step, error.kind, error.message
                ));
                self.set_lifecycle(Lifecycle::Exception, "workflow", "needs an operator");
            }
            State::AwaitingApproval { .. } => {
                if !self.held() {
                    self.set_lifecycle(Lifecycle::OnHold, "workflow", "waiting for approval");
                }
            }
            State::Done(Terminal::Cancelled { reason }) => {
                self.set_lifecycle(Lifecycle::Cancelled, "workflow", &reason)
            }
            State::Done(Terminal::Failed { reason }) => {
                self.rec.last_error = Some(reason.clone());
                self.set_lifecycle(
                    Lifecycle::Exception,
                    "workflow",
                    &format!("workflow failed: {reason}"),
                );
            }
            State::Done(Terminal::Completed { outcome }) => {
                if outcome == "held" {
                    self.set_lifecycle(Lifecycle::OnHold, "workflow", "workflow ended held");
                } else if let Some(l) = Lifecycle::parse(&outcome) {
                    if l.rank() > self.rec.lifecycle.rank() || l == Lifecycle::Cancelled {
                        self.set_lifecycle(l, "workflow", &format!("workflow ended {outcome}"));
                    }
                }
            }
            // A workflow that held the order (`order.hold`) and waits for
            // something (stock, a mapping) keeps it held until the wait
            // ends and the next step runs.
            State::Waiting { .. } if self.rec.lifecycle == Lifecycle::OnHold => {}
            _ => {
                if matches!(self.rec.lifecycle, Lifecycle::Exception)
                    || (self.rec.lifecycle == Lifecycle::OnHold && self.rec.held_from.is_none())
                {
                    self.rec.last_error = None;
                    self.set_lifecycle(Lifecycle::Processing, "workflow", "running again");
                }
            }
        }
    }

    fn maybe_start_workflow(&mut self) {
        if self.rec.instance.is_some() || self.rec.lifecycle.is_terminal() {
            return;
        }
        let Some(order) = &self.rec.order else { return };
        let status = order.status.clone();
        if !status.is_known() {
            return;
        }
        let cat = self.env.registry.current();
        let now_ms = self.env.now_ms;
        let Some(def) = cat.select_with(status.as_str(), || self.order_val(), now_ms) else {
            return;
        };
        self.rec.workflow = Some(def.key());
        self.rec.instance = Some(Instance::new(&def, &self.rec.order_id));
        self.audit(
            "workflow",
            "start",
            format!("workflow {} started", def.key()),
        );
        self.def = Some(def);
        metrics::counter!(crate::metrics::WORKFLOWS_STARTED_TOTAL).increment(1);
        if !self.held() {
            self.set_lifecycle(Lifecycle::Processing, "workflow", "workflow started");
        }
        self.drive(Input::Start);
    }

    fn instance_running(&self) -> bool {
        self.rec.instance.as_ref().is_some_and(|i| !i.is_terminal())
    }

    /// Whether a cancellation has work to undo through the instance: it
    /// runs, or it ended held with what it did still standing (see
    /// [`crate::workflow::interpreter::undoable`]); and its definition
    /// loads (without it nothing can run).
    fn instance_undoable(&self) -> bool {
        self.def.is_some()
            && self
                .rec
                .instance
                .as_ref()
                .is_some_and(crate::workflow::interpreter::undoable)
    }

    fn on_event(&mut self, ev: &OrderEvent) -> Result<(), Error> {
        let src = ev.source.as_str();
        if self.rec.shop_id.is_empty() {
            self.rec.shop_id = ev.shop_id.clone();
            // The stand-in order (no details yet) carries the shop id.
            self.order_val = None;
        }
        match &ev.kind {
            EventKind::Snapshot(order) => self.on_snapshot(order, src, ev.received_ms),
            EventKind::Status {
                status,
                update_time,
            } => {
                let s = TiktokStatus::read(status);
                match self.rec.order.clone() {
                    Some(mut o) => {
                        o.status = s;
                        o.update_time = *update_time;
                        self.on_snapshot(&o, src, ev.received_ms);
                    }
                    None => self.audit(
                        src,
                        "status",
                        format!("status {s} reported before the order was fetched"),
                    ),
                }
            }
            EventKind::Refresh { reason } => {
                // Not hydrated (no gateway): all we know is that it changed.
                self.audit(src, "notice", reason.clone());
            }
            EventKind::Signal(data) => {
                self.audit(src, "event", data.to_json().to_string());
                if self.instance_running() {
                    self.drive(Input::Event(data.clone()));
                }
            }
            EventKind::Operator(action) => self.on_operator(action, None),
            EventKind::OperatorBy { by, action } => self.on_operator(action, Some(by)),
            EventKind::Return(r) => {
                // Newest state of each return; an older push is ignored.
                match self
                    .rec
                    .returns
                    .iter_mut()
                    .find(|x| x.return_id == r.return_id)
                {
                    Some(x) if x.update_time > r.update_time => {
                        self.audit(
                            src,
                            "stale",
                            format!("return {} update older than what we have", r.return_id),
                        );
                        return Ok(());
                    }
                    // The same state again (the webhook and polling both
                    // bring it): nothing new for the workflow.
                    Some(x)
                        if x.update_time == r.update_time && x.return_status == r.return_status =>
                    {
                        return Ok(());
                    }
                    Some(x) => *x = r.clone(),
                    None => self.rec.returns.push(r.clone()),
                }
                self.changed = true;
                self.audit(
                    src,
                    "return",
                    format!(
                        "return {} ({}, by {}): {}",
                        r.return_id, r.return_type, r.role, r.return_status
                    ),
                );
                if self.instance_running() {
                    self.drive(Input::Event(Data::map([
                        ("type", Data::from("return")),
                        ("return_id", Data::from(r.return_id.as_str())),
                        ("return_type", Data::from(r.return_type.as_str())),
                        ("return_status", Data::from(r.return_status.as_str())),
                        ("role", Data::from(r.role.as_str())),
                    ])));
                }
            }
        }
        Ok(())
    }

    /// `received_ms`: when intake took the event that carried it.
    fn on_snapshot(&mut self, order: &Order, src: &str, received_ms: i64) {
        let prev = self.rec.order.clone();
        if let Some(p) = &prev {
            if order.update_time < p.update_time {
                self.audit(
                    src,
                    "stale",
                    format!(
                        "ignored an update from {} older than what we have ({} < {})",
                        src, order.update_time, p.update_time
                    ),
                );
                return;
            }
            let back = match (p.status.rank(), order.status.rank()) {
                (Some(was), Some(now)) => was > now,
                _ => false,
            };
            if back && p.status != TiktokStatus::Cancelled {
                self.audit(
                    src,
                    "stale",
                    format!("ignored a move back from {} to {}", p.status, order.status),
                );
                return;
            }
        }
        let status_changed = prev.as_ref().map(|p| &p.status) != Some(&order.status);
        let mut order = order.clone();
        // A snapshot that says "the buyer asked" without the request itself
        // (its lookup failed) keeps the one we know.
        if order.buyer_cancel_requested && order.cancel_request.is_none() {
            order.cancel_request = prev.as_ref().and_then(|p| p.cancel_request.clone());
        }
        if let Some(p) = &prev {
            for t in &p.tags {
                if !order.tags.contains(t) {
                    order.tags.push(t.clone());
                }
            }
        }
        let status = order.status.clone();
        // What else changed, for workflows that wait on it (`address`,
        // `package`, `cancellation`): from webhooks and polling alike, as
        // both end in a snapshot. Nothing for the first one.
        let changes = prev
            .as_ref()
            .map(|p| order_changes(p, &order))
            .unwrap_or_default();
        self.rec.order = Some(order);
        self.order_val = None;
        self.changed = true;
        // The SLA clock starts when TikTok lets the seller ship: the first
        // AWAITING_SHIPMENT received (payment and the buyer-cancel hold
        // are behind it). Only on the move into it (or a first sight): an
        // order already waiting when this was recorded keeps no start it
        // would understate.
        if status == TiktokStatus::AwaitingShipment
            && status_changed
            && self.rec.eligible_ms.is_none()
        {
            self.rec.eligible_ms = Some(received_ms.max(self.rec.received_ms));
        }
        if status_changed {
            let from = prev.map_or("new".to_string(), |p| p.status.to_string());
            self.audit(src, "status", format!("TikTok status {from} → {status}"));
            let next = self.rec.lifecycle.on_tiktok_status(&status);
            self.set_lifecycle(next, src, &format!("TikTok says {status}"));
            if !status.is_known() {
                self.hold_unknown_status(&status);
                self.emit_changes(src, changes);
                // A buyer's request still needs its answer (from a person).
                self.on_cancel_request();
                return;
            }
        }
        if self.rec.instance.is_none() {
            self.maybe_start_workflow();
        } else if status_changed && status == TiktokStatus::Cancelled {
            self.cancel_instance("cancelled on TikTok", src);
        } else if status_changed && self.instance_running() {
            let ev = Data::map([
                ("type", Data::from("status")),
                ("status", Data::from(status.as_str())),
                (
                    "update_time",
                    Data::Int(self.rec.order.as_ref().map_or(0, |o| o.update_time)),
                ),
            ]);
            self.drive(Input::Event(ev));
        }
        self.emit_changes(src, changes);
        self.on_cancel_request();
    }

    /// Audits the events a snapshot carried and gives them to a running
    /// workflow.
    fn emit_changes(&mut self, src: &str, changes: Vec<Data>) {
        for ev in changes {
            self.audit(src, "event", ev.to_json().to_string());
            if self.instance_running() {
                self.drive(Input::Event(ev));
            }
        }
    }

    fn on_operator(&mut self, a: &OperatorAction, who: Option<&str>) {
        // The API checked the intervention against the order as it was;
        // it may have moved on since (a ship call landed, a hold ended).
        if let Some(why) = self.refusal(a.name()) {
            self.audit(
                "operator",
                "ignored",
                format!("{} refused: {why}{}", a.name(), by_suffix(who)),
            );
            return;
        }
        let mut detail = match a {
            OperatorAction::Hold { reason } | OperatorAction::Cancel { reason } => {
                format!("{}: {reason}", a.name())
            }
            OperatorAction::SellerCancel {
                reason,
                cancel_reason,
            } => format!("cancel: {reason} (TikTok reason {cancel_reason})"),
            OperatorAction::Approve { by, note } | OperatorAction::Reject { by, note } => {
                format!("{} by {by} {note}", a.name())
            }
            OperatorAction::RunFrom { step } => format!("run from {step}"),
            OperatorAction::Move { workflow, step } => match step {
                Some(st) => format!("move to {workflow}, from {st}"),
                None => format!("move to {workflow}"),
            },
            OperatorAction::Note { text } => format!("note: {text}"),
            _ => a.name().to_string(),
        };
        // Approvals already name their person in the text.
        if !matches!(
            a,
            OperatorAction::Approve { .. } | OperatorAction::Reject { .. }
        ) {
            detail.push_str(&by_suffix(who));
        }
        self.audit("operator", "intervention", detail);
        match a {
            OperatorAction::Resume => self.drive(Input::Resume),
            OperatorAction::Skip => self.drive(Input::Skip),
            OperatorAction::RunFrom { step } => self.drive(Input::RunFrom { step: step.clone() }),
            OperatorAction::Approve { by, note } => self.drive(Input::Approval {
                approved: true,
                by: by.clone(),
                note: note.clone(),
            }),
            OperatorAction::Reject { by, note } => self.drive(Input::Approval {
                approved: false,
                by: by.clone(),
                note: note.clone(),
            }),
            OperatorAction::Hold { .. } => {
                let _ = self.hold_for("operator", "held by an operator");
            }
            OperatorAction::Release if self.rec.held_from.is_some() => {
                self.release_hold("operator")
            }
            // A hold the workflow placed: it goes on where its definition
            // says (the `release` step of an `end: held`, or past a wait).
            OperatorAction::Release => self.drive(Input::Release),
            OperatorAction::Move { workflow, step } => self.move_to(workflow, step.as_deref()),
            OperatorAction::Note { text } => {
                self.rec.note = Some(text.clone());
            }
            OperatorAction::Cancel { reason } => self.operator_cancel(reason, None),
            OperatorAction::SellerCancel {
                reason,
                cancel_reason,
            } => self.operator_cancel(reason, Some(cancel_reason)),
            OperatorAction::AnswerCancelRequest {
                approve, reason, ..
            } => {
                let cancel_id = match self.rec.pending_cancel_request() {
                    None => {
                        self.audit("operator", "ignored", "no cancellation request is pending");
                        return;
                    }
                    Some((_, true)) => {
                        self.audit("operator", "ignored", "the request is already answered");
                        return;
                    }
                    Some((req, false)) => req.cancel_id.clone(),
                };
                let reason = (!approve).then(|| {
                    reason.clone().unwrap_or_else(|| {
                        crate::tiktok::reasons::RejectKind::Packed.as_str().into()
                    })
                });
                self.answer_cancel_request(&cancel_id, *approve, reason, true);
            }
        }
    }

    /// Why the interventions' rules refuse `action` now, if they do.
    fn refusal(&self, action: &str) -> Option<String> {
        let registry = self.env.registry;
        let current = registry.current();
        let in_force: Vec<String> = current.definitions.iter().map(|d| d.key()).collect();
        let resolve = |name: &str| -> Option<Arc<Definition>> {
            if name.contains('@') {
                registry.get(name).ok()
            } else {
                current.get(name).cloned()
            }
        };
        let cx = super::interventions::Context {
            def: self.def.as_deref(),
            in_force,
            // Whether TikTok can be told changes no rule, only what a
            // cancellation needs (checked by the API).
            tiktok: false,
            resolve: &resolve,
        };
        super::interventions::refusal(&self.rec, &cx, action)
    }

    /// What the interpreter sees of the world for `def`. Converting the
    /// order for CEL is the largest cost of a step; a workflow whose
    /// expressions never mention `order` does without.
    fn ctx_for(&mut self, def: &Definition) -> Ctx {
        let order = if def.reads_order {
            self.order_val()
        } else {
            expr::null()
        };
        Ctx {
            order,
            now_ms: self.env.now_ms,
        }
    }

    /// Moves the order to another workflow or version (`name@version`, or
    /// a name for the version in force) and runs it from `step`; without
    /// one, from the step it is at (if the new definition has it), else
    /// from the first. An order no workflow took starts on it.
    fn move_to(&mut self, workflow: &str, step: Option<&str>) {
        let def = if workflow.contains('@') {
            self.env.registry.get(workflow).ok()
        } else {
            self.env.registry.current().get(workflow).cloned()
        };
        let Some(def) = def else {
            self.audit("operator", "ignored", format!("no workflow {workflow}"));
            return;
        };
        if step.is_some_and(|st| def.step_index(st).is_none()) {
            self.audit(
                "operator",
                "ignored",
                format!("{} has no step {}", def.key(), step.unwrap_or_default()),
            );
            return;
        }
        let ctx = self.ctx_for(&def);
        let out = match self.rec.instance.take() {
            Some(inst) if rerunnable(&inst.state) || inst.state == State::New => {
                // Without a step, a live instance goes on at the step it
                // is at, if the new definition has it.
                let here = (!inst.is_terminal())
                    .then(|| self.def.as_ref().and_then(|d| inst.current_step(d)))
                    .flatten()
                    .filter(|id| def.step_index(id).is_some())
                    .map(str::to_string);
                rebase(&def, inst, step.or(here.as_deref()), &ctx)
            }
            Some(inst) => {
                let why = format!(
                    "cannot move while the workflow is {}",
                    crate::workflow::interpreter::state_name(&inst.state)
                );
                self.rec.instance = Some(inst);
                self.audit("operator", "ignored", why);
                return;
            }
            None => rebase(&def, Instance::new(&def, &self.rec.order_id), step, &ctx),
        };
        self.rec.workflow = Some(def.key());
        self.def = Some(def);
        self.rec.last_error = None;
        if self.rec.lifecycle != Lifecycle::Processing {
            self.set_lifecycle(
                Lifecycle::Processing,
                "operator",
                "moved to another workflow",
            );
        }
        self.apply_advance(out);
    }

    /// Stops the order's work (compensations run) and, with a TikTok
    /// reason, cancels it on TikTok too, unless TikTok already has it
    /// cancelled or past the point where a seller may cancel. Without one,
    /// TikTok is not told (the API asks for a reason while TikTok takes one).
    fn operator_cancel(&mut self, reason: &str, cancel_reason: Option<&String>) {
        let cancellable = self
            .rec
            .order
            .as_ref()
            .is_some_and(|o| crate::tiktok::reasons::seller_can_cancel(&o.status));
        match cancel_reason {
            Some(r) if cancellable => {
                let visit = self.rec.audit_seq as u32;
                let key = format!("{}:operator-cancel:{visit}", self.rec.order_id);
                self.start_side_effect(
                    OPERATOR_CANCEL,
                    visit,
                    key,
                    ActionName::TiktokCancelOrder.as_str(),
                    Data::map([("reason", Data::from(r.as_str()))]),
                );
                self.audit(
                    "operator",
                    "tiktok",
                    format!("asking TikTok to cancel the order ({r})"),
                );
            }
            Some(r) => self.audit(
                "operator",
                "tiktok",
                format!("not cancelled on TikTok ({r}): TikTok takes no seller cancellation in this status"),
            ),
            None if cancellable => self.audit(
                "operator",
                "tiktok",
                "not cancelled on TikTok: no cancel reason was given",
            ),
            None => {}
        }
        self.cancel_instance(reason, "operator");
    }

    /// Cancels the instance: what it did is undone (its compensations
    /// run); with nothing to undo, the order is cancelled at once. A
    /// cancellation ends any hold first (TikTok's may already have moved
    /// the lifecycle out of it), so the undoing does not wait behind it:
    /// inputs that waited for the release are applied after the
    /// cancellation (a call's result among them may be what needs
    /// undoing).
    fn cancel_instance(&mut self, reason: &str, source: &str) {
        self.rec.held_from = None;
        let waited = std::mem::take(&mut self.rec.deferred);
        if self.instance_undoable() {
            self.drive(Input::Cancel {
                reason: reason.to_string(),
            });
            for input in waited {
                self.drive(input);
            }
        } else {
            self.set_lifecycle(Lifecycle::Cancelled, source, reason);
        }
    }

    fn on_effect_done(
        &mut self,
        effect: &EffectId,
        result: &Result<Data, ActionError>,
    ) -> Result<(), Error> {
        let Some(pos) = self.rec.in_flight.iter().position(|s| &s.effect == effect) else {
            // A result for an effect already finished (a duplicate delivery).
            return Ok(());
        };
        let started = self.rec.in_flight.remove(pos);
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.kind.clone(),
        };
        let workflow = self
            .def
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default();
        metrics::counter!(crate::metrics::EFFECTS_TOTAL, "action" => started.action.clone(), "outcome" => outcome.clone())
            .increment(1);
        metrics::counter!(crate::metrics::WORKFLOW_STEPS_TOTAL, "workflow" => workflow.clone(), "step" => effect.step.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(crate::metrics::STEP_DURATION_SECONDS, "workflow" => workflow, "step" => effect.step.clone())
            .record((self.env.now_ms - started.started_ms).max(0) as f64 / 1000.0);
        // The order counts as shipped once TikTok took the ship call, as
        // TikTok counts it: a call waiting in the gateway's queue leaves the
        // order at risk (and late, past its ship-by), and lateness is
        // judged by when TikTok took it.
        if result.is_ok()
            && matches!(
                ActionName::parse(&started.action),
                Some(ActionName::TiktokMarkShipped | ActionName::TiktokShipPackage)
            )
            && self.rec.fulfillment_ms.is_none()
        {
            self.rec.fulfillment_ms = Some(self.env.now_ms);
            let secs = (self.env.now_ms - self.rec.received_ms).max(0) as f64 / 1000.0;
            metrics::histogram!(crate::metrics::ORDER_FULFILLMENT_SECONDS).record(secs);
            if let Some(e) = self.rec.eligible_ms {
                let secs = (self.env.now_ms - e).max(0) as f64 / 1000.0;
                metrics::histogram!(crate::metrics::ORDER_ELIGIBLE_FULFILLMENT_SECONDS)
                    .record(secs);
            }
        }
        // The result needs no write of its own: this checkpoint drops the
        // effect from `in_flight` and feeds the result to the instance, and
        // nothing else ever reads it (see the `effects` tree in `store`).
        if let Ok(out) = result {
            // What an action wants people to know about how it went (e.g.
            // units taken from another warehouse than the order names).
            if let Some(note) = out.get("note").and_then(Data::as_str) {
                let text = format!("{}: {note}", effect.step);
                self.audit("workflow", "note", text);
            }
            match ActionName::parse(&started.action) {
                Some(ActionName::OrderTag) => {
                    if let (Some(o), Some(Data::List(tags))) =
                        (self.rec.order.as_mut(), started.args.get("tags"))
                    {
                        for t in tags.iter().filter_map(Data::as_str) {
                            if !o.tags.iter().any(|x| x == t) {
                                o.tags.push(t.to_string());
                                self.order_val = None;
                            }
                        }
                    }
                }
                Some(ActionName::OrderHold) => {
                    let reason = started
                        .args
                        .get("reason")
                        .map(Data::render)
                        .unwrap_or_default();
                    self.set_lifecycle(Lifecycle::OnHold, "workflow", &format!("held: {reason}"));
                }
                Some(ActionName::TiktokMarkShipped | ActionName::TiktokShipPackage) => {
                    self.set_lifecycle(
                        Lifecycle::Fulfilled,
                        "workflow",
                        "shipped: tracking sent to TikTok",
                    );
                }
                _ => {}
            }
            let _ = out;
        }
        self.changed = true;
        if effect.step == CANCEL_REQUEST_ANSWER {
            match result {
                Ok(_) => {
                    self.audit("tiktok", "cancel_request", "TikTok took the answer");
                    // Release a hold placed for this request, and no other.
                    let ours = self.rec.cancel_answer.as_mut().filter(|a| a.held);
                    if let Some(a) = ours {
                        a.held = false;
                        if self.held() {
                            self.release_hold("tiktok");
                        }
                    }
                }
                Err(e) => {
                    // Unanswered, the request must reach a person in time
                    // (the automatic answer is not tried again).
                    let why = format!(
                        "TikTok did not take the answer to the buyer's cancellation request ({}): {}; answer it by hand",
                        e.kind, e.message
                    );
                    self.audit("tiktok", "cancel_request", why.clone());
                    let held = self.hold_for("tiktok", &why);
                    if let Some(a) = self.rec.cancel_answer.as_mut() {
                        a.state = crate::store::AnswerState::Failed;
                        a.held |= held;
                    }
                }
            }
            return Ok(());
        }
        // A workflow step that answered the buyer's request counts as the
        // answer: the policy does not answer it again.
        if result.is_ok()
            && matches!(
                ActionName::parse(&started.action),
                Some(ActionName::TiktokApproveCancellation | ActionName::TiktokRejectCancellation)
            )
        {
            if let Some(req) = self
                .rec
                .order
                .as_ref()
                .and_then(|o| o.cancel_request.clone())
            {
                self.rec.cancel_answer = Some(crate::store::CancelAnswerState {
                    cancel_id: req.cancel_id,
                    state: crate::store::AnswerState::Sent {
                        approve: started.action == ActionName::TiktokApproveCancellation.as_str(),
                    },
                    held: false,
                });
            }
        }
        if effect.step == OPERATOR_CANCEL {
            let detail = match result {
                Ok(_) => "TikTok accepted the cancellation".to_string(),
                Err(e) => format!(
                    "TikTok refused the cancellation ({}): {}",
                    e.kind, e.message
                ),
            };
            self.audit("operator", "tiktok", detail);
            return Ok(());
        }
        // A ship call refused because TikTok had cancelled the order: the
        // cancellation is recorded as if its webhook had come (the workflow
        // is told to cancel while the call is still its own), then the
        // result lets it compensate and end cancelled.
        if let Err(e) = result {
            if e.kind == ErrorKind::OrderCancelled.as_str() {
                if let Some(mut o) = self.rec.order.clone() {
                    o.status = TiktokStatus::Cancelled;
                    // Newer than what we had, so a snapshot read before the
                    // cancellation cannot put the old status back.
                    o.update_time += 1;
                    self.audit("tiktok", "status", e.message.clone());
                    self.on_snapshot(&o, "tiktok", self.env.now_ms);
                }
                // Nothing shipped: the order does not count as fulfilled in
                // the figures.
                self.rec.fulfillment_ms = None;
            }
        }
        self.drive(Input::EffectResult {
            effect: effect.clone(),
            result: result.clone(),
        });
        Ok(())
    }

    fn on_timer(&mut self, key: &[u8], entry: &TimerEntry) -> Result<(), Error> {
        let armed = self
            .rec
            .timers
            .iter()
            .position(|t| t.timer == entry.timer && t.due_ms == entry.due_ms);
        self.ops.push(Op::Del {
            tree: Tree::Timers,
            key: key.to_vec(),
        });
        match armed {
            None => {
                // An orphan (its checkpoint never landed, or it was
                // disarmed): just remove it from the index.
                self.changed = true;
            }
            Some(pos) => {
                self.rec.timers.remove(pos);
                let deferred = self.rec.deferred.len();
                self.drive(Input::Timer(timer_of(entry)));
                // Overdue only when the timeout was taken (not deferred by a
                // hold) and left this approval pending (`default: hold`: its
                // deadline is now); a default that led into another approval
                // has a deadline ahead.
                let now = self.env.now_ms;
                let overdue = entry.timer.kind == TimerKind::ApprovalTimeout
                    && self.rec.deferred.len() == deferred
                    && matches!(
                        self.rec.instance.as_ref().map(|i| &i.state),
                        Some(State::AwaitingApproval { due_ms, .. }) if *due_ms <= now
                    );
                if overdue {
                    self.approval_overdue(&entry.timer.step);
                }
            }
        }
        Ok(())
    }

    /// An approval nobody answered in time: the order stays held for a
    /// person (nothing is cancelled), who is alerted once, with TikTok's
    /// ship-by deadline.
    fn approval_overdue(&mut self, step: &str) {
        let ship_by = self.rec.order.as_ref().and_then(|o| o.deadlines.ship_by());
        let by = ship_by.map_or_else(
            || "no ship-by deadline known".to_string(),
            |t| format!("ship by {}", fmt_unix(t)),
        );
        let text = format!(
            "Order {} waits for an approval nobody gave ({step}): it is held, nothing was cancelled; approve or reject it ({by})",
            self.rec.order_id
        );
        self.audit("workflow", "attention", text.clone());
        metrics::counter!(crate::metrics::APPROVALS_OVERDUE_TOTAL).increment(1);
        self.alerts.push((
            text,
            serde_json::json!({
                "order_id": self.rec.order_id,
                "kind": "approval_overdue",
                "step": step,
                "ship_by": ship_by,
            }),
        ));
    }

    fn finish(mut self) -> Result<Plan, Error> {
        if !self.changed && self.ops.is_empty() {
            return Ok(Plan {
                alerts: self.alerts,
                record: self.rec,
                ops: Vec::new(),
                start: Vec::new(),
                order_val: self.order_val,
                projection: None,
            });
        }
        self.rec.updated_ms = self.env.now_ms;
        if let Some(first) = self.audit_entries.first() {
            if let Ok(v) = encode_audit_group(&self.audit_entries) {
                self.ops.push(Op::Put {
                    tree: Tree::Audit,
                    key: audit_key(&self.rec.order_id, first.seq),
                    value: v,
                });
            }
        }
        let id = self.rec.order_id.clone().into_bytes();
        // The `running` marker changes only when the order gains its first
        // effect in flight or loses its last: the record we started from is
        // durable, and so is the marker written with it, so writing it
        // again at every step would only cost a sled write (see
        // `Env::running_marker`).
        let running = !self.rec.in_flight.is_empty();
        if self.env.running_marker != Some(running) {
            if running {
                self.ops.push(Op::Put {
                    tree: Tree::Running,
                    key: id.clone(),
                    value: Vec::new(),
                });
            } else {
                self.ops.push(Op::Del {
                    tree: Tree::Running,
                    key: id.clone(),
                });
            }
        }
        self.ops.push(Op::Put {
            tree: Tree::Orders,
            key: id,
            value: codec::encode(&self.rec).map_err(crate::store::Error::from)?,
        });
        let projection = crate::store::index::Projection::of(&self.rec);
        if self.env.projection != Some(&projection) {
            self.ops.push(Op::Index {
                order_id: self.rec.order_id.clone(),
                projection: Box::new(projection.clone()),
            });
        }
        Ok(Plan {
            record: self.rec,
            ops: self.ops,
            start: self.start,
            order_val: self.order_val,
            alerts: self.alerts,
            projection: Some(projection),
        })
    }
}

fn timer_of(e: &TimerEntry) -> TimerId {
    e.timer.clone()
}

/// The events a new snapshot of an order carries beside its status:
/// `address` (the recipient changed: RECIPIENT_ADDRESS_UPDATE),
/// `package` (packages, tracking number or carrier changed:
/// PACKAGE_UPDATE) and `cancellation` (the buyer's request appeared or
/// changed, `requested`, or is no longer pending, `closed`:
/// CANCELLATION_STATUS_CHANGE).
fn order_changes(prev: &Order, now: &Order) -> Vec<Data> {
    let mut out = Vec::new();
    // The fields the event carries, and the street lines: TikTok masks a
    // name or phone number differently between reads.
    let place = |a: &Option<crate::order::Address>| {
        a.as_ref().map(|a| {
            (
                a.full_address.clone(),
                a.address_line1.clone(),
                a.address_line2.clone(),
                a.postal_code.clone(),
                a.region_code.clone(),
                a.districts.clone(),
            )
        })
    };
    if place(&prev.recipient) != place(&now.recipient) {
        if let Some(a) = &now.recipient {
            out.push(Data::map([
                ("type", Data::from("address")),
                ("full_address", Data::from(a.full_address.as_str())),
                ("postal_code", Data::from(a.postal_code.as_str())),
                ("region_code", Data::from(a.region_code.as_str())),
                ("update_time", Data::Int(now.update_time)),
            ]));
        }
    }
    if prev.packages != now.packages
        || prev.tracking_number != now.tracking_number
        || prev.shipping_provider_id != now.shipping_provider_id
    {
        out.push(Data::map([
            ("type", Data::from("package")),
            (
                "package_ids",
                Data::List(
                    now.packages
                        .iter()
                        .map(|p| Data::from(p.as_str()))
                        .collect(),
                ),
            ),
            (
                "tracking_number",
                Data::from(now.tracking_number.clone().unwrap_or_default()),
            ),
            (
                "shipping_provider_id",
                Data::from(now.shipping_provider_id.clone().unwrap_or_default()),
            ),
            ("update_time", Data::Int(now.update_time)),
        ]));
    }
    if prev.cancel_request != now.cancel_request {
        let ev = match &now.cancel_request {
            Some(r) => Data::map([
                ("type", Data::from("cancellation")),
                ("state", Data::from("requested")),
                ("cancel_id", Data::from(r.cancel_id.as_str())),
                ("reason", Data::from(r.reason.as_str())),
                ("reason_text", Data::from(r.reason_text.as_str())),
                ("respond_by", r.respond_by.map_or(Data::Null, Data::Int)),
            ]),
            // Withdrawn by the buyer, answered, or the order cancelled.
            None if !now.buyer_cancel_requested => Data::map([
                ("type", Data::from("cancellation")),
                ("state", Data::from("closed")),
                (
                    "cancel_id",
                    Data::from(
                        prev.cancel_request
                            .as_ref()
                            .map(|r| r.cancel_id.clone())
                            .unwrap_or_default(),
                    ),
                ),
            ]),
            None => return out,
        };
        out.push(ev);
    }
    out
}

/// ` (by alice)`, or nothing when nobody was named.
fn by_suffix(who: Option<&str>) -> String {
    who.map(|w| format!(" (by {w})")).unwrap_or_default()
}
