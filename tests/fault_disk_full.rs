//! A disk that fills up (issue 8, part 4): the real binary with its data
//! directory on a small tmpfs this test mounts (so it needs root; CI runs as
//! root), TikTok and the label API from the simulator, webhooks arriving
//! while a filler file takes the space.
//!
//! - Nearly full (less than `store.min_free_bytes` free), then full to the
//!   last byte, with orders mid-workflow (their label answers come back to
//!   a full disk): webhooks are answered 503, never 200; the daemon stays
//!   up; `/readyz` says "degraded" and `orderflow_store_writable` is 0.
//!   With the filler deleted it takes webhooks again, by itself, resumes
//!   the orders whose checkpoints were refused, and every order
//!   (acknowledged or redelivered) ships once.
//! - The free-space check off (`min_free_bytes = 0`): sled itself hits
//!   ENOSPC, which it cannot recover from in-process; the daemon answers
//!   no webhook 200 that it did not store, exits with status 75, and once
//!   space returns a restart ships every order once.
//!
//! Run: `cargo test --test fault_disk_full -- --nocapture` (as root).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    eventually, free_addr, get_json, import_stock, metric, post_json, sim_daemon_config,
    sim_first_sku, sim_orders, standard_workflows, start_simulator_thread, wait_ready, Daemon,
};
use orderflow::simulator::SimulatorArgs;

const MIN_FREE: u64 = 8 << 20;

/// A tmpfs of `size` mounted for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        assert_eq!(
            uid, "0",
            "this test mounts a tmpfs to fill it up and needs root (CI runs as root): sudo -E cargo test --test fault_disk_full"
        );
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed: {st}");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` in 256 KiB pieces until the file system has less than
/// `leave` bytes free, or (with `leave` 0) until a write fails for want of
/// space. Returns the bytes written.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0x5au8; 256 << 10];
    let dir = path.parent().unwrap();
    let mut written = 0u64;
    loop {
        if leave > 0 && fs2::available_space(dir).unwrap() < leave {
            return written;
        }
        let piece = if leave == 0 { &chunk[..4096] } else { &chunk };
        match f.write_all(piece).and_then(|_| f.sync_data()) {
            Ok(()) => written += piece.len() as u64,
            Err(e) if e.raw_os_error() == Some(28) => return written,
            Err(e) => panic!("filler: {e}"),
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    _disk: Tmpfs,
    mnt: PathBuf,
    sim_url: String,
    client: reqwest::Client,
    stock: (String, String, String),
    start: Box<dyn Fn() -> Daemon>,
}

/// The simulator, a tmpfs of 48 MiB holding the data directory, and a way
/// to start the daemon (`min_free` bytes is its free-space floor).
fn setup(prefix: &str, min_free: u64) -> Setup {
    let listen = free_addr();
    let (sim_url, shops) = start_simulator_thread(SimulatorArgs {
        app_key: format!("{prefix}-app-key"),
        app_secret: format!("{prefix}-app-secret"),
        access_token: format!("{prefix}-access-token"),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 10_000,
        // TikTok retries a failed webhook after 120 simulated seconds: 2 s.
        time_scale: 60.0,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("mnt"), "48m");
    let mnt = disk.0.clone();
    let wf = standard_workflows(dir.path());
    let (k, s, t) = (
        format!("{prefix}-app-key"),
        format!("{prefix}-app-secret"),
        format!("{prefix}-access-token"),
    );
    let config = sim_daemon_config(
        dir.path(),
        &sim_url,
        &shops[0],
        (&k, &s, &t),
        &format!("[sync]\npoll_interval = \"1s\"\n\n[store]\nmin_free_bytes = {min_free}\n"),
    );
    let data = mnt.join("data");
    let log = dir.path().join("daemon.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        _disk: disk,
        mnt,
        sim_url,
        client,
        stock: Default::default(),
        start: Box::new(move || Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[])),
    }
}

/// Waits until every order in `ids` has shipped (its workflow waits for the
/// delivery), then checks the ledgers: one label bought and one successful
/// ship per order, and TikTok holds that label's tracking number.
async fn all_ship_once(s: &Setup, base: &str, ids: &[String]) {
    for id in ids {
        eventually(Duration::from_secs(90), "the order to ship", || {
            let (c, b) = (s.client.clone(), base.to_string());
            async move {
                let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                (o["step"] == "wait_delivery").then_some(())
            }
        })
        .await;
    }
    let (_, labels) = get_json(&s.client, &format!("{}/sim/labels/ledger", s.sim_url)).await;
    let bought: BTreeSet<String> = labels["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "buy")
        .map(|e| e["tracking_number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bought.len(), ids.len(), "one label per order: {labels:#}");
    let ships = common::ships_per_order(&s.client, &s.sim_url).await;
    for id in ids {
        assert_eq!(ships.get(id), Some(&1), "{id}: one successful ship");
        let (_, o) = get_json(&s.client, &format!("{}/sim/orders/{id}", s.sim_url)).await;
        let tn = o["order"]["tracking_number"].as_str().unwrap_or_default();
        assert!(bought.contains(tn), "{id}: {tn} is not a bought label");
    }
    assert_eq!(ships.len(), ids.len());
}

/// The simulator's webhook deliveries: (order id, at ms, HTTP status).
async fn deliveries(s: &Setup) -> Vec<(String, i64, Option<u16>)> {
    let (_, v) = get_json(&s.client, &format!("{}/sim/webhooks", s.sim_url)).await;
    v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "delivered" || d["outcome"] == "failed")
        .map(|d| {
            (
                d["order_id"].as_str().unwrap_or_default().to_string(),
                d["at_ms"].as_i64().unwrap(),
                d["http_status"].as_u64().map(|n| n as u16),
            )
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The setup, its daemon started with 1,000 units in stock, and the ids of
/// 10 orders shipped before the disk fills.
async fn started(prefix: &str, min_free: u64) -> (Setup, Daemon, Vec<String>) {
    let mut s = setup(prefix, min_free);
    s.stock = sim_first_sku(&s.client, &s.sim_url).await;
    let daemon = (s.start)();
    wait_ready(&s.client, &daemon.base).await;
    import_stock(&s.client, &daemon.base, &s.stock, 1000).await;
    let ids = sim_orders(&s.client, &s.sim_url, &s.stock.1, 10).await;
    all_ship_once(&s, &daemon.base, &ids).await;
    (s, daemon, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503s_never_200s_and_recovers_in_place() {
    let (s, mut daemon, mut ids) = started("df", MIN_FREE).await;
    let base = daemon.base.clone();

    // Nearly full (less than min_free_bytes left) while 10 acknowledged
    // orders are on their way through the workflow: their labels are
    // bought, the answers (2 s late) come back to a full disk.
    let (st, v) = post_json(
        &s.client,
        &format!("{}/sim/labels/faults", s.sim_url),
        &serde_json::json!({"latency_ms": 2000}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let midflight = sim_orders(&s.client, &s.sim_url, &s.stock.1, 10).await;
    eventually(Duration::from_secs(30), "the new orders stored", || {
        let (c, b, m) = (s.client.clone(), base.clone(), midflight.clone());
        async move {
            for id in &m {
                let (st, _) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
                if st != 200 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let filler = s.mnt.join("filler");
    let t = Instant::now();
    let filled = fill(&filler, MIN_FREE / 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let full_since = now_ms();
    println!("filler: {} MiB in {:?}", filled >> 20, t.elapsed());
    let refused = sim_orders(&s.client, &s.sim_url, &s.stock.1, 10).await;
    let (st, v) = post_json(
        &s.client,
        &format!("{base}/api/v1/events"),
        &serde_json::json!({"id": "direct-1", "shop_id": "x", "order": common::wire_order("direct-1", 1_764_000_000)}),
    )
    .await;
    assert_eq!(st, 503, "an event that cannot be stored: {v}");
    let r = s.client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("degraded: disk nearly full"), "{body}");
    assert_eq!(
        metric(&s.client, &base, "orderflow_store_writable", "").await,
        0.0
    );
    // Each new order's webhook was refused with 503.
    eventually(Duration::from_secs(30), "503s for the new orders", || {
        let s = &s;
        let refused = refused.clone();
        async move {
            let d = deliveries(s).await;
            refused
                .iter()
                .all(|id| d.iter().any(|(o, _, st)| o == id && *st == Some(503)))
                .then_some(())
        }
    })
    .await;

    // Full to the last byte; more orders, redeliveries (every 2 s) and
    // polls (every 1 s) keep arriving.
    let more = fill(&filler, 0);
    println!("filler: {} KiB more, the disk is full", more >> 10);
    let refused2 = sim_orders(&s.client, &s.sim_url, &s.stock.1, 5).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon stays up on a full disk"
    );
    let r = s.client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let full_until = now_ms();
    let d = deliveries(&s).await;
    let during: Vec<_> = d
        .iter()
        .filter(|(_, at, _)| (full_since..=full_until).contains(at))
        .collect();
    assert!(
        during.iter().all(|(_, _, st)| *st != Some(200)),
        "a webhook acknowledged while the disk was full: {during:?}"
    );
    println!(
        "while full: {} webhook deliveries, all refused (503 or no answer)",
        during.len()
    );

    let log = std::fs::read_to_string(&daemon.log).unwrap();
    let refused_checkpoints = log.matches("Checkpoint failed").count();
    println!("{refused_checkpoints} checkpoints refused while full");
    assert!(
        refused_checkpoints > 0,
        "no order was mid-flight when the disk filled"
    );
    post_json(
        &s.client,
        &format!("{}/sim/labels/faults", s.sim_url),
        &serde_json::json!({}),
    )
    .await;

    // Space returns: the daemon takes writes again by itself.
    std::fs::remove_file(&filler).unwrap();
    let t = Instant::now();
    eventually(Duration::from_secs(30), "/readyz to be 200 again", || {
        let (c, b) = (s.client.clone(), base.clone());
        async move {
            let r = c.get(format!("{b}/readyz")).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;
    ids.extend(midflight);
    ids.extend(refused);
    ids.extend(refused2);
    all_ship_once(&s, &base, &ids).await;
    println!(
        "recovered: all {} orders shipped once, {:?} after the filler was deleted",
        ids.len(),
        t.elapsed()
    );
    assert_eq!(
        metric(&s.client, &base, "orderflow_store_writable", "").await,
        1.0
    );
    assert!(daemon.child.try_wait().unwrap().is_none());
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_hitting_enospc_stops_the_daemon_and_a_restart_recovers() {
    let (s, mut daemon, mut ids) = started("dx", 0).await;

    // No free-space floor: sled meets the full disk itself.
    let filler = s.mnt.join("filler");
    fill(&filler, 0);
    let full_since = now_ms();
    let until = Instant::now() + Duration::from_secs(60);
    // Besides the simulator's orders (which polling would find again even
    // if one were acknowledged and lost), events for orders only this test
    // knows, on the same intake path: each one answered 200 must exist
    // after the restart.
    let mut acked = Vec::new();
    let mut refused = 0;
    let status = loop {
        if let Some(st) = daemon.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < until,
            "sled never failed a write on a full disk"
        );
        ids.extend(sim_orders(&s.client, &s.sim_url, &s.stock.1, 3).await);
        for _ in 0..3 {
            let id = format!("only-here-{}", acked.len() + refused);
            let body = serde_json::json!({"id": id, "shop_id": "x", "order": common::wire_order(&id, 1_764_000_000)});
            match s
                .client
                .post(format!("{}/api/v1/events", daemon.base))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == 200 => acked.push(id),
                Ok(r) => {
                    assert_eq!(r.status().as_u16(), 503);
                    refused += 1
                }
                Err(_) => refused += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(status.code(), Some(75), "{status:?}");
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    let failure = log
        .lines()
        .find(|l| l.contains("The store failed a write"))
        .unwrap_or_else(|| panic!("no store failure logged:\n{log}"));
    println!("{failure}");
    println!(
        "sled failed a write {} ms into the full disk; the daemon exited with 75",
        now_ms() - full_since
    );

    // Space returns; the service manager's restart recovers what was
    // flushed, and every order, acknowledged or redelivered, ships once.
    std::fs::remove_file(&filler).unwrap();
    let daemon = (s.start)();
    wait_ready(&s.client, &daemon.base).await;
    // A resync of everything TikTok has: an order whose event never landed
    // must be taken now, never skipped as a "duplicate" of a dedupe key
    // that outlived its event.
    let (_, shops) = get_json(&s.client, &format!("{}/sim/shops", s.sim_url)).await;
    let shop = shops["shops"][0]["id"].as_str().unwrap().to_string();
    let (st, r) = post_json(
        &s.client,
        &format!("{}/api/v1/sync/resync", daemon.base),
        &serde_json::json!({"shop_id": shop, "from": 0}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    println!("resync after the restart: {r}");
    for id in ids.iter().chain(&acked) {
        let (st, o) = get_json(&s.client, &format!("{}/api/v1/orders/{id}", daemon.base)).await;
        assert_eq!(
            st, 200,
            "{id} is at TikTok or was acknowledged, but is not stored: {o}"
        );
    }
    all_ship_once(&s, &daemon.base, &ids).await;
    for id in &acked {
        let (st, o) = get_json(&s.client, &format!("{}/api/v1/orders/{id}", daemon.base)).await;
        assert_eq!(st, 200, "{id} was acknowledged but is not stored: {o}");
    }
    println!(
        "restarted: all {} orders shipped once; {} events acknowledged on the full disk (sled still had room in its pages) all stored, {refused} refused",
        ids.len(),
        acked.len()
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_on_a_nearly_full_disk_serves_degraded_and_recovers() {
    let s = setup("dstart", MIN_FREE);
    // Start once so the store exists, then fill the disk below the floor
    // and start again: it must come up and answer 503, not exit.
    let daemon = (s.start)();
    wait_ready(&s.client, &daemon.base).await;
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let filler = s.mnt.join("filler");
    fill(&filler, MIN_FREE / 2);
    let mut daemon = (s.start)();
    let (st, _) = get_json(&s.client, &format!("{}/healthz", daemon.base)).await;
    assert_eq!(st, 200, "alive on a full disk");
    let r = s
        .client
        .get(format!("{}/readyz", daemon.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("degraded"), "{text}");
    let event = |id: &str| serde_json::json!({"id": format!("ev-{id}"), "shop_id": "x", "order": common::wire_order(id, 1_764_000_000)});
    let (st, _) = post_json(
        &s.client,
        &format!("{}/api/v1/events", daemon.base),
        &event("full-1"),
    )
    .await;
    assert_eq!(st, 503, "nothing is acknowledged that cannot be stored");
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    // Space returns: ready, and events are stored again.
    std::fs::remove_file(&filler).unwrap();
    wait_ready(&s.client, &daemon.base).await;
    let (st, _) = post_json(
        &s.client,
        &format!("{}/api/v1/events", daemon.base),
        &event("full-2"),
    )
    .await;
    assert_eq!(st, 200);
    eventually(Duration::from_secs(30), "the order to be stored", || {
        let (c, b) = (s.client.clone(), daemon.base.clone());
        async move {
            let (st, _) = get_json(&c, &format!("{b}/api/v1/orders/full-2")).await;
            (st == 200).then_some(())
        }
    })
    .await;
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}
