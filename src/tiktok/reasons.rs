//! TikTok's seller cancel reasons and reject-cancellation reasons, per
//! market and order status, as TikTok publishes them.
//!
//! Source: the "Cancel reasons" appendix of the Return & Refund API
//! (`lazykern/ecommerce-api-docs`,
//! `data/raw/tiktok/api-reference/return-and-refund/cancel-reasons.json`),
//! with the later removals of the changelogs applied: "unable to deliver to
//! buyer address" is gone in ID, MY, PH, TH, VN and SG (from August 31 2025).
//! `docs/tiktok-contract-notes.md` §1 quotes the tables.
//!
//! Operators and workflows ask for a reason *kind* ([`CancelKind`]); the
//! key TikTok takes depends on the shop's market (UK keys end in `_uk`) and
//! on whether the order is paid (`seller_cancel_unpaid_reason_*` before
//! payment, `seller_cancel_reason_*` / `seller_cancel_paid_reason_*`
//! after). TikTok refuses a key that does not fit with 25001021 ("Reason
//! not match order status"); this table refuses it before any call.

use serde::Serialize;

use crate::order::TiktokStatus;

/// Why a seller cancels, independent of market and order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelKind {
    OutOfStock,
    PricingError,
    AddressUndeliverable,
    BuyerRequested,
    BuyerDidNotPay,
    PotentialFraud,
}

impl CancelKind {
    pub const ALL: [CancelKind; 6] = [
        CancelKind::OutOfStock,
        CancelKind::PricingError,
        CancelKind::AddressUndeliverable,
        CancelKind::BuyerRequested,
        CancelKind::BuyerDidNotPay,
        CancelKind::PotentialFraud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CancelKind::OutOfStock => "out_of_stock",
            CancelKind::PricingError => "pricing_error",
            CancelKind::AddressUndeliverable => "address_undeliverable",
            CancelKind::BuyerRequested => "buyer_requested",
            CancelKind::BuyerDidNotPay => "buyer_did_not_pay",
            CancelKind::PotentialFraud => "potential_fraud",
        }
    }

    pub fn parse(s: &str) -> Option<CancelKind> {
        CancelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The markets whose reason lists differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Market {
    Us,
    Uk,
    /// ES, IE, FR, DE, IT.
    Eu,
    Jp,
    Mx,
    Br,
    /// ID, MY, TH, VN.
    Sea,
    Ph,
    Sg,
}

impl Market {
    /// From a shop's region code (Get Authorized Shops `region`, or the
    /// `region` of `[[tiktok.shops]]`).
    pub fn from_region(region: &str) -> Option<Market> {
        Some(match region.trim().to_ascii_uppercase().as_str() {
            "US" => Market::Us,
            "GB" | "UK" => Market::Uk,
            "ES" | "IE" | "FR" | "DE" | "IT" => Market::Eu,
            "JP" => Market::Jp,
            "MX" => Market::Mx,
            "BR" => Market::Br,
            "ID" | "MY" | "TH" | "VN" => Market::Sea,
            "PH" => Market::Ph,
            "SG" => Market::Sg,
            _ => return None,
        })
    }
}

/// Which side of payment an order is on, for the reason lists. TikTok
/// lists seller cancel reasons for UNPAID and for ON_HOLD /
/// AWAITING_SHIPMENT only; in any other status a seller cannot cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unpaid,
    Paid,
}

fn phase(status: &TiktokStatus) -> Option<Phase> {
    match status {
        TiktokStatus::Unpaid => Some(Phase::Unpaid),
        TiktokStatus::OnHold | TiktokStatus::AwaitingShipment => Some(Phase::Paid),
        _ => None,
    }
}

/// Whether TikTok lists seller cancel reasons for an order in `status`
/// (UNPAID, ON_HOLD, AWAITING_SHIPMENT), in every market.
pub fn seller_can_cancel(status: &TiktokStatus) -> bool {
    phase(status).is_some()
}

/// One reason a seller may give: its kind, TikTok's key and TikTok's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CancelReason {
    pub kind: CancelKind,
    pub key: &'static str,
    pub text: &'static str,
}

use CancelKind as K;

/// One reason, as the appendix lists it.
const fn r(kind: CancelKind, key: &'static str, text: &'static str) -> CancelReason {
    CancelReason { kind, key, text }
}

// Each reason once; the market lists below pick from them.
const UNPAID_OOS: CancelReason = r(
    K::OutOfStock,
    "seller_cancel_unpaid_reason_out_of_stock",
    "Out of stock",
);
const UNPAID_PRICE: CancelReason = r(
    K::PricingError,
    "seller_cancel_unpaid_reason_wrong_price",
    "Pricing error",
);
const UNPAID_NOT_PAID: CancelReason = r(
    K::BuyerDidNotPay,
    "seller_cancel_unpaid_reason_buyer_hasnt_paid_within_time_allowed",
    "Buyer did not pay on time",
);
const UNPAID_BUYER: CancelReason = r(
    K::BuyerRequested,
    "seller_cancel_unpaid_reason_buyer_requested_cancellation",
    "Buyer requested cancellation",
);
const PAID_OOS: CancelReason = r(
    K::OutOfStock,
    "seller_cancel_reason_out_of_stock",
    "Out of stock",
);
const PAID_PRICE: CancelReason = r(
    K::PricingError,
    "seller_cancel_reason_wrong_price",
    "Pricing error",
);
const PAID_ADDRESS: CancelReason = r(
    K::AddressUndeliverable,
    "seller_cancel_paid_reason_address_not_deliver",
    "Unable to deliver to buyer address",
);
const PAID_BUYER: CancelReason = r(
    K::BuyerRequested,
    "seller_cancel_paid_reason_buyer_requested_cancellation",
    "Buyer requested cancellation",
);
const PAID_FRAUD: CancelReason = r(
    K::PotentialFraud,
    "seller_cancel_order_reason_potential_fraud",
    "Order with high chance of cancellation / refund",
);
const UK_UNPAID_OOS: CancelReason = r(
    K::OutOfStock,
    "seller_cancel_unpaid_reason_out_of_stock_uk",
    "Out of stock",
);
const UK_UNPAID_PRICE: CancelReason = r(
    K::PricingError,
    "seller_cancel_unpaid_reason_wrong_price_uk",
    "Pricing error",
);
const UK_UNPAID_NOT_PAID: CancelReason = r(
    K::BuyerDidNotPay,
    "seller_cancel_unpaid_reason_buyer_hasnt_paid_within_time_allowed_uk",
    "Buyer did not pay on time",
);
const UK_PAID_PRICE: CancelReason = r(
    K::PricingError,
    "seller_cancel_reason_wrong_price_uk",
    "Pricing error",
);
const UK_PAID_ADDRESS: CancelReason = r(
    K::AddressUndeliverable,
    "seller_cancel_paid_reason_address_not_deliver_uk",
    "Unable to deliver to buyer address",
);
const UK_PAID_OOS: CancelReason = r(
    K::OutOfStock,
    "seller_cancel_reason_out_of_stock_uk",
    "Out of stock",
);

// The market lists, in the appendix's order. The EU, BR, PH and JP unpaid
// lists are the US one; SEA's drops "buyer requested", SG's keeps two.
const US_UNPAID: &[CancelReason] = &[UNPAID_OOS, UNPAID_PRICE, UNPAID_NOT_PAID, UNPAID_BUYER];
const US_PAID: &[CancelReason] = &[PAID_OOS, PAID_PRICE, PAID_ADDRESS, PAID_BUYER];
const UK_UNPAID: &[CancelReason] = &[UK_UNPAID_OOS, UK_UNPAID_PRICE, UK_UNPAID_NOT_PAID];
const UK_PAID: &[CancelReason] = &[UK_PAID_PRICE, UK_PAID_ADDRESS, UK_PAID_OOS];
const JP_PAID: &[CancelReason] = &[PAID_PRICE, PAID_OOS, PAID_BUYER, PAID_ADDRESS, PAID_FRAUD];
const MX_UNPAID: &[CancelReason] = &[UNPAID_OOS, UNPAID_NOT_PAID, UNPAID_BUYER];
const MX_BR_PAID: &[CancelReason] = &[PAID_OOS, PAID_BUYER, PAID_ADDRESS];
const SEA_UNPAID: &[CancelReason] = US_UNPAID.split_at(3).0;
/// "Unable to deliver to buyer address" is gone in SEA and SG (see the
/// module's sources).
const SEA_SG_PAID: &[CancelReason] = &[PAID_OOS, PAID_PRICE];
const PH_PAID: &[CancelReason] = &[PAID_OOS, PAID_PRICE, PAID_BUYER];
const SG_UNPAID: &[CancelReason] = US_UNPAID.split_at(2).0;

fn rows(market: Market, phase: Phase) -> &'static [CancelReason] {
    match (market, phase) {
        // The EU, BR and PH unpaid lists are the US one.
        (Market::Us | Market::Eu | Market::Br | Market::Ph | Market::Jp, Phase::Unpaid) => {
            US_UNPAID
        }
        (Market::Us | Market::Eu, Phase::Paid) => US_PAID,
        (Market::Uk, Phase::Unpaid) => UK_UNPAID,
        (Market::Uk, Phase::Paid) => UK_PAID,
        (Market::Jp, Phase::Paid) => JP_PAID,
        (Market::Mx, Phase::Unpaid) => MX_UNPAID,
        (Market::Mx | Market::Br, Phase::Paid) => MX_BR_PAID,
        (Market::Sea, Phase::Unpaid) => SEA_UNPAID,
        (Market::Sea | Market::Sg, Phase::Paid) => SEA_SG_PAID,
        (Market::Ph, Phase::Paid) => PH_PAID,
        (Market::Sg, Phase::Unpaid) => SG_UNPAID,
    }
}

/// The reasons a seller may give for an order of `market` in `status`
/// (none once the order is past AWAITING_SHIPMENT, or in a status orderflow
/// does not know).
pub fn seller_cancel_reasons(market: Market, status: &TiktokStatus) -> Vec<CancelReason> {
    let Some(p) = phase(status) else {
        return Vec::new();
    };
    rows(market, p).to_vec()
}

/// Why a reason cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a kind nor a key TikTok lists for this market and status.
    NotValid { valid: Vec<CancelReason> },
    /// TikTok lists no seller cancel reason for this status.
    NotCancellable,
}

/// The official key for `reason`, which is a [`CancelKind`] name or an
/// official key itself, for an order of `market` in `status`.
pub fn seller_cancel_key(
    market: Market,
    status: &TiktokStatus,
    reason: &str,
) -> Result<&'static str, Refusal> {
    let valid = seller_cancel_reasons(market, status);
    if valid.is_empty() {
        return Err(Refusal::NotCancellable);
    }
    let kind = CancelKind::parse(reason);
    valid
        .iter()
        .find(|r| Some(r.kind) == kind || r.key == reason)
        .map(|r| r.key)
        .ok_or(Refusal::NotValid { valid })
}

/// Whether `key` is a seller cancel key of any market and status (the
/// simulator's test for 25001014, "Unknown return reason").
pub fn is_any_seller_cancel_key(key: &str) -> bool {
    const ALL: &[&[CancelReason]] = &[
        US_UNPAID,
        US_PAID,
        UK_UNPAID,
        UK_PAID,
        JP_PAID,
        MX_UNPAID,
        MX_BR_PAID,
        SEA_UNPAID,
        SEA_SG_PAID,
        PH_PAID,
        SG_UNPAID,
    ];
    ALL.iter().any(|rows| rows.iter().any(|r| r.key == key))
}

/// The reasons a seller may give to reject a buyer's cancellation request
/// (the appendix's "Seller Reject Cancel Request Reason"), as `(key,
/// text)`. JP lists none.
pub fn reject_reasons(market: Market) -> &'static [(&'static str, &'static str)] {
    match market {
        Market::Us | Market::Sea | Market::Ph | Market::Sg => &[
            ("order_manage_list_action_respond_popup_reject_reason_invalid_cancellation_reason", "Invalid reason for cancellation"),
            ("order_manage_list_action_respond_popup_reject_reason_delivered", "Product delivery is on schedule"),
            ("order_manage_list_action_respond_popup_reject_reason_buyer_agree", "Reached an agreement with the buyer"),
            ("seller_reject_apply_product_has_been_packed", "Product has been packed"),
        ],
        Market::Uk => &[
            ("order_manage_list_action_respond_popup_reject_reason_invalid_cancellation_reason_uk", "Invalid reason for cancellation"),
            ("order_manage_list_action_respond_popup_reject_reason_delivered_uk", "Product delivery is on schedule"),
            ("order_manage_list_action_respond_popup_reject_reason_buyer_agree_uk", "Reached an agreement with the buyer"),
            ("seller_reject_apply_product_has_been_packed", "Product has been packed"),
        ],
        Market::Mx | Market::Br => &[
            ("seller_reject_apply_product_has_been_packed", "Product shipped. Tracking updates will be available soon."),
            ("reverse_reject_request_reason_5", "You have reached an agreement with the customer"),
            ("seller_reject_apply_unable_to_change_address", "Unable to change address"),
        ],
        Market::Eu => &[
            ("ecom_refund_reject_reason_cancel_unacceptable_uk", "The seller didn't accept your cancellation request."),
            ("ecom_reverse_reject_cancel_reason_product_packed", "Your product has been shipped. Please wait for tracking updates."),
        ],
        Market::Jp => &[],
    }
}

/// Why a seller rejects a buyer's cancellation request, independent of
/// market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The product is packed or already shipped.
    Packed,
    /// The seller and the buyer agreed otherwise.
    Agreement,
    /// The buyer's reason does not hold.
    InvalidReason,
    /// Delivery is on schedule.
    OnSchedule,
}

impl RejectKind {
    pub const ALL: [RejectKind; 4] = [
        RejectKind::Packed,
        RejectKind::Agreement,
        RejectKind::InvalidReason,
        RejectKind::OnSchedule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Packed => "packed",
            RejectKind::Agreement => "agreement",
            RejectKind::InvalidReason => "invalid_reason",
            RejectKind::OnSchedule => "on_schedule",
        }
    }

    pub fn parse(s: &str) -> Option<RejectKind> {
        RejectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The official reject key for `reason` (a [`RejectKind`] name, or a key
/// the market lists) in `market`; `None` if the market has none for it.
pub fn reject_key(market: Market, reason: &str) -> Option<&'static str> {
    let keys = reject_reasons(market);
    if let Some(k) = keys.iter().find(|(k, _)| *k == reason) {
        return Some(k.0);
    }
    let wanted: &[&str] = match RejectKind::parse(reason)? {
        RejectKind::Packed => &[
            "seller_reject_apply_product_has_been_packed",
            "ecom_reverse_reject_cancel_reason_product_packed",
        ],
        RejectKind::Agreement => &[
            "order_manage_list_action_respond_popup_reject_reason_buyer_agree",
            "order_manage_list_action_respond_popup_reject_reason_buyer_agree_uk",
            "reverse_reject_request_reason_5",
        ],
        RejectKind::InvalidReason => &[
            "order_manage_list_action_respond_popup_reject_reason_invalid_cancellation_reason",
            "order_manage_list_action_respond_popup_reject_reason_invalid_cancellation_reason_uk",
            "ecom_refund_reject_reason_cancel_unacceptable_uk",
        ],
        RejectKind::OnSchedule => &[
            "order_manage_list_action_respond_popup_reject_reason_delivered",
            "order_manage_list_action_respond_popup_reject_reason_delivered_uk",
        ],
    };
    keys.iter()
        .find(|(k, _)| wanted.contains(k))
        .map(|(k, _)| *k)
}

/// Whether `key` is a reject key of any market (the simulator's check).
pub fn is_any_reject_key(key: &str) -> bool {
    [
        Market::Us,
        Market::Uk,
        Market::Eu,
        Market::Jp,
        Market::Mx,
        Market::Br,
        Market::Sea,
        Market::Ph,
        Market::Sg,
    ]
    .into_iter()
    .any(|m| reject_reasons(m).iter().any(|(k, _)| *k == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_market_and_status_key() {
        let us = Market::from_region("US").unwrap();
        let uk = Market::from_region("GB").unwrap();
        assert_eq!(
            seller_cancel_key(us, &TiktokStatus::AwaitingShipment, "out_of_stock"),
            Ok("seller_cancel_reason_out_of_stock")
        );
        assert_eq!(
            seller_cancel_key(us, &TiktokStatus::Unpaid, "out_of_stock"),
            Ok("seller_cancel_unpaid_reason_out_of_stock")
        );
        assert_eq!(
            seller_cancel_key(uk, &TiktokStatus::OnHold, "out_of_stock"),
            Ok("seller_cancel_reason_out_of_stock_uk")
        );
        // An official key is taken as itself where it fits, and refused
        // where it does not (a paid key on an unpaid order).
        assert_eq!(
            seller_cancel_key(
                us,
                &TiktokStatus::AwaitingShipment,
                "seller_cancel_reason_wrong_price"
            ),
            Ok("seller_cancel_reason_wrong_price")
        );
        assert!(matches!(
            seller_cancel_key(
                us,
                &TiktokStatus::Unpaid,
                "seller_cancel_reason_wrong_price"
            ),
            Err(Refusal::NotValid { .. })
        ));
        // The UK lists no "buyer requested" reason; nothing is invented.
        assert!(matches!(
            seller_cancel_key(uk, &TiktokStatus::AwaitingShipment, "buyer_requested"),
            Err(Refusal::NotValid { .. })
        ));
        // The old default is no reason anywhere.
        assert!(!is_any_seller_cancel_key("seller_cancel_reason_other"));
        assert!(matches!(
            seller_cancel_key(
                us,
                &TiktokStatus::AwaitingShipment,
                "seller_cancel_reason_other"
            ),
            Err(Refusal::NotValid { .. })
        ));
        assert_eq!(
            seller_cancel_key(us, &TiktokStatus::InTransit, "out_of_stock"),
            Err(Refusal::NotCancellable)
        );
        assert_eq!(
            seller_cancel_key(us, &TiktokStatus::Unknown("NEW".into()), "out_of_stock"),
            Err(Refusal::NotCancellable)
        );
    }

    #[test]
    fn every_uk_key_but_packed_carries_the_uk_suffix() {
        for s in [TiktokStatus::Unpaid, TiktokStatus::AwaitingShipment] {
            for r in seller_cancel_reasons(Market::Uk, &s) {
                assert!(r.key.ends_with("_uk"), "{}", r.key);
            }
        }
        for (k, _) in reject_reasons(Market::Uk) {
            assert!(k.ends_with("_uk") || *k == "seller_reject_apply_product_has_been_packed");
        }
    }

    #[test]
    fn reject_kinds_map_per_market() {
        assert_eq!(
            reject_key(Market::Us, "packed"),
            Some("seller_reject_apply_product_has_been_packed")
        );
        assert_eq!(
            reject_key(Market::Uk, "agreement"),
            Some("order_manage_list_action_respond_popup_reject_reason_buyer_agree_uk")
        );
        assert_eq!(
            reject_key(Market::Eu, "packed"),
            Some("ecom_reverse_reject_cancel_reason_product_packed")
        );
        assert_eq!(reject_key(Market::Eu, "on_schedule"), None);
        assert_eq!(reject_key(Market::Jp, "packed"), None);
        assert_eq!(reject_key(Market::Us, "nonsense"), None);
    }

    #[test]
    fn removed_sea_reasons_are_not_offered() {
        for m in [Market::Sea, Market::Ph, Market::Sg] {
            let keys: Vec<_> = seller_cancel_reasons(m, &TiktokStatus::AwaitingShipment)
                .into_iter()
                .map(|r| r.key)
                .collect();
            assert!(
                !keys.contains(&"seller_cancel_paid_reason_address_not_deliver"),
                "{m:?}"
            );
            assert!(!keys.contains(&"seller_cancel_unable_to_deliver_to_buyer_address"));
        }
    }
}
