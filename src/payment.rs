//! Payment sanity: is the order paid, and do its amounts add up?
//!
//! A workflow should not ship an order TikTok has not been paid for, nor one
//! whose amounts contradict each other (a sign of a wire-format change or a
//! conversion bug). The identities are TikTok's (reference §4.2):
//!
//! - `sub_total = original_total_product_price − seller_discount − platform_discount`
//! - `total_amount = sub_total + shipping_fee + tax + retail_delivery_fee`
//!
//! Money is exact hundredths ([`Money`]), so the only slack is the caller's
//! `tolerance` (the `order.validate` action defaults to 0.01), which absorbs
//! TikTok's own rounding of per-item taxes.

use crate::order::{Money, Order, TiktokStatus};

/// Why an order fails the check. The messages name every term, so an
/// operator can see the arithmetic without opening the order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("order {order_id} is not paid: {reason}")]
    NotPaid { order_id: String, reason: String },
    #[error("order {order_id}: {field} is {actual} but {formula} = {expected} (off by {difference}, tolerance {tolerance})")]
    Mismatch {
        order_id: String,
        /// `sub_total` or `total_amount`.
        field: &'static str,
        /// The formula with the order's numbers.
        formula: String,
        expected: Money,
        actual: Money,
        difference: Money,
        tolerance: Money,
    },
    #[error("order {order_id}: {field} is negative ({value})")]
    Negative {
        order_id: String,
        field: &'static str,
        value: Money,
    },
}

impl Error {
    /// The workflow error kind (`payment_mismatch` for every variant: the
    /// order is not safe to fulfil as it stands).
    pub fn kind(&self) -> crate::actions::ErrorKind {
        crate::actions::ErrorKind::PaymentMismatch
    }
}

/// A tolerance given in currency units (the `order.validate` action's
/// `tolerance: 0.01`) as exact hundredths, rounded half away from zero.
/// None for a negative, non-finite or absurd value.
pub fn tolerance_from_units(units: f64) -> Option<Money> {
    if !units.is_finite() || !(0.0..=1_000_000.0).contains(&units) {
        return None;
    }
    Some(Money((units * 100.0).round() as i64))
}

/// Checks that `order` is paid and its amounts add up within `tolerance`.
pub fn validate(order: &Order, tolerance: Money) -> Result<(), Error> {
    let id = || order.id.clone();
    if order.status == TiktokStatus::Unpaid {
        return Err(Error::NotPaid {
            order_id: id(),
            reason: "status is UNPAID".into(),
        });
    }
    if order.paid_time.is_none() {
        return Err(Error::NotPaid {
            order_id: id(),
            reason: format!("status is {} but paid_time is not set", order.status),
        });
    }
    let p = &order.payment;
    for (field, value) in [
        (
            "original_total_product_price",
            p.original_total_product_price,
        ),
        ("seller_discount", p.seller_discount),
        ("platform_discount", p.platform_discount),
        ("sub_total", p.sub_total),
        ("shipping_fee", p.shipping_fee),
        ("tax", p.tax),
        ("retail_delivery_fee", p.retail_delivery_fee),
        ("total_amount", p.total_amount),
    ] {
        if value.0 < 0 {
            return Err(Error::Negative {
                order_id: id(),
                field,
                value,
            });
        }
    }
    let tolerance = Money(tolerance.0.abs());
    let check = |field: &'static str, actual: Money, expected: i64, formula: String| {
        let difference = Money((actual.0 - expected).abs());
        if difference > tolerance {
            Err(Error::Mismatch {
                order_id: id(),
                field,
                formula,
                expected: Money(expected),
                actual,
                difference,
                tolerance,
            })
        } else {
            Ok(())
        }
    };
    check(
        "sub_total",
        p.sub_total,
        p.original_total_product_price.0 - p.seller_discount.0 - p.platform_discount.0,
        format!(
            "original_total_product_price {} − seller_discount {} − platform_discount {}",
            p.original_total_product_price, p.seller_discount, p.platform_discount
        ),
    )?;
    check(
        "total_amount",
        p.total_amount,
        p.sub_total.0 + p.shipping_fee.0 + p.tax.0 + p.retail_delivery_fee.0,
        format!(
            "sub_total {} + shipping_fee {} + tax {} + retail_delivery_fee {}",
            p.sub_total, p.shipping_fee, p.tax, p.retail_delivery_fee
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Payment;

    fn order() -> Order {
        let w: crate::tiktok::dto::WireOrder = serde_json::from_value(serde_json::json!({
            "id": "576461413038785752", "status": "AWAITING_SHIPMENT", "paid_time": 1700000000,
            "payment": {
                "currency": "USD", "original_total_product_price": "59.97",
                "seller_discount": "5.00", "platform_discount": "2.50", "sub_total": "52.47",
                "shipping_fee": "5.99", "tax": "4.33", "retail_delivery_fee": "0.29",
                "total_amount": "63.08"
            },
            "line_items": [{"id": "1", "sku_id": "S"}]
        }))
        .unwrap();
        Order::from_wire("shop", &w).unwrap()
    }

    #[test]
    fn a_consistent_paid_order_passes_exactly() {
        let o = order();
        assert_eq!(validate(&o, Money(0)), Ok(()));
    }

    #[test]
    fn sub_total_mismatch_names_every_term() {
        let mut o = order();
        o.payment.sub_total = Money(5248);
        o.payment.total_amount = Money(6309);
        let e = validate(&o, Money(0)).unwrap_err();
        match &e {
            Error::Mismatch {
                field,
                expected,
                actual,
                difference,
                ..
            } => {
                assert_eq!(*field, "sub_total");
                assert_eq!(*expected, Money(5247));
                assert_eq!(*actual, Money(5248));
                assert_eq!(*difference, Money(1));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains("sub_total is 52.48"), "{msg}");
        assert!(msg.contains("original_total_product_price 59.97"), "{msg}");
        assert!(msg.contains("= 52.47"), "{msg}");
        // One cent within a one-cent tolerance passes.
        assert_eq!(validate(&o, Money(1)), Ok(()));
    }

    #[test]
    fn total_mismatch_includes_the_retail_delivery_fee() {
        let mut o = order();
        // Forgetting the 0.29 retail delivery fee is a 29-cent mismatch.
        o.payment.total_amount = Money(6279);
        let e = validate(&o, Money(1)).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Mismatch {
                    field: "total_amount",
                    expected: Money(6308),
                    difference: Money(29),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.kind(), crate::actions::ErrorKind::PaymentMismatch);
    }

    #[test]
    fn unpaid_orders_fail() {
        let mut o = order();
        o.status = TiktokStatus::Unpaid;
        assert!(matches!(validate(&o, Money(1)), Err(Error::NotPaid { .. })));
        let mut o = order();
        o.paid_time = None;
        let e = validate(&o, Money(1)).unwrap_err();
        assert!(e.to_string().contains("paid_time is not set"), "{e}");
    }

    #[test]
    fn tolerance_in_units_is_exact_hundredths() {
        assert_eq!(tolerance_from_units(0.01), Some(Money(1)));
        assert_eq!(tolerance_from_units(0.0), Some(Money(0)));
        assert_eq!(tolerance_from_units(0.105), Some(Money(11)));
        assert_eq!(tolerance_from_units(-0.01), None);
        assert_eq!(tolerance_from_units(f64::NAN), None);
    }

    #[test]
    fn negative_amounts_fail() {
        let mut o = order();
        o.payment = Payment {
            seller_discount: Money(-100),
            ..o.payment.clone()
        };
        assert!(matches!(
            validate(&o, Money(1)),
            Err(Error::Negative {
                field: "seller_discount",
                ..
            })
        ));
    }
}
