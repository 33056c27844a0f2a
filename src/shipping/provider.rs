//! Label providers behind one interface.
//!
//! An enum rather than a trait object: there are two providers, both known
//! here, and an enum keeps `async fn` without boxing.
//!
//! - [`LabelProvider::LabelApi`]: create a shipment from the order's
//!   recipient and the configured return address, pick the rate of the
//!   selected carrier (and service, else its cheapest), buy it with the
//!   caller's idempotency key. `void_label` voids it.
//! - [`LabelProvider::Tiktok`]: TikTok shipping. Ship Package
//!   (`handover_method: PICKUP`) through the gateway at write priority,
//!   ranked by the order's ship-by deadline; "already shipped" counts as
//!   success, which makes a replay harmless. Neither the gateway nor the
//!   simulator implements TikTok's shipping-document endpoint, so the
//!   tracking number and provider come from Order Detail after the ship,
//!   and `label_url` is None: the seller prints TikTok's label from Seller
//!   Center. The label id is the package id. TikTok labels cannot be voided
//!   through the API (cancel the order instead): `void_label` says so.

use serde::{Deserialize, Serialize};

use super::labels::{CreateShipment, LabelAddress, LabelApiClient, Parcel};
use super::{Error, ErrorKind, ProviderKind, Selection, ShippingConfig, LABELS_TOTAL, VOIDS_TOTAL};
use crate::order::{Money, Order};
use crate::tiktok::dto::ShipPackageRequest;
use crate::tiktok::gateway::Class;
use crate::tiktok::{GatewayHandle, Priority};

/// What to buy a label for.
#[derive(Debug, Clone, Copy)]
pub struct LabelRequest<'a> {
    pub order: &'a Order,
    pub selection: &'a Selection,
    /// Derived by the caller from (order, step); the same key never buys
    /// twice.
    pub idempotency_key: &'a str,
    pub weight_grams: u32,
}

/// A bought label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// `label_api` or `tiktok`.
    pub provider: String,
    pub label_id: String,
    pub tracking_number: String,
    pub label_url: Option<String>,
    pub carrier: String,
    pub service: Option<String>,
    /// TikTok's id for the carrier, when known (selection or TikTok).
    pub shipping_provider_id: Option<String>,
    /// What the label cost, when the provider says.
    pub cost: Option<Money>,
}

/// The providers.
#[derive(Debug, Clone)]
pub enum LabelProvider {
    LabelApi {
        client: LabelApiClient,
        ship_from: Box<LabelAddress>,
    },
    Tiktok {
        gateway: GatewayHandle,
    },
}

fn outcome(r: &Result<impl Sized, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

impl LabelProvider {
    /// The label API provider from the configuration.
    pub fn label_api(cfg: &ShippingConfig) -> Result<LabelProvider, Error> {
        Ok(LabelProvider::LabelApi {
            client: LabelApiClient::new(
                &cfg.label_api_url,
                cfg.label_api_key.clone(),
                cfg.label_api_timeout,
            )?,
            ship_from: Box::new(cfg.ship_from.clone()),
        })
    }

    pub fn tiktok(gateway: GatewayHandle) -> LabelProvider {
        LabelProvider::Tiktok { gateway }
    }

    pub fn name(&self) -> &'static str {
        match self {
            LabelProvider::LabelApi { .. } => "label_api",
            LabelProvider::Tiktok { .. } => "tiktok",
        }
    }

    /// Buys (or, on a replay, finds) the order's label.
    pub async fn buy_label(&self, req: &LabelRequest<'_>) -> Result<Label, Error> {
        let r = match self {
            LabelProvider::LabelApi { client, ship_from } => {
                buy_via_api(client, ship_from, req).await
            }
            LabelProvider::Tiktok { gateway } => ship_via_tiktok(gateway, req).await,
        };
        metrics::counter!(LABELS_TOTAL, "provider" => self.name(), "outcome" => outcome(&r))
            .increment(1);
        match &r {
            Ok(l) => {
                tracing::info!(order_id = %req.order.id, provider = self.name(), label_id = %l.label_id, tracking_number = %l.tracking_number, "Label bought")
            }
            Err(e) => {
                tracing::warn!(order_id = %req.order.id, provider = self.name(), kind = %e.kind(), error = %e, "Label purchase failed")
            }
        }
        r
    }

    /// Voids a label. `Ok(true)` when voided (also when it already was).
    pub async fn void_label(&self, label_id: &str) -> Result<bool, Error> {
        let r = match self {
            LabelProvider::LabelApi { client, .. } => {
                client.void(label_id).await.map(|l| l.status == "voided")
            }
            LabelProvider::Tiktok { .. } => Err(Error::Unsupported(format!(
                "TikTok shipping labels cannot be voided through the API (package {label_id}); cancel the order instead"
            ))),
        };
        metrics::counter!(VOIDS_TOTAL, "outcome" => outcome(&r)).increment(1);
        r
    }
}

fn recipient(order: &Order) -> Result<LabelAddress, Error> {
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
    })
}

async fn buy_via_api(
    client: &LabelApiClient,
    ship_from: &LabelAddress,
    req: &LabelRequest<'_>,
) -> Result<Label, Error> {
    let sel = req.selection;
    let shipment = client
        .create_shipment(
            &CreateShipment {
                reference: Some(req.order.id.clone()),
                from: ship_from.clone(),
                to: recipient(req.order)?,
                parcel: Parcel {
                    weight_grams: req.weight_grams.max(1),
                },
            },
            Some(&format!("{}/shipment", req.idempotency_key)),
        )
        .await?;
    let carrier_rates = shipment
        .rates
        .iter()
        .filter(|r| r.carrier.eq_ignore_ascii_case(&sel.carrier));
    let cheapest = |it: &mut dyn Iterator<Item = &super::labels::Rate>| {
        it.min_by_key(|r| Money::parse(&r.amount).unwrap_or(Money(i64::MAX)))
            .cloned()
    };
    let rate = match &sel.service {
        Some(s) => cheapest(&mut carrier_rates.filter(|r| r.service.eq_ignore_ascii_case(s))),
        None => cheapest(&mut carrier_rates.into_iter()),
    };
    let Some(rate) = rate else {
        return Err(Error::NoRate {
            carrier: sel.carrier.clone(),
            service: sel.service.clone(),
            offered: shipment
                .rates
                .iter()
                .map(|r| format!("{} {}", r.carrier, r.service))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let label = client
        .buy(&shipment.id, &rate.id, req.idempotency_key)
        .await?;
    Ok(Label {
        provider: "label_api".into(),
        label_id: label.id,
        tracking_number: label.tracking_number,
        label_url: Some(label.label_url),
        carrier: label.carrier,
        service: Some(label.service),
        shipping_provider_id: sel.shipping_provider_id.clone(),
        cost: Money::parse(&label.amount),
    })
}

async fn ship_via_tiktok(gateway: &GatewayHandle, req: &LabelRequest<'_>) -> Result<Label, Error> {
    let order = req.order;
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
            op: "tiktok_tracking",
            kind: ErrorKind::Transient,
            status: None,
            message: format!(
                "order {} is shipped but TikTok has no tracking number yet",
                order.id
            ),
        })?;
    Ok(Label {
        provider: "tiktok".into(),
        label_id: package.clone(),
        tracking_number: tracking,
        label_url: None,
        carrier: req.selection.carrier.clone(),
        service: req.selection.service.clone(),
        shipping_provider_id: detail
            .shipping_provider_id
            .or_else(|| req.selection.shipping_provider_id.clone()),
        cost: None,
    })
}

/// Both providers as configured, for the `shipping.buy_label` action's
/// `provider` argument (`label_api`, `tiktok`, or none: the configured
/// default).
#[derive(Debug, Clone)]
pub struct Providers {
    default: ProviderKind,
    label_api: LabelProvider,
    tiktok: Option<LabelProvider>,
}

impl Providers {
    /// TikTok shipping is available only with a gateway.
    pub fn new(cfg: &ShippingConfig, gateway: Option<GatewayHandle>) -> Result<Providers, Error> {
        Ok(Providers {
            default: cfg.provider,
            label_api: LabelProvider::label_api(cfg)?,
            tiktok: gateway.map(LabelProvider::tiktok),
        })
    }

    /// The provider a step names (None: the configured default).
    pub fn get(&self, name: Option<&str>) -> Result<&LabelProvider, Error> {
        let kind = match name {
            None => self.default,
            Some("label_api") => ProviderKind::LabelApi,
            Some("tiktok") => ProviderKind::Tiktok,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "unknown label provider {other:?} (label_api or tiktok)"
                )))
            }
        };
        match kind {
            ProviderKind::LabelApi => Ok(&self.label_api),
            ProviderKind::Tiktok => self.tiktok.as_ref().ok_or_else(|| {
                Error::Unsupported(
                    "TikTok shipping needs the TikTok gateway, which is not configured".into(),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_by_name() {
        let p = Providers::new(&ShippingConfig::default(), None).unwrap();
        assert_eq!(p.get(None).unwrap().name(), "label_api");
        assert_eq!(p.get(Some("label_api")).unwrap().name(), "label_api");
        assert_eq!(
            p.get(Some("tiktok")).unwrap_err().kind(),
            ErrorKind::Rejected
        );
        assert_eq!(p.get(Some("ups")).unwrap_err().kind(), ErrorKind::Invalid);
    }
}
