//! The daemon's `[tiktok]` configuration section.
//!
//! Secrets (`app_secret`, access and refresh tokens) are wrapped in
//! [`Secret`], whose `Debug` and `Serialize` print `<redacted>`, so logging
//! or dumping the effective configuration never leaks them. A missing
//! section is valid: with no shops the daemon starts and simply has nothing
//! to sync.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential. Readable only through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The raw value, for signing and headers only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// One authorized shop.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShopConfig {
    /// TikTok's shop id (as in webhooks and authorized shops).
    pub id: String,
    /// `shop_cipher` for shop-scoped calls; fetched from Get Authorized Shops
    /// when absent.
    pub cipher: Option<String>,
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// TikTok's rate limit for this (app, shop) pair, in requests per second.
    /// The gateway stays `safety_margin` below it.
    pub qps: f64,
    /// The shop's market as a region code (`US`, `GB`, `DE`, ...): it
    /// decides which cancel reasons TikTok takes. Read from Get Authorized
    /// Shops when absent.
    pub region: Option<String>,
}

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            id: String::new(),
            cipher: None,
            access_token: Secret::default(),
            refresh_token: Secret::default(),
            qps: 50.0,
            region: None,
        }
    }
}

/// The `[tiktok]` section.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TiktokConfig {
    /// Open API host, e.g. `https://open-api.tiktokglobalshop.com` (or the
    /// simulator's base URL).
    pub base_url: String,
    /// Auth host for token get/refresh, e.g. `https://auth.tiktok-shops.com`.
    pub auth_url: String,
    pub app_key: String,
    pub app_secret: Secret,
    /// The app's service id (Partner Center → App → Service ID): what a
    /// seller authorization link names.
    pub service_id: String,
    /// TikTok's seller authorization page: `https://services.tiktokshop.com/open/authorize`
    /// outside the US, `https://services.tiktokshops.us/open/authorize` in
    /// the US (copy the link Partner Center shows when unsure).
    pub authorize_url: String,
    /// Shops with tokens in this file. Shops connected through the
    /// authorization flow need no entry here.
    pub shops: Vec<ShopConfig>,
    /// Fraction of each shop's `qps` the gateway may use, in (0, 1].
    pub safety_margin: f64,
    /// Most HTTP calls in flight at once, across shops.
    pub max_concurrency: usize,
    /// How long an order-detail lookup waits for others to share its call.
    #[serde(with = "crate::config::human")]
    pub batch_window: Duration,
    /// Timeout of one HTTP attempt.
    #[serde(with = "crate::config::human")]
    pub request_timeout: Duration,
    /// Attempts per call, the first included (the retry budget).
    pub max_attempts: u32,
    /// First back-off step; doubles per retry, with full jitter.
    #[serde(with = "crate::config::human")]
    pub backoff_base: Duration,
    /// Cap of one back-off step.
    #[serde(with = "crate::config::human")]
    pub backoff_max: Duration,
}

impl Default for TiktokConfig {
    fn default() -> Self {
        TiktokConfig {
            base_url: "https://open-api.tiktokglobalshop.com".into(),
            auth_url: "https://auth.tiktok-shops.com".into(),
            app_key: String::new(),
            app_secret: Secret::default(),
            service_id: String::new(),
            authorize_url: "https://services.tiktokshop.com/open/authorize".into(),
            shops: Vec::new(),
            safety_margin: 0.9,
            max_concurrency: 8,
            batch_window: Duration::from_millis(500),
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

fn check_url(problems: &mut Vec<String>, field: &str, v: &str) {
    match reqwest::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => problems.push(format!("tiktok.{field}: {v:?} is not an http(s) URL")),
        Err(e) => problems.push(format!("tiktok.{field}: {v:?} is not a URL: {e}")),
    }
}

impl TiktokConfig {
    /// Every problem at once, empty when the section is usable. Never
    /// quotes a secret.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_url(&mut p, "base_url", &self.base_url);
        check_url(&mut p, "auth_url", &self.auth_url);
        check_url(&mut p, "authorize_url", &self.authorize_url);
        if !self.shops.is_empty() {
            if self.app_key.trim().is_empty() {
                p.push("tiktok.app_key is empty but shops are configured".into());
            }
            if self.app_secret.is_empty() {
                p.push("tiktok.app_secret is empty but shops are configured".into());
            }
        }
        if !(self.safety_margin > 0.0 && self.safety_margin <= 1.0) {
            p.push(format!(
                "tiktok.safety_margin must be in (0, 1], got {}",
                self.safety_margin
            ));
        }
        if self.max_concurrency == 0 {
            p.push("tiktok.max_concurrency must be at least 1".into());
        }
        if self.batch_window > Duration::from_secs(1) {
            p.push(format!(
                "tiktok.batch_window must be at most 1s, got {}",
                humantime::format_duration(self.batch_window)
            ));
        }
        if self.request_timeout.is_zero() {
            p.push("tiktok.request_timeout must be positive".into());
        }
        if self.max_attempts == 0 {
            p.push("tiktok.max_attempts must be at least 1".into());
        }
        if self.backoff_base.is_zero() || self.backoff_base > self.backoff_max {
            p.push("tiktok.backoff_base must be positive and at most backoff_max".into());
        }
        let mut seen = HashSet::new();
        for (i, s) in self.shops.iter().enumerate() {
            let at = format!("tiktok.shops[{i}]");
            if s.id.trim().is_empty() {
                p.push(format!("{at}.id is empty"));
            } else if !seen.insert(s.id.as_str()) {
                p.push(format!("{at}.id {:?} appears twice", s.id));
            }
            if s.access_token.is_empty() {
                p.push(format!("{at}.access_token is empty"));
            }
            if matches!(&s.cipher, Some(c) if c.trim().is_empty()) {
                p.push(format!("{at}.cipher is empty; omit it to fetch it"));
            }
            if let Some(r) = &s.region {
                if super::reasons::Market::from_region(r).is_none() {
                    p.push(format!(
                        "{at}.region {r:?} is not a TikTok Shop market (US, GB, DE, ES, FR, IE, IT, JP, MX, BR, ID, MY, PH, SG, TH, VN); omit it to read it from TikTok"
                    ));
                }
            }
            if !(s.qps.is_finite() && s.qps > 0.0) {
                p.push(format!("{at}.qps must be a positive number, got {}", s.qps));
            } else if s.qps * self.safety_margin < 0.1 {
                p.push(format!("{at}.qps × safety_margin is below 0.1 request/s"));
            }
        }
        p
    }

    /// The rate the gateway allows itself for a shop, in requests/second.
    pub fn effective_qps(&self, shop: &ShopConfig) -> f64 {
        shop.qps * self.safety_margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_never_print() {
        assert!(TiktokConfig::default().validate().is_empty());
        let c: TiktokConfig = toml::from_str(
            r#"
            app_key = "k"
            app_secret = "very-secret"
            batch_window = "3ms"
            [[shops]]
            id = "s1"
            access_token = "tok-secret"
            refresh_token = "refresh-secret"
            qps = 20
            "#,
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.batch_window, Duration::from_millis(3));
        let dbg = format!("{c:?}");
        let ser = toml::to_string(&c).unwrap();
        for out in [&dbg, &ser] {
            assert!(!out.contains("very-secret"), "{out}");
            assert!(!out.contains("tok-secret"), "{out}");
            assert!(!out.contains("refresh-secret"), "{out}");
            assert!(out.contains("<redacted>"), "{out}");
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = TiktokConfig {
            base_url: "nope".into(),
            safety_margin: 1.5,
            max_concurrency: 0,
            shops: vec![
                ShopConfig {
                    id: "a".into(),
                    qps: 0.0,
                    ..Default::default()
                },
                ShopConfig {
                    id: "a".into(),
                    access_token: Secret::new("t"),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let p = c.validate();
        for needle in [
            "base_url",
            "app_key",
            "app_secret",
            "safety_margin",
            "max_concurrency",
            "shops[0].access_token",
            "shops[0].qps",
            "appears twice",
        ] {
            assert!(p.iter().any(|m| m.contains(needle)), "{needle} in {p:?}");
        }
        assert!(toml::from_str::<TiktokConfig>("bogus = 1").is_err());
    }
}
