//! The security regression suite (issue 13): every attack found by trying
//! to break the daemon from outside, replayed against the real binary,
//! asserting the refusal and that the daemon stays up with bounded memory.
//!
//! - **Gate spellings:** every guarded route of `deploy/openapi.yaml` and
//!   the console's pages, spelled with percent-encoded letters, double
//!   slashes, dot segments, trailing slashes and other cases, without a
//!   token and with a wrong one, on loopback and on 0.0.0.0: each answer
//!   comes from the gate or the router, never from a handler.
//! - **Slow floods:** 3,000 connections trickling large bodies to
//!   `/webhooks/tiktok`; signed webhooks are still acknowledged within 3 s
//!   and the daemon's peak RSS stays below 512 MiB.
//! - **DNS rebinding:** a foreign `Host` or `Origin` gets 403 on a
//!   token-less loopback daemon.
//! - **Logins:** backoff per source, a lock of the login after a run of
//!   wrong guesses from many sources, counted in a metric; a weak token is
//!   refused at start.
//! - **Smaller:** live streams capped, the audit export streamed, the data
//!   directory private.
//!
//! The full-disk attack lives in `tests/fault_disk_full.rs` (it mounts a
//! tmpfs); the expression budget in `tests/security_expressions.rs`.
//!
//! Run: `cargo test --test security -- --nocapture` (prints the figures).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_addr, get_json, metric, sim_daemon_config, standard_workflows, start_simulator_thread,
    wait_ready, Daemon,
};
use futures::StreamExt;
use orderflow::simulator::SimulatorArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "sec-7f3a9c1e5b2d8a4f6e0c";

/// One answer read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as written (no client normalises the path) from
/// `from` (a loopback source address, or any) and reads the answer to the
/// end (`Connection: close`).
async fn raw_from(addr: &str, from: Option<std::net::IpAddr>, request: &[u8]) -> Raw {
    let target: SocketAddr = addr.parse().unwrap();
    let mut s = match from {
        Some(ip) => {
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::new(ip, 0)).unwrap();
            sock.connect(target).await.unwrap()
        }
        None => TcpStream::connect(target).await.unwrap(),
    };
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn raw(addr: &str, request: &[u8]) -> Raw {
    raw_from(addr, None, request).await
}

fn request(method: &str, target: &str, host: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in extra {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

/// `(method, path template)` of every route in the OpenAPI file.
fn openapi_routes() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/openapi.yaml"))
            .unwrap();
    let mut out = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in text.lines() {
        if line.starts_with("paths:") {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.is_empty() {
            in_paths = false;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ") {
            let m = m.trim_end_matches(':');
            if ["get", "post", "put", "delete", "patch"].contains(&m) {
                out.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(out.len() > 20, "the OpenAPI file lists the routes: {out:?}");
    out
}

fn pct(c: char) -> String {
    format!("%{:02X}", c as u32)
}

/// Ways to write `path` that a lax gate might read differently from the
/// router.
fn spellings(path: &str) -> Vec<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let join = |v: &[String]| format!("/{}", v.join("/"));
    let owned: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
    let mut out = vec![path.to_string()];
    // A percent-encoded letter in each place of each segment; a whole
    // segment encoded; lower-case hex.
    for (i, s) in segs.iter().enumerate() {
        for (j, c) in s.char_indices() {
            if c.is_ascii_alphanumeric() && (j == 0 || j == s.len() - 1 || i < 2) {
                let mut v = owned.clone();
                v[i] = format!("{}{}{}", &s[..j], pct(c), &s[j + c.len_utf8()..]);
                out.push(join(&v));
            }
        }
        let mut v = owned.clone();
        v[i] = s.chars().map(pct).collect::<String>();
        out.push(join(&v));
        let mut v = owned.clone();
        v[i] = s.chars().map(|c| pct(c).to_lowercase()).collect::<String>();
        out.push(join(&v));
    }
    // Case, slashes, dot segments, encoded separators, path parameters.
    out.push(path.to_uppercase());
    out.push(join(
        &owned
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 0 { s.to_uppercase() } else { s.clone() })
            .collect::<Vec<_>>(),
    ));
    out.push(format!("/{path}"));
    out.push(path.replacen('/', "//", 2));
    out.push(path.replace('/', "//"));
    out.push(format!("{path}/"));
    out.push(format!("{path}/."));
    out.push(format!("/.{path}"));
    out.push(format!("/x/..{path}"));
    out.push(format!("/%2e{path}"));
    out.push(format!("/x/%2e%2e{path}"));
    out.push(path.replace('/', "%2F").replacen("%2F", "/", 1));
    out.push(path.replace('/', "%2f").replacen("%2f", "/", 1));
    out.push(format!("{};x=1", path));
    out.push(format!("{path}?x=1"));
    out.push(format!("{path}#x"));
    if let Some(first) = segs.first() {
        let rest = &path[first.len() + 1..];
        out.push(format!("/{first};x{rest}"));
        out.push(format!("/{first}/.{rest}"));
        out.push(format!("/{first}/x/..{rest}"));
        out.push(format!("/{first}/%2e/{}", rest.trim_start_matches('/')));
    }
    out.sort();
    out.dedup();
    out
}

/// Did the gate (or the router) answer, rather than a handler?
fn refused_before_a_handler(r: &Raw) -> bool {
    let location_login = r.head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("location:") && l.trim_end().ends_with("/login")
    });
    match r.status {
        401 => r.body.contains("missing or wrong bearer token"),
        429 => r.body.contains("too many wrong tokens"),
        403 => true,
        303 => location_login,
        // The router's own answers have no body; a handler's 404 says
        // what it did not find.
        404 | 405 => !r.body.contains("error"),
        400 => r.body.is_empty() || r.body.contains("Bad Request"),
        _ => false,
    }
}

fn fill(template: &str) -> String {
    template
        .replace("{id}", "sec-1")
        .replace("{action}", "note")
        .replace("{name}", "standard")
        .replace("{sku}", "SKU-1")
        .replace("{file}", "app.js")
}

async fn post_with_token(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: serde_json::Value,
) -> u16 {
    client
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn wire_addr(base: &str) -> String {
    base.trim_start_matches("http://")
        .replace("0.0.0.0", "127.0.0.1")
}

/// The bundled workflows, a daemon on them in a fresh folder with `env`,
/// ready; the folder lives as long as the returned guard.
async fn started(env: &[(&str, &str)]) -> (tempfile::TempDir, Daemon, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let wf = standard_workflows(dir.path());
    let d = Daemon::start(
        &dir.path().join("data"),
        &wf,
        &dir.path().join("daemon.log"),
        env,
    );
    let client = reqwest::Client::new();
    wait_ready(&client, &d.base).await;
    (dir, d, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_guarded_path_reaches_a_handler() {
    let client = reqwest::Client::new();
    let mut routes: Vec<(String, String)> = openapi_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/") || p == "/logout")
        .collect();
    for page in ["/", "/index.html", "/console/{file}"] {
        routes.push(("GET".into(), page.into()));
    }
    for listen in ["127.0.0.1:0", "0.0.0.0:0"] {
        let dir = tempfile::tempdir().unwrap();
        let wf = standard_workflows(dir.path());
        let d = Daemon::start_with(
            listen,
            None,
            &dir.path().join("data"),
            &wf,
            &dir.path().join("daemon.log"),
            &[("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN)],
        );
        let base = d.base.replace("0.0.0.0", "127.0.0.1");
        wait_ready(&client, &base).await;
        // An order a handler would find, so a handler's answer is a 2xx.
        let order = serde_json::json!({"id": "sec-ev-1", "shop_id": "sec-shop", "order": common::wire_order("sec-1", 1_764_000_000)});
        assert_eq!(
            post_with_token(&client, &base, "/api/v1/events", order).await,
            200
        );
        let addr = wire_addr(&base);
        common::eventually(Duration::from_secs(30), "the order to be stored", || {
            let (c, b) = (client.clone(), base.clone());
            async move {
                let r = c
                    .get(format!("{b}/api/v1/orders/sec-1"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?;
                (r.status().as_u16() == 200).then_some(())
            }
        })
        .await;
        // The gate lets the right token through (so this test can fail).
        let ok = raw(
            &addr,
            &request(
                "GET",
                "/%61pi/v1/orders/sec-1",
                &addr,
                &[("Authorization", &format!("Bearer {TOKEN}"))],
                "",
            ),
        )
        .await;
        assert_eq!(
            ok.status, 200,
            "the token opens the encoded path too: {ok:?}"
        );
        // Every request at once, 32 in flight: a 404 for a POST whose body
        // nobody read waits a second before the daemon closes it.
        let mut cases = Vec::new();
        for (method, template) in &routes {
            let path = fill(template);
            for spelled in spellings(&path) {
                for auth in [None, Some("Bearer wrong-token-0123456789")] {
                    cases.push((method.clone(), spelled.clone(), auth));
                }
            }
        }
        let tried = cases.len();
        let answers: Vec<(String, String, Option<&str>, Raw)> = futures::stream::iter(cases)
            .map(|(method, spelled, auth)| {
                let addr = addr.clone();
                async move {
                    let body = if method == "GET" { "" } else { "{}" };
                    let extra: Vec<(&str, &str)> =
                        auth.map(|a| ("Authorization", a)).into_iter().collect();
                    // From an address of its own: wrong tokens make their
                    // source wait, and the checks below use the right one.
                    let from = std::net::IpAddr::from([127, 0, 0, 9]);
                    let r = raw_from(
                        &addr,
                        Some(from),
                        &request(&method, &spelled, &addr, &extra, body),
                    )
                    .await;
                    (method, spelled, auth, r)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let failures: Vec<String> = answers
            .iter()
            .filter(|(_, _, _, r)| !refused_before_a_handler(r))
            .map(|(method, spelled, auth, r)| {
                format!(
                    "{method} {spelled} (auth {auth:?}) on {listen}: {} {}",
                    r.status,
                    r.body.chars().take(200).collect::<String>()
                )
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {tried} requests reached a handler:\n{}",
            failures.len(),
            failures.join("\n")
        );
        println!(
            "{listen}: {tried} spellings of {} guarded routes, every one refused before a handler",
            routes.len()
        );
        // Nothing changed: the order has no note from any of them.
        let (_, audit) = common::get_json(
            &reqwest::Client::builder()
                .default_headers({
                    let mut h = reqwest::header::HeaderMap::new();
                    h.insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
                    h
                })
                .build()
                .unwrap(),
            &format!("{base}/api/v1/orders/sec-1/audit"),
        )
        .await;
        let notes = audit
            .as_array()
            .unwrap()
            .iter()
            // An operator's note, that is: a workflow's own notes ("not
            // sent: notifications are off") are not anyone's request.
            .filter(|e| {
                let (source, kind) = (e["source"].as_str(), e["kind"].as_str());
                let detail = e["detail"].as_str().unwrap_or_default();
                source == Some("operator") && (kind == Some("note") || detail.starts_with("note"))
            })
            .count();
        assert_eq!(notes, 0, "no unauthenticated note landed: {audit:#}");
        assert!(d.child.id() > 0);
        drop(d);
    }
}

/// The daemon's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn signed_webhook(app_key: &str, app_secret: &str, shop: &str, n: usize) -> (String, String) {
    let body = serde_json::json!({
        "type": 1,
        "tts_notification_id": format!("sec-flood-{n}"),
        "shop_id": shop,
        "timestamp": 1_764_000_000 + n as i64,
        "data": {"order_id": format!("sec-flood-order-{n}"), "order_status": "AWAITING_SHIPMENT", "update_time": 1_764_000_000 + n as i64}
    })
    .to_string();
    let sig = orderflow::tiktok::sign::webhook_signature(app_key, app_secret, body.as_bytes());
    (body, sig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_flood_of_large_bodies_leaves_webhooks_answered_and_memory_bounded() {
    const ATTACKERS: usize = 3000;
    let listen = free_addr();
    let (sim_url, shops) = start_simulator_thread(SimulatorArgs {
        app_key: "sec-app-key".into(),
        app_secret: "sec-app-secret".into(),
        access_token: "sec-access-token".into(),
        webhook_url: None,
        shops: 1,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let wf = standard_workflows(dir.path());
    let config = sim_daemon_config(
        dir.path(),
        &sim_url,
        &shops[0],
        ("sec-app-key", "sec-app-secret", "sec-access-token"),
        "",
    );
    let d = Daemon::start_with(
        &listen,
        Some(&config),
        &dir.path().join("data"),
        &wf,
        &dir.path().join("daemon.log"),
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &d.base).await;
    println!(
        "daemon RSS before the flood: {:.0} MiB",
        peak_rss_mib(d.child.id())
    );
    let addr = listen.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let (addr, stop, open) = (addr.clone(), stop.clone(), open.clone());
        attackers.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            open.fetch_add(1, Ordering::Relaxed);
            // Half announce a large body, half stream one in chunks; both
            // send 64 KiB at once and then trickle.
            let head = if i % 2 == 0 {
                format!("POST /webhooks/tiktok HTTP/1.1\r\nHost: {addr}\r\nAuthorization: x\r\nContent-Length: 200000\r\n\r\n")
            } else {
                format!("POST /webhooks/tiktok HTTP/1.1\r\nHost: {addr}\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            };
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // Every fourth sends just under the body memory a request may
            // use without drawing on the shared pool (so it is never refused
            // for memory, only cut off as slow); the rest send more.
            let piece = vec![b'{'; if i % 4 == 3 { (16 << 10) - 200 } else { 64 << 10 }];
            let first = if i % 2 == 0 {
                piece.clone()
            } else {
                [format!("{:x}\r\n", piece.len()).into_bytes(), piece.clone(), b"\r\n".to_vec()].concat()
            };
            if s.write_all(&first).await.is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let drip = if i % 2 == 0 { b"{".to_vec() } else { b"1\r\n{\r\n".to_vec() };
                if s.write_all(&drip).await.is_err() {
                    return;
                }
            }
        }));
    }
    // Signed webhooks keep arriving through the flood.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(20) {
        n += 1;
        let (body, sig) = signed_webhook("sec-app-key", "sec-app-secret", &shops[0].0, n);
        let t = Instant::now();
        let r = client
            .post(format!("{}/webhooks/tiktok", d.base))
            .header("Authorization", sig)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("webhook {n} got no answer during the flood: {e}"));
        let took = t.elapsed();
        assert_eq!(r.status().as_u16(), 200, "webhook {n} during the flood");
        worst = worst.max(took);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rss = peak_rss_mib(d.child.id());
    let opened = open.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let (st, _) = get_json(&client, &format!("{}/healthz", d.base)).await;
    assert_eq!(st, 200, "the daemon is up after the flood");
    let slow = metric(
        &client,
        &d.base,
        "orderflow_http_refused_total",
        "reason=\"slow_body\"",
    )
    .await;
    let mem = metric(
        &client,
        &d.base,
        "orderflow_http_refused_total",
        "reason=\"body_memory\"",
    )
    .await;
    println!(
        "{opened} slow connections: {n} signed webhooks acknowledged, slowest {worst:?}; daemon peak RSS {rss:.0} MiB; {slow} cut off as slow, {mem} refused for body memory"
    );
    assert!(worst < Duration::from_secs(3), "a webhook took {worst:?}");
    assert!(rss < 512.0, "peak RSS {rss:.0} MiB");
    assert!(
        opened >= ATTACKERS * 9 / 10,
        "the flood connected: {opened}"
    );
    assert!(slow + mem > 0.0, "the trickling bodies were cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_or_origin_is_refused_on_a_tokenless_loopback_daemon() {
    let (_dir, d, client) = started(&[]).await;
    let addr = wire_addr(&d.base);
    let port = addr.rsplit(':').next().unwrap().to_string();
    let ev = r#"{"id":"h-1","shop_id":"s","order":null,"order_id":"h-1","signal":{"x":1}}"#;
    let evil = format!("rebind.evil.example:{port}");
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/orders/h-1/actions/note",
            r#"{"note":"hi"}"#,
        ),
        ("POST", "/api/v1/orders/h-1/actions/cancel", "{}"),
        ("POST", "/api/v1/events", ev),
        ("GET", "/api/v1/audit/export", ""),
        ("GET", "/api/v1/orders", ""),
        ("GET", "/", ""),
    ] {
        let r = raw(&addr, &request(method, path, &evil, &[], body)).await;
        assert_eq!(r.status, 403, "{method} {path} with Host {evil}: {r:?}");
        // Same Host, foreign Origin: refused for state changes.
        if method == "POST" {
            let r = raw(
                &addr,
                &request(
                    method,
                    path,
                    &addr,
                    &[("Origin", "http://rebind.evil.example")],
                    body,
                ),
            )
            .await;
            assert_eq!(
                r.status, 403,
                "{method} {path} with a foreign Origin: {r:?}"
            );
        }
    }
    // Our own names pass.
    for host in [addr.clone(), format!("localhost:{port}")] {
        let r = raw(&addr, &request("GET", "/api/v1/orders", &host, &[], "")).await;
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
    // Webhooks have no Host check: TikTok is a server, its HMAC is its proof.
    let r = raw(
        &addr,
        &request(
            "POST",
            "/webhooks/tiktok",
            &evil,
            &[("Authorization", "bad")],
            "{}",
        ),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    let refused = metric(
        &client,
        &d.base,
        "orderflow_http_refused_total",
        "reason=\"host\"",
    )
    .await;
    assert!(refused >= 6.0, "counted: {refused}");
}

async fn login(addr: &str, from: std::net::IpAddr, token: &str) -> Raw {
    let body = format!("token={token}");
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_from(addr, Some(from), req.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_back_off_per_source_and_lock_after_a_run_of_wrong_guesses() {
    let (_dir, d, client) = started(&[("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN)]).await;
    let addr = wire_addr(&d.base);
    let one: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(login(&addr, one, "wrong-guess-0123456789").await.status);
    }
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    // Throttled, even the right token is not compared.
    let r = login(&addr, one, TOKEN).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after:"),
        "{r:?}"
    );
    // Another source logs in fine.
    let r = login(&addr, "127.0.0.3".parse().unwrap(), TOKEN).await;
    assert_eq!(r.status, 303, "{r:?}");
    // Twenty wrong guesses in a row from twenty sources lock the login.
    for i in 0..20u8 {
        let from = std::net::IpAddr::from([127, 0, 1, 10 + i]);
        login(&addr, from, "wrong-guess-0123456789").await;
    }
    let r = login(&addr, "127.0.0.4".parse().unwrap(), TOKEN).await;
    assert_eq!(r.status, 429, "the login is locked: {r:?}");
    // The bearer token still works for scripts and the CLI.
    let r = client
        .get(format!("{}/api/v1/orders", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let throttled = metric(
        &client,
        &d.base,
        "orderflow_console_logins_total",
        "reason=\"account\",result=\"throttled\"",
    )
    .await
        + metric(
            &client,
            &d.base,
            "orderflow_console_logins_total",
            "result=\"throttled\",reason=\"account\"",
        )
        .await;
    assert!(throttled >= 1.0, "counted");
}

#[test]
fn a_weak_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let wf = standard_workflows(dir.path());
    for weak in ["                ", "aaaaaaaaaaaaaaaa", "short"] {
        let out = std::process::Command::new(common::bin())
            .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--workflows")
            .arg(&wf)
            .env("ORDERFLOW_SERVER__ADMIN_TOKEN", weak)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{weak:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("server.admin_token"), "{err}");
        assert!(
            !err.contains(weak.trim()) || weak.trim().is_empty(),
            "the token is not printed: {err}"
        );
    }
    let out = std::process::Command::new(common::bin())
        .args(["token", "new"])
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(token.len(), 64, "256 bits as hex: {token}");
    assert!(orderflow::config::token_strength(&token).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_the_export_streams_and_the_data_is_private() {
    let (dir, d, client) = started(&[("ORDERFLOW_CONSOLE__MAX_LIVE_CLIENTS", "4")]).await;
    let data = dir.path().join("data");
    let mut streams = Vec::new();
    for _ in 0..4 {
        let r = client
            .get(format!("{}/api/v1/live", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        streams.push(r);
    }
    let r = client
        .get(format!("{}/api/v1/live", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "a fifth live stream is refused");
    drop(streams);
    // The daemon notices a closed stream at its next write (an event or
    // the 15 s keepalive).
    let mut reopened = 0;
    for _ in 0..300 {
        let r = client
            .get(format!("{}/api/v1/live", d.base))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            reopened += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reopened, 1, "a closed stream frees its place");

    // The export streams (chunked) and holds every order's entries.
    for i in 0..3 {
        let id = format!("exp-{i}");
        let body = serde_json::json!({"id": format!("exp-ev-{i}"), "shop_id": "s", "order": common::wire_order(&id, 1_764_000_000)});
        let (st, _) = common::post_json(&client, &format!("{}/api/v1/events", d.base), &body).await;
        assert_eq!(st, 200);
    }
    let addr = wire_addr(&d.base);
    let lines = common::eventually(Duration::from_secs(30), "the three orders' audit", || {
        let (client, base) = (client.clone(), d.base.clone());
        async move {
            let text = client
                .get(format!("{base}/api/v1/audit/export"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let ids: std::collections::BTreeSet<String> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["order_id"].as_str().map(str::to_string))
                .collect();
            (ids.len() >= 3).then_some(ids)
        }
    })
    .await;
    assert!(lines.contains("exp-0") && lines.contains("exp-2"));
    let r = raw(
        &addr,
        &request("GET", "/api/v1/audit/export", &addr, &[], ""),
    )
    .await;
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "streamed, not built in memory: {}",
        r.head
    );

    // The data directory and everything in it: the daemon's user only.
    use std::os::unix::fs::PermissionsExt;
    fn walk(p: &Path, bad: &mut Vec<String>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let mode = m.permissions().mode() & 0o777;
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            bad.push(format!("{} is {mode:o}", p.display()));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), bad);
            }
        }
    }
    let mut bad = Vec::new();
    walk(&data, &mut bad);
    assert!(bad.is_empty(), "{bad:?}");
}

/// A server that answers every request with an endless body: chunked, or
/// announcing 20 GB. Returns its address and the bytes it managed to send.
async fn endless_server(announce: bool) -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let s2 = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let sent = s2.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = c.read(&mut head).await;
                let h = if announce {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20000000000\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                };
                if c.write_all(h.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'7'; 64 << 10];
                let chunk = if announce {
                    piece
                } else {
                    [
                        format!("{:x}\r\n", piece.len()).into_bytes(),
                        piece,
                        b"\r\n".to_vec(),
                    ]
                    .concat()
                };
                // At most 20 GB, as the attack did; the client hangs up long before.
                for _ in 0..(20_000_000_000usize / chunk.len()) {
                    if c.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            });
        }
    });
    (addr, sent)
}

/// The shape of the expression found to crash-loop the daemon (448 bytes
/// there, about 350 here): `.map` over generated lists, nested until the
/// result has 10^8 elements.
fn map_bomb() -> String {
    let digits = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let mut body = "a + b + c + d + e + f + g + h".to_string();
    for v in ["h", "g", "f", "e", "d", "c", "b", "a"] {
        body = format!("{digits}.map({v}, {body})");
    }
    format!("size({body}) > 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_and_replies_have_a_budget() {
    let bomb = map_bomb();
    println!("the expression: {} bytes", bomb.len());
    let (chunked, sent_chunked) = endless_server(false).await;
    let (announced, sent_announced) = endless_server(true).await;
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    // Two workflows that call the endless servers.
    for (name, tag, addr) in [
        ("endless", "endless", &chunked),
        ("huge", "huge", &announced),
    ] {
        std::fs::write(
            wf.join(format!("{name}.yaml")),
            format!(
                "name: {name}\ntrigger:\n  on: AWAITING_SHIPMENT\n  when: \"order.id.startsWith('{tag}')\"\nsteps:\n  - id: fetch\n    call: http.request\n    with: {{ url: \"http://{addr}/\", method: GET }}\n  - id: done\n    end: fulfilled\n"
            ),
        )
        .unwrap();
    }
    let d = Daemon::start(
        &dir.path().join("data"),
        &wf,
        &dir.path().join("daemon.log"),
        &[],
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &d.base).await;

    // Saving a workflow with the expression is refused, and says why.
    let yaml = format!(
        "name: bomb\ntrigger:\n  on: AWAITING_SHIPMENT\n  when: \"{bomb}\"\nsteps:\n  - id: done\n    end: fulfilled\n"
    );
    let r = client
        .put(format!("{}/api/v1/workflows/bomb", d.base))
        .body(yaml.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(!(200..300).contains(&status), "saved: {status} {text}");
    assert!(text.contains("too expensive"), "{text}");
    assert!(!wf.join("bomb.yaml").exists());
    // A dry-run of a 10^8-step expression is refused at validation, at once.
    let order = serde_json::json!({"id": "b-ev-1", "shop_id": "s", "order": common::wire_order("b-1", 1_764_000_000)});
    assert_eq!(
        common::post_json(&client, &format!("{}/api/v1/events", d.base), &order)
            .await
            .0,
        200
    );
    common::eventually(Duration::from_secs(30), "the order to be stored", || {
        let (c, b) = (client.clone(), d.base.clone());
        async move { (get_json(&c, &format!("{b}/api/v1/orders/b-1")).await.0 == 200).then_some(()) }
    })
    .await;
    let steps = "[0,1,2,3,4,5,6,7,8,9]";
    // Eight nested `all` over ten elements: 10^8 steps, a few bytes each.
    let cond = format!("{steps}.all(a, {steps}.all(b, {steps}.all(c, {steps}.all(d, {steps}.all(e, {steps}.all(f, {steps}.all(g, {steps}.all(h, a + b + c + d + e + f + g + h >= 0))))))))");
    let dry = format!(
        "name: slow\ntrigger:\n  on: AWAITING_SHIPMENT\n  when: \"{cond}\"\nsteps:\n  - id: done\n    end: fulfilled\n"
    );
    let t = Instant::now();
    let (st, v) = common::post_json(
        &client,
        &format!("{}/api/v1/workflows/dry-run", d.base),
        &serde_json::json!({"yaml": dry, "order_id": "b-1"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert!(v.to_string().contains("too expensive"), "{v}");
    println!("the 10^8-step dry-run refused in {:?}", t.elapsed());

    // Replies without end: the step fails, the daemon stays small.
    for id in ["endless-1", "huge-1"] {
        let w = common::wire_order(id, 1_764_000_000);
        let body = serde_json::json!({"id": format!("ev-{id}"), "shop_id": "s", "order": w});
        assert_eq!(
            common::post_json(&client, &format!("{}/api/v1/events", d.base), &body)
                .await
                .0,
            200
        );
        let o = common::eventually(Duration::from_secs(60), "the step to fail", || {
            let (c, b) = (client.clone(), d.base.clone());
            async move {
                let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                o["last_error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty())
                    .then_some(o)
            }
        })
        .await;
        let err = o["last_error"].as_str().unwrap();
        assert!(
            err.contains("1048576") || err.contains("MiB") || err.contains("larger"),
            "{id}: {err}"
        );
    }
    let rss = peak_rss_mib(d.child.id());
    println!(
        "endless replies: {} and {} bytes sent before the daemon hung up; peak RSS {rss:.0} MiB",
        sent_chunked.load(Ordering::Relaxed),
        sent_announced.load(Ordering::Relaxed)
    );
    assert!(rss < 512.0, "peak RSS {rss:.0} MiB");
    let (st, _) = get_json(&client, &format!("{}/healthz", d.base)).await;
    assert_eq!(st, 200);
}

/// Sends `head`, then one byte of `drip` a second; returns how long until
/// the daemon closed the connection (None: still open after `within`).
async fn closes_within(
    addr: &str,
    head: &[u8],
    drip: &'static [u8],
    within: Duration,
) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(head).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let dripper = tokio::spawn(async move {
        for b in drip.iter().cycle() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 << 10];
    let out = loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), r.read(&mut buf)).await
        {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    };
    dripper.abort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_are_closed() {
    let (_dir, d, client) = started(&[("ORDERFLOW_SERVER__READ_TIMEOUT", "2s")]).await;
    let addr = wire_addr(&d.base);
    // read_timeout 2 s, keep-alive 5 s, the watcher's second, slack.
    let within = Duration::from_secs(12);
    let cases: [(&str, String, &'static [u8]); 4] = [
        (
            "a chunked body to a route that does not read it",
            format!("POST /nope HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n"),
            b"1\r\nx\r\n",
        ),
        (
            "a chunked webhook body that trickles",
            format!("POST /webhooks/tiktok HTTP/1.1\r\nHost: {addr}\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n"),
            b"1\r\nx\r\n",
        ),
        (
            "a webhook body shorter than announced",
            format!("POST /webhooks/tiktok HTTP/1.1\r\nHost: {addr}\r\nAuthorization: x\r\nContent-Length: 100000\r\n\r\n{{"),
            b"x",
        ),
        (
            "a second request whose head trickles",
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
    ];
    for (what, head, drip) in cases {
        let took = closes_within(&addr, head.as_bytes(), drip, within).await;
        println!("{what}: closed after {took:?}");
        assert!(took.is_some(), "{what}: still open after {within:?}");
    }
    let (st, _) = get_json(&client, &format!("{}/healthz", d.base)).await;
    assert_eq!(st, 200);
}
