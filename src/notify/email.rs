//! Email channels: a plain-text message over SMTP (RFC 5321, with
//! `lettre`), one transaction per notification to every recipient.
//!
//! ```toml
//! [notify.channels.ops-mail]
//! kind = "email"
//! host = "smtp.example.com"
//! port = 587                  # default: 587 starttls, 465 tls, 25 none
//! security = "starttls"       # or "tls" (SMTPS), or "none"
//! username = "alerts@example.com"
//! password_env = "SMTP_PASSWORD"
//! from = "orderflow <alerts@example.com>"
//! to = ["ops@example.com", "owner@example.com"]
//! ```
//!
//! `starttls` requires the upgrade (a server that does not offer it is
//! never sent the message nor the password); `tls` speaks TLS from the
//! first byte. Certificates are checked against the web's roots (rustls,
//! webpki-roots). `none` sends in the clear, so with a login it is taken
//! only for a relay on this machine.
//!
//! The subject names the alert and the order (`[orderflow] Order 5764… is
//! out of stock`); the body is the text, the order and its console link,
//! the kind, the time and the event's data.
//!
//! A reply of class 4 (RFC 5321 §4.2.1, "transient negative"), a refused or
//! dropped connection and a timeout are tried again; a class 5 reply, a
//! TLS failure or a refused login are final.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Attempt, ChannelConfig, Event, SmtpSecurity};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("notify.channels.{channel}.password_env: the variable {var} is not set")]
    PasswordEnvUnset { channel: String, var: String },
    #[error("notify.channels.{channel}: {what}")]
    Config { channel: String, what: &'static str },
    #[error("notify.channels.{channel}: cannot set up TLS for the SMTP server: {source}")]
    Tls {
        channel: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot build the email: {0}")]
    Build(#[from] lettre::error::Error),
}

/// The longest subject line written (characters), the rest cut with "…".
const SUBJECT_MAX: usize = 140;

/// Is `host` this machine (where a clear-text login cannot be overheard)?
fn loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What is wrong with an email channel's fields (`at` is its key).
pub(crate) fn problems(at: &str, c: &ChannelConfig) -> Vec<String> {
    let mut p = Vec::new();
    let host = c.host.as_deref().map(str::trim).unwrap_or("");
    if host.is_empty() {
        p.push(format!(
            "{at}: an email channel needs `host`, the SMTP server"
        ));
    }
    match c.from.as_deref().map(str::trim) {
        None | Some("") => p.push(format!(
            "{at}: an email channel needs `from`, the sender (\"orderflow <alerts@example.com>\")"
        )),
        Some(f) if f.parse::<Mailbox>().is_err() => {
            p.push(format!("{at}.from: not an email address"));
        }
        Some(_) => {}
    }
    if c.to.is_empty() {
        p.push(format!(
            "{at}: an email channel needs `to`, a list of at least one recipient"
        ));
    }
    for (i, t) in c.to.iter().enumerate() {
        if t.trim().parse::<Mailbox>().is_err() {
            p.push(format!("{at}.to[{i}]: not an email address"));
        }
    }
    if c.port == Some(0) {
        p.push(format!("{at}.port: must be 1-65535"));
    }
    let has_password = c.password.as_ref().is_some_and(|s| !s.is_empty());
    if has_password && c.password_env.is_some() {
        p.push(format!("{at}: give `password` or `password_env`, not both"));
    }
    let has_secret = has_password || c.password_env.is_some();
    match (c.username.as_deref().map(str::trim), has_secret) {
        (None | Some(""), true) => p.push(format!("{at}: a password without `username`")),
        (Some(u), false) if !u.is_empty() => p.push(format!(
            "{at}: `username` without `password` or `password_env`"
        )),
        _ => {}
    }
    if c.security == Some(SmtpSecurity::None) && has_secret && !host.is_empty() && !loopback(host) {
        p.push(format!(
            "{at}.security: \"none\" would send the password in the clear to {host}; use \"starttls\" or \"tls\" (\"none\" with a login only to a relay on this machine)"
        ));
    }
    p
}

/// One email channel, ready to send.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    /// Builds the channel `name` from its validated configuration; `env`
    /// reads `password_env`.
    pub fn new(
        name: &str,
        c: &ChannelConfig,
        timeout: Duration,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Mailer, Error> {
        let config = |what| Error::Config {
            channel: name.to_string(),
            what,
        };
        let host = c
            .host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config("an email channel needs `host`"))?;
        let from: Mailbox = c
            .from
            .as_deref()
            .and_then(|f| f.trim().parse().ok())
            .ok_or_else(|| config("`from` is not an email address"))?;
        let to =
            c.to.iter()
                .map(|t| t.trim().parse::<Mailbox>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| config("`to` holds something that is not an email address"))?;
        if to.is_empty() {
            return Err(config("an email channel needs `to`"));
        }
        let security = c.security.unwrap_or_default();
        let tls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|source| Error::Tls {
                channel: name.to_string(),
                source,
            })
        };
        let tls = match security {
            SmtpSecurity::Starttls => Tls::Required(tls(host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(host)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(c.port.unwrap_or(security.default_port()))
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = c
            .username
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            let password = match &c.password_env {
                Some(var) => env(var).ok_or_else(|| Error::PasswordEnvUnset {
                    channel: name.to_string(),
                    var: var.clone(),
                })?,
                None => c
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            };
            builder = builder.credentials(Credentials::new(user.to_string(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// The message for `event` on channel `channel`.
    pub fn message(
        &self,
        channel: &str,
        event: &Event,
        console_url: Option<&str>,
    ) -> Result<lettre::Message, Error> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject(event))
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        Ok(b.body(body(channel, event, console_url))?)
    }

    /// One SMTP transaction.
    pub(crate) async fn attempt(&self, message: &lettre::Message) -> Attempt {
        match self
            .transport
            .send_raw(message.envelope(), &message.formatted())
            .await
        {
            Ok(reply) => Attempt::Ok(Some(u16::from(reply.code()))),
            Err(e) => {
                let code = e.status().map(u16::from);
                // lettre's Display of an error carries the server's reply
                // text, never the password.
                let why = format!("SMTP: {e}");
                if e.is_transient()
                    || e.is_timeout()
                    || !(e.is_permanent()
                        || e.is_tls()
                        || e.is_client()
                        || e.is_transport_shutdown())
                {
                    Attempt::Retry(code, why)
                } else {
                    Attempt::Fatal(code, why)
                }
            }
        }
    }
}

/// `[orderflow] <text>`, naming the order when the text does not, on one
/// line and at most [`SUBJECT_MAX`] characters.
pub fn subject(event: &Event) -> String {
    let text: String = event.text.split_whitespace().collect::<Vec<_>>().join(" ");
    let what = match event.about_order() {
        Some(id) if !text.contains(id) => format!("Order {id}: {text}"),
        None if event.kind == "alert" => format!("Alert: {text}"),
        _ => text,
    };
    let mut s = format!("[orderflow] {what}");
    if s.chars().count() > SUBJECT_MAX {
        s = s.chars().take(SUBJECT_MAX - 1).collect::<String>() + "…";
    }
    s
}

/// The plain-text body.
pub fn body(channel: &str, event: &Event, console_url: Option<&str>) -> String {
    let mut b = String::new();
    b.push_str(event.text.trim());
    b.push_str("\n\n");
    if let Some(id) = event.about_order() {
        b.push_str(&format!("Order:   {id}\n"));
        if let Some(url) = console_url {
            b.push_str(&format!(
                "Open:    {}/#/orders/{}\n",
                url.trim_end_matches('/'),
                percent(id)
            ));
        }
    }
    b.push_str(&format!("What:    {}\n", event.kind));
    if let Some(at) = chrono::DateTime::from_timestamp(event.at, 0) {
        b.push_str(&format!(
            "When:    {}\n",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if !event.data.is_null() {
        let details = serde_json::to_string_pretty(&event.data).unwrap_or_default();
        b.push_str("Details:\n");
        for line in details.lines() {
            b.push_str("  ");
            b.push_str(line);
            b.push('\n');
        }
    }
    b.push_str(&format!(
        "\n-- \norderflow, notification channel \"{channel}\"\n"
    ));
    b
}

/// An order id for a URL fragment: anything beyond letters, digits and
/// `-._~` percent-encoded.
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{Kind, Secret};

    fn channel() -> ChannelConfig {
        ChannelConfig {
            kind: Kind::Email,
            host: Some("smtp.example.com".into()),
            from: Some("orderflow <alerts@example.com>".into()),
            to: vec!["ops@example.com".into()],
            ..ChannelConfig::default()
        }
    }

    #[test]
    fn an_email_channel_needs_a_server_a_sender_and_recipients() {
        assert!(
            channel().problems("m").is_empty(),
            "{:?}",
            channel().problems("m")
        );
        let p = ChannelConfig {
            kind: Kind::Email,
            ..ChannelConfig::default()
        }
        .problems("m");
        assert!(
            p.iter()
                .any(|m| m.contains("notify.channels.m") && m.contains("`host`")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("`from`")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("`to`")), "{p:?}");
        let bad = ChannelConfig {
            to: vec!["not an address".into()],
            from: Some("nope".into()),
            url: Some(Secret::new("https://x")),
            ..channel()
        }
        .problems("m");
        assert!(bad.iter().any(|m| m.contains("m.to[0]")), "{bad:?}");
        assert!(bad.iter().any(|m| m.contains("m.from")), "{bad:?}");
        assert!(
            bad.iter().any(|m| m.contains("m.url: only webhook")),
            "{bad:?}"
        );
        // A password in the clear only to this machine.
        let clear = ChannelConfig {
            security: Some(SmtpSecurity::None),
            username: Some("u".into()),
            password: Some(Secret::new("hunter22")),
            ..channel()
        };
        let p = clear.problems("m");
        assert!(p.iter().any(|m| m.contains("in the clear")), "{p:?}");
        assert!(p.iter().all(|m| !m.contains("hunter22")), "{p:?}");
        let local = ChannelConfig {
            host: Some("127.0.0.1".into()),
            ..clear
        };
        assert!(local.problems("m").is_empty(), "{:?}", local.problems("m"));
        let half = ChannelConfig {
            username: Some("u".into()),
            ..channel()
        };
        assert!(half
            .problems("m")
            .iter()
            .any(|m| m.contains("without `password`")));
    }

    #[test]
    fn a_password_from_the_environment_must_be_there() {
        let c = ChannelConfig {
            username: Some("u".into()),
            password_env: Some("SMTP_PASS_FOR_TEST".into()),
            ..channel()
        };
        let err = Mailer::new("m", &c, Duration::from_secs(1), |_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("SMTP_PASS_FOR_TEST is not set"), "{err}");
        assert!(Mailer::new("m", &c, Duration::from_secs(1), |_| Some("pw".into())).is_ok());
    }

    #[test]
    fn the_subject_names_the_alert_and_the_order() {
        let e = Event::new("out_of_stock", "SKU A is out of stock").order("5764");
        assert_eq!(subject(&e), "[orderflow] Order 5764: SKU A is out of stock");
        let e = Event::new("workflow", "Order 5764 is ready\nto pack").order("5764");
        assert_eq!(subject(&e), "[orderflow] Order 5764 is ready to pack");
        let e = Event::new("alert", "Low stock: A has 2 left");
        assert_eq!(subject(&e), "[orderflow] Alert: Low stock: A has 2 left");
        // A system alert about one order names it (from its data).
        let e = Event::new("alert", "Ship-by in 2h").data(serde_json::json!({"order_id": "77"}));
        assert_eq!(subject(&e), "[orderflow] Order 77: Ship-by in 2h");
        let long = Event::new("alert", "x".repeat(400));
        assert_eq!(subject(&long).chars().count(), SUBJECT_MAX);
        let b = body(
            "ops",
            &Event::new("out_of_stock", "SKU A is out")
                .order("57 64")
                .data(serde_json::json!({"sku": "A"})),
            Some("https://orders.example.com/"),
        );
        assert!(b.starts_with("SKU A is out\n\nOrder:   57 64\n"), "{b}");
        assert!(
            b.contains("Open:    https://orders.example.com/#/orders/57%2064\n"),
            "{b}"
        );
        assert!(b.contains("\"sku\": \"A\""), "{b}");
        assert!(b.contains("channel \"ops\""), "{b}");
    }
}
