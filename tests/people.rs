//! People: named users with roles, over the real daemon (a process) and its
//! HTTP API, with users added by the CLI.
//!
//! - an operator signs in with their own name and password, and what they
//!   do is in the order's audit under their name (a hold; an approval);
//! - a viewer reads and is refused every change (403);
//! - an operator cannot manage people (403); an admin can;
//! - a person's API token acts as them, with their role;
//! - sessions survive a daemon restart;
//! - 20 wrong passwords in a row lock that login (429, counted in a
//!   metric) while other people still sign in.

mod common;

use std::time::Duration;

use common::{wait_ready, wire_order, Daemon};
use serde_json::{json, Value};

const TOKEN: &str = "people-test-token-0123456789";

const WORKFLOW: &str = r#"name: approve-all
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: approve
    approval:
      message: "approve ${{ order.id }}?"
      timeout: 24h
      default: reject
  - id: done
    end: approved
"#;

struct Env {
    dir: tempfile::TempDir,
    daemon: Option<Daemon>,
    http: reqwest::Client,
}

impl Env {
    fn start_daemon(dir: &std::path::Path) -> Daemon {
        Daemon::start(
            &dir.join("data"),
            &dir.join("workflows"),
            &dir.join("daemon.log"),
            &[("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN)],
        )
    }

    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::write(dir.path().join("workflows/approve.yaml"), WORKFLOW).unwrap();
        let daemon = Env::start_daemon(dir.path());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        wait_ready(&http, &daemon.base).await;
        Env {
            dir,
            daemon: Some(daemon),
            http,
        }
    }

    fn base(&self) -> String {
        self.daemon.as_ref().unwrap().base.clone()
    }

    async fn restart(&mut self) {
        let status = self.daemon.take().unwrap().terminate();
        assert!(status.success(), "clean stop: {status:?}");
        let d = Env::start_daemon(self.dir.path());
        wait_ready(&self.http, &d.base).await;
        self.daemon = Some(d);
    }

    /// `orderflow users …` against the daemon with the admin token.
    fn cli(&self, args: &[&str], password: Option<&str>) -> (bool, String) {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(["--url", &self.base(), "--token", TOKEN, "users"])
            .args(args);
        if let Some(p) = password {
            cmd.env("ORDERFLOW_USER_PASSWORD", p);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    async fn login(&self, user: &str, password: &str) -> (u16, Option<Session>) {
        self.login_from(None, user, password).await
    }

    async fn login_from(
        &self,
        from: Option<std::net::IpAddr>,
        user: &str,
        password: &str,
    ) -> (u16, Option<Session>) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(from)
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/login", self.base()))
            .form(&[("user", user), ("password", password)])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("orderflow_session=") && !c.starts_with("orderflow_session=;"))
            .map(|c| c.split(';').next().unwrap().to_string());
        let Some(cookie) = cookie.filter(|_| status == 303) else {
            return (status, None);
        };
        let s = self.session_info(&cookie).await;
        (
            status,
            Some(Session {
                cookie,
                csrf: s["csrf"].as_str().unwrap().to_string(),
            }),
        )
    }

    async fn session_info(&self, cookie: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/console/session", self.base()))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// A state-changing call in a session (with its CSRF token).
    async fn post_as(&self, s: &Session, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base()))
            .header("Cookie", &s.cookie)
            .header("X-CSRF-Token", &s.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn get_as(&self, s: &Session, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base()))
            .header("Cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.json().await.unwrap()
    }

    async fn order(&self, id: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.base()))
            .bearer_auth(TOKEN)
            .json(&json!({"id": format!("ev-{id}"), "shop_id": "shop-1", "order": wire_order(id, now)}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        common::eventually(
            Duration::from_secs(30),
            "the order waits for approval",
            || async {
                // Not there yet is a 404: ask again.
                let r = self
                    .http
                    .get(format!("{}/api/v1/orders/{id}", self.base()))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?;
                let o: Value = r.json().await.ok()?;
                (o["waiting"].to_string().contains("approval")
                    || o["step"].as_str() == Some("approve"))
                .then_some(())
            },
        )
        .await;
    }

    async fn audit_text(&self, id: &str) -> String {
        self.admin_get(&format!("/api/v1/orders/{id}/audit"))
            .await
            .to_string()
    }
}

struct Session {
    cookie: String,
    csrf: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_act_under_their_names_and_keep_to_their_roles() {
    let mut env = Env::start().await;
    // Added by the CLI with the admin token.
    let (ok, out) = env.cli(
        &["add", "alice", "--role", "operator"],
        Some("alice-password-1"),
    );
    assert!(ok, "{out}");
    let (ok, out) = env.cli(
        &["add", "victor", "--role", "viewer"],
        Some("victor-password-1"),
    );
    assert!(ok, "{out}");
    let (ok, out) = env.cli(&["add", "bob", "--role", "operator"], Some("short"));
    assert!(!ok && out.contains("10 characters"), "{out}");
    let (ok, out) = env.cli(&["list"], None);
    assert!(
        ok && out.contains("alice") && out.contains("viewer"),
        "{out}"
    );

    // An operator signs in as themself.
    let (st, _) = env.login("alice", "wrong-password-0").await;
    assert_eq!(st, 401);
    let (st, alice) = env.login("alice", "alice-password-1").await;
    assert_eq!(st, 303);
    let alice = alice.unwrap();
    let me = env.session_info(&alice.cookie).await;
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("operator"))
    );

    // What she does is recorded under her name, whatever the body claims.
    env.order("P-1").await;
    let (st, v) = env
        .post_as(
            &alice,
            "/api/v1/orders/P-1/actions/hold",
            json!({"reason": "check address", "by": "mallory"}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    common::eventually(Duration::from_secs(20), "the order is held", || async {
        let o = env.admin_get("/api/v1/orders/P-1").await;
        let offers = o["interventions"].as_array()?.clone();
        offers
            .iter()
            .any(|x| x["action"] == "release" && x["allowed"] == true)
            .then_some(())
    })
    .await;
    let (st, v) = env
        .post_as(&alice, "/api/v1/orders/P-1/actions/release", json!({}))
        .await;
    assert_eq!(st, 202, "{v}");
    common::eventually(
        Duration::from_secs(20),
        "the hold and release are audited",
        || async {
            let a = env.audit_text("P-1").await;
            (a.contains("hold: check address (by alice)") && a.contains("release (by alice)"))
                .then_some(())
        },
    )
    .await;
    assert!(!env.audit_text("P-1").await.contains("mallory"));

    // A viewer reads and changes nothing.
    let (st, victor) = env.login("victor", "victor-password-1").await;
    assert_eq!(st, 303);
    let victor = victor.unwrap();
    let (st, _) = env.get_as(&victor, "/api/v1/orders?limit=5").await;
    assert_eq!(st, 200);
    let (st, v) = env
        .post_as(&victor, "/api/v1/orders/P-1/actions/approve", json!({}))
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("viewer"), "{v}");
    let (st, _) = env
        .post_as(&victor, "/api/v1/inventory/SKU-1", json!({"on_hand": 5}))
        .await;
    assert_eq!(st, 403);

    // An operator cannot manage people; an admin (the bootstrap token) can.
    let (st, v) = env
        .post_as(
            &alice,
            "/api/v1/users",
            json!({"name": "eve", "role": "admin", "password": "eve-password-1"}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = env.get_as(&alice, "/api/v1/users").await;
    assert_eq!(st, 403);

    // Her approval, by her own API token, names her.
    let (st, v) = env
        .post_as(
            &alice,
            "/api/v1/users/alice/tokens",
            json!({"label": "laptop"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let alice_token = v["token"].as_str().unwrap().to_string();
    assert!(alice_token.starts_with("oft_"));
    let r = env
        .http
        .post(format!("{}/api/v1/orders/P-1/actions/approve", env.base()))
        .bearer_auth(&alice_token)
        .json(&json!({"note": "checked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    common::eventually(
        Duration::from_secs(20),
        "the approval names her",
        || async {
            env.audit_text("P-1")
                .await
                .contains("approve by alice")
                .then_some(())
        },
    )
    .await;
    let r = env
        .http
        .get(format!("{}/api/v1/users", env.base()))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "the token has her role, not more");
    // Her stock change is journaled under her name.
    let (st, v) = env
        .post_as(&alice, "/api/v1/inventory/SKU-1", json!({"on_hand": 7}))
        .await;
    assert_eq!(st, 200, "{v}");
    let j = env.admin_get("/api/v1/inventory/journal?limit=5").await;
    assert!(j.to_string().contains("(by alice)"), "{j}");

    // Sessions and tokens survive a restart.
    env.restart().await;
    let me = env.session_info(&alice.cookie).await;
    assert_eq!(me["user"].as_str(), Some("alice"), "{me}");
    let (st, _) = env.get_as(&victor, "/api/v1/orders?limit=1").await;
    assert_eq!(st, 200);
    let r = env
        .http
        .get(format!("{}/api/v1/users/me", env.base()))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "alice");

    // A disabled user's session and token stop at once.
    let (ok, out) = env.cli(&["set", "alice", "--disable"], None);
    assert!(ok, "{out}");
    let (st, _) = env.get_as(&alice, "/api/v1/orders?limit=1").await;
    assert_eq!(st, 401);
    let r = env
        .http
        .get(format!("{}/api/v1/orders?limit=1", env.base()))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_passwords_lock_that_login_and_are_counted() {
    let env = Env::start().await;
    for (name, pw) in [("carol", "carol-password-1"), ("dan", "dan-password-11")] {
        let (ok, out) = env.cli(&["add", name, "--role", "operator"], Some(pw));
        assert!(ok, "{out}");
    }
    // Twenty wrong passwords in a row, each from its own address (so no
    // source backs off): every one refused with 401.
    for i in 0..20u8 {
        let from = std::net::IpAddr::from([127, 0, 3, 10 + i]);
        let (st, s) = env
            .login_from(Some(from), "carol", "not-carols-password")
            .await;
        assert_eq!(st, 401, "try {i}");
        assert!(s.is_none());
    }
    // Locked: even the right password waits.
    let (st, s) = env
        .login_from(
            Some("127.0.0.9".parse().unwrap()),
            "carol",
            "carol-password-1",
        )
        .await;
    assert_eq!(st, 429);
    assert!(s.is_none());
    // Another login is untouched.
    let (st, s) = env.login("dan", "dan-password-11").await;
    assert_eq!(st, 303);
    assert!(s.is_some());
    let base = env.base();
    let locks = common::metric(&env.http, &base, "orderflow_console_login_locks_total", "").await;
    assert!(locks >= 1.0, "the lock is counted: {locks}");
    let refused = common::metric(
        &env.http,
        &base,
        "orderflow_console_logins_total",
        "result=\"refused\"",
    )
    .await;
    assert!(
        refused >= 20.0,
        "every wrong password is counted: {refused}"
    );
}
