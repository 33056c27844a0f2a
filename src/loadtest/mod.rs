//! `orderflow loadtest`: how fast and how big orderflow goes, measured the
//! way it runs in production, and printed as one table per scenario.
//!
//! The daemon under test is a CHILD PROCESS (`orderflow run` with a
//! generated TOML config and sled in a temp dir, on loopback), so its peak
//! RSS can be read from `/proc/<pid>/status` (`VmHWM`) and nothing the load
//! generator allocates is counted against it. TikTok is the simulator
//! ([`crate::simulator`]), started in this process; its label API sells the
//! labels. Scenarios:
//!
//! - [`steady`]: a constant arrival rate of signed webhooks through the
//!   standard workflow, TikTok's rate limit high enough not to bind.
//! - [`spike`]: many orders for ONE shop in a short time at TikTok's real
//!   50 QPS per shop: drain time against the bound the rate limit sets.
//! - [`backlog`]: a store of passivated orders waiting for delivery, seeded
//!   straight into sled; RSS, disk, time to `/readyz` and to the first order
//!   resumed after a start.
//! - [`max`]: the arrival rate stepped up until p99 receipt → fulfilment
//!   passes a limit.
//! - [`engine`]: the engine alone, in this process: short durable flows.
//! - [`retention`]: a store of many days of finished orders, seeded
//!   straight into sled; one retention pass, archived orders read by id
//!   before and after a SIGKILL.
//!
//! What is measured, and where (the order scenarios, [`drive`]):
//! - *receipt*: the moment the load generator sends an order's webhook;
//! - *webhook ack*: from then until the daemon's 200 (it answers after the
//!   event is durably in its inbox);
//! - *fulfilment initiated*: the simulator's ledger entry of the order's
//!   ship / mark-shipped call (recorded as TikTok receives it, on the same
//!   machine clock), so receipt → fulfilment covers hydration, stock,
//!   carrier choice, the label purchase and the checkpoints in between;
//! - *completed*: an order whose ship call TikTok has recorded;
//! - *TikTok calls*: every call the simulator's TikTok API counted (order
//!   detail, ships, inventory pushes, 429s included), per order;
//! - *checkpoint batches, mean batch size, flushes*: the daemon's
//!   `orderflow_checkpoint_batch_size` and `orderflow_checkpoint_flush_seconds`
//!   histograms ([`crate::metrics`]), differenced over the run;
//!   also the mean time one group commit took to apply and flush;
//! - *daemon CPU per order*: its user + system time over the run
//!   (`/proc/<pid>/stat`), over the orders;
//! - *peak RSS*: the daemon's `VmHWM`.
//!
//! Speed figures are printed, never asserted: `tests/loadtest.rs` runs each
//! scenario at a tiny size and checks only that every order completed.

pub mod backlog;
pub mod daemon;
pub mod drive;
pub mod engine;
pub mod max;
pub mod retention;
pub mod spike;
pub mod steady;

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can stop a load test.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the simulator: {0}")]
    Simulator(#[from] crate::simulator::Error),
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("unexpected answer from {url}: {detail}")]
    Answer { url: String, detail: String },
    #[error("the daemon: {0}")]
    Daemon(String),
    #[error("the store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("encoding a record: {0}")]
    Codec(#[from] crate::store::codec::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("the workflow: {0}")]
    Workflow(#[from] crate::workflow::Error),
    #[error("the runtime: {0}")]
    Runtime(#[from] crate::runtime::Error),
    #[error("{0}")]
    Failed(String),
    #[error("invalid options: {0}")]
    Options(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// An HTTP client for the load generator: many connections, generous
/// timeouts (a busy machine is the point).
pub(crate) fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|source| Error::Http {
            url: "(client)".into(),
            source,
        })
}

/// Sends `req` and reads a 2xx answer's body as JSON.
pub(crate) async fn json(req: reqwest::RequestBuilder, url: &str) -> Result<serde_json::Value> {
    answer(req, url).await?.json().await.map_err(http(url))
}

/// Sends `req` and reads a 2xx answer's body as text.
pub(crate) async fn text(req: reqwest::RequestBuilder, url: &str) -> Result<String> {
    answer(req, url).await?.text().await.map_err(http(url))
}

async fn answer(req: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response> {
    req.send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(http(url))
}

fn http(url: &str) -> impl Fn(reqwest::Error) -> Error + '_ {
    move |source| Error::Http {
        url: url.into(),
        source,
    }
}

/// Which scenario `orderflow loadtest` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A constant arrival rate through the standard workflow.
    Steady,
    /// Many orders for one shop at TikTok's 50 QPS: drain time vs the bound.
    Spike,
    /// A store of waiting orders: RSS, disk, time to ready and to resume.
    Backlog,
    /// The arrival rate stepped up until p99 receipt→fulfilment passes a limit.
    Max,
    /// The engine alone: short durable flows, in this process.
    Engine,
    /// A store of many days of finished orders: one retention pass.
    Retention,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// `orderflow loadtest`: the flags. Unset sizes take each scenario's
/// default, the sizes of the performance targets.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadtestArgs {
    /// The scenario.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Orders: steady, how many webhooks (default: --rate × --duration,
    /// 30,000); spike, the spike's size (10,000); backlog, orders waiting
    /// (1,000,000).
    #[arg(long)]
    pub orders: Option<usize>,
    /// Arrivals per second: steady's constant rate, max's first step
    /// (default 500).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long arrivals last: steady's run (default 60s), spike's spread
    /// (60s), each step of max (60s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// max: the rate added after each step that met the limit.
    #[arg(long, default_value_t = 500.0)]
    pub step: f64,
    /// max: the highest rate tried.
    #[arg(long, default_value_t = 10_000.0)]
    pub max_rate: f64,
    /// max: the p99 receipt→fulfilment a step must stay under.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub p99_limit: Duration,
    /// Simulated shops the orders are spread over (steady, max; spike
    /// always uses one).
    #[arg(long, default_value_t = 2)]
    pub shops: u32,
    /// TikTok's rate limit per shop, requests per second (default: 50 for
    /// spike, 100,000 for steady and max so that it never binds).
    #[arg(long)]
    pub qps: Option<u32>,
    /// The daemon's tiktok.batch_window: how long an order-detail lookup
    /// waits for others to share its call (default: the daemon's 500ms for
    /// spike, where calls are scarce; 20ms for steady and max, where they
    /// are not and latency counts).
    #[arg(long, value_parser = parse_duration)]
    pub batch_window: Option<Duration>,
    /// The daemon's tiktok.safety_margin: the fraction of each shop's qps
    /// it uses (default: the daemon's 0.9).
    #[arg(long)]
    pub safety_margin: Option<f64>,
    /// engine: flows per run.
    #[arg(long, default_value_t = 2_000)]
    pub flows: usize,
    /// engine: flows in flight, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [50usize, 200])]
    pub in_flight: Vec<usize>,
    /// engine: steps whose arguments read `order` (as real workflows do),
    /// instead of constant arguments.
    #[arg(long)]
    pub reads_order: bool,
    /// backlog: how long the daemon idles after the first order resumed
    /// before its peak RSS is read (covers a deadline-watcher pass over
    /// every order).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub settle: Duration,
    /// backlog: clients hammering the console's and the API's reads while
    /// webhook acknowledgements are timed (0: skip the readers).
    #[arg(long, default_value_t = 20)]
    pub readers: usize,
    /// retention: the days of finished orders seeded (orders per day:
    /// --orders, default 1,000).
    #[arg(long, default_value_t = 400)]
    pub days: usize,
    /// Give up on orders not shipped after this long without progress.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub stall: Duration,
    /// Keep the temp dir (daemon config, sled data, daemon log) and print
    /// its path.
    #[arg(long)]
    pub keep: bool,
    /// The orderflow binary to run as the daemon (default: this one).
    #[arg(long)]
    pub daemon_exe: Option<PathBuf>,
}

impl LoadtestArgs {
    fn exe(&self) -> Result<PathBuf> {
        match &self.daemon_exe {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe().map_err(io("finding this binary")),
        }
    }
}

/// Runs one scenario and prints its table on stdout.
pub fn run(args: &LoadtestArgs) -> Result<()> {
    match args.scenario {
        Scenario::Engine => {
            if args.flows == 0 || args.in_flight.contains(&0) {
                return Err(Error::Options(
                    "--flows and --in-flight must be at least 1".into(),
                ));
            }
            engine::print(&args.in_flight, args.flows, args.reads_order)
        }
        Scenario::Backlog => backlog::run(args),
        Scenario::Retention => retention::run(args),
        Scenario::Steady | Scenario::Spike | Scenario::Max => {
            let system = actix_rt::System::new();
            system.block_on(async {
                match args.scenario {
                    Scenario::Steady => steady::run(args).await,
                    Scenario::Spike => spike::run(args).await,
                    _ => max::run(args).await,
                }
            })
        }
    }
}

/// The value at quantile `q` of sorted samples (nearest rank; 0 if none).
pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// A Markdown table printed row by row, so a long scenario shows progress.
pub struct Table {
    columns: usize,
}

impl Table {
    /// Prints the header.
    pub fn start(header: &[&str]) -> Table {
        println!("| {} |", header.join(" | "));
        println!("|{}", "---|".repeat(header.len()));
        Table {
            columns: header.len(),
        }
    }

    /// Prints one row (cells beyond the header are dropped, missing ones
    /// left empty).
    pub fn row(&self, cells: &[String]) {
        let mut c: Vec<&str> = cells
            .iter()
            .map(String::as_str)
            .take(self.columns)
            .collect();
        c.resize(self.columns, "");
        println!("| {} |", c.join(" | "));
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

/// Milliseconds with one decimal.
pub fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// The file system's fsync latency in `dir` (a 4 KiB write, then
/// `fdatasync`, 50 times): the median in ms. Every durable acknowledgement
/// waits on one, so it is printed beside every durability figure.
pub fn fsync_latency_ms(dir: &std::path::Path) -> Option<f64> {
    use std::io::Write;
    let path = dir.join(".fsync-probe");
    let mut f = std::fs::File::create(&path).ok()?;
    let mut v = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = std::time::Instant::now();
        f.write_all(&[0u8; 4096]).ok()?;
        f.sync_data().ok()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_file(&path);
    v.sort_by(f64::total_cmp);
    Some(pct(&v, 0.5))
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// The temp dir of one run: removed at the end unless `--keep`.
pub(crate) fn workdir(keep: bool) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("orderflow-loadtest-")
        .tempdir()
        .map_err(io("creating a temp dir"))?;
    if keep {
        eprintln!("(keeping {})", dir.path().display());
    }
    Ok(dir)
}

/// Ends a run's temp dir: kept (`--keep`) or removed.
pub(crate) fn finish_workdir(dir: tempfile::TempDir, keep: bool) {
    if keep {
        let _ = dir.keep();
    }
}

/// Total size of the files under `p`.
pub fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(std::result::Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
