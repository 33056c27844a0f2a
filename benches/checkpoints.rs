//! Durable checkpoints per second: group commit (many writers, one flush
//! per batch) against one flush per checkpoint, on this machine, in one
//! run. Prints a table; `cargo bench --bench checkpoints`.
//!
//! Each checkpoint is a realistic order record (~600 bytes encoded) and
//! is only counted once it is flushed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow::store::{codec, Op, OrderRecord, Store, Tree};

const RUN: Duration = Duration::from_secs(3);

fn record(i: u64) -> Vec<u8> {
    let mut r = OrderRecord::new(&format!("order-{i:08}"), "shop-1", 1_764_000_000_000);
    r.audit_seq = 12;
    r.last_error = Some("x".repeat(400));
    codec::encode(&r).unwrap()
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let run = if quick {
        Duration::from_millis(200)
    } else {
        RUN
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 64 << 20, 4096).unwrap();

    // One flush per checkpoint: a single writer, insert + flush, repeat.
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < run {
        store
            .trees
            .orders
            .insert(format!("single-{n}"), record(n))
            .unwrap();
        store.db.flush().unwrap();
        n += 1;
    }
    let single = n as f64 / t.elapsed().as_secs_f64();

    println!("| Writers | Mode | Durable checkpoints/s | Mean batch | Flushes/s |");
    println!("|---|---|---|---|---|");
    println!("| 1 | one flush per checkpoint | {single:.0} | 1 | {single:.0} |");

    for writers in [1usize, 16, 128, 512] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let before_batches = store.committer.stats.batches.load(Ordering::Relaxed);
        let before_reqs = store.committer.stats.requests.load(Ordering::Relaxed);
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let t = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..writers {
                let store = store.clone();
                let done = done.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while t.elapsed() < run {
                        let key = format!("g{writers}-{w}-{i}");
                        store
                            .commit(vec![Op::Put {
                                tree: Tree::Orders,
                                key: key.into_bytes(),
                                value: record(i),
                            }])
                            .await
                            .unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let batches = store.committer.stats.batches.load(Ordering::Relaxed) - before_batches;
        let reqs = store.committer.stats.requests.load(Ordering::Relaxed) - before_reqs;
        let rate = done.load(Ordering::Relaxed) as f64 / secs;
        println!(
            "| {writers} | group commit | {rate:.0} | {:.1} | {:.0} |",
            reqs as f64 / batches.max(1) as f64,
            batches as f64 / secs
        );
    }
}
