//! Shipping: which carrier takes an order, getting it exactly one label,
//! printing it, and following the parcel.
//!
//! - [`carrier`]: carrier selection. Rules from the workflow
//!   (`[{when: CEL, carrier, service}]`) and from the configuration
//!   (destination region, parcel weight, order value, ship-by deadline),
//!   first match wins, else the default carrier; a rule may also name the
//!   provider and how the rate is chosen.
//! - [`provider`]: the label providers behind one enum (EasyPost, Shippo,
//!   TikTok Shipping) and rate shopping ([`provider::RateChoice`]).
//! - [`easypost`], [`shippo`]: each provider's documented wire format and
//!   HTTP client (shared with the simulators in `crate::simulator::carriers`),
//!   both on [`rest`] (authentication, error mapping, downloads).
//! - [`book`] and [`purchase`]: one label per order whatever crashes,
//!   timeouts and operator actions happen (neither provider takes an
//!   idempotency key, so the purchase is a protocol: record, look up by the
//!   order's reference, reuse), the label's document on disk.
//! - [`documents`]: the day's labels merged into one PDF to print.
//! - [`tracking`]: the providers' tracking webhooks (verified as each
//!   documents) and a poll for parcels still travelling, as `scan` events.
//! - [`tiktok_providers`]: the carrier → TikTok provider id mapping checked
//!   against what TikTok offers, at start and before every purchase.
//!
//! Failures map onto the error kinds workflows branch on
//! ([`crate::actions::ErrorKind`]): [`Error::kind`].

pub mod book;
pub mod carrier;
pub mod documents;
pub mod easypost;
pub mod provider;
pub mod purchase;
pub mod rest;
pub mod shippo;
pub mod tiktok_providers;
pub mod tracking;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::actions::ErrorKind;
pub use book::LabelBook;
pub use carrier::{select_carrier, CarrierRouter, CarrierRule, Selection};
pub use provider::{
    Label, LabelAddress, LabelFormat, LabelProvider, ProviderKind, Providers, RateChoice,
};

use crate::tiktok::Secret;

/// Counter, labels `provider` (`easypost`, `shippo`, `tiktok`) and
/// `outcome` (`ok`, `reused` or an error kind): label purchases.
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
    #[error("{provider} {op} failed ({kind}{}): {message}", .status.map(|s| format!(", HTTP {s}")).unwrap_or_default())]
    Provider {
        provider: ProviderKind,
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
    /// TikTok would not take the chosen carrier for this order: found
    /// before any purchase.
    #[error(transparent)]
    Mapping(#[from] tiktok_providers::Error),
    #[error("label record: {0}")]
    Store(crate::store::Error),
    #[error("documents: {0}")]
    Io(std::io::Error),
    /// A tracking update could not be given to its order.
    #[error("intake: {0}")]
    Intake(crate::runtime::Error),
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
            Error::Mapping(e) => e.kind(),
            Error::Store(_) | Error::Io(_) | Error::Intake(_) => ErrorKind::Transient,
        }
    }
}

/// One label provider's section (`[shipping.providers.easypost]`,
/// `[shipping.providers.shippo]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The API key (EasyPost: HTTP basic auth's user name; Shippo:
    /// `Authorization: ShippoToken <key>`). Empty: the provider is off.
    pub api_key: Secret,
    /// The secret the provider's tracking webhooks are authenticated with
    /// (EasyPost: the HMAC key of `X-Hmac-Signature`; Shippo: the token
    /// in the webhook URL's query). Empty: tracking webhooks are refused.
    pub webhook_secret: Secret,
    /// The API's base URL, up to and including its version (empty: the
    /// provider's production API).
    pub base_url: String,
}

impl ProviderConfig {
    /// `base_url`, else `official`.
    pub fn url<'a>(&'a self, official: &'a str) -> &'a str {
        if self.base_url.trim().is_empty() {
            official
        } else {
            &self.base_url
        }
    }
}

/// `[shipping.providers]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub easypost: ProviderConfig,
    pub shippo: ProviderConfig,
}

/// The `[shipping]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingConfig {
    /// Carrier when no rule matches.
    pub default_carrier: String,
    /// Service of the default carrier (None: chosen by `rate_choice`).
    pub default_service: Option<String>,
    /// Rules tried after a workflow's own, first match wins.
    pub rules: Vec<CarrierRule>,
    /// Carrier name → TikTok `shipping_provider_id` (for Mark As Shipped).
    pub provider_ids: BTreeMap<String, String>,
    /// Weight of one unit per SKU, grams.
    pub sku_weights_grams: BTreeMap<String, u32>,
    /// Weight of one unit of a SKU not in `sku_weights_grams`.
    pub default_item_weight_grams: u32,
    /// Label provider when neither the step nor the rule names one.
    pub provider: ProviderKind,
    /// How a rate is chosen when a rule does not say.
    pub rate_choice: RateChoice,
    /// The label document's format: `pdf`, `png` or `zpl`.
    pub label_format: LabelFormat,
    /// Timeout of one request to a label provider.
    #[serde(with = "crate::config::human")]
    pub provider_timeout: Duration,
    /// Requests to each label provider in flight at once; more wait their
    /// turn (a burst after a restart queues instead of timing out).
    pub provider_concurrency: usize,
    /// How often parcels still travelling are read from their provider
    /// (the fallback for lost tracking webhooks).
    #[serde(with = "crate::config::human")]
    pub tracking_poll_interval: Duration,
    /// The return address printed on labels.
    pub ship_from: LabelAddress,
    pub providers: ProvidersConfig,
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
            provider: ProviderKind::Easypost,
            rate_choice: RateChoice::Cheapest,
            label_format: LabelFormat::Pdf,
            provider_timeout: Duration::from_secs(10),
            provider_concurrency: 16,
            tracking_poll_interval: Duration::from_secs(30 * 60),
            ship_from: LabelAddress::default(),
            providers: ProvidersConfig::default(),
        }
    }
}

impl ShippingConfig {
    /// Every problem at once; never quotes a key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.default_carrier.trim().is_empty() {
            p.push("shipping.default_carrier: must not be empty".into());
        }
        for (name, url) in [
            ("easypost", self.providers.easypost.url(easypost::BASE_URL)),
            ("shippo", self.providers.shippo.url(shippo::BASE_URL)),
        ] {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => p.push(format!(
                    "shipping.providers.{name}.base_url: {url:?} is not an http(s) URL"
                )),
            }
        }
        if self.provider_timeout.is_zero() {
            p.push("shipping.provider_timeout: must be positive".into());
        }
        if self.provider_concurrency == 0 {
            p.push("shipping.provider_concurrency: must be positive".into());
        }
        if self.tracking_poll_interval.is_zero() {
            p.push("shipping.tracking_poll_interval: must be positive".into());
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
    fn config_defaults_are_valid_and_the_keys_are_redacted() {
        assert!(ShippingConfig::default().validate().is_empty());
        let cfg: ShippingConfig = toml::from_str(
            "provider = \"shippo\"\nprovider_timeout = \"3s\"\n[providers.easypost]\napi_key = \"EZAK_topsecret\"\nwebhook_secret = \"whsec_hidden\"\n[providers.shippo]\napi_key = \"shippo_live_hushhush\"",
        )
        .unwrap();
        assert_eq!(cfg.provider, ProviderKind::Shippo);
        assert_eq!(cfg.provider_timeout, Duration::from_secs(3));
        assert_eq!(cfg.providers.easypost.api_key.expose(), "EZAK_topsecret");
        assert_eq!(
            cfg.providers.easypost.url(easypost::BASE_URL),
            easypost::BASE_URL
        );
        let dumped = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        for secret in ["topsecret", "whsec_hidden", "hushhush"] {
            assert!(!dumped.contains(secret), "{dumped}");
        }
        let p = Providers::new(&cfg, None).unwrap();
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("hushhush"),
            "{shown}"
        );
        assert!(toml::from_str::<ShippingConfig>("carrier = \"x\"").is_err());
        assert!(toml::from_str::<ShippingConfig>("provider = \"label_api\"").is_err());
        let mut bad = ShippingConfig {
            default_carrier: " ".into(),
            provider_timeout: Duration::ZERO,
            default_item_weight_grams: 0,
            ..ShippingConfig::default()
        };
        bad.providers.shippo.base_url = "ftp://x".into();
        assert_eq!(bad.validate().len(), 4, "{:?}", bad.validate());
    }

    #[test]
    fn a_provider_without_a_key_is_refused_before_any_call() {
        let p = Providers::new(&ShippingConfig::default(), None).unwrap();
        let e = p.get(ProviderKind::Easypost).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Rejected);
        assert!(e.to_string().contains("api_key"), "{e}");
        assert_eq!(p.named(Some("ups")).unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(
            p.get(ProviderKind::Tiktok).unwrap_err().kind(),
            ErrorKind::Rejected
        );
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
            assert_eq!(provider::status_kind(s), k, "{s}");
        }
    }
}
