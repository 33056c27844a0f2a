//! Daemon configuration, layered: embedded defaults → TOML file →
//! environment (`ORDERFLOW_SECTION__KEY=value`) → command-line flags, then
//! one [`Config::validate`] that reports every problem at once.
//!
//! With no file and no environment the defaults are safe: loopback only,
//! data under `./data`, workflows from `./workflows`. Every key is
//! documented in `deploy/orderflow.example.toml`; keep the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// `#[serde(with = "crate::config::human")]` for a `Duration` field written
/// as text (`"2s"`, `"500ms"`): every config section uses it.
pub mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A duration written as text (`"30s"`, `"5m"`) in files and environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration ({e})")))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub workflows: WorkflowsConfig,
    pub runtime: RuntimeConfig,
    pub actions: ActionsConfig,
    /// TikTok Shop credentials and shops. With none, the daemon runs the
    /// built-in simulator with a demo order stream.
    pub tiktok: crate::tiktok::TiktokConfig,
    pub sync: crate::sync::SyncConfig,
    pub inventory: crate::inventory::InventoryConfig,
    pub shipping: crate::shipping::ShippingConfig,
    pub notify: crate::notify::NotifyConfig,
    pub demo: DemoConfig,
    pub console: crate::http::console::ConsoleConfig,
    /// How connected shops are kept healthy (token refresh, links).
    pub shops: crate::shops::ShopsConfig,
    /// Where the key that seals shop tokens at rest lives.
    pub secrets: crate::shops::SecretsConfig,
    /// How often each shop's catalogue is read again.
    pub catalogue: crate::catalogue::CatalogueConfig,
    /// The fulfilment-time target.
    pub sla: crate::runtime::report::SlaConfig,
    /// Who this process is beyond one machine: tenant, epoch, owned shops.
    pub tenant: crate::tenant::TenantConfig,
    /// What leaves the hot store, and when.
    pub retention: crate::retention::RetentionConfig,
}

/// The demo the daemon runs when no TikTok credentials are configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// New simulated orders per second.
    pub orders_per_second: f64,
    /// How much faster than TikTok the simulated lifecycle runs: TikTok's
    /// durations (the buyer-cancel hold, the ship-by windows, carrier
    /// scans, delivery) are divided by it, on the daemon's own clock (see
    /// `crate::demo`).
    pub time_scale: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            orders_per_second: 0.5,
            time_scale: 3600.0,
        }
    }
}

impl Config {
    /// No credentials at all: run the built-in simulator.
    pub fn is_demo(&self) -> bool {
        self.tiktok.app_key.is_empty() && self.tiktok.shops.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the HTTP server (webhooks, admin API, metrics, health) listens.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Bearer token for the admin API and the CLI. Required when `listen`
    /// is not a loopback address. Never printed. `orderflow token new`
    /// makes one with 256 bits of entropy.
    pub admin_token: Option<crate::tiktok::Secret>,
    /// The names (`Host`) the admin API and console answer to, besides
    /// `localhost`, `127.0.0.1`, `[::1]` and the listen address; any other name
    /// gets 403 (DNS rebinding). Empty with a wildcard `listen`: any name
    /// (a token is required there).
    pub allowed_hosts: Vec<String>,
    /// The https address TikTok reaches this daemon at (a domain name, no
    /// port), e.g. `https://orders.example.com`. With it, each connected
    /// shop is subscribed to `<public_url>/webhooks/tiktok` and the
    /// authorization callback is `<public_url>/oauth/tiktok/callback`.
    /// Without it, polling alone keeps orders in sync.
    pub public_url: Option<String>,
    /// A request's head and body must each arrive within this; a slower
    /// client is cut off.
    pub read_timeout: Dur,
    /// Connections open at once (over both HTTP workers); beyond it new
    /// ones wait in the listen backlog.
    pub max_connections: usize,
    /// The listen socket's backlog: connections the kernel holds until the
    /// daemon accepts them.
    pub backlog: u32,
    /// Each connection's kernel receive buffer (SO_RCVBUF; Linux doubles
    /// it); 0 leaves the kernel's autotuning. Small, so a crowd of clients
    /// pushing bodies nobody reads yet costs kernel buffers of this size
    /// rather than the HTTP layer's read-ahead.
    pub recv_buffer_bytes: usize,
    /// Memory for request bodies beyond each request's first 16 KiB,
    /// shared by all requests; a request that finds it spent gets 503.
    pub body_memory_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled database directory.
    pub data_dir: PathBuf,
    /// Most writes group-committed under one flush.
    pub max_batch: usize,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Writes (and so webhooks, with 503) are refused while the data
    /// directory's file system has less free space than this; 0 turns the
    /// check off.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// Folder of workflow YAML files (the bundled ones; may be read-only).
    pub dir: PathBuf,
    /// A writable folder the workflows are loaded from and the console
    /// saves to (the systemd unit's `StateDirectory`:
    /// `/var/lib/orderflow/workflows`). On a start that finds it with no
    /// workflow in it, the files of `dir` are copied in as the starting
    /// point; after that it is the one folder that counts.
    pub edit_dir: Option<PathBuf>,
}

impl WorkflowsConfig {
    /// The folder workflows are loaded from and saved to: `edit_dir` when
    /// set, seeded from `dir` when it holds no workflow; else `dir`.
    pub fn working_dir(&self) -> std::io::Result<PathBuf> {
        let Some(edit) = &self.edit_dir else {
            return Ok(self.dir.clone());
        };
        std::fs::create_dir_all(edit)?;
        let is_yaml = |p: &std::path::Path| {
            matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        };
        let has_any = std::fs::read_dir(edit)?
            .filter_map(Result::ok)
            .any(|e| is_yaml(&e.path()));
        if !has_any && self.dir != *edit {
            let mut copied = 0;
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for e in entries.filter_map(Result::ok) {
                    let p = e.path();
                    if is_yaml(&p) {
                        if let Some(name) = p.file_name() {
                            std::fs::copy(&p, edit.join(name))?;
                            copied += 1;
                        }
                    }
                }
            }
            tracing::info!(from = %self.dir.display(), to = %edit.display(), files = copied, "Workflows: the editable folder starts as a copy of the bundled files");
        }
        Ok(edit.clone())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// An order actor idle this long is stopped (its state is on disk) and
    /// rebuilt from its checkpoint on its next event. Short, because most
    /// orders spend days waiting for a carrier scan: at 500 orders a second
    /// every second of this keeps 500 more actors in memory, and a rebuild
    /// costs one read and a decode of a few microseconds.
    pub passivate_after: Dur,
    /// Bounded mailbox of each order actor: callers wait when it is full.
    pub mailbox: usize,
    /// Arbiter threads that host order actors.
    pub arbiters: usize,
    /// On SIGTERM/SIGINT, how long in-flight steps get to reach a checkpoint.
    pub shutdown_grace: Dur,
    /// An unshipped order with less than this before its ship-by deadline
    /// is "at risk".
    pub at_risk_margin: Dur,
    /// How often the deadline watcher looks for orders at risk (and
    /// refreshes the lifecycle and at-risk gauges).
    pub deadline_check: Dur,
    /// Most orders intake keeps live at once. Past it, every event is still
    /// stored and acknowledged, but its order waits (as a key, oldest
    /// ship-by first) until a live one finishes its step; idle actors then
    /// stop at once instead of after `passivate_after`.
    pub max_active_orders: usize,
    /// Resident memory, in bytes, above which the daemon admits a quarter
    /// of `max_active_orders` and stops idle actors at once, until it is
    /// back under 90% of it (0: no budget).
    pub memory_budget: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// Default deadline of an outbound `http.request` (a step's `timeout`
    /// overrides it).
    pub http_timeout: Dur,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1 << 20,
            admin_token: None,
            allowed_hosts: Vec::new(),
            public_url: None,
            read_timeout: Dur(Duration::from_secs(10)),
            max_connections: 8192,
            backlog: 2048,
            recv_buffer_bytes: 16 << 10,
            body_memory_bytes: 16 << 20,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
            max_batch: 4096,
            cache_bytes: 256 << 20,
            min_free_bytes: 64 << 20,
        }
    }
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig {
            dir: PathBuf::from("./workflows"),
            edit_dir: None,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            passivate_after: Dur(Duration::from_secs(10)),
            mailbox: 64,
            arbiters: 2,
            shutdown_grace: Dur(Duration::from_secs(10)),
            at_risk_margin: Dur(Duration::from_secs(6 * 3600)),
            deadline_check: Dur(Duration::from_secs(15)),
            max_active_orders: 5_000,
            memory_budget: 1 << 30,
        }
    }
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            http_timeout: Dur(Duration::from_secs(10)),
        }
    }
}

/// Command-line overrides (the last layer).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub workflows: Option<PathBuf>,
}

const ENV_PREFIX: &str = "ORDERFLOW_";

/// Variables of the CLI and the simulator that share the prefix and are
/// not configuration (`orderflow run` in a shell that set them for the CLI
/// must still start).
const NOT_CONFIG: [&str; 5] = [
    "ORDERFLOW_URL",
    "ORDERFLOW_TOKEN",
    "ORDERFLOW_SIM_LISTEN",
    "ORDERFLOW_SIM_EASYPOST_API_KEY",
    "ORDERFLOW_SIM_SHIPPO_API_KEY",
];

impl Config {
    /// Builds the configuration from every layer. `env` is passed in (not
    /// read here) so tests can supply their own.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, Error> {
        let mut tree = toml::Value::try_from(Config::default()).map_err(|e| Error::File {
            path: "<defaults>".into(),
            message: e.to_string(),
        })?;
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| Error::File {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            let v: toml::Value = toml::from_str(&text).map_err(|e| Error::File {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            merge(&mut tree, v);
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_CONFIG.contains(&k.as_str()))
            .collect();
        env.sort();
        for (name, value) in env {
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if path.iter().any(String::is_empty) {
                return Err(Error::Env {
                    name,
                    message: "expected ORDERFLOW_SECTION__KEY".into(),
                });
            }
            set_path(&mut tree, &path, scalar(&value)).map_err(|message| Error::Env {
                name: name.clone(),
                message,
            })?;
        }
        if let Some(l) = &flags.listen {
            set_path(
                &mut tree,
                &["server".into(), "listen".into()],
                toml::Value::String(l.clone()),
            )
            .map_err(|m| Error::Invalid(vec![m]))?;
        }
        if let Some(d) = &flags.data_dir {
            set_path(
                &mut tree,
                &["store".into(), "data_dir".into()],
                toml::Value::String(d.display().to_string()),
            )
            .map_err(|m| Error::Invalid(vec![m]))?;
        }
        if let Some(w) = &flags.workflows {
            set_path(
                &mut tree,
                &["workflows".into(), "dir".into()],
                toml::Value::String(w.display().to_string()),
            )
            .map_err(|m| Error::Invalid(vec![m]))?;
        }
        let cfg: Config = tree.try_into().map_err(|e: toml::de::Error| Error::File {
            path: file.map_or("<environment>".into(), |p| p.display().to_string()),
            message: e.message().to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = self.tenant.validate();
        if self.listen_addr().is_none() {
            problems.push(format!(
                "server.listen: `{}` is not an address like 127.0.0.1:8080",
                self.server.listen
            ));
        }
        if let Some(addr) = self.listen_addr() {
            let token = self.server.admin_token.as_ref().map(|t| t.expose());
            if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
                problems.push(format!(
                    "server.admin_token is required when listening on {addr}, which is not a loopback address (set ORDERFLOW_SERVER__ADMIN_TOKEN)"
                ));
            }
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                if let Err(why) = token_strength(t) {
                    problems.push(format!(
                        "server.admin_token {why} (`orderflow token new` makes a good one)"
                    ));
                }
            }
        }
        if let Some(u) = self.server.public_url.as_deref().filter(|u| !u.is_empty()) {
            if let Err(e) = crate::shops::webhook_address(u) {
                problems.push(e.to_string());
            }
        }
        if self.server.read_timeout.0 < Duration::from_secs(1)
            || self.server.read_timeout.0 > Duration::from_secs(300)
        {
            problems.push("server.read_timeout must be between 1s and 5m".into());
        }
        if self.server.max_connections < 16 || self.server.max_connections > 1_000_000 {
            problems.push("server.max_connections must be between 16 and 1000000".into());
        }
        if self.server.backlog == 0 || self.server.backlog > 65_535 {
            problems.push("server.backlog must be between 1 and 65535".into());
        }
        if self.server.body_memory_bytes < 1 << 20 || self.server.body_memory_bytes > 4 << 30 {
            problems.push("server.body_memory_bytes must be between 1 MiB and 4 GiB".into());
        }
        for h in &self.server.allowed_hosts {
            if h.trim().is_empty() || h.contains(['/', ' ', '@']) {
                problems.push(format!(
                    "server.allowed_hosts: `{h}` is not a host name (like orders.example.com)"
                ));
            }
        }
        if self.server.max_body_bytes < 1024 || self.server.max_body_bytes > 64 << 20 {
            problems.push("server.max_body_bytes must be between 1 KiB and 64 MiB".into());
        }
        if self.store.max_batch == 0 || self.store.max_batch > 100_000 {
            problems.push("store.max_batch must be between 1 and 100000".into());
        }
        if self.runtime.mailbox == 0 || self.runtime.mailbox > 65_536 {
            problems.push("runtime.mailbox must be between 1 and 65536".into());
        }
        if self.runtime.arbiters == 0 || self.runtime.arbiters > 64 {
            problems.push("runtime.arbiters must be between 1 and 64".into());
        }
        if self.runtime.max_active_orders == 0 || self.runtime.max_active_orders > 1_000_000 {
            problems.push("runtime.max_active_orders must be between 1 and 1000000".into());
        }
        if self.runtime.memory_budget != 0
            && self.runtime.memory_budget < self.store.cache_bytes + (128 << 20)
        {
            problems.push(format!(
                "runtime.memory_budget must be 0 (none) or at least store.cache_bytes + 128 MiB ({} bytes): sled's cache alone would keep the daemon over it",
                self.store.cache_bytes + (128 << 20)
            ));
        }
        if self.runtime.passivate_after.0 < Duration::from_millis(10) {
            problems.push("runtime.passivate_after must be at least 10ms".into());
        }
        if self.actions.http_timeout.0.is_zero() {
            problems.push("actions.http_timeout must be more than zero".into());
        }
        if !self.is_demo() {
            problems.extend(
                self.tiktok
                    .validate()
                    .into_iter()
                    .map(|p| format!("tiktok: {p}")),
            );
        }
        problems.extend(self.sync.validate());
        problems.extend(self.inventory.validate());
        problems.extend(self.shipping.validate());
        problems.extend(self.notify.validate());
        problems.extend(self.sla.validate());
        self.retention.validate(&mut problems);
        if !(self.demo.orders_per_second >= 0.0 && self.demo.orders_per_second <= 10_000.0) {
            problems.push("demo.orders_per_second must be between 0 and 10000".into());
        }
        if !(self.demo.time_scale > 0.0 && self.demo.time_scale <= 100_000.0) {
            problems.push("demo.time_scale must be more than 0 and at most 100000".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(problems))
        }
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.server.listen.parse().ok()
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// An environment value as TOML: integers, floats and booleans keep their
/// type, anything else is a string.
fn scalar(s: &str) -> toml::Value {
    if let Ok(i) = s.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        if s.contains('.') {
            return toml::Value::Float(f);
        }
    }
    match s {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(s.to_string()),
    }
}

fn set_path(tree: &mut toml::Value, path: &[String], v: toml::Value) -> Result<(), String> {
    let mut cur = tree;
    for (i, key) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        // A numeric segment indexes an array of tables: shops are
        // `ORDERFLOW_TIKTOK__SHOPS__0__ACCESS_TOKEN`.
        if let toml::Value::Array(items) = cur {
            let idx: usize = key
                .parse()
                .map_err(|_| format!("{} is a list: use an index", path[..i].join(".")))?;
            let len = items.len();
            cur = items.get_mut(idx).ok_or_else(|| {
                format!(
                    "{} has {len} entries, no [{idx}] (define it in the file)",
                    path[..i].join(".")
                )
            })?;
            if last {
                *cur = v;
                return Ok(());
            }
            continue;
        }
        let toml::Value::Table(t) = cur else {
            return Err(format!("{} is not a section", path[..i].join(".")));
        };
        if last {
            // Keep strings for keys whose default is a string ("8080" stays text).
            let v = match (t.get(key), v) {
                (Some(toml::Value::String(_)), toml::Value::Integer(n)) => {
                    toml::Value::String(n.to_string())
                }
                (Some(toml::Value::String(_)), toml::Value::Float(f)) => {
                    toml::Value::String(f.to_string())
                }
                (Some(toml::Value::String(_)), toml::Value::Boolean(b)) => {
                    toml::Value::String(b.to_string())
                }
                (None, toml::Value::Integer(n))
                    if key.ends_with("token")
                        || key.ends_with("secret")
                        || key.ends_with("password") =>
                {
                    toml::Value::String(n.to_string())
                }
                (_, v) => v,
            };
            t.insert(key.clone(), v);
            return Ok(());
        }
        cur = t
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

/// Is `token` hard enough to guess? At least 16 characters, no white
/// space or control characters, and not a run of a few repeated ones
/// (at least 8 distinct characters): a generated token (`orderflow token
/// new`, 64 hex digits) passes easily, `"                "` and
/// `"aaaaaaaaaaaaaaaa"` do not.
pub fn token_strength(token: &str) -> Result<(), &'static str> {
    if token.chars().count() < 16 {
        return Err("must be at least 16 characters");
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let distinct: std::collections::BTreeSet<char> = token.chars().collect();
    if distinct.len() < 8 {
        return Err("is too easy to guess: use at least 8 different characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_admin_tokens_are_refused() {
        assert!(token_strength("                ").is_err());
        assert!(token_strength("aaaaaaaaaaaaaaaa").is_err());
        assert!(token_strength("short-token").is_err());
        assert!(token_strength("correct horse battery").is_err());
        assert!(token_strength("0123456789abcdef").is_ok());
        let mut c = Config::default();
        c.server.admin_token = Some(crate::tiktok::Secret::new("                "));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("server.admin_token"), "{err}");
    }

    #[test]
    fn layers_apply_in_order_and_validation_reports_everything() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[runtime]\nmailbox = 8\n",
        )
        .unwrap();
        let env = vec![
            ("ORDERFLOW_RUNTIME__MAILBOX".to_string(), "16".to_string()),
            (
                "ORDERFLOW_RUNTIME__PASSIVATE_AFTER".to_string(),
                "5m".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let flags = Overrides {
            listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), env, &flags).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9100");
        assert_eq!(c.runtime.mailbox, 16);
        assert_eq!(c.runtime.passivate_after.0, Duration::from_secs(300));

        let bad = vec![
            ("ORDERFLOW_RUNTIME__MAILBOX".to_string(), "0".to_string()),
            (
                "ORDERFLOW_SERVER__LISTEN".to_string(),
                "nowhere".to_string(),
            ),
        ];
        let err = Config::load(None, bad, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime.mailbox"), "{err}");
        assert!(err.contains("server.listen"), "{err}");

        // The CLI's own variables are not configuration.
        let cli = vec![
            (
                "ORDERFLOW_URL".to_string(),
                "http://127.0.0.1:9".to_string(),
            ),
            ("ORDERFLOW_TOKEN".to_string(), "x".to_string()),
        ];
        assert!(Config::load(None, cli, &Overrides::default()).is_ok());
        let unknown = vec![("ORDERFLOW_RUNTIME__MAILBXO".to_string(), "3".to_string())];
        let err = Config::load(None, unknown, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mailbxo"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(_) => keys(v, &path, out),
                    _ => out.push(path),
                }
            }
        }
    }

    /// The documented example stays true: it loads, and it mentions every
    /// key the daemon knows.
    #[test]
    fn example_config_documents_every_key() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/orderflow.example.toml");
        Config::load(Some(&path), Vec::new(), &Overrides::default()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut all = Vec::new();
        keys(
            &toml::Value::try_from(Config::default()).unwrap(),
            "",
            &mut all,
        );
        for k in all {
            let leaf = k.rsplit('.').next().unwrap();
            let documented = text.contains(&format!("{leaf} ="))
                || text.contains(&format!("[[{k}]]"))
                || text.contains(&format!("# [[{k}]]"));
            assert!(documented, "example config lacks {k}");
        }
        // Shop tokens come from the environment by index.
        let env = vec![(
            "ORDERFLOW_TIKTOK__SHOPS__0__ACCESS_TOKEN".to_string(),
            "tok".to_string(),
        )];
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[tiktok]\napp_key = \"k\"\napp_secret = \"s\"\n[[tiktok.shops]]\nid = \"1\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), env, &Overrides::default()).unwrap();
        assert_eq!(c.tiktok.shops[0].access_token.expose(), "tok");
        assert!(
            !format!("{c:?}").contains("tok\""),
            "secrets are not printed"
        );
    }
}
