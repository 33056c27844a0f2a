//! A viral spike: 10,000 signed ORDER_STATUS_CHANGE webhooks for one shop
//! within 60 seconds through the standard workflow, the simulator as TikTok
//! at 50 QPS per shop, the daemon a child process. The same code as
//! `orderflow loadtest --scenario spike` (`orderflow::loadtest::spike`):
//! webhook ack and receipt → ship latencies, TikTok calls per order, and
//! the drain time against the rate limit's bound.
//! `cargo bench --bench webhook_spike` (`-- --orders N --seconds S`).

use std::time::Duration;

use orderflow::loadtest::spike::{self, Spike};

fn arg(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let shape = Spike {
        orders: arg("--orders").unwrap_or(if quick { 100 } else { 10_000 }) as usize,
        over: Duration::from_secs(arg("--seconds").unwrap_or(if quick { 1 } else { 60 })),
        stall: Duration::from_secs(60),
    };
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_orderflow"));
    let system = actix_rt::System::new();
    system
        .block_on(spike::measure(spike::options(exe, None), &shape))
        .unwrap()
        .print();
}
