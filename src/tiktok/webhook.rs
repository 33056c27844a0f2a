//! Webhooks TikTok pushes to us: signature check and typed payloads.
//!
//! The daemon's webhook intake calls [`verify_and_parse`] on the raw body
//! and the `Authorization` header. The signature is lowercase hex
//! HMAC-SHA256 (key = app secret) over `app_key + raw body`, compared in
//! constant time. Payloads parse into [`Topic`]; a topic orderflow does not
//! know is kept as [`Topic::Other`] instead of being rejected, so TikTok
//! adding a topic never makes us answer non-200 and trigger its retries.

use serde::{Deserialize, Deserializer, Serialize};
use subtle::ConstantTimeEq;

use super::sign::webhook_signature;
use super::Error;
use crate::order::TiktokStatus;

/// Topic numbers (reference §5.3).
pub mod topics {
    pub const ORDER_STATUS_CHANGE: i64 = 1;
    pub const REVERSE_STATUS_UPDATE: i64 = 2;
    pub const RECIPIENT_ADDRESS_UPDATE: i64 = 3;
    pub const PACKAGE_UPDATE: i64 = 4;
    pub const PRODUCT_STATUS_CHANGE: i64 = 5;
    pub const SELLER_DEAUTHORIZATION: i64 = 6;
    pub const UPCOMING_AUTHORIZATION_EXPIRATION: i64 = 7;
    pub const CANCELLATION_STATUS_CHANGE: i64 = 11;
    pub const RETURN_STATUS_CHANGE: i64 = 12;
    pub const PRODUCT_INFORMATION_CHANGE: i64 = 15;
    pub const PRODUCT_CREATION: i64 = 16;
}

/// TikTok sends ids as strings, but some samples show numbers: take both.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(i64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

/// The envelope of every push, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    #[serde(rename = "type")]
    pub kind: i64,
    /// Dedupe key; some older samples omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_notification_id: Option<String>,
    /// Empty for pushes about a creator or a seller account rather than a
    /// shop (they carry `creator_open_id` or `seller_open_id` instead).
    #[serde(default, deserialize_with = "id_string")]
    pub shop_id: String,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub timestamp: i64,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Topic 1. `order_status` uses the webhook spelling (`CANCEL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStatusChange {
    #[serde(deserialize_with = "id_string")]
    pub order_id: String,
    pub order_status: String,
    #[serde(default)]
    pub is_on_hold_order: Option<bool>,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

impl OrderStatusChange {
    /// The status, accepting both `CANCEL` and `CANCELLED`.
    pub fn status(&self) -> Option<TiktokStatus> {
        TiktokStatus::parse(&self.order_status)
    }
}

/// Topic 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientAddressUpdate {
    #[serde(deserialize_with = "id_string")]
    pub order_id: String,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

/// Topic 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageUpdate {
    #[serde(default)]
    pub sc_type: String,
    #[serde(default)]
    pub role_type: Option<String>,
    #[serde(default)]
    pub package_list: Vec<PackageUpdateItem>,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageUpdateItem {
    #[serde(deserialize_with = "id_string")]
    pub package_id: String,
    #[serde(default)]
    pub order_id_list: Vec<String>,
}

/// Topic 5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductStatusChange {
    #[serde(deserialize_with = "id_string")]
    pub product_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub suspended_reason: Option<String>,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

/// Topics 6 and 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationNotice {
    #[serde(default)]
    pub message: String,
    #[serde(default, deserialize_with = "super::dto::lenient::opt_i64")]
    pub expiration_time: Option<i64>,
}

/// Topic 11.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancellationStatusChange {
    #[serde(deserialize_with = "id_string")]
    pub order_id: String,
    #[serde(default)]
    pub cancellations_role: Option<String>,
    pub cancel_status: String,
    #[serde(default)]
    pub cancel_id: Option<String>,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub create_time: i64,
}

/// Topic 12.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnStatusChange {
    #[serde(deserialize_with = "id_string")]
    pub order_id: String,
    #[serde(default)]
    pub return_role: Option<String>,
    #[serde(default)]
    pub return_type: Option<String>,
    pub return_status: String,
    #[serde(default)]
    pub return_id: Option<String>,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub create_time: i64,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

/// PRODUCT_INFORMATION_CHANGE (15) and PRODUCT_CREATION (16): which product
/// to read again (`product_id` a string in 15's example, a number in 16's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductChange {
    #[serde(deserialize_with = "id_string")]
    pub product_id: String,
    #[serde(default, deserialize_with = "super::dto::lenient::i64")]
    pub update_time: i64,
}

/// The push, by topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Topic {
    OrderStatusChange(OrderStatusChange),
    RecipientAddressUpdate(RecipientAddressUpdate),
    PackageUpdate(PackageUpdate),
    ProductStatusChange(ProductStatusChange),
    SellerDeauthorization(AuthorizationNotice),
    UpcomingAuthorizationExpiration(AuthorizationNotice),
    CancellationStatusChange(CancellationStatusChange),
    ReturnStatusChange(ReturnStatusChange),
    /// 15 or 16: a product changed or was created.
    ProductChange(ProductChange),
    /// A topic orderflow does not handle (or a known one with a shape we
    /// could not read), kept raw.
    Other {
        kind: i64,
        data: serde_json::Value,
    },
}

/// A verified, parsed push.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub notification_id: Option<String>,
    pub shop_id: String,
    pub timestamp: i64,
    pub topic: Topic,
}

impl WebhookEvent {
    /// The order the push is about, if any.
    pub fn order_id(&self) -> Option<&str> {
        match &self.topic {
            Topic::OrderStatusChange(d) => Some(&d.order_id),
            Topic::RecipientAddressUpdate(d) => Some(&d.order_id),
            Topic::CancellationStatusChange(d) => Some(&d.order_id),
            Topic::ReturnStatusChange(d) => Some(&d.order_id),
            _ => None,
        }
    }
}

/// Checks the `Authorization` header in constant time. Surrounding
/// whitespace is ignored; hex case must match TikTok's (lowercase), but an
/// uppercase header is accepted too.
pub fn verify_signature(app_key: &str, app_secret: &str, body: &[u8], authorization: &str) -> bool {
    let expected = webhook_signature(app_key, app_secret, body);
    let got = authorization.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(got.as_bytes()).into()
}

fn typed<T: serde::de::DeserializeOwned>(
    kind: i64,
    data: &serde_json::Value,
    wrap: fn(T) -> Topic,
) -> Topic {
    match serde_json::from_value::<T>(data.clone()) {
        Ok(t) => wrap(t),
        Err(_) => Topic::Other {
            kind,
            data: data.clone(),
        },
    }
}

/// Parses a push body (already verified).
pub fn parse(body: &[u8]) -> Result<WebhookEvent, Error> {
    let env: WebhookEnvelope =
        serde_json::from_slice(body).map_err(|e| Error::WebhookPayload(e.to_string()))?;
    let d = &env.data;
    let k = env.kind;
    let topic = match k {
        topics::ORDER_STATUS_CHANGE => typed(k, d, Topic::OrderStatusChange),
        topics::RECIPIENT_ADDRESS_UPDATE => typed(k, d, Topic::RecipientAddressUpdate),
        topics::PACKAGE_UPDATE => typed(k, d, Topic::PackageUpdate),
        topics::PRODUCT_STATUS_CHANGE => typed(k, d, Topic::ProductStatusChange),
        topics::SELLER_DEAUTHORIZATION => typed(k, d, Topic::SellerDeauthorization),
        topics::UPCOMING_AUTHORIZATION_EXPIRATION => {
            typed(k, d, Topic::UpcomingAuthorizationExpiration)
        }
        topics::CANCELLATION_STATUS_CHANGE => typed(k, d, Topic::CancellationStatusChange),
        topics::RETURN_STATUS_CHANGE => typed(k, d, Topic::ReturnStatusChange),
        topics::PRODUCT_INFORMATION_CHANGE | topics::PRODUCT_CREATION => {
            typed(k, d, Topic::ProductChange)
        }
        _ => Topic::Other {
            kind: k,
            data: d.clone(),
        },
    };
    Ok(WebhookEvent {
        notification_id: env.tts_notification_id,
        shop_id: env.shop_id,
        timestamp: env.timestamp,
        topic,
    })
}

/// What the intake calls: rejects a bad signature (answer 401 with an empty
/// body), then parses.
pub fn verify_and_parse(
    app_key: &str,
    app_secret: &str,
    body: &[u8],
    authorization: &str,
) -> Result<WebhookEvent, Error> {
    if !verify_signature(app_key, app_secret, body, authorization) {
        return Err(Error::WebhookSignature);
    }
    parse(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_and_parses_order_status_change_with_cancel_spelling() {
        let body = br#"{"type":1,"tts_notification_id":"n1","shop_id":"7000","timestamp":1700000000,
            "data":{"order_id":"576","order_status":"CANCEL","is_on_hold_order":false,"update_time":1700000000}}"#;
        let sig = webhook_signature("key", "secret", body);
        let ev = verify_and_parse("key", "secret", body, &sig).unwrap();
        assert_eq!(ev.notification_id.as_deref(), Some("n1"));
        assert_eq!(ev.order_id(), Some("576"));
        match &ev.topic {
            Topic::OrderStatusChange(d) => assert_eq!(d.status(), Some(TiktokStatus::Cancelled)),
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            verify_and_parse("key", "other", body, &sig),
            Err(Error::WebhookSignature)
        ));
        let mut changed = body.to_vec();
        changed[10] = b'2';
        assert!(!verify_signature("key", "secret", &changed, &sig));
    }

    #[test]
    fn unknown_topic_and_missing_notification_id_are_accepted() {
        let ev = parse(br#"{"type":99,"shop_id":7000,"timestamp":1,"data":{"x":1}}"#).unwrap();
        assert_eq!(ev.shop_id, "7000");
        assert_eq!(ev.notification_id, None);
        assert!(matches!(ev.topic, Topic::Other { kind: 99, .. }));
        let ev = parse(
            br#"{"type":3,"shop_id":"1","timestamp":1,"data":{"order_id":"9","update_time":2}}"#,
        )
        .unwrap();
        assert!(matches!(ev.topic, Topic::RecipientAddressUpdate(_)));
        assert!(parse(b"not json").is_err());
    }
}
