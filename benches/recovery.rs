//! Recovery time: a store holding 100,000 in-flight orders (their workflow
//! waiting for delivery, a timer armed each), plus 1,000 whose effect was in
//! flight at the crash, then a daemon start: time to `/readyz` and to the
//! last in-flight effect re-issued. Prints a table;
//! `cargo bench --bench recovery` (`-- --orders N` to change the count).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orderflow::config::Config;
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::store::{codec, timer_key, OrderRecord, TimerEntry};
use orderflow::workflow::interpreter::{advance, stub_result, Ctx, Effect, Input, Instance, State};
use orderflow::workflow::{dryrun, expr, load_file, value::Data};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let waiting: usize = std::env::args()
        .skip_while(|a| a != "--orders")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let running = waiting / 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));

    // A realistic record: the standard workflow walked to its delivery wait.
    let def = load_file(&root.join("workflows/standard.yaml")).unwrap();
    let order_text =
        std::fs::read_to_string(root.join("workflows/examples/standard-order.json")).unwrap();
    let order = dryrun::parse_order(&order_text).unwrap();
    let ctx = Ctx {
        order: expr::val(Data::from_json(&order.to_json()).to_cel()),
        now_ms: 1_764_072_000_000,
    };
    let mut inst = Instance::new(&def, &order.id);
    let mut input = Input::Start;
    let mut last_call = None;
    loop {
        let a = advance(&def, inst, &input, &ctx);
        inst = a.instance;
        let call = a.effects.iter().find_map(|e| match e {
            Effect::Call { effect, action, .. } => Some((effect.clone(), action.clone())),
            _ => None,
        });
        match call {
            Some((effect, action)) => {
                last_call = Some((inst.clone(), effect.clone(), action.clone()));
                input = Input::EffectResult {
                    effect,
                    result: stub_result(&action, &order.id),
                };
            }
            None => break,
        }
    }
    assert!(matches!(inst.state, State::Waiting { .. }));
    let State::Waiting { timer, .. } = inst.state.clone() else {
        unreachable!()
    };
    let (calling_inst, calling_effect, calling_action) = last_call.unwrap();

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = Instant::now();
    {
        // Plain sled (no commit thread holding the database open after).
        let db = sled::open(&data).unwrap();
        let mut batch_orders = sled::Batch::default();
        let mut batch_timers = sled::Batch::default();
        let mut batch_running = sled::Batch::default();
        for i in 0..waiting + running {
            let id = format!("bench-{i:08}");
            let mut o = order.clone();
            o.id = id.clone();
            let mut rec = OrderRecord::new(&id, "shop-1", 1_764_072_000_000);
            rec.order = Some(o);
            rec.workflow = Some(def.key());
            rec.audit_seq = 20;
            if i < waiting {
                let mut w = inst.clone();
                w.order_id = id.clone();
                // Due in 14 days from now: waiting, not late.
                let due = now_ms + 14 * 86_400_000;
                rec.timers.push(orderflow::store::ArmedTimer {
                    timer: timer.clone(),
                    due_ms: due,
                });
                rec.instance = Some(w);
                let entry = TimerEntry {
                    order_id: id.clone(),
                    timer: timer.clone(),
                    due_ms: due,
                };
                batch_timers.insert(timer_key(&id, &timer, due), codec::encode(&entry).unwrap());
            } else {
                // Crashed with an effect in flight: an unreachable URL, so
                // re-issuing it costs a refused connection and nothing else.
                let mut c = calling_inst.clone();
                c.order_id = id.clone();
                rec.instance = Some(c);
                rec.in_flight.push(orderflow::store::StartedEffect {
                    effect: calling_effect.clone(),
                    key: calling_effect.key(&id, &def.version),
                    action: "http.request".into(),
                    args: Data::map([("url", Data::from("http://127.0.0.1:1/"))]),
                    attempt: 1,
                    timeout_ms: Some(1000),
                    started_ms: 1_764_072_000_000,
                });
                let _ = &calling_action;
                batch_running.insert(id.as_bytes(), &[][..]);
            }
            batch_orders.insert(id.as_bytes(), codec::encode(&rec).unwrap());
        }
        db.open_tree("orders")
            .unwrap()
            .apply_batch(batch_orders)
            .unwrap();
        db.open_tree("timers")
            .unwrap()
            .apply_batch(batch_timers)
            .unwrap();
        db.open_tree("running")
            .unwrap()
            .apply_batch(batch_running)
            .unwrap();
        db.flush().unwrap();
    }
    let built = t.elapsed();
    let disk = dir_size(&data);

    let system = actix_rt::System::new();
    let (ready_after, resumed_after) = system.block_on(async move {
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.store.data_dir = data.clone();
        cfg.workflows.dir = root.join("workflows");
        cfg.demo.orders_per_second = 0.0;
        let start = Instant::now();
        let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
        while !daemon.ready.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ready = start.elapsed();
        // Every in-flight effect re-issued and its result checkpointed.
        loop {
            if daemon
                .store
                .running()
                .map(|r| r.is_empty())
                .unwrap_or(false)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resumed = start.elapsed();
        daemon.shutdown().await;
        (ready, resumed)
    });

    println!("| Orders waiting (timers armed) | Orders with an effect in flight | Disk | Start → /readyz | Start → every in-flight effect re-issued and checkpointed |");
    println!("|---|---|---|---|---|");
    println!(
        "| {waiting} | {running} | {:.0} MiB | {} ms | {} ms |",
        disk as f64 / (1 << 20) as f64,
        ready_after.as_millis(),
        resumed_after.as_millis()
    );
    eprintln!("(store built in {} ms)", built.as_millis());
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
