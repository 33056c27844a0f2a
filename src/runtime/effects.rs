//! Performing actions: the outside world's side of a `call` step.
//!
//! Every call carries the effect's idempotency key, derived from (order,
//! workflow version, step, visit): the same for each retry and crash replay
//! of one visit. External services get it as an `Idempotency-Key` header,
//! so a replay after a crash never repeats an effect.
//!
//! Failures are values ([`ActionError`] with a kind the workflow can
//! `retry` on or `catch`), never panics.

use std::sync::Arc;
use std::time::Duration;

use crate::order::Order;
use crate::store::StartedEffect;
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

/// The largest `http.request` response body read, in bytes. The CEL cost
/// estimator assumes step outputs no bigger (`workflow::cost`), and a
/// reply must never exhaust the daemon's memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A reply over [`MAX_RESPONSE_BYTES`]: `invalid`, a permanent kind, because
/// asking again gets the same reply; the endpoint (or the workflow calling
/// it) must change.
fn too_large(url: &str, bytes: u64) -> ActionError {
    err(
        "invalid",
        format!(
            "{url}: the response is larger than {MAX_RESPONSE_BYTES} bytes (at least {bytes}); refused"
        ),
    )
}

fn err(kind: &str, message: impl Into<String>) -> ActionError {
    ActionError {
        kind: kind.into(),
        message: message.into(),
    }
}

/// Performs actions. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    default_timeout: Duration,
    gateway: Option<crate::tiktok::GatewayHandle>,
    fulfil: Option<Arc<Fulfilment>>,
}

/// The fulfilment services behind inventory, shipping and notify actions.
pub struct Fulfilment {
    pub inventory: crate::inventory::InventoryHandle,
    pub router: crate::shipping::CarrierRouter,
    pub providers: crate::shipping::Providers,
    pub notifier: crate::notify::Notifier,
    /// Carrier name → TikTok's shipping provider id (`shipping.provider_ids`).
    pub provider_ids: std::collections::BTreeMap<String, String>,
}

impl Fulfilment {
    fn provider_id(&self, carrier: &str) -> Option<String> {
        self.provider_ids
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(carrier))
            .map(|(_, v)| v.clone())
    }
}

/// TikTok's answers as error kinds a workflow can retry on or catch (one
/// mapping, [`crate::shipping::tiktok_kind`], for every caller).
/// The error kind of a ship call TikTok refused because it had cancelled
/// the order (see `unless_cancelled`).
pub const ORDER_CANCELLED: &str = "order_cancelled";

fn tiktok_error(e: crate::tiktok::Error) -> ActionError {
    err(crate::shipping::tiktok_kind(&e).as_str(), e.to_string())
}

/// An order TikTok fulfils (`fulfillment_type` other than
/// FULFILLMENT_BY_SELLER) is never reserved, labelled or shipped by the
/// seller (TikTok would answer 21008025 after a label was paid for): the
/// step fails as `invalid`, before any call, and the order waits for an
/// operator.
fn refuse_platform_fulfilled(order: &Order, action: &str) -> Result<(), ActionError> {
    if order.fulfillment_type == "FULFILLMENT_BY_SELLER" {
        return Ok(());
    }
    Err(err(
        "invalid",
        format!(
            "order {} is fulfilled by the platform ({}): {action} is not done for it; route such orders to a tracking workflow (workflows/fulfilled_by_tiktok.yaml)",
            order.id, order.fulfillment_type
        ),
    ))
}

impl Executor {
    pub fn new(default_timeout: Duration) -> Executor {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Executor {
            http,
            default_timeout,
            gateway: None,
            fulfil: None,
        }
    }

    /// Sends a system alert (to `notify.alerts_channel`) in the background:
    /// a failure is recorded by the notifier, never blocking the caller.
    pub fn alert(&self, text: String, data: serde_json::Value) {
        if let Some(f) = &self.fulfil {
            let n = f.notifier.clone();
            actix::spawn(async move {
                n.alert(&text, data).await;
            });
        }
    }

    /// Inventory, shipping and notification actions use these.
    pub fn with_fulfilment(mut self, f: Arc<Fulfilment>) -> Executor {
        self.fulfil = Some(f);
        self
    }

    /// TikTok actions go through this gateway (rate limits, priorities).
    pub fn with_gateway(mut self, g: crate::tiktok::GatewayHandle) -> Executor {
        self.gateway = Some(g);
        self
    }

    pub async fn run(
        &self,
        order: Option<Arc<Order>>,
        e: &StartedEffect,
    ) -> Result<Data, ActionError> {
        let timeout = e
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.default_timeout);
        match e.action.as_str() {
            "http.request" => self.http_request(e, timeout).await,
            // Applied to the order by its actor when the result arrives.
            "order.tag" => Ok(Data::map([(
                "tags",
                e.args.get("tags").cloned().unwrap_or(Data::List(vec![])),
            )])),
            "order.hold" => Ok(Data::map([
                ("held", Data::Bool(true)),
                (
                    "reason",
                    e.args.get("reason").cloned().unwrap_or(Data::Null),
                ),
            ])),
            "order.validate" => {
                let order =
                    order.ok_or_else(|| err("invalid", "the order has not been fetched yet"))?;
                let tol = e
                    .args
                    .get("tolerance")
                    .and_then(Data::as_f64)
                    .and_then(crate::payment::tolerance_from_units)
                    .unwrap_or(crate::order::Money(1));
                match crate::payment::validate(&order, tol) {
                    Ok(()) => Ok(Data::map([("ok", Data::Bool(true))])),
                    Err(x) => Err(err("payment_mismatch", x.to_string())),
                }
            }
            a if a.starts_with("inventory.")
                || a.starts_with("shipping.")
                || a == "notify.send"
                || a == "tiktok.update_inventory" =>
            {
                let f = self.fulfil.clone().ok_or_else(|| {
                    err(
                        "invalid",
                        format!("action {a} is not configured in this daemon"),
                    )
                })?;
                self.fulfilment(&f, order, e).await
            }
            "tiktok.mark_shipped"
            | "tiktok.ship_package"
            | "tiktok.cancel_order"
            | "tiktok.approve_cancellation"
            | "tiktok.reject_cancellation" => {
                let order =
                    order.ok_or_else(|| err("invalid", "the order has not been fetched yet"))?;
                self.tiktok(&order, e).await
            }
            other => Err(err(
                "invalid",
                format!("action {other} is not configured in this daemon"),
            )),
        }
    }

    async fn fulfilment(
        &self,
        f: &Fulfilment,
        order: Option<Arc<Order>>,
        e: &StartedEffect,
    ) -> Result<Data, ActionError> {
        let arg = |k: &str| e.args.get(k).and_then(Data::as_str).map(str::to_string);
        let need = || {
            order
                .clone()
                .ok_or_else(|| err("invalid", "the order has not been fetched yet"))
        };
        let inv = |x: crate::inventory::Error| err(x.kind(), x.to_string());
        let ship = |x: crate::shipping::Error| err(x.kind().as_str(), x.to_string());
        if let (Some(o), "inventory.reserve" | "shipping.buy_label") =
            (order.as_deref(), e.action.as_str())
        {
            refuse_platform_fulfilled(o, &e.action)?;
        }
        match e.action.as_str() {
            "inventory.reserve" => {
                let o = need()?;
                let wh = arg("warehouse_id").or_else(|| o.warehouse_id.clone());
                let demand = o.stock_demand();
                // The shop sells these SKUs (its pusher keeps TikTok's
                // numbers of them in step), and their seller SKUs name the
                // items they take when nothing else maps them.
                for d in &demand {
                    let name = o
                        .line_items
                        .iter()
                        .find(|l| l.sku_id == d.sku_id)
                        .map(|l| l.product_name.clone())
                        .unwrap_or_default();
                    let known = crate::inventory::KnownSku {
                        sku_id: d.sku_id.clone(),
                        seller_sku: d.seller_sku.clone(),
                        product_id: d.product_id.clone(),
                        name,
                        virtual_bundle: false,
                    };
                    if let Err(e) = f.inventory.learn_sku(&known, &o.shop_id) {
                        tracing::warn!(sku = %d.sku_id, error = %e, "Could not record which shop sells the SKU");
                    }
                }
                let r = match f
                    .inventory
                    .reserve_demand(&o.id, &demand, wh.as_deref())
                    .await
                {
                    Ok(r) => r,
                    Err(x) => {
                        // Short of an item, or a SKU mapped to no item: told
                        // when stock of the item arrives or the SKU is mapped
                        // (`restock`). Only what is short waits.
                        let short = match &x {
                            crate::inventory::Error::OutOfStock { sku, requested, .. } => {
                                Some((sku.clone(), *requested))
                            }
                            crate::inventory::Error::UnmappedSku { sku } => demand
                                .iter()
                                .find(|d| &d.sku_id == sku)
                                .map(|d| (sku.clone(), d.units)),
                            _ => None,
                        };
                        if let Some((key, n)) = short {
                            if let Err(e) = f.inventory.wait_for_stock(
                                &o.id,
                                &o.shop_id,
                                o.deadlines.ship_by(),
                                &std::collections::BTreeMap::from([(key, n)]),
                            ) {
                                tracing::error!(order_id = %o.id, error = %e, "Could not remember the order as waiting for stock; its wait times out instead");
                            }
                        }
                        // Name the product, as the order does, so a person
                        // knows which of their items is missing.
                        if let crate::inventory::Error::UnmappedSku { sku } = &x {
                            if let Err(e) = f.inventory.note_unmapped(sku) {
                                tracing::warn!(sku = %sku, error = %e, "Could not list the SKU as unmapped");
                            }
                            let d = demand.iter().find(|d| &d.sku_id == sku);
                            let name = o
                                .line_items
                                .iter()
                                .find(|l| &l.sku_id == sku)
                                .map(|l| l.product_name.clone())
                                .unwrap_or_default();
                            let seller = d.map(|d| d.seller_sku.clone()).unwrap_or_default();
                            let label = match (name.as_str(), seller.as_str()) {
                                ("", "") => String::new(),
                                (name, "") => format!(" ({name})"),
                                ("", seller) => format!(" (seller SKU {seller})"),
                                (name, seller) => format!(" ({name}, seller SKU {seller})"),
                            };
                            return Err(err(
                                x.kind(),
                                format!("SKU {sku}{label} is not mapped to stock: no item is mapped to it; map it to an item (orderflow mappings set), or set the stock of its seller SKU, and the order goes on by itself"),
                            ));
                        }
                        return Err(inv(x));
                    }
                };
                let mut keys: std::collections::BTreeMap<String, u32> =
                    demand.iter().map(|d| (d.sku_id.clone(), d.units)).collect();
                keys.extend(r.units());
                if let Err(e) = f.inventory.forget_waiting(&o.id, &keys) {
                    tracing::warn!(order_id = %o.id, error = %e, "Could not forget the order's wait for stock");
                }
                let mut out = r.output();
                // Units taken from another warehouse than the order names
                // (the seller's default stock), said in the audit.
                if let Some(w) = &wh {
                    let elsewhere: Vec<String> = r
                        .lines
                        .iter()
                        .filter(|l| l.warehouse.as_deref() != Some(w.as_str()))
                        .map(|l| {
                            format!(
                                "{} units of item {} from {} (the order names warehouse {w}, which inventory does not stock it in)",
                                l.units,
                                l.sku,
                                l.warehouse.as_deref().unwrap_or("the default stock")
                            )
                        })
                        .collect();
                    if !elsewhere.is_empty() {
                        out["note"] = serde_json::Value::String(elsewhere.join("; "));
                    }
                }
                Ok(Data::from_json(&out))
            }
            "inventory.release" => {
                let o = need()?;
                let released = f.inventory.release(&o.id).await.map_err(inv)?;
                Ok(Data::map([("released", Data::Bool(released))]))
            }
            "inventory.commit" => {
                let o = need()?;
                let committed = f.inventory.commit(&o.id).await.map_err(inv)?;
                Ok(Data::map([("committed", Data::Bool(committed))]))
            }
            "tiktok.update_inventory" => {
                let g = self
                    .gateway
                    .as_ref()
                    .ok_or_else(|| err("invalid", "no TikTok gateway is configured"))?;
                let o = need()?;
                let sku = arg("sku_id").unwrap_or_default();
                let stock = f
                    .inventory
                    .get(&sku)
                    .await
                    .map_err(inv)?
                    .ok_or_else(|| err("not_found", format!("unknown SKU {sku}")))?;
                let product = stock
                    .product_id
                    .clone()
                    .ok_or_else(|| err("invalid", format!("SKU {sku} has no product id")))?;
                // Each warehouse gets its own quantity: ours (available),
                // or, with `quantity`, that number for the one warehouse
                // named (`warehouse_id`, else the order's, else the
                // default) and ours for the others.
                let named = arg("warehouse_id")
                    .or_else(|| o.warehouse_id.clone())
                    .or_else(|| f.inventory.config().default_warehouse.clone());
                let given = e
                    .args
                    .get("quantity")
                    .and_then(Data::as_f64)
                    .map(|q| q.max(0.0) as u32);
                let default = f.inventory.config().default_warehouse.clone();
                let mut inventory: Vec<crate::tiktok::dto::WarehouseQuantity> = stock
                    .warehouses
                    .iter()
                    .filter_map(|w| {
                        let id = w.warehouse.clone().or_else(|| default.clone())?;
                        let quantity = match (&given, &named) {
                            (Some(q), Some(n)) if *n == id => *q,
                            _ => w.available,
                        };
                        Some(crate::tiktok::dto::WarehouseQuantity {
                            warehouse_id: id,
                            quantity,
                        })
                    })
                    .collect();
                if let (Some(q), Some(n)) = (given, &named) {
                    if !inventory.iter().any(|w| &w.warehouse_id == n) {
                        inventory.push(crate::tiktok::dto::WarehouseQuantity {
                            warehouse_id: n.clone(),
                            quantity: q,
                        });
                    }
                }
                if inventory.is_empty() {
                    return Err(err(
                        "invalid",
                        format!("SKU {sku} has no warehouse TikTok knows: name warehouse_id or set inventory.default_warehouse"),
                    ));
                }
                let qty: u32 = inventory.iter().map(|w| w.quantity).sum();
                let req = crate::tiktok::dto::UpdateInventoryRequest {
                    skus: vec![crate::tiktok::dto::SkuInventory {
                        id: sku.clone(),
                        inventory,
                    }],
                };
                g.update_inventory(
                    &o.shop_id,
                    &product,
                    req,
                    crate::tiktok::Priority::background(),
                )
                .await
                .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("sku_id", Data::from(sku)),
                    ("quantity", Data::Int(i64::from(qty))),
                ]))
            }
            "shipping.select_carrier" => {
                let o = need()?;
                let rules: Vec<crate::shipping::CarrierRule> = match e.args.get("rules") {
                    Some(r) => serde_json::from_value(r.to_json())
                        .map_err(|x| err("invalid", format!("rules: {x}")))?,
                    None => Vec::new(),
                };
                let router = f
                    .router
                    .with_workflow_rules(&rules, arg("default").as_deref())
                    .map_err(ship)?;
                let now = chrono::Utc::now().timestamp();
                let sel = router.select(&o, now).map_err(ship)?;
                Ok(Data::map([
                    ("carrier", Data::from(sel.carrier)),
                    ("service", sel.service.map_or(Data::Null, Data::from)),
                    (
                        "shipping_provider_id",
                        sel.shipping_provider_id.map_or(Data::Null, Data::from),
                    ),
                ]))
            }
            "shipping.buy_label" => {
                let o = need()?;
                let carrier = arg("carrier").unwrap_or_default();
                let selection = crate::shipping::Selection {
                    shipping_provider_id: arg("shipping_provider_id")
                        .or_else(|| f.provider_id(&carrier)),
                    carrier,
                    service: arg("service"),
                    rule: None,
                };
                let provider = f.providers.get(arg("provider").as_deref()).map_err(ship)?;
                // A label TikTok would not take for this order is never
                // bought: the provider id must be one TikTok offers for
                // the order's delivery option.
                if let (Some(g), Some(option)) = (&self.gateway, o.delivery_option_id.as_deref()) {
                    crate::shipping::tiktok_providers::offered_for(
                        g,
                        &o.shop_id,
                        option,
                        &selection.carrier,
                        selection.shipping_provider_id.as_deref(),
                    )
                    .await
                    .map_err(|x| err(x.kind().as_str(), x.to_string()))?;
                }
                let req = crate::shipping::LabelRequest {
                    order: &o,
                    selection: &selection,
                    idempotency_key: &e.key,
                    weight_grams: f.router.weight_grams(&o),
                };
                let l = provider.buy_label(&req).await.map_err(ship)?;
                Ok(Data::map([
                    ("label_id", Data::from(l.label_id)),
                    ("tracking_number", Data::from(l.tracking_number)),
                    ("label_url", l.label_url.map_or(Data::Null, Data::from)),
                    (
                        "shipping_provider_id",
                        l.shipping_provider_id.map_or(Data::Null, Data::from),
                    ),
                ]))
            }
            "shipping.void_label" => {
                let label =
                    arg("label_id").ok_or_else(|| err("invalid", "void_label needs label_id"))?;
                let provider = f.providers.get(arg("provider").as_deref()).map_err(ship)?;
                let voided = provider.void_label(&label).await.map_err(ship)?;
                Ok(Data::map([("voided", Data::Bool(voided))]))
            }
            _ => {
                // notify.send: the failure is recorded, never blocking the order.
                let mut ev = crate::notify::Event::new("workflow", arg("text").unwrap_or_default());
                ev.order_id = order.as_ref().map(|o| o.id.clone());
                ev.data = e
                    .args
                    .get("data")
                    .map_or(serde_json::Value::Null, Data::to_json);
                let text = Data::from(ev.text.clone());
                match f.notifier.send(arg("channel").as_deref(), &ev).await {
                    Ok(d) => Ok(Data::map([
                        ("delivered", Data::Bool(d.delivered)),
                        ("attempts", Data::Int(i64::from(d.attempts))),
                        ("text", text),
                    ])),
                    Err(x) => {
                        tracing::warn!(error = %x, "Notification not sent");
                        Ok(Data::map([
                            ("delivered", Data::Bool(false)),
                            ("error", Data::from(x.to_string())),
                            ("text", text),
                        ]))
                    }
                }
            }
        }
    }

    /// A ship call TikTok refused: if TikTok cancelled the order meanwhile
    /// (the webhook saying so not yet here), the step fails as
    /// `order_cancelled`, and the runtime records the cancellation and
    /// compensates (stock released, an unused label voided) instead of
    /// leaving the order in exception.
    async fn unless_cancelled<T>(
        &self,
        g: &crate::tiktok::GatewayHandle,
        order: &Order,
        r: Result<T, crate::tiktok::Error>,
        prio: crate::tiktok::Priority,
    ) -> Result<T, ActionError> {
        let e = match r {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let refused = tiktok_error(e);
        if refused.kind != "rejected" {
            return Err(refused);
        }
        match g.order_detail(&order.shop_id, &order.id, prio).await {
            Ok(fresh) if fresh.status == crate::order::TiktokStatus::Cancelled => Err(err(
                ORDER_CANCELLED,
                format!(
                    "TikTok cancelled the order before it shipped ({}); nothing was shipped",
                    refused.message
                ),
            )),
            _ => Err(refused),
        }
    }

    async fn tiktok(&self, order: &Order, e: &StartedEffect) -> Result<Data, ActionError> {
        use crate::tiktok::dto::{MarkShippedRequest, ShipPackageRequest};
        use crate::tiktok::{Priority, Shipment};
        let g = self
            .gateway
            .as_ref()
            .ok_or_else(|| err("invalid", "no TikTok gateway is configured"))?;
        let prio = Priority::write(order.deadlines.ship_by());
        let arg = |k: &str| e.args.get(k).and_then(Data::as_str).map(str::to_string);
        if matches!(
            e.action.as_str(),
            "tiktok.mark_shipped" | "tiktok.ship_package"
        ) {
            refuse_platform_fulfilled(order, &e.action)?;
        }
        // The buyer's request: the one named, else the order's pending one.
        let cancel_id = || {
            arg("cancel_id")
                .filter(|c| !c.is_empty())
                .or_else(|| order.cancel_request.as_ref().map(|r| r.cancel_id.clone()))
                .ok_or_else(|| err("invalid", "no buyer cancellation request is pending"))
        };
        match e.action.as_str() {
            "tiktok.approve_cancellation" => {
                let id = cancel_id()?;
                g.approve_cancellation(&order.shop_id, &id, &e.key, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("cancel_id", Data::from(id)),
                    ("approved", Data::Bool(true)),
                ]))
            }
            "tiktok.reject_cancellation" => {
                let id = cancel_id()?;
                let reason = arg("reason").unwrap_or_else(|| "packed".into());
                g.reject_cancellation(&order.shop_id, &id, &reason, &e.key, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("cancel_id", Data::from(id)),
                    ("rejected", Data::Bool(true)),
                ]))
            }
            "tiktok.mark_shipped" => {
                let req = MarkShippedRequest {
                    tracking_number: arg("tracking_number").unwrap_or_default(),
                    shipping_provider_id: arg("shipping_provider_id").unwrap_or_default(),
                    order_line_item_ids: match e.args.get("line_item_ids") {
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
                match self.unless_cancelled(g, order, shipped, prio).await? {
                    Shipment::Shipped(d) => {
                        Ok(Data::map([("package_id", Data::from(d.package_id))]))
                    }
                    Shipment::AlreadyShipped { .. } => Ok(Data::map([
                        (
                            "package_id",
                            Data::from(order.packages.first().cloned().unwrap_or_default()),
                        ),
                        ("already_shipped", Data::Bool(true)),
                    ])),
                }
            }
            "tiktok.ship_package" => {
                let pkg = arg("package_id")
                    .or_else(|| order.packages.first().cloned())
                    .ok_or_else(|| err("invalid", "the order has no package to ship"))?;
                // A seller-shipped package goes with the seller's tracking
                // (Ship Package's `self_shipment`, both fields required).
                let self_shipment = if order.shipping_type == "SELLER" {
                    match (arg("tracking_number"), arg("shipping_provider_id")) {
                        (Some(t), Some(p)) if !t.is_empty() && !p.is_empty() => {
                            Some(crate::tiktok::dto::SelfShipment {
                                tracking_number: t,
                                shipping_provider_id: p,
                            })
                        }
                        _ => {
                            return Err(err(
                                "invalid",
                                "the order is shipped by the seller: tiktok.ship_package needs tracking_number and shipping_provider_id (or use tiktok.mark_shipped)",
                            ))
                        }
                    }
                } else {
                    None
                };
                let req = ShipPackageRequest {
                    handover_method: Some(
                        arg("handover_method").unwrap_or_else(|| "PICKUP".into()),
                    ),
                    self_shipment,
                    ..Default::default()
                };
                let shipped = g.ship_package(&order.shop_id, &pkg, req, prio).await;
                self.unless_cancelled(g, order, shipped, prio).await?;
                // TikTok assigns the carrier and tracking number: read them back.
                let fresh = g
                    .order_detail(&order.shop_id, &order.id, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("package_id", Data::from(pkg)),
                    (
                        "tracking_number",
                        Data::from(fresh.tracking_number.unwrap_or_default()),
                    ),
                    (
                        "shipping_provider_id",
                        Data::from(fresh.shipping_provider_id.unwrap_or_default()),
                    ),
                ]))
            }
            _ => {
                // A kind (`out_of_stock`) or an official key; the gateway
                // maps it for the shop's market and the order's status and
                // refuses one TikTok would refuse, before any call.
                let reason = arg("reason").ok_or_else(|| {
                    err(
                        "invalid",
                        "tiktok.cancel_order needs a reason (out_of_stock, pricing_error, address_undeliverable, buyer_requested, buyer_did_not_pay, potential_fraud, or an official key)",
                    )
                })?;
                let d = g
                    .seller_cancel(order, &reason, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("cancel_id", Data::from(d.cancel_id)),
                    ("cancel_status", Data::from(d.cancel_status)),
                ]))
            }
        }
    }

    async fn http_request(
        &self,
        e: &StartedEffect,
        timeout: Duration,
    ) -> Result<Data, ActionError> {
        let url = e
            .args
            .get("url")
            .and_then(Data::as_str)
            .ok_or_else(|| err("invalid", "http.request needs a url"))?;
        let parsed =
            reqwest::Url::parse(url).map_err(|x| err("invalid", format!("bad url {url}: {x}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(err("invalid", format!("url {url} is not http(s)")));
        }
        let method = e
            .args
            .get("method")
            .and_then(Data::as_str)
            .unwrap_or("POST");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| err("invalid", format!("bad method {method}")))?;
        let mut req = self
            .http
            .request(method, parsed)
            .timeout(timeout)
            .header("Idempotency-Key", &e.key);
        if let Some(Data::Map(h)) = e.args.get("headers") {
            for (k, v) in h {
                req = req.header(k.as_str(), v.render());
            }
        }
        if let Some(body) = e.args.get("body") {
            req = req.json(&body.to_json());
        }
        // One deadline for the whole exchange: connecting, the headers and
        // every byte of the body (a server trickling a body forever would
        // otherwise hold the effect, and reqwest's own timeout is only a
        // second line of defence).
        let exchange = async {
            let mut resp = req.send().await.map_err(|x| {
                if x.is_timeout() {
                    err("timeout", format!("{url}: timed out after {timeout:?}"))
                } else {
                    err("transient", format!("{url}: {x}"))
                }
            })?;
            let status = resp.status().as_u16();
            if !(200..=299).contains(&status) {
                // Only a success's body is used.
                return Ok((status, Vec::new()));
            }
            if let Some(len) = resp.content_length() {
                if len > MAX_RESPONSE_BYTES as u64 {
                    return Err(too_large(url, len));
                }
            }
            // Streamed, never buffered whole: a reply bigger than the limit
            // is refused as soon as it gets there.
            let mut bytes: Vec<u8> = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|x| {
                if x.is_timeout() {
                    err("timeout", format!("{url}: timed out reading the body"))
                } else {
                    err("transient", format!("{url}: {x}"))
                }
            })? {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(too_large(url, (bytes.len() + chunk.len()) as u64));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| err("timeout", format!("{url}: timed out after {timeout:?}")))??;
        let text = String::from_utf8_lossy(&bytes);
        let body = serde_json::from_str::<serde_json::Value>(&text)
            .map(|v| Data::from_json(&v))
            .unwrap_or_else(|_| Data::Str(text.chars().take(4096).collect()));
        match status {
            200..=299 => Ok(Data::map([
                ("status", Data::Int(status.into())),
                ("body", body),
            ])),
            429 => Err(err("rate_limited", format!("{url}: HTTP 429"))),
            408 | 500..=599 => Err(err("transient", format!("{url}: HTTP {status}"))),
            409 => Err(err("rejected", format!("{url}: HTTP 409"))),
            _ => Err(err("invalid", format!("{url}: HTTP {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every connection with `head`, then `body_chunk`
    /// `repeat` times (or forever when `None`), then holds the connection.
    async fn server(head: String, body_chunk: Vec<u8>, repeat: Option<usize>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (head, chunk) = (head.clone(), body_chunk.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut sent = 0;
                    while repeat.is_none_or(|r| sent < r) {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn effect(url: &str) -> StartedEffect {
        StartedEffect {
            effect: crate::workflow::interpreter::EffectId {
                step: "call".into(),
                visit: 1,
                compensation: false,
            },
            key: "k".into(),
            action: "http.request".into(),
            args: Data::map([("url", Data::from(url))]),
            attempt: 1,
            timeout_ms: None,
            started_ms: 0,
        }
    }

    async fn run(url: &str, timeout: Duration) -> Result<Data, ActionError> {
        Executor::new(timeout).run(None, &effect(url)).await
    }

    #[tokio::test]
    async fn a_small_reply_is_read() {
        let body = r#"{"ok":true}"#;
        let url = server(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            Vec::new(),
            Some(0),
        )
        .await;
        let out = run(&url, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            out.get("body").and_then(|b| b.get("ok")),
            Some(&Data::Bool(true))
        );
    }

    #[tokio::test]
    async fn a_reply_announced_too_large_is_refused_before_reading_it() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 20000000000\r\n\r\n".into(),
            vec![b'x'; 64 * 1024],
            None,
        )
        .await;
        let e = run(&url, Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(e.kind, "invalid");
        assert!(
            e.message.contains("larger than 1048576 bytes"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn an_endless_chunked_reply_is_cut_at_the_limit() {
        // One 64 KiB chunk, repeated without end.
        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
        chunk.extend(vec![b'x'; 64 * 1024]);
        chunk.extend(b"\r\n");
        let url = server(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            chunk,
            None,
        )
        .await;
        let e = run(&url, Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(e.kind, "invalid");
        assert!(e.message.contains("larger than"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_trickling_reply_meets_one_deadline() {
        // Headers at once, then a body that never finishes.
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".into(),
            b"x".to_vec(),
            Some(1),
        )
        .await;
        let e = run(&url, Duration::from_millis(300)).await.unwrap_err();
        assert_eq!(e.kind, "timeout");
    }
}
