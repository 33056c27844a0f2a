//! Crash recovery against the real binary: a few hundred orders flow
//! through a multi-step workflow whose effects are `http.request` calls to
//! a recording server, while the daemon is SIGKILLed at random moments and
//! restarted. Afterwards: every order completed; every (order, step)
//! effect reached the recorder under exactly one idempotency key and was
//! applied once; every audit log is gap-free.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{wait_ready, wire_order, Daemon, Recorder};
use rand::Rng;

const ORDERS: usize = 300;
const KILLS: usize = 6;
const STEPS: [&str; 3] = ["reserve", "label", "notify"];

fn workflow(url: &str) -> String {
    format!(
        r#"
name: crashy
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: reserve
    call: http.request
    with:
      url: "{url}"
      body: {{ order: "${{{{ order.id }}}}", step: reserve }}
    retry: {{ max_attempts: 20, initial_delay: 50ms, max_delay: 500ms }}
  - id: pause
    sleep: 150ms
  - id: label
    call: http.request
    with:
      url: "{url}"
      body: {{ order: "${{{{ order.id }}}}", step: label }}
    retry: {{ max_attempts: 20, initial_delay: 50ms, max_delay: 500ms }}
  - id: notify
    call: http.request
    with:
      url: "{url}"
      body: {{ order: "${{{{ order.id }}}}", step: notify }}
    retry: {{ max_attempts: 20, initial_delay: 50ms, max_delay: 500ms }}
  - id: done
    end: fulfilled
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let (_, mut rng) = common::seeded_rng("CRASH_SEED");
    let recorder = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("crashy.yaml"), workflow(&recorder.url())).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut daemon = Daemon::start(&data, &wf, &log, &[]);
    wait_ready(&client, &daemon.base).await;
    let mut acked: HashSet<usize> = HashSet::new();
    let mut next = 0usize;
    for kill in 0..KILLS {
        // Feed orders for a random while, then kill -9 mid-flight.
        let until = Instant::now() + Duration::from_millis(rng.random_range(150..700));
        while Instant::now() < until {
            let batch: Vec<usize> = (next..(next + 5).min(ORDERS)).collect();
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let results =
                futures::future::join_all(batch.iter().map(|&i| submit(&client, &daemon.base, i)))
                    .await;
            for (i, ok) in batch.iter().zip(results) {
                if ok {
                    acked.insert(*i);
                }
            }
            next = batch.last().unwrap() + 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        println!("kill {kill}: {} orders acknowledged so far", acked.len());
        daemon.kill9();
        common::assert_indexes_match(&data);
        daemon = Daemon::start(&data, &wf, &log, &[]);
        wait_ready(&client, &daemon.base).await;
    }
    // Everything not yet acknowledged (including any lost to a kill before
    // its ack) is submitted again: the same event id, so at most once.
    for i in 0..ORDERS {
        while !acked.contains(&i) {
            if submit(&client, &daemon.base, i).await {
                acked.insert(i);
            }
        }
    }

    // Wait until every order has finished its workflow.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats: serde_json::Value = client
            .get(format!("{}/api/v1/stats/lifecycle", daemon.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = stats["by_lifecycle"]["fulfilled"].as_u64().unwrap_or(0);
        if done == ORDERS as u64 {
            assert_eq!(stats["total"].as_u64(), Some(ORDERS as u64), "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "orders stuck: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    {
        let seen = recorder.seen.lock().unwrap();
        for i in 0..ORDERS {
            let order = format!("ord-{i}");
            for step in STEPS {
                let keys = seen
                    .keys
                    .get(&(order.clone(), step.to_string()))
                    .unwrap_or_else(|| panic!("{order}/{step} never reached the recorder"));
                assert_eq!(keys.len(), 1, "{order}/{step} used several keys: {keys:?}");
                let key = keys.iter().next().unwrap();
                assert_eq!(
                    seen.applied.get(key),
                    Some(&1),
                    "{order}/{step} applied once"
                );
            }
        }
        assert_eq!(seen.keys.len(), ORDERS * STEPS.len());
        println!(
            "{} effect requests, {} repeated a key after a crash (deduplicated by the recorder)",
            seen.requests, seen.duplicates
        );
    }

    for i in 0..ORDERS {
        let id = format!("ord-{i}");
        let view: serde_json::Value = client
            .get(format!("{}/api/v1/orders/{id}", daemon.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["instance_state"], "completed:fulfilled", "{view}");
        let audit: Vec<serde_json::Value> = client
            .get(format!("{}/api/v1/orders/{id}/audit", daemon.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let seqs: Vec<u64> = audit.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (1..=view["audit_seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, expected, "audit of {id} has gaps");
        assert!(audit.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("finished: completed (fulfilled)")));
    }
    let status = daemon.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

async fn submit(client: &reqwest::Client, base: &str, i: usize) -> bool {
    let body = serde_json::json!({
        "id": format!("evt-{i}"),
        "shop_id": "shop-1",
        "order": wire_order(&format!("ord-{i}"), 1_764_000_000 + i as i64),
    });
    match client
        .post(format!("{base}/api/v1/events"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}
