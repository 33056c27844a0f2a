//! `retention`: a store that has lived `--days` (400) days, `--orders`
//! (1,000) finished orders a day, each with its audit and dedupe key,
//! seeded straight into sled with times in the past (the store's clock is
//! the system's, the orders' days are simulated). The daemon then starts on
//! it as a child process and runs one retention pass (`POST
//! /api/v1/admin/retention`, the pass it runs hourly): what is older than
//! `keep_days` (90) moves to the archive files. Printed: the orders left
//! hot, the archive's size, the disk before and after, the pass's time,
//! lookups of archived orders by id, and the same lookups after a SIGKILL
//! and a restart; `orderflow admin check-index` must agree after it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::daemon::DaemonProcess;
use super::{io, mib, Error, LoadtestArgs, Result, Table};
use crate::lifecycle::Lifecycle;
use crate::order::TiktokStatus;
use crate::store::{audit_key, codec, AuditEntry, OrderRecord};
use crate::workflow::dryrun;

const SAMPLE_ORDER: &str = include_str!("../../workflows/examples/standard-order.json");
const DAY_MS: i64 = 86_400_000;
const CHUNK: usize = 20_000;

/// The id of order `i` of day `d` (day 0 the oldest).
pub fn order_id(d: usize, i: usize) -> String {
    format!("ret-{d:04}-{i:06}")
}

/// Seeds `data` (no process may hold it open) with `days` × `per_day`
/// completed orders, day `days - 1` ending now; returns how long it took.
pub fn seed(data: &Path, days: usize, per_day: usize, now_ms: i64) -> Result<Duration> {
    let t = Instant::now();
    let order = dryrun::parse_order(SAMPLE_ORDER)
        .map_err(|e| Error::Failed(format!("the sample order: {e}")))?;
    let db = sled::open(data)?;
    let (orders, audit, dedupe, archive) = (
        db.open_tree("orders")?,
        db.open_tree("audit")?,
        db.open_tree("dedupe")?,
        db.open_tree("archive")?,
    );
    let mut b = [
        sled::Batch::default(),
        sled::Batch::default(),
        sled::Batch::default(),
        sled::Batch::default(),
    ];
    let mut pending = 0;
    for d in 0..days {
        let day_start = now_ms - (days - d) as i64 * DAY_MS;
        for i in 0..per_day {
            let id = order_id(d, i);
            let received = day_start + (i as i64 * DAY_MS / per_day.max(1) as i64);
            let mut o = order.clone();
            o.id = id.clone();
            o.status = TiktokStatus::Completed;
            o.buyer_email = format!("buyer{d}-{i}@example.com");
            let shop = format!("shop-{}", i % 4 + 1);
            o.shop_id = shop.clone();
            let mut rec = OrderRecord::new(&id, &shop, received);
            rec.order = Some(o);
            rec.lifecycle = Lifecycle::Completed;
            rec.fulfillment_ms = Some(received + 3_600_000);
            // Completed once delivered and past the return window.
            rec.updated_ms = received + 10 * DAY_MS;
            rec.audit_seq = 3;
            b[0].insert(id.as_bytes(), codec::encode(&rec)?);
            for (seq, kind, detail) in [
                (1, "received", "order received from TikTok"),
                (2, "shipped", "label bought and TikTok told"),
                (3, "lifecycle", "fulfilled -> completed"),
            ] {
                let e = AuditEntry {
                    seq,
                    at_ms: received + seq as i64 * 60_000,
                    source: "workflow".into(),
                    kind: kind.into(),
                    detail: detail.into(),
                };
                b[1].insert(audit_key(&id, seq), codec::encode(&e)?);
            }
            let dk = format!("{shop}\u{0}ev-{id}");
            b[2].insert(
                dk.as_bytes(),
                &(d as u64 * 1_000_000 + i as u64).to_be_bytes(),
            );
            b[3].insert(
                crate::retention::dedupe_time_key(received, dk.as_bytes()),
                &[] as &[u8],
            );
            pending += 1;
            if pending >= CHUNK {
                for (tree, batch) in [&orders, &audit, &dedupe, &archive]
                    .into_iter()
                    .zip(b.iter_mut())
                {
                    tree.apply_batch(std::mem::take(batch))?;
                }
                pending = 0;
            }
        }
    }
    for (tree, batch) in [&orders, &audit, &dedupe, &archive]
        .into_iter()
        .zip(b.iter_mut())
    {
        tree.apply_batch(std::mem::take(batch))?;
    }
    archive.insert(crate::retention::DEDUPE_TIMES_DONE, &[1u8])?;
    crate::store::index::rebuild(&orders, &archive)?;
    db.flush()?;
    Ok(t.elapsed())
}

pub fn run(args: &LoadtestArgs) -> Result<()> {
    let days = args.days.max(1);
    let per_day = args.orders.unwrap_or(1_000).max(1);
    let exe = args.exe()?;
    let dir = super::workdir(args.keep)?;
    let data = dir.path().join("data");
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).map_err(io("creating the workflows folder"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let seeded_in = seed(&data, days, per_day, now_ms)?;
    let disk_before = super::dir_size(&data);
    let q = |s: &Path| toml::Value::String(s.display().to_string()).to_string();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\ndata_dir = {}\n\n[workflows]\ndir = {}\n\n[demo]\norders_per_second = 0.0\n\n[retention]\nkeep_days = 90\ncheck_every = \"24h\"\n",
        q(&data),
        q(&wf)
    );
    let config = dir.path().join("orderflow.toml");
    std::fs::write(&config, cfg).map_err(io("writing the daemon config"))?;
    // Archived orders looked up: spread over the archived days.
    let archived_days = days.saturating_sub(91 + 10);
    let sample: Vec<String> = (0..100)
        .map(|k| order_id(k * archived_days.max(1) / 100, (k * 7919) % per_day))
        .collect();
    let system = actix_rt::System::new();
    let log = dir.path().join("daemon.log");
    let out = system.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| Error::Failed(e.to_string()))?;
        let mut d =
            DaemonProcess::spawn(&exe, &config, &[], &log, Duration::from_secs(600)).await?;
        d.wait_ready(&http, Duration::from_secs(600)).await?;
        let started = Instant::now();
        let url = format!("{}/api/v1/admin/retention", d.base);
        let report = super::json(http.post(&url).json(&serde_json::json!({})), &url).await?;
        let pass = started.elapsed();
        let url = format!("{}/api/v1/stats", d.base);
        let stats = super::json(http.get(&url), &url).await?;
        let lookups = lookup(&http, &d.base, &sample).await?;
        // SIGKILL, then the same lookups on a new process.
        drop(d);
        let mut d =
            DaemonProcess::spawn(&exe, &config, &[], &log, Duration::from_secs(600)).await?;
        d.wait_ready(&http, Duration::from_secs(600)).await?;
        let after_restart = lookup(&http, &d.base, &sample).await?;
        drop(d);
        Ok::<_, Error>((report, pass, stats, lookups, after_restart))
    })?;
    let (report, pass, stats, lookups, after_restart) = out;
    let check = std::process::Command::new(&exe)
        .args(["admin", "check-index", "--data-dir"])
        .arg(&data)
        .output()
        .map_err(io("running check-index"))?;
    let disk_after = super::dir_size(&data);
    let archive = super::dir_size(&data.join(crate::retention::DIR));
    let hot = stats["by_lifecycle"]["completed"].as_u64().unwrap_or(0);
    let t = Table::start(&[
        "Days × orders/day",
        "Seeded in",
        "Disk before",
        "Pass",
        "Archived",
        "Left hot",
        "Archive files",
        "Disk after (archive included)",
        "Lookup by id p50",
        "p99",
        "Found after SIGKILL + restart",
    ]);
    t.row(&[
        format!("{days} × {per_day}"),
        format!("{:.1} s", seeded_in.as_secs_f64()),
        mib(disk_before),
        format!("{:.1} s", pass.as_secs_f64()),
        report["archived"].to_string(),
        hot.to_string(),
        mib(archive),
        mib(disk_after),
        super::ms(super::pct(&lookups.0, 0.5)),
        super::ms(super::pct(&lookups.0, 0.99)),
        format!("{} of {}", after_restart.1, sample.len()),
    ]);
    println!(
        "\ndedupe keys expired: {}; check-index: {}",
        report["dedupe_expired"],
        String::from_utf8_lossy(&check.stdout).trim()
    );
    if let Some(ms) = super::fsync_latency_ms(&data) {
        println!(
            "fsync on the data's file system (4 KiB write + fdatasync, median of 50): {ms:.2} ms"
        );
    }
    let want_hot = 90 * per_day;
    let missing = sample.len() - lookups.1;
    super::finish_workdir(dir, args.keep);
    if !check.status.success() {
        return Err(Error::Failed(format!(
            "the indexes disagree after the pass: {}",
            String::from_utf8_lossy(&check.stdout)
        )));
    }
    if missing > 0 || after_restart.1 < sample.len() {
        return Err(Error::Failed(format!(
            "archived orders not found by id: {missing} before the restart, {} after",
            sample.len() - after_restart.1
        )));
    }
    // Orders last updated within 90 days stay: those received in the last
    // 100 days (completed 10 days after), give or take a day's boundary.
    let band = per_day as u64 * 2;
    let expected = (want_hot + 10 * per_day) as u64;
    if hot.abs_diff(expected) > band {
        return Err(Error::Failed(format!(
            "{hot} completed orders left hot; about {expected} were expected"
        )));
    }
    Ok(())
}

/// Reads each order by id: the latencies (ms) and how many answered as
/// archived.
async fn lookup(http: &reqwest::Client, base: &str, ids: &[String]) -> Result<(Vec<f64>, usize)> {
    let mut times = Vec::new();
    let mut found = 0;
    for id in ids {
        let url = format!("{base}/api/v1/orders/{id}");
        let t = Instant::now();
        let v = super::json(http.get(&url), &url).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if v["archived"].is_object() && v["order_id"] == id.as_str() {
            found += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times, found))
}
