//! The daemon: wires the store, the workflows, the actors, intake, timers
//! and the HTTP server together, recovers, serves, and shuts down
//! gracefully.
//!
//! [`Daemon::start`] returns once the server listens (recovery runs on, and
//! `/readyz` turns 200 when it is done); [`Daemon::shutdown`] stops intake,
//! lets in-flight steps reach a checkpoint within the grace period and
//! flushes. [`run`] is the binary's whole life: start, wait for a signal
//! (SIGHUP reloads workflows), shut down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use tokio_util::sync::CancellationToken;

use crate::actors::RuntimeHandle;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::runtime::effects::Executor;
use crate::runtime::intake::Intake;
use crate::runtime::{timers, Clock, Registry};
use crate::store::Store;

/// The data directory holds buyers' names and addresses and shop tokens:
/// only the daemon's user may read it, whatever the umask it was started
/// with. Sets the process umask to 077 (so everything sled and the daemon
/// create later is 0600/0700), creates the directory, and tightens what an
/// older version left readable.
pub fn private_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only swaps the process's file-creation mask; it
    // cannot fail and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir)?;
    fn tighten(p: &std::path::Path, depth: usize) -> std::io::Result<()> {
        // The directory itself may be a link (to a bigger disk); what it
        // holds is walked without following links.
        let meta = if depth == 0 {
            std::fs::metadata(p)?
        } else {
            std::fs::symlink_metadata(p)?
        };
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
        }
        if meta.is_dir() && depth < 4 {
            for e in std::fs::read_dir(p)? {
                tighten(&e?.path(), depth + 1)?;
            }
        }
        Ok(())
    }
    tighten(dir, 0)
}

/// Binds the listen socket with `backlog` (std's `bind` fixes it at 128)
/// and a receive buffer of `recv_buffer` bytes, which accepted connections
/// inherit: what a client can push ahead of the daemon reading it is what
/// the kernel holds, not what the HTTP layer buffers for it (it reads all
/// the kernel has, up to 128 KiB a connection).
fn bind(addr: &str, backlog: u32, recv_buffer: usize) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an address like 127.0.0.1:8080",
        )
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if recv_buffer > 0 {
        socket.set_recv_buffer_size(recv_buffer)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("retention: {0}")]
    Retention(#[from] crate::retention::Error),
    #[error("loading workflows: {0}")]
    Runtime(#[from] crate::runtime::Error),
    #[error("starting the built-in simulator: {0}")]
    Simulator(#[from] crate::simulator::Error),
    #[error("demo mode: {0}")]
    Demo(#[from] crate::demo::Error),
    #[error("fulfilment services: {0}")]
    Fulfilment(String),
    #[error("notifications: {0}")]
    Notify(#[from] crate::notify::Error),
    #[error("web push: {0}")]
    Push(#[from] crate::notify::push::Error),
    #[error("starting the TikTok gateway: {0}")]
    Gateway(#[from] crate::tiktok::Error),
    #[error("shops: {0}")]
    Shops(#[from] crate::shops::Error),
    #[error("tenant {tenant}: {source}")]
    Tenant {
        tenant: String,
        #[source]
        source: crate::tenant::Error,
    },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// sled failed a write (a full disk, an I/O error): it takes no more
    /// until reopened, so the daemon stops to be restarted.
    #[error("the store failed a write; restart to recover what was flushed")]
    StoreFailed,
}

pub struct Daemon {
    pub addr: SocketAddr,
    pub runtime: RuntimeHandle,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub ready: Arc<AtomicBool>,
    stop: CancellationToken,
    /// Ends long-lived HTTP streams first, so the server can drain.
    closing: CancellationToken,
    server: actix_web::dev::ServerHandle,
    grace: Duration,
    simulator: Option<crate::simulator::SimulatorHandle>,
    /// Where the demo's simulator keeps its state across restarts.
    simulator_state: std::path::PathBuf,
    tenant: String,
    /// Why the shard map moved this tenant on, once it did.
    superseded: Arc<std::sync::Mutex<Option<crate::tenant::Error>>>,
    superseded_now: CancellationToken,
}

impl Daemon {
    /// Starts everything inside the current actix `System`.
    pub async fn start(mut cfg: Config, clock: Clock) -> Result<Daemon, Error> {
        let metrics = crate::metrics::install();
        cfg.sla.publish();
        if cfg.is_demo() {
            tracing::warn!("No TikTok credentials configured: starting in DEMO MODE with the built-in TikTok Shop simulator");
        }
        private_data_dir(&cfg.store.data_dir).map_err(|source| Error::DataDir {
            path: cfg.store.data_dir.display().to_string(),
            source,
        })?;
        let store = Store::open_guarded(
            &cfg.store.data_dir,
            cfg.store.cache_bytes,
            cfg.store.max_batch,
            cfg.store.min_free_bytes,
        )?;
        // Before anything runs: is this store this tenant's, at this epoch
        // (and the epoch the shard map gives it)?
        crate::tenant::describe_metrics();
        cfg.tenant = cfg.tenant.resolve().map_err(|source| Error::Tenant {
            tenant: cfg.tenant.id.clone(),
            source,
        })?;
        crate::tenant::claim(&store, &cfg.tenant)
            .await
            .map_err(|source| Error::Tenant {
                tenant: cfg.tenant.id.clone(),
                source,
            })?;
        // Dedupe keys from before their expiry index get one (once), and
        // bulk jobs a restart interrupted say so.
        crate::retention::ensure_dedupe_times(&store.trees, clock.now_ms())?;
        let interrupted = crate::http::admin::interrupted_jobs(&store, clock.now_ms())?;
        if interrupted > 0 {
            tracing::warn!(jobs = interrupted, "Bulk jobs were interrupted by the restart; their remaining orders are listed on each job");
        }
        let wf_dir = cfg
            .workflows
            .working_dir()
            .map_err(|source| Error::DataDir {
                path: cfg
                    .workflows
                    .edit_dir
                    .clone()
                    .unwrap_or_default()
                    .display()
                    .to_string(),
                source,
            })?;
        let registry = Arc::new(Registry::load(wf_dir, store.clone()).await?);
        for d in registry.current().definitions.iter() {
            tracing::info!(workflow = %d.key(), path = %d.path, "Workflow loaded");
        }
        // Bind first: the demo simulator needs our address for its webhooks.
        let listen = cfg.server.listen.clone();
        let listener =
            bind(&listen, cfg.server.backlog, cfg.server.recv_buffer_bytes).map_err(|source| {
                Error::Listen {
                    addr: listen.clone(),
                    source,
                }
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: listen.clone(),
            source,
        })?;
        let mut demo = None;
        let simulator = if cfg.is_demo() {
            // One more run: the simulator's ids never repeat an earlier
            // run's in this data directory.
            let run = crate::demo::next_run(&store)?;
            let args = crate::demo::simulator_args(&cfg, addr, run);
            let sim = crate::simulator::start(args).await?;
            // Orders an earlier run left unfinished go on.
            let saved = crate::demo::saved_state(&cfg.store.data_dir);
            match sim.restore(&saved).await {
                Ok(Some(r)) => tracing::info!(
                    orders = r.orders,
                    labels = r.labels,
                    "Demo: the simulator took back the orders and labels of the earlier run"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    path = %saved.display(),
                    error = %e,
                    "Demo: the simulator's saved state could not be read; the orders of earlier runs are unknown to it"
                ),
            }
            cfg.tiktok.base_url = sim.base_url();
            cfg.tiktok.auth_url = sim.base_url();
            cfg.tiktok.app_key = "demo-app-key".into();
            cfg.tiktok.app_secret = crate::tiktok::Secret::new("demo-app-secret");
            cfg.tiktok.service_id = "sim-service-id".into();
            cfg.tiktok.authorize_url = format!("{}/open/authorize", sim.base_url());
            cfg.tiktok.shops = sim
                .shops()
                .iter()
                .map(|(id, cipher)| crate::tiktok::ShopConfig {
                    id: id.clone(),
                    cipher: Some(cipher.clone()),
                    access_token: crate::tiktok::Secret::new("demo-access-token"),
                    refresh_token: crate::tiktok::Secret::new("sim-refresh-token"),
                    ..Default::default()
                })
                .collect();
            crate::demo::configure(&mut cfg, &sim);
            demo = Some(crate::demo::Info {
                time_scale: cfg.demo.time_scale,
                orders_per_second: cfg.demo.orders_per_second,
                run,
                simulator: sim.base_url(),
            });
            tracing::warn!(
                simulator = %sim.base_url(),
                orders_per_second = cfg.demo.orders_per_second,
                time_scale = cfg.demo.time_scale,
                run,
                "DEMO MODE: no TikTok credentials are configured, so orderflow runs the built-in TikTok Shop simulator with a demo order stream. Configure [tiktok] to talk to TikTok Shop."
            );
            Some(sim)
        } else {
            None
        };
        // Shop tokens are sealed at rest under the operator's key, kept
        // outside the data directory.
        let key_path = cfg.secrets.key_path(&cfg.store.data_dir);
        let sealer = crate::shops::secrets::Sealer::load_or_create(&key_path)
            .map_err(|e| Error::Shops(e.into()))?;
        // With an app configured the gateway runs even with no shop yet:
        // shops are connected while running.
        let sink = crate::shops::StoreSink::new(store.clone(), sealer.clone());
        let gateway = if cfg.tiktok.app_key.trim().is_empty() && cfg.tiktok.shops.is_empty() {
            None
        } else {
            Some(crate::tiktok::GatewayHandle::start(
                &cfg.tiktok,
                sink.clone(),
            )?)
        };
        if let Some(sim) = &simulator {
            crate::simulator::carriers::demo_config(&mut cfg.shipping, &sim.base_url());
            // The simulator's TikTok ids for the carriers its label API sells.
            for (carrier, id) in [
                ("USPS", "6617675021119438849"),
                ("UPS", "6617675021119438850"),
                ("FedEx", "6617675021119438851"),
            ] {
                cfg.shipping
                    .provider_ids
                    .entry(carrier.into())
                    .or_insert_with(|| id.into());
            }
        }
        let inventory = crate::inventory::Inventory::open(&store.db, cfg.inventory.clone())
            .map_err(|e| Error::Fulfilment(e.to_string()))?;
        inventory.use_flusher(store.committer.clone());
        let demo_skus = if simulator.is_some() {
            crate::demo::seed_stock(&inventory, &cfg.tiktok.base_url).await
        } else {
            Vec::new()
        };
        // Web push signs with the configured VAPID key, or the one kept
        // (sealed) in the store, made on first start.
        let push = crate::notify::push::PushBook::open(
            store.clone(),
            &sealer,
            cfg.notify.vapid_private_key.as_ref(),
        )
        .await?;
        let notifier = crate::notify::Notifier::with_push(cfg.notify.clone(), push)?;
        // The workflows in force, and every later load, save and
        // validation, name only channels the notifier has.
        registry.use_channels(crate::workflow::Channels::new(
            cfg.notify.channels.keys().cloned(),
        ));
        {
            let n = notifier.clone();
            inventory.on_low_stock(Arc::new(move |low: crate::inventory::LowStock| {
                let n = n.clone();
                actix::spawn(async move {
                    let text = format!("Low stock: {} has {} left", low.sku, low.available);
                    n.alert(
                        &text,
                        serde_json::json!({"sku": low.sku, "available": low.available}),
                    )
                    .await;
                });
            }));
        }
        let label_book = crate::shipping::LabelBook::new(store.clone(), &cfg.store.data_dir)
            .with_public_url(cfg.server.public_url.clone());
        crate::shipping::tracking::describe_metrics();
        let fulfil = std::sync::Arc::new(crate::runtime::effects::Fulfilment {
            inventory: inventory.clone(),
            router: crate::shipping::CarrierRouter::new(&cfg.shipping)
                .map_err(|e| Error::Fulfilment(e.to_string()))?,
            providers: crate::shipping::Providers::new(&cfg.shipping, gateway.clone())
                .map_err(|e| Error::Fulfilment(e.to_string()))?,
            labels: label_book.clone(),
            notifier: notifier.clone(),
            provider_ids: cfg.shipping.provider_ids.clone(),
        });
        let mut executor =
            Executor::new(cfg.actions.http_timeout.0).with_fulfilment(fulfil.clone());
        if let Some(g) = &gateway {
            executor = executor.with_gateway(g.clone());
        }
        let runtime = RuntimeHandle::start(
            store.clone(),
            registry.clone(),
            executor,
            clock.clone(),
            cfg.runtime.clone(),
            cfg.runtime.arbiters,
        );
        let mut intake = Intake::new(store.clone(), runtime.clone());
        if let Some(g) = &gateway {
            intake = intake.with_hydrator(crate::sync::Hydrator { gateway: g.clone() });
        }
        // Stock that arrives tells the orders waiting for it (`restock`),
        // oldest ship-by first, through intake like any other event.
        {
            // Spawned on the main arbiter, whoever changed the stock.
            let arbiter = actix::Arbiter::current();
            let (intake, clock) = (intake.clone(), clock.clone());
            inventory.on_restock(Arc::new(move |told: Vec<crate::inventory::restock::Restock>| {
                let (intake, now) = (intake.clone(), clock.now_ms());
                arbiter.spawn(async move {
                    use crate::workflow::value::Data;
                    for r in told {
                        let event = crate::runtime::event::OrderEvent {
                            id: format!("restock:{}:{}:{now}", r.sku, r.order_id),
                            order_id: r.order_id.clone(),
                            shop_id: r.shop_id,
                            source: crate::runtime::event::Source::System,
                            received_ms: now,
                            kind: crate::runtime::event::EventKind::Signal(Data::map([
                                ("type", Data::from("restock".to_string())),
                                ("sku_id", Data::from(r.sku.clone())),
                                ("available", Data::Int(r.available.min(i64::MAX as u64) as i64)),
                            ])),
                        };
                        if let Err(e) = intake.submit(event).await {
                            tracing::warn!(order_id = %r.order_id, sku = %r.sku, error = %e, "Could not tell an order that stock arrived; its wait times out instead");
                        }
                    }
                });
            }));
        }
        let pollers: Vec<crate::sync::poll::Poller> = match &gateway {
            None => Vec::new(),
            Some(g) => vec![crate::sync::poll::Poller {
                gateway: g.clone(),
                shop_ids: cfg
                    .tiktok
                    .shops
                    .iter()
                    .map(|s| s.id.clone())
                    .filter(|id| cfg.tenant.owns(id))
                    .collect(),
                intake: intake.clone(),
                store: store.clone(),
                config: cfg.sync.clone(),
                clock: clock.clone(),
            }],
        };
        let stop = CancellationToken::new();
        // Each shop's products and SKUs; every SKU a shop lists is one its
        // inventory push carries.
        let catalogue = match &gateway {
            None => None,
            Some(g) => {
                crate::catalogue::describe_metrics();
                let inv = inventory.clone();
                let sold_by: crate::catalogue::SoldBy = Arc::new(
                    move |info: &crate::catalogue::SkuInfo, shop: &str| {
                        let known = crate::inventory::KnownSku {
                            sku_id: info.sku_id.clone(),
                            seller_sku: info.seller_sku.clone(),
                            product_id: info.product_id.clone(),
                            name: info.name(),
                            virtual_bundle: !info.bundle.is_empty(),
                        };
                        if let Err(e) = inv.learn_sku(&known, shop) {
                            tracing::warn!(sku = %info.sku_id, error = %e, "Could not record the SKU a shop lists");
                        }
                    },
                );
                Some(
                    crate::catalogue::Catalogue::open(
                        &store.db,
                        g.clone(),
                        cfg.catalogue.clone(),
                        Some(sold_by),
                    )
                    .map_err(|e| Error::Fulfilment(e.to_string()))?,
                )
            }
        };
        let shops = match &gateway {
            None => None,
            Some(g) => {
                let shops = crate::shops::Shops::new(crate::shops::Parts {
                    store: store.clone(),
                    sealer: sealer.clone(),
                    gateway: g.clone(),
                    notifier: notifier.clone(),
                    config: cfg.shops.clone(),
                    authorize_url: cfg.tiktok.authorize_url.clone(),
                    service_id: cfg.tiktok.service_id.clone(),
                    public_url: cfg.server.public_url.clone(),
                    default_qps: crate::tiktok::ShopConfig::default().qps,
                    stop: stop.clone(),
                })?;
                // The demo's simulator is new at every start: only the
                // tokens it was started with are good.
                shops
                    .bootstrap(&cfg.tiktok.shops, simulator.is_some())
                    .await?;
                // A 105001 on any call marks the shop deauthorized, even if
                // TikTok's webhook is lost.
                sink.tell(&shops);
                Some(shops)
            }
        };
        // Per connected shop, now (before the server takes webhooks) and
        // whenever one is connected later:
        // the poller (the backup that makes sync converge when webhooks are
        // lost) and the inventory push. Spawned on this (the main)
        // arbiter, whoever connects the shop.
        if let (Some(shops), Some(g), Some(p), Some(cat)) =
            (&shops, &gateway, pollers.first(), &catalogue)
        {
            let arbiter = actix::Arbiter::current();
            let (g, p, inventory, cat) = (g.clone(), p.clone(), inventory.clone(), cat.clone());
            let tenant = cfg.tenant.clone();
            shops.start(Arc::new(move |shop: &str, token: CancellationToken| {
                // A connected shop another tenant owns is not polled,
                // pushed to or read here.
                if !tenant.owns(shop) {
                    metrics::counter!(crate::tenant::FOREIGN_TOTAL, "source" => "poll").increment(1);
                    tracing::warn!(shop_id = %shop, tenant = %tenant.id, "A connected shop this tenant does not own ([tenant] shops): not polled");
                    return;
                }
                let (g, p, inventory, cat, shop) = (
                    g.clone(),
                    p.clone(),
                    inventory.clone(),
                    cat.clone(),
                    shop.to_string(),
                );
                arbiter.spawn(async move {
                    drop(inventory.start_push(g, shop.clone(), token.clone()));
                    actix::spawn(cat.run(shop.clone(), token.clone()));
                    p.run(shop, token).await;
                });
            }))?;
            actix::spawn(shops.clone().run_keeper(stop.clone()));
            let s = shops.clone();
            actix::spawn(async move { s.check_all_subscriptions().await });
        }
        let ready = Arc::new(AtomicBool::new(false));
        let closing = CancellationToken::new();
        let retention = crate::retention::Retention::new(
            store.clone(),
            runtime.clone(),
            &cfg.store.data_dir,
            cfg.retention.clone(),
        );
        let state = AppState {
            intake: intake.clone(),
            runtime: runtime.clone(),
            store: store.clone(),
            registry: registry.clone(),
            ready: ready.clone(),
            metrics,
            webhook_auth: gateway.as_ref().map(|_| http::WebhookAuth {
                app_key: cfg.tiktok.app_key.clone(),
                app_secret: cfg.tiktok.app_secret.clone(),
                max_bytes: cfg.sync.webhook_max_bytes,
            }),
            pollers: pollers.clone(),
            // An empty token is no token (an empty environment variable).
            admin_token: cfg
                .server
                .admin_token
                .clone()
                .filter(|t| !t.expose().is_empty()),
            gateway: gateway.clone(),
            shops: shops.clone(),
            catalogue: catalogue.clone(),
            jobs: Default::default(),
            overview: Default::default(),
            at_risk_margin_s: cfg.runtime.at_risk_margin.0.as_secs() as i64,
            sla: cfg.sla.clone(),
            inventory: Some(inventory.clone()),
            people: crate::people::People::new(store.clone(), cfg.console.session_ttl.0),
            notifier: notifier.clone(),
            logins: Arc::new(http::auth::LoginLimiter::new()),
            hosts: Arc::new(http::auth::AllowedHosts::new(
                &cfg.server.allowed_hosts,
                cfg.listen_addr(),
            )),
            limits: http::limits::Limits {
                max_body: cfg.server.max_body_bytes,
                read_timeout: cfg.server.read_timeout.0,
                budget: Arc::new(http::limits::BodyBudget::new(cfg.server.body_memory_bytes)),
            },
            live_slots: Arc::new(tokio::sync::Semaphore::new(cfg.console.max_live_clients)),
            console: Arc::new(cfg.console.clone()),
            closing: closing.clone(),
            labels: Some(label_book.clone()),
            tenant: Arc::new(cfg.tenant.clone()),
            data_dir: cfg.store.data_dir.clone(),
            retention: retention.clone(),
            demo: demo.map(Arc::new),
            carrier_webhooks: http::labels::CarrierWebhooks {
                easypost: cfg.shipping.providers.easypost.webhook_secret.clone(),
                shippo: cfg.shipping.providers.shippo.webhook_secret.clone(),
            },
        };
        let replay_state = state.clone();
        let max_body = cfg.server.max_body_bytes;
        const HTTP_WORKERS: usize = 2;
        let connections = http::conn::Connections::new(cfg.server.read_timeout.0);
        let on_connect = connections.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(http::limits::bound_body))
                .app_data(web::Data::new(state.clone()))
                .app_data(web::PayloadConfig::new(max_body))
                .configure(http::routes())
        })
        .on_connect(move |io, ext| on_connect.on_connect(io, ext))
        .keep_alive(http::conn::KEEP_ALIVE)
        .workers(HTTP_WORKERS)
        .max_connections((cfg.server.max_connections / HTTP_WORKERS).max(1))
        .backlog(cfg.server.backlog)
        .client_request_timeout(cfg.server.read_timeout.0)
        .shutdown_timeout(cfg.runtime.shutdown_grace.0.as_secs().max(1))
        .disable_signals()
        .listen(listener)
        .map_err(|source| Error::Listen {
            addr: listen.clone(),
            source,
        })?;
        let server = server.run();
        let server_handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        // Connections idle between requests past the read deadline are shut.
        actix::spawn(connections.clone().watch(stop.clone()));
        // Webhooks kept while a shop was not connected (it may have been
        // connected since, by a pasted token or before a crash): delivered.
        if let Some(shops) = &shops {
            let (st, shops) = (replay_state, shops.clone());
            actix::spawn(async move {
                for id in shops.connected() {
                    if let Err(e) = crate::sync::webhook::replay_waiting(&st, &id).await {
                        tracing::warn!(shop_id = %id, error = %e, "Could not replay the webhooks kept for the shop");
                    }
                }
            });
        }
        if let (Some(g), Some(shops)) = (&gateway, &shops) {
            // The carrier → provider mapping against what TikTok offers,
            // reported at start (labels are checked again before purchase).
            // Rules may name their own provider id (`rule N (carrier)`).
            let mut ids = cfg.shipping.provider_ids.clone();
            for (i, r) in cfg.shipping.rules.iter().enumerate() {
                if let Some(id) = &r.shipping_provider_id {
                    ids.insert(format!("rule {i} ({})", r.carrier), id.clone());
                }
            }
            if !ids.is_empty() {
                let g = g.clone();
                let shops: Vec<String> = shops.connected();
                actix::spawn(async move {
                    match crate::shipping::tiktok_providers::check_mapping(&g, &shops, &ids).await {
                        Ok(found) => {
                            let bad: Vec<_> = found.iter().filter(|f| !f.offered).collect();
                            if bad.is_empty() {
                                tracing::info!(
                                    carriers = found.len(),
                                    "TikTok offers every configured shipping provider id"
                                );
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Could not read TikTok's shipping providers to check [shipping.provider_ids]; labels are still checked before purchase")
                        }
                    }
                });
            }
        }
        // The demo's stock is replenished now and then, as a seller would.
        if simulator.is_some() {
            actix::spawn(crate::demo::restock(
                inventory.clone(),
                demo_skus,
                stop.clone(),
            ));
        }
        // Lifecycle and at-risk gauges, and one warning per order about to
        // miss its ship-by deadline, from a periodic pass over the orders.
        actix::spawn(
            crate::runtime::deadlines::DeadlineWatcher {
                store: store.clone(),
                clock: clock.clone(),
                notifier: notifier.clone(),
                margin_s: cfg.runtime.at_risk_margin.0.as_secs() as i64,
                interval: cfg.runtime.deadline_check.0,
                time_scale: if simulator.is_some() {
                    cfg.demo.time_scale
                } else {
                    1.0
                },
            }
            .run(stop.clone()),
        );
        actix::spawn(timers::run(
            store.clone(),
            runtime.clone(),
            clock.clone(),
            stop.clone(),
        ));
        // Tracking by polling: the parcels still travelling are read from
        // their provider, so a lost tracking webhook still reaches the order.
        {
            let (book, providers, intake, clock, stop) = (
                label_book.clone(),
                fulfil.providers.clone(),
                intake.clone(),
                clock.clone(),
                stop.clone(),
            );
            let every = cfg.shipping.tracking_poll_interval;
            actix::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    let mut after: Option<String> = None;
                    loop {
                        match crate::shipping::tracking::poll_once(
                            &book,
                            &providers,
                            &intake,
                            after.as_deref(),
                            100,
                            clock.now_ms(),
                        )
                        .await
                        {
                            Ok((_, next)) => match next {
                                Some(n) => after = Some(n),
                                None => break,
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "Tracking poll failed");
                                break;
                            }
                        }
                    }
                }
            });
        }
        // Admission: the memory verdict and the backlog gauges every half
        // second; the dispatcher of waiting orders stops with the daemon.
        {
            let (intake, clock, stop) = (intake.clone(), clock.clone(), stop.clone());
            actix::spawn(async move {
                loop {
                    intake.admission().observe(clock.now_ms());
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                intake.close();
            });
        }
        // Retention: finished orders to the archive, dedupe keys and old
        // bulk jobs expired, every `[retention] check_every`.
        actix::spawn(retention.clone().run(clock.clone(), stop.clone()));
        // The inbox sweep: events stored but still not applied after a
        // minute are delivered again.
        {
            let (intake, clock, stop) = (intake.clone(), clock.clone(), stop.clone());
            actix::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    }
                    match intake.redeliver_stale(clock.now_ms(), 60_000).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            events = n,
                            "Redelivered events stored but not yet applied"
                        ),
                        Err(e) => tracing::warn!(error = %e, "Inbox sweep failed"),
                    }
                }
            });
        }
        // After a full disk: orders whose checkpoint was refused stopped
        // their actor; those with an effect in flight get it back, as in
        // recovery below.
        {
            let (guard, store, runtime, stop) = (
                store.guard.clone(),
                store.clone(),
                runtime.clone(),
                stop.clone(),
            );
            actix::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = guard.recovered() => {}
                    }
                    let running = store.running().unwrap_or_default();
                    tracing::info!(
                        orders = running.len(),
                        "Resuming orders with effects in flight after the full disk"
                    );
                    for id in &running {
                        let _ = runtime.wake(id).await;
                    }
                }
            });
        }
        // Recovery: orders with effects in flight get their actor back (it
        // re-issues them with the same keys); stored events not yet applied
        // are delivered; timers are simply due.
        let rec_runtime = runtime.clone();
        let rec_store = store.clone();
        let rec_ready = ready.clone();
        actix::spawn(async move {
            let started = std::time::Instant::now();
            let running = rec_store.running().unwrap_or_default();
            for id in &running {
                let _ = rec_runtime.wake(id).await;
            }
            let redelivered = intake.redeliver_inbox().await.unwrap_or(0);
            rec_ready.store(true, Ordering::Release);
            tracing::info!(
                resumed = running.len(),
                redelivered,
                took_ms = started.elapsed().as_millis() as u64,
                "Recovery finished; ready"
            );
        });
        // A running daemon whose tenant the shard map moved on stops.
        let superseded = Arc::new(std::sync::Mutex::new(None));
        let superseded_now = CancellationToken::new();
        if cfg.tenant.shard_map.is_some() {
            let (tenant, why, now, stop) = (
                cfg.tenant.clone(),
                superseded.clone(),
                superseded_now.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(tenant.shard_map_check.0) => {}
                    }
                    let t = tenant.clone();
                    let check =
                        tokio::task::spawn_blocking(move || crate::tenant::still_current(&t)).await;
                    if let Ok(Err(e)) = check {
                        tracing::error!(tenant = %tenant.id, error = %e, "Fenced by the shard map");
                        if let Ok(mut w) = why.lock() {
                            *w = Some(e);
                        }
                        now.cancel();
                        return;
                    }
                }
            });
        }
        tracing::info!(%addr, data_dir = %cfg.store.data_dir.display(), tenant = %cfg.tenant.id, epoch = cfg.tenant.epoch, "orderflow listening");
        Ok(Daemon {
            addr,
            runtime,
            store,
            registry,
            ready,
            stop,
            closing,
            server: server_handle,
            grace: cfg.runtime.shutdown_grace.0,
            simulator,
            simulator_state: crate::demo::saved_state(&cfg.store.data_dir),
            tenant: cfg.tenant.id.clone(),
            superseded,
            superseded_now,
        })
    }

    /// Stops intake, waits (up to the grace period) for in-flight steps to
    /// reach a checkpoint, flushes.
    pub async fn shutdown(self) {
        tracing::info!("Shutting down: intake stopped, letting in-flight steps finish");
        self.closing.cancel();
        self.server.stop(true).await;
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.runtime.effects_in_process() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        let left = self.runtime.effects_in_process();
        if left > 0 {
            tracing::warn!(
                effects = left,
                "Grace period over; unfinished effects are re-issued on the next start"
            );
        }
        if let Some(sim) = self.simulator {
            // After the last effect: the next start goes on from here.
            match sim.save(&self.simulator_state).await {
                Ok(orders) => tracing::info!(
                    orders,
                    path = %self.simulator_state.display(),
                    "Demo: the simulator's state is saved for the next start"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "Demo: the simulator's state could not be saved")
                }
            }
            sim.stop().await;
        }
        if let Err(e) = self.store.db.flush_async().await {
            tracing::error!(error = %e, "Final flush failed");
        }
        tracing::info!("Stopped");
    }
}

/// The daemon's whole life, for `orderflow run`.
pub async fn run(cfg: Config) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let daemon = Daemon::start(cfg, Clock::system()).await?;
    let guard = daemon.store.guard.clone();
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("Could not install signal handlers");
            daemon.shutdown().await;
            return Ok(());
        }
    };
    loop {
        tokio::select! {
            _ = guard.failed() => {
                daemon.shutdown().await;
                return Err(Error::StoreFailed);
            }
            _ = daemon.superseded_now.cancelled() => {
                let tenant = daemon.tenant.clone();
                let why = daemon.superseded.lock().ok().and_then(|mut w| w.take());
                daemon.shutdown().await;
                return match why {
                    Some(source) => Err(Error::Tenant { tenant, source }),
                    None => Ok(()),
                };
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match daemon.registry.reload().await {
                    Ok(keys) => tracing::info!(workflows = ?keys, "Workflows reloaded"),
                    Err(e) => tracing::warn!(error = %e, "Workflow reload rejected; the previous versions keep running"),
                }
            }
        }
    }
    daemon.shutdown().await;
    Ok(())
}
