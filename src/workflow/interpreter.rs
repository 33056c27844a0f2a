//! The interpreter: `advance(definition, instance, input) -> (instance',
//! effects)`, a pure function.
//!
//! An [`Instance`] is plain data: which step it is on, the attempt and
//! visit numbers, variables, step outputs, the compensation stack and what
//! it is waiting for. The runtime feeds it one [`Input`] at a time (start,
//! an action's result, an order event, a timer, an operator's decision),
//! gets back the next instance and the [`Effect`]s to perform (call an
//! action, arm or disarm a timer), checkpoints both, and performs them.
//!
//! Because there is no replay, there is no determinism trap: the
//! interpreter never reads a clock or a random source of its own (time and
//! the order come in [`Ctx`]; retry jitter is derived from the instance),
//! so the same inputs always give the same outputs, and any instance can be
//! inspected, edited by an operator, or moved to another machine.
//!
//! Inputs that do not fit the current state (a timer that already fired, a
//! result for an attempt that was superseded) are ignored and traced: after
//! a crash the runtime may deliver things twice, and that must be harmless.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::expr::{Scope, Template};
use super::model::*;
use super::value::Data;
use crate::actions::{self, ErrorKind};

/// How many steps may run without waiting for the outside world within one
/// `advance`: a `goto` loop of `set`/`switch` steps must not spin forever.
pub const MAX_INLINE_TRANSITIONS: u32 = 1_000;
/// Attempts for a compensation before it is recorded as failed and skipped.
pub const COMPENSATION_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub workflow: String,
    pub version: String,
    pub order_id: String,
    /// Index of the current step.
    pub pc: u32,
    /// Attempt of the current call (1-based).
    pub attempt: u32,
    /// How many times each step has been entered: part of the idempotency
    /// key, so a retry reuses the key and an operator's re-run does not.
    pub visits: BTreeMap<String, u32>,
    pub vars: BTreeMap<String, Data>,
    pub outputs: BTreeMap<String, Data>,
    /// The last error caught by `catch`, readable as `error`.
    pub error: Option<StepError>,
    /// Undo actions of finished steps, oldest first.
    pub compensations: Vec<CompensationRecord>,
    pub state: State,
    /// Compensations that failed every attempt (recorded, never blocking).
    pub failed_compensations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub kind: String,
    pub message: String,
    pub step: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRecord {
    pub step: String,
    pub visit: u32,
    pub action: String,
    pub args: Data,
}

/// Identifies one logical effect: the same for every attempt and every
/// crash replay of one visit of one step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EffectId {
    pub step: String,
    pub visit: u32,
    pub compensation: bool,
}

impl EffectId {
    /// The idempotency key sent with the effect: (order, version, step, visit).
    pub fn key(&self, order_id: &str, version: &str) -> String {
        let suffix = if self.compensation { ":undo" } else { "" };
        format!("{order_id}:{version}:{}:{}{suffix}", self.step, self.visit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    Retry(u32),
    WaitTimeout,
    Sleep,
    ApprovalTimeout,
    CompensationRetry(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimerId {
    pub step: String,
    pub visit: u32,
    pub kind: TimerKind,
}

/// Where the instance is. Every waiting state names its timer and due time
/// so an operator (and recovery) can see exactly what it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// Created, not started.
    New,
    Calling {
        effect: EffectId,
    },
    Backoff {
        timer: TimerId,
        due_ms: i64,
    },
    Waiting {
        timer: TimerId,
        due_ms: i64,
    },
    Sleeping {
        timer: TimerId,
        due_ms: i64,
    },
    AwaitingApproval {
        timer: TimerId,
        due_ms: i64,
        message: String,
    },
    /// A cancellation arrived while a call was in flight: wait for its
    /// result (it may have done something that needs undoing), then
    /// compensate.
    Cancelling {
        effect: EffectId,
    },
    /// Running the compensation stack from the top; `then` is the terminal
    /// state to enter afterwards.
    Compensating {
        then: Terminal,
        attempt: u32,
        backoff: Option<TimerId>,
    },
    /// Paused: retries ran out or an expression failed. Progress is kept;
    /// an operator resumes, skips or cancels.
    Exception {
        error: StepError,
    },
    Done(Terminal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Terminal {
    Completed { outcome: String },
    Failed { reason: String },
    Cancelled { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionError {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    Start,
    EffectResult {
        effect: EffectId,
        result: Result<Data, ActionError>,
    },
    /// An order event (status change, address update, carrier scan…),
    /// matched by `wait` steps as `event`.
    Event(Data),
    Timer(TimerId),
    Approval {
        approved: bool,
        by: String,
        note: String,
    },
    /// The order was cancelled: stop and run the compensations.
    Cancel {
        reason: String,
    },
    /// Operator: run the failed step again (a new visit, so a new key).
    Resume,
    /// Operator: skip the current step (its output is null).
    Skip,
    /// Operator: jump to a step and run it as a new visit.
    RunFrom {
        step: String,
    },
    /// Operator: release a hold the workflow placed. After an `end: held`
    /// step, go on at its `release` step; in a `wait`, stop waiting and go
    /// on as if it had matched (its output is null).
    Release,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    Call {
        effect: EffectId,
        action: String,
        args: Data,
        attempt: u32,
        timeout: Option<Duration>,
    },
    StartTimer {
        timer: TimerId,
        due_ms: i64,
    },
    CancelTimer {
        timer: TimerId,
    },
}

/// The outside world as the interpreter may see it.
pub struct Ctx {
    /// `order` in expressions (see [`crate::order::Order::to_json`]),
    /// converted once with [`super::expr::val`].
    pub order: super::expr::Val,
    pub now_ms: i64,
}

/// The result of one `advance`.
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    pub instance: Instance,
    pub effects: Vec<Effect>,
    /// Why, step by step, in words (dry-run prints it; the audit log keeps it).
    pub trace: Vec<String>,
}

impl Instance {
    /// A fresh instance of `def` for an order; variables are initialised
    /// from the definition's `vars` on `Start`.
    pub fn new(def: &Definition, order_id: &str) -> Instance {
        Instance {
            workflow: def.name.clone(),
            version: def.version.clone(),
            order_id: order_id.to_string(),
            pc: 0,
            attempt: 0,
            visits: BTreeMap::new(),
            vars: BTreeMap::new(),
            outputs: BTreeMap::new(),
            error: None,
            compensations: Vec::new(),
            state: State::New,
            failed_compensations: Vec::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The current step's id, if the instance is inside one.
    pub fn current_step<'d>(&self, def: &'d Definition) -> Option<&'d str> {
        def.steps.get(self.pc as usize).map(|s| s.id.as_str())
    }
}

/// Advances an instance by one input. Pure: no I/O, no clock, no randomness.
pub fn advance(def: &Definition, inst: Instance, input: &Input, ctx: &Ctx) -> Advance {
    let mut m = Machine::new(def, ctx, inst);
    if m.inst.version != def.version || m.inst.workflow != def.name {
        m.trace.push(format!(
            "ignored: instance runs {}@{}, not {}",
            m.inst.workflow,
            m.inst.version,
            def.key()
        ));
    } else if (m.inst.pc as usize) >= def.steps.len() && !m.inst.is_terminal() {
        let error = StepError {
            kind: ErrorKind::Invalid.as_str().into(),
            message: format!("step index {} is outside the workflow", m.inst.pc),
            step: String::new(),
        };
        m.inst.pc = 0;
        m.inst.state = State::Exception { error };
    } else {
        m.apply(input);
    }
    Advance {
        instance: m.inst,
        effects: m.effects,
        trace: m.trace,
    }
}

struct Machine<'a> {
    def: &'a Definition,
    ctx: &'a Ctx,
    inst: Instance,
    effects: Vec<Effect>,
    trace: Vec<String>,
    budget: u32,
    pending: Option<usize>,
    running: bool,
    scope_cache: Option<Scope>,
}

impl<'a> Machine<'a> {
    fn new(def: &'a Definition, ctx: &'a Ctx, inst: Instance) -> Machine<'a> {
        Machine {
            def,
            ctx,
            inst,
            effects: Vec::new(),
            trace: Vec::new(),
            budget: MAX_INLINE_TRANSITIONS,
            pending: None,
            running: false,
            scope_cache: None,
        }
    }
}

/// Where control goes after a step.
enum Flow {
    To(usize),
    /// Fell off the end of the workflow: it completed.
    End,
}

impl<'a> Machine<'a> {
    fn step(&self) -> &'a Step {
        &self.def.steps[self.inst.pc as usize]
    }

    fn visit(&self) -> u32 {
        self.inst.visits.get(&self.step().id).copied().unwrap_or(0)
    }

    /// Sets the definition's `vars`.
    fn init_vars(&mut self) {
        let scope = self.scope(None);
        for (k, t) in &self.def.vars {
            match t.render(&scope) {
                Ok(v) => match var_too_big(k, &v) {
                    None => self.set_var(k.clone(), v),
                    Some(e) => {
                        self.trace.push(format!("{e}; set to null"));
                        self.set_var(k.clone(), Data::Null);
                    }
                },
                Err(e) => {
                    self.trace.push(format!("vars.{k}: {e}; set to null"));
                    self.set_var(k.clone(), Data::Null);
                }
            }
        }
    }

    fn set_output(&mut self, id: String, v: Data) {
        self.scope_cache = None;
        self.inst.outputs.insert(id, v);
    }

    fn remove_output(&mut self, id: &str) {
        if self.inst.outputs.remove(id).is_some() {
            self.scope_cache = None;
        }
    }

    fn set_var(&mut self, k: String, v: Data) {
        self.scope_cache = None;
        self.inst.vars.insert(k, v);
    }

    fn set_error(&mut self, e: Option<StepError>) {
        self.scope_cache = None;
        self.inst.error = e;
    }

    /// The expression scope. Converting outputs and variables for CEL is the
    /// expensive part of a step, so it is cached until one of them changes
    /// (every change goes through the setters above).
    fn scope(&mut self, event: Option<&Data>) -> Scope {
        use super::expr::null;
        let base = match &self.scope_cache {
            Some(s) => s.clone(),
            None => {
                let error = match &self.inst.error {
                    None => null(),
                    Some(e) => Arc::from(
                        Data::map([
                            ("kind", Data::from(e.kind.as_str())),
                            ("message", Data::from(e.message.as_str())),
                            ("step", Data::from(e.step.as_str())),
                        ])
                        .to_val(),
                    ),
                };
                let s = Scope {
                    order: self.ctx.order.clone(),
                    steps: Arc::from(Data::map_to_val(&self.inst.outputs)),
                    vars: Arc::from(Data::map_to_val(&self.inst.vars)),
                    event: null(),
                    error,
                    now: self.ctx.now_ms.div_euclid(1000),
                };
                self.scope_cache = Some(s.clone());
                s
            }
        };
        match event {
            None => base,
            Some(e) => Scope {
                event: Arc::from(e.to_val()),
                ..base
            },
        }
    }

    fn after(&self, i: usize) -> Flow {
        let s = &self.def.steps[i];
        match s.next {
            Some(n) => Flow::To(n),
            None if i + 1 < self.def.steps.len() => Flow::To(i + 1),
            None => Flow::End,
        }
    }

    fn apply(&mut self, input: &Input) {
        let state = self.inst.state.clone();
        match (state, input) {
            (State::New, Input::Start) => {
                self.init_vars();
                self.trace.push(format!("started {}", self.def.key()));
                self.enter(0);
            }
            (State::Calling { effect }, Input::EffectResult { effect: e, result })
                if &effect == e =>
            {
                match result {
                    Ok(out) => self.call_succeeded(out.clone()),
                    Err(err) => self.call_failed(err),
                }
            }
            (State::Backoff { timer, .. }, Input::Timer(t)) if &timer == t => {
                self.inst.attempt += 1;
                self.trace.push(format!(
                    "{}: retry, attempt {}",
                    self.step().id,
                    self.inst.attempt
                ));
                self.issue_call();
            }
            (State::Waiting { timer, .. }, Input::Event(ev)) => {
                let StepKind::Wait { until, .. } = &self.step().kind else {
                    return;
                };
                let id = self.step().id.clone();
                match until.eval_bool(&self.scope(Some(ev))) {
                    Ok(true) => {
                        self.trace
                            .push(format!("{id}: event matched `{}`", until.source));
                        self.effects.push(Effect::CancelTimer { timer });
                        self.set_output(id, ev.clone());
                        self.continue_after(self.inst.pc as usize);
                    }
                    Ok(false) => self.trace.push(format!(
                        "{id}: event did not match `{}`; still waiting",
                        until.source
                    )),
                    Err(e) => self.trace.push(format!("{id}: {e}; event ignored")),
                }
            }
            (State::Waiting { timer, .. }, Input::Timer(t)) if &timer == t => {
                let StepKind::Wait { on_timeout, .. } = &self.step().kind else {
                    return;
                };
                let id = self.step().id.clone();
                match *on_timeout {
                    OnTimeout::Continue => {
                        self.trace.push(format!("{id}: timed out; continuing"));
                        self.set_output(id, Data::Null);
                        self.continue_after(self.inst.pc as usize);
                    }
                    OnTimeout::Goto(t) => {
                        self.trace.push(format!(
                            "{id}: timed out; going to {}",
                            self.def.steps[t].id
                        ));
                        self.enter(t);
                    }
                    OnTimeout::Fail => self.exception(
                        ErrorKind::Timeout.as_str(),
                        format!("{id}: timed out waiting"),
                    ),
                }
            }
            (State::Sleeping { timer, .. }, Input::Timer(t)) if &timer == t => {
                let id = self.step().id.clone();
                self.trace.push(format!("{id}: woke up"));
                self.set_output(id, Data::Null);
                self.continue_after(self.inst.pc as usize);
            }
            (State::AwaitingApproval { timer, .. }, Input::Approval { approved, by, note }) => {
                self.effects.push(Effect::CancelTimer { timer });
                self.approval_decided(*approved, by, note);
            }
            (State::AwaitingApproval { timer, message, .. }, Input::Timer(t)) if &timer == t => {
                let StepKind::Approval { default, .. } = &self.step().kind else {
                    return;
                };
                let id = self.step().id.clone();
                match default {
                    // Unanswered, the order stays with a person: still
                    // awaiting the decision (its timer spent), held.
                    ApprovalDefault::Hold => {
                        self.trace.push(format!(
                            "{id}: no decision before the timeout; held until an operator approves or rejects"
                        ));
                        self.inst.state = State::AwaitingApproval {
                            timer,
                            due_ms: self.ctx.now_ms,
                            message,
                        };
                    }
                    d => {
                        let approved = *d == ApprovalDefault::Approve;
                        self.trace.push(format!(
                            "{id}: no decision before the timeout; default is to {}",
                            if approved { "approve" } else { "reject" }
                        ));
                        self.approval_decided(approved, "timeout", "");
                    }
                }
            }
            (State::Cancelling { effect }, Input::EffectResult { effect: e, result })
                if &effect == e =>
            {
                if let Ok(out) = result {
                    self.record_output_and_compensation(out.clone());
                }
                self.start_compensation(Terminal::Cancelled {
                    reason: "order cancelled".into(),
                });
            }
            (
                State::Compensating {
                    then,
                    attempt,
                    backoff: None,
                },
                Input::EffectResult { effect: e, result },
            ) if self.top_compensation_id().as_ref() == Some(e) => match result {
                Ok(_) => {
                    if let Some(c) = self.inst.compensations.pop() {
                        self.trace
                            .push(format!("{}: compensated with {}", c.step, c.action));
                    }
                    self.run_compensation(then, 1);
                }
                Err(err) if attempt < COMPENSATION_ATTEMPTS => {
                    let timer = TimerId {
                        step: e.step.clone(),
                        visit: e.visit,
                        kind: TimerKind::CompensationRetry(attempt + 1),
                    };
                    let delay = Duration::from_secs(1u64 << attempt.min(8));
                    let due_ms = self.ctx.now_ms + delay.as_millis() as i64;
                    self.trace.push(format!(
                        "{}: compensation failed ({}: {}); retrying in {:?}",
                        e.step, err.kind, err.message, delay
                    ));
                    self.effects.push(Effect::StartTimer {
                        timer: timer.clone(),
                        due_ms,
                    });
                    self.inst.state = State::Compensating {
                        then,
                        attempt,
                        backoff: Some(timer),
                    };
                }
                Err(err) => {
                    if let Some(c) = self.inst.compensations.pop() {
                        let msg =
                            format!("{} ({}): {}: {}", c.step, c.action, err.kind, err.message);
                        self.trace.push(format!(
                            "compensation gave up after {attempt} attempts: {msg}"
                        ));
                        self.inst.failed_compensations.push(msg);
                    }
                    self.run_compensation(then, 1);
                }
            },
            (
                State::Compensating {
                    then,
                    attempt,
                    backoff: Some(timer),
                },
                Input::Timer(t),
            ) if &timer == t => self.run_compensation(then, attempt + 1),
            // Ended held (or failed) with what it did still standing (a
            // reservation, a label kept for the release): a cancellation
            // undoes it, as it would have while the workflow ran.
            (State::Done(t), Input::Cancel { reason }) if undoable_end(&t, &self.inst) => {
                self.trace.push(format!(
                    "cancelled ({reason}) after the workflow ended {}",
                    terminal_name(&t)
                ));
                self.start_compensation(Terminal::Cancelled {
                    reason: reason.clone(),
                });
            }
            (State::Done(_), Input::Cancel { .. }) => {
                self.trace
                    .push("cancel ignored: the workflow already finished".into());
            }
            (State::Compensating { .. }, Input::Cancel { .. }) => {
                self.trace
                    .push("cancel ignored: already compensating".into());
            }
            (State::Calling { effect }, Input::Cancel { reason }) => {
                self.trace.push(format!(
                    "cancelled ({reason}) while {} was in flight; waiting for its result before compensating",
                    effect.step
                ));
                self.inst.state = State::Cancelling { effect };
            }
            (state, Input::Cancel { reason }) if !matches!(state, State::Cancelling { .. }) => {
                self.disarm(&state);
                self.trace.push(format!("cancelled: {reason}"));
                self.start_compensation(Terminal::Cancelled {
                    reason: reason.clone(),
                });
            }
            (State::Exception { error }, Input::Resume) => {
                self.trace.push(format!(
                    "operator resumed at {} (was: {})",
                    error.step, error.message
                ));
                self.enter(self.inst.pc as usize);
            }
            (
                state @ (State::Exception { .. }
                | State::Waiting { .. }
                | State::Sleeping { .. }
                | State::AwaitingApproval { .. }
                | State::Backoff { .. }),
                Input::Skip,
            ) => {
                self.disarm(&state);
                let id = self.step().id.clone();
                self.trace.push(format!("operator skipped {id}"));
                self.set_output(id, Data::Null);
                self.continue_after(self.inst.pc as usize);
            }
            (State::Waiting { timer, .. }, Input::Release) => {
                self.effects.push(Effect::CancelTimer { timer });
                let id = self.step().id.clone();
                self.trace
                    .push(format!("{id}: released by an operator; going on"));
                self.set_output(id, Data::Null);
                self.continue_after(self.inst.pc as usize);
            }
            (State::Done(Terminal::Completed { outcome }), Input::Release) if outcome == HELD => {
                match &self.step().kind {
                    StepKind::End {
                        release: Some(t), ..
                    } => {
                        let t = *t;
                        self.trace.push(format!(
                            "{}: hold released by an operator; going on at {}",
                            self.step().id,
                            self.def.steps[t].id
                        ));
                        self.enter(t);
                    }
                    _ => self.trace.push(format!(
                        "ignored release: {} names no release step (run from a step instead)",
                        self.step().id
                    )),
                }
            }
            (state, Input::RunFrom { step }) if rerunnable(&state) => {
                match self.def.step_index(step) {
                    Some(i) => {
                        self.disarm(&state);
                        self.trace.push(format!("operator re-runs from {step}"));
                        self.enter(i);
                    }
                    None => self.trace.push(format!("ignored: no step \"{step}\"")),
                }
            }
            (state, input) => {
                self.trace.push(format!(
                    "ignored {} in state {}",
                    input_name(input),
                    state_name(&state)
                ));
            }
        }
    }

    /// Disarms whatever timer a waiting state holds.
    fn disarm(&mut self, state: &State) {
        match state {
            State::Backoff { timer, .. }
            | State::Waiting { timer, .. }
            | State::Sleeping { timer, .. }
            | State::AwaitingApproval { timer, .. } => {
                self.effects.push(Effect::CancelTimer {
                    timer: timer.clone(),
                });
            }
            _ => {}
        }
    }

    fn exception(&mut self, kind: &str, message: String) {
        let step = self.step().id.clone();
        self.trace
            .push(format!("{step}: exception ({kind}): {message}"));
        self.inst.state = State::Exception {
            error: StepError {
                kind: kind.into(),
                message,
                step,
            },
        };
    }

    fn continue_after(&mut self, i: usize) {
        match self.after(i) {
            Flow::To(n) => self.enter(n),
            Flow::End => self.finish(Terminal::Completed {
                outcome: "completed".into(),
            }),
        }
    }

    fn finish(&mut self, t: Terminal) {
        self.trace.push(format!("finished: {}", terminal_name(&t)));
        self.inst.state = State::Done(t);
    }

    /// Enters step `i` as a new visit and runs until something external is
    /// needed. Every call to `enter` is a tail call, so instead of recursing
    /// (a long `goto` chain would overflow the stack) the first call runs a
    /// loop and nested calls only leave the next step for it.
    fn enter(&mut self, i: usize) {
        self.pending = Some(i);
        if self.running {
            return;
        }
        self.running = true;
        while let Some(i) = self.pending.take() {
            self.enter_one(i);
        }
        self.running = false;
    }

    fn enter_one(&mut self, i: usize) {
        if self.budget == 0 {
            self.inst.pc = i as u32;
            self.exception(
                ErrorKind::Invalid.as_str(),
                format!("more than {MAX_INLINE_TRANSITIONS} steps ran without waiting; is there a goto loop?"),
            );
            return;
        }
        self.budget -= 1;
        self.inst.pc = i as u32;
        self.inst.attempt = 1;
        let step = &self.def.steps[i];
        let id = step.id.clone();
        *self.inst.visits.entry(id.clone()).or_insert(0) += 1;
        self.remove_output(&id);
        if let Some(g) = &step.guard {
            match g.eval_bool(&self.scope(None)) {
                Ok(true) => self.trace.push(format!("{id}: if `{}` is true", g.source)),
                Ok(false) => {
                    self.trace
                        .push(format!("{id}: skipped, because `{}` is false", g.source));
                    return self.continue_after(i);
                }
                Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
            }
        }
        let now = self.ctx.now_ms;
        let visit = self.visit();
        match &step.kind {
            StepKind::Call { .. } => self.issue_call(),
            StepKind::Wait { until, timeout, .. } => {
                let timer = TimerId {
                    step: id.clone(),
                    visit,
                    kind: TimerKind::WaitTimeout,
                };
                let due_ms = now + timeout.as_millis() as i64;
                self.trace.push(format!(
                    "{id}: waiting for an event where `{}` (timeout {})",
                    until.source,
                    humantime::format_duration(*timeout)
                ));
                self.effects.push(Effect::StartTimer {
                    timer: timer.clone(),
                    due_ms,
                });
                self.inst.state = State::Waiting { timer, due_ms };
            }
            StepKind::Sleep(spec) => {
                let due_ms = match spec {
                    SleepSpec::For(d) => now + d.as_millis() as i64,
                    SleepSpec::Until(t) => match t.render(&self.scope(None)) {
                        Ok(Data::Int(secs)) => secs.saturating_mul(1000),
                        Ok(Data::Float(secs)) => (secs * 1000.0) as i64,
                        Ok(other) => {
                            return self.exception(
                                ErrorKind::Expression.as_str(),
                                format!(
                                    "sleep.until must give Unix seconds, not {}",
                                    other.to_json()
                                ),
                            )
                        }
                        Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
                    },
                };
                let timer = TimerId {
                    step: id.clone(),
                    visit,
                    kind: TimerKind::Sleep,
                };
                self.trace
                    .push(format!("{id}: sleeping for {} ms", (due_ms - now).max(0)));
                self.effects.push(Effect::StartTimer {
                    timer: timer.clone(),
                    due_ms,
                });
                self.inst.state = State::Sleeping { timer, due_ms };
            }
            StepKind::Approval {
                message, timeout, ..
            } => {
                let message = match message {
                    None => format!("approve order {}?", self.inst.order_id),
                    Some(t) => match t.render(&self.scope(None)) {
                        Ok(d) => d.render(),
                        Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
                    },
                };
                let timer = TimerId {
                    step: id.clone(),
                    visit,
                    kind: TimerKind::ApprovalTimeout,
                };
                let due_ms = now + timeout.as_millis() as i64;
                self.trace.push(format!(
                    "{id}: waiting for an operator's approval: {message}"
                ));
                self.effects.push(Effect::StartTimer {
                    timer: timer.clone(),
                    due_ms,
                });
                self.inst.state = State::AwaitingApproval {
                    timer,
                    due_ms,
                    message,
                };
            }
            StepKind::Set(vars) => {
                let out = match self.render_all(vars) {
                    Ok(out) => out,
                    Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
                };
                if let Some(e) = out.iter().find_map(|(k, v)| var_too_big(k, v)) {
                    return self.exception(ErrorKind::Expression.as_str(), e);
                }
                self.trace.push(format!(
                    "{id}: set {}",
                    out.iter()
                        .map(|(k, v)| format!("vars.{k} = {}", v.to_json()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                for (k, v) in &out {
                    self.set_var(k.clone(), v.clone());
                }
                self.set_output(id, Data::Map(out));
                self.continue_after(i);
            }
            StepKind::Switch { cases, default } => {
                let scope = self.scope(None);
                for (n, (cond, target)) in cases.iter().enumerate() {
                    match cond.eval_bool(&scope) {
                        Ok(true) => {
                            self.trace.push(format!(
                                "{id}: case {} `{}` matched; going to {}",
                                n + 1,
                                cond.source,
                                self.def.steps[*target].id
                            ));
                            self.inst
                                .outputs
                                .insert(id, Data::map([("case", Data::Int(n as i64 + 1))]));
                            return self.enter(*target);
                        }
                        Ok(false) => self.trace.push(format!(
                            "{id}: case {} `{}` is false",
                            n + 1,
                            cond.source
                        )),
                        Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
                    }
                }
                self.inst
                    .outputs
                    .insert(id.clone(), Data::map([("case", Data::Int(0))]));
                match default {
                    Some(t) => {
                        self.trace.push(format!(
                            "{id}: no case matched; default goes to {}",
                            self.def.steps[*t].id
                        ));
                        self.enter(*t)
                    }
                    None => {
                        self.trace
                            .push(format!("{id}: no case matched; continuing"));
                        self.continue_after(i)
                    }
                }
            }
            StepKind::End { outcome, .. } => {
                self.trace.push(format!("{id}: end ({outcome})"));
                self.finish(Terminal::Completed {
                    outcome: outcome.clone(),
                });
            }
            StepKind::Fail { reason } => {
                let reason = match reason.render(&self.scope(None)) {
                    Ok(d) => d.render(),
                    Err(e) => e,
                };
                self.trace.push(format!("{id}: fail: {reason}"));
                self.start_compensation(Terminal::Failed { reason });
            }
        }
    }

    /// Renders named templates (a call's arguments, a `set`'s values).
    /// Templates without expressions need no scope, whose building converts
    /// the instance's outputs and variables for CEL.
    fn render_all(
        &mut self,
        templates: &BTreeMap<String, Template>,
    ) -> Result<BTreeMap<String, Data>, String> {
        let literal: Option<BTreeMap<String, Data>> = templates
            .iter()
            .map(|(k, t)| Some((k.clone(), t.literal_value()?)))
            .collect();
        if let Some(out) = literal {
            return Ok(out);
        }
        let scope = self.scope(None);
        templates
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.render(&scope)?)))
            .collect()
    }

    fn issue_call(&mut self) {
        let step = self.step();
        let StepKind::Call { action, args } = &step.kind else {
            return;
        };
        let rendered = match self.render_all(args) {
            Ok(r) => r,
            Err(e) => return self.exception(ErrorKind::Expression.as_str(), e),
        };
        let effect = EffectId {
            step: step.id.clone(),
            visit: self.visit(),
            compensation: false,
        };
        let timeout = step.timeout;
        let name = action.name.to_string();
        self.trace.push(format!(
            "{}: call {} (attempt {})",
            step.id, name, self.inst.attempt
        ));
        self.effects.push(Effect::Call {
            effect: effect.clone(),
            action: name,
            args: Data::Map(rendered),
            attempt: self.inst.attempt,
            timeout,
        });
        self.inst.state = State::Calling { effect };
    }

    fn record_output_and_compensation(&mut self, out: Data) {
        let step = self.step().clone();
        self.set_output(step.id.clone(), out);
        if let Some(c) = &step.compensate {
            let scope = self.scope(None);
            let mut args = BTreeMap::new();
            for (k, t) in &c.args {
                match t.render(&scope) {
                    Ok(v) => {
                        args.insert(k.clone(), v);
                    }
                    Err(e) => {
                        self.trace
                            .push(format!("{}: compensation argument {k}: {e}", step.id));
                        args.insert(k.clone(), Data::Null);
                    }
                }
            }
            self.inst.compensations.push(CompensationRecord {
                step: step.id.clone(),
                visit: self.visit(),
                action: c.action.name.to_string(),
                args: Data::Map(args),
            });
        }
    }

    fn call_succeeded(&mut self, out: Data) {
        let id = self.step().id.clone();
        self.trace.push(format!("{id}: succeeded"));
        self.set_error(None);
        self.record_output_and_compensation(out);
        self.continue_after(self.inst.pc as usize);
    }

    fn call_failed(&mut self, err: &ActionError) {
        let step = self.step().clone();
        let attempt = self.inst.attempt;
        if let Some(p) = &step.retry {
            if attempt < p.max_attempts && p.on.iter().any(|k| k == &err.kind || k == "any") {
                let unit = jitter_unit(&self.inst.order_id, &step.id, self.visit(), attempt);
                let delay = p.delay(attempt + 1, unit);
                let timer = TimerId {
                    step: step.id.clone(),
                    visit: self.visit(),
                    kind: TimerKind::Retry(attempt + 1),
                };
                let due_ms = self.ctx.now_ms + delay.as_millis() as i64;
                self.trace.push(format!(
                    "{}: failed ({}: {}); retry {} of {} in {} ms",
                    step.id,
                    err.kind,
                    err.message,
                    attempt,
                    p.max_attempts - 1,
                    delay.as_millis()
                ));
                self.effects.push(Effect::StartTimer {
                    timer: timer.clone(),
                    due_ms,
                });
                self.inst.state = State::Backoff { timer, due_ms };
                return;
            }
        }
        let caught = step
            .catch
            .iter()
            .find(|(k, _)| k == &err.kind)
            .or_else(|| step.catch.iter().find(|(k, _)| k == "any"));
        let error = StepError {
            kind: err.kind.clone(),
            message: err.message.clone(),
            step: step.id.clone(),
        };
        if let Some((k, target)) = caught {
            self.trace.push(format!(
                "{}: failed ({}: {}); caught by `{k}`, going to {}",
                step.id, err.kind, err.message, self.def.steps[*target].id
            ));
            self.set_error(Some(error));
            self.enter(*target);
        } else {
            self.exception(&err.kind, err.message.clone());
        }
    }

    fn approval_decided(&mut self, approved: bool, by: &str, note: &str) {
        let StepKind::Approval { on_reject, .. } = &self.step().kind else {
            return;
        };
        let on_reject = *on_reject;
        let id = self.step().id.clone();
        self.set_output(
            id.clone(),
            Data::map([
                ("approved", Data::Bool(approved)),
                ("by", Data::from(by)),
                ("note", Data::from(note)),
            ]),
        );
        if approved {
            self.trace.push(format!("{id}: approved by {by}"));
            self.continue_after(self.inst.pc as usize);
        } else {
            match on_reject {
                Some(t) => {
                    self.trace.push(format!(
                        "{id}: rejected by {by}; going to {}",
                        self.def.steps[t].id
                    ));
                    self.enter(t);
                }
                None => {
                    self.trace.push(format!("{id}: rejected by {by}"));
                    self.start_compensation(Terminal::Failed {
                        reason: format!("{id} rejected by {by}"),
                    });
                }
            }
        }
    }

    fn top_compensation_id(&self) -> Option<EffectId> {
        self.inst.compensations.last().map(|c| EffectId {
            step: c.step.clone(),
            visit: c.visit,
            compensation: true,
        })
    }

    fn start_compensation(&mut self, then: Terminal) {
        if !self.inst.compensations.is_empty() {
            self.trace.push(format!(
                "compensating {} step(s) in reverse order",
                self.inst.compensations.len()
            ));
        }
        self.run_compensation(then, 1);
    }

    fn run_compensation(&mut self, then: Terminal, attempt: u32) {
        let Some(c) = self.inst.compensations.last().cloned() else {
            return self.finish(then);
        };
        let effect = EffectId {
            step: c.step.clone(),
            visit: c.visit,
            compensation: true,
        };
        self.effects.push(Effect::Call {
            effect,
            action: c.action.clone(),
            args: c.args.clone(),
            attempt,
            timeout: None,
        });
        self.inst.state = State::Compensating {
            then,
            attempt,
            backoff: None,
        };
    }
}

/// Deterministic jitter in [0, 1): the same for the same (order, step,
/// visit, attempt), different across orders, so retries spread out without
/// the interpreter touching a random source.
fn jitter_unit(order: &str, step: &str, visit: u32, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in order
        .bytes()
        .chain([0])
        .chain(step.bytes())
        .chain(visit.to_le_bytes())
        .chain(attempt.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether an operator may run the instance again from a step (or move it
/// to another version): wherever it waits or stopped, after it failed, or
/// after it ended held; never while a call is in flight, while it
/// compensates, or after a real end.
pub fn rerunnable(s: &State) -> bool {
    match s {
        State::Exception { .. }
        | State::Waiting { .. }
        | State::Sleeping { .. }
        | State::AwaitingApproval { .. }
        | State::Backoff { .. }
        | State::Done(Terminal::Failed { .. }) => true,
        State::Done(Terminal::Completed { outcome }) => outcome == HELD,
        State::New
        | State::Calling { .. }
        | State::Cancelling { .. }
        | State::Compensating { .. }
        | State::Done(Terminal::Cancelled { .. }) => false,
    }
}

/// Whether a cancellation still undoes what the instance did: while it
/// runs, and after it ended held or failed with compensations left (an
/// order held by its workflow keeps its reservation and label for its
/// release).
pub fn undoable(inst: &Instance) -> bool {
    match &inst.state {
        State::Done(t) => undoable_end(t, inst),
        _ => true,
    }
}

fn undoable_end(t: &Terminal, inst: &Instance) -> bool {
    let ended_open = match t {
        Terminal::Completed { outcome } => outcome == HELD,
        Terminal::Failed { .. } => true,
        Terminal::Cancelled { .. } => false,
    };
    ended_open && !inst.compensations.is_empty()
}

/// Moves an instance to another workflow (or version of it), as an
/// operator asks: whatever it waited for is disarmed; its outputs, visits,
/// compensations and last caught `error` are kept (later steps still read
/// `steps.*` and `error`, and a cancellation still undoes what was done);
/// the new definition's `vars` are set (a variable it does not declare
/// keeps its value), and it runs from `step` (the first step when `None`).
/// The caller checks [`rerunnable`] (or that the instance is new) and that
/// `step` exists.
pub fn rebase(def: &Definition, inst: Instance, step: Option<&str>, ctx: &Ctx) -> Advance {
    let from = format!("{}@{}", inst.workflow, inst.version);
    let old_state = inst.state.clone();
    let moved = Instance {
        workflow: def.name.clone(),
        version: def.version.clone(),
        attempt: 0,
        state: State::New,
        ..inst
    };
    let mut m = Machine::new(def, ctx, moved);
    m.disarm(&old_state);
    m.init_vars();
    let at = step.and_then(|s| def.step_index(s)).unwrap_or(0);
    m.trace.push(format!(
        "moved by an operator from {from} to {}; running from {}",
        def.key(),
        def.steps.get(at).map_or("the start", |s| s.id.as_str())
    ));
    if at < def.steps.len() {
        m.enter(at);
    }
    Advance {
        instance: m.inst,
        effects: m.effects,
        trace: m.trace,
    }
}

pub fn state_name(s: &State) -> &'static str {
    match s {
        State::New => "new",
        State::Calling { .. } => "calling",
        State::Backoff { .. } => "backoff",
        State::Waiting { .. } => "waiting",
        State::Sleeping { .. } => "sleeping",
        State::AwaitingApproval { .. } => "awaiting_approval",
        State::Cancelling { .. } => "cancelling",
        State::Compensating { .. } => "compensating",
        State::Exception { .. } => "exception",
        State::Done(_) => "done",
    }
}

fn terminal_name(t: &Terminal) -> String {
    match t {
        Terminal::Completed { outcome } => format!("completed ({outcome})"),
        Terminal::Failed { reason } => format!("failed ({reason})"),
        Terminal::Cancelled { reason } => format!("cancelled ({reason})"),
    }
}

fn input_name(i: &Input) -> &'static str {
    match i {
        Input::Start => "start",
        Input::EffectResult { .. } => "an action result",
        Input::Event(_) => "an order event",
        Input::Timer(_) => "a timer",
        Input::Approval { .. } => "an approval",
        Input::Cancel { .. } => "a cancellation",
        Input::Resume => "resume",
        Input::Skip => "skip",
        Input::RunFrom { .. } => "run-from",
        Input::Release => "release",
    }
}

/// What the stubbed dry-run returns for an action (re-exported for tests).
pub fn stub_result(action: &str, order_id: &str) -> Result<Data, ActionError> {
    match actions::lookup(action) {
        Some(a) => Ok(a.stub_output(order_id)),
        None => Err(ErrorKind::Invalid.error(format!("unknown action {action}"))),
    }
}

/// A variable bigger than expressions are costed for (see
/// [`super::cost::VAR_MAX_CELLS`]): the message, or `None` if it fits.
fn var_too_big(name: &str, v: &Data) -> Option<String> {
    let cells = super::cost::data_cells(v);
    (cells > super::cost::VAR_MAX_CELLS).then(|| {
        format!(
            "vars.{name} would hold {cells} cells; a variable holds at most {} (a cell is one value or 16 bytes of text)",
            super::cost::VAR_MAX_CELLS
        )
    })
}
