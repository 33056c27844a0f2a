//! Who may call what: the gate in front of the admin API and the console.
//!
//! Two kinds of caller, two proofs:
//!
//! - **Scripts and the CLI** send `Authorization: Bearer <admin token>`,
//!   compared in constant time. A bearer header is never sent by a browser
//!   on its own, so it needs no CSRF defence.
//! - **The console** logs in once (`POST /login` with the token) and then
//!   holds a server-side session named by an `HttpOnly; SameSite=Strict`
//!   cookie: JavaScript never sees the token or the cookie. A cookie *is*
//!   sent by the browser on its own, so every state-changing request that
//!   rides on it must also carry the session's CSRF token in
//!   `X-CSRF-Token`.
//!
//! Before either, every state-changing request that names another site in
//! `Origin` or `Sec-Fetch-Site` is refused with 403, token or not: a page
//! elsewhere cannot make a browser act on this daemon, even one listening
//! on loopback without a token. Webhooks are exempt (TikTok is a server,
//! and the HMAC is their proof).
//!
//! Health, readiness, metrics, the login page and its stylesheet are open;
//! `/`, the console's script and everything under `/api/` need a proof
//! when an admin token is configured. With no token (loopback only, enforced by
//! `config::validate`) everything is open, as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use parking_lot::Mutex;
use rand::RngCore;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "orderflow_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// Most sessions kept at once; the oldest go first beyond it.
const MAX_SESSIONS: usize = 1024;

/// Console logins, in memory: a restart logs everyone out, which is the
/// safe direction.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session: its id (the cookie's value) and its CSRF token.
    pub fn create(&self) -> (String, Session) {
        let now = Instant::now();
        let id = random_token();
        let s = Session {
            csrf: random_token(),
            expires: now + self.ttl,
        };
        let mut map = self.map.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session `id` names, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().remove(id);
    }
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

/// The session a console request belongs to.
pub fn session_of(req: &HttpRequest, sessions: &Sessions) -> Option<Session> {
    session_id(req.headers()).and_then(|id| sessions.get(&id))
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

/// What a path needs: nothing, a page login, or an API proof.
enum Guard {
    Open,
    Page,
    Api,
}

fn guard(path: &str) -> Guard {
    if path.starts_with("/api/") || path == "/logout" {
        Guard::Api
    } else if path == "/" || path == "/index.html" {
        Guard::Page
    } else if path.starts_with("/console/") && path != "/console/app.css" {
        // The console's code too: only the login page's stylesheet is
        // served to strangers.
        Guard::Page
    } else {
        Guard::Open
    }
}

fn deny<B>(req: ServiceRequest, resp: HttpResponse) -> ServiceResponse<EitherBody<B>> {
    req.into_response(resp).map_into_right_body()
}

/// The middleware: see the module doc.
pub async fn gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let unsafe_method = !is_safe(req.method());
    if unsafe_method && !req.path().starts_with("/webhooks/") && cross_site(req.headers()) {
        metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "cross_site")
            .increment(1);
        let resp = HttpResponse::Forbidden().json(json!({"error": "cross-site request refused"}));
        return Ok(deny(req, resp));
    }
    let Some(expected) = state.admin_token.clone() else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let guard = guard(req.path());
    if matches!(guard, Guard::Open) {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let unauthorized = || {
        metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "unauthorized")
            .increment(1);
        HttpResponse::Unauthorized().json(json!({"error": "missing or wrong bearer token"}))
    };
    if let Some(h) = req.headers().get("Authorization") {
        let given = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if eq(given, expected.expose()) {
            return next.call(req).await.map(|r| r.map_into_left_body());
        }
        let resp = unauthorized();
        return Ok(deny(req, resp));
    }
    match session_of(req.request(), &state.sessions) {
        Some(session) => {
            if unsafe_method {
                let given = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !eq(given, &session.csrf) {
                    metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "csrf")
                        .increment(1);
                    let resp = HttpResponse::Forbidden()
                        .json(json!({"error": "missing or wrong CSRF token"}));
                    return Ok(deny(req, resp));
                }
            }
            next.call(req).await.map(|r| r.map_into_left_body())
        }
        None => {
            let resp = match guard {
                Guard::Page => HttpResponse::SeeOther()
                    .insert_header(("Location", "/login"))
                    .finish(),
                _ => unauthorized(),
            };
            Ok(deny(req, resp))
        }
    }
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
    fn sessions_expire_and_are_removed() {
        let s = Sessions::new(Duration::from_millis(0));
        let (id, _) = s.create();
        assert!(s.get(&id).is_none());
        let s = Sessions::new(Duration::from_secs(60));
        let (id, sess) = s.create();
        assert_eq!(s.get(&id).map(|x| x.csrf), Some(sess.csrf));
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }
}
