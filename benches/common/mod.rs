//! What several benches share: the realistic inputs (the bundled standard
//! workflow walked to a step, an order record as the runtime checkpoints
//! it) and the two ways of making checkpoints durable, so the table bench
//! (`checkpoints`) and the criterion one (`commit`) measure the same code.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow::order::Order;
use orderflow::store::{codec, Op, OrderRecord, Store, Tree};
use orderflow::workflow::interpreter::*;
use orderflow::workflow::model::Definition;
use orderflow::workflow::value::Data;
use orderflow::workflow::{dryrun, load_file};

/// The bundled standard workflow, the example order and its context.
pub fn standard() -> (Definition, Order, Ctx) {
    let def = load_file(std::path::Path::new("workflows/standard.yaml")).expect("standard.yaml");
    let order_text = std::fs::read_to_string("workflows/examples/standard-order.json").unwrap();
    let order = dryrun::parse_order(&order_text).unwrap();
    let ctx = Ctx {
        order: orderflow::workflow::expr::val(Data::from_json(&order.to_json()).to_cel()),
        now_ms: 1_764_072_000_000,
    };
    (def, order, ctx)
}

/// Runs the workflow on stub action results until `action` is the call in
/// flight: the instance then, and that call's result as the next input.
pub fn walk_to(def: &Definition, order: &Order, ctx: &Ctx, action: &str) -> (Instance, Input) {
    let mut inst = Instance::new(def, &order.id);
    let mut input = Input::Start;
    for _ in 0..10 {
        let a = advance(def, inst, &input, ctx);
        inst = a.instance;
        let call = a.effects.iter().find_map(|e| match e {
            Effect::Call { effect, action, .. } => Some((effect.clone(), action.clone())),
            _ => None,
        });
        let Some((effect, called)) = call else { break };
        let result = stub_result(&called, &order.id);
        input = Input::EffectResult { effect, result };
        if called == action {
            return (inst, input);
        }
    }
    panic!("the workflow never called {action}");
}

/// An order record as the runtime checkpoints it halfway through the
/// standard workflow: the order, the instance with its step outputs, an
/// audit position and recent event ids.
pub fn realistic_record() -> OrderRecord {
    let (def, order, ctx) = standard();
    let (inst, _) = walk_to(&def, &order, &ctx, "shipping.buy_label");
    let mut r = OrderRecord::new(&order.id, &order.shop_id, 1_764_072_000_000);
    r.workflow = Some(def.key());
    r.instance = Some(inst);
    r.order = Some(order);
    r.audit_seq = 14;
    r.updated_ms = 1_764_072_030_000;
    r.recent_events = (0..8).map(|i| format!("7327112393057371{i:03}")).collect();
    r
}

/// The checkpoint the store benches write (~600 bytes encoded).
pub fn record(i: u64) -> Vec<u8> {
    let mut r = OrderRecord::new(&format!("order-{i:08}"), "shop-1", 1_764_000_000_000);
    r.audit_seq = 12;
    r.last_error = Some("x".repeat(400));
    codec::encode(&r).unwrap()
}

/// How much a writer does: for a while, or a number of checkpoints.
#[derive(Clone, Copy)]
pub enum Budget {
    For(Duration),
    Each(u64),
}

impl Budget {
    fn more(self, started: Instant, done: u64) -> bool {
        match self {
            Budget::For(d) => started.elapsed() < d,
            Budget::Each(n) => done < n,
        }
    }
}

/// One writer: insert, flush, repeat. Returns the checkpoints written.
pub fn one_flush_each(store: &Store, tag: &str, budget: Budget) -> u64 {
    let t = Instant::now();
    let mut n = 0u64;
    while budget.more(t, n) {
        store
            .trees
            .orders
            .insert(format!("{tag}-{n}"), record(n))
            .unwrap();
        store.db.flush().unwrap();
        n += 1;
    }
    n
}

/// `writers` tasks each committing checkpoints through the group commit
/// (many writers, one flush per batch). Returns the checkpoints written.
pub fn group_commit(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    tag: &str,
    writers: usize,
    budget: Budget,
) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (store, done, tag) = (store.clone(), done.clone(), tag.to_string());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while budget.more(t, i) {
                    let op = Op::Put {
                        tree: Tree::Orders,
                        key: format!("{tag}-{w}-{i}").into_bytes(),
                        value: record(i),
                    };
                    store.commit(vec![op]).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    done.load(Ordering::Relaxed)
}

/// The runtime the group-commit writers run on (2 workers, like the
/// machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
