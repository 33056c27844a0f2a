//! Workflows edited in place: with `[workflows] edit_dir` (the systemd
//! unit's writable StateDirectory), the first start copies the bundled
//! files in; the editor reads the running YAML from there, saves go there
//! (the bundled folder is never written), and every save is in the history
//! with who made it.

mod common;

use common::{wait_ready, Daemon};
use serde_json::Value;

const TOKEN: &str = "workflow-edit-token-0123456789";

const WORKFLOW: &str = r#"name: simple
trigger:
  on: AWAITING_SHIPMENT
steps:
  - id: done
    end: done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editable_folder_starts_from_the_bundled_files_and_keeps_every_save() {
    let dir = tempfile::tempdir().unwrap();
    let bundled = dir.path().join("bundled");
    let editable = dir.path().join("state/workflows");
    std::fs::create_dir_all(&bundled).unwrap();
    std::fs::write(bundled.join("simple.yaml"), WORKFLOW).unwrap();
    let edit_dir = editable.to_str().unwrap().to_string();
    let d = Daemon::start(
        &dir.path().join("data"),
        &bundled,
        &dir.path().join("daemon.log"),
        &[
            ("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN),
            ("ORDERFLOW_WORKFLOWS__EDIT_DIR", edit_dir.as_str()),
        ],
    );
    let http = reqwest::Client::new();
    wait_ready(&http, &d.base).await;
    assert!(
        editable.join("simple.yaml").exists(),
        "seeded from the bundled files"
    );

    let get = |path: String| {
        let http = http.clone();
        let base = d.base.clone();
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let src = get("/api/v1/workflows/simple/source".into()).await;
    assert_eq!(src["source"], WORKFLOW);
    assert_eq!(src["writable"], true);
    assert!(
        src["path"].as_str().unwrap().starts_with(&edit_dir),
        "{src}"
    );
    let old_key = src["key"].as_str().unwrap().to_string();

    let changed = WORKFLOW.replace("end: done", "end: finished");
    let r = http
        .put(format!("{}/api/v1/workflows/simple", d.base))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/yaml")
        .body(changed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        std::fs::read_to_string(editable.join("simple.yaml")).unwrap(),
        changed
    );
    assert_eq!(
        std::fs::read_to_string(bundled.join("simple.yaml")).unwrap(),
        WORKFLOW,
        "the bundled file is never written"
    );
    let h = get("/api/v1/workflows/history?name=simple".into()).await;
    let save = &h["saves"][0];
    assert_eq!(save["by"], "admin-token", "{h}");
    assert_eq!(save["replaced"], old_key.as_str(), "{h}");
    assert_ne!(save["key"], old_key.as_str());

    // A restart loads the edited folder, not the bundled one (it is not
    // seeded again).
    let status = d.terminate();
    assert!(status.success());
    let d = Daemon::start(
        &dir.path().join("data"),
        &bundled,
        &dir.path().join("daemon.log"),
        &[
            ("ORDERFLOW_SERVER__ADMIN_TOKEN", TOKEN),
            ("ORDERFLOW_WORKFLOWS__EDIT_DIR", edit_dir.as_str()),
        ],
    );
    wait_ready(&http, &d.base).await;
    let r = http
        .get(format!("{}/api/v1/workflows/simple/source", d.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let src: Value = r.json().await.unwrap();
    assert_eq!(src["source"], changed.as_str());
}
