//! Workflows over HTTP: versions with their running orders, validation of
//! a candidate, a dry-run of a candidate against a real order, saving a
//! changed file, and reload.
//!
//! Validation, dry-runs and saves check the channels `notify.send` names
//! against the configuration's (see [`crate::runtime::Registry::use_channels`]).
//!
//! Saving (`PUT /api/v1/workflows/{name}`) is the console's "upload": the
//! text is validated first and nothing touches the folder unless it is
//! valid; it then replaces the file that defines that workflow (or becomes
//! `{name}.yaml`), written to a temporary file and renamed, and the folder
//! is reloaded. If the reload fails anyway (another file in the folder is
//! broken), the previous text is put back, so the folder on disk always
//! matches what runs. Orders already running keep their version.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{error, AppState};
use crate::workflow::dryrun::{self, ApprovalChoice};
use crate::workflow::Report;

/// Mounted under `/api/v1`, behind [`super::auth::gate_api`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/workflows", web::get().to(list_workflows))
        .route("/workflows/reload", web::post().to(reload_workflows))
        .route("/workflows/validate", web::post().to(validate_workflow))
        .route("/workflows/dry-run", web::post().to(dry_run))
        .route("/workflows/history", web::get().to(history))
        .route("/workflows/{name}", web::put().to(save_workflow))
        .route("/workflows/{name}/source", web::get().to(source));
}

fn diagnostics(r: &Report) -> serde_json::Value {
    json!(r
        .diagnostics
        .iter()
        .map(|d| json!({"line": d.pos.line, "col": d.pos.col, "message": d.message}))
        .collect::<Vec<_>>())
}

fn utf8(body: &[u8]) -> Result<&str, Box<HttpResponse>> {
    std::str::from_utf8(body)
        .map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, "the workflow is not UTF-8")))
}

async fn list_workflows(s: web::Data<AppState>) -> HttpResponse {
    let current = s.registry.current();
    // A counter kept with the checkpoints: no order is read.
    let running =
        crate::store::index::running_per_workflow(&s.store.trees.orders).unwrap_or_default();
    let list: Vec<_> = s
        .registry
        .versions()
        .iter()
        .map(|d| {
            json!({
                "name": d.name, "version": d.version, "key": d.key(), "path": d.path,
                "current": current.get(&d.name).is_some_and(|c| c.version == d.version),
                "orders": running.get(&d.key()).copied().unwrap_or(0),
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// One workflow save, as kept in the `history` tree.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    pub at_ms: i64,
    pub by: String,
    pub name: String,
    /// `name@version` now in force.
    pub key: String,
    /// What was in force before (none for a new workflow).
    pub replaced: Option<String>,
    pub path: String,
    pub bytes: usize,
}

fn history_key(at_ms: i64, seq: u64) -> Vec<u8> {
    let mut k = (at_ms.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `GET /api/v1/workflows/{name}/source`: the YAML of the version in
/// force, as the editor's starting point, and whether a save can be
/// written where it lives.
async fn source(s: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    let Some(d) = s.registry.current().get(&name).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no workflow {name} in force"),
        );
    };
    let dir = std::path::Path::new(&d.path)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| s.registry.dir().to_path_buf());
    let writable = dir_writable(&dir);
    HttpResponse::Ok().json(json!({
        "name": d.name, "version": d.version, "key": d.key(), "path": d.path,
        "source": d.source, "writable": writable,
        "why_not": (!writable).then(|| not_writable(&dir)),
    }))
}

/// Can a file be created in `dir`? (Tried, not guessed from modes: a
/// read-only mount or systemd's ProtectSystem says no either way.)
fn dir_writable(dir: &std::path::Path) -> bool {
    let probe = dir.join(".orderflow-write-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

fn not_writable(dir: &std::path::Path) -> String {
    format!(
        "the workflows folder {} is read-only here: set [workflows] edit_dir to a writable folder (the systemd unit's StateDirectory, /var/lib/orderflow/workflows); it starts as a copy of the bundled files",
        dir.display()
    )
}

/// `GET /api/v1/workflows/history?name=&limit=`: saves, newest first.
async fn history(
    s: web::Data<AppState>,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    let limit = super::limit_of(&q, 50, 500);
    let name = q.get("name").cloned();
    let mut out = Vec::new();
    for kv in s.store.trees.history.iter().rev() {
        let Ok((_, v)) = kv else { break };
        let Ok(saved) = crate::store::codec::decode::<Saved>(&v) else {
            continue;
        };
        if name.as_deref().is_none_or(|n| n == saved.name) {
            out.push(saved);
            if out.len() >= limit {
                break;
            }
        }
    }
    HttpResponse::Ok().json(json!({ "saves": out }))
}

async fn reload_workflows(s: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    if let Err(r) = super::auth::require(&req, crate::people::Role::Admin) {
        return r.into();
    }
    match s.registry.reload().await {
        Ok(keys) => HttpResponse::Ok().json(json!({ "loaded": keys })),
        Err(e) => {
            tracing::warn!(error = %e, "Workflow reload rejected; the previous versions keep running");
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
    }
}

/// `POST /api/v1/workflows/validate`: a candidate YAML in the body; every
/// problem with its line and column.
async fn validate_workflow(s: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let text = match utf8(&body) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let channels = s.registry.channels();
    match crate::workflow::parse_workflow_with("candidate.yaml", text, channels.as_ref()) {
        Ok(d) => HttpResponse::Ok().json(
            json!({"valid": true, "name": d.name, "version": d.version, "steps": d.steps.len()}),
        ),
        Err(r) => HttpResponse::Ok().json(json!({
            "valid": false,
            "diagnostics": diagnostics(&r),
        })),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    pub yaml: String,
    pub order_id: String,
    /// `approve`, `reject`, or absent (the approval times out).
    #[serde(default)]
    pub approval: Option<String>,
}

/// Dry-runs in progress at once (the rest get 429).
static DRY_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// How long a dry-run may take before its answer is 503 (the walk itself
/// cannot be interrupted; it ends on its own, bounded by the interpreter's
/// step limit and the expression cost limit).
pub const DRY_RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST /api/v1/workflows/dry-run`: a candidate walked against a real
/// order's details, with stubbed effects (see [`dryrun`]), on the blocking
/// pool, one at a time, within [`DRY_RUN_DEADLINE`].
async fn dry_run(s: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: DryRunRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let approval = match req.approval.as_deref() {
        None | Some("") | Some("none") => ApprovalChoice::Timeout,
        Some("approve") => ApprovalChoice::Approve,
        Some("reject") => ApprovalChoice::Reject,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("approval must be approve, reject or absent, not {other}"),
            )
        }
    };
    let channels = s.registry.channels();
    let def = match crate::workflow::parse_workflow_with(
        "candidate.yaml",
        &req.yaml,
        channels.as_ref(),
    ) {
        Ok(d) => d,
        Err(r) => {
            return HttpResponse::Ok().json(json!({"valid": false, "diagnostics": diagnostics(&r)}))
        }
    };
    let order = match s.store.load_order(&req.order_id) {
        Ok(Some(rec)) => match rec.order {
            Some(o) => o,
            None => {
                return error(
                    StatusCode::CONFLICT,
                    format!("order {} has no details yet", req.order_id),
                )
            }
        },
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no order {}", req.order_id)),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // Off the HTTP worker (there are only as many as cores), one at a
    // time, and within a deadline: a costly candidate must not stall
    // webhooks and health checks. The permit goes with the blocking task,
    // so an abandoned walk still counts until it really ends.
    let Ok(permit) = DRY_RUNS.try_acquire() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "another dry-run is running; try again when it has finished",
        );
    };
    let key = def.key();
    let walk = tokio::task::spawn_blocking(move || {
        let _one = permit;
        dryrun::run(&def, &order, &[], approval)
    });
    let run = match tokio::time::timeout(DRY_RUN_DEADLINE, walk).await {
        Ok(Ok(run)) => run,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "A dry-run failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the dry-run failed");
        }
        Err(_) => {
            tracing::warn!(workflow = %key, "A dry-run missed its deadline and was abandoned");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the dry-run did not finish within {} s; simplify the workflow's expressions or loops",
                    DRY_RUN_DEADLINE.as_secs()
                ),
            );
        }
    };
    let effects: Vec<&str> = run
        .lines
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("-> "))
        .collect();
    HttpResponse::Ok().json(json!({
        "valid": true,
        "workflow": key,
        "trace": run.lines.iter().map(|l| json!({"step": "", "what": l.trim_start()})).collect::<Vec<_>>(),
        "effects": effects,
        "outcome": crate::workflow::interpreter::state_name(&run.instance.state),
    }))
}

/// Workflow names that can be file names.
fn file_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !name.starts_with('-')
}

/// One save at a time: two saves racing on the same file would leave
/// either text with the other's reload.
static SAVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `PUT /api/v1/workflows/{name}` (see the module doc).
async fn save_workflow(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let who = match super::auth::require(&req, crate::people::Role::Admin) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let name = name.into_inner();
    if !file_name_ok(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            "a workflow name is 1-64 of a-z, 0-9, _ and -",
        );
    }
    let text = match utf8(&body) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let channels = s.registry.channels();
    let def = match crate::workflow::parse_workflow_with(
        &format!("{name}.yaml"),
        text,
        channels.as_ref(),
    ) {
        Ok(d) => d,
        Err(r) => {
            return HttpResponse::UnprocessableEntity()
                .json(json!({"valid": false, "diagnostics": diagnostics(&r)}))
        }
    };
    if def.name != name {
        return HttpResponse::UnprocessableEntity().json(json!({"valid": false, "diagnostics": [{
            "line": 1, "col": 1,
            "message": format!("the file defines workflow \"{}\" but is saved as \"{name}\"", def.name),
        }]}));
    }
    let _one = SAVING.lock().await;
    let path = s
        .registry
        .current()
        .get(&name)
        .map(|d| PathBuf::from(&d.path))
        .unwrap_or_else(|| s.registry.dir().join(format!("{name}.yaml")));
    let replaced = s.registry.current().get(&name).map(|d| d.key());
    if let Some(dir) = path.parent() {
        if !dir_writable(dir) {
            return error(StatusCode::CONFLICT, not_writable(dir));
        }
    }
    let previous = std::fs::read(&path).ok();
    if let Err(e) = write_atomically(&path, text.as_bytes()) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not write {}: {e}", path.display()),
        );
    }
    match s.registry.reload().await {
        Ok(keys) => {
            tracing::info!(workflow = %def.key(), path = %path.display(), by = %who.name, "Workflow saved and reloaded");
            // Every save, in the history: who, which version over which.
            let now = s.runtime.shared.clock.now_ms();
            let saved = Saved {
                at_ms: now,
                by: who.actor(None),
                name: def.name.clone(),
                key: def.key(),
                replaced,
                path: path.display().to_string(),
                bytes: text.len(),
            };
            let op = crate::store::codec::encode(&saved).map(|value| crate::store::Op::Put {
                tree: crate::store::Tree::History,
                key: history_key(now, s.store.next_id().unwrap_or_default()),
                value,
            });
            let recorded = match op {
                Ok(op) => s.store.commit(vec![op]).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = recorded {
                tracing::warn!(workflow = %def.key(), error = %e, "Could not record a workflow save in the history");
            }
            HttpResponse::Ok().json(json!({
                "valid": true, "name": def.name, "version": def.version, "key": def.key(), "loaded": keys,
            }))
        }
        Err(e) => {
            let restored = match previous {
                Some(old) => write_atomically(&path, &old),
                None => std::fs::remove_file(&path),
            };
            if let Err(r) = restored {
                tracing::error!(path = %path.display(), error = %r, "Could not restore a workflow file after a failed reload");
            }
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
    }
}

/// Write beside, fsync, rename: a crash leaves the old file or the new one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("yaml.saving");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
