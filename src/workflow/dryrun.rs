//! Dry-run: walk a workflow against a sample order with stubbed effects and
//! say, step by step, what would happen and why.
//!
//! Ops teams use it to test a change before deploying it. It drives the same
//! pure interpreter the daemon runs; only the outside world is stubbed:
//! actions return their catalogue stub output, timers fire at once, `wait`
//! steps consume the given events in order (and time out when none is
//! left), and approvals are decided by [`ApprovalChoice`].

use std::collections::VecDeque;

use super::interpreter::{advance, stub_result, Ctx, Effect, Input, Instance, State};
use super::model::Definition;
use super::value::Data;
use crate::order::Order;
use crate::tiktok::dto::WireOrder;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("order JSON: {0}")]
    OrderJson(String),
    #[error(transparent)]
    Order(#[from] crate::order::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalChoice {
    Approve,
    Reject,
    Timeout,
}

/// Reads an order in TikTok's shape: a bare order object, Order Detail's
/// `data` (`{"orders": [...]}`), or the whole response envelope.
pub fn parse_order(json: &str) -> Result<Order, Error> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::OrderJson(e.to_string()))?;
    let order_v = if let Some(o) = v.pointer("/data/orders/0") {
        o.clone()
    } else if let Some(o) = v.pointer("/orders/0") {
        o.clone()
    } else {
        v
    };
    let wire: WireOrder =
        serde_json::from_value(order_v).map_err(|e| Error::OrderJson(e.to_string()))?;
    Ok(Order::from_wire("dry-run-shop", &wire)?)
}

/// The walk: every line of the interpreter's trace, with the effects it
/// asked for, and the instance at the end.
pub struct DryRun {
    pub lines: Vec<String>,
    pub instance: Instance,
}

/// How the outside world answers, beyond the stubs.
#[derive(Debug, Clone)]
pub struct Options {
    pub approval: ApprovalChoice,
    /// Steps whose first call fails with an error kind (`reserve` →
    /// `unmapped_sku`), to walk the paths a failure takes.
    pub fail: Vec<(String, String)>,
    /// The buyer asks to cancel as the workflow calls this step: the
    /// workflow's `on_cancel_request` answers, as the daemon would.
    pub cancel_request_at: Option<String>,
}

impl Options {
    pub fn approval(approval: ApprovalChoice) -> Options {
        Options {
            approval,
            fail: Vec::new(),
            cancel_request_at: None,
        }
    }
}

pub fn run(def: &Definition, order: &Order, events: &[Data], approval: ApprovalChoice) -> DryRun {
    run_with(def, order, events, &Options::approval(approval))
}

/// The buyer's request, answered by the workflow's policy: the inputs it
/// leads to (a cancellation when approved), and `None` when a person must
/// answer (the walk stops there).
fn cancel_request(
    def: &Definition,
    inst: &Instance,
    step: &str,
    lines: &mut Vec<String>,
) -> Option<Vec<Input>> {
    use super::model::CancelAnswer;
    let shipped = inst
        .outputs
        .keys()
        .any(|id| def.step_index(id).is_some_and(|i| def.steps[i].ships()));
    let p = &def.on_cancel_request;
    let answer = if shipped {
        p.after_shipping
    } else {
        p.before_shipping
    };
    let when = if shipped {
        "after shipping"
    } else {
        "before shipping"
    };
    match answer {
        CancelAnswer::Approve => {
            lines.push(format!(
                "    buyer asks to cancel at {step} ({when}): the workflow approves; TikTok cancels the order"
            ));
            Some(vec![Input::Cancel {
                reason: "the buyer's cancellation request was approved".into(),
            }])
        }
        CancelAnswer::Reject => {
            lines.push(format!(
                "    buyer asks to cancel at {step} ({when}): the workflow rejects ({}); the order goes on",
                p.reject_reason.as_str()
            ));
            Some(Vec::new())
        }
        CancelAnswer::Operator => {
            lines.push(format!(
                "    buyer asks to cancel at {step} ({when}): the order is held for a person to answer before TikTok's deadline"
            ));
            None
        }
    }
}

pub fn run_with(def: &Definition, order: &Order, events: &[Data], opts: &Options) -> DryRun {
    let order_json = order.to_json();
    let now_ms = order
        .create_time
        .saturating_mul(1000)
        .max(1_700_000_000_000);
    let ctx = Ctx {
        order: super::expr::val(Data::from_json(&order_json).to_cel()),
        now_ms,
    };
    let mut events: VecDeque<Data> = events.iter().cloned().collect();
    let mut fail = opts.fail.clone();
    let mut cancel_at = opts.cancel_request_at.clone();
    let mut approval_timed_out = false;
    let mut inst = Instance::new(def, &order.id);
    let mut lines = vec![format!(
        "dry-run of {} ({}) for order {}",
        def.name,
        def.key(),
        order.id
    )];
    let mut queue: VecDeque<Input> = VecDeque::from([Input::Start]);
    for _ in 0..2_000 {
        let Some(input) = queue.pop_front() else {
            break;
        };
        let out = advance(def, inst, &input, &ctx);
        inst = out.instance;
        lines.extend(out.trace.into_iter().map(|t| format!("  {t}")));
        if !queue.is_empty() {
            continue;
        }
        for e in &out.effects {
            if let Effect::Call {
                effect,
                action,
                args,
                ..
            } = e
            {
                lines.push(format!("    -> {action} {}", args.to_json()));
                if cancel_at.as_deref() == Some(effect.step.as_str()) && !effect.compensation {
                    cancel_at = None;
                    match cancel_request(def, &inst, &effect.step, &mut lines) {
                        Some(inputs) => queue.extend(inputs),
                        None => {
                            return DryRun {
                                lines,
                                instance: inst,
                            }
                        }
                    }
                }
                let failing = fail
                    .iter()
                    .position(|(st, _)| st == &effect.step && !effect.compensation);
                let result = match failing {
                    Some(i) => {
                        let (_, kind) = fail.remove(i);
                        lines.push(format!("    <- fails: {kind}"));
                        Err(super::interpreter::ActionError {
                            message: format!("dry-run: {} fails with {kind}", effect.step),
                            kind,
                        })
                    }
                    None => stub_result(action, &order.id),
                };
                if let Ok(r) = &result {
                    lines.push(format!("    <- {}", r.to_json()));
                }
                queue.push_back(Input::EffectResult {
                    effect: effect.clone(),
                    result,
                });
            }
        }
        if !queue.is_empty() {
            continue;
        }
        let next = match &inst.state {
            State::Waiting { timer, .. } => match events.pop_front() {
                Some(ev) => {
                    lines.push(format!("    event {}", ev.to_json()));
                    Input::Event(ev)
                }
                None => {
                    lines.push("    (no more events: the wait times out)".into());
                    Input::Timer(timer.clone())
                }
            },
            State::Sleeping { timer, .. } | State::Backoff { timer, .. } => {
                Input::Timer(timer.clone())
            }
            State::AwaitingApproval { timer, .. } => match opts.approval {
                ApprovalChoice::Approve => Input::Approval {
                    approved: true,
                    by: "dry-run".into(),
                    note: String::new(),
                },
                ApprovalChoice::Reject => Input::Approval {
                    approved: false,
                    by: "dry-run".into(),
                    note: String::new(),
                },
                ApprovalChoice::Timeout if approval_timed_out => {
                    lines.push(
                        "  stopped: held, awaiting an operator's approval (an alert with the ship-by deadline is sent)"
                            .into(),
                    );
                    break;
                }
                ApprovalChoice::Timeout => {
                    approval_timed_out = true;
                    Input::Timer(timer.clone())
                }
            },
            State::Compensating {
                backoff: Some(t), ..
            } => Input::Timer(t.clone()),
            State::Exception { error } => {
                lines.push(format!(
                    "  stopped in exception at {}: an operator would resume, skip or cancel",
                    error.step
                ));
                break;
            }
            State::Done(_) => break,
            other => {
                lines.push(format!("  stopped in state {other:?}"));
                break;
            }
        };
        queue.push_back(next);
    }
    DryRun {
        lines,
        instance: inst,
    }
}
