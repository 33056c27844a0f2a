//! A validated workflow definition: what the interpreter runs.
//!
//! Only [`super::validate`] builds these, so every step target is an index
//! that exists, every expression compiled, every action is in the catalogue
//! and its arguments fit. The interpreter can therefore index without
//! checking and never has a "bad definition" path at run time.

use std::collections::BTreeMap;
use std::time::Duration;

use super::expr::{Expr, Template};
use super::node::Pos;
use crate::actions::{Action, ActionName};

/// The outcome of an `end` step that leaves the order held for a person.
pub const HELD: &str = "held";

#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub description: String,
    /// First 16 hex digits of the SHA-256 of the file's bytes: a changed
    /// file is a new version; instances keep the one they started on.
    pub version: String,
    pub path: String,
    /// The YAML text, so the runtime can store every version it ran.
    pub source: String,
    pub trigger: Trigger,
    pub vars: BTreeMap<String, Template>,
    pub steps: Vec<Step>,
    /// Whether any expression the interpreter evaluates may read `order`
    /// (see [`Definition::exprs_mention`]). Building `order` for CEL is a
    /// deep conversion of the whole order, the largest cost of a step; a
    /// workflow that never reads it skips it.
    pub reads_order: bool,
    /// What to do when the buyer asks to cancel (`on_cancel_request`).
    pub on_cancel_request: CancelRequestPolicy,
    /// What the validator warns about (valid, but probably not meant:
    /// `orderflow validate` prints them).
    pub warnings: Vec<super::validate::Diagnostic>,
}

/// How a workflow answers a buyer's cancellation request, which can come
/// at any step: before the order ships, and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelRequestPolicy {
    pub before_shipping: CancelAnswer,
    pub after_shipping: CancelAnswer,
    /// The reject reason kind (`packed`, `agreement`, `invalid_reason`,
    /// `on_schedule`) sent with an automatic rejection.
    pub reject_reason: crate::tiktok::reasons::RejectKind,
}

/// An answer to a buyer's cancellation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAnswer {
    /// Approve: TikTok cancels the order; the workflow's compensations run
    /// (stock released, an unused label voided).
    Approve,
    /// Reject with the policy's reason.
    Reject,
    /// Hold the order for a person to approve or reject before TikTok's
    /// deadline (alert as it nears).
    Operator,
}

impl CancelAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelAnswer::Approve => "approve",
            CancelAnswer::Reject => "reject",
            CancelAnswer::Operator => "operator",
        }
    }
}

impl Default for CancelRequestPolicy {
    /// Without `on_cancel_request`, a person decides.
    fn default() -> Self {
        CancelRequestPolicy {
            before_shipping: CancelAnswer::Operator,
            after_shipping: CancelAnswer::Operator,
            reject_reason: crate::tiktok::reasons::RejectKind::Packed,
        }
    }
}

impl Definition {
    /// Whether any expression the interpreter evaluates (variables, guards,
    /// step bodies, compensations; not the trigger, which is evaluated
    /// before an instance exists) has `name` anywhere in its source text.
    /// Conservative on purpose: a mention inside a string literal or a
    /// longer identifier counts too, so a `false` is always safe to act on.
    pub fn exprs_mention(&self, name: &str) -> bool {
        let mut hit = false;
        let mut see = |e: &Expr| hit |= e.source.contains(name);
        let mut see_t = |t: &Template| t.exprs().into_iter().for_each(&mut see);
        self.vars.values().for_each(&mut see_t);
        for s in &self.steps {
            if let Some(g) = &s.guard {
                see_t(&Template::Expr(g.clone()));
            }
            if let Some(c) = &s.compensate {
                c.args.values().for_each(&mut see_t);
            }
            match &s.kind {
                StepKind::Call { args, .. } | StepKind::Set(args) => {
                    args.values().for_each(&mut see_t)
                }
                StepKind::Wait { until, .. } => see_t(&Template::Expr(until.clone())),
                StepKind::Sleep(SleepSpec::Until(t)) | StepKind::Fail { reason: t } => see_t(t),
                StepKind::Sleep(SleepSpec::For(_)) | StepKind::End { .. } => {}
                StepKind::Approval { message, .. } => message.iter().for_each(&mut see_t),
                StepKind::Switch { cases, .. } => {
                    for (e, _) in cases {
                        see_t(&Template::Expr(e.clone()));
                    }
                }
            }
        }
        hit
    }

    /// Whether a step (or a step's compensation) calls `notify.send`.
    pub fn sends_notifications(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(&s.kind, StepKind::Call { action, .. } if action.is(ActionName::NotifySend))
                || s.compensate
                    .as_ref()
                    .is_some_and(|c| c.action.is(ActionName::NotifySend))
        })
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// `name@version`, how logs and the audit trail name a definition.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

#[derive(Debug, Clone)]
pub struct Trigger {
    /// TikTok statuses (e.g. `AWAITING_SHIPMENT`) whose arrival starts it.
    pub on: Vec<String>,
    pub when: Option<Expr>,
    /// Highest wins when several workflows match one order.
    pub priority: i64,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub pos: Pos,
    pub kind: StepKind,
    /// `if:`: the step is skipped (flow continues as on success) unless true.
    pub guard: Option<Expr>,
    pub retry: Option<RetryPolicy>,
    /// Deadline for one attempt of a `call`.
    pub timeout: Option<Duration>,
    /// Error kind (or `any`) → step index.
    pub catch: Vec<(String, usize)>,
    pub compensate: Option<Compensation>,
    /// Explicit successor; `None` falls through to the next step.
    pub next: Option<usize>,
}

impl Step {
    /// Whether the step tells TikTok the order shipped.
    pub fn ships(&self) -> bool {
        matches!(&self.kind, StepKind::Call { action, .. }
            if action.is(ActionName::TiktokMarkShipped) || action.is(ActionName::TiktokShipPackage))
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Call {
        action: &'static Action,
        args: BTreeMap<String, Template>,
    },
    Wait {
        until: Expr,
        timeout: Duration,
        on_timeout: OnTimeout,
    },
    Sleep(SleepSpec),
    Approval {
        message: Option<Template>,
        timeout: Duration,
        default: ApprovalDefault,
        on_reject: Option<usize>,
    },
    Set(BTreeMap<String, Template>),
    Switch {
        cases: Vec<(Expr, usize)>,
        default: Option<usize>,
    },
    End {
        outcome: String,
        /// For `end: held`: where an operator's release goes on (`release:`).
        release: Option<usize>,
    },
    Fail {
        reason: Template,
    },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Call { .. } => "call",
            StepKind::Wait { .. } => "wait",
            StepKind::Sleep(_) => "sleep",
            StepKind::Approval { .. } => "approval",
            StepKind::Set(_) => "set",
            StepKind::Switch { .. } => "switch",
            StepKind::End { .. } => "end",
            StepKind::Fail { .. } => "fail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Fail the step (retries/catch apply with error kind `timeout`).
    Fail,
    /// Continue to the next step with a null output.
    Continue,
    Goto(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalDefault {
    Approve,
    Reject,
    /// Unanswered, the order stays held for a person, with an alert (the
    /// default: silence never cancels a sale).
    Hold,
}

#[derive(Debug, Clone)]
pub enum SleepSpec {
    For(Duration),
    /// Unix seconds (an expression or a literal).
    Until(Template),
}

#[derive(Debug, Clone)]
pub struct Compensation {
    pub action: &'static Action,
    pub args: BTreeMap<String, Template>,
}

/// Exponential back-off with optional full jitter:
/// `delay(n) = min(max_delay, initial_delay × factor^(n−1))`, and with full
/// jitter a uniform draw in `[0, delay(n)]` (AWS's "full jitter").
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub factor: f64,
    pub max_delay: Duration,
    pub jitter: bool,
    /// Error kinds that are retried.
    pub on: Vec<String>,
}

impl RetryPolicy {
    /// The delay before attempt `next_attempt` (2 = first retry). `unit` in
    /// [0, 1) supplies the jitter, so the caller decides where randomness
    /// comes from (the interpreter derives it deterministically).
    pub fn delay(&self, next_attempt: u32, unit: f64) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.factor.powi(exp);
        let capped = base.min(self.max_delay.as_secs_f64());
        let secs = if self.jitter {
            capped * unit.clamp(0.0, 1.0)
        } else {
            capped
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use crate::workflow::parse_workflow;

    fn flow(step: &str) -> String {
        format!("name: t\ntrigger:\n  on: AWAITING_SHIPMENT\n  when: order.total > 1\nsteps:\n{step}  - id: done\n    end: fulfilled\n")
    }

    #[test]
    fn reads_order_only_when_an_evaluated_expression_mentions_it() {
        // The action's name and the trigger mention `order`, no step does.
        let plain = flow("  - id: s1\n    call: order.tag\n    with: { tags: [a] }\n");
        assert!(!parse_workflow("t.yaml", &plain).unwrap().reads_order);
        for step in [
            "  - id: s1\n    if: order.total > 5\n    call: order.tag\n    with: { tags: [a] }\n",
            "  - id: s1\n    call: order.tag\n    with: { tags: [\"${{ order.id }}\"] }\n",
            "  - id: s1\n    set: { x: \"id ${{ order.id }}\" }\n",
            "  - id: s1\n    if: false\n    fail: \"${{ order.id }}\"\n",
        ] {
            let def = parse_workflow("t.yaml", &flow(step)).unwrap();
            assert!(def.reads_order, "{step}");
        }
    }
}
