//! Shippo's REST API, as Shippo documents it
//! (<https://docs.goshippo.com/shippoapi/public-api/>), and its HTTP
//! client. The wire types are shared with the simulator
//! (`crate::simulator::carriers`); official examples are in
//! `tests/fixtures/shippo/` with their sources.
//!
//! | Call | Method & path | Body → answer |
//! |---|---|---|
//! | create a shipment (its rates) | `POST /shipments/` | [`CreateShipment`] (`metadata` carries the order's reference) → [`Shipment`] |
//! | recent shipments | `GET /shipments/?object_created_gte=…&results=…&page=…` | [`List`] of [`Shipment`] |
//! | buy a rate | `POST /transactions/` | `{rate, label_file_type, async: false, metadata}` → [`Transaction`] |
//! | a rate's purchases | `GET /transactions/?rate=…` | [`List`] of [`Transaction`] |
//! | refund | `POST /refunds/` | `{transaction, async: false}` → [`RefundObject`] |
//! | tracking | `GET /tracks/{carrier}/{tracking_number}` | [`Track`] |
//!
//! Authentication is `Authorization: ShippoToken <key>`. Errors are either
//! `{"detail": "…"}` or field errors (`{"rate": ["This field is
//! required."]}`); the status decides the [`ErrorKind`]. A rate can be
//! bought twice (two labels, two charges): [`super::purchase`] looks the
//! order's reference up before buying. Shippo does not sign webhooks; the
//! registered URL carries a secret token ([`verify_token`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::provider::{
    Bought, LabelAddress, LabelFormat, ProviderKind, Quote, Rate as NeutralRate, Refund,
    ShipmentRequest,
};
use super::rest::{seg, Rest};
use super::{Error, ErrorKind};
use crate::order::Money;
use crate::tiktok::Secret;

/// Shippo's production API.
pub const BASE_URL: &str = "https://api.goshippo.com";
/// The API version orderflow speaks (`SHIPPO-API-VERSION`).
pub const API_VERSION: &str = "2018-02-08";

/// An address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub name: String,
    pub company: String,
    pub street1: String,
    pub street2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
    pub phone: String,
    pub email: String,
}

impl From<&LabelAddress> for Address {
    fn from(a: &LabelAddress) -> Address {
        Address {
            name: a.name.clone(),
            company: a.company.clone(),
            street1: a.street1.clone(),
            street2: a.street2.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            zip: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone(),
            email: a.email.clone(),
        }
    }
}

/// A parcel: decimal strings with their units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parcel {
    pub length: String,
    pub width: String,
    pub height: String,
    /// `cm`, `in`, `ft`, `mm`, `m`, `yd`.
    pub distance_unit: String,
    pub weight: String,
    /// `g`, `oz`, `lb`, `kg`.
    pub mass_unit: String,
}

/// `POST /shipments/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateShipment {
    pub address_from: Address,
    pub address_to: Address,
    pub parcels: Vec<Parcel>,
    #[serde(rename = "async")]
    pub is_async: bool,
    pub metadata: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceLevel {
    pub name: String,
    pub token: String,
    pub terms: String,
}

/// A rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rate {
    pub object_id: String,
    pub object_created: Option<String>,
    pub object_owner: Option<String>,
    pub shipment: String,
    pub attributes: Vec<String>,
    /// Decimal string.
    pub amount: String,
    pub currency: String,
    pub amount_local: Option<String>,
    pub currency_local: Option<String>,
    /// The carrier, e.g. `USPS`.
    pub provider: String,
    pub provider_image_75: Option<String>,
    pub provider_image_200: Option<String>,
    pub servicelevel: ServiceLevel,
    pub estimated_days: Option<u32>,
    /// Older answers say `days`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    pub arrives_by: Option<String>,
    pub duration_terms: Option<String>,
    pub messages: Vec<Value>,
    pub carrier_account: Option<String>,
    pub test: Option<bool>,
    pub zone: Option<String>,
}

/// A shipment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shipment {
    pub object_id: String,
    pub object_created: Option<String>,
    pub object_updated: Option<String>,
    pub object_owner: Option<String>,
    /// `WAITING`, `QUEUED`, `SUCCESS`, `ERROR`.
    pub status: String,
    pub address_from: Option<Value>,
    pub address_to: Option<Value>,
    pub address_return: Option<Value>,
    pub parcels: Vec<Value>,
    pub shipment_date: Option<String>,
    pub customs_declaration: Option<Value>,
    pub extra: Option<Value>,
    pub carrier_accounts: Vec<Value>,
    pub rates: Vec<Rate>,
    pub messages: Vec<Value>,
    pub metadata: String,
    pub test: Option<bool>,
}

/// `POST /transactions/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateTransaction {
    pub rate: String,
    /// `PNG`, `PNG_2.3x7.5`, `PDF`, `PDF_2.3x7.5`, `PDF_4x6`, `PDF_4x8`,
    /// `PDF_A4`, `PDF_A5`, `PDF_A6`, `ZPLII`.
    pub label_file_type: String,
    #[serde(rename = "async")]
    pub is_async: bool,
    pub metadata: String,
}

/// A transaction: a bought label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transaction {
    pub object_id: String,
    /// `VALID` or `INVALID`.
    pub object_state: String,
    /// `WAITING`, `QUEUED`, `SUCCESS`, `ERROR`, `REFUNDED`,
    /// `REFUNDPENDING`, `REFUNDREJECTED`.
    pub status: String,
    pub object_created: Option<String>,
    pub object_updated: Option<String>,
    pub object_owner: Option<String>,
    pub test: Option<bool>,
    /// The rate's `object_id`.
    pub rate: Value,
    pub tracking_number: String,
    pub tracking_status: Option<Value>,
    pub tracking_history: Vec<Value>,
    pub tracking_url_provider: String,
    pub eta: Option<String>,
    pub label_url: String,
    pub commercial_invoice_url: Option<String>,
    pub messages: Vec<Value>,
    pub order: Option<Value>,
    pub metadata: String,
    pub parcel: Option<String>,
}

impl Transaction {
    /// The rate bought, whether answered as an id or an object.
    pub fn rate_id(&self) -> String {
        match &self.rate {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("object_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct List<T> {
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// `POST /refunds/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateRefund {
    pub transaction: String,
    #[serde(rename = "async")]
    pub is_async: bool,
}

/// A refund.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefundObject {
    pub object_id: String,
    pub object_created: Option<String>,
    pub object_updated: Option<String>,
    pub object_owner: Option<String>,
    /// `QUEUED`, `PENDING`, `SUCCESS`, `ERROR`.
    pub status: String,
    pub transaction: String,
    pub test: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Substatus {
    pub code: String,
    pub text: String,
    pub action_required: bool,
}

/// A tracking status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingStatus {
    pub object_created: Option<String>,
    pub object_updated: Option<String>,
    pub object_id: Option<String>,
    /// `UNKNOWN`, `PRE_TRANSIT`, `TRANSIT`, `DELIVERED`, `RETURNED`,
    /// `FAILURE`.
    pub status: String,
    pub status_details: Option<String>,
    pub status_date: Option<String>,
    pub substatus: Option<Substatus>,
    pub location: Option<Value>,
}

/// A track.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Track {
    pub carrier: String,
    pub tracking_number: String,
    pub address_from: Option<Value>,
    pub address_to: Option<Value>,
    pub eta: Option<String>,
    pub original_eta: Option<String>,
    pub servicelevel: Option<ServiceLevel>,
    pub metadata: Option<String>,
    pub tracking_status: Option<TrackingStatus>,
    pub tracking_history: Vec<TrackingStatus>,
    pub transaction: Option<String>,
    pub test: Option<bool>,
}

/// A webhook's body: `{event, test, data}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookEvent {
    /// e.g. `track_updated`, `transaction_created`.
    pub event: String,
    pub test: bool,
    pub data: Value,
}

/// Shippo does not sign webhooks: the URL registered with it carries a
/// secret token (`…/webhooks/shippo?token=<webhook_secret>`), checked in
/// constant time.
pub fn verify_token(secret: &str, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match token {
        Some(t) if !secret.is_empty() => t.as_bytes().ct_eq(secret.as_bytes()).into(),
        _ => false,
    }
}

/// Shippo's token for a label format.
pub fn file_type(f: LabelFormat) -> &'static str {
    match f {
        LabelFormat::Pdf => "PDF_4x6",
        LabelFormat::Png => "PNG",
        LabelFormat::Zpl => "ZPLII",
    }
}

/// The Shippo client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    rest: Rest,
}

/// The text of an error body: `detail`, or the field errors.
pub fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => {
            if let Some(d) = o.get("detail").and_then(Value::as_str) {
                return d.to_string();
            }
            o.iter()
                .map(|(k, v)| match v {
                    Value::Array(a) => format!(
                        "{k}: {}",
                        a.iter()
                            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

impl Client {
    /// `base_url`, e.g. `https://api.goshippo.com`.
    /// At most `concurrency` requests in flight.
    pub fn new(
        base_url: &str,
        key: Secret,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Client, Error> {
        Ok(Client {
            rest: Rest::new(ProviderKind::Shippo, base_url, key, timeout, concurrency)?,
        })
    }

    /// Creates a shipment with the order's reference as its `metadata`.
    pub async fn create_shipment(&self, req: &ShipmentRequest) -> Result<Quote, Error> {
        let body = CreateShipment {
            address_from: (&req.from).into(),
            address_to: (&req.to).into(),
            parcels: vec![Parcel {
                length: "10".into(),
                width: "8".into(),
                height: "4".into(),
                distance_unit: "in".into(),
                weight: req.weight_grams.max(1).to_string(),
                mass_unit: "g".into(),
            }],
            is_async: false,
            metadata: req.reference.clone(),
        };
        let s: Shipment = self
            .rest
            .send("create_shipment", self.rest.post("/shipments/").json(&body))
            .await?;
        Ok(quote(s, None))
    }

    /// A purchase that may have happened: the recorded rate's successful
    /// transaction (`GET /transactions/?rate=`), else the recorded
    /// shipment, else the shipment carrying the reference.
    pub async fn find(&self, st: &super::provider::Started<'_>) -> Result<Option<Quote>, Error> {
        if let Some(shipment_id) = st.shipment_id {
            let s: Shipment = self
                .rest
                .send(
                    "get_shipment",
                    self.rest.get(&format!("/shipments/{}", seg(shipment_id)?)),
                )
                .await?;
            let t = match st.rate_id {
                Some(rate_id) => self.purchase_of_rate(rate_id).await?,
                None => self.purchase_of(&s).await?,
            };
            return Ok(Some(quote(s, t)));
        }
        self.find_by_reference(st.reference, st.since_ms).await
    }

    /// The shipment carrying `reference`, created since `since_ms`, with
    /// its purchase if one succeeded. Shippo filters lists by creation time
    /// only, so this reads the shipments created since the purchase started
    /// (100 a page) and then that shipment's transactions.
    pub async fn find_by_reference(
        &self,
        reference: &str,
        since_ms: i64,
    ) -> Result<Option<Quote>, Error> {
        // A minute's slack for clocks that disagree.
        let since = chrono::DateTime::from_timestamp_millis(since_ms - 60_000)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut page = 1u32;
        loop {
            let l: List<Shipment> = self
                .rest
                .send(
                    "list_shipments",
                    self.rest.get("/shipments/").query(&[
                        ("object_created_gte", since.as_str()),
                        ("results", "100"),
                        ("page", &page.to_string()),
                    ]),
                )
                .await?;
            if let Some(s) = l.results.into_iter().find(|s| s.metadata == reference) {
                let t = self.purchase_of(&s).await?;
                return Ok(Some(quote(s, t)));
            }
            if l.next.is_none() || page >= 50 {
                return Ok(None);
            }
            page += 1;
        }
    }

    /// The successful purchase of one of a shipment's rates, if any.
    async fn purchase_of(&self, s: &Shipment) -> Result<Option<Transaction>, Error> {
        for r in &s.rates {
            if let Some(t) = self.purchase_of_rate(&r.object_id).await? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// The successful purchase of a rate, if any.
    async fn purchase_of_rate(&self, rate_id: &str) -> Result<Option<Transaction>, Error> {
        let l: List<Transaction> = self
            .rest
            .send(
                "list_transactions",
                self.rest
                    .get("/transactions/")
                    .query(&[("rate", rate_id), ("results", "25")]),
            )
            .await?;
        Ok(l.results
            .into_iter()
            .find(|t| t.status == "SUCCESS" && !t.tracking_number.is_empty()))
    }

    /// Buys a rate (synchronously: `async: false`).
    pub async fn buy(
        &self,
        quote: &Quote,
        rate: &NeutralRate,
        format: LabelFormat,
    ) -> Result<Bought, Error> {
        let t: Transaction = self
            .rest
            .send(
                "buy",
                self.rest.post("/transactions/").json(&CreateTransaction {
                    rate: rate.id.clone(),
                    label_file_type: file_type(format).into(),
                    is_async: false,
                    metadata: quote.reference.clone().unwrap_or_default(),
                }),
            )
            .await?;
        if t.status != "SUCCESS" {
            let why = t
                .messages
                .iter()
                .map(|m| {
                    m.get("text")
                        .and_then(Value::as_str)
                        .map_or_else(|| m.to_string(), str::to_string)
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(self.rest.fail(
                "buy",
                if t.status == "ERROR" {
                    ErrorKind::Rejected
                } else {
                    ErrorKind::Transient
                },
                format!("transaction {} is {}: {why}", t.object_id, t.status),
            ));
        }
        Ok(bought(&quote.shipment_id, Some(rate), &t))
    }

    /// Refunds a label (`async: false`).
    pub async fn refund(&self, transaction_id: &str) -> Result<Refund, Error> {
        let r: RefundObject = self
            .rest
            .send(
                "refund",
                self.rest.post("/refunds/").json(&CreateRefund {
                    transaction: transaction_id.to_string(),
                    is_async: false,
                }),
            )
            .await?;
        Ok(match r.status.as_str() {
            "QUEUED" | "PENDING" | "SUCCESS" => Refund::Accepted(r.status),
            other => Refund::Refused(format!("refund {} is {other}", r.object_id)),
        })
    }

    pub async fn track(&self, carrier: &str, tracking_number: &str) -> Result<Track, Error> {
        self.rest
            .send(
                "track",
                self.rest.get(&format!(
                    "/tracks/{}/{}",
                    seg(&carrier.to_ascii_lowercase())?,
                    seg(tracking_number)?
                )),
            )
            .await
    }

    /// Downloads a label (Shippo's label URLs need no key).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, Error> {
        self.rest.download(url).await
    }
}

fn neutral(r: &Rate) -> NeutralRate {
    NeutralRate {
        id: r.object_id.clone(),
        carrier: r.provider.clone(),
        service: r.servicelevel.name.clone(),
        amount: Money::parse(&r.amount),
        currency: r.currency.clone(),
        delivery_days: r.estimated_days.or(r.days),
    }
}

fn bought(shipment_id: &str, rate: Option<&NeutralRate>, t: &Transaction) -> Bought {
    Bought {
        label_id: t.object_id.clone(),
        shipment_id: shipment_id.to_string(),
        tracking_number: t.tracking_number.clone(),
        label_url: (!t.label_url.is_empty()).then(|| t.label_url.clone()),
        carrier: rate.map(|r| r.carrier.clone()).unwrap_or_default(),
        service: rate.map(|r| r.service.clone()).unwrap_or_default(),
        cost: rate.and_then(|r| r.amount),
        tracker_id: None,
    }
}

fn quote(s: Shipment, t: Option<Transaction>) -> Quote {
    let rates: Vec<NeutralRate> = s.rates.iter().map(neutral).collect();
    let bought = t.map(|t| {
        let id = t.rate_id();
        bought(&s.object_id, rates.iter().find(|r| r.id == id), &t)
    });
    Quote {
        shipment_id: s.object_id,
        reference: Some(s.metadata),
        rates,
        bought,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_read_as_text() {
        assert_eq!(error_text(br#"{"detail":"Not found."}"#), "Not found.");
        assert_eq!(
            error_text(br#"{"rate": ["This field is required."]}"#),
            "rate: This field is required."
        );
        assert!(verify_token("s3cret", Some("s3cret")));
        assert!(!verify_token("s3cret", Some("s3cre")));
        assert!(!verify_token("", Some("")));
        assert!(!verify_token("s3cret", None));
    }
}
