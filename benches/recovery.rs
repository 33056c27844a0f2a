//! Recovery time: a store holding 100,000 in-flight orders (their workflow
//! waiting for delivery, a timer armed each), plus 1,000 whose effect was in
//! flight at the crash, then a daemon start: time to `/readyz` and to the
//! last in-flight effect re-issued. The store is seeded as
//! `orderflow loadtest --scenario backlog` seeds it
//! (`orderflow::loadtest::backlog::seed`). Prints a table;
//! `cargo bench --bench recovery` (`-- --orders N` to change the count).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orderflow::config::Config;
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let waiting: usize = std::env::args()
        .skip_while(|a| a != "--orders")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let running = waiting / 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let workflows = dir.path().join("workflows");
    let seeded = orderflow::loadtest::backlog::seed(&data, &workflows, waiting, running).unwrap();
    let disk = orderflow::loadtest::dir_size(&data);

    let system = actix_rt::System::new();
    let (ready_after, resumed_after) = system.block_on(async move {
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.store.data_dir = data.clone();
        cfg.workflows.dir = workflows.clone();
        cfg.demo.orders_per_second = 0.0;
        let start = Instant::now();
        let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
        while !daemon.ready.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ready = start.elapsed();
        // Every in-flight effect re-issued and its result checkpointed.
        loop {
            if daemon
                .store
                .running()
                .map(|r| r.is_empty())
                .unwrap_or(false)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resumed = start.elapsed();
        daemon.shutdown().await;
        (ready, resumed)
    });

    println!("| Orders waiting (timers armed) | Orders with an effect in flight | Disk | Start → /readyz | Start → every in-flight effect re-issued and checkpointed |");
    println!("|---|---|---|---|---|");
    println!(
        "| {waiting} | {running} | {:.0} MiB | {} ms | {} ms |",
        disk as f64 / (1 << 20) as f64,
        ready_after.as_millis(),
        resumed_after.as_millis()
    );
    eprintln!("(store built in {} ms)", seeded.took.as_millis());
}
