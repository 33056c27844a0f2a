//! Label providers behind one interface.
//!
//! An enum rather than a trait object: three providers, all known here, and
//! an enum keeps `async fn` without boxing.
//!
//! - [`LabelProvider::Easypost`] and [`LabelProvider::Shippo`]: a shipment
//!   from the order's recipient and the configured return address carrying
//!   the order's reference, its rates, one bought ([`super::easypost`],
//!   [`super::shippo`], each on its owner's documented wire format). Neither
//!   takes an idempotency key on a purchase: [`super::purchase`] makes one
//!   label per order a protocol (look the reference up before buying).
//! - [`LabelProvider::Tiktok`]: TikTok Shipping. Ship Package
//!   (`handover_method: PICKUP`) through the gateway; "already shipped"
//!   counts as success, which makes a replay harmless. The tracking number
//!   comes from Order Detail, the printable label and packing slip from Get
//!   Package Shipping Document. TikTok labels cannot be voided through the
//!   API (cancel the order instead).
//!
//! The rate is chosen by [`RateChoice`] among the selected carrier's (and
//! service's) rates: the cheapest, the fastest, or the cheapest that arrives
//! before TikTok's delivery deadline.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{easypost, shippo, Error, ErrorKind, ShippingConfig};
use crate::order::{Money, Order};
use crate::tiktok::GatewayHandle;

/// A label provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// EasyPost (`[shipping.providers.easypost]`).
    #[default]
    Easypost,
    /// Shippo (`[shipping.providers.shippo]`).
    Shippo,
    /// TikTok Shipping: Ship Package through the gateway.
    Tiktok,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Easypost,
        ProviderKind::Shippo,
        ProviderKind::Tiktok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Easypost => "easypost",
            ProviderKind::Shippo => "shippo",
            ProviderKind::Tiktok => "tiktok",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a rate is chosen among those of the selected carrier (and service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateChoice {
    /// The lowest price.
    #[default]
    Cheapest,
    /// The fewest delivery days (then the lowest price).
    Fastest,
    /// The lowest price among rates that arrive before TikTok's delivery
    /// deadline (`delivery_due_time`); the fastest when none does.
    CheapestOnTime,
}

/// The printable format of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelFormat {
    #[default]
    Pdf,
    Png,
    Zpl,
}

impl LabelFormat {
    pub fn extension(self) -> &'static str {
        match self {
            LabelFormat::Pdf => "pdf",
            LabelFormat::Png => "png",
            LabelFormat::Zpl => "zpl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            LabelFormat::Pdf => "application/pdf",
            LabelFormat::Png => "image/png",
            LabelFormat::Zpl => "application/zpl",
        }
    }
}

/// An address on a label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelAddress {
    pub name: String,
    pub company: String,
    pub street1: String,
    pub street2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    /// ISO country code, e.g. `US`.
    pub country: String,
    pub phone: String,
    pub email: String,
}

/// What a shipment is created from.
#[derive(Debug, Clone)]
pub struct ShipmentRequest {
    /// The order's purchase reference (`{order_id}-L{generation}`).
    pub reference: String,
    pub from: LabelAddress,
    pub to: LabelAddress,
    pub weight_grams: u32,
    pub format: LabelFormat,
}

/// One way to ship a shipment, with its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub id: String,
    pub carrier: String,
    pub service: String,
    pub amount: Option<Money>,
    pub currency: String,
    pub delivery_days: Option<u32>,
}

/// A bought label as the provider answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bought {
    /// EasyPost: the shipment id (refunds are per shipment); Shippo: the
    /// transaction's `object_id`.
    pub label_id: String,
    pub shipment_id: String,
    pub tracking_number: String,
    pub label_url: Option<String>,
    pub carrier: String,
    pub service: String,
    pub cost: Option<Money>,
    /// EasyPost's tracker (`trk_…`), created with the purchase.
    pub tracker_id: Option<String>,
}

/// A shipment: its rates, and its label when one was bought.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub shipment_id: String,
    pub reference: Option<String>,
    pub rates: Vec<Rate>,
    pub bought: Option<Bought>,
}

/// The order's label, as kept in its record ([`super::book::Entry`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub provider: ProviderKind,
    /// What voids it: EasyPost's shipment id, Shippo's transaction id,
    /// TikTok's package id.
    pub label_id: String,
    pub shipment_id: String,
    /// The reference the purchase carried.
    pub reference: String,
    pub tracking_number: String,
    pub label_url: Option<String>,
    pub format: LabelFormat,
    pub carrier: String,
    pub service: Option<String>,
    /// TikTok's id for the carrier.
    pub shipping_provider_id: Option<String>,
    pub cost: Option<Money>,
    pub tracker_id: Option<String>,
    pub bought_ms: i64,
    /// Found at the provider by the order's reference after the answer to
    /// its purchase was lost (a crash or a timeout), not bought again.
    #[serde(default)]
    pub recovered: bool,
}

impl Label {
    /// The order's label from a purchase's answer.
    pub fn from_bought(
        provider: ProviderKind,
        reference: &str,
        b: Bought,
        format: LabelFormat,
        shipping_provider_id: Option<String>,
        bought_ms: i64,
        recovered: bool,
    ) -> Label {
        Label {
            provider,
            label_id: b.label_id,
            shipment_id: b.shipment_id,
            reference: reference.to_string(),
            tracking_number: b.tracking_number,
            label_url: b.label_url,
            format,
            carrier: b.carrier,
            service: Some(b.service),
            shipping_provider_id,
            cost: b.cost,
            tracker_id: b.tracker_id,
            bought_ms,
            recovered,
        }
    }
}

/// What voiding answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refund {
    /// Refunded, or submitted for a refund (the carrier decides later).
    Accepted(String),
    /// The provider refused (e.g. the parcel is moving).
    Refused(String),
}

/// What is known of a purchase that may have reached the provider.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    pub reference: &'a str,
    pub since_ms: i64,
    pub shipment_id: Option<&'a str>,
    pub rate_id: Option<&'a str>,
}

/// A label provider.
#[derive(Debug, Clone)]
pub enum LabelProvider {
    Easypost(easypost::Client),
    Shippo(shippo::Client),
    Tiktok { gateway: GatewayHandle },
}

impl LabelProvider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            LabelProvider::Easypost(_) => ProviderKind::Easypost,
            LabelProvider::Shippo(_) => ProviderKind::Shippo,
            LabelProvider::Tiktok { .. } => ProviderKind::Tiktok,
        }
    }

    /// Creates a shipment and answers its rates.
    pub async fn quote(&self, req: &ShipmentRequest) -> Result<Quote, Error> {
        match self {
            LabelProvider::Easypost(c) => c.create_shipment(req).await,
            LabelProvider::Shippo(c) => c.create_shipment(req).await,
            LabelProvider::Tiktok { .. } => Err(tiktok_has_no(req.reference.as_str())),
        }
    }

    /// The shipment of a purchase that may have reached the provider:
    /// by its recorded ids when known, else by `reference` (created at or
    /// after `since_ms`), with its label if one was bought.
    pub async fn find(
        &self,
        started: &Started<'_>,
        format: LabelFormat,
    ) -> Result<Option<Quote>, Error> {
        match self {
            LabelProvider::Easypost(c) => {
                c.find(
                    started.shipment_id.unwrap_or(started.reference),
                    started.reference,
                    format,
                )
                .await
            }
            LabelProvider::Shippo(c) => c.find(started).await,
            LabelProvider::Tiktok { .. } => Ok(None),
        }
    }

    /// Buys a rate of a shipment.
    pub async fn buy(
        &self,
        quote: &Quote,
        rate: &Rate,
        format: LabelFormat,
    ) -> Result<Bought, Error> {
        match self {
            LabelProvider::Easypost(c) => c.buy(&quote.shipment_id, &rate.id, format).await,
            LabelProvider::Shippo(c) => c.buy(quote, rate, format).await,
            LabelProvider::Tiktok { .. } => Err(tiktok_has_no(&quote.shipment_id)),
        }
    }

    /// Voids (refunds) a label that has not shipped.
    pub async fn refund(&self, label: &Label) -> Result<Refund, Error> {
        match self {
            LabelProvider::Easypost(c) => c.refund(&label.shipment_id).await,
            LabelProvider::Shippo(c) => c.refund(&label.label_id).await,
            LabelProvider::Tiktok { .. } => Err(Error::Unsupported(format!(
                "TikTok shipping labels cannot be voided through the API (package {}); cancel the order instead",
                label.label_id
            ))),
        }
    }

    /// Downloads a document the provider links to.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, Error> {
        match self {
            LabelProvider::Easypost(c) => c.download(url).await,
            LabelProvider::Shippo(c) => c.download(url).await,
            LabelProvider::Tiktok { .. } => Err(tiktok_has_no(url)),
        }
    }
}

fn tiktok_has_no(what: &str) -> Error {
    Error::Unsupported(format!(
        "TikTok Shipping has no shipments or rates ({what}); it ships the package itself"
    ))
}

/// The recipient of an order as a label address.
pub fn recipient(order: &Order) -> Result<LabelAddress, Error> {
    let a = order.recipient.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "order {} has no recipient address (UNPAID, ON_HOLD or redacted)",
            order.id
        ))
    })?;
    let d = &a.districts;
    Ok(LabelAddress {
        name: a.name.clone(),
        street1: if a.address_line1.is_empty() {
            a.full_address.clone()
        } else {
            a.address_line1.clone()
        },
        street2: a.address_line2.clone(),
        // districts run outermost first: country, state, (county,) city.
        city: d.last().cloned().unwrap_or_default(),
        state: d.get(1).cloned().unwrap_or_default(),
        postal_code: a.postal_code.clone(),
        country: a.region_code.clone(),
        phone: a.phone_number.clone(),
        email: order.buyer_email.clone(),
        company: String::new(),
    })
}

/// Picks the rate: of `carrier` (any case; `*` for any), of `service` when
/// given, by `choice`. `now`/`deliver_by` are Unix seconds.
pub fn choose<'a>(
    rates: &'a [Rate],
    carrier: &str,
    service: Option<&str>,
    choice: RateChoice,
    now: i64,
    deliver_by: Option<i64>,
) -> Option<&'a Rate> {
    let fits = |r: &&Rate| {
        (carrier == "*" || r.carrier.eq_ignore_ascii_case(carrier))
            && service.is_none_or(|s| r.service.eq_ignore_ascii_case(s))
    };
    let price = |r: &Rate| r.amount.map_or(i64::MAX, |m| m.0);
    let days = |r: &Rate| r.delivery_days.unwrap_or(u32::MAX);
    let cheapest = |it: &mut dyn Iterator<Item = &'a Rate>| {
        it.min_by_key(|r| (price(r), days(r), r.id.clone()))
    };
    let fastest = |it: &mut dyn Iterator<Item = &'a Rate>| {
        it.min_by_key(|r| (days(r), price(r), r.id.clone()))
    };
    match choice {
        RateChoice::Cheapest => cheapest(&mut rates.iter().filter(fits)),
        RateChoice::Fastest => fastest(&mut rates.iter().filter(fits)),
        RateChoice::CheapestOnTime => {
            let on_time = |r: &&Rate| match (deliver_by, r.delivery_days) {
                (Some(by), Some(d)) => now + i64::from(d) * 86_400 <= by,
                // No deadline: every rate is on time; no estimate: not known
                // to be.
                (None, _) => true,
                (Some(_), None) => false,
            };
            cheapest(&mut rates.iter().filter(fits).filter(on_time))
                .or_else(|| fastest(&mut rates.iter().filter(fits)))
        }
    }
}

/// The providers as configured, for a step's or a rule's `provider`.
#[derive(Debug, Clone)]
pub struct Providers {
    pub default: ProviderKind,
    easypost: Result<LabelProvider, String>,
    shippo: Result<LabelProvider, String>,
    tiktok: Option<LabelProvider>,
    pub format: LabelFormat,
    pub choice: RateChoice,
    pub ship_from: LabelAddress,
    /// Carrier → TikTok's shipping provider id (`[shipping.provider_ids]`).
    pub provider_ids: std::collections::BTreeMap<String, String>,
}

impl Providers {
    /// TikTok Shipping is available only with a gateway. A provider whose
    /// API key is empty is unavailable (a purchase through it is refused
    /// before any call, with why).
    pub fn new(cfg: &ShippingConfig, gateway: Option<GatewayHandle>) -> Result<Providers, Error> {
        let timeout: Duration = cfg.provider_timeout;
        let ep = &cfg.providers.easypost;
        let sh = &cfg.providers.shippo;
        Ok(Providers {
            default: cfg.provider,
            easypost: if ep.api_key.is_empty() {
                Err("[shipping.providers.easypost] api_key is not set".into())
            } else {
                Ok(LabelProvider::Easypost(easypost::Client::new(
                    ep.url(easypost::BASE_URL),
                    ep.api_key.clone(),
                    timeout,
                    cfg.provider_concurrency,
                )?))
            },
            shippo: if sh.api_key.is_empty() {
                Err("[shipping.providers.shippo] api_key is not set".into())
            } else {
                Ok(LabelProvider::Shippo(shippo::Client::new(
                    sh.url(shippo::BASE_URL),
                    sh.api_key.clone(),
                    timeout,
                    cfg.provider_concurrency,
                )?))
            },
            tiktok: gateway.map(|gateway| LabelProvider::Tiktok { gateway }),
            format: cfg.label_format,
            choice: cfg.rate_choice,
            ship_from: cfg.ship_from.clone(),
            provider_ids: cfg.provider_ids.clone(),
        })
    }

    /// A provider by kind.
    pub fn get(&self, kind: ProviderKind) -> Result<&LabelProvider, Error> {
        match kind {
            ProviderKind::Easypost => self
                .easypost
                .as_ref()
                .map_err(|e| Error::Unsupported(e.clone())),
            ProviderKind::Shippo => self
                .shippo
                .as_ref()
                .map_err(|e| Error::Unsupported(e.clone())),
            ProviderKind::Tiktok => self.tiktok.as_ref().ok_or_else(|| {
                Error::Unsupported(
                    "TikTok shipping needs the TikTok gateway, which is not configured".into(),
                )
            }),
        }
    }

    /// The provider a step names (None: the configured default).
    pub fn named(&self, name: Option<&str>) -> Result<ProviderKind, Error> {
        match name {
            None => Ok(self.default),
            Some(n) => ProviderKind::parse(n).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown label provider {n:?} (easypost, shippo or tiktok)"
                ))
            }),
        }
    }
}

/// The kind of an HTTP status a label provider answered with.
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 | 410 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        400 | 422 => ErrorKind::Invalid,
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(id: &str, carrier: &str, service: &str, cents: i64, days: Option<u32>) -> Rate {
        Rate {
            id: id.into(),
            carrier: carrier.into(),
            service: service.into(),
            amount: Some(Money(cents)),
            currency: "USD".into(),
            delivery_days: days,
        }
    }

    #[test]
    fn rate_shopping_by_rule() {
        let rates = [
            rate("a", "USPS", "GroundAdvantage", 500, Some(5)),
            rate("b", "USPS", "Priority", 800, Some(2)),
            rate("c", "UPS", "Ground", 450, Some(6)),
            rate("d", "USPS", "Express", 2500, Some(1)),
        ];
        let id = |r: Option<&Rate>| r.map(|r| r.id.clone());
        assert_eq!(
            id(choose(&rates, "usps", None, RateChoice::Cheapest, 0, None)),
            Some("a".into())
        );
        assert_eq!(
            id(choose(&rates, "*", None, RateChoice::Cheapest, 0, None)),
            Some("c".into())
        );
        assert_eq!(
            id(choose(&rates, "USPS", None, RateChoice::Fastest, 0, None)),
            Some("d".into())
        );
        assert_eq!(
            id(choose(
                &rates,
                "USPS",
                Some("priority"),
                RateChoice::Fastest,
                0,
                None
            )),
            Some("b".into())
        );
        // Three days to the deadline: the 5-day rate is late, Priority is not.
        let by = Some(3 * 86_400);
        assert_eq!(
            id(choose(
                &rates,
                "USPS",
                None,
                RateChoice::CheapestOnTime,
                0,
                by
            )),
            Some("b".into())
        );
        // Nothing on time: the fastest.
        assert_eq!(
            id(choose(
                &rates,
                "USPS",
                None,
                RateChoice::CheapestOnTime,
                0,
                Some(3600)
            )),
            Some("d".into())
        );
        assert_eq!(
            id(choose(&rates, "FedEx", None, RateChoice::Cheapest, 0, None)),
            None
        );
    }

    #[test]
    fn provider_names() {
        for k in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ProviderKind::parse("label_api"), None);
    }
}
