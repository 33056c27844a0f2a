//! The timer service: fires due timers from the on-disk index.
//!
//! Timers (sleeps, wait and approval timeouts, retry back-offs) live in the
//! `timers` tree ordered by due time, written in the same checkpoint that
//! armed them. This task reads the due ones and delivers each to its order;
//! the order's checkpoint removes the index entry. After a restart nothing
//! is special: late timers are simply due, and fire at once.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::core::Msg;
use super::Clock;
use crate::actors::RuntimeHandle;
use crate::store::Store;

/// Longest the service sleeps before looking again (a newly armed timer is
/// never later than this past its due time).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// A fired timer whose entry is still there after this long is fired again
/// (its delivery may have been lost with a dead actor).
const REFIRE_AFTER: Duration = Duration::from_secs(10);

pub async fn run(store: Store, runtime: RuntimeHandle, clock: Clock, stop: CancellationToken) {
    let mut fired: HashMap<Vec<u8>, tokio::time::Instant> = HashMap::new();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let now = clock.now_ms();
        match store.due_timers(now, 1024) {
            Ok(due) => {
                let keys: std::collections::HashSet<&Vec<u8>> =
                    due.iter().map(|(k, _)| k).collect();
                fired.retain(|k, _| keys.contains(k));
                for (key, entry) in due.iter().cloned() {
                    let again = fired
                        .get(&key)
                        .is_none_or(|at| at.elapsed() >= REFIRE_AFTER);
                    if !again {
                        continue;
                    }
                    fired.insert(key.clone(), tokio::time::Instant::now());
                    let runtime = runtime.clone();
                    actix::spawn(async move {
                        let order_id = entry.order_id.clone();
                        if let Err(e) = runtime.deliver(&order_id, Msg::Timer { key, entry }).await
                        {
                            tracing::warn!(order_id = %order_id, error = %e, "Timer delivery failed; retrying later");
                        }
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "Reading the timer index failed"),
        }
        let next = store.next_timer_ms().ok().flatten();
        let wake = match next {
            Some(ms) if ms > now => clock
                .instant_at(ms)
                .min(tokio::time::Instant::now() + MAX_SLEEP),
            _ => tokio::time::Instant::now() + MAX_SLEEP,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
