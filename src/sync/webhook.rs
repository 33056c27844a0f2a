//! `POST /webhooks/tiktok`: TikTok's pushes.
//!
//! Verified first (`Authorization` = hex HMAC-SHA256(app_secret, app_key +
//! raw body), constant time): a bad or missing signature gets 401 with an
//! empty body and is counted. A malformed body or an unknown shape of a
//! known topic gets 400 and touches nothing. Then the notification is
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
const KNOWN: [i64; 8] = [1, 3, 4, 5, 6, 7, 11, 12];

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
    let event = match webhook::parse(&body) {
        Ok(e) => e,
        Err(e) => {
            count("malformed");
            tracing::warn!(error = %e, "Malformed webhook refused");
            return HttpResponse::BadRequest().finish();
        }
    };
    if let Topic::Other { kind, .. } = &event.topic {
        if KNOWN.contains(kind) {
            count("malformed");
            tracing::warn!(
                kind,
                "Webhook of a known topic with an unreadable shape refused"
            );
            return HttpResponse::BadRequest().finish();
        }
    }
    let now = s.runtime.shared.clock.now_ms();
    let shop = event.shop_id.clone();
    let mk = |order_id: &str, key: String, reason: String| OrderEvent {
        id: event.notification_id.clone().unwrap_or(key),
        order_id: order_id.to_string(),
        shop_id: shop.clone(),
        source: Source::Webhook,
        received_ms: now,
        kind: EventKind::Refresh { reason },
    };
    let events: Vec<OrderEvent> = match &event.topic {
        Topic::OrderStatusChange(d) => vec![mk(
            &d.order_id,
            format!("{}:{}:{}", d.order_id, d.order_status, d.update_time),
            format!("webhook: status {}", d.order_status),
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
        Topic::ReturnStatusChange(d) => vec![mk(
            &d.order_id,
            format!(
                "{}:return:{}:{}",
                d.order_id, d.return_status, d.update_time
            ),
            format!("webhook: return {}", d.return_status),
        )],
        Topic::SellerDeauthorization(n) => {
            count("deauthorized");
            tracing::error!(shop_id = %shop, message = %n.message, "TikTok says the seller deauthorized this app: the shop's calls will fail until it is authorized again");
            vec![]
        }
        Topic::UpcomingAuthorizationExpiration(n) => {
            count("authorization_expiring");
            tracing::warn!(shop_id = %shop, message = %n.message, expiration_time = ?n.expiration_time, "The shop's authorization expires soon; renew it in Seller Center");
            vec![]
        }
        Topic::ProductStatusChange(_) | Topic::Other { .. } => {
            count("ignored");
            tracing::debug!(shop_id = %shop, "Webhook recorded and ignored");
            vec![]
        }
    };
    for e in events {
        match s.intake.submit(e).await {
            Ok(sub) if sub.duplicate => count("duplicate"),
            Ok(_) => count("accepted"),
            Err(err) => {
                tracing::error!(error = %err, "Could not store a webhook; answering 503 so TikTok retries");
                return HttpResponse::ServiceUnavailable().finish();
            }
        }
    }
    HttpResponse::Ok().finish()
}
