//! Connected shops: TikTok's seller authorization, tokens kept valid and
//! sealed at rest, webhook subscriptions, and shops added and removed while
//! the daemon runs.
//!
//! - **Authorization** ([`Shops::authorize_link`], [`Shops::complete`]):
//!   a link to TikTok's `/open/authorize?service_id=…&state=…` with a
//!   one-time `state` stored in this daemon's store; the redirect callback
//!   (or `shops connect --code`) exchanges the code at `/api/v2/token/get`,
//!   reads the authorized shops and their ciphers, and connects each one
//!   live: its rate limiter, poller and inventory push start at once.
//! - **Grants**: a seller's token pair covers all their shops. The newest
//!   pair wins, whichever way it came: a callback or `--code` is newer than
//!   anything stored; a refresh replaces its grant's pair; a pair in the
//!   configuration file wins only when it differs from the one last read
//!   from the file (an operator pasted new tokens), tracked by a keyed
//!   fingerprint, never the token itself.
//! - **Secrets at rest**: tokens are sealed ([`secrets::Sealer`]) under the
//!   operator's key file, outside the data directory.
//! - **Keeping tokens valid** ([`Shops::run_keeper`]): each grant is
//!   refreshed before its access token expires (a margin of
//!   `[shops] refresh_before`, at most half the token's lifetime, jittered),
//!   single-flight with the refresh on code 105002.
//! - **Webhooks** ([`Shops::check_subscription`]): with `[server]
//!   public_url`, each connected shop is subscribed to the topics orderflow
//!   acts on, checked on start and after every connect, and repaired.
//! - **Lifecycle**: disconnect and reconnect by an operator; type 6
//!   (SELLER_DEAUTHORIZATION) marks a shop deauthorized and stops its calls;
//!   type 7 alerts with the date and a fresh link. Removing a shop never
//!   touches its orders.

pub mod records;
pub mod secrets;

mod keeper;
mod metrics;
mod subscription;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::{codec, Op, Store, Tree};
use crate::tiktok::{GatewayHandle, Grant, Secret, ShopConfig, ShopSpec, TokenSink, Tokens};
use records::{
    grant_key, shop_key, state_key, GrantRecord, PendingState, ShopRecord, ShopStatus, TokenSource,
};
use secrets::Sealer;

pub use subscription::TOPICS;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Codec(#[from] crate::store::codec::Error),
    #[error(transparent)]
    Secrets(#[from] secrets::Error),
    #[error(transparent)]
    Tiktok(#[from] crate::tiktok::Error),
    #[error("no authorization is pending with this state: it expired, was used already, or was not issued by this daemon; start again with `orderflow shops connect`")]
    BadState,
    #[error("the seller did not authorize the app ({0})")]
    Denied(String),
    #[error("set tiktok.service_id (Partner Center → your app → Service ID) to make authorization links, or copy the link from Partner Center and use `orderflow shops connect --code`")]
    NoServiceId,
    #[error("shop {0} is not known; connect it with `orderflow shops connect`")]
    UnknownShop(String),
    #[error("the authorization covers no shop")]
    NoShops,
    #[error("shop {shop} cannot be reconnected with its stored tokens ({reason}); the seller must authorize again")]
    NeedsAuthorization { shop: String, reason: String },
    #[error("server.public_url {url:?} cannot receive TikTok's webhooks: {why}")]
    PublicUrl { url: String, why: &'static str },
}

/// The `[shops]` section: how connected shops are kept healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopsConfig {
    /// Refresh an access token this long before it expires (at most half
    /// its lifetime). TikTok's access tokens last 7 days.
    #[serde(with = "crate::config::human")]
    pub refresh_before: Duration,
    /// How often token expiry is checked (a refresh due sooner wakes the
    /// keeper earlier).
    #[serde(with = "crate::config::human")]
    pub check_interval: Duration,
    /// Alert when a grant's refresh token (the authorization itself)
    /// expires within this; the seller must authorize again.
    #[serde(with = "crate::config::human")]
    pub expiry_warning: Duration,
    /// How long an authorization link's `state` stays usable.
    #[serde(with = "crate::config::human")]
    pub state_ttl: Duration,
}

impl Default for ShopsConfig {
    fn default() -> Self {
        ShopsConfig {
            refresh_before: Duration::from_secs(24 * 3600),
            check_interval: Duration::from_secs(300),
            expiry_warning: Duration::from_secs(7 * 24 * 3600),
            state_ttl: Duration::from_secs(3600),
        }
    }
}

/// The `[secrets]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key that seals shop tokens in the store: 64 hex characters,
    /// created (mode 0600) on first start when absent. Keep it outside the
    /// data directory. Default: `<data_dir>.key`, beside the directory.
    pub key_file: Option<std::path::PathBuf>,
}

impl SecretsConfig {
    pub fn key_path(&self, data_dir: &std::path::Path) -> std::path::PathBuf {
        match &self.key_file {
            Some(p) => p.clone(),
            None => {
                let mut name = data_dir
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_else(|| "orderflow".into());
                name.push(".key");
                data_dir.with_file_name(name)
            }
        }
    }
}

/// Starts what runs per connected shop (poller, inventory push) until the
/// token is cancelled.
pub type Runner = Arc<dyn Fn(&str, CancellationToken) + Send + Sync>;

/// An authorization link for a seller.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub url: String,
    pub state: String,
    pub expires_ms: i64,
}

/// What the daemon knows about one shop, for `shops list` and the console.
#[derive(Debug, Clone, Serialize)]
pub struct ShopView {
    pub id: String,
    pub name: String,
    pub region: String,
    /// `connected`, `disconnected`, `deauthorized`.
    pub status: &'static str,
    pub status_reason: String,
    /// One line for people: "connected", "token expiring in 3 days",
    /// "refresh failing: …", "deauthorized".
    pub health: String,
    pub from_config: bool,
    pub seller_name: String,
    /// Where the tokens in use came from: config, callback, code, refresh.
    pub token_source: Option<&'static str>,
    pub tokens_obtained_ms: Option<i64>,
    /// Unix seconds; absent when TikTok did not say (tokens from the file).
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
    pub refresh_error: Option<String>,
    /// Unix seconds of the last successful call for the shop.
    pub last_call: Option<i64>,
    pub last_webhook_ms: Option<i64>,
    /// Distinct orders received today (UTC) since the daemon started.
    pub orders_today: usize,
    /// The webhook subscription: `subscribed`, `repaired N topics`,
    /// `not subscribed: no server.public_url (polling only)`, or an error.
    pub webhooks: String,
}

#[derive(Default)]
struct Health {
    last_webhook_ms: Option<i64>,
    subscription: Option<String>,
    refresh_error: Option<String>,
    /// (UTC day, orders seen that day).
    orders: (i64, HashSet<String>),
    alerted_unconnected: bool,
    /// The refresh-token expiry already warned about.
    expiry_alerted: i64,
}

struct Inner {
    store: Store,
    sealer: Sealer,
    gateway: GatewayHandle,
    notifier: crate::notify::Notifier,
    config: ShopsConfig,
    authorize_url: String,
    service_id: String,
    /// Where TikTok should push (`public_url` + `/webhooks/tiktok`).
    webhook_address: Option<String>,
    default_qps: f64,
    runner: parking_lot::RwLock<Option<Runner>>,
    /// Connected shops and the token that stops their tasks.
    live: parking_lot::Mutex<HashMap<String, CancellationToken>>,
    /// One [`Grant`] per key, shared by its shops.
    grants: parking_lot::Mutex<HashMap<String, Arc<Grant>>>,
    health: parking_lot::Mutex<HashMap<String, Health>>,
    /// Serializes changes of shops' status (connect, disconnect,
    /// reconnect, deauthorization): each reads, writes and applies the
    /// record with no other change in between.
    changes: tokio::sync::Mutex<()>,
    stop: CancellationToken,
}

/// The connected shops. Cheap to clone.
#[derive(Clone)]
pub struct Shops {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shops")
            .field("connected", &self.inner.live.lock().len())
            .finish()
    }
}

/// Keeps refreshed token pairs in the store, sealed, in the order the
/// refreshes happened (an insert, then a flush in the background).
pub struct StoreSink {
    store: Store,
    sealer: Sealer,
    /// Set once the shops are running: told when TikTok says a shop's
    /// authorization is gone.
    shops: std::sync::OnceLock<std::sync::Weak<Inner>>,
}

impl StoreSink {
    pub fn new(store: Store, sealer: Sealer) -> Arc<StoreSink> {
        Arc::new(StoreSink {
            store,
            sealer,
            shops: std::sync::OnceLock::new(),
        })
    }

    /// Lets a 105001 on any call mark the shop deauthorized.
    pub fn tell(&self, shops: &Shops) {
        let _ = self.shops.set(Arc::downgrade(&shops.inner));
    }
}

impl TokenSink for StoreSink {
    fn tokens_refreshed(&self, grant: &str, tokens: &Tokens) {
        let now = crate::runtime::Clock::system().now_ms();
        let old = read::<GrantRecord>(&self.store, &grant_key(grant))
            .ok()
            .flatten();
        let rec = seal_grant(
            &self.sealer,
            grant,
            old.as_ref().map(|g| g.open_id.as_str()).unwrap_or_default(),
            old.as_ref()
                .map(|g| g.seller_name.as_str())
                .unwrap_or_default(),
            TokenSource::Refresh,
            now,
            tokens,
        );
        match codec::encode(&rec) {
            Ok(v) => {
                if let Err(e) = self.store.trees.shops.insert(grant_key(grant), v) {
                    tracing::error!(grant = %grant, error = %e, "Could not store refreshed tokens");
                }
                let db = self.store.db.clone();
                tokio::spawn(async move {
                    let _ = db.flush_async().await;
                });
            }
            Err(e) => tracing::error!(error = %e, "Could not encode refreshed tokens"),
        }
        metrics::set_expiry_for_grant(grant, tokens);
    }

    fn authorization_lost(&self, shop_id: &str) {
        let Some(inner) = self.shops.get().and_then(|w| w.upgrade()) else {
            return;
        };
        let shops = Shops { inner };
        if !shops.is_connected(shop_id) {
            return;
        }
        let id = shop_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = shops
                .deauthorized(
                    &id,
                    "TikTok answered 105001: the token has been deauthorized",
                )
                .await
            {
                tracing::error!(shop_id = %id, error = %e, "Could not record the deauthorization");
            }
        });
    }
}

fn seal_grant(
    sealer: &Sealer,
    key: &str,
    open_id: &str,
    seller_name: &str,
    source: TokenSource,
    now_ms: i64,
    t: &Tokens,
) -> GrantRecord {
    GrantRecord {
        key: key.to_string(),
        open_id: open_id.to_string(),
        seller_name: seller_name.to_string(),
        source,
        obtained_ms: now_ms,
        access: sealer.seal(
            format!("{key}/access").as_bytes(),
            t.access_token.expose().as_bytes(),
        ),
        refresh: sealer.seal(
            format!("{key}/refresh").as_bytes(),
            t.refresh_token.expose().as_bytes(),
        ),
        access_expires_at: t.access_expires_at.unwrap_or(0),
        refresh_expires_at: t.refresh_expires_at.unwrap_or(0),
    }
}

fn read<T: serde::de::DeserializeOwned>(store: &Store, key: &[u8]) -> Result<Option<T>, Error> {
    match store
        .trees
        .shops
        .get(key)
        .map_err(crate::store::Error::from)?
    {
        Some(v) => Ok(Some(codec::decode(&v)?)),
        None => Ok(None),
    }
}

fn put<T: Serialize>(key: Vec<u8>, v: &T) -> Result<Op, Error> {
    Ok(Op::Put {
        tree: Tree::Shops,
        key,
        value: codec::encode(v)?,
    })
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Checks `public_url` as TikTok takes webhook addresses: https, a domain
/// name (no IP address), no port.
pub fn webhook_address(public_url: &str) -> Result<String, Error> {
    let bad = |why| Error::PublicUrl {
        url: public_url.to_string(),
        why,
    };
    let u = reqwest::Url::parse(public_url).map_err(|_| bad("not a URL"))?;
    if u.scheme() != "https" {
        return Err(bad("TikTok pushes only to https addresses"));
    }
    match u.host_str() {
        None | Some("") => return Err(bad("no host")),
        Some(h)
            if h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok() =>
        {
            return Err(bad("TikTok pushes to a domain name, not an IP address"))
        }
        Some(_) => {}
    }
    if u.port().is_some() {
        return Err(bad("TikTok pushes to the default https port only"));
    }
    let address = format!("{}/webhooks/tiktok", public_url.trim_end_matches('/'));
    if address.len() > 255 {
        return Err(bad(
            "the webhook address would exceed TikTok's 255 characters",
        ));
    }
    Ok(address)
}

/// What [`Shops::new`] needs.
pub struct Parts {
    pub store: Store,
    pub sealer: Sealer,
    pub gateway: GatewayHandle,
    pub notifier: crate::notify::Notifier,
    pub config: ShopsConfig,
    pub authorize_url: String,
    pub service_id: String,
    pub public_url: Option<String>,
    pub default_qps: f64,
    pub stop: CancellationToken,
}

impl Shops {
    pub fn new(p: Parts) -> Result<Shops, Error> {
        metrics::describe();
        let webhook_address = match p.public_url.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => Some(webhook_address(u)?),
            None => None,
        };
        Ok(Shops {
            inner: Arc::new(Inner {
                store: p.store,
                sealer: p.sealer,
                gateway: p.gateway,
                notifier: p.notifier,
                config: p.config,
                authorize_url: p.authorize_url,
                service_id: p.service_id,
                webhook_address,
                default_qps: p.default_qps,
                runner: Default::default(),
                live: Default::default(),
                grants: Default::default(),
                health: Default::default(),
                changes: tokio::sync::Mutex::new(()),
                stop: p.stop,
            }),
        })
    }

    pub fn gateway(&self) -> &GatewayHandle {
        &self.inner.gateway
    }

    fn now_ms(&self) -> i64 {
        crate::runtime::Clock::system().now_ms()
    }

    fn open_grant(&self, g: &GrantRecord) -> Result<Tokens, Error> {
        let s = &self.inner.sealer;
        let text = |field: &str, v: &[u8]| -> Result<Secret, Error> {
            let plain = s.open(format!("{}/{field}", g.key).as_bytes(), v)?;
            Ok(Secret::new(String::from_utf8_lossy(&plain).into_owned()))
        };
        Ok(Tokens {
            access_token: text("access", &g.access)?,
            refresh_token: text("refresh", &g.refresh)?,
            access_expires_at: Some(g.access_expires_at).filter(|t| *t > 0),
            refresh_expires_at: Some(g.refresh_expires_at).filter(|t| *t > 0),
        })
    }

    /// The shared [`Grant`] for `key`, holding `tokens` (updated in place
    /// when the grant is already in use).
    fn grant(&self, key: &str, tokens: Tokens) -> Arc<Grant> {
        let mut grants = self.inner.grants.lock();
        match grants.get(key) {
            Some(g) => {
                g.set_tokens(tokens);
                g.clone()
            }
            None => {
                let g = Grant::new(key, tokens);
                grants.insert(key.to_string(), g.clone());
                g
            }
        }
    }

    /// Every stored shop record, in id order.
    pub fn records(&self) -> Result<Vec<ShopRecord>, Error> {
        let mut out = Vec::new();
        for r in self.inner.store.trees.shops.scan_prefix(b"s/") {
            let (_, v) = r.map_err(crate::store::Error::from)?;
            out.push(codec::decode(&v)?);
        }
        Ok(out)
    }

    pub fn record(&self, id: &str) -> Result<Option<ShopRecord>, Error> {
        read(&self.inner.store, &shop_key(id))
    }

    fn grant_record(&self, key: &str) -> Result<Option<GrantRecord>, Error> {
        read(&self.inner.store, &grant_key(key))
    }

    /// At start: the configured shops against the stored ones (the newest
    /// token pair wins), tokens refreshed by an older version moved into
    /// sealed grants, and every connected shop made callable. Shops the
    /// gateway knows from the file but that are disconnected or
    /// deauthorized are removed from it.
    ///
    /// `file_wins`: the file's pairs win whatever was stored (the demo,
    /// whose simulator is new at every start and knows only those).
    pub async fn bootstrap(&self, configured: &[ShopConfig], file_wins: bool) -> Result<(), Error> {
        let now = self.now_ms();
        let store = &self.inner.store;
        let mut ops = Vec::new();
        for c in configured {
            let print = self.inner.sealer.fingerprint(&format!(
                "{}\u{0}{}",
                c.access_token.expose(),
                c.refresh_token.expose()
            ));
            let existing = self.record(&c.id)?;
            // Tokens an older version refreshed, kept in clear text.
            let legacy_key = format!("tokens:{}", c.id);
            let legacy = store
                .trees
                .cursors
                .get(&legacy_key)
                .map_err(crate::store::Error::from)?
                .and_then(|v| codec::decode::<String>(&v).ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|t| {
                    Some((
                        t["access_token"].as_str()?.to_string(),
                        t["refresh_token"].as_str()?.to_string(),
                    ))
                });
            let config_is_new =
                file_wins || existing.as_ref().is_none_or(|r| r.config_print != print);
            let mut rec = existing.clone().unwrap_or_else(|| ShopRecord {
                id: c.id.clone(),
                name: String::new(),
                region: c.region.clone().unwrap_or_default(),
                cipher: c.cipher.clone().unwrap_or_default(),
                grant: c.id.clone(),
                status: ShopStatus::Connected,
                status_reason: String::new(),
                status_changed_ms: now,
                connected_ms: now,
                from_config: true,
                config_print: String::new(),
                qps: c.qps,
            });
            rec.from_config = true;
            rec.qps = c.qps;
            if let Some(r) = &c.region {
                rec.region = r.clone();
            }
            if let Some(ci) = &c.cipher {
                rec.cipher = ci.clone();
            }
            // The pair that wins for this shop, if not the stored one: what
            // an older version refreshed (newer than the file), or a pair in
            // the file that changed since it was last read.
            let wins = match (&legacy, &existing) {
                (Some((a, r)), None) if !file_wins => {
                    tracing::info!(shop_id = %c.id, "Moved the tokens an earlier version refreshed into the sealed store");
                    Some((
                        Secret::new(a.clone()),
                        Secret::new(r.clone()),
                        TokenSource::Refresh,
                    ))
                }
                _ if config_is_new => {
                    if existing.is_some() {
                        tracing::info!(shop_id = %c.id, "The configuration file has a new token pair for this shop: it wins over the stored one");
                    }
                    Some((
                        c.access_token.clone(),
                        c.refresh_token.clone(),
                        TokenSource::Config,
                    ))
                }
                _ => None,
            };
            let pasted = matches!(wins, Some((_, _, TokenSource::Config)));
            if let Some((access_token, refresh_token, source)) = wins {
                let t = Tokens {
                    access_token,
                    refresh_token,
                    ..Default::default()
                };
                ops.push(put(
                    grant_key(&c.id),
                    &seal_grant(&self.inner.sealer, &c.id, "", "", source, now, &t),
                )?);
                rec.grant = c.id.clone();
                rec.config_print = print.clone();
            }
            if pasted && rec.status == ShopStatus::Deauthorized {
                rec.status = ShopStatus::Connected;
                rec.status_reason = "new tokens in the configuration file".into();
                rec.status_changed_ms = now;
            }
            if existing.as_ref() != Some(&rec) {
                ops.push(put(shop_key(&c.id), &rec)?);
            }
            if legacy.is_some() {
                ops.push(Op::Del {
                    tree: Tree::Cursors,
                    key: legacy_key.into_bytes(),
                });
            }
        }
        if !ops.is_empty() {
            store.commit(ops).await?;
        }
        let g = &self.inner.gateway;
        for rec in self.records()? {
            if rec.status != ShopStatus::Connected || !self.make_callable(&rec)? {
                g.remove_shop(&rec.id);
            }
        }
        self.publish_status();
        Ok(())
    }

    /// Points the gateway at the shop with its grant's tokens; false when
    /// no tokens are stored for it (it is not started then).
    fn make_callable(&self, rec: &ShopRecord) -> Result<bool, Error> {
        let Some(g) = self.grant_record(&rec.grant)? else {
            tracing::error!(shop_id = %rec.id, grant = %rec.grant, "A connected shop without stored tokens: not started; connect it again");
            return Ok(false);
        };
        let tokens = self.open_grant(&g)?;
        metrics::set_expiry(&rec.id, &tokens);
        let grant = self.grant(&g.key, tokens);
        self.inner.gateway.add_shop(
            &ShopSpec {
                id: rec.id.clone(),
                cipher: Some(rec.cipher.clone()).filter(|c| !c.is_empty()),
                region: Some(rec.region.clone()).filter(|r| !r.is_empty()),
                qps: if rec.qps > 0.0 {
                    rec.qps
                } else {
                    self.inner.default_qps
                },
            },
            grant,
        );
        Ok(true)
    }

    /// Starts the per-shop tasks of every connected shop and, from now on,
    /// of every shop connected later.
    pub fn start(&self, runner: Runner) -> Result<(), Error> {
        *self.inner.runner.write() = Some(runner);
        for rec in self.records()? {
            if rec.status == ShopStatus::Connected && self.inner.gateway.knows_shop(&rec.id) {
                self.go_live(&rec.id);
            }
        }
        Ok(())
    }

    fn go_live(&self, id: &str) {
        let token = {
            let mut live = self.inner.live.lock();
            if live.contains_key(id) {
                return;
            }
            let t = self.inner.stop.child_token();
            live.insert(id.to_string(), t.clone());
            t
        };
        if let Some(run) = self.inner.runner.read().clone() {
            run(id, token);
        }
        self.inner
            .health
            .lock()
            .entry(id.to_string())
            .or_default()
            .alerted_unconnected = false;
        tracing::info!(shop_id = %id, "Shop connected: polling, inventory push and calls started");
    }

    fn stop_live(&self, id: &str) {
        if let Some(t) = self.inner.live.lock().remove(id) {
            t.cancel();
        }
        self.inner.gateway.remove_shop(id);
    }

    /// Whether orderflow talks to TikTok for the shop now (webhooks of
    /// other shops wait in the quarantine until it is connected).
    pub fn is_connected(&self, id: &str) -> bool {
        self.inner.live.lock().contains_key(id)
    }

    /// The ids of the connected shops.
    pub fn connected(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.live.lock().keys().cloned().collect();
        v.sort();
        v
    }

    fn publish_status(&self) {
        let recs = self.records().unwrap_or_default();
        metrics::set_status_counts(&recs);
    }

    /// A seller authorization link with a fresh one-time `state`.
    pub async fn authorize_link(&self) -> Result<Link, Error> {
        if self.inner.service_id.trim().is_empty() {
            return Err(Error::NoServiceId);
        }
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let state = hex::encode(raw);
        let now = self.now_ms();
        // Expired states go with the new one (they are few: an hour's).
        let ttl = self.inner.config.state_ttl.as_millis() as i64;
        let mut ops = vec![put(state_key(&state), &PendingState { created_ms: now })?];
        for r in self.inner.store.trees.shops.scan_prefix(b"o/") {
            let (k, v) = r.map_err(crate::store::Error::from)?;
            let expired =
                codec::decode::<PendingState>(&v).map_or(true, |p| now - p.created_ms > ttl);
            if expired {
                ops.push(Op::Del {
                    tree: Tree::Shops,
                    key: k.to_vec(),
                });
            }
        }
        self.inner.store.commit(ops).await?;
        let mut url = reqwest::Url::parse(&self.inner.authorize_url).map_err(|_| {
            crate::tiktok::Error::InvalidConfig(vec![format!(
                "tiktok.authorize_url {:?} is not a URL",
                self.inner.authorize_url
            )])
        })?;
        url.query_pairs_mut()
            .append_pair("service_id", &self.inner.service_id)
            .append_pair("state", &state);
        Ok(Link {
            url: url.to_string(),
            state,
            expires_ms: now + self.inner.config.state_ttl.as_millis() as i64,
        })
    }

    /// Consumes a `state` handed out by [`Shops::authorize_link`]: once,
    /// within `state_ttl`.
    async fn take_state(&self, state: &str) -> Result<(), Error> {
        if state.is_empty() || state.len() > 64 {
            return Err(Error::BadState);
        }
        let key = state_key(state);
        // Taken atomically: of two callbacks with one state, one wins.
        let Some(v) = self
            .inner
            .store
            .trees
            .shops
            .remove(&key)
            .map_err(crate::store::Error::from)?
        else {
            return Err(Error::BadState);
        };
        let p: PendingState = codec::decode(&v)?;
        if self.now_ms() - p.created_ms > self.inner.config.state_ttl.as_millis() as i64 {
            return Err(Error::BadState);
        }
        Ok(())
    }

    /// Completes an authorization: checks `state` (the callback; `None`
    /// for a code an operator pasted), exchanges the code, reads the shops
    /// it covers and connects each one live. Returns them.
    pub async fn complete(
        &self,
        code: &str,
        state: Option<&str>,
        source: TokenSource,
    ) -> Result<Vec<ShopRecord>, Error> {
        if let Some(s) = state {
            self.take_state(s).await?;
        }
        let code = code.trim();
        if code.is_empty() || code == "null" {
            return Err(Error::Denied("no code".into()));
        }
        let g = &self.inner.gateway;
        let data = g.get_token(code).await?;
        let (open_id, seller_name) = (data.open_id.clone(), data.seller_name.clone());
        let tokens = Tokens::from_data(data, None);
        let key = if open_id.is_empty() {
            let mut raw = [0u8; 8];
            rand::rng().fill_bytes(&mut raw);
            format!("seller:{}", hex::encode(raw))
        } else {
            format!("seller:{open_id}")
        };
        let probe = Grant::new(key.clone(), tokens.clone());
        let authorized = g.authorized_shops_with(probe).await?;
        if authorized.is_empty() {
            return Err(Error::NoShops);
        }
        let now = self.now_ms();
        let mut ops = vec![put(
            grant_key(&key),
            &seal_grant(
                &self.inner.sealer,
                &key,
                &open_id,
                &seller_name,
                source,
                now,
                &tokens,
            ),
        )?];
        let mut out = Vec::new();
        for a in &authorized {
            let old = self.record(&a.id)?;
            let rec = ShopRecord {
                id: a.id.clone(),
                name: a.name.clone(),
                region: a.region.clone(),
                cipher: a.cipher.clone(),
                grant: key.clone(),
                status: ShopStatus::Connected,
                status_reason: format!("authorized by {seller_name} ({})", source.as_str()),
                status_changed_ms: now,
                connected_ms: old.as_ref().map(|o| o.connected_ms).unwrap_or(now),
                from_config: old.as_ref().is_some_and(|o| o.from_config),
                config_print: old.map(|o| o.config_print).unwrap_or_default(),
                qps: self.inner.default_qps,
            };
            ops.push(put(shop_key(&rec.id), &rec)?);
            out.push(rec);
        }
        // Durable before anything runs on it.
        let _changing = self.inner.changes.lock().await;
        self.inner.store.commit(ops).await?;
        for rec in &out {
            match self.make_callable(rec) {
                Ok(true) => {
                    self.go_live(&rec.id);
                    tracing::info!(shop_id = %rec.id, name = %rec.name, region = %rec.region, "Shop authorized and connected");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(shop_id = %rec.id, error = %e, "An authorized shop could not be started")
                }
            }
        }
        self.publish_status();
        for rec in &out {
            let me = self.clone();
            let id = rec.id.clone();
            actix::spawn(async move { me.check_subscription(&id).await });
        }
        Ok(out)
    }

    /// Stops calling TikTok for the shop (polling, pushes, steps' calls);
    /// its orders stay readable.
    pub async fn disconnect(&self, id: &str, by: &str) -> Result<ShopRecord, Error> {
        let _changing = self.inner.changes.lock().await;
        let rec = self
            .record(id)?
            .ok_or_else(|| Error::UnknownShop(id.into()))?;
        let rec = self
            .set_status(
                rec,
                ShopStatus::Disconnected,
                format!("disconnected by {by}"),
            )
            .await?;
        tracing::warn!(shop_id = %id, by = %by, "Shop disconnected: no more calls to TikTok for it; its orders stay");
        Ok(rec)
    }

    /// Connects a disconnected or deauthorized shop again with its stored
    /// tokens, after checking that TikTok still accepts them for it.
    pub async fn reconnect(&self, id: &str, by: &str) -> Result<ShopRecord, Error> {
        let _changing = self.inner.changes.lock().await;
        let rec = self
            .record(id)?
            .ok_or_else(|| Error::UnknownShop(id.into()))?;
        if rec.status == ShopStatus::Connected && self.is_connected(id) {
            return Ok(rec);
        }
        let g = self
            .grant_record(&rec.grant)?
            .ok_or_else(|| Error::NeedsAuthorization {
                shop: id.into(),
                reason: "no stored tokens".into(),
            })?;
        let tokens = self.open_grant(&g)?;
        // A probe of its own: the pair in use stays as it is.
        let probe = Grant::new(g.key.clone(), tokens);
        let shops = self
            .inner
            .gateway
            .authorized_shops_with(probe)
            .await
            .map_err(|e| Error::NeedsAuthorization {
                shop: id.into(),
                reason: e.to_string(),
            })?;
        if !shops.iter().any(|s| s.id == id) {
            return Err(Error::NeedsAuthorization {
                shop: id.into(),
                reason: "TikTok no longer lists the shop for these tokens".into(),
            });
        }
        let rec = self
            .set_status(rec, ShopStatus::Connected, format!("reconnected by {by}"))
            .await?;
        let me = self.clone();
        let sid = id.to_string();
        actix::spawn(async move { me.check_subscription(&sid).await });
        Ok(rec)
    }

    /// Stores the shop's new status (durably), then starts or stops its
    /// calls and tasks to match.
    async fn set_status(
        &self,
        mut rec: ShopRecord,
        status: ShopStatus,
        reason: String,
    ) -> Result<ShopRecord, Error> {
        rec.status = status;
        rec.status_reason = reason;
        rec.status_changed_ms = self.now_ms();
        self.inner
            .store
            .commit(vec![put(shop_key(&rec.id), &rec)?])
            .await?;
        if status == ShopStatus::Connected {
            if self.make_callable(&rec)? {
                self.go_live(&rec.id);
            }
        } else {
            self.stop_live(&rec.id);
        }
        self.publish_status();
        Ok(rec)
    }

    /// TikTok's SELLER_DEAUTHORIZATION: calls for the shop stop, its
    /// orders stay, people are told.
    pub async fn deauthorized(&self, id: &str, message: &str) -> Result<(), Error> {
        let rec = {
            let _changing = self.inner.changes.lock().await;
            let Some(rec) = self.record(id)? else {
                return Ok(());
            };
            if rec.status == ShopStatus::Deauthorized {
                return Ok(());
            }
            self.set_status(
                rec,
                ShopStatus::Deauthorized,
                format!("the seller deauthorized the app: {message}"),
            )
            .await?
        };
        // Told in the background: TikTok gets its answer first.
        let (me, id, message) = (self.clone(), id.to_string(), message.to_string());
        tokio::spawn(async move {
            let link = me.authorize_link().await.ok().map(|l| l.url);
            let text = format!(
                "TikTok shop {} ({id}) was deauthorized by the seller: orderflow stopped calling TikTok for it; its orders stay readable. Authorize again to reconnect{}",
                rec.name,
                link.as_deref().map(|l| format!(": {l}")).unwrap_or_default()
            );
            me.inner
                .notifier
                .alert(
                    &text,
                    serde_json::json!({"shop_id": id, "event": "shop_deauthorized", "message": message, "link": link}),
                )
                .await;
        });
        Ok(())
    }

    /// TikTok's UPCOMING_AUTHORIZATION_EXPIRATION: an alert with the date
    /// and a link to authorize again.
    pub async fn expiring(&self, id: &str, expiration_time: Option<i64>) {
        let link = self.authorize_link().await.ok().map(|l| l.url);
        let when = expiration_time
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "soon".into());
        let text = format!(
            "The TikTok authorization of shop {id} expires {when}: the seller must authorize again{}",
            link.as_deref().map(|l| format!(": {l}")).unwrap_or_default()
        );
        self.inner
            .notifier
            .alert(
                &text,
                serde_json::json!({"shop_id": id, "event": "authorization_expiring", "expiration_time": expiration_time, "link": link}),
            )
            .await;
    }

    /// A webhook arrived for a connected shop (and, when it names one, an
    /// order).
    pub fn note_webhook(&self, shop: &str, order_id: Option<&str>, now_ms: i64) {
        let mut h = self.inner.health.lock();
        let e = h.entry(shop.to_string()).or_default();
        e.last_webhook_ms = Some(now_ms);
        if let Some(o) = order_id {
            let day = day_of(now_ms);
            if e.orders.0 != day {
                e.orders = (day, HashSet::new());
            }
            e.orders.1.insert(o.to_string());
        }
    }

    /// A webhook for a shop that is not connected was stored: alerts once
    /// per shop until it connects.
    pub async fn unconnected_webhook(&self, shop: &str) {
        let first = {
            let mut h = self.inner.health.lock();
            let e = h.entry(shop.to_string()).or_default();
            !std::mem::replace(&mut e.alerted_unconnected, true)
        };
        if first {
            let known = self.record(shop).ok().flatten();
            let text = match &known {
                Some(r) => format!(
                    "TikTok sent webhooks for shop {shop}, which is {}: they are kept and replayed when it is connected again",
                    r.status.as_str()
                ),
                None => format!(
                    "TikTok sent webhooks for shop {shop}, which orderflow has not connected: they are kept and replayed once the shop is connected (`orderflow shops connect`)"
                ),
            };
            // Told in the background: TikTok gets its answer first.
            let (me, shop) = (self.clone(), shop.to_string());
            tokio::spawn(async move {
                me.inner
                    .notifier
                    .alert(
                        &text,
                        serde_json::json!({"shop_id": shop, "event": "webhook_for_unconnected_shop"}),
                    )
                    .await;
            });
        }
    }

    /// Every shop with its state, for people.
    pub fn list(&self) -> Result<Vec<ShopView>, Error> {
        let now_s = self.now_ms() / 1000;
        let today = day_of(self.now_ms());
        let mut out = Vec::new();
        for rec in self.records()? {
            let g = self.grant_record(&rec.grant)?;
            let health = self.inner.health.lock();
            let h = health.get(&rec.id);
            let refresh_error = h.and_then(|h| h.refresh_error.clone());
            let access = g.as_ref().map(|g| g.access_expires_at).filter(|t| *t > 0);
            let refresh = g.as_ref().map(|g| g.refresh_expires_at).filter(|t| *t > 0);
            let summary = match rec.status {
                ShopStatus::Deauthorized => {
                    "deauthorized: authorize again to reconnect".to_string()
                }
                ShopStatus::Disconnected => "disconnected".to_string(),
                ShopStatus::Connected => match (&refresh_error, refresh) {
                    (Some(e), _) => format!("refresh failing: {e}"),
                    (None, Some(r))
                        if r - now_s < self.inner.config.expiry_warning.as_secs() as i64 =>
                    {
                        let days = ((r - now_s).max(0) + 86_399) / 86_400;
                        format!(
                            "authorization expiring in {days} day{}: authorize again",
                            if days == 1 { "" } else { "s" }
                        )
                    }
                    _ => match access {
                        Some(a) if a <= now_s => {
                            "connected; access token expired, refreshing".into()
                        }
                        Some(a) => format!(
                            "connected; token expiring in {}",
                            humantime::format_duration(Duration::from_secs((a - now_s) as u64))
                        ),
                        None => "connected".into(),
                    },
                },
            };
            out.push(ShopView {
                id: rec.id.clone(),
                name: rec.name.clone(),
                region: rec.region.clone(),
                status: rec.status.as_str(),
                status_reason: rec.status_reason.clone(),
                health: summary,
                from_config: rec.from_config,
                seller_name: g
                    .as_ref()
                    .map(|g| g.seller_name.clone())
                    .unwrap_or_default(),
                token_source: g.as_ref().map(|g| g.source.as_str()),
                tokens_obtained_ms: g.as_ref().map(|g| g.obtained_ms),
                access_expires_at: access,
                refresh_expires_at: refresh,
                refresh_error,
                last_call: self.inner.gateway.last_ok(&rec.id),
                last_webhook_ms: h.and_then(|h| h.last_webhook_ms),
                orders_today: h
                    .filter(|h| h.orders.0 == today)
                    .map(|h| h.orders.1.len())
                    .unwrap_or(0),
                webhooks: match (
                    &self.inner.webhook_address,
                    h.and_then(|h| h.subscription.clone()),
                ) {
                    (None, _) => "not subscribed: no server.public_url (polling only)".into(),
                    (Some(_), Some(s)) => s,
                    (Some(_), None) => "not checked yet".into(),
                },
            });
        }
        Ok(out)
    }

    /// Whether webhooks can be subscribed (a public URL is configured).
    pub fn webhook_address(&self) -> Option<&str> {
        self.inner.webhook_address.as_deref()
    }

    fn set_health(&self, shop: &str, f: impl FnOnce(&mut Health)) {
        f(self
            .inner
            .health
            .lock()
            .entry(shop.to_string())
            .or_default())
    }
}
