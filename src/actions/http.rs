//! `http.request`: a generic outbound HTTP call. It carries the effect's
//! idempotency key as an `Idempotency-Key` header, so a replay after a crash
//! never repeats the effect, and reads at most [`MAX_RESPONSE_BYTES`] of a
//! reply within one deadline.

use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, Action, Call, ErrorKind};

pub const REQUEST: Action = Action {
    name: "http.request",
    doc: "A generic outbound HTTP call, with an Idempotency-Key header.",
    args: &[
        arg("url", Str, true, "absolute http(s) URL"),
        arg(
            "method",
            Str,
            false,
            "GET, POST (default), PUT, PATCH, DELETE",
        ),
        arg("body", Any, false, "JSON body"),
        arg("headers", Map, false, "extra headers"),
    ],
    outputs: &["status", "body"],
    errors: &[],
    external: true,
};

/// The largest `http.request` response body read, in bytes. The CEL cost
/// estimator assumes step outputs no bigger (`workflow::cost`), and a
/// reply must never exhaust the daemon's memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A reply over [`MAX_RESPONSE_BYTES`]: `invalid`, a permanent kind, because
/// asking again gets the same reply; the endpoint (or the workflow calling
/// it) must change.
fn too_large(url: &str, bytes: u64) -> ActionError {
    ErrorKind::Invalid.error(format!(
        "{url}: the response is larger than {MAX_RESPONSE_BYTES} bytes (at least {bytes}); refused"
    ))
}

/// A failure to connect or read: `timeout` (saying `timed_out`) if the
/// deadline passed, else `transient`.
fn unanswered(url: &str, x: &reqwest::Error, timed_out: String) -> ActionError {
    if x.is_timeout() {
        ErrorKind::Timeout.error(timed_out)
    } else {
        ErrorKind::Transient.error(format!("{url}: {x}"))
    }
}

/// The kind of a status other than a success. Not the label API's mapping
/// (`crate::shipping::labels::status_kind`): any endpoint may stand behind
/// `http.request`, so its 404 or 504 says less, and the action raises only
/// the common kinds.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::RateLimited,
        408 | 500..=599 => ErrorKind::Transient,
        409 => ErrorKind::Rejected,
        _ => ErrorKind::Invalid,
    }
}

pub(super) async fn request(c: &Call<'_>) -> Result<Data, ActionError> {
    let e = c.effect;
    let timeout = c.timeout;
    let url = e
        .args
        .get("url")
        .and_then(Data::as_str)
        .ok_or_else(|| ErrorKind::Invalid.error(format!("{} needs a url", REQUEST.name)))?;
    let parsed = reqwest::Url::parse(url)
        .map_err(|x| ErrorKind::Invalid.error(format!("bad url {url}: {x}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ErrorKind::Invalid.error(format!("url {url} is not http(s)")));
    }
    let method = e
        .args
        .get("method")
        .and_then(Data::as_str)
        .unwrap_or("POST");
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ErrorKind::Invalid.error(format!("bad method {method}")))?;
    let mut req = c
        .http
        .request(method, parsed)
        .timeout(timeout)
        .header("Idempotency-Key", &e.key);
    if let Some(Data::Map(h)) = e.args.get("headers") {
        for (k, v) in h {
            req = req.header(k.as_str(), v.render());
        }
    }
    if let Some(body) = e.args.get("body") {
        req = req.json(&body.to_json());
    }
    // One deadline for the whole exchange: connecting, the headers and every
    // byte of the body (a server trickling a body forever would otherwise
    // hold the effect, and reqwest's own timeout is only a second line of
    // defence).
    let exchange = async {
        let mut resp = req
            .send()
            .await
            .map_err(|x| unanswered(url, &x, format!("{url}: timed out after {timeout:?}")))?;
        let status = resp.status().as_u16();
        if !(200..=299).contains(&status) {
            // Only a success's body is used.
            return Ok((status, Vec::new()));
        }
        if let Some(len) = resp.content_length() {
            if len > MAX_RESPONSE_BYTES as u64 {
                return Err(too_large(url, len));
            }
        }
        // Streamed, never buffered whole: a reply bigger than the limit is
        // refused as soon as it gets there.
        let mut bytes: Vec<u8> = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|x| unanswered(url, &x, format!("{url}: timed out reading the body")))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large(url, (bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ErrorKind::Timeout.error(format!("{url}: timed out after {timeout:?}")))??;
    let text = String::from_utf8_lossy(&bytes);
    let body = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| Data::from_json(&v))
        .unwrap_or_else(|_| Data::Str(text.chars().take(4096).collect()));
    match status {
        200..=299 => Ok(Data::map([
            ("status", Data::Int(status.into())),
            ("body", body),
        ])),
        _ => Err(status_kind(status).error(format!("{url}: HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::actions::ActionName;
    use crate::store::StartedEffect;

    /// A server that answers every connection with `head`, then `body_chunk`
    /// `repeat` times (or forever when `None`), then holds the connection.
    async fn server(head: String, body_chunk: Vec<u8>, repeat: Option<usize>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (head, chunk) = (head.clone(), body_chunk.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut sent = 0;
                    while repeat.is_none_or(|r| sent < r) {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn effect(url: &str) -> StartedEffect {
        StartedEffect {
            effect: crate::workflow::interpreter::EffectId {
                step: "call".into(),
                visit: 1,
                compensation: false,
            },
            key: "k".into(),
            action: ActionName::HttpRequest.as_str().into(),
            args: Data::map([("url", Data::from(url))]),
            attempt: 1,
            timeout_ms: None,
            started_ms: 0,
        }
    }

    async fn run(url: &str, timeout: Duration) -> Result<Data, ActionError> {
        let effect = effect(url);
        let call = Call {
            effect: &effect,
            order: None,
            timeout,
            http: &reqwest::Client::new(),
            gateway: None,
            fulfil: None,
        };
        crate::actions::run(ActionName::HttpRequest, &call).await
    }

    #[tokio::test]
    async fn a_small_reply_is_read() {
        let body = r#"{"ok":true}"#;
        let url = server(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            Vec::new(),
            Some(0),
        )
        .await;
        let out = run(&url, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            out.get("body").and_then(|b| b.get("ok")),
            Some(&Data::Bool(true))
        );
    }

    #[tokio::test]
    async fn a_reply_announced_too_large_is_refused_before_reading_it() {
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 20000000000\r\n\r\n".into(),
            vec![b'x'; 64 * 1024],
            None,
        )
        .await;
        let e = run(&url, Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(e.kind, "invalid");
        assert!(
            e.message.contains("larger than 1048576 bytes"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn an_endless_chunked_reply_is_cut_at_the_limit() {
        // One 64 KiB chunk, repeated without end.
        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
        chunk.extend(vec![b'x'; 64 * 1024]);
        chunk.extend(b"\r\n");
        let url = server(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            chunk,
            None,
        )
        .await;
        let e = run(&url, Duration::from_secs(30)).await.unwrap_err();
        assert_eq!(e.kind, "invalid");
        assert!(e.message.contains("larger than"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_trickling_reply_meets_one_deadline() {
        // Headers at once, then a body that never finishes.
        let url = server(
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".into(),
            b"x".to_vec(),
            Some(1),
        )
        .await;
        let e = run(&url, Duration::from_millis(300)).await.unwrap_err();
        assert_eq!(e.kind, "timeout");
    }
}
