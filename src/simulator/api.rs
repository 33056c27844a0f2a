//! The TikTok side of the wire: every Open API endpoint orderflow uses,
//! behind the same checks TikTok makes, in TikTok's order: app key,
//! timestamp window, signature, access token, shop cipher, the per-(app,
//! shop) rate limit, then any injected fault.
//!
//! One handler routes by method and path, so an unknown path or method gets
//! TikTok's envelope (36009009 / 36009010) rather than an empty 404.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::state::{real_now_ms, LedgerEntry, World, PROVIDERS};
use super::Shared;
use crate::order::TiktokStatus;
use crate::tiktok::codes;
use crate::tiktok::dto::*;

/// Codes the reference does not document, chosen by the simulator.
pub mod sim_codes {
    /// The order's status does not allow the operation (e.g. shipping an
    /// ON_HOLD order).
    pub const STATUS_NOT_ALLOWED: i64 = 21011001;
    /// A request parameter is missing or invalid.
    pub const INVALID_PARAM: i64 = 12019001;
    /// The SKU is unknown or not of this product.
    pub const SKU_NOT_FOUND: i64 = 17019001;
    pub const INVALID_PATH: i64 = 36009009;
    pub const INVALID_METHOD: i64 = 36009010;
}

/// The delivery option every simulated order carries (seller shipped).
pub const SELLER_DELIVERY_OPTION: &str = "7091146663229654785";
/// A delivery option TikTok ships: Get Shipping Providers answers 21008117.
pub const TIKTOK_DELIVERY_OPTION: &str = "7091146663229654786";

/// The decoded query parameters of a request.
struct Q<'a>(&'a [(String, String)]);

impl Q<'_> {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

type Answer = Result<Value, (StatusCode, i64, String)>;

fn bad(code: i64, msg: impl Into<String>) -> (StatusCode, i64, String) {
    (StatusCode::OK, code, msg.into())
}

fn envelope(
    world: &mut World,
    status: StatusCode,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> HttpResponse {
    world.request_seq += 1;
    let mut body = json!({
        "code": code,
        "message": message,
        "request_id": format!("2026{:016}", world.request_seq),
    });
    if let Some(d) = data {
        body["data"] = d;
    }
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

/// Stands for this server's address in a document URL until the answer
/// goes out.
const DOC_HOST: &str = "http://sim-host.invalid";

/// What a request was routed to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    AuthorizedShops,
    SearchOrders,
    OrderDetail,
    ShipPackage,
    ShippingDocument,
    BatchShip,
    MarkShipped,
    UpdateShippingInfo,
    ShippingProviders,
    Warehouses,
    DeliveryOptions,
    Cancel,
    SearchCancellations,
    SearchReturns,
    ApproveCancellation,
    RejectCancellation,
    UpdateInventory,
    InventorySearch,
    SearchProducts,
    GetProduct,
    GetWebhooks,
    PutWebhook,
    DeleteWebhook,
    TokenGet,
    TokenRefresh,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::AuthorizedShops => "authorized_shops",
            Route::SearchOrders => "search_orders",
            Route::OrderDetail => "order_detail",
            Route::ShipPackage => "ship_package",
            Route::ShippingDocument => "shipping_document",
            Route::BatchShip => "batch_ship",
            Route::MarkShipped => "mark_package_shipped",
            Route::UpdateShippingInfo => "update_shipping_info",
            Route::ShippingProviders => "shipping_providers",
            Route::Warehouses => "warehouses",
            Route::SearchCancellations => "search_cancellations",
            Route::SearchReturns => "search_returns",
            Route::ApproveCancellation => "approve_cancellation",
            Route::RejectCancellation => "reject_cancellation",
            Route::DeliveryOptions => "delivery_options",
            Route::Cancel => "cancel_order",
            Route::UpdateInventory => "update_inventory",
            Route::InventorySearch => "inventory_search",
            Route::SearchProducts => "search_products",
            Route::GetProduct => "get_product",
            Route::GetWebhooks => "get_webhooks",
            Route::PutWebhook => "put_webhook",
            Route::DeleteWebhook => "delete_webhook",
            Route::TokenGet => "token_get",
            Route::TokenRefresh => "token_refresh",
        }
    }
}

/// Routes; `Err` is `(known path, wrong method)`.
fn route<'p>(method: &Method, segs: &[&'p str]) -> Result<(Route, Option<&'p str>), bool> {
    use Route::*;
    let (r, arg, m) = match segs {
        ["authorization", "202309", "shops"] => (AuthorizedShops, None, Method::GET),
        ["order", "202309", "orders", "search"] => (SearchOrders, None, Method::POST),
        ["order", "202309", "orders"] => (OrderDetail, None, Method::GET),
        ["fulfillment", "202309", "packages", "ship"] => (BatchShip, None, Method::POST),
        ["fulfillment", "202309", "packages", p, "ship"] => (ShipPackage, Some(*p), Method::POST),
        ["fulfillment", "202309", "packages", p, "shipping_documents"] => {
            (ShippingDocument, Some(*p), Method::GET)
        }
        ["fulfillment", "202309", "orders", o, "packages"] => (MarkShipped, Some(*o), Method::POST),
        ["fulfillment", "202309", "orders", o, "shipping_info", "update"] => {
            (UpdateShippingInfo, Some(*o), Method::POST)
        }
        ["logistics", "202309", "delivery_options", d, "shipping_providers"] => {
            (ShippingProviders, Some(*d), Method::GET)
        }
        ["logistics", "202309", "warehouses"] => (Warehouses, None, Method::GET),
        ["logistics", "202309", "warehouses", w, "delivery_options"] => {
            (DeliveryOptions, Some(*w), Method::GET)
        }
        ["return_refund", "202309", "cancellations"] => (Cancel, None, Method::POST),
        ["return_refund", "202309", "cancellations", "search"] => {
            (SearchCancellations, None, Method::POST)
        }
        ["return_refund", "202309", "returns", "search"] => (SearchReturns, None, Method::POST),
        ["return_refund", "202309", "cancellations", c, "approve"] => {
            (ApproveCancellation, Some(*c), Method::POST)
        }
        ["return_refund", "202309", "cancellations", c, "reject"] => {
            (RejectCancellation, Some(*c), Method::POST)
        }
        ["product", "202309", "products", p, "inventory", "update"] => {
            (UpdateInventory, Some(*p), Method::POST)
        }
        ["product", "202309", "inventory", "search"] => (InventorySearch, None, Method::POST),
        ["product", "202502", "products", "search"] => (SearchProducts, None, Method::POST),
        ["product", "202309", "products", p] => (GetProduct, Some(*p), Method::GET),
        ["event", "202309", "webhooks"] => match *method {
            Method::GET => (GetWebhooks, None, Method::GET),
            Method::PUT => (PutWebhook, None, Method::PUT),
            Method::DELETE => (DeleteWebhook, None, Method::DELETE),
            _ => return Err(true),
        },
        ["api", "v2", "token", "get"] => (TokenGet, None, Method::GET),
        ["api", "v2", "token", "refresh"] => (TokenRefresh, None, Method::GET),
        _ => return Err(false),
    };
    if *method != m {
        return Err(true);
    }
    Ok((r, arg))
}

fn stats(world: &mut World, r: Route) -> &mut super::state::EndpointStats {
    world.endpoints.entry(r.name()).or_default()
}

/// The single entry point for every non-`/sim` request.
pub(crate) async fn handle(sim: Data<Arc<Shared>>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let path = req.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (r, arg) = match route(req.method(), &segs) {
        Ok(x) => x,
        Err(known) => {
            let mut w = sim.world.lock();
            return if known {
                envelope(
                    &mut w,
                    StatusCode::METHOD_NOT_ALLOWED,
                    sim_codes::INVALID_METHOD,
                    "Invalid method",
                    None,
                )
            } else {
                envelope(
                    &mut w,
                    StatusCode::NOT_FOUND,
                    sim_codes::INVALID_PATH,
                    "Invalid path",
                    None,
                )
            };
        }
    };
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://sim{}", req.uri()))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let q = Q(&query);

    if matches!(r, Route::TokenGet | Route::TokenRefresh) {
        let mut w = sim.world.lock();
        stats(&mut w, r).total += 1;
        let ans = tokens(&sim, &mut w, r, &q);
        return finish(&mut w, r, ans);
    }

    // Identity and signature.
    let latency;
    let authorized_for: Option<std::collections::BTreeSet<String>>;
    {
        let mut w = sim.world.lock();
        stats(&mut w, r).total += 1;
        let now = real_now_ms() / 1000;
        let reject = |w: &mut World, code: i64, msg: &str| {
            stats(w, r).rejected += 1;
            envelope(w, StatusCode::OK, code, msg, None)
        };
        if q.get("app_key") != Some(sim.app_key.as_str()) {
            return reject(&mut w, codes::INVALID_REQUEST, "Invalid app_key");
        }
        match q.get("timestamp").and_then(|t| t.parse::<i64>().ok()) {
            Some(t) if t >= now - 300 && t <= now + 30 => {}
            Some(_) => {
                return reject(
                    &mut w,
                    codes::INVALID_REQUEST,
                    "Timestamp is invalid or expired",
                )
            }
            None => {
                return reject(
                    &mut w,
                    codes::INVALID_REQUEST,
                    "Missing or malformed timestamp",
                )
            }
        }
        let Some(sign) = q.get("sign") else {
            return reject(&mut w, codes::INVALID_REQUEST, "Missing sign");
        };
        let multipart = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let signed_body = if multipart { None } else { Some(&body[..]) };
        if !crate::tiktok::sign::verify(
            &sim.app_secret,
            &path,
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signed_body,
            sign,
        ) {
            return reject(&mut w, codes::INVALID_SIGN, "Invalid sign");
        }
        let token = req
            .headers()
            .get("x-tts-access-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let granted = match w.access.get(token) {
            None => return reject(&mut w, codes::INVALID_REQUEST, "Invalid x-tts-access-token"),
            Some(t) if t.expired || t.expires_at <= now => {
                return reject(
                    &mut w,
                    codes::TOKEN_EXPIRED,
                    "access token is expired, please refresh it",
                )
            }
            Some(t) => t.shops.clone(),
        };
        if granted.as_ref().is_some_and(|g| g.is_empty()) {
            return reject(
                &mut w,
                codes::ACCESS_TOKEN_INVALID,
                "access token is invalid; detail:your token has been deauthorized",
            );
        }
        let shop_key = if r == Route::AuthorizedShops {
            if q.get("shop_cipher").is_some() {
                return reject(
                    &mut w,
                    codes::INVALID_REQUEST,
                    "Unexpected identifier: shop_cipher",
                );
            }
            "-".to_string()
        } else {
            match q.get("shop_cipher") {
                None => return reject(&mut w, codes::CIPHER_MISSING, "shop_cipher is required"),
                Some(c) => match w.shop_by_cipher(c) {
                    Some(s) => s.id.clone(),
                    None => return reject(&mut w, codes::INVALID_REQUEST, "Invalid shop_cipher"),
                },
            }
        };
        if shop_key != "-" && granted.as_ref().is_some_and(|g| !g.contains(&shop_key)) {
            return reject(
                &mut w,
                codes::ACCESS_TOKEN_INVALID,
                "access token is invalid; detail:your token has been deauthorized",
            );
        }
        authorized_for = granted;
        // Rate limit per (app, shop), fixed one-second windows.
        *w.per_second
            .entry(shop_key.clone())
            .or_default()
            .entry(now)
            .or_insert(0) += 1;
        let win = w
            .windows
            .entry((sim.app_key.clone(), shop_key.clone()))
            .or_insert((now, 0));
        if win.0 != now {
            *win = (now, 0);
        }
        win.1 += 1;
        if win.1 > sim.qps {
            stats(&mut w, r).throttled += 1;
            return envelope(
                &mut w,
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_REQUESTS,
                "Too many requests",
                None,
            );
        }
        // Injected faults.
        let f = w.faults.clone();
        let storm = w.storm_until.is_some_and(|t| t > Instant::now());
        if storm || (f.throttle_rate > 0.0 && w.rng.random_bool(f.throttle_rate)) {
            stats(&mut w, r).throttled += 1;
            return envelope(
                &mut w,
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_REQUESTS,
                "Too many requests",
                None,
            );
        }
        if f.error_rate > 0.0 && w.rng.random_bool(f.error_rate) {
            stats(&mut w, r).faulted += 1;
            return if w.rng.random_bool(0.5) {
                envelope(
                    &mut w,
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::INTERNAL_ERROR,
                    "Service unavailable",
                    None,
                )
            } else {
                envelope(
                    &mut w,
                    StatusCode::OK,
                    codes::INTERNAL_ERROR,
                    "Internal error, please retry",
                    None,
                )
            };
        }
        let jitter = if f.latency_jitter_ms > 0 {
            w.rng.random_range(0..=f.latency_jitter_ms)
        } else {
            0
        };
        latency = f.latency_ms + jitter;
    }
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let shop_id = {
        let w = sim.world.lock();
        q.get("shop_cipher")
            .and_then(|c| w.shop_by_cipher(c))
            .map(|s| s.id.clone())
            .unwrap_or_default()
    };
    let ans = {
        let mut w = sim.world.lock();
        let mut ans = dispatch(&mut w, r, arg.unwrap_or(""), &shop_id, &q, &body);
        // A document's URL is this server's.
        if let (Route::ShippingDocument, Ok(v)) = (r, &mut ans) {
            if let Some(u) = v["doc_url"].as_str() {
                let host = req.connection_info().host().to_string();
                v["doc_url"] = json!(u.replace(DOC_HOST, &format!("http://{host}")));
            }
        }
        // A seller's token lists that seller's shops only.
        if let (Route::AuthorizedShops, Some(only), Ok(v)) = (r, &authorized_for, &mut ans) {
            if let Some(list) = v["shops"].as_array_mut() {
                list.retain(|s| s["id"].as_str().is_some_and(|id| only.contains(id)));
            }
        }
        ans
    };
    let (resp, hold) = {
        let mut w = sim.world.lock();
        // A lost reply: the call took effect, the caller hears nothing in
        // time.
        let lose = ans.is_ok()
            && matches!(
                r,
                Route::ShipPackage | Route::MarkShipped | Route::BatchShip | Route::Cancel
            )
            && w.faults.lost_replies > 0;
        let hold = if lose {
            w.faults.lost_replies -= 1;
            Duration::from_millis(match w.faults.lost_reply_ms {
                0 => 30_000,
                ms => ms,
            })
        } else {
            Duration::ZERO
        };
        let resp = finish(&mut w, r, ans);
        // Webhooks produced by this call go out after the answer is decided.
        let out = std::mem::take(&mut w.outbox);
        drop(w);
        sim.push_all(out);
        (resp, hold)
    };
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    resp
}

fn finish(w: &mut World, r: Route, ans: Answer) -> HttpResponse {
    match ans {
        Ok(data) => {
            stats(w, r).ok += 1;
            envelope(w, StatusCode::OK, 0, "Success", Some(data))
        }
        Err((status, code, msg)) => {
            stats(w, r).rejected += 1;
            envelope(w, status, code, &msg, None)
        }
    }
}

fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, (StatusCode, i64, String)> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        bad(
            sim_codes::INVALID_PARAM,
            format!("Invalid request body: {e}"),
        )
    })
}

fn tokens(sim: &Shared, w: &mut World, r: Route, q: &Q<'_>) -> Answer {
    if q.get("app_key") != Some(sim.app_key.as_str())
        || q.get("app_secret") != Some(sim.app_secret.as_str())
    {
        return Err(bad(codes::INVALID_REQUEST, "Invalid app_key or app_secret"));
    }
    let now = real_now_ms() / 1000;
    let data = match r {
        Route::TokenGet => {
            if q.get("grant_type") != Some("authorized_code") {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    "grant_type must be authorized_code",
                ));
            }
            let code = q.get("auth_code").unwrap_or("");
            if code.is_empty() || !w.used_codes.insert(code.to_string()) {
                return Err(bad(
                    codes::AUTH_RECORD_MISSING,
                    "auth_code is invalid or already used",
                ));
            }
            // A code from the authorization page names its seller's shops;
            // any other (tests that skip the page) covers every shop.
            match w.codes.remove(code) {
                Some(c) if c.expires_at < now => {
                    return Err(bad(codes::AUTH_RECORD_MISSING, "auth_code is expired"))
                }
                Some(c) => w.issue_tokens(sim.token_ttl_secs, Some(c.shops), &c.open_id, None),
                None => w.issue_tokens(sim.token_ttl_secs, None, "sim-open-id", None),
            }
        }
        _ => {
            if q.get("grant_type") != Some("refresh_token") {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    "grant_type must be refresh_token",
                ));
            }
            let old = q.get("refresh_token").unwrap_or("");
            let Some(st) = w.refresh.get(old).cloned() else {
                return Err(bad(
                    codes::AUTH_RECORD_MISSING,
                    "can not find related auth record",
                ));
            };
            if st.expires_at <= now {
                return Err(bad(
                    codes::AUTH_RECORD_MISSING,
                    "refresh token is expired, the seller must authorize again",
                ));
            }
            if st.shops.as_ref().is_some_and(|s| s.is_empty()) {
                return Err(bad(
                    codes::ACCESS_TOKEN_INVALID,
                    "access token is invalid; detail:your token has been deauthorized",
                ));
            }
            // Rotation: the old refresh token is spent.
            w.refresh.remove(old);
            w.issue_tokens(
                sim.token_ttl_secs,
                st.shops,
                &st.open_id,
                Some(st.expires_at),
            )
        }
    };
    serde_json::to_value(data).map_err(|e| bad(codes::INTERNAL_ERROR, e.to_string()))
}

/// The order as the API shows it: no address before the hold ends, and
/// any wire patch a test set laid over the true fields.
fn visible(o: &super::state::SimOrder) -> serde_json::Value {
    let mut wire = o.wire.clone();
    if matches!(wire.status.as_str(), "UNPAID" | "ON_HOLD") {
        wire.recipient_address = None;
    }
    let mut v = serde_json::to_value(&wire).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for (k, x) in &o.wire_patch {
            m.insert(k.clone(), x.clone());
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn ledger(
    w: &mut World,
    shop_id: &str,
    action: &str,
    order_id: Option<&str>,
    package_id: Option<&str>,
    sku_id: Option<&str>,
    code: i64,
    detail: impl Into<String>,
) {
    w.record(LedgerEntry {
        seq: 0,
        at_ms: 0,
        shop_id: shop_id.to_string(),
        action: action.to_string(),
        order_id: order_id.map(str::to_string),
        package_id: package_id.map(str::to_string),
        sku_id: sku_id.map(str::to_string),
        ok: code == 0,
        code,
        detail: detail.into(),
    });
}

/// Ships one package; the code is 0 on success.
fn ship_one(
    w: &mut World,
    shop_id: &str,
    action: &str,
    package_id: &str,
    req: &ShipPackageRequest,
) -> (i64, String) {
    let Some(order_id) = w.by_package.get(package_id).cloned() else {
        ledger(
            w,
            shop_id,
            action,
            None,
            Some(package_id),
            None,
            codes::NOT_THIS_SELLER,
            "unknown package",
        );
        return (
            codes::NOT_THIS_SELLER,
            "Package does not belong to this seller".into(),
        );
    };
    let (status, owner, seller_shipped, by_platform) = match w.orders.get(&order_id) {
        Some(o) => (
            TiktokStatus::parse(&o.wire.status),
            o.shop_id.clone(),
            o.wire.shipping_type.as_deref() == Some("SELLER"),
            o.wire
                .fulfillment_type
                .as_deref()
                .is_some_and(|f| f != "FULFILLMENT_BY_SELLER"),
        ),
        None => (None, String::new(), false, false),
    };
    if owner != shop_id {
        ledger(
            w,
            shop_id,
            action,
            Some(&order_id),
            Some(package_id),
            None,
            codes::NOT_THIS_SELLER,
            "other shop",
        );
        return (
            codes::NOT_THIS_SELLER,
            "Package does not belong to this seller".into(),
        );
    }
    let endpoint = if action == "ship" {
        "ship_package"
    } else {
        "mark_package_shipped"
    };
    // TikTok refuses to let a seller ship what the platform fulfils, and a
    // seller-shipped package without its tracking (`self_shipment`).
    let refusal = if by_platform {
        Some(21008025)
    } else if action == "ship"
        && seller_shipped
        && req
            .self_shipment
            .as_ref()
            .is_none_or(|s| s.tracking_number.is_empty() || s.shipping_provider_id.is_empty())
    {
        Some(21001001)
    } else {
        None
    };
    let (code, msg) = match status {
        _ if refusal.is_some() => {
            let code = refusal.unwrap_or_default();
            (code, codes::message(endpoint, code).to_string())
        }
        Some(TiktokStatus::AwaitingShipment) => {
            let ss = req.self_shipment.as_ref();
            if let Some(s) = ss {
                if !s.shipping_provider_id.is_empty()
                    && !PROVIDERS.iter().any(|p| p.0 == s.shipping_provider_id)
                {
                    ledger(
                        w,
                        shop_id,
                        action,
                        Some(&order_id),
                        Some(package_id),
                        None,
                        codes::INVALID_TRACKING,
                        "bad provider",
                    );
                    return (codes::INVALID_TRACKING, "Invalid shipping provider".into());
                }
            }
            w.ship(
                &order_id,
                ss.map(|s| s.tracking_number.as_str()),
                ss.map(|s| s.shipping_provider_id.as_str()),
            );
            (0, "shipped".to_string())
        }
        Some(
            TiktokStatus::AwaitingCollection
            | TiktokStatus::PartiallyShipping
            | TiktokStatus::InTransit
            | TiktokStatus::Delivered
            | TiktokStatus::Completed,
        ) => {
            // TikTok lists several "already shipped" codes per endpoint;
            // which one it sends is a fault setting.
            let wanted = w.faults.already_shipped_code;
            let code = codes::already_done(endpoint)
                .find(|c| *c == wanted)
                .or_else(|| codes::already_done(endpoint).next())
                .unwrap_or(codes::INTERNAL_ERROR);
            (code, codes::message(endpoint, code).to_string())
        }
        Some(TiktokStatus::Cancelled) if action == "ship" => (
            21011041,
            codes::message("ship_package", 21011041).to_string(),
        ),
        _ if action == "ship" => (
            21011003,
            codes::message("ship_package", 21011003).to_string(),
        ),
        _ => (
            21042057,
            codes::message("mark_package_shipped", 21042057).to_string(),
        ),
    };
    ledger(
        w,
        shop_id,
        action,
        Some(&order_id),
        Some(package_id),
        None,
        code,
        msg.clone(),
    );
    (code, msg)
}

fn dispatch(w: &mut World, r: Route, arg: &str, shop_id: &str, q: &Q<'_>, body: &[u8]) -> Answer {
    match r {
        Route::AuthorizedShops => Ok(json!({
            "shops": w.shops.iter().map(|s| AuthorizedShop {
                id: s.id.clone(),
                name: s.name.clone(),
                region: s.region.clone(),
                seller_type: "LOCAL".into(),
                cipher: s.cipher.clone(),
                code: format!("USLC{}", &s.id[s.id.len() - 4..]),
            }).collect::<Vec<_>>()
        })),
        Route::OrderDetail => {
            let ids: Vec<&str> = q
                .get("ids")
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .collect();
            if ids.is_empty() || ids.len() > 50 {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    format!("ids must hold 1 to 50 order ids, got {}", ids.len()),
                ));
            }
            let orders: Vec<serde_json::Value> = ids
                .iter()
                .filter_map(|id| w.orders.get(*id))
                .filter(|o| o.shop_id == shop_id)
                .map(visible)
                .collect();
            Ok(json!({ "orders": orders }))
        }
        Route::SearchOrders => {
            let page_size: usize = match q.get("page_size").map(str::parse) {
                Some(Ok(n)) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(bad(
                        sim_codes::INVALID_PARAM,
                        "page_size is required and must be 1..=100",
                    ))
                }
            };
            let f: SearchOrdersFilter = parse(body)?;
            let by_update = q.get("sort_field") == Some("update_time");
            let asc = q.get("sort_order") == Some("ASC");
            let offset: usize = match q.get("page_token") {
                None | Some("") => 0,
                Some(t) => t
                    .strip_prefix("sim-page-")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad(sim_codes::INVALID_PARAM, "Invalid page_token"))?,
            };
            let mut hits: Vec<&super::state::SimOrder> = w
                .orders
                .values()
                .filter(|so| so.shop_id == shop_id)
                .filter(|so| {
                    let o = &so.wire;
                    f.order_status.as_ref().is_none_or(|s| &o.status == s)
                        && f.create_time_ge.is_none_or(|t| o.create_time >= t)
                        && f.create_time_lt.is_none_or(|t| o.create_time < t)
                        && f.update_time_ge.is_none_or(|t| o.update_time >= t)
                        && f.update_time_lt.is_none_or(|t| o.update_time < t)
                        && f.shipping_type
                            .as_ref()
                            .is_none_or(|s| o.shipping_type.as_ref() == Some(s))
                        && f.buyer_user_id
                            .as_ref()
                            .is_none_or(|s| o.user_id.as_ref() == Some(s))
                        && f.is_buyer_request_cancel
                            .is_none_or(|b| o.is_buyer_request_cancel.unwrap_or(false) == b)
                        && (f.warehouse_ids.is_empty()
                            || o.warehouse_id
                                .as_ref()
                                .is_some_and(|x| f.warehouse_ids.contains(x)))
                })
                .collect();
            fn key(so: &super::state::SimOrder, by_update: bool) -> (i64, &str) {
                let o = &so.wire;
                let t = if by_update {
                    o.update_time
                } else {
                    o.create_time
                };
                (t, o.id.as_str())
            }
            hits.sort_by(|a, b| {
                if asc {
                    key(a, by_update).cmp(&key(b, by_update))
                } else {
                    key(b, by_update).cmp(&key(a, by_update))
                }
            });
            let total = hits.len();
            let page: Vec<serde_json::Value> = hits
                .iter()
                .skip(offset)
                .take(page_size)
                .map(|o| visible(o))
                .collect();
            let next = if offset + page_size < total {
                format!("sim-page-{}", offset + page_size)
            } else {
                String::new()
            };
            Ok(json!({ "next_page_token": next, "total_count": total, "orders": page }))
        }
        Route::ShipPackage => {
            let req: ShipPackageRequest = parse(body)?;
            match ship_one(w, shop_id, "ship", arg, &req) {
                (0, _) => Ok(json!({})),
                (code, msg) => Err(bad(code, msg)),
            }
        }
        Route::ShippingDocument => {
            // As the reference: TikTok Shipping packages only, after Ship
            // Package, one of the document types it lists.
            let doc_type = q.get("document_type").unwrap_or("");
            if !matches!(
                doc_type,
                "SHIPPING_LABEL"
                    | "PACKING_SLIP"
                    | "SHIPPING_LABEL_AND_PACKING_SLIP"
                    | "SHIPPING_LABEL_PICTURE"
                    | "HAZMAT_LABEL"
                    | "INVOICE_LABEL"
            ) || !matches!(q.get("document_size").unwrap_or("A6"), "A6" | "A5")
            {
                return Err(bad(
                    21001001,
                    codes::message("mark_package_shipped", 21001001),
                ));
            }
            let order = w
                .by_package
                .get(arg)
                .and_then(|id| w.orders.get(id))
                .filter(|o| o.shop_id == shop_id);
            let Some(o) = order else {
                return Err(bad(
                    codes::NOT_THIS_SELLER,
                    "Package does not belong to this seller",
                ));
            };
            let doc = |code: i64| bad(code, codes::message("shipping_document", code));
            if o.wire.shipping_type.as_deref() == Some("SELLER") {
                return Err(doc(21008017));
            }
            match TiktokStatus::parse(&o.wire.status) {
                Some(TiktokStatus::Cancelled) => return Err(doc(21023059)),
                Some(TiktokStatus::AwaitingShipment) => return Err(doc(21023035)),
                _ => {}
            }
            Ok(json!({
                "doc_url": format!("{DOC_HOST}/sim/tiktok/documents/{arg}-{doc_type}.pdf"),
                "tracking_number": o.wire.tracking_number.clone().unwrap_or_default(),
            }))
        }
        Route::BatchShip => {
            let req: BatchShipRequest = parse(body)?;
            let mut errors = Vec::new();
            for p in &req.packages {
                let (code, msg) = ship_one(w, shop_id, "ship", &p.id, &p.ship);
                if code != 0 {
                    errors.push(ItemError {
                        code,
                        message: msg,
                        detail: json!({ "package_id": p.id }),
                    });
                }
            }
            Ok(json!({ "errors": errors }))
        }
        Route::MarkShipped => {
            let req: MarkShippedRequest = parse(body)?;
            // Both are required (Y) in the reference.
            if req.tracking_number.is_empty() || req.shipping_provider_id.is_empty() {
                return Err(bad(
                    21001001,
                    codes::message("mark_package_shipped", 21001001),
                ));
            }
            let Some(package_id) = w
                .orders
                .get(arg)
                .filter(|o| o.shop_id == shop_id)
                .map(|o| o.package_id.clone())
            else {
                return Err(bad(
                    codes::NOT_THIS_SELLER,
                    "Order does not belong to this seller",
                ));
            };
            let ship = ShipPackageRequest {
                handover_method: None,
                pickup_slot: None,
                self_shipment: Some(SelfShipment {
                    tracking_number: req.tracking_number.clone(),
                    shipping_provider_id: req.shipping_provider_id.clone(),
                }),
            };
            match ship_one(w, shop_id, "mark_shipped", &package_id, &ship) {
                (0, _) => {
                    let items = w
                        .orders
                        .get(arg)
                        .map(|o| {
                            o.wire
                                .line_items
                                .iter()
                                .map(|l| l.id.clone())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    Ok(json!(MarkShippedData {
                        order_id: arg.to_string(),
                        order_line_item_ids: items,
                        package_id,
                        warning: None
                    }))
                }
                (code, msg) => Err(bad(code, msg)),
            }
        }
        Route::UpdateShippingInfo => {
            let req: UpdateShippingInfoRequest = parse(body)?;
            let now = w.clock.now_secs();
            let Some(o) = w.orders.get_mut(arg).filter(|o| o.shop_id == shop_id) else {
                return Err(bad(
                    codes::NOT_THIS_SELLER,
                    "Order does not belong to this seller",
                ));
            };
            let shipped = matches!(o.wire.status.as_str(), "AWAITING_COLLECTION" | "IN_TRANSIT");
            let (code, msg) = if !shipped {
                (
                    sim_codes::STATUS_NOT_ALLOWED,
                    format!(
                        "Order status {} does not allow updating tracking",
                        o.wire.status
                    ),
                )
            } else if req.tracking_number.is_empty()
                || !PROVIDERS.iter().any(|p| p.0 == req.shipping_provider_id)
            {
                (
                    codes::INVALID_TRACKING,
                    "Invalid tracking number or shipping provider".to_string(),
                )
            } else {
                o.wire.tracking_number = Some(req.tracking_number.clone());
                o.wire.shipping_provider_id = Some(req.shipping_provider_id.clone());
                o.wire.update_time = now;
                for li in &mut o.wire.line_items {
                    li.tracking_number = Some(req.tracking_number.clone());
                }
                (0, "updated".to_string())
            };
            ledger(
                w,
                shop_id,
                "update_shipping_info",
                Some(arg),
                None,
                None,
                code,
                msg.clone(),
            );
            if code == 0 {
                Ok(json!({}))
            } else {
                Err(bad(code, msg))
            }
        }
        // Each warehouse has a seller-shipped option (the one orders carry)
        // and a TikTok-shipped one, which offers no seller provider.
        Route::Warehouses => Ok(json!({
            "warehouses": w.shops.iter().filter(|s| s.id == shop_id).map(|s| json!({
                "id": s.warehouse_id, "name": format!("{} warehouse", s.name),
                "effect_status": "ENABLED", "type": "SALES_WAREHOUSE",
                "sub_type": "DOMESTIC_WAREHOUSE", "is_default": true,
            })).collect::<Vec<_>>()
        })),
        Route::DeliveryOptions => {
            if !w
                .shops
                .iter()
                .any(|s| s.id == shop_id && s.warehouse_id == arg)
            {
                return Err(bad(12052097, "The warehouse does not exist"));
            }
            Ok(json!({ "delivery_options": [
                {"id": SELLER_DELIVERY_OPTION, "name": "Standard shipping", "type": "SEND_BY_SELLER",
                 "description": "Shipped by the seller", "platform": ["TIKTOK_SHOP"]},
                {"id": TIKTOK_DELIVERY_OPTION, "name": "Standard shipping (TikTok)", "type": "STANDARD",
                 "description": "Shipped by TikTok", "platform": ["TIKTOK_SHOP"]},
            ]}))
        }
        Route::ShippingProviders => match arg {
            SELLER_DELIVERY_OPTION => Ok(json!({
                "shipping_providers": PROVIDERS.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()
            })),
            TIKTOK_DELIVERY_OPTION => Err(bad(
                codes::DELIVERY_BY_TIKTOK,
                codes::message("shipping_providers", codes::DELIVERY_BY_TIKTOK),
            )),
            _ => Err(bad(
                codes::DELIVERY_OPTION_NOT_SUBSCRIBED,
                codes::message("shipping_providers", codes::DELIVERY_OPTION_NOT_SUBSCRIBED),
            )),
        },
        Route::SearchCancellations => {
            match q.get("page_size").map(str::parse::<u32>) {
                None => {}
                Some(Ok(n)) if (1..=50).contains(&n) => {}
                _ => {
                    return Err(bad(
                        25001001,
                        codes::message("search_cancellations", 25001001),
                    ))
                }
            }
            let f: SearchCancellationsFilter = parse(body)?;
            let mut found: Vec<Value> = w
                .orders
                .values()
                .filter(|o| o.shop_id == shop_id)
                .filter(|o| f.order_ids.is_empty() || f.order_ids.contains(&o.wire.id))
                .filter_map(|o| Some((o, o.cancellation.as_ref()?)))
                .filter(|(_, c)| f.cancel_ids.is_empty() || f.cancel_ids.contains(&c.cancel_id))
                .filter(|(_, c)| f.cancel_status.is_empty() || f.cancel_status.contains(&c.status))
                .map(|(o, c)| json!({
                    "cancel_id": c.cancel_id, "order_id": o.wire.id,
                    "cancel_type": "BUYER_CANCEL", "cancel_status": c.status, "role": "BUYER",
                    "cancel_reason": "ecom_order_to_ship_canceled_reason_no_longer_needed",
                    "cancel_reason_text": "No longer needed",
                    "create_time": c.create_time, "update_time": c.update_time,
                    "seller_next_action_response": if c.status == "CANCELLATION_REQUEST_PENDING" {
                        json!([{"action": "SELLER_RESPOND_CANCEL", "deadline": c.deadline}])
                    } else { json!([]) },
                }))
                .collect();
            found.sort_by(|a, b| a["create_time"].as_i64().cmp(&b["create_time"].as_i64()));
            Ok(json!({ "cancellations": found, "total_count": found.len(), "next_page_token": "" }))
        }
        Route::SearchReturns => {
            // page_size is a string here, "Valid range: [10-50]".
            match q.get("page_size").map(str::parse::<u32>) {
                None => {}
                Some(Ok(n)) if (10..=50).contains(&n) => {}
                _ => return Err(bad(25001001, codes::message("search_returns", 25001001))),
            }
            let f: SearchReturnsFilter = parse(body)?;
            let found: Vec<Value> = w
                .orders
                .values()
                .filter(|o| o.shop_id == shop_id)
                .filter(|o| f.order_ids.is_empty() || f.order_ids.contains(&o.wire.id))
                .flat_map(|o| o.returns.iter().map(move |r| (o, r)))
                .filter(|(_, r)| f.return_ids.is_empty() || f.return_ids.contains(&r.return_id))
                .filter(|(_, r)| {
                    f.update_time_ge.is_none_or(|g| r.update_time >= g)
                        && f.update_time_lt.is_none_or(|l| r.update_time < l)
                })
                .map(|(o, r)| json!({
                    "return_id": r.return_id, "order_id": o.wire.id,
                    "return_type": r.return_type, "return_status": r.return_status,
                    "role": "BUYER",
                    // The reason of TikTok's own example.
                    "return_reason": "ecom_order_to_ship_canceled_reason_created_by_mistakes",
                    "return_reason_text": "Order created by mistake",
                    "create_time": r.create_time, "update_time": r.update_time,
                    "seller_next_action_response": [{"action": "SELLER_RESPOND_REFUND", "deadline": r.deadline}],
                }))
                .collect();
            Ok(json!({ "return_orders": found, "total_count": found.len(), "next_page_token": "" }))
        }
        Route::ApproveCancellation | Route::RejectCancellation => {
            let approve = r == Route::ApproveCancellation;
            let endpoint = if approve {
                "approve_cancellation"
            } else {
                "reject_cancellation"
            };
            let key = q.get("idempotency_key").map(str::to_string);
            let order_id = w
                .orders
                .values()
                .find(|o| {
                    o.shop_id == shop_id
                        && o.cancellation.as_ref().is_some_and(|c| c.cancel_id == arg)
                })
                .map(|o| o.wire.id.clone());
            let Some(order_id) = order_id else {
                return Err(bad(25007006, codes::message(endpoint, 25007006)));
            };
            let (status, answered_with, order_status) = {
                let o = &w.orders[&order_id];
                let c = o.cancellation.as_ref().expect("found by its cancellation");
                (
                    c.status.clone(),
                    c.answered_with.clone(),
                    o.wire.status.clone(),
                )
            };
            let reject_reason = if approve {
                None
            } else {
                let req: RejectCancellationRequest = parse(body)?;
                let market = w
                    .shops
                    .iter()
                    .find(|s| s.id == shop_id)
                    .and_then(|s| crate::tiktok::reasons::Market::from_region(&s.region));
                let listed = market.is_some_and(|m| {
                    crate::tiktok::reasons::reject_reasons(m)
                        .iter()
                        .any(|(k, _)| *k == req.reject_reason)
                });
                if !listed {
                    let code = if crate::tiktok::reasons::is_any_reject_key(&req.reject_reason) {
                        25001057
                    } else {
                        25001014
                    };
                    return Err(bad(code, codes::message(endpoint, code)));
                }
                Some(req.reject_reason)
            };
            let done = if approve {
                "CANCELLATION_REQUEST_SUCCESS"
            } else {
                "CANCELLATION_REQUEST_CANCEL"
            };
            // A replay with the same idempotency key is the same answer.
            if status == done && answered_with.is_some() && answered_with == key {
                return Ok(json!({}));
            }
            if status != "CANCELLATION_REQUEST_PENDING" {
                let code = if approve { 25011012 } else { 25011011 };
                return Err(bad(code, codes::message(endpoint, code)));
            }
            if approve && order_status != "AWAITING_SHIPMENT" {
                return Err(bad(25001045, codes::message(endpoint, 25001045)));
            }
            w.close_cancellation(&order_id, done, key.as_deref());
            if approve {
                w.cancel(
                    &order_id,
                    "BUYER",
                    "ecom_order_to_ship_canceled_reason_no_longer_needed",
                );
            }
            ledger(
                w,
                shop_id,
                endpoint,
                Some(&order_id),
                None,
                None,
                0,
                match &reject_reason {
                    Some(r) => format!("rejected: {r}"),
                    None => "approved".to_string(),
                },
            );
            Ok(json!({}))
        }
        Route::Cancel => {
            let req: CancelOrderRequest = parse(body)?;
            let status = w
                .orders
                .get(&req.order_id)
                .filter(|o| o.shop_id == shop_id)
                .map(|o| o.wire.status.clone());
            // As TikTok answers (Cancel Order's listed codes): a key no
            // market lists, a key that does not fit the shop's market and
            // the order's status, an order past shipping or finished.
            let market = w
                .shops
                .iter()
                .find(|s| s.id == shop_id)
                .and_then(|s| crate::tiktok::reasons::Market::from_region(&s.region));
            let listed = |code: i64| (code, codes::message("cancel_order", code).to_string());
            let (code, msg) = match status.as_deref().map(TiktokStatus::read) {
                None => listed(codes::NO_PERMISSION_ORDER),
                Some(TiktokStatus::Completed | TiktokStatus::Cancelled) => {
                    listed(codes::ORDER_FINISHED)
                }
                Some(s) if !crate::tiktok::reasons::seller_can_cancel(&s) => {
                    listed(codes::ORDER_SHIPPED_NO_CANCEL)
                }
                Some(_)
                    if !crate::tiktok::reasons::is_any_seller_cancel_key(&req.cancel_reason) =>
                {
                    listed(codes::CANCEL_REASON_UNKNOWN)
                }
                Some(s) => match market.map(|m| {
                    crate::tiktok::reasons::seller_cancel_reasons(m, &s)
                        .iter()
                        .any(|r| r.key == req.cancel_reason)
                }) {
                    Some(true) => (0, format!("cancelled: {}", req.cancel_reason)),
                    _ => listed(codes::CANCEL_REASON_STATUS),
                },
            };
            if code == 0 {
                w.cancel(&req.order_id, "SELLER", &req.cancel_reason);
            }
            ledger(
                w,
                shop_id,
                "cancel",
                Some(&req.order_id),
                None,
                None,
                code,
                msg.clone(),
            );
            if code == 0 {
                let cancel_id = format!("4{:018}", w.run_base(18) + w.ledger.len() as u64);
                let data = json!({
                    "order_id": req.order_id, "cancellations_role": "SELLER", "cancel_status": "CANCELLATION_REQUEST_SUCCESS",
                    "cancel_id": cancel_id, "create_time": w.clock.now_secs(),
                });
                w.notify(
                    shop_id,
                    11,
                    "CANCELLATION_STATUS_CHANGE",
                    Some(req.order_id.clone()),
                    data,
                );
                Ok(json!(CancelOrderData {
                    cancel_id,
                    cancel_status: "CANCELLATION_REQUEST_SUCCESS".into()
                }))
            } else {
                Err(bad(code, msg))
            }
        }
        Route::UpdateInventory => {
            let req: UpdateInventoryRequest = parse(body)?;
            let mut errors = Vec::new();
            for sku in &req.skus {
                let known = w.skus.get(&sku.id).is_some_and(|s| s.product_id == arg);
                let warehouses: Vec<String> = w
                    .shops
                    .iter()
                    .filter(|s| s.id == shop_id)
                    .map(|s| s.warehouse_id.clone())
                    .collect();
                // "warehouse_id: Optional if there is only 1 warehouse".
                let only = (warehouses.len() == 1).then(|| warehouses[0].clone());
                let wh = |i: &WarehouseQuantity| {
                    if i.warehouse_id.is_empty() {
                        only.clone().unwrap_or_default()
                    } else {
                        i.warehouse_id.clone()
                    }
                };
                // As Update Inventory answers: its listed codes, and a bad
                // warehouse as 12052990 with the detail in extra_errors
                // (the official example).
                let listed =
                    |code: i64| (code, codes::message("update_inventory", code).to_string());
                let bad_warehouse = sku
                    .inventory
                    .iter()
                    .map(wh)
                    .find(|id| !warehouses.contains(id));
                let problem = if !known {
                    Some((listed(12052556), json!({ "sku_id": sku.id })))
                } else if sku.inventory.iter().any(|i| i.quantity > 99_999) {
                    Some((listed(12052055), json!({ "sku_id": sku.id })))
                } else {
                    bad_warehouse.map(|id| {
                        (
                            (12052990, "Check failed".to_string()),
                            json!({ "sku_id": sku.id, "extra_errors": [{
                                "warehouse_id": id, "code": 12052097,
                                "message": codes::message("update_inventory", 12052097),
                            }]}),
                        )
                    })
                };
                match problem {
                    Some(((code, msg), detail)) => {
                        ledger(
                            w,
                            shop_id,
                            "inventory_update",
                            None,
                            None,
                            Some(&sku.id),
                            code,
                            msg.clone(),
                        );
                        errors.push(ItemError {
                            code,
                            message: msg,
                            detail,
                        });
                    }
                    None => {
                        for i in &sku.inventory {
                            w.inventory
                                .insert((sku.id.clone(), wh(i)), i64::from(i.quantity));
                        }
                        let total: u32 = sku.inventory.iter().map(|i| i.quantity).sum();
                        ledger(
                            w,
                            shop_id,
                            "inventory_update",
                            None,
                            None,
                            Some(&sku.id),
                            0,
                            format!("quantity {total}"),
                        );
                    }
                }
            }
            Ok(json!({ "errors": errors }))
        }
        Route::SearchProducts => {
            let size: usize = match q.get("page_size").and_then(|v| v.parse().ok()) {
                Some(n @ 1..=100) => n,
                _ => {
                    return Err(bad(12019109, "page size is invalid"));
                }
            };
            let offset: usize = match q.get("page_token").filter(|t| !t.is_empty()) {
                None => 0,
                Some(t) => t
                    .parse()
                    .map_err(|_| bad(12019108, "page number is invalid"))?,
            };
            let req: SearchProductsRequest = if body.is_empty() {
                SearchProductsRequest::default()
            } else {
                parse(body)?
            };
            let within = |p: &serde_json::Value| {
                let t = |k: &str| p[k].as_i64().unwrap_or(0);
                req.create_time_ge.is_none_or(|g| t("create_time") >= g)
                    && req.create_time_le.is_none_or(|l| t("create_time") <= l)
                    && req.update_time_ge.is_none_or(|g| t("update_time") >= g)
                    && req.update_time_le.is_none_or(|l| t("update_time") <= l)
            };
            let products: Vec<serde_json::Value> = sim_products(w, shop_id, false, None)
                .into_iter()
                .filter(within)
                .collect();
            let total = products.len();
            // TikTok pages through at most 10,000 results of one query.
            if offset + size > w.product_search_limit && total > w.product_search_limit {
                return Err(bad(
                    12052180,
                    "The total number of search results can not exceed 10000.",
                ));
            }
            let page: Vec<serde_json::Value> =
                products.into_iter().skip(offset).take(size).collect();
            let next = if offset + size < total {
                (offset + size).to_string()
            } else {
                String::new()
            };
            Ok(json!({ "total_count": total, "products": page, "next_page_token": next }))
        }
        Route::GetProduct => sim_products(w, shop_id, true, Some(arg))
            .into_iter()
            .find(|p| p["id"] == arg)
            .ok_or_else(|| bad(12052260, "The product ID does not exist")),
        Route::InventorySearch => {
            let req: InventorySearchRequest = parse(body)?;
            if req.product_ids.is_empty() == req.sku_ids.is_empty()
                || req.product_ids.len() > 100
                || req.sku_ids.len() > 600
            {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    "give either product_ids (<=100) or sku_ids (<=600)",
                ));
            }
            let warehouse = shop_warehouse(w, shop_id);
            let mut by_product: std::collections::BTreeMap<String, Vec<InventorySku>> =
                Default::default();
            for s in w.skus.values() {
                if !(req.product_ids.contains(&s.product_id) || req.sku_ids.contains(&s.id)) {
                    continue;
                }
                let qty = w
                    .inventory
                    .get(&(s.id.clone(), warehouse.clone()))
                    .copied()
                    .unwrap_or(0);
                by_product
                    .entry(s.product_id.clone())
                    .or_default()
                    .push(InventorySku {
                        id: s.id.clone(),
                        total_available_quantity: qty,
                        warehouse_inventory: vec![WarehouseInventory {
                            warehouse_id: warehouse.clone(),
                            available_quantity: qty,
                        }],
                    });
            }
            let inventory: Vec<ProductInventory> = by_product
                .into_iter()
                .map(|(product_id, skus)| ProductInventory { product_id, skus })
                .collect();
            Ok(json!({ "inventory": inventory }))
        }
        Route::GetWebhooks => {
            let list: Vec<ShopWebhook> = w
                .webhooks
                .iter()
                .filter(|((s, _), _)| s == shop_id)
                .map(|(_, v)| v.clone())
                .collect();
            Ok(json!({ "total_count": list.len(), "webhooks": list }))
        }
        Route::PutWebhook => {
            let req: UpdateWebhookRequest = parse(body)?;
            // TikTok's rules for a webhook address (event/update-shop-webhook
            // and the webhooks guide): https, a domain name (no IP), no
            // port, at most 255 characters. No error code is documented for
            // breaking them: the generic invalid-parameter one is used.
            let ok = req.address.len() <= 255
                && reqwest::Url::parse(&req.address).is_ok_and(|u| {
                    u.scheme() == "https"
                        && u.port().is_none()
                        && u.host_str().is_some_and(|h| {
                            !h.is_empty()
                                && h.trim_matches(['[', ']'])
                                    .parse::<std::net::IpAddr>()
                                    .is_err()
                        })
                });
            if !ok {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    "address must be an https URL with a domain name, no port, at most 255 characters",
                ));
            }
            if !EVENT_TYPES.contains(&req.event_type.as_str()) {
                return Err(bad(
                    sim_codes::INVALID_PARAM,
                    format!("unknown event_type {:?}", req.event_type),
                ));
            }
            let now = w.clock.now_secs();
            let key = (shop_id.to_string(), req.event_type.clone());
            let create_time = w.webhooks.get(&key).map(|h| h.create_time).unwrap_or(now);
            w.webhooks.insert(
                key,
                ShopWebhook {
                    event_type: req.event_type,
                    address: req.address,
                    create_time,
                    update_time: now,
                },
            );
            Ok(json!({}))
        }
        Route::DeleteWebhook => {
            let req: DeleteWebhookRequest = parse(body)?;
            w.webhooks.remove(&(shop_id.to_string(), req.event_type));
            Ok(json!({}))
        }
        Route::TokenGet | Route::TokenRefresh => Err(bad(
            sim_codes::INVALID_PATH,
            "token endpoints are routed earlier",
        )),
    }
}

/// The shop's (one) warehouse.
fn shop_warehouse(w: &World, shop_id: &str) -> String {
    w.shops
        .iter()
        .find(|s| s.id == shop_id)
        .map(|s| s.warehouse_id.clone())
        .unwrap_or_default()
}

/// The shop's products as Search Products (or, with `detail`, Get
/// Product) shows them: every simulated product, each SKU with the shop's
/// warehouse and its quantity; in full, images and variant attributes too.
fn sim_products(
    w: &World,
    shop_id: &str,
    detail: bool,
    only: Option<&str>,
) -> Vec<serde_json::Value> {
    let warehouse = shop_warehouse(w, shop_id);
    let mut by_product: std::collections::BTreeMap<&str, Vec<&super::state::SimSku>> =
        Default::default();
    for s in w.skus.values() {
        if s.shops
            .as_ref()
            .is_some_and(|shops| !shops.contains(shop_id))
            || only.is_some_and(|p| p != s.product_id)
        {
            continue;
        }
        by_product.entry(s.product_id.as_str()).or_default().push(s);
    }
    let image = |id: &str| {
        let url = format!("https://p16-sim.tiktokcdn.example/tos/{id}.jpeg");
        json!({"height": 600, "width": 600, "uri": format!("tos/{id}"), "urls": [url.clone()], "thumb_urls": [url.replace(".jpeg", "~300x300.jpeg")]})
    };
    by_product
        .into_iter()
        .map(|(product, skus)| {
            let title = skus.first().map(|s| s.product_name.clone()).unwrap_or_default();
            let created = skus.first().map_or(1_700_000_000, |s| s.create_time);
            let skus: Vec<serde_json::Value> = skus
                .iter()
                .map(|s| {
                    let qty = w
                        .inventory
                        .get(&(s.id.clone(), warehouse.clone()))
                        .copied()
                        .unwrap_or(0);
                    let mut v = json!({
                        "id": s.id,
                        "price": {"currency": "USD", "sale_price": s.price.to_string(), "tax_exclusive_price": s.price.to_string()},
                        "inventory": [{"warehouse_id": warehouse, "quantity": qty}],
                    });
                    // TikTok leaves `seller_sku` out when the seller set none.
                    if !s.seller_sku.is_empty() {
                        v["seller_sku"] = json!(s.seller_sku);
                    }
                    if detail {
                        v["sales_attributes"] = json!([{"id": "100000", "name": "Variant", "value_id": "100001", "value_name": s.sku_name, "sku_img": image(&s.id)}]);
                        if !s.combined.is_empty() {
                            v["combined_skus"] = s
                                .combined
                                .iter()
                                .map(|(id, n)| {
                                    let pid = w.skus.get(id).map(|x| x.product_id.clone()).unwrap_or_default();
                                    json!({"product_id": pid, "sku_id": id, "sku_count": n})
                                })
                                .collect();
                        }
                    }
                    v
                })
                .collect();
            let mut p = json!({
                "id": product, "title": title, "status": "ACTIVATE", "skus": skus,
                "create_time": created, "update_time": created,
            });
            if detail {
                p["main_images"] = json!([image(product)]);
            }
            p
        })
        .collect()
}

/// `event_type` names accepted by `PUT /event/202309/webhooks`: every
/// value the reference documents (`event/update-shop-webhook.spec.json`).
pub const EVENT_TYPES: [&str; 17] = [
    "ORDER_STATUS_CHANGE",
    "REVERSE_STATUS_UPDATE",
    "RECIPIENT_ADDRESS_UPDATE",
    "PACKAGE_UPDATE",
    "PRODUCT_STATUS_CHANGE",
    "SELLER_DEAUTHORIZATION",
    "UPCOMING_AUTHORIZATION_EXPIRATION",
    "CANCELLATION_STATUS_CHANGE",
    "RETURN_STATUS_CHANGE",
    "NEW_CONVERSATION",
    "NEW_MESSAGE",
    "PRODUCT_INFORMATION_CHANGE",
    "PRODUCT_CREATION",
    "PRODUCT_CATEGORY_CHANGE",
    "NEW_MESSAGE_LISTENER",
    "INVOICE_STATUS_CHANGE",
    "PRODUCT_AUDIT_STATUS_CHANGE",
];
