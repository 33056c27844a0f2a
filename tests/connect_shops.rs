//! Connecting real shops, as a seller does on day one, against the
//! simulator over real HTTP with the real daemon binary: TikTok's seller
//! authorization (link, redirect callback, `shops connect --code`), tokens
//! refreshed before they expire and rotated, sealed at rest, restarts
//! (SIGKILL), re-authorization, deauthorization, webhooks for shops not
//! connected yet, and webhook subscriptions repaired.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    eventually, free_addr, get_json, post_json, standard_workflows, start_simulator_thread,
    wait_ready, Daemon,
};
use orderflow::simulator::SimulatorArgs;
use serde_json::{json, Value};

const APP_KEY: &str = "cs-app-key";
const APP_SECRET: &str = "cs-app-secret";
const PUBLIC: &str = "https://orders.orderflow.test";

/// The daemon's config: an app and no shop at all (shops are connected
/// while it runs), the simulator as TikTok, tokens refreshed with a margin
/// larger than their simulated lifetime allows (so half the lifetime).
fn config(dir: &Path, sim_url: &str, alerts: &str) -> PathBuf {
    let path = dir.join("orderflow.toml");
    let text = format!(
        r#"
[server]
public_url = "{PUBLIC}"

[tiktok]
base_url = "{sim_url}"
auth_url = "{sim_url}"
authorize_url = "{sim_url}/open/authorize"
app_key = "{APP_KEY}"
app_secret = "{APP_SECRET}"
service_id = "sim-service-id"

[shops]
check_interval = "1s"

[secrets]
key_file = "{key}"

[sync]
poll_interval = "1s"

[notify]
default_channel = "ops"
[notify.channels]
ops = "{alerts}"
creator = "{alerts}"
{shipping}"#,
        key = dir.join("keys/secret.key").display(),
        shipping = common::sim_shipping_toml(sim_url),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Rig {
    sim: String,
    shops: Vec<(String, String)>,
    /// (warehouse, sku, product) per shop.
    stock: Vec<(String, String, String)>,
    dir: tempfile::TempDir,
    listen: String,
    config: PathBuf,
    alerts: common::Inbox,
}

impl Rig {
    fn start(sim_args: SimulatorArgs) -> Rig {
        let listen = free_addr();
        let (sim, shops) = start_simulator_thread(SimulatorArgs {
            app_key: APP_KEY.into(),
            app_secret: APP_SECRET.into(),
            buyer_cancel_rate: 0.0,
            qps: 10_000,
            redirect_url: Some(format!("http://{listen}/oauth/tiktok/callback")),
            webhook_resolve: Some(format!("http://{listen}")),
            ..sim_args
        });
        let dir = tempfile::tempdir().unwrap();
        let alerts = common::Inbox::start();
        let config = config(dir.path(), &sim, &alerts.url());
        Rig {
            sim,
            shops,
            stock: Vec::new(),
            dir,
            listen,
            config,
            alerts,
        }
    }

    /// A rig whose daemon runs, each shop's warehouse stocked with its
    /// first SKU.
    async fn stocked(sim_args: SimulatorArgs) -> (Rig, Daemon, reqwest::Client) {
        let mut rig = Rig::start(sim_args);
        let c = client();
        rig.load_stock(&c).await;
        let daemon = rig.daemon();
        wait_ready(&c, &daemon.base).await;
        rig.import_stock(&c, &daemon.base).await;
        (rig, daemon, c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn daemon(&self) -> Daemon {
        let wf = standard_workflows(self.dir.path());
        Daemon::start_with(
            &self.listen,
            Some(&self.config),
            &self.data(),
            &wf,
            &self.dir.path().join("daemon.log"),
            &[],
        )
    }

    async fn load_stock(&mut self, c: &reqwest::Client) {
        let (_, v) = get_json(c, &format!("{}/sim/shops", self.sim)).await;
        let sku = v["skus"][0]["id"].as_str().unwrap().to_string();
        let product = v["skus"][0]["product_id"].as_str().unwrap().to_string();
        self.stock = v["shops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["warehouse_id"].as_str().unwrap().to_string(),
                    sku.clone(),
                    product.clone(),
                )
            })
            .collect();
    }

    async fn import_stock(&self, c: &reqwest::Client, base: &str) {
        for s in &self.stock {
            common::import_stock(c, base, s, 1000).await;
        }
    }

    /// A new order awaiting shipment in shop `i`.
    async fn order(&self, c: &reqwest::Client, i: usize) -> String {
        common::sim_create(
            c,
            &self.sim,
            json!({"shop_id": self.shops[i].0, "items": [{"sku_id": self.stock[i].1, "quantity": 1}], "status": "AWAITING_SHIPMENT"}),
        )
        .await
        .remove(0)
    }

    /// The alerts received whose text mentions `needle` (the workflow's
    /// messages to the creator arrive there too).
    fn alerts_about(&self, needle: &str) -> Vec<Value> {
        self.alerts
            .delivered()
            .into_iter()
            .filter(|a| a["event"]["kind"] != "workflow")
            .filter(|a| a["text"].as_str().is_some_and(|t| t.contains(needle)))
            .collect()
    }
}

/// Asks the daemon for a link, follows it as the seller's browser would
/// (TikTok's page redirects to the callback), and returns the page shown.
async fn authorize_through_callback(base: &str, shop: &str) -> (u16, String) {
    let c = client();
    let (st, link) = post_json(&c, &format!("{base}/api/v1/shops/connect"), &json!({})).await;
    assert_eq!(st, 200, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("service_id=sim-service-id"), "{url}");
    assert!(url.contains("state="), "{url}");
    let r = c.get(format!("{url}&shop_id={shop}")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A code for `shop` as the seller's browser would see it in the address
/// bar after authorizing (the redirect not followed).
async fn code_from_authorize_page(sim: &str, shop: &str) -> String {
    let r = no_redirects()
        .get(format!(
            "{sim}/open/authorize?service_id=sim-service-id&state=manual&shop_id={shop}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let u = reqwest::Url::parse(&to).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn shops_of(c: &reqwest::Client, base: &str) -> Vec<Value> {
    let (st, v) = get_json(c, &format!("{base}/api/v1/shops")).await;
    assert_eq!(st, 200, "{v}");
    v["shops"].as_array().unwrap().clone()
}

fn shop<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("shop {id} not listed: {list:?}"))
}

async fn shipped(c: &reqwest::Client, base: &str, id: &str) {
    let (c, b) = (c.clone(), base.to_string());
    eventually(Duration::from_secs(60), "the order shipped", || {
        let (c, b) = (c.clone(), b.clone());
        async move {
            let (_, o) = get_json(&c, &format!("{b}/api/v1/orders/{id}")).await;
            (o["step"] == "wait_delivery").then_some(())
        }
    })
    .await;
}

/// A correctly signed webhook, as TikTok pushes it.
async fn push_signed(base: &str, body: &Value) -> u16 {
    let raw = serde_json::to_vec(body).unwrap();
    let sig = orderflow::tiktok::sign::webhook_signature(APP_KEY, APP_SECRET, &raw);
    client()
        .post(format!("{base}/webhooks/tiktok"))
        .header("Authorization", sig)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every access and refresh token the simulator ever issued.
async fn issued_tokens(c: &reqwest::Client, sim: &str) -> Vec<String> {
    let (_, issued) = get_json(c, &format!("{sim}/sim/tokens")).await;
    issued["issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shops_connect_live_keep_their_tokens_fresh_and_survive_restarts() {
    // Access tokens live 40 simulated minutes, 8 real seconds at 300×.
    let (rig, daemon, c) = Rig::stocked(SimulatorArgs {
        shops: 3,
        time_scale: 300.0,
        token_ttl_secs: 2400,
        manual_carrier: true,
        ..Default::default()
    })
    .await;
    let base = daemon.base.clone();
    assert!(shops_of(&c, &base).await.is_empty());

    // Two shops through TikTok's page and the callback, no restart.
    for i in 0..2 {
        let (st, page) = authorize_through_callback(&base, &rig.shops[i].0).await;
        assert_eq!(st, 200, "{page}");
        assert!(page.contains("Shop connected"), "{page}");
        assert!(page.contains(&rig.shops[i].0), "{page}");
    }
    // A state is good once.
    let (st, link) = post_json(&c, &format!("{base}/api/v1/shops/connect"), &json!({})).await;
    assert_eq!(st, 200);
    let once = c
        .get(format!(
            "{}&shop_id={}",
            link["url"].as_str().unwrap(),
            rig.shops[0].0
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(once.status().as_u16(), 200);
    let state = link["state"].as_str().unwrap();
    let code = code_from_authorize_page(&rig.sim, &rig.shops[0].0).await;
    let again = c
        .get(format!(
            "{base}/oauth/tiktok/callback?code={code}&state={state}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400, "a used state is refused");
    // The third with a code pasted into the CLI (a VM TikTok cannot reach).
    let code = code_from_authorize_page(&rig.sim, &rig.shops[2].0).await;
    let out = std::process::Command::new(common::bin())
        .args(["shops", "connect", "--code", &code, "--url", &base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&rig.shops[2].0));

    // Each connect checks the shop's webhook subscription right after.
    let list = eventually(Duration::from_secs(15), "subscriptions checked", || {
        let (c, b) = (c.clone(), base.clone());
        async move {
            let list = shops_of(&c, &b).await;
            list.iter()
                .all(|s| s["webhooks"].as_str().unwrap().starts_with("subscribed"))
                .then_some(list)
        }
    })
    .await;
    assert_eq!(list.len(), 3, "{list:?}");
    for (i, s) in rig.shops.iter().enumerate() {
        let v = shop(&list, &s.0);
        assert_eq!(v["status"], "connected", "{v}");
        assert_eq!(
            v["token_source"],
            if i == 2 { "code" } else { "callback" },
            "{v}"
        );
        assert!(v["access_expires_at"].as_i64().is_some(), "{v}");
        assert!(
            v["webhooks"].as_str().unwrap().starts_with("subscribed"),
            "{v}"
        );
    }
    // Subscribed to our public address, for every topic we act on.
    let (_, subs) = get_json(
        &c,
        &format!("{}/sim/shops/{}/webhooks", rig.sim, rig.shops[0].0),
    )
    .await;
    let subs = subs["webhooks"].as_array().unwrap();
    assert_eq!(subs.len(), orderflow::shops::TOPICS.len(), "{subs:?}");
    assert!(subs
        .iter()
        .all(|w| w["address"] == format!("{PUBLIC}/webhooks/tiktok")));

    // Orders from every shop flow, without a restart.
    let mut orders = Vec::new();
    for i in 0..3 {
        orders.push(rig.order(&c, i).await);
    }
    for o in &orders {
        shipped(&c, &base, o).await;
    }

    // Tokens are refreshed before they expire, twice in a row: the second
    // refresh could only use the rotated refresh token (the simulator
    // spends the old one).
    let first = shop(&shops_of(&c, &base).await, &rig.shops[0].0)["access_expires_at"]
        .as_i64()
        .unwrap();
    let mut seen = vec![first];
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while seen.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "two refreshes before expiry: saw {seen:?}"
        );
        let list = shops_of(&c, &base).await;
        let v = shop(&list, &rig.shops[0].0);
        assert!(v["refresh_error"].is_null(), "{v}");
        let at = v["access_expires_at"].as_i64().unwrap();
        if *seen.last().unwrap() != at {
            assert_eq!(v["token_source"], "refresh", "{v}");
            // Refreshed before the old token expired.
            assert!(
                v["tokens_obtained_ms"].as_i64().unwrap() / 1000 < *seen.last().unwrap(),
                "{v}"
            );
            seen.push(at);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Calls kept working across the refreshes (a new order still ships).
    let o = rig.order(&c, 1).await;
    shipped(&c, &base, &o).await;

    // No token in clear text anywhere in the data directory.
    let issued = issued_tokens(&c, &rig.sim).await;
    assert!(issued.len() >= 8);
    let check_clean = |data: &Path, issued: &[String]| {
        for (path, bytes) in files(data) {
            for t in issued {
                assert!(
                    !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                    "{} holds a token in clear text",
                    path.display()
                );
            }
        }
    };
    check_clean(&rig.data(), &issued);

    // SIGKILL and restart: everything is still there and moving.
    daemon.kill9();
    let daemon = rig.daemon();
    let base = daemon.base.clone();
    wait_ready(&c, &base).await;
    let list = shops_of(&c, &base).await;
    for s in &rig.shops {
        assert_eq!(shop(&list, &s.0)["status"], "connected");
    }
    let o = rig.order(&c, 0).await;
    shipped(&c, &base, &o).await;

    // The seller authorizes shop 1 again: the new pair wins over the
    // stored (refreshed) one.
    let (st, page) = authorize_through_callback(&base, &rig.shops[0].0).await;
    assert_eq!(st, 200, "{page}");
    let v = shop(&shops_of(&c, &base).await, &rig.shops[0].0).clone();
    assert_eq!(v["token_source"], "callback", "{v}");
    let o = rig.order(&c, 0).await;
    shipped(&c, &base, &o).await;
    let out = std::process::Command::new(common::bin())
        .args(["shops", "list", "--url", &base])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("callback") && table.contains("refresh"),
        "{table}"
    );

    // Nor in the API's answers or the daemon's log.
    let issued = issued_tokens(&c, &rig.sim).await;
    let (_, listed) = get_json(&c, &format!("{base}/api/v1/shops")).await;
    let listed = listed.to_string();
    let log = std::fs::read_to_string(rig.dir.path().join("daemon.log")).unwrap();
    for t in &issued {
        assert!(!listed.contains(t.as_str()), "shops list shows a token");
        assert!(!log.contains(t.as_str()), "the log shows a token");
    }
    daemon.kill9();
    check_clean(&rig.data(), &issued);
    // Without the key file, the store reveals nothing and opens nothing.
    assert!(rig.dir.path().join("keys/secret.key").exists());
    assert!(!rig.data().join("secret.key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deauthorized_and_unknown_shops_lose_nothing() {
    let (rig, daemon, c) = Rig::stocked(SimulatorArgs {
        shops: 2,
        manual_carrier: true,
        ..Default::default()
    })
    .await;
    let base = daemon.base.clone();
    let (a, b) = (rig.shops[0].0.clone(), rig.shops[1].0.clone());

    // A webhook for shop B before it is connected: 200, kept once, one
    // alert, however often TikTok sends it.
    let early = rig.order(&c, 1).await;
    let hook = json!({
        "type": 1, "tts_notification_id": "7327000000000000001", "shop_id": b,
        "timestamp": 1_700_000_000,
        "data": {"order_id": early, "order_status": "AWAITING_SHIPMENT", "is_on_hold_order": false, "update_time": 1_700_000_000}
    });
    for _ in 0..3 {
        assert_eq!(push_signed(&base, &hook).await, 200);
    }
    let (_, q) = get_json(&c, &format!("{base}/api/v1/webhooks/quarantine")).await;
    let waiting: Vec<&Value> = q["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["reason"] == "shop_not_connected")
        .collect();
    assert_eq!(waiting.len(), 1, "{q}");
    eventually(Duration::from_secs(10), "one alert", || async {
        (!rig.alerts_about(&b).is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rig.alerts_about(&b).len(),
        1,
        "{:?}",
        rig.alerts.delivered()
    );
    let (st, _) = get_json(&c, &format!("{base}/api/v1/orders/{early}")).await;
    assert_eq!(st, 404, "not taken before the shop is connected");

    // Both connect; the kept webhook is replayed and its order ships.
    for s in [&a, &b] {
        let (st, page) = authorize_through_callback(&base, s).await;
        assert_eq!(st, 200, "{page}");
    }
    shipped(&c, &base, &early).await;
    assert!(
        common::metric(&c, &base, "orderflow_webhooks_total", "result=\"replayed\"").await >= 1.0,
        "the kept webhook was replayed"
    );

    // The seller deauthorizes shop A: TikTok pushes type 6.
    let before_a = rig.order(&c, 0).await;
    shipped(&c, &base, &before_a).await;
    let (st, v) = post_json(
        &c,
        &format!("{}/sim/shops/{a}/deauthorize", rig.sim),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    eventually(Duration::from_secs(15), "shop A deauthorized", || {
        let (c, base, a) = (c.clone(), base.clone(), a.clone());
        async move {
            let list = shops_of(&c, &base).await;
            (shop(&list, &a)["status"] == "deauthorized").then_some(())
        }
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the deauthorization alert",
        || async {
            rig.alerts_about("deauthorized")
                .into_iter()
                .find(|x| x["text"].as_str().unwrap().contains(&a))
        },
    )
    .await;
    assert_eq!(
        common::metric(&c, &base, "orderflow_shops", "status=\"deauthorized\"").await,
        1.0
    );
    // Its calls stop (polling included); its orders stay readable.
    let calls = |c: reqwest::Client, sim: String, a: String| async move {
        let (_, s) = get_json(&c, &format!("{sim}/sim/stats")).await;
        s["shops"][&a]["total"].as_u64().unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = calls(c.clone(), rig.sim.clone(), a.clone()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        calls(c.clone(), rig.sim.clone(), a.clone()).await,
        n,
        "no calls for a deauthorized shop"
    );
    let (st, o) = get_json(&c, &format!("{base}/api/v1/orders/{before_a}")).await;
    assert_eq!(st, 200, "{o}");
    // An order of A that arrives meanwhile waits, and moves once the seller
    // authorizes again; shop B never stopped.
    let during = rig.order(&c, 0).await;
    let other = rig.order(&c, 1).await;
    shipped(&c, &base, &other).await;
    let (st, v) = post_json(
        &c,
        &format!("{base}/api/v1/shops/{a}/reconnect"),
        &json!({}),
    )
    .await;
    assert_eq!(st, 409, "stored tokens no longer work: {v}");
    assert!(
        v["link"].as_str().unwrap().contains("/open/authorize"),
        "{v}"
    );
    let (st, page) = authorize_through_callback(&base, &a).await;
    assert_eq!(st, 200, "{page}");
    shipped(&c, &base, &during).await;

    // TikTok warns that B's authorization ends soon: an alert with the date
    // and a link to authorize again.
    let (st, v) = post_json(
        &c,
        &format!("{}/sim/webhooks/push", rig.sim),
        &json!({"shop_id": b, "type": 7, "data": {"message": "Your authorization expires soon.", "expiration_time": "1798761600"}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let alert = eventually(Duration::from_secs(10), "the expiry alert", || async {
        rig.alerts_about("expires 2027-01-01").into_iter().next()
    })
    .await;
    assert!(
        alert["text"]
            .as_str()
            .unwrap()
            .contains("/open/authorize?service_id="),
        "{alert}"
    );

    // An operator disconnects B and reconnects it with its stored tokens.
    let (st, v) = post_json(
        &c,
        &format!("{base}/api/v1/shops/{b}/disconnect"),
        &json!({"by": "ops"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, o) = get_json(&c, &format!("{base}/api/v1/orders/{other}")).await;
    assert_eq!(st, 200, "orders stay after a disconnect: {o}");
    let (st, v) = post_json(
        &c,
        &format!("{base}/api/v1/shops/{b}/reconnect"),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let after = rig.order(&c, 1).await;
    shipped(&c, &base, &after).await;

    // The seller removes the app again and TikTok's webhook is lost: the
    // next call answered 105001 tells orderflow all the same.
    let (st, v) = post_json(
        &c,
        &format!("{}/sim/shops/{b}/deauthorize?silent=true", rig.sim),
        &json!({}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    eventually(
        Duration::from_secs(15),
        "shop B deauthorized by a 105001",
        || {
            let (c, base, b) = (c.clone(), base.clone(), b.clone());
            async move {
                let list = shops_of(&c, &base).await;
                let s = shop(&list, &b);
                (s["status"] == "deauthorized"
                    && s["status_reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("105001")))
                .then_some(())
            }
        },
    )
    .await;
    eventually(Duration::from_secs(10), "its alert", || async {
        rig.alerts_about("deauthorized")
            .into_iter()
            .find(|x| x["text"].as_str().unwrap().contains(&b))
    })
    .await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_changed_behind_our_back_is_repaired_on_start() {
    let rig = Rig::start(SimulatorArgs {
        shops: 1,
        ..Default::default()
    });
    let c = client();
    let daemon = rig.daemon();
    let base = daemon.base.clone();
    wait_ready(&c, &base).await;
    let id = rig.shops[0].0.clone();
    let (st, page) = authorize_through_callback(&base, &id).await;
    assert_eq!(st, 200, "{page}");
    let subs_url = format!("{}/sim/shops/{id}/webhooks", rig.sim);
    every_topic_ours(&subs_url, "subscribed").await;
    daemon.kill9();

    // Someone points one topic elsewhere and removes another in Partner
    // Center while orderflow is down.
    post_json(
        &c,
        &subs_url,
        &json!({"event_type": "ORDER_STATUS_CHANGE", "address": "https://elsewhere.example/hook"}),
    )
    .await;
    post_json(&c, &subs_url, &json!({"event_type": "PACKAGE_UPDATE"})).await;

    let daemon = rig.daemon();
    let base = daemon.base.clone();
    wait_ready(&c, &base).await;
    every_topic_ours(&subs_url, "repaired on start").await;
    let v = shop(&shops_of(&c, &base).await, &id).clone();
    assert!(
        v["webhooks"].as_str().unwrap().contains("repaired 2"),
        "{v}"
    );
}

/// Tokens pasted into the configuration file: used until a refresh
/// replaces them (a restart keeps the refreshed pair, the file's is older),
/// and winning again once an operator pastes a new pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_token_pair_wins_whichever_way_it_came() {
    let rig = Rig::start(SimulatorArgs {
        shops: 1,
        manual_carrier: true,
        access_token: "cs-pasted-access".into(),
        refresh_token: "cs-pasted-refresh".into(),
        ..Default::default()
    });
    let c = client();
    let (id, cipher) = rig.shops[0].clone();
    let with_tokens = |access: &str, refresh: &str| {
        let base = std::fs::read_to_string(&rig.config).unwrap();
        let base = base.split("\n[[tiktok.shops]]").next().unwrap().to_string();
        std::fs::write(
            &rig.config,
            format!(
                "{base}\n[[tiktok.shops]]\nid = \"{id}\"\ncipher = \"{cipher}\"\naccess_token = \"{access}\"\nrefresh_token = \"{refresh}\"\n"
            ),
        )
        .unwrap();
    };
    with_tokens("cs-pasted-access", "cs-pasted-refresh");
    let daemon = rig.daemon();
    let base = daemon.base.clone();
    wait_ready(&c, &base).await;
    let v = shop(&shops_of(&c, &base).await, &id).clone();
    assert_eq!(
        (v["status"].as_str(), v["token_source"].as_str()),
        (Some("connected"), Some("config")),
        "{v}"
    );

    // TikTok expires the pasted token: the next call refreshes it.
    let (st, _) = post_json(&c, &format!("{}/sim/tokens/expire", rig.sim), &json!({})).await;
    assert_eq!(st, 200);
    let (st, _) = post_json(
        &c,
        &format!("{base}/api/v1/sync/resync"),
        &json!({"shop_id": id, "from": 1}),
    )
    .await;
    assert_eq!(st, 200);
    eventually(Duration::from_secs(15), "the refreshed pair stored", || {
        let (c, b, id) = (c.clone(), base.clone(), id.clone());
        async move { (shop(&shops_of(&c, &b).await, &id)["token_source"] == "refresh").then_some(()) }
    })
    .await;

    // A restart with the same file: the refreshed pair is newer and wins
    // (the pasted refresh token is spent: using it would fail).
    let daemon = restart_using(&rig, daemon, &id, "refresh").await;

    // The operator pastes a new pair (from an authorization done by hand):
    // it is newer than the stored one and wins on the next start.
    let code = code_from_authorize_page(&rig.sim, &id).await;
    let (_, fresh) = get_json(
        &c,
        &format!(
            "{}/api/v2/token/get?app_key={APP_KEY}&app_secret={APP_SECRET}&auth_code={code}&grant_type=authorized_code",
            rig.sim
        ),
    )
    .await;
    with_tokens(
        fresh["data"]["access_token"].as_str().unwrap(),
        fresh["data"]["refresh_token"].as_str().unwrap(),
    );
    drop(restart_using(&rig, daemon, &id, "config").await);
}

/// Waits until the simulator's subscriptions at `subs_url` send every
/// topic orderflow acts on to orderflow's public address.
async fn every_topic_ours(subs_url: &str, what: &str) {
    let ours = format!("{PUBLIC}/webhooks/tiktok");
    eventually(Duration::from_secs(15), what, || {
        let (u, ours) = (subs_url.to_string(), ours.clone());
        async move {
            let (_, v) = get_json(&client(), &u).await;
            let list = v["webhooks"].as_array().unwrap().clone();
            (list.len() == orderflow::shops::TOPICS.len()
                && list.iter().all(|w| w["address"] == ours))
            .then_some(())
        }
    })
    .await;
}

/// Kills the daemon, starts it again, and checks that the shop's calls
/// work with the pair from `source`.
async fn restart_using(rig: &Rig, daemon: Daemon, id: &str, source: &str) -> Daemon {
    let c = client();
    daemon.kill9();
    let daemon = rig.daemon();
    let base = daemon.base.clone();
    wait_ready(&c, &base).await;
    let v = shop(&shops_of(&c, &base).await, id).clone();
    assert_eq!(v["token_source"], source, "{v}");
    let (st, v) = post_json(
        &c,
        &format!("{base}/api/v1/sync/resync"),
        &json!({"shop_id": id, "from": 1}),
    )
    .await;
    assert_eq!(st, 200, "calls work with the pair from {source}: {v}");
    daemon
}
