//! Tenants (issue "Beyond one machine", first part): a store remembers its
//! tenant and epoch, a fence keeps the old copy of a moved tenant from
//! running (the refusal names both epochs), a move copies the store through
//! `store export | import` with equal checksums, and a tenant's process drops
//! work for a shop it does not own: a correctly signed webhook for another
//! tenant's shop gets 200 and creates no order, while its own shop's
//! webhook, under the tenant's path prefix, does.

mod common;

use std::process::Command;
use std::time::Duration;

use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::SimulatorArgs;
use serde_json::json;

use common::cli_output as cli;

/// `orderflow run` on `data` with this tenant and epoch, until it is ready
/// or exits: `Ok` (then stopped) or the error it printed.
fn run(dir: &std::path::Path, data: &std::path::Path, epoch: u64) -> Result<(), String> {
    run_with(dir, data, epoch, "")
}

/// [`run`] with more `[tenant]` settings.
fn run_with(
    dir: &std::path::Path,
    data: &std::path::Path,
    epoch: u64,
    tenant: &str,
) -> Result<(), String> {
    let config = dir.join(format!("tenant-{epoch}.toml"));
    std::fs::write(
        &config,
        format!("[tenant]\nid = \"acme\"\nepoch = {epoch}\n{tenant}\n"),
    )
    .unwrap();
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let mut child = Command::new(common::bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .arg("--workflows")
        .arg(&wf)
        .env("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return if status.success() { Ok(()) } else { Err(text) };
        }
        // The tenant check comes first and fails at once: still running
        // after 3 s means it passed.
        if started.elapsed() > Duration::from_secs(3) {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_fenced_store_refuses_the_old_epoch_and_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(dir.path(), &data, 1).expect("epoch 1 runs on a new store");
    let show = |d: &std::path::Path| cli(&["store", "show", "--data-dir", d.to_str().unwrap()]);
    let (ok, text) = show(&data);
    assert!(
        ok && text.contains("\"acme\"") && text.contains("epoch 1"),
        "{text}"
    );

    // The move: fence the old store above its epoch, then the copy runs
    // with the new epoch.
    let (ok, text) = cli(&["store", "fence", "1", "--data-dir", data.to_str().unwrap()]);
    assert!(
        !ok && text.contains("above the epoch"),
        "a fence must be above: {text}"
    );
    let (ok, text) = cli(&["store", "fence", "2", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{text}");
    // Copy it to its new place through an export, checked end to end.
    let moved = dir.path().join("moved");
    let sum = |d: &std::path::Path| {
        let (ok, text) = cli(&["store", "checksum", "--data-dir", d.to_str().unwrap()]);
        assert!(ok, "{text}");
        text.split("sha256 ").nth(1).unwrap().trim().to_string()
    };
    let source = sum(&data);
    let (file, said) = copy(dir.path(), &data, &moved);
    for text in said {
        assert!(text.contains(&source), "{text}");
    }
    assert_eq!(sum(&moved), source, "the copy is the store");
    // Importing over it again is refused.
    let (ok, text) = cli(&[
        "store",
        "import",
        "--in",
        file.to_str().unwrap(),
        "--data-dir",
        moved.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("not empty"), "{text}");
    run(dir.path(), &moved, 2).expect("the copy runs in its new place with the new epoch");
    let err = run(dir.path(), &moved, 1).expect_err("and not with the old one");
    assert!(err.contains("fenced at epoch 2"), "{err}");
    let err = run(dir.path(), &data, 1).expect_err("the old epoch refuses a fenced store");
    assert!(
        err.contains("fenced at epoch 2") && err.contains("runs epoch 1"),
        "the refusal names both epochs: {err}"
    );
    run(dir.path(), &data, 2).expect("the new epoch runs");
    // Having run at 2, the store refuses 1 even without the fence's help.
    let err = run(dir.path(), &data, 1).expect_err("stale");
    assert!(err.contains("epoch"), "{err}");
    let (_, text) = show(&data);
    assert!(
        text.contains("epoch 2") && text.contains("below epoch 2"),
        "{text}"
    );
    // Another tenant's config pointed at this store: refused.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, "[tenant]\nid = \"globex\"\nepoch = 9\n").unwrap();
    let out = Command::new(common::bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&other)
        .arg("--data-dir")
        .arg(&data)
        .arg("--workflows")
        .arg(dir.path().join("workflows"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("belongs to tenant \"acme\""),
        "{text}"
    );
}

/// `store export` then `import`: a copy of `from` at `to`.
/// Returns the export file and what each command printed.
fn copy(
    dir: &std::path::Path,
    from: &std::path::Path,
    to: &std::path::Path,
) -> (std::path::PathBuf, Vec<String>) {
    let file = dir.join(format!(
        "{}.export",
        to.file_name().unwrap().to_string_lossy()
    ));
    let said = [
        [
            "export",
            "--out",
            file.to_str().unwrap(),
            "--data-dir",
            from.to_str().unwrap(),
        ],
        [
            "import",
            "--in",
            file.to_str().unwrap(),
            "--data-dir",
            to.to_str().unwrap(),
        ],
    ]
    .map(|args| {
        let (ok, text) = cli(&[&["store"][..], &args[..]].concat());
        assert!(ok, "{text}");
        text
    });
    (file, said.to_vec())
}

#[test]
fn a_copy_taken_before_the_fence_refuses_to_start_and_the_shard_map_stops_the_old_place() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("shards.toml");
    let set = |epoch: &str| {
        let (ok, text) = cli(&[
            "shards",
            "set",
            "--map",
            map.to_str().unwrap(),
            "--tenant",
            "acme",
            "--epoch",
            epoch,
            "--shop",
            "7494000000000000001",
        ]);
        assert!(ok, "{text}");
    };
    let with_map = format!(
        "shard_map = \"{}\"\nshard_map_check = \"100ms\"",
        map.display()
    );
    set("1");
    let data = dir.path().join("data");
    run_with(dir.path(), &data, 1, &with_map).expect("epoch 1, as the map says");
    // Someone copies the store before the move (a stray snapshot).
    let early = dir.path().join("early");
    copy(dir.path(), &data, &early);
    // The move: the map to epoch 2, the old store fenced, a copy.
    set("2");
    let (ok, text) = cli(&["store", "fence", "2", "--data-dir", data.to_str().unwrap()]);
    assert!(ok, "{text}");
    let moved = dir.path().join("moved");
    copy(dir.path(), &data, &moved);

    // The early copy does not run at the old epoch (the map says 2) ...
    let err = run_with(dir.path(), &early, 1, &with_map).expect_err("old epoch");
    assert!(
        err.contains("gives this tenant epoch 2") && err.contains("runs epoch 1"),
        "{err}"
    );
    // ... nor at the new one (it was never fenced for it), even without
    // the map.
    for tenant in [with_map.as_str(), ""] {
        let err = run_with(dir.path(), &early, 2, tenant).expect_err("unfenced");
        assert!(
            err.contains("last ran with epoch 1") && err.contains("never fenced for epoch 2"),
            "{err}"
        );
    }
    // The fenced old place refuses too; the moved copy runs.
    let err = run_with(dir.path(), &data, 1, &with_map).expect_err("fenced");
    assert!(err.contains("epoch 2") && err.contains("epoch 1"), "{err}");
    run_with(dir.path(), &moved, 2, &with_map).expect("the moved copy runs");

    // A daemon still running when the map moves its tenant on stops by
    // itself, naming both epochs.
    let config = dir.path().join("running.toml");
    std::fs::write(
        &config,
        format!("[tenant]\nid = \"acme\"\nepoch = 2\n{with_map}\n"),
    )
    .unwrap();
    let log = dir.path().join("running.log");
    let d = common::Daemon::start_with(
        "127.0.0.1:0",
        Some(&config),
        &moved,
        &dir.path().join("workflows"),
        &log,
        &[],
    );
    let mut d = d;
    set("3");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running after the map moved it on"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("moved this tenant on to epoch 3") && text.contains("runs epoch 2"),
        "{text}"
    );
}

#[actix_rt::test]
async fn a_webhook_for_another_tenants_shop_gets_200_and_creates_no_order() {
    let mut rig = common::sim_rig(
        "tenant-own",
        SimulatorArgs {
            shops: 2,
            buyer_cancel_rate: 0.0,
            ..Default::default()
        },
        1000.0,
        ("watch.yaml", common::WAIT_WORKFLOW),
    )
    .await;
    let shops: Vec<String> = rig.sim.shops().iter().map(|s| s.0.clone()).collect();
    rig.cfg.tenant.id = "acme".into();
    rig.cfg.tenant.shops = vec![shops[0].clone()];
    let c = common::http();
    let daemon = Daemon::start(rig.cfg.clone(), Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    common::wait_ready(&c, &base).await;

    let webhook = |shop: &str, order: &str| {
        let body = json!({
            "type": 1,
            "tts_notification_id": format!("tenant-{order}"),
            "shop_id": shop,
            "timestamp": 1_764_000_000,
            "data": {"order_id": order, "order_status": "AWAITING_SHIPMENT", "update_time": 1_764_000_000}
        })
        .to_string();
        let sig = orderflow::tiktok::sign::webhook_signature(
            "tenant-own-app-key",
            "tenant-own-app-secret",
            body.as_bytes(),
        );
        (body, sig)
    };
    // Real orders in both shops, their own webhooks lost: only ours reach
    // the daemon, by the signed webhooks this test sends.
    let sim = rig.sim.base_url();
    let (st, _) = common::post_json(
        &c,
        &format!("{sim}/sim/faults"),
        &json!({"webhook_drop_rate": 1.0}),
    )
    .await;
    assert_eq!(st, 200);
    let theirs = common::sim_create(
        &c,
        &sim,
        json!({"shop_id": shops[1], "status": "AWAITING_SHIPMENT"}),
    )
    .await
    .remove(0);
    let ours = common::sim_create(
        &c,
        &sim,
        json!({"shop_id": shops[0], "status": "AWAITING_SHIPMENT"}),
    )
    .await
    .remove(0);
    // Another tenant's shop: 200, nothing stored.
    let (body, sig) = webhook(&shops[1], &theirs);
    let r = c
        .post(format!("{base}/webhooks/tiktok"))
        .header("Authorization", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (st, _) = common::get_json(&c, &format!("{base}/api/v1/orders/{theirs}")).await;
    assert_eq!(st, 404, "no order for another tenant's shop");
    assert!(
        common::metric(
            &c,
            &base,
            "orderflow_tenant_foreign_total",
            r#"source="webhook""#
        )
        .await
            >= 1.0
    );
    // Its own shop, under the tenant's prefix: stored and acted on.
    let (body, sig) = webhook(&shops[0], &ours);
    let r = c
        .post(format!("{base}/t/acme/webhooks/tiktok"))
        .header("Authorization", sig.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    common::eventually(Duration::from_secs(10), "its own shop's order", || {
        let (c, u) = (c.clone(), format!("{base}/api/v1/orders/{ours}"));
        async move { (common::get_json(&c, &u).await.0 == 200).then_some(()) }
    })
    .await;
    // Another tenant's prefix is not served here.
    let r = c
        .post(format!("{base}/t/globex/webhooks/tiktok"))
        .header("Authorization", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    daemon.shutdown().await;
}

/// The cell's config in `deploy/kubernetes/cell.yaml` is one the daemon
/// takes, with the secrets the Secret supplies as environment variables.
#[test]
fn the_kubernetes_cell_config_is_valid() {
    // The file a ConfigMap's `name: |` block holds.
    let block = |file: &str, name: &str| -> String {
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/kubernetes")
                .join(file),
        )
        .unwrap();
        let key = format!("{name}: |\n");
        let start = yaml.find(&key).unwrap() + key.len();
        yaml[start..]
            .lines()
            .take_while(|l| !l.starts_with("---"))
            .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orderflow.toml");
    let map = dir.path().join("shards.toml");
    std::fs::write(&map, block("shards.yaml", "shards.toml")).unwrap();
    std::fs::write(
        &file,
        block("cell.yaml", "orderflow.toml")
            .replace("/etc/orderflow/shards/shards.toml", map.to_str().unwrap()),
    )
    .unwrap();
    let env = [(
        "ORDERFLOW_SERVER__ADMIN_TOKEN".to_string(),
        orderflow::cli::new_token(),
    )];
    let cfg = orderflow::config::Config::load(Some(&file), env, &Default::default()).unwrap();
    cfg.validate().unwrap();
    assert_eq!((cfg.tenant.id.as_str(), cfg.tenant.epoch), ("acme", 1));
    // Its shops come from the shard map, at the map's epoch.
    let tenant = cfg.tenant.resolve().unwrap();
    assert!(tenant.owns("7494000000000000001") && !tenant.owns("7494000000000000002"));
}
