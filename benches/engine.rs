//! The engine alone, for comparison with other durable-execution engines:
//! 2,000 instances of a workflow of 5 sequential durable steps whose
//! actions do nothing but return a small value, started with 50 and then
//! 200 in flight, each start awaited to completion. Every step is
//! checkpointed and flushed twice (effect started, effect finished).
//! Prints flows/s, steps/s, start→completion latency and sled writes per
//! flow (intake, inbox, checkpoints, audit, markers).
//! `cargo bench --bench engine` (`-- --flows N`; `-- --reads-order` for
//! steps whose arguments read `order`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow::actors::RuntimeHandle;
use orderflow::config::RuntimeConfig;
use orderflow::order::Order;
use orderflow::runtime::event::{EventKind, OrderEvent, Source};
use orderflow::runtime::intake::Intake;
use orderflow::runtime::{effects::Executor, Clock, Registry};
use orderflow::store::Store;
use orderflow::tiktok::dto::WireOrder;
use tokio::sync::Semaphore;

const WORKFLOW: &str = "name: five\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: s1\n    call: order.tag\n    with: { tags: [a] }\n  - id: s2\n    call: order.tag\n    with: { tags: [b] }\n  - id: s3\n    call: order.tag\n    with: { tags: [c] }\n  - id: s4\n    call: order.tag\n    with: { tags: [d] }\n  - id: s5\n    call: order.tag\n    with: { tags: [e] }\n  - id: done\n    end: fulfilled\n";

/// The same five steps, each tagging the order with its status: a
/// workflow that reads `order`, as real ones do (`--reads-order`).
const WORKFLOW_READS_ORDER: &str = "name: five\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: s1\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s2\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s3\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s4\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s5\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: done\n    end: fulfilled\n";

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let flows: usize = std::env::args()
        .skip_while(|a| a != "--flows")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 2_000 });
    let workflow = if std::env::args().any(|a| a == "--reads-order") {
        WORKFLOW_READS_ORDER
    } else {
        WORKFLOW
    };
    println!("| In flight | Flows | Flows/s | Steps/s | p50 | p95 | p99 | Mean checkpoint batch | Sled writes/flow |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for in_flight in [50usize, 200] {
        let dir = tempfile::tempdir().unwrap();
        let wf = dir.path().join("wf");
        std::fs::create_dir_all(&wf).unwrap();
        std::fs::write(wf.join("five.yaml"), workflow).unwrap();
        let system = actix_rt::System::new();
        system.block_on(async {
            let store = Store::open(&dir.path().join("data"), 256 << 20, 4096).unwrap();
            let registry = Arc::new(Registry::load(wf.clone(), store.clone()).await.unwrap());
            let runtime = RuntimeHandle::start(
                store.clone(),
                registry,
                Executor::new(Duration::from_secs(5)),
                Clock::system(),
                RuntimeConfig::default(),
                2,
            );
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let _ = runtime.shared.on_finished.set(tx);
            let intake = Intake::new(store.clone(), runtime.clone());
            let started: Arc<parking_lot::Mutex<HashMap<String, Instant>>> = Default::default();
            let slots = Arc::new(Semaphore::new(in_flight));
            let batches0 = store.committer.stats.batches.load(std::sync::atomic::Ordering::Relaxed);
            let reqs0 = store.committer.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
            let ops0 = store.committer.stats.ops.load(std::sync::atomic::Ordering::Relaxed);
            let t0 = Instant::now();
            let feeder = {
                let (intake, started, slots) = (intake.clone(), started.clone(), slots.clone());
                actix::spawn(async move {
                    for i in 0..flows {
                        let permit = slots.clone().acquire_owned().await.unwrap();
                        permit.forget();
                        let id = format!("flow-{i:06}");
                        let w: WireOrder = serde_json::from_value(serde_json::json!({
                            "id": id, "status": "AWAITING_SHIPMENT", "create_time": 1, "update_time": 1,
                            "line_items": [{"id": "l", "sku_id": "S"}]
                        }))
                        .unwrap();
                        started.lock().insert(id.clone(), Instant::now());
                        // Each start is its own task: starts overlap, as
                        // concurrent clients' would.
                        let intake = intake.clone();
                        actix::spawn(async move {
                            intake
                                .submit(OrderEvent {
                                    id: format!("e-{id}"),
                                    order_id: id,
                                    shop_id: "shop".into(),
                                    source: Source::Api,
                                    received_ms: 0,
                                    kind: EventKind::Snapshot(Box::new(Order::from_wire("shop", &w).unwrap())),
                                })
                                .await
                                .unwrap();
                        });
                    }
                })
            };
            let mut lat = Vec::with_capacity(flows);
            while lat.len() < flows {
                let id = rx.recv().await.unwrap();
                if let Some(t) = started.lock().remove(&id) {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                slots.add_permits(1);
            }
            let secs = t0.elapsed().as_secs_f64();
            let _ = feeder.await;
            let batches = store.committer.stats.batches.load(std::sync::atomic::Ordering::Relaxed) - batches0;
            let reqs = store.committer.stats.requests.load(std::sync::atomic::Ordering::Relaxed) - reqs0;
            let ops = store.committer.stats.ops.load(std::sync::atomic::Ordering::Relaxed) - ops0;
            lat.sort_by(|a, b| a.total_cmp(b));
            println!(
                "| {in_flight} | {flows} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} | {:.1} |",
                flows as f64 / secs,
                (flows * 5) as f64 / secs,
                pct(&lat, 0.5),
                pct(&lat, 0.95),
                pct(&lat, 0.99),
                reqs as f64 / batches.max(1) as f64,
                ops as f64 / flows as f64
            );
        });
    }
}
