//! The engine alone: 2,000 instances of a workflow of 5 sequential durable
//! steps, with 50 and then 200 in flight. The same code as
//! `orderflow loadtest --scenario engine` (`orderflow::loadtest::engine`).
//! `cargo bench --bench engine` (`-- --flows N`; `-- --reads-order` for
//! steps whose arguments read `order`).

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let flows: usize = std::env::args()
        .skip_while(|a| a != "--flows")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 2_000 });
    let reads_order = std::env::args().any(|a| a == "--reads-order");
    orderflow::loadtest::engine::print(&[50, 200], flows, reads_order).unwrap();
}
