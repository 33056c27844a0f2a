//! Shared test utilities: a recording HTTP server that dedupes by
//! idempotency key (and can hold a step's requests in flight), a handle on
//! a real `orderflow` process, and for the sync tests the configuration of
//! a daemon whose TikTok is a simulator, `/metrics` samples and bounded
//! waits.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the recorder saw.
#[derive(Default, Debug)]
pub struct Recorded {
    /// (order, step) → idempotency keys seen.
    pub keys: HashMap<(String, String), HashSet<String>>,
    /// Idempotency key → times applied (the first request only).
    pub applied: HashMap<String, u32>,
    /// Requests that repeated a key already applied.
    pub duplicates: u64,
    pub requests: u64,
    /// (order, step) of every request, in arrival order.
    pub arrivals: Vec<(String, String)>,
    /// (order, step) of every request answered, in answer order.
    pub answered: Vec<(String, String)>,
}

/// A real HTTP server on 127.0.0.1:0 that applies each idempotency key once,
/// as a well-behaved carrier or payment API does.
pub struct Recorder {
    pub addr: String,
    pub seen: Arc<Mutex<Recorded>>,
    /// Steps whose requests are held (recorded but not answered) until
    /// released.
    pub held: Arc<Mutex<HashSet<String>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Recorded::default()));
        let held = Arc::new(Mutex::new(HashSet::new()));
        let (s, h) = (seen.clone(), held.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, h) = (s.clone(), h.clone());
                std::thread::spawn(move || serve(conn, s, h));
            }
        });
        Recorder { addr, seen, held }
    }

    /// Requests for `step` wait, unanswered, until [`Recorder::release`].
    pub fn hold(&self, step: &str) {
        self.held.lock().unwrap().insert(step.to_string());
    }

    pub fn release(&self, step: &str) {
        self.held.lock().unwrap().remove(step);
    }

    /// The steps that reached the recorder for `order`, in arrival order.
    pub fn arrivals(&self, order: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .arrivals
            .iter()
            .filter(|(o, _)| o == order)
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}/effect", self.addr)
    }
}

fn serve(conn: TcpStream, seen: Arc<Mutex<Recorded>>, held: Arc<Mutex<HashSet<String>>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        let mut key = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                match n.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let order = v["order"].as_str().unwrap_or("").to_string();
        let step = v["step"].as_str().unwrap_or("").to_string();
        {
            let mut r = seen.lock().unwrap();
            r.requests += 1;
            r.arrivals.push((order.clone(), step.clone()));
            r.keys
                .entry((order.clone(), step.clone()))
                .or_default()
                .insert(key.clone());
            let n = r.applied.entry(key).or_insert(0);
            if *n == 0 {
                *n = 1;
            } else {
                r.duplicates += 1;
            }
        }
        while held.lock().unwrap().contains(&step) {
            std::thread::sleep(Duration::from_millis(10));
        }
        seen.lock().unwrap().answered.push((order, step));
        let resp = b"{\"ok\":true}";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            resp.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(resp))
            .is_err()
        {
            return;
        }
    }
}

/// A running `orderflow run` process.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_orderflow")
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1:0 and waits until it listens.
    pub fn start(data: &Path, workflows: &Path, log: &Path, extra_env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with("127.0.0.1:0", None, data, workflows, log, extra_env)
    }

    /// Starts the daemon listening on `listen`, with `config` as its config
    /// file when given, and waits until it listens.
    pub fn start_with(
        listen: &str,
        config: Option<&Path>,
        data: &Path,
        workflows: &Path,
        log: &Path,
        extra_env: &[(&str, &str)],
    ) -> Daemon {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let start_len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--listen", listen]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--data-dir")
            .arg(data)
            .arg("--workflows")
            .arg(workflows)
            .env("RUST_LOG", "info")
            // No demo order stream: tests feed exactly the orders they count.
            .env("ORDERFLOW_DEMO__ORDERS_PER_SECOND", "0")
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail = &text[(start_len as usize).min(text.len())..];
            if let Some(line) = tail.lines().find(|l| l.contains("orderflow listening")) {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .unwrap()
                    .to_string();
                return Daemon {
                    child,
                    base: format!("http://{addr}"),
                    log: log.to_path_buf(),
                };
            }
            if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not start:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_sigterm(self.child.id());
        self.child.wait().unwrap()
    }
}

/// A test that fails does not leave its daemon running.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "daemon never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An order in TikTok's wire shape, awaiting shipment.
pub fn wire_order(id: &str, update_time: i64) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "status": "AWAITING_SHIPMENT",
        "create_time": update_time - 60,
        "update_time": update_time,
        "paid_time": update_time - 30,
        "shipping_type": "SELLER",
        "rts_sla_time": update_time + 172_800,
        "payment": {"currency": "USD", "original_total_product_price": "20.00", "sub_total": "20.00",
                    "shipping_fee": "0.00", "tax": "0.00", "total_amount": "20.00"},
        "line_items": [{"id": format!("{id}-1"), "sku_id": "SKU-1", "sale_price": "20.00", "original_price": "20.00"}],
    })
}

// ---------------------------------------------------------------------
// Sync tests: an in-process daemon talking to a real simulator.
// ---------------------------------------------------------------------

/// Configuration of a daemon that treats `sim` as TikTok Shop: every
/// simulated shop configured with its cipher and the simulator's access
/// token, `qps` per shop; data in `data`, workflows from `workflows`,
/// listening on 127.0.0.1:0.
pub fn sim_config(
    sim: &orderflow::simulator::SimulatorHandle,
    app_key: &str,
    app_secret: &str,
    access_token: &str,
    qps: f64,
    data: &Path,
    workflows: &Path,
) -> orderflow::config::Config {
    let mut cfg = orderflow::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.store.data_dir = data.to_path_buf();
    cfg.workflows.dir = workflows.to_path_buf();
    cfg.tiktok.base_url = sim.base_url();
    cfg.tiktok.auth_url = sim.base_url();
    cfg.tiktok.app_key = app_key.into();
    cfg.tiktok.app_secret = orderflow::tiktok::Secret::new(app_secret);
    cfg.tiktok.shops = sim
        .shops()
        .iter()
        .map(|(id, cipher)| orderflow::tiktok::ShopConfig {
            id: id.clone(),
            cipher: Some(cipher.clone()),
            access_token: orderflow::tiktok::Secret::new(access_token),
            refresh_token: orderflow::tiktok::Secret::new("sim-refresh-token"),
            qps,
            region: None,
        })
        .collect();
    cfg
}

/// What most sync and fulfilment tests start from: an in-process simulator
/// whose webhooks go to a free address, a temp dir whose `workflows/` holds
/// one workflow file, and the config of a daemon that will listen on that
/// address with the simulator as TikTok Shop (`qps` per shop). The app key,
/// secret and access token are `{tag}-app-key`, `{tag}-app-secret` and
/// `{tag}-access-token`; `args` gives the rest of the simulator's settings.
pub struct SimRig {
    pub sim: orderflow::simulator::SimulatorHandle,
    pub dir: tempfile::TempDir,
    pub cfg: orderflow::config::Config,
}

pub async fn sim_rig(
    tag: &str,
    args: orderflow::simulator::SimulatorArgs,
    qps: f64,
    (file, yaml): (&str, &str),
) -> SimRig {
    let listen = free_addr();
    let mut args = args;
    if args.tracking_webhook_base.is_none() {
        args.tracking_webhook_base = Some(format!("http://{listen}"));
    }
    let (key, secret, token) = (
        format!("{tag}-app-key"),
        format!("{tag}-app-secret"),
        format!("{tag}-access-token"),
    );
    let sim = orderflow::simulator::start(orderflow::simulator::SimulatorArgs {
        app_key: key.clone(),
        app_secret: secret.clone(),
        access_token: token.clone(),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        ..args
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join(file), yaml).unwrap();
    let mut cfg = sim_config(
        &sim,
        &key,
        &secret,
        &token,
        qps,
        &dir.path().join("data"),
        &wf,
    );
    cfg.server.listen = listen;
    SimRig { sim, dir, cfg }
}

/// The value of one sample in the daemon's `/metrics` (0 when absent):
/// `name` with exactly the given label text, e.g. `result="duplicate"`.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str, labels: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == want).then(|| v.parse::<f64>().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Creates `count` orders in `status` on the simulator at `sim` (its base
/// URL) for `shop`; their ids.
pub async fn sim_orders_in(
    client: &reqwest::Client,
    sim: &str,
    shop: &str,
    status: &str,
    count: usize,
) -> Vec<String> {
    sim_create(
        client,
        sim,
        serde_json::json!({"shop_id": shop, "status": status, "count": count}),
    )
    .await
}

/// GET a JSON document; panics on transport errors, returns the status and
/// the body (Null when not JSON).
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// POST a JSON document and return the status and JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// POSTs a text body (a CSV); the status and the JSON answer.
pub async fn post_text(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let r = client
        .post(url)
        .header("content-type", "text/csv")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with
/// `what` after `deadline` (generous: the machine may be busy).
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < until,
            "gave up after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------
// Fulfilment tests: a notification receiver.
// ---------------------------------------------------------------------

/// What an [`Inbox`] saw: every POST body, in arrival order, with the HTTP
/// status it was answered with.
#[derive(Default, Debug)]
pub struct InboxLog {
    pub attempts: Vec<(serde_json::Value, u16)>,
}

/// A notification receiver on 127.0.0.1:0: records every POSTed JSON body
/// and answers 200, or 500 while told to fail.
#[derive(Clone)]
pub struct Inbox {
    pub addr: String,
    pub log: Arc<Mutex<InboxLog>>,
    /// Answer 500 to this many more requests (u32::MAX: always).
    pub fail: Arc<Mutex<u32>>,
}

impl Inbox {
    pub fn start() -> Inbox {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let inbox = Inbox {
            addr,
            log: Default::default(),
            fail: Default::default(),
        };
        let i = inbox.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let i = i.clone();
                std::thread::spawn(move || i.serve(conn));
            }
        });
        inbox
    }

    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    pub fn fail_next(&self, n: u32) {
        *self.fail.lock().unwrap() = n;
    }

    /// Bodies answered 200.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .attempts
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// Every body received, whatever the answer.
    pub fn attempts(&self) -> Vec<(serde_json::Value, u16)> {
        self.log.lock().unwrap().attempts.clone()
    }

    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut out = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    if n.trim().eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let status = {
                let mut f = self.fail.lock().unwrap();
                if *f > 0 {
                    if *f != u32::MAX {
                        *f -= 1;
                    }
                    500
                } else {
                    200
                }
            };
            self.log.lock().unwrap().attempts.push((v, status));
            let resp = b"ok";
            let head =
                format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                if status == 200 { "OK" } else { "Internal Server Error" },
                resp.len()
            );
            if out
                .write_all(head.as_bytes())
                .and_then(|_| out.write_all(resp))
                .is_err()
            {
                return;
            }
        }
    }
}

/// The sum of the `orderflow_orders{state=…}` gauges: how many orders the
/// last report pass counted.
pub async fn orders_counted(client: &reqwest::Client, base: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("orderflow_orders{state="))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A free port on 127.0.0.1, for a daemon whose address must be known
/// before it starts (the simulator's webhook URL). It is chosen below the
/// kernel's ephemeral range (32768-60999 on Linux), from which every
/// outgoing connection and every bind to port 0 takes its port: a port
/// from that range, freed here, was seen taken by one of the many client
/// connections of tests running in parallel before the daemon bound it.
/// Below it, only another test's pick of the very same port can collide.
pub fn free_addr() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port: u16 = rng.random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

// ---------------------------------------------------------------------
// Crash and fault tests: the real binary against a simulator that
// outlives it.
// ---------------------------------------------------------------------

/// The simulator in its own thread and actix system, so it outlives the
/// daemons a test kills and restarts, and the test's blocking waits never
/// stall it. Returns its base URL and `(shop id, cipher)` of every shop.
pub fn start_simulator_thread(
    args: orderflow::simulator::SimulatorArgs,
) -> (String, Vec<(String, String)>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let sim = orderflow::simulator::start(args).await.unwrap();
            tx.send((sim.base_url(), sim.shops().to_vec())).unwrap();
            std::future::pending::<()>().await;
        })
    });
    rx.recv().unwrap()
}

/// [`start_simulator_thread`] as the crash and fulfilment tests use it: one
/// quiet shop (no buyer cancellations, carriers scanned by hand, no rate
/// limit to speak of) whose webhooks go to a daemon at `listen`; the app
/// key, secret and access token are `{tag}-app-key`, `{tag}-app-secret`
/// and `{tag}-access-token`.
pub fn one_shop_simulator(tag: &str, listen: &str) -> (String, Vec<(String, String)>) {
    start_simulator_thread(orderflow::simulator::SimulatorArgs {
        app_key: format!("{tag}-app-key"),
        app_secret: format!("{tag}-app-secret"),
        access_token: format!("{tag}-access-token"),
        webhook_url: Some(format!("http://{listen}/webhooks/tiktok")),
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        shops: 1,
        qps: 10_000,
        ..Default::default()
    })
}

/// The simulator's first shop's warehouse and first SKU: `(warehouse,
/// sku, product)`.
pub async fn sim_first_sku(client: &reqwest::Client, sim_url: &str) -> (String, String, String) {
    let (_, v) = get_json(client, &format!("{sim_url}/sim/shops")).await;
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    (
        s(&v["shops"][0]["warehouse_id"]),
        s(&v["skus"][0]["id"]),
        s(&v["skus"][0]["product_id"]),
    )
}

/// Writes `dir/orderflow.toml` for `orderflow run` and returns its path:
/// TikTok is the simulator at `sim_url` (`shop`, with the app key, app
/// secret and access token given), the label API is the simulator's, with
/// the three carriers' provider ids; `extra` TOML is appended.
pub fn sim_daemon_config(
    dir: &Path,
    sim_url: &str,
    (shop, cipher): &(String, String),
    (app_key, app_secret, access_token): (&str, &str, &str),
    extra: &str,
) -> PathBuf {
    let path = dir.join("orderflow.toml");
    let text = format!(
        r#"
[tiktok]
base_url = "{sim_url}"
auth_url = "{sim_url}"
app_key = "{app_key}"
app_secret = "{app_secret}"

[[tiktok.shops]]
id = "{shop}"
cipher = "{cipher}"
access_token = "{access_token}"
refresh_token = "sim-refresh-token"
qps = 1000.0
{shipping}
{extra}
"#,
        shipping = sim_shipping_toml(sim_url),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A workflow that buys a label (the carrier rules' choice), marks the
/// order shipped with it, and waits for delivery: for tests about labels
/// and shipping, with retries for a daemon that is killed or moved.
pub const LABELS_WORKFLOW: &str = r#"
name: labels
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: choose_carrier
    call: shipping.select_carrier
  - id: buy_label
    call: shipping.buy_label
    with:
      carrier: "${{ steps.choose_carrier.carrier }}"
      provider: "${{ steps.choose_carrier.provider }}"
    timeout: 30s
    retry:
      max_attempts: 10
      initial_delay: 200ms
      max_delay: 2s
  - id: mark_shipped
    call: tiktok.mark_shipped
    with:
      tracking_number: "${{ steps.buy_label.tracking_number }}"
      shipping_provider_id: "${{ steps.buy_label.shipping_provider_id }}"
    retry:
      max_attempts: 10
      initial_delay: 200ms
      max_delay: 2s
  - id: wait_delivery
    wait:
      until: "event.type == 'status' && event.status == 'DELIVERED'"
      timeout: 14d
  - id: delivered
    end: delivered
"#;

/// `dir/workflows` holding [`LABELS_WORKFLOW`] alone.
pub fn labels_workflows(dir: &Path) -> PathBuf {
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(wf.join("labels.yaml"), LABELS_WORKFLOW).unwrap();
    wf
}

/// A client without pooled connections: a daemon killed mid-answer, or a
/// simulator worker closing an idle one, must not fail the test's own
/// reads.
pub fn unpooled_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Waits until order `id` at the daemon `base` has shipped and waits for
/// delivery (step `wait_delivery`).
pub async fn shipped(client: &reqwest::Client, base: &str, id: &str, deadline: Duration) {
    eventually(deadline, &format!("{id} shipped"), || {
        let url = format!("{base}/api/v1/orders/{id}");
        async move {
            let (_, o) = get_json(client, &url).await;
            (o["step"] == "wait_delivery").then_some(())
        }
    })
    .await;
}

/// Runs the real CLI (no daemon URL): whether it succeeded, and its
/// stdout and stderr.
pub fn cli_output(args: &[&str]) -> (bool, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// After a crash, with the daemon dead: the order indexes and counters in
/// the store at `data` match a full recount of its checkpoints
/// (`orderflow admin check-index`).
pub fn assert_indexes_match(data: &Path) {
    let (ok, text) = cli_output(&["admin", "check-index", "--data-dir", data.to_str().unwrap()]);
    assert!(
        ok,
        "the indexes disagree with the checkpoints after a kill:\n{text}"
    );
}

/// A workflow that takes an order and waits (a day) for an `ok` event:
/// for tests about everything but the workflow.
pub const WAIT_WORKFLOW: &str = r#"
name: hold_still
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: wait_ok
    wait:
      until: "event.type == 'ok'"
      timeout: 1d
  - id: done
    end: fulfilled
"#;

/// The `[shipping]` of a daemon against the simulator: its EasyPost and
/// Shippo (EasyPost by default) and the TikTok ids of the three carriers
/// they sell.
pub fn sim_shipping_toml(sim_url: &str) -> String {
    use orderflow::simulator::carriers::*;
    format!(
        r#"
[shipping.providers.easypost]
base_url = "{sim_url}/easypost/v2"
api_key = "{DEMO_EASYPOST_KEY}"
webhook_secret = "{DEMO_EASYPOST_SECRET}"

[shipping.providers.shippo]
base_url = "{sim_url}/shippo"
api_key = "{DEMO_SHIPPO_KEY}"
webhook_secret = "{DEMO_SHIPPO_TOKEN}"

[shipping.provider_ids]
USPS = "6617675021119438849"
UPS = "6617675021119438850"
FedEx = "6617675021119438851"
"#
    )
}

/// `dir/workflows` holding a copy of the bundled standard workflow.
pub fn standard_workflows(dir: &Path) -> PathBuf {
    let wf = dir.join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/standard.yaml"),
        wf.join("standard.yaml"),
    )
    .unwrap();
    wf
}

/// Sets `units` of `sku` in `warehouse` through the inventory import.
pub async fn import_stock(
    client: &reqwest::Client,
    base: &str,
    (warehouse, sku, product): &(String, String, String),
    units: u64,
) {
    let r = client
        .post(format!("{base}/api/v1/inventory/import"))
        .body(format!(
            "sku_id,warehouse_id,on_hand,product_id\n{sku},{warehouse},{units},{product}\n"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
}

/// Creates orders in the simulator (`body` as `POST /sim/orders` takes it)
/// and returns their ids.
pub async fn sim_create(
    client: &reqwest::Client,
    sim_url: &str,
    body: serde_json::Value,
) -> Vec<String> {
    let (st, v) = post_json(client, &format!("{sim_url}/sim/orders"), &body).await;
    assert_eq!(st, 200, "{v}");
    v["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect()
}

/// Creates `count` orders awaiting shipment in the simulator, one unit of
/// `sku` each, and returns their ids.
pub async fn sim_orders(
    client: &reqwest::Client,
    sim_url: &str,
    sku: &str,
    count: usize,
) -> Vec<String> {
    sim_create(
        client,
        sim_url,
        serde_json::json!({"items": [{"sku_id": sku, "quantity": 1}], "count": count, "status": "AWAITING_SHIPMENT"}),
    )
    .await
}

/// The simulator's webhook deliveries counted by outcome (`delivered`,
/// `failed`, `dropped`, `duplicated`, …).
pub async fn webhook_outcomes(client: &reqwest::Client, sim_url: &str) -> HashMap<String, usize> {
    let (_, hooks) = get_json(client, &format!("{sim_url}/sim/webhooks")).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for d in hooks["deliveries"].as_array().unwrap() {
        *outcomes
            .entry(d["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    outcomes
}

/// Labels bought and refunded per order at the simulated EasyPost, from
/// its ledger (`(bought, refunded)`).
pub async fn labels_per_order(
    client: &reqwest::Client,
    sim_url: &str,
) -> HashMap<String, (u32, u32)> {
    let (_, l) = get_json(
        client,
        &format!("{sim_url}/sim/labels/ledger?provider=easypost"),
    )
    .await;
    let mut labels: HashMap<String, (u32, u32)> = HashMap::new();
    for e in l["entries"].as_array().unwrap() {
        let reference = e["reference"].as_str().unwrap();
        let order = reference
            .rsplit_once("-L")
            .map_or(reference, |x| x.0)
            .to_string();
        let slot = labels.entry(order).or_default();
        match e["action"].as_str().unwrap() {
            "buy" => slot.0 += 1,
            "refund" => slot.1 += 1,
            _ => {}
        }
    }
    labels
}

/// Successful ship / mark-shipped calls per order, from TikTok's ledger.
pub async fn ships_per_order(client: &reqwest::Client, sim_url: &str) -> HashMap<String, usize> {
    let (_, ledger) = get_json(client, &format!("{sim_url}/sim/ledger")).await;
    let mut ships: HashMap<String, usize> = HashMap::new();
    for e in ledger["entries"].as_array().unwrap() {
        if matches!(e["action"].as_str(), Some("ship" | "mark_shipped")) && e["ok"] == true {
            *ships
                .entry(e["order_id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    ships
}

/// The simulated carrier delivers `ids` (`POST /sim/carrier`, 100 at a
/// time); every one must advance.
pub async fn sim_deliver<S: AsRef<str> + serde::Serialize>(
    client: &reqwest::Client,
    sim_url: &str,
    ids: &[S],
) {
    for chunk in ids.chunks(100) {
        let (st, v) = post_json(
            client,
            &format!("{sim_url}/sim/carrier"),
            &serde_json::json!({"order_ids": chunk, "to": "DELIVERED"}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert!(v["skipped"].as_array().unwrap().is_empty(), "{v}");
    }
}

/// A seeded random generator for a test that injects faults at random: the
/// seed comes from the environment variable `var` when set, else at
/// random, and is printed as `var=seed` so a failure can be replayed.
pub fn seeded_rng(var: &str) -> (u64, rand::rngs::StdRng) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("{var}={seed}");
    (seed, rand::rngs::StdRng::seed_from_u64(seed))
}

/// A client for tests: 10 s per request.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A simulator whose buyers never cancel on their own and whose carrier
/// moves only when told: what happens is what the test does.
pub fn quiet_sim() -> orderflow::simulator::SimulatorArgs {
    orderflow::simulator::SimulatorArgs {
        buyer_cancel_rate: 0.0,
        manual_carrier: true,
        ..Default::default()
    }
}

/// Starts an in-process daemon on `cfg` with the system clock and waits
/// until it is ready: the daemon and its base URL.
pub async fn start_daemon(cfg: &orderflow::config::Config) -> (orderflow::daemon::Daemon, String) {
    let daemon = orderflow::daemon::Daemon::start(cfg.clone(), orderflow::runtime::Clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&http(), &base).await;
    (daemon, base)
}

/// System alerts (and notifications) of `cfg` go to `url` as channel
/// `ops`, and so do the bundled workflows' messages to the creator
/// (channel `creator`, which a workflow may only name when it is defined).
pub fn alerts_to(cfg: &mut orderflow::config::Config, url: String) {
    cfg.notify.channels.insert(
        "creator".into(),
        orderflow::notify::Secret::new(url.clone()).into(),
    );
    cfg.notify
        .channels
        .insert("ops".into(), orderflow::notify::Secret::new(url).into());
    cfg.notify.default_channel = "ops".into();
    cfg.notify.alerts_channel = Some("ops".into());
}

/// A clock starting now that only moves when told.
pub fn manual_clock() -> (orderflow::runtime::Clock, orderflow::runtime::ClockControl) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    orderflow::runtime::Clock::manual(now)
}

/// Labels from the simulator's EasyPost and Shippo at `sim_url` (EasyPost
/// by default), with these carrier → TikTok provider ids.
pub fn sim_labels(
    cfg: &mut orderflow::config::Config,
    sim_url: &str,
    provider_ids: &[(&str, &str)],
) {
    orderflow::simulator::carriers::demo_config(&mut cfg.shipping, sim_url);
    cfg.shipping.provider_ids = provider_ids
        .iter()
        .map(|(c, id)| (c.to_string(), id.to_string()))
        .collect();
}

/// The simulator's first SKU, stocked with `on_hand` units in the daemon at
/// `base`: its id.
pub async fn stock_first_sku(
    client: &reqwest::Client,
    sim: &str,
    base: &str,
    on_hand: u64,
) -> String {
    let (_, shops) = get_json(client, &format!("{sim}/sim/shops")).await;
    let sku = shops["skus"][0]["id"].as_str().unwrap().to_string();
    let (st, v) = post_json(
        client,
        &format!("{base}/api/v1/inventory/{sku}"),
        &serde_json::json!({ "on_hand": on_hand }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    sku
}
