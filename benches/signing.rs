//! HMAC-SHA256 on the hot paths: verifying a TikTok webhook's signature
//! (every push, before anything is stored) and signing an API request
//! (every call to TikTok, every retry). `cargo bench --bench signing`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use orderflow::tiktok::{sign, webhook};

const KEY: &str = "68xu9ks5p4i8";
const SECRET: &str = "e59af819cc0c4bbd9b1d5bb2a0f1c2d3";
/// An ORDER_STATUS_CHANGE as TikTok pushes it.
const PUSH: &[u8] = br#"{"type":1,"tts_notification_id":"7327112393057371910","shop_id":"7494000000000000001","timestamp":1764070000,"data":{"order_id":"5769000000000000001","order_status":"AWAITING_SHIPMENT","is_on_hold_order":false,"update_time":1764070000}}"#;

fn bench(c: &mut Criterion) {
    let sig = sign::webhook_signature(KEY, SECRET, PUSH);
    let mut g = c.benchmark_group(format!("webhook ({} bytes)", PUSH.len()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify signature", |b| {
        b.iter(|| {
            assert!(webhook::verify_signature(
                KEY,
                SECRET,
                black_box(PUSH),
                &sig
            ))
        })
    });
    g.bench_function("verify and parse", |b| {
        b.iter(|| black_box(webhook::verify_and_parse(KEY, SECRET, black_box(PUSH), &sig).unwrap()))
    });
    g.finish();

    // Search Orders: six query parameters and a JSON body.
    let body = br#"{"order_status":"AWAITING_SHIPMENT","update_time_ge":1764000000,"update_time_lt":1764086400}"#;
    let query = [
        ("app_key", KEY),
        ("timestamp", "1764070000"),
        ("shop_cipher", "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK"),
        ("page_size", "50"),
        ("sort_field", "update_time"),
        ("sort_order", "ASC"),
    ];
    let path = "/order/202309/orders/search";
    let signed = sign::sign(SECRET, path, query, Some(body));
    let mut g = c.benchmark_group("api request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| {
        b.iter(|| black_box(sign::sign(SECRET, path, black_box(query), Some(body))))
    });
    g.bench_function("verify (simulator side)", |b| {
        b.iter(|| {
            assert!(sign::verify(
                SECRET,
                path,
                black_box(query),
                Some(body),
                &signed
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
