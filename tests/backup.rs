//! The restore drill (issue "Years of orders", point 6): orders arrive
//! steadily while `orderflow backup` copies the running store; the daemon
//! is then lost (SIGKILL), the backup restored into a new folder, and a
//! daemon started on it. Every order acknowledged before the backup began
//! is there and resumes; the ones that came after are fetched again by
//! polling; from the simulators' ledgers, every order ends with one label
//! and one ship. A damaged backup is refused and leaves nothing.
//!
//! `BACKUP_DRILL_ORDERS` sets the orders before the backup (40).

mod common;

use std::time::Duration;

use common::{
    cli_output, eventually, free_addr, get_json, sim_daemon_config, sim_orders_in, wait_ready,
    Daemon,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_order() {
    let before: usize = std::env::var("BACKUP_DRILL_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let listen = free_addr();
    let (sim, shops) = common::one_shop_simulator("bk", &listen);
    let client = common::unpooled_client();
    let dir = tempfile::tempdir().unwrap();
    let wf = common::labels_workflows(dir.path());
    let config = sim_daemon_config(
        dir.path(),
        &sim,
        &shops[0],
        ("bk-app-key", "bk-app-secret", "bk-access-token"),
        "[sync]\npoll_interval = \"1s\"\n",
    );
    let data = dir.path().join("data");
    let log = dir.path().join("daemon.log");
    let daemon = Daemon::start_with(&listen, Some(&config), &data, &wf, &log, &[]);
    wait_ready(&client, &daemon.base).await;
    let base = daemon.base.clone();

    // Orders the daemon has acknowledged (stored) before the backup.
    let acked = sim_orders_in(&client, &sim, &shops[0].0, "AWAITING_SHIPMENT", before).await;
    for id in &acked {
        eventually(Duration::from_secs(60), "the order stored", || {
            let (c, url) = (client.clone(), format!("{base}/api/v1/orders/{id}"));
            async move { (get_json(&c, &url).await.0 == 200).then_some(()) }
        })
        .await;
    }
    // Steady arrivals while the backup runs.
    let load = {
        let (client, sim, shop) = (client.clone(), sim.clone(), shops[0].0.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..20 {
                ids.extend(sim_orders_in(&client, &sim, &shop, "AWAITING_SHIPMENT", 1).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup_dir = dir.path().join("backup");
    let out = tokio::task::spawn_blocking({
        let (base, to) = (base.clone(), backup_dir.clone());
        move || cli_output(&["--url", &base, "backup", "--to", to.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(out.0, "{}", out.1);
    println!("{}", out.1.trim());
    let after = load.await.unwrap();

    // The machine is lost.
    daemon.kill9();
    let restored = dir.path().join("restored");
    let (ok, text) = cli_output(&[
        "restore",
        "--from",
        backup_dir.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    println!("{}", text.trim());
    common::assert_indexes_match(&restored);

    // A damaged copy of the backup is refused and leaves nothing behind.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for f in ["manifest.json", "store.backup"] {
        std::fs::copy(backup_dir.join(f), damaged.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(damaged.join("store.backup")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(damaged.join("store.backup"), bytes).unwrap();
    let nowhere = dir.path().join("nowhere");
    let (ok, text) = cli_output(&[
        "restore",
        "--from",
        damaged.to_str().unwrap(),
        "--data-dir",
        nowhere.to_str().unwrap(),
    ]);
    // A flipped byte is found by the digest, or earlier by a field it
    // breaks.
    assert!(
        !ok && (text.contains("does not match") || text.contains("damaged")),
        "{text}"
    );
    assert!(!nowhere.exists(), "nothing kept");

    // The restored store runs: the acknowledged orders are there and
    // resume, the later ones come back by polling, and each ships once.
    let log2 = dir.path().join("restored.log");
    let daemon = Daemon::start_with(&listen, Some(&config), &restored, &wf, &log2, &[]);
    wait_ready(&client, &daemon.base).await;
    let base = daemon.base.clone();
    for id in &acked {
        let (st, _) = get_json(&client, &format!("{base}/api/v1/orders/{id}")).await;
        assert_eq!(st, 200, "{id}: acknowledged before the backup, restored");
    }
    // An order that came after the backup may have shipped before the
    // loss: the poll then brings it back as TikTok has it (shipped), with
    // no workflow to run again.
    for id in acked.iter().chain(&after) {
        let url = format!("{base}/api/v1/orders/{id}");
        let started = std::time::Instant::now();
        let later = after.contains(id);
        loop {
            let (_, o) = get_json(&client, &url).await;
            if o["step"] == "wait_delivery"
                || (later && o["tiktok_status"] == "AWAITING_COLLECTION")
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{id} did not ship after the restore: {o}\n{}",
                std::fs::read_to_string(&log2).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let labels = common::labels_per_order(&client, &sim).await;
    let ships = common::ships_per_order(&client, &sim).await;
    for id in acked.iter().chain(&after) {
        assert_eq!(
            labels.get(id),
            Some(&(1, 0)),
            "{id}: one label, not refunded"
        );
        assert_eq!(ships.get(id), Some(&1), "{id}: shipped once");
    }
    let found = std::fs::read_to_string(&log2)
        .unwrap_or_default()
        .matches("A label bought before the restore was found")
        .count();
    println!(
        "{} orders acknowledged before the backup, {} during it: all restored or refetched, one label and one ship each \
         ({found} labels bought after the backup found at the provider instead of bought again)",
        acked.len(),
        after.len()
    );
}
