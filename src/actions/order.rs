//! `order.*`: orderflow's own view of the order. `order.tag` and
//! `order.hold` only echo their arguments: the order's actor applies them
//! when the result arrives (`runtime::core`).

use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, Action, Call, ErrorKind};

pub const TAG: Action = Action {
    name: "order.tag",
    doc: "Add tags to the order (orderflow's own, not TikTok's).",
    args: &[arg("tags", List, true, "tags to add")],
    outputs: &["tags"],
    errors: &[],
    external: false,
};

pub const HOLD: Action = Action {
    name: "order.hold",
    doc: "Put the order on hold for an operator, with a reason.",
    args: &[arg("reason", Str, true, "why it is held")],
    outputs: &["held", "reason"],
    errors: &[],
    external: false,
};

pub const VALIDATE: Action = Action {
    name: "order.validate",
    doc: "Check the order is paid and its amounts add up.",
    args: &[arg(
        "tolerance",
        Number,
        false,
        "allowed difference (default 0.01)",
    )],
    outputs: &["ok"],
    errors: &[ErrorKind::PaymentMismatch],
    external: false,
};

pub(super) fn tag(c: &Call<'_>) -> Data {
    Data::map([(
        "tags",
        c.effect
            .args
            .get("tags")
            .cloned()
            .unwrap_or(Data::List(vec![])),
    )])
}

pub(super) fn hold(c: &Call<'_>) -> Data {
    Data::map([
        ("held", Data::Bool(true)),
        (
            "reason",
            c.effect.args.get("reason").cloned().unwrap_or(Data::Null),
        ),
    ])
}

pub(super) fn validate(c: &Call<'_>) -> Result<Data, ActionError> {
    let order = c.order()?;
    let tol = c
        .effect
        .args
        .get("tolerance")
        .and_then(Data::as_f64)
        .and_then(crate::payment::tolerance_from_units)
        .unwrap_or(crate::order::Money(1));
    crate::payment::validate(&order, tol).map_err(|x| x.kind().error(x.to_string()))?;
    Ok(Data::map([("ok", Data::Bool(true))]))
}
