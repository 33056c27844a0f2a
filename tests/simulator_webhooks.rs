//! Webhook delivery faults and TikTok's retry schedule, generated orders
//! flowing through the lifecycle, and the simulator's command-line help.

#[path = "common/tiktok.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::*;
use orderflow::simulator::SimulatorArgs;
use orderflow::tiktok::dto::{SearchOrdersFilter, SearchOrdersPage};
use orderflow::tiktok::webhook::verify_and_parse;
use orderflow::tiktok::Client;
use parking_lot::Mutex;
use serde_json::json;

type Got = Arc<Mutex<Vec<(Instant, Vec<u8>, String)>>>;

/// A receiver answering `status` to everything.
fn receiver(status: u16) -> (String, Got, actix_web::dev::ServerHandle) {
    let got: Got = Default::default();
    let g = got.clone();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = HttpServer::new(move || {
        let g = g.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let g = g.clone();
            async move {
                let auth = req
                    .headers()
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                g.lock().push((Instant::now(), body.to_vec(), auth));
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(l)
    .unwrap()
    .run();
    let h = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}/hook"), got, h)
}

#[actix_rt::test]
async fn a_refused_push_is_retried_four_times_on_the_compressed_schedule_then_dropped() {
    let (url, got, rh) = receiver(503);
    // 100 000 simulated seconds per real second: +2 min, +30 min, +3 h,
    // +12 h become 1.2 ms, 18 ms, 108 ms and 432 ms.
    let sim = start_sim(SimulatorArgs {
        webhook_url: Some(url),
        time_scale: 100_000.0,
        ..SimulatorArgs::default()
    })
    .await;
    let (oid, _) = create_orders(&sim, json!({})).await.remove(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = sim_get(&sim, "/sim/webhooks").await;
        if d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["outcome"] == "gave_up")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushes: Vec<_> = got.lock().clone();
    assert_eq!(pushes.len(), 5, "the first push and four retries");
    let first =
        verify_and_parse("sim-app-key", "sim-app-secret", &pushes[0].1, &pushes[0].2).unwrap();
    assert_eq!(first.order_id(), Some(oid.as_str()));
    for p in &pushes {
        assert_eq!(p.1, pushes[0].1, "a retry resends the same body");
    }
    let gaps: Vec<Duration> = pushes.windows(2).map(|w| w[1].0 - w[0].0).collect();
    // Each gap is the schedule's step (or more); the last (12 h) dwarfs the
    // first (2 min).
    assert!(gaps[3] >= Duration::from_millis(400), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[3] > gaps[0] * 5, "{gaps:?}");
    sim.stop().await;
    rh.stop(true).await;
}

#[actix_rt::test]
async fn webhook_faults_drop_duplicate_and_reorder() {
    let (url, got, rh) = receiver(200);
    let sim = start_sim(SimulatorArgs {
        webhook_url: Some(url),
        ..SimulatorArgs::default()
    })
    .await;

    sim_post(&sim, "/sim/faults", json!({"webhook_duplicate_rate": 1.0})).await;
    create_orders(&sim, json!({"count": 3})).await;
    sim_post(&sim, "/sim/faults", json!({"webhook_drop_rate": 1.0})).await;
    create_orders(&sim, json!({"count": 3})).await;
    sim_post(&sim, "/sim/faults", json!({"webhook_reorder_rate": 1.0})).await;
    let reordered = create_orders(&sim, json!({"count": 2})).await;
    sim_post(&sim, "/sim/faults", json!({})).await;
    let last = create_orders(&sim, json!({})).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if got.lock().len() >= 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} pushes",
            got.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<_> = got
        .lock()
        .iter()
        .map(|(_, b, a)| verify_and_parse("sim-app-key", "sim-app-secret", b, a).unwrap())
        .collect();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *per_id
            .entry(e.notification_id.clone().unwrap())
            .or_default() += 1;
    }
    // 3 duplicated (6 pushes), 3 dropped, 2 reordered + 1 normal = 9.
    assert_eq!(events.len(), 9, "{per_id:?}");
    assert_eq!(per_id.values().filter(|n| **n == 2).count(), 3);
    let d = sim_get(&sim, "/sim/webhooks").await;
    let outcomes: Vec<&str> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "dropped").count(), 3);
    assert!(outcomes.iter().filter(|o| **o == "reordered").count() >= 1);
    // The first reordered order's push arrives after a later one.
    let pos = |oid: &str| {
        events
            .iter()
            .position(|e| e.order_id() == Some(oid))
            .unwrap()
    };
    let held = pos(&reordered[0].0);
    assert!(
        held > pos(&reordered[1].0) || held > pos(&last[0].0),
        "push was not held back"
    );
    sim.stop().await;
    rh.stop(true).await;
}

#[actix_rt::test]
async fn generated_orders_flow_through_the_hold_and_buyers_cancel_in_it() {
    let sim = start_sim(SimulatorArgs {
        orders_per_second: 40.0,
        time_scale: 7200.0, // the one-hour hold lasts half a second
        buyer_cancel_rate: 0.3,
        shops: 2,
        ..SimulatorArgs::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cfg = config(&sim, 50.0);
    let client = Client::new(&cfg, sink()).unwrap();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for shop in &cfg.shops {
        let d = client
            .search_orders(
                &shop.id,
                &SearchOrdersFilter::default(),
                &SearchOrdersPage {
                    page_size: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        total += d.total_count;
        for o in &d.orders {
            *by_status.entry(o.status.clone()).or_default() += 1;
            let hidden = matches!(o.status.as_str(), "UNPAID" | "ON_HOLD");
            assert_eq!(
                o.recipient_address.is_none(),
                hidden,
                "{} {}",
                o.id,
                o.status
            );
            assert!(!o.line_items.is_empty());
            if o.status == "CANCELLED" {
                assert_eq!(o.cancellation_initiator.as_deref(), Some("BUYER"));
            }
            if o.status == "AWAITING_SHIPMENT" {
                assert!(!o.packages.is_empty());
                assert!(o.rts_sla_time.unwrap() > o.paid_time.unwrap());
            }
        }
    }
    println!("{total} generated orders: {by_status:?}");
    assert!(
        (30..=80).contains(&total),
        "{total} orders in 1.5 s at 40/s"
    );
    assert!(
        by_status.get("AWAITING_SHIPMENT").copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    assert!(
        by_status.get("CANCELLED").copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    sim.stop().await;
}

#[test]
fn every_simulator_flag_is_documented() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulatorArgs,
    }
    let cmd = Cli::command();
    let mut n = 0;
    for arg in cmd.get_arguments() {
        n += 1;
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(!help.trim().is_empty(), "--{} has no help", arg.get_id());
    }
    assert!(n >= 20, "{n} flags");
    let parsed = Cli::try_parse_from([
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--qps",
        "7",
        "--error-rate",
        "0.1",
        "--storm-ms",
        "500",
    ])
    .unwrap();
    assert_eq!(parsed.args.qps, 7);
    assert_eq!(parsed.args.storm_ms, 500);
}
