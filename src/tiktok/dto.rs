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
    pub id: String,
    pub status: String,
    pub order_type: Option<String>,
    pub create_time: i64,
    pub update_time: i64,
    pub paid_time: Option<i64>,
    pub rts_time: Option<i64>,
    pub collection_time: Option<i64>,
    pub delivery_time: Option<i64>,
    pub cancel_time: Option<i64>,
    pub user_id: Option<String>,
    pub buyer_email: Option<String>,
    pub buyer_message: Option<String>,
    pub seller_note: Option<String>,
    pub fulfillment_type: Option<String>,
    pub shipping_type: Option<String>,
    pub delivery_type: Option<String>,
    pub delivery_option_id: Option<String>,
    pub delivery_option_name: Option<String>,
    pub shipping_provider: Option<String>,
    pub shipping_provider_id: Option<String>,
    pub tracking_number: Option<String>,
    pub warehouse_id: Option<String>,
    pub packages: Vec<WirePackageRef>,
    pub is_on_hold_order: Option<bool>,
    pub is_cod: Option<bool>,
    pub is_sample_order: Option<bool>,
    pub is_replacement_order: Option<bool>,
    pub has_updated_recipient_address: Option<bool>,
    pub cancel_reason: Option<String>,
    pub cancellation_initiator: Option<String>,
    pub is_buyer_request_cancel: Option<bool>,
    pub request_cancel_time: Option<i64>,
    pub rts_sla_time: Option<i64>,
    pub tts_sla_time: Option<i64>,
    pub cancel_order_sla_time: Option<i64>,
    pub shipping_due_time: Option<i64>,
    pub collection_due_time: Option<i64>,
    pub delivery_due_time: Option<i64>,
    pub delivery_sla_time: Option<i64>,
    pub payment: Option<WirePayment>,
    pub recipient_address: Option<WireAddress>,
    pub line_items: Vec<WireLineItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WirePackageRef {
    pub id: String,
}

/// Every amount is a decimal string, e.g. `"12.30"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WirePayment {
    pub currency: String,
    pub sub_total: Option<String>,
    pub shipping_fee: Option<String>,
    pub seller_discount: Option<String>,
    pub platform_discount: Option<String>,
    pub total_amount: Option<String>,
    pub original_total_product_price: Option<String>,
    pub original_shipping_fee: Option<String>,
    pub shipping_fee_seller_discount: Option<String>,
    pub shipping_fee_platform_discount: Option<String>,
    pub tax: Option<String>,
    pub product_tax: Option<String>,
    pub shipping_fee_tax: Option<String>,
    pub retail_delivery_fee: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireAddress {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub full_address: Option<String>,
    pub address_detail: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub address_line3: Option<String>,
    pub address_line4: Option<String>,
    pub postal_code: Option<String>,
    pub region_code: Option<String>,
    pub district_info: Vec<WireDistrict>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireDistrict {
    pub address_level_name: Option<String>,
    pub address_name: Option<String>,
    pub address_level: Option<String>,
}

/// One unit of one SKU: TikTok has no quantity field; two T-shirts are two
/// line items with the same `sku_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireLineItem {
    pub id: String,
    pub sku_id: String,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub sku_name: Option<String>,
    pub seller_sku: Option<String>,
    pub original_price: Option<String>,
    pub sale_price: Option<String>,
    pub platform_discount: Option<String>,
    pub seller_discount: Option<String>,
    pub currency: Option<String>,
    pub display_status: Option<String>,
    pub package_id: Option<String>,
    pub package_status: Option<String>,
    pub tracking_number: Option<String>,
    pub shipping_provider_id: Option<String>,
    pub is_gift: Option<bool>,
}

/// `data` of Order Detail: `GET /order/202309/orders?ids=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderDetailData {
    pub orders: Vec<WireOrder>,
}
