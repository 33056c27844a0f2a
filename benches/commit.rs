//! Durable checkpoints under criterion: one flush per checkpoint against
//! the group commit with 16 and 128 writers, per checkpoint. The same code
//! as the `checkpoints` table (`benches/common`); `cargo bench --bench
//! commit`. Few samples: every iteration writes to disk.

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use common::{group_commit, one_flush_each, runtime, Budget};
use orderflow::store::Store;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 64 << 20, 4096).unwrap();
    let rt = runtime();
    let mut g = c.benchmark_group("durable checkpoint");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    let mut run = 0u64;
    g.bench_function("one flush per checkpoint", |b| {
        b.iter_custom(|iters| {
            run += 1;
            let t = Instant::now();
            one_flush_each(&store, &format!("single{run}"), Budget::Each(iters));
            t.elapsed()
        })
    });
    for writers in [16usize, 128] {
        g.bench_function(format!("group commit, {writers} writers"), |b| {
            b.iter_custom(|iters| {
                run += 1;
                let each = iters.div_ceil(writers as u64);
                let t = Instant::now();
                let done =
                    group_commit(&rt, &store, &format!("g{run}"), writers, Budget::Each(each));
                // Per checkpoint actually written (a multiple of `writers`).
                t.elapsed().mul_f64(iters as f64 / done as f64)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
