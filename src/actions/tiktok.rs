//! `tiktok.*`: shipping, cancelling and stock on TikTok, through the
//! gateway (rate limits, priorities), and the one mapping of TikTok's
//! failures onto error kinds ([`ErrorKind::from_tiktok`]).

use crate::order::Order;
use crate::tiktok::dto::{
    MarkShippedRequest, SelfShipment, ShipPackageRequest, SkuInventory, UpdateInventoryRequest,
    WarehouseQuantity,
};
use crate::tiktok::{GatewayHandle, Priority, Shipment};
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, refuse_platform_fulfilled, Action, Call, ErrorKind};

pub const SHIP_PACKAGE: Action = Action {
    name: "tiktok.ship_package",
    doc: "Ship the order's package (Ship Package): through TikTok Shipping, or, for a seller-shipped order, with the seller's tracking number and TikTok's provider id (self_shipment).",
    args: &[
        arg("package_id", Str, false, "defaults to the order's first package"),
        arg("handover_method", Str, false, "PICKUP or DROP_OFF (default PICKUP)"),
        arg("tracking_number", Str, false, "seller-shipped orders: the carrier's tracking number"),
        arg("shipping_provider_id", Str, false, "seller-shipped orders: TikTok's id for the carrier"),
    ],
    outputs: &[
        "package_id",
        "tracking_number",
        "shipping_provider_id",
        "document_url",
    ],
    errors: &[],
    external: true,
};

pub const MARK_SHIPPED: Action = Action {
    name: "tiktok.mark_shipped",
    doc: "Tell TikTok the seller shipped the order with its own carrier (Mark Package As Shipped).",
    args: &[
        arg(
            "tracking_number",
            Str,
            true,
            "the carrier's tracking number",
        ),
        arg(
            "shipping_provider_id",
            Str,
            true,
            "TikTok's id for the carrier",
        ),
        arg("line_item_ids", List, false, "defaults to every line item"),
    ],
    outputs: &["package_id"],
    errors: &[],
    external: true,
};

pub const CANCEL_ORDER: Action = Action {
    name: "tiktok.cancel_order",
    doc: "Cancel the order as the seller. The reason is a kind (out_of_stock, pricing_error, address_undeliverable, buyer_requested, buyer_did_not_pay, potential_fraud) or an official key; it is mapped to TikTok's key for the shop's market and the order's status, and one TikTok would refuse fails the step as invalid before any call.",
    args: &[arg("reason", Str, true, "a reason kind, e.g. out_of_stock")],
    outputs: &["cancel_id", "cancel_status"],
    errors: &[],
    external: true,
};

pub const APPROVE_CANCELLATION: Action = Action {
    name: "tiktok.approve_cancellation",
    doc: "Approve the buyer's pending cancellation request (TikTok then cancels the order and the workflow's compensations run).",
    args: &[arg("cancel_id", Str, false, "defaults to the order's pending request")],
    outputs: &["cancel_id", "approved"],
    errors: &[],
    external: true,
};

pub const REJECT_CANCELLATION: Action = Action {
    name: "tiktok.reject_cancellation",
    doc: "Reject the buyer's pending cancellation request with a reason kind (packed, agreement, invalid_reason, on_schedule) or an official key, mapped for the shop's market.",
    args: &[
        arg("cancel_id", Str, false, "defaults to the order's pending request"),
        arg("reason", Str, false, "a reject kind, default packed"),
    ],
    outputs: &["cancel_id", "rejected"],
    errors: &[],
    external: true,
};

pub const UPDATE_INVENTORY: Action = Action {
    name: "tiktok.update_inventory",
    doc: "Send a SKU's quantities to TikTok, each warehouse its own: our available units, or `quantity` for the one warehouse named.",
    args: &[
        arg("sku_id", Str, true, "TikTok SKU id"),
        arg("quantity", Int, false, "units for the named warehouse (the others get ours)"),
        arg("warehouse_id", Str, false, "defaults to the order's warehouse, then inventory.default_warehouse"),
    ],
    outputs: &["sku_id", "quantity"],
    errors: &[],
    external: true,
};

impl ErrorKind {
    /// The kind of a TikTok gateway error: the one mapping, for actions and
    /// for the services that call TikTok (shipping, inventory).
    pub fn from_tiktok(e: &crate::tiktok::Error) -> ErrorKind {
        use crate::tiktok::{codes, Error as T, LastFailure};
        match e {
            T::RetriesExhausted { last_failure, .. } => match last_failure {
                LastFailure::TimedOut => ErrorKind::Timeout,
                LastFailure::Throttled => ErrorKind::RateLimited,
                LastFailure::Transient => ErrorKind::Transient,
            },
            T::Transport {
                timed_out: true, ..
            } => ErrorKind::Timeout,
            T::Transport { .. } | T::Decode { .. } | T::GatewayStopped => ErrorKind::Transient,
            T::Api { code, .. } => match *code {
                codes::NOT_THIS_SELLER => ErrorKind::NotFound,
                codes::TOO_MANY_REQUESTS => ErrorKind::RateLimited,
                codes::INTERNAL_ERROR => ErrorKind::Transient,
                codes::INVALID_TRACKING | codes::DUPLICATE_TRACKING => ErrorKind::Invalid,
                _ => ErrorKind::Rejected,
            },
            T::OrderNotFound(_) => ErrorKind::NotFound,
            T::InvalidRequest(_)
            | T::Order(_)
            | T::WebhookPayload(_)
            | T::UnknownMarket { .. }
            | T::CancelReason { .. } => ErrorKind::Invalid,
            T::Config { .. }
            | T::Configuration { .. }
            | T::InvalidConfig(_)
            | T::TokenRefresh { .. }
            | T::UnknownShop(_)
            | T::NoCipher(_)
            | T::WebhookSignature => ErrorKind::Rejected,
        }
    }
}

/// TikTok's answer as the step's failure.
pub(super) fn failed(e: crate::tiktok::Error) -> ActionError {
    ErrorKind::from_tiktok(&e).error(e.to_string())
}

/// The order, the gateway and the write priority every order action of
/// this family starts from.
fn start<'a>(
    c: &Call<'a>,
) -> Result<(std::sync::Arc<Order>, &'a GatewayHandle, Priority), ActionError> {
    let order = c.order()?;
    let g = c.gateway()?;
    let prio = Priority::write(order.deadlines.ship_by());
    Ok((order, g, prio))
}

/// The buyer's request: the one named, else the order's pending one.
fn cancel_id(c: &Call<'_>, order: &Order) -> Result<String, ActionError> {
    c.arg("cancel_id")
        .filter(|id| !id.is_empty())
        .or_else(|| order.cancel_request.as_ref().map(|r| r.cancel_id.clone()))
        .ok_or_else(|| ErrorKind::Invalid.error("no buyer cancellation request is pending"))
}

pub(super) async fn approve_cancellation(c: &Call<'_>) -> Result<Data, ActionError> {
    let (order, g, prio) = start(c)?;
    let id = cancel_id(c, &order)?;
    g.approve_cancellation(&order.shop_id, &id, &c.effect.key, prio)
        .await
        .map_err(failed)?;
    Ok(Data::map([
        ("cancel_id", Data::from(id)),
        ("approved", Data::Bool(true)),
    ]))
}

pub(super) async fn reject_cancellation(c: &Call<'_>) -> Result<Data, ActionError> {
    let (order, g, prio) = start(c)?;
    let id = cancel_id(c, &order)?;
    let reason = c.arg("reason").unwrap_or_else(|| "packed".into());
    g.reject_cancellation(&order.shop_id, &id, &reason, &c.effect.key, prio)
        .await
        .map_err(failed)?;
    Ok(Data::map([
        ("cancel_id", Data::from(id)),
        ("rejected", Data::Bool(true)),
    ]))
}

pub(super) async fn mark_shipped(c: &Call<'_>) -> Result<Data, ActionError> {
    let (order, g, prio) = start(c)?;
    refuse_platform_fulfilled(&order, &c.effect.action)?;
    let req = MarkShippedRequest {
        tracking_number: c.arg("tracking_number").unwrap_or_default(),
        shipping_provider_id: c.arg("shipping_provider_id").unwrap_or_default(),
        order_line_item_ids: match c.effect.args.get("line_item_ids") {
            Some(Data::List(l)) => l
                .iter()
                .filter_map(Data::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        },
    };
    let shipped = g
        .mark_package_shipped(&order.shop_id, &order.id, req, prio)
        .await;
    match unless_cancelled(g, &order, shipped, prio).await? {
        Shipment::Shipped(d) => Ok(Data::map([("package_id", Data::from(d.package_id))])),
        Shipment::AlreadyShipped { .. } => Ok(Data::map([
            (
                "package_id",
                Data::from(order.packages.first().cloned().unwrap_or_default()),
            ),
            ("already_shipped", Data::Bool(true)),
        ])),
    }
}

pub(super) async fn ship_package(c: &Call<'_>) -> Result<Data, ActionError> {
    let (order, g, prio) = start(c)?;
    refuse_platform_fulfilled(&order, &c.effect.action)?;
    let pkg = c
        .arg("package_id")
        .or_else(|| order.packages.first().cloned())
        .ok_or_else(|| ErrorKind::Invalid.error("the order has no package to ship"))?;
    // A seller-shipped package goes with the seller's tracking
    // (Ship Package's `self_shipment`, both fields required).
    let self_shipment = if order.shipping_type == "SELLER" {
        match (c.arg("tracking_number"), c.arg("shipping_provider_id")) {
            (Some(t), Some(p)) if !t.is_empty() && !p.is_empty() => Some(SelfShipment {
                tracking_number: t,
                shipping_provider_id: p,
            }),
            _ => {
                return Err(ErrorKind::Invalid.error(format!(
                    "the order is shipped by the seller: {} needs tracking_number and shipping_provider_id (or use {})",
                    SHIP_PACKAGE.name, MARK_SHIPPED.name
                )))
            }
        }
    } else {
        None
    };
    let req_self = self_shipment.clone();
    let req = ShipPackageRequest {
        handover_method: Some(c.arg("handover_method").unwrap_or_else(|| "PICKUP".into())),
        self_shipment,
        ..Default::default()
    };
    let shipped = g.ship_package(&order.shop_id, &pkg, req, prio).await;
    unless_cancelled(g, &order, shipped, prio).await?;
    // TikTok assigns the carrier and tracking number: read them back.
    let fresh = g
        .order_detail(&order.shop_id, &order.id, prio)
        .await
        .map_err(failed)?;
    let tracking = fresh.tracking_number.unwrap_or_default();
    let provider_id = fresh.shipping_provider_id.unwrap_or_default();
    // TikTok Shipping: the package is the order's label, and TikTok's
    // label and packing slip are kept with the order to print.
    let mut document_url = Data::Null;
    if let (Some(f), None, false) = (c.fulfil, &req_self, tracking.is_empty()) {
        let selection = crate::shipping::Selection {
            carrier: "TikTok Shipping".into(),
            service: None,
            shipping_provider_id: Some(provider_id.clone()).filter(|p| !p.is_empty()),
            rule: None,
            provider: Some(crate::shipping::ProviderKind::Tiktok),
            rate_choice: None,
        };
        let p = crate::shipping::purchase::Purchase {
            book: &f.labels,
            providers: &f.providers,
            gateway: Some(g),
            http: c.http,
            order: &order,
            selection: &selection,
            provider: crate::shipping::ProviderKind::Tiktok,
            weight_grams: 0,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        let l = crate::shipping::purchase::shipped_by_tiktok(
            &p,
            &pkg,
            tracking.clone(),
            p.selection.shipping_provider_id.clone(),
        )
        .await
        .map_err(|e| e.kind().error(e.to_string()))?;
        if let Some(u) = f
            .labels
            .document_url(&order.id, &l.label_id)
            .map_err(|e| e.kind().error(e.to_string()))?
        {
            document_url = Data::from(u);
        }
    }
    Ok(Data::map([
        ("package_id", Data::from(pkg)),
        ("tracking_number", Data::from(tracking)),
        ("shipping_provider_id", Data::from(provider_id)),
        ("document_url", document_url),
    ]))
}

pub(super) async fn cancel_order(c: &Call<'_>) -> Result<Data, ActionError> {
    let (order, g, prio) = start(c)?;
    // A kind (`out_of_stock`) or an official key; the gateway maps it for
    // the shop's market and the order's status and refuses one TikTok would
    // refuse, before any call.
    let reason = c.arg("reason").ok_or_else(|| {
        ErrorKind::Invalid.error(format!(
            "{} needs a reason (out_of_stock, pricing_error, address_undeliverable, buyer_requested, buyer_did_not_pay, potential_fraud, or an official key)",
            CANCEL_ORDER.name
        ))
    })?;
    let d = g
        .seller_cancel(&order, &reason, prio)
        .await
        .map_err(failed)?;
    Ok(Data::map([
        ("cancel_id", Data::from(d.cancel_id)),
        ("cancel_status", Data::from(d.cancel_status)),
    ]))
}

/// A ship call TikTok refused: if TikTok cancelled the order meanwhile
/// (the webhook saying so not yet here), the step fails as
/// [`ErrorKind::OrderCancelled`], and the runtime records the cancellation
/// and compensates (stock released, an unused label voided) instead of
/// leaving the order in exception.
async fn unless_cancelled<T>(
    g: &GatewayHandle,
    order: &Order,
    r: Result<T, crate::tiktok::Error>,
    prio: Priority,
) -> Result<T, ActionError> {
    let e = match r {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if ErrorKind::from_tiktok(&e) != ErrorKind::Rejected {
        return Err(failed(e));
    }
    match g.order_detail(&order.shop_id, &order.id, prio).await {
        Ok(fresh) if fresh.status == crate::order::TiktokStatus::Cancelled => {
            Err(ErrorKind::OrderCancelled.error(format!(
                "TikTok cancelled the order before it shipped ({e}); nothing was shipped"
            )))
        }
        _ => Err(failed(e)),
    }
}

pub(super) async fn update_inventory(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let g = c.gateway()?;
    let o = c.order()?;
    let sku = c.arg("sku_id").unwrap_or_default();
    let stock = f
        .inventory
        .get(&sku)
        .await
        .map_err(super::inventory::failed)?
        .ok_or_else(|| ErrorKind::NotFound.error(format!("unknown SKU {sku}")))?;
    let product = stock
        .product_id
        .clone()
        .ok_or_else(|| ErrorKind::Invalid.error(format!("SKU {sku} has no product id")))?;
    // Each warehouse gets its own quantity: ours (available), or, with
    // `quantity`, that number for the one warehouse named (`warehouse_id`,
    // else the order's, else the default) and ours for the others.
    let named = c
        .arg("warehouse_id")
        .or_else(|| o.warehouse_id.clone())
        .or_else(|| f.inventory.config().default_warehouse.clone());
    let given = c
        .effect
        .args
        .get("quantity")
        .and_then(Data::as_f64)
        .map(|q| q.max(0.0) as u32);
    let default = f.inventory.config().default_warehouse.clone();
    let mut inventory: Vec<WarehouseQuantity> = stock
        .warehouses
        .iter()
        .filter_map(|w| {
            let id = w.warehouse.clone().or_else(|| default.clone())?;
            let quantity = match (&given, &named) {
                (Some(q), Some(n)) if *n == id => *q,
                _ => w.available,
            };
            Some(WarehouseQuantity {
                warehouse_id: id,
                quantity,
            })
        })
        .collect();
    if let (Some(q), Some(n)) = (given, &named) {
        if !inventory.iter().any(|w| &w.warehouse_id == n) {
            inventory.push(WarehouseQuantity {
                warehouse_id: n.clone(),
                quantity: q,
            });
        }
    }
    if inventory.is_empty() {
        return Err(ErrorKind::Invalid.error(format!(
            "SKU {sku} has no warehouse TikTok knows: name warehouse_id or set inventory.default_warehouse"
        )));
    }
    let qty: u32 = inventory.iter().map(|w| w.quantity).sum();
    let req = UpdateInventoryRequest {
        skus: vec![SkuInventory {
            id: sku.clone(),
            inventory,
        }],
    };
    g.update_inventory(&o.shop_id, &product, req, Priority::background())
        .await
        .map_err(failed)?;
    Ok(Data::map([
        ("sku_id", Data::from(sku)),
        ("quantity", Data::Int(i64::from(qty))),
    ]))
}
