//! `docs/first-day.md` is run as written: every command of its `sh` blocks,
//! in order, in a fresh folder, with the real binary and its simulator
//! (free ports replace 8080 and 8787). `toml file=NAME` blocks are written
//! to NAME; `<!-- first-day: open the link above -->` follows the link the
//! previous command printed, as the seller's browser would;
//! `<!-- first-day: expect "TEXT" -->` repeats the previous command until
//! its output shows TEXT (work in the background takes a moment). Commands
//! ending in `&` are started in the background and waited for.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

enum Step {
    Run(String),
    File(String, String),
    OpenLink,
    Expect(String),
}

fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(info) = t.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if info == "sh" {
                for cmd in body {
                    let cmd = cmd.trim();
                    if !cmd.is_empty() && !cmd.starts_with('#') {
                        out.push(Step::Run(cmd.to_string()));
                    }
                }
            } else if let Some(name) = info.strip_prefix("toml file=") {
                out.push(Step::File(name.to_string(), body.join("\n") + "\n"));
            }
        } else if let Some(d) = t
            .strip_prefix("<!-- first-day:")
            .and_then(|d| d.strip_suffix("-->"))
        {
            let d = d.trim();
            if d == "open the link above" {
                out.push(Step::OpenLink);
            } else if let Some(x) = d
                .strip_prefix("expect \"")
                .and_then(|x| x.strip_suffix('"'))
            {
                out.push(Step::Expect(x.to_string()));
            } else {
                panic!("unknown first-day directive: {d}");
            }
        }
    }
    out
}

struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn shell(dir: &Path, bin_dir: &Path, daemon: &str, cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("ORDERFLOW_URL", format!("http://{daemon}"))
        .env("RUST_LOG", "warn")
        .env_remove("ORDERFLOW_TOKEN");
    c
}

/// Runs a command; its output, and whether it succeeded.
fn run(dir: &Path, bin_dir: &Path, daemon: &str, cmd: &str) -> (String, bool) {
    let out = shell(dir, bin_dir, daemon, cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}

async fn wait_http(url: &str, log: &Path) {
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_day_guide_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/first-day.md")).unwrap();
    let steps = steps(&guide);
    assert!(steps.len() > 15, "the guide's commands were found");
    let bin_dir: PathBuf = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    // Step 1 of the guide (install): the binary is built; the workflows
    // are copied.
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    for e in std::fs::read_dir(root.join("workflows")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, wf.join(p.file_name().unwrap())).unwrap();
        }
    }
    let (daemon, sim) = (common::free_addr(), common::free_addr());
    let ports = |s: &str| {
        s.replace("127.0.0.1:8080", &daemon)
            .replace("127.0.0.1:8787", &sim)
    };
    let mut background = Background(Vec::new());
    let mut last: Option<(String, String)> = None;
    let mut steps = steps.into_iter().peekable();
    while let Some(step) = steps.next() {
        match step {
            Step::File(name, text) => {
                std::fs::write(dir.path().join(name), ports(&text)).unwrap();
            }
            Step::Run(cmd) => {
                let cmd = ports(&cmd);
                println!("$ {cmd}");
                if let Some(bg) = cmd.strip_suffix('&') {
                    let log_path = dir.path().join(format!("bg{}.log", background.0.len()));
                    let log = std::fs::File::create(&log_path).unwrap();
                    let child = shell(
                        dir.path(),
                        &bin_dir,
                        &daemon,
                        &format!("exec {}", bg.trim()),
                    )
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                    background.0.push(child);
                    if bg.contains("orderflow simulator") {
                        wait_http(&format!("http://{sim}/sim/shops"), &log_path).await;
                    } else if bg.contains("orderflow run") {
                        wait_http(&format!("http://{daemon}/readyz"), &log_path).await;
                    }
                    last = None;
                } else {
                    let (out, ok) = run(dir.path(), &bin_dir, &daemon, &cmd);
                    println!("{out}");
                    // A command whose result is awaited may fail at first
                    // (the order has not arrived yet); any other must not.
                    if !matches!(steps.peek(), Some(Step::Expect(_))) {
                        assert!(ok, "`{cmd}` failed:\n{out}");
                    }
                    last = Some((cmd, out));
                }
            }
            Step::OpenLink => {
                let (_, out) = last.clone().expect("a command printed the link");
                let link = out
                    .split_whitespace()
                    .find(|w| w.starts_with("http") && w.contains("/open/authorize"))
                    .unwrap_or_else(|| panic!("no authorization link in:\n{out}"));
                let page = reqwest::get(link).await.unwrap();
                let status = page.status().as_u16();
                let text = page.text().await.unwrap();
                assert_eq!(status, 200, "{text}");
                assert!(text.contains("Shop connected"), "{text}");
            }
            Step::Expect(want) => {
                let (cmd, first) = last.clone().expect("a command to check");
                let (mut out, mut ok) = (first, true);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if out.contains(&want) && ok {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "`{cmd}` never showed {want:?}; last:\n{out}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    (out, ok) = run(dir.path(), &bin_dir, &daemon, &cmd);
                }
                println!("{out}");
            }
        }
    }
    drop(background);
}
