//! Mappings over HTTP: which items, and how many units of each, a TikTok
//! SKU takes (see [`crate::inventory::mapping`]).
//!
//! - `GET /api/v1/mappings?after=&limit=`: recorded mappings, SKU order;
//! - `GET /api/v1/mappings/unmapped?limit=`: SKUs mapped to no item, those
//!   orders are held for first, with names from the catalogue;
//! - `GET /api/v1/mappings/{sku}`: how the SKU resolves now (404: unmapped)
//!   and its available units;
//! - `PUT /api/v1/mappings/{sku}`: `{components: [{item, units}]}` maps it
//!   (orders held for it go on by themselves);
//! - `DELETE /api/v1/mappings/{sku}`: unmaps it;
//! - `POST /api/v1/mappings/import`: a CSV body (`sku_id,item[,units]`),
//!   all or nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::inventory::{failed, inventory, named, unavailable};
use super::{error, AppState};
use crate::inventory::Component;

/// Mounted under `/api/v1`, behind [`super::auth::gate_api`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mappings", web::get().to(list))
        .route("/mappings/unmapped", web::get().to(unmapped))
        .route("/mappings/import", web::post().to(import))
        .route("/mappings/{sku}", web::get().to(get))
        .route("/mappings/{sku}", web::put().to(set))
        .route("/mappings/{sku}", web::delete().to(remove));
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(s: web::Data<AppState>, q: web::Query<Page>) -> HttpResponse {
    let Some(inv) = inventory(&s).cloned() else {
        return unavailable();
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let after = q.after.clone();
    let r = web::block(move || inv.mappings(after.as_deref(), limit)).await;
    match r {
        Ok(Ok(maps)) => {
            let next = (maps.len() == limit)
                .then(|| maps.last().map(|m| m.sku_id.clone()))
                .flatten();
            HttpResponse::Ok().json(serde_json::json!({ "mappings": maps, "next": next }))
        }
        Ok(Err(e)) => failed(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn unmapped(s: web::Data<AppState>, q: web::Query<Page>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    match inv.unmapped(limit).await {
        Ok(rows) => {
            let rows: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|r| named(&s, &r.sku_id, serde_json::to_value(&r).unwrap_or_default()))
                .collect();
            HttpResponse::Ok().json(serde_json::json!({ "unmapped": rows }))
        }
        Err(e) => failed(e),
    }
}

async fn get(s: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    match inv.mapping(&path) {
        Ok(Some(m)) => {
            let available = inv.sku_available(&path).unwrap_or(0);
            let mut v = serde_json::to_value(&m).unwrap_or_default();
            v["available"] = serde_json::json!(available);
            HttpResponse::Ok().json(v)
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("SKU {} is not mapped to any item", path.as_str()),
        ),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    components: Vec<Component>,
}

async fn set(s: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    let b: SetBody = match super::json_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    match inv.set_mapping(&path, &b.components).await {
        Ok(m) => HttpResponse::Ok().json(m),
        Err(e) => failed(e),
    }
}

async fn remove(s: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let Some(inv) = inventory(&s) else {
        return unavailable();
    };
    match inv.remove_mapping(&path).await {
        Ok(removed) => HttpResponse::Ok().json(serde_json::json!({ "removed": removed })),
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
    match inv.import_mappings(text).await {
        Ok(skus) => HttpResponse::Ok().json(serde_json::json!({ "mapped": skus })),
        Err(e) => failed(e),
    }
}
