//! Notifications: tell people what the workflows did or need.
//!
//! A [`Notifier`] sends to named channels (`[notify.channels.<name>]`), each
//! of one `kind`:
//!
//! - **`webhook`** (the default; a channel written as a bare URL is one):
//!   JSON POSTed to the URL, Slack-compatible — a top-level `text` — with
//!   the structured event beside it for machines:
//!
//!   ```json
//!   {"text": "Order 5764… is out of stock", "event": {"kind": "out_of_stock", "order_id": "5764…", "data": {…}, "at": 1764000000}}
//!   ```
//! - **`email`** ([`email`]): a plain-text message over SMTP (RFC 5321;
//!   STARTTLS, implicit TLS or, to a loopback relay only with a password,
//!   none), its subject naming the alert and the order.
//! - **`web_push`** ([`push`]): a notification on every browser that
//!   subscribed to the channel (the console's "Notify this device"),
//!   through the browser's push service: RFC 8030, the payload encrypted
//!   per RFC 8291 (`aes128gcm`), signed with this daemon's VAPID key (RFC
//!   8292). A device its push service says is gone (404, 410) is forgotten.
//!
//! Delivery retries transient failures (connection errors, timeouts, HTTP
//! 408/429/5xx, SMTP 4xx) with exponential back-off and jitter, up to
//! `max_attempts`; any other answer is final at once. A notification is
//! never worth stalling an order, so a failure is *returned as a value*
//! ([`Delivery`] with `delivered: false`), counted ([`NOTIFICATIONS_TOTAL`],
//! per kind) and kept in a short ring of recent failures, and the call
//! never takes longer than its own budget ([`Notifier::budget`]: a web push
//! reaches its devices at once, each within the budget). System alerts
//! (`alert`) take the same path to the `alerts_channel`.
//!
//! Webhook URLs (Slack's especially), SMTP passwords and the VAPID private
//! key are credentials: they are [`Secret`]s, redacted in `Debug` and
//! `Serialize`, and never appear in errors.

pub mod email;
pub mod push;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::Dur;
pub use crate::tiktok::Secret;

/// Counter, labels `kind` (`webhook`, `email`, `web_push`) and `outcome`
/// (`delivered`, `failed`): notifications after all their attempts.
pub const NOTIFICATIONS_TOTAL: &str = "orderflow_notifications_total";
/// Counter, labels `kind` and `outcome` (`ok`, `retryable`, `permanent`,
/// `gone`): attempts (HTTP requests, SMTP transactions, one per device
/// for web push).
pub const NOTIFICATION_ATTEMPTS_TOTAL: &str = "orderflow_notification_attempts_total";
/// Counter: push subscriptions forgotten because their push service said
/// the device is gone (404 or 410).
pub const PUSH_SUBSCRIPTIONS_GONE_TOTAL: &str = "orderflow_push_subscriptions_gone_total";

/// Registers the metric descriptions. Idempotent.
pub fn describe_metrics() {
    use metrics::{describe_counter, Unit};
    describe_counter!(
        NOTIFICATIONS_TOTAL,
        Unit::Count,
        "Notifications by channel kind and final outcome, after retries"
    );
    describe_counter!(
        NOTIFICATION_ATTEMPTS_TOTAL,
        Unit::Count,
        "Notification attempts by channel kind and outcome"
    );
    describe_counter!(
        PUSH_SUBSCRIPTIONS_GONE_TOTAL,
        Unit::Count,
        "Push subscriptions removed because their push service said the device is gone"
    );
}

/// How many failed deliveries [`Notifier::recent_failures`] keeps.
const RECENT_FAILURES: usize = 100;

/// Errors of the notifier: configuration only. Delivery failures are not
/// errors but [`Delivery`] values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid [notify] configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    #[error("no notification channel named {0:?}")]
    UnknownChannel(String),
    /// No channel is configured at all: notifications are off.
    #[error("notifications are off: [notify.channels] defines no channel")]
    NoChannels,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What a channel is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Slack-compatible JSON POSTed to a URL.
    #[default]
    Webhook,
    /// A plain-text email over SMTP.
    Email,
    /// A browser notification through the Push API.
    WebPush,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Email => "email",
            Kind::WebPush => "web_push",
        }
    }
}

/// How an email channel talks to its SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption (port 25): a relay on this machine.
    None,
}

impl SmtpSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// A push message's urgency (RFC 8030 §5.3): how eagerly a device on
/// battery wakes for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    #[default]
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// One `[notify.channels.<name>]`: a bare URL (a webhook, as before
/// kinds existed) or a table with `kind` and the fields of that kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct ChannelConfig {
    pub kind: Kind,
    /// webhook: where to POST (a secret: Slack URLs embed their token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// email: the SMTP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// email: default 587 (starttls), 465 (tls), 25 (none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// email: `starttls` (default), `tls` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SmtpSecurity>,
    /// email: the SMTP login, if the server wants one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// email: its password (prefer `password_env`, or
    /// `ORDERFLOW_NOTIFY__CHANNELS__<NAME>__PASSWORD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// email: the environment variable that holds the password, read at
    /// start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// email: the sender, `"orderflow <alerts@example.com>"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// email: the recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// web_push: the contact the VAPID token names (`sub`, RFC 8292):
    /// `mailto:ops@example.com` or an `https:` URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// web_push: how long a push service keeps the message for a device
    /// that is offline (`TTL`; default 12h, at most 28 days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
    /// web_push: `very-low`, `low`, `normal` or `high` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
}

impl<'de> Deserialize<'de> for ChannelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ChannelConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a webhook URL, or a table with `kind` (webhook, email or web_push)")
            }
            fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<ChannelConfig, E> {
                Ok(ChannelConfig::webhook(url))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ChannelConfig, A::Error> {
                ChannelConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Serialize for ChannelConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChannelConfig::serialize(self, s)
    }
}

impl From<Secret> for ChannelConfig {
    fn from(url: Secret) -> ChannelConfig {
        ChannelConfig {
            url: Some(url),
            ..ChannelConfig::default()
        }
    }
}

/// The default TTL of a push message.
const DEFAULT_PUSH_TTL: Duration = Duration::from_secs(12 * 3600);
/// The longest TTL taken: push services keep a message four weeks at most.
const MAX_PUSH_TTL: Duration = Duration::from_secs(28 * 24 * 3600);

impl ChannelConfig {
    /// A webhook channel to `url`.
    pub fn webhook(url: impl Into<String>) -> ChannelConfig {
        Secret::new(url).into()
    }

    /// The push message TTL.
    pub fn push_ttl(&self) -> Duration {
        self.ttl.map_or(DEFAULT_PUSH_TTL, |d| d.0)
    }

    /// What is wrong with channel `name`, each problem naming its key;
    /// never quotes a URL or a password.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let at = format!("notify.channels.{name}");
        let mut p = Vec::new();
        let email_keys = [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("security", self.security.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("password_env", self.password_env.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
        ];
        let push_keys = [
            ("sub", self.sub.is_some()),
            ("ttl", self.ttl.is_some()),
            ("urgency", self.urgency.is_some()),
        ];
        let webhook_keys = [("url", self.url.is_some())];
        let kind = self.kind.as_str();
        let mut foreign = |keys: &[(&str, bool)], of: &str| {
            for (k, set) in keys {
                if *set {
                    p.push(format!(
                        "{at}.{k}: only {of} channels take it (this one is kind = \"{kind}\")"
                    ));
                }
            }
        };
        match self.kind {
            Kind::Webhook => {
                foreign(&email_keys, "email");
                foreign(&push_keys, "web_push");
            }
            Kind::Email => {
                foreign(&webhook_keys, "webhook");
                foreign(&push_keys, "web_push");
            }
            Kind::WebPush => {
                foreign(&webhook_keys, "webhook");
                foreign(&email_keys, "email");
            }
        }
        match self.kind {
            Kind::Webhook => match self.url.as_ref().map(|u| reqwest::Url::parse(u.expose())) {
                Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                None => p.push(format!(
                    "{at}: a webhook channel needs `url` (or write the channel as the URL itself)"
                )),
                Some(_) => p.push(format!("{at}: not an http(s) URL")),
            },
            Kind::Email => p.extend(email::problems(&at, self)),
            Kind::WebPush => {
                match self.sub.as_deref().map(str::trim) {
                    None | Some("") => p.push(format!(
                        "{at}: a web_push channel needs `sub`, the contact push services see (\"mailto:ops@example.com\" or an https: URL)"
                    )),
                    Some(s) if push::valid_contact(s) => {}
                    Some(_) => p.push(format!(
                        "{at}.sub: must be a mailto: address or an https: URL (RFC 8292)"
                    )),
                }
                if self.push_ttl() > MAX_PUSH_TTL {
                    p.push(format!("{at}.ttl: at most 28 days"));
                }
            }
        }
        p
    }
}

/// The `[notify]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Channel name → channel (a bare URL is a webhook channel).
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Channel used when a send names none.
    pub default_channel: String,
    /// Channel for system alerts; falls back to `default_channel`.
    pub alerts_channel: Option<String>,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// First back-off step; doubles per retry, with jitter.
    #[serde(with = "crate::config::human")]
    pub backoff_base: Duration,
    /// Cap of one back-off step.
    #[serde(with = "crate::config::human")]
    pub backoff_max: Duration,
    /// Timeout of one attempt (an HTTP request, an SMTP transaction).
    #[serde(with = "crate::config::human")]
    pub timeout: Duration,
    /// The address people open the console at (`https://orders.example.com`),
    /// for the order's link in emails. Push notifications open the order on
    /// the console that subscribed.
    pub console_url: Option<String>,
    /// The VAPID private key (base64url, 32 bytes) web push signs with.
    /// Unset: one is made on first start and kept, sealed, in the store.
    pub vapid_private_key: Option<Secret>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            channels: BTreeMap::new(),
            default_channel: "default".into(),
            alerts_channel: None,
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            console_url: None,
            vapid_private_key: None,
        }
    }
}

impl NotifyConfig {
    /// Every problem at once; never quotes a URL or a password (they are
    /// secrets).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, channel) in &self.channels {
            p.extend(channel.problems(name));
        }
        if !self.channels.is_empty() && !self.channels.contains_key(&self.default_channel) {
            p.push(format!(
                "notify.default_channel: no channel named {:?}",
                self.default_channel
            ));
        }
        if let Some(a) = &self.alerts_channel {
            if !self.channels.contains_key(a) {
                p.push(format!("notify.alerts_channel: no channel named {a:?}"));
            }
        }
        if !(1..=20).contains(&self.max_attempts) {
            p.push("notify.max_attempts: must be 1..=20".into());
        }
        if self.backoff_base > self.backoff_max {
            p.push("notify.backoff_base: larger than backoff_max".into());
        }
        if self.timeout.is_zero() {
            p.push("notify.timeout: must be positive".into());
        }
        if let Some(u) = &self.console_url {
            match reqwest::Url::parse(u) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => p.push("notify.console_url: not an http(s) URL".into()),
            }
        }
        if let Some(k) = &self.vapid_private_key {
            if push::VapidKey::from_base64(k.expose()).is_err() {
                p.push(
                    "notify.vapid_private_key: not a P-256 private key (32 bytes, base64url)"
                        .into(),
                );
            }
        }
        p
    }

    /// The names of the web_push channels, for the console.
    pub fn push_channels(&self) -> Vec<String> {
        self.channels
            .iter()
            .filter(|(_, c)| c.kind == Kind::WebPush)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// What happened, as the structured half of a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A short machine name: `out_of_stock`, `label_failed`, `alert`, …
    pub kind: String,
    /// The human sentence; becomes the body's top-level `text`.
    pub text: String,
    pub order_id: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
    /// Unix seconds.
    pub at: i64,
}

impl Event {
    pub fn new(kind: impl Into<String>, text: impl Into<String>) -> Event {
        Event {
            kind: kind.into(),
            text: text.into(),
            order_id: None,
            data: serde_json::Value::Null,
            at: chrono::Utc::now().timestamp(),
        }
    }
    pub fn order(mut self, order_id: impl Into<String>) -> Event {
        self.order_id = Some(order_id.into());
        self
    }
    pub fn data(mut self, data: serde_json::Value) -> Event {
        self.data = data;
        self
    }
    /// The order the event is about: its `order_id`, or for a system
    /// alert about one order, the `order_id` of its data. Emails name it and
    /// link it, push notifications open it.
    pub fn about_order(&self) -> Option<&str> {
        self.order_id
            .as_deref()
            .or_else(|| self.data.get("order_id").and_then(|v| v.as_str()))
            .filter(|id| !id.is_empty())
    }

    /// The JSON body POSTed.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text, "event": self })
    }
}

/// The outcome of one notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub channel: String,
    /// The event's kind (`alert`, `workflow`, `out_of_stock`, …).
    pub kind: String,
    /// The channel's kind.
    pub via: Kind,
    pub delivered: bool,
    /// Attempts made, all destinations together (each device of a web
    /// push channel is one destination).
    pub attempts: u32,
    /// The last HTTP status (webhook, web push) or SMTP reply code (email),
    /// when there was an answer.
    pub status: Option<u16>,
    /// Why it failed (no URL, address or password in it).
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// web_push: what became of the devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Devices>,
}

/// The devices of one web push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Devices {
    pub reached: u32,
    pub failed: u32,
    /// Gone (404/410 from their push service): forgotten.
    pub gone: u32,
}

/// Counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotifyStats {
    pub delivered: u64,
    pub failed: u64,
}

/// A channel, ready to send.
enum Route {
    Webhook(Secret),
    Email(Box<email::Mailer>),
    WebPush(push::Target),
}

struct Inner {
    http: reqwest::Client,
    cfg: NotifyConfig,
    routes: BTreeMap<String, Route>,
    /// The VAPID key and the devices subscribed (absent in a notifier
    /// built without a store: web push channels then reach nobody).
    push: Option<push::PushBook>,
    delivered: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<VecDeque<Delivery>>,
}

/// The cheap-to-clone handle.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

/// What one attempt at one destination came to.
pub(crate) enum Attempt {
    Ok(Option<u16>),
    Retry(Option<u16>, String),
    Fatal(Option<u16>, String),
    /// web push: the push service says the device is gone (404, 410).
    Gone(u16),
}

/// What the attempts at one destination came to.
#[derive(Debug, Clone, Default)]
struct Tally {
    attempts: u32,
    status: Option<u16>,
    error: Option<String>,
    delivered: bool,
    gone: bool,
}

impl Tally {
    fn failed(error: impl Into<String>) -> Tally {
        Tally {
            error: Some(error.into()),
            ..Tally::default()
        }
    }
}

impl Notifier {
    /// A notifier without web push devices (its web_push channels reach
    /// nobody): tests and tools. The daemon uses [`Notifier::with_push`].
    pub fn new(cfg: NotifyConfig) -> Result<Notifier, Error> {
        Notifier::build(cfg, None)
    }

    /// A notifier whose web_push channels reach the devices `push` keeps.
    pub fn with_push(cfg: NotifyConfig, push: push::PushBook) -> Result<Notifier, Error> {
        Notifier::build(cfg, Some(push))
    }

    fn build(cfg: NotifyConfig, push: Option<push::PushBook>) -> Result<Notifier, Error> {
        let mut problems = cfg.validate();
        if !problems.is_empty() {
            return Err(Error::InvalidConfig(problems));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.without_url().to_string()))?;
        let mut routes = BTreeMap::new();
        for (name, c) in &cfg.channels {
            let route = match c.kind {
                Kind::Webhook => Route::Webhook(c.url.clone().unwrap_or_else(|| Secret::new(""))),
                Kind::Email => {
                    match email::Mailer::new(name, c, cfg.timeout, |var| std::env::var(var).ok()) {
                        Ok(m) => Route::Email(Box::new(m)),
                        Err(e) => {
                            problems.push(e.to_string());
                            continue;
                        }
                    }
                }
                Kind::WebPush => Route::WebPush(push::Target::new(c)),
            };
            routes.insert(name.clone(), route);
        }
        if !problems.is_empty() {
            return Err(Error::InvalidConfig(problems));
        }
        Ok(Notifier {
            inner: Arc::new(Inner {
                http,
                cfg,
                routes,
                push,
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                failures: Mutex::new(VecDeque::new()),
            }),
        })
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.inner.cfg
    }

    /// The VAPID key and the subscribed devices, when web push is set up.
    pub fn push(&self) -> Option<&push::PushBook> {
        self.inner.push.as_ref()
    }

    /// The kind of channel `name`, if the configuration defines it.
    pub fn channel_kind(&self, name: &str) -> Option<Kind> {
        self.inner.cfg.channels.get(name).map(|c| c.kind)
    }

    /// The longest one `send` can take: every attempt timing out plus every
    /// back-off at its cap (a web push tries its devices side by side).
    pub fn budget(&self) -> Duration {
        let c = &self.inner.cfg;
        let mut total = c.timeout * c.max_attempts;
        for n in 1..c.max_attempts {
            total += backoff_cap(c, n);
        }
        total
    }

    pub fn stats(&self) -> NotifyStats {
        NotifyStats {
            delivered: self.inner.delivered.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
        }
    }

    /// The most recent failed deliveries, oldest first.
    pub fn recent_failures(&self) -> Vec<Delivery> {
        self.inner.failures.lock().iter().cloned().collect()
    }

    /// Sends `event` to `channel` (None: the default channel). `Err` only
    /// for an unknown channel, or none configured; delivery failures come
    /// back as a [`Delivery`] with `delivered: false`.
    pub async fn send(&self, channel: Option<&str>, event: &Event) -> Result<Delivery, Error> {
        if self.inner.routes.is_empty() {
            return Err(Error::NoChannels);
        }
        let name = channel.unwrap_or(&self.inner.cfg.default_channel);
        let route = self
            .inner
            .routes
            .get(name)
            .ok_or_else(|| Error::UnknownChannel(name.to_string()))?;
        let started = Instant::now();
        let (via, tally, devices) = match route {
            Route::Webhook(url) => (Kind::Webhook, self.webhook(name, url, event).await, None),
            Route::Email(m) => (Kind::Email, self.email(name, m, event).await, None),
            Route::WebPush(t) => {
                let (tally, devices) = self.web_push(name, t, event).await;
                (Kind::WebPush, tally, Some(devices))
            }
        };
        Ok(self.record(Delivery {
            channel: name.to_string(),
            kind: event.kind.clone(),
            via,
            delivered: tally.delivered,
            attempts: tally.attempts,
            status: tally.status,
            error: tally.error,
            elapsed_ms: started.elapsed().as_millis() as u64,
            devices,
        }))
    }

    /// A system alert to `alerts_channel` (or the default channel). With no
    /// channel configured the alert is only logged.
    pub async fn alert(&self, text: &str, data: serde_json::Value) -> Delivery {
        let c = &self.inner.cfg;
        let name = c.alerts_channel.as_deref().unwrap_or(&c.default_channel);
        let event = Event::new("alert", text).data(data);
        tracing::warn!(alert = %text, "System alert");
        match self.send(Some(name), &event).await {
            Ok(d) => d,
            Err(e) => self.record(Delivery {
                channel: name.to_string(),
                kind: event.kind,
                via: self.channel_kind(name).unwrap_or_default(),
                delivered: false,
                attempts: 0,
                status: None,
                error: Some(e.to_string()),
                elapsed_ms: 0,
                devices: None,
            }),
        }
    }

    async fn webhook(&self, channel: &str, url: &Secret, event: &Event) -> Tally {
        let body = event.body();
        self.retrying(Kind::Webhook, channel, || async {
            match self.inner.http.post(url.expose()).json(&body).send().await {
                Ok(resp) => http_attempt(resp.status().as_u16(), false),
                Err(e) => transport_attempt(e),
            }
        })
        .await
    }

    async fn email(&self, channel: &str, mailer: &email::Mailer, event: &Event) -> Tally {
        let message = match mailer.message(channel, event, self.inner.cfg.console_url.as_deref()) {
            Ok(m) => m,
            Err(e) => return Tally::failed(e.to_string()),
        };
        self.retrying(Kind::Email, channel, || mailer.attempt(&message))
            .await
    }

    /// Every device subscribed to `channel`, side by side, each with its
    /// own retries; delivered when one was reached.
    async fn web_push(
        &self,
        channel: &str,
        target: &push::Target,
        event: &Event,
    ) -> (Tally, Devices) {
        let Some(book) = &self.inner.push else {
            return (
                Tally::failed("web push is not set up in this process (no store for its devices)"),
                Devices::default(),
            );
        };
        let subs = match book.subscriptions(channel) {
            Ok(s) => s,
            Err(e) => return (Tally::failed(e.to_string()), Devices::default()),
        };
        if subs.is_empty() {
            return (
                Tally::failed(format!(
                    "no device has subscribed to channel {channel:?} (the console's \"Notify this device\")"
                )),
                Devices::default(),
            );
        }
        let payload = push::payload(event);
        let now = chrono::Utc::now().timestamp();
        let tallies = futures::future::join_all(subs.iter().map(|sub| {
            let payload = &payload;
            async move {
                let request = match book.request(sub, target, payload, now) {
                    Ok(r) => r,
                    Err(e) => return Tally::failed(e.to_string()),
                };
                let tally = self
                    .retrying(Kind::WebPush, channel, || self.post_push(&request))
                    .await;
                if tally.gone {
                    match book.forget(sub).await {
                        Ok(()) => {
                            metrics::counter!(PUSH_SUBSCRIPTIONS_GONE_TOTAL).increment(1);
                            tracing::info!(channel, status = ?tally.status, "A push subscription is gone: forgotten");
                        }
                        Err(e) => tracing::warn!(channel, error = %e, "Could not forget a gone push subscription"),
                    }
                }
                tally
            }
        }))
        .await;
        let mut devices = Devices::default();
        let mut out = Tally::default();
        let mut errors: BTreeMap<String, u32> = BTreeMap::new();
        for t in &tallies {
            out.attempts += t.attempts;
            if t.delivered {
                devices.reached += 1;
                out.status = t.status;
            } else if t.gone {
                devices.gone += 1;
            } else {
                devices.failed += 1;
                if let Some(e) = &t.error {
                    *errors.entry(e.clone()).or_default() += 1;
                }
            }
        }
        out.delivered = devices.reached > 0;
        if !out.delivered {
            out.status = tallies.iter().rev().find_map(|t| t.status);
            let mut why: Vec<String> = errors
                .into_iter()
                .map(|(e, n)| format!("{n} device(s): {e}"))
                .collect();
            if devices.gone > 0 {
                why.push(format!(
                    "{} device(s) gone (forgotten; they subscribe again from the console)",
                    devices.gone
                ));
            }
            out.error = Some(why.join("; "));
        } else if devices.failed > 0 || devices.gone > 0 {
            tracing::warn!(channel, ?devices, "A web push reached some devices only");
        }
        (out, devices)
    }

    async fn post_push(&self, r: &push::Request) -> Attempt {
        let mut req = self.inner.http.post(r.endpoint.clone());
        for (k, v) in &r.headers {
            req = req.header(*k, v.as_str());
        }
        match req.body(r.body.clone()).send().await {
            Ok(resp) => http_attempt(resp.status().as_u16(), true),
            Err(e) => transport_attempt(e),
        }
    }

    /// Attempts `attempt` until it succeeds, fails for good or
    /// `max_attempts` are spent, backing off between them.
    async fn retrying<F, Fut>(&self, kind: Kind, channel: &str, mut attempt: F) -> Tally
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let max = self.inner.cfg.max_attempts.max(1);
        let mut t = Tally::default();
        let kind = kind.as_str();
        while t.attempts < max {
            if t.attempts > 0 {
                tokio::time::sleep(backoff(&self.inner.cfg, t.attempts)).await;
            }
            t.attempts += 1;
            match attempt().await {
                Attempt::Ok(s) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "kind" => kind, "outcome" => "ok")
                        .increment(1);
                    t.status = s;
                    t.error = None;
                    t.delivered = true;
                    break;
                }
                Attempt::Retry(s, e) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "kind" => kind, "outcome" => "retryable")
                        .increment(1);
                    tracing::debug!(channel, kind, attempt = t.attempts, error = %e, "Notification attempt failed");
                    t.status = s;
                    t.error = Some(e);
                }
                Attempt::Fatal(s, e) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "kind" => kind, "outcome" => "permanent")
                        .increment(1);
                    t.status = s;
                    t.error = Some(e);
                    break;
                }
                Attempt::Gone(s) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "kind" => kind, "outcome" => "gone")
                        .increment(1);
                    t.status = Some(s);
                    t.error = Some(format!("HTTP {s}: the device is gone"));
                    t.gone = true;
                    break;
                }
            }
        }
        t
    }

    fn record(&self, d: Delivery) -> Delivery {
        let kind = d.via.as_str();
        if d.delivered {
            self.inner.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(NOTIFICATIONS_TOTAL, "kind" => kind, "outcome" => "delivered")
                .increment(1);
        } else {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(NOTIFICATIONS_TOTAL, "kind" => kind, "outcome" => "failed")
                .increment(1);
            tracing::warn!(
                channel = %d.channel,
                via = kind,
                kind = %d.kind,
                attempts = d.attempts,
                error = %d.error.as_deref().unwrap_or("?"),
                "Notification not delivered"
            );
            let mut f = self.inner.failures.lock();
            if f.len() == RECENT_FAILURES {
                f.pop_front();
            }
            f.push_back(d.clone());
        }
        d
    }
}

/// An HTTP answer as an attempt: 2xx done; 408, 429 and 5xx worth another
/// try; for a push service (`push`), 404 and 410 mean the device is gone;
/// anything else is final.
fn http_attempt(s: u16, push: bool) -> Attempt {
    match s {
        200..=299 => Attempt::Ok(Some(s)),
        404 | 410 if push => Attempt::Gone(s),
        408 | 429 | 500.. => Attempt::Retry(Some(s), format!("HTTP {s}")),
        _ => Attempt::Fatal(Some(s), format!("HTTP {s}")),
    }
}

/// A request that got no answer: a bad request is final, the rest (refused
/// connections, timeouts) worth another try. Never quotes the URL.
fn transport_attempt(e: reqwest::Error) -> Attempt {
    if e.is_builder() {
        return Attempt::Fatal(None, e.without_url().to_string());
    }
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "transport error"
    };
    Attempt::Retry(None, format!("{what}: {}", e.without_url()))
}

/// The cap of the back-off before attempt `n + 1` (n ≥ 1).
fn backoff_cap(c: &NotifyConfig, n: u32) -> Duration {
    c.backoff_base
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(20)))
        .min(c.backoff_max)
}

/// Equal jitter: half the cap plus a random share of the other half, so
/// retries spread out but never collapse to zero.
fn backoff(c: &NotifyConfig, n: u32) -> Duration {
    let cap = backoff_cap(c, n);
    let half = cap / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_cap() {
        let c = NotifyConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            ..NotifyConfig::default()
        };
        assert_eq!(backoff_cap(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff_cap(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff_cap(&c, 3), Duration::from_millis(350));
        assert_eq!(backoff_cap(&c, 40), Duration::from_millis(350));
        for n in 1..6 {
            let b = backoff(&c, n);
            assert!(
                b >= backoff_cap(&c, n) / 2 && b <= backoff_cap(&c, n),
                "{b:?}"
            );
        }
    }

    #[test]
    fn urls_are_redacted_and_validated() {
        let mut cfg = NotifyConfig::default();
        cfg.channels.insert(
            "default".into(),
            ChannelConfig::webhook("https://hooks.slack.com/services/T0/B0/secret"),
        );
        cfg.channels
            .insert("bad".into(), ChannelConfig::webhook("ftp://x"));
        cfg.alerts_channel = Some("ops".into());
        let dbg = format!("{cfg:?}");
        let ser = serde_json::to_string(&cfg).unwrap();
        assert!(
            !dbg.contains("secret") && !ser.contains("secret"),
            "{dbg} {ser}"
        );
        let p = cfg.validate();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|m| !m.contains("ftp")));
        assert!(NotifyConfig::default().validate().is_empty());
    }

    /// A bare URL is a webhook channel, as before kinds; a table names its
    /// kind; each kind's missing or foreign keys are config errors that
    /// say which channel and key.
    #[test]
    fn channels_are_urls_or_tables_of_a_kind() {
        let text = r#"
default_channel = "slack"
[channels]
slack = "https://hooks.slack.com/services/T0/B0/secret"
[channels.hook]
url = "https://example.com/hook"
[channels.mail]
kind = "email"
host = "smtp.example.com"
security = "tls"
username = "alerts@example.com"
password = "hunter22hunter22"
from = "orderflow <alerts@example.com>"
to = ["ops@example.com", "Owner <owner@example.com>"]
[channels.phones]
kind = "web_push"
sub = "mailto:ops@example.com"
ttl = "1h"
urgency = "normal"
"#;
        let cfg: NotifyConfig = toml::from_str(text).unwrap();
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        assert_eq!(cfg.channels["slack"].kind, Kind::Webhook);
        assert_eq!(cfg.channels["hook"].kind, Kind::Webhook);
        assert_eq!(cfg.channels["mail"].kind, Kind::Email);
        assert_eq!(cfg.channels["mail"].security, Some(SmtpSecurity::Tls));
        assert_eq!(cfg.channels["phones"].push_ttl(), Duration::from_secs(3600));
        assert_eq!(cfg.push_channels(), ["phones"]);
        let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
        assert!(
            !shown.contains("hunter22") && !shown.contains("secret"),
            "{shown}"
        );
        let n = Notifier::new(cfg).unwrap();
        assert_eq!(n.channel_kind("phones"), Some(Kind::WebPush));
        assert!(n.push().is_none());

        let bad: NotifyConfig = toml::from_str(
            r#"
default_channel = "mail"
[channels.mail]
kind = "email"
to = []
sub = "mailto:x@y.z"
[channels.phones]
kind = "web_push"
[channels.bare]
kind = "webhook"
[channels.contact]
kind = "web_push"
sub = "ops@example.com"
"#,
        )
        .unwrap();
        let p = bad.validate();
        let has = |a: &str, b: &str| p.iter().any(|m| m.contains(a) && m.contains(b));
        assert!(has("notify.channels.mail", "needs `host`"), "{p:?}");
        assert!(has("notify.channels.mail", "needs `from`"), "{p:?}");
        assert!(has("notify.channels.mail", "needs `to`"), "{p:?}");
        assert!(has("notify.channels.mail.sub", "only web_push"), "{p:?}");
        assert!(has("notify.channels.phones", "needs `sub`"), "{p:?}");
        assert!(has("notify.channels.bare", "needs `url`"), "{p:?}");
        assert!(has("notify.channels.contact.sub", "mailto:"), "{p:?}");
        assert!(matches!(Notifier::new(bad), Err(Error::InvalidConfig(_))));

        // Unknown keys and kinds are refused when read.
        assert!(toml::from_str::<NotifyConfig>("[channels.x]\nkind = \"sms\"\n").is_err());
        assert!(toml::from_str::<NotifyConfig>("[channels.x]\nhots = \"a\"\n").is_err());
    }
}
