//! A label API in the style of EasyPost and Shippo: create a shipment (the
//! answer lists rates), buy one rate (the answer is the label: tracking
//! number and label URL), void a label that has not shipped.
//!
//! Wire format (JSON, `Authorization: Bearer <key>` when a key is set):
//!
//! | Method & path | Body | Answer |
//! |---|---|---|
//! | `POST {base}/shipments` | [`CreateShipment`] | [`ShipmentData`] |
//! | `POST {base}/shipments/{id}/buy` | [`BuyRequest`], header `Idempotency-Key` | [`LabelData`] |
//! | `GET {base}/labels/{id}` | | [`LabelData`] |
//! | `POST {base}/labels/{id}/void` | | [`LabelData`] (`status: voided`) |
//!
//! Errors are `{"error": {"code", "message"}}` with an HTTP status that
//! decides the [`ErrorKind`] ([`status_kind`]). The buy is the one call that costs money, so
//! it always carries the caller's idempotency key; the shipment creation
//! carries `{key}/shipment`, so a replay finds the same shipment and then
//! the same label.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, ErrorKind};
use crate::tiktok::Secret;

/// An address on a label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelAddress {
    pub name: String,
    pub street1: String,
    pub street2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    /// ISO country code, e.g. `US`.
    pub country: String,
    pub phone: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parcel {
    pub weight_grams: u32,
}

/// `POST /shipments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateShipment {
    /// The caller's reference, e.g. the order id.
    pub reference: Option<String>,
    pub from: LabelAddress,
    pub to: LabelAddress,
    pub parcel: Parcel,
}

/// One way to ship a shipment, with its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub id: String,
    pub carrier: String,
    pub service: String,
    /// Decimal string, e.g. `"7.45"`.
    pub amount: String,
    pub currency: String,
    pub delivery_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentData {
    pub id: String,
    pub reference: Option<String>,
    pub rates: Vec<Rate>,
}

/// `POST /shipments/{id}/buy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyRequest {
    pub rate_id: String,
}

/// A bought label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelData {
    pub id: String,
    pub shipment_id: String,
    pub rate_id: String,
    pub carrier: String,
    pub service: String,
    pub tracking_number: String,
    pub label_url: String,
    pub amount: String,
    pub currency: String,
    /// `purchased` or `voided`.
    pub status: String,
    /// `pre_transit`, `in_transit` or `delivered`.
    pub tracking_status: String,
}

/// The error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ApiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// The label API client; cheap to clone.
#[derive(Clone)]
pub struct LabelApiClient {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl std::fmt::Debug for LabelApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelApiClient")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

impl LabelApiClient {
    /// `base_url` up to the version, e.g. `http://127.0.0.1:8787/labels/v1`;
    /// `timeout` bounds each request.
    pub fn new(base_url: &str, key: Secret, timeout: Duration) -> Result<LabelApiClient, Error> {
        match reqwest::Url::parse(base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(Error::InvalidConfig(vec![format!(
                    "shipping.label_api_url: {base_url:?} is not an http(s) URL"
                )]))
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Invalid(e.without_url().to_string()))?;
        Ok(LabelApiClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            key,
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        mut req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        if !self.key.is_empty() {
            req = req.bearer_auth(self.key.expose());
        }
        let fail = |kind, status, message: String| Error::Provider {
            op,
            kind,
            status,
            message,
        };
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Transient
            };
            fail(kind, None, e.without_url().to_string())
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Transient
            };
            fail(kind, Some(status.as_u16()), e.without_url().to_string())
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                fail(
                    ErrorKind::Transient,
                    Some(status.as_u16()),
                    format!("unreadable answer: {e}"),
                )
            });
        }
        let message = match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => format!("{}: {}", e.error.code, e.error.message),
            Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        };
        Err(fail(
            status_kind(status.as_u16()),
            Some(status.as_u16()),
            message,
        ))
    }

    /// Creates a shipment and returns its rates. With an idempotency key,
    /// a repeat returns the same shipment.
    pub async fn create_shipment(
        &self,
        body: &CreateShipment,
        idempotency_key: Option<&str>,
    ) -> Result<ShipmentData, Error> {
        let mut r = self
            .http
            .post(format!("{}/shipments", self.base))
            .json(body);
        if let Some(k) = idempotency_key {
            r = r.header("Idempotency-Key", k);
        }
        self.send("create_shipment", r).await
    }

    /// Buys `rate_id` of `shipment_id`. The same key returns the same label
    /// and is never charged twice.
    pub async fn buy(
        &self,
        shipment_id: &str,
        rate_id: &str,
        idempotency_key: &str,
    ) -> Result<LabelData, Error> {
        if idempotency_key.is_empty() {
            return Err(Error::Invalid(
                "a label purchase needs an idempotency key".into(),
            ));
        }
        let r = self
            .http
            .post(format!("{}/shipments/{}/buy", self.base, seg(shipment_id)?))
            .header("Idempotency-Key", idempotency_key)
            .json(&BuyRequest {
                rate_id: rate_id.to_string(),
            });
        self.send("buy", r).await
    }

    pub async fn label(&self, label_id: &str) -> Result<LabelData, Error> {
        let r = self
            .http
            .get(format!("{}/labels/{}", self.base, seg(label_id)?));
        self.send("get_label", r).await
    }

    /// Voids a label. Voiding a voided label answers it again (idempotent);
    /// a label already with the carrier is `rejected`, an unknown one
    /// `not_found`.
    pub async fn void(&self, label_id: &str) -> Result<LabelData, Error> {
        let r = self
            .http
            .post(format!("{}/labels/{}/void", self.base, seg(label_id)?));
        self.send("void", r).await
    }
}

/// The kind of an HTTP status the label API answered with.
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 | 410 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        400 | 422 => ErrorKind::Invalid,
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Rejected,
    }
}

/// A path segment: ids are plain tokens, never paths.
fn seg(id: &str) -> Result<&str, Error> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Invalid(format!("{id:?} is not a valid id")));
    }
    Ok(id)
}
