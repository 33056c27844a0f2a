//! Several tenants on one machine, and one of them moved under load
//! (issue "Beyond one machine", point 5): three tenant daemons and the
//! TikTok simulator with nine shops, three per tenant, named by one shard
//! map. Each daemon registers its shops' webhooks at its tenant's address
//! through the Event API (`PUT /event/202309/webhooks`,
//! `https://hooks.orderflow.test/t/<tenant>/webhooks/tiktok`); a small
//! path-routing proxy plays the ingress (`/t/<tenant>/…` → the tenant's
//! daemon; the simulator resolves the webhook host to it). While orders
//! arrive steadily in all nine shops, `deploy/move-tenant.sh` moves the
//! second tenant to a new data directory and port (stop, raise the epoch
//! in the shard map, fence, export, import, equal checksums, start at the
//! new epoch, switch the ingress) and prints the downtime; the other two
//! keep running. Then, from the simulator's ledgers: every order has one
//! label and one ship, none refunded; every order lives in the tenant that
//! owns its shop and in no other; the old copy refuses to start, naming
//! both epochs.
//!
//! `TENANT_MOVE_ROUNDS` sets the load (20 rounds of one order per shop,
//! 180 orders).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, free_addr, get_json, sim_orders_in, start_simulator_thread, Daemon};
use orderflow::simulator::SimulatorArgs;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const HOOKS: &str = "https://hooks.orderflow.test";

// ---------------------------------------------------------------------
// The ingress: routes `/t/<tenant>/…` to the tenant's backend without
// reading the body; `POST /_ingress/<tenant>` with a base URL switches it.
// No backend, or one that does not answer: 502, as a stock ingress does.
// ---------------------------------------------------------------------

type Routes = Arc<Mutex<HashMap<String, String>>>;

fn start_ingress() -> (String, Routes) {
    use actix_web::{web, App, HttpServer};
    let routes: Routes = Arc::default();
    let shared = routes.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new((shared.clone(), client.clone())))
                    .route("/_ingress/{tenant}", web::post().to(switch))
                    .default_service(web::to(forward))
            })
            .workers(2)
            .bind("127.0.0.1:0")
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        })
    });
    (format!("http://{}", rx.recv().unwrap()), routes)
}

type IngressData = actix_web::web::Data<(Routes, reqwest::Client)>;

async fn switch(
    d: IngressData,
    tenant: actix_web::web::Path<String>,
    body: String,
) -> actix_web::HttpResponse {
    d.0.lock()
        .unwrap()
        .insert(tenant.into_inner(), body.trim().to_string());
    actix_web::HttpResponse::Ok().finish()
}

async fn forward(
    d: IngressData,
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    use actix_web::HttpResponse;
    let tenant = req
        .path()
        .strip_prefix("/t/")
        .and_then(|p| p.split('/').next())
        .unwrap_or_default();
    let Some(backend) = d.0.lock().unwrap().get(tenant).cloned() else {
        return HttpResponse::NotFound().finish();
    };
    let mut r = d.1.request(
        reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap(),
        format!("{backend}{}", req.uri()),
    );
    for (k, v) in req.headers() {
        if matches!(k.as_str(), "authorization" | "content-type") {
            r = r.header(k.as_str(), v.as_bytes());
        }
    }
    match r.body(body).send().await {
        Ok(res) => {
            let status = actix_web::http::StatusCode::from_u16(res.status().as_u16()).unwrap();
            HttpResponse::build(status).body(res.bytes().await.unwrap_or_default())
        }
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

// ---------------------------------------------------------------------

/// A tenant's config at `epoch`: its three shops come from the shard map.
fn tenant_config(
    dir: &Path,
    sim: &str,
    tenant: &str,
    epoch: u64,
    map: &Path,
    shops: &[(String, String)],
) -> PathBuf {
    let mut text = format!(
        r#"
[tenant]
id = "{tenant}"
epoch = {epoch}
shard_map = "{map}"
shard_map_check = "200ms"

[server]
public_url = "{HOOKS}/t/{tenant}"

[sync]
poll_interval = "1s"

[tiktok]
base_url = "{sim}"
auth_url = "{sim}"
app_key = "tm-app-key"
app_secret = "tm-app-secret"
{shipping}
"#,
        map = map.display(),
        shipping = common::sim_shipping_toml(sim),
    );
    for (id, cipher) in shops {
        text.push_str(&format!(
            "\n[[tiktok.shops]]\nid = \"{id}\"\ncipher = \"{cipher}\"\naccess_token = \"tm-access-token\"\nrefresh_token = \"sim-refresh-token\"\nqps = 1000.0\n"
        ));
    }
    let path = dir.join(format!("{tenant}-epoch{epoch}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

use common::cli_output as cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_one_moves_under_load_and_nothing_is_lost_or_done_twice() {
    let rounds: usize = std::env::var("TENANT_MOVE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (ingress, routes) = start_ingress();
    let (sim, shops) = start_simulator_thread(SimulatorArgs {
        app_key: "tm-app-key".into(),
        app_secret: "tm-app-secret".into(),
        access_token: "tm-access-token".into(),
        // Pushes to https://hooks.orderflow.test/… reach the ingress.
        webhook_resolve: Some(ingress.clone()),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 9,
        qps: 10_000,
        ..Default::default()
    });
    assert_eq!(shops.len(), 9);
    let client = common::unpooled_client();
    let dir = tempfile::tempdir().unwrap();
    let wf = common::labels_workflows(dir.path());

    // The shard map: three shops per tenant, epoch 1.
    let map = dir.path().join("shards.toml");
    let owner: HashMap<String, &str> = shops
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.clone(), TENANTS[i / 3]))
        .collect();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let mut args = vec![
            "shards",
            "set",
            "--map",
            map.to_str().unwrap(),
            "--tenant",
            tenant,
            "--epoch",
            "1",
            "--cell",
            "cell-a",
        ];
        for (id, _) in &shops[t * 3..t * 3 + 3] {
            args.extend(["--shop", id.as_str()]);
        }
        let (ok, text) = cli(&args);
        assert!(ok, "{text}");
    }

    // Three daemons, one per tenant, each with its shops registered at
    // its address through the Event API, behind the ingress.
    let mut daemons: BTreeMap<&str, Daemon> = BTreeMap::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let config = tenant_config(dir.path(), &sim, tenant, 1, &map, &shops[t * 3..t * 3 + 3]);
        let d = Daemon::start_with(
            "127.0.0.1:0",
            Some(&config),
            &dir.path().join(format!("{tenant}-data")),
            &wf,
            &dir.path().join(format!("{tenant}.log")),
            &[],
        );
        common::wait_ready(&client, &d.base).await;
        routes
            .lock()
            .unwrap()
            .insert(tenant.to_string(), d.base.clone());
        daemons.insert(tenant, d);
    }
    for (id, tenant) in &owner {
        let want = format!("{HOOKS}/t/{tenant}/webhooks/tiktok");
        eventually(
            Duration::from_secs(30),
            "the shop's webhooks registered",
            || {
                let (c, url, want) = (
                    client.clone(),
                    format!("{sim}/sim/shops/{id}/webhooks"),
                    want.clone(),
                );
                async move {
                    let (_, hooks) = get_json(&c, &url).await;
                    let list = hooks["webhooks"].as_array().cloned().unwrap_or_default();
                    (list.len() >= 5 && list.iter().all(|w| w["address"] == want.as_str()))
                        .then_some(())
                }
            },
        )
        .await;
    }

    // Steady load: one order per shop every 400 ms, in the background.
    let load = {
        let (client, sim, shops) = (client.clone(), sim.clone(), shops.clone());
        tokio::spawn(async move {
            let mut ids: Vec<(String, String)> = Vec::new();
            for _ in 0..rounds {
                let started = Instant::now();
                for (shop, _) in &shops {
                    for id in sim_orders_in(&client, &sim, shop, "AWAITING_SHIPMENT", 1).await {
                        ids.push((id, shop.clone()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(400).saturating_sub(started.elapsed()))
                    .await;
            }
            ids
        })
    };

    // A third of the way in, move globex with the script.
    tokio::time::sleep(Duration::from_millis(400 * rounds as u64 / 3)).await;
    let moving = "globex";
    let old = daemons.remove(moving).unwrap();
    let old_data = dir.path().join(format!("{moving}-data"));
    let new_data = dir.path().join("cell-b").join(format!("{moving}-data"));
    std::fs::create_dir_all(new_data.parent().unwrap()).unwrap();
    let new_config = tenant_config(dir.path(), &sim, moving, 2, &map, &shops[3..6]);
    let new_listen = free_addr();
    let new_log = dir.path().join(format!("{moving}-moved.log"));
    let pid_file = dir.path().join(format!("{moving}-moved.pid"));
    let pid = old.child.id();
    let stop = format!(
        "kill -TERM {pid}; while [ -e /proc/{pid} ] && ! grep -qE '\\) [ZX] ' /proc/{pid}/stat; do sleep 0.05; done"
    );
    let start = format!(
        "RUST_LOG=info '{bin}' run --listen {new_listen} --config '{cfg}' --data-dir '{data}' --workflows '{wf}' >>'{log}' 2>&1 </dev/null & echo $! >'{pid}'",
        bin = common::bin(),
        cfg = new_config.display(),
        data = new_data.display(),
        wf = wf.display(),
        log = new_log.display(),
        pid = pid_file.display(),
    );
    let switch =
        format!("curl -fsS -X POST --data 'http://{new_listen}' '{ingress}/_ingress/{moving}'");
    let ready = format!("http://{new_listen}/readyz");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/move-tenant.sh");
    let out = tokio::task::spawn_blocking({
        let (map, old_data, new_data, work) = (
            map.clone(),
            old_data.clone(),
            new_data.clone(),
            dir.path().to_path_buf(),
        );
        move || {
            Command::new("bash")
                .arg(script)
                .args(["--tenant", moving, "--epoch", "2", "--cell", "cell-b"])
                .arg("--from")
                .arg(&old_data)
                .arg("--to")
                .arg(&new_data)
                .arg("--shard-map")
                .arg(&map)
                .arg("--work")
                .arg(&work)
                .args(["--stop", &stop, "--start", &start, "--switch", &switch])
                .args(["--ready", &ready])
                .args(["--orderflow", common::bin()])
                .env("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "0")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let moved_pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    // The moved daemon is ours to stop, even if the test fails.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            if self.0 > 0 {
                unsafe { libc::kill(self.0, libc::SIGKILL) };
            }
        }
    }
    let _moved = Kill(moved_pid);
    assert!(
        out.status.success(),
        "the move failed:\n{text}\n{}",
        std::fs::read_to_string(&new_log).unwrap_or_default()
    );
    let downtime = text
        .lines()
        .find(|l| l.contains("moved globex to epoch 2"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    drop(old);
    let new_base = format!("http://{new_listen}");

    // The old copy never runs again: the shard map and its fence both
    // say so, naming the epochs.
    let old_config = dir.path().join(format!("{moving}-epoch1.toml"));
    let (ok, refused) = cli(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        old_config.to_str().unwrap(),
        "--data-dir",
        old_data.to_str().unwrap(),
        "--workflows",
        wf.to_str().unwrap(),
    ]);
    assert!(
        !ok && refused.contains("epoch 2") && refused.contains("epoch 1"),
        "the old copy refuses to start: {refused}"
    );

    let ids = load.await.unwrap();
    assert_eq!(ids.len(), rounds * 9);
    // Every order ships, in the tenant that owns its shop.
    let base_of = |tenant: &str| -> String {
        if tenant == moving {
            new_base.clone()
        } else {
            daemons[tenant].base.clone()
        }
    };
    for (id, shop) in &ids {
        let base = base_of(owner[shop]);
        common::shipped(&client, &base, id, Duration::from_secs(120)).await;
        for tenant in TENANTS.iter().filter(|t| **t != owner[shop]) {
            let (st, _) =
                get_json(&client, &format!("{}/api/v1/orders/{id}", base_of(tenant))).await;
            assert_eq!(st, 404, "{id} of {} is not in {tenant}", owner[shop]);
        }
    }
    // Held answers finish before the ledgers are read.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // One label and one ship per order, none refunded, from the ledgers.
    let labels = common::labels_per_order(&client, &sim).await;
    let ships = common::ships_per_order(&client, &sim).await;
    let mut per_tenant: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, shop) in &ids {
        assert_eq!(
            labels.get(id),
            Some(&(1, 0)),
            "{id}: one label, not refunded"
        );
        assert_eq!(ships.get(id), Some(&1), "{id}: shipped once");
        *per_tenant.entry(owner[shop]).or_default() += 1;
    }
    let outcomes = common::webhook_outcomes(&client, &sim).await;
    println!(
        "{} orders in 9 shops over 3 tenants {per_tenant:?}: one label and one ship each; \
         webhook deliveries {outcomes:?}\n{downtime}",
        ids.len()
    );
}
