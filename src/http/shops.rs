//! Shops over HTTP: connect through TikTok's seller authorization, list,
//! disconnect, reconnect.
//!
//! Under `/api/v1` (admin token or console session):
//! - `GET /shops`: every shop with its status, where its tokens came from
//!   and when they expire, last call, last webhook, orders today, and the
//!   webhook subscription;
//! - `POST /shops/connect`: `{}` gives an authorization link with a fresh
//!   one-time `state`; `{code}` exchanges a code pasted by an operator (a
//!   headless VM) and connects the shops it covers;
//! - `POST /shops/{id}/disconnect`, `POST /shops/{id}/reconnect`.
//!
//! Outside it, for the seller's browser: `GET /oauth/tiktok/callback?code=…&state=…`,
//! TikTok's redirect after an authorization, checked by its `state`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{error, AppState};
use crate::shops::records::TokenSource;
use crate::shops::{Error, Shops};

/// Mounted under `/api/v1`, behind [`super::auth::gate_api`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/shops", web::get().to(list))
        .route("/shops/connect", web::post().to(connect))
        .route("/shops/{id}/{op}", web::post().to(lifecycle));
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BadState | Error::Denied(_) | Error::NoShops => StatusCode::BAD_REQUEST,
        Error::UnknownShop(_) => StatusCode::NOT_FOUND,
        Error::NoServiceId | Error::NeedsAuthorization { .. } => StatusCode::CONFLICT,
        Error::Tiktok(_) => StatusCode::BAD_GATEWAY,
        Error::Store(_) | Error::Codec(_) | Error::Secrets(_) | Error::PublicUrl { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn failed(e: Error) -> HttpResponse {
    error(status_of(&e), e.to_string())
}

fn no_app() -> HttpResponse {
    error(
        StatusCode::CONFLICT,
        "no TikTok app is configured: set [tiktok] app_key and app_secret (Partner Center → your app) to connect shops",
    )
}

async fn list(s: web::Data<AppState>) -> HttpResponse {
    let Some(shops) = &s.shops else {
        return no_app();
    };
    match shops.list() {
        Ok(list) => HttpResponse::Ok().json(json!({
            "shops": list,
            "webhook_address": shops.webhook_address(),
            "webhooks": match shops.webhook_address() {
                Some(a) => format!("connected shops are subscribed to {a}"),
                None => "server.public_url is not set: webhooks are not subscribed; polling keeps orders in sync".into(),
            },
        })),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConnectBody {
    /// An authorization code copied from the redirect address.
    code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ByBody {
    by: Option<String>,
}

/// Connects what an authorization gave, then delivers the webhooks kept
/// while those shops were not connected.
async fn complete(
    s: &AppState,
    shops: &Shops,
    code: &str,
    state: Option<&str>,
    source: TokenSource,
) -> Result<serde_json::Value, Error> {
    let connected = shops.complete(code, state, source).await?;
    let mut out = Vec::new();
    for rec in &connected {
        let replayed = match crate::sync::webhook::replay_waiting(s, &rec.id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(shop_id = %rec.id, error = %e, "Could not replay the webhooks kept for the shop; the inbox sweep and polling catch up");
                0
            }
        };
        out.push(json!({
            "id": rec.id, "name": rec.name, "region": rec.region,
            "status": rec.status.as_str(), "replayed_webhooks": replayed,
        }));
    }
    Ok(json!({ "connected": out }))
}

async fn connect(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(r) = super::auth::require(&req, crate::people::Role::Admin) {
        return r.into();
    }
    let Some(shops) = &s.shops else {
        return no_app();
    };
    let req: ConnectBody = if body.trim_ascii().is_empty() {
        ConnectBody::default()
    } else {
        match super::json_body(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    };
    match req.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => match shops.authorize_link().await {
            Ok(link) => HttpResponse::Ok().json(json!({
                "url": link.url,
                "state": link.state,
                "expires_ms": link.expires_ms,
                "callback": "/oauth/tiktok/callback",
            })),
            Err(e) => failed(e),
        },
        Some(code) => match complete(&s, shops, code, None, TokenSource::Code).await {
            Ok(v) => HttpResponse::Ok().json(v),
            Err(e) => failed(e),
        },
    }
}

/// Who acts (`{"by": …}`, optional): "operator" when not said.
fn by_of(body: &[u8]) -> Option<String> {
    if body.trim_ascii().is_empty() {
        return Some("operator".into());
    }
    super::json_body::<ByBody>(body)
        .ok()
        .map(|b| b.by.unwrap_or_else(|| "operator".into()))
}

/// `POST /shops/{id}/disconnect` and `POST /shops/{id}/reconnect`.
async fn lifecycle(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let who = match super::auth::require(&req, crate::people::Role::Admin) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let (id, op) = path.into_inner();
    let Some(shops) = &s.shops else {
        return no_app();
    };
    let Some(by) = by_of(&body).map(|b| who.actor(Some(&b))) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be empty or a JSON object like {\"by\": \"name\"}",
        );
    };
    let done = match op.as_str() {
        "disconnect" => shops.disconnect(&id, &by).await,
        "reconnect" => shops.reconnect(&id, &by).await,
        _ => return error(StatusCode::NOT_FOUND, "no such shop action"),
    };
    match done {
        Ok(rec) => {
            let replayed = if op == "reconnect" {
                crate::sync::webhook::replay_waiting(&s, &rec.id)
                    .await
                    .unwrap_or(0)
            } else {
                0
            };
            HttpResponse::Ok().json(json!({
                "id": rec.id, "status": rec.status.as_str(), "reason": rec.status_reason,
                "replayed_webhooks": replayed,
            }))
        }
        Err(e @ Error::NeedsAuthorization { .. }) => {
            let link = shops.authorize_link().await.ok().map(|l| l.url);
            HttpResponse::Conflict().json(json!({"error": e.to_string(), "link": link}))
        }
        Err(e) => failed(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t} · orderflow</title></head><body><main><h1>{t}</h1><p id=\"result\">{x}</p><p><a href=\"/#/shops\">Shops</a></p></main></body></html>",
            t = esc(title),
            x = esc(text)
        ))
}

/// `GET /oauth/tiktok/callback`: where TikTok sends the seller's browser
/// after an authorization. Any `error`, or `code=null`, is a refusal.
pub async fn callback(s: web::Data<AppState>, q: web::Query<Callback>) -> HttpResponse {
    let Some(shops) = &s.shops else {
        return page(
            StatusCode::CONFLICT,
            "Not connected",
            "No TikTok app is configured in this orderflow.",
        );
    };
    let code = q.code.as_deref().unwrap_or("");
    if let Some(e) = q.error.as_deref().filter(|e| !e.is_empty()) {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            &format!("TikTok did not authorize the app ({e})."),
        );
    }
    let Some(state) = q.state.as_deref() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "The link had no state. Start again with `orderflow shops connect` or the Shops page, or paste the code with `orderflow shops connect --code`.",
        );
    };
    match complete(&s, shops, code, Some(state), TokenSource::Callback).await {
        Ok(v) => {
            let names: Vec<String> = v["connected"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} ({})",
                        c["name"].as_str().unwrap_or_default(),
                        c["id"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            page(
                StatusCode::OK,
                "Shop connected",
                &format!(
                    "Connected: {}. Orders flow now; you can close this window.",
                    names.join(", ")
                ),
            )
        }
        Err(e) => page(status_of(&e), "Not connected", &e.to_string()),
    }
}
