//! Buying and voiding the order's one label ([`super::book`] tells the
//! protocol), and fetching its documents.

use super::book::{Document, Entry, LabelBook, State};
use super::provider::{
    choose, recipient, Bought, Label, LabelProvider, ProviderKind, Providers, Quote, Refund,
    ShipmentRequest, Started,
};
use super::{tiktok_providers, Error, ErrorKind, Selection, LABELS_TOTAL, VOIDS_TOTAL};
use crate::order::Order;
use crate::tiktok::dto::ShipPackageRequest;
use crate::tiktok::gateway::Class;
use crate::tiktok::{GatewayHandle, Priority};

/// What to buy a label for.
#[derive(Clone, Copy)]
pub struct Purchase<'a> {
    pub book: &'a LabelBook,
    pub providers: &'a Providers,
    pub gateway: Option<&'a GatewayHandle>,
    /// Downloads TikTok's documents.
    pub http: &'a reqwest::Client,
    pub order: &'a Order,
    pub selection: &'a Selection,
    pub provider: ProviderKind,
    pub weight_grams: u32,
    pub now_ms: i64,
}

/// How the order got its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Bought now.
    Bought,
    /// Found at the provider by the order's reference (a purchase whose
    /// answer was lost).
    Found,
    /// The order's label from an earlier run of the step.
    Reused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Bought => "ok",
            Outcome::Found => "found",
            Outcome::Reused => "reused",
        }
    }
}

/// Checks TikTok takes the carrier for this order, before any purchase:
/// against the order's delivery option when it has one, else that the
/// carrier is mapped at all.
async fn check_mapping(p: &Purchase<'_>, carrier: &str) -> Result<Option<String>, Error> {
    let id = p
        .selection
        .shipping_provider_id
        .clone()
        .filter(|s| !s.is_empty() && p.selection.carrier.eq_ignore_ascii_case(carrier))
        .or_else(|| p.providers_id(carrier));
    match (p.gateway, p.order.delivery_option_id.as_deref()) {
        (Some(g), Some(option)) => {
            tiktok_providers::offered_for(g, &p.order.shop_id, option, carrier, id.as_deref())
                .await?;
        }
        _ => {
            if id.is_none() {
                return Err(tiktok_providers::Error::Unmapped {
                    carrier: carrier.to_string(),
                }
                .into());
            }
        }
    }
    Ok(id)
}

impl Purchase<'_> {
    fn providers_id(&self, carrier: &str) -> Option<String> {
        self.providers
            .provider_ids
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(carrier))
            .map(|(_, v)| v.clone())
    }
}

/// The order's label: reused, found by its reference, or bought; with its
/// document on disk.
pub async fn obtain(p: &Purchase<'_>) -> Result<(Label, Outcome), Error> {
    let r = obtain_inner(p).await;
    let outcome = match &r {
        Ok((_, o)) => o.as_str(),
        Err(e) => e.kind().as_str(),
    };
    metrics::counter!(LABELS_TOTAL, "provider" => p.provider.as_str(), "outcome" => outcome)
        .increment(1);
    match &r {
        Ok((l, o)) => {
            tracing::info!(order_id = %p.order.id, provider = %l.provider, label_id = %l.label_id, tracking_number = %l.tracking_number, outcome = o.as_str(), "Label")
        }
        Err(e) => {
            tracing::warn!(order_id = %p.order.id, provider = %p.provider, kind = %e.kind(), error = %e, "Label purchase failed")
        }
    }
    r
}

async fn obtain_inner(p: &Purchase<'_>) -> Result<(Label, Outcome), Error> {
    let mut e = p.book.entry(&p.order.id)?;
    if e.renew {
        // The operator asked for a new label: the old one is voided first,
        // and a label that cannot be voided stops here.
        if let Err(x) = void_current(p.providers, &mut e, "an operator asked for a new label").await
        {
            // Refused (the parcel is moving): the request is spent and the
            // label stays the order's; a later resume reuses it.
            if x.kind() == ErrorKind::Rejected {
                e.renew = false;
                p.book.save(&e, Vec::new()).await?;
            }
            return Err(x);
        }
        e.renew = false;
        p.book.save(&e, vec![untrack(&e.order_id)]).await?;
    }
    let state = e.state.clone();
    if let State::Bought(l) = state {
        documents(p, &mut e, &l).await?;
        return Ok((l, Outcome::Reused));
    }
    if let Some((provider, started)) = state.started() {
        let prov = p.providers.get(provider)?;
        let found = prov.find(&started, p.providers.format).await?;
        if let Some(b) = found.as_ref().and_then(|q| q.bought.clone()) {
            let l = record(p, &mut e, prov, started.reference, b, true).await?;
            return Ok((l, Outcome::Found));
        }
        if provider != p.provider {
            // The step now names another provider; the purchase that
            // may have started stays with the one it started at.
            tracing::info!(order_id = %p.order.id, started = %provider, asked = %p.provider, "A purchase started at another provider continues there");
        }
        let reference = started.reference.to_string();
        return buy(
            p,
            &mut e,
            provider,
            reference,
            started.since_ms,
            found,
            None,
        )
        .await;
    }
    if p.provider == ProviderKind::Tiktok {
        return ship_via_tiktok(p, &mut e).await;
    }
    let prov = p.providers.get(p.provider)?;
    // The carrier must be one TikTok takes for this order before anything
    // is created that could be bought ('*' is checked once a rate is
    // chosen, still before the purchase).
    let checked = p.selection.carrier != "*";
    if checked {
        check_mapping(p, &p.selection.carrier).await?;
    }
    let reference = e.reference();
    // A store restored from a backup does not know the labels bought after
    // the backup was taken: for an order created before the restore, ask
    // the provider by the reference that purchase would have used.
    if let Some(restored) = p.book.restored_at_ms() {
        let created_ms = p.order.create_time.saturating_mul(1000);
        if created_ms < restored {
            let st = crate::shipping::provider::Started {
                reference: &reference,
                since_ms: created_ms,
                shipment_id: None,
                rate_id: None,
            };
            if let Some(b) = prov
                .find(&st, p.providers.format)
                .await?
                .and_then(|q| q.bought)
            {
                tracing::info!(order_id = %p.order.id, %reference, "A label bought before the restore was found at the provider");
                let l = record(p, &mut e, prov, &reference, b, true).await?;
                return Ok((l, Outcome::Found));
            }
        }
    }
    e.state = State::Started {
        provider: prov.kind(),
        reference: reference.clone(),
        started_ms: p.now_ms,
        shipment_id: None,
        rate_id: None,
    };
    p.book.save(&e, Vec::new()).await?;
    let checked = checked.then_some(p.selection.carrier.as_str());
    buy(p, &mut e, prov.kind(), reference, p.now_ms, None, checked).await
}

async fn buy(
    p: &Purchase<'_>,
    e: &mut Entry,
    kind: ProviderKind,
    reference: String,
    started_ms: i64,
    found: Option<Quote>,
    checked: Option<&str>,
) -> Result<(Label, Outcome), Error> {
    let prov = p.providers.get(kind)?;
    let quote = match found {
        Some(q) => q,
        None => {
            prov.quote(&ShipmentRequest {
                reference: reference.clone(),
                from: p.providers.ship_from.clone(),
                to: recipient(p.order)?,
                weight_grams: p.weight_grams.max(1),
                format: p.providers.format,
            })
            .await?
        }
    };
    let sel = p.selection;
    let deliver_by = p.order.deadlines.delivery_due_time;
    let Some(rate) = choose(
        &quote.rates,
        &sel.carrier,
        sel.service.as_deref(),
        sel.rate_choice.unwrap_or(p.providers.choice),
        p.now_ms / 1000,
        deliver_by,
    )
    .cloned() else {
        return Err(Error::NoRate {
            carrier: sel.carrier.clone(),
            service: sel.service.clone(),
            offered: quote
                .rates
                .iter()
                .map(|r| format!("{} {}", r.carrier, r.service))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    // The carrier TikTok must take, unless this call checked it already.
    if checked.is_none_or(|c| !c.eq_ignore_ascii_case(&rate.carrier)) {
        check_mapping(p, &rate.carrier).await?;
    }
    // What is about to be bought, durably, so that a replay asks for
    // exactly it.
    let state = State::Started {
        provider: kind,
        reference: reference.clone(),
        started_ms,
        shipment_id: Some(quote.shipment_id.clone()),
        rate_id: Some(rate.id.clone()),
    };
    if e.state != state {
        e.state = state;
        p.book.save(e, Vec::new()).await?;
    }
    let bought = match prov.buy(&quote, &rate, p.providers.format).await {
        Ok(b) => b,
        // Refused because it was bought meanwhile (a purchase whose answer
        // was lost): the provider has it under the reference.
        Err(
            x @ Error::Provider {
                kind: ErrorKind::Rejected | ErrorKind::Invalid,
                ..
            },
        ) => match prov
            .find(
                &Started {
                    reference: &reference,
                    since_ms: started_ms,
                    shipment_id: Some(&quote.shipment_id),
                    rate_id: Some(&rate.id),
                },
                p.providers.format,
            )
            .await
        {
            Ok(Some(Quote {
                bought: Some(b), ..
            })) => b,
            _ => return Err(x),
        },
        Err(x) => return Err(x),
    };
    let l = record(p, e, prov, &reference, bought, false).await?;
    Ok((l, Outcome::Bought))
}

/// Records a bought label (durably), indexes its tracking number and
/// fetches its document.
async fn record(
    p: &Purchase<'_>,
    e: &mut Entry,
    prov: &LabelProvider,
    reference: &str,
    b: Bought,
    recovered: bool,
) -> Result<Label, Error> {
    let spid = p
        .providers_id(&b.carrier)
        .or_else(|| p.selection.shipping_provider_id.clone());
    let l = Label::from_bought(
        prov.kind(),
        reference,
        b,
        p.providers.format,
        spid,
        p.now_ms,
        recovered,
    );
    e.state = State::Bought(l.clone());
    let ops = p.book.bought_ops(e, &l, &p.order.shop_id, p.now_ms)?;
    p.book.save(e, ops).await?;
    documents(p, e, &l).await?;
    Ok(l)
}

/// Fetches what the label lacks on disk: the carrier's label, or TikTok's
/// label and packing slip. A failure fails the step (a retry reuses the
/// label and fetches again); nothing is bought again.
async fn documents(p: &Purchase<'_>, e: &mut Entry, l: &Label) -> Result<(), Error> {
    if e.documents.iter().any(|d| d.label_id == l.label_id) {
        return Ok(());
    }
    let (name, kind, content_type, bytes) = match l.provider {
        ProviderKind::Tiktok => {
            let g = p.gateway.ok_or_else(|| {
                Error::Unsupported("TikTok's documents need the TikTok gateway".into())
            })?;
            let d = g
                .shipping_document(
                    &p.order.shop_id,
                    &l.label_id,
                    "SHIPPING_LABEL_AND_PACKING_SLIP",
                    Priority::for_order(Class::Write, p.order),
                )
                .await?;
            let bytes = super::rest::download(p.http, ProviderKind::Tiktok, &d.doc_url).await?;
            (
                format!("tiktok-{}.pdf", l.label_id),
                "tiktok_shipping_document",
                "application/pdf",
                bytes,
            )
        }
        kind => {
            let Some(url) = l.label_url.as_deref() else {
                return Ok(());
            };
            let bytes = p.providers.get(kind)?.download(url).await?;
            (
                format!("label-{}.{}", e.generation, l.format.extension()),
                "label",
                l.format.content_type(),
                bytes,
            )
        }
    };
    let size = p.book.write_document(&e.order_id, &name, bytes).await?;
    e.documents.retain(|d| d.name != name);
    e.documents.push(Document {
        name,
        kind: kind.into(),
        content_type: content_type.into(),
        bytes: size,
        label_id: l.label_id.clone(),
        created_ms: p.now_ms,
    });
    p.book.save(e, Vec::new()).await
}

async fn ship_via_tiktok(p: &Purchase<'_>, e: &mut Entry) -> Result<(Label, Outcome), Error> {
    let order = p.order;
    let gateway = p
        .gateway
        .ok_or_else(|| Error::Unsupported("TikTok shipping needs the TikTok gateway".into()))?;
    let package = order.packages.first().ok_or_else(|| {
        Error::Invalid(format!(
            "order {} has no package to ship through TikTok",
            order.id
        ))
    })?;
    let priority = Priority::for_order(Class::Write, order);
    let shipped = gateway
        .ship_package(
            &order.shop_id,
            package,
            ShipPackageRequest {
                handover_method: Some("PICKUP".into()),
                pickup_slot: None,
                self_shipment: None,
            },
            priority,
        )
        .await?;
    if shipped.is_already_shipped() {
        tracing::info!(order_id = %order.id, package_id = %package, "Package was already shipped; reading its tracking number");
    }
    let detail = gateway
        .order_detail(&order.shop_id, &order.id, priority)
        .await?;
    let tracking = detail
        .tracking_number
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Provider {
            provider: ProviderKind::Tiktok,
            op: "tiktok_tracking",
            kind: ErrorKind::Transient,
            status: None,
            message: format!(
                "order {} is shipped but TikTok has no tracking number yet",
                order.id
            ),
        })?;
    let spid = detail
        .shipping_provider_id
        .or_else(|| p.selection.shipping_provider_id.clone());
    let l = keep_tiktok_label(p, e, package, tracking, spid).await?;
    Ok((l, Outcome::Bought))
}

/// Records a shipped TikTok Shipping package as the order's label and
/// fetches TikTok's label and packing slip for it; a package already
/// recorded with its documents is left as it is.
async fn keep_tiktok_label(
    p: &Purchase<'_>,
    e: &mut Entry,
    package: &str,
    tracking: String,
    shipping_provider_id: Option<String>,
) -> Result<Label, Error> {
    let l = match e.label() {
        Some(l) if l.provider == ProviderKind::Tiktok && l.label_id == package => l.clone(),
        _ => {
            let l = Label {
                provider: ProviderKind::Tiktok,
                label_id: package.to_string(),
                shipment_id: package.to_string(),
                reference: e.reference(),
                tracking_number: tracking,
                label_url: None,
                format: super::LabelFormat::Pdf,
                carrier: p.selection.carrier.clone(),
                service: p.selection.service.clone(),
                shipping_provider_id,
                cost: None,
                tracker_id: None,
                bought_ms: p.now_ms,
                recovered: false,
            };
            e.state = State::Bought(l.clone());
            let ops = p.book.bought_ops(e, &l, &p.order.shop_id, p.now_ms)?;
            p.book.save(e, ops).await?;
            l
        }
    };
    documents(p, e, &l).await?;
    Ok(l)
}

/// After `tiktok.ship_package` shipped a TikTok Shipping package: the
/// package is the order's label, and TikTok's documents are kept with the
/// order (as `shipping.buy_label` with the `tiktok` provider does).
pub async fn shipped_by_tiktok(
    p: &Purchase<'_>,
    package: &str,
    tracking: String,
    shipping_provider_id: Option<String>,
) -> Result<Label, Error> {
    let mut e = p.book.entry(&p.order.id)?;
    keep_tiktok_label(p, &mut e, package, tracking, shipping_provider_id).await
}

/// Voids the entry's label (or one a started purchase may have bought),
/// leaving the entry empty with the next generation. Not saved.
async fn void_current(providers: &Providers, e: &mut Entry, why: &str) -> Result<bool, Error> {
    let state = e.state.clone();
    let label = match (&state, state.started()) {
        (State::Empty, _) => return Ok(false),
        (State::Bought(l), _) => Some(l.clone()),
        (_, Some((provider, started))) => providers
            .get(provider)?
            .find(&started, providers.format)
            .await?
            .and_then(|q| q.bought)
            .map(|b| {
                Label::from_bought(
                    provider,
                    started.reference,
                    b,
                    providers.format,
                    None,
                    started.since_ms,
                    true,
                )
            }),
        (State::Started { .. }, None) => None,
    };
    if let Some(l) = label {
        let r = providers.get(l.provider)?.refund(&l).await;
        let outcome = match &r {
            Ok(Refund::Accepted(_)) => "ok",
            Ok(Refund::Refused(_)) => "rejected",
            Err(x) => x.kind().as_str(),
        };
        metrics::counter!(VOIDS_TOTAL, "outcome" => outcome).increment(1);
        match r? {
            Refund::Accepted(status) => {
                tracing::info!(order_id = %e.order_id, label_id = %l.label_id, %status, why, "Label voided");
            }
            Refund::Refused(message) => {
                return Err(Error::Provider {
                    provider: l.provider,
                    op: "refund",
                    kind: ErrorKind::Rejected,
                    status: None,
                    message,
                })
            }
        }
        e.documents.retain(|d| d.label_id != l.label_id);
        e.voided.push(l);
    }
    e.state = State::Empty;
    e.generation += 1;
    Ok(true)
}

/// Closes the order's tracker (its label is voided).
fn untrack(order_id: &str) -> crate::store::Op {
    crate::store::Op::Del {
        tree: crate::store::Tree::Labels,
        key: super::book::active_key(order_id),
    }
}

/// Voids the order's label (the compensation of a purchase). `label_id`,
/// when given, must be the order's label or one already voided. `Ok(true)`
/// when the order has no unvoided label any more.
pub async fn void(
    book: &LabelBook,
    providers: &Providers,
    order_id: &str,
    label_id: Option<&str>,
) -> Result<bool, Error> {
    let mut e = book.entry(order_id)?;
    if let (Some(id), Some(l)) = (label_id, e.label()) {
        if l.label_id != id {
            return Err(Error::Provider {
                provider: l.provider,
                op: "void",
                kind: ErrorKind::NotFound,
                status: None,
                message: format!(
                    "label {id} is not order {order_id}'s label ({})",
                    l.label_id
                ),
            });
        }
    }
    if let (Some(id), State::Empty) = (label_id, &e.state) {
        if e.voided.iter().any(|l| l.label_id == id) {
            return Ok(true);
        }
    }
    void_current(providers, &mut e, "compensation").await?;
    book.save(&e, vec![untrack(order_id)]).await?;
    Ok(true)
}
