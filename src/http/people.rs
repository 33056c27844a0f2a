//! People over HTTP (`/api/v1/users…`): admins add, change and remove
//! users; anyone makes and revokes their own API tokens; `GET
//! /api/v1/users/me` says who is asking.
//!
//! - `GET /api/v1/users`: every user with their tokens' ids and labels.
//! - `POST /api/v1/users` `{name, role, password}`: 201, or 409 if taken.
//! - `PUT /api/v1/users/{name}` `{role?, password?, disabled?}`.
//! - `DELETE /api/v1/users/{name}`: with their tokens; their sessions end.
//! - `POST /api/v1/users/{name}/tokens` `{label?}`: the token, shown once.
//! - `DELETE /api/v1/users/{name}/tokens/{id}`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::{principal, require};
use super::{error, json_body, AppState};
use crate::people::{Error, Role};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(add))
        .route("/users/me", web::get().to(me))
        .route("/users/{name}", web::put().to(update))
        .route("/users/{name}", web::delete().to(remove))
        .route("/users/{name}/tokens", web::post().to(new_token))
        .route("/users/{name}/tokens/{id}", web::delete().to(revoke));
}

fn status(e: &Error) -> StatusCode {
    match e {
        Error::BadName(_) | Error::ShortPassword | Error::BadRole(_) | Error::Reserved(_) => {
            StatusCode::BAD_REQUEST
        }
        Error::Exists(_) => StatusCode::CONFLICT,
        Error::NoUser(_) => StatusCode::NOT_FOUND,
        Error::Store(crate::store::Error::DiskFull { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Error::Hash(_) | Error::Store(_) | Error::Codec(_) | Error::Sled(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn fail(e: Error) -> HttpResponse {
    error(status(&e), e.to_string())
}

async fn me(req: HttpRequest) -> HttpResponse {
    let p = principal(&req);
    HttpResponse::Ok().json(json!({"name": p.name, "role": p.role}))
}

async fn list(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&req, Role::Admin) {
        return r.into();
    }
    match s.people.list() {
        Ok(users) => HttpResponse::Ok().json(json!({ "users": users })),
        Err(e) => fail(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn add(s: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let who = match require(&req, Role::Admin) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let u: NewUser = match json_body(&body) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let role: Role = match u.role.parse() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match s.people.add(&u.name, role, &u.password, &who.name).await {
        Ok(user) => HttpResponse::Created().json(json!({
            "name": user.name, "role": user.role, "created_by": user.created_by,
        })),
        Err(e) => fail(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn update(
    s: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let who = principal(&req);
    let c: Change = match json_body(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    // Anyone may change their own password; everything else is an
    // admin's.
    let own_password_only = who.name == *name && c.role.is_none() && c.disabled.is_none();
    if !own_password_only {
        if let Err(r) = require(&req, Role::Admin) {
            return r.into();
        }
    }
    let role = match c.role.as_deref().map(str::parse::<Role>).transpose() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match s.people.update(&name, role, c.password, c.disabled).await {
        Ok(u) => {
            tracing::info!(user = %u.name, by = %who.name, "User changed");
            HttpResponse::Ok().json(json!({"name": u.name, "role": u.role, "disabled": u.disabled}))
        }
        Err(e) => fail(e),
    }
}

async fn remove(s: web::Data<AppState>, req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let who = match require(&req, Role::Admin) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match s.people.remove(&name).await {
        Ok(()) => {
            tracing::info!(user = %name, by = %who.name, "User removed");
            HttpResponse::NoContent().finish()
        }
        Err(e) => fail(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewToken {
    label: String,
}

/// Yourself, or anyone if you are an admin.
fn self_or_admin(req: &HttpRequest, name: &str) -> Result<(), super::auth::Denied> {
    if principal(req).name == name {
        return Ok(());
    }
    require(req, Role::Admin).map(|_| ())
}

async fn new_token(
    s: web::Data<AppState>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(r) = self_or_admin(&req, &name) {
        return r.into();
    }
    let t: NewToken = if body.is_empty() {
        NewToken::default()
    } else {
        match json_body(&body) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
        }
    };
    match s.people.new_token(&name, &t.label).await {
        Ok((secret, rec)) => HttpResponse::Created().json(json!({
            "token": secret, "id": rec.id, "user": rec.user, "label": rec.label,
            "note": "shown once: only its hash is kept",
        })),
        Err(e) => fail(e),
    }
}

async fn revoke(
    s: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (name, id) = path.into_inner();
    if let Err(r) = self_or_admin(&req, &name) {
        return r.into();
    }
    match s.people.revoke_token(&name, &id).await {
        Ok(true) => HttpResponse::NoContent().finish(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no token {id} of {name}")),
        Err(e) => fail(e),
    }
}
