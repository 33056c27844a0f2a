//! The shops' metrics, described when [`super::Shops`] is built.

use super::records::{ShopRecord, ShopStatus};
use crate::tiktok::Tokens;

/// Seconds until a shop's token expires (`token` = `access` | `refresh`);
/// absent while unknown. Alerted on below 7 days for `refresh`.
pub const TOKEN_EXPIRY_SECONDS: &str = "orderflow_tiktok_token_expiry_seconds";
/// Failed proactive refreshes, by shop.
pub const TOKEN_REFRESH_FAILURES_TOTAL: &str = "orderflow_tiktok_token_refresh_failures_total";
/// 1 while a shop's last refresh failed.
pub const TOKEN_REFRESH_FAILING: &str = "orderflow_tiktok_token_refresh_failing";
/// Shops by status (`connected`, `disconnected`, `deauthorized`).
pub const SHOPS: &str = "orderflow_shops";
/// Webhook topics found missing or wrong and subscribed again.
pub const WEBHOOK_SUBSCRIPTIONS_REPAIRED_TOTAL: &str =
    "orderflow_tiktok_webhook_subscriptions_repaired_total";

pub(super) fn describe() {
    metrics::describe_gauge!(
        TOKEN_EXPIRY_SECONDS,
        metrics::Unit::Seconds,
        "Seconds until the shop's TikTok token expires (token=access|refresh)"
    );
    metrics::describe_counter!(
        TOKEN_REFRESH_FAILURES_TOTAL,
        "Proactive TikTok token refreshes that failed, by shop"
    );
    metrics::describe_gauge!(
        TOKEN_REFRESH_FAILING,
        "1 while the shop's last token refresh failed"
    );
    metrics::describe_gauge!(SHOPS, "Shops by status");
    metrics::describe_counter!(
        WEBHOOK_SUBSCRIPTIONS_REPAIRED_TOTAL,
        "Webhook topics found missing or pointing elsewhere and subscribed again"
    );
}

fn now_s() -> i64 {
    crate::runtime::Clock::system().now_ms() / 1000
}

pub(super) fn set_expiry(shop: &str, t: &Tokens) {
    let now = now_s();
    for (which, at) in [
        ("access", t.access_expires_at),
        ("refresh", t.refresh_expires_at),
    ] {
        if let Some(at) = at {
            metrics::gauge!(TOKEN_EXPIRY_SECONDS, "shop" => shop.to_string(), "token" => which)
                .set((at - now) as f64);
        }
    }
}

/// After a refresh: the grant's key names a configured shop's own grant;
/// the keeper sets the others' gauges on its next pass.
pub(super) fn set_expiry_for_grant(grant: &str, t: &Tokens) {
    if !grant.starts_with("seller:") {
        set_expiry(grant, t);
    }
}

pub(super) fn set_status_counts(recs: &[ShopRecord]) {
    for status in [
        ShopStatus::Connected,
        ShopStatus::Disconnected,
        ShopStatus::Deauthorized,
    ] {
        let n = recs.iter().filter(|r| r.status == status).count();
        metrics::gauge!(SHOPS, "status" => status.as_str()).set(n as f64);
    }
}
