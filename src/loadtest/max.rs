//! `max`: the highest completed-orders rate sustained for a step (60 s by
//! default) with p99 receipt → fulfilment under a limit (1 s). The rate
//! starts at `--rate` (500/s) and rises by `--step` (500/s) after every
//! step that meets the limit and completes every order; each step is a
//! table row as it finishes. One daemon and simulator serve every step, so
//! later steps run over the orders of earlier ones. Target: ≥ 2,000
//! orders/s on 2 cores, simulator and load generator included.
//!
//! `--rate R --max-rate R` is one step at R: past the sustainable rate it
//! is the overload test (admission keeps the daemon's memory bounded, the
//! orders wait stored and all complete after the burst; the table's
//! "Completed" and "Daemon peak RSS" say whether they did).

use std::time::Duration;

use super::drive::{Rig, Run};
use super::{LoadtestArgs, Result, Table};

pub async fn run(args: &LoadtestArgs) -> Result<()> {
    let step_len = args.duration.unwrap_or(Duration::from_secs(60));
    let mut rate = args.rate.unwrap_or(500.0);
    if !(rate.is_finite() && rate > 0.0 && args.step.is_finite() && args.step > 0.0) {
        return Err(super::Error::Options(
            "--rate and --step must be positive".into(),
        ));
    }
    let limit_ms = args.p99_limit.as_secs_f64() * 1000.0;
    let mut rig = Rig::start(&super::steady::unbound_rig(args)?).await?;
    let mut header: Vec<&str> = Run::HEADER.to_vec();
    header.push("Meets p99 limit");
    let t = Table::start(&header);
    let mut best: Option<f64> = None;
    while rate <= args.max_rate {
        let n = ((rate * step_len.as_secs_f64()).round() as usize).max(1);
        let orders = rig.create_orders(n).await?;
        let r = rig.run(&orders, rate, args.stall).await?;
        let ok = r.completed() == r.orders && super::pct(&r.fulfil, 0.99) < limit_ms;
        let mut cells = r.cells();
        cells.push(if ok { "yes" } else { "no" }.into());
        t.row(&cells);
        if !ok {
            break;
        }
        best = Some(best.unwrap_or(0.0).max(r.completed_per_sec()));
        rate += args.step;
    }
    match best {
        Some(b) => println!(
            "\nHighest completed rate with p99 receipt→fulfilment under {:?}: {b:.0} orders/s",
            args.p99_limit
        ),
        None => println!(
            "\nNo step met p99 receipt→fulfilment under {:?}",
            args.p99_limit
        ),
    }
    if let Some(ms) = super::fsync_latency_ms(rig.dir.path()) {
        println!(
            "fsync on the data's file system (4 KiB write + fdatasync, median of 50): {ms:.2} ms"
        );
    }
    rig.stop().await;
    Ok(())
}
