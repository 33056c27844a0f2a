//! The error kinds workflows branch on (`retry.on`, `catch`), and how the
//! shipping providers' failures map onto them.

use serde::Serialize;

/// A failure as the workflow language sees it (see
/// `crate::workflow::actions::ALL_ERRORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth retrying: 5xx, connection failures, an exhausted retry budget.
    Transient,
    /// No answer in time. The request may have taken effect: retry with the
    /// same idempotency key.
    Timeout,
    /// Throttled (HTTP 429); retry later.
    RateLimited,
    /// The request itself is wrong (bad address, unknown rate, bad input).
    Invalid,
    /// The provider refused (credentials, payment, state conflict).
    Rejected,
    /// The thing does not exist (label, shipment, order).
    NotFound,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Rejected => "rejected",
            ErrorKind::NotFound => "not_found",
        }
    }

    /// The kind of an HTTP status a provider answered with.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            404 | 410 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            400 | 422 => ErrorKind::Invalid,
            s if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a TikTok gateway error.
pub fn tiktok_kind(e: &crate::tiktok::Error) -> ErrorKind {
    use crate::tiktok::{codes, Error as T, LastFailure};
    match e {
        T::RetriesExhausted { last_failure, .. } => match last_failure {
            LastFailure::TimedOut => ErrorKind::Timeout,
            LastFailure::Throttled => ErrorKind::RateLimited,
            LastFailure::Transient => ErrorKind::Transient,
        },
        T::Transport {
            timed_out: true, ..
        } => ErrorKind::Timeout,
        T::Transport { .. } | T::Decode { .. } | T::GatewayStopped => ErrorKind::Transient,
        T::Api { code, .. } => match *code {
            codes::NOT_THIS_SELLER => ErrorKind::NotFound,
            codes::TOO_MANY_REQUESTS => ErrorKind::RateLimited,
            codes::INTERNAL_ERROR => ErrorKind::Transient,
            codes::INVALID_TRACKING | codes::DUPLICATE_TRACKING => ErrorKind::Invalid,
            _ => ErrorKind::Rejected,
        },
        T::OrderNotFound(_) => ErrorKind::NotFound,
        T::InvalidRequest(_)
        | T::Order(_)
        | T::WebhookPayload(_)
        | T::UnknownMarket { .. }
        | T::CancelReason { .. } => ErrorKind::Invalid,
        T::Config { .. }
        | T::Configuration { .. }
        | T::InvalidConfig(_)
        | T::TokenRefresh { .. }
        | T::UnknownShop(_)
        | T::NoCipher(_)
        | T::WebhookSignature => ErrorKind::Rejected,
    }
}
