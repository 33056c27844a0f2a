//! The HTTP surface: a thin layer over handles.
//!
//! - `GET /healthz` (the process lives), `GET /readyz` (recovery finished
//!   and the store takes writes),
//!   `GET /metrics` (Prometheus exposition);
//! - `POST /api/v1/events`: intake of an order event — the same durable
//!   path webhooks use: stored, then acknowledged;
//! - `GET /api/v1/orders/{id}`, `GET /api/v1/orders/{id}/audit`;
//! - `POST /api/v1/orders/{id}/actions/{action}`: operator interventions;
//! - `/api/v1/workflows…`: versions, validate, dry-run, save, reload
//!   ([`workflows`]);
//! - the web console at `/` and its live events ([`console`]), behind the
//!   gate in [`auth`] (bearer token, or session cookie plus CSRF token);
//! - `GET /api/v1/stats/lifecycle`: orders per lifecycle state;
//! - `GET /api/v1/about`: the version, and demo mode's time scale and
//!   simulator (`demo`, null outside demo mode);
//! - `/api/v1/inventory…`: stock ([`inventory`]);
//! - `/api/v1/push…`: the Web Push key and the devices subscribed to
//!   alerts ([`push`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod admin;
pub mod auth;
pub mod catalogue;
pub mod conn;
pub mod console;
pub mod inventory;
pub mod labels;
pub mod limits;
pub mod mappings;
pub mod people;
pub mod push;
pub mod shops;
pub mod workflows;

use actix_web::{web, HttpRequest, HttpResponse, Responder};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::actors::RuntimeHandle;
use crate::order::Order;
use crate::runtime::event::{EventKind, OrderEvent, Source};
use crate::runtime::intake::Intake;
use crate::runtime::Registry;
use crate::store::{OrderRecord, Store};
use crate::tiktok::dto::WireOrder;
use crate::tiktok::reasons::seller_can_cancel;
use crate::workflow::interpreter::State;
use crate::workflow::value::Data;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Connected shops (absent without a TikTok app configured).
    pub shops: Option<crate::shops::Shops>,
    /// The shops' products and SKUs (absent without a TikTok app).
    pub catalogue: Option<crate::catalogue::Catalogue>,
    pub intake: Intake,
    pub runtime: RuntimeHandle,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub ready: Arc<AtomicBool>,
    pub metrics: PrometheusHandle,
    /// How webhooks are verified; `None` when TikTok is not configured.
    pub webhook_auth: Option<WebhookAuth>,
    /// Per-shop pollers, for operator resyncs.
    pub pollers: Vec<crate::sync::poll::Poller>,
    pub admin_token: Option<crate::tiktok::Secret>,
    /// TikTok, for what the console offers (cancel reasons per market).
    pub gateway: Option<crate::tiktok::GatewayHandle>,
    pub jobs: admin::Jobs,
    /// The last console overview computed ([`admin::overview`]).
    pub overview: Arc<admin::OverviewCache>,
    pub at_risk_margin_s: i64,
    /// The fulfilment-time target the figures show.
    pub sla: crate::runtime::report::SlaConfig,
    /// Stock, for the inventory endpoints; `None` in daemons built without
    /// it.
    pub inventory: Option<crate::inventory::InventoryHandle>,
    /// Users, their sessions and API tokens.
    pub people: crate::people::People,
    /// Notification channels, and the devices subscribed to web push
    /// ([`push`]).
    pub notifier: crate::notify::Notifier,
    /// Wrong logins, per source and for the account.
    pub logins: Arc<auth::LoginLimiter>,
    /// The names this daemon answers to.
    pub hosts: Arc<auth::AllowedHosts>,
    /// Orders' labels and documents (absent in daemons built without
    /// fulfilment).
    pub labels: Option<crate::shipping::LabelBook>,
    /// Label providers' webhook secrets, for tracking webhooks.
    pub carrier_webhooks: labels::CarrierWebhooks,
    /// Which tenant this is and which shops it owns.
    pub tenant: Arc<crate::tenant::TenantConfig>,
    /// The store's folder (its documents; online backups).
    pub data_dir: std::path::PathBuf,
    /// Retention passes on demand (`POST /api/v1/admin/retention`).
    pub retention: crate::retention::Retention,
    /// Request body bounds ([`limits`]).
    pub limits: limits::Limits,
    /// Places for live-event streams; a client beyond them gets 503.
    pub live_slots: Arc<tokio::sync::Semaphore>,
    pub console: Arc<console::ConsoleConfig>,
    /// Cancelled first at shutdown, so long-lived streams (live events) end
    /// and the server can drain.
    pub closing: tokio_util::sync::CancellationToken,
    /// Demo mode: the simulator's time scale and address (`GET
    /// /api/v1/about`); `None` with TikTok configured.
    pub demo: Option<Arc<crate::demo::Info>>,
}

#[derive(Clone)]
pub struct WebhookAuth {
    pub app_key: String,
    pub app_secret: crate::tiktok::Secret,
    pub max_bytes: usize,
}

/// Every route, each behind the gate of its scope (see [`auth`]): open
/// health, readiness, metrics and webhooks (which read their body
/// themselves, to the webhook's own limit); the API under `/api/v1`
/// behind [`auth::gate_api`]; the console's pages (see [`console`]).
pub fn routes() -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_page))
            .route(
                "/webhooks/tiktok",
                web::post().to(crate::sync::webhook::receive),
            )
            // The tenant's own prefix, as an ingress routing
            // `/t/<tenant>/…` to its cell passes it on.
            .route(
                "/t/{tenant}/webhooks/tiktok",
                web::post().to(crate::sync::webhook::receive_for_tenant),
            )
            .route("/oauth/tiktok/callback", web::get().to(shops::callback))
            .route(
                "/webhooks/easypost",
                web::post().to(labels::easypost_webhook),
            )
            .route("/webhooks/shippo", web::post().to(labels::shippo_webhook))
            .service(
                web::scope("/api/v1")
                    .wrap(actix_web::middleware::from_fn(auth::gate_api))
                    .configure(api_routes)
                    .configure(admin::routes)
                    .configure(workflows::routes)
                    .configure(console::api_routes)
                    .configure(inventory::routes)
                    .configure(mappings::routes)
                    .configure(shops::routes)
                    .configure(labels::routes)
                    .configure(catalogue::routes)
                    .configure(people::routes)
                    .configure(push::routes),
            )
            .configure(console::routes);
    }
}

/// This module's part of the API, mounted under `/api/v1`.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::post().to(post_event))
        .route("/sync/resync", web::post().to(resync))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/orders/{id}/audit", web::get().to(get_audit))
        .route("/orders/{id}/cancel-reasons", web::get().to(cancel_reasons))
        .route("/audit/export", web::get().to(export_audit))
        .route("/orders/{id}/actions/{action}", web::post().to(post_action))
        .route("/about", web::get().to(about))
        .route("/stats/lifecycle", web::get().to(lifecycle_counts))
        .route("/webhooks/quarantine", web::get().to(quarantined_webhooks));
}

#[derive(Debug, Deserialize)]
pub struct QuarantineQuery {
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<usize>,
}

/// `GET /api/v1/webhooks/quarantine`: signed webhooks stored as received
/// and not acted on (see [`crate::sync::webhook`]), newest first.
async fn quarantined_webhooks(
    s: web::Data<AppState>,
    q: web::Query<QuarantineQuery>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    match s.store.quarantined(q.limit.unwrap_or(50).min(500)) {
        Ok(list) => HttpResponse::Ok().json(json!({ "webhooks": list })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A `limit` query parameter: `default` when absent or unreadable, kept
/// within 1..=`max`.
pub(crate) fn limit_of(
    q: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> usize {
    q.get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

pub(crate) fn error(
    status: actix_web::http::StatusCode,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}

/// Reads a JSON request body into `T`. Only an object is a request: serde
/// would also read an array as a struct's fields in order, so `["ops"]`
/// posted to an intervention would mean `{"by": "ops"}`.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err("the body must be a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

async fn healthz() -> impl Responder {
    HttpResponse::Ok().body("ok")
}

/// Ready once recovery finished and while the store takes writes: a full
/// disk or a failed store makes it 503 "degraded: …".
async fn readyz(s: web::Data<AppState>) -> impl Responder {
    if !s.ready.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().body("recovering");
    }
    match s.store.writable() {
        Ok(()) => {
            // Orders waiting to start are no reason to take this process
            // out of service (their events are stored; the waiting is the
            // point), but it says so.
            let b = s.intake.admission().backlog();
            if b.waiting == 0 && !b.over_budget {
                return HttpResponse::Ok().body("ready");
            }
            let now = s.runtime.shared.clock.now_ms();
            let oldest = b.oldest_ms.map_or(0, |t| (now - t).max(0) / 1000);
            let mut text = format!(
                "ready; backlog: {} orders waiting to start, the oldest for {oldest} s",
                b.waiting
            );
            if b.over_budget {
                text.push_str(&format!(
                    "; memory over budget ({} MiB resident)",
                    b.rss_bytes >> 20
                ));
            }
            HttpResponse::Ok().body(text)
        }
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("degraded: {e}")),
    }
}

async fn metrics_page(s: web::Data<AppState>) -> impl Responder {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(s.metrics.render())
}

/// `POST /api/v1/events`: an order snapshot in TikTok's shape, or a signal
/// for waiting workflows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// Deduplication key chosen by the sender.
    pub id: String,
    pub shop_id: String,
    #[serde(default)]
    pub order: Option<WireOrder>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub signal: Option<serde_json::Value>,
}

async fn post_event(s: web::Data<AppState>, http: HttpRequest, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if let Err(r) = auth::require(&http, crate::people::Role::Admin) {
        return r.into();
    }
    let req: EventRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed event: {e}")),
    };
    if req.id.is_empty() || req.id.len() > 256 {
        return error(StatusCode::BAD_REQUEST, "id must be 1-256 characters");
    }
    let now = s.runtime.shared.clock.now_ms();
    let (order_id, kind) = match (&req.order, &req.signal) {
        (Some(w), None) => match Order::from_wire(&req.shop_id, w) {
            Ok(o) => (o.id.clone(), EventKind::Snapshot(Box::new(o))),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad order: {e}")),
        },
        (None, Some(sig)) => match &req.order_id {
            Some(id) if !id.is_empty() => (id.clone(), EventKind::Signal(Data::from_json(sig))),
            _ => return error(StatusCode::BAD_REQUEST, "a signal needs order_id"),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of order or signal",
            )
        }
    };
    let ev = OrderEvent {
        id: req.id,
        order_id,
        shop_id: req.shop_id,
        source: Source::Api,
        received_ms: now,
        kind,
    };
    match s.intake.submit(ev).await {
        Ok(sub) => HttpResponse::Ok().json(json!({ "accepted": true, "duplicate": sub.duplicate })),
        Err(e) => {
            tracing::error!(error = %e, "Intake could not store an event");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the event; retry",
            )
        }
    }
}

/// The JSON view of a checkpoint.
pub fn order_view(rec: &OrderRecord, registry: &Registry) -> serde_json::Value {
    let inst = rec.instance.as_ref();
    let def = rec.workflow.as_deref().and_then(|k| registry.get(k).ok());
    let step = match (inst, &def) {
        (Some(i), Some(d)) if !i.is_terminal() => i.current_step(d).map(str::to_string),
        _ => None,
    };
    let (state, waiting) = match inst.map(|i| &i.state) {
        None => ("none".to_string(), serde_json::Value::Null),
        Some(st) => {
            let waiting = match st {
                State::Waiting { timer, due_ms }
                | State::Sleeping { timer, due_ms }
                | State::Backoff { timer, due_ms } => {
                    json!({"timer": format!("{:?}", timer.kind), "step": timer.step, "due_ms": due_ms})
                }
                State::AwaitingApproval {
                    due_ms, message, ..
                } => {
                    json!({"approval": message, "due_ms": due_ms})
                }
                _ => serde_json::Value::Null,
            };
            let name = match st {
                State::Done(t) => match t {
                    crate::workflow::interpreter::Terminal::Completed { outcome } => {
                        format!("completed:{outcome}")
                    }
                    crate::workflow::interpreter::Terminal::Failed { .. } => "failed".into(),
                    crate::workflow::interpreter::Terminal::Cancelled { .. } => "cancelled".into(),
                },
                other => crate::workflow::interpreter::state_name(other).to_string(),
            };
            (name, waiting)
        }
    };
    // The workflow drawn as a path: every step in order, done (entered and
    // left), current, or pending.
    let path = match (inst, &def) {
        (Some(i), Some(d)) => d
            .steps
            .iter()
            .enumerate()
            .map(|(n, st)| {
                let status = if !i.is_terminal() && n == i.pc as usize {
                    "current"
                } else if i.visits.get(&st.id).is_some_and(|v| *v > 0) {
                    "done"
                } else {
                    "pending"
                };
                json!({"step": st.id, "kind": st.kind.name(), "status": status})
            })
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    json!({
        "order_id": rec.order_id,
        "shop_id": rec.shop_id,
        "lifecycle": rec.lifecycle.as_str(),
        "tiktok_status": rec.order.as_ref().map(|o| o.status.as_str()),
        "workflow": rec.workflow,
        "path": path,
        "instance_state": state,
        "step": step,
        "waiting": waiting,
        "in_flight": rec.in_flight.iter().map(|e| json!({"action": e.action, "key": e.key, "attempt": e.attempt})).collect::<Vec<_>>(),
        "last_error": rec.last_error,
        "audit_seq": rec.audit_seq,
        "received_ms": rec.received_ms,
        "updated_ms": rec.updated_ms,
        "fulfillment_ms": rec.fulfillment_ms,
        "deadlines": rec.order.as_ref().map(|o| json!(o.deadlines)),
        "line_items": rec.order.as_ref().map(|o| json!(o.line_items)),
        "tags": rec.order.as_ref().map(|o| json!(o.tags)),
        "fulfillment_type": rec.order.as_ref().map(|o| o.fulfillment_type.as_str()),
        "returns": rec.returns,
        "shipping_type": rec.order.as_ref().map(|o| o.shipping_type.as_str()),
        "buyer": rec.order.as_ref().map(buyer_view),
        "payment": rec.order.as_ref().map(|o| json!({
            "currency": o.payment.currency,
            "total": o.payment.total_amount.to_string(),
            "sub_total": o.payment.sub_total.to_string(),
            "shipping_fee": o.payment.shipping_fee.to_string(),
            "tax": o.payment.tax.to_string(),
        })),
        "tiktok_tracking_number": rec.order.as_ref().and_then(|o| o.tracking_number.clone()),
        "cancel_request": rec
            .order
            .as_ref()
            .filter(|o| o.buyer_cancel_requested)
            .and_then(|o| o.cancel_request.as_ref())
            .map(|r| json!(r)),
    })
}

/// The buyer as TikTok gives them: name, email, message and the shipping
/// address. TikTok masks some fields (`J***n`, `(+1)213*****00`) until an
/// order may be shipped; each masked one is listed in `masked`, so the
/// console says so instead of showing stars as if they were the data.
fn buyer_view(o: &crate::order::Order) -> serde_json::Value {
    let a = o.recipient.as_ref();
    let field = |v: Option<&str>| v.unwrap_or("").to_string();
    let fields = [
        ("name", field(a.map(|a| a.name.as_str()))),
        ("phone_number", field(a.map(|a| a.phone_number.as_str()))),
        ("full_address", field(a.map(|a| a.full_address.as_str()))),
        ("address_line1", field(a.map(|a| a.address_line1.as_str()))),
        ("address_line2", field(a.map(|a| a.address_line2.as_str()))),
        ("postal_code", field(a.map(|a| a.postal_code.as_str()))),
        ("email", o.buyer_email.clone()),
    ];
    let masked: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| v.contains('*'))
        .map(|(k, _)| *k)
        .collect();
    let mut v = serde_json::Map::new();
    for (k, val) in &fields {
        v.insert((*k).to_string(), json!(val));
    }
    v.insert(
        "region_code".into(),
        json!(a.map(|a| a.region_code.as_str())),
    );
    v.insert("districts".into(), json!(a.map(|a| &a.districts)));
    v.insert("user_id".into(), json!(o.buyer_user_id));
    v.insert("message".into(), json!(o.buyer_message));
    v.insert("masked".into(), json!(masked));
    serde_json::Value::Object(v)
}

/// Interventions as a person sees them: a viewer is offered none, each
/// with the reason.
pub(crate) fn offers_for(
    who: &crate::people::Principal,
    offers: Vec<crate::runtime::interventions::Offer>,
) -> Vec<crate::runtime::interventions::Offer> {
    if who.role >= crate::people::Role::Operator {
        return offers;
    }
    offers
        .into_iter()
        .map(|mut o| {
            if o.allowed {
                o.allowed = false;
                o.why = format!("{} is a viewer: viewers cannot change anything", who.name);
            }
            o
        })
        .collect()
}

async fn get_order(
    s: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    match s.store.load_order(&path) {
        Ok(Some(rec)) => {
            let mut v = order_view(&rec, &s.registry);
            // What an operator may do now, and why not: the console and
            // the CLI show these as given.
            let def = rec.workflow.as_deref().and_then(|k| s.registry.get(k).ok());
            let resolve = |n: &str| admin::resolve_workflow(&s.registry, n);
            let cx = admin::intervention_context(&s, &rec, def.as_deref(), &resolve);
            v["interventions"] = json!(offers_for(
                &auth::principal(&req),
                crate::runtime::interventions::offers(&rec, &cx)
            ));
            // Names, variants and images of the line items, from the
            // catalogue.
            if let (Some(cat), Some(items)) = (&s.catalogue, v["line_items"].as_array_mut()) {
                for li in items {
                    if let Some(info) = li["sku_id"].as_str().and_then(|k| cat.sku(k)) {
                        li["variant"] = json!(info.variant);
                        li["image_url"] = json!(info.image_url);
                    }
                }
            }
            // Its label, documents to print and the parcel's scans.
            if let Some(book) = &s.labels {
                v["shipping"] = labels::shipping_view(book, &rec.order_id);
            }
            HttpResponse::Ok().json(v)
        }
        Ok(None) => match archived(&s, &path).await {
            Ok(Some((entry, line))) => {
                let mut v = order_view(&line.record, &s.registry);
                v["archived"] = json!({"at_ms": entry.archived_ms, "file": entry.file});
                // Nothing can be done to an archived order.
                v["interventions"] = json!([]);
                v["shipping"] = match &s.labels {
                    Some(book) => labels::archived_view(book, line.label.as_ref()),
                    None => serde_json::Value::Null,
                };
                HttpResponse::Ok().json(v)
            }
            Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {}", path.as_str())),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// An archived order read from its archive file (off the async workers).
async fn archived(
    s: &AppState,
    id: &str,
) -> Result<Option<(crate::store::Archived, crate::retention::Line)>, crate::retention::Error> {
    let (store, dir, id) = (s.store.clone(), s.data_dir.clone(), id.to_string());
    tokio::task::spawn_blocking(move || crate::retention::read(&store, &dir, &id))
        .await
        .map_err(|e| crate::retention::Error::Task(e.to_string()))?
}

async fn get_audit(s: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let rec = match s.store.load_order(&path) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return match archived(&s, &path).await {
                Ok(Some((_, line))) => HttpResponse::Ok().json(
                    line.audit
                        .into_iter()
                        .map(|e| json!({"seq": e.seq, "at_ms": e.at_ms, "source": e.source, "kind": e.kind, "detail": e.detail}))
                        .collect::<Vec<_>>(),
                ),
                Ok(None) => error(StatusCode::NOT_FOUND, format!("no order {}", path.as_str())),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match s.store.audit(&path) {
        // Entries past the checkpoint belong to a step whose checkpoint never
        // landed (a crash mid-batch); they are not history.
        Ok(entries) => HttpResponse::Ok().json(
            entries
                .into_iter()
                .filter(|e| e.seq <= rec.audit_seq)
                .map(|e| json!({"seq": e.seq, "at_ms": e.at_ms, "source": e.source, "kind": e.kind, "detail": e.detail}))
                .collect::<Vec<_>>(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The cancel reasons TikTok takes for this order now (its shop's market,
/// its status): what the console's and CLI's cancel offers.
async fn cancel_reasons(s: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let rec = match s.store.load_order(&id) {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no order {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(order) = rec.order.as_ref() else {
        return HttpResponse::Ok().json(json!({
            "order_id": rec.order_id, "cancellable_on_tiktok": false, "reasons": [],
            "why": "the order has not been fetched from TikTok yet",
        }));
    };
    if !seller_can_cancel(&order.status) {
        return HttpResponse::Ok().json(json!({
            "order_id": rec.order_id, "status": order.status.as_str(),
            "cancellable_on_tiktok": false, "reasons": [],
            "why": format!("TikTok takes no seller cancellation in status {}", order.status),
        }));
    }
    let Some(g) = s.gateway.as_ref().filter(|g| g.knows_shop(&rec.shop_id)) else {
        return HttpResponse::Ok().json(json!({
            "order_id": rec.order_id, "status": order.status.as_str(),
            "cancellable_on_tiktok": false, "reasons": [],
            "why": format!("shop {} is not configured, so TikTok cannot be told", rec.shop_id),
        }));
    };
    match g.market(&rec.shop_id).await {
        Ok(market) => HttpResponse::Ok().json(json!({
            "order_id": rec.order_id, "status": order.status.as_str(), "market": market,
            "cancellable_on_tiktok": true,
            "reasons": crate::tiktok::reasons::seller_cancel_reasons(market, &order.status),
        })),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn post_action(
    s: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (id, name) = path.into_inner();
    let mut args: admin::ActionArgs = if body.is_empty() {
        admin::ActionArgs::default()
    } else {
        match json_body(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
        }
    };
    // A person acts as themself, whatever the body says.
    let by = auth::principal(&req).actor(args.by.as_deref());
    args.by = Some(by.clone());
    let new_label = args.new_label;
    let result = match admin::parse_action(&name, args) {
        Ok(action) => admin::intervene_with(&s, &id, action, new_label, &by).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            HttpResponse::Accepted().json(json!({"accepted": true, "order_id": id, "action": name}))
        }
        Err(e) => HttpResponse::build(e.status()).json(e.body()),
    }
}

/// `GET /api/v1/about`: this daemon's version, and in demo mode the
/// simulated TikTok's time scale and address (the console's DEMO banner).
async fn about(s: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "demo": s.demo.as_deref(),
    }))
}

async fn lifecycle_counts(s: web::Data<AppState>) -> HttpResponse {
    // The counters kept with the checkpoints: no order is read.
    match crate::store::index::by_lifecycle(&s.store.trees.orders) {
        Ok(counts) => {
            let total: u64 = counts.values().sum();
            HttpResponse::Ok().json(json!({ "total": total, "by_lifecycle": counts }))
        }
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequest {
    pub shop_id: String,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive; now when absent.
    #[serde(default)]
    pub to: Option<i64>,
}

/// `POST /api/v1/sync/resync`: fetch every order updated in a time range
/// again and apply what changed.
async fn resync(s: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    let req: ResyncRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let Some(p) = s.pollers.first() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TikTok sync is not configured",
        );
    };
    match p.poll_range(&req.shop_id, req.from, req.to).await {
        Ok((fresh, latest)) => {
            HttpResponse::Ok().json(json!({"changed": fresh, "latest_update_time": latest}))
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// One order; every order when absent.
    pub order_id: Option<String>,
    /// Only entries at or after (Unix ms).
    pub since: Option<i64>,
}

/// Lines gathered before a chunk of the export is handed to the client.
const EXPORT_CHUNK_BYTES: usize = 64 << 10;

/// `GET /api/v1/audit/export`: the audit trail as JSON lines
/// (`application/x-ndjson`), one entry per line with its order id.
///
/// Streamed: a blocking task walks the orders and hands chunks of about
/// 64 KiB through a channel of four, so the export of any store costs a
/// few chunks of memory and no HTTP worker waits on the walk; a client
/// that stops reading stops the walk.
async fn export_audit(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    q: web::Query<ExportQuery>,
) -> HttpResponse {
    // Busy while the stream lasts (see [`conn`]).
    let busy = req
        .conn_data::<conn::ConnGuard>()
        .map(conn::ConnGuard::busy);
    let (tx, rx) = tokio::sync::mpsc::channel::<web::Bytes>(4);
    let store = s.store.clone();
    let q = q.into_inner();
    tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let send = |out: &mut String| -> bool {
            let chunk = web::Bytes::from(std::mem::take(out));
            tx.blocking_send(chunk).is_ok()
        };
        let one = q.order_id.clone();
        // Since a time: only the orders updated since (their entries
        // since then are a subset), from the updated-hour index.
        let ids: Box<dyn Iterator<Item = String>> = match (one, q.since) {
            (Some(id), _) => Box::new(std::iter::once(id)),
            (None, Some(t)) => match crate::store::index::in_hours(
                &store.trees.orders,
                crate::store::index::When::Updated,
                Some(t),
                None,
            ) {
                Ok(mut ids) => {
                    ids.sort();
                    Box::new(ids.into_iter())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "The audit export could not read the updated index");
                    return;
                }
            },
            (None, None) => Box::new(store.order_ids()),
        };
        for id in ids {
            let Ok(Some(rec)) = store.load_order(&id) else {
                continue;
            };
            let Ok(entries) = store.audit(&id) else {
                continue;
            };
            for e in entries.into_iter().filter(|e| e.seq <= rec.audit_seq) {
                if q.since.is_some_and(|t| e.at_ms < t) {
                    continue;
                }
                let line = json!({"order_id": id, "seq": e.seq, "at_ms": e.at_ms, "source": e.source, "kind": e.kind, "detail": e.detail});
                out.push_str(&line.to_string());
                out.push('\n');
            }
            if out.len() >= EXPORT_CHUNK_BYTES && !send(&mut out) {
                return;
            }
        }
        if !out.is_empty() {
            send(&mut out);
        }
    });
    let stream = futures::stream::unfold((rx, busy), |(mut rx, busy)| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, actix_web::Error>(b), (rx, busy)))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream)
}
