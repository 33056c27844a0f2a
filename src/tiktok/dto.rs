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
    pub next_page_token: String,
    pub total_count: i64,
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
