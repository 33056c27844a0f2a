//! The built-in actions: every action a `call` step may name, each in one
//! place with its argument schema, its outputs, the error kinds it can
//! raise and its execution.
//!
//! - [`ActionName`]: the typed name; [`ActionName::spec`] and [`run`] are
//!   the only matches over it, both exhaustive.
//! - [`ErrorKind`]: the error kinds, shared by the workflow language
//!   (`catch`, `retry.on`) and the runtime; [`ErrorKind::from_tiktok`] is
//!   the one mapping of TikTok's failures onto them.
//! - One file per family, each with its actions' [`Action`] specs, their
//!   execution and how the family's failures become [`ActionError`]s:
//!   [`tiktok`], [`inventory`], [`shipping`], [`notify`], [`order`],
//!   [`http`].
//!
//! The validator checks steps against the specs (unknown action, missing or
//! mistyped argument, `catch` of an error the action cannot raise), the
//! interpreter only emits effects naming these actions, dry-run uses the
//! stub outputs and the runtime's [`crate::runtime::effects::Executor`]
//! runs them. A stored effect's action stays a string (the store's format);
//! one this build does not know fails as `invalid`.

pub mod http;
pub mod inventory;
pub mod notify;
pub mod order;
pub mod shipping;
pub mod tiktok;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::order::Order;
use crate::runtime::effects::Fulfilment;
use crate::store::StartedEffect;
use crate::tiktok::GatewayHandle;
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

/// Every built-in action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionName {
    TiktokShipPackage,
    TiktokMarkShipped,
    TiktokCancelOrder,
    TiktokApproveCancellation,
    TiktokRejectCancellation,
    TiktokUpdateInventory,
    InventoryReserve,
    InventoryRelease,
    InventoryCommit,
    ShippingSelectCarrier,
    ShippingBuyLabel,
    ShippingVoidLabel,
    NotifySend,
    OrderTag,
    OrderHold,
    OrderValidate,
    HttpRequest,
}

impl ActionName {
    /// Every action, in the catalogue's order.
    pub const ALL: [ActionName; 17] = [
        ActionName::TiktokShipPackage,
        ActionName::TiktokMarkShipped,
        ActionName::TiktokCancelOrder,
        ActionName::TiktokApproveCancellation,
        ActionName::TiktokRejectCancellation,
        ActionName::TiktokUpdateInventory,
        ActionName::InventoryReserve,
        ActionName::InventoryRelease,
        ActionName::InventoryCommit,
        ActionName::ShippingSelectCarrier,
        ActionName::ShippingBuyLabel,
        ActionName::ShippingVoidLabel,
        ActionName::NotifySend,
        ActionName::OrderTag,
        ActionName::OrderHold,
        ActionName::OrderValidate,
        ActionName::HttpRequest,
    ];

    /// The action's spec, from its family's file.
    pub fn spec(self) -> &'static Action {
        use ActionName::*;
        match self {
            TiktokShipPackage => &tiktok::SHIP_PACKAGE,
            TiktokMarkShipped => &tiktok::MARK_SHIPPED,
            TiktokCancelOrder => &tiktok::CANCEL_ORDER,
            TiktokApproveCancellation => &tiktok::APPROVE_CANCELLATION,
            TiktokRejectCancellation => &tiktok::REJECT_CANCELLATION,
            TiktokUpdateInventory => &tiktok::UPDATE_INVENTORY,
            InventoryReserve => &inventory::RESERVE,
            InventoryRelease => &inventory::RELEASE,
            InventoryCommit => &inventory::COMMIT,
            ShippingSelectCarrier => &shipping::SELECT_CARRIER,
            ShippingBuyLabel => &shipping::BUY_LABEL,
            ShippingVoidLabel => &shipping::VOID_LABEL,
            NotifySend => &notify::SEND,
            OrderTag => &order::TAG,
            OrderHold => &order::HOLD,
            OrderValidate => &order::VALIDATE,
            HttpRequest => &http::REQUEST,
        }
    }

    /// The name workflows call it by (`tiktok.mark_shipped`), as stored in
    /// effects.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    pub fn parse(name: &str) -> Option<ActionName> {
        ActionName::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl std::fmt::Display for ActionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as the workflow language sees it: what `catch` and `retry.on`
/// name, and what [`ActionError::kind`] holds (as text, the store's format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth retrying: 5xx, connection failures, an exhausted retry budget.
    Transient,
    /// No answer in time. The request may have taken effect: retry with the
    /// same idempotency key.
    Timeout,
    /// Throttled (HTTP 429); retry later.
    RateLimited,
    /// The request itself is wrong (bad address, unknown rate, bad input).
    Invalid,
    /// The other side refused (credentials, payment, state conflict).
    Rejected,
    /// Short of an item's stock (`inventory.reserve`).
    OutOfStock,
    /// A SKU mapped to no item (`inventory.reserve`).
    UnmappedSku,
    /// The order is not paid or its amounts do not add up
    /// (`order.validate`).
    PaymentMismatch,
    /// The thing does not exist (label, shipment, order, SKU).
    NotFound,
    /// An expression of the workflow failed (raised by the interpreter).
    Expression,
    /// A ship call TikTok refused because it had cancelled the order: the
    /// runtime's own (it records the cancellation and the workflow
    /// compensates); not in the language ([`ALL_ERRORS`]).
    OrderCancelled,
}

impl ErrorKind {
    /// Every kind: those of the language ([`ALL_ERRORS`]), then the
    /// runtime's own.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Transient,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Invalid,
        ErrorKind::Rejected,
        ErrorKind::OutOfStock,
        ErrorKind::UnmappedSku,
        ErrorKind::PaymentMismatch,
        ErrorKind::NotFound,
        ErrorKind::Expression,
        ErrorKind::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Rejected => "rejected",
            ErrorKind::OutOfStock => "out_of_stock",
            ErrorKind::UnmappedSku => "unmapped_sku",
            ErrorKind::PaymentMismatch => "payment_mismatch",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Expression => "expression",
            ErrorKind::OrderCancelled => "order_cancelled",
        }
    }

    pub fn parse(kind: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind a workflow may name in `catch` and `retry.on`, if `kind` is
    /// one.
    pub fn in_language(kind: &str) -> Option<ErrorKind> {
        ALL_ERRORS.iter().copied().find(|k| k.as_str() == kind)
    }

    /// A failure of this kind.
    pub fn error(self, message: impl Into<String>) -> ActionError {
        ActionError {
            kind: self.as_str().into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error kinds any action may raise.
pub const COMMON_ERRORS: &[ErrorKind] = &[
    ErrorKind::Transient,
    ErrorKind::Timeout,
    ErrorKind::RateLimited,
    ErrorKind::Invalid,
    ErrorKind::Rejected,
];

/// Retried by default when a step has a `retry` policy without `on:`.
pub const DEFAULT_RETRYABLE: &[ErrorKind] = &[
    ErrorKind::Transient,
    ErrorKind::Timeout,
    ErrorKind::RateLimited,
];

/// Every error kind the language knows (for `catch` and `retry.on`): all
/// but the runtime's own [`ErrorKind::OrderCancelled`], the last.
pub const ALL_ERRORS: &[ErrorKind] = ErrorKind::ALL.split_at(ErrorKind::ALL.len() - 1).0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Str,
    Int,
    Number,
    Bool,
    List,
    Map,
    Any,
}

impl ArgType {
    pub fn name(self) -> &'static str {
        match self {
            ArgType::Str => "a string",
            ArgType::Int => "an integer",
            ArgType::Number => "a number",
            ArgType::Bool => "a boolean",
            ArgType::List => "a list",
            ArgType::Map => "a mapping",
            ArgType::Any => "any value",
        }
    }

    /// Does a literal value fit? (Expressions are checked at run time.)
    pub fn accepts(self, d: &Data) -> bool {
        matches!(
            (self, d),
            (ArgType::Any, _)
                | (ArgType::Str, Data::Str(_))
                | (ArgType::Int, Data::Int(_))
                | (ArgType::Number, Data::Int(_) | Data::Float(_))
                | (ArgType::Bool, Data::Bool(_))
                | (ArgType::List, Data::List(_))
                | (ArgType::Map, Data::Map(_))
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
    pub doc: &'static str,
}

/// An argument (for the specs' tables).
const fn arg(name: &'static str, ty: ArgType, required: bool, doc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required,
        doc,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub name: &'static str,
    pub doc: &'static str,
    pub args: &'static [Arg],
    /// Fields of the output, readable as `steps.<id>.<field>`.
    pub outputs: &'static [&'static str],
    /// Error kinds beyond the common ones ([`COMMON_ERRORS`]).
    pub errors: &'static [ErrorKind],
    /// Does it change something outside orderflow? Such calls carry an
    /// idempotency key and are checkpointed before and after.
    pub external: bool,
}

impl Action {
    /// Whether this is the spec of `name`.
    pub fn is(&self, name: ActionName) -> bool {
        self.name == name.as_str()
    }
}

/// Every action's spec, in [`ActionName::ALL`]'s order.
pub fn catalogue() -> impl Iterator<Item = &'static Action> {
    ActionName::ALL.into_iter().map(ActionName::spec)
}

/// The spec of the action called `name`.
pub fn lookup(name: &str) -> Option<&'static Action> {
    ActionName::parse(name).map(ActionName::spec)
}

impl Action {
    pub fn arg(&self, name: &str) -> Option<&'static Arg> {
        self.args.iter().find(|a| a.name == name)
    }

    pub fn raises(&self, kind: ErrorKind) -> bool {
        COMMON_ERRORS.contains(&kind) || self.errors.contains(&kind)
    }

    /// What dry-run pretends the action returned: every output field with a
    /// recognisable placeholder.
    pub fn stub_output(&self, order_id: &str) -> Data {
        Data::map(self.outputs.iter().map(|f| {
            let v = match *f {
                "units" => Data::Int(1),
                "released" | "committed" | "voided" | "delivered" | "held" | "ok" => {
                    Data::Bool(true)
                }
                "status" => Data::Int(200),
                "tags" | "body" => Data::Null,
                "quantity" => Data::Int(0),
                other => Data::Str(format!("stub-{other}-{order_id}")),
            };
            (*f, v)
        }))
    }
}

/// One call of an action: the started effect (its arguments and
/// idempotency key), the order as last read and the services it may use.
pub struct Call<'a> {
    pub effect: &'a StartedEffect,
    pub order: Option<Arc<Order>>,
    /// The step's `timeout`, else `actions.http_timeout`.
    pub timeout: Duration,
    pub http: &'a reqwest::Client,
    pub gateway: Option<&'a GatewayHandle>,
    pub fulfil: Option<&'a Fulfilment>,
}

impl<'a> Call<'a> {
    /// A string argument.
    fn arg(&self, name: &str) -> Option<String> {
        self.effect
            .args
            .get(name)
            .and_then(Data::as_str)
            .map(str::to_string)
    }

    /// The order, which every action but a few needs read.
    fn order(&self) -> Result<Arc<Order>, ActionError> {
        self.order
            .clone()
            .ok_or_else(|| ErrorKind::Invalid.error("the order has not been fetched yet"))
    }

    fn gateway(&self) -> Result<&'a GatewayHandle, ActionError> {
        self.gateway
            .ok_or_else(|| ErrorKind::Invalid.error("no TikTok gateway is configured"))
    }

    /// The fulfilment services (inventory, shipping, notify).
    fn fulfil(&self) -> Result<&'a Fulfilment, ActionError> {
        self.fulfil.ok_or_else(|| {
            ErrorKind::Invalid.error(format!(
                "action {} is not configured in this daemon",
                self.effect.action
            ))
        })
    }
}

/// Runs one action. Failures are values (an [`ActionError`] with a kind the
/// workflow can `retry` on or `catch`), never panics.
pub async fn run(name: ActionName, c: &Call<'_>) -> Result<Data, ActionError> {
    use ActionName::*;
    match name {
        TiktokShipPackage => tiktok::ship_package(c).await,
        TiktokMarkShipped => tiktok::mark_shipped(c).await,
        TiktokCancelOrder => tiktok::cancel_order(c).await,
        TiktokApproveCancellation => tiktok::approve_cancellation(c).await,
        TiktokRejectCancellation => tiktok::reject_cancellation(c).await,
        TiktokUpdateInventory => tiktok::update_inventory(c).await,
        InventoryReserve => inventory::reserve(c).await,
        InventoryRelease => inventory::release(c).await,
        InventoryCommit => inventory::commit(c).await,
        ShippingSelectCarrier => shipping::select_carrier(c),
        ShippingBuyLabel => shipping::buy_label(c).await,
        ShippingVoidLabel => shipping::void_label(c).await,
        NotifySend => notify::send(c).await,
        OrderTag => Ok(order::tag(c)),
        OrderHold => Ok(order::hold(c)),
        OrderValidate => order::validate(c),
        HttpRequest => http::request(c).await,
    }
}

/// An order TikTok fulfils (`fulfillment_type` other than
/// FULFILLMENT_BY_SELLER) is never reserved, labelled or shipped by the
/// seller (TikTok would answer 21008025 after a label was paid for): the
/// step fails as `invalid`, before any call, and the order waits for an
/// operator.
fn refuse_platform_fulfilled(order: &Order, action: &str) -> Result<(), ActionError> {
    if order.fulfillment_type == "FULFILLMENT_BY_SELLER" {
        return Ok(());
    }
    Err(ErrorKind::Invalid.error(format!(
        "order {} is fulfilled by the platform ({}): {action} is not done for it; route such orders to a tracking workflow (workflows/fulfilled_by_tiktok.yaml)",
        order.id, order.fulfillment_type
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue: every action round-trips through its name, has a
    /// spec with unique argument names, and raises only kinds the language
    /// knows.
    #[test]
    fn every_action_has_one_name_and_a_spec() {
        for a in ActionName::ALL {
            assert_eq!(ActionName::parse(a.as_str()), Some(a), "{a}");
            assert_eq!(lookup(a.as_str()).map(|s| s.name), Some(a.as_str()));
            let spec = a.spec();
            assert!(!spec.doc.is_empty(), "{a} has no doc");
            let family = a.as_str().split('.').next().unwrap_or_default();
            assert!(
                ["tiktok", "inventory", "shipping", "notify", "order", "http"].contains(&family),
                "{a} is in no family"
            );
            for (i, x) in spec.args.iter().enumerate() {
                assert!(
                    spec.args[..i].iter().all(|y| y.name != x.name),
                    "{a} has argument {} twice",
                    x.name
                );
            }
            for k in spec.errors {
                assert!(
                    ALL_ERRORS.contains(k),
                    "{a} raises {k}, unknown to the language"
                );
                assert!(spec.raises(*k));
            }
        }
        assert_eq!(catalogue().count(), ActionName::ALL.len());
        assert_eq!(ActionName::parse("shipping.unknown"), None);
        assert_eq!(ActionName::parse(""), None);
    }

    #[test]
    fn error_kinds_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::from(k.as_str()))
            );
        }
        for k in COMMON_ERRORS.iter().chain(DEFAULT_RETRYABLE) {
            assert!(ALL_ERRORS.contains(k), "{k}");
        }
        assert_eq!(ErrorKind::in_language("order_cancelled"), None);
        assert_eq!(
            ErrorKind::in_language("expression"),
            Some(ErrorKind::Expression)
        );
    }
}
