//! Durable checkpoints per second: group commit (many writers, one flush
//! per batch) against one flush per checkpoint, on this machine, in one
//! run. Prints a table; `cargo bench --bench checkpoints`.
//!
//! Each checkpoint is a realistic order record (~600 bytes encoded) and
//! is only counted once it is flushed.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{group_commit, one_flush_each, runtime, Budget};
use orderflow::store::Store;

const RUN: Duration = Duration::from_secs(3);

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
    let n = one_flush_each(&store, "single", Budget::For(run));
    let single = n as f64 / t.elapsed().as_secs_f64();

    println!("| Writers | Mode | Durable checkpoints/s | Mean batch | Flushes/s |");
    println!("|---|---|---|---|---|");
    println!("| 1 | one flush per checkpoint | {single:.0} | 1 | {single:.0} |");

    for writers in [1usize, 16, 128, 512] {
        let rt = runtime();
        let before_batches = store.committer.stats.batches.load(Ordering::Relaxed);
        let before_reqs = store.committer.stats.requests.load(Ordering::Relaxed);
        let t = Instant::now();
        let done = group_commit(
            &rt,
            &store,
            &format!("g{writers}"),
            writers,
            Budget::For(run),
        );
        let secs = t.elapsed().as_secs_f64();
        let batches = store.committer.stats.batches.load(Ordering::Relaxed) - before_batches;
        let reqs = store.committer.stats.requests.load(Ordering::Relaxed) - before_reqs;
        let rate = done as f64 / secs;
        println!(
            "| {writers} | group commit | {rate:.0} | {:.1} | {:.0} |",
            reqs as f64 / batches.max(1) as f64,
            batches as f64 / secs
        );
    }
}
