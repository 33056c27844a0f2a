//! Micro-benchmarks for the workflow language: one `advance` (an action
//! result in, the next call out) and one CEL evaluation, on the bundled
//! standard workflow and a realistic order. Target: well under 10 µs a step.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use orderflow::workflow::expr::{Expr, Scope};
use orderflow::workflow::interpreter::*;
use orderflow::workflow::value::Data;
use orderflow::workflow::{dryrun, load_file};

fn bench(c: &mut Criterion) {
    let def = load_file(std::path::Path::new("workflows/standard.yaml")).expect("standard.yaml");
    let order_text = std::fs::read_to_string("workflows/examples/standard-order.json").unwrap();
    let order = dryrun::parse_order(&order_text).unwrap();
    let ctx = Ctx {
        order: orderflow::workflow::expr::val(Data::from_json(&order.to_json()).to_cel()),
        now_ms: 1_764_072_000_000,
    };
    // Walk to `buy_label` being in flight, then measure its result → the
    // `mark_shipped` call (renders two `${{ }}` arguments from steps).
    let mut inst = Instance::new(&def, &order.id);
    let mut input = Input::Start;
    let mut at_label = None;
    for _ in 0..10 {
        let a = advance(&def, inst, &input, &ctx);
        inst = a.instance;
        let call = a.effects.iter().find_map(|e| match e {
            Effect::Call { effect, action, .. } => Some((effect.clone(), action.clone())),
            _ => None,
        });
        let Some((effect, action)) = call else { break };
        let result = stub_result(&action, &order.id);
        if action == "shipping.buy_label" {
            at_label = Some((inst.clone(), Input::EffectResult { effect, result }));
            break;
        }
        input = Input::EffectResult { effect, result };
    }
    let (label_inst, label_result) = at_label.expect("reached buy_label");
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
