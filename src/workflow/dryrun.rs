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

pub fn run(def: &Definition, order: &Order, events: &[Data], approval: ApprovalChoice) -> DryRun {
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
    let mut inst = Instance::new(def, &order.id);
    let mut lines = vec![format!(
        "dry-run of {} ({}) for order {}",
        def.name,
        def.key(),
        order.id
    )];
    let mut input = Input::Start;
    for _ in 0..2_000 {
        let out = advance(def, inst, &input, &ctx);
        inst = out.instance;
        lines.extend(out.trace.into_iter().map(|t| format!("  {t}")));
        let mut next = None;
        for e in &out.effects {
            if let Effect::Call {
                effect,
                action,
                args,
                ..
            } = e
            {
                lines.push(format!("    -> {action} {}", args.to_json()));
                let result = stub_result(action, &order.id);
                if let Ok(r) = &result {
                    lines.push(format!("    <- {}", r.to_json()));
                }
                next = Some(Input::EffectResult {
                    effect: effect.clone(),
                    result,
                });
            }
        }
        input = match (next, &inst.state) {
            (Some(i), _) => i,
            (None, State::Waiting { timer, .. }) => match events.pop_front() {
                Some(ev) => {
                    lines.push(format!("    event {}", ev.to_json()));
                    Input::Event(ev)
                }
                None => {
                    lines.push("    (no more events: the wait times out)".into());
                    Input::Timer(timer.clone())
                }
            },
            (None, State::Sleeping { timer, .. } | State::Backoff { timer, .. }) => {
                Input::Timer(timer.clone())
            }
            (None, State::AwaitingApproval { timer, .. }) => match approval {
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
                ApprovalChoice::Timeout => Input::Timer(timer.clone()),
            },
            (
                None,
                State::Compensating {
                    backoff: Some(t), ..
                },
            ) => Input::Timer(t.clone()),
            (None, State::Exception { error }) => {
                lines.push(format!(
                    "  stopped in exception at {}: an operator would resume, skip or cancel",
                    error.step
                ));
                break;
            }
            (None, State::Done(_)) => break,
            (None, other) => {
                lines.push(format!("  stopped in state {other:?}"));
                break;
            }
        };
    }
    DryRun {
        lines,
        instance: inst,
    }
}
