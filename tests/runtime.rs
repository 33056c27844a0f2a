//! The runtime in-process: durable timers across a restart (late ones fire
//! at once), passivation and reactivation, an actor rebuilt after it died,
//! exception and operator resume/skip/hold, and reload of a changed and of
//! a broken workflow.
//!
//! Time is a manual clock moved forward by hand rather than tokio's paused
//! time: the commit thread is real I/O, and paused time would race ahead on
//! its own while the runtime waits for a flush.
//!
//! A "restart" here is a fresh runtime (new supervisor, no actors, a new
//! timer service) over the same store: everything in memory is gone and
//! only what was checkpointed remains. (`tests/crash.rs` kills real
//! processes.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orderflow::actors::RuntimeHandle;
use orderflow::config::{Dur, RuntimeConfig};
use orderflow::lifecycle::Lifecycle;
use orderflow::order::Order;
use orderflow::runtime::event::{EventKind, OperatorAction, OrderEvent, Source};
use orderflow::runtime::intake::Intake;
use orderflow::runtime::{effects::Executor, timers, Clock, ClockControl, Registry};
use orderflow::store::{OrderRecord, Store};
use orderflow::tiktok::dto::WireOrder;
use orderflow::workflow::interpreter::State;
use orderflow::workflow::value::Data;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_764_000_000_000;

struct Rt {
    handle: RuntimeHandle,
    intake: Intake,
    stop: CancellationToken,
}

fn start(store: &Store, registry: &Arc<Registry>, clock: Clock, passivate: Duration) -> Rt {
    let cfg = RuntimeConfig {
        passivate_after: Dur(passivate),
        mailbox: 16,
        arbiters: 0,
        shutdown_grace: Dur(Duration::from_secs(1)),
        ..RuntimeConfig::default()
    };
    let handle = RuntimeHandle::start(
        store.clone(),
        registry.clone(),
        Executor::new(Duration::from_secs(1)),
        clock.clone(),
        cfg,
        0,
    );
    let stop = CancellationToken::new();
    actix::spawn(timers::run(
        store.clone(),
        handle.clone(),
        clock.clone(),
        stop.clone(),
    ));
    Rt {
        intake: Intake::new(store.clone(), handle.clone()),
        handle,
        stop,
    }
}

fn order_event(id: &str, n: u32) -> OrderEvent {
    let w: WireOrder = serde_json::from_value(serde_json::json!({
        "id": id, "status": "AWAITING_SHIPMENT", "create_time": 1_764_000_000, "update_time": 1_764_000_000,
        "line_items": [{"id": "li1", "sku_id": "S1", "sale_price": "10.00"}],
    }))
    .unwrap();
    OrderEvent {
        id: format!("evt-{id}-{n}"),
        order_id: id.into(),
        shop_id: "shop".into(),
        source: Source::Api,
        received_ms: T0,
        kind: EventKind::Snapshot(Box::new(Order::from_wire("shop", &w).unwrap())),
    }
}

fn signal(id: &str, n: u32, data: serde_json::Value) -> OrderEvent {
    OrderEvent {
        id: format!("sig-{id}-{n}"),
        order_id: id.into(),
        shop_id: "shop".into(),
        source: Source::Api,
        received_ms: T0,
        kind: EventKind::Signal(Data::from_json(&data)),
    }
}

fn operator(id: &str, n: u32, a: OperatorAction) -> OrderEvent {
    OrderEvent {
        id: format!("op-{id}-{n}"),
        order_id: id.into(),
        shop_id: "shop".into(),
        source: Source::Operator,
        received_ms: T0,
        kind: EventKind::Operator(a),
    }
}

/// Lets the actors, the commit thread and the timer service catch up.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn until(
    store: &Store,
    id: &str,
    what: &str,
    f: impl Fn(&OrderRecord) -> bool,
) -> OrderRecord {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Some(r) = store.load_order(id).unwrap() {
            if f(&r) {
                return r;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "order {id} never reached: {what}; it is {:?}",
        store
            .load_order(id)
            .unwrap()
            .map(|r| (r.lifecycle, r.instance.map(|i| i.state)))
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const SLEEPY: &str = "name: sleepy\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: nap\n    sleep: 1h\n  - id: tag\n    call: order.tag\n    with: { tags: [woke] }\n  - id: done\n    end: fulfilled\n";

fn setup(wf: &str) -> (tempfile::TempDir, Store, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let wfdir = dir.path().join("wf");
    std::fs::create_dir_all(&wfdir).unwrap();
    write(&wfdir, "w.yaml", wf);
    let store = Store::open(&dir.path().join("data"), 64 << 20, 1024).unwrap();
    (dir, store, wfdir)
}

#[actix_rt::test]
async fn durable_timers_fire_after_a_restart_and_late_ones_at_once() {
    let (_dir, store, wfdir) = setup(SLEEPY);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let (clock, ctl): (Clock, ClockControl) = Clock::manual(T0);
    let rt = start(
        &store,
        &registry,
        clock.clone(),
        Duration::from_secs(3600 * 24),
    );
    rt.intake.submit(order_event("o1", 0)).await.unwrap();
    rt.intake.submit(order_event("o2", 0)).await.unwrap();
    let r = until(&store, "o1", "sleeping", |r| {
        matches!(
            r.instance.as_ref().map(|i| &i.state),
            Some(State::Sleeping { .. })
        )
    })
    .await;
    assert_eq!(r.timers.len(), 1);
    assert_eq!(r.timers[0].due_ms, r.received_ms + 3_600_000);
    until(&store, "o2", "sleeping", |r| !r.timers.is_empty()).await;

    // "Crash": everything in memory is gone.
    rt.stop.cancel();
    drop(rt);
    // Half an hour later the new runtime starts; the timer is not due yet.
    ctl.advance(Duration::from_secs(1800));
    let rt2 = start(
        &store,
        &registry,
        clock.clone(),
        Duration::from_secs(3600 * 24),
    );
    settle().await;
    assert!(matches!(
        store
            .load_order("o1")
            .unwrap()
            .unwrap()
            .instance
            .unwrap()
            .state,
        State::Sleeping { .. }
    ));
    // When it is due, it fires exactly as it would have without the restart.
    ctl.advance(Duration::from_secs(1801));
    let r = until(&store, "o1", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    assert_eq!(r.order.unwrap().tags, vec!["woke".to_string()]);
    until(&store, "o2", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    assert!(
        store.due_timers(i64::MAX, 10).unwrap().is_empty(),
        "fired timers leave the index"
    );
    rt2.stop.cancel();

    // Late timers: an order asleep when the daemon went down for longer
    // than its sleep wakes as soon as the runtime is back.
    let rt3 = start(
        &store,
        &registry,
        clock.clone(),
        Duration::from_secs(3600 * 24),
    );
    rt3.intake.submit(order_event("o3", 0)).await.unwrap();
    until(&store, "o3", "sleeping", |r| !r.timers.is_empty()).await;
    rt3.stop.cancel();
    drop(rt3);
    ctl.advance(Duration::from_secs(3 * 3600));
    let _rt4 = start(
        &store,
        &registry,
        clock.clone(),
        Duration::from_secs(3600 * 24),
    );
    until(&store, "o3", "fulfilled at once", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
}

const WAITER: &str = "name: waiter\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: wait_scan\n    wait:\n      until: \"event.type == 'scan'\"\n      timeout: 1d\n  - id: done\n    end: fulfilled\n";

#[actix_rt::test]
async fn idle_actors_passivate_and_come_back_from_their_checkpoint() {
    let (_dir, store, wfdir) = setup(WAITER);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_millis(600),
    );
    for i in 0..20 {
        rt.intake
            .submit(order_event(&format!("p{i}"), 0))
            .await
            .unwrap();
    }
    for i in 0..20 {
        until(&store, &format!("p{i}"), "waiting", |r| {
            matches!(
                r.instance.as_ref().map(|i| &i.state),
                Some(State::Waiting { .. })
            )
        })
        .await;
    }
    assert_eq!(rt.handle.active_actors().await, 20);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rt.handle.active_actors().await,
        0,
        "idle actors are stopped; their state is on disk"
    );
    // An event reactivates the order from its checkpoint.
    rt.intake
        .submit(signal("p7", 1, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    until(&store, "p7", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    assert_eq!(rt.handle.active_actors().await, 1);
    // Others still wait, on disk only.
    assert!(matches!(
        store
            .load_order("p8")
            .unwrap()
            .unwrap()
            .instance
            .unwrap()
            .state,
        State::Waiting { .. }
    ));
}

#[actix_rt::test]
async fn a_dead_actor_is_rebuilt_from_its_checkpoint() {
    let (_dir, store, wfdir) = setup(WAITER);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    rt.intake.submit(order_event("d1", 0)).await.unwrap();
    until(&store, "d1", "waiting", |r| {
        r.audit_seq > 0
            && matches!(
                r.instance.as_ref().map(|i| &i.state),
                Some(State::Waiting { .. })
            )
    })
    .await;
    rt.handle.kill_actor("d1").await;
    settle().await;
    // The supervisor was not told; the next delivery finds the mailbox
    // closed, rebuilds the actor from disk and carries on.
    rt.intake
        .submit(signal("d1", 1, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    let r = until(&store, "d1", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    let audit = store.audit("d1").unwrap();
    let seqs: Vec<u64> = audit.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=r.audit_seq).collect::<Vec<_>>());
}

const FAILING: &str = "name: failing\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: check\n    call: order.validate\n  - id: tag\n    call: order.tag\n    with: { tags: [after] }\n  - id: done\n    end: fulfilled\n";

#[actix_rt::test]
async fn exhausted_step_parks_in_exception_until_an_operator_acts() {
    let (_dir, store, wfdir) = setup(FAILING);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    rt.intake.submit(order_event("x1", 0)).await.unwrap();
    let r = until(&store, "x1", "exception", |r| {
        r.lifecycle == Lifecycle::Exception
    })
    .await;
    assert!(
        r.last_error.as_deref().unwrap_or("").contains("check"),
        "{:?}",
        r.last_error
    );
    // Resume re-runs the failed step (it fails again: still exception).
    rt.intake
        .submit(operator("x1", 1, OperatorAction::Resume))
        .await
        .unwrap();
    until(&store, "x1", "resumed and failed again", |r| {
        r.lifecycle == Lifecycle::Exception
            && r.instance
                .as_ref()
                .and_then(|i| i.visits.get("check").copied())
                == Some(2)
    })
    .await;
    // Hold and release around it.
    rt.intake
        .submit(operator(
            "x1",
            2,
            OperatorAction::Hold {
                reason: "look".into(),
            },
        ))
        .await
        .unwrap();
    until(&store, "x1", "held", |r| r.lifecycle == Lifecycle::OnHold).await;
    rt.intake
        .submit(operator("x1", 3, OperatorAction::Release))
        .await
        .unwrap();
    until(&store, "x1", "released", |r| {
        r.lifecycle == Lifecycle::Exception
    })
    .await;
    // Skip moves on, keeping the progress made.
    rt.intake
        .submit(operator("x1", 4, OperatorAction::Skip))
        .await
        .unwrap();
    let r = until(&store, "x1", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    assert_eq!(r.order.unwrap().tags, vec!["after".to_string()]);
}

#[actix_rt::test]
async fn reload_keeps_running_instances_on_their_version_and_rejects_broken_files() {
    let v1 = WAITER;
    let (_dir, store, wfdir) = setup(v1);
    let registry = Arc::new(Registry::load(wfdir.clone(), store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    rt.intake.submit(order_event("v1-order", 0)).await.unwrap();
    let r = until(&store, "v1-order", "waiting", |r| {
        matches!(
            r.instance.as_ref().map(|i| &i.state),
            Some(State::Waiting { .. })
        )
    })
    .await;
    let old_key = r.workflow.clone().unwrap();

    // A changed file: new orders get the new version.
    let v2 = v1.replace("end: fulfilled", "end: delivered");
    write(&wfdir, "w.yaml", &v2);
    let keys = registry.reload().await.unwrap();
    assert_ne!(keys[0], old_key);
    rt.intake.submit(order_event("v2-order", 0)).await.unwrap();
    let r2 = until(&store, "v2-order", "waiting", |r| r.workflow.is_some()).await;
    assert_eq!(r2.workflow.as_deref(), Some(keys[0].as_str()));

    // A broken file is rejected with its errors; the current version stays.
    write(&wfdir, "w.yaml", "name: waiter\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: x\n    wait:\n      until: \"true\"\n");
    let err = registry.reload().await.unwrap_err().to_string();
    assert!(err.contains("wait has no timeout"), "{err}");
    assert_eq!(registry.current().get("waiter").unwrap().key(), keys[0]);

    // The old instance finishes on its own version (fulfilled), the new on
    // the new one (delivered).
    rt.intake
        .submit(signal("v1-order", 1, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    rt.intake
        .submit(signal("v2-order", 1, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    until(&store, "v1-order", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    until(&store, "v2-order", "delivered", |r| {
        r.lifecycle == Lifecycle::Delivered
    })
    .await;

    // After a restart, the old version is loaded back from the store. The
    // broken file is skipped at start (the daemon starts without it).
    let fresh = Registry::load(wfdir.clone(), store.clone()).await.unwrap();
    assert!(
        fresh.current().get("waiter").is_none(),
        "the broken file is skipped"
    );
    assert_eq!(fresh.get(&old_key).unwrap().key(), old_key);
    write(&wfdir, "w.yaml", &v2);
    let fresh = Registry::load(wfdir, store.clone()).await.unwrap();
    assert_eq!(fresh.get(&old_key).unwrap().key(), old_key);
}

#[actix_rt::test]
async fn events_stored_but_never_applied_are_swept_and_applied_once() {
    let (_dir, store, wfdir) = setup(SLEEPY);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    // An event in the inbox whose delivery was lost (as if the process had
    // died right after acknowledging it).
    let ev = order_event("lost", 0);
    let inbox = orderflow::store::InboxEvent {
        seq: 7,
        event: ev.clone(),
    };
    store
        .commit(vec![orderflow::store::Op::Put {
            tree: orderflow::store::Tree::Inbox,
            key: 7u64.to_be_bytes().to_vec(),
            value: orderflow::store::codec::encode(&inbox).unwrap(),
        }])
        .await
        .unwrap();
    // Too recent: left alone.
    assert_eq!(
        rt.intake
            .redeliver_stale(T0 + 30_000, 60_000)
            .await
            .unwrap(),
        0
    );
    assert!(store.load_order("lost").unwrap().is_none());
    // Old enough: delivered, applied once, and gone from the inbox. A second
    // sweep racing the first changes nothing.
    assert_eq!(
        rt.intake
            .redeliver_stale(T0 + 120_000, 60_000)
            .await
            .unwrap(),
        1
    );
    let _ = rt
        .intake
        .redeliver_stale(T0 + 120_000, 60_000)
        .await
        .unwrap();
    let r = until(&store, "lost", "applied", |r| r.timers.len() == 1).await;
    assert_eq!(r.recent_events, vec![ev.id.clone()]);
    for _ in 0..50 {
        if store.inbox().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.inbox().unwrap().is_empty());
    let starts = store
        .audit("lost")
        .unwrap()
        .iter()
        .filter(|e| e.kind == "start")
        .count();
    assert_eq!(starts, 1, "the workflow started once");
}

const READS_ORDER: &str = "name: reads\ntrigger:\n  on: AWAITING_SHIPMENT\nsteps:\n  - id: first\n    call: order.tag\n    with: { tags: [\"${{ order.status }}\"] }\n  - id: again\n    call: order.tag\n    with: { tags: [\"n${{ size(order.tags) }}\"] }\n  - id: wait_scan\n    wait:\n      until: \"event.type == 'scan'\"\n      timeout: 1d\n  - id: note\n    call: order.tag\n    with: { tags: [\"${{ order.buyer.message }}\", \"n${{ size(order.tags) }}\"] }\n  - id: done\n    end: fulfilled\n";

#[actix_rt::test]
async fn steps_see_the_order_as_it_is_now_across_messages() {
    // The actor keeps the order's CEL value between messages; a tag or a
    // new snapshot must show in the next expression all the same.
    let (_dir, store, wfdir) = setup(READS_ORDER);
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(60),
    );
    rt.intake.submit(order_event("r1", 0)).await.unwrap();
    until(&store, "r1", "waiting for the scan", |r| {
        matches!(
            r.instance.as_ref().map(|i| &i.state),
            Some(State::Waiting { .. })
        )
    })
    .await;
    let mut later = order_event("r1", 1);
    if let EventKind::Snapshot(o) = &mut later.kind {
        o.update_time += 10;
        o.buyer_message = "leave at the door".into();
    }
    rt.intake.submit(later).await.unwrap();
    rt.intake
        .submit(signal("r1", 2, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    let r = until(&store, "r1", "fulfilled", |r| {
        r.lifecycle == Lifecycle::Fulfilled
    })
    .await;
    assert_eq!(
        r.order.unwrap().tags,
        ["AWAITING_SHIPMENT", "n1", "leave at the door", "n2"]
    );
    rt.stop.cancel();
}

/// A version stored by an older daemon that fails validation now (here an
/// expression over the cost limit) stops only its orders, in exception with
/// the reason; nothing panics and other orders run.
#[actix_rt::test]
async fn an_order_on_a_stored_version_that_no_longer_loads_goes_to_exception() {
    use orderflow::store::{codec, Op, Tree};
    let (_dir, store, wfdir) = setup(WAITER);
    let registry = Arc::new(Registry::load(wfdir.clone(), store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    rt.intake.submit(order_event("old", 0)).await.unwrap();
    let r = until(&store, "old", "waiting", |r| {
        matches!(
            r.instance.as_ref().map(|i| &i.state),
            Some(State::Waiting { .. })
        )
    })
    .await;
    let key = r.workflow.unwrap();
    rt.stop.cancel();
    drop(rt);

    // The stored text of that version now holds a too-costly expression.
    let digits = "[0,1,2,3,4,5,6,7,8,9]";
    let mut bomb = "a + b + c + d + e + f + g + h".to_string();
    for v in ["h", "g", "f", "e", "d", "c", "b", "a"] {
        bomb = format!("{digits}.map({v}, {bomb})");
    }
    let source = WAITER.replace("event.type == 'scan'", &format!("size({bomb}) > 0"));
    store
        .commit(vec![Op::Put {
            tree: Tree::Definitions,
            key: key.clone().into_bytes(),
            value: codec::encode(&source).unwrap(),
        }])
        .await
        .unwrap();

    // "Restart" with a newer version in the folder: the old one is read
    // back from the store, and refused.
    write(
        &wfdir,
        "w.yaml",
        &WAITER.replace("timeout: 1d", "timeout: 2d"),
    );
    let registry = Arc::new(Registry::load(wfdir, store.clone()).await.unwrap());
    let rt = start(
        &store,
        &registry,
        Clock::starting_at(T0),
        Duration::from_secs(3600),
    );
    rt.intake
        .submit(signal("old", 1, serde_json::json!({"type": "scan"})))
        .await
        .unwrap();
    let r = until(&store, "old", "exception", |r| {
        r.lifecycle == Lifecycle::Exception
    })
    .await;
    let why = r.last_error.unwrap();
    assert!(why.contains("can no longer be loaded"), "{why}");
    assert!(why.contains("expression is too expensive"), "{why}");
    assert!(
        matches!(r.instance.map(|i| i.state), Some(State::Waiting { .. })),
        "the instance is kept as it was"
    );
    rt.stop.cancel();
}
