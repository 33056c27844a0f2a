//! Webhook subscriptions: each connected shop pushes the topics orderflow
//! acts on to `[server] public_url` + `/webhooks/tiktok`
//! (`PUT /event/202309/webhooks`), checked with `GET` on start and after
//! every connect, and repaired where it differs.

use super::Shops;
use crate::tiktok::dto::UpdateWebhookRequest;

/// The topics subscribed, by TikTok's `event_type` names.
pub const TOPICS: [&str; 7] = [
    "ORDER_STATUS_CHANGE",
    "RECIPIENT_ADDRESS_UPDATE",
    "PACKAGE_UPDATE",
    "CANCELLATION_STATUS_CHANGE",
    "RETURN_STATUS_CHANGE",
    "SELLER_DEAUTHORIZATION",
    "UPCOMING_AUTHORIZATION_EXPIRATION",
];

impl Shops {
    /// Reads the shop's subscriptions and subscribes every topic missing
    /// or pointing elsewhere. Returns how many were repaired; the outcome
    /// shows in `shops list`.
    pub async fn check_subscription(&self, shop: &str) -> Result<usize, super::Error> {
        let Some(address) = self.inner.webhook_address.clone() else {
            return Ok(0);
        };
        let g = &self.inner.gateway;
        let result: Result<usize, crate::tiktok::Error> = async {
            let current = g.webhooks(shop).await?;
            let mut repaired = 0;
            for topic in TOPICS {
                let ok = current
                    .iter()
                    .any(|w| w.event_type == topic && w.address == address);
                if !ok {
                    g.put_webhook(
                        shop,
                        UpdateWebhookRequest {
                            address: address.clone(),
                            event_type: topic.to_string(),
                        },
                    )
                    .await?;
                    repaired += 1;
                }
            }
            Ok(repaired)
        }
        .await;
        match result {
            Ok(n) => {
                if n > 0 {
                    metrics::counter!(super::metrics::WEBHOOK_SUBSCRIPTIONS_REPAIRED_TOTAL, "shop" => shop.to_string())
                        .increment(n as u64);
                    tracing::info!(shop_id = %shop, topics = n, %address, "Webhook subscription repaired");
                }
                self.set_health(shop, |h| {
                    h.subscription = Some(if n == 0 {
                        format!("subscribed ({} topics)", TOPICS.len())
                    } else {
                        format!("subscribed; repaired {n} topics")
                    })
                });
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(shop_id = %shop, error = %e, "Could not check the webhook subscription; polling still syncs");
                self.set_health(shop, |h| {
                    h.subscription = Some(format!("check failed: {e}"))
                });
                Err(e.into())
            }
        }
    }

    /// Checks every connected shop's subscription (at start).
    pub async fn check_all_subscriptions(&self) {
        if self.inner.webhook_address.is_none() {
            tracing::warn!("server.public_url is not set: TikTok webhooks are not subscribed; polling keeps orders in sync");
            return;
        }
        for shop in self.connected() {
            let _ = self.check_subscription(&shop).await;
        }
    }
}
