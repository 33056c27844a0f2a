//! Web Push over HTTP (`/api/v1/push…`): what the console needs to
//! subscribe a browser to a web_push channel (see [`crate::notify::push`]).
//!
//! - `GET /api/v1/push/key`: `{key, channels}`, the VAPID public key
//!   (base64url, the uncompressed P-256 point) browsers subscribe with,
//!   and the web_push channels the configuration defines.
//! - `POST /api/v1/push/subscriptions` `{channel, subscription: {endpoint,
//!   keys: {p256dh, auth}}}` (`subscription` as `PushSubscription.toJSON()`
//!   gives it): 201 for a new device, 200 when the device was there (its
//!   keys replaced); 400 for a subscription that does not hold, 404 for a
//!   channel that is not a web_push channel, 409 when the channel is full.
//! - `DELETE /api/v1/push/subscriptions` `{endpoint, channel?}`: the device
//!   leaves the channel (every channel without one): `{removed}`.
//!
//! Anyone signed in may subscribe a device, viewers included (an alert
//! changes nothing; see [`super::auth`]); the subscription records who.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::principal;
use super::{error, json_body, AppState};
use crate::notify::push::{Error, SubscriptionJson};
use crate::notify::Kind;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/push/key", web::get().to(key))
        .route("/push/subscriptions", web::post().to(subscribe))
        .route("/push/subscriptions", web::delete().to(unsubscribe));
}

fn status(e: &Error) -> StatusCode {
    match e {
        Error::BadEndpoint | Error::BadP256dh | Error::BadAuth | Error::BadVapidKey => {
            StatusCode::BAD_REQUEST
        }
        Error::Full(_) => StatusCode::CONFLICT,
        Error::Store(crate::store::Error::DiskFull { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Encrypt(_) | Error::Sign(_) | Error::Store(_) | Error::Codec(_) | Error::Sled(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn unavailable() -> HttpResponse {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "web push is not set up in this daemon",
    )
}

/// Why `channel` is not a web_push channel of the configuration, as the
/// answer; None when it is one.
fn not_push_channel(s: &AppState, channel: &str) -> Option<HttpResponse> {
    match s.notifier.channel_kind(channel) {
        Some(Kind::WebPush) => None,
        Some(k) => Some(error(
            StatusCode::NOT_FOUND,
            format!(
                "channel {channel:?} is a {} channel, not web_push",
                k.as_str()
            ),
        )),
        None => Some(error(
            StatusCode::NOT_FOUND,
            format!(
                "no web_push channel {channel:?} in the configuration (web_push channels: {})",
                s.notifier.config().push_channels().join(", ")
            ),
        )),
    }
}

async fn key(s: web::Data<AppState>) -> HttpResponse {
    let Some(book) = s.notifier.push() else {
        return unavailable();
    };
    HttpResponse::Ok().json(json!({
        "key": book.key().public_key(),
        "channels": s.notifier.config().push_channels(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    channel: String,
    subscription: SubscriptionJson,
}

async fn subscribe(s: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let b: Subscribe = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    if let Some(r) = not_push_channel(&s, &b.channel) {
        return r;
    }
    let Some(book) = s.notifier.push() else {
        return unavailable();
    };
    let who = principal(&req);
    match book.subscribe(&b.channel, &b.subscription, &who.name).await {
        Ok(new) => {
            tracing::info!(channel = %b.channel, by = %who.name, new, "A device subscribed to web push");
            let code = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            HttpResponse::build(code).json(json!({
                "channel": b.channel,
                "subscribed": true,
                "new": new,
            }))
        }
        Err(e) => error(status(&e), e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsubscribe {
    endpoint: String,
    channel: Option<String>,
}

async fn unsubscribe(s: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let b: Unsubscribe = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let Some(book) = s.notifier.push() else {
        return unavailable();
    };
    match book.unsubscribe(b.channel.as_deref(), &b.endpoint).await {
        Ok(n) => HttpResponse::Ok().json(json!({ "removed": n })),
        Err(e) => error(status(&e), e.to_string()),
    }
}
