//! A faithful TikTok Shop simulator: a real HTTP server speaking the same
//! 202309 wire protocol as `crate::tiktok` (signatures, envelopes, error
//! codes, rate limits, webhooks), so orderflow can be developed, tested and
//! demonstrated without a TikTok account.
//!
//! - [`state`]: shops, catalog, orders and their lifecycle on a scalable
//!   clock, tokens, the ledger of mutating calls, statistics, faults.
//! - [`api`]: the TikTok endpoints and their checks.
//! - [`control`]: `/sim/...` endpoints tests use to drive and inspect it.
//! - [`push`]: signed webhook delivery with TikTok's retry schedule.
//! - [`carriers`]: EasyPost and Shippo on their own wire formats on the
//!   same server, with a purchase ledger, faults, label documents and
//!   signed tracking webhooks.
//!
//! Entry points: [`start`] (tests; returns a [`SimulatorHandle`]) and
//! [`run`] (the `orderflow simulator` command; runs until cancelled).

pub mod api;
pub mod carriers;
pub mod control;
pub mod push;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::order::TiktokStatus;
pub use state::{DeliveryRecord, EndpointStats, Faults, LedgerEntry};

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator arguments: {0}")]
    InvalidArgs(String),
    #[error("the saved simulator state {path}: {source}")]
    SavedIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the saved simulator state is not readable: {0}")]
    SavedJson(#[from] serde_json::Error),
    #[error("the saved simulator state is version {found}; this build reads {reads}")]
    SavedVersion { found: u32, reads: u32 },
}

/// `orderflow simulator`: every knob of the simulated TikTok Shop.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8787", env = "ORDERFLOW_SIM_LISTEN")]
    pub listen: String,
    /// The app key clients must send (`app_key` query parameter).
    #[arg(long, default_value = "sim-app-key")]
    pub app_key: String,
    /// The app secret requests and webhooks are signed with.
    #[arg(long, default_value = "sim-app-secret")]
    pub app_secret: String,
    /// An access token accepted for every simulated shop, so clients need no
    /// OAuth round trip.
    #[arg(long, default_value = "sim-access-token")]
    pub access_token: String,
    /// A refresh token accepted by `/api/v2/token/refresh`.
    #[arg(long, default_value = "sim-refresh-token")]
    pub refresh_token: String,
    /// Lifetime of issued access tokens, in simulated seconds (TikTok's
    /// 7 days by default; divided by the time scale in real time, as the
    /// expiry times the token endpoints answer are). Refresh tokens last a
    /// simulated year and rotate on every refresh.
    #[arg(long, default_value_t = 7 * 86_400)]
    pub token_ttl_secs: i64,
    /// How long a seller's authorization lasts, in simulated seconds (a
    /// year): the refresh tokens' end, kept across rotations.
    #[arg(long, default_value_t = 365 * 86_400)]
    pub authorization_ttl_secs: i64,
    /// The app's service id, which `/open/authorize` links name.
    #[arg(long, default_value = "sim-service-id")]
    pub service_id: String,
    /// The app's redirect URL: where `/open/authorize` sends the seller
    /// with a code (also `POST /sim/app`).
    #[arg(long)]
    pub redirect_url: Option<String>,
    /// Deliver pushes addressed to registered https addresses to this base
    /// instead (also `POST /sim/app`).
    #[arg(long)]
    pub webhook_resolve: Option<String>,
    /// Where webhooks go when a shop registered no address for the topic.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// New orders generated per real second, across shops (0 = only those
    /// created through `POST /sim/orders`).
    #[arg(long, default_value_t = 0.0)]
    pub orders_per_second: f64,
    /// Number of simulated shops.
    #[arg(long, default_value_t = 2)]
    pub shops: u32,
    /// Rate limit per (app, shop), in requests per second; excess requests
    /// get HTTP 429 with code 36009002.
    #[arg(long, default_value_t = 50)]
    pub qps: u32,
    /// Simulated seconds per real second for the order lifecycle (hold
    /// window, carrier, SLAs, webhook retry delays).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Keep TikTok's timestamps on the real clock and divide its durations
    /// (the hold, ship-by windows, carrier steps, answer deadlines) by the
    /// time scale, instead of running order time itself faster: a client
    /// on a real clock then sees the deadlines the simulator enforces (the
    /// demo's daemon runs so).
    #[arg(long)]
    pub real_clock: bool,
    /// The run number, 0 to 9999, in the top digits of every id the
    /// simulator makes (orders, packages, notifications, cancellations,
    /// returns, labels): a simulator started again with the next number
    /// never repeats an id of an earlier run (the demo keeps the number in
    /// its data directory).
    #[arg(long, default_value_t = 0)]
    pub run: u32,
    /// Seed of the random generator (orders, addresses, faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of generated orders the buyer cancels during the hold.
    #[arg(long, default_value_t = 0.05)]
    pub buyer_cancel_rate: f64,
    /// Leave carrier steps (collection, delivery, completion) to
    /// `POST /sim/carrier` instead of running them on the clock.
    #[arg(long)]
    pub manual_carrier: bool,
    /// Fault: fraction of API calls failing transiently (HTTP 503 or code
    /// 36009003).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: extra latency per API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault: random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Fault: fraction of API calls answered 429 regardless of quota.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Fault: a 429 storm (every call throttled) for this many milliseconds
    /// after start.
    #[arg(long, default_value_t = 0)]
    pub storm_ms: u64,
    /// Fault: fraction of webhooks never sent.
    #[arg(long, default_value_t = 0.0)]
    pub webhook_drop_rate: f64,
    /// Fault: fraction of webhooks sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub webhook_duplicate_rate: f64,
    /// Fault: fraction of webhooks held back and sent after the next one.
    #[arg(long, default_value_t = 0.0)]
    pub webhook_reorder_rate: f64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Where the simulated EasyPost and Shippo send tracking webhooks:
    /// `{base}/webhooks/easypost` (signed with `--easypost-webhook-secret`)
    /// and `{base}/webhooks/shippo?token=<--shippo-webhook-token>`.
    #[arg(long)]
    pub tracking_webhook_base: Option<String>,
    /// EasyPost: the secret its tracking webhooks are signed with
    /// (`X-Hmac-Signature`).
    #[arg(long, default_value = carriers::DEMO_EASYPOST_SECRET)]
    pub easypost_webhook_secret: String,
    /// Shippo: the token its tracking webhooks carry in their URL.
    #[arg(long, default_value = carriers::DEMO_SHIPPO_TOKEN)]
    pub shippo_webhook_token: String,
    /// EasyPost: the API key `/easypost/v2` requires (none: any).
    #[arg(long, env = "ORDERFLOW_SIM_EASYPOST_API_KEY")]
    pub easypost_api_key: Option<String>,
    /// Shippo: the API token `/shippo` requires (none: any).
    #[arg(long, env = "ORDERFLOW_SIM_SHIPPO_API_KEY")]
    pub shippo_api_key: Option<String>,
    /// EasyPost and Shippo fault: fraction of calls answered 503 without
    /// effect.
    #[arg(long, default_value_t = 0.0)]
    pub label_error_rate: f64,
    /// EasyPost and Shippo fault: delay added to every answer, after the work is done
    /// (a client timing out still gets its label bought).
    #[arg(long, default_value_t = 0)]
    pub label_latency_ms: u64,
}

impl Default for SimulatorArgs {
    fn default() -> Self {
        SimulatorArgs {
            listen: "127.0.0.1:0".into(),
            app_key: "sim-app-key".into(),
            app_secret: "sim-app-secret".into(),
            access_token: "sim-access-token".into(),
            refresh_token: "sim-refresh-token".into(),
            token_ttl_secs: 7 * 86_400,
            authorization_ttl_secs: 365 * 86_400,
            service_id: "sim-service-id".into(),
            redirect_url: None,
            webhook_resolve: None,
            webhook_url: None,
            orders_per_second: 0.0,
            shops: 2,
            qps: 50,
            time_scale: 1.0,
            real_clock: false,
            run: 0,
            seed: 1,
            buyer_cancel_rate: 0.05,
            manual_carrier: false,
            error_rate: 0.0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            throttle_rate: 0.0,
            storm_ms: 0,
            webhook_drop_rate: 0.0,
            webhook_duplicate_rate: 0.0,
            webhook_reorder_rate: 0.0,
            workers: 2,
            tracking_webhook_base: None,
            easypost_webhook_secret: carriers::DEMO_EASYPOST_SECRET.into(),
            shippo_webhook_token: carriers::DEMO_SHIPPO_TOKEN.into(),
            easypost_api_key: None,
            shippo_api_key: None,
            label_error_rate: 0.0,
            label_latency_ms: 0,
        }
    }
}

/// State shared by the HTTP workers and the background tasks.
pub(crate) struct Shared {
    pub(crate) world: Mutex<state::World>,
    pub(crate) app_key: String,
    pub(crate) app_secret: String,
    pub(crate) qps: u32,
    pub(crate) token_ttl_secs: i64,
    pub(crate) service_id: String,
    push_tx: mpsc::UnboundedSender<state::Push>,
}

impl Shared {
    pub(crate) fn push_all(&self, pushes: Vec<state::Push>) {
        for p in pushes {
            // The pusher only stops at shutdown; losing a push then is fine.
            let _ = self.push_tx.send(p);
        }
    }
}

/// A running simulator.
pub struct SimulatorHandle {
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    cancel: CancellationToken,
    shops: Vec<(String, String)>,
    shared: Arc<Shared>,
    labels: web::Data<carriers::CarrierSim>,
}

/// The version of the saved state ([`SimulatorHandle::save`]) this build
/// writes and reads.
const SAVED_VERSION: u32 = 1;

/// What [`SimulatorHandle::restore`] took back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub orders: usize,
    pub labels: usize,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ip:port`, usable as both `base_url` and `auth_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `(shop id, cipher)` of every simulated shop.
    pub fn shops(&self) -> &[(String, String)] {
        &self.shops
    }
    /// Writes what a restart keeps (see `state::SavedRef`: orders, their
    /// packages, stock and deadline counts; the label APIs' shipments and
    /// labels) to `path`, whole or not at all (a temporary file, synced,
    /// then renamed). Returns the orders saved.
    pub async fn save(&self, path: &std::path::Path) -> Result<usize, Error> {
        let (tiktok, orders) = {
            let w = self.shared.world.lock();
            (w.saved()?, w.orders.len())
        };
        let doc = serde_json::json!({
            "version": SAVED_VERSION,
            "tiktok": tiktok,
            "labels": self.labels.saved()?,
        });
        let bytes = serde_json::to_vec(&doc)?;
        let path = path.to_path_buf();
        let io = |source| Error::SavedIo {
            path: path.clone(),
            source,
        };
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = target.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        written.map_err(io)?;
        Ok(orders)
    }

    /// Takes back what [`SimulatorHandle::save`] wrote to `path`, if
    /// anything: orders an earlier run left go on (this run's own are never
    /// replaced). A file that is not JSON, or another version's, changes
    /// nothing and says why; each of its two parts (TikTok's, the label
    /// APIs') is read whole before it is taken, so a part that does not
    /// read is left out whole (TikTok's comes first).
    pub async fn restore(&self, path: &std::path::Path) -> Result<Option<Restored>, Error> {
        let target = path.to_path_buf();
        let read = tokio::task::spawn_blocking(move || std::fs::read(target))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::SavedIo {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        #[derive(serde::Deserialize)]
        struct Envelope {
            version: u32,
            tiktok: serde_json::Value,
            labels: serde_json::Value,
        }
        let doc: Envelope = serde_json::from_slice(&bytes)?;
        if doc.version != SAVED_VERSION {
            return Err(Error::SavedVersion {
                found: doc.version,
                reads: SAVED_VERSION,
            });
        }
        let orders = self.shared.world.lock().restore(doc.tiktok)?;
        let labels = self.labels.restore(doc.labels)?;
        Ok(Some(Restored { orders, labels }))
    }

    /// Stops the server and the background tasks.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.server.stop(true).await;
    }
}

/// The largest run number (`--run`): four digits of every id.
pub const MAX_RUN: u32 = 9999;

fn validate(args: &SimulatorArgs) -> Result<(), Error> {
    let mut p = Vec::new();
    if args.app_key.is_empty() || args.app_secret.is_empty() || args.access_token.is_empty() {
        p.push("app key, app secret and access token must be non-empty".to_string());
    }
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        p.push("time scale must be positive".into());
    }
    if !(args.orders_per_second.is_finite() && args.orders_per_second >= 0.0) {
        p.push("orders per second must be >= 0".into());
    }
    if args.run > MAX_RUN {
        p.push(format!("run must be at most {MAX_RUN}"));
    }
    if args.qps == 0 {
        p.push("qps must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.buyer_cancel_rate) {
        p.push("buyer cancel rate must be within [0, 1]".into());
    }
    let f = initial_faults(args);
    if let Err(e) = f.validate() {
        p.push(e);
    }
    if let Err(e) = carriers::validate_args(args) {
        p.push(format!("label API: {e}"));
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgs(p.join("; ")))
    }
}

fn initial_faults(a: &SimulatorArgs) -> Faults {
    Faults {
        error_rate: a.error_rate,
        latency_ms: a.latency_ms,
        latency_jitter_ms: a.latency_jitter_ms,
        throttle_rate: a.throttle_rate,
        storm_ms: a.storm_ms,
        webhook_drop_rate: a.webhook_drop_rate,
        webhook_duplicate_rate: a.webhook_duplicate_rate,
        webhook_reorder_rate: a.webhook_reorder_rate,
        ..Faults::default()
    }
}

/// Advances the lifecycle and generates orders (at the world's
/// `orders_per_second`), every 50 ms.
async fn ticker(sim: Arc<Shared>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_millis(50));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut carry = 0.0;
    let mut last = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let dt = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        let pushes = {
            let mut w = sim.world.lock();
            w.tick();
            carry += w.orders_per_second * dt;
            while carry >= 1.0 {
                carry -= 1.0;
                let n_shops = w.shops.len();
                let shop = w.rng.random_range(0..n_shops);
                let skus: Vec<String> = w.skus.keys().cloned().collect();
                let n = w.rng.random_range(1..=3usize);
                let items: Vec<(String, u32)> = (0..n)
                    .map(|_| {
                        let i = w.rng.random_range(0..skus.len());
                        (skus[i].clone(), w.rng.random_range(1..=2u32))
                    })
                    .collect();
                w.create_order(shop, &items, TiktokStatus::Unpaid, None);
            }
            std::mem::take(&mut w.outbox)
        };
        sim.push_all(pushes);
    }
}

/// Binds and starts the simulator in the background.
pub async fn start(args: SimulatorArgs) -> Result<SimulatorHandle, Error> {
    validate(&args)?;
    let listener = std::net::TcpListener::bind(&args.listen).map_err(|source| Error::Bind {
        addr: args.listen.clone(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: args.listen.clone(),
        source,
    })?;
    let mut world = state::World::new(
        args.seed,
        args.shops,
        args.time_scale,
        &args.access_token,
        &args.refresh_token,
        args.token_ttl_secs,
        args.authorization_ttl_secs,
        args.buyer_cancel_rate,
        !args.manual_carrier,
        args.webhook_url.clone(),
    );
    world.clock = state::SimClock::new(args.time_scale, args.real_clock);
    world.set_run(args.run);
    world.orders_per_second = args.orders_per_second;
    world.faults = initial_faults(&args);
    world.redirect_url = args.redirect_url.clone();
    world.webhook_resolve = args.webhook_resolve.clone();
    world.storm_until = (args.storm_ms > 0)
        .then(|| std::time::Instant::now() + Duration::from_millis(args.storm_ms));
    let shops = world
        .shops
        .iter()
        .map(|s| (s.id.clone(), s.cipher.clone()))
        .collect();
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        world: Mutex::new(world),
        app_key: args.app_key.clone(),
        app_secret: args.app_secret.clone(),
        qps: args.qps,
        token_ttl_secs: args.token_ttl_secs,
        service_id: args.service_id.clone(),
        push_tx,
    });
    let data = web::Data::new(shared.clone());
    let label_sim = web::Data::new(carriers::CarrierSim::new(&args));
    let labels = label_sim.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(4 << 20))
            .app_data(web::JsonConfig::default().limit(4 << 20))
            .configure(|c| carriers::routes(c, label_sim.clone()))
            .configure(control::routes)
            .default_service(web::to(api::handle))
    })
    .workers(args.workers.max(1))
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(|source| Error::Bind {
        addr: args.listen.clone(),
        source,
    })?
    .run();
    let server_handle = server.handle();
    let cancel = CancellationToken::new();
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "Simulator HTTP server failed");
        }
    });
    tokio::spawn(ticker(shared.clone(), cancel.clone()));
    tokio::spawn(push::run(shared.clone(), push_rx, cancel.clone()));
    tracing::info!(%addr, shops = args.shops, qps = args.qps, "TikTok Shop simulator listening");
    Ok(SimulatorHandle {
        addr,
        server: server_handle,
        cancel,
        shops,
        shared,
        labels,
    })
}

/// Runs the simulator until `shutdown` is cancelled (the CLI entry point).
pub async fn run(args: SimulatorArgs, shutdown: CancellationToken) -> Result<(), Error> {
    let handle = start(args).await?;
    shutdown.cancelled().await;
    handle.stop().await;
    Ok(())
}
