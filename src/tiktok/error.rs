//! The one error type of the `tiktok` module.
//!
//! Callers branch on the variant: a [`Error::Config`] means orderflow is
//! misconfigured (bad secret, bad token, missing scope) and no retry will
//! help; [`Error::Api`] is a business answer from TikTok (e.g. "cancel
//! reason not valid"); [`Error::RetriesExhausted`] means the transient
//! failures outlasted the retry budget. No variant ever carries a secret or
//! a token: transport errors are stripped of their URL, which may hold them.

/// Envelope codes with a fixed meaning for the client (reference §3).
pub mod codes {
    pub const OK: i64 = 0;
    pub const TOO_MANY_REQUESTS: i64 = 36009002;
    pub const INTERNAL_ERROR: i64 = 36009003;
    pub const INVALID_REQUEST: i64 = 36009004;
    pub const INVALID_SIGN: i64 = 106001;
    pub const TOKEN_EXPIRED: i64 = 105002;
    pub const SCOPE_MISSING: i64 = 105005;
    pub const TOKEN_WRONG_SHOP: i64 = 101000;
    pub const CIPHER_MISSING: i64 = 106013;
    pub const ALREADY_SHIPPED: [i64; 3] = [21011040, 21008099, 11006021];
    pub const INVALID_TRACKING: i64 = 21011022;
    pub const DUPLICATE_TRACKING: i64 = 21011025;
    pub const CANCEL_REASON_INVALID: i64 = 25001021;
    pub const ORDER_FINISHED: i64 = 25001051;
    pub const NOT_THIS_SELLER: i64 = 21008111;
    pub const REFRESH_TOKEN_EXPIRED: i64 = 36004001;
    pub const AUTH_RECORD_MISSING: i64 = 36004005;
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
    },
    #[error("cannot decode the response of {endpoint}: {message}")]
    Decode {
        endpoint: &'static str,
        message: String,
    },
    #[error("shop {0} is not configured")]
    UnknownShop(String),
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
            Error::Config { .. } | Error::InvalidConfig(_) | Error::TokenRefresh { .. }
        )
    }

    /// The envelope code, when TikTok answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Config { code, .. } | Error::Api { code, .. } => Some(*code),
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
            } => Error::RetriesExhausted {
                endpoint,
                attempts: *attempts,
                last: last.clone(),
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
            Error::Transport { endpoint, message } => Error::Transport {
                endpoint,
                message: message.clone(),
            },
            Error::Decode { endpoint, message } => Error::Decode {
                endpoint,
                message: message.clone(),
            },
            Error::UnknownShop(s) => Error::UnknownShop(s.clone()),
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
            message: e.without_url().to_string(),
        }
    }
}
