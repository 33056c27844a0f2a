//! The command line: `orderflow <command>`. `main.rs` parses it and calls
//! [`run`]; everything a command does lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::workflow::{self, dryrun};

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "A durable order-workflow daemon for TikTok Shop sellers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The daemon's URL (for the client commands).
    #[arg(
        long,
        global = true,
        env = "ORDERFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The admin bearer token (the daemon's server.admin_token).
    #[arg(long, global = true, env = "ORDERFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables (client commands).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCmd {
    /// List orders, with filters.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        shop: Option<String>,
        #[arg(long)]
        sku: Option<String>,
        /// Only orders at risk of missing their ship-by deadline.
        #[arg(long)]
        at_risk: bool,
        /// Text match on order id or buyer.
        #[arg(long)]
        q: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this order id (the previous page's `next`).
        #[arg(long)]
        after: Option<String>,
        /// received (default), updated, ship_by, total or id; `-` first for
        /// largest first. Default: newest received first.
        #[arg(long, allow_hyphen_values = true)]
        sort: Option<String>,
        /// Only orders received since: a duration back from now (`24h`,
        /// `7d`), a date (`2026-12-01`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// The whole filtered list as CSV on standard output (every page).
        #[arg(long)]
        csv: bool,
    },
    /// One order: lifecycle, workflow step, what it waits for, last error.
    Show { id: String },
    /// The order's audit trail.
    History { id: String },
    /// Re-run the failed step.
    Resume {
        id: String,
        /// Buy a new label when the label step runs again, voiding the
        /// order's current one first (without it, the label is reused).
        #[arg(long)]
        new_label: bool,
    },
    /// Skip the current step.
    Skip { id: String },
    /// Approve a waiting approval.
    Approve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a waiting approval.
    Reject {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Put the order on hold.
    Hold {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Release a hold: an operator's, or one the workflow placed (it goes
    /// on at the `release` step of its `end: held`, or past its wait).
    /// With `--step`, go on from that step instead.
    Release {
        id: String,
        #[arg(long)]
        step: Option<String>,
        /// Buy a new label when the label step runs again, voiding the
        /// order's current one first (without it, the label is reused).
        #[arg(long)]
        new_label: bool,
    },
    /// Run the workflow from a step (after an exception, a failure, or a
    /// hold the workflow ended in).
    RunFrom {
        id: String,
        step: String,
        /// Buy a new label when the label step runs again, voiding the
        /// order's current one first (without it, the label is reused).
        #[arg(long)]
        new_label: bool,
    },
    /// Move the order to another workflow (`name`: the version in force)
    /// or version (`name@version`), from `--step`; without it, from the
    /// step it is at if the new one has it, else the first (a step must be
    /// named when steps that acted would run again). An order no workflow
    /// took starts on it once TikTok lets it ship.
    Move {
        id: String,
        workflow: String,
        #[arg(long)]
        step: Option<String>,
        /// Buy a new label when the label step runs again, voiding the
        /// order's current one first (without it, the label is reused).
        #[arg(long)]
        new_label: bool,
    },
    /// Cancel: stop the workflow and run its compensations, and cancel on
    /// TikTok with `--cancel-reason` (a kind: out_of_stock, pricing_error,
    /// address_undeliverable, buyer_requested, buyer_did_not_pay,
    /// potential_fraud; `orders cancel-reasons ID` lists those TikTok takes
    /// for the order). Without one, only orderflow's work stops, and only
    /// where TikTok takes no seller cancellation.
    Cancel {
        id: String,
        /// A note for the audit.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        cancel_reason: Option<String>,
    },
    /// The cancel reasons TikTok takes for this order now (its shop's
    /// market, its status).
    CancelReasons { id: String },
    /// Answer the buyer's pending cancellation request: approve it (TikTok
    /// cancels the order)...
    ApproveCancelRequest { id: String },
    /// ...or reject it with a reason kind (packed, agreement,
    /// invalid_reason, on_schedule; default packed).
    RejectCancelRequest {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InventoryCmd {
    /// Stock of every SKU: on hand, reserved, available.
    List,
    /// One SKU, per warehouse.
    Show { sku: String },
    /// Set a SKU's on-hand units (never below what is reserved).
    Set {
        sku: String,
        on_hand: u32,
        #[arg(long)]
        warehouse: Option<String>,
    },
    /// Add to (or, negative, take from) a SKU's on-hand units.
    Adjust {
        sku: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        #[arg(long)]
        warehouse: Option<String>,
    },
    /// Import stock from CSV: `sku_id,warehouse_id,on_hand[,product_id]`.
    Import { file: PathBuf },
    /// Compare our stock with TikTok's inventory search and report drift.
    Reconcile {
        #[arg(long)]
        shop: Option<String>,
        /// Push our numbers for every drifted SKU (ours win).
        #[arg(long)]
        fix: bool,
    },
    /// Changes by hand, imports, mappings and reconciles, newest first.
    Journal {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCmd {
    /// Read the shops' products and SKUs from TikTok now (every connected
    /// shop, or `--shop`).
    Sync {
        #[arg(long)]
        shop: Option<String>,
    },
    /// SKUs with their product, variant and price.
    List,
}

#[derive(Debug, Subcommand)]
pub enum MappingsCmd {
    /// Mapped SKUs: which items, how many units of each.
    List,
    /// SKUs mapped to no item: those orders are held for first.
    Unmapped,
    /// How one SKU resolves now, and its available units.
    Get { sku: String },
    /// Map a TikTok SKU to items: `ITEM` (1 unit), `ITEM*3` (a multipack),
    /// several for a bundle. Orders held for the SKU go on by themselves.
    Set {
        sku: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Unmap a SKU (reservations made keep their items).
    Remove { sku: String },
    /// Import `sku_id,item[,units]` rows (several rows of a SKU: a
    /// bundle), all or nothing.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ShopsCmd {
    /// Every shop: status, where its tokens came from and when they
    /// expire, last call, last webhook, orders today, webhooks.
    List,
    /// Print the seller authorization link (open it, log in as the seller,
    /// authorize: TikTok redirects to this daemon's /oauth/tiktok/callback
    /// and the shops are connected). With --code, exchange a code copied
    /// from the redirect address instead (a VM TikTok cannot reach).
    Connect {
        #[arg(long)]
        code: Option<String>,
    },
    /// Stop calling TikTok for a shop; its orders stay.
    Disconnect { shop: String },
    /// Connect a disconnected shop again with its stored tokens (a
    /// deauthorized one needs a new authorization: the link is printed).
    Reconnect { shop: String },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowsCmd {
    /// Versions known to the daemon.
    List,
    /// Re-read the workflows folder (a broken file is rejected).
    Reload,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon. With no configuration at all it starts on safe
    /// embedded defaults: sled under ./data, workflows from ./workflows,
    /// HTTP on 127.0.0.1:8080.
    Run {
        /// A TOML config file (layered over the defaults; the environment,
        /// ORDERFLOW_SECTION__KEY, and these flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address for the HTTP server (webhooks, API, metrics, health).
        #[arg(long)]
        listen: Option<String>,
        /// The sled data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The workflows folder.
        #[arg(long)]
        workflows: Option<PathBuf>,
    },
    /// Run the TikTok Shop simulator (and label API) as its own server.
    Simulator(Box<crate::simulator::SimulatorArgs>),
    /// Measure: the daemon as a child process against the simulator, or the
    /// engine alone; prints one table per scenario.
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Orders on a running daemon.
    #[command(subcommand)]
    Orders(OrdersCmd),
    /// Apply an intervention to many orders as a background job, and follow
    /// it: by ids, or by filter (e.g. every order in exception for a shop).
    Bulk {
        /// resume, skip, approve, reject, hold, release, cancel.
        action: String,
        /// Comma-separated order ids.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        shop: Option<String>,
        /// Only orders updated since (Unix ms).
        #[arg(long)]
        since: Option<i64>,
        #[arg(long)]
        reason: Option<String>,
        /// For cancel: the TikTok cancel reason kind, mapped per order.
        #[arg(long)]
        cancel_reason: Option<String>,
    },
    /// Workflows on a running daemon.
    #[command(subcommand)]
    Workflows(WorkflowsCmd),
    /// Stock on a running daemon.
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// TikTok shops on a running daemon: connect, list, disconnect.
    #[command(subcommand)]
    Shops(ShopsCmd),
    /// The shops' products and SKUs as TikTok lists them.
    #[command(subcommand)]
    Catalogue(CatalogueCmd),
    /// Which of the seller's items each TikTok SKU takes.
    #[command(subcommand)]
    Mappings(MappingsCmd),
    /// People who sign in to the console (and their API tokens) on a
    /// running daemon: admins only.
    #[command(subcommand)]
    Users(UsersCmd),
    /// The creator's figures: orders per day, fulfilment time, late
    /// dispatches, exceptions, top SKUs.
    Stats,
    /// Check workflow files: exit 0 when all are valid, 1 with every error
    /// printed as `file:line:col: message` otherwise. The channels
    /// `notify.send` steps name must be defined in the configuration, read
    /// as `run` reads it (the file, then ORDERFLOW_* variables).
    Validate {
        /// Files or folders (folders: every *.yaml/*.yml inside).
        #[arg(default_value = "workflows")]
        paths: Vec<PathBuf>,
        /// A TOML config file, for its [notify.channels].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Walk a workflow against a sample order with stubbed effects and print
    /// what would happen, step by step, and why.
    DryRun {
        /// The workflow file.
        #[arg(long)]
        workflow: PathBuf,
        /// An order in TikTok's order-detail JSON shape.
        #[arg(long)]
        order: PathBuf,
        /// Order events for `wait` steps, consumed in order (JSON objects,
        /// e.g. {"type":"status","status":"DELIVERED"}).
        #[arg(long = "event")]
        events: Vec<PathBuf>,
        /// How approval steps are decided.
        #[arg(long, value_enum, default_value_t = Approval::Approve)]
        approval: Approval,
        /// A step whose first call fails with an error kind, as
        /// `STEP=KIND` (e.g. `reserve=unmapped_sku`); repeatable.
        #[arg(long = "fail", value_parser = parse_fail)]
        fail: Vec<(String, String)>,
        /// The buyer asks to cancel as the workflow calls this step; the
        /// workflow's `on_cancel_request` answers.
        #[arg(long)]
        cancel_request_at: Option<String>,
    },
    /// Admin tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The store of a stopped daemon.
    #[command(subcommand)]
    Store(StoreCmd),
    /// The shard map (`[tenant] shard_map`): which epoch and shops each
    /// tenant has.
    #[command(subcommand)]
    Shards(ShardsCmd),
    /// Maintenance of a stopped daemon's store.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Back up the running daemon's store into a new folder on its machine
    /// (`POST /api/v1/admin/backup`): consistent, while it keeps running.
    Backup {
        /// The folder to create (absolute, new or empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a new data directory (no daemon needed).
    Restore {
        /// The backup's folder (with manifest.json).
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Rebuild the order indexes and counters from the checkpoints.
    Reindex {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Compare the order indexes and counters with a full recount of the
    /// checkpoints; exit 1 and list the differences when they disagree.
    CheckIndex {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShardsCmd {
    /// Set a tenant's epoch (never lower; raising it fences every copy
    /// that runs at an older one), and its shops and cell when given. The
    /// file is replaced atomically.
    Set {
        /// The shard map file.
        #[arg(long)]
        map: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        epoch: u64,
        /// The tenant's shops (repeatable; default: unchanged).
        #[arg(long = "shop")]
        shops: Vec<String>,
        /// Where it runs (default: unchanged).
        #[arg(long)]
        cell: Option<String>,
    },
    /// Print the map.
    Show {
        #[arg(long)]
        map: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Fence the store at EPOCH: from now on a daemon whose `[tenant]
    /// epoch` is below it refuses to run on it (the old copy of a tenant
    /// that moved). The daemon must be stopped.
    Fence {
        epoch: u64,
        /// A TOML config file (for `[store] data_dir`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The sled data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The tenant and epochs the store records.
    Show {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// A digest (SHA-256) of every tree, key, value and document of the
    /// store: equal at the source and after an import.
    Checksum {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write the store and its documents to one file (the daemon stopped).
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Read an export into a new, empty data directory; checked against
    /// the export's digest (nothing is kept when it does not match).
    Import {
        /// The export to read.
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a person. The password is read from ORDERFLOW_USER_PASSWORD or,
    /// without it, from one line of standard input (at least 10
    /// characters).
    Add {
        name: String,
        /// viewer (reads), operator (works orders and stock) or admin
        /// (also people, workflows, shops, backups).
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// Everyone, with their role and tokens.
    List,
    /// Change a role, set a new password (read as for `add`), disable or
    /// enable.
    Set {
        name: String,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        password: bool,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Remove a person with their tokens; their sessions end.
    Remove { name: String },
    /// A new API token for a person, printed once (use it as --token or
    /// ORDERFLOW_TOKEN: the CLI then acts as that person).
    Token {
        name: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Print a new random admin token (256 bits from a cryptographic generator, as
    /// 64 hex digits) for `server.admin_token`.
    New,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Approval {
    Approve,
    Reject,
    Timeout,
}

/// Runs a parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = crate::client::Client::new(&cli.url, cli.token.clone());
    let json_out = cli.json;
    match cli.command {
        Command::Orders(c) => remote(orders(&client, c, json_out)),
        Command::Bulk {
            action,
            ids,
            state,
            shop,
            since,
            reason,
            cancel_reason,
        } => remote(bulk(
            &client,
            action,
            ids,
            state,
            shop,
            since,
            (reason, cancel_reason),
            json_out,
        )),
        Command::Workflows(c) => remote(workflows(&client, c, json_out)),
        Command::Inventory(c) => remote(inventory(&client, c, json_out)),
        Command::Shops(c) => remote(shops(&client, c, json_out)),
        Command::Catalogue(c) => remote(catalogue(&client, c, json_out)),
        Command::Mappings(c) => remote(mappings(&client, c, json_out)),
        Command::Users(c) => remote(users(&client, c, json_out)),
        Command::Stats => remote(stats(&client, json_out)),
        Command::Run {
            config,
            listen,
            data_dir,
            workflows,
        } => run_daemon(config, listen, data_dir, workflows),
        Command::Simulator(args) => {
            init_tracing();
            let system = actix_rt::System::new();
            let stop = tokio_util::sync::CancellationToken::new();
            let s2 = stop.clone();
            system.block_on(async move {
                actix::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    s2.cancel();
                });
                crate::simulator::run(*args, stop).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadtest(args) => {
            // The tables are the output; the simulator's chatter is not.
            init_tracing_or("warn");
            crate::loadtest::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths, config } => validate(&paths, config.as_deref()),
        Command::DryRun {
            workflow,
            order,
            events,
            approval,
            fail,
            cancel_request_at,
        } => dry_run(
            &workflow,
            &order,
            &events,
            approval,
            fail,
            cancel_request_at,
        ),
        Command::Token(TokenCmd::New) => {
            println!("{}", new_token());
            Ok(ExitCode::SUCCESS)
        }
        Command::Store(cmd) => store_cmd(cmd),
        Command::Shards(cmd) => shards_cmd(cmd),
        Command::Admin(cmd) => admin_cmd(cmd),
        Command::Backup { to } => remote(backup(&client, to, json_out)),
        Command::Restore { from, data_dir } => {
            let started = std::time::Instant::now();
            match crate::store::backup::restore(&from, &data_dir) {
                Ok(r) => {
                    println!(
                        "restored {} into {} in {:.2} s: {}; indexes checked; taken {} (tenant {}, epoch {})",
                        from.display(),
                        r.data_dir.display(),
                        started.elapsed().as_secs_f64(),
                        r.summary,
                        chrono::DateTime::from_timestamp_millis(r.manifest.started_ms)
                            .map(|d| d.to_rfc3339())
                            .unwrap_or_default(),
                        r.manifest.tenant.as_deref().unwrap_or("-"),
                        r.manifest.epoch.unwrap_or(0),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

async fn backup(
    c: &crate::client::Client,
    to: PathBuf,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    let to = if to.is_absolute() {
        to
    } else {
        std::env::current_dir().map(|d| d.join(&to)).unwrap_or(to)
    };
    let v = c
        .post_waiting(
            "/api/v1/admin/backup",
            serde_json::json!({ "to": to }),
            std::time::Duration::from_secs(3600),
        )
        .await?;
    if json_out {
        print_json(&v);
        return Ok(());
    }
    println!(
        "backup in {}: {} bytes, sha256 {}; {} keys copied, {} changes during the copy, {} documents; took {:.0} ms, writes held {:.1} ms",
        to.display(),
        v["bytes"],
        v["sha256"].as_str().unwrap_or_default(),
        v["entries"],
        v["changes"],
        v["documents"],
        v["took_ms"].as_f64().unwrap_or(0.0),
        v["paused_ms"].as_f64().unwrap_or(0.0),
    );
    Ok(())
}

fn admin_cmd(cmd: AdminCmd) -> anyhow::Result<ExitCode> {
    let (AdminCmd::Reindex { config, data_dir } | AdminCmd::CheckIndex { config, data_dir }) = &cmd;
    let store = match open_store(config.clone(), data_dir.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let tree = &store.trees.orders;
    let started = std::time::Instant::now();
    match cmd {
        AdminCmd::Reindex { .. } => {
            match crate::store::index::rebuild(tree, &store.trees.archive) {
                Ok(n) => {
                    println!(
                        "indexed {n} orders in {:.2} s",
                        started.elapsed().as_secs_f64()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AdminCmd::CheckIndex { .. } => {
            match crate::store::index::check(tree, &store.trees.archive, 20) {
                Ok(bad) if bad.is_empty() => {
                    println!(
                        "indexes and counters match the checkpoints ({:.2} s)",
                        started.elapsed().as_secs_f64()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(bad) => {
                    for b in bad {
                        println!("{b}");
                    }
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

fn shards_cmd(cmd: ShardsCmd) -> anyhow::Result<ExitCode> {
    let r = match cmd {
        ShardsCmd::Set {
            map,
            tenant,
            epoch,
            shops,
            cell,
        } => crate::tenant::ShardMap::set(
            &map,
            &tenant,
            epoch,
            (!shops.is_empty()).then_some(shops),
            cell,
        ),
        ShardsCmd::Show { map } => crate::tenant::ShardMap::read(&map),
    };
    match r {
        Ok(m) => {
            for (id, e) in &m.tenants {
                println!(
                    "{id}: epoch {}, cell {}, shops {}",
                    e.epoch,
                    e.cell.as_deref().unwrap_or("-"),
                    e.shops.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// 32 bytes from rand's cryptographic generator (seeded by the OS), hex-encoded.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    init_tracing_or("info");
}

/// Logs to stderr; `RUST_LOG` filters (default `default`).
fn init_tracing_or(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Opens the store of a stopped daemon, named by a config or a folder.
fn open_store(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> Result<crate::store::Store, String> {
    let flags = crate::config::Overrides {
        listen: None,
        data_dir,
        workflows: None,
    };
    let cfg = crate::config::Config::load(config.as_deref(), std::env::vars(), &flags)
        .map_err(|e| e.to_string())?;
    let dir = &cfg.store.data_dir;
    if !dir.exists() {
        return Err(format!("no store at {}", dir.display()));
    }
    crate::store::Store::open(dir, cfg.store.cache_bytes, cfg.store.max_batch).map_err(|e| {
        format!(
            "cannot open the store at {} (is its daemon still running? stop it first): {e}",
            dir.display()
        )
    })
}

fn store_cmd(cmd: StoreCmd) -> anyhow::Result<ExitCode> {
    let (config, data_dir) = match &cmd {
        StoreCmd::Fence {
            config, data_dir, ..
        }
        | StoreCmd::Show { config, data_dir }
        | StoreCmd::Checksum { config, data_dir }
        | StoreCmd::Export {
            config, data_dir, ..
        }
        | StoreCmd::Import {
            config, data_dir, ..
        } => (config.clone(), data_dir.clone()),
    };
    if let StoreCmd::Import { input, .. } = &cmd {
        return import_store(config, data_dir, input);
    }
    if matches!(cmd, StoreCmd::Checksum { .. } | StoreCmd::Export { .. }) {
        return transfer_out(cmd, config, data_dir);
    }
    let store = match open_store(config, data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let system = actix_rt::System::new();
    let r = system.block_on(async move {
        match cmd {
            StoreCmd::Fence { epoch, .. } => crate::tenant::fence(&store, epoch).await,
            _ => crate::tenant::read(&store).map(|r| r.unwrap_or_default()),
        }
    });
    match r {
        Ok(r) => {
            println!(
                "tenant {:?}: last ran with epoch {}, fenced below epoch {}",
                r.id, r.epoch, r.fence
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The data directory a config (or the flag) names.
fn data_dir_of(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<PathBuf, String> {
    let flags = crate::config::Overrides {
        listen: None,
        data_dir,
        workflows: None,
    };
    crate::config::Config::load(config.as_deref(), std::env::vars(), &flags)
        .map(|c| c.store.data_dir)
        .map_err(|e| e.to_string())
}

/// `store checksum` and `store export`.
fn transfer_out(
    cmd: StoreCmd,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (store, dir) = match open_store(config.clone(), data_dir.clone())
        .and_then(|s| data_dir_of(config, data_dir).map(|d| (s, d)))
    {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let r = match cmd {
        StoreCmd::Export { out, .. } => std::fs::File::create(&out)
            .map_err(crate::store::transfer::Error::from)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                let s = crate::store::transfer::export(&store.db, &dir, &mut w)?;
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()?;
                Ok(s)
            }),
        _ => crate::store::transfer::checksum(&store.db, &dir),
    };
    Ok(printed(r))
}

/// Prints what a store command did, or its error: exit 0 or 1.
fn printed<T: std::fmt::Display, E: std::fmt::Display>(r: Result<T, E>) -> ExitCode {
    match r {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `store import`.
fn import_store(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    input: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let dir = match data_dir_of(config, data_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let r = std::fs::File::open(input)
        .map_err(crate::store::transfer::Error::from)
        .and_then(|f| crate::store::transfer::import(&mut std::io::BufReader::new(f), &dir));
    Ok(printed(r))
}

fn run_daemon(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    workflows: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    init_tracing();
    let flags = crate::config::Overrides {
        listen,
        data_dir,
        workflows,
    };
    let cfg = match crate::config::Config::load(config.as_deref(), std::env::vars(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let system = actix_rt::System::new();
    match system.block_on(crate::daemon::run(cfg)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // EX_TEMPFAIL: the service manager restarts the daemon.
        Err(e @ crate::daemon::Error::StoreFailed) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(75))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn validate(paths: &[PathBuf], config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let files = workflow::collect_files(paths)?;
    if files.is_empty() {
        eprintln!("no workflow files found");
        return Ok(ExitCode::from(1));
    }
    let cfg = match crate::config::Config::load(
        config,
        std::env::vars(),
        &crate::config::Overrides::default(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the configuration: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let channels = workflow::Channels::new(cfg.notify.channels.keys().cloned());
    let mut bad = 0usize;
    let mut warnings = 0usize;
    let mut sends = false;
    for f in &files {
        match workflow::load_file_with(f, Some(&channels)) {
            Ok(d) => {
                sends |= d.sends_notifications();
                println!(
                    "ok   {} ({}, {} steps)",
                    f.display(),
                    d.key(),
                    d.steps.len()
                );
                for w in &d.warnings {
                    warnings += 1;
                    println!("warning: {}:{w}", f.display());
                }
            }
            Err(workflow::Error::Invalid(reports)) => {
                for r in reports {
                    bad += r.diagnostics.len();
                    println!("{r}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("{e}");
            }
        }
    }
    if sends && channels.is_empty() {
        eprintln!(
            "note: the configuration defines no notification channel ([notify.channels]), so the channels notify.send steps name were not checked"
        );
    }
    if warnings > 0 {
        eprintln!("{warnings} warning(s)");
    }
    if bad == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{bad} error(s)");
        Ok(ExitCode::from(1))
    }
}

/// A command-line argument that does not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadArgument(String),
}

/// `STEP=KIND` for `dry-run --fail`.
fn parse_fail(s: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((st, k)) if !st.trim().is_empty() && !k.trim().is_empty() => {
            Ok((st.trim().to_string(), k.trim().to_string()))
        }
        _ => Err(Error::BadArgument(format!(
            "--fail takes STEP=KIND (e.g. reserve=unmapped_sku), not {s:?}"
        ))),
    }
}

fn dry_run(
    wf: &std::path::Path,
    order: &std::path::Path,
    events: &[PathBuf],
    approval: Approval,
    fail: Vec<(String, String)>,
    cancel_request_at: Option<String>,
) -> anyhow::Result<ExitCode> {
    let def = match workflow::load_file(wf) {
        Ok(d) => d,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let order_text =
        std::fs::read_to_string(order).map_err(|e| anyhow::anyhow!("{}: {e}", order.display()))?;
    let order = dryrun::parse_order(&order_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", order.display()))?;
    let mut evs = Vec::new();
    for p in events {
        let t = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        evs.push(workflow::value::Data::from_json(&v));
    }
    let choice = match approval {
        Approval::Approve => dryrun::ApprovalChoice::Approve,
        Approval::Reject => dryrun::ApprovalChoice::Reject,
        Approval::Timeout => dryrun::ApprovalChoice::Timeout,
    };
    let opts = dryrun::Options {
        approval: choice,
        fail,
        cancel_request_at,
    };
    let out = dryrun::run_with(&def, &order, &evs, &opts);
    for l in &out.lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a client command on a small runtime; errors are printed plainly.
/// `--since`: `24h` / `7d` back from now, `2026-12-01`, or RFC 3339; Unix
/// ms.
pub fn parse_since(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let now = chrono::Utc::now().timestamp_millis();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now - d.as_millis() as i64);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    Err(format!(
        "--since {t:?}: give a duration back from now (24h, 7d), a date (2026-12-01) or an RFC 3339 time"
    ))
}

/// A new password: `ORDERFLOW_USER_PASSWORD`, else one line of stdin.
fn read_password() -> Result<String, crate::client::Error> {
    if let Ok(p) = std::env::var("ORDERFLOW_USER_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| crate::client::Error::Decode(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn users(
    c: &crate::client::Client,
    cmd: UsersCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    use serde_json::json;
    let out = |v: &serde_json::Value, text: String| {
        if json_out {
            print_json(v);
        } else {
            println!("{text}");
        }
    };
    match cmd {
        UsersCmd::Add { name, role } => {
            let password = read_password()?;
            let v = c
                .post(
                    "/api/v1/users",
                    json!({"name": name, "role": role, "password": password}),
                )
                .await?;
            out(
                &v,
                format!("added {} ({})", cell(&v["name"]), cell(&v["role"])),
            );
        }
        UsersCmd::List => {
            let v = c.get("/api/v1/users").await?;
            let rows: Vec<Vec<String>> = v["users"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|u| {
                            vec![
                                cell(&u["name"]),
                                cell(&u["role"]),
                                if u["disabled"].as_bool() == Some(true) {
                                    "disabled".into()
                                } else {
                                    "active".into()
                                },
                                u["tokens"].as_array().map_or(0, Vec::len).to_string(),
                                cell(&u["created_by"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out(
                &v,
                table(&["name", "role", "status", "tokens", "added by"], &rows),
            );
        }
        UsersCmd::Set {
            name,
            role,
            password,
            disable,
            enable,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(r) = role {
                body.insert("role".into(), json!(r));
            }
            if password {
                body.insert("password".into(), json!(read_password()?));
            }
            if disable || enable {
                body.insert("disabled".into(), json!(disable));
            }
            let v = c
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/users/{}", urlencode(&name)),
                    Some(serde_json::Value::Object(body)),
                )
                .await?;
            out(&v, format!("{}: {}", cell(&v["name"]), cell(&v["role"])));
        }
        UsersCmd::Remove { name } => {
            let v = c
                .call(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/users/{}", urlencode(&name)),
                    None,
                )
                .await?;
            out(&v, format!("removed {name}"));
        }
        UsersCmd::Token { name, label } => {
            let v = c
                .post(
                    &format!("/api/v1/users/{}/tokens", urlencode(&name)),
                    json!({ "label": label }),
                )
                .await?;
            out(
                &v,
                format!(
                    "{}\n(token {} for {}: shown once, only its hash is kept)",
                    cell(&v["token"]),
                    cell(&v["id"]),
                    cell(&v["user"])
                ),
            );
        }
    }
    Ok(())
}

fn remote(
    f: impl std::future::Future<Output = Result<(), crate::client::Error>>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(f) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn orders(
    c: &crate::client::Client,
    cmd: OrdersCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    use serde_json::json;
    let act = |id: &str, name: &str| format!("/api/v1/orders/{id}/actions/{name}");
    let done = |v: serde_json::Value| {
        if json_out {
            print_json(&v);
        } else {
            println!("{} {}: accepted", cell(&v["action"]), cell(&v["order_id"]));
        }
    };
    match cmd {
        OrdersCmd::List {
            state,
            shop,
            sku,
            at_risk,
            q,
            limit,
            after,
            sort,
            since,
            csv,
        } => {
            let since_ms = match since.as_deref().map(parse_since).transpose() {
                Ok(v) => v,
                Err(e) => return Err(crate::client::Error::Decode(e)),
            };
            let mut qs = vec![format!("limit={limit}")];
            for (k, v) in [
                ("state", state),
                ("shop", shop),
                ("sku", sku),
                ("q", q),
                ("after", after),
                ("sort", sort),
                ("created_from", since_ms.map(|m| m.to_string())),
            ] {
                if let Some(v) = v {
                    qs.push(format!("{k}={}", urlencode(&v)));
                }
            }
            if at_risk {
                qs.push("at_risk=true".into());
            }
            if csv {
                qs.push("format=csv".into());
                let text = c
                    .get_text(&format!("/api/v1/orders?{}", qs.join("&")))
                    .await?;
                print!("{text}");
                return Ok(());
            }
            let v = c.get(&format!("/api/v1/orders?{}", qs.join("&"))).await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v["orders"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| {
                            vec![
                                cell(&o["order_id"]),
                                o["received_ms"]
                                    .as_i64()
                                    .and_then(chrono::DateTime::from_timestamp_millis)
                                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                    .unwrap_or_default(),
                                cell(&o["shop_id"]),
                                cell(&o["lifecycle"]),
                                cell(&o["tiktok_status"]),
                                cell(&o["time_left_s"]),
                                cell(&o["last_error"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "{}",
                table(
                    &["order", "received", "shop", "state", "tiktok", "left_s", "error"],
                    &rows
                )
            );
            if let Some(n) = v["next"].as_str() {
                println!("(more: --after {n})");
            }
        }
        OrdersCmd::Show { id } => {
            let v = c.get(&format!("/api/v1/orders/{id}")).await?;
            if json_out {
                print_json(&v);
            } else {
                for k in [
                    "order_id",
                    "shop_id",
                    "lifecycle",
                    "tiktok_status",
                    "workflow",
                    "instance_state",
                    "step",
                    "waiting",
                    "last_error",
                    "in_flight",
                    "cancel_request",
                    "returns",
                ] {
                    println!("{k:>15}: {}", cell(&v[k]));
                }
                // What can be done now (the server decides), and why not.
                let offers = v["interventions"].as_array().cloned().unwrap_or_default();
                let can: Vec<String> = offers
                    .iter()
                    .filter(|o| o["allowed"] == true)
                    .map(|o| match o["needs"].as_str() {
                        Some(n) => format!("{} <{n}>", cell(&o["action"])),
                        None => cell(&o["action"]),
                    })
                    .collect();
                println!("{:>15}: {}", "can", can.join(", "));
                for o in offers.iter().filter(|o| o["allowed"] == true) {
                    let extra = match (o["steps"].as_array(), o["workflows"].as_array()) {
                        (_, Some(w)) => format!(
                            " (workflows: {})",
                            w.iter().map(cell).collect::<Vec<_>>().join(", ")
                        ),
                        (Some(st), None) => format!(
                            " (steps: {})",
                            st.iter().map(cell).collect::<Vec<_>>().join(", ")
                        ),
                        _ => String::new(),
                    };
                    println!(
                        "{:>15}  {}: {}{extra}",
                        "",
                        cell(&o["action"]),
                        cell(&o["why"])
                    );
                }
            }
        }
        OrdersCmd::History { id } => {
            let v = c.get(&format!("/api/v1/orders/{id}/audit")).await?;
            if json_out {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| {
                                vec![
                                    cell(&e["seq"]),
                                    cell(&e["at_ms"]),
                                    cell(&e["source"]),
                                    cell(&e["kind"]),
                                    cell(&e["detail"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{}",
                    table(&["seq", "at_ms", "source", "kind", "detail"], &rows)
                );
            }
        }
        OrdersCmd::Resume { id, new_label } => done(
            c.post(&act(&id, "resume"), json!({"new_label": new_label}))
                .await?,
        ),
        OrdersCmd::Skip { id } => done(c.post(&act(&id, "skip"), json!({})).await?),
        OrdersCmd::Approve { id, note } => done(
            c.post(&act(&id, "approve"), json!({"note": note, "by": "cli"}))
                .await?,
        ),
        OrdersCmd::Reject { id, note } => done(
            c.post(&act(&id, "reject"), json!({"note": note, "by": "cli"}))
                .await?,
        ),
        OrdersCmd::Hold { id, reason } => {
            done(c.post(&act(&id, "hold"), json!({"reason": reason})).await?)
        }
        OrdersCmd::Release {
            id,
            step,
            new_label,
        } => done(
            c.post(
                &act(&id, "release"),
                json!({"step": step, "new_label": new_label}),
            )
            .await?,
        ),
        OrdersCmd::RunFrom {
            id,
            step,
            new_label,
        } => done(
            c.post(
                &act(&id, "run_from"),
                json!({"step": step, "new_label": new_label}),
            )
            .await?,
        ),
        OrdersCmd::Move {
            id,
            workflow,
            step,
            new_label,
        } => done(
            c.post(
                &act(&id, "move"),
                json!({"workflow": workflow, "step": step, "new_label": new_label}),
            )
            .await?,
        ),
        OrdersCmd::Cancel {
            id,
            reason,
            cancel_reason,
        } => done(
            c.post(
                &act(&id, "cancel"),
                json!({"reason": reason, "cancel_reason": cancel_reason}),
            )
            .await?,
        ),
        OrdersCmd::CancelReasons { id } => {
            let v = c
                .get(&format!("/api/v1/orders/{id}/cancel-reasons"))
                .await?;
            if json_out {
                print_json(&v);
            } else if v["cancellable_on_tiktok"] == true {
                let rows: Vec<Vec<String>> = v["reasons"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|r| vec![cell(&r["kind"]), cell(&r["key"]), cell(&r["text"])])
                            .collect()
                    })
                    .unwrap_or_default();
                println!("{}", table(&["kind", "tiktok key", "text"], &rows));
            } else {
                println!("not cancellable on TikTok: {}", cell(&v["why"]));
            }
        }
        OrdersCmd::ApproveCancelRequest { id } => done(
            c.post(&act(&id, "approve_cancel_request"), json!({"by": "cli"}))
                .await?,
        ),
        OrdersCmd::RejectCancelRequest { id, reason } => done(
            c.post(
                &act(&id, "reject_cancel_request"),
                json!({"by": "cli", "reason": reason}),
            )
            .await?,
        ),
    }
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn bulk(
    c: &crate::client::Client,
    action: String,
    ids: Vec<String>,
    state: Option<String>,
    shop: Option<String>,
    since: Option<i64>,
    (reason, cancel_reason): (Option<String>, Option<String>),
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use serde_json::json;
    let body = if ids.is_empty() {
        json!({"action": action, "reason": reason, "cancel_reason": cancel_reason, "filter": {"state": state, "shop": shop, "updated_from": since}})
    } else {
        json!({"action": action, "reason": reason, "cancel_reason": cancel_reason, "ids": ids})
    };
    let job = c.post("/api/v1/bulk", body).await?;
    let id = job["job"].as_str().unwrap_or_default().to_string();
    loop {
        let v = c.get(&format!("/api/v1/bulk/{id}")).await?;
        if v["state"] == "finished" {
            if json_out {
                print_json(&v);
            } else {
                println!(
                    "{id}: {} of {} succeeded, {} failed",
                    v["succeeded"], v["total"], v["failed"]
                );
                for r in v["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["ok"] == false)
                {
                    println!(
                        "  {}: {}",
                        crate::client::cell(&r["order_id"]),
                        crate::client::cell(&r["message"])
                    );
                }
            }
            return Ok(());
        }
        if !json_out {
            eprintln!("{id}: {}/{}", v["done"], v["total"]);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn workflows(
    c: &crate::client::Client,
    cmd: WorkflowsCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    let v = match cmd {
        WorkflowsCmd::List => c.get("/api/v1/workflows").await?,
        WorkflowsCmd::Reload => {
            c.post("/api/v1/workflows/reload", serde_json::json!({}))
                .await?
        }
    };
    if json_out {
        print_json(&v);
    } else if let Some(a) = v.as_array() {
        let rows: Vec<Vec<String>> = a
            .iter()
            .map(|w| {
                vec![
                    cell(&w["name"]),
                    cell(&w["version"]),
                    cell(&w["current"]),
                    cell(&w["orders"]),
                    cell(&w["path"]),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["name", "version", "current", "orders", "path"], &rows)
        );
    } else {
        println!("reloaded: {}", cell(&v["loaded"]));
    }
    Ok(())
}

async fn stats(c: &crate::client::Client, json_out: bool) -> Result<(), crate::client::Error> {
    use crate::client::cell;
    let v = c.get("/api/v1/stats").await?;
    if json_out {
        print_json(&v);
        return Ok(());
    }
    println!("orders:              {}", cell(&v["total"]));
    println!("by state:            {}", cell(&v["by_lifecycle"]));
    println!(
        "at risk / late:      {} / {}",
        cell(&v["at_risk"]),
        cell(&v["late"])
    );
    println!("exceptions open:     {}", cell(&v["exceptions_open"]));
    println!(
        "fulfilment p50/p95:  {} s / {} s",
        cell(&v["fulfillment_p50_s"]),
        cell(&v["fulfillment_p95_s"])
    );
    println!(
        "SLA p50/p95:         {} s / {} s (eligible to ship → ship call; target {} s)",
        cell(&v["eligible_fulfillment_p50_s"]),
        cell(&v["eligible_fulfillment_p95_s"]),
        cell(&v["fulfillment_target_s"])
    );
    println!("late-dispatch rate:  {}", cell(&v["late_dispatch_rate"]));
    println!("orders per day:      {}", cell(&v["orders_per_day"]));
    println!("top SKUs:            {}", cell(&v["top_skus"]));
    Ok(())
}

async fn catalogue(
    c: &crate::client::Client,
    cmd: CatalogueCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    use serde_json::json;
    match cmd {
        CatalogueCmd::Sync { shop } => {
            let q = shop
                .map(|s| format!("?shop={}", urlencode(&s)))
                .unwrap_or_default();
            let v = c
                .post(&format!("/api/v1/catalogue/sync{q}"), json!({}))
                .await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            for r in v["synced"].as_array().into_iter().flatten() {
                match r.get("error") {
                    Some(e) => println!("{}: {}", cell(&r["shop_id"]), cell(e)),
                    None => println!(
                        "{}: {} products, {} SKUs ({} read in full)",
                        cell(&r["shop_id"]),
                        cell(&r["products"]),
                        cell(&r["skus"]),
                        cell(&r["detailed"])
                    ),
                }
            }
        }
        CatalogueCmd::List => {
            let v = c.get("/api/v1/catalogue?limit=500").await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v["skus"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        cell(&s["sku_id"]),
                        cell(&s["seller_sku"]),
                        cell(&s["name"]),
                        format!("{} {}", cell(&s["price"]), cell(&s["currency"])),
                        cell(&s["shops"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["sku", "seller sku", "name", "price", "shops"], &rows)
            );
        }
    }
    Ok(())
}

/// `ITEM` or `ITEM*N`.
fn parse_component(s: &str) -> Result<serde_json::Value, crate::client::Error> {
    let (item, units) = match s.rsplit_once('*') {
        Some((i, n)) => match n.trim().parse::<u32>() {
            Ok(n) => (i.trim(), n),
            Err(_) => {
                return Err(crate::client::Error::Api {
                    status: 0,
                    message: format!("{s:?}: write ITEM or ITEM*UNITS, units a whole number"),
                })
            }
        },
        None => (s.trim(), 1),
    };
    Ok(serde_json::json!({ "item": item, "units": units }))
}

async fn mappings(
    c: &crate::client::Client,
    cmd: MappingsCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    let comps = |v: &serde_json::Value| -> String {
        v["components"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| match c["units"].as_u64() {
                Some(1) => cell(&c["item"]),
                _ => format!("{}*{}", cell(&c["item"]), cell(&c["units"])),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let v = match cmd {
        MappingsCmd::List => c.get("/api/v1/mappings?limit=1000").await?,
        MappingsCmd::Unmapped => c.get("/api/v1/mappings/unmapped?limit=1000").await?,
        MappingsCmd::Get { sku } => {
            c.get(&format!("/api/v1/mappings/{}", urlencode(&sku)))
                .await?
        }
        MappingsCmd::Set { sku, items } => {
            let components = items
                .iter()
                .map(|i| parse_component(i))
                .collect::<Result<Vec<_>, _>>()?;
            c.call(
                reqwest::Method::PUT,
                &format!("/api/v1/mappings/{}", urlencode(&sku)),
                Some(serde_json::json!({ "components": components })),
            )
            .await?
        }
        MappingsCmd::Remove { sku } => {
            c.call(
                reqwest::Method::DELETE,
                &format!("/api/v1/mappings/{}", urlencode(&sku)),
                None,
            )
            .await?
        }
        MappingsCmd::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| crate::client::Error::Api {
                status: 0,
                message: format!("{}: {e}", file.display()),
            })?;
            c.post_text("/api/v1/mappings/import", text).await?
        }
    };
    if json_out {
        print_json(&v);
        return Ok(());
    }
    if let Some(list) = v.get("mappings").and_then(|m| m.as_array()) {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| vec![cell(&m["sku_id"]), comps(m), cell(&m["source"])])
            .collect();
        println!("{}", table(&["sku", "items", "source"], &rows));
    } else if let Some(list) = v.get("unmapped").and_then(|m| m.as_array()) {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| {
                vec![
                    cell(&m["sku_id"]),
                    cell(&m["seller_sku"]),
                    cell(&m["name"]),
                    cell(&m["orders_waiting"]),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["sku", "seller sku", "name", "orders held"], &rows)
        );
    } else if let Some(list) = v.get("mapped").and_then(|m| m.as_array()) {
        println!("mapped {} SKUs", list.len());
    } else if v.get("removed").is_some() {
        println!(
            "{}",
            if v["removed"].as_bool() == Some(true) {
                "unmapped"
            } else {
                "it had no mapping"
            }
        );
    } else {
        println!(
            "{} → {} ({}, {} available)",
            cell(&v["sku_id"]),
            comps(&v),
            cell(&v["source"]),
            cell(&v["available"])
        );
    }
    Ok(())
}

async fn shops(
    c: &crate::client::Client,
    cmd: ShopsCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    use serde_json::json;
    let v = match cmd {
        ShopsCmd::List => c.get("/api/v1/shops").await?,
        ShopsCmd::Connect { code: None } => {
            let v = c.post("/api/v1/shops/connect", json!({})).await?;
            if !json_out {
                println!("Open this link as the seller and authorize the app (valid for an hour, once):\n\n  {}\n\nTikTok then sends the browser to this daemon's /oauth/tiktok/callback and the shops connect. If TikTok cannot reach the daemon, copy the `code` from the address it redirects to and run `orderflow shops connect --code CODE`.", cell(&v["url"]));
                return Ok(());
            }
            v
        }
        ShopsCmd::Connect { code: Some(code) } => {
            c.post("/api/v1/shops/connect", json!({ "code": code }))
                .await?
        }
        ShopsCmd::Disconnect { shop } => {
            c.post(
                &format!("/api/v1/shops/{}/disconnect", urlencode(&shop)),
                json!({}),
            )
            .await?
        }
        ShopsCmd::Reconnect { shop } => {
            c.post(
                &format!("/api/v1/shops/{}/reconnect", urlencode(&shop)),
                json!({}),
            )
            .await?
        }
    };
    if json_out {
        print_json(&v);
        return Ok(());
    }
    if let Some(list) = v["connected"].as_array() {
        for s in list {
            println!(
                "connected {} ({}, {}); {} kept webhooks replayed",
                cell(&s["id"]),
                cell(&s["name"]),
                cell(&s["region"]),
                cell(&s["replayed_webhooks"])
            );
        }
        return Ok(());
    }
    let Some(list) = v["shops"].as_array() else {
        println!("{} {}", cell(&v["id"]), cell(&v["status"]));
        return Ok(());
    };
    let when = |s: &serde_json::Value| {
        s.as_i64()
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                cell(&s["id"]),
                cell(&s["name"]),
                cell(&s["status"]),
                cell(&s["token_source"]),
                when(&s["access_expires_at"]),
                when(&s["refresh_expires_at"]),
                when(&s["last_call"]),
                cell(&s["orders_today"]),
                cell(&s["health"]),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "shop",
                "name",
                "status",
                "tokens from",
                "access expires",
                "authorization expires",
                "last call",
                "orders today",
                "health",
            ],
            &rows
        )
    );
    println!("webhooks: {}", cell(&v["webhooks"]));
    Ok(())
}

async fn inventory(
    c: &crate::client::Client,
    cmd: InventoryCmd,
    json_out: bool,
) -> Result<(), crate::client::Error> {
    use crate::client::{cell, table};
    use serde_json::json;
    let v = match cmd {
        InventoryCmd::List => c.get("/api/v1/inventory").await?,
        InventoryCmd::Show { sku } => {
            c.get(&format!("/api/v1/inventory/{}", urlencode(&sku)))
                .await?
        }
        InventoryCmd::Set {
            sku,
            on_hand,
            warehouse,
        } => {
            c.post(
                &format!("/api/v1/inventory/{}", urlencode(&sku)),
                json!({"on_hand": on_hand, "warehouse_id": warehouse}),
            )
            .await?
        }
        InventoryCmd::Adjust {
            sku,
            delta,
            warehouse,
        } => {
            c.post(
                &format!("/api/v1/inventory/{}", urlencode(&sku)),
                json!({"delta": delta, "warehouse_id": warehouse}),
            )
            .await?
        }
        InventoryCmd::Journal { limit } => {
            let v = c
                .get(&format!("/api/v1/inventory/journal?limit={limit}"))
                .await?;
            if json_out {
                print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        cell(&e["at_ms"]),
                        cell(&e["kind"]),
                        cell(&e["subject"]),
                        cell(&e["detail"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                crate::client::table(&["at (ms)", "kind", "subject", "detail"], &rows)
            );
            return Ok(());
        }
        InventoryCmd::Reconcile { shop, fix } => {
            let q = shop
                .map(|s| format!("?shop={}", urlencode(&s)))
                .unwrap_or_default();
            let path = format!("/api/v1/inventory/reconcile{q}");
            let v = if fix {
                c.post(&path, json!({})).await?
            } else {
                c.get(&path).await?
            };
            if json_out {
                print_json(&v);
            } else {
                println!(
                    "checked {} SKUs, {} drifts",
                    cell(&v["checked"]),
                    v["drifts"].as_array().map_or(0, |a| a.len())
                );
                let rows: Vec<Vec<String>> = v["drifts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            cell(&d["sku"]),
                            cell(&d["warehouse_id"]),
                            cell(&d["ours"]),
                            cell(&d["theirs"]),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    println!("{}", table(&["sku", "warehouse", "ours", "tiktok"], &rows));
                }
                for k in ["missing_on_tiktok", "without_product", "fixed", "not_fixed"] {
                    if v[k].as_array().is_some_and(|a| !a.is_empty()) {
                        println!("{k}: {}", cell(&v[k]));
                    }
                }
            }
            return Ok(());
        }
        InventoryCmd::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| crate::client::Error::Api {
                status: 0,
                message: format!("{}: {e}", file.display()),
            })?;
            c.post_text("/api/v1/inventory/import", text).await?
        }
    };
    if json_out {
        print_json(&v);
        return Ok(());
    }
    let skus: Vec<serde_json::Value> = match v.get("skus").and_then(|s| s.as_array()) {
        Some(a) => a.clone(),
        None if v.get("sku").is_some() => vec![v.clone()],
        None => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return Ok(());
        }
    };
    let rows: Vec<Vec<String>> = skus
        .iter()
        .map(|s| {
            vec![
                cell(&s["sku"]),
                cell(&s["product_id"]),
                cell(&s["on_hand"]),
                cell(&s["reserved"]),
                cell(&s["available"]),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["sku", "product", "on_hand", "reserved", "available"],
            &rows
        )
    );
    Ok(())
}
