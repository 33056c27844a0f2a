//! What an operator may do to an order now, and why not: the one place
//! these rules live. The admin API checks every intervention against
//! [`check`] before submitting it, and the order view, the lists, the CLI
//! and the console show [`offers`] as they are given (no client repeats a
//! rule), so nothing is offered that the order would refuse.
//!
//! The rules follow what [`super::core`] does with each action: an input
//! the instance would ignore, or one a hold would only defer, is refused
//! here with the reason instead of "accepted" and lost. Each allowed one
//! carries its [`Consequence`], worked out from the order as it stands
//! (what TikTok is told, the stock released and the labels voided, from
//! the compensations of the steps that acted), which is what a
//! confirmation shows and what the runtime then does.

use std::sync::Arc;

use serde::Serialize;

use super::event::OperatorAction;
use crate::actions::{ActionName, ErrorKind};
use crate::lifecycle::Lifecycle;
use crate::store::OrderRecord;
use crate::tiktok::reasons::seller_can_cancel;
use crate::workflow::interpreter::{rerunnable, state_name, undoable, Input, State, Terminal};
use crate::workflow::model::{StepKind, HELD};
use crate::workflow::Definition;

/// Why an intervention is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not for this order as it stands (the reason says why, and what
    /// would work instead).
    #[error("cannot {action} order {order_id}: {reason}")]
    Refused {
        action: &'static str,
        order_id: String,
        reason: String,
        /// The interventions that the order allows now (notes aside).
        instead: Vec<&'static str>,
    },
    /// An argument the intervention needs is missing or names nothing.
    #[error("{action} on order {order_id}: {reason}")]
    BadArgument {
        action: &'static str,
        order_id: String,
        reason: String,
    },
}

/// Every intervention, in the order the console lays them out.
pub const ALL: [&str; 12] = [
    "approve",
    "reject",
    "release",
    "resume",
    "run_from",
    "skip",
    "move",
    "hold",
    "approve_cancel_request",
    "reject_cancel_request",
    "cancel",
    "note",
];

/// One intervention as the server offers it for an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub action: &'static str,
    pub allowed: bool,
    /// What it will do (allowed: the consequence's summary), or why it is
    /// refused.
    pub why: String,
    /// What it will do, from the order as it stands: only when allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consequence: Option<Consequence>,
    /// The argument it needs: `step` (run_from), `workflow` (move),
    /// `cancel_reason` (cancel, when TikTok must be told), `note`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<&'static str>,
    /// The steps `run_from` (and `move`, in the current definition) may
    /// name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// The workflows `move` may name (`name@version`, those in force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
}

/// What an allowed intervention will do, worked out from the order as it
/// stands (its workflow's state, what its steps did, TikTok's status), so
/// a confirmation can name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consequence {
    /// The words of the button that confirms it ("Cancel order on
    /// TikTok").
    pub confirm: String,
    /// Everything below in one sentence.
    pub summary: String,
    /// What it tells TikTok; `None`: TikTok is not told.
    pub tiktok: Option<String>,
    /// Stock it gives back, and the step that reserved it.
    pub releases: Vec<String>,
    /// Labels it voids, and the step that bought each.
    pub voids: Vec<String>,
    /// Any other undo call it runs (a step's `compensate`).
    pub undoes: Vec<String>,
}

/// What the rules need besides the record.
pub struct Context<'a> {
    /// The definition the order's instance runs on, if it loads.
    pub def: Option<&'a Definition>,
    /// The workflows in force, as `name@version`.
    pub in_force: Vec<String>,
    /// Whether the order's shop is configured, so TikTok can be told of a
    /// cancellation (which then needs one of TikTok's reasons).
    pub tiktok: bool,
    /// Looks up a workflow by `name@version`, or by name for the version
    /// in force (to check a `move`'s target and step).
    pub resolve: &'a dyn Fn(&str) -> Option<Arc<Definition>>,
}

/// One call undoing what a step did (see [`Rules::undo_calls`]).
struct Undo<'a> {
    step: &'a str,
    action: &'a str,
    /// The label a `shipping.void_label` names.
    label: Option<&'a str>,
    /// The step's call is still in flight: its undo runs once it answers.
    pending: bool,
    /// The undo is running now (the workflow is compensating).
    running: bool,
}

struct Rules<'a> {
    rec: &'a OrderRecord,
    cx: &'a Context<'a>,
    state: Option<&'a State>,
    operator_hold: bool,
}

fn yes(why: impl Into<String>) -> Result<String, String> {
    Ok(why.into())
}

fn no(why: impl Into<String>) -> Result<String, String> {
    Err(why.into())
}

impl Rules<'_> {
    fn shipped(&self) -> bool {
        matches!(
            self.rec.lifecycle,
            Lifecycle::Fulfilled | Lifecycle::Delivered
        )
    }

    /// A ship call is out: TikTok may be recording the shipment now.
    fn ship_in_flight(&self) -> bool {
        self.rec.in_flight.iter().any(|e| {
            matches!(
                ActionName::parse(&e.action),
                Some(ActionName::TiktokMarkShipped | ActionName::TiktokShipPackage)
            )
        })
    }

    /// The buyer's cancellation request waits for orderflow's answer.
    fn request_unanswered(&self) -> bool {
        matches!(self.rec.pending_cancel_request(), Some((_, false)))
    }

    fn state_name(&self) -> &'static str {
        self.state.map_or("none", state_name)
    }

    /// The checks every workflow intervention shares: a live order, not
    /// held by an operator (whose hold would only defer it).
    fn workflow_open(&self) -> Result<(), String> {
        if self.rec.lifecycle.is_terminal() {
            return Err(format!("the order is {}", self.rec.lifecycle));
        }
        if self.operator_hold {
            return Err("it is held by an operator: release it first".into());
        }
        Ok(())
    }

    fn step_ids(&self) -> Vec<String> {
        self.cx
            .def
            .map(|d| d.steps.iter().map(|s| s.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The `end: held` step the instance stopped at, and its release step.
    fn held_end(&self) -> Option<(&str, Option<&str>)> {
        let def = self.cx.def?;
        let inst = self.rec.instance.as_ref()?;
        if !matches!(&inst.state, State::Done(Terminal::Completed { outcome }) if outcome == HELD) {
            return None;
        }
        let step = def.steps.get(inst.pc as usize)?;
        match &step.kind {
            StepKind::End { release, .. } => Some((
                step.id.as_str(),
                release
                    .and_then(|t| def.steps.get(t))
                    .map(|s| s.id.as_str()),
            )),
            _ => None,
        }
    }

    fn rule(&self, action: &str) -> Result<String, String> {
        let st = self.state;
        match action {
            "note" => yes("adds a note to the order"),
            "hold" => {
                if self.rec.lifecycle.is_terminal() {
                    no(format!("the order is {}", self.rec.lifecycle))
                } else if self.shipped() {
                    no("it has shipped: nothing is left to hold")
                } else if self.operator_hold {
                    no("it is already held by an operator")
                } else if matches!(st, Some(State::AwaitingApproval { .. })) {
                    yes(format!(
                        "pauses the order: its approval at {} cannot be given or refused until the hold is released; TikTok is not told and its ship-by deadline keeps running",
                        self.current_step().unwrap_or("its approval step")
                    ))
                } else {
                    yes("pauses the order: its workflow waits until released; TikTok is not told and its ship-by deadline keeps running")
                }
            }
            "release" => {
                if self.request_unanswered() && self.rec.lifecycle == Lifecycle::OnHold {
                    return no("the buyer's cancellation request waits for an answer: approve or reject it first");
                }
                if self.operator_hold {
                    let back = match (self.rec.held_from, st) {
                        (_, Some(State::AwaitingApproval { .. })) => format!(
                            "waiting for approval at {}, which can then be given",
                            self.current_step().unwrap_or("its approval step")
                        ),
                        (Some(l), _) if l != Lifecycle::OnHold => l.to_string(),
                        _ => Lifecycle::Processing.to_string(),
                    };
                    let waited = match self.rec.deferred.len() {
                        0 => String::new(),
                        1 => "; the one input that waited behind the hold is applied".into(),
                        n => format!("; the {n} inputs that waited behind the hold are applied"),
                    };
                    return yes(format!(
                        "ends the operator's hold; the order goes back to {back} and its workflow goes on{waited}"
                    ));
                }
                if self.rec.lifecycle.is_terminal() {
                    return no(format!("the order is {}", self.rec.lifecycle));
                }
                if let Some((end, release)) = self.held_end() {
                    return match release {
                        Some(r) => yes(format!(
                            "ends the workflow's hold ({end}): it goes on at {r}"
                        )),
                        None => no(format!(
                            "the workflow ended held at {end}, which names no release step: run it from a step"
                        )),
                    };
                }
                match st {
                    Some(State::Waiting { .. }) if self.rec.lifecycle == Lifecycle::OnHold => {
                        yes("ends the workflow's hold: it stops waiting and goes on")
                    }
                    _ => no("it is not held"),
                }
            }
            "approve" | "reject" => {
                self.workflow_open()?;
                match st {
                    Some(State::AwaitingApproval { .. }) => yes(if action == "approve" {
                        "approves: the workflow goes on"
                    } else {
                        "rejects: the workflow takes its rejection path"
                    }),
                    _ => no(format!(
                        "no approval is pending (the workflow is {})",
                        self.state_name()
                    )),
                }
            }
            "resume" => {
                self.workflow_open()?;
                match st {
                    // An expression fails the same way on the same data:
                    // running it again would only fail again.
                    Some(State::Exception { error }) if error.kind == ErrorKind::Expression.as_str() => no(format!(
                        "{} failed in its expression ({}), which fails the same way again: skip it, run from another step or move the order to a fixed workflow",
                        error.step, error.message
                    )),
                    Some(State::Exception { error }) => {
                        yes(format!("runs {} again", error.step))
                    }
                    _ => no(format!(
                        "nothing failed to run again (the workflow is {}); run it from a step instead",
                        self.state_name()
                    )),
                }
            }
            "skip" => {
                self.workflow_open()?;
                match st {
                    Some(
                        State::Exception { .. }
                        | State::Waiting { .. }
                        | State::Sleeping { .. }
                        | State::AwaitingApproval { .. }
                        | State::Backoff { .. },
                    ) => yes("skips the current step (its output is null) and goes on"),
                    _ => no(format!(
                        "no step is stopped or waiting (the workflow is {})",
                        self.state_name()
                    )),
                }
            }
            "run_from" => {
                self.workflow_open()?;
                if self.cx.def.is_none() {
                    return no("its workflow cannot be loaded: move it to another one");
                }
                if self.shipped() {
                    return no("it has shipped");
                }
                match st {
                    Some(s) if rerunnable(s) => yes("runs the workflow from the chosen step"),
                    _ => no(format!(
                        "the workflow is {}: wait for it to stop or finish",
                        self.state_name()
                    )),
                }
            }
            "move" => {
                self.workflow_open()?;
                if self.shipped() {
                    return no("it has shipped");
                }
                if self.rec.order.is_none() {
                    return no("it has not been fetched from TikTok yet");
                }
                if self.rec.lifecycle == Lifecycle::Pending {
                    let status = self
                        .rec
                        .order
                        .as_ref()
                        .map(|o| o.status.as_str())
                        .unwrap_or_default();
                    return no(format!(
                        "TikTok does not let it ship yet ({status}): its workflow starts at AWAITING_SHIPMENT"
                    ));
                }
                if self.move_targets().is_empty() {
                    return no(
                        "no other workflow or version is in force: run it from a step instead",
                    );
                }
                match st {
                    None | Some(State::New) => {
                        yes("starts the chosen workflow (none has taken the order)")
                    }
                    Some(s) if rerunnable(s) => {
                        yes("moves the order to the chosen workflow or version")
                    }
                    Some(_) => no(format!(
                        "the workflow is {}: wait for it to stop or finish",
                        self.state_name()
                    )),
                }
            }
            "cancel" => {
                if self.rec.lifecycle.is_terminal() {
                    no(format!("the order is {}", self.rec.lifecycle))
                } else if self.shipped() {
                    no("it has shipped: TikTok takes no cancellation now (a return or refund goes through TikTok)")
                } else if self.ship_in_flight() {
                    no("a ship call is out to TikTok: wait for its answer (once shipped, a return or refund goes through TikTok)")
                } else if matches!(
                    st,
                    Some(State::Cancelling { .. } | State::Compensating { .. })
                ) {
                    no("its workflow is already being undone (compensating): wait for it to finish")
                } else if self.tiktok_cancellable() {
                    yes("stops orderflow's work on the order and cancels it on TikTok with the reason chosen")
                } else {
                    yes(format!(
                        "stops orderflow's work on the order; TikTok is not told ({})",
                        self.why_tiktok_not_told()
                    ))
                }
            }
            "approve_cancel_request" | "reject_cancel_request" => {
                if self.rec.lifecycle.is_terminal() {
                    return no(format!("the order is {}", self.rec.lifecycle));
                }
                match self.rec.pending_cancel_request() {
                    None => no("the buyer has no cancellation request pending"),
                    Some((_, true)) => no("the buyer's request is already answered"),
                    Some(_) if action == "approve_cancel_request" => {
                        yes("approves the buyer's request: TikTok cancels the order")
                    }
                    Some(_) => yes("rejects the buyer's request with the reason chosen"),
                }
            }
            other => no(format!("there is no intervention {other}")),
        }
    }

    /// Why a cancellation here does not reach TikTok.
    fn why_tiktok_not_told(&self) -> String {
        match self.rec.order.as_ref() {
            _ if !self.cx.tiktok => {
                format!("shop {} is not configured to call TikTok", self.rec.shop_id)
            }
            Some(o) => format!("it takes no seller cancellation in status {}", o.status),
            None => "the order has not been fetched from TikTok yet".into(),
        }
    }

    /// The id of the step the instance is at, if it is inside one.
    fn current_step(&self) -> Option<&str> {
        let inst = self.rec.instance.as_ref()?;
        self.cx
            .def?
            .steps
            .get(inst.pc as usize)
            .map(|s| s.id.as_str())
    }

    /// The action the instance's current step calls, if it is a call.
    fn current_call(&self) -> Option<&'static str> {
        let inst = self.rec.instance.as_ref()?;
        match &self.cx.def?.steps.get(inst.pc as usize)?.kind {
            StepKind::Call { action, .. } => Some(action.name),
            _ => None,
        }
    }

    /// What undoing the workflow runs, newest first: the compensation of a
    /// call still in flight (once it answers), then those of the steps
    /// that acted. Empty when the workflow has nothing left to undo (or
    /// its definition does not load, so nothing can run).
    fn undo_calls(&self) -> Vec<Undo<'_>> {
        let (Some(def), Some(inst)) = (self.cx.def, self.rec.instance.as_ref()) else {
            return Vec::new();
        };
        if !undoable(inst) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let State::Calling { effect } | State::Cancelling { effect } = &inst.state {
            let step = def.step_index(&effect.step).map(|i| &def.steps[i]);
            // Its answer may be in already, waiting behind a hold: a
            // failed call did nothing to undo.
            let answered = self.rec.deferred.iter().find_map(|i| match i {
                Input::EffectResult { effect: e, result } if e == effect => Some(result.is_ok()),
                _ => None,
            });
            let in_flight = self.rec.in_flight.iter().any(|s| &s.effect == effect);
            let acts = answered.unwrap_or(in_flight);
            if let Some((step, c)) = step
                .and_then(|s| s.compensate.as_ref().map(|c| (s, c)))
                .filter(|_| acts)
            {
                out.push(Undo {
                    step: &step.id,
                    action: c.action.name,
                    label: None,
                    pending: answered.is_none(),
                    running: false,
                });
            }
        }
        let compensating = matches!(inst.state, State::Compensating { .. });
        for (i, c) in inst.compensations.iter().enumerate().rev() {
            out.push(Undo {
                step: &c.step,
                action: &c.action,
                label: c.args.get("label_id").and_then(|d| d.as_str()),
                pending: false,
                running: compensating && i + 1 == inst.compensations.len(),
            });
        }
        out
    }

    /// The order's stock, as a reservation holds it: "2 × SKU1, 1 × SKU2".
    fn stock(&self) -> String {
        let demand = self
            .rec
            .order
            .as_ref()
            .map(|o| o.stock_demand())
            .unwrap_or_default();
        if demand.is_empty() {
            return "the order's stock".into();
        }
        demand
            .iter()
            .map(|d| format!("{} × {}", d.units, d.sku_id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What an allowed `action` will do, with `what` (its rule's words)
    /// as the start of the summary.
    fn consequence(&self, action: &str, what: String) -> Consequence {
        let mut c = Consequence {
            confirm: String::new(),
            summary: String::new(),
            tiktok: None,
            releases: Vec::new(),
            voids: Vec::new(),
            undoes: Vec::new(),
        };
        let step = || {
            self.current_step()
                .unwrap_or("the current step")
                .to_string()
        };
        // Undoing the workflow: what a cancellation (orderflow's, or
        // TikTok's after the buyer's request is approved) runs.
        let undo = |c: &mut Consequence| {
            for u in self.undo_calls() {
                let when = if u.pending {
                    format!(", once {}'s call answers", u.step)
                } else if u.running {
                    ", already under way".to_string()
                } else {
                    String::new()
                };
                match ActionName::parse(u.action) {
                    Some(ActionName::InventoryRelease) => {
                        c.releases
                            .push(format!("{} reserved by {}{when}", self.stock(), u.step))
                    }
                    Some(ActionName::ShippingVoidLabel) => c.voids.push(match u.label {
                        Some(l) => format!("label {l} bought by {}{when}", u.step),
                        None => format!("the label bought by {}{when}", u.step),
                    }),
                    _ => c
                        .undoes
                        .push(format!("{} to undo {}{when}", u.action, u.step)),
                }
            }
        };
        c.confirm = match action {
            "note" => "Save note".into(),
            "hold" => "Hold order".into(),
            "release" => "Release hold".into(),
            "approve" => "Approve and go on".into(),
            "reject" => "Reject approval".into(),
            "resume" => format!("Run {} again", step()),
            "skip" => format!("Skip {}", step()),
            "run_from" => "Run from step".into(),
            "move" => "Move order".into(),
            "approve_cancel_request" => {
                c.tiktok = Some(
                    "approves the buyer's cancellation request: TikTok cancels the order".into(),
                );
                undo(&mut c);
                "Approve cancellation on TikTok".into()
            }
            "reject_cancel_request" => {
                c.tiktok = Some("rejects the buyer's cancellation request with the reason chosen: the order stays open on TikTok".into());
                "Reject cancellation on TikTok".into()
            }
            "cancel" => {
                undo(&mut c);
                if self.tiktok_cancellable() {
                    c.tiktok = Some("cancels the order on TikTok with the reason chosen".into());
                    "Cancel order on TikTok".into()
                } else {
                    "Cancel in orderflow only".into()
                }
            }
            other => other.to_string(),
        };
        if action == "resume" {
            if let Some(call) = self.current_call().filter(|a| a.starts_with("tiktok.")) {
                c.tiktok = Some(format!("calls TikTok again ({call})"));
            }
        }
        if action == "reject" && self.rejection_undoes() {
            undo(&mut c);
        }
        let mut parts = vec![what];
        if let Some(t) = c.tiktok.as_ref().filter(|_| action == "resume") {
            parts.push(t.clone());
        }
        if !c.releases.is_empty() {
            parts.push(format!("releases {}", c.releases.join(", ")));
        }
        if !c.voids.is_empty() {
            parts.push(format!("voids {}", c.voids.join(", ")));
        }
        if !c.undoes.is_empty() {
            parts.push(format!("runs {}", c.undoes.join(", ")));
        }
        if matches!(action, "cancel" | "approve_cancel_request")
            && c.releases.is_empty()
            && c.voids.is_empty()
            && c.undoes.is_empty()
        {
            parts.push(
                "nothing was reserved or bought for it, so nothing is released or voided".into(),
            );
        }
        c.summary = parts.join("; ");
        c
    }

    /// Whether rejecting the pending approval fails the workflow, which
    /// then undoes what it did (no `on_reject` step).
    fn rejection_undoes(&self) -> bool {
        let (Some(def), Some(inst)) = (self.cx.def, self.rec.instance.as_ref()) else {
            return false;
        };
        matches!(
            def.steps.get(inst.pc as usize).map(|s| &s.kind),
            Some(StepKind::Approval {
                on_reject: None,
                ..
            })
        )
    }

    fn tiktok_cancellable(&self) -> bool {
        self.cx.tiktok
            && self
                .rec
                .order
                .as_ref()
                .is_some_and(|o| seller_can_cancel(&o.status))
    }

    /// The workflows in force the order may move to: all but the version
    /// it runs (moving there is running it from a step).
    fn move_targets(&self) -> Vec<String> {
        self.cx
            .in_force
            .iter()
            .filter(|w| !self.is_current(w))
            .cloned()
            .collect()
    }

    fn is_current(&self, workflow: &str) -> bool {
        let current = self
            .rec
            .instance
            .as_ref()
            .map(|i| (&i.workflow, &i.version));
        (self.cx.resolve)(workflow).is_some_and(|d| current == Some((&d.name, &d.version)))
    }

    fn needs(&self, action: &str) -> Option<&'static str> {
        match action {
            "run_from" => Some("step"),
            "move" => Some("workflow"),
            "note" => Some("note"),
            "cancel" if self.tiktok_cancellable() => Some("cancel_reason"),
            _ => None,
        }
    }
}

fn rules<'a>(rec: &'a OrderRecord, cx: &'a Context<'a>) -> Rules<'a> {
    Rules {
        rec,
        cx,
        state: rec.instance.as_ref().map(|i| &i.state),
        operator_hold: rec.lifecycle == Lifecycle::OnHold && rec.held_from.is_some(),
    }
}

/// Every intervention for the order, allowed or not, with what it does or
/// why not.
pub fn offers(rec: &OrderRecord, cx: &Context) -> Vec<Offer> {
    let r = rules(rec, cx);
    ALL.iter()
        .map(|&action| {
            let verdict = r.rule(action);
            let allowed = verdict.is_ok();
            let consequence = verdict
                .as_ref()
                .ok()
                .map(|what| r.consequence(action, what.clone()));
            Offer {
                action,
                allowed,
                why: match (&consequence, verdict) {
                    (Some(c), _) => c.summary.clone(),
                    (None, v) => v.unwrap_or_else(|e| e),
                },
                consequence,
                needs: r.needs(action),
                steps: if allowed && matches!(action, "run_from" | "move") {
                    r.step_ids()
                } else {
                    Vec::new()
                },
                workflows: if allowed && action == "move" {
                    r.move_targets()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// The names of the interventions allowed now (what a list row offers).
pub fn allowed(rec: &OrderRecord, cx: &Context) -> Vec<&'static str> {
    let r = rules(rec, cx);
    ALL.iter().copied().filter(|a| r.rule(a).is_ok()).collect()
}

/// Why `action` is refused for the order as it stands, if it is (the rule
/// alone, without its arguments): the actor asks again when the
/// intervention arrives, since the order may have moved since the API
/// checked it.
pub fn refusal(rec: &OrderRecord, cx: &Context, action: &str) -> Option<String> {
    rules(rec, cx).rule(action).err()
}

/// Checks one intervention, with its arguments, against the order as it
/// stands.
pub fn check(rec: &OrderRecord, cx: &Context, action: &OperatorAction) -> Result<(), Error> {
    let name = action.name();
    let r = rules(rec, cx);
    r.rule(name).map_err(|reason| Error::Refused {
        action: name,
        order_id: rec.order_id.clone(),
        reason,
        instead: ALL
            .iter()
            .copied()
            .filter(|&a| a != "note" && r.rule(a).is_ok())
            .collect(),
    })?;
    let bad = |reason: String| Error::BadArgument {
        action: name,
        order_id: rec.order_id.clone(),
        reason,
    };
    match action {
        OperatorAction::RunFrom { step } if !r.step_ids().contains(step) => Err(bad(format!(
            "the workflow has no step \"{step}\" (it has: {})",
            r.step_ids().join(", ")
        ))),
        OperatorAction::Move { workflow, step } => {
            let def = (cx.resolve)(workflow).ok_or_else(|| {
                bad(format!(
                    "no workflow {workflow} (in force: {})",
                    cx.in_force.join(", ")
                ))
            })?;
            if step.is_none() {
                if let Some(inst) = rec.instance.as_ref() {
                    let here = (!inst.is_terminal())
                        .then(|| cx.def.and_then(|d| inst.current_step(d)))
                        .flatten()
                        .filter(|id| def.step_index(id).is_some());
                    if here.is_none() && !inst.compensations.is_empty() {
                        let done: Vec<&str> =
                            inst.compensations.iter().map(|c| c.step.as_str()).collect();
                        return Err(bad(format!(
                            "name the step of {} to go on at: {} already acted (its first step would run them again)",
                            def.key(),
                            done.join(", ")
                        )));
                    }
                }
            }
            if r.is_current(workflow) {
                return Err(bad(format!(
                    "the order already runs {}: run it from a step instead",
                    def.key()
                )));
            }
            match step {
                Some(s) if def.step_index(s).is_none() => Err(bad(format!(
                    "{} has no step \"{s}\"",
                    def.key()
                ))),
                _ => Ok(()),
            }
        }
        OperatorAction::Cancel { .. } if r.tiktok_cancellable() => {
            let status = rec.order.as_ref().map(|o| o.status.as_str()).unwrap_or_default();
            Err(bad(format!(
                "the order is {status} on TikTok, where it can still be cancelled: give a cancel_reason (one of {}; GET /api/v1/orders/{}/cancel-reasons lists the ones TikTok takes for it)",
                crate::tiktok::reasons::CancelKind::ALL
                    .map(crate::tiktok::reasons::CancelKind::as_str)
                    .join(", "),
                rec.order_id
            )))
        }
        OperatorAction::SellerCancel { .. } if !cx.tiktok => Err(bad(format!(
            "shop {} is not configured, so TikTok cannot be told: cancel without cancel_reason",
            rec.shop_id
        ))),
        OperatorAction::SellerCancel { .. } if !r.tiktok_cancellable() => {
            Err(match rec.order.as_ref() {
                Some(o) => bad(format!(
                    "TikTok takes no seller cancellation in status {}; cancel without cancel_reason to stop orderflow's work on it",
                    o.status
                )),
                None => bad("the order has not been fetched from TikTok yet".into()),
            })
        }
        _ => Ok(()),
    }
}
