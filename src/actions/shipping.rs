//! `shipping.*`: choosing the carrier and buying (or voiding) the label,
//! through [`crate::shipping`]'s router and providers.

use crate::shipping::purchase::{obtain, void, Outcome, Purchase};
use crate::shipping::{CarrierRule, RateChoice, Selection};
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
    outputs: &[
        "carrier",
        "service",
        "shipping_provider_id",
        "provider",
        "rate",
    ],
    errors: &[],
    external: false,
};

pub const BUY_LABEL: Action = Action {
    name: "shipping.buy_label",
    doc: "Get the order's one label: reused if bought, found by the order's reference if a purchase was cut off, else bought; its document kept with the order.",
    args: &[
        arg("carrier", Str, true, "carrier name from select_carrier ('*': any)"),
        arg("service", Str, false, "service level"),
        arg(
            "provider",
            Str,
            false,
            "easypost, shippo or tiktok (default: the rule's, else [shipping] provider)",
        ),
        arg(
            "rate",
            Str,
            false,
            "cheapest, fastest or cheapest_on_time (default: the rule's, else [shipping] rate_choice)",
        ),
    ],
    outputs: &[
        "label_id",
        "tracking_number",
        "label_url",
        "shipping_provider_id",
        "carrier",
        "service",
        "provider",
        "reused",
        "document_url",
    ],
    errors: &[],
    external: true,
};

pub const VOID_LABEL: Action = Action {
    name: "shipping.void_label",
    doc: "Void (refund) the order's label while it has not shipped (compensation for buy_label).",
    args: &[arg(
        "label_id",
        Str,
        false,
        "the label to void (default: the order's)",
    )],
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
    let text = |v: Option<String>| v.map_or(Data::Null, Data::from);
    Ok(Data::map([
        ("carrier", Data::from(sel.carrier)),
        ("service", text(sel.service)),
        ("shipping_provider_id", text(sel.shipping_provider_id)),
        (
            "provider",
            text(sel.provider.map(|p| p.as_str().to_string())),
        ),
        (
            "rate",
            text(sel.rate_choice.and_then(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
            })),
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
    let rate_choice = match c.arg("rate") {
        None => None,
        Some(r) => Some(
            serde_json::from_value::<RateChoice>(serde_json::Value::String(r.clone())).map_err(
                |_| {
                    ErrorKind::Invalid
                        .error(format!("rate {r:?}: cheapest, fastest or cheapest_on_time"))
                },
            )?,
        ),
    };
    let provider = f
        .providers
        .named(c.arg("provider").as_deref())
        .map_err(failed)?;
    let selection = Selection {
        shipping_provider_id: c
            .arg("shipping_provider_id")
            .or_else(|| f.provider_id(&carrier)),
        carrier,
        service: c.arg("service"),
        rule: None,
        provider: Some(provider),
        rate_choice,
    };
    let purchase = Purchase {
        book: &f.labels,
        providers: &f.providers,
        gateway: c.gateway,
        http: c.http,
        order: &o,
        selection: &selection,
        provider,
        weight_grams: f.router.weight_grams(&o),
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let (l, outcome) = obtain(&purchase).await.map_err(failed)?;
    let document_url = f.labels.document_url(&o.id, &l.label_id).map_err(failed)?;
    let text = |v: Option<String>| v.map_or(Data::Null, Data::from);
    Ok(Data::map([
        ("label_id", Data::from(l.label_id)),
        ("tracking_number", Data::from(l.tracking_number)),
        ("label_url", text(l.label_url)),
        ("shipping_provider_id", text(l.shipping_provider_id)),
        ("carrier", Data::from(l.carrier)),
        ("service", text(l.service)),
        ("provider", Data::from(l.provider.as_str().to_string())),
        ("reused", Data::Bool(outcome != Outcome::Bought)),
        ("document_url", text(document_url)),
    ]))
}

pub(super) async fn void_label(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let o = c.order()?;
    let voided = void(&f.labels, &f.providers, &o.id, c.arg("label_id").as_deref())
        .await
        .map_err(failed)?;
    Ok(Data::map([("voided", Data::Bool(voided))]))
}
