//! Micro-benchmarks for the workflow language: one `advance` (an action
//! result in, the next call out) and one CEL evaluation, on the bundled
//! standard workflow and a realistic order. Target: well under 10 µs a step.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use orderflow::workflow::expr::{Expr, Scope};
use orderflow::workflow::interpreter::*;
use orderflow::workflow::value::Data;

fn bench(c: &mut Criterion) {
    let (def, order, ctx) = common::standard();
    // Walk to `buy_label` being in flight, then measure its result → the
    // `mark_shipped` call (renders two `${{ }}` arguments from steps).
    let (label_inst, label_result) = common::walk_to(&def, &order, &ctx, "shipping.buy_label");
    c.bench_function("advance: action result -> next call", |b| {
        b.iter(|| black_box(advance(&def, label_inst.clone(), &label_result, &ctx)))
    });

    let expr =
        Expr::compile("order.payment.total_amount > 100.0 && order.shipping_type == 'SELLER'")
            .unwrap();
    let scope = Scope {
        order: ctx.order.clone(),
        steps: orderflow::workflow::expr::val(
            Data::map([("reserve", Data::map([("units", Data::Int(2))]))]).to_cel(),
        ),
        vars: orderflow::workflow::expr::val(
            Data::map([("approval_threshold", Data::Int(500))]).to_cel(),
        ),
        event: orderflow::workflow::expr::null(),
        error: orderflow::workflow::expr::null(),
        now: 1_764_072_000,
    };
    c.bench_function("cel: condition on order", |b| {
        b.iter(|| black_box(expr.eval_bool(&scope)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
