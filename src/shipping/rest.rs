//! What the label providers' HTTP clients share: one `reqwest` client per
//! provider with its timeout, the provider's authentication, the mapping
//! of transport failures and statuses to [`ErrorKind`]s with the provider's
//! own error text, document downloads and safe path segments.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::provider::{status_kind, ProviderKind};
use super::{easypost, shippo, Error, ErrorKind};
use crate::tiktok::Secret;

/// A provider's API: base URL (up to its version) and key.
#[derive(Clone)]
pub struct Rest {
    provider: ProviderKind,
    http: reqwest::Client,
    base: String,
    key: Secret,
    /// Requests in flight at once (`[shipping] provider_concurrency`): a
    /// burst (hundreds of orders resuming after a restart) queues here
    /// instead of overrunning the provider and timing out.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("provider", &self.provider)
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

/// A provider's failure of `op`.
pub fn fail(
    provider: ProviderKind,
    op: &'static str,
    kind: ErrorKind,
    status: Option<u16>,
    message: String,
) -> Error {
    Error::Provider {
        provider,
        op,
        kind,
        status,
        message,
    }
}

/// A request that got no (whole) answer: a timeout, or transient.
fn transport(
    provider: ProviderKind,
    op: &'static str,
    status: Option<u16>,
    e: reqwest::Error,
) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    fail(provider, op, kind, status, e.without_url().to_string())
}

impl Rest {
    /// `base_url` must be http(s); `timeout` bounds each request.
    pub fn new(
        provider: ProviderKind,
        base_url: &str,
        key: Secret,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Rest, Error> {
        match reqwest::Url::parse(base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(Error::InvalidConfig(vec![format!(
                    "shipping.providers.{provider}.base_url: {base_url:?} is not an http(s) URL"
                )]))
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Invalid(e.without_url().to_string()))?;
        Ok(Rest {
            provider,
            http,
            base: base_url.trim_end_matches('/').to_string(),
            key,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
        })
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }

    pub fn fail(&self, op: &'static str, kind: ErrorKind, message: String) -> Error {
        fail(self.provider, op, kind, None, message)
    }

    /// Sends with the provider's authentication; a 2xx answer is read as
    /// `T`, anything else is an error of the status's kind with the
    /// provider's own text.
    pub async fn send<T: DeserializeOwned>(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let p = self.provider;
        // The semaphore is never closed; a closed one would only mean no
        // limit.
        let _permit = self.permits.acquire().await.ok();
        let req = match p {
            // HTTP basic auth, the key as the user name.
            ProviderKind::Easypost => req.basic_auth(self.key.expose(), Some("")),
            _ => req
                .header(
                    "Authorization",
                    format!("ShippoToken {}", self.key.expose()),
                )
                .header("SHIPPO-API-VERSION", shippo::API_VERSION),
        };
        let resp = req.send().await.map_err(|e| transport(p, op, None, e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(p, op, Some(status), e))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| {
                fail(
                    p,
                    op,
                    ErrorKind::Transient,
                    Some(status),
                    format!("unreadable answer: {e}"),
                )
            });
        }
        let message = match p {
            ProviderKind::Easypost => easypost::error_text(&bytes),
            _ => shippo::error_text(&bytes),
        };
        Err(fail(p, op, status_kind(status), Some(status), message))
    }

    /// Downloads a document the provider links to (label URLs need no key).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, Error> {
        let _permit = self.permits.acquire().await.ok();
        download(&self.http, self.provider, url).await
    }
}

/// A GET of a document URL, bounded in size (labels are kilobytes).
pub async fn download(
    http: &reqwest::Client,
    provider: ProviderKind,
    url: &str,
) -> Result<Vec<u8>, Error> {
    const MAX: usize = 16 << 20;
    let op = "download";
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| transport(provider, op, None, e))?;
    let status = r.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(fail(
            provider,
            op,
            status_kind(status),
            Some(status),
            format!("document download answered {status}"),
        ));
    }
    let b = r
        .bytes()
        .await
        .map_err(|e| transport(provider, op, Some(status), e))?;
    if b.len() > MAX {
        return Err(fail(
            provider,
            op,
            ErrorKind::Invalid,
            Some(status),
            format!("document of {} bytes is too large", b.len()),
        ));
    }
    Ok(b.to_vec())
}

/// A path segment: ids and references are plain tokens, never paths.
pub fn seg(id: &str) -> Result<&str, Error> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Invalid(format!("{id:?} is not a valid id")));
    }
    Ok(id)
}
