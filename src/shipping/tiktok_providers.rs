//! The carrier → TikTok shipping provider mapping (`[shipping.provider_ids]`)
//! checked against what TikTok itself offers, so a wrong id is found before
//! a label is paid for, never after.
//!
//! TikTok names the providers a package may ship with per delivery option
//! (Get Shipping Providers, `GET /logistics/202309/delivery_options/{id}/
//! shipping_providers`); a shop's delivery options come from its warehouses
//! (Get Warehouse List, Get Warehouse Delivery Options).
//! - At start, [`check_mapping`] reads every sales warehouse's delivery
//!   options and their providers, and reports each configured carrier whose
//!   id no option offers: an error log, `orderflow_shipping_provider_unoffered
//!   {carrier}` = 1, and the `ShippingProviderNotOffered` alert.
//! - Before a label is bought, [`offered_for`] checks the chosen id against
//!   the order's own delivery option (cached an hour by the gateway).

use std::collections::{BTreeMap, BTreeSet};

use crate::tiktok::{codes, Error as TiktokError, GatewayHandle};

/// Gauge, label `carrier`: 1 while no delivery option of any shop offers
/// the carrier's configured TikTok provider id, else 0.
pub const PROVIDER_UNOFFERED: &str = "orderflow_shipping_provider_unoffered";

/// One configured carrier and whether TikTok offers its provider id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub carrier: String,
    pub provider_id: String,
    pub offered: bool,
}

/// Reads what TikTok offers for `shops` and compares `provider_ids` with
/// it. An error means TikTok could not be read; nothing is concluded then.
pub async fn check_mapping(
    gateway: &GatewayHandle,
    shops: &[String],
    provider_ids: &BTreeMap<String, String>,
) -> Result<Vec<Finding>, TiktokError> {
    metrics::describe_gauge!(
        PROVIDER_UNOFFERED,
        "1 while TikTok offers the carrier's configured shipping provider id ([shipping.provider_ids]) for no delivery option of any shop; labels for it are refused before purchase"
    );
    let mut offered: BTreeSet<String> = BTreeSet::new();
    for shop in shops {
        for w in gateway.warehouses(shop).await? {
            if w.kind != "SALES_WAREHOUSE" || w.effect_status == "DISABLED" {
                continue;
            }
            for option in gateway.delivery_options(shop, &w.id).await? {
                match gateway.providers_for(shop, &option.id).await {
                    Ok(p) => offered.extend(p.into_iter().map(|p| p.id)),
                    // Options TikTok ships, or the shop has not subscribed
                    // to, offer no seller provider.
                    Err(TiktokError::Api { code, .. })
                        if code == codes::DELIVERY_BY_TIKTOK
                            || code == codes::DELIVERY_OPTION_NOT_SUBSCRIBED =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let findings: Vec<Finding> = provider_ids
        .iter()
        .map(|(carrier, id)| Finding {
            carrier: carrier.clone(),
            provider_id: id.clone(),
            offered: offered.contains(id),
        })
        .collect();
    for f in &findings {
        metrics::gauge!(PROVIDER_UNOFFERED, "carrier" => f.carrier.clone()).set(if f.offered {
            0.0
        } else {
            1.0
        });
        if !f.offered {
            tracing::error!(
                carrier = %f.carrier,
                provider_id = %f.provider_id,
                offered = ?offered,
                "[shipping.provider_ids] maps this carrier to a TikTok shipping provider id that no delivery option of the configured shops offers; labels for it will be refused before purchase until the mapping is fixed"
            );
        }
    }
    Ok(findings)
}

/// Why a label may not be bought for this order's delivery option.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "carrier {carrier} has no TikTok shipping provider id; add it to [shipping.provider_ids]"
    )]
    Unmapped { carrier: String },
    #[error("TikTok does not take provider {provider_id} ({carrier}) for delivery option {delivery_option_id}; it takes {offered}")]
    NotOffered {
        carrier: String,
        provider_id: String,
        delivery_option_id: String,
        offered: String,
    },
    #[error("delivery option {0} is shipped by TikTok: no seller label can be used for it")]
    ShippedByTiktok(String),
    #[error(transparent)]
    Tiktok(#[from] TiktokError),
}

/// Checks, before any purchase, that TikTok takes `provider_id` for the
/// order's delivery option.
pub async fn offered_for(
    gateway: &GatewayHandle,
    shop_id: &str,
    delivery_option_id: &str,
    carrier: &str,
    provider_id: Option<&str>,
) -> Result<(), Error> {
    let Some(provider_id) = provider_id.filter(|p| !p.is_empty()) else {
        return Err(Error::Unmapped {
            carrier: carrier.to_string(),
        });
    };
    let providers = match gateway.providers_for(shop_id, delivery_option_id).await {
        Ok(p) => p,
        Err(TiktokError::Api { code, .. }) if code == codes::DELIVERY_BY_TIKTOK => {
            return Err(Error::ShippedByTiktok(delivery_option_id.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    if providers.iter().any(|p| p.id == provider_id) {
        return Ok(());
    }
    Err(Error::NotOffered {
        carrier: carrier.to_string(),
        provider_id: provider_id.to_string(),
        delivery_option_id: delivery_option_id.to_string(),
        offered: providers
            .iter()
            .map(|p| format!("{} ({})", p.id, p.name))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

impl Error {
    /// The workflow error kind: a mapping TikTok refuses is `invalid` (no
    /// retry fixes it); reading TikTok keeps the gateway's kinds.
    pub fn kind(&self) -> super::ErrorKind {
        match self {
            Error::Tiktok(e) => super::ErrorKind::from_tiktok(e),
            _ => super::ErrorKind::Invalid,
        }
    }
}
