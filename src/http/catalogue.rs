//! The catalogue over HTTP (under `/api/v1`, behind the gate):
//! - `GET /catalogue?after=SKU&limit=N`: SKUs with names, variants, images
//!   and prices, in id order (at most 500 a page);
//! - `GET /catalogue/{sku}`: one SKU (404 when TikTok never listed it);
//! - `POST /catalogue/sync?shop=ID`: read the shop's catalogue now (every
//!   connected shop without `shop`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{error, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/catalogue", web::get().to(list))
        .route("/catalogue/sync", web::post().to(sync))
        .route("/catalogue/{sku}", web::get().to(one));
}

fn unavailable() -> HttpResponse {
    error(
        StatusCode::CONFLICT,
        "no TikTok app is configured: the catalogue is read from connected shops",
    )
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

fn view(s: &crate::catalogue::SkuInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["name"] = json!(s.name());
    v
}

async fn list(s: web::Data<AppState>, q: web::Query<Page>) -> HttpResponse {
    let Some(cat) = &s.catalogue else {
        return unavailable();
    };
    match cat.skus(q.after.as_deref(), q.limit.unwrap_or(100).clamp(1, 500)) {
        Ok(skus) => HttpResponse::Ok().json(json!({
            "skus": skus.iter().map(view).collect::<Vec<_>>(),
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn one(s: web::Data<AppState>, sku: web::Path<String>) -> HttpResponse {
    let Some(cat) = &s.catalogue else {
        return unavailable();
    };
    match cat.sku(&sku) {
        Some(info) => HttpResponse::Ok().json(view(&info)),
        None => error(
            StatusCode::NOT_FOUND,
            format!("SKU {sku} is in no connected shop's catalogue (yet)"),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct SyncQuery {
    shop: Option<String>,
}

async fn sync(s: web::Data<AppState>, q: web::Query<SyncQuery>) -> HttpResponse {
    let (Some(cat), Some(shops)) = (&s.catalogue, &s.shops) else {
        return unavailable();
    };
    let targets = match &q.shop {
        Some(id) if shops.is_connected(id) => vec![id.clone()],
        Some(id) => return error(StatusCode::NOT_FOUND, format!("shop {id} is not connected")),
        None => shops.connected(),
    };
    let mut reports = Vec::new();
    for shop in targets {
        match cat.sync_shop(&shop).await {
            Ok(r) => reports.push(json!(r)),
            Err(e) => reports.push(json!({"shop_id": shop, "error": e.to_string()})),
        }
    }
    HttpResponse::Ok().json(json!({ "synced": reports }))
}
