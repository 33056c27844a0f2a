//! Keeps every connected shop's tokens valid without anyone watching: a
//! grant is refreshed before its access token expires, a margin of
//! `[shops] refresh_before` ahead (at most half the token's lifetime) plus
//! up to 10% jitter, so grants obtained together do not refresh together.
//! Refreshes are single-flight per grant with the refresh a call makes on
//! code 105002. A failed refresh is retried with back-off, shown in `shops
//! list`, counted, and alerted once per failure streak; a grant whose
//! authorization itself (the refresh token) expires within
//! `expiry_warning` is alerted once with a link to authorize again.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::metrics as m;
use super::Shops;

#[derive(Default)]
struct KeeperState {
    /// (grant, access expiry) → jitter fraction in [0, 0.1).
    jitter: HashMap<(String, i64), f64>,
    /// grant → (failures in a row, not before this Unix second).
    failing: HashMap<String, (u32, i64)>,
}

impl Shops {
    /// Runs until `stop`.
    pub async fn run_keeper(self, stop: CancellationToken) {
        let mut st = KeeperState::default();
        loop {
            let wait = self.keeper_pass(&mut st).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One look at every grant in use; returns how long to sleep.
    async fn keeper_pass(&self, st: &mut KeeperState) -> Duration {
        let cfg = self.inner.config.clone();
        let mut next = cfg.check_interval.as_secs().max(1) as i64;
        let g = self.inner.gateway.clone();
        let mut by_grant: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in self.connected() {
            if let Ok(grant) = g.grant_of(&id) {
                by_grant
                    .entry(grant.key().to_string())
                    .or_default()
                    .push(id);
            }
        }
        for (key, shops) in by_grant {
            let Ok(grant) = g.grant_of(&shops[0]) else {
                continue;
            };
            let now = self.now_ms() / 1000;
            let tokens = grant.tokens();
            for s in &shops {
                m::set_expiry(s, &tokens);
            }
            if let Some(r) = tokens.refresh_expires_at {
                if r - now < cfg.expiry_warning.as_secs() as i64 {
                    self.warn_authorization_expiring(&shops, r).await;
                }
            }
            let Some(exp) = tokens.access_expires_at else {
                // Tokens from the file: TikTok did not say; refreshed on
                // its first 105002.
                continue;
            };
            let obtained = self
                .grant_record(&key)
                .ok()
                .flatten()
                .map(|r| r.obtained_ms / 1000)
                .unwrap_or(now);
            let lifetime = (exp - obtained).max(2);
            let margin = (cfg.refresh_before.as_secs() as i64).min(lifetime / 2);
            let j = *st
                .jitter
                .entry((key.clone(), exp))
                .or_insert_with(|| rand::rng().random_range(0.0..0.1));
            let due = exp - margin - (margin as f64 * j) as i64;
            if now < due {
                next = next.min(due - now);
                continue;
            }
            if let Some((_, not_before)) = st.failing.get(&key) {
                if now < *not_before {
                    next = next.min(not_before - now);
                    continue;
                }
            }
            match g
                .refresh_grant(&grant, Some(&tokens.access_token), &shops[0])
                .await
            {
                Ok(t) => {
                    st.failing.remove(&key);
                    st.jitter.retain(|(k, _), _| *k != key);
                    for s in &shops {
                        m::set_expiry(s, &t);
                        metrics::gauge!(m::TOKEN_REFRESH_FAILING, "shop" => s.clone()).set(0.0);
                        self.set_health(s, |h| h.refresh_error = None);
                    }
                    tracing::info!(grant = %key, shops = ?shops, expires_at = ?t.access_expires_at, "Refreshed the TikTok token before it expired");
                    // The new pair's own due time is computed next pass.
                    next = next.min(1);
                }
                Err(e) => {
                    let entry = st.failing.entry(key.clone()).or_insert((0, 0));
                    entry.0 += 1;
                    let backoff = (15i64 << entry.0.min(8))
                        .min(cfg.check_interval.as_secs() as i64)
                        .max(1);
                    entry.1 = now + backoff;
                    next = next.min(backoff);
                    let first = entry.0 == 1;
                    let text = e.to_string();
                    for s in &shops {
                        metrics::counter!(m::TOKEN_REFRESH_FAILURES_TOTAL, "shop" => s.clone())
                            .increment(1);
                        metrics::gauge!(m::TOKEN_REFRESH_FAILING, "shop" => s.clone()).set(1.0);
                        let t = text.clone();
                        self.set_health(s, |h| h.refresh_error = Some(t));
                    }
                    tracing::error!(grant = %key, shops = ?shops, error = %text, retry_in_s = backoff, "Could not refresh the TikTok token before it expires");
                    if first {
                        self.inner
                            .notifier
                            .alert(
                                &format!(
                                    "Refreshing the TikTok token of shop(s) {} failed: {text}. Retrying; if it keeps failing the seller must authorize again",
                                    shops.join(", ")
                                ),
                                serde_json::json!({"event": "token_refresh_failing", "shops": shops, "error": text}),
                            )
                            .await;
                    }
                }
            }
        }
        Duration::from_secs(next.max(1) as u64)
    }

    async fn warn_authorization_expiring(&self, shops: &[String], refresh_expires_at: i64) {
        let fresh = {
            let mut h = self.inner.health.lock();
            let e = h.entry(shops[0].clone()).or_default();
            std::mem::replace(&mut e.expiry_alerted, refresh_expires_at) != refresh_expires_at
        };
        if fresh {
            for s in shops {
                self.expiring(s, Some(refresh_expires_at)).await;
            }
        }
    }
}
