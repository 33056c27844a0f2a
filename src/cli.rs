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
    Simulator(crate::simulator::SimulatorArgs),
    /// Check workflow files: exit 0 when all are valid, 1 with every error
    /// printed as `file:line:col: message` otherwise.
    Validate {
        /// Files or folders (folders: every *.yaml/*.yml inside).
        #[arg(default_value = "workflows")]
        paths: Vec<PathBuf>,
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
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Approval {
    Approve,
    Reject,
    Timeout,
}

/// Runs a parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
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
                crate::simulator::run(args, stop).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths } => validate(&paths),
        Command::DryRun {
            workflow,
            order,
            events,
            approval,
        } => dry_run(&workflow, &order, &events, approval),
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let files = workflow::collect_files(paths)?;
    if files.is_empty() {
        eprintln!("no workflow files found");
        return Ok(ExitCode::from(1));
    }
    let mut bad = 0usize;
    for f in &files {
        match workflow::load_file(f) {
            Ok(d) => println!(
                "ok   {} ({}, {} steps)",
                f.display(),
                d.key(),
                d.steps.len()
            ),
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
    if bad == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{bad} error(s)");
        Ok(ExitCode::from(1))
    }
}

fn dry_run(
    wf: &std::path::Path,
    order: &std::path::Path,
    events: &[PathBuf],
    approval: Approval,
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
    let out = dryrun::run(&def, &order, &evs, choice);
    for l in &out.lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
