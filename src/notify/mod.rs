//! Notifications: tell people what the workflows did or need.
//!
//! A [`Notifier`] POSTs JSON to named channels (config: name → URL). The body
//! is Slack-compatible — a top-level `text` — and carries the structured
//! event beside it for machines:
//!
//! ```json
//! {"text": "Order 5764… is out of stock", "event": {"kind": "out_of_stock", "order_id": "5764…", "data": {…}, "at": 1764000000}}
//! ```
//!
//! Delivery retries transient failures (connection errors, timeouts, HTTP
//! 408/429/5xx) with exponential back-off and jitter, up to `max_attempts`;
//! any other answer is final at once. A notification is never worth
//! stalling an order, so a failure is *returned as a value* ([`Delivery`]
//! with `delivered: false`), counted ([`NOTIFICATIONS_TOTAL`]) and kept in a
//! short ring of recent failures, and the call never takes longer than its
//! own budget ([`Notifier::budget`]). System alerts (`alert`) take the same
//! path to the `alerts_channel`.
//!
//! Webhook URLs (Slack's especially) are credentials: they are [`Secret`]s,
//! redacted in `Debug` and `Serialize`, and never appear in errors.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use crate::tiktok::Secret;

/// Counter, label `outcome` (`delivered`, `failed`): notifications after
/// all their attempts.
pub const NOTIFICATIONS_TOTAL: &str = "orderflow_notifications_total";
/// Counter, label `outcome` (`ok`, `retryable`, `permanent`): HTTP attempts.
pub const NOTIFICATION_ATTEMPTS_TOTAL: &str = "orderflow_notification_attempts_total";

/// Registers the metric descriptions. Idempotent.
pub fn describe_metrics() {
    use metrics::{describe_counter, Unit};
    describe_counter!(
        NOTIFICATIONS_TOTAL,
        Unit::Count,
        "Notifications by final outcome, after retries"
    );
    describe_counter!(
        NOTIFICATION_ATTEMPTS_TOTAL,
        Unit::Count,
        "Notification HTTP attempts by outcome"
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

/// The `[notify]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Channel name → webhook URL (a secret: Slack URLs embed their token).
    pub channels: BTreeMap<String, Secret>,
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
    /// Timeout of one HTTP attempt.
    #[serde(with = "crate::config::human")]
    pub timeout: Duration,
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
        }
    }
}

impl NotifyConfig {
    /// Every problem at once; never quotes a URL (they are secrets).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, url) in &self.channels {
            match reqwest::Url::parse(url.expose()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => p.push(format!("notify.channels.{name}: not an http(s) URL")),
            }
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
        p
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
    /// The JSON body POSTed.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "text": self.text, "event": self })
    }
}

/// The outcome of one notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub channel: String,
    pub kind: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it failed (no URL in it).
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

/// Counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotifyStats {
    pub delivered: u64,
    pub failed: u64,
}

struct Inner {
    http: reqwest::Client,
    cfg: NotifyConfig,
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

enum Attempt {
    Ok(u16),
    Retry(Option<u16>, String),
    Fatal(Option<u16>, String),
}

impl Notifier {
    pub fn new(cfg: NotifyConfig) -> Result<Notifier, Error> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(Error::InvalidConfig(problems));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.without_url().to_string()))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                http,
                cfg,
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                failures: Mutex::new(VecDeque::new()),
            }),
        })
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.inner.cfg
    }

    /// The longest one `send` can take: every attempt timing out plus every
    /// back-off at its cap.
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
        if self.inner.cfg.channels.is_empty() {
            return Err(Error::NoChannels);
        }
        let name = channel.unwrap_or(&self.inner.cfg.default_channel);
        let url = self
            .inner
            .cfg
            .channels
            .get(name)
            .ok_or_else(|| Error::UnknownChannel(name.to_string()))?;
        Ok(self.deliver(name, url.expose(), event).await)
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
                delivered: false,
                attempts: 0,
                status: None,
                error: Some(e.to_string()),
                elapsed_ms: 0,
            }),
        }
    }

    async fn attempt(&self, url: &str, body: &serde_json::Value) -> Attempt {
        match self.inner.http.post(url).json(body).send().await {
            Ok(resp) => {
                let s = resp.status().as_u16();
                if resp.status().is_success() {
                    Attempt::Ok(s)
                } else if s == 408 || s == 429 || s >= 500 {
                    Attempt::Retry(Some(s), format!("HTTP {s}"))
                } else {
                    Attempt::Fatal(Some(s), format!("HTTP {s}"))
                }
            }
            Err(e) if e.is_builder() => Attempt::Fatal(None, e.without_url().to_string()),
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "transport error"
                };
                Attempt::Retry(None, format!("{what}: {}", e.without_url()))
            }
        }
    }

    async fn deliver(&self, channel: &str, url: &str, event: &Event) -> Delivery {
        let started = Instant::now();
        let body = event.body();
        let max = self.inner.cfg.max_attempts.max(1);
        let mut attempts = 0;
        let (mut status, mut error) = (None, None);
        let mut delivered = false;
        while attempts < max {
            if attempts > 0 {
                tokio::time::sleep(backoff(&self.inner.cfg, attempts)).await;
            }
            attempts += 1;
            match self.attempt(url, &body).await {
                Attempt::Ok(s) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "outcome" => "ok").increment(1);
                    status = Some(s);
                    error = None;
                    delivered = true;
                    break;
                }
                Attempt::Retry(s, e) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "outcome" => "retryable")
                        .increment(1);
                    tracing::debug!(channel, attempt = attempts, error = %e, "Notification attempt failed");
                    status = s;
                    error = Some(e);
                }
                Attempt::Fatal(s, e) => {
                    metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "outcome" => "permanent")
                        .increment(1);
                    status = s;
                    error = Some(e);
                    break;
                }
            }
        }
        self.record(Delivery {
            channel: channel.to_string(),
            kind: event.kind.clone(),
            delivered,
            attempts,
            status,
            error,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    fn record(&self, d: Delivery) -> Delivery {
        if d.delivered {
            self.inner.delivered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(NOTIFICATIONS_TOTAL, "outcome" => "delivered").increment(1);
        } else {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(NOTIFICATIONS_TOTAL, "outcome" => "failed").increment(1);
            tracing::warn!(
                channel = %d.channel,
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
            Secret::new("https://hooks.slack.com/services/T0/B0/secret"),
        );
        cfg.channels.insert("bad".into(), Secret::new("ftp://x"));
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
}
