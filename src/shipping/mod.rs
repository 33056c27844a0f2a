//! Shipping: which carrier takes an order, and getting it a label.
//!
//! - [`carrier`]: carrier selection. Rules from the workflow
//!   (`[{when: CEL, carrier, service}]`) and from the configuration
//!   (destination region, parcel weight, order value, ship-by deadline),
//!   first match wins, else the default carrier.
//! - [`provider`]: the label providers behind one enum: TikTok shipping
//!   through the gateway, or a label API modelled on EasyPost/Shippo.
//! - [`labels`]: the label API's wire types and its HTTP client (shared with
//!   the simulator in `crate::simulator::labels`).
//! - [`tiktok_providers`]: the carrier → TikTok provider id mapping checked
//!   against what TikTok offers, at start and before every label.
//!
//! Failures map onto the error kinds workflows branch on
//! ([`crate::actions::ErrorKind`]): [`Error::kind`].
//!
//! Buying a label costs money, so every purchase carries an idempotency key
//! the caller derives from (order, step): a replay after a crash or a retry
//! after a timeout returns the label already bought instead of buying a
//! second one.

pub mod carrier;
pub mod labels;
pub mod provider;
pub mod tiktok_providers;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::actions::ErrorKind;
pub use carrier::{select_carrier, CarrierRouter, CarrierRule, Selection};
pub use labels::{LabelAddress, LabelApiClient};
pub use provider::{Label, LabelProvider, LabelRequest, Providers};

use crate::tiktok::Secret;

/// Counter, labels `provider` (`label_api`, `tiktok`) and `outcome` (`ok`
/// or an error kind): label purchases.
pub const LABELS_TOTAL: &str = "orderflow_shipping_labels_total";
/// Counter, label `outcome` (`ok` or an error kind): label voids.
pub const VOIDS_TOTAL: &str = "orderflow_shipping_voids_total";
/// Counter, label `carrier`: carrier selections.
pub const SELECTIONS_TOTAL: &str = "orderflow_shipping_selections_total";

/// Registers the metric descriptions. Idempotent.
pub fn describe_metrics() {
    use metrics::{describe_counter, Unit};
    describe_counter!(
        LABELS_TOTAL,
        Unit::Count,
        "Shipping label purchases by provider and outcome"
    );
    describe_counter!(VOIDS_TOTAL, Unit::Count, "Shipping label voids by outcome");
    describe_counter!(
        SELECTIONS_TOTAL,
        Unit::Count,
        "Carrier selections by chosen carrier"
    );
}

/// Errors of shipping.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule does not compile or has an impossible condition.
    #[error("carrier rule {index}: {message}")]
    Rule { index: usize, message: String },
    /// A rule's `when` failed at evaluation time (e.g. a missing field).
    #[error("carrier rule {index} `{source_text}`: {message}")]
    Expression {
        index: usize,
        source_text: String,
        message: String,
    },
    /// The label API failed; `kind` says whether a retry can help.
    #[error("label API {op} failed ({kind}{}): {message}", .status.map(|s| format!(", HTTP {s}")).unwrap_or_default())]
    Provider {
        op: &'static str,
        kind: ErrorKind,
        status: Option<u16>,
        message: String,
    },
    #[error("no {carrier} rate{} among the offered: {offered}", .service.as_ref().map(|s| format!(" for service {s}")).unwrap_or_default())]
    NoRate {
        carrier: String,
        service: Option<String>,
        offered: String,
    },
    #[error("TikTok: {0}")]
    Tiktok(#[from] crate::tiktok::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("invalid [shipping] configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
}

impl Error {
    /// The workflow error kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Rule { .. } | Error::Invalid(_) | Error::InvalidConfig(_) => ErrorKind::Invalid,
            Error::Expression { .. } => ErrorKind::Invalid,
            Error::Provider { kind, .. } => *kind,
            Error::NoRate { .. } | Error::Unsupported(_) => ErrorKind::Rejected,
            Error::Tiktok(e) => ErrorKind::from_tiktok(e),
        }
    }
}

/// Which provider buys labels when a step does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The label API at `label_api_url`.
    #[default]
    LabelApi,
    /// TikTok shipping: Ship Package through the gateway.
    Tiktok,
}

/// The `[shipping]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingConfig {
    /// Carrier when no rule matches.
    pub default_carrier: String,
    /// Service of the default carrier (None: the cheapest it offers).
    pub default_service: Option<String>,
    /// Rules tried after a workflow's own, first match wins.
    pub rules: Vec<CarrierRule>,
    /// Carrier name → TikTok `shipping_provider_id` (for Mark As Shipped).
    pub provider_ids: BTreeMap<String, String>,
    /// Weight of one unit per SKU, grams.
    pub sku_weights_grams: BTreeMap<String, u32>,
    /// Weight of one unit of a SKU not in `sku_weights_grams`.
    pub default_item_weight_grams: u32,
    /// Default label provider.
    pub provider: ProviderKind,
    /// Base URL of the label API, up to and including its version
    /// (`…/labels/v1`).
    pub label_api_url: String,
    /// Bearer token of the label API (redacted in logs and dumps).
    pub label_api_key: Secret,
    /// Timeout of one label API request.
    #[serde(with = "crate::config::human")]
    pub label_api_timeout: Duration,
    /// The return address printed on labels.
    pub ship_from: LabelAddress,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        ShippingConfig {
            default_carrier: "USPS".into(),
            default_service: None,
            rules: Vec::new(),
            provider_ids: BTreeMap::new(),
            sku_weights_grams: BTreeMap::new(),
            default_item_weight_grams: 500,
            provider: ProviderKind::LabelApi,
            label_api_url: "http://127.0.0.1:8787/labels/v1".into(),
            label_api_key: Secret::default(),
            label_api_timeout: Duration::from_secs(10),
            ship_from: LabelAddress::default(),
        }
    }
}

impl ShippingConfig {
    /// Every problem at once; never quotes the API key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.default_carrier.trim().is_empty() {
            p.push("shipping.default_carrier: must not be empty".into());
        }
        match reqwest::Url::parse(&self.label_api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => p.push(format!(
                "shipping.label_api_url: {:?} is not an http(s) URL",
                self.label_api_url
            )),
        }
        if self.label_api_timeout.is_zero() {
            p.push("shipping.label_api_timeout: must be positive".into());
        }
        if self.default_item_weight_grams == 0 {
            p.push("shipping.default_item_weight_grams: must be positive".into());
        }
        if let Err(e) = CarrierRouter::new(self) {
            match e {
                Error::InvalidConfig(v) => p.extend(v),
                other => p.push(format!("shipping.rules: {other}")),
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_valid_and_the_key_is_redacted() {
        assert!(ShippingConfig::default().validate().is_empty());
        let cfg: ShippingConfig = toml::from_str(
            "label_api_key = \"sk_live_topsecret\"\nprovider = \"tiktok\"\nlabel_api_timeout = \"3s\"",
        )
        .unwrap();
        assert_eq!(cfg.provider, ProviderKind::Tiktok);
        assert_eq!(cfg.label_api_timeout, Duration::from_secs(3));
        assert_eq!(cfg.label_api_key.expose(), "sk_live_topsecret");
        let dumped = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        assert!(!dumped.contains("topsecret"), "{dumped}");
        let client = LabelApiClient::new(
            &cfg.label_api_url,
            cfg.label_api_key.clone(),
            cfg.label_api_timeout,
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("topsecret"));
        assert!(toml::from_str::<ShippingConfig>("carrier = \"x\"").is_err());
        let bad = ShippingConfig {
            default_carrier: " ".into(),
            label_api_url: "ftp://x".into(),
            label_api_timeout: Duration::ZERO,
            default_item_weight_grams: 0,
            ..ShippingConfig::default()
        };
        assert_eq!(bad.validate().len(), 4, "{:?}", bad.validate());
    }

    #[test]
    fn http_statuses_map_to_kinds() {
        for (s, k) in [
            (400, ErrorKind::Invalid),
            (401, ErrorKind::Rejected),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Timeout),
            (409, ErrorKind::Rejected),
            (422, ErrorKind::Invalid),
            (429, ErrorKind::RateLimited),
            (502, ErrorKind::Transient),
        ] {
            assert_eq!(labels::status_kind(s), k, "{s}");
        }
    }
}
