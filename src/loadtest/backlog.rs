//! `backlog`: a store of orders waiting for delivery (default 1,000,000),
//! passivated (on disk, no actor), each with its delivery-wait timeout
//! armed 14 days ahead. The store is seeded straight into sled with the
//! checkpoint the daemon itself would have written (the standard workflow
//! walked to its `wait_delivery` step by the interpreter), then the daemon
//! starts on it as a child process. Reports disk size, start → `/readyz`,
//! start → the first order resumed (a delivery signal sent to one waiting
//! order right after ready, timed until its checkpoint shows the workflow
//! finished) and the daemon's peak RSS after it has idled `--settle`.
//! Targets: under 1 GiB RSS, ready within 10 s.
//!
//! `benches/recovery.rs` seeds its store with [`seed`].

use std::path::Path;
use std::time::{Duration, Instant};

use super::daemon::DaemonProcess;
use super::drive::STANDARD_WORKFLOW;
use super::{io, mib, Error, LoadtestArgs, Result, Table};
use crate::lifecycle::Lifecycle;
use crate::store::{codec, timer_key, ArmedTimer, OrderRecord, StartedEffect, TimerEntry};
use crate::workflow::interpreter::{advance, stub_result, Ctx, Effect, Input, Instance, State};
use crate::workflow::value::Data;
use crate::workflow::{dryrun, expr, load_file};

/// The bundled sample order every seeded order copies.
const SAMPLE_ORDER: &str = include_str!("../../workflows/examples/standard-order.json");

/// Records written per sled batch while seeding.
const CHUNK: usize = 50_000;

/// What [`seed`] wrote.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Ids of the waiting orders are `backlog-00000000`, `backlog-00000001`, ….
    pub waiting: usize,
    pub in_flight: usize,
    pub took: Duration,
}

/// The id of the `i`th seeded order.
pub fn order_id(i: usize) -> String {
    format!("backlog-{i:08}")
}

/// Writes the standard workflow into `workflows` and seeds `data` (which
/// no process may hold open) with `waiting` orders waiting for delivery,
/// then `in_flight` orders that crashed with an effect in flight (an
/// `http.request` to an unreachable port, so re-issuing it costs a refused
/// connection and nothing else).
pub fn seed(data: &Path, workflows: &Path, waiting: usize, in_flight: usize) -> Result<Seeded> {
    let t = Instant::now();
    std::fs::create_dir_all(workflows).map_err(io("creating the workflows folder"))?;
    let wf_file = workflows.join("standard.yaml");
    std::fs::write(&wf_file, STANDARD_WORKFLOW).map_err(io("writing the workflow"))?;
    let def = load_file(&wf_file)?;
    let order = dryrun::parse_order(SAMPLE_ORDER)
        .map_err(|e| Error::Failed(format!("the sample order: {e}")))?;
    // Walk the workflow with stubbed effects to its delivery wait,
    // remembering the last call (the in-flight orders' state).
    let ctx = Ctx {
        order: expr::val(Data::from_json(&order.to_json()).to_cel()),
        now_ms: 1_764_072_000_000,
    };
    let mut inst = Instance::new(&def, &order.id);
    let mut input = Input::Start;
    let mut last_call = None;
    loop {
        let a = advance(&def, inst, &input, &ctx);
        inst = a.instance;
        let call = a.effects.iter().find_map(|e| match e {
            Effect::Call { effect, action, .. } => Some((effect.clone(), action.clone())),
            _ => None,
        });
        let Some((effect, action)) = call else { break };
        last_call = Some((inst.clone(), effect.clone()));
        input = Input::EffectResult {
            effect,
            result: stub_result(&action, &order.id),
        };
    }
    let State::Waiting { timer, .. } = inst.state.clone() else {
        return Err(Error::Failed(format!(
            "the standard workflow stopped in {:?}, not at its delivery wait",
            inst.state
        )));
    };
    let (calling_inst, calling_effect) =
        last_call.ok_or_else(|| Error::Failed("the standard workflow made no call".into()))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // Plain sled: no commit thread holding the database open after.
    let db = sled::open(data)?;
    let (orders, timers, running) = (
        db.open_tree("orders")?,
        db.open_tree("timers")?,
        db.open_tree("running")?,
    );
    let total = waiting + in_flight;
    let mut start = 0;
    while start < total {
        let end = (start + CHUNK).min(total);
        let (mut b_orders, mut b_timers, mut b_running) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        for i in start..end {
            let id = order_id(i);
            let mut o = order.clone();
            o.id = id.clone();
            let mut rec = OrderRecord::new(&id, "shop-1", 1_764_072_000_000);
            rec.order = Some(o);
            rec.workflow = Some(def.key());
            rec.audit_seq = 20;
            if i < waiting {
                let mut w = inst.clone();
                w.order_id = id.clone();
                rec.lifecycle = Lifecycle::Fulfilled;
                rec.fulfillment_ms = Some(1_764_072_060_000);
                // Due in 14 days from now: waiting, not late.
                let due = now_ms + 14 * 86_400_000;
                rec.timers.push(ArmedTimer {
                    timer: timer.clone(),
                    due_ms: due,
                });
                rec.instance = Some(w);
                let entry = TimerEntry {
                    order_id: id.clone(),
                    timer: timer.clone(),
                    due_ms: due,
                };
                b_timers.insert(timer_key(&id, &timer, due), codec::encode(&entry)?);
            } else {
                let mut c = calling_inst.clone();
                c.order_id = id.clone();
                rec.lifecycle = Lifecycle::Processing;
                rec.instance = Some(c);
                rec.in_flight.push(StartedEffect {
                    effect: calling_effect.clone(),
                    key: calling_effect.key(&id, &def.version),
                    action: crate::actions::ActionName::HttpRequest.as_str().into(),
                    args: Data::map([("url", Data::from("http://127.0.0.1:1/"))]),
                    attempt: 1,
                    timeout_ms: Some(1000),
                    started_ms: 1_764_072_000_000,
                });
                b_running.insert(id.as_bytes(), &[][..]);
            }
            b_orders.insert(id.as_bytes(), codec::encode(&rec)?);
        }
        orders.apply_batch(b_orders)?;
        timers.apply_batch(b_timers)?;
        running.apply_batch(b_running)?;
        start = end;
    }
    db.flush()?;
    Ok(Seeded {
        waiting,
        in_flight,
        took: t.elapsed(),
    })
}

pub fn run(args: &LoadtestArgs) -> Result<()> {
    let n = args.orders.unwrap_or(1_000_000).max(1);
    let exe = args.exe()?;
    let dir = super::workdir(args.keep)?;
    let data = dir.path().join("data");
    let wf = dir.path().join("workflows");
    let seeded = seed(&data, &wf, n, 0)?;
    let disk = super::dir_size(&data);
    let q = |s: &Path| toml::Value::String(s.display().to_string()).to_string();
    // No TikTok configured: the daemon runs its built-in simulator, with
    // the demo order stream off; the backlog is all it has.
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndata_dir = {}\n\n[workflows]\ndir = {}\n\n[demo]\norders_per_second = 0.0\n",
        q(&data),
        q(&wf)
    );
    let config = dir.path().join("orderflow.toml");
    std::fs::write(&config, cfg).map_err(io("writing the daemon config"))?;
    let system = actix_rt::System::new();
    let out = system.block_on(async {
        let http = super::client()?;
        let started = Instant::now();
        let mut d = DaemonProcess::spawn(
            &exe,
            &config,
            &[],
            &dir.path().join("daemon.log"),
            Duration::from_secs(600),
        )
        .await?;
        d.wait_ready(&http, Duration::from_secs(600)).await?;
        let ready = started.elapsed();
        let id = order_id(0);
        let signal = serde_json::json!({
            "id": "loadtest-delivered", "shop_id": "shop-1", "order_id": id,
            "signal": {"type": "status", "status": "DELIVERED"},
        });
        let sent = Instant::now();
        let url = format!("{}/api/v1/events", d.base);
        super::json(http.post(&url).json(&signal), &url).await?;
        let url = format!("{}/api/v1/orders/{id}", d.base);
        loop {
            let v: serde_json::Value = match http.get(&url).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if v["instance_state"] == "completed:fulfilled" {
                break;
            }
            if sent.elapsed() > Duration::from_secs(120) {
                return Err(Error::Failed(format!("{id} not resumed after 120 s: {v}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let resumed = started.elapsed();
        let event_to_resumed = sent.elapsed();
        tokio::time::sleep(args.settle).await;
        Ok::<_, Error>((ready, resumed, event_to_resumed, d.peak_rss()))
    })?;
    let (ready, resumed, event_to_resumed, rss) = out;
    let t = Table::start(&[
        "Orders waiting",
        "Disk",
        "Seeded in",
        "Start → /readyz",
        "Start → first order resumed",
        "Its event → resumed",
        "Daemon peak RSS",
    ]);
    t.row(&[
        seeded.waiting.to_string(),
        mib(disk),
        format!("{:.1} s", seeded.took.as_secs_f64()),
        format!("{:.2} s", ready.as_secs_f64()),
        format!("{:.2} s", resumed.as_secs_f64()),
        format!("{:.1} ms", event_to_resumed.as_secs_f64() * 1000.0),
        rss.map(mib).unwrap_or_else(|| "?".into()),
    ]);
    super::finish_workdir(dir, args.keep);
    Ok(())
}
