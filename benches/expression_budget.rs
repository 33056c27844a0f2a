//! How long the costliest expressions the cost limit accepts take to
//! evaluate (`src/workflow/cost.rs`): the figure that sets
//! `cost::MAX_COST`. Prints one line a shape; not a timed test.
//!
//! Run: `cargo bench --bench expression_budget` (release build). Under
//! `cargo test` it only checks that it builds.

use orderflow::workflow::cost;
use orderflow::workflow::cost::cases::{digits, nested_maps};
use orderflow::workflow::expr::Expr;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("expression_budget: run with `cargo bench --bench expression_budget`");
        return;
    }
    println!("cost limit {}", cost::MAX_COST);
    use orderflow::workflow::expr::{null, val, Scope};
    use orderflow::workflow::value::Data;
    let line_items: Vec<serde_json::Value> = (0..cost::ORDER_MAX_LIST)
        .map(|i| serde_json::json!({"sku_id": format!("SKU-{i:08}"), "sale_price": i as f64}))
        .collect();
    let order = serde_json::json!({"id": "1", "line_items": line_items, "buyer": {"message": "x".repeat(60_000)}});
    let scope = Scope {
        order: val(Data::from_json(&order).to_cel()),
        steps: null(),
        vars: null(),
        event: null(),
        error: null(),
        now: 0,
    };
    let list = |n: usize| format!("[{}]", vec!["0"; n].join(","));
    let mut cases = vec![
        nested_maps(6),
        format!("{}.map(a, {}.map(b, {}.map(c, {}.map(d, {}.map(e, {}.map(f, {}.map(g, 1)))))))",
            digits(), digits(), digits(), digits(), digits(), digits(), digits()),
        "order.line_items.exists(i, order.line_items.exists(j, i.sale_price > j.sale_price + 1000000.0))".into(),
        "order.line_items.map(i, order.line_items.map(j, i.sale_price * j.sale_price))".into(),
        "order.line_items.map(i, i.sku_id + order.buyer.message).exists(s, s == 'x')".into(),
    ];
    for body in [
        "timestamp('2024-01-01T00:00:00Z') > timestamp(a)",
        "timestamp(a).getHours('America/New_York') == b",
        "string(double(a) / 3.0) == 'x'",
        "int('12345') + a == b",
        "duration('1h30m') > duration('1h')",
        "order.buyer.message.matches('^[a-z]+y$')",
        "order.buyer.message.contains('xy')",
        "'abc' + string(a) == 'x'",
    ] {
        cases.push(format!(
            "{}.exists(a, {}.exists(b, {body}))",
            list(100),
            list(100)
        ));
    }
    // Just under the budget, at the dearest rate per unit measured.
    for n in [80usize, 84] {
        cases.push(format!(
            "{}.exists(a, {}.exists(b, {}.exists(c, int('12345') + a == b + c)))",
            list(n),
            list(n),
            list(n)
        ));
    }
    for n in [10usize, 20, 30, 40, 60, 100] {
        cases.push(format!(
            "{}.exists(a, {}.exists(b, {}.exists(c, a + b + c == 1)))",
            list(n),
            list(n),
            list(n)
        ));
        cases.push(format!(
            "{}.map(a, {}.map(b, {}.map(c, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')))",
            list(n),
            list(n),
            list(n)
        ));
        cases.push(format!(
            "{}.map(a, {}.map(b, order.buyer.message))",
            list(n),
            list(n)
        ));
    }
    for src in cases {
        let p = cel::Program::compile(&src).unwrap();
        let c = cost::estimate(p.expression()).cost;
        let e = match Expr::compile(&src) {
            Ok(e) => e,
            Err(_) => {
                println!("refused  cost {c:>20}  {}", &src[..src.len().min(90)]);
                continue;
            }
        };
        let t = std::time::Instant::now();
        let _ = e.eval(&scope);
        let el = t.elapsed();
        println!(
            "{:>8.1} ms  cost {c:>12}  ns/unit {:>6.1}  {}",
            el.as_secs_f64() * 1e3,
            el.as_nanos() as f64 / c as f64,
            &src[..src.len().min(90)]
        );
    }
}
