//! The TikTok Shop HTTP client: signing, envelopes, error mapping, retries
//! and token refresh, with no queueing of its own.
//!
//! Every HTTP attempt first takes a permit from the shop's rate limiter
//! (governor, `qps × safety_margin`), so retries count against the quota
//! too. The [`super::gateway`] actor adds priorities, a concurrency cap and
//! batching on top; it takes the permit of a call's first attempt itself and
//! tells the client so through a task-local.
//!
//! Error mapping is by envelope `code`, not HTTP status (reference §3):
//! throttling and internal errors are retried with exponential back-off and
//! full jitter within a bounded budget; an expired token is refreshed once
//! (single-flight per shop) and the call repeated; credential and signature
//! errors are fatal and logged loudly; "already shipped" is reported as
//! [`Shipment::AlreadyShipped`], so re-issuing a ship is idempotent.

use std::cell::Cell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use rand::Rng;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codes::{self, Class};
use super::config::{Secret, ShopConfig, TiktokConfig};
use super::dto::*;
use super::metrics as m;
use super::{Error, LastFailure};

tokio::task_local! {
    /// Set by the gateway when it already took the rate-limit permit for
    /// the next HTTP attempt of this task.
    pub(crate) static PREPERMITTED: Cell<bool>;
}

/// A shop's OAuth tokens. `*_expires_at` are Unix seconds when known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
}

impl Tokens {
    /// The pair TikTok answered with; `old_refresh` is kept when TikTok
    /// sent no new refresh token. Expiry times of 0 mean unknown.
    pub fn from_data(data: TokenData, old_refresh: Option<Secret>) -> Tokens {
        Tokens {
            access_token: Secret::new(data.access_token),
            refresh_token: if data.refresh_token.is_empty() {
                old_refresh.unwrap_or_default()
            } else {
                Secret::new(data.refresh_token)
            },
            access_expires_at: Some(data.access_token_expire_in).filter(|t| *t > 0),
            refresh_expires_at: Some(data.refresh_token_expire_in).filter(|t| *t > 0),
        }
    }
}

/// Where refreshed tokens go, so the daemon can persist them (the old
/// refresh token may stop working once a new one is issued). `grant` is
/// the key of the authorization refreshed ([`Grant::key`]): a configured
/// shop's own id, or the key its authorization was stored under.
pub trait TokenSink: Send + Sync + 'static {
    fn tokens_refreshed(&self, grant: &str, tokens: &Tokens);
    /// TikTok answered that the shop's token was deauthorized (105001): the
    /// seller removed the app, whether or not its webhook arrives.
    fn authorization_lost(&self, _shop_id: &str) {}
}

/// One authorization: the token pair TikTok issued a seller, shared by the
/// shops it covers (a refresh for one is a refresh for all of them).
pub struct Grant {
    key: String,
    tokens: RwLock<Tokens>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("key", &self.key).finish()
    }
}

impl Grant {
    pub fn new(key: impl Into<String>, tokens: Tokens) -> Arc<Grant> {
        Arc::new(Grant {
            key: key.into(),
            tokens: RwLock::new(tokens),
            refresh_lock: tokio::sync::Mutex::new(()),
        })
    }
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn tokens(&self) -> Tokens {
        self.tokens.read().clone()
    }
    /// Replaces the pair (a newer one came another way).
    pub fn set_tokens(&self, tokens: Tokens) {
        *self.tokens.write() = tokens;
    }
}

/// A shop to add to a running client.
#[derive(Debug, Clone)]
pub struct ShopSpec {
    pub id: String,
    pub cipher: Option<String>,
    pub region: Option<String>,
    pub qps: f64,
}

/// A sink that keeps nothing (tests, one-off tools).
pub struct DiscardTokens;

impl TokenSink for DiscardTokens {
    fn tokens_refreshed(&self, _shop_id: &str, _tokens: &Tokens) {}
}

/// The result of a ship-like call: re-shipping a shipped package is a
/// success for an idempotent re-issue, but callers can tell it apart.
#[derive(Debug, Clone, PartialEq)]
pub enum Shipment<T> {
    Shipped(T),
    AlreadyShipped { code: i64 },
}

impl<T> Shipment<T> {
    pub fn is_already_shipped(&self) -> bool {
        matches!(self, Shipment::AlreadyShipped { .. })
    }
}

impl ItemError {
    /// Whether this per-package error of Batch Ship means "already shipped".
    pub fn is_already_shipped(&self) -> bool {
        codes::class("batch_ship", self.code) == Class::AlreadyDone
    }
}

pub(crate) struct ShopState {
    pub(crate) id: String,
    cipher: RwLock<Option<String>>,
    cipher_lock: tokio::sync::Mutex<()>,
    /// The shop's region code: configured, or from Get Authorized Shops.
    region: RwLock<Option<String>>,
    grant: RwLock<Arc<Grant>>,
    pub(crate) limiter: DefaultDirectRateLimiter,
    /// When a call for this shop last succeeded (Unix seconds, 0 never).
    last_ok: std::sync::atomic::AtomicI64,
}

impl ShopState {
    fn grant(&self) -> Arc<Grant> {
        self.grant.read().clone()
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: Url,
    app_key: String,
    app_secret: Secret,
    shops: RwLock<HashMap<String, Arc<ShopState>>>,
    safety_margin: f64,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    sink: Arc<dyn TokenSink>,
}

/// The TikTok Shop API client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("app_key", &self.inner.app_key)
            .field("shops", &self.inner.shops.read().len())
            .finish()
    }
}

/// A rate limiter staying under `qps × margin` in steady state, with a
/// burst small enough that no one-second window exceeds `qps` itself.
pub(crate) fn shop_limiter(qps: f64, margin: f64) -> DefaultDirectRateLimiter {
    let rate = (qps * margin).max(0.1);
    let burst = ((qps - rate).floor() as u32).max(1);
    let period = Duration::from_secs_f64(1.0 / rate);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::direct(quota)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What one TikTok response means, read from its HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Code 0 with a 2xx status: the decoded `data` (an empty object when
    /// absent).
    Done(T),
    /// Code 36009002 or HTTP 429: retry after a back-off.
    Throttled(String),
    /// An internal error, a 5xx or an unreadable body with a 5xx: retry.
    Transient(String),
    /// Code 105002: refresh the access token, then retry.
    TokenExpired(String),
}

/// How one attempt ended, before `data` is decoded into the endpoint's type.
type Attempt = Outcome<serde_json::Value>;

/// One request, before signing.
struct Req<'a> {
    endpoint: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    shop: &'a ShopState,
    /// Whether `shop_cipher` goes along (all but `/authorization/*`).
    scoped: bool,
}

impl Client {
    /// Builds a client from a validated configuration.
    pub fn new(config: &TiktokConfig, sink: Arc<dyn TokenSink>) -> Result<Client, Error> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(Error::InvalidConfig(problems));
        }
        let parse = |s: &str| {
            let s = if s.ends_with('/') {
                s.to_string()
            } else {
                format!("{s}/")
            };
            Url::parse(&s).map_err(|e| Error::InvalidConfig(vec![e.to_string()]))
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_concurrency.max(1))
            .build()
            .map_err(|e| Error::InvalidConfig(vec![e.without_url().to_string()]))?;
        let shops = config
            .shops
            .iter()
            .map(|s: &ShopConfig| {
                let st = ShopState {
                    id: s.id.clone(),
                    cipher: RwLock::new(s.cipher.clone()),
                    cipher_lock: tokio::sync::Mutex::new(()),
                    region: RwLock::new(s.region.clone().filter(|r| !r.trim().is_empty())),
                    // A configured shop's own pair, under its own id.
                    grant: RwLock::new(Grant::new(
                        s.id.clone(),
                        Tokens {
                            access_token: s.access_token.clone(),
                            refresh_token: s.refresh_token.clone(),
                            access_expires_at: None,
                            refresh_expires_at: None,
                        },
                    )),
                    limiter: shop_limiter(s.qps, config.safety_margin),
                    last_ok: Default::default(),
                };
                (s.id.clone(), Arc::new(st))
            })
            .collect();
        m::describe();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: parse(&config.base_url)?,
                auth: parse(&config.auth_url)?,
                app_key: config.app_key.clone(),
                app_secret: config.app_secret.clone(),
                shops: RwLock::new(shops),
                safety_margin: config.safety_margin,
                max_attempts: config.max_attempts.max(1),
                backoff_base: config.backoff_base,
                backoff_max: config.backoff_max,
                sink,
            }),
        })
    }

    pub(crate) fn shop(&self, shop_id: &str) -> Result<Arc<ShopState>, Error> {
        self.inner
            .shops
            .read()
            .get(shop_id)
            .cloned()
            .ok_or_else(|| Error::UnknownShop(shop_id.to_string()))
    }

    /// The ids of the shops calls can be made for (configured or connected).
    pub fn shop_ids(&self) -> Vec<String> {
        self.inner.shops.read().keys().cloned().collect()
    }

    /// Adds a shop while running, or points a known one at a new grant
    /// (its limiter and cached cipher stay; a given cipher or region
    /// replaces the cached one).
    pub fn add_shop(&self, spec: &ShopSpec, grant: Arc<Grant>) {
        let mut shops = self.inner.shops.write();
        if let Some(st) = shops.get(&spec.id) {
            *st.grant.write() = grant;
            if let Some(c) = spec.cipher.clone().filter(|c| !c.is_empty()) {
                *st.cipher.write() = Some(c);
            }
            if let Some(r) = spec.region.clone().filter(|r| !r.trim().is_empty()) {
                *st.region.write() = Some(r);
            }
            return;
        }
        let st = ShopState {
            id: spec.id.clone(),
            cipher: RwLock::new(spec.cipher.clone().filter(|c| !c.is_empty())),
            cipher_lock: tokio::sync::Mutex::new(()),
            region: RwLock::new(spec.region.clone().filter(|r| !r.trim().is_empty())),
            grant: RwLock::new(grant),
            limiter: shop_limiter(spec.qps, self.inner.safety_margin),
            last_ok: Default::default(),
        };
        shops.insert(spec.id.clone(), Arc::new(st));
    }

    /// Stops calls for a shop: later calls fail with
    /// [`Error::UnknownShop`]. Returns whether it was there.
    pub fn remove_shop(&self, shop_id: &str) -> bool {
        self.inner.shops.write().remove(shop_id).is_some()
    }

    /// The grant the shop's calls use.
    pub fn grant_of(&self, shop_id: &str) -> Result<Arc<Grant>, Error> {
        Ok(self.shop(shop_id)?.grant())
    }

    /// When a call for the shop last succeeded (Unix seconds), if ever.
    pub fn last_ok(&self, shop_id: &str) -> Option<i64> {
        let t = self
            .shop(shop_id)
            .ok()?
            .last_ok
            .load(std::sync::atomic::Ordering::Relaxed);
        (t > 0).then_some(t)
    }

    /// The shop's current tokens (e.g. after a refresh).
    pub fn tokens(&self, shop_id: &str) -> Result<Tokens, Error> {
        Ok(self.shop(shop_id)?.grant().tokens())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .inner
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.inner.backoff_max);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    async fn permit(&self, shop: &ShopState) {
        let pre = PREPERMITTED.try_with(|c| c.replace(false)).unwrap_or(false);
        if !pre {
            shop.limiter.until_ready().await;
        }
    }

    /// Builds the signed URL of one attempt.
    fn url(&self, req: &Req<'_>, cipher: Option<&str>) -> Result<Url, Error> {
        let mut pairs: Vec<(&str, String)> = vec![
            ("app_key", self.inner.app_key.clone()),
            ("timestamp", unix_now().to_string()),
        ];
        if let Some(c) = cipher {
            pairs.push(("shop_cipher", c.to_string()));
        }
        for (k, v) in &req.query {
            // Empty values are omitted (reference §1.1).
            if !v.is_empty() {
                pairs.push((k, v.clone()));
            }
        }
        let path = req.path.trim_start_matches('/');
        let mut url = self
            .inner
            .base
            .join(path)
            .map_err(|e| Error::InvalidRequest(format!("bad path {path:?}: {e}")))?;
        let sign = super::sign::sign(
            self.inner.app_secret.expose(),
            url.path(),
            pairs.iter().map(|(k, v)| (*k, v.as_str())),
            req.body.as_deref(),
        );
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &pairs {
                q.append_pair(k, v);
            }
            q.append_pair("sign", &sign);
        }
        Ok(url)
    }

    async fn attempt(
        &self,
        req: &Req<'_>,
        cipher: Option<&str>,
        token: &Secret,
    ) -> Result<(Attempt, bool), Error> {
        let url = self.url(req, cipher)?;
        let mut timed_out = false;
        let mut rb = self
            .inner
            .http
            .request(req.method.clone(), url)
            .header("x-tts-access-token", token.expose());
        if let Some(body) = &req.body {
            rb = rb
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let started = Instant::now();
        let result = rb.send().await;
        let outcome = match result {
            Err(e) => {
                timed_out = e.is_timeout();
                let transient = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
                if transient {
                    Ok(Outcome::Transient(e.without_url().to_string()))
                } else {
                    Err(Error::transport(req.endpoint, e))
                }
            }
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Err(e) => Ok(Outcome::Transient(e.without_url().to_string())),
                    Ok(bytes) => classify(req.endpoint, status, &bytes),
                }
            }
        };
        metrics::histogram!(m::REQUEST_DURATION_SECONDS, "endpoint" => req.endpoint)
            .record(started.elapsed().as_secs_f64());
        let label = match &outcome {
            Ok(Outcome::Done(_)) => "ok",
            Ok(Outcome::Throttled(_)) => "throttled",
            Ok(Outcome::Transient(_)) => "transient",
            Ok(Outcome::TokenExpired(_)) => "token_expired",
            Err(Error::Config { .. }) => "fatal",
            Err(Error::Configuration { .. }) => "configuration",
            Err(Error::Api { code, .. })
                if codes::class(req.endpoint, *code) == Class::AlreadyDone =>
            {
                "already_done"
            }
            Err(Error::Api { .. }) => "api_error",
            Err(_) => "transport",
        };
        metrics::counter!(m::REQUESTS_TOTAL, "endpoint" => req.endpoint, "outcome" => label)
            .increment(1);
        outcome.map(|o| (o, timed_out))
    }

    /// Runs one call through the retry loop and decodes `data`.
    async fn call<T: DeserializeOwned>(&self, req: Req<'_>) -> Result<T, Error> {
        let cipher = if req.scoped {
            Some(self.cipher(req.shop).await?)
        } else {
            None
        };
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            attempts += 1;
            self.permit(req.shop).await;
            let token = req.shop.grant().tokens().access_token;
            let (outcome, timed_out) = match self.attempt(&req, cipher.as_deref(), &token).await {
                Ok(x) => x,
                Err(
                    e @ Error::Config {
                        code: codes::ACCESS_TOKEN_INVALID,
                        ..
                    },
                ) => {
                    // Only for the pair in use now: a call made with a pair
                    // replaced meanwhile (a new authorization, a rotation)
                    // says nothing about the shop.
                    let current = req.shop.grant().tokens().access_token == token;
                    if current && !req.shop.id.is_empty() {
                        self.inner.sink.authorization_lost(&req.shop.id);
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let mut last_failure = LastFailure::Transient;
            let last = match outcome {
                Outcome::Done(data) => {
                    req.shop
                        .last_ok
                        .store(unix_now(), std::sync::atomic::Ordering::Relaxed);
                    return decode_data(req.endpoint, data);
                }
                Outcome::TokenExpired(message) => {
                    if refreshed {
                        tracing::error!(shop_id = %req.shop.id, endpoint = req.endpoint,
                            "TikTok still reports the access token expired right after a refresh");
                        return Err(Error::Config {
                            endpoint: req.endpoint,
                            code: codes::TOKEN_EXPIRED,
                            message,
                        });
                    }
                    self.refresh_if_current(req.shop, &token).await?;
                    refreshed = true;
                    // A refresh is not a failure of the call: not counted.
                    attempts -= 1;
                    continue;
                }
                Outcome::Throttled(msg) => {
                    metrics::counter!(m::THROTTLED_TOTAL).increment(1);
                    last_failure = LastFailure::Throttled;
                    format!("throttled: {msg}")
                }
                Outcome::Transient(msg) => {
                    if timed_out {
                        last_failure = LastFailure::TimedOut;
                    }
                    msg
                }
            };
            if attempts >= self.inner.max_attempts {
                tracing::warn!(endpoint = req.endpoint, shop_id = %req.shop.id, attempts, error = %last,
                    "TikTok call gave up after its retry budget");
                return Err(Error::RetriesExhausted {
                    endpoint: req.endpoint,
                    attempts,
                    last,
                    last_failure,
                });
            }
            metrics::counter!(m::RETRIES_TOTAL, "endpoint" => req.endpoint).increment(1);
            tracing::debug!(endpoint = req.endpoint, shop_id = %req.shop.id, attempts, error = %last, "Retrying TikTok call");
            tokio::time::sleep(self.backoff(attempts)).await;
        }
    }

    /// The shop's cipher, fetched once from Get Authorized Shops if the
    /// configuration did not give it.
    async fn cipher(&self, shop: &ShopState) -> Result<String, Error> {
        if let Some(c) = shop.cipher.read().clone() {
            return Ok(c);
        }
        let _g = shop.cipher_lock.lock().await;
        if let Some(c) = shop.cipher.read().clone() {
            return Ok(c);
        }
        // Boxed: `call` → `cipher` → `call` would be an infinitely sized future.
        let shops = Box::pin(self.authorized_shops_of(shop)).await?;
        let found = shops
            .into_iter()
            .find(|s| s.id == shop.id)
            .map(|s| s.cipher)
            .filter(|c| !c.is_empty());
        match found {
            Some(c) => {
                *shop.cipher.write() = Some(c.clone());
                Ok(c)
            }
            None => Err(Error::NoCipher(shop.id.clone())),
        }
    }

    /// Refreshes the shop's token unless another caller already replaced
    /// `used` (single-flight: concurrent callers wait on the lock, then see
    /// the new token and skip).
    async fn refresh_if_current(&self, shop: &ShopState, used: &Secret) -> Result<(), Error> {
        self.refresh_grant(&shop.grant(), Some(used), &shop.id)
            .await
            .map(|_| ())
    }

    /// Refreshes a grant's pair, single-flight: with `used`, only if the
    /// grant still holds that access token (else another caller refreshed
    /// it meanwhile and its result is returned). `who` names the shop in
    /// logs and errors.
    pub async fn refresh_grant(
        &self,
        grant: &Arc<Grant>,
        used: Option<&Secret>,
        who: &str,
    ) -> Result<Tokens, Error> {
        let _g = grant.refresh_lock.lock().await;
        if let Some(used) = used {
            if grant.tokens.read().access_token != *used {
                return Ok(grant.tokens());
            }
        }
        let refresh = grant.tokens.read().refresh_token.clone();
        let data = self
            .auth_call(
                "token_refresh",
                "api/v2/token/refresh",
                &[
                    ("refresh_token", refresh.expose()),
                    ("grant_type", "refresh_token"),
                ],
                Some(who),
            )
            .await?;
        let tokens = Tokens::from_data(data, Some(refresh));
        grant.set_tokens(tokens.clone());
        tracing::info!(shop_id = %who, grant = %grant.key, "Refreshed the TikTok access token");
        self.inner.sink.tokens_refreshed(&grant.key, &tokens);
        Ok(tokens)
    }

    /// Forces a refresh of the shop's access token.
    pub async fn refresh_token(&self, shop_id: &str) -> Result<Tokens, Error> {
        let shop = self.shop(shop_id)?;
        self.refresh_grant(&shop.grant(), None, shop_id).await
    }

    /// `GET /authorization/202309/shops` with a grant that no shop uses
    /// yet (right after an authorization code was exchanged).
    pub async fn authorized_shops_with(
        &self,
        grant: Arc<Grant>,
    ) -> Result<Vec<AuthorizedShop>, Error> {
        let probe = ShopState {
            id: String::new(),
            cipher: RwLock::new(None),
            cipher_lock: tokio::sync::Mutex::new(()),
            region: RwLock::new(None),
            grant: RwLock::new(grant),
            limiter: shop_limiter(1.0, 1.0),
            last_ok: Default::default(),
        };
        self.authorized_shops_of(&probe).await
    }

    /// Exchanges an authorization code for tokens (auth host).
    pub async fn get_token(&self, auth_code: &str) -> Result<TokenData, Error> {
        self.auth_call(
            "token_get",
            "api/v2/token/get",
            &[("auth_code", auth_code), ("grant_type", "authorized_code")],
            None,
        )
        .await
    }

    async fn auth_call(
        &self,
        endpoint: &'static str,
        path: &str,
        params: &[(&str, &str)],
        shop_id: Option<&str>,
    ) -> Result<TokenData, Error> {
        let mut url = self
            .inner
            .auth
            .join(path)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("app_key", &self.inner.app_key);
            q.append_pair("app_secret", self.inner.app_secret.expose());
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        let fail = |code: i64, message: String| {
            tracing::error!(shop_id = shop_id.unwrap_or("-"), endpoint, code, message = %message,
                "TikTok token call failed; the seller may need to re-authorize");
            Error::TokenRefresh {
                shop_id: shop_id.unwrap_or("-").to_string(),
                code,
                message,
            }
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let res = self.inner.http.get(url.clone()).send().await;
            let mut last_failure = LastFailure::Transient;
            let transient = match res {
                Err(e) => {
                    if e.is_timeout() {
                        last_failure = LastFailure::TimedOut;
                    }
                    e.without_url().to_string()
                }
                Ok(resp) => {
                    let status = resp.status();
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| Error::transport(endpoint, e))?;
                    match serde_json::from_slice::<Envelope<TokenData>>(&bytes) {
                        Ok(env) if env.code == 0 => {
                            metrics::counter!(m::REQUESTS_TOTAL, "endpoint" => endpoint, "outcome" => "ok").increment(1);
                            return env.data.ok_or_else(|| fail(0, "no data".into()));
                        }
                        Ok(env)
                            if env.code == codes::INTERNAL_ERROR
                                || env.code == codes::TOO_MANY_REQUESTS
                                || status.is_server_error() =>
                        {
                            if env.code == codes::TOO_MANY_REQUESTS {
                                last_failure = LastFailure::Throttled;
                            }
                            format!("code {}: {}", env.code, env.message)
                        }
                        Ok(env) => return Err(fail(env.code, env.message)),
                        Err(_) if status.is_server_error() || status.as_u16() == 429 => {
                            if status.as_u16() == 429 {
                                last_failure = LastFailure::Throttled;
                            }
                            format!("HTTP {status}")
                        }
                        Err(e) => {
                            return Err(Error::Decode {
                                endpoint,
                                message: e.to_string(),
                            })
                        }
                    }
                }
            };
            metrics::counter!(m::REQUESTS_TOTAL, "endpoint" => endpoint, "outcome" => "transient")
                .increment(1);
            if attempts >= self.inner.max_attempts {
                return Err(Error::RetriesExhausted {
                    endpoint,
                    attempts,
                    last: transient,
                    last_failure,
                });
            }
            tokio::time::sleep(self.backoff(attempts)).await;
        }
    }

    fn json<B: Serialize>(endpoint: &'static str, body: &B) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(body).map_err(|e| Error::Decode {
            endpoint,
            message: e.to_string(),
        })
    }

    fn req<'a>(
        &self,
        shop: &'a ShopState,
        endpoint: &'static str,
        method: Method,
        path: String,
    ) -> Req<'a> {
        Req {
            endpoint,
            method,
            path,
            query: Vec::new(),
            body: None,
            shop,
            scoped: true,
        }
    }

    async fn authorized_shops_of(&self, shop: &ShopState) -> Result<Vec<AuthorizedShop>, Error> {
        let mut r = self.req(
            shop,
            "authorized_shops",
            Method::GET,
            "/authorization/202309/shops".into(),
        );
        r.scoped = false;
        let d: AuthorizedShopsData = self.call(r).await?;
        // Remember the ciphers and regions of configured shops that lacked
        // them.
        for s in &d.shops {
            let st = self.inner.shops.read().get(&s.id).cloned();
            if let Some(st) = st {
                let mut c = st.cipher.write();
                if c.is_none() && !s.cipher.is_empty() {
                    *c = Some(s.cipher.clone());
                }
                let mut r = st.region.write();
                if r.is_none() && !s.region.is_empty() {
                    *r = Some(s.region.clone());
                }
            }
        }
        Ok(d.shops)
    }

    /// The shop's market if known without a call (configured or read
    /// before); `Err` for a region that is no market.
    pub fn known_market(&self, shop_id: &str) -> Result<Option<super::reasons::Market>, Error> {
        let shop = self.shop(shop_id)?;
        let region = shop.region.read().clone();
        match region {
            None => Ok(None),
            Some(r) => super::reasons::Market::from_region(&r)
                .map(Some)
                .ok_or_else(|| Error::UnknownMarket {
                    shop_id: shop_id.to_string(),
                    region: r,
                }),
        }
    }

    /// The shop's market (its cancel reasons differ): the configured
    /// `region`, else the one Get Authorized Shops reports (read once).
    pub async fn market(&self, shop_id: &str) -> Result<super::reasons::Market, Error> {
        let shop = self.shop(shop_id)?;
        let known = shop.region.read().clone();
        let region = match known {
            Some(r) => r,
            None => {
                self.authorized_shops_of(&shop).await?;
                let r = shop.region.read().clone();
                r.ok_or_else(|| Error::UnknownMarket {
                    shop_id: shop_id.to_string(),
                    region: String::new(),
                })?
            }
        };
        super::reasons::Market::from_region(&region).ok_or_else(|| Error::UnknownMarket {
            shop_id: shop_id.to_string(),
            region,
        })
    }

    /// `GET /authorization/202309/shops` with this shop's token.
    pub async fn authorized_shops(&self, shop_id: &str) -> Result<Vec<AuthorizedShop>, Error> {
        let shop = self.shop(shop_id)?;
        self.authorized_shops_of(&shop).await
    }

    /// `POST /order/202309/orders/search`.
    pub async fn search_orders(
        &self,
        shop_id: &str,
        filter: &SearchOrdersFilter,
        page: &SearchOrdersPage,
    ) -> Result<SearchOrdersData, Error> {
        if !(1..=100).contains(&page.page_size) {
            return Err(Error::InvalidRequest(format!(
                "page_size must be 1..=100, got {}",
                page.page_size
            )));
        }
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "search_orders",
            Method::POST,
            "/order/202309/orders/search".into(),
        );
        r.query.push(("page_size", page.page_size.to_string()));
        r.query
            .push(("page_token", page.page_token.clone().unwrap_or_default()));
        r.query
            .push(("sort_field", page.sort_field.clone().unwrap_or_default()));
        r.query
            .push(("sort_order", page.sort_order.clone().unwrap_or_default()));
        r.body = Some(Self::json("search_orders", filter)?);
        self.call(r).await
    }

    /// `GET /order/202309/orders?ids=…`, at most 50 ids.
    pub async fn order_detail(
        &self,
        shop_id: &str,
        ids: &[String],
    ) -> Result<Vec<WireOrder>, Error> {
        if ids.is_empty() || ids.len() > 50 {
            return Err(Error::InvalidRequest(format!(
                "order detail takes 1..=50 ids, got {}",
                ids.len()
            )));
        }
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "order_detail",
            Method::GET,
            "/order/202309/orders".into(),
        );
        r.query.push(("ids", ids.join(",")));
        let d: OrderDetailData = self.call(r).await?;
        Ok(d.orders)
    }

    async fn shipment<T: DeserializeOwned>(&self, r: Req<'_>) -> Result<Shipment<T>, Error> {
        match self.call(r).await {
            Ok(t) => Ok(Shipment::Shipped(t)),
            Err(Error::Api { endpoint, code, .. })
                if codes::class(endpoint, code) == Class::AlreadyDone =>
            {
                Ok(Shipment::AlreadyShipped { code })
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /fulfillment/202309/packages/{package_id}/ship`.
    pub async fn ship_package(
        &self,
        shop_id: &str,
        package_id: &str,
        body: &ShipPackageRequest,
    ) -> Result<Shipment<()>, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "ship_package",
            Method::POST,
            format!(
                "/fulfillment/202309/packages/{}/ship",
                path_seg(package_id)?
            ),
        );
        r.body = Some(Self::json("ship_package", body)?);
        let s: Shipment<serde_json::Value> = self.shipment(r).await?;
        Ok(match s {
            Shipment::Shipped(_) => Shipment::Shipped(()),
            Shipment::AlreadyShipped { code } => Shipment::AlreadyShipped { code },
        })
    }

    /// `GET /fulfillment/202309/packages/{package_id}/shipping_documents`:
    /// the URL (valid 24 h) of a TikTok Shipping package's documents.
    /// `document_type` is one of TikTok's (`SHIPPING_LABEL`,
    /// `PACKING_SLIP`, `SHIPPING_LABEL_AND_PACKING_SLIP`, …), `document_size`
    /// `A6` or `A5`.
    pub async fn shipping_document(
        &self,
        shop_id: &str,
        package_id: &str,
        document_type: &str,
        document_size: &str,
    ) -> Result<ShippingDocumentData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "shipping_document",
            Method::GET,
            format!(
                "/fulfillment/202309/packages/{}/shipping_documents",
                path_seg(package_id)?
            ),
        );
        r.query.push(("document_type", document_type.to_string()));
        r.query.push(("document_size", document_size.to_string()));
        self.call(r).await
    }

    /// `POST /fulfillment/202309/packages/ship`. Per-package failures come
    /// back in `errors` (see [`ItemError::is_already_shipped`]).
    pub async fn batch_ship(
        &self,
        shop_id: &str,
        body: &BatchShipRequest,
    ) -> Result<ItemErrorsData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "batch_ship",
            Method::POST,
            "/fulfillment/202309/packages/ship".into(),
        );
        r.body = Some(Self::json("batch_ship", body)?);
        self.call(r).await
    }

    /// `POST /fulfillment/202309/orders/{order_id}/packages`.
    pub async fn mark_package_shipped(
        &self,
        shop_id: &str,
        order_id: &str,
        body: &MarkShippedRequest,
    ) -> Result<Shipment<MarkShippedData>, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "mark_package_shipped",
            Method::POST,
            format!(
                "/fulfillment/202309/orders/{}/packages",
                path_seg(order_id)?
            ),
        );
        r.body = Some(Self::json("mark_package_shipped", body)?);
        self.shipment(r).await
    }

    /// `POST /fulfillment/202309/orders/{order_id}/shipping_info/update`.
    pub async fn update_shipping_info(
        &self,
        shop_id: &str,
        order_id: &str,
        body: &UpdateShippingInfoRequest,
    ) -> Result<(), Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "update_shipping_info",
            Method::POST,
            format!(
                "/fulfillment/202309/orders/{}/shipping_info/update",
                path_seg(order_id)?
            ),
        );
        r.body = Some(Self::json("update_shipping_info", body)?);
        let _: serde_json::Value = self.call(r).await?;
        Ok(())
    }

    /// `GET /logistics/202309/delivery_options/{id}/shipping_providers`.
    pub async fn shipping_providers(
        &self,
        shop_id: &str,
        delivery_option_id: &str,
    ) -> Result<Vec<ShippingProvider>, Error> {
        let shop = self.shop(shop_id)?;
        let r = self.req(
            &shop,
            "shipping_providers",
            Method::GET,
            format!(
                "/logistics/202309/delivery_options/{}/shipping_providers",
                path_seg(delivery_option_id)?
            ),
        );
        let d: ShippingProvidersData = self.call(r).await?;
        Ok(d.shipping_providers)
    }

    /// `POST /return_refund/202309/cancellations/search` (one page of up
    /// to 50; `page_size` is a string on this endpoint).
    pub async fn search_cancellations(
        &self,
        shop_id: &str,
        filter: &SearchCancellationsFilter,
    ) -> Result<SearchCancellationsData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "search_cancellations",
            Method::POST,
            "/return_refund/202309/cancellations/search".into(),
        );
        r.query.push(("page_size", "50".into()));
        r.body = Some(Self::json("search_cancellations", filter)?);
        self.call(r).await
    }

    /// `POST /return_refund/202309/returns/search` (one page of up to 50;
    /// `page_size` is a string here, valid 10 to 50).
    pub async fn search_returns(
        &self,
        shop_id: &str,
        filter: &SearchReturnsFilter,
        page_token: Option<&str>,
    ) -> Result<SearchReturnsData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "search_returns",
            Method::POST,
            "/return_refund/202309/returns/search".into(),
        );
        r.query.push(("page_size", "50".into()));
        if let Some(t) = page_token.filter(|t| !t.is_empty()) {
            r.query.push(("page_token", t.to_string()));
        }
        r.body = Some(Self::json("search_returns", filter)?);
        self.call(r).await
    }

    /// `POST /return_refund/202309/cancellations/{cancel_id}/approve`,
    /// with an idempotency key (a replay is not a second approval).
    pub async fn approve_cancellation(
        &self,
        shop_id: &str,
        cancel_id: &str,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "approve_cancellation",
            Method::POST,
            format!(
                "/return_refund/202309/cancellations/{}/approve",
                path_seg(cancel_id)?
            ),
        );
        r.query
            .push(("idempotency_key", idempotency_key.to_string()));
        r.body = Some(b"{}".to_vec());
        let _: serde_json::Value = self.call(r).await?;
        Ok(())
    }

    /// `POST /return_refund/202309/cancellations/{cancel_id}/reject`.
    pub async fn reject_cancellation(
        &self,
        shop_id: &str,
        cancel_id: &str,
        body: &RejectCancellationRequest,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "reject_cancellation",
            Method::POST,
            format!(
                "/return_refund/202309/cancellations/{}/reject",
                path_seg(cancel_id)?
            ),
        );
        r.query
            .push(("idempotency_key", idempotency_key.to_string()));
        r.body = Some(Self::json("reject_cancellation", body)?);
        let _: serde_json::Value = self.call(r).await?;
        Ok(())
    }

    /// `GET /logistics/202309/warehouses`.
    pub async fn warehouses(&self, shop_id: &str) -> Result<Vec<Warehouse>, Error> {
        let shop = self.shop(shop_id)?;
        let r = self.req(
            &shop,
            "warehouses",
            Method::GET,
            "/logistics/202309/warehouses".into(),
        );
        let d: WarehousesData = self.call(r).await?;
        Ok(d.warehouses)
    }

    /// `GET /logistics/202309/warehouses/{warehouse_id}/delivery_options`.
    pub async fn delivery_options(
        &self,
        shop_id: &str,
        warehouse_id: &str,
    ) -> Result<Vec<DeliveryOption>, Error> {
        let shop = self.shop(shop_id)?;
        let r = self.req(
            &shop,
            "delivery_options",
            Method::GET,
            format!(
                "/logistics/202309/warehouses/{}/delivery_options",
                path_seg(warehouse_id)?
            ),
        );
        let d: DeliveryOptionsData = self.call(r).await?;
        Ok(d.delivery_options)
    }

    /// `POST /return_refund/202309/cancellations` (seller cancel).
    pub async fn cancel_order(
        &self,
        shop_id: &str,
        body: &CancelOrderRequest,
    ) -> Result<CancelOrderData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "cancel_order",
            Method::POST,
            "/return_refund/202309/cancellations".into(),
        );
        r.body = Some(Self::json("cancel_order", body)?);
        self.call(r).await
    }

    /// `POST /product/202309/products/{product_id}/inventory/update`.
    pub async fn update_inventory(
        &self,
        shop_id: &str,
        product_id: &str,
        body: &UpdateInventoryRequest,
    ) -> Result<ItemErrorsData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "update_inventory",
            Method::POST,
            format!(
                "/product/202309/products/{}/inventory/update",
                path_seg(product_id)?
            ),
        );
        r.body = Some(Self::json("update_inventory", body)?);
        self.call(r).await
    }

    /// `POST /product/202309/inventory/search`.
    pub async fn inventory_search(
        &self,
        shop_id: &str,
        body: &InventorySearchRequest,
    ) -> Result<InventorySearchData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "inventory_search",
            Method::POST,
            "/product/202309/inventory/search".into(),
        );
        r.body = Some(Self::json("inventory_search", body)?);
        self.call(r).await
    }

    /// `POST /product/202502/products/search`: one page of the shop's
    /// products (`page_size` at most 100).
    pub async fn search_products(
        &self,
        shop_id: &str,
        body: &SearchProductsRequest,
        page_size: u32,
        page_token: &str,
    ) -> Result<SearchProductsData, Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "search_products",
            Method::POST,
            "/product/202502/products/search".into(),
        );
        r.query = vec![
            ("page_size", page_size.clamp(1, 100).to_string()),
            ("page_token", page_token.to_string()),
        ];
        r.body = Some(Self::json("search_products", body)?);
        self.call(r).await
    }

    /// `GET /product/202309/products/{product_id}`.
    pub async fn get_product(&self, shop_id: &str, product_id: &str) -> Result<Product, Error> {
        let shop = self.shop(shop_id)?;
        let r = self.req(
            &shop,
            "get_product",
            Method::GET,
            format!("/product/202309/products/{product_id}"),
        );
        self.call(r).await
    }

    /// `GET /event/202309/webhooks`.
    pub async fn webhooks(&self, shop_id: &str) -> Result<Vec<ShopWebhook>, Error> {
        let shop = self.shop(shop_id)?;
        let r = self.req(
            &shop,
            "get_webhooks",
            Method::GET,
            "/event/202309/webhooks".into(),
        );
        let d: ShopWebhooksData = self.call(r).await?;
        Ok(d.webhooks)
    }

    /// `PUT /event/202309/webhooks`.
    pub async fn put_webhook(
        &self,
        shop_id: &str,
        body: &UpdateWebhookRequest,
    ) -> Result<(), Error> {
        if body.address.len() > 255 {
            return Err(Error::InvalidRequest(
                "webhook address is over 255 characters".into(),
            ));
        }
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "put_webhook",
            Method::PUT,
            "/event/202309/webhooks".into(),
        );
        r.body = Some(Self::json("put_webhook", body)?);
        let _: serde_json::Value = self.call(r).await?;
        Ok(())
    }

    /// `DELETE /event/202309/webhooks`.
    pub async fn delete_webhook(&self, shop_id: &str, event_type: &str) -> Result<(), Error> {
        let shop = self.shop(shop_id)?;
        let mut r = self.req(
            &shop,
            "delete_webhook",
            Method::DELETE,
            "/event/202309/webhooks".into(),
        );
        r.body = Some(Self::json(
            "delete_webhook",
            &DeleteWebhookRequest {
                event_type: event_type.to_string(),
            },
        )?);
        let _: serde_json::Value = self.call(r).await?;
        Ok(())
    }
}

/// Reads a response's envelope: error mapping is by envelope `code`, not
/// HTTP status (reference §3). `data` stays raw JSON here.
fn classify(endpoint: &'static str, status: StatusCode, bytes: &[u8]) -> Result<Attempt, Error> {
    let env: Envelope<serde_json::Value> = match serde_json::from_slice(bytes) {
        Ok(env) => env,
        Err(e) => {
            return if status == StatusCode::TOO_MANY_REQUESTS {
                Ok(Outcome::Throttled(format!("HTTP {status}")))
            } else if status.is_server_error() {
                Ok(Outcome::Transient(format!("HTTP {status}")))
            } else {
                Err(Error::Decode {
                    endpoint,
                    message: format!("HTTP {status}: {e}"),
                })
            };
        }
    };
    let code = env.code;
    match code {
        codes::OK if status.is_success() => {
            return Ok(Outcome::Done(
                env.data
                    .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            ))
        }
        codes::OK => return Ok(Outcome::Transient(format!("HTTP {status} with code 0"))),
        codes::TOO_MANY_REQUESTS => return Ok(Outcome::Throttled(env.message)),
        codes::TOKEN_EXPIRED => return Ok(Outcome::TokenExpired(env.message)),
        _ => {}
    }
    // Every other code by what TikTok's reference lists for this endpoint
    // (see `codes`); an unlisted one is a business answer unless the HTTP
    // status says to retry.
    match codes::lookup(endpoint, code).map(|(class, _)| class) {
        Some(Class::TryAgain) => Ok(Outcome::Transient(format!("code {code}: {}", env.message))),
        Some(Class::Credentials) => {
            tracing::error!(
                endpoint,
                code,
                message = %env.message,
                request_id = %env.request_id,
                "TikTok rejected orderflow's credentials or signature; fix the [tiktok] configuration"
            );
            Err(Error::Config {
                endpoint,
                code,
                message: env.message,
            })
        }
        Some(Class::Configuration) => {
            metrics::counter!(m::CONFIGURATION_ERRORS_TOTAL, "endpoint" => endpoint, "code" => code.to_string())
                .increment(1);
            tracing::error!(
                endpoint,
                code,
                message = %env.message,
                request_id = %env.request_id,
                "TikTok refuses this call for the app's or shop's setup (API version, scope, IP allow list, region); no retry will help"
            );
            Err(Error::Configuration {
                endpoint,
                code,
                message: env.message,
            })
        }
        None | Some(Class::Rejected) if status == StatusCode::TOO_MANY_REQUESTS => {
            Ok(Outcome::Throttled(env.message))
        }
        None | Some(Class::Rejected) if status.is_server_error() => Ok(Outcome::Transient(
            format!("HTTP {status}, code {code}: {}", env.message),
        )),
        Some(Class::AlreadyDone | Class::Rejected) | None => Err(Error::Api {
            endpoint,
            code,
            message: env.message,
            request_id: env.request_id,
        }),
    }
}

/// Decodes a successful call's `data` into the endpoint's type.
fn decode_data<T: DeserializeOwned>(
    endpoint: &'static str,
    data: serde_json::Value,
) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Decode {
        endpoint,
        message: e.to_string(),
    })
}

/// What the client makes of one raw response: the envelope read and
/// classified, and on success `data` decoded as `T` — the same two steps
/// every call goes through, without the HTTP. A body that is not an
/// envelope is `Err(Error::Decode)` unless the status says to retry.
pub fn decode<T: DeserializeOwned>(
    endpoint: &'static str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<Outcome<T>, Error> {
    Ok(match classify(endpoint, status, bytes)? {
        Outcome::Done(data) => Outcome::Done(decode_data(endpoint, data)?),
        Outcome::Throttled(m) => Outcome::Throttled(m),
        Outcome::Transient(m) => Outcome::Transient(m),
        Outcome::TokenExpired(m) => Outcome::TokenExpired(m),
    })
}

/// An id placed in a path must not be able to change the path.
fn path_seg(id: &str) -> Result<&str, Error> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::InvalidRequest(format!("{id:?} is not a valid id")));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_never_allows_more_than_qps_in_a_second() {
        for (qps, margin) in [(50.0, 0.9), (5.0, 0.9), (10.0, 0.5), (100.0, 0.95)] {
            let l = shop_limiter(qps, margin);
            let mut n = 0;
            while l.check().is_ok() {
                n += 1;
            }
            // A one-second window [t, t+1) starting with the whole burst
            // holds the burst plus ceil(rate) - 1 replenished cells.
            let rate: f64 = qps * margin;
            assert!(n as f64 + rate.ceil() - 1.0 <= qps, "qps {qps}: burst {n}");
            assert!(n >= 1);
        }
    }

    #[test]
    fn path_segments_are_checked() {
        assert!(path_seg("576461413038785752").is_ok());
        assert!(path_seg("../x").is_err());
        assert!(path_seg("").is_err());
    }
}
