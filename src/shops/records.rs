//! What the `shops` tree holds: one record per shop, one per grant (the
//! token pair a seller's authorization gave, sealed), one per pending
//! authorization `state`. Every value is in the store's versioned envelope.

use serde::{Deserialize, Serialize};

/// Where a grant's token pair came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `[[tiktok.shops]]` in the configuration file.
    Config,
    /// The authorization callback (`/oauth/tiktok/callback`).
    Callback,
    /// `orderflow shops connect --code`.
    Code,
    /// A refresh of an earlier pair.
    Refresh,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Config => "config",
            TokenSource::Callback => "callback",
            TokenSource::Code => "code",
            TokenSource::Refresh => "refresh",
        }
    }
}

/// Whether orderflow talks to TikTok for a shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopStatus {
    Connected,
    /// Stopped by an operator (`shops disconnect`); its orders stay.
    Disconnected,
    /// The seller revoked the authorization (webhook type 6, or TikTok
    /// refusing its tokens); a new authorization reconnects it.
    Deauthorized,
}

impl ShopStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShopStatus::Connected => "connected",
            ShopStatus::Disconnected => "disconnected",
            ShopStatus::Deauthorized => "deauthorized",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopRecord {
    pub id: String,
    pub name: String,
    pub region: String,
    pub cipher: String,
    /// The key of the grant whose tokens its calls use.
    pub grant: String,
    pub status: ShopStatus,
    pub status_reason: String,
    pub status_changed_ms: i64,
    pub connected_ms: i64,
    /// Listed in the configuration file.
    pub from_config: bool,
    /// Fingerprint of the configured token pair last applied: a different
    /// one in the file is a newer pair (pasted by an operator) and wins.
    pub config_print: String,
    /// Requests per second TikTok allows for the shop.
    pub qps: f64,
}

/// A seller's authorization: the tokens (sealed), where they came from and
/// when they expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub key: String,
    pub open_id: String,
    pub seller_name: String,
    pub source: TokenSource,
    /// When this pair was obtained (ms): the newest pair wins.
    pub obtained_ms: i64,
    /// Sealed access token ([`super::secrets::Sealer`]).
    pub access: Vec<u8>,
    /// Sealed refresh token.
    pub refresh: Vec<u8>,
    /// Unix seconds, 0 when TikTok did not say (tokens from the file).
    pub access_expires_at: i64,
    pub refresh_expires_at: i64,
}

/// A one-time authorization `state` handed out with a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingState {
    pub created_ms: i64,
}

pub(crate) fn shop_key(id: &str) -> Vec<u8> {
    format!("s/{id}").into_bytes()
}

pub(crate) fn grant_key(key: &str) -> Vec<u8> {
    format!("g/{key}").into_bytes()
}

pub(crate) fn state_key(state: &str) -> Vec<u8> {
    format!("o/{state}").into_bytes()
}
