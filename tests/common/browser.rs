//! A small W3C WebDriver client for the console's end-to-end tests: starts
//! Debian's `chromedriver` on a free port and drives headless Chromium
//! through plain HTTP (the protocol is JSON over HTTP, so reqwest is all it
//! takes; no WebDriver crate).
//!
//! Chromium runs with the flags this machine needs (no sandbox as root, no
//! background networking: the network is closed and Chromium's own
//! connections would be refused), a fresh profile per browser, and nothing
//! fetched from outside loopback.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts them (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    _profile: tempfile::TempDir,
}

/// Chromium is chromedriver's child: killing chromedriver alone would leave
/// the browser running. Both live in their own process group, and the
/// whole group goes.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.driver.id()))
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The tests need both binaries; say how to get them rather than fail
/// obscurely.
pub fn require_chromium() {
    for p in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: the console tests drive headless Chromium. \
             Install it with `apt-get install chromium chromium-driver` (scripts/test does this)."
        );
    }
}

impl Browser {
    /// Starts chromedriver and one headless Chromium window of the given
    /// size.
    pub async fn start(width: u32, height: u32) -> Browser {
        require_chromium();
        let port = crate::common::free_addr()
            .rsplit_once(':')
            .map(|(_, p)| p.to_string())
            .unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        let b = Browser {
            driver,
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
        };
        b.resize(width, height).await;
        b
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Sets the viewport's outer size (headless: the page gets all of it).
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`).
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Runs `script` asynchronously: it ends by calling
    /// `arguments[arguments.length - 1]` with its result.
    pub async fn js_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
            .await
    }

    /// The element `css` selects, if any now.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits until `css` selects an element, and returns it.
    pub async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                let body = self.js("return document.body.outerHTML", json!([])).await;
                panic!(
                    "no element matches {css} at {}; page:\n{}",
                    self.url().await,
                    body.as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(4000)
                        .collect::<String>()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `predicate` (a JS expression) is true.
    pub async fn wait_until(&self, what: &str, predicate: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.js(&format!("return !!({predicate})"), json!([])).await;
            if v == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never true: {what} ({predicate})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for `css`, then clicks it. A live page re-renders rows as
    /// orders change, so an element can go stale (or sit under a toast for
    /// a moment) between finding and clicking: those are retried, anything
    /// else fails.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let e = self.wait_for(css).await;
            // Centred first: on a phone the fixed bottom bar covers the
            // lowest rows, where WebDriver would scroll the element to.
            self.js(
                "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'center'});",
                json!([css]),
            )
            .await;
            let r = self.post(&format!("/element/{e}/click"), json!({})).await;
            let error = r.get("error").and_then(Value::as_str).unwrap_or("");
            if error.is_empty() {
                return;
            }
            let transient = matches!(
                error,
                "stale element reference"
                    | "element click intercepted"
                    | "element not interactable"
            );
            assert!(
                transient && Instant::now() < deadline,
                "click {css} failed: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Focuses the element `css` selects and presses Enter on it, as a
    /// keyboard user would.
    /// A live page may re-render the element between finding and the key
    /// press (it keeps focus on the new one): a stale element is found
    /// again and the key pressed again, as `click` does.
    pub async fn press_enter(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let e = self.wait_for(css).await;
            self.js("arguments[0].focus()", json!([{ELEMENT: e}])).await;
            let r = self
                .post(&format!("/element/{e}/value"), json!({"text": "\u{E007}"}))
                .await;
            let error = r.get("error").and_then(Value::as_str).unwrap_or("");
            if error.is_empty() {
                return;
            }
            assert!(
                matches!(
                    error,
                    "stale element reference" | "element not interactable"
                ) && Instant::now() < deadline,
                "Enter on {css} failed: {r}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses a key (a WebDriver key code, e.g. Tab `\u{E004}`) on
    /// whatever has focus, as a keyboard user would.
    pub async fn press_key(&self, key: &str) {
        let active = self.get("/element/active").await;
        let e = active[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no active element: {active}"))
            .to_string();
        self.post(&format!("/element/{e}/value"), json!({"text": key}))
            .await;
    }

    /// Waits for `css`, clears it and types `text`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_for(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    /// The visible text of the element `css` selects (waits for it).
    pub async fn text(&self, css: &str) -> String {
        let e = self.wait_for(css).await;
        self.get(&format!("/element/{e}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The texts of every element `css` selects now.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText)",
                json!([css]),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The browser's cookies, as WebDriver reports them (with `httpOnly`
    /// and `sameSite`).
    pub async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> PathBuf {
        use base64::Engine;
        let v = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        path.to_path_buf()
    }

    /// A Chrome DevTools Protocol command, through chromedriver's
    /// `goog/cdp/execute` (permissions, service workers).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }
}
