//! Who may call what: the gate in front of the admin API and the console.
//!
//! Two kinds of caller, two proofs:
//!
//! - **Scripts and the CLI** send `Authorization: Bearer <token>`: the
//!   admin token (compared in constant time; automation and the bootstrap)
//!   or a person's API token (`oft_…`, looked up by its hash:
//!   [`crate::people`]). A bearer header is never sent by a browser on its
//!   own, so it needs no CSRF defence.
//! - **People in the console** sign in once (`POST /login` with their name
//!   and password, or the admin token) and then hold a session named by an
//!   `HttpOnly; SameSite=Strict` cookie, kept in the store so a restart
//!   logs nobody out: JavaScript never sees the cookie. A cookie *is* sent
//!   by the browser on its own, so every state-changing request that rides
//!   on it must also carry the session's CSRF token in `X-CSRF-Token`.
//!
//! Either way the gate finds a [`Principal`] (a name and a role) and puts
//! it on the request: a **viewer** is refused every change here (403);
//! what needs an **admin** (people, workflows, shops, backups, retention,
//! raw events) the handlers refuse with [`require`]. Interventions, stock
//! and mapping changes are recorded under the principal's name.
//!
//! Before either, two checks that hold with or without a token:
//!
//! - **Host:** a request whose `Host` is not one of the daemon's names
//!   ([`AllowedHosts`]: `[server] allowed_hosts`, the listen address and the
//!   loopback names) is refused with 403, so a page that rebinds its own
//!   DNS name to 127.0.0.1 cannot drive a token-less loopback daemon.
//! - **Cross-site:** every state-changing request that names another site
//!   in `Origin` or `Sec-Fetch-Site` is refused with 403, token or not.
//!
//! **Where the gate sits.** Each check is middleware on the route scopes
//! themselves ([`gate_api`] on `/api/v1` and `/logout`, [`gate_page`] on
//! the console's pages, [`gate_open`] on the login form), never on the app
//! in front of the router: the router matches the percent-decoded path, so
//! a gate that read the raw path could be walked around with `/%61pi/…`.
//! Whatever the spelling, a request reaches a handler only through its
//! scope, and so through its gate. Webhooks (TikTok is a server, the HMAC
//! is its proof), health, readiness and metrics have no gate.
//!
//! Logins are rate limited ([`LoginLimiter`]): per source address with a
//! growing wait; per login name, each wrong answer slower than the last
//! ([`login_delay`]) and a lock of that login after 20 wrong in a row from
//! anywhere (counted in `orderflow_console_login_locks_total`). Wrong
//! bearer tokens count against their source too (not the
//! account, so a guesser cannot lock the CLI out). With no token (loopback only, enforced by `config::validate`)
//! only the host and cross-site checks apply.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use parking_lot::Mutex;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::people::{Principal, Role, Via};

/// The session cookie's name.
pub const COOKIE: &str = "orderflow_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// Wrong logins a source may make before each further try must wait.
const SOURCE_FREE_FAILURES: u32 = 5;
/// The longest wait between tries, for a source and for the account.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Wrong logins in a row, from anywhere, that lock the login for
/// [`MAX_BACKOFF`]. The bearer token keeps working for the CLI and scripts.
const ACCOUNT_LOCK_FAILURES: u32 = 20;
/// Sources remembered at once; the stalest go first beyond it.
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    /// No try is taken before this.
    until: Option<Instant>,
    last: Instant,
}

/// Why a login was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// `source` (this address is backing off) or `account` (the login is
    /// locked).
    pub reason: &'static str,
    pub retry_after: Duration,
}

/// How long the answer to a wrong login waits: 300 ms, plus 50 ms for
/// each wrong try in a row at that login before it (at most 2 s), so a run
/// of guesses slows down well before the login locks.
pub fn login_delay(failures_before: u32) -> Duration {
    (Duration::from_millis(300) + Duration::from_millis(50) * failures_before)
        .min(Duration::from_secs(2))
}

/// What a wrong login led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Counted only.
    Counted,
    /// The source must now wait between tries.
    Waiting,
    /// The login is locked (for 15 minutes).
    Locked,
}

/// Login attempts, per source address and per login name: a guess costs
/// an exponentially growing wait after the first few, and a run of wrong
/// guesses from anywhere locks the login for a while. In memory: a restart
/// forgets, which costs an attacker a restart per few guesses.
#[derive(Default)]
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    sources: HashMap<std::net::IpAddr, Strikes>,
    /// Per login name (`""` for the admin token).
    accounts: HashMap<String, Strikes>,
}

/// Login names remembered at once.
const MAX_ACCOUNTS: usize = 10_000;

fn backoff(failures: u32, free: u32) -> Option<Duration> {
    let over = failures.checked_sub(free.saturating_add(1))?;
    let secs = 1u64.checked_shl(over.min(20)).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_BACKOFF))
}

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter::default()
    }

    /// May `source` try to log in as `login` now?
    pub fn check(
        &self,
        source: std::net::IpAddr,
        login: &str,
        now: Instant,
    ) -> Result<(), Throttled> {
        let st = self.state.lock();
        let wait = |s: Option<&Strikes>| {
            s.and_then(|s| s.until)
                .and_then(|u| u.checked_duration_since(now))
                .filter(|d| !d.is_zero())
        };
        if let Some(d) = wait(st.accounts.get(login)) {
            return Err(Throttled {
                reason: "account",
                retry_after: d,
            });
        }
        if let Some(d) = wait(st.sources.get(&source)) {
            return Err(Throttled {
                reason: "source",
                retry_after: d,
            });
        }
        Ok(())
    }

    /// A wrong console login from `source` as `login`: counted for the
    /// source and that login. Returns whether this one started a wait or
    /// locked the login (worth one log line; the rest are only counted).
    pub fn failed(&self, source: std::net::IpAddr, login: &str, now: Instant) -> Strike {
        self.strike(source, now, Some(login))
    }

    /// A wrong bearer token from `source`: counted for the source only, so
    /// a guesser slows itself down without locking the CLI out.
    pub fn failed_bearer(&self, source: std::net::IpAddr, now: Instant) -> bool {
        self.strike(source, now, None) != Strike::Counted
    }

    /// May `source` present a bearer token now? Only its own strikes
    /// count.
    pub fn check_bearer(&self, source: std::net::IpAddr, now: Instant) -> Result<(), Throttled> {
        let st = self.state.lock();
        match st
            .sources
            .get(&source)
            .and_then(|s| s.until)
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
        {
            Some(d) => Err(Throttled {
                reason: "source",
                retry_after: d,
            }),
            None => Ok(()),
        }
    }

    fn strike(&self, source: std::net::IpAddr, now: Instant, login: Option<&str>) -> Strike {
        let mut st = self.state.lock();
        if st.sources.len() >= MAX_SOURCES && !st.sources.contains_key(&source) {
            let stale = st
                .sources
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| *k);
            if let Some(k) = stale {
                st.sources.remove(&k);
            }
        }
        let fresh = Strikes {
            failures: 0,
            until: None,
            last: now,
        };
        let s = st.sources.entry(source).or_insert(fresh);
        // Strikes older than the longest wait are forgiven.
        if now.saturating_duration_since(s.last) > MAX_BACKOFF {
            *s = fresh;
        }
        s.failures = s.failures.saturating_add(1);
        s.last = now;
        s.until = backoff(s.failures, SOURCE_FREE_FAILURES).map(|d| now + d);
        let source_started = if s.failures == SOURCE_FREE_FAILURES + 1 {
            Strike::Waiting
        } else {
            Strike::Counted
        };
        let Some(login) = login else {
            return source_started;
        };
        if st.accounts.len() >= MAX_ACCOUNTS && !st.accounts.contains_key(login) {
            let stale = st
                .accounts
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = stale {
                st.accounts.remove(&k);
            }
        }
        let a = st.accounts.entry(login.to_string()).or_insert(fresh);
        if now.saturating_duration_since(a.last) > MAX_BACKOFF {
            *a = fresh;
        }
        a.failures = a.failures.saturating_add(1);
        a.last = now;
        if a.failures >= ACCOUNT_LOCK_FAILURES {
            // Locked for a while; after it, another full run is needed.
            a.until = Some(now + MAX_BACKOFF);
            a.failures = 0;
            return Strike::Locked;
        }
        source_started
    }

    /// A right bearer token from `source`: its strikes go.
    pub fn succeeded_bearer(&self, source: std::net::IpAddr) {
        let mut st = self.state.lock();
        if st.sources.contains_key(&source) {
            st.sources.remove(&source);
        }
    }

    /// Wrong tries in a row at `login` (the answer to each is slowed by
    /// them: [`login_delay`]).
    pub fn login_failures(&self, login: &str) -> u32 {
        self.state
            .lock()
            .accounts
            .get(login)
            .map_or(0, |s| s.failures)
    }

    /// A right login from `source` as `login`: their strikes go.
    pub fn succeeded(&self, source: std::net::IpAddr, login: &str) {
        let mut st = self.state.lock();
        st.sources.remove(&source);
        st.accounts.remove(login);
    }
}

/// The address rate limits count a request against (the TCP peer; all
/// clients behind one proxy share it).
pub fn source_of(peer: Option<std::net::SocketAddr>) -> std::net::IpAddr {
    peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// The session cookie's value, from the `Cookie` header.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session a console request belongs to, with its person.
pub fn session_of(
    req: &HttpRequest,
    people: &crate::people::People,
) -> Option<(crate::people::SessionRec, Principal)> {
    session_id(req.headers()).and_then(|id| people.session(&id))
}

/// Who made this request (the gate put it there). A request the gate did
/// not see is nobody's: a viewer with no name.
pub fn principal(req: &HttpRequest) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal {
            name: "unknown".into(),
            role: Role::Viewer,
            via: Via::Session,
        })
}

/// A request refused for its person's role (403 with the reason).
#[derive(Debug)]
pub struct Denied(String);

impl From<Denied> for HttpResponse {
    fn from(d: Denied) -> HttpResponse {
        HttpResponse::Forbidden().json(json!({ "error": d.0 }))
    }
}

/// The request's person if their role is at least `role`, else why not.
pub fn require(req: &HttpRequest, role: Role) -> Result<Principal, Denied> {
    let p = principal(req);
    if p.role >= role {
        Ok(p)
    } else {
        refused("role");
        let article = if p.role == Role::Viewer { "a" } else { "an" };
        Err(Denied(format!(
            "{} is {article} {}: this needs the {} role",
            p.name,
            p.role.as_str(),
            role.as_str()
        )))
    }
}

/// What a viewer may post: reading work that changes nothing, and their
/// own device's alerts.
fn viewer_may_post(path: &str) -> bool {
    path == "/logout"
        || path.ends_with("/workflows/validate")
        || path.ends_with("/workflows/dry-run")
        || path.ends_with("/push/subscriptions")
}

fn eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Does the request come from a page on another site?
pub fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Browsers that send Fetch Metadata say it outright; believe them
    // (a same-origin form post may carry `Origin: null` under a strict
    // referrer policy).
    match text("sec-fetch-site") {
        Some("cross-site" | "same-site") => return true,
        Some("same-origin" | "none") => return false,
        _ => {}
    }
    match text("origin") {
        None => false,
        Some(origin) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            match (authority, text("host")) {
                (Some(a), Some(host)) => !a.eq_ignore_ascii_case(host),
                _ => true,
            }
        }
    }
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What a scope needs: a page login, an API proof, or (the login form)
/// only the host and cross-site checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Open,
    Page,
    Api,
}

/// The names this daemon answers to (`Host`), lower case, without port.
/// A browser tricked by DNS rebinding sends the attacker's name, so a
/// request for any other name is refused before it reaches a handler.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
    /// Listening on every address without a configured list: any name is
    /// taken (a token is required there, and a rebinding page cannot send
    /// it).
    any: bool,
}

/// The host part of a `Host` header or an authority: `Example.COM:8080`
/// → `example.com`, `[::1]:80` → `[::1]`.
pub fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let name = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, _)) => format!("[{inner}]"),
            None => a.to_string(),
        }
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h).to_string()
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl AllowedHosts {
    /// `configured` (`[server] allowed_hosts`) plus the loopback names and
    /// the listen address. With no list and a wildcard listen address,
    /// every name.
    pub fn new(configured: &[String], listen: Option<std::net::SocketAddr>) -> AllowedHosts {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut any = false;
        if let Some(addr) = listen {
            if addr.ip().is_unspecified() {
                any = configured.is_empty();
            } else {
                names.push(host_name(&addr.to_string()));
            }
        }
        names.extend(configured.iter().map(|h| host_name(h)));
        names.sort();
        names.dedup();
        AllowedHosts { names, any }
    }

    /// Is `host` (a `Host` header value) one of ours? A request without a
    /// `Host` does not come from a browser.
    pub fn allows(&self, host: Option<&str>) -> bool {
        match host {
            None => true,
            Some(_) if self.any => true,
            Some(h) => {
                let name = host_name(h);
                self.names.contains(&name)
            }
        }
    }
}

fn deny<B>(req: ServiceRequest, resp: HttpResponse) -> ServiceResponse<EitherBody<B>> {
    req.into_response(resp).map_into_right_body()
}

/// The `Host` a request names: the header, else the URI's authority
/// (HTTP/2).
fn host_of(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// The API scope's middleware (`/api/v1/…`, `/logout`): see the module
/// doc. Wrapping the scope, not the app, means no spelling of a path
/// (percent-encoded letters, trailing slashes) reaches one of its handlers
/// without passing here: the router decodes before it matches.
pub async fn gate_api<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    gate(req, next, Guard::Api).await
}

/// The console pages' middleware: `/`, `/index.html`, `/console/…`.
pub async fn gate_page<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    gate(req, next, Guard::Page).await
}

/// The login form's middleware: host and cross-site checks only.
pub async fn gate_open<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    gate(req, next, Guard::Open).await
}

fn refused(reason: &'static str) {
    metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => reason).increment(1);
}

async fn gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
    guard: Guard,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        // Only a daemon built without state gets here; refuse rather than
        // serve unguarded.
        let resp = HttpResponse::InternalServerError().finish();
        return Ok(deny(req, resp));
    };
    if !state.hosts.allows(host_of(&req).as_deref()) {
        refused("host");
        let resp = HttpResponse::Forbidden()
            .json(json!({"error": "this daemon does not answer to that Host name"}));
        return Ok(deny(req, resp));
    }
    let unsafe_method = !is_safe(req.method());
    if unsafe_method && cross_site(req.headers()) {
        refused("cross_site");
        let resp = HttpResponse::Forbidden().json(json!({"error": "cross-site request refused"}));
        return Ok(deny(req, resp));
    }
    let Some(expected) = state.admin_token.clone() else {
        req.extensions_mut().insert(Principal {
            name: "operator".into(),
            role: Role::Admin,
            via: Via::Open,
        });
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    if guard == Guard::Open {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let unauthorized = || {
        refused("unauthorized");
        HttpResponse::Unauthorized().json(json!({"error": "missing or wrong bearer token"}))
    };
    let who = if let Some(h) = req.headers().get("Authorization") {
        let source = source_of(req.peer_addr());
        let now = Instant::now();
        // A source that guessed wrong too often waits before its next
        // token is even compared.
        if let Err(t) = state.logins.check_bearer(source, now) {
            refused("throttled");
            let resp = HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", t.retry_after.as_secs().max(1).to_string()))
                .json(json!({"error": "too many wrong tokens from this address; wait and retry"}));
            return Ok(deny(req, resp));
        }
        let given = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let found = if eq(given, expected.expose()) {
            Some(Principal {
                name: crate::people::ADMIN_TOKEN_NAME.into(),
                role: Role::Admin,
                via: Via::AdminToken,
            })
        } else if given.starts_with(crate::people::TOKEN_PREFIX) {
            state.people.by_token(given).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "Could not read an API token");
                None
            })
        } else {
            None
        };
        match found {
            Some(p) => {
                state.logins.succeeded_bearer(source);
                p
            }
            None => {
                if state.logins.failed_bearer(source, now) {
                    tracing::warn!(source = %source, "Wrong bearer tokens from this address: backing off");
                }
                let resp = unauthorized();
                return Ok(deny(req, resp));
            }
        }
    } else {
        match session_of(req.request(), &state.people) {
            Some((session, p)) => {
                if unsafe_method {
                    let given = req
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if !eq(given, &session.csrf) {
                        refused("csrf");
                        let resp = HttpResponse::Forbidden()
                            .json(json!({"error": "missing or wrong CSRF token"}));
                        return Ok(deny(req, resp));
                    }
                }
                p
            }
            None => {
                let resp = match guard {
                    Guard::Page => HttpResponse::SeeOther()
                        .insert_header(("Location", "/login"))
                        .finish(),
                    _ => unauthorized(),
                };
                return Ok(deny(req, resp));
            }
        }
    };
    // A viewer reads: every change is refused here, whatever the route
    // (what an operator may not do, the handlers refuse: [`require`]).
    if who.role == Role::Viewer && unsafe_method && !viewer_may_post(req.path()) {
        refused("role");
        let resp = HttpResponse::Forbidden().json(json!({
            "error": format!("{} is a viewer: viewers cannot change anything", who.name),
        }));
        return Ok(deny(req, resp));
    }
    // Stock and mapping changes made while serving it are journaled under
    // the person's name.
    let name = who.actor(None);
    req.extensions_mut().insert(who);
    crate::inventory::journal::acting_as(name, next.call(req))
        .await
        .map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        // A same-origin form post under a strict referrer policy.
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; orderflow_session=abc; b=2")]);
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        assert_eq!(session_id(&headers(&[("cookie", "a=1")])), None);
    }

    #[test]
    fn logins_back_off_per_source_and_lock_the_login() {
        let l = LoginLimiter::new();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..SOURCE_FREE_FAILURES {
            assert!(l.check(a, "alice", t0).is_ok());
            l.failed(a, "alice", t0);
        }
        // The sixth wrong guess starts a wait of a second, then two, …
        assert!(l.check(a, "bob", t0).is_ok());
        assert_eq!(
            l.failed(a, "bob", t0),
            Strike::Waiting,
            "the first backoff is worth a log line"
        );
        let t = l.check(a, "carol", t0).unwrap_err();
        assert_eq!(t.reason, "source");
        assert_eq!(t.retry_after, Duration::from_secs(1));
        assert!(
            l.check(b, "carol", t0).is_ok(),
            "another source is not slowed"
        );
        assert!(l.check(a, "carol", t0 + Duration::from_secs(2)).is_ok());
        l.failed(a, "carol", t0);
        assert_eq!(
            l.check(a, "carol", t0).unwrap_err().retry_after,
            Duration::from_secs(2)
        );
        // A run of wrong guesses at one login from many sources locks it
        // (each answer slower than the last: `login_delay`); other logins
        // are not touched.
        assert!(login_delay(10) > login_delay(0));
        assert_eq!(login_delay(100), Duration::from_secs(2));
        let mut last = Strike::Counted;
        for i in 0..ACCOUNT_LOCK_FAILURES {
            let ip = std::net::IpAddr::from([10, 1, 0, i as u8]);
            assert!(
                l.check(ip, "dave", t0).is_ok(),
                "not locked before the 20th"
            );
            assert_eq!(l.login_failures("dave"), i);
            last = l.failed(ip, "dave", t0);
        }
        assert_eq!(last, Strike::Locked);
        let c: std::net::IpAddr = "10.9.9.9".parse().unwrap();
        let t = l.check(c, "dave", t0).unwrap_err();
        assert_eq!(t.reason, "account");
        assert_eq!(t.retry_after, MAX_BACKOFF);
        assert!(l.check(c, "erin", t0).is_ok(), "only that login is locked");
        let later = t0 + MAX_BACKOFF + Duration::from_secs(1);
        assert!(l.check(c, "dave", later).is_ok());
        // After the lock, one more wrong guess does not lock it again.
        l.failed(std::net::IpAddr::from([10, 2, 0, 1]), "dave", later);
        assert!(l.check(c, "dave", later).is_ok());
        // Wrong bearer tokens slow their source only.
        let d: std::net::IpAddr = "10.7.7.7".parse().unwrap();
        for _ in 0..=SOURCE_FREE_FAILURES {
            l.failed_bearer(d, later);
        }
        assert!(l.check_bearer(d, later).is_err());
        assert!(
            l.check(c, "", later).is_ok(),
            "the admin login is not locked by bearer guesses"
        );
        l.succeeded(a, "carol");
        assert!(
            l.check(a, "carol", t0).is_ok(),
            "a right login clears the strikes"
        );
    }

    #[test]
    fn host_names_are_compared_without_port_or_case() {
        let h = AllowedHosts::new(
            &["Orders.Example.com".into()],
            "127.0.0.1:8080".parse().ok(),
        );
        assert!(h.allows(Some("127.0.0.1:8080")));
        assert!(h.allows(Some("localhost:8080")));
        assert!(h.allows(Some("[::1]:8080")));
        assert!(h.allows(Some("orders.example.com")));
        assert!(h.allows(None));
        assert!(!h.allows(Some("evil.example:8080")));
        assert!(!h.allows(Some("127.0.0.1.evil.example")));
        let any = AllowedHosts::new(&[], "0.0.0.0:8080".parse().ok());
        assert!(any.allows(Some("whatever.example")));
        let listed = AllowedHosts::new(&["a.example".into()], "0.0.0.0:8080".parse().ok());
        assert!(!listed.allows(Some("b.example")));
    }
}
