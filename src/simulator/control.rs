//! `/sim/...`: the control surface tests and operators use to drive the
//! simulator and to read what it saw. Not part of TikTok's API, so it is
//! neither signed nor rate limited.
//!
//! | Method & path | Body / query | Answer |
//! |---|---|---|
//! | `GET /sim/shops` | | `{shops:[{id,cipher,name,region,warehouse_id}], skus:[{id,product_id,name,price}]}` |
//! | `POST /sim/orders` | `{shop_id?, items?:[{sku_id,quantity}], status?, count?, ship_by_in_secs?, shipping_type?, fulfillment_type?}` | `{orders:[{order_id,package_id,shop_id}]}` |
//! | `POST /sim/skus` | `{skus?:[{id, product_id, product_name?, sku_name?, seller_sku?, price_cents?, combined?:[{sku_id,count}], shops?:[..]}], generate?:{products, skus_per_product, shops?}, search_limit?}` | `{added:n, total:n}`: SKUs the shops list (no `seller_sku`: TikTok's "none set"; `combined`: a virtual bundle; `shops`: only those list it), each with 100 units per listing shop's warehouse; `generate` adds a large catalogue (a product created a minute); `search_limit` lowers Search Products' 10,000-result cap |
//! | `POST /sim/shops/{id}` | `{region}` | the shop: its market (e.g. `GB`), as Get Authorized Shops reports it |
//! | `GET /sim/orders/{id}` | | `{order_id,shop_id,status,package_id,order}` (true state, address included) |
//! | `POST /sim/orders/{id}/buyer_cancel` | | `{status}` or 409 `{error}` |
//! | `POST /sim/orders/{id}/buyer_cancel/withdraw` | | `{status}`: the buyer withdraws a pending cancellation request, or 409 |
//! | `POST /sim/orders/{id}/return` | `{return_type?}` (REFUND, default; RETURN_AND_REFUND; REPLACEMENT) | `{return_id}`: the buyer asks for a refund or return; RETURN_STATUS_CHANGE is pushed and Search Returns shows it |
//! | `POST /sim/orders/{id}/wire` | `{field: value, ...}` (replaces the patch; `{}` clears it) | `{order_id, patch}`: Order Detail and Search Orders show these top-level fields in place of the true ones; the order's `update_time` moves to now |
//! | `POST /sim/carrier` | `{order_ids:[..], to?: "IN_TRANSIT"\|"DELIVERED"\|"COMPLETED"}` | `{advanced:[{order_id,status}], skipped:[{order_id,error}]}` |
//! | `GET`/`POST /sim/clock` | `{time_scale}` | `{time_scale, now, real_clock}` (`real_clock`: timestamps are real time and TikTok's durations are divided by the scale; see `--real-clock`) |
//! | `GET /sim/deadlines` | `?at_risk_margin_secs=` (TikTok seconds, default 0) | `{shipped, shipped_late, auto_cancelled, late_unshipped, at_risk, now}`: packages shipped and those shipped after their ship-by deadline, orders TikTok cancelled for not shipping in time, and now: orders not shipped past their ship-by deadline, and those with less than the margin left (the late included) |
//! | `GET`/`POST /sim/stream` | `{orders_per_second}` | `{orders_per_second}`: the generated order stream's rate (0 stops it) |
//! | `POST /sim/notify/{channel}` | a notification (`{text, event?}`, as orderflow's notifier sends it) | 200: a notification channel that keeps what it receives |
//! | `GET /sim/notifications` | `?channel=` | `{counts:{channel:n}, recent:[{channel,text,kind,order_id,at_ms}]}` (the latest 500) |
//! | `GET`/`POST /sim/faults` | [`Faults`] (replaces all) | [`Faults`] |
//! | `GET /sim/ledger` | `?order_id=&action=` | `{entries:[LedgerEntry]}` |
//! | `GET /sim/stats` | | `{limit_qps, shops:{id:{total,max_per_second,per_second:[[unix_sec,n]]}}, endpoints:{name:{total,ok,throttled,faulted,rejected}}}` |
//! | `GET /sim/webhooks` | | `{deliveries:[DeliveryRecord]}` |
//! | `POST /sim/webhooks/push` | `{shop_id?, type, data, order_id?}` | a push of any topic (e.g. 6 SELLER_DEAUTHORIZATION, 7, 12), signed and delivered as TikTok sends it: `{pushed: n}` |
//! | `POST /sim/tokens/expire` | | `{expired:n}` |
//! | `GET`/`POST /sim/app` | `{redirect_url?, webhook_resolve?}` | the app's redirect URL (where `/open/authorize` sends the seller, as registered in Partner Center) and where pushes to registered https addresses really go (a DNS override for tests) |
//! | `GET /sim/tokens` | | `{issued:[..]}`: every access and refresh token issued |
//! | `GET /sim/shops/{id}/webhooks` | | `{webhooks:[ShopWebhook]}`: the shop's subscriptions |
//! | `POST /sim/shops/{id}/webhooks` | `{event_type, address?}` | changes one subscription behind the app's back (no `address`: removed) |
//! | `POST /sim/shops/{id}/deauthorize` | `?silent=true`: the webhook is lost | `{revoked:n}`: the seller revokes the app for the shop; its tokens answer 105001 and SELLER_DEAUTHORIZATION (type 6) is pushed |
//!
//! Outside `/sim`, as TikTok serves it: `GET /open/authorize?service_id=…&state=…[&shop_id=a,b][&deny=true]`,
//! the seller authorization page: it redirects (302) to the app's redirect
//! URL with `code` (valid once, 30 simulated minutes) and `state`, or
//! `code=null&error=access_denied` when denied. The code covers the shops
//! named (default: every shop).

use std::sync::Arc;

use actix_web::web::{self, Data, Json, Path, Query};
use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;

use super::state::Faults;
use super::Shared;
use crate::order::TiktokStatus;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/open/authorize", web::get().to(authorize));
    cfg.service(
        web::scope("/sim")
            .route("/app", web::get().to(get_app))
            .route("/app", web::post().to(set_app))
            .route("/shops/{id}/deauthorize", web::post().to(deauthorize))
            .route("/shops/{id}/webhooks", web::get().to(shop_webhooks))
            .route("/shops/{id}/webhooks", web::post().to(set_shop_webhook))
            .route("/tokens", web::get().to(issued_tokens))
            .route("/shops", web::get().to(shops))
            .route("/shops/{id}", web::post().to(set_shop))
            .route("/skus", web::post().to(add_skus))
            .route("/orders", web::post().to(create_orders))
            .route("/orders/{id}", web::get().to(get_order))
            .route("/orders/{id}/buyer_cancel", web::post().to(buyer_cancel))
            .route("/orders/{id}/wire", web::post().to(patch_wire))
            .route("/orders/{id}/return", web::post().to(buyer_return))
            .route(
                "/orders/{id}/buyer_cancel/withdraw",
                web::post().to(buyer_withdraw),
            )
            .route("/carrier", web::post().to(carrier))
            .route("/tiktok/documents/{file}", web::get().to(tiktok_document))
            .route("/clock", web::get().to(get_clock))
            .route("/clock", web::post().to(set_clock))
            .route("/faults", web::get().to(get_faults))
            .route("/faults", web::post().to(set_faults))
            .route("/deadlines", web::get().to(deadlines))
            .route("/stream", web::get().to(get_stream))
            .route("/stream", web::post().to(set_stream))
            .route("/notify/{channel}", web::post().to(notify))
            .route("/notifications", web::get().to(notifications))
            .route("/ledger", web::get().to(ledger))
            .route("/stats", web::get().to(stats))
            .route("/webhooks", web::get().to(webhooks))
            .route("/webhooks/push", web::post().to(push_webhook))
            .route("/tokens/expire", web::post().to(expire_tokens)),
    );
}

fn err(status: actix_web::http::StatusCode, msg: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": msg.into() }))
}

async fn shops(sim: Data<Arc<Shared>>) -> HttpResponse {
    let w = sim.world.lock();
    HttpResponse::Ok().json(json!({
        "shops": w.shops.iter().map(|s| json!({
            "id": s.id, "cipher": s.cipher, "name": s.name, "region": s.region, "warehouse_id": s.warehouse_id,
        })).collect::<Vec<_>>(),
        "skus": w.skus.values().map(|s| json!({
            "id": s.id, "product_id": s.product_id, "name": format!("{} {}", s.product_name, s.sku_name),
            "price": s.price.to_string(),
        })).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopSettings {
    region: String,
}

/// Sets a shop's region (its market: which cancel reasons TikTok takes).
async fn set_shop(
    sim: Data<Arc<Shared>>,
    id: Path<String>,
    body: Json<ShopSettings>,
) -> HttpResponse {
    if crate::tiktok::reasons::Market::from_region(&body.region).is_none() {
        return err(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("{:?} is not a TikTok Shop market", body.region),
        );
    }
    let mut w = sim.world.lock();
    match w.shops.iter_mut().find(|s| s.id == *id) {
        None => err(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("no shop {id}"),
        ),
        Some(s) => {
            s.region = body.region.clone();
            HttpResponse::Ok().json(json!({ "id": s.id, "region": s.region }))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSku {
    id: String,
    product_id: String,
    #[serde(default)]
    product_name: Option<String>,
    #[serde(default)]
    sku_name: Option<String>,
    #[serde(default)]
    seller_sku: String,
    #[serde(default)]
    price_cents: Option<i64>,
    #[serde(default)]
    combined: Vec<Item>,
    #[serde(default)]
    shops: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    products: u32,
    skus_per_product: u32,
    #[serde(default)]
    shops: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AddSkus {
    skus: Vec<NewSku>,
    generate: Option<Generate>,
    /// Lowers Search Products' 10,000-result cap (12052180).
    search_limit: Option<usize>,
}

/// Adds SKUs to the catalogue the Product API serves.
async fn add_skus(sim: Data<Arc<Shared>>, body: Json<AddSkus>) -> HttpResponse {
    let b = body.into_inner();
    let mut w = sim.world.lock();
    if let Some(l) = b.search_limit {
        w.product_search_limit = l.clamp(1, 10_000);
    }
    let mut new = Vec::new();
    let batch: std::collections::HashSet<String> = b.skus.iter().map(|s| s.id.clone()).collect();
    for s in b.skus {
        if s.id.is_empty() || s.product_id.is_empty() {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "a SKU needs id and product_id",
            );
        }
        if let Some(c) = s
            .combined
            .iter()
            .find(|c| !w.skus.contains_key(&c.sku_id) && !batch.contains(&c.sku_id))
        {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("bundle {}: no SKU {}", s.id, c.sku_id),
            );
        }
        new.push(super::state::SimSku {
            product_name: s
                .product_name
                .unwrap_or_else(|| format!("Product {}", s.product_id)),
            sku_name: s.sku_name.unwrap_or_else(|| "Default".into()),
            seller_sku: s.seller_sku,
            price: crate::order::Money(s.price_cents.unwrap_or(1999).max(1)),
            combined: s
                .combined
                .iter()
                .map(|c| (c.sku_id.clone(), c.quantity.max(1)))
                .collect(),
            shops: s.shops.map(|v| v.into_iter().collect()),
            create_time: 1_700_000_000,
            id: s.id,
            product_id: s.product_id,
        });
    }
    if let Some(g) = b.generate {
        if u64::from(g.products) * u64::from(g.skus_per_product) > 100_000 {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "at most 100000 generated SKUs",
            );
        }
        for p in 0..g.products {
            let product_id = format!("1731{:015}", p + 1);
            for v in 0..g.skus_per_product {
                // Every tenth without a seller SKU, as sellers leave them.
                let seller_sku = if (p + v) % 10 == 9 {
                    String::new()
                } else {
                    format!("GEN-{:05}-{:02}", p + 1, v + 1)
                };
                new.push(super::state::SimSku {
                    id: format!("1732{:012}{:03}", p + 1, v + 1),
                    product_id: product_id.clone(),
                    product_name: format!("Generated product {}", p + 1),
                    sku_name: format!("Variant {}", v + 1),
                    seller_sku,
                    price: crate::order::Money(999 + 100 * i64::from(v)),
                    combined: Vec::new(),
                    shops: g.shops.clone().map(|v| v.into_iter().collect()),
                    // A product a minute, from Nov 2023.
                    create_time: 1_700_000_000 + 60 * i64::from(p),
                });
            }
        }
    }
    let added = new.len();
    for s in new {
        let warehouses: Vec<String> = w
            .shops
            .iter()
            .filter(|shop| s.shops.as_ref().is_none_or(|l| l.contains(&shop.id)))
            .map(|shop| shop.warehouse_id.clone())
            .collect();
        for wh in warehouses {
            w.inventory.insert((s.id.clone(), wh), 100);
        }
        w.skus.insert(s.id.clone(), s);
    }
    HttpResponse::Ok().json(json!({ "added": added, "total": w.skus.len() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    sku_id: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CreateOrders {
    shop_id: Option<String>,
    items: Vec<Item>,
    status: Option<String>,
    count: Option<u32>,
    ship_by_in_secs: Option<i64>,
    /// `SELLER` (default) or `TIKTOK` (TikTok Shipping).
    shipping_type: Option<String>,
    /// `FULFILLMENT_BY_SELLER` (default), `FULFILLMENT_BY_TIKTOK` or
    /// `FULFILLMENT_BY_DILAYANI_TOKOPEDIA`.
    fulfillment_type: Option<String>,
}

async fn create_orders(sim: Data<Arc<Shared>>, body: Json<CreateOrders>) -> HttpResponse {
    let b = body.into_inner();
    let status = match b.status.as_deref().map(TiktokStatus::parse) {
        None => TiktokStatus::AwaitingShipment,
        Some(Some(
            s @ (TiktokStatus::Unpaid | TiktokStatus::OnHold | TiktokStatus::AwaitingShipment),
        )) => s,
        Some(_) => {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "status must be UNPAID, ON_HOLD or AWAITING_SHIPMENT",
            )
        }
    };
    if let Some(t) = b.shipping_type.as_deref() {
        if !matches!(t, "SELLER" | "TIKTOK") {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "shipping_type must be SELLER or TIKTOK",
            );
        }
    }
    if let Some(t) = b.fulfillment_type.as_deref() {
        if !matches!(
            t,
            "FULFILLMENT_BY_SELLER" | "FULFILLMENT_BY_TIKTOK" | "FULFILLMENT_BY_DILAYANI_TOKOPEDIA"
        ) {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "fulfillment_type must be FULFILLMENT_BY_SELLER, FULFILLMENT_BY_TIKTOK or FULFILLMENT_BY_DILAYANI_TOKOPEDIA",
            );
        }
    }
    let count = b.count.unwrap_or(1).clamp(1, 100_000);
    let mut w = sim.world.lock();
    let shop_idx = match &b.shop_id {
        None => 0,
        Some(id) => match w.shops.iter().position(|s| &s.id == id) {
            Some(i) => i,
            None => {
                return err(
                    actix_web::http::StatusCode::NOT_FOUND,
                    format!("no shop {id}"),
                )
            }
        },
    };
    let items: Vec<(String, u32)> = if b.items.is_empty() {
        w.skus
            .keys()
            .next()
            .map(|k| vec![(k.clone(), 1)])
            .unwrap_or_default()
    } else {
        b.items
            .iter()
            .map(|i| (i.sku_id.clone(), i.quantity.clamp(1, 1000)))
            .collect()
    };
    let units: u64 = items.iter().map(|(_, q)| u64::from(*q)).sum::<u64>() * u64::from(count);
    if units > 1_000_000 {
        return err(
            actix_web::http::StatusCode::BAD_REQUEST,
            format!("{units} line items in one call; at most 1000000"),
        );
    }
    let shop_id = w.shops[shop_idx].id.clone();
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (order_id, package_id) =
            w.create_order(shop_idx, &items, status.clone(), b.ship_by_in_secs);
        if let Some(o) = w.orders.get_mut(&order_id) {
            if let Some(t) = &b.shipping_type {
                o.wire.shipping_type = Some(t.clone());
                if t == "TIKTOK" {
                    o.wire.delivery_option_id = Some(super::api::TIKTOK_DELIVERY_OPTION.into());
                }
            }
            if let Some(t) = &b.fulfillment_type {
                o.wire.fulfillment_type = Some(t.clone());
            }
        }
        out.push(json!({ "order_id": order_id, "package_id": package_id, "shop_id": shop_id }));
    }
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "orders": out }))
}

async fn get_order(sim: Data<Arc<Shared>>, id: Path<String>) -> HttpResponse {
    let w = sim.world.lock();
    match w.orders.get(id.as_str()) {
        None => err(actix_web::http::StatusCode::NOT_FOUND, "no such order"),
        Some(o) => HttpResponse::Ok().json(json!({
            "order_id": o.wire.id, "shop_id": o.shop_id, "status": o.wire.status,
            "package_id": o.package_id, "order": o.wire,
        })),
    }
}

/// Lays fields over what the API shows of an order: the fault mode for
/// values TikTok's schemas allow and a strict decoder refuses (an unknown
/// status, `null`, numbers as strings).
async fn patch_wire(
    sim: Data<Arc<Shared>>,
    id: Path<String>,
    patch: Json<serde_json::Map<String, serde_json::Value>>,
) -> HttpResponse {
    let mut w = sim.world.lock();
    let now = w.clock.now_secs();
    match w.orders.get_mut(id.as_str()) {
        None => err(actix_web::http::StatusCode::NOT_FOUND, "no such order"),
        Some(o) => {
            o.wire_patch = patch.into_inner();
            // A change to the order is an update, as on TikTok: Search
            // Orders by update_time (polling) finds it.
            o.wire.update_time = now;
            HttpResponse::Ok().json(json!({ "order_id": id.as_str(), "patch": o.wire_patch }))
        }
    }
}

/// The buyer withdraws a pending cancellation request.
async fn buyer_withdraw(sim: Data<Arc<Shared>>, id: Path<String>) -> HttpResponse {
    let mut w = sim.world.lock();
    let pending = w.orders.get(id.as_str()).is_some_and(|o| {
        o.cancellation
            .as_ref()
            .is_some_and(|c| c.status == "CANCELLATION_REQUEST_PENDING")
    });
    if !pending {
        return err(
            actix_web::http::StatusCode::CONFLICT,
            "no pending cancellation request",
        );
    }
    w.close_cancellation(&id, "CANCELLATION_REQUEST_CANCEL", None);
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "status": "CANCELLATION_REQUEST_CANCEL" }))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ReturnBody {
    return_type: Option<String>,
}

/// The buyer asks for a refund or a return of a delivered order.
async fn buyer_return(
    sim: Data<Arc<Shared>>,
    id: Path<String>,
    body: Json<ReturnBody>,
) -> HttpResponse {
    let kind = body.return_type.clone().unwrap_or_else(|| "REFUND".into());
    if !matches!(
        kind.as_str(),
        "REFUND" | "RETURN_AND_REFUND" | "REPLACEMENT"
    ) {
        return err(
            actix_web::http::StatusCode::BAD_REQUEST,
            "return_type must be REFUND, RETURN_AND_REFUND or REPLACEMENT",
        );
    }
    let mut w = sim.world.lock();
    let now = w.clock.now_secs();
    let respond_within = w.clock.span_secs(super::state::RESPOND_WITHIN_SECS);
    let return_id = format!(
        "4036{:015}",
        w.run_base(15) + (w.ledger.len() + w.orders.len()) as u64
    );
    let Some(o) = w.orders.get_mut(id.as_str()) else {
        return err(actix_web::http::StatusCode::NOT_FOUND, "no such order");
    };
    o.returns.push(super::state::SimReturn {
        return_id: return_id.clone(),
        return_type: kind.clone(),
        return_status: "RETURN_OR_REFUND_REQUEST_PENDING".into(),
        create_time: now,
        update_time: now,
        deadline: now + respond_within,
    });
    let shop_id = o.shop_id.clone();
    w.notify(
        &shop_id,
        12,
        "RETURN_STATUS_CHANGE",
        Some(id.to_string()),
        json!({"order_id": id.as_str(), "return_role": "BUYER", "return_type": kind,
            "return_status": "RETURN_OR_REFUND_REQUEST_PENDING", "return_id": return_id,
            "create_time": now, "update_time": now}),
    );
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "return_id": return_id }))
}

async fn buyer_cancel(sim: Data<Arc<Shared>>, id: Path<String>) -> HttpResponse {
    let mut w = sim.world.lock();
    let r = w.buyer_cancel(&id);
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    match r {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "CANCELLED" })),
        Err(e) => err(actix_web::http::StatusCode::CONFLICT, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Carrier {
    order_ids: Vec<String>,
    #[serde(default)]
    to: Option<String>,
}

async fn carrier(sim: Data<Arc<Shared>>, body: Json<Carrier>) -> HttpResponse {
    let to = match body.to.as_deref().map(TiktokStatus::parse) {
        None => None,
        Some(Some(
            s @ (TiktokStatus::InTransit | TiktokStatus::Delivered | TiktokStatus::Completed),
        )) => Some(s),
        Some(_) => {
            return err(
                actix_web::http::StatusCode::BAD_REQUEST,
                "to must be IN_TRANSIT, DELIVERED or COMPLETED",
            )
        }
    };
    let mut w = sim.world.lock();
    let (mut advanced, mut skipped) = (Vec::new(), Vec::new());
    for id in &body.order_ids {
        let shop = w
            .orders
            .get(id)
            .map(|o| o.shop_id.clone())
            .unwrap_or_default();
        match w.carrier_step(id, to.clone()) {
            Ok(s) => {
                w.record_simple(&shop, "carrier", id);
                advanced.push(json!({ "order_id": id, "status": s.as_str() }));
            }
            Err(e) => skipped.push(json!({ "order_id": id, "error": e })),
        }
    }
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "advanced": advanced, "skipped": skipped }))
}

fn clock_json(sim: &Shared) -> serde_json::Value {
    let w = sim.world.lock();
    json!({ "time_scale": w.clock.scale(), "now": w.clock.now(), "real_clock": w.clock.is_real() })
}

async fn get_clock(sim: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(clock_json(&sim))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    time_scale: f64,
}

async fn set_clock(sim: Data<Arc<Shared>>, body: Json<SetClock>) -> HttpResponse {
    if !(body.time_scale.is_finite() && body.time_scale > 0.0) {
        return err(
            actix_web::http::StatusCode::BAD_REQUEST,
            "time_scale must be positive",
        );
    }
    sim.world.lock().clock.set_scale(body.time_scale);
    HttpResponse::Ok().json(clock_json(&sim))
}

async fn get_faults(sim: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(&sim.world.lock().faults)
}

async fn set_faults(sim: Data<Arc<Shared>>, body: Json<Faults>) -> HttpResponse {
    let f = body.into_inner();
    if let Err(e) = f.validate() {
        return err(actix_web::http::StatusCode::BAD_REQUEST, e);
    }
    let mut w = sim.world.lock();
    w.storm_until = (f.storm_ms > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(f.storm_ms));
    w.faults = f;
    HttpResponse::Ok().json(&w.faults)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlinesQuery {
    #[serde(default)]
    at_risk_margin_secs: i64,
}

/// Late dispatches so far, and the orders late or at risk now (see
/// [`super::state::DeadlineCounts`]).
async fn deadlines(sim: Data<Arc<Shared>>, q: Query<DeadlinesQuery>) -> HttpResponse {
    let w = sim.world.lock();
    let now = w.clock.now_secs();
    let until = now.saturating_add(w.clock.span_secs(q.at_risk_margin_secs.max(0)));
    let (mut late, mut at_risk) = (0u64, 0u64);
    for o in w.orders.values() {
        let unshipped = matches!(
            TiktokStatus::parse(&o.wire.status),
            Some(TiktokStatus::Unpaid | TiktokStatus::OnHold | TiktokStatus::AwaitingShipment)
        );
        match super::state::ship_by(&o.wire) {
            Some(due) if unshipped && due < until => {
                at_risk += 1;
                if due < now {
                    late += 1;
                }
            }
            _ => {}
        }
    }
    let c = &w.deadlines;
    HttpResponse::Ok().json(json!({
        "shipped": c.shipped,
        "shipped_late": c.shipped_late,
        "auto_cancelled": c.auto_cancelled,
        "late_unshipped": late,
        "at_risk": at_risk,
        "now": now,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stream {
    orders_per_second: f64,
}

async fn get_stream(sim: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "orders_per_second": sim.world.lock().orders_per_second }))
}

async fn set_stream(sim: Data<Arc<Shared>>, body: Json<Stream>) -> HttpResponse {
    let r = body.orders_per_second;
    if !(r.is_finite() && (0.0..=100_000.0).contains(&r)) {
        return err(
            actix_web::http::StatusCode::BAD_REQUEST,
            "orders_per_second must be within [0, 100000]",
        );
    }
    sim.world.lock().orders_per_second = r;
    HttpResponse::Ok().json(json!({ "orders_per_second": r }))
}

/// A notification channel: keeps what orderflow's notifier sends (any
/// JSON; `text` and `event.kind`/`event.order_id` are read when there).
async fn notify(sim: Data<Arc<Shared>>, channel: Path<String>, body: web::Bytes) -> HttpResponse {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let n = super::state::Notification {
        channel: channel.into_inner(),
        text: field(&v["text"]).unwrap_or_default(),
        kind: field(&v["event"]["kind"]),
        order_id: field(&v["event"]["order_id"]),
        at_ms: super::state::real_now_ms(),
    };
    let mut w = sim.world.lock();
    *w.notified.entry(n.channel.clone()).or_default() += 1;
    if w.notifications.len() == super::state::NOTIFICATIONS_KEPT {
        w.notifications.pop_front();
    }
    w.notifications.push_back(n);
    HttpResponse::Ok().json(json!({ "ok": true }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsQuery {
    channel: Option<String>,
}

async fn notifications(sim: Data<Arc<Shared>>, q: Query<NotificationsQuery>) -> HttpResponse {
    let w = sim.world.lock();
    let recent: Vec<_> = w
        .notifications
        .iter()
        .filter(|n| q.channel.as_ref().is_none_or(|c| &n.channel == c))
        .collect();
    HttpResponse::Ok().json(json!({ "counts": w.notified, "recent": recent }))
}

#[derive(Deserialize)]
struct LedgerQuery {
    order_id: Option<String>,
    action: Option<String>,
}

async fn ledger(sim: Data<Arc<Shared>>, q: Query<LedgerQuery>) -> HttpResponse {
    let w = sim.world.lock();
    let entries: Vec<_> = w
        .ledger
        .iter()
        .filter(|e| q.order_id.is_none() || e.order_id == q.order_id)
        .filter(|e| q.action.as_ref().is_none_or(|a| &e.action == a))
        .collect();
    HttpResponse::Ok().json(json!({ "entries": entries }))
}

async fn stats(sim: Data<Arc<Shared>>) -> HttpResponse {
    let w = sim.world.lock();
    let shops: serde_json::Map<String, serde_json::Value> = w
        .per_second
        .iter()
        .map(|(shop, secs)| {
            let total: u64 = secs.values().map(|n| u64::from(*n)).sum();
            let max = secs.values().copied().max().unwrap_or(0);
            let per: Vec<(i64, u32)> = secs.iter().map(|(s, n)| (*s, *n)).collect();
            (
                shop.clone(),
                json!({ "total": total, "max_per_second": max, "per_second": per }),
            )
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "limit_qps": sim.qps,
        "shops": shops,
        "endpoints": w.endpoints,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushWebhook {
    shop_id: Option<String>,
    #[serde(rename = "type")]
    kind: i64,
    data: serde_json::Value,
    order_id: Option<String>,
}

/// Pushes a webhook of any topic with the given `data` (the fault mode
/// for topics the simulator's own lifecycle does not produce).
async fn push_webhook(sim: Data<Arc<Shared>>, body: Json<PushWebhook>) -> HttpResponse {
    let b = body.into_inner();
    let mut w = sim.world.lock();
    let shop = match &b.shop_id {
        Some(id) if !w.shops.iter().any(|s| &s.id == id) => {
            return err(
                actix_web::http::StatusCode::NOT_FOUND,
                format!("no shop {id}"),
            )
        }
        Some(id) => id.clone(),
        None => w.shops[0].id.clone(),
    };
    let before = w.outbox.len();
    let topic = match b.kind {
        1 => "ORDER_STATUS_CHANGE",
        3 => "RECIPIENT_ADDRESS_UPDATE",
        4 => "PACKAGE_UPDATE",
        5 => "PRODUCT_STATUS_CHANGE",
        6 => "SELLER_DEAUTHORIZATION",
        7 => "UPCOMING_AUTHORIZATION_EXPIRATION",
        11 => "CANCELLATION_STATUS_CHANGE",
        12 => "RETURN_STATUS_CHANGE",
        _ => "",
    };
    w.notify(&shop, b.kind, topic, b.order_id.clone(), b.data);
    let pushes = std::mem::take(&mut w.outbox);
    let n = pushes.len().saturating_sub(before);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "pushed": n }))
}

async fn webhooks(sim: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "deliveries": sim.world.lock().deliveries }))
}

async fn expire_tokens(sim: Data<Arc<Shared>>) -> HttpResponse {
    let mut w = sim.world.lock();
    let mut n = 0;
    for t in w.access.values_mut() {
        if !t.expired {
            t.expired = true;
            n += 1;
        }
    }
    HttpResponse::Ok().json(json!({ "expired": n }))
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    service_id: Option<String>,
    state: Option<String>,
    shop_id: Option<String>,
    #[serde(default)]
    deny: bool,
}

fn html(status: actix_web::http::StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>TikTok Shop (simulated)</title><p>{}</p>",
            text.replace('&', "&amp;").replace('<', "&lt;")
        ))
}

/// The seller authorization page: the seller "logs in and authorizes",
/// and is sent to the app's redirect URL with a code.
async fn authorize(sim: Data<Arc<Shared>>, q: Query<AuthorizeQuery>) -> HttpResponse {
    use actix_web::http::StatusCode;
    use rand::Rng;
    let mut w = sim.world.lock();
    if q.service_id.as_deref() != Some(sim.service_id.as_str()) {
        return html(StatusCode::BAD_REQUEST, "Unknown service_id.");
    }
    let Some(redirect) = w.redirect_url.clone() else {
        return html(
            StatusCode::BAD_REQUEST,
            "The app has no redirect URL (set it with POST /sim/app).",
        );
    };
    let shops: std::collections::BTreeSet<String> = match q.shop_id.as_deref() {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        None => w.shops.iter().map(|s| s.id.clone()).collect(),
    };
    if shops.is_empty() || shops.iter().any(|id| !w.shops.iter().any(|s| &s.id == id)) {
        return html(StatusCode::BAD_REQUEST, "Unknown shop.");
    }
    let Ok(mut url) = reqwest::Url::parse(&redirect) else {
        return html(StatusCode::BAD_REQUEST, "The redirect URL is not a URL.");
    };
    {
        let mut qp = url.query_pairs_mut();
        if q.deny {
            qp.append_pair("code", "null")
                .append_pair("error", "access_denied");
        } else {
            let code = format!("sim-code-{:016x}", w.rng.random::<u64>());
            let open_id = format!(
                "sim-open-{}",
                shops.iter().next().cloned().unwrap_or_default()
            );
            let expires_at =
                super::state::real_now_ms() / 1000 + super::state::scaled(1800, w.clock.scale());
            w.codes.insert(
                code.clone(),
                super::state::AuthCode {
                    shops,
                    open_id,
                    expires_at,
                },
            );
            qp.append_pair("code", &code);
        }
        if let Some(st) = &q.state {
            qp.append_pair("state", st);
        }
    }
    HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .finish()
}

#[derive(Debug, Deserialize)]
struct AppSettings {
    redirect_url: Option<String>,
    webhook_resolve: Option<String>,
}

async fn get_app(sim: Data<Arc<Shared>>) -> HttpResponse {
    let w = sim.world.lock();
    HttpResponse::Ok().json(json!({
        "service_id": sim.service_id,
        "redirect_url": w.redirect_url,
        "webhook_resolve": w.webhook_resolve,
    }))
}

async fn set_app(sim: Data<Arc<Shared>>, body: Json<AppSettings>) -> HttpResponse {
    let b = body.into_inner();
    let mut w = sim.world.lock();
    if let Some(u) = b.redirect_url {
        w.redirect_url = Some(u).filter(|u| !u.is_empty());
    }
    if let Some(u) = b.webhook_resolve {
        w.webhook_resolve = Some(u).filter(|u| !u.is_empty());
    }
    HttpResponse::Ok().json(json!({
        "service_id": sim.service_id,
        "redirect_url": w.redirect_url,
        "webhook_resolve": w.webhook_resolve,
    }))
}

#[derive(Debug, Deserialize)]
struct DeauthorizeQuery {
    /// The webhook is lost: nothing is pushed.
    #[serde(default)]
    silent: bool,
}

async fn deauthorize(
    sim: Data<Arc<Shared>>,
    id: Path<String>,
    q: Query<DeauthorizeQuery>,
) -> HttpResponse {
    let mut w = sim.world.lock();
    if !w.shops.iter().any(|s| s.id == *id) {
        return err(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("no shop {id}"),
        );
    }
    let n = w.deauthorize(&id);
    if q.silent {
        return HttpResponse::Ok().json(json!({ "revoked": n }));
    }
    w.notify(
        &id,
        6,
        "SELLER_DEAUTHORIZATION",
        None,
        json!({"message": "The seller has deauthorized the app."}),
    );
    let pushes = std::mem::take(&mut w.outbox);
    drop(w);
    sim.push_all(pushes);
    HttpResponse::Ok().json(json!({ "revoked": n }))
}

async fn issued_tokens(sim: Data<Arc<Shared>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "issued": sim.world.lock().issued_tokens }))
}

async fn shop_webhooks(sim: Data<Arc<Shared>>, id: Path<String>) -> HttpResponse {
    let w = sim.world.lock();
    let list: Vec<_> = w
        .webhooks
        .iter()
        .filter(|((s, _), _)| *s == *id)
        .map(|(_, v)| v.clone())
        .collect();
    HttpResponse::Ok().json(json!({ "webhooks": list }))
}

#[derive(Debug, Deserialize)]
struct SetWebhook {
    event_type: String,
    address: Option<String>,
}

async fn set_shop_webhook(
    sim: Data<Arc<Shared>>,
    id: Path<String>,
    body: Json<SetWebhook>,
) -> HttpResponse {
    let b = body.into_inner();
    let mut w = sim.world.lock();
    let key = (id.to_string(), b.event_type.clone());
    match b.address {
        None => {
            w.webhooks.remove(&key);
        }
        Some(address) => {
            let now = w.clock.now_secs();
            w.webhooks.insert(
                key,
                crate::tiktok::dto::ShopWebhook {
                    event_type: b.event_type,
                    address,
                    create_time: now,
                    update_time: now,
                },
            );
        }
    }
    HttpResponse::Ok().json(json!({}))
}

/// TikTok's shipping document for a package (what Get Package Shipping
/// Document's `doc_url` points to): a real PDF, the label and, for
/// `SHIPPING_LABEL_AND_PACKING_SLIP`, the packing slip as a second page.
async fn tiktok_document(sim: Data<Arc<Shared>>, file: web::Path<String>) -> HttpResponse {
    let Some((package, doc_type)) = file.strip_suffix(".pdf").and_then(|f| f.split_once('-'))
    else {
        return HttpResponse::NotFound().finish();
    };
    let (order, tracking) = {
        let w = sim.world.lock();
        match w.by_package.get(package).and_then(|id| w.orders.get(id)) {
            Some(o) => (
                o.wire.id.clone(),
                o.wire.tracking_number.clone().unwrap_or_default(),
            ),
            None => return HttpResponse::NotFound().finish(),
        }
    };
    let label = vec![
        "TikTok Shipping".to_string(),
        format!("PACKAGE {package}"),
        format!("TRACKING {tracking}"),
    ];
    let slip = vec!["PACKING SLIP".to_string(), format!("ORDER {order}")];
    let pages = match doc_type {
        "PACKING_SLIP" => vec![slip],
        "SHIPPING_LABEL_AND_PACKING_SLIP" => vec![label, slip],
        _ => vec![label],
    };
    match crate::shipping::documents::text_pdf(&pages) {
        Ok(pdf) => HttpResponse::Ok().content_type("application/pdf").body(pdf),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
