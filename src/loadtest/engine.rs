//! `engine`: the engine alone, for comparison with other durable-execution
//! engines. Instances of a workflow of 5 sequential durable steps whose
//! actions do nothing but return a small value (default 2,000), started
//! with a fixed number in flight (50, then 200), each start awaited to
//! completion. Every step is checkpointed and flushed twice (effect
//! started, effect finished). Runs in this process (no HTTP, no TikTok);
//! prints flows/s, steps/s and start→completion latency.
//!
//! `benches/engine.rs` runs this same code.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::{io, ms, pct, Error, Result, Table};
use crate::actors::RuntimeHandle;
use crate::config::RuntimeConfig;
use crate::order::Order;
use crate::runtime::event::{EventKind, OrderEvent, Source};
use crate::runtime::intake::Intake;
use crate::runtime::{effects::Executor, Clock, Registry};
use crate::store::Store;
use crate::tiktok::dto::WireOrder;

const WORKFLOW: &str = "name: five\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: s1\n    call: order.tag\n    with: { tags: [a] }\n  - id: s2\n    call: order.tag\n    with: { tags: [b] }\n  - id: s3\n    call: order.tag\n    with: { tags: [c] }\n  - id: s4\n    call: order.tag\n    with: { tags: [d] }\n  - id: s5\n    call: order.tag\n    with: { tags: [e] }\n  - id: done\n    end: fulfilled\n";

/// The same five steps, each tagging the order with its status: a
/// workflow that reads `order`, as real ones do (`--reads-order`).
const WORKFLOW_READS_ORDER: &str = "name: five\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: s1\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s2\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s3\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s4\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: s5\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: done\n    end: fulfilled\n";

/// Durable steps per flow.
pub const STEPS: usize = 5;

/// One run's figures.
#[derive(Debug, Clone)]
pub struct EngineRun {
    pub in_flight: usize,
    pub flows: usize,
    pub elapsed: Duration,
    /// Start → completion, sorted, ms.
    pub latency: Vec<f64>,
    pub mean_batch: f64,
    /// sled writes (inserts and removes) the committer applied, per flow.
    pub writes_per_flow: f64,
}

/// Runs `flows` flows with `in_flight` at a time, in a fresh store and a
/// fresh actix system (call it outside any runtime).
/// `reads_order`: steps whose arguments read `order` (the case the actor's
/// cached CEL value of the order is for).
pub fn run(in_flight: usize, flows: usize, reads_order: bool) -> Result<EngineRun> {
    let dir = tempfile::tempdir().map_err(io("creating a temp dir"))?;
    let wf = dir.path().join("wf");
    std::fs::create_dir_all(&wf).map_err(io("creating the workflows folder"))?;
    let workflow = if reads_order {
        WORKFLOW_READS_ORDER
    } else {
        WORKFLOW
    };
    std::fs::write(wf.join("five.yaml"), workflow).map_err(io("writing the workflow"))?;
    let system = actix_rt::System::new();
    system.block_on(async {
        let store = Store::open(&dir.path().join("data"), 256 << 20, 4096)?;
        let registry = Arc::new(Registry::load(wf.clone(), store.clone()).await?);
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
        let stats = store.committer.stats.clone();
        let batches0 = stats.batches.load(Ordering::Relaxed);
        let reqs0 = stats.requests.load(Ordering::Relaxed);
        let ops0 = stats.ops.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let feeder = {
            let (intake, started, slots) = (intake.clone(), started.clone(), slots.clone());
            actix::spawn(async move {
                for i in 0..flows {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    permit.forget();
                    let id = format!("flow-{i:06}");
                    let wire: WireOrder = match serde_json::from_value(serde_json::json!({
                        "id": id, "status": "AWAITING_SHIPMENT", "create_time": 1, "update_time": 1,
                        "line_items": [{"id": "l", "sku_id": "S"}]
                    })) {
                        Ok(w) => w,
                        Err(e) => {
                            tracing::error!(error = %e, "Could not build a flow's order");
                            return;
                        }
                    };
                    let order = match Order::from_wire("shop", &wire) {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::error!(error = %e, "Could not build a flow's order");
                            return;
                        }
                    };
                    started.lock().insert(id.clone(), Instant::now());
                    // Each start is its own task: starts overlap, as
                    // concurrent clients' would.
                    let intake = intake.clone();
                    actix::spawn(async move {
                        let ev = OrderEvent {
                            id: format!("e-{id}"),
                            order_id: id,
                            shop_id: "shop".into(),
                            source: Source::Api,
                            received_ms: 0,
                            kind: EventKind::Snapshot(Box::new(order)),
                        };
                        if let Err(e) = intake.submit(ev).await {
                            tracing::error!(error = %e, "Could not start a flow");
                        }
                    });
                }
            })
        };
        let mut latency = Vec::with_capacity(flows);
        while latency.len() < flows {
            let id = match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(id)) => id,
                _ => {
                    return Err(Error::Failed(format!(
                        "only {} of {flows} flows finished",
                        latency.len()
                    )))
                }
            };
            if let Some(t) = started.lock().remove(&id) {
                latency.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            slots.add_permits(1);
        }
        let elapsed = t0.elapsed();
        let _ = feeder.await;
        let batches = stats.batches.load(Ordering::Relaxed) - batches0;
        let reqs = stats.requests.load(Ordering::Relaxed) - reqs0;
        let ops = stats.ops.load(Ordering::Relaxed) - ops0;
        latency.sort_by(f64::total_cmp);
        Ok(EngineRun {
            in_flight,
            flows,
            elapsed,
            latency,
            mean_batch: reqs as f64 / batches.max(1) as f64,
            writes_per_flow: ops as f64 / flows.max(1) as f64,
        })
    })
}

/// Runs each in-flight level and prints one table.
pub fn print(levels: &[usize], flows: usize, reads_order: bool) -> Result<()> {
    let t = Table::start(&[
        "In flight",
        "Flows",
        "Flows/s",
        "Steps/s",
        "p50",
        "p95",
        "p99",
        "Mean checkpoint batch",
        "Sled writes/flow",
    ]);
    for &in_flight in levels {
        let r = run(in_flight, flows, reads_order)?;
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        t.row(&[
            r.in_flight.to_string(),
            r.flows.to_string(),
            format!("{:.0}", r.flows as f64 / secs),
            format!("{:.0}", (r.flows * STEPS) as f64 / secs),
            ms(pct(&r.latency, 0.5)),
            ms(pct(&r.latency, 0.95)),
            ms(pct(&r.latency, 0.99)),
            format!("{:.1}", r.mean_batch),
            format!("{:.1}", r.writes_per_flow),
        ]);
    }
    Ok(())
}
