//! The web console: one page at `/` for creators and ops staff, on a phone
//! as on a desk.
//!
//! - **No build step, one binary.** The files in `assets/` are plain HTML,
//!   CSS and JavaScript, compiled in with `include_bytes!`; nothing is
//!   fetched from another host (the pages carry a CSP that forbids it).
//!   `[console] dev_dir` serves them from a folder instead, for working on
//!   them without rebuilding.
//! - **Login** (`GET`/`POST /login`, `POST /logout`) turns the admin token
//!   into a session cookie; [`super::auth`] explains the cookie, the CSRF
//!   token (`GET /api/v1/console/session` hands it to the page) and the
//!   cross-site guard.
//! - **Live** (`GET /api/v1/live`): server-sent events, one `order` event
//!   with the order's summary each time its checkpoint lands. Changes are
//!   gathered for a fifth of a second and each order is sent once per
//!   gathering, so a burst of steps costs one read per order, not one per
//!   step. The page does everything else through the admin API.
//! - **Alerts on this device** (`push.js`, `sw.js`): with a web_push
//!   channel configured, "Notify this device" subscribes the browser
//!   through the Push API (`/api/v1/push…`, [`super::push`]); the service
//!   worker, `/console/sw.js` with `Service-Worker-Allowed: /`, shows each
//!   alert and opens its order when tapped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::auth::{self, COOKIE};
use super::AppState;
use crate::config::Dur;

/// `[console]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How long a login lasts.
    pub session_ttl: Dur,
    /// Mark the session cookie `Secure` (behind a TLS proxy).
    pub secure_cookie: bool,
    /// Serve the console's files from this folder instead of the compiled-in
    /// copies.
    pub dev_dir: Option<PathBuf>,
    /// Live-event streams (`/api/v1/live`) open at once; one more gets 503.
    /// Each holds a bounded buffer (it skips ahead when it falls behind).
    pub max_live_clients: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_ttl: Dur(Duration::from_secs(12 * 3600)),
            secure_cookie: false,
            dev_dir: None,
            max_live_clients: 32,
        }
    }
}

/// What the pages may load: only this daemon, no inline code; images also
/// over https (product images live on TikTok's CDN).
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; \
connect-src 'self'; font-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file the console serves.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("login.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("push.js", "text/javascript; charset=utf-8"),
    asset!("sw.js", "text/javascript; charset=utf-8"),
];

/// The pages and the login, each resource behind its own gate (see
/// [`super::auth`]): the login form and its stylesheet are open, `/logout`
/// needs a proof as the API does, everything else a session.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    cfg.service(
        web::resource("/login")
            .wrap(from_fn(auth::gate_open))
            .route(web::get().to(login_page))
            .route(web::post().to(login)),
    )
    .service(
        web::resource("/logout")
            .wrap(from_fn(auth::gate_api))
            .route(web::post().to(logout)),
    )
    .route("/console/app.css", web::get().to(stylesheet))
    .service(
        web::resource(["/", "/index.html"])
            .wrap(from_fn(auth::gate_page))
            .route(web::get().to(index)),
    )
    .service(
        web::resource("/console/{file}")
            .wrap(from_fn(auth::gate_page))
            .route(web::get().to(file)),
    );
}

/// The console's API, mounted under `/api/v1` behind
/// [`super::auth::gate_api`].
pub fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/session", web::get().to(session))
        .route("/live", web::get().to(live));
}

/// An asset's bytes: from `dev_dir` when set and the file is there, else
/// the compiled-in copy.
fn load(s: &AppState, name: &str) -> Option<(Vec<u8>, &'static str)> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    if let Some(dir) = &s.console.dev_dir {
        if let Ok(b) = std::fs::read(dir.join(asset.name)) {
            return Some((b, asset.mime));
        }
    }
    Some((asset.bytes.to_vec(), asset.mime))
}

fn page(status: StatusCode, body: Vec<u8>, mime: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(mime)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

async fn index(s: web::Data<AppState>) -> HttpResponse {
    match load(&s, "index.html") {
        Some((b, mime)) => page(StatusCode::OK, b, mime),
        None => HttpResponse::NotFound().finish(),
    }
}

/// `GET /console/app.css`: the one file served to strangers (the login
/// page needs it).
async fn stylesheet(s: web::Data<AppState>) -> HttpResponse {
    asset(&s, "app.css")
}

async fn file(s: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    if name.ends_with(".html") {
        return HttpResponse::NotFound().finish();
    }
    asset(&s, &name)
}

fn asset(s: &AppState, name: &str) -> HttpResponse {
    match load(s, name) {
        Some((b, mime)) => {
            let mut r = HttpResponse::Ok();
            r.content_type(mime)
                .insert_header(("X-Content-Type-Options", "nosniff"))
                // Revalidate every time: an upgraded daemon serves new files.
                .insert_header(("Cache-Control", "no-cache"));
            if name == "sw.js" {
                // The service worker (web push alerts) lives under
                // /console/ and serves the whole console, `/` included.
                r.insert_header(("Service-Worker-Allowed", "/"));
            }
            r.body(b)
        }
        None => HttpResponse::NotFound().finish(),
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn login_form(s: &AppState, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let Some((b, mime)) = load(s, "login.html") else {
        return HttpResponse::NotFound().finish();
    };
    let html = String::from_utf8_lossy(&b);
    let html = match error {
        Some(e) => html.replace(
            "<!--error-->",
            &format!(
                "<p id=\"login-error\" class=\"error\" role=\"alert\">{}</p>",
                escape_html(e)
            ),
        ),
        None => html.into_owned(),
    };
    page(status, html.into_bytes(), mime)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

async fn login_page(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let logged_in = auth::session_of(&req, &s.people).is_some();
    if s.admin_token.is_none() || logged_in {
        return see_other("/");
    }
    login_form(&s, StatusCode::OK, None)
}

/// The sign-in form: a user's name and password, or (name left empty) the
/// admin token as the password, which signs in as the bootstrap admin.
/// `token` is the older form's field, still taken.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub token: String,
}

fn cookie(s: &AppState, value: &str, max_age_s: u64) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if s.console.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    )
}

async fn login(
    s: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let Some(expected) = s.admin_token.clone() else {
        return see_other("/");
    };
    let form = form.into_inner();
    let name = form.user.trim().to_ascii_lowercase();
    // The login the limiter counts against: the name, or "" for the
    // admin token.
    let login_name = if name.is_empty() {
        String::new()
    } else {
        name.chars().take(64).collect()
    };
    let source = auth::source_of(req.peer_addr());
    let now = std::time::Instant::now();
    if let Err(t) = s.logins.check(source, &login_name, now) {
        metrics::counter!(crate::metrics::CONSOLE_LOGINS_TOTAL, "result" => "throttled", "reason" => t.reason)
            .increment(1);
        let mut resp = login_form(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many wrong tries. Wait {} s and try again.",
                t.retry_after.as_secs().max(1)
            )),
        );
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(
            &t.retry_after.as_secs().max(1).to_string(),
        ) {
            resp.headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    let secret = if form.password.is_empty() {
        form.token
    } else {
        form.password
    };
    let who: Option<String> = if login_name.is_empty() {
        let ok: bool =
            subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), expected.expose().as_bytes()).into();
        ok.then(|| crate::people::ADMIN_TOKEN_NAME.to_string())
    } else {
        let (people, n) = (s.people.clone(), login_name.clone());
        match web::block(move || people.verify(&n, &secret)).await {
            Ok(Ok(u)) => u.map(|u| u.name),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Could not read a user to log in");
                return login_form(
                    &s,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("Sign-in is unavailable right now; try again."),
                );
            }
            Err(_) => {
                return login_form(
                    &s,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("Sign-in is busy; try again."),
                )
            }
        }
    };
    let Some(who) = who else {
        metrics::counter!(crate::metrics::CONSOLE_LOGINS_TOTAL, "result" => "refused").increment(1);
        let delay = auth::login_delay(s.logins.login_failures(&login_name));
        match s.logins.failed(source, &login_name, now) {
            auth::Strike::Locked => {
                metrics::counter!(crate::metrics::CONSOLE_LOGIN_LOCKS_TOTAL).increment(1);
                tracing::warn!(source = %source, login = %login_name, "A login was locked after a run of wrong passwords");
            }
            auth::Strike::Waiting => {
                tracing::warn!(source = %source, "Console logins refused repeatedly: backing off this source (and locking the login after more)");
            }
            auth::Strike::Counted => {
                tracing::debug!(source = %source, "Console login refused");
            }
        }
        tokio::time::sleep(delay).await;
        return login_form(
            &s,
            StatusCode::UNAUTHORIZED,
            Some(if login_name.is_empty() {
                "That token is not right."
            } else {
                "That name and password do not match."
            }),
        );
    };
    s.logins.succeeded(source, &login_name);
    metrics::counter!(crate::metrics::CONSOLE_LOGINS_TOTAL, "result" => "ok").increment(1);
    let id = match s.people.create_session(&who).await {
        Ok((id, _)) => id,
        Err(e) => {
            tracing::error!(error = %e, "Could not store a session");
            return login_form(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Sign-in is unavailable right now; try again."),
            );
        }
    };
    tracing::info!(user = %who, "Console login");
    HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .insert_header(("Set-Cookie", cookie(&s, &id, s.people.ttl().as_secs())))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

async fn logout(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(id) = auth::session_id(req.headers()) {
        s.people.end_session(&id).await;
    }
    HttpResponse::NoContent()
        .insert_header(("Set-Cookie", cookie(&s, "", 0)))
        .finish()
}

/// `GET /api/v1/console/session`: the page's CSRF token and who is signed
/// in, with their role (the page hides what the role cannot do; the
/// server refuses it either way).
async fn session(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let who = auth::principal(&req);
    let csrf = auth::session_of(&req, &s.people).map(|(x, _)| x.csrf);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "csrf": csrf.unwrap_or_default(),
            "auth": s.admin_token.is_some(),
            "user": who.name,
            "role": who.role,
        }))
}

const GATHER: Duration = Duration::from_millis(200);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

struct Live {
    /// Held for the stream's life: `[console] max_live_clients`.
    _slot: tokio::sync::OwnedSemaphorePermit,
    /// Keeps the connection busy while the stream lasts.
    _busy: Option<super::conn::Busy>,
    rx: tokio::sync::broadcast::Receiver<String>,
    state: web::Data<AppState>,
    queue: std::collections::VecDeque<web::Bytes>,
    /// When this stream last carried an `overview` event.
    overview_sent: Option<std::time::Instant>,
    /// Orders changed since the last `overview` event.
    overview_due: bool,
    /// The checkpoint generation when this stream last saw a change: the
    /// next `overview` event is computed at or after it.
    seen_generation: u64,
}

/// The fewest seconds between two `overview` events of one stream.
const OVERVIEW_EVERY: Duration = Duration::from_secs(1);

impl Live {
    /// The next chunk of the stream, or `None` when the daemon shuts down.
    async fn next(&mut self) -> Option<web::Bytes> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some(b);
            }
            // A due overview is sent once the stream may send one again.
            let wait = match (self.overview_due, self.overview_sent) {
                (true, Some(t)) => OVERVIEW_EVERY.saturating_sub(t.elapsed()),
                (true, None) => Duration::ZERO,
                (false, _) => KEEPALIVE,
            };
            let first = tokio::select! {
                _ = self.state.closing.cancelled() => return None,
                r = tokio::time::timeout(wait, self.rx.recv()) => r,
            };
            let mut ids = BTreeSet::new();
            match first {
                Err(_) if self.overview_due => {
                    self.push_overview().await;
                    continue;
                }
                Err(_) => return Some(web::Bytes::from_static(b": keepalive\n\n")),
                Ok(Ok(id)) => {
                    ids.insert(id);
                }
                Ok(Err(RecvError::Lagged(n))) => {
                    tracing::debug!(skipped = n, "A live view fell behind");
                }
                Ok(Err(RecvError::Closed)) => return None,
            }
            tokio::time::sleep(GATHER).await;
            loop {
                match self.rx.try_recv() {
                    Ok(id) => {
                        ids.insert(id);
                    }
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            let now = self.state.runtime.shared.clock.now_ms();
            for id in ids {
                if let Ok(Some(rec)) = self.state.store.load_order(&id) {
                    let data = super::admin::row(&self.state, &rec, now);
                    self.queue
                        .push_back(web::Bytes::from(format!("event: order\ndata: {data}\n\n")));
                }
            }
            // Orders changed: the overview too, at most once a second per
            // stream (one computation serves every stream).
            self.overview_due = true;
            self.seen_generation = self
                .state
                .runtime
                .shared
                .generation
                .load(std::sync::atomic::Ordering::Acquire);
            if self
                .overview_sent
                .is_none_or(|t| t.elapsed() >= OVERVIEW_EVERY)
            {
                self.push_overview().await;
            }
        }
    }

    async fn push_overview(&mut self) {
        self.overview_sent = Some(std::time::Instant::now());
        match super::admin::overview(&self.state, Some(self.seen_generation)).await {
            Ok(ov) => {
                self.overview_due = false;
                self.queue
                    .push_back(web::Bytes::from(format!("event: overview\ndata: {ov}\n\n")));
            }
            Err(e) => {
                tracing::warn!(error = %e, "The overview for a live view failed; tried again in a second")
            }
        }
    }
}

/// `GET /api/v1/live`: server-sent events (see the module doc).
async fn live(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // A bounded number of streams: each costs a read per changed order.
    let Ok(slot) = s.live_slots.clone().try_acquire_owned() else {
        metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "live_full").increment(1);
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "10"))
            .json(json!({"error": "too many live views are open; close one or retry later"}));
    };
    let live = Live {
        _slot: slot,
        _busy: req
            .conn_data::<super::conn::ConnGuard>()
            .map(super::conn::ConnGuard::busy),
        rx: s.runtime.shared.changes.subscribe(),
        state: s.clone(),
        queue: [web::Bytes::from_static(b"event: hello\ndata: {}\n\n")].into(),
        overview_sent: None,
        overview_due: false,
        seen_generation: 0,
    };
    let stream = futures::stream::unfold(live, |mut l| async move {
        l.next().await.map(|b| (Ok::<_, actix_web::Error>(b), l))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
