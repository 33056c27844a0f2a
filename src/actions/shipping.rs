//! `shipping.*`: choosing the carrier and buying (or voiding) the label,
//! through [`crate::shipping`]'s router and providers.

use crate::shipping::{CarrierRule, LabelRequest, Selection};
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, refuse_platform_fulfilled, Action, Call, ErrorKind};

pub const SELECT_CARRIER: Action = Action {
    name: "shipping.select_carrier",
    doc: "Choose a carrier by rules (region, weight, value, deadline), else the default.",
    args: &[
        arg(
            "rules",
            List,
            false,
            "list of {when: CEL, carrier, service}",
        ),
        arg("default", Str, false, "carrier when no rule matches"),
    ],
    outputs: &["carrier", "service", "shipping_provider_id"],
    errors: &[],
    external: false,
};

pub const BUY_LABEL: Action = Action {
    name: "shipping.buy_label",
    doc: "Buy a shipping label (idempotent per order and step).",
    args: &[
        arg("carrier", Str, true, "carrier name from select_carrier"),
        arg("service", Str, false, "service level"),
        arg("provider", Str, false, "label_api (default) or tiktok"),
    ],
    outputs: &[
        "label_id",
        "tracking_number",
        "label_url",
        "shipping_provider_id",
    ],
    errors: &[],
    external: true,
};

pub const VOID_LABEL: Action = Action {
    name: "shipping.void_label",
    doc: "Void a label that has not shipped (compensation for buy_label).",
    args: &[arg("label_id", Str, true, "the label to void")],
    outputs: &["voided"],
    errors: &[ErrorKind::NotFound],
    external: true,
};

/// A shipping failure as the step's failure (its kind is the shipping
/// module's: [`crate::shipping::Error::kind`]).
fn failed(e: crate::shipping::Error) -> ActionError {
    e.kind().error(e.to_string())
}

pub(super) fn select_carrier(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let o = c.order()?;
    let rules: Vec<CarrierRule> = match c.effect.args.get("rules") {
        Some(r) => serde_json::from_value(r.to_json())
            .map_err(|x| ErrorKind::Invalid.error(format!("rules: {x}")))?,
        None => Vec::new(),
    };
    let router = f
        .router
        .with_workflow_rules(&rules, c.arg("default").as_deref())
        .map_err(failed)?;
    let now = chrono::Utc::now().timestamp();
    let sel = router.select(&o, now).map_err(failed)?;
    Ok(Data::map([
        ("carrier", Data::from(sel.carrier)),
        ("service", sel.service.map_or(Data::Null, Data::from)),
        (
            "shipping_provider_id",
            sel.shipping_provider_id.map_or(Data::Null, Data::from),
        ),
    ]))
}

pub(super) async fn buy_label(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    if let Some(o) = c.order.as_deref() {
        refuse_platform_fulfilled(o, &c.effect.action)?;
    }
    let o = c.order()?;
    let carrier = c.arg("carrier").unwrap_or_default();
    let selection = Selection {
        shipping_provider_id: c
            .arg("shipping_provider_id")
            .or_else(|| f.provider_id(&carrier)),
        carrier,
        service: c.arg("service"),
        rule: None,
    };
    let provider = f
        .providers
        .get(c.arg("provider").as_deref())
        .map_err(failed)?;
    // A label TikTok would not take for this order is never bought: the
    // provider id must be one TikTok offers for the order's delivery option.
    if let (Some(g), Some(option)) = (c.gateway, o.delivery_option_id.as_deref()) {
        crate::shipping::tiktok_providers::offered_for(
            g,
            &o.shop_id,
            option,
            &selection.carrier,
            selection.shipping_provider_id.as_deref(),
        )
        .await
        .map_err(|x| x.kind().error(x.to_string()))?;
    }
    let req = LabelRequest {
        order: &o,
        selection: &selection,
        idempotency_key: &c.effect.key,
        weight_grams: f.router.weight_grams(&o),
    };
    let l = provider.buy_label(&req).await.map_err(failed)?;
    Ok(Data::map([
        ("label_id", Data::from(l.label_id)),
        ("tracking_number", Data::from(l.tracking_number)),
        ("label_url", l.label_url.map_or(Data::Null, Data::from)),
        (
            "shipping_provider_id",
            l.shipping_provider_id.map_or(Data::Null, Data::from),
        ),
    ]))
}

pub(super) async fn void_label(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let label = c
        .arg("label_id")
        .ok_or_else(|| ErrorKind::Invalid.error("void_label needs label_id"))?;
    let provider = f
        .providers
        .get(c.arg("provider").as_deref())
        .map_err(failed)?;
    let voided = provider.void_label(&label).await.map_err(failed)?;
    Ok(Data::map([("voided", Data::Bool(voided))]))
}
