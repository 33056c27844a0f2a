//! The domain order: what the rest of orderflow sees of a TikTok Shop order.
//!
//! TikTok's wire shape ([`crate::tiktok::dto::WireOrder`]) has money as
//! strings, no quantities (one line item per unit) and a status that two
//! spellings share. This type fixes those once: money is exact minor units
//! ([`Money`]), quantities per SKU are derived by [`Order::units_by_sku`], and
//! the status is an enum that accepts both `CANCELLED` and the webhook's
//! `CANCEL`. Workflows see it through [`Order::to_json`], with amounts as
//! numbers.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tiktok::dto::{WireAddress, WireOrder};

/// Errors converting a wire order into the domain order.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("order has no id")]
    MissingId,
    #[error("order {order_id:?} could not be read: {error}")]
    Undecodable { order_id: String, error: String },
    #[error("order {order_id}: field {field} is not a decimal amount: {value:?}")]
    BadAmount {
        order_id: String,
        field: &'static str,
        value: String,
    },
}

/// An amount in hundredths of the currency unit. TikTok sends decimal
/// strings; floats would make `sub_total + shipping == total` checks lie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Money(pub i64);

impl Money {
    /// Parses `"12"`, `"12.3"`, `"-0.05"`. More than two decimals are
    /// rounded half away from zero; anything else is `None`.
    pub fn parse(s: &str) -> Option<Money> {
        let s = s.trim();
        if s.is_empty() || s.len() > 24 {
            return None;
        }
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut frac_digits = frac.bytes().map(|b| i64::from(b - b'0'));
        let d1 = frac_digits.next().unwrap_or(0);
        let d2 = frac_digits.next().unwrap_or(0);
        let round = i64::from(frac_digits.next().unwrap_or(0) >= 5);
        let v = int_v.checked_mul(100)?.checked_add(d1 * 10 + d2 + round)?;
        Some(Money(if neg { -v } else { v }))
    }

    /// The amount as a number of currency units, for expressions.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// TikTok's order status (API 202309 strings). A value TikTok adds later
/// is kept as [`TiktokStatus::Unknown`] with its raw text, shown as it came,
/// and holds its order for an operator; it is never a decoding error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TiktokStatus {
    Unpaid,
    OnHold,
    AwaitingShipment,
    PartiallyShipping,
    AwaitingCollection,
    InTransit,
    Delivered,
    Completed,
    Cancelled,
    /// A status orderflow does not know, as TikTok spelled it.
    Unknown(String),
}

impl TiktokStatus {
    pub const ALL: [TiktokStatus; 9] = [
        TiktokStatus::Unpaid,
        TiktokStatus::OnHold,
        TiktokStatus::AwaitingShipment,
        TiktokStatus::PartiallyShipping,
        TiktokStatus::AwaitingCollection,
        TiktokStatus::InTransit,
        TiktokStatus::Delivered,
        TiktokStatus::Completed,
        TiktokStatus::Cancelled,
    ];

    /// Any status TikTok sends: a known one, else [`TiktokStatus::Unknown`]
    /// with the raw text.
    pub fn read(s: &str) -> TiktokStatus {
        TiktokStatus::parse(s).unwrap_or_else(|| TiktokStatus::Unknown(s.to_string()))
    }

    /// Whether orderflow knows this status.
    pub fn is_known(&self) -> bool {
        !matches!(self, TiktokStatus::Unknown(_))
    }

    /// A known status only. Accepts both `CANCELLED` (order API) and
    /// `CANCEL` (the ORDER_STATUS_CHANGE webhook's spelling).
    pub fn parse(s: &str) -> Option<TiktokStatus> {
        Some(match s {
            "UNPAID" => TiktokStatus::Unpaid,
            "ON_HOLD" => TiktokStatus::OnHold,
            "AWAITING_SHIPMENT" => TiktokStatus::AwaitingShipment,
            "PARTIALLY_SHIPPING" => TiktokStatus::PartiallyShipping,
            "AWAITING_COLLECTION" => TiktokStatus::AwaitingCollection,
            "IN_TRANSIT" => TiktokStatus::InTransit,
            "DELIVERED" => TiktokStatus::Delivered,
            "COMPLETED" => TiktokStatus::Completed,
            "CANCELLED" | "CANCEL" => TiktokStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            TiktokStatus::Unpaid => "UNPAID",
            TiktokStatus::OnHold => "ON_HOLD",
            TiktokStatus::AwaitingShipment => "AWAITING_SHIPMENT",
            TiktokStatus::PartiallyShipping => "PARTIALLY_SHIPPING",
            TiktokStatus::AwaitingCollection => "AWAITING_COLLECTION",
            TiktokStatus::InTransit => "IN_TRANSIT",
            TiktokStatus::Delivered => "DELIVERED",
            TiktokStatus::Completed => "COMPLETED",
            TiktokStatus::Cancelled => "CANCELLED",
            TiktokStatus::Unknown(s) => s,
        }
    }

    /// Position in TikTok's forward lifecycle; `Cancelled` is terminal and
    /// ranks above everything so no later update can move past it. An
    /// unknown status has no place in it (`None`).
    pub fn rank(&self) -> Option<u8> {
        Some(match self {
            TiktokStatus::Unpaid => 0,
            TiktokStatus::OnHold => 1,
            TiktokStatus::AwaitingShipment => 2,
            TiktokStatus::PartiallyShipping => 3,
            TiktokStatus::AwaitingCollection => 4,
            TiktokStatus::InTransit => 5,
            TiktokStatus::Delivered => 6,
            TiktokStatus::Completed => 7,
            TiktokStatus::Cancelled => 8,
            TiktokStatus::Unknown(_) => return None,
        })
    }
}

impl fmt::Display for TiktokStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of one SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub id: String,
    pub sku_id: String,
    pub product_id: String,
    pub product_name: String,
    pub seller_sku: String,
    pub sale_price: Money,
    pub original_price: Money,
    pub package_id: Option<String>,
    /// A virtual bundle's source SKUs (TikTok's `combined_listing_skus`):
    /// stock is taken for these, not for the bundle's own `sku_id`.
    #[serde(default, deserialize_with = "crate::store::codec::since_v4")]
    pub combined: Vec<CombinedSku>,
}

/// One source SKU of a virtual bundle line, `count` units of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CombinedSku {
    pub sku_id: String,
    pub product_id: String,
    pub seller_sku: String,
    pub count: u32,
}

/// Stock an order needs of one TikTok SKU (see [`Order::stock_demand`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    pub sku_id: String,
    /// The seller SKU the line names, for mapping by `seller_sku`.
    pub seller_sku: String,
    pub product_id: String,
    pub units: u32,
}

/// The order's amounts (see the reference: `sub_total = original price −
/// seller discount − platform discount`, `total = sub_total + shipping +
/// taxes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub currency: String,
    pub original_total_product_price: Money,
    pub seller_discount: Money,
    pub platform_discount: Money,
    pub sub_total: Money,
    pub shipping_fee: Money,
    pub tax: Money,
    pub retail_delivery_fee: Money,
    pub total_amount: Money,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub phone_number: String,
    pub full_address: String,
    pub address_line1: String,
    pub address_line2: String,
    pub postal_code: String,
    pub region_code: String,
    /// State/province/city names from `district_info`, outermost first.
    pub districts: Vec<String>,
}

/// TikTok's deadlines, Unix seconds. `rts_sla_time` is the ship-by deadline
/// that counts toward the late-dispatch rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deadlines {
    pub rts_sla_time: Option<i64>,
    pub tts_sla_time: Option<i64>,
    pub cancel_order_sla_time: Option<i64>,
    pub shipping_due_time: Option<i64>,
    pub collection_due_time: Option<i64>,
    pub delivery_due_time: Option<i64>,
}

impl Deadlines {
    /// The earliest deadline by which the seller must act: what the gateway's
    /// priority queue and the at-risk gauge order by.
    pub fn ship_by(&self) -> Option<i64> {
        [
            self.rts_sla_time,
            self.shipping_due_time,
            self.cancel_order_sla_time,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub shop_id: String,
    pub status: TiktokStatus,
    pub create_time: i64,
    pub update_time: i64,
    pub paid_time: Option<i64>,
    pub buyer_user_id: String,
    pub buyer_email: String,
    pub buyer_message: String,
    pub shipping_type: String,
    pub fulfillment_type: String,
    pub warehouse_id: Option<String>,
    pub packages: Vec<String>,
    pub tracking_number: Option<String>,
    pub shipping_provider_id: Option<String>,
    pub is_on_hold_order: bool,
    pub is_cod: bool,
    pub cancel_reason: Option<String>,
    pub cancellation_initiator: Option<String>,
    pub payment: Payment,
    pub recipient: Option<Address>,
    pub deadlines: Deadlines,
    pub line_items: Vec<LineItem>,
    /// orderflow's own tags (`order.tag` action), not TikTok's.
    pub tags: Vec<String>,
    // Fields from store format V3 on: appended, and read as defaults from
    // a V1 checkpoint (see `store::codec::since_v3`).
    /// TikTok's delivery option: which shipping providers it takes.
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub delivery_option_id: Option<String>,
    /// The buyer asked to cancel and the seller has not answered yet.
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub buyer_cancel_requested: bool,
    /// When the buyer asked, Unix seconds.
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub request_cancel_time: Option<i64>,
    /// The buyer's pending cancellation request as Search Cancellations
    /// shows it (read by the sync when `buyer_cancel_requested`).
    #[serde(default, deserialize_with = "crate::store::codec::since_v3")]
    pub cancel_request: Option<CancelRequest>,
}

/// A buyer's request to cancel, waiting for the seller's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub cancel_id: String,
    /// TikTok's reason key, and its text.
    pub reason: String,
    pub reason_text: String,
    /// Unix seconds.
    pub requested_at: i64,
    /// TikTok's deadline for the seller's answer (Unix seconds).
    pub respond_by: Option<i64>,
}

impl CancelRequest {
    pub fn from_wire(c: &crate::tiktok::dto::Cancellation) -> CancelRequest {
        CancelRequest {
            cancel_id: c.cancel_id.clone(),
            reason: c.cancel_reason.clone(),
            reason_text: c.cancel_reason_text.clone(),
            requested_at: c.create_time,
            respond_by: c.respond_by(),
        }
    }
}

fn money(order_id: &str, field: &'static str, v: &Option<String>) -> Result<Money, Error> {
    match v.as_deref() {
        None | Some("") => Ok(Money(0)),
        Some(s) => Money::parse(s).ok_or_else(|| Error::BadAmount {
            order_id: order_id.to_string(),
            field,
            value: s.to_string(),
        }),
    }
}

fn address(a: &WireAddress) -> Address {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    Address {
        name: a.name.clone().unwrap_or_else(|| {
            format!("{} {}", s(&a.first_name), s(&a.last_name))
                .trim()
                .to_string()
        }),
        phone_number: s(&a.phone_number),
        full_address: s(&a.full_address),
        address_line1: s(&a.address_line1),
        address_line2: s(&a.address_line2),
        postal_code: s(&a.postal_code),
        region_code: s(&a.region_code),
        districts: a
            .district_info
            .iter()
            .filter_map(|d| d.address_name.clone())
            .collect(),
    }
}

impl Order {
    /// Converts TikTok's wire order. `shop_id` comes from the call's context
    /// (the order body does not carry it).
    pub fn from_wire(shop_id: &str, w: &WireOrder) -> Result<Order, Error> {
        if let Some(u) = &w.undecodable {
            return Err(Error::Undecodable {
                order_id: w.id.clone(),
                error: u.error.clone(),
            });
        }
        if w.id.is_empty() {
            return Err(Error::MissingId);
        }
        let id = w.id.as_str();
        let status = TiktokStatus::read(&w.status);
        let payment = match &w.payment {
            None => Payment::default(),
            Some(p) => Payment {
                currency: p.currency.clone(),
                original_total_product_price: money(
                    id,
                    "original_total_product_price",
                    &p.original_total_product_price,
                )?,
                seller_discount: money(id, "seller_discount", &p.seller_discount)?,
                platform_discount: money(id, "platform_discount", &p.platform_discount)?,
                sub_total: money(id, "sub_total", &p.sub_total)?,
                shipping_fee: money(id, "shipping_fee", &p.shipping_fee)?,
                tax: money(id, "tax", &p.tax)?,
                retail_delivery_fee: money(id, "retail_delivery_fee", &p.retail_delivery_fee)?,
                total_amount: money(id, "total_amount", &p.total_amount)?,
            },
        };
        let mut line_items = Vec::with_capacity(w.line_items.len());
        for li in &w.line_items {
            line_items.push(LineItem {
                id: li.id.clone(),
                sku_id: li.sku_id.clone(),
                product_id: li.product_id.clone().unwrap_or_default(),
                product_name: li.product_name.clone().unwrap_or_default(),
                seller_sku: li.seller_sku.clone().unwrap_or_default(),
                sale_price: money(id, "line_items.sale_price", &li.sale_price)?,
                original_price: money(id, "line_items.original_price", &li.original_price)?,
                package_id: li.package_id.clone(),
                combined: li
                    .combined_listing_skus
                    .iter()
                    .filter(|c| !c.sku_id.is_empty() && c.sku_count > 0)
                    .map(|c| CombinedSku {
                        sku_id: c.sku_id.clone(),
                        product_id: c.product_id.clone(),
                        seller_sku: c.seller_sku.trim().to_string(),
                        count: c.sku_count,
                    })
                    .collect(),
            });
        }
        Ok(Order {
            id: w.id.clone(),
            shop_id: shop_id.to_string(),
            status,
            create_time: w.create_time,
            update_time: w.update_time,
            paid_time: w.paid_time,
            buyer_user_id: w.user_id.clone().unwrap_or_default(),
            buyer_email: w.buyer_email.clone().unwrap_or_default(),
            buyer_message: w.buyer_message.clone().unwrap_or_default(),
            shipping_type: w.shipping_type.clone().unwrap_or_else(|| "SELLER".into()),
            fulfillment_type: w
                .fulfillment_type
                .clone()
                .unwrap_or_else(|| "FULFILLMENT_BY_SELLER".into()),
            warehouse_id: w.warehouse_id.clone(),
            packages: w.packages.iter().map(|p| p.id.clone()).collect(),
            tracking_number: w.tracking_number.clone(),
            shipping_provider_id: w.shipping_provider_id.clone(),
            is_on_hold_order: w.is_on_hold_order.unwrap_or(false),
            is_cod: w.is_cod.unwrap_or(false),
            cancel_reason: w.cancel_reason.clone(),
            cancellation_initiator: w.cancellation_initiator.clone(),
            payment,
            recipient: w.recipient_address.as_ref().map(address),
            deadlines: Deadlines {
                rts_sla_time: w.rts_sla_time,
                tts_sla_time: w.tts_sla_time,
                cancel_order_sla_time: w.cancel_order_sla_time,
                shipping_due_time: w.shipping_due_time,
                collection_due_time: w.collection_due_time,
                delivery_due_time: w.delivery_due_time,
            },
            line_items,
            tags: Vec::new(),
            delivery_option_id: w.delivery_option_id.clone(),
            buyer_cancel_requested: w.is_buyer_request_cancel.unwrap_or(false),
            request_cancel_time: w.request_cancel_time,
            cancel_request: None,
        })
    }

    /// Units per SKU: the count of line items sharing a `sku_id`.
    /// The TikTok SKUs whose stock the order takes, with units: a line is
    /// one unit of its SKU, a virtual-bundle line `count` units of each of
    /// its source SKUs. Ordered by SKU id.
    pub fn stock_demand(&self) -> Vec<Demand> {
        let mut m: BTreeMap<String, Demand> = BTreeMap::new();
        let mut add = |sku: &str, seller: &str, product: &str, n: u32| {
            let d = m.entry(sku.to_string()).or_insert_with(|| Demand {
                sku_id: sku.to_string(),
                seller_sku: seller.trim().to_string(),
                product_id: product.to_string(),
                units: 0,
            });
            d.units = d.units.saturating_add(n);
        };
        for li in &self.line_items {
            if li.combined.is_empty() {
                add(&li.sku_id, &li.seller_sku, &li.product_id, 1);
            } else {
                for c in &li.combined {
                    add(&c.sku_id, &c.seller_sku, &c.product_id, c.count);
                }
            }
        }
        m.into_values().collect()
    }

    pub fn units_by_sku(&self) -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        for li in &self.line_items {
            *m.entry(li.sku_id.clone()).or_insert(0) += 1;
        }
        m
    }

    /// The view workflows get as `order` in CEL: amounts as numbers, times
    /// as Unix seconds, `units` per SKU precomputed.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let p = &self.payment;
        let items: Vec<_> = self
            .line_items
            .iter()
            .map(|li| {
                json!({
                    "id": li.id, "sku_id": li.sku_id, "product_id": li.product_id,
                    "product_name": li.product_name, "seller_sku": li.seller_sku,
                    "sale_price": li.sale_price.as_f64(), "original_price": li.original_price.as_f64(),
                    "package_id": li.package_id,
                })
            })
            .collect();
        let units: serde_json::Map<String, serde_json::Value> = self
            .units_by_sku()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        let d = &self.deadlines;
        json!({
            "id": self.id,
            "shop_id": self.shop_id,
            "status": self.status.as_str(),
            "create_time": self.create_time,
            "update_time": self.update_time,
            "paid_time": self.paid_time,
            "buyer": { "user_id": self.buyer_user_id, "email": self.buyer_email, "message": self.buyer_message },
            "shipping_type": self.shipping_type,
            "fulfillment_type": self.fulfillment_type,
            "warehouse_id": self.warehouse_id,
            "packages": self.packages,
            "tracking_number": self.tracking_number,
            "is_cod": self.is_cod,
            "delivery_option_id": self.delivery_option_id,
            "buyer_cancel_requested": self.buyer_cancel_requested,
            "request_cancel_time": self.request_cancel_time,
            "cancel_request": self.cancel_request,
            "is_on_hold_order": self.is_on_hold_order,
            "payment": {
                "currency": p.currency,
                "original_total_product_price": p.original_total_product_price.as_f64(),
                "seller_discount": p.seller_discount.as_f64(),
                "platform_discount": p.platform_discount.as_f64(),
                "sub_total": p.sub_total.as_f64(),
                "shipping_fee": p.shipping_fee.as_f64(),
                "tax": p.tax.as_f64(),
                "total_amount": p.total_amount.as_f64(),
            },
            "recipient": self.recipient.as_ref().map(|a| json!({
                "name": a.name, "phone_number": a.phone_number, "full_address": a.full_address,
                "postal_code": a.postal_code, "region_code": a.region_code, "districts": a.districts,
            })),
            "deadlines": {
                "rts_sla_time": d.rts_sla_time, "tts_sla_time": d.tts_sla_time,
                "cancel_order_sla_time": d.cancel_order_sla_time, "shipping_due_time": d.shipping_due_time,
                "collection_due_time": d.collection_due_time, "delivery_due_time": d.delivery_due_time,
                "ship_by": d.ship_by(),
            },
            "line_items": items,
            "units": units,
            "item_count": self.line_items.len(),
            "tags": self.tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_parses_exactly() {
        assert_eq!(Money::parse("12.30"), Some(Money(1230)));
        assert_eq!(Money::parse("12"), Some(Money(1200)));
        assert_eq!(Money::parse("0.5"), Some(Money(50)));
        assert_eq!(Money::parse("-1.005"), Some(Money(-101)));
        assert_eq!(Money::parse(".5"), Some(Money(50)));
        assert_eq!(Money::parse("1e3"), None);
        assert_eq!(Money::parse(""), None);
        assert_eq!(Money::parse("."), None);
        assert_eq!(Money::parse("99999999999999999999"), None);
        assert_eq!(Money(-101).to_string(), "-1.01");
    }

    #[test]
    fn both_cancel_spellings_map_to_cancelled() {
        assert_eq!(TiktokStatus::parse("CANCEL"), Some(TiktokStatus::Cancelled));
        assert_eq!(
            TiktokStatus::parse("CANCELLED"),
            Some(TiktokStatus::Cancelled)
        );
        for s in TiktokStatus::ALL {
            assert_eq!(TiktokStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn units_are_counted_from_line_items() {
        let w: WireOrder = serde_json::from_value(serde_json::json!({
            "id": "1", "status": "AWAITING_SHIPMENT",
            "line_items": [{"id":"a","sku_id":"S1"},{"id":"b","sku_id":"S1"},{"id":"c","sku_id":"S2"}]
        }))
        .unwrap();
        let o = Order::from_wire("shop", &w).unwrap();
        assert_eq!(o.units_by_sku().get("S1"), Some(&2));
        assert_eq!(o.units_by_sku().get("S2"), Some(&1));
    }
}
