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
            // Buyers a search can tell apart, orders over four shops and
            // one day in 30 (received times spread over 30 days).
            o.buyer_email = format!("buyer{i}@example.com");
            let shop = format!("shop-{}", i % 4 + 1);
            o.shop_id = shop.clone();
            let received = 1_764_072_000_000 - (i % 30) as i64 * 86_400_000;
            let mut rec = OrderRecord::new(&id, &shop, received);
            rec.order = Some(o);
            rec.workflow = Some(def.key());
            rec.audit_seq = 20;
            if i < waiting {
                let mut w = inst.clone();
                w.order_id = id.clone();
                rec.lifecycle = Lifecycle::Fulfilled;
                rec.fulfillment_ms = Some(received + 60_000 + (i % 600) as i64 * 1000);
                // One in a hundred waits for a person.
                if i % 100 == 50 {
                    rec.lifecycle = Lifecycle::Exception;
                    rec.last_error = Some("loadtest: an exception to list".into());
                }
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
    // The indexes and counters the daemon would have written with each
    // checkpoint.
    crate::store::index::rebuild(&orders, &db.open_tree("archive")?)?;
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
        let figures = match args.readers {
            0 => None,
            n => Some(readers(&http, &d.base, n).await?),
        };
        tokio::time::sleep(args.settle).await;
        Ok::<_, Error>((ready, resumed, event_to_resumed, d.peak_rss(), figures))
    })?;
    let (ready, resumed, event_to_resumed, rss, figures) = out;
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
    if let Some(f) = figures {
        f.print();
        if let Some(ms) = super::fsync_latency_ms(&data) {
            println!("\nfsync on the data's file system (4 KiB write + fdatasync, median of 50): {ms:.2} ms");
        }
    }
    super::finish_workdir(dir, args.keep);
    Ok(())
}

/// What [`readers`] measured, printed after the backlog's own table.
struct ReaderFigures {
    clients: usize,
    reads: Vec<[String; 5]>,
    acks: Vec<[String; 5]>,
}

impl ReaderFigures {
    fn print(&self) {
        println!();
        let t = Table::start(&[
            "Read",
            "Alone p50",
            "Alone p99",
            &format!("With {} readers: p99", self.clients),
            "Reads done",
        ]);
        for r in &self.reads {
            t.row(r);
        }
        println!();
        let t = Table::start(&[
            "Webhook acks (200/s, 1,000)",
            "p50",
            "p99",
            "max",
            "not 200",
        ]);
        for r in &self.acks {
            t.row(r);
        }
    }
}

/// The reads the console and the API make most, each alone, and webhook
/// acknowledgements with and without `clients` hammering those reads.
async fn readers(http: &reqwest::Client, base: &str, clients: usize) -> Result<ReaderFigures> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let reads: Arc<Vec<(&'static str, Vec<String>)>> = Arc::new(vec![
        (
            "orders?state=exception&limit=50",
            vec![format!("{base}/api/v1/orders?state=exception&limit=50")],
        ),
        (
            "search: a buyer's email",
            vec![format!(
                "{base}/api/v1/orders?q=buyer4242%40example&limit=50"
            )],
        ),
        ("stats", vec![format!("{base}/api/v1/stats")]),
        (
            "console overview (one call)",
            vec![format!("{base}/api/v1/overview")],
        ),
    ]);
    async fn read(http: &reqwest::Client, urls: &[String]) -> Result<f64> {
        let t = Instant::now();
        let all = futures::future::join_all(
            urls.iter()
                .map(|u| async move { super::json(http.get(u), u).await }),
        )
        .await;
        for r in all {
            r?;
        }
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }
    let mut alone = Vec::new();
    for (_, urls) in reads.iter() {
        let mut v = Vec::with_capacity(200);
        for _ in 0..200 {
            v.push(read(http, urls).await?);
        }
        v.sort_by(f64::total_cmp);
        alone.push(v);
    }
    // Webhooks for a shop the daemon has not connected: each is stored
    // (durably, to replay once the shop connects) before its 200.
    let mut seq = 0u64;
    let mut acks = |http: reqwest::Client, n: usize| {
        let start = seq;
        seq += n as u64;
        let hook = format!("{base}/webhooks/tiktok");
        async move {
            let t0 = tokio::time::Instant::now();
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                // 200 a second.
                tokio::time::sleep_until(t0 + Duration::from_millis(5 * i as u64)).await;
                let body = serde_json::json!({
                    "type": 1, "tts_notification_id": format!("backlog-reader-{}", start + i as u64),
                    "shop_id": "shop-9", "timestamp": 1_764_072_000,
                    "data": {"order_id": format!("reader-{}", start + i as u64), "order_status": "AWAITING_SHIPMENT", "update_time": 1_764_072_000},
                })
                .to_string();
                let sig = crate::tiktok::sign::webhook_signature(
                    "demo-app-key",
                    "demo-app-secret",
                    body.as_bytes(),
                );
                let (http, hook) = (http.clone(), hook.clone());
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let ok = http
                        .post(&hook)
                        .header("Authorization", sig)
                        .header("Content-Type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    (t.elapsed().as_secs_f64() * 1000.0, ok)
                }));
            }
            let mut v = Vec::with_capacity(n);
            let mut failed = 0;
            for t in tasks {
                let (ms, ok) = t.await.unwrap_or((0.0, false));
                if !ok {
                    failed += 1;
                }
                v.push(ms);
            }
            v.sort_by(f64::total_cmp);
            (v, failed)
        }
    };
    let (quiet, quiet_failed) = acks(http.clone(), 1_000).await;
    // Now with `clients` readers looping over the reads.
    let stop = Arc::new(AtomicBool::new(false));
    let mut hammer = Vec::new();
    for c in 0..clients {
        let (http, reads, stop) = (http.clone(), reads.clone(), stop.clone());
        hammer.push(tokio::spawn(async move {
            let mut got: Vec<Vec<f64>> = vec![Vec::new(); reads.len()];
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let k = i % reads.len();
                if let Ok(ms) = read(&http, &reads[k].1).await {
                    got[k].push(ms);
                }
                i += 1;
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (busy, busy_failed) = acks(http.clone(), 1_000).await;
    stop.store(true, Ordering::Relaxed);
    let mut loaded: Vec<Vec<f64>> = vec![Vec::new(); reads.len()];
    for h in hammer {
        if let Ok(got) = h.await {
            for (k, v) in got.into_iter().enumerate() {
                loaded[k].extend(v);
            }
        }
    }
    let mut f = ReaderFigures {
        clients,
        reads: Vec::new(),
        acks: Vec::new(),
    };
    for (k, (name, _)) in reads.iter().enumerate() {
        loaded[k].sort_by(f64::total_cmp);
        f.reads.push([
            name.to_string(),
            super::ms(super::pct(&alone[k], 0.5)),
            super::ms(super::pct(&alone[k], 0.99)),
            super::ms(super::pct(&loaded[k], 0.99)),
            loaded[k].len().to_string(),
        ]);
    }
    for (name, v, failed) in [
        ("no readers".to_string(), &quiet, quiet_failed),
        (format!("{clients} readers"), &busy, busy_failed),
    ] {
        f.acks.push([
            name,
            super::ms(super::pct(v, 0.5)),
            super::ms(super::pct(v, 0.99)),
            super::ms(v.last().copied().unwrap_or(0.0)),
            failed.to_string(),
        ]);
    }
    Ok(f)
}
