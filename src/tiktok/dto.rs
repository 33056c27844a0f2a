//! Wire types for the TikTok Shop Open API, version 202309.
//!
//! These mirror the JSON TikTok sends and receives, field for field, and are
//! deliberately tolerant: every field the reference marks optional is an
//! `Option` or has a default, so a new field or a missing one never breaks
//! the sync. Money is a string on the wire and stays one here; the domain
//! [`crate::order::Order`] parses it into exact minor units.
//!
//! Nothing outside `tiktok` and `simulator` should use these types directly:
//! convert with [`crate::order::Order::from_wire`].

use serde::{Deserialize, Serialize};

/// The envelope around every response: `code` 0 is success; anything else is
/// an error whose meaning the code, not the HTTP status, decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default = "Option::default")]
    pub data: Option<T>,
}

/// An order as returned by Order Detail and Search Orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireOrder {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub order_type: Option<String>,
    #[serde(deserialize_with = "lenient::i64")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub update_time: i64,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub paid_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub rts_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub collection_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub delivery_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub cancel_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub buyer_email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub buyer_message: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub seller_note: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub fulfillment_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub delivery_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub delivery_option_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub delivery_option_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_provider: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_provider_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tracking_number: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub warehouse_id: Option<String>,
    #[serde(deserialize_with = "lenient::vec")]
    pub packages: Vec<WirePackageRef>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_on_hold_order: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_cod: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_sample_order: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_replacement_order: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub has_updated_recipient_address: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub cancel_reason: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub cancellation_initiator: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_buyer_request_cancel: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub request_cancel_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub rts_sla_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub tts_sla_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub cancel_order_sla_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub shipping_due_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub collection_due_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub delivery_due_time: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub delivery_sla_time: Option<i64>,
    pub payment: Option<WirePayment>,
    pub recipient_address: Option<WireAddress>,
    #[serde(deserialize_with = "lenient::vec")]
    pub line_items: Vec<WireLineItem>,
    /// Set when this order of a batch could not be read at all: its raw
    /// JSON and why, so it is quarantined while the rest of the batch (and
    /// the poll cursor) moves on. Never on the wire.
    #[serde(skip)]
    pub undecodable: Option<Undecodable>,
}

/// An order of a batch that did not decode, kept as TikTok sent it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Undecodable {
    pub raw: String,
    pub error: String,
}

/// Decoding that bends where TikTok's documents and answers vary, and no
/// further: a `null` where a value was expected reads as the default, a
/// number sent as a string (or a string id sent as a number) reads either
/// way; any other wrong shape is an error. Each order of a batch decodes
/// on its own, so an order with a wrong shape is kept aside with its raw
/// JSON while the rest of the batch goes on.
pub mod lenient {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use serde::de::Error as _;

    /// `null` is `None`; a number, or a string of one, is read; anything
    /// else is a wrong shape and an error (its order is quarantined).
    fn num<E: serde::de::Error>(v: &Value) -> Result<Option<i64>, E> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| E::custom(format!("{n} is not an integer"))),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| E::custom(format!("{s:?} is not an integer"))),
            other => Err(E::custom(format!("expected an integer, found {other}"))),
        }
    }

    fn text<E: serde::de::Error>(v: Value) -> Result<Option<String>, E> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(E::custom(format!("expected a string, found {other}"))),
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(num::<D::Error>(&Value::deserialize(d)?)?.unwrap_or(0))
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        num(&Value::deserialize(d)?)
    }

    /// A count: a number or a numeric string; `null` is 0.
    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = num::<D::Error>(&Value::deserialize(d)?)?.unwrap_or(0);
        u32::try_from(n).map_err(|_| D::Error::custom(format!("count {n} out of range")))
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(text::<D::Error>(Value::deserialize(d)?)?.unwrap_or_default())
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        text(Value::deserialize(d)?)
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            Value::String(s) if s == "true" => Ok(Some(true)),
            Value::String(s) if s == "false" => Ok(Some(false)),
            other => Err(D::Error::custom(format!(
                "expected true or false, found {other}"
            ))),
        }
    }

    /// A list; `null` (or anything not a list) is empty. An element that
    /// does not decode fails the list, and so its order (a line item
    /// silently dropped would ship an order short).
    pub fn vec<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .into_iter()
                .map(|v| serde_json::from_value(v).map_err(D::Error::custom))
                .collect(),
            other => Err(D::Error::custom(format!("expected a list, found {other}"))),
        }
    }

    /// A batch of orders, each decoded on its own: one that does not
    /// decode is kept with its raw JSON and error (and its id, when it has
    /// one) instead of failing the batch.
    pub fn each_order<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::WireOrder>, D::Error> {
        let Value::Array(items) = Value::deserialize(d)? else {
            return Ok(Vec::new());
        };
        Ok(items
            .into_iter()
            .map(
                |v| match serde_json::from_value::<super::WireOrder>(v.clone()) {
                    Ok(o) => o,
                    Err(e) => super::WireOrder {
                        id: v
                            .get("id")
                            .cloned()
                            .and_then(|id| text::<serde_json::Error>(id).ok().flatten())
                            .unwrap_or_default(),
                        undecodable: Some(super::Undecodable {
                            raw: v.to_string(),
                            error: e.to_string(),
                        }),
                        ..Default::default()
                    },
                },
            )
            .collect())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WirePackageRef {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
}

/// Every amount is a decimal string, e.g. `"12.30"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WirePayment {
    #[serde(deserialize_with = "lenient::string")]
    pub currency: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub sub_total: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_fee: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub seller_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub platform_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub total_amount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub original_total_product_price: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub original_shipping_fee: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_fee_seller_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_fee_platform_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tax: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub product_tax: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_fee_tax: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub retail_delivery_fee: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireAddress {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub first_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone_number: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub full_address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_detail: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_line1: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_line2: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_line3: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_line4: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub postal_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub region_code: Option<String>,
    #[serde(deserialize_with = "lenient::vec")]
    pub district_info: Vec<WireDistrict>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireDistrict {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_level_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address_level: Option<String>,
}

/// One unit of one SKU: TikTok has no quantity field; two T-shirts are two
/// line items with the same `sku_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireLineItem {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sku_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub product_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub product_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub sku_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub seller_sku: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub original_price: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub sale_price: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub platform_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub seller_discount: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub display_status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub package_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub package_status: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub tracking_number: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub shipping_provider_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_gift: Option<bool>,
    /// A virtual bundle's source SKUs and how many of each the line
    /// holds (the line's own `sku_id` is the bundle's).
    #[serde(deserialize_with = "lenient::vec")]
    pub combined_listing_skus: Vec<CombinedSku>,
}

/// `data` of Order Detail: `GET /order/202309/orders?ids=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderDetailData {
    #[serde(deserialize_with = "lenient::each_order")]
    pub orders: Vec<WireOrder>,
}

/// One shop of Get Authorized Shops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizedShop {
    pub id: String,
    pub name: String,
    pub region: String,
    /// LOCAL or CROSS_BORDER.
    pub seller_type: String,
    pub cipher: String,
    pub code: String,
}

/// `data` of `GET /authorization/202309/shops`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizedShopsData {
    pub shops: Vec<AuthorizedShop>,
}

/// Body filters of Search Orders (all optional; times are Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOrdersFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_lt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_lt: Option<i64>,
    /// TIKTOK or SELLER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_buyer_request_cancel: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warehouse_ids: Vec<String>,
}

/// Query side of Search Orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOrdersPage {
    /// 1..=100.
    pub page_size: u32,
    pub page_token: Option<String>,
    /// `create_time` (default) or `update_time`.
    pub sort_field: Option<String>,
    /// `ASC` or `DESC` (default).
    pub sort_order: Option<String>,
}

impl Default for SearchOrdersPage {
    fn default() -> Self {
        SearchOrdersPage {
            page_size: 50,
            page_token: None,
            sort_field: None,
            sort_order: None,
        }
    }
}

/// `data` of `POST /order/202309/orders/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOrdersData {
    #[serde(deserialize_with = "lenient::string")]
    pub next_page_token: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub total_count: i64,
    #[serde(deserialize_with = "lenient::each_order")]
    pub orders: Vec<WireOrder>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PickupSlot {
    pub start_time: i64,
    pub end_time: i64,
}

/// Seller shipping: the seller's own carrier and tracking number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfShipment {
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

/// Body of `POST /fulfillment/202309/packages/{package_id}/ship`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipPackageRequest {
    /// PICKUP or DROP_OFF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handover_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_slot: Option<PickupSlot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_shipment: Option<SelfShipment>,
}

/// One package of Batch Ship.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchShipPackage {
    pub id: String,
    #[serde(flatten)]
    pub ship: ShipPackageRequest,
}

/// Body of `POST /fulfillment/202309/packages/ship`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchShipRequest {
    pub packages: Vec<BatchShipPackage>,
}

/// A per-item failure inside a `code: 0` response (batch ship, inventory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemError {
    pub code: i64,
    pub message: String,
    pub detail: serde_json::Value,
}

/// `data` of Batch Ship and Update Inventory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ItemErrorsData {
    pub errors: Vec<ItemError>,
}

/// Body of `POST /fulfillment/202309/orders/{order_id}/packages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarkShippedRequest {
    pub tracking_number: String,
    pub shipping_provider_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_line_item_ids: Vec<String>,
}

/// `data` of Mark Package As Shipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MarkShippedData {
    pub order_id: String,
    pub order_line_item_ids: Vec<String>,
    pub package_id: String,
    pub warning: Option<serde_json::Value>,
}

/// `data` of Get Package Shipping Document
/// (`GET /fulfillment/202309/packages/{package_id}/shipping_documents`):
/// the document's URL, valid for 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShippingDocumentData {
    pub doc_url: String,
    pub tracking_number: String,
}

/// Body of `POST /fulfillment/202309/orders/{order_id}/shipping_info/update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateShippingInfoRequest {
    pub tracking_number: String,
    pub shipping_provider_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShippingProvider {
    pub id: String,
    pub name: String,
}

/// Body filters of Search Cancellations (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchCancellationsFilter {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancel_ids: Vec<String>,
    /// `CANCEL`, `BUYER_CANCEL`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancel_types: Vec<String>,
    /// e.g. `CANCELLATION_REQUEST_PENDING`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancel_status: Vec<String>,
}

/// What TikTok asks of the seller next, and by when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NextAction {
    #[serde(deserialize_with = "lenient::string")]
    pub action: String,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub deadline: Option<i64>,
}

/// One cancellation of Search Cancellations (the fields orderflow reads;
/// `cancel_type` and `cancel_status` are kept as TikTok spells them, the
/// documented values and the example disagree).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cancellation {
    #[serde(deserialize_with = "lenient::string")]
    pub cancel_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub order_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cancel_type: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cancel_status: String,
    /// BUYER, SELLER, SYSTEM.
    #[serde(deserialize_with = "lenient::string")]
    pub role: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cancel_reason: String,
    #[serde(deserialize_with = "lenient::string")]
    pub cancel_reason_text: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub update_time: i64,
    #[serde(deserialize_with = "lenient::vec")]
    pub seller_next_action_response: Vec<NextAction>,
}

impl Cancellation {
    /// A buyer's request still waiting for the seller's answer.
    pub fn awaits_seller(&self) -> bool {
        self.role == "BUYER" && self.cancel_status == "CANCELLATION_REQUEST_PENDING"
    }

    /// When TikTok stops waiting for the seller's answer.
    pub fn respond_by(&self) -> Option<i64> {
        self.seller_next_action_response
            .iter()
            .filter(|a| a.action == "SELLER_RESPOND_CANCEL")
            .filter_map(|a| a.deadline)
            .min()
    }
}

/// `data` of `POST /return_refund/202309/cancellations/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchCancellationsData {
    #[serde(deserialize_with = "lenient::vec")]
    pub cancellations: Vec<Cancellation>,
    #[serde(deserialize_with = "lenient::i64")]
    pub total_count: i64,
    #[serde(deserialize_with = "lenient::string")]
    pub next_page_token: String,
}

/// Body filters of Search Returns (all optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchReturnsFilter {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub return_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_ids: Vec<String>,
    /// Unix seconds: returns updated at or after (polling's window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_ge: Option<i64>,
    /// Unix seconds: returns updated before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_lt: Option<i64>,
}

/// One return of Search Returns (the fields orderflow reads; statuses and
/// types kept as TikTok spells them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReturnOrder {
    #[serde(deserialize_with = "lenient::string")]
    pub return_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub order_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub return_type: String,
    #[serde(deserialize_with = "lenient::string")]
    pub return_status: String,
    #[serde(deserialize_with = "lenient::string")]
    pub role: String,
    #[serde(deserialize_with = "lenient::string")]
    pub return_reason: String,
    #[serde(deserialize_with = "lenient::string")]
    pub return_reason_text: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub create_time: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub update_time: i64,
    #[serde(deserialize_with = "lenient::vec")]
    pub seller_next_action_response: Vec<NextAction>,
}

/// `data` of `POST /return_refund/202309/returns/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchReturnsData {
    #[serde(deserialize_with = "lenient::vec")]
    pub return_orders: Vec<ReturnOrder>,
    #[serde(deserialize_with = "lenient::i64")]
    pub total_count: i64,
    #[serde(deserialize_with = "lenient::string")]
    pub next_page_token: String,
}

/// Body of Reject Cancellation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RejectCancellationRequest {
    pub reject_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One warehouse of Get Warehouse List (the fields orderflow reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Warehouse {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// ENABLED, DISABLED, RESTRICTED.
    #[serde(deserialize_with = "lenient::string")]
    pub effect_status: String,
    /// SALES_WAREHOUSE, RETURN_WAREHOUSE.
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: String,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_default: Option<bool>,
}

/// `data` of `GET /logistics/202309/warehouses`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WarehousesData {
    #[serde(deserialize_with = "lenient::vec")]
    pub warehouses: Vec<Warehouse>,
}

/// One delivery option of Get Warehouse Delivery Options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryOption {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// STANDARD, EXPRESS, ECONOMY, SEND_BY_SELLER.
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: String,
}

/// `data` of `GET /logistics/202309/warehouses/{id}/delivery_options`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryOptionsData {
    #[serde(deserialize_with = "lenient::vec")]
    pub delivery_options: Vec<DeliveryOption>,
}

/// `data` of Get Shipping Providers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShippingProvidersData {
    pub shipping_providers: Vec<ShippingProvider>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelSku {
    pub sku_id: String,
    pub quantity: u32,
}

/// Body of `POST /return_refund/202309/cancellations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelOrderRequest {
    pub order_id: String,
    /// A reason key, e.g. `seller_cancel_reason_out_of_stock`.
    pub cancel_reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<CancelSku>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order_line_item_ids: Vec<String>,
}

/// `data` of Cancel Order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelOrderData {
    pub cancel_id: String,
    pub cancel_status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarehouseQuantity {
    pub warehouse_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SkuInventory {
    pub id: String,
    /// Every warehouse of the SKU must be listed.
    pub inventory: Vec<WarehouseQuantity>,
}

/// Body of `POST /product/202309/products/{product_id}/inventory/update`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateInventoryRequest {
    pub skus: Vec<SkuInventory>,
}

/// Body of `POST /product/202309/inventory/search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySearchRequest {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub product_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sku_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarehouseInventory {
    pub warehouse_id: String,
    pub available_quantity: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySku {
    pub id: String,
    pub total_available_quantity: i64,
    pub warehouse_inventory: Vec<WarehouseInventory>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductInventory {
    pub product_id: String,
    pub skus: Vec<InventorySku>,
}

/// Body of Search Products (`POST /product/202502/products/search`);
/// `page_size` and `page_token` go in the query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchProductsRequest {
    /// ALL (default), DRAFT, PENDING, FAILED, ACTIVATE, SELLER_DEACTIVATED,
    /// PLATFORM_DEACTIVATED, FREEZE, DELETED.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Created at or after / before (Unix seconds): how a catalogue of
    /// more than 10,000 products is walked, in windows of creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time_le: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_ge: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time_le: Option<i64>,
    /// At most 10.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sku_ids: Vec<String>,
}

/// A price as TikTok writes it: decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductPrice {
    #[serde(deserialize_with = "lenient::string")]
    pub currency: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sale_price: String,
    #[serde(deserialize_with = "lenient::string")]
    pub tax_exclusive_price: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductImage {
    pub urls: Vec<String>,
    pub thumb_urls: Vec<String>,
}

impl ProductImage {
    /// The thumbnail to show, else the image.
    pub fn best(&self) -> Option<&str> {
        self.thumb_urls
            .first()
            .or_else(|| self.urls.first())
            .map(String::as_str)
    }
}

/// A variant attribute (`Color: Red`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SalesAttribute {
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub value_name: String,
    pub sku_img: Option<ProductImage>,
}

/// One SKU of a virtual bundle (`combined_skus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CombinedSku {
    #[serde(deserialize_with = "lenient::string")]
    pub product_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sku_id: String,
    #[serde(deserialize_with = "lenient::count")]
    pub sku_count: u32,
    #[serde(deserialize_with = "lenient::string")]
    pub seller_sku: String,
}

/// A SKU as Search Products and Get Product list it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductSku {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub seller_sku: String,
    pub price: ProductPrice,
    pub inventory: Vec<WarehouseQuantity>,
    /// Get Product only.
    pub sales_attributes: Vec<SalesAttribute>,
    /// Get Product only: the SKUs a virtual bundle is made of.
    pub combined_skus: Vec<CombinedSku>,
}

/// A product as Search Products (202502) and Get Product (202309) return
/// it; the fields only Get Product has are empty from a search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Product {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub title: String,
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    pub skus: Vec<ProductSku>,
    pub update_time: i64,
    /// Get Product only.
    pub main_images: Vec<ProductImage>,
    /// Get Product only: COMBINED_PRODUCT (a virtual bundle), ...
    pub product_types: Vec<String>,
}

/// `data` of Search Products.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchProductsData {
    pub total_count: i64,
    pub products: Vec<Product>,
    #[serde(deserialize_with = "lenient::string")]
    pub next_page_token: String,
}

/// `data` of Inventory Search.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InventorySearchData {
    pub inventory: Vec<ProductInventory>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShopWebhook {
    pub event_type: String,
    pub address: String,
    pub create_time: i64,
    pub update_time: i64,
}

/// `data` of `GET /event/202309/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ShopWebhooksData {
    pub webhooks: Vec<ShopWebhook>,
}

/// Body of `PUT /event/202309/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateWebhookRequest {
    /// At most 255 characters.
    pub address: String,
    /// e.g. `ORDER_STATUS_CHANGE`.
    pub event_type: String,
}

/// Body of `DELETE /event/202309/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteWebhookRequest {
    pub event_type: String,
}

/// `data` of the auth host's token get/refresh. The `*_expire_in` fields are
/// absolute Unix timestamps, not durations. `Debug` hides the tokens.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenData {
    pub access_token: String,
    pub access_token_expire_in: i64,
    pub refresh_token: String,
    pub refresh_token_expire_in: i64,
    pub open_id: String,
    pub seller_name: String,
    pub seller_base_region: String,
    pub user_type: i64,
    pub granted_scopes: Vec<String>,
}

impl std::fmt::Debug for TokenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenData")
            .field("access_token", &"<redacted>")
            .field("access_token_expire_in", &self.access_token_expire_in)
            .field("refresh_token", &"<redacted>")
            .field("refresh_token_expire_in", &self.refresh_token_expire_in)
            .field("open_id", &self.open_id)
            .field("seller_name", &self.seller_name)
            .field("seller_base_region", &self.seller_base_region)
            .field("user_type", &self.user_type)
            .field("granted_scopes", &self.granted_scopes)
            .finish()
    }
}

#[cfg(test)]
mod lenient_tests {
    use super::*;

    #[test]
    fn one_odd_order_does_not_fail_its_batch() {
        let page = r#"{"next_page_token":"","total_count":"3","orders":[
            {"id":"1","status":"AWAITING_SHIPMENT","create_time":1764000000,"update_time":1764000100,
             "line_items":[{"id":"1-1","sku_id":"S1","sale_price":"9.90"}]},
            {"id":2,"status":"AWAITING_SHIPMENT","create_time":"1764000000","update_time":null,
             "paid_time":"1764000050","buyer_email":null,"is_cod":"false","packages":null,
             "recipient_address":null,"payment":{"currency":"USD","total_amount":12.5},
             "line_items":[{"id":"2-1","sku_id":7001,"sale_price":"12.50","is_gift":null}]},
            {"id":"3","status":"AWAITING_SHIPMENT","line_items":["not an item"]}
        ]}"#;
        let data: SearchOrdersData = serde_json::from_str(page).unwrap();
        assert_eq!(data.total_count, 3);
        assert_eq!(data.orders.len(), 3);
        let (a, b, c) = (&data.orders[0], &data.orders[1], &data.orders[2]);
        assert!(a.undecodable.is_none() && b.undecodable.is_none());
        assert_eq!(b.id, "2");
        assert_eq!(b.create_time, 1_764_000_000);
        assert_eq!(b.update_time, 0);
        assert_eq!(b.paid_time, Some(1_764_000_050));
        assert_eq!(b.is_cod, Some(false));
        assert!(b.packages.is_empty());
        assert_eq!(
            b.payment.as_ref().unwrap().total_amount.as_deref(),
            Some("12.5")
        );
        assert_eq!(b.line_items[0].sku_id, "7001");
        // The third is kept whole, with its id and why, for the quarantine.
        let u = c.undecodable.as_ref().unwrap();
        assert_eq!(c.id, "3");
        assert!(u.raw.contains("not an item"), "{}", u.raw);
        let e = crate::order::Order::from_wire("shop", c).unwrap_err();
        assert!(e.to_string().contains("could not be read"), "{e}");
        // The readable ones become orders.
        assert!(crate::order::Order::from_wire("shop", a).is_ok());
        assert!(crate::order::Order::from_wire("shop", b).is_ok());
    }
}
