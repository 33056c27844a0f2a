//! The gateway under load: rate limits are never exceeded, faults are
//! absorbed, detail lookups are batched, and the queue honours deadlines.

#[path = "common/tiktok.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use orderflow::simulator::SimulatorArgs;
use orderflow::tiktok::dto::*;
use orderflow::tiktok::{GatewayHandle, Priority};
use serde_json::json;

#[actix_rt::test]
async fn burst_of_5000_detail_lookups_survives_a_429_storm_and_5xx() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        qps: 50,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let ids: Vec<String> = create_orders(&sim, json!({"shop_id": shop, "count": 5000}))
        .await
        .into_iter()
        .map(|o| o.0)
        .collect();
    let mut cfg = config(&sim, 50.0);
    cfg.max_attempts = 15;
    let gw = GatewayHandle::start(&cfg, sink()).unwrap();
    // The cipher lookup is not part of the measurement.
    gw.authorized_shops(&shop).await.unwrap();

    // A one-second 429 storm on top of 10% transient 5xx / 36009003.
    sim_post(
        &sim,
        "/sim/faults",
        json!({"storm_ms": 1000, "error_rate": 0.1}),
    )
    .await;
    let started = Instant::now();
    let lookups = ids.iter().map(|id| {
        let (gw, shop, id) = (gw.clone(), shop.clone(), id.clone());
        async move {
            (
                id.clone(),
                gw.order_detail(&shop, &id, Priority::sync(None)).await,
            )
        }
    });
    let results = futures::future::join_all(lookups).await;
    let elapsed = started.elapsed();
    for (id, r) in &results {
        let o = r.as_ref().unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(&o.id, id);
    }

    let (total, ok, throttled, faulted, rejected) = endpoint_stats(&sim, "order_detail").await;
    println!(
        "5000 lookups in {elapsed:?}: {total} detail calls = {ok} ok + {throttled} throttled + {faulted} faulted + {rejected} rejected"
    );
    // 5000 ids in batches of 50: 100 successful calls (a batch cut short by
    // its window could add one or two).
    assert!((100..=103).contains(&ok), "ok calls {ok}");
    // Every other call is a retry one of the faults forced.
    assert_eq!(
        total,
        ok + throttled + faulted,
        "no call failed for another reason"
    );
    assert_eq!(rejected, 0);
    assert!(throttled > 0 && faulted > 0, "the faults did fire");
    let max = max_per_second(&sim, &shop).await;
    println!("max requests in one second for the shop: {max} (limit 50)");
    assert!(max <= 50, "the simulator saw {max} requests in one second");
    assert_eq!(gw.queue_depth().await.unwrap(), 0);
    sim.stop().await;
}

#[actix_rt::test]
async fn sustains_at_least_90_percent_of_the_quota_without_a_429() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        qps: 50,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    let mut cfg = config(&sim, 50.0);
    cfg.shops[0].cipher = Some(sim.shops()[0].1.clone());
    let gw = GatewayHandle::start(&cfg, sink()).unwrap();

    // More calls than the quota allows in the measured period keep the
    // queue non-empty throughout: the rate is the limiter's, not ours.
    let n = 200;
    let started = Instant::now();
    let calls = (0..n).map(|_| {
        let (gw, shop) = (gw.clone(), shop.clone());
        async move { gw.shipping_providers(&shop, "7091146663229654785").await }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().len(), 3);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    let (total, ok, throttled, ..) = endpoint_stats(&sim, "shipping_providers").await;
    let max = max_per_second(&sim, &shop).await;
    println!(
        "sustained {rate:.1} calls/s over {elapsed:.2}s ({:.0}% of the 50 QPS limit); max {max} in one second; {throttled} throttled",
        rate / 50.0 * 100.0
    );
    assert_eq!(throttled, 0, "no 429 in steady state");
    assert_eq!((total, ok), (n, n));
    assert!(max <= 50);
    // 0.9 × 50 = 45/s plus a burst of 5: 200 calls need 4.3 s, i.e. 46.5/s
    // (92% of the limit; the figure printed above is the one the README
    // quotes). The assertion only guards against a limiter far below its
    // setting: a busy CI machine slows the calls, never speeds them up.
    assert!(rate >= 40.0, "only {rate:.1} calls/s");
    sim.stop().await;
}

#[actix_rt::test]
async fn queued_calls_complete_in_deadline_order_writes_first() {
    let sim = start_sim(SimulatorArgs {
        shops: 1,
        manual_carrier: true,
        ..SimulatorArgs::default()
    })
    .await;
    let shop = sim.shops()[0].0.clone();
    // Slow enough (3.6 calls/s, one at a time) that every call below is
    // queued before the second one may start.
    let mut cfg = config(&sim, 4.0);
    cfg.shops[0].cipher = Some(sim.shops()[0].1.clone());
    cfg.max_concurrency = 1;
    let gw = GatewayHandle::start(&cfg, sink()).unwrap();

    let offsets: [i64; 10] = [
        5_000, 900, 86_400, 60, 30_000, 7_200, 120, 40_000, 3_600, 600,
    ];
    let mut orders = Vec::new();
    for off in offsets {
        let o = create_orders(
            &sim,
            json!({"shop_id": shop, "ship_by_in_secs": off, "shipping_type": "TIKTOK"}),
        )
        .await;
        orders.push((o[0].0.clone(), o[0].1.clone()));
    }
    // The deadline each order really has, as the gateway's callers see it.
    let mut deadlines = Vec::new();
    for (oid, _) in &orders {
        let o = sim_get(&sim, &format!("/sim/orders/{oid}")).await;
        deadlines.push(o["order"]["rts_sla_time"].as_i64().unwrap());
    }

    let done = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    // The blocker takes the only permit; everything after it queues.
    let blocker = {
        let (gw, shop) = (gw.clone(), shop.clone());
        actix_rt::spawn(async move { gw.shipping_providers(&shop, "7091146663229654785").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut tasks = Vec::new();
    // Background polling, submitted first and with the earliest "deadline".
    for i in 0..2 {
        let (gw, shop, done) = (gw.clone(), shop.clone(), done.clone());
        tasks.push(actix_rt::spawn(async move {
            let p = Priority {
                class: orderflow::tiktok::gateway::Class::Background,
                deadline: Some(0),
            };
            let s = shop.clone();
            gw.call(&shop, p, move |c| async move {
                c.shipping_providers(&s, "7091146663229654785").await
            })
            .await
            .unwrap();
            done.lock().push(format!("background-{i}"));
        }));
    }
    for ((oid, pkg), deadline) in orders.iter().zip(&deadlines) {
        let (gw, shop, done, oid, pkg, d) = (
            gw.clone(),
            shop.clone(),
            done.clone(),
            oid.clone(),
            pkg.clone(),
            *deadline,
        );
        tasks.push(actix_rt::spawn(async move {
            let r = gw
                .ship_package(
                    &shop,
                    &pkg,
                    ShipPackageRequest::default(),
                    Priority::write(Some(d)),
                )
                .await;
            assert!(!r.unwrap().is_already_shipped());
            done.lock().push(oid);
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        gw.queue_depth().await.unwrap(),
        12,
        "all queued behind the blocker"
    );
    blocker.await.unwrap().unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    let mut by_deadline: Vec<(i64, String)> = deadlines
        .iter()
        .copied()
        .zip(orders.iter().map(|o| o.0.clone()))
        .collect();
    by_deadline.sort();
    let mut want: Vec<String> = by_deadline.into_iter().map(|(_, id)| id).collect();
    want.push("background-0".into());
    want.push("background-1".into());
    assert_eq!(*done.lock(), want, "completion order");

    // The simulator saw the ships in the same order.
    let ledger = sim_get(&sim, "/sim/ledger?action=ship").await;
    let seen: Vec<String> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, want[..10]);
    sim.stop().await;
}
