//! The daemon under test: `orderflow run --config FILE` as a child process
//! on loopback, its log in a file, its peak RSS from `/proc`, its metrics
//! from `/metrics`. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{io, Error, Result};

pub struct DaemonProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Starts `exe run --config config` with `env` added, logging to `log`,
    /// and waits (up to `timeout`) until it listens.
    pub async fn spawn(
        exe: &Path,
        config: &Path,
        env: &[(String, String)],
        log: &Path,
        timeout: Duration,
    ) -> Result<DaemonProcess> {
        let logf = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            // The listen line is all the log the load test needs; per-order
            // logging would cost the daemon CPU the figures should not pay.
            .env("RUST_LOG", "warn,orderflow::daemon=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {}", exe.display())))?;
        let mut d = DaemonProcess {
            child,
            base: String::new(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("orderflow listening")) {
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                {
                    d.base = format!("http://{addr}");
                    return Ok(d);
                }
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(Error::Daemon(format!(
                    "exited ({status}) before listening:\n{}",
                    tail(&text)
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Daemon(format!(
                    "not listening after {timeout:?}:\n{}",
                    tail(&text)
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` until 200; the time it took.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/readyz", self.base);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Daemon(format!("exited ({status}) while recovering")));
            }
            if Instant::now() >= deadline {
                return Err(Error::Daemon(format!("not ready after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The daemon's peak resident set (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// CPU time the daemon has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command (which may hold spaces): utime, stime
        // are the 12th and 13th, in clock ticks (100 a second on Linux).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// A snapshot of `/metrics`.
    pub async fn metrics(&self, http: &reqwest::Client) -> Result<Metrics> {
        let url = format!("{}/metrics", self.base);
        let text = super::text(http.get(&url), &url).await?;
        Ok(Metrics { text })
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A Prometheus text page.
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// One unlabelled sample (0 when absent).
    pub fn value(&self, name: &str) -> f64 {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                (k == name).then(|| v.parse::<f64>().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// The group-commit counters.
    pub fn checkpoints(&self) -> Checkpoints {
        use crate::metrics::{CHECKPOINT_BATCH_SIZE, CHECKPOINT_FLUSH_SECONDS};
        Checkpoints {
            batches: self.value(&format!("{CHECKPOINT_BATCH_SIZE}_count")),
            writers: self.value(&format!("{CHECKPOINT_BATCH_SIZE}_sum")),
            flushes: self.value(&format!("{CHECKPOINT_FLUSH_SECONDS}_count")),
            flush_seconds: self.value(&format!("{CHECKPOINT_FLUSH_SECONDS}_sum")),
        }
    }
}

/// Group commits: batches, the writers in them, flushes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checkpoints {
    pub batches: f64,
    pub writers: f64,
    pub flushes: f64,
    /// Time spent applying and flushing.
    pub flush_seconds: f64,
}

impl Checkpoints {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Checkpoints) -> Checkpoints {
        Checkpoints {
            batches: self.batches - before.batches,
            writers: self.writers - before.writers,
            flushes: self.flushes - before.flushes,
            flush_seconds: self.flush_seconds - before.flush_seconds,
        }
    }

    /// Mean time one group commit took, in ms.
    pub fn mean_flush_ms(&self) -> f64 {
        if self.flushes > 0.0 {
            self.flush_seconds * 1000.0 / self.flushes
        } else {
            0.0
        }
    }

    pub fn mean_batch(&self) -> f64 {
        if self.batches > 0.0 {
            self.writers / self.batches
        } else {
            0.0
        }
    }
}
