//! People: the console's named users with roles, their sessions and their
//! API tokens, in the store's `people` tree.
//!
//! - **Users** (`u<name>`): a name, a role ([`Role`]: viewer, operator,
//!   admin) and an Argon2id password hash (a PHC string; the password
//!   itself is never stored). Created by `orderflow users add` or the
//!   console's People page (admins only).
//! - **Sessions** (`s<sha256 of the cookie>`): who, the CSRF token and
//!   when it expires (wall clock). Kept in the store, so a restart logs
//!   nobody out; only the cookie's hash is stored, so a copy of the store
//!   does not log anyone in.
//! - **API tokens** (`t<sha256 of the token>`): `oft_` and 64 hex digits,
//!   shown once when made, for scripts and the CLI; each acts as its user
//!   with the user's role.
//!
//! The role is read from the user's record on every request, so a change
//! of role, a disabled user or a removed one takes effect at once, for
//! sessions and tokens alike.
//!
//! The admin token (`[server] admin_token`) stays: it logs in as the
//! bootstrap admin and is what automation uses. What a person did is
//! recorded under their name in the order's audit and the stock journal.

use std::collections::HashMap;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{codec, Op, Store, Tree};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a user name is 1-64 of a-z, 0-9, '.', '_', '-' and '@' (got {0:?})")]
    BadName(String),
    #[error("a password needs at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("unknown role {0:?} (one of viewer, operator, admin)")]
    BadRole(String),
    #[error("there is already a user {0}")]
    Exists(String),
    #[error("no user {0}")]
    NoUser(String),
    #[error("the name {0:?} is reserved")]
    Reserved(String),
    #[error("password hash: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Codec(#[from] crate::store::codec::Error),
    #[error(transparent)]
    Sled(#[from] sled::Error),
}

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 10;
/// The prefix of every user API token.
pub const TOKEN_PREFIX: &str = "oft_";
/// The name the admin token acts under when a request names nobody.
pub const ADMIN_TOKEN_NAME: &str = "admin-token";

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Works orders: interventions, approvals, bulk actions, stock and
    /// mappings.
    Operator,
    /// Everything: people, workflows, shops, backups, retention.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(Error::BadRole(other.to_string())),
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id, as a PHC string.
    pub password: String,
    pub created_ms: i64,
    pub created_by: String,
    pub disabled: bool,
}

/// What the API shows of a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
    pub created_by: String,
    pub disabled: bool,
    pub tokens: Vec<TokenView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRec {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRec {
    pub user: String,
    pub csrf: String,
    pub expires_ms: i64,
}

/// Who made a request, as the gate found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The person's name; [`ADMIN_TOKEN_NAME`] for the admin token.
    pub name: String,
    pub role: Role,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A console session.
    Session,
    /// A user's API token.
    UserToken,
    /// The admin token (automation, the bootstrap login).
    AdminToken,
    /// No token configured (loopback only).
    Open,
}

impl Principal {
    /// The name an action is recorded under. The admin token and an open
    /// daemon are automation: a `by` they give is kept (a script names
    /// itself); a person is always recorded as themself.
    pub fn actor(&self, given: Option<&str>) -> String {
        match (self.via, given.map(str::trim).filter(|g| !g.is_empty())) {
            (Via::AdminToken | Via::Open, Some(g)) => g.chars().take(64).collect(),
            (Via::Open, None) => "operator".to_string(),
            _ => self.name.clone(),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn user_key(name: &str) -> Vec<u8> {
    let mut k = vec![b'u'];
    k.extend_from_slice(name.as_bytes());
    k
}

fn session_key(id: &str) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(digest(id).as_bytes());
    k
}

fn token_key(token: &str) -> Vec<u8> {
    let mut k = vec![b't'];
    k.extend_from_slice(digest(token).as_bytes());
    k
}

pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        });
    if !ok {
        return Err(Error::BadName(name.to_string()));
    }
    if name == ADMIN_TOKEN_NAME {
        return Err(Error::Reserved(name.to_string()));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes): about 20 ms on
/// one core. Call off the async workers.
pub fn hash_password(password: &str) -> Result<String, Error> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(Error::ShortPassword);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of nothing in particular, verified when the name is unknown so
/// a wrong name takes as long as a wrong password.
static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Most sessions cached in memory; the store has them all.
const CACHE: usize = 4096;

/// The people tree, with the live sessions cached.
#[derive(Clone)]
pub struct People {
    store: Store,
    ttl: Duration,
    cache: std::sync::Arc<Mutex<HashMap<String, SessionRec>>>,
}

impl People {
    pub fn new(store: Store, ttl: Duration) -> People {
        People {
            store,
            ttl,
            cache: Default::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn tree(&self) -> &sled::Tree {
        &self.store.trees.people
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, Error> {
        match self.tree().get(user_key(name))? {
            None => Ok(None),
            Some(v) => Ok(Some(codec::decode(&v)?)),
        }
    }

    async fn put<T: Serialize>(&self, key: Vec<u8>, v: &T) -> Result<(), Error> {
        let value = codec::encode(v)?;
        self.store
            .commit(vec![Op::Put {
                tree: Tree::People,
                key,
                value,
            }])
            .await?;
        Ok(())
    }

    async fn del(&self, keys: Vec<Vec<u8>>) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let ops = keys
            .into_iter()
            .map(|key| Op::Del {
                tree: Tree::People,
                key,
            })
            .collect();
        self.store.commit(ops).await?;
        Ok(())
    }

    /// Adds a user (the password hashed on the blocking pool).
    pub async fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        by: &str,
    ) -> Result<User, Error> {
        check_name(name)?;
        if self.user(name)?.is_some() {
            return Err(Error::Exists(name.to_string()));
        }
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Hash(e.to_string()))??;
        let user = User {
            name: name.to_string(),
            role,
            password: hash,
            created_ms: now_ms(),
            created_by: by.to_string(),
            disabled: false,
        };
        self.put(user_key(name), &user).await?;
        tracing::info!(user = %name, role = role.as_str(), by = %by, "User added");
        Ok(user)
    }

    /// Changes a user's role, password or disabled flag.
    pub async fn update(
        &self,
        name: &str,
        role: Option<Role>,
        password: Option<String>,
        disabled: Option<bool>,
    ) -> Result<User, Error> {
        let mut user = self
            .user(name)?
            .ok_or_else(|| Error::NoUser(name.to_string()))?;
        if let Some(r) = role {
            user.role = r;
        }
        if let Some(d) = disabled {
            user.disabled = d;
        }
        if let Some(p) = password {
            user.password = tokio::task::spawn_blocking(move || hash_password(&p))
                .await
                .map_err(|e| Error::Hash(e.to_string()))??;
        }
        self.put(user_key(name), &user).await?;
        Ok(user)
    }

    /// Removes a user with their tokens; their sessions end with them (a
    /// session of an unknown user is refused).
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        if self.user(name)?.is_none() {
            return Err(Error::NoUser(name.to_string()));
        }
        let mut keys = vec![user_key(name)];
        for kv in self.tree().scan_prefix(b"t") {
            let (k, v) = kv?;
            let t: TokenRec = codec::decode(&v)?;
            if t.user == name {
                keys.push(k.to_vec());
            }
        }
        self.del(keys).await?;
        self.cache.lock().retain(|_, s| s.user != name);
        Ok(())
    }

    /// Every user, with their tokens (never a hash).
    pub fn list(&self) -> Result<Vec<UserView>, Error> {
        let mut tokens: HashMap<String, Vec<TokenView>> = HashMap::new();
        for kv in self.tree().scan_prefix(b"t") {
            let (_, v) = kv?;
            let t: TokenRec = codec::decode(&v)?;
            tokens.entry(t.user.clone()).or_default().push(TokenView {
                id: t.id,
                label: t.label,
                created_ms: t.created_ms,
            });
        }
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(b"u") {
            let (_, v) = kv?;
            let u: User = codec::decode(&v)?;
            out.push(UserView {
                tokens: tokens.remove(&u.name).unwrap_or_default(),
                name: u.name,
                role: u.role,
                created_ms: u.created_ms,
                created_by: u.created_by,
                disabled: u.disabled,
            });
        }
        Ok(out)
    }

    /// Is this the user's password? (Blocking: Argon2.) A wrong name costs
    /// as long as a wrong password.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<User>, Error> {
        match self.user(name)? {
            Some(u) if !u.disabled => Ok(verify_password(&u.password, password).then_some(u)),
            _ => {
                let decoy = DECOY.get_or_init(|| {
                    hash_password("not anyone's password at all").unwrap_or_default()
                });
                let _ = verify_password(decoy, password);
                Ok(None)
            }
        }
    }

    /// A new API token for `user`, returned once (only its hash is kept).
    pub async fn new_token(&self, user: &str, label: &str) -> Result<(String, TokenRec), Error> {
        if self.user(user)?.is_none() {
            return Err(Error::NoUser(user.to_string()));
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex());
        let rec = TokenRec {
            id: random_hex()[..12].to_string(),
            user: user.to_string(),
            label: label.chars().take(100).collect(),
            created_ms: now_ms(),
        };
        self.put(token_key(&secret), &rec).await?;
        Ok((secret, rec))
    }

    /// Revokes a token by its id.
    pub async fn revoke_token(&self, user: &str, id: &str) -> Result<bool, Error> {
        let mut keys = Vec::new();
        for kv in self.tree().scan_prefix(b"t") {
            let (k, v) = kv?;
            let t: TokenRec = codec::decode(&v)?;
            if t.user == user && t.id == id {
                keys.push(k.to_vec());
            }
        }
        let found = !keys.is_empty();
        self.del(keys).await?;
        Ok(found)
    }

    /// The person an API token stands for, if it is live.
    pub fn by_token(&self, token: &str) -> Result<Option<Principal>, Error> {
        let Some(v) = self.tree().get(token_key(token))? else {
            return Ok(None);
        };
        let t: TokenRec = codec::decode(&v)?;
        Ok(self.live_user(&t.user)?.map(|u| Principal {
            name: u.name,
            role: u.role,
            via: Via::UserToken,
        }))
    }

    /// The user of that name, unless disabled or gone. The admin token's
    /// bootstrap login is the admin.
    fn live_user(&self, name: &str) -> Result<Option<User>, Error> {
        if name == ADMIN_TOKEN_NAME {
            return Ok(Some(User {
                name: name.to_string(),
                role: Role::Admin,
                password: String::new(),
                created_ms: 0,
                created_by: String::new(),
                disabled: false,
            }));
        }
        Ok(self.user(name)?.filter(|u| !u.disabled))
    }

    /// A new session for `user`: its id (the cookie) and CSRF token,
    /// durable before it is handed out.
    pub async fn create_session(&self, user: &str) -> Result<(String, SessionRec), Error> {
        let id = random_hex();
        let rec = SessionRec {
            user: user.to_string(),
            csrf: random_hex(),
            expires_ms: now_ms() + self.ttl.as_millis() as i64,
        };
        self.put(session_key(&id), &rec).await?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(id.clone(), rec.clone());
        Ok((id, rec))
    }

    /// The live session `id` names, with the person and their role now.
    pub fn session(&self, id: &str) -> Option<(SessionRec, Principal)> {
        let now = now_ms();
        let cached = self.cache.lock().get(id).cloned();
        let rec = match cached {
            Some(r) => r,
            None => {
                let v = self.tree().get(session_key(id)).ok()??;
                let r: SessionRec = codec::decode(&v).ok()?;
                let mut cache = self.cache.lock();
                if cache.len() >= CACHE {
                    cache.clear();
                }
                cache.insert(id.to_string(), r.clone());
                r
            }
        };
        if rec.expires_ms <= now {
            self.cache.lock().remove(id);
            return None;
        }
        let user = self.live_user(&rec.user).ok()??;
        Some((
            rec,
            Principal {
                name: user.name,
                role: user.role,
                via: Via::Session,
            },
        ))
    }

    pub async fn end_session(&self, id: &str) {
        self.cache.lock().remove(id);
        if let Err(e) = self.del(vec![session_key(id)]).await {
            tracing::warn!(error = %e, "Could not delete a session");
        }
    }

    /// Deletes expired sessions (at start and on the retention schedule).
    pub async fn prune_sessions(&self) -> Result<usize, Error> {
        let now = now_ms();
        let mut keys = Vec::new();
        for kv in self.tree().scan_prefix(b"s") {
            let (k, v) = kv?;
            if codec::decode::<SessionRec>(&v).map_or(true, |s| s.expires_ms <= now) {
                keys.push(k.to_vec());
            }
        }
        let n = keys.len();
        self.del(keys).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles_are_checked() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("ops.lead@shop").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Alice").is_err());
        assert!(check_name("a b").is_err());
        assert!(matches!(
            check_name(ADMIN_TOKEN_NAME),
            Err(Error::Reserved(_))
        ));
        assert_eq!("Operator".parse::<Role>().unwrap(), Role::Operator);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        assert!(matches!(hash_password("short"), Err(Error::ShortPassword)));
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery!"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn the_admin_token_keeps_a_scripts_name_and_a_person_is_always_themself() {
        let admin = Principal {
            name: ADMIN_TOKEN_NAME.into(),
            role: Role::Admin,
            via: Via::AdminToken,
        };
        assert_eq!(admin.actor(Some("nightly-script")), "nightly-script");
        assert_eq!(admin.actor(None), ADMIN_TOKEN_NAME);
        let alice = Principal {
            name: "alice".into(),
            role: Role::Operator,
            via: Via::Session,
        };
        assert_eq!(alice.actor(Some("bob")), "alice");
    }
}
