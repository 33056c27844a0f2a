//! Checkpoint encode and decode: a realistic order record (the order, the
//! standard workflow's instance halfway, recent event ids) through the
//! versioned envelope of `store::codec`, as every checkpoint and every
//! actor rebuild does. `cargo bench --bench codec`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use orderflow::store::{codec, OrderRecord};

fn bench(c: &mut Criterion) {
    let record = common::realistic_record();
    let bytes = codec::encode(&record).unwrap();
    let mut g = c.benchmark_group(format!("checkpoint ({} bytes)", bytes.len()));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| black_box(codec::encode(black_box(&record)).unwrap()))
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(codec::decode::<OrderRecord>(black_box(&bytes)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
