//! Labels, documents and tracking over HTTP.
//!
//! Open (authenticated by the provider's own scheme, 401 otherwise):
//! - `POST /webhooks/easypost`: EasyPost events, `X-Hmac-Signature`.
//! - `POST /webhooks/shippo?token=…`: Shippo webhooks, the URL's token.
//!
//! Under `/api/v1` (the admin token or a console session):
//! - `GET /orders/{id}/label`: the order's label, its documents, scans and
//!   voided labels.
//! - `GET /orders/{id}/documents/{name}`: one document, as stored.
//! - `GET /labels/print?day=YYYY-MM-DD`: the day's carrier labels and TikTok
//!   documents (PDF) merged into one PDF, in purchase order (default:
//!   today, UTC). `X-Orderflow-Documents` says how many went in,
//!   `X-Orderflow-Skipped` how many were not PDFs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{error, AppState};
use crate::shipping::provider::ProviderKind;
use crate::shipping::tracking::{self, TRACKING_WEBHOOKS_TOTAL};
use crate::tiktok::Secret;

/// The providers' webhook secrets.
#[derive(Clone, Default)]
pub struct CarrierWebhooks {
    pub easypost: Secret,
    pub shippo: Secret,
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders/{id}/label", web::get().to(get_label))
        .route("/orders/{id}/documents/{name}", web::get().to(get_document))
        .route("/labels/print", web::get().to(print_day));
}

fn count(provider: ProviderKind, outcome: &'static str) {
    metrics::counter!(TRACKING_WEBHOOKS_TOTAL, "provider" => provider.as_str(), "outcome" => outcome)
        .increment(1);
}

pub(crate) async fn easypost_webhook(
    s: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let p = ProviderKind::Easypost;
    let sig = req
        .headers()
        .get("x-hmac-signature")
        .and_then(|v| v.to_str().ok());
    if !crate::shipping::easypost::verify_signature(
        s.carrier_webhooks.easypost.expose(),
        &body,
        sig,
    ) {
        count(p, "unauthorized");
        return error(StatusCode::UNAUTHORIZED, "bad or missing X-Hmac-Signature");
    }
    take(&s, p, &body).await
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

pub(crate) async fn shippo_webhook(
    s: web::Data<AppState>,
    q: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let p = ProviderKind::Shippo;
    if !crate::shipping::shippo::verify_token(
        s.carrier_webhooks.shippo.expose(),
        q.token.as_deref(),
    ) {
        count(p, "unauthorized");
        return error(StatusCode::UNAUTHORIZED, "bad or missing token");
    }
    take(&s, p, &body).await
}

/// A verified tracking webhook: recorded with the label and given to the
/// order as a `scan` event. Anything verified is acknowledged (the
/// provider would only retry it): what cannot be read or matched is
/// counted and logged.
async fn take(s: &AppState, p: ProviderKind, body: &[u8]) -> HttpResponse {
    let Some(book) = &s.labels else {
        count(p, "unknown_parcel");
        return HttpResponse::Ok().json(json!({ "ok": true }));
    };
    let scan = match tracking::parse_webhook(p, body) {
        Ok(Some(scan)) => scan,
        Ok(None) => {
            count(p, "ignored");
            return HttpResponse::Ok().json(json!({ "ok": true }));
        }
        Err(e) => {
            count(p, "unreadable");
            tracing::warn!(provider = %p, error = %e, "A verified tracking webhook could not be read; acknowledged");
            return HttpResponse::Ok().json(json!({ "ok": true }));
        }
    };
    match tracking::take(book, &s.intake, &scan, s.runtime.shared.clock.now_ms()).await {
        Ok(Some(_)) => count(p, "applied"),
        Ok(None) => count(p, "unknown_parcel"),
        Err(e) => {
            tracing::error!(provider = %p, tracking_number = %scan.tracking_number, error = %e, "Could not store a tracking update; the provider retries");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the update; retry",
            );
        }
    }
    HttpResponse::Ok().json(json!({ "ok": true }))
}

/// The order's label as the order view shows it (null without one).
pub(crate) fn shipping_view(
    book: &crate::shipping::LabelBook,
    order_id: &str,
) -> serde_json::Value {
    match book.load(order_id) {
        Ok(Some(e)) => label_json(book, &e),
        _ => serde_json::Value::Null,
    }
}

/// The shipping view of a label record read back from an archive line.
pub(crate) fn archived_view(
    book: &crate::shipping::LabelBook,
    label: Option<&serde_json::Value>,
) -> serde_json::Value {
    label
        .and_then(|v| serde_json::from_value::<crate::shipping::book::Entry>(v.clone()).ok())
        .map_or(serde_json::Value::Null, |e| label_json(book, &e))
}

fn label_json(
    book: &crate::shipping::LabelBook,
    e: &crate::shipping::book::Entry,
) -> serde_json::Value {
    json!({
            "order_id": e.order_id,
            "generation": e.generation,
            "label": e.label(),
            "state": match &e.state {
                crate::shipping::book::State::Empty => "none",
                crate::shipping::book::State::Started { .. } => "purchase_started",
                crate::shipping::book::State::Bought(_) => "bought",
            },
            "renew_requested": e.renew,
            "documents": e.documents.iter().map(|d| json!({
                "name": d.name,
                "kind": d.kind,
                "content_type": d.content_type,
                "bytes": d.bytes,
                "label_id": d.label_id,
                "created_ms": d.created_ms,
                "url": format!("/api/v1/orders/{}/documents/{}", e.order_id, d.name),
            })).collect::<Vec<_>>(),
            "scans": book.scans(&e.order_id).unwrap_or_default(),
            "voided": e.voided,
    })
}

async fn get_label(s: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let Some(book) = &s.labels else {
        return error(StatusCode::NOT_FOUND, "this daemon keeps no labels");
    };
    match book.load(&id) {
        Ok(Some(e)) => HttpResponse::Ok().json(label_json(book, &e)),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("order {id} has no label")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_document(s: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (id, name) = path.into_inner();
    let Some(book) = &s.labels else {
        return error(StatusCode::NOT_FOUND, "this daemon keeps no documents");
    };
    let (doc, file) = match book.document_path(&id, &name) {
        Ok(Some(x)) => x,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("order {id} has no document {name}"),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(doc.content_type)
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"{id}-{}\"", doc.name),
            ))
            .body(bytes),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("document {name} of order {id} is recorded but cannot be read: {e}"),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct DayQuery {
    day: Option<String>,
}

async fn print_day(s: web::Data<AppState>, q: web::Query<DayQuery>) -> HttpResponse {
    let Some(book) = s.labels.clone() else {
        return error(StatusCode::NOT_FOUND, "this daemon keeps no labels");
    };
    let day = match &q.day {
        Some(d) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() => d.clone(),
        Some(d) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("day {d:?} is not YYYY-MM-DD"),
            )
        }
        None => crate::shipping::book::day_of(s.runtime.shared.clock.now_ms()),
    };
    // Reading files and merging is blocking work: off the HTTP workers.
    let r = tokio::task::spawn_blocking(
        move || -> Result<(Vec<u8>, usize, usize), crate::shipping::Error> {
            let mut pdfs = Vec::new();
            let mut skipped = 0usize;
            for order in book.bought_on(&day)? {
                let Some(e) = book.load(&order)? else {
                    continue;
                };
                let Some(l) = e.label() else { continue };
                for d in e.documents.iter().filter(|d| d.label_id == l.label_id) {
                    if d.content_type != "application/pdf" {
                        skipped += 1;
                        continue;
                    }
                    let path = book.folder(&order)?.join(&d.name);
                    pdfs.push(std::fs::read(path).map_err(crate::shipping::Error::Io)?);
                }
            }
            let n = pdfs.len();
            Ok((crate::shipping::documents::merge(&pdfs)?, n, skipped))
        },
    )
    .await;
    match r {
        Ok(Ok((pdf, n, skipped))) => HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header(("X-Orderflow-Documents", n.to_string()))
            .insert_header(("X-Orderflow-Skipped", skipped.to_string()))
            .insert_header((
                "Content-Disposition",
                "inline; filename=\"labels.pdf\"".to_string(),
            ))
            .body(pdf),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
