//! Web Push channels: a browser notification on every device subscribed to
//! the channel, through that browser's push service.
//!
//! ```toml
//! [notify.channels.phones]
//! kind = "web_push"
//! sub = "mailto:ops@example.com"   # who push services may contact (RFC 8292)
//! ttl = "12h"                      # kept this long for a device offline
//! urgency = "high"
//! ```
//!
//! **The wire.** One `POST` to the subscription's endpoint (RFC 8030 §5)
//! with:
//!
//! - `Authorization: vapid t=<JWT>, k=<public key>` (RFC 8292): an ES256
//!   JWT whose `aud` is the push service's origin, `exp` 12 hours on (at
//!   most 24 are allowed) and `sub` the channel's contact, signed with this
//!   daemon's VAPID key; `k` its public key, the uncompressed P-256 point in
//!   base64url;
//! - `Content-Encoding: aes128gcm` and the body encrypted per RFC 8291 for
//!   the subscription's `p256dh` key and `auth` secret (a fresh ECDH key
//!   and salt per message; one record, RFC 8188);
//! - `TTL`, `Urgency`.
//!
//! The payload is JSON the console's service worker shows
//! ([`payload`]): `{title, body, kind, order_id, url, tag, at}`. 2xx is
//! delivered; 404 and 410 mean the subscription is gone, so it is
//! forgotten; 408, 429 and 5xx are tried again; the rest is final.
//!
//! **The key.** Given as `[notify] vapid_private_key`, or made on first
//! start and kept in the store's `push` tree, sealed with the secrets key
//! ([`crate::shops::secrets::Sealer`]), so a copy of the data directory
//! cannot sign for this daemon. Browsers subscribe with the public key
//! (`GET /api/v1/push/key`); a subscription made for one key does not work
//! with another.
//!
//! **The devices.** `POST /api/v1/push/subscriptions` stores a browser's
//! subscription (`{endpoint, keys: {p256dh, auth}}`) under a channel, at
//! most [`MAX_PER_CHANNEL`] per channel; the endpoint must be `https:`
//! (`http:` only on a loopback address, for tests).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ChannelConfig, Event, Urgency};
use crate::shops::secrets::Sealer;
use crate::store::{codec, Op, Store, Tree};

/// Devices one channel keeps at most.
pub const MAX_PER_CHANNEL: usize = 50;
/// How long a VAPID token is valid (RFC 8292 §2: at most 24 hours).
pub const TOKEN_VALIDITY_S: i64 = 12 * 3600;
/// The longest endpoint taken.
const MAX_ENDPOINT: usize = 2048;
/// The longest notification text sent (bytes): the encrypted body must
/// stay within the 4096 bytes every push service takes.
const MAX_BODY_TEXT: usize = 1500;
/// The key of the stored VAPID key.
const KEY_VAPID: &[u8] = b"k";
/// The prefix of the subscriptions.
const PREFIX_SUB: u8 = b's';
/// What the sealed VAPID key is bound to.
const VAPID_AAD: &[u8] = b"push/vapid-private-key";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the subscription's endpoint must be an https: URL (http: only to a loopback address) of at most {MAX_ENDPOINT} characters"
    )]
    BadEndpoint,
    #[error("the subscription's keys.p256dh is not a P-256 public key (65 bytes, base64url)")]
    BadP256dh,
    #[error("the subscription's keys.auth is not a 16-byte secret (base64url)")]
    BadAuth,
    #[error("not a P-256 private key (32 bytes, base64url)")]
    BadVapidKey,
    #[error("channel {0:?} already has {MAX_PER_CHANNEL} devices: remove one first")]
    Full(String),
    #[error("encrypting the push message: {0}")]
    Encrypt(String),
    #[error("signing the VAPID token: {0}")]
    Sign(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Codec(#[from] codec::Error),
    #[error(transparent)]
    Sled(#[from] sled::Error),
}

/// base64url, padded or not (browsers write it unpadded, some libraries
/// padded).
const B64_ANY: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Is `s` a contact RFC 8292 takes for `sub`: `mailto:` with an address,
/// or an `https:` URL?
pub fn valid_contact(s: &str) -> bool {
    match reqwest::Url::parse(s) {
        Ok(u) if u.scheme() == "mailto" => u.path().contains('@'),
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        _ => false,
    }
}

/// This daemon's application server key (VAPID, RFC 8292): ECDSA on P-256.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key.
    pub fn generate() -> VapidKey {
        loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            // All but a 2^-128 share of 32-byte strings are valid scalars.
            if let Ok(k) = VapidKey::from_private_bytes(&bytes) {
                return k;
            }
        }
    }

    /// The key whose private scalar is `bytes` (32, big-endian).
    pub fn from_private_bytes(bytes: &[u8]) -> Result<VapidKey, Error> {
        let signing = SigningKey::from_slice(bytes).map_err(|_| Error::BadVapidKey)?;
        let point = signing.verifying_key().to_encoded_point(false);
        Ok(VapidKey {
            public: b64(point.as_bytes()),
            signing,
        })
    }

    /// The key from its base64url private scalar (`vapid_private_key`).
    pub fn from_base64(s: &str) -> Result<VapidKey, Error> {
        let bytes = B64_ANY.decode(s.trim()).map_err(|_| Error::BadVapidKey)?;
        VapidKey::from_private_bytes(&bytes)
    }

    /// The private scalar (32 bytes), for sealing.
    fn private_bytes(&self) -> Vec<u8> {
        self.signing.to_bytes().to_vec()
    }

    /// The public key: the uncompressed point (65 bytes) in base64url, as
    /// `PushManager.subscribe({applicationServerKey})` takes it.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        *self.signing.verifying_key()
    }

    /// The VAPID JWT for a push to `endpoint`: `aud` its origin, `exp`
    /// [`TOKEN_VALIDITY_S`] after `now_s`, `sub` the contact.
    pub fn token(&self, endpoint: &reqwest::Url, sub: &str, now_s: i64) -> Result<String, Error> {
        let header = b64(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": now_s + TOKEN_VALIDITY_S,
            "sub": sub,
        });
        let claims = serde_json::to_vec(&claims).map_err(|e| Error::Sign(e.to_string()))?;
        let signing_input = format!("{header}.{}", b64(&claims));
        // ES256 (RFC 7518 §3.4): SHA-256, the signature as r ‖ s.
        let sig: Signature = self
            .signing
            .try_sign(signing_input.as_bytes())
            .map_err(|e| Error::Sign(e.to_string()))?;
        Ok(format!("{signing_input}.{}", b64(&sig.to_bytes())))
    }

    /// The `Authorization` header value: `vapid t=<JWT>, k=<public key>`.
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
        sub: &str,
        now_s: i64,
    ) -> Result<String, Error> {
        Ok(format!(
            "vapid t={}, k={}",
            self.token(endpoint, sub, now_s)?,
            self.public
        ))
    }
}

/// A browser's push subscription as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionJson {
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub channel: String,
    pub endpoint: String,
    /// The browser's P-256 key, base64url (65 bytes uncompressed).
    pub p256dh: String,
    /// The browser's auth secret, base64url (16 bytes).
    pub auth: String,
    pub created_ms: i64,
    /// Who subscribed the device.
    pub created_by: String,
}

/// Checks an endpoint: an absolute `https:` URL (`http:` to a loopback
/// address), no credentials in it.
pub fn check_endpoint(endpoint: &str) -> Result<reqwest::Url, Error> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(Error::BadEndpoint);
    }
    let u = reqwest::Url::parse(endpoint).map_err(|_| Error::BadEndpoint)?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(Error::BadEndpoint);
    }
    let host = u.host_str().ok_or(Error::BadEndpoint)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(Error::BadEndpoint),
    }
}

fn ua_public(p256dh: &str) -> Result<p256::PublicKey, Error> {
    let bytes = B64_ANY
        .decode(p256dh.trim())
        .map_err(|_| Error::BadP256dh)?;
    if bytes.len() != 65 || bytes[0] != 4 {
        return Err(Error::BadP256dh);
    }
    p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| Error::BadP256dh)
}

fn ua_auth(auth: &str) -> Result<[u8; 16], Error> {
    let bytes = B64_ANY.decode(auth.trim()).map_err(|_| Error::BadAuth)?;
    bytes.try_into().map_err(|_| Error::BadAuth)
}

/// `message` encrypted for a browser per RFC 8291 (`aes128gcm`): the
/// header (salt, record size, the sender's one-time public key) and one
/// record.
pub fn encrypt(message: &[u8], p256dh: &str, auth: &str) -> Result<Vec<u8>, Error> {
    let public = ua_public(p256dh)?;
    let auth = ua_auth(auth)?;
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    web_push_native::encrypt(message.to_vec(), &public, &auth)
        .map_err(|e| Error::Encrypt(e.to_string()))
}

/// What a web_push channel adds to each message.
#[derive(Debug, Clone)]
pub struct Target {
    pub sub: String,
    pub ttl_s: u64,
    pub urgency: Urgency,
}

impl Target {
    pub fn new(c: &ChannelConfig) -> Target {
        Target {
            sub: c.sub.clone().unwrap_or_default().trim().to_string(),
            ttl_s: c.push_ttl().as_secs(),
            urgency: c.urgency.unwrap_or_default(),
        }
    }
}

/// One push, ready to POST (again, on a retry).
#[derive(Debug, Clone)]
pub struct Request {
    pub endpoint: reqwest::Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The JSON the service worker shows: the title names the order (or says
/// it is an alert), the body is the text; `url` opens the order.
pub fn payload(event: &Event) -> Vec<u8> {
    let mut body = event.text.trim().to_string();
    if body.len() > MAX_BODY_TEXT {
        let mut cut = MAX_BODY_TEXT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    let (title, url, tag) = match event.about_order() {
        Some(id) => (
            format!("orderflow: order {id}"),
            format!("/#/orders/{}", fragment(id)),
            format!("orderflow-order-{id}"),
        ),
        None if event.kind == "alert" => (
            "orderflow alert".to_string(),
            "/#/".to_string(),
            format!("orderflow-{}", event.kind),
        ),
        None => (
            "orderflow".to_string(),
            "/#/".to_string(),
            format!("orderflow-{}", event.kind),
        ),
    };
    serde_json::to_vec(&serde_json::json!({
        "title": title,
        "body": body,
        "kind": event.kind,
        "order_id": event.about_order(),
        "url": url,
        "tag": tag,
        "at": event.at,
    }))
    .unwrap_or_default()
}

fn fragment(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sub_key(channel: &str, endpoint: &str) -> Vec<u8> {
    let mut k = vec![PREFIX_SUB];
    k.extend_from_slice(channel.as_bytes());
    k.push(0);
    k.extend_from_slice(&Sha256::digest(endpoint.as_bytes()));
    k
}

fn channel_prefix(channel: &str) -> Vec<u8> {
    let mut k = vec![PREFIX_SUB];
    k.extend_from_slice(channel.as_bytes());
    k.push(0);
    k
}

/// The stored VAPID key.
#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    /// The private scalar, sealed ([`Sealer::seal`], bound to
    /// [`VAPID_AAD`]).
    sealed: Vec<u8>,
    created_ms: i64,
}

/// The VAPID key and the subscribed devices. Cheap to clone.
#[derive(Clone)]
pub struct PushBook {
    store: Store,
    key: VapidKey,
}

impl std::fmt::Debug for PushBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushBook").field("key", &self.key).finish()
    }
}

impl PushBook {
    /// The book over `store`, signing with `configured` when given, else
    /// with the key kept in the store (made and kept, sealed, on first
    /// start). A kept key that does not open with this sealer (another
    /// secrets key) is replaced, and the devices subscribed with it, which
    /// cannot be reached with another, are forgotten.
    pub async fn open(
        store: Store,
        sealer: &Sealer,
        configured: Option<&super::Secret>,
    ) -> Result<PushBook, Error> {
        if let Some(k) = configured.filter(|k| !k.is_empty()) {
            let key = VapidKey::from_base64(k.expose())?;
            return Ok(PushBook { store, key });
        }
        let tree = store.trees.get(Tree::Push);
        if let Some(v) = tree.get(KEY_VAPID)? {
            let stored: StoredKey = codec::decode(&v)?;
            match sealer
                .open(VAPID_AAD, &stored.sealed)
                .ok()
                .and_then(|b| VapidKey::from_private_bytes(&b).ok())
            {
                Some(key) => return Ok(PushBook { store, key }),
                None => {
                    tracing::error!("The stored Web Push (VAPID) key does not open with this secrets key: making a new one; every device must subscribe again");
                }
            }
        }
        let key = VapidKey::generate();
        let stored = StoredKey {
            sealed: sealer.seal(VAPID_AAD, &key.private_bytes()),
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        let mut ops = vec![Op::Put {
            tree: Tree::Push,
            key: KEY_VAPID.to_vec(),
            value: codec::encode(&stored)?,
        }];
        for kv in tree.scan_prefix([PREFIX_SUB]) {
            let (k, _) = kv?;
            ops.push(Op::Del {
                tree: Tree::Push,
                key: k.to_vec(),
            });
        }
        store.commit(ops).await?;
        tracing::info!(public_key = %key.public_key(), "Made this daemon's Web Push (VAPID) key");
        Ok(PushBook { store, key })
    }

    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The devices subscribed to `channel` (a record that does not read is
    /// skipped, with a warning).
    pub fn subscriptions(&self, channel: &str) -> Result<Vec<Subscription>, Error> {
        let mut out = Vec::new();
        for kv in self
            .store
            .trees
            .get(Tree::Push)
            .scan_prefix(channel_prefix(channel))
        {
            let (_, v) = kv?;
            match codec::decode::<Subscription>(&v) {
                Ok(s) => out.push(s),
                Err(e) => {
                    tracing::warn!(channel, error = %e, "A stored push subscription does not read: skipped")
                }
            }
        }
        Ok(out)
    }

    /// Stores `sub` under `channel` (the same endpoint again replaces its
    /// keys). True when the device is new to the channel.
    pub async fn subscribe(
        &self,
        channel: &str,
        sub: &SubscriptionJson,
        by: &str,
    ) -> Result<bool, Error> {
        check_endpoint(&sub.endpoint)?;
        let p256dh = b64(ua_public(&sub.keys.p256dh)?
            .to_encoded_point(false)
            .as_bytes());
        let auth = b64(&ua_auth(&sub.keys.auth)?);
        let key = sub_key(channel, &sub.endpoint);
        let tree = self.store.trees.get(Tree::Push);
        let new = !tree.contains_key(&key)?;
        if new && tree.scan_prefix(channel_prefix(channel)).count() >= MAX_PER_CHANNEL {
            return Err(Error::Full(channel.to_string()));
        }
        let record = Subscription {
            channel: channel.to_string(),
            endpoint: sub.endpoint.clone(),
            p256dh,
            auth,
            created_ms: chrono::Utc::now().timestamp_millis(),
            created_by: by.to_string(),
        };
        self.store
            .commit(vec![Op::Put {
                tree: Tree::Push,
                key,
                value: codec::encode(&record)?,
            }])
            .await?;
        Ok(new)
    }

    /// Removes the device with `endpoint` from `channel`, or from every
    /// channel. How many subscriptions went.
    pub async fn unsubscribe(&self, channel: Option<&str>, endpoint: &str) -> Result<usize, Error> {
        let tree = self.store.trees.get(Tree::Push);
        let mut keys = Vec::new();
        match channel {
            Some(c) => {
                let k = sub_key(c, endpoint);
                if tree.contains_key(&k)? {
                    keys.push(k);
                }
            }
            None => {
                let hash = Sha256::digest(endpoint.as_bytes());
                for kv in tree.scan_prefix([PREFIX_SUB]) {
                    let (k, _) = kv?;
                    if k.ends_with(&hash[..]) {
                        keys.push(k.to_vec());
                    }
                }
            }
        }
        let n = keys.len();
        if n > 0 {
            self.store
                .commit(
                    keys.into_iter()
                        .map(|key| Op::Del {
                            tree: Tree::Push,
                            key,
                        })
                        .collect(),
                )
                .await?;
        }
        Ok(n)
    }

    /// Forgets a subscription its push service says is gone.
    pub async fn forget(&self, sub: &Subscription) -> Result<(), Error> {
        self.store
            .commit(vec![Op::Del {
                tree: Tree::Push,
                key: sub_key(&sub.channel, &sub.endpoint),
            }])
            .await?;
        Ok(())
    }

    /// The POST that delivers `payload` to `sub`.
    pub fn request(
        &self,
        sub: &Subscription,
        target: &Target,
        payload: &[u8],
        now_s: i64,
    ) -> Result<Request, Error> {
        let endpoint = check_endpoint(&sub.endpoint)?;
        let body = encrypt(payload, &sub.p256dh, &sub.auth)?;
        let authorization = self.key.authorization(&endpoint, &target.sub, now_s)?;
        Ok(Request {
            endpoint,
            headers: vec![
                ("Authorization", authorization),
                ("Content-Encoding", "aes128gcm".into()),
                ("Content-Type", "application/octet-stream".into()),
                ("TTL", target.ttl_s.to_string()),
                ("Urgency", target.urgency.as_str().into()),
            ],
            body,
        })
    }
}

/// A browser's side of RFC 8291, for tests: decrypts an `aes128gcm` push
/// body with the receiver's private key and auth secret. Written from the
/// RFC apart from the sending side (which is `web-push-native`'s), so a
/// round trip checks one against the other.
#[cfg(test)]
pub(crate) fn decrypt_as_browser(
    body: &[u8],
    ua_private: &p256::SecretKey,
    auth: &[u8; 16],
) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, KeyInit};
    use hkdf::Hkdf;
    // RFC 8188 §2.1: salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid.
    let salt = body.get(..16)?;
    let rs = u32::from_be_bytes(body.get(16..20)?.try_into().ok()?) as usize;
    let idlen = *body.get(20)? as usize;
    let as_public_bytes = body.get(21..21 + idlen)?;
    let records = body.get(21 + idlen..)?;
    if records.len() > rs {
        return None; // one record only, here
    }
    let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes).ok()?;
    let shared = p256::ecdh::diffie_hellman(ua_private.to_nonzero_scalar(), as_public.as_affine());
    // RFC 8291 §3.4: IKM = HKDF(auth, ecdh, "WebPush: info" ‖ 0 ‖ ua_public ‖ as_public).
    let ua_public = ua_private.public_key().to_encoded_point(false);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(as_public_bytes);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&auth[..]), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .ok()?;
    // RFC 8188 §2.2, 2.3: CEK and nonce from the salt.
    let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).ok()?;
    let mut nonce = [0u8; 12];
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).ok()?;
    let mut plain = cipher
        .decrypt(aes_gcm::Nonce::from_slice(&nonce), records)
        .ok()?;
    // The last record ends with 0x02, then optional zero padding.
    while plain.last() == Some(&0) {
        plain.pop();
    }
    (plain.pop()? == 2).then_some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn unb64(s: &str) -> Vec<u8> {
        B64_ANY.decode(s).unwrap()
    }

    /// RFC 8291 Appendix A: the browser side here opens the RFC's own
    /// message, so it can be trusted to judge ours.
    #[test]
    fn the_browser_side_opens_the_rfc_8291_example() {
        let ua_private =
            p256::SecretKey::from_slice(&unb64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
                .unwrap();
        let auth: [u8; 16] = unb64("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap();
        let message = unb64("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN");
        assert_eq!(
            decrypt_as_browser(&message, &ua_private, &auth).as_deref(),
            Some(&b"When I grow up, I want to be a watermelon"[..])
        );
        let mut wrong = auth;
        wrong[0] ^= 1;
        assert!(decrypt_as_browser(&message, &ua_private, &wrong).is_none());
    }

    #[test]
    fn aes128gcm_round_trip_opens_only_with_the_receivers_key() {
        let ua = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let p256dh = b64(ua.public_key().to_encoded_point(false).as_bytes());
        let auth = [9u8; 16];
        let message = br#"{"title":"orderflow","body":"Order 1 is late"}"#;
        let body = encrypt(message, &p256dh, &b64(&auth)).unwrap();
        // salt ‖ rs ‖ idlen = 65 ‖ a one-time uncompressed P-256 key ‖ one record.
        assert_eq!(body[20], 65);
        assert_eq!(body[21], 4);
        assert_eq!(body.len(), 21 + 65 + message.len() + 1 + 16);
        assert!(!body.windows(5).any(|w| w == b"Order"));
        assert_eq!(
            decrypt_as_browser(&body, &ua, &auth).as_deref(),
            Some(&message[..])
        );
        let other = p256::SecretKey::from_slice(&[8u8; 32]).unwrap();
        assert!(decrypt_as_browser(&body, &other, &auth).is_none());
        // Fresh salt and key per message.
        assert_ne!(body, encrypt(message, &p256dh, &b64(&auth)).unwrap());
        // Bad keys are refused, never a panic.
        assert!(matches!(
            encrypt(message, "AAAA", &b64(&auth)),
            Err(Error::BadP256dh)
        ));
        assert!(matches!(
            encrypt(message, &p256dh, "AAAA"),
            Err(Error::BadAuth)
        ));
        assert!(matches!(
            encrypt(message, "!!", "!!"),
            Err(Error::BadP256dh)
        ));
    }

    #[test]
    fn the_vapid_token_is_an_es256_jwt_for_the_push_services_origin() {
        let key = VapidKey::generate();
        let endpoint =
            reqwest::Url::parse("https://push.example.net:8443/wpush/v2/abc?x=1").unwrap();
        let now = 1_764_000_000;
        let auth = key
            .authorization(&endpoint, "mailto:ops@example.com", now)
            .unwrap();
        let (t, k) = auth
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, key.public_key());
        let public = unb64(k);
        assert_eq!((public.len(), public[0]), (65, 4));
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "JWT");
        let claims: serde_json::Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let exp = claims["exp"].as_i64().unwrap();
        assert!(exp > now && exp <= now + 24 * 3600, "{exp}");
        // The signature verifies with the public key in `k`, over
        // header.claims, as r ‖ s.
        let verifying = VerifyingKey::from_sec1_bytes(&public).unwrap();
        let sig = Signature::from_slice(&unb64(parts[2])).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        verifying.verify(input.as_bytes(), &sig).unwrap();
        assert!(verifying.verify(b"tampered", &sig).is_err());
        // The default port is no part of the origin.
        let t = key
            .token(
                &reqwest::Url::parse("https://fcm.googleapis.com/fcm/send/x").unwrap(),
                "mailto:a@b.c",
                now,
            )
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&unb64(t.split('.').nth(1).unwrap())).unwrap();
        assert_eq!(claims["aud"], "https://fcm.googleapis.com");
    }

    #[test]
    fn keys_and_endpoints_are_checked() {
        let key = VapidKey::generate();
        let again = VapidKey::from_private_bytes(&key.private_bytes()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(VapidKey::from_base64(&b64(&key.private_bytes())).is_ok());
        assert!(matches!(
            VapidKey::from_base64("short"),
            Err(Error::BadVapidKey)
        ));
        assert!(matches!(
            VapidKey::from_private_bytes(&[0u8; 32]),
            Err(Error::BadVapidKey)
        ));
        assert!(format!("{key:?}").contains(key.public_key()));
        assert!(check_endpoint("https://updates.push.services.mozilla.com/wpush/v2/x").is_ok());
        assert!(check_endpoint("http://127.0.0.1:9/push").is_ok());
        assert!(check_endpoint("http://[::1]:9/push").is_ok());
        for bad in [
            "http://push.example.com/x",
            "ftp://127.0.0.1/x",
            "https://user:pw@push.example.com/x",
            "not a url",
            "/relative",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        assert!(check_endpoint(&format!("https://a.example/{}", "x".repeat(3000))).is_err());
        assert!(valid_contact("mailto:ops@example.com"));
        assert!(valid_contact("https://example.com/contact"));
        assert!(!valid_contact("ops@example.com"));
        assert!(!valid_contact("mailto:nobody"));
        assert!(!valid_contact("http://example.com"));
    }

    #[test]
    fn the_payload_names_the_order_and_opens_it() {
        let p: serde_json::Value = serde_json::from_slice(&payload(
            &Event::new("out_of_stock", "SKU A is out").order("57/64"),
        ))
        .unwrap();
        assert_eq!(p["title"], "orderflow: order 57/64");
        assert_eq!(p["body"], "SKU A is out");
        assert_eq!(p["url"], "/#/orders/57%2F64");
        assert_eq!(p["order_id"], "57/64");
        let p: serde_json::Value = serde_json::from_slice(&payload(
            &Event::new("alert", "Order 9 needs an operator")
                .data(serde_json::json!({"order_id": "9"})),
        ))
        .unwrap();
        assert_eq!(
            (p["url"].as_str(), p["order_id"].as_str()),
            (Some("/#/orders/9"), Some("9"))
        );
        let long = payload(&Event::new("alert", "é".repeat(5000)));
        let p: serde_json::Value = serde_json::from_slice(&long).unwrap();
        assert_eq!(p["title"], "orderflow alert");
        assert!(long.len() < 2000, "{}", long.len());
    }

    #[tokio::test]
    async fn subscriptions_are_kept_per_channel_and_the_key_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 64).unwrap();
        let sealer = Sealer::from_key([3; 32]);
        let book = PushBook::open(store.clone(), &sealer, None).await.unwrap();
        let public = book.key().public_key().to_string();
        // Kept: the same key on the next start, sealed in the store.
        let again = PushBook::open(store.clone(), &sealer, None).await.unwrap();
        assert_eq!(again.key().public_key(), public);
        let stored = store.trees.get(Tree::Push).get(KEY_VAPID).unwrap().unwrap();
        let private = book.key().private_bytes();
        assert!(!stored.windows(32).any(|w| w == &private[..]));

        let ua = p256::SecretKey::from_slice(&[5u8; 32]).unwrap();
        let json = |endpoint: &str| SubscriptionJson {
            endpoint: endpoint.into(),
            keys: SubscriptionKeys {
                p256dh: b64(ua.public_key().to_encoded_point(false).as_bytes()),
                // Padded base64url is taken too.
                auth: URL_SAFE_NO_PAD.encode([1u8; 16]) + "==",
            },
        };
        assert!(book
            .subscribe("phones", &json("https://p.example/1"), "ana")
            .await
            .unwrap());
        assert!(!book
            .subscribe("phones", &json("https://p.example/1"), "ana")
            .await
            .unwrap());
        assert!(book
            .subscribe("phones", &json("https://p.example/2"), "bo")
            .await
            .unwrap());
        assert!(book
            .subscribe("desk", &json("https://p.example/1"), "ana")
            .await
            .unwrap());
        let phones = book.subscriptions("phones").unwrap();
        assert_eq!(phones.len(), 2);
        assert_eq!(phones.iter().filter(|s| s.created_by == "ana").count(), 1);
        assert!(
            book.subscriptions("phone").unwrap().is_empty(),
            "no prefix leak"
        );
        assert!(matches!(
            book.subscribe("phones", &json("http://p.example/3"), "x")
                .await,
            Err(Error::BadEndpoint)
        ));
        assert_eq!(
            book.unsubscribe(Some("phones"), "https://p.example/2")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            book.unsubscribe(None, "https://p.example/1").await.unwrap(),
            2
        );
        assert!(book.subscriptions("phones").unwrap().is_empty());
        assert!(book.subscriptions("desk").unwrap().is_empty());

        // A configured key wins; a key sealed under another secrets key is
        // replaced, and its devices forgotten.
        book.subscribe("phones", &json("https://p.example/9"), "ana")
            .await
            .unwrap();
        let given = VapidKey::generate();
        let configured = super::super::Secret::new(b64(&given.private_bytes()));
        let c = PushBook::open(store.clone(), &sealer, Some(&configured))
            .await
            .unwrap();
        assert_eq!(c.key().public_key(), given.public_key());
        let other = PushBook::open(store.clone(), &Sealer::from_key([4; 32]), None)
            .await
            .unwrap();
        assert_ne!(other.key().public_key(), public);
        assert!(other.subscriptions("phones").unwrap().is_empty());
    }
}
