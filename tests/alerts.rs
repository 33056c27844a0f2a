//! Alerts that reach people (issue 21): email and Web Push channels
//! against real servers on 127.0.0.1.
//!
//! - **Email:** a small SMTP server in this file (RFC 5321: EHLO, AUTH
//!   PLAIN, MAIL, RCPT, DATA, QUIT) receives the alert: the login, the
//!   envelope, a subject naming the alert and the order, the plain-text
//!   body. A 451 is tried again; a 550 is final at once; a server that does
//!   not offer STARTTLS, when the channel requires it, is never sent the
//!   password nor the message.
//! - **Web Push:** a push-service endpoint in this file receives the
//!   alert and checks it as a browser's push service and the browser would:
//!   `Authorization: vapid t=<ES256 JWT>, k=<key>` (the JWT verified with
//!   `k`, `aud` the endpoint's origin, `exp` within 24 h, `sub` the
//!   contact), `Content-Encoding: aes128gcm`, `TTL`, `Urgency`, and the body
//!   decrypted with the subscription's private key (RFC 8291, written here
//!   apart from the daemon's code) gives the JSON payload. A 410 forgets
//!   the device; a 503 is tried again.
//! - **End to end:** the daemon's API subscribes devices as the console
//!   does, a workflow's `notify.send` reaches the device and the mailbox,
//!   the gone device is forgotten, and the console serves its service
//!   worker with `Service-Worker-Allowed: /`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orderflow::notify::{ChannelConfig, Event, Kind, Notifier, NotifyConfig, Secret, SmtpSecurity};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use parking_lot::Mutex;
use serde_json::{json, Value};

// ------------------------------------------------------------------ SMTP

/// One message as the SMTP server took it.
#[derive(Debug, Clone, Default)]
struct Mail {
    auth: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

/// An SMTP server on 127.0.0.1:0 (a thread per connection): answers DATA
/// with `replies` in turn (then 250), offers STARTTLS never, AUTH PLAIN
/// when `auth` is set.
#[derive(Clone)]
struct Smtp {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Every AUTH line seen (to prove none was sent).
    auths: Arc<Mutex<Vec<String>>>,
    replies: Arc<Mutex<Vec<&'static str>>>,
    transactions: Arc<Mutex<u32>>,
}

impl Smtp {
    fn start() -> Smtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let smtp = Smtp {
            port: listener.local_addr().unwrap().port(),
            mails: Default::default(),
            auths: Default::default(),
            replies: Default::default(),
            transactions: Default::default(),
        };
        let s = smtp.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.serve(conn));
            }
        });
        smtp
    }

    fn serve(&self, conn: std::net::TcpStream) {
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut out = conn.try_clone().unwrap();
        let mut lines = BufReader::new(conn);
        let mut say = |s: &str| out.write_all(s.as_bytes()).is_ok();
        say("220 test.local ESMTP ready\r\n");
        let mut mail = Mail::default();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            let ok = if upper.starts_with("EHLO") {
                say("250-test.local\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            } else if upper.starts_with("AUTH PLAIN ") {
                self.auths.lock().push(cmd.clone());
                mail.auth = Some(cmd[11..].to_string());
                say("235 2.7.0 Authentication successful\r\n")
            } else if upper.starts_with("MAIL FROM:") {
                mail.from = cmd[10..].to_string();
                say("250 2.1.0 OK\r\n")
            } else if upper.starts_with("RCPT TO:") {
                mail.to.push(cmd[8..].to_string());
                say("250 2.1.5 OK\r\n")
            } else if upper == "DATA" {
                say("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // RFC 5321 §4.5.2: a leading dot was doubled.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                *self.transactions.lock() += 1;
                let reply = {
                    let mut r = self.replies.lock();
                    if r.is_empty() {
                        "250 2.0.0 queued"
                    } else {
                        r.remove(0)
                    }
                };
                if reply.starts_with('2') {
                    mail.data = data;
                    self.mails.lock().push(std::mem::take(&mut mail));
                } else {
                    mail = Mail::default();
                }
                say(&format!("{reply}\r\n"))
            } else if upper == "RSET" {
                mail = Mail::default();
                say("250 OK\r\n")
            } else if upper == "NOOP" {
                say("250 OK\r\n")
            } else if upper == "QUIT" {
                say("221 2.0.0 Bye\r\n");
                return;
            } else {
                say("502 5.5.2 Command not recognized\r\n")
            };
            if !ok {
                return;
            }
        }
    }
}

fn email_channel(smtp: &Smtp) -> ChannelConfig {
    ChannelConfig {
        kind: Kind::Email,
        host: Some("127.0.0.1".into()),
        port: Some(smtp.port),
        security: Some(SmtpSecurity::None),
        username: Some("alerts@example.com".into()),
        password: Some(Secret::new("s3cret-pass")),
        from: Some("orderflow <alerts@example.com>".into()),
        to: vec!["ops@example.com".into(), "Owner <owner@example.com>".into()],
        ..ChannelConfig::default()
    }
}

fn quick(cfg: &mut NotifyConfig) {
    cfg.max_attempts = 3;
    cfg.backoff_base = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(50);
    cfg.timeout = Duration::from_secs(3);
}

/// The header `name` of a message (unfolded).
fn header(data: &str, name: &str) -> Option<String> {
    let head = data.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[actix_rt::test]
async fn an_email_alert_reaches_the_smtp_server_with_a_subject_naming_the_order() {
    let smtp = Smtp::start();
    let mut cfg = NotifyConfig::default();
    quick(&mut cfg);
    cfg.channels.insert("mail".into(), email_channel(&smtp));
    cfg.default_channel = "mail".into();
    cfg.console_url = Some("https://orders.example.com".into());
    let n = Notifier::new(cfg).unwrap();
    let e = Event::new("out_of_stock", "SKU TEE-RED-M is out of stock")
        .order("576461413590")
        .data(json!({"sku": "TEE-RED-M", "requested": 2, "available": 0}));
    let d = n.send(None, &e).await.unwrap();
    assert!(d.delivered, "{d:?}");
    assert_eq!((d.via, d.attempts, d.status), (Kind::Email, 1, Some(250)));

    let mails = smtp.mails.lock().clone();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    // AUTH PLAIN: base64 of \0user\0password.
    let auth = base64::engine::general_purpose::STANDARD
        .decode(m.auth.as_deref().unwrap())
        .unwrap();
    assert_eq!(auth, b"\0alerts@example.com\0s3cret-pass");
    assert_eq!(m.from, "<alerts@example.com>");
    assert_eq!(m.to, ["<ops@example.com>", "<owner@example.com>"]);
    assert_eq!(
        header(&m.data, "Subject").as_deref(),
        Some("[orderflow] Order 576461413590: SKU TEE-RED-M is out of stock")
    );
    assert!(header(&m.data, "From")
        .unwrap()
        .contains("alerts@example.com"));
    let to = header(&m.data, "To").unwrap();
    assert!(
        to.contains("ops@example.com") && to.contains("owner@example.com"),
        "{to}"
    );
    assert!(header(&m.data, "Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(header(&m.data, "Date").is_some() && header(&m.data, "Message-ID").is_some());
    assert_eq!(
        header(&m.data, "Content-Transfer-Encoding").as_deref(),
        Some("7bit")
    );
    let body = m.data.split_once("\r\n\r\n").unwrap().1;
    assert!(body.contains("SKU TEE-RED-M is out of stock"), "{body}");
    assert!(body.contains("Order:   576461413590"), "{body}");
    assert!(
        body.contains("https://orders.example.com/#/orders/576461413590"),
        "{body}"
    );
    assert!(body.contains("\"requested\": 2"), "{body}");

    // A transient refusal (451) is tried again; a permanent one (550) is final.
    smtp.replies.lock().push("451 4.3.0 Try again later");
    let before = *smtp.transactions.lock();
    let d = n.alert("Low stock: TEE-RED-M has 2 left", json!({})).await;
    assert!(d.delivered && d.attempts == 2, "{d:?}");
    assert_eq!(*smtp.transactions.lock() - before, 2);
    let last = smtp.mails.lock().last().cloned().unwrap();
    assert_eq!(
        header(&last.data, "Subject").as_deref(),
        Some("[orderflow] Alert: Low stock: TEE-RED-M has 2 left")
    );
    smtp.replies.lock().push("550 5.1.1 Mailbox unavailable");
    let d = n.send(None, &e).await.unwrap();
    assert!(!d.delivered && d.attempts == 1, "{d:?}");
    assert_eq!(d.status, Some(550));
    assert!(!d.error.unwrap().contains("s3cret-pass"));

    // STARTTLS required and not offered: neither the password nor the
    // message leaves; final at once.
    let plain = Smtp::start();
    let mut cfg = NotifyConfig::default();
    quick(&mut cfg);
    cfg.channels.insert(
        "mail".into(),
        ChannelConfig {
            security: Some(SmtpSecurity::Starttls),
            ..email_channel(&plain)
        },
    );
    cfg.default_channel = "mail".into();
    let n = Notifier::new(cfg).unwrap();
    let d = n.send(None, &e).await.unwrap();
    assert!(!d.delivered && d.attempts == 1, "{d:?}");
    assert!(plain.auths.lock().is_empty() && plain.mails.lock().is_empty());
}

// ------------------------------------------------------------- Web Push

/// What the push service received.
#[derive(Debug, Clone)]
struct Pushed {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A push service on 127.0.0.1:0: `/push/ok/{id}` answers 201, `/push/gone/{id}`
/// 410, `/push/flaky/{id}` 503 on its first request and 201 after.
struct PushService {
    base: String,
    got: Arc<Mutex<Vec<Pushed>>>,
    _server: actix_web::dev::ServerHandle,
}

async fn push_service() -> PushService {
    let got: Arc<Mutex<Vec<Pushed>>> = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let g = got.clone();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().route(
            "/push/{kind}/{id}",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let g = g.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let path = req.path().to_string();
                    let seen = g.lock().iter().filter(|p| p.path == path).count();
                    g.lock().push(Pushed {
                        path: path.clone(),
                        headers,
                        body: body.to_vec(),
                    });
                    match req.match_info().get("kind") {
                        Some("gone") => HttpResponse::Gone().finish(),
                        Some("flaky") if seen == 0 => HttpResponse::ServiceUnavailable().finish(),
                        _ => HttpResponse::Created().finish(),
                    }
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    PushService {
        base,
        got,
        _server: handle,
    }
}

/// A browser: its push subscription keys.
struct Browser {
    key: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new(seed: u8) -> Browser {
        Browser {
            key: p256::SecretKey::from_slice(&[seed; 32]).unwrap(),
            auth: [seed.wrapping_add(1); 16],
        }
    }

    /// `PushSubscription.toJSON()`.
    fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(self.key.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// RFC 8291 §3 and RFC 8188 §2 from the receiving side, as a browser
    /// opens a push message.
    fn decrypt(&self, body: &[u8]) -> Option<Vec<u8>> {
        use aes_gcm::aead::{Aead, KeyInit};
        use hkdf::Hkdf;
        use sha2::Sha256;
        let salt = body.get(..16)?;
        let idlen = *body.get(20)? as usize;
        let as_public_bytes = body.get(21..21 + idlen)?;
        let record = body.get(21 + idlen..)?;
        let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes).ok()?;
        let ecdh = p256::ecdh::diffie_hellman(self.key.to_nonzero_scalar(), as_public.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(self.key.public_key().to_encoded_point(false).as_bytes());
        info.extend_from_slice(as_public_bytes);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth[..]), ecdh.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .ok()?;
        let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).ok()?;
        let mut nonce = [0u8; 12];
        hk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .ok()?
            .decrypt(aes_gcm::Nonce::from_slice(&nonce), record)
            .ok()?;
        while plain.last() == Some(&0) {
            plain.pop();
        }
        (plain.pop()? == 2).then_some(plain)
    }
}

/// Checks a push as a push service would, and opens it as the browser
/// would: the JSON payload.
fn check_push(p: &Pushed, endpoint_origin: &str, vapid_public: &str, browser: &Browser) -> Value {
    use p256::ecdsa::signature::Verifier;
    let h = |k: &str| p.headers.get(k).cloned().unwrap_or_default();
    assert_eq!(h("content-encoding"), "aes128gcm", "{:?}", p.headers);
    assert_eq!(h("content-type"), "application/octet-stream");
    assert_eq!(h("ttl"), "3600");
    assert_eq!(h("urgency"), "high");
    let auth = h("authorization");
    let (t, k) = auth
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .unwrap_or_else(|| panic!("not a VAPID authorization: {auth}"));
    assert_eq!(k, vapid_public);
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3, "{t}");
    let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
    let jwt_header: Value = serde_json::from_slice(&dec(parts[0])).unwrap();
    assert_eq!(jwt_header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&dec(parts[1])).unwrap();
    assert_eq!(claims["aud"], endpoint_origin);
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "{claims}");
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&dec(k)).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&dec(parts[2])).unwrap();
    verifying
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the VAPID JWT verifies with its k");
    let plain = browser
        .decrypt(&p.body)
        .expect("the payload opens with the subscription's private key");
    serde_json::from_slice(&plain).unwrap()
}

fn push_channel() -> ChannelConfig {
    ChannelConfig {
        kind: Kind::WebPush,
        sub: Some("mailto:ops@example.com".into()),
        ttl: Some(orderflow::config::Dur(Duration::from_secs(3600))),
        ..ChannelConfig::default()
    }
}

#[actix_rt::test]
async fn a_web_push_alert_is_signed_encrypted_and_a_gone_device_is_forgotten() {
    let service = push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let store = orderflow::store::Store::open(&dir.path().join("db"), 1 << 20, 64).unwrap();
    let sealer = orderflow::shops::secrets::Sealer::from_key([1; 32]);
    let book = orderflow::notify::push::PushBook::open(store.clone(), &sealer, None)
        .await
        .unwrap();
    let vapid_public = book.key().public_key().to_string();
    let (phone, laptop, old) = (Browser::new(11), Browser::new(22), Browser::new(33));
    for (browser, path) in [(&phone, "ok/1"), (&laptop, "flaky/2"), (&old, "gone/3")] {
        let sub: orderflow::notify::push::SubscriptionJson =
            serde_json::from_value(browser.subscription(&format!("{}/push/{path}", service.base)))
                .unwrap();
        assert!(book.subscribe("phones", &sub, "ana").await.unwrap());
    }
    let mut cfg = NotifyConfig::default();
    quick(&mut cfg);
    cfg.channels.insert("phones".into(), push_channel());
    cfg.default_channel = "phones".into();
    let n = Notifier::with_push(cfg, book.clone()).unwrap();

    let e = Event::new("workflow", "Order 5764 is ready to pack").order("5764");
    let d = n.send(None, &e).await.unwrap();
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.via, Kind::WebPush);
    let devices = d.devices.unwrap();
    assert_eq!(
        (devices.reached, devices.failed, devices.gone),
        (2, 0, 1),
        "{d:?}"
    );
    // ok: 1, flaky: 503 then 201, gone: 1.
    assert_eq!(d.attempts, 4, "{d:?}");

    let got = service.got.lock().clone();
    let at = |p: &str| {
        got.iter()
            .filter(|x| x.path == p)
            .cloned()
            .collect::<Vec<_>>()
    };
    let payload = check_push(&at("/push/ok/1")[0], &service.base, &vapid_public, &phone);
    assert_eq!(payload["title"], "orderflow: order 5764");
    assert_eq!(payload["body"], "Order 5764 is ready to pack");
    assert_eq!(payload["order_id"], "5764");
    assert_eq!(payload["url"], "/#/orders/5764");
    assert_eq!(payload["kind"], "workflow");
    let flaky = at("/push/flaky/2");
    assert_eq!(flaky.len(), 2);
    let payload = check_push(&flaky[1], &service.base, &vapid_public, &laptop);
    assert_eq!(payload["order_id"], "5764");
    // Encrypted for its own browser only.
    assert!(phone.decrypt(&flaky[1].body).is_none());

    // The 410: that device is forgotten, the others kept.
    let left: Vec<String> = book
        .subscriptions("phones")
        .unwrap()
        .into_iter()
        .map(|s| s.endpoint)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|e| !e.contains("gone")), "{left:?}");

    // The next alert goes to the two left; nobody subscribed is a failure
    // that says so.
    n.alert("Shop 1 needs authorizing again", json!({"shop": "1"}))
        .await;
    assert_eq!(
        service
            .got
            .lock()
            .iter()
            .filter(|p| p.path.contains("gone"))
            .count(),
        1
    );
    let last = service.got.lock().last().cloned().unwrap();
    let payload = check_push(
        &last,
        &service.base,
        &vapid_public,
        if last.path.contains("ok") {
            &phone
        } else {
            &laptop
        },
    );
    assert_eq!(payload["title"], "orderflow alert");
    assert_eq!(payload["url"], "/#/");
    for s in book.subscriptions("phones").unwrap() {
        book.forget(&s).await.unwrap();
    }
    let d = n.send(None, &e).await.unwrap();
    assert!(!d.delivered && d.attempts == 0, "{d:?}");
    assert!(d.error.unwrap().contains("no device has subscribed"));
}

// ------------------------------------------------------------ end to end

const WORKFLOW: &str = r#"
name: tell_people
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: phone
    call: notify.send
    with:
      channel: phones
      text: "Order ${{ order.id }} is ready to pack"
  - id: mail
    call: notify.send
    with:
      channel: mail
      text: "Order ${{ order.id }} is ready to pack"
  - id: done
    end: notified
"#;

#[actix_rt::test]
async fn the_console_subscribes_a_device_and_a_workflows_alert_reaches_it_and_the_mailbox() {
    use common::{eventually, get_json, metric, post_json, sim_rig, wait_ready, SimRig};
    let smtp = Smtp::start();
    let service = push_service().await;
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "al",
        orderflow::simulator::SimulatorArgs {
            buyer_cancel_rate: 0.0,
            manual_carrier: true,
            shops: 1,
            ..Default::default()
        },
        50.0,
        ("tell.yaml", WORKFLOW),
    )
    .await;
    cfg.notify.channels.insert("phones".into(), push_channel());
    cfg.notify
        .channels
        .insert("mail".into(), email_channel(&smtp));
    cfg.notify.default_channel = "phones".into();
    quick(&mut cfg.notify);
    let sim_url = sim.base_url();
    let daemon = orderflow::daemon::Daemon::start(cfg, orderflow::runtime::Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = common::http();
    wait_ready(&client, &base).await;

    // The console's calls: the key and channels, then the subscription.
    let (st, key) = get_json(&client, &format!("{base}/api/v1/push/key")).await;
    assert_eq!(st, 200, "{key}");
    assert_eq!(key["channels"], json!(["phones"]));
    let vapid_public = key["key"].as_str().unwrap().to_string();
    assert_eq!(URL_SAFE_NO_PAD.decode(&vapid_public).unwrap().len(), 65);
    let (phone, old) = (Browser::new(44), Browser::new(55));
    let subscribe = |channel: &str, sub: Value| {
        let (c, u) = (client.clone(), format!("{base}/api/v1/push/subscriptions"));
        let body = json!({"channel": channel, "subscription": sub});
        async move { post_json(&c, &u, &body).await }
    };
    let ok_endpoint = format!("{}/push/ok/7", service.base);
    let gone_endpoint = format!("{}/push/gone/8", service.base);
    let (st, v) = subscribe("phones", phone.subscription(&ok_endpoint)).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = subscribe("phones", phone.subscription(&ok_endpoint)).await;
    assert_eq!((st, &v["new"]), (200, &json!(false)), "{v}");
    let (st, _) = subscribe("phones", old.subscription(&gone_endpoint)).await;
    assert_eq!(st, 201);
    // Refused: a channel that is not web_push, keys that are not keys, an
    // endpoint that is not https.
    let (st, v) = subscribe("mail", phone.subscription(&ok_endpoint)).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("email channel"),
        "{v}"
    );
    let mut bad = phone.subscription(&ok_endpoint);
    bad["keys"]["p256dh"] = json!("AAAA");
    let (st, v) = subscribe("phones", bad).await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = subscribe("phones", phone.subscription("http://push.example.com/x")).await;
    assert_eq!(st, 400);
    let r = client
        .delete(format!("{base}/api/v1/push/subscriptions"))
        .json(&json!({"endpoint": "https://nowhere.example/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["removed"], 0);

    // A workflow's notify.send reaches the device and the mailbox.
    let (st, v) = post_json(
        &client,
        &format!("{sim_url}/sim/orders"),
        &json!({"status": "AWAITING_SHIPMENT"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["orders"][0]["order_id"].as_str().unwrap().to_string();
    let o = eventually(Duration::from_secs(30), "the order notified", || {
        let (c, u) = (client.clone(), format!("{base}/api/v1/orders/{id}"));
        async move {
            let (_, o) = get_json(&c, &u).await;
            o["instance_state"]
                .as_str()?
                .starts_with("completed")
                .then_some(o)
        }
    })
    .await;
    assert_eq!(o["instance_state"], "completed:notified", "{o}");
    let pushed = service.got.lock().clone();
    let to_phone: Vec<&Pushed> = pushed.iter().filter(|p| p.path == "/push/ok/7").collect();
    assert_eq!(to_phone.len(), 1);
    let payload = check_push(to_phone[0], &service.base, &vapid_public, &phone);
    assert_eq!(payload["body"], format!("Order {id} is ready to pack"));
    assert_eq!(payload["url"], format!("/#/orders/{id}"));
    let mails = smtp.mails.lock().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header(&mails[0].data, "Subject"),
        Some(format!("[orderflow] Order {id} is ready to pack"))
    );

    // The gone device was forgotten: subscribing it again is new.
    assert_eq!(
        pushed.iter().filter(|p| p.path == "/push/gone/8").count(),
        1
    );
    let (st, _) = subscribe("phones", old.subscription(&gone_endpoint)).await;
    assert_eq!(st, 201);
    // DELETE takes a device off.
    let r = client
        .delete(format!("{base}/api/v1/push/subscriptions"))
        .json(&json!({"endpoint": gone_endpoint, "channel": "phones"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["removed"], 1);

    // Counted per kind.
    for (kind, outcome) in [("web_push", "delivered"), ("email", "delivered")] {
        let labels = format!("kind=\"{kind}\",outcome=\"{outcome}\"");
        assert!(
            metric(&client, &base, "orderflow_notifications_total", &labels).await >= 1.0,
            "{labels}"
        );
    }
    assert!(
        metric(
            &client,
            &base,
            "orderflow_push_subscriptions_gone_total",
            ""
        )
        .await
            >= 1.0
    );

    // The console: its service worker may serve `/`, and the page lets it.
    let r = client
        .get(format!("{base}/console/sw.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("service-worker-allowed")
            .and_then(|v| v.to_str().ok()),
        Some("/")
    );
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let sw = r.text().await.unwrap();
    assert!(sw.contains("showNotification") && sw.contains("notificationclick"));
    let r = client
        .get(format!("{base}/console/push.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.get(format!("{base}/")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("worker-src 'self'"), "{csp}");
    let app = client
        .get(format!("{base}/console/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(app.contains("import './push.js'"));

    daemon.shutdown().await;
    sim.stop().await;
}

/// Alerts change nothing, so a viewer may subscribe their own device (the
/// subscription records who), while every other change stays refused.
#[actix_rt::test]
async fn a_viewer_may_subscribe_their_own_device() {
    use common::{sim_rig, wait_ready, SimRig};
    const TOKEN: &str = "alerts-admin-token-4f9c2e7b1a";
    let SimRig {
        sim,
        dir: _dir,
        mut cfg,
    } = sim_rig(
        "av",
        orderflow::simulator::SimulatorArgs {
            shops: 1,
            ..Default::default()
        },
        50.0,
        (
            "tell.yaml",
            &WORKFLOW.replace("channel: mail", "channel: phones"),
        ),
    )
    .await;
    cfg.server.admin_token = Some(Secret::new(TOKEN));
    cfg.notify.channels.insert("phones".into(), push_channel());
    cfg.notify.default_channel = "phones".into();
    let daemon = orderflow::daemon::Daemon::start(cfg, orderflow::runtime::Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    let client = common::http();
    wait_ready(&client, &base).await;
    let as_admin = |r: reqwest::RequestBuilder| r.bearer_auth(TOKEN);
    let r = as_admin(client.post(format!("{base}/api/v1/users")))
        .json(&json!({"name": "vera", "role": "viewer", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = as_admin(client.post(format!("{base}/api/v1/users/vera/tokens")))
        .json(&json!({"label": "phone"}))
        .send()
        .await
        .unwrap();
    let vera = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let phone = Browser::new(66);
    let endpoint = "https://push.example.net/wpush/v2/vera";
    let r = client
        .post(format!("{base}/api/v1/push/subscriptions"))
        .bearer_auth(&vera)
        .json(&json!({"channel": "phones", "subscription": phone.subscription(endpoint)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let stored: Vec<orderflow::notify::push::Subscription> = daemon
        .store
        .trees
        .get(orderflow::store::Tree::Push)
        .scan_prefix(b"s")
        .map(|kv| orderflow::store::codec::decode(&kv.unwrap().1).unwrap())
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].created_by.as_str(), stored[0].endpoint.as_str()),
        ("vera", endpoint)
    );
    // Without a proof, nobody subscribes anything.
    let r = client
        .post(format!("{base}/api/v1/push/subscriptions"))
        .json(&json!({"channel": "phones", "subscription": phone.subscription(endpoint)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Any other change is still refused to a viewer.
    let r = client
        .post(format!("{base}/api/v1/orders/1/actions/note"))
        .bearer_auth(&vera)
        .json(&json!({"note": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client
        .delete(format!("{base}/api/v1/push/subscriptions"))
        .bearer_auth(&vera)
        .json(&json!({"endpoint": endpoint}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["removed"], 1);

    daemon.shutdown().await;
    sim.stop().await;
}
