//! The one error type of the `tiktok` module.
//!
//! Callers branch on the variant: a [`Error::Config`] means orderflow is
//! misconfigured (bad secret, bad token, missing scope) and no retry will
//! help; [`Error::Api`] is a business answer from TikTok (e.g. "cancel
//! reason not valid"); [`Error::RetriesExhausted`] means the transient
//! failures outlasted the retry budget. No variant ever carries a secret or
//! a token: transport errors are stripped of their URL, which may hold them.

/// What the last failed attempt of a call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastFailure {
    /// Throttled (HTTP 429 / 36009002).
    Throttled,
    /// No answer in time.
    TimedOut,
    /// A 5xx, an internal error, a dropped connection.
    Transient,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TikTok refused our identity (signature, app key, token, scope). Fatal:
    /// fix the `[tiktok]` configuration; retrying only burns quota.
    #[error("TikTok rejected the credentials on {endpoint} (code {code}: {message}); check app_key, app_secret and the shop's tokens")]
    Config {
        endpoint: &'static str,
        code: i64,
        message: String,
    },
    /// The app's or shop's setup on TikTok refuses the call (API version
    /// retired, scope not granted, IP not allowed, wrong region): fatal for
    /// the call, counted in `orderflow_tiktok_configuration_errors_total`
    /// for one alert.
    #[error("TikTok refuses {endpoint} for the app's or shop's setup (code {code}: {message}); fix the app in Partner Center or the [tiktok] configuration")]
    Configuration {
        endpoint: &'static str,
        code: i64,
        message: String,
    },
    /// A non-zero envelope code that is not transient: TikTok's business
    /// answer to this request.
    #[error("TikTok answered {endpoint} with code {code}: {message} (request {request_id})")]
    Api {
        endpoint: &'static str,
        code: i64,
        message: String,
        request_id: String,
    },
    /// The call kept failing transiently until its retry budget ran out.
    #[error("{endpoint} failed {attempts} times; last: {last}")]
    RetriesExhausted {
        endpoint: &'static str,
        attempts: u32,
        last: String,
        /// What the last attempt met.
        last_failure: LastFailure,
    },
    /// Refreshing the access token failed; the seller must re-authorize.
    #[error("refreshing the access token of shop {shop_id} failed (code {code}: {message})")]
    TokenRefresh {
        shop_id: String,
        code: i64,
        message: String,
    },
    #[error("HTTP transport error on {endpoint}: {message}")]
    Transport {
        endpoint: &'static str,
        message: String,
        /// No answer in time (the request may have taken effect).
        timed_out: bool,
    },
    #[error("cannot decode the response of {endpoint}: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    #[error("shop {0} is not connected (not configured, disconnected or deauthorized)")]
    UnknownShop(String),
    /// The shop's market is unknown, so no cancel reason can be chosen.
    #[error("the market of shop {shop_id} is unknown (region {region:?}); set `region` in its [[tiktok.shops]] entry")]
    UnknownMarket { shop_id: String, region: String },
    /// A cancel reason TikTok would refuse for this order: nothing is sent.
    #[error("{reason:?} is not a cancel reason TikTok takes for a {market:?} order in status {status}; valid: {}", if .valid.is_empty() { "none (a seller cannot cancel an order in this status)".to_string() } else { .valid.join(", ") })]
    CancelReason {
        reason: String,
        market: super::reasons::Market,
        status: String,
        /// `kind (key)` of each valid reason.
        valid: Vec<String>,
    },
    #[error("shop {0} is not among the authorized shops, so its cipher is unknown")]
    NoCipher(String),
    #[error("order {0} was not returned by order detail")]
    OrderNotFound(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid [tiktok] configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    #[error("webhook signature does not match")]
    WebhookSignature,
    #[error("webhook payload is not valid: {0}")]
    WebhookPayload(String),
    #[error("the TikTok gateway has stopped")]
    GatewayStopped,
    #[error(transparent)]
    Order(#[from] crate::order::Error),
}

impl Error {
    /// Whether this error is a configuration problem an operator must fix.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::Configuration { .. }
                | Error::InvalidConfig(_)
                | Error::TokenRefresh { .. }
        )
    }

    /// The envelope code, when TikTok answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Config { code, .. }
            | Error::Configuration { code, .. }
            | Error::Api { code, .. } => Some(*code),
            Error::TokenRefresh { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A copy for fanning one failed batch out to its waiters (the wrapped
    /// order error is not `Clone`, so it becomes its message).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Config {
                endpoint,
                code,
                message,
            } => Error::Config {
                endpoint,
                code: *code,
                message: message.clone(),
            },
            Error::Configuration {
                endpoint,
                code,
                message,
            } => Error::Configuration {
                endpoint,
                code: *code,
                message: message.clone(),
            },
            Error::Api {
                endpoint,
                code,
                message,
                request_id,
            } => Error::Api {
                endpoint,
                code: *code,
                message: message.clone(),
                request_id: request_id.clone(),
            },
            Error::RetriesExhausted {
                endpoint,
                attempts,
                last,
                last_failure,
            } => Error::RetriesExhausted {
                endpoint,
                attempts: *attempts,
                last: last.clone(),
                last_failure: *last_failure,
            },
            Error::TokenRefresh {
                shop_id,
                code,
                message,
            } => Error::TokenRefresh {
                shop_id: shop_id.clone(),
                code: *code,
                message: message.clone(),
            },
            Error::Transport {
                endpoint,
                message,
                timed_out,
            } => Error::Transport {
                endpoint,
                message: message.clone(),
                timed_out: *timed_out,
            },
            Error::Decode { endpoint, message } => Error::Decode {
                endpoint,
                message: message.clone(),
            },
            Error::UnknownShop(s) => Error::UnknownShop(s.clone()),
            Error::UnknownMarket { shop_id, region } => Error::UnknownMarket {
                shop_id: shop_id.clone(),
                region: region.clone(),
            },
            Error::CancelReason {
                reason,
                market,
                status,
                valid,
            } => Error::CancelReason {
                reason: reason.clone(),
                market: *market,
                status: status.clone(),
                valid: valid.clone(),
            },
            Error::NoCipher(s) => Error::NoCipher(s.clone()),
            Error::OrderNotFound(s) => Error::OrderNotFound(s.clone()),
            Error::InvalidRequest(s) => Error::InvalidRequest(s.clone()),
            Error::InvalidConfig(v) => Error::InvalidConfig(v.clone()),
            Error::WebhookSignature => Error::WebhookSignature,
            Error::WebhookPayload(s) => Error::WebhookPayload(s.clone()),
            Error::GatewayStopped => Error::GatewayStopped,
            Error::Order(e) => Error::InvalidRequest(e.to_string()),
        }
    }

    pub(crate) fn transport(endpoint: &'static str, e: reqwest::Error) -> Error {
        // The URL may carry `app_secret`/`refresh_token` (auth host): drop it.
        Error::Transport {
            endpoint,
            timed_out: e.is_timeout(),
            message: e.without_url().to_string(),
        }
    }
}
