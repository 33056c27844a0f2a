//! `steady`: a constant arrival rate (default 500 orders/s for 60 s) of
//! signed webhooks through the standard workflow; TikTok without artificial
//! latency and with a rate limit that does not bind. Targets: p99 receipt →
//! fulfilment under 100 ms, p99 webhook ack under 20 ms.

use std::time::Duration;

use super::drive::{Rig, RigOptions, Run};
use super::{LoadtestArgs, Result, Table};

/// TikTok's limit per shop when it is not what is measured.
pub const UNBOUND_QPS: u32 = 100_000;
/// The detail-batching window when calls are plentiful and latency counts.
pub const LATENCY_BATCH_WINDOW: Duration = Duration::from_millis(20);

/// The rig of the scenarios where TikTok's rate limit does not bind.
pub fn unbound_rig(args: &LoadtestArgs) -> Result<RigOptions> {
    Ok(RigOptions {
        exe: args.exe()?,
        shops: args.shops,
        qps: args.qps.unwrap_or(UNBOUND_QPS),
        batch_window: args.batch_window.unwrap_or(LATENCY_BATCH_WINDOW),
        safety_margin: args.safety_margin,
        keep: args.keep,
    })
}

pub async fn run(args: &LoadtestArgs) -> Result<()> {
    let rate = args.rate.unwrap_or(500.0);
    let duration = args.duration.unwrap_or(Duration::from_secs(60));
    let n = args
        .orders
        .unwrap_or((rate * duration.as_secs_f64()).round() as usize)
        .max(1);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(super::Error::Options("--rate must be positive".into()));
    }
    let mut rig = Rig::start(&unbound_rig(args)?).await?;
    let orders = rig.create_orders(n).await?;
    let r = rig.run(&orders, rate, args.stall).await?;
    let t = Table::start(&Run::HEADER);
    t.row(&r.cells());
    rig.stop().await;
    Ok(())
}
