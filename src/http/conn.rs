//! Connection deadlines: a connection that is not inside a request must
//! finish its next request's head within a deadline, whichever request of
//! the connection it is.
//!
//! actix times only a connection's *first* head (`client_request_timeout`):
//! after a keep-alive response, one byte of a next request clears its
//! keep-alive timer and no other timer starts, so a client trickling a
//! byte every few seconds held a connection (and a file handle) forever,
//! and a few thousand such clients filled `max_connections`. The HTTP layer
//! gives no hook at that point, so the daemon keeps its own watch:
//!
//! - When a connection is accepted, [`Connections::on_connect`] keeps a
//!   duplicate of its socket's file descriptor (the socket stays alive until
//!   the duplicate is closed, so the number is never someone else's) and
//!   puts a [`ConnGuard`] in the connection's data.
//! - [`super::limits::bound_body`] marks the connection busy for a request's
//!   life ([`ConnGuard::busy`]); a streamed answer (live events, the audit
//!   export) keeps its mark until its stream ends.
//! - A watcher ([`Connections::reap`], every second) shuts down the socket
//!   (`shutdown(2)`, both ways) of every connection that has not been busy
//!   for longer than `[server] read_timeout` plus actix's keep-alive: actix
//!   then sees the end of the stream and drops the connection.
//!
//! The guard is dropped with the connection; dropping it forgets the
//! connection and closes the duplicate.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Extensions;
use parking_lot::Mutex;

/// actix's keep-alive between requests (its default): a connection idle
/// that long after a response is closed by actix itself.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    state: Mutex<Activity>,
}

#[derive(Debug)]
struct Activity {
    busy: u32,
    since: Instant,
}

/// Every open connection.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    idle_limit: Duration,
}

/// A connection's entry, in its connection data (`req.conn_data`).
#[derive(Debug)]
pub struct ConnGuard {
    id: u64,
    conn: Arc<Conn>,
    all: Arc<Connections>,
}

/// Held while a request (or its streamed answer) is under way.
#[derive(Debug)]
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.busy = st.busy.saturating_sub(1);
        st.since = Instant::now();
    }
}

impl ConnGuard {
    /// Marks the connection busy until the returned value is dropped.
    pub fn busy(&self) -> Busy {
        let mut st = self.conn.state.lock();
        st.busy = st.busy.saturating_add(1);
        st.since = Instant::now();
        Busy(self.conn.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.all.open.lock().remove(&self.id);
    }
}

impl Connections {
    /// `read_timeout`: how long a connection may go without a request
    /// under way beyond actix's own keep-alive.
    pub fn new(read_timeout: Duration) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            idle_limit: read_timeout + KEEP_ALIVE,
        })
    }

    /// For `HttpServer::on_connect`: remembers a TCP connection.
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, ext: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
            return;
        };
        let conn = Arc::new(Conn {
            fd,
            state: Mutex::new(Activity {
                busy: 0,
                since: Instant::now(),
            }),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, conn.clone());
        ext.insert(ConnGuard {
            id,
            conn,
            all: self.clone(),
        });
    }

    /// Open connections now.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts down every connection idle past the limit; returns how many.
    pub fn reap(&self, now: Instant) -> usize {
        let stale: Vec<(u64, Arc<Conn>)> = self
            .open
            .lock()
            .iter()
            .filter(|(_, c)| {
                let st = c.state.lock();
                st.busy == 0 && now.saturating_duration_since(st.since) > self.idle_limit
            })
            .map(|(k, c)| (*k, c.clone()))
            .collect();
        for (id, c) in &stale {
            // SAFETY: `c.fd` is our own duplicate of the socket, open for
            // as long as `c` lives; shutdown(2) on it only ends the
            // connection's traffic.
            unsafe {
                libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR);
            }
            self.open.lock().remove(id);
        }
        stale.len()
    }

    /// Runs [`Connections::reap`] every second until `stop`.
    pub async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let n = self.reap(Instant::now());
            if n > 0 {
                metrics::counter!(crate::metrics::HTTP_REFUSED_TOTAL, "reason" => "idle_connection")
                    .increment(n as u64);
            }
        }
    }
}
