//! Notifications against a real HTTP receiver on 127.0.0.1:0: the body is
//! Slack-compatible, flaky receivers are retried, dead ones are recorded as
//! failures within the attempt budget.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use orderflow::notify::{Event, Notifier, NotifyConfig, Secret};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// A receiver: `/ok` records, `/flaky` fails `fail_first` times with 503
/// then records, `/dead` always answers 500, `/gone` answers 404, `/slow`
/// sleeps 2 s.
struct Receiver {
    base: String,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    hits: Arc<AtomicU32>,
    server: actix_web::dev::ServerHandle,
}

async fn receiver(fail_first: u32) -> Receiver {
    let bodies: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let hits = Arc::new(AtomicU32::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (b, h) = (bodies.clone(), hits.clone());
    let server = HttpServer::new(move || {
        let (b, h) = (b.clone(), h.clone());
        App::new().route(
            "/{kind}",
            web::post().to(move |kind: web::Path<String>, body: web::Json<Value>| {
                let (b, h) = (b.clone(), h.clone());
                async move {
                    let n = h.fetch_add(1, Ordering::SeqCst);
                    match kind.as_str() {
                        "flaky" if n < fail_first => HttpResponse::ServiceUnavailable().finish(),
                        "dead" => HttpResponse::InternalServerError().finish(),
                        "gone" => HttpResponse::NotFound().finish(),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            HttpResponse::Ok().finish()
                        }
                        _ => {
                            b.lock().push((kind.into_inner(), body.into_inner()));
                            HttpResponse::Ok().body("ok")
                        }
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
    Receiver {
        base,
        bodies,
        hits,
        server: handle,
    }
}

fn config(r: &Receiver) -> NotifyConfig {
    let mut channels = BTreeMap::new();
    for c in ["ok", "flaky", "dead", "gone", "slow"] {
        channels.insert(c.to_string(), Secret::new(format!("{}/{c}", r.base)).into());
    }
    NotifyConfig {
        channels,
        default_channel: "ok".into(),
        alerts_channel: Some("ok".into()),
        max_attempts: 4,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        timeout: Duration::from_millis(300),
        ..NotifyConfig::default()
    }
}

#[actix_rt::test]
async fn body_is_slack_compatible_and_carries_the_event() {
    let r = receiver(0).await;
    let n = Notifier::new(config(&r)).unwrap();
    let e = Event::new("out_of_stock", "Order 42 is out of stock: SKU A")
        .order("42")
        .data(json!({"sku": "A", "requested": 2, "available": 0}));
    let d = n.send(None, &e).await.unwrap();
    assert!(d.delivered, "{d:?}");
    assert_eq!(
        (d.attempts, d.status, d.channel.as_str()),
        (1, Some(200), "ok")
    );
    let bodies = r.bodies.lock().clone();
    assert_eq!(bodies.len(), 1);
    let (path, body) = &bodies[0];
    assert_eq!(path, "ok");
    assert_eq!(body["text"], "Order 42 is out of stock: SKU A");
    assert_eq!(body["event"]["kind"], "out_of_stock");
    assert_eq!(body["event"]["order_id"], "42");
    assert_eq!(body["event"]["data"]["requested"], 2);
    assert!(body["event"]["at"].as_i64().unwrap() > 1_700_000_000);

    // Alerts take the same path.
    let d = n.alert("Gateway is throttled", json!({"shop": "1"})).await;
    assert!(d.delivered);
    assert_eq!(r.bodies.lock()[1].1["event"]["kind"], "alert");
    assert_eq!(r.bodies.lock()[1].1["text"], "Gateway is throttled");

    assert!(matches!(
        n.send(Some("nope"), &e).await,
        Err(orderflow::notify::Error::UnknownChannel(_))
    ));
    assert_eq!(n.stats().delivered, 2);
    assert_eq!(n.stats().failed, 0);
    r.server.stop(true).await;
}

#[actix_rt::test]
async fn a_receiver_failing_twice_is_retried_until_it_accepts() {
    let r = receiver(2).await;
    let n = Notifier::new(config(&r)).unwrap();
    let started = Instant::now();
    let d = n
        .send(Some("flaky"), &Event::new("label_bought", "Label bought"))
        .await
        .unwrap();
    let took = started.elapsed();
    println!("flaky receiver: {d:?} in {took:?}");
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.attempts, 3);
    assert_eq!(r.hits.load(Ordering::SeqCst), 3);
    assert_eq!(r.bodies.lock().len(), 1, "recorded once");
    // Back-off: at least half of 20 ms + half of 40 ms.
    assert!(took >= Duration::from_millis(30), "{took:?}");
    r.server.stop(true).await;
}

#[actix_rt::test]
async fn a_dead_receiver_is_a_recorded_failure_within_the_budget() {
    let r = receiver(0).await;
    let n = Notifier::new(config(&r)).unwrap();
    let started = Instant::now();
    let d = n
        .send(Some("dead"), &Event::new("alert", "x"))
        .await
        .unwrap();
    assert!(!d.delivered);
    assert_eq!((d.attempts, d.status), (4, Some(500)));
    assert_eq!(d.error.as_deref(), Some("HTTP 500"));
    assert!(started.elapsed() <= n.budget(), "{:?}", started.elapsed());

    // A 404 is final at once: no retry can fix a wrong URL.
    let d = n
        .send(Some("gone"), &Event::new("alert", "x"))
        .await
        .unwrap();
    assert!(!d.delivered);
    assert_eq!((d.attempts, d.status), (1, Some(404)));

    // A receiver slower than the timeout: every attempt times out, and the
    // whole send still ends within the budget.
    let started = Instant::now();
    let d = n
        .send(Some("slow"), &Event::new("alert", "x"))
        .await
        .unwrap();
    let took = started.elapsed();
    println!("slow receiver: {d:?} in {took:?}, budget {:?}", n.budget());
    assert!(!d.delivered);
    assert_eq!(d.attempts, 4);
    assert!(
        d.error.as_deref().unwrap().starts_with("timed out"),
        "{d:?}"
    );
    assert!(took <= n.budget() + Duration::from_millis(500), "{took:?}");

    // Nothing listening at all: transport errors, retried, recorded.
    let mut cfg = config(&r);
    cfg.channels.insert(
        "ok".into(),
        Secret::new("http://127.0.0.1:9/nothing").into(),
    );
    let n2 = Notifier::new(cfg).unwrap();
    let d = n2.send(None, &Event::new("alert", "x")).await.unwrap();
    assert!(
        !d.delivered && d.status.is_none() && d.attempts == 4,
        "{d:?}"
    );

    assert_eq!(n.stats().failed, 3);
    let f = n.recent_failures();
    assert_eq!(f.len(), 3);
    assert_eq!(f[0].channel, "dead");
    // The URL never shows up in what is recorded.
    assert!(f
        .iter()
        .all(|d| !d.error.as_deref().unwrap_or("").contains("127.0.0.1")));
    r.server.stop(true).await;
}
