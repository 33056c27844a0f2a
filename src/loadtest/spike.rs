//! `spike`: a viral spike, many orders (default 10,000) for ONE shop within
//! a short time (60 s), at TikTok's real 50 QPS per shop, through the
//! standard workflow. The rate limit sets a lower bound on the drain time:
//! the fewest TikTok calls the flow needs (one order-detail call per 50
//! orders, one ship call per order) over the shop's QPS. Targets: drain
//! within 1.1 × that bound, at most 1.1 TikTok calls per order.
//!
//! `benches/webhook_spike.rs` runs this same code.

use std::time::Duration;

use super::drive::{Rig, RigOptions, Run};
use super::{LoadtestArgs, Result, Table};

/// Orders one order-detail call can fetch.
const DETAIL_BATCH: usize = 50;

/// The spike's shape.
#[derive(Debug, Clone)]
pub struct Spike {
    pub orders: usize,
    pub over: Duration,
    pub stall: Duration,
}

/// The measured spike, with its bound.
pub struct Report {
    pub run: Run,
    pub qps: u32,
}

impl Report {
    /// The fewest calls the flow needs, over the QPS.
    pub fn bound(&self) -> Duration {
        let calls = self.run.orders.div_ceil(DETAIL_BATCH) + self.run.orders;
        Duration::from_secs_f64(calls as f64 / f64::from(self.qps.max(1)))
    }

    pub fn print(&self) {
        let mut header: Vec<&str> = Run::HEADER.to_vec();
        header.extend(["Drain", "Bound (calls ÷ QPS)", "Drain ÷ bound"]);
        let t = Table::start(&header);
        let mut cells = self.run.cells();
        let bound = self.bound().as_secs_f64();
        cells.extend([
            format!("{:.1} s", self.run.drain.as_secs_f64()),
            format!("{bound:.1} s"),
            format!("{:.2}", self.run.drain.as_secs_f64() / bound.max(1e-9)),
        ]);
        t.row(&cells);
    }
}

/// Runs a spike against a rig of one shop.
pub async fn measure(rig: RigOptions, spike: &Spike) -> Result<Report> {
    let qps = rig.qps;
    let mut rig = Rig::start(&RigOptions { shops: 1, ..rig }).await?;
    let orders = rig.create_orders(spike.orders.max(1)).await?;
    let rate = orders.len() as f64 / spike.over.as_secs_f64().max(1e-3);
    let run = rig.run(&orders, rate, spike.stall).await?;
    rig.stop().await;
    Ok(Report { run, qps })
}

/// The rig TikTok's real limits apply to.
pub fn options(exe: std::path::PathBuf, args: Option<&LoadtestArgs>) -> RigOptions {
    RigOptions {
        exe,
        shops: 1,
        qps: args.and_then(|a| a.qps).unwrap_or(50),
        batch_window: args
            .and_then(|a| a.batch_window)
            .unwrap_or(Duration::from_millis(500)),
        safety_margin: args.and_then(|a| a.safety_margin),
        keep: args.is_some_and(|a| a.keep),
    }
}

pub async fn run(args: &LoadtestArgs) -> Result<()> {
    let spike = Spike {
        orders: args.orders.unwrap_or(10_000),
        over: args.duration.unwrap_or(Duration::from_secs(60)),
        stall: args.stall,
    };
    measure(options(args.exe()?, Some(args)), &spike)
        .await?
        .print();
    Ok(())
}
