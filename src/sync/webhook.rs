//! `POST /webhooks/tiktok`: TikTok's pushes.
//!
//! Verified first (`Authorization` = hex HMAC-SHA256(app_secret, app_key +
//! raw body), constant time): a bad or missing signature gets 401 with an
//! empty body and is counted. TikTok accepts only 200 or 401, so every
//! correctly signed body that can be stored gets 200: a malformed body, a
//! known topic whose data we cannot read, an unknown topic and a topic we
//! read but do not act on yet are stored as received in the quarantine
//! (once per notification, counted, alerted on). A webhook of a shop that is
//! not connected is kept the same way, marked as waiting for the shop, and
//! replayed ([`replay_waiting`]) when the shop is connected; one alert per
//! shop. Deauthorization (type 6) stops the shop's calls; an authorization
//! about to expire (type 7) is alerted with a link. Order notifications are
//! stored in the inbox — deduplicated on (shop, `tts_notification_id`), or
//! (order, status, update time) where the id is absent — and only then
//! answered 200 with an empty body. If it cannot be stored, 503: TikTok
//! retries.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::AppState;
use crate::runtime::event::{EventKind, OrderEvent, Source};
use crate::tiktok::webhook::{self, Topic};

use crate::metrics::WEBHOOKS_TOTAL;

/// Topics whose data orderflow reads; an unreadable shape of one of these
/// is malformed, not "other".
const KNOWN: [i64; 10] = [1, 3, 4, 5, 6, 7, 11, 12, 15, 16];

fn count(result: &'static str) {
    metrics::counter!(WEBHOOKS_TOTAL, "result" => result).increment(1);
}

pub async fn receive(
    s: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(auth) = &s.webhook_auth else {
        return HttpResponse::ServiceUnavailable().finish();
    };
    // Refused from its Content-Length, or while it streams, before more
    // than the limit is buffered.
    let body = match crate::http::limits::read_limited(&req, payload, auth.max_bytes).await {
        Ok(b) => b,
        Err(crate::http::limits::Error::TooLarge { .. }) => {
            count("too_large");
            return HttpResponse::PayloadTooLarge().finish();
        }
        Err(crate::http::limits::Error::Read(e)) => {
            count("unreadable");
            tracing::debug!(error = %e, "A webhook's body could not be read");
            return HttpResponse::BadRequest().finish();
        }
    };
    let signature = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if signature.is_empty()
        || !webhook::verify_signature(&auth.app_key, auth.app_secret.expose(), &body, signature)
    {
        count("bad_signature");
        // Counted, not logged at warn: anyone can send these.
        tracing::debug!("Webhook with a bad or missing signature refused");
        return HttpResponse::Unauthorized().finish();
    }
    let now = s.runtime.shared.clock.now_ms();
    match handle(&s, &body, now, false).await {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(err) => {
            tracing::error!(error = %err, "Could not store a webhook; answering 503 so TikTok retries");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}

/// `POST /t/{tenant}/webhooks/tiktok`: the same, under this tenant's
/// path prefix; another tenant's prefix is not served here (404).
pub async fn receive_for_tenant(
    s: web::Data<AppState>,
    tenant: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if tenant.as_str() != s.tenant.id {
        return HttpResponse::NotFound().finish();
    }
    receive(s, req, payload).await
}

/// Delivers the webhooks kept while `shop` was not connected, oldest
/// first (after it connects). Deauthorization and expiry notices are not
/// replayed: they described the shop's past. Returns how many were
/// delivered.
pub async fn replay_waiting(s: &AppState, shop: &str) -> Result<usize, Failed> {
    let waiting = s.store.waiting_for_shop(shop)?;
    let mut n = 0;
    for (key, entry) in waiting {
        // Disconnected meanwhile: the rest waits for the next connect.
        if s.shops.as_ref().is_some_and(|x| !x.is_connected(shop)) {
            break;
        }
        let now = s.runtime.shared.clock.now_ms();
        handle(s, entry.body.as_bytes(), now, true).await?;
        s.store.replayed(key).await?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(shop_id = %shop, webhooks = n, "Replayed the webhooks kept while the shop was not connected");
        count_n("replayed", n as u64);
    }
    Ok(n)
}

/// A webhook could not be stored or handed to intake: TikTok must retry.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Intake(#[from] crate::runtime::Error),
}

fn count_n(result: &'static str, n: u64) {
    metrics::counter!(WEBHOOKS_TOTAL, "result" => result).increment(n);
}

/// What a correctly signed body leads to. `replaying`: it was kept while
/// its shop was not connected and is delivered now.
async fn handle(s: &AppState, body: &[u8], now: i64, replaying: bool) -> Result<(), Failed> {
    let event = match webhook::parse(body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "A signed webhook that is not a webhook envelope: stored in the quarantine");
            return quarantine(s, body, "malformed", None, now).await;
        }
    };
    if let Topic::Other { kind, .. } = &event.topic {
        let reason = if KNOWN.contains(kind) {
            tracing::warn!(
                kind,
                "A signed webhook of a known topic with a shape we cannot read: stored in the quarantine"
            );
            "unreadable"
        } else {
            "unknown_topic"
        };
        return quarantine(s, body, reason, Some(&event), now).await;
    }
    let shop = event.shop_id.clone();
    // Another tenant's shop: acknowledged (TikTok must not retry it here)
    // and dropped, never work for this process.
    if !s.tenant.owns(&shop) {
        count("foreign_shop");
        metrics::counter!(crate::tenant::FOREIGN_TOTAL, "source" => "webhook").increment(1);
        tracing::debug!(shop_id = %shop, "A webhook for a shop another tenant owns: dropped");
        return Ok(());
    }
    if let Some(shops) = &s.shops {
        if !shops.is_connected(&shop) {
            return hold_for_shop(s, shops, body, &event, now).await;
        }
    }
    let mk_kind = |order_id: &str, key: String, kind: EventKind| OrderEvent {
        id: event.notification_id.clone().unwrap_or(key),
        order_id: order_id.to_string(),
        shop_id: shop.clone(),
        source: Source::Webhook,
        received_ms: now,
        kind,
    };
    let mk = |order_id: &str, key: String, reason: String| {
        mk_kind(order_id, key, EventKind::Refresh { reason })
    };
    let events: Vec<OrderEvent> = match &event.topic {
        Topic::OrderStatusChange(d) => vec![mk_kind(
            &d.order_id,
            format!("{}:{}:{}", d.order_id, d.order_status, d.update_time),
            EventKind::status_webhook(&d.order_status),
        )],
        Topic::RecipientAddressUpdate(d) => vec![mk(
            &d.order_id,
            format!("{}:address:{}", d.order_id, d.update_time),
            "webhook: recipient address updated".into(),
        )],
        Topic::PackageUpdate(d) => d
            .package_list
            .iter()
            .flat_map(|p| p.order_id_list.iter().map(move |o| (o, &p.package_id)))
            .map(|(o, pkg)| {
                let mut e = mk(
                    o,
                    format!("{o}:package:{pkg}:{}:{}", d.sc_type, d.update_time),
                    format!("webhook: package {pkg} {}", d.sc_type),
                );
                // One push can name several orders: each gets its own id.
                e.id = format!("{}:{o}", e.id);
                e
            })
            .collect(),
        Topic::CancellationStatusChange(d) => vec![mk(
            &d.order_id,
            format!(
                "{}:cancel:{}:{}",
                d.order_id, d.cancel_status, d.create_time
            ),
            format!("webhook: cancellation {}", d.cancel_status),
        )],
        Topic::ReturnStatusChange(d) => {
            let mut e = mk(
                &d.order_id,
                format!(
                    "{}:return:{}:{}",
                    d.order_id, d.return_status, d.update_time
                ),
                String::new(),
            );
            e.kind = EventKind::Return(crate::runtime::event::ReturnUpdate {
                return_id: d.return_id.clone().unwrap_or_default(),
                return_type: d.return_type.clone().unwrap_or_default(),
                return_status: d.return_status.clone(),
                role: d.return_role.clone().unwrap_or_default(),
                update_time: d.update_time.max(d.create_time),
                reason: String::new(),
                reason_text: String::new(),
                respond_by: None,
            });
            vec![e]
        }
        Topic::SellerDeauthorization(n) => {
            if replaying {
                return Ok(());
            }
            count("deauthorized");
            tracing::error!(shop_id = %shop, message = %n.message, "TikTok says the seller deauthorized this app: calls for the shop stop until it is authorized again");
            if let Some(shops) = &s.shops {
                // In the background: it may wait for another status change
                // of the shop, and TikTok must get its answer first (the
                // push is kept below; the next call's 105001 says it too).
                let (shops, shop, message) = (shops.clone(), shop.clone(), n.message.clone());
                actix::spawn(async move {
                    if let Err(e) = shops.deauthorized(&shop, &message).await {
                        tracing::error!(shop_id = %shop, error = %e, "Could not record the deauthorization");
                    }
                });
            }
            return quarantine(s, body, "handled", Some(&event), now).await;
        }
        Topic::UpcomingAuthorizationExpiration(n) => {
            if replaying {
                return Ok(());
            }
            count("authorization_expiring");
            tracing::warn!(shop_id = %shop, message = %n.message, expiration_time = ?n.expiration_time, "The shop's authorization expires soon; the seller must authorize again");
            if let Some(shops) = &s.shops {
                let at = n.expiration_time;
                let shops = shops.clone();
                let shop = shop.clone();
                // The alert goes out after TikTok has its answer.
                actix::spawn(async move { shops.expiring(&shop, at).await });
            }
            return quarantine(s, body, "handled", Some(&event), now).await;
        }
        Topic::ProductStatusChange(crate::tiktok::webhook::ProductStatusChange {
            product_id,
            ..
        })
        | Topic::ProductChange(crate::tiktok::webhook::ProductChange { product_id, .. }) => {
            if replaying {
                return Ok(());
            }
            count("product");
            // The catalogue reads the product again (in the background:
            // TikTok has its answer first).
            if let Some(cat) = &s.catalogue {
                let (cat, shop, id) = (cat.clone(), shop.clone(), product_id.clone());
                actix::spawn(async move {
                    if let Err(e) = cat.refresh_product(&shop, &id).await {
                        tracing::warn!(shop_id = %shop, product_id = %id, error = %e, "Could not read a changed product; the next catalogue sync will");
                    }
                });
            }
            return quarantine(s, body, "handled", Some(&event), now).await;
        }
        Topic::Other { .. } => {
            count("ignored");
            tracing::debug!(shop_id = %shop, "Webhook kept and not acted on");
            return quarantine(s, body, "unhandled", Some(&event), now).await;
        }
    };
    for e in events {
        if let Some(shops) = &s.shops {
            shops.note_webhook(&shop, Some(&e.order_id), now);
        }
        let sub = s.intake.submit(e).await?;
        count(if sub.duplicate {
            "duplicate"
        } else {
            "accepted"
        });
    }
    Ok(())
}

/// A webhook for a shop orderflow does not talk to (never connected,
/// disconnected or deauthorized): 200 for TikTok, kept once in the
/// quarantine as waiting for the shop, one alert per shop, and replayed
/// by [`replay_waiting`] when the shop is connected.
async fn hold_for_shop(
    s: &AppState,
    shops: &crate::shops::Shops,
    body: &[u8],
    event: &webhook::WebhookEvent,
    now: i64,
) -> Result<(), Failed> {
    let (entry, once) = quarantine_entry(body, "shop_not_connected", Some(event), now);
    if s.store
        .quarantine_until_connected(&entry, &once, &event.shop_id)
        .await?
    {
        count("shop_not_connected");
        metrics::counter!(crate::metrics::WEBHOOKS_QUARANTINED_TOTAL, "reason" => "shop_not_connected")
            .increment(1);
        tracing::warn!(shop_id = %event.shop_id, "A webhook for a shop that is not connected: kept, and replayed once the shop is connected");
        shops.unconnected_webhook(&event.shop_id).await;
    } else {
        count("quarantined_duplicate");
    }
    Ok(())
}

/// Stores a signed webhook orderflow does not act on, as it came, once per
/// notification (TikTok's `tts_notification_id`), and answers 200: TikTok
/// accepts only 200 or 401 and retries anything else for about 15 hours,
/// so refusing a correctly signed body helps nobody. Counted in
/// `orderflow_webhooks_quarantined_total{reason}` (alerted on in
/// `deploy/alerts.yml`) and listed by `GET /api/v1/webhooks/quarantine`.
/// 503 when it cannot be stored, so TikTok retries.
async fn quarantine(
    s: &AppState,
    body: &[u8],
    reason: &'static str,
    event: Option<&webhook::WebhookEvent>,
    now: i64,
) -> Result<(), Failed> {
    let (entry, once) = quarantine_entry(body, reason, event, now);
    if s.store.quarantine(&entry, &once).await? {
        count("quarantined");
        metrics::counter!(crate::metrics::WEBHOOKS_QUARANTINED_TOTAL, "reason" => reason)
            .increment(1);
    } else {
        count("quarantined_duplicate");
    }
    Ok(())
}

/// The quarantine entry for a signed body, and what makes two arrivals of
/// it the same.
fn quarantine_entry(
    body: &[u8],
    reason: &'static str,
    event: Option<&webhook::WebhookEvent>,
    now: i64,
) -> (crate::store::Quarantined, String) {
    // What a malformed body still says about itself, loosely.
    let loose: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        loose.as_ref().and_then(|v| match &v[k] {
            serde_json::Value::String(x) => Some(x.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let shop_id = event
        .map(|e| e.shop_id.clone())
        .or_else(|| field("shop_id"));
    let notification_id = event
        .and_then(|e| e.notification_id.clone())
        .or_else(|| field("tts_notification_id"));
    let kind = loose.as_ref().and_then(|v| v["type"].as_i64());
    // Once per notification; a body without a readable id, once per body.
    let once = match &notification_id {
        Some(n) => format!(
            "webhook\u{0}{}\u{0}{n}",
            shop_id.as_deref().unwrap_or_default()
        ),
        None => {
            use sha2::Digest;
            format!(
                "webhook\u{0}sha256\u{0}{}",
                hex::encode(sha2::Sha256::digest(body))
            )
        }
    };
    let entry = crate::store::Quarantined {
        received_ms: now,
        reason: reason.to_string(),
        kind,
        shop_id,
        notification_id,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    (entry, once)
}
