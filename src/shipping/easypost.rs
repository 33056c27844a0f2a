//! EasyPost's REST API (v2), as EasyPost documents it
//! (<https://docs.easypost.com/docs>), and its HTTP client. The wire types
//! are shared with the simulator (`crate::simulator::carriers`); official
//! examples are in `tests/fixtures/easypost/` with their sources.
//!
//! | Call | Method & path | Body → answer |
//! |---|---|---|
//! | create a shipment (its rates) | `POST /v2/shipments` | `{shipment: {to_address, from_address, parcel, reference, options}}` → [`Shipment`] |
//! | buy a rate | `POST /v2/shipments/{id}/buy` | `{rate: {id}}` → [`Shipment`] with `postage_label`, `tracking_code`, `tracker` |
//! | the label in another format | `GET /v2/shipments/{id}/label?file_format=PDF` | [`Shipment`] |
//! | find by reference | `GET /v2/shipments/{reference}` | [`Shipment`] (EasyPost retrieves a shipment by its id or its reference) |
//! | refund an unused label | `POST /v2/shipments/{id}/refund` | [`Shipment`] with `refund_status` |
//! | a tracker | `GET /v2/trackers/{id}` | [`Tracker`] |
//!
//! Authentication is HTTP basic with the API key as the user name and an
//! empty password. Errors are `{"error": {"code", "message", "errors"}}`
//! ([`ApiError`]); the status decides the [`ErrorKind`]. Parcel weight is in
//! ounces. Tracking webhooks are [`Event`]s (`tracker.updated`), signed in
//! `X-Hmac-Signature` ([`verify_signature`]).

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

/// EasyPost's production API.
pub const BASE_URL: &str = "https://api.easypost.com/v2";

/// An address (`Address` object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub name: Option<String>,
    pub company: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl From<&LabelAddress> for Address {
    fn from(a: &LabelAddress) -> Address {
        Address {
            id: None,
            object: None,
            name: some(&a.name),
            company: some(&a.company),
            street1: some(&a.street1),
            street2: some(&a.street2),
            city: some(&a.city),
            state: some(&a.state),
            zip: some(&a.postal_code),
            country: some(&a.country),
            phone: some(&a.phone),
            email: some(&a.email),
        }
    }
}

/// A parcel (`Parcel` object): inches and ounces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Parcel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub length: Option<Number>,
    pub width: Option<Number>,
    pub height: Option<Number>,
    /// Ounces.
    pub weight: Option<Number>,
}

/// EasyPost writes numbers as JSON numbers and accepts them as strings too
/// (its own examples send `"65.9"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Num(f64),
    #[serde(with = "str_f64")]
    Str(f64),
}

mod str_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.trim().parse().map_err(serde::de::Error::custom)
    }
}

impl Number {
    pub fn get(self) -> f64 {
        match self {
            Number::Num(v) | Number::Str(v) => v,
        }
    }
}

/// `options` of a shipment (only what orderflow sets or reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipmentOptions {
    /// `PNG`, `PDF`, `ZPL` or `EPL2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_format: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `POST /v2/shipments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateShipment {
    pub shipment: NewShipment,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewShipment {
    pub to_address: Address,
    pub from_address: Address,
    pub parcel: Parcel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub options: ShipmentOptions,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A `Rate` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rate {
    pub id: String,
    pub object: String,
    pub mode: Option<String>,
    pub service: String,
    pub carrier: String,
    /// Decimal string, e.g. `"7.47"`.
    pub rate: String,
    pub currency: String,
    pub retail_rate: Option<String>,
    pub retail_currency: Option<String>,
    pub list_rate: Option<String>,
    pub list_currency: Option<String>,
    pub billing_type: Option<String>,
    pub delivery_date_guaranteed: bool,
    pub delivery_days: Option<u32>,
    pub est_delivery_days: Option<u32>,
    pub delivery_date: Option<String>,
    pub shipment_id: Option<String>,
    pub carrier_account_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A `PostageLabel` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostageLabel {
    pub id: String,
    pub object: String,
    pub label_date: Option<String>,
    pub label_resolution: Option<u32>,
    pub label_size: Option<String>,
    pub label_type: Option<String>,
    /// e.g. `image/png`.
    pub label_file_type: Option<String>,
    pub label_url: Option<String>,
    pub label_pdf_url: Option<String>,
    pub label_zpl_url: Option<String>,
    pub label_epl2_url: Option<String>,
    pub label_file: Option<Value>,
    pub integrated_form: Option<String>,
    pub date_advance: i64,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One event of a tracker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingDetail {
    pub object: Option<String>,
    pub message: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub status_detail: Option<String>,
    /// RFC 3339.
    pub datetime: Option<String>,
    pub source: Option<String>,
    pub tracking_location: Option<Value>,
}

/// A `Tracker` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tracker {
    pub id: String,
    pub object: String,
    pub mode: Option<String>,
    pub tracking_code: String,
    /// `unknown`, `pre_transit`, `in_transit`, `out_for_delivery`,
    /// `delivered`, `available_for_pickup`, `return_to_sender`, `failure`,
    /// `cancelled`, `error`.
    pub status: String,
    pub status_detail: Option<String>,
    pub signed_by: Option<String>,
    pub est_delivery_date: Option<String>,
    pub shipment_id: Option<String>,
    pub carrier: Option<String>,
    pub tracking_details: Vec<TrackingDetail>,
    pub weight: Option<Value>,
    pub fees: Vec<Value>,
    pub carrier_detail: Option<Value>,
    pub public_url: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A `Shipment` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shipment {
    pub id: String,
    pub object: String,
    pub mode: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    pub tracking_code: Option<String>,
    pub to_address: Option<Address>,
    pub from_address: Option<Address>,
    pub parcel: Option<Parcel>,
    pub options: Option<ShipmentOptions>,
    pub rates: Vec<Rate>,
    pub selected_rate: Option<Rate>,
    pub postage_label: Option<PostageLabel>,
    pub tracker: Option<Tracker>,
    /// `submitted`, `refunded`, `rejected`, `not_applicable`.
    pub refund_status: Option<String>,
    pub messages: Vec<Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub is_return: bool,
    pub insurance: Option<String>,
    pub usps_zone: Option<Value>,
    pub batch_id: Option<String>,
    pub batch_status: Option<String>,
    pub batch_message: Option<String>,
    pub customs_info: Option<Value>,
    pub order_id: Option<String>,
    pub scan_form: Option<Value>,
    pub return_address: Option<Address>,
    pub buyer_address: Option<Address>,
    pub forms: Vec<Value>,
    pub fees: Vec<Value>,
}

/// `POST /v2/shipments/{id}/buy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuyShipment {
    pub rate: RateRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insurance: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateRef {
    pub id: String,
}

/// A webhook `Event` (e.g. `description: "tracker.updated"` with the
/// tracker in `result`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    pub id: String,
    pub object: String,
    pub mode: Option<String>,
    pub description: String,
    pub result: Value,
    pub previous_attributes: Option<Value>,
    pub status: Option<String>,
    pub pending_urls: Vec<String>,
    pub completed_urls: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// The error body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub errors: Vec<Value>,
}

/// Grams to EasyPost's ounces (rounded up to a tenth).
pub fn ounces(grams: u32) -> f64 {
    (f64::from(grams) / 28.349_523_125 * 10.0).ceil() / 10.0
}

/// `X-Hmac-Signature` as EasyPost computes it: `hmac-sha256-hex=` and the
/// lowercase hex HMAC-SHA256 of the raw body, keyed with the webhook secret
/// (NFKD-normalised, as EasyPost's client libraries do).
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    use unicode_normalization::UnicodeNormalization;
    let key: String = secret.nfkd().collect();
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!(
        "hmac-sha256-hex={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a webhook's `X-Hmac-Signature` in constant time.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(h) = header else { return false };
    if secret.is_empty() {
        return false;
    }
    let want = signature(secret, body);
    want.as_bytes().ct_eq(h.trim().as_bytes()).into()
}

/// The text of an error body: `code: message`.
pub fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => format!("{}: {}", e.error.code, e.error.message),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// The EasyPost client; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    rest: Rest,
}

impl Client {
    /// `base_url` up to the version, e.g. `https://api.easypost.com/v2`.
    /// At most `concurrency` requests in flight.
    pub fn new(
        base_url: &str,
        key: Secret,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Client, Error> {
        Ok(Client {
            rest: Rest::new(ProviderKind::Easypost, base_url, key, timeout, concurrency)?,
        })
    }

    /// Creates a shipment carrying `reference`; answers its rates.
    pub async fn create_shipment(&self, req: &ShipmentRequest) -> Result<Quote, Error> {
        let body = CreateShipment {
            shipment: NewShipment {
                to_address: (&req.to).into(),
                from_address: (&req.from).into(),
                parcel: Parcel {
                    weight: Some(Number::Num(ounces(req.weight_grams))),
                    ..Parcel::default()
                },
                reference: Some(req.reference.clone()),
                options: ShipmentOptions {
                    label_format: Some(format_name(req.format).into()),
                    other: Default::default(),
                },
                other: Default::default(),
            },
        };
        let s: Shipment = self
            .rest
            .send("create_shipment", self.rest.post("/shipments").json(&body))
            .await?;
        Ok(quote(s, req.format))
    }

    /// The shipment `id` (its `shp_…` id, or the reference itself: EasyPost
    /// takes a reference in place of an id), if it carries `reference`.
    pub async fn find(
        &self,
        id: &str,
        reference: &str,
        format: LabelFormat,
    ) -> Result<Option<Quote>, Error> {
        let r = self
            .rest
            .send::<Shipment>(
                "find_shipment",
                self.rest.get(&format!("/shipments/{}", seg(id)?)),
            )
            .await;
        match r {
            Ok(s) if s.reference.as_deref() == Some(reference) => {
                let mut q = quote(s, format);
                if let Some(b) = &mut q.bought {
                    self.ensure_format(b, format).await?;
                }
                Ok(Some(q))
            }
            Ok(_) => Ok(None),
            Err(Error::Provider {
                kind: ErrorKind::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Buys a rate. EasyPost refuses to buy a shipment twice.
    pub async fn buy(
        &self,
        shipment_id: &str,
        rate_id: &str,
        format: LabelFormat,
    ) -> Result<Bought, Error> {
        let s: Shipment = self
            .rest
            .send(
                "buy",
                self.rest
                    .post(&format!("/shipments/{}/buy", seg(shipment_id)?))
                    .json(&BuyShipment {
                        rate: RateRef {
                            id: rate_id.to_string(),
                        },
                        insurance: None,
                    }),
            )
            .await?;
        let mut b = bought(&s, format).ok_or_else(|| {
            self.rest.fail(
                "buy",
                ErrorKind::Transient,
                format!("shipment {} answered without a postage label", s.id),
            )
        })?;
        self.ensure_format(&mut b, format).await?;
        Ok(b)
    }

    /// EasyPost makes a PNG label unless told otherwise; a PDF or ZPL one
    /// may need converting.
    async fn ensure_format(&self, b: &mut Bought, format: LabelFormat) -> Result<(), Error> {
        let has = b.label_url.as_deref().is_some_and(|u| {
            let u = u.to_ascii_lowercase();
            u.contains(&format!(".{}", format_ext(format)))
        });
        if !has {
            if let Some(url) = self.convert(&b.shipment_id, format).await? {
                b.label_url = Some(url);
            }
        }
        Ok(())
    }

    /// The label in `format` (`GET /v2/shipments/{id}/label`).
    pub async fn convert(
        &self,
        shipment_id: &str,
        format: LabelFormat,
    ) -> Result<Option<String>, Error> {
        let s: Shipment = self
            .rest
            .send(
                "convert_label",
                self.rest
                    .get(&format!("/shipments/{}/label", seg(shipment_id)?))
                    .query(&[("file_format", format_name(format))]),
            )
            .await?;
        Ok(s.postage_label.as_ref().and_then(|l| url_for(l, format)))
    }

    /// Refunds an unused label.
    pub async fn refund(&self, shipment_id: &str) -> Result<Refund, Error> {
        let s: Shipment = self
            .rest
            .send(
                "refund",
                self.rest
                    .post(&format!("/shipments/{}/refund", seg(shipment_id)?)),
            )
            .await?;
        let status = s.refund_status.unwrap_or_default();
        Ok(match status.as_str() {
            "submitted" | "refunded" => Refund::Accepted(status),
            _ => Refund::Refused(format!("refund_status {status:?}")),
        })
    }

    pub async fn tracker(&self, tracker_id: &str) -> Result<Tracker, Error> {
        self.rest
            .send(
                "tracker",
                self.rest.get(&format!("/trackers/{}", seg(tracker_id)?)),
            )
            .await
    }

    /// Downloads a label (EasyPost's label URLs need no key).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, Error> {
        self.rest.download(url).await
    }
}

fn format_name(f: LabelFormat) -> &'static str {
    match f {
        LabelFormat::Pdf => "PDF",
        LabelFormat::Png => "PNG",
        LabelFormat::Zpl => "ZPL",
    }
}

fn format_ext(f: LabelFormat) -> &'static str {
    f.extension()
}

fn url_for(l: &PostageLabel, f: LabelFormat) -> Option<String> {
    match f {
        LabelFormat::Pdf => l.label_pdf_url.clone(),
        LabelFormat::Zpl => l.label_zpl_url.clone(),
        LabelFormat::Png => l.label_url.clone(),
    }
    .filter(|u| !u.is_empty())
}

fn neutral(r: &Rate) -> NeutralRate {
    NeutralRate {
        id: r.id.clone(),
        carrier: r.carrier.clone(),
        service: r.service.clone(),
        amount: Money::parse(&r.rate),
        currency: r.currency.clone(),
        delivery_days: r.delivery_days.or(r.est_delivery_days),
    }
}

/// The label of a bought shipment: the URL in the format asked for, else
/// whatever EasyPost gave (a PDF is then made from it by
/// [`Client::convert`] when needed).
fn bought(s: &Shipment, format: LabelFormat) -> Option<Bought> {
    let pl = s.postage_label.as_ref()?;
    let rate = s.selected_rate.clone().unwrap_or_default();
    Some(Bought {
        label_id: s.id.clone(),
        shipment_id: s.id.clone(),
        tracking_number: s.tracking_code.clone().unwrap_or_default(),
        label_url: url_for(pl, format)
            .or_else(|| url_for(pl, LabelFormat::Pdf))
            .or_else(|| pl.label_url.clone()),
        carrier: rate.carrier.clone(),
        service: rate.service.clone(),
        cost: Money::parse(&rate.rate),
        tracker_id: s
            .tracker
            .as_ref()
            .map(|t| t.id.clone())
            .filter(|t| !t.is_empty()),
    })
}

fn quote(s: Shipment, format: LabelFormat) -> Quote {
    Quote {
        bought: bought(&s, format),
        rates: s.rates.iter().map(neutral).collect(),
        reference: s.reference.clone(),
        shipment_id: s.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official vector (EasyPost's Node client's webhook test): secret
    /// `sécret`, whose NFKD form keys the HMAC, over the fixture's bytes.
    #[test]
    fn the_official_webhook_signature_vector_verifies() {
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/easypost/webhook-hmac-vector.body.json"),
        )
        .unwrap();
        let want =
            "hmac-sha256-hex=e93977c8ccb20363d51a62b3fe1fc402b7829be1152da9e88cf9e8d07115a46b";
        assert_eq!(signature("sécret", &body), want);
        assert!(verify_signature("sécret", &body, Some(want)));
        assert!(!verify_signature("secret", &body, Some(want)));
        let mut changed = body.clone();
        changed[10] ^= 1;
        assert!(!verify_signature("sécret", &changed, Some(want)));
        assert!(!verify_signature("sécret", &body, None));
        assert!(!verify_signature("", &body, Some(want)));
    }

    #[test]
    fn grams_to_ounces() {
        assert_eq!(ounces(500), 17.7);
        assert_eq!(ounces(1), 0.1);
    }

    #[test]
    fn numbers_as_numbers_or_strings() {
        let p: Parcel = serde_json::from_str(r#"{"length":"20.2","weight":65.9}"#).unwrap();
        assert_eq!(p.length.map(Number::get), Some(20.2));
        assert_eq!(p.weight.map(Number::get), Some(65.9));
    }
}
