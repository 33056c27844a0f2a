//! Events about an order: what arrives from webhooks, polling, operators and
//! the API, stored in the inbox before anyone is told "received".

use serde::{Deserialize, Serialize};

use crate::order::Order;
use crate::workflow::value::Data;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Webhook,
    Poll,
    Api,
    Operator,
    Workflow,
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
            Source::Api => "api",
            Source::Operator => "operator",
            Source::Workflow => "workflow",
            Source::System => "system",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// Deduplication key: TikTok's notification id, or a key derived from
    /// (order, status, update time), or the caller's request id.
    pub id: String,
    pub order_id: String,
    pub shop_id: String,
    pub source: Source,
    pub received_ms: i64,
    pub kind: EventKind,
}

/// How a status webhook's [`EventKind::Refresh`] names the status it
/// announced (`webhook: status AWAITING_SHIPMENT`): written by
/// [`EventKind::status_webhook`], read by [`EventKind::status_hint`].
const STATUS_WEBHOOK: &str = "webhook: status ";

impl EventKind {
    /// The refresh a status webhook asks for, naming the status it
    /// announced.
    pub fn status_webhook(status: &str) -> EventKind {
        EventKind::Refresh {
            reason: format!("{STATUS_WEBHOOK}{status}"),
        }
    }

    /// The TikTok status this event says the order has (or had when it was
    /// sent): a snapshot's, a status event's, or the one a status
    /// webhook's refresh announced.
    pub fn status_hint(&self) -> Option<crate::order::TiktokStatus> {
        match self {
            EventKind::Snapshot(o) => Some(o.status.clone()),
            EventKind::Status { status, .. } => crate::order::TiktokStatus::parse(status),
            EventKind::Refresh { reason } => reason
                .strip_prefix(STATUS_WEBHOOK)
                .and_then(crate::order::TiktokStatus::parse),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EventKind {
    /// The whole order as TikTok has it now (hydrated).
    Snapshot(Box<Order>),
    /// Only a status (a webhook before hydration).
    Status {
        status: String,
        update_time: i64,
    },
    /// A notification that the order changed (status, address, package,
    /// cancellation, return): fetch it and apply what TikTok has now.
    Refresh {
        reason: String,
    },
    /// Anything a `wait` step may match: `{type: restock, …}`, carrier scans.
    Signal(Data),
    Operator(OperatorAction),
    /// A return or refund of the order changed (RETURN_STATUS_CHANGE): kept
    /// on the order and given to the workflow as `{type: "return", …}`.
    Return(ReturnUpdate),
    /// An intervention by a named person (a console user, a user's API
    /// token, or the name a script gave with the admin token): recorded in
    /// the audit under that name. (Last, so stored events of older
    /// versions keep their variant numbers.)
    OperatorBy {
        by: String,
        action: OperatorAction,
    },
}

/// A return as TikTok's RETURN_STATUS_CHANGE reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnUpdate {
    pub return_id: String,
    /// REFUND, RETURN_AND_REFUND, REPLACEMENT (as TikTok spells it).
    pub return_type: String,
    /// e.g. RETURN_OR_REFUND_REQUEST_PENDING (as TikTok spells it).
    pub return_status: String,
    /// BUYER, SELLER, OPERATOR, SYSTEM.
    pub role: String,
    /// Unix seconds.
    pub update_time: i64,
    /// TikTok's reason key and text, and the seller's deadline for the
    /// next action, from Search Returns (empty when it could not be read).
    pub reason: String,
    pub reason_text: String,
    pub respond_by: Option<i64>,
}

impl ReturnUpdate {
    /// A return as Search Returns shows it: with its reason and the
    /// seller's deadline for the next action.
    pub fn from_search(r: &crate::tiktok::dto::ReturnOrder) -> ReturnUpdate {
        ReturnUpdate {
            return_id: r.return_id.clone(),
            return_type: r.return_type.clone(),
            return_status: r.return_status.clone(),
            role: r.role.clone(),
            update_time: r.update_time.max(r.create_time),
            reason: r.return_reason.clone(),
            reason_text: r.return_reason_text.clone(),
            respond_by: r
                .seller_next_action_response
                .iter()
                .filter_map(|a| a.deadline)
                .min(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OperatorAction {
    /// Re-run the failed step (a new visit: a new idempotency key).
    Resume,
    /// Skip the current step.
    Skip,
    Approve {
        by: String,
        note: String,
    },
    Reject {
        by: String,
        note: String,
    },
    Hold {
        reason: String,
    },
    Release,
    /// Stop the workflow and run its compensations.
    Cancel {
        reason: String,
    },
    RunFrom {
        step: String,
    },
    /// A note on the order (e.g. about the recipient address).
    Note {
        text: String,
    },
    /// Cancel as [`OperatorAction::Cancel`] does, and cancel on TikTok
    /// too with `cancel_reason`: a reason kind
    /// ([`crate::tiktok::reasons::CancelKind`]) or an official key, mapped
    /// to the key for the shop's market and the order's status when the
    /// call is made. (A plain `Cancel` stops orderflow's work only.)
    SellerCancel {
        reason: String,
        cancel_reason: String,
    },
    /// Answer the buyer's pending cancellation request: approve (TikTok
    /// cancels the order), or reject with `reason` (a reject kind or an
    /// official key).
    AnswerCancelRequest {
        approve: bool,
        reason: Option<String>,
        by: String,
    },
    /// Move the order to another workflow (`name`, the version in force)
    /// or version (`name@version`), running from `step` (the first step
    /// without one). An order no workflow took starts on it.
    Move {
        workflow: String,
        step: Option<String>,
    },
}

impl OperatorAction {
    pub fn name(&self) -> &'static str {
        match self {
            OperatorAction::Resume => "resume",
            OperatorAction::Skip => "skip",
            OperatorAction::Approve { .. } => "approve",
            OperatorAction::Reject { .. } => "reject",
            OperatorAction::Hold { .. } => "hold",
            OperatorAction::Release => "release",
            OperatorAction::Cancel { .. } | OperatorAction::SellerCancel { .. } => "cancel",
            OperatorAction::AnswerCancelRequest { approve: true, .. } => "approve_cancel_request",
            OperatorAction::AnswerCancelRequest { approve: false, .. } => "reject_cancel_request",
            OperatorAction::RunFrom { .. } => "run_from",
            OperatorAction::Note { .. } => "note",
            OperatorAction::Move { .. } => "move",
        }
    }
}
