//! Bounded requests: what a client that never finishes, or sends too
//! much, can cost the daemon.
//!
//! An unauthenticated client can reach `/webhooks/tiktok` and the login
//! form, and their bodies are read before anything can tell who sent them
//! (the webhook's signature covers the body). So every request body is
//! bounded three ways before and while it is read, by [`bound_body`]
//! around the whole app:
//!
//! - **Size:** a `Content-Length` above `[server] max_body_bytes` is
//!   refused with 413 before a byte is read; each route's extractor also
//!   stops a streamed (chunked) body at its own limit (the webhook's is
//!   `[tiktok] webhook_max_bytes`), so nothing past it is buffered.
//! - **Time:** the body must arrive within `[server] read_timeout` of the
//!   request's head; a client that trickles is cut off with 408 and its
//!   connection closed. actix cuts a slow head at the same timeout.
//! - **Memory across clients:** each request may buffer its first
//!   [`FREE_BYTES`] (every TikTok webhook fits); bytes beyond that are drawn
//!   from one shared pool (`[server] body_memory`). When the pool is spent
//!   the request gets 503 (TikTok retries), so thousands of slow clients
//!   cost at most connections × [`FREE_BYTES`] + the pool, never a
//!   request's full limit each.
//!
//! A body that was not read to its end (a refusal, a 404, a handler that
//! did not need it) closes its connection after the answer, rather than
//! being read and discarded for as long as the client keeps sending. A
//! connection between requests has a deadline too ([`super::conn`]).
//!
//! The connection count itself is capped by `[server] max_connections`
//! (actix stops accepting beyond it; the kernel's listen backlog, `[server]
//! backlog`, holds the rest).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use futures::Stream;
use serde_json::json;

use super::AppState;

/// What a request may buffer without drawing on the shared pool.
pub const FREE_BYTES: usize = 16 << 10;

/// The shared pool of body memory.
#[derive(Debug)]
pub struct BodyBudget {
    used: AtomicUsize,
    pool: usize,
}

impl BodyBudget {
    pub fn new(pool: usize) -> BodyBudget {
        BodyBudget {
            used: AtomicUsize::new(0),
            pool,
        }
    }

    /// Takes `n` bytes from the pool, or nothing when it has not got them.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.pool)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes of the pool in use now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The request limits, built from `[server]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    pub read_timeout: Duration,
    pub budget: Arc<BodyBudget>,
}

const READING: u8 = 0;
const TIMED_OUT: u8 = 1;
const NO_MEMORY: u8 = 2;

/// The body as the handler sees it: the client's stream, cut off at the
/// deadline or when the shared pool is spent.
struct Bounded {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    seen: usize,
    charged: usize,
    budget: Arc<BodyBudget>,
    outcome: Arc<AtomicU8>,
    /// Set once the client's body has ended.
    finished: Arc<std::sync::atomic::AtomicBool>,
}

impl Stream for Bounded {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.outcome.store(TIMED_OUT, Ordering::Release);
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen = this.seen.saturating_add(chunk.len());
                let need = this
                    .seen
                    .saturating_sub(FREE_BYTES)
                    .saturating_sub(this.charged);
                if need > 0 {
                    if !this.budget.take(need) {
                        this.outcome.store(NO_MEMORY, Ordering::Release);
                        return Poll::Ready(Some(Err(PayloadError::Overflow)));
                    }
                    this.charged += need;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.finished.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// The announced body length, when there is a readable one.
fn content_length(headers: &actix_web::http::header::HeaderMap) -> Option<u64> {
    headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The middleware: see the module doc.
pub async fn bound_body<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(limits) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.limits.clone())
    else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    if content_length(req.headers()).is_some_and(|n| n > limits.max_body as u64) {
        metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "too_large").increment(1);
        let resp = HttpResponse::PayloadTooLarge()
            .force_close()
            .json(json!({"error": format!("the body is larger than {} bytes", limits.max_body)}));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    // The connection is busy for the request's life (see [`super::conn`]).
    let _busy = req
        .conn_data::<super::conn::ConnGuard>()
        .map(super::conn::ConnGuard::busy);
    let has_body = content_length(req.headers()).is_some_and(|n| n > 0)
        || req
            .headers()
            .contains_key(actix_web::http::header::TRANSFER_ENCODING);
    let outcome = Arc::new(AtomicU8::new(READING));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bounded = Bounded {
        inner: req.take_payload(),
        deadline: Box::pin(tokio::time::sleep(limits.read_timeout)),
        seen: 0,
        charged: 0,
        budget: limits.budget.clone(),
        outcome: outcome.clone(),
        finished: finished.clone(),
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(bounded),
    });
    let mut res = next.call(req).await?;
    let replace = match outcome.load(Ordering::Acquire) {
        TIMED_OUT => {
            metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "slow_body")
                .increment(1);
            Some(
                HttpResponse::RequestTimeout()
                    .force_close()
                    .json(json!({"error": "the request body did not arrive in time"})),
            )
        }
        NO_MEMORY => {
            metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "body_memory")
                .increment(1);
            Some(
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "1"))
                    .force_close()
                    .json(json!({"error": "too many large requests at once; retry"})),
            )
        }
        _ => None,
    };
    Ok(match replace {
        Some(resp) => {
            let (req, _) = res.into_parts();
            ServiceResponse::new(req, resp).map_into_right_body()
        }
        None => {
            // A body nobody read to its end (a refusal, a 404, a handler
            // that did not need it): close the connection after the
            // answer rather than read the rest, which may never end.
            if has_body && !finished.load(Ordering::Acquire) {
                res.response_mut()
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
            }
            res.map_into_left_body()
        }
    })
}

/// Why [`read_limited`] gave no body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the body: {0}")]
    Read(#[from] PayloadError),
}

/// Reads a request body of at most `limit` bytes: refused from its
/// `Content-Length` before a byte is read, or as soon as the streamed
/// bytes pass the limit; the buffer starts at the announced size (or
/// small) rather than growing by doubling.
pub async fn read_limited(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, Error> {
    use futures::StreamExt;
    let announced = content_length(req.headers());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(Error::TooLarge { limit });
    }
    let mut buf = web::BytesMut::with_capacity(announced.map_or(4096, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Err(Error::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_never_lends_more_than_it_has() {
        let b = BodyBudget::new(100);
        assert!(b.take(60));
        assert!(!b.take(41));
        assert!(b.take(40));
        assert_eq!(b.used(), 100);
        b.give(60);
        assert!(b.take(60));
    }
}
