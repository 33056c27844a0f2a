//! Stock over HTTP: read a SKU's counts, set or adjust on hand, import a
//! CSV. A thin layer over [`InventoryHandle`]; every write goes through
//! the inventory's own transactions (and so its invariants and its push to
//! TikTok).
//!
//! - `GET /api/v1/inventory`: every SKU;
//! - `GET /api/v1/inventory/{sku}`: one SKU (404 when unknown);
//! - `POST /api/v1/inventory/{sku}`: `{warehouse_id?, on_hand}` sets,
//!   `{warehouse_id?, delta}` adjusts;
//! - `GET /api/v1/inventory/reconcile?shop=`: drift against TikTok;
//!   `POST` the same to correct it (ours pushed);
//! - `GET /api/v1/inventory/journal?before=&limit=`: changes by hand,
//!   imports, mappings and reconciles, newest first;
//! - `POST /api/v1/inventory/import`: a CSV body
//!   (`sku_id,warehouse_id,on_hand[,product_id]`), all or nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{error, AppState};
use crate::inventory::{Error, InventoryHandle};

/// Mounted under `/api/v1`, behind [`super::auth::gate_api`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/inventory", web::get().to(list))
        .route("/inventory/reconcile", web::get().to(reconcile))
        .route("/inventory/reconcile", web::post().to(reconcile_fix))
        .route("/inventory/import", web::post().to(import))
        .route("/inventory/journal", web::get().to(journal))
        .route("/inventory/{sku}", web::get().to(get))
        .route("/inventory/{sku}", web::post().to(update));
}

pub(super) fn unavailable() -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "inventory is not running in this daemon",
    )
}

pub(super) fn inventory(s: &AppState) -> Option<&InventoryHandle> {
    s.inventory.as_ref()
}

/// `v` with the SKU's name and image from the catalogue (and its seller
/// SKU when `v` has none), when the catalogue knows it.
pub(super) fn named(s: &AppState, sku: &str, mut v: serde_json::Value) -> serde_json::Value {
    if let Some(info) = s.catalogue.as_ref().and_then(|c| c.sku(sku)) {
        v["name"] = serde_json::json!(info.name());
        v["image_url"] = serde_json::json!(info.image_url);
        if v["seller_sku"].as_str().is_some_and(str::is_empty) {
            v["seller_sku"] = serde_json::json!(info.seller_sku);
        }
    }
    v
}

pub(super) fn failed(e: Error) -> HttpResponse {
    let status = match e.kind() {
        "invalid" | "out_of_stock" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn list(s: web::Data<AppState>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    match inv.list().await {
        Ok(all) => {
            let skus: Vec<serde_json::Value> = all
                .iter()
                .map(|x| named(&s, &x.sku, serde_json::to_value(x).unwrap_or_default()))
                .collect();
            HttpResponse::Ok().json(serde_json::json!({ "skus": skus }))
        }
        Err(e) => failed(e),
    }
}

async fn get(s: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    match inv.get(&path).await {
        Ok(Some(stock)) => HttpResponse::Ok().json(stock),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no SKU {}", path.as_str())),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    warehouse_id: Option<String>,
    on_hand: Option<u32>,
    delta: Option<i64>,
}

async fn update(s: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    let u: Update = match super::json_body(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let w = u.warehouse_id.as_deref();
    let r = match (u.on_hand, u.delta) {
        (Some(n), None) => inv.set(&path, w, n).await,
        (None, Some(d)) => inv.adjust(&path, w, d).await,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of on_hand and delta",
            )
        }
    };
    match r {
        Ok(stock) => HttpResponse::Ok().json(stock),
        Err(e) => failed(e),
    }
}

async fn import(s: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the CSV is not UTF-8");
    };
    match inv.import_csv(text).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize)]
struct JournalQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/inventory/journal?before=MS&limit=N`: stock and mapping
/// changes by hand, imports and reconciles, newest first.
async fn journal(s: web::Data<AppState>, q: web::Query<JournalQuery>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    match inv
        .journal_entries(q.before, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
    {
        Ok(entries) => HttpResponse::Ok().json(serde_json::json!({ "entries": entries })),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize)]
struct ReconcileQuery {
    shop: Option<String>,
}

/// `GET /api/v1/inventory/reconcile?shop=ID`: our numbers against TikTok's
/// inventory search, SKU by SKU and warehouse by warehouse.
async fn reconcile(s: web::Data<AppState>, q: web::Query<ReconcileQuery>) -> HttpResponse {
    reconcile_shop(s, q, false).await
}

/// `POST /api/v1/inventory/reconcile?shop=ID`: the same, then pushes our
/// numbers for every drifted SKU (`fixed`, `not_fixed` in the report).
async fn reconcile_fix(s: web::Data<AppState>, q: web::Query<ReconcileQuery>) -> HttpResponse {
    reconcile_shop(s, q, true).await
}

async fn reconcile_shop(
    s: web::Data<AppState>,
    q: web::Query<ReconcileQuery>,
    fix: bool,
) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    let Some(p) = s.pollers.first() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "TikTok is not configured");
    };
    // By default the first connected shop (connected live, or from the file).
    let first = s
        .shops
        .as_ref()
        .and_then(|x| x.connected().first().cloned())
        .or_else(|| p.shop_ids.first().cloned());
    let shop = match q.shop.clone().or(first) {
        Some(shop) => shop,
        None => return error(StatusCode::BAD_REQUEST, "give ?shop="),
    };
    match inv.reconcile_with(&p.gateway, &shop, fix).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => failed(e),
    }
}
