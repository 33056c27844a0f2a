//! Request signing for API version 202309 and later.
//!
//! TikTok authenticates every Open API call with an HMAC over the path, the
//! sorted query parameters and the exact body bytes. The client and the
//! simulator both use [`sign`], so a change here is checked from both sides;
//! the unit tests pin it to the SDK vectors in the reference (section 1.2).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Query parameters that never take part in the signature.
const UNSIGNED: [&str; 2] = ["sign", "access_token"];

/// The string TikTok signs, before the HMAC: `secret + path + k1v1k2v2… +
/// body + secret`. `body` is `None` for multipart requests, whose body is not
/// signed. Values are the decoded query values.
fn string_to_sign<'a>(
    app_secret: &str,
    path: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut params: Vec<(&str, &str)> = query
        .into_iter()
        .filter(|(k, _)| !UNSIGNED.contains(k))
        .collect();
    // Byte-order sort on the key; stable, so repeated keys keep their order.
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = Vec::with_capacity(256);
    s.extend_from_slice(app_secret.as_bytes());
    s.extend_from_slice(path.as_bytes());
    for (k, v) in params {
        s.extend_from_slice(k.as_bytes());
        s.extend_from_slice(v.as_bytes());
    }
    if let Some(body) = body {
        s.extend_from_slice(body);
    }
    s.extend_from_slice(app_secret.as_bytes());
    s
}

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The `sign` query parameter for a 202309 request: lowercase hex
/// HMAC-SHA256 keyed with the app secret. `query` may contain `sign` and
/// `access_token`; both are skipped. Pass `body = None` for
/// `multipart/form-data` requests and `Some(b"")` (or `None`) for a GET.
pub fn sign<'a>(
    app_secret: &str,
    path: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&[u8]>,
) -> String {
    let s = string_to_sign(app_secret, path, query, body);
    hmac_hex(app_secret, &[&s])
}

/// Checks a received `sign` in constant time (the simulator's side).
pub fn verify<'a>(
    app_secret: &str,
    path: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&[u8]>,
    received: &str,
) -> bool {
    let expected = sign(app_secret, path, query, body);
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

/// The webhook signature TikTok puts in `Authorization`: lowercase hex
/// HMAC-SHA256 keyed with the app secret over `app_key + raw body`.
pub fn webhook_signature(app_key: &str, app_secret: &str, body: &[u8]) -> String {
    hmac_hex(app_secret, &[app_key.as_bytes(), body])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIPHER: &str = "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK";

    #[test]
    fn skit_get_vector() {
        let q = [
            ("app_key", "68xu9ks5p4i8"),
            ("shop_cipher", CIPHER),
            ("timestamp", "1696909648"),
        ];
        assert_eq!(
            sign("e59af819cc", "/event/202309/webhooks", q, None),
            "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37"
        );
    }

    #[test]
    fn skit_put_vector_signs_the_body() {
        // Out of order on purpose, with the parameters that must be skipped.
        let q = [
            ("timestamp", "1696909648"),
            ("sign", "whatever"),
            ("access_token", "tok"),
            ("shop_cipher", CIPHER),
            ("app_key", "68xu9ks5p4i8"),
        ];
        let body = br#"{"event_type":"PACKAGE_UPDATE","address":"https://partner.tiktokshop.com"}"#;
        assert_eq!(
            sign("e59af819cc", "/event/202309/webhooks", q, Some(body)),
            "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7"
        );
        assert!(verify(
            "e59af819cc",
            "/event/202309/webhooks",
            q,
            Some(body),
            "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7"
        ));
        // One changed byte of the body breaks it.
        let tampered =
            br#"{"event_type":"PACKAGE_UPDATE","address":"https://partner.tiktokshop.con"}"#;
        assert!(!verify(
            "e59af819cc",
            "/event/202309/webhooks",
            q,
            Some(tampered),
            "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7"
        ));
    }

    #[test]
    fn ecom_vector() {
        assert_eq!(
            sign("app_secret", "/test-api", [("foo", "bar")], Some(b"")),
            "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f"
        );
    }

    #[test]
    fn webhook_signature_is_keyed_over_app_key_and_body() {
        let a = webhook_signature("key", "secret", b"{}");
        assert_eq!(a.len(), 64);
        assert_eq!(a, hmac_hex("secret", &[b"key{}"]));
        assert_ne!(a, webhook_signature("key", "secret", b"{} "));
    }
}
