//! Admission: how many orders intake brings into memory at once.
//!
//! Intake stores every event durably before it is acknowledged (the inbox),
//! whatever the arrival rate. What it does *not* do under overload is start
//! an actor for every order at once: an order's actor holds its checkpoint,
//! its order as CEL sees it and its effects in memory, so at 1,500 orders a
//! second the daemon grew to 5 GiB. Instead:
//!
//! - At most `[runtime] max_active_orders` actors are live through intake
//!   (actors already live, and orders being delivered, both count). Past
//!   it, an order's stored events wait here as keys only (sequence numbers,
//!   a priority, the order id): a waiting order costs about a hundred bytes,
//!   its events stay on disk and are read back when it starts.
//! - Waiting orders start **oldest ship-by first**; an order whose ship-by
//!   is not known yet (a webhook before hydration), or that has shipped,
//!   counts as due [`UNKNOWN_SHIP_BY`] after it arrived; operators' and
//!   API events come before all of them. One order's events are delivered
//!   one delivery at a time, in the order they were stored: a later event
//!   of an order being delivered waits for that delivery to finish.
//! - While anything waits, actors **passivate eagerly**: an actor stops as
//!   soon as it has no effect in flight instead of after `passivate_after`,
//!   which frees its slot for the next order. Over `[runtime]
//!   memory_budget` the limit drops to a quarter (so orders wait, and the
//!   actors make room).
//! - An order with an event waiting or being delivered is not archived
//!   ([`Pressure::holds`]).
//! - `/readyz` and `orderflow_admission_waiting` say how many orders wait
//!   and for how long. When even the inbox cannot take more (the disk
//!   guard), intake refuses and webhooks are answered 503 so TikTok
//!   retries.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::event::{OrderEvent, Source};

/// An order whose ship-by deadline is not known yet is started as if it
/// were due this long after it arrived (TikTok's usual handling time is two
/// to three days): behind orders known to be due sooner, ahead of those due
/// later.
pub const UNKNOWN_SHIP_BY: Duration = Duration::from_secs(48 * 3600);

/// Over the memory budget, the limit is this fraction of
/// `max_active_orders` (but at least [`MIN_ACTIVE`]).
const OVER_BUDGET_DIVISOR: usize = 4;
const MIN_ACTIVE: usize = 16;

/// Names of the metrics admission exports.
pub mod metrics {
    /// Gauge: orders whose events are stored and wait to start.
    pub const WAITING: &str = "orderflow_admission_waiting";
    /// Gauge: how long the longest-waiting order has waited, seconds.
    pub const OLDEST_WAIT_SECONDS: &str = "orderflow_admission_oldest_wait_seconds";
    /// Counter: actors stopped early to make room.
    pub const EAGER_PASSIVATIONS_TOTAL: &str = "orderflow_admission_eager_passivations_total";
    /// Gauge: the daemon's resident memory, bytes.
    pub const RSS_BYTES: &str = "orderflow_process_resident_memory_bytes";
    /// Gauge: 1 while the resident memory is over `[runtime] memory_budget`.
    pub const OVER_BUDGET: &str = "orderflow_memory_over_budget";

    pub fn describe() {
        use ::metrics::{describe_counter, describe_gauge, Unit};
        describe_gauge!(
            WAITING,
            "Orders whose events are stored and wait for a slot to start (admission control)."
        );
        describe_gauge!(
            OLDEST_WAIT_SECONDS,
            Unit::Seconds,
            "How long the order waiting longest to start has waited."
        );
        describe_counter!(
            EAGER_PASSIVATIONS_TOTAL,
            "Order actors stopped as soon as they were idle because orders were waiting or memory was over budget."
        );
        describe_gauge!(
            RSS_BYTES,
            Unit::Bytes,
            "Resident memory of the daemon (VmRSS)."
        );
        describe_gauge!(
            OVER_BUDGET,
            "1 while resident memory is over [runtime] memory_budget."
        );
    }
}

/// What admission shares with the actors (through `actors::Shared`): how
/// many are live, and whether they should make room.
#[derive(Default)]
pub struct Pressure {
    /// Order actors live now (kept by the supervisor).
    active: AtomicUsize,
    /// Orders are waiting, or memory is over budget: idle actors stop now.
    on: AtomicBool,
    /// A slot freed or an order queued: the dispatcher looks again.
    wake: Notify,
    /// Orders with an event waiting here or being delivered.
    held: parking_lot::Mutex<HashSet<String>>,
}

impl Pressure {
    /// The supervisor's count of live actors changed.
    pub fn set_active(&self, n: usize) {
        let before = self.active.swap(n, Ordering::AcqRel);
        if n < before {
            self.wake.notify_one();
        }
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Should an actor with nothing in flight stop now?
    pub fn on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Has this order an event waiting to be delivered, or being
    /// delivered? (Retention leaves such an order hot.)
    pub fn holds(&self, order_id: &str) -> bool {
        self.held.lock().contains(order_id)
    }
}

/// One waiting order.
struct Waiting {
    order_id: String,
    /// Its stored events, in the order they were stored.
    seqs: Vec<u64>,
    since_ms: i64,
    /// The priority its newest heap entry has (lower entries supersede).
    priority: i64,
    /// The earliest ship-by (ms) any of its events names; `i64::MAX` when
    /// only operators' events wait.
    due_ms: i64,
    /// One of its events says TikTok no longer waits for it to ship
    /// (shipped, delivered, cancelled): it is at risk no more.
    settled: bool,
}

#[derive(Default)]
struct State {
    /// (priority, first sequence) of every waiting order.
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    /// First sequence → the waiting order.
    waiting: HashMap<u64, Waiting>,
    /// Order id → its entry's first sequence.
    by_order: HashMap<String, u64>,
    /// Every sequence waiting here or being delivered now (the inbox
    /// sweep leaves these alone).
    known: HashSet<u64>,
    /// Orders being delivered now (one delivery per order at a time).
    delivering: HashSet<String>,
}

/// The queue and limit in front of activation. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    max_active: usize,
    memory_budget: u64,
    pressure: Arc<Pressure>,
    state: Mutex<State>,
    /// Orders handed to delivery and not finished yet (their actor may not
    /// be counted live yet).
    delivering: AtomicUsize,
    over_budget: AtomicBool,
    rss: AtomicU64,
}

/// A waiting order taken out to be delivered.
pub struct Admitted {
    pub order_id: String,
    pub seqs: Vec<u64>,
}

/// What `/readyz` and the metrics report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub waiting: usize,
    pub oldest_ms: Option<i64>,
    pub over_budget: bool,
    pub rss_bytes: u64,
}

impl Admission {
    pub fn new(max_active: usize, memory_budget: u64, pressure: Arc<Pressure>) -> Admission {
        Admission {
            inner: Arc::new(Inner {
                max_active: max_active.max(1),
                memory_budget,
                pressure,
                state: Mutex::new(State::default()),
                delivering: AtomicUsize::new(0),
                over_budget: AtomicBool::new(false),
                rss: AtomicU64::new(0),
            }),
        }
    }

    /// The priority an event's order waits with (lower starts first).
    pub fn priority(event: &OrderEvent) -> i64 {
        use super::event::EventKind;
        if matches!(event.source, Source::Operator | Source::Api) {
            return i64::MIN;
        }
        use crate::order::TiktokStatus as S;
        let unknown = event.received_ms + UNKNOWN_SHIP_BY.as_millis() as i64;
        match &event.kind {
            // Only an order still to ship is due by its ship-by.
            EventKind::Snapshot(o)
                if matches!(
                    o.status,
                    S::Unpaid | S::OnHold | S::AwaitingShipment | S::PartiallyShipping
                ) =>
            {
                o.deadlines
                    .ship_by()
                    .map_or(unknown, |s| s.saturating_mul(1000))
            }
            _ => unknown,
        }
    }

    /// Whether an event says TikTok no longer waits for its order to
    /// ship (shipped, delivered, cancelled). TikTok's statuses only move
    /// on from there, so one such event settles the order whatever order
    /// the webhooks came in.
    fn settles(event: &OrderEvent) -> bool {
        use crate::order::TiktokStatus as S;
        matches!(
            event.kind.status_hint(),
            Some(s) if !matches!(
                s,
                S::Unpaid | S::OnHold | S::AwaitingShipment | S::PartiallyShipping | S::Unknown(_)
            )
        )
    }

    fn limit(&self) -> usize {
        if self.inner.over_budget.load(Ordering::Acquire) {
            (self.inner.max_active / OVER_BUDGET_DIVISOR).max(MIN_ACTIVE)
        } else {
            self.inner.max_active
        }
    }

    fn busy(&self) -> usize {
        self.inner.pressure.active() + self.inner.delivering.load(Ordering::Acquire)
    }

    /// Claims a slot for delivering `seq` now, if nothing waits and there
    /// is room (the path of every event when the daemon keeps up). The
    /// caller must call [`Admission::delivered`] once it is done.
    pub fn try_now(&self, seq: u64, order_id: &str) -> bool {
        let mut st = self.inner.state.lock();
        if !st.heap.is_empty()
            || self.busy() >= self.limit()
            || st.delivering.contains(order_id)
            || st.by_order.contains_key(order_id)
        {
            return false;
        }
        st.known.insert(seq);
        st.delivering.insert(order_id.to_string());
        self.inner.pressure.held.lock().insert(order_id.to_string());
        self.inner.delivering.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Queues a stored event. False if it is already queued or being
    /// delivered.
    pub fn enqueue(&self, seq: u64, event: &OrderEvent) -> bool {
        let mut st = self.inner.state.lock();
        if !st.known.insert(seq) {
            return false;
        }
        let priority = Admission::priority(event);
        match st.by_order.get(&event.order_id).copied() {
            Some(first) => {
                // A later event may name an earlier ship-by than the first
                // (an unpaid order's snapshot has none, the paid one's
                // has), and an operator's event lifts its order to the
                // front: either way the order moves up, and its older
                // heap entry is skipped as stale.
                let settles = Admission::settles(event);
                let lifted = st.waiting.get_mut(&first).and_then(|w| {
                    w.seqs.push(seq);
                    w.settled |= settles;
                    if priority != i64::MIN {
                        w.due_ms = w.due_ms.min(priority);
                    }
                    (priority < w.priority).then(|| {
                        w.priority = priority;
                    })
                });
                if lifted.is_some() {
                    st.heap.push(Reverse((priority, first)));
                }
            }
            None => {
                self.inner
                    .pressure
                    .held
                    .lock()
                    .insert(event.order_id.clone());
                st.by_order.insert(event.order_id.clone(), seq);
                st.waiting.insert(
                    seq,
                    Waiting {
                        order_id: event.order_id.clone(),
                        seqs: vec![seq],
                        since_ms: event.received_ms,
                        priority,
                        due_ms: if priority == i64::MIN {
                            i64::MAX
                        } else {
                            priority
                        },
                        settled: Admission::settles(event),
                    },
                );
                st.heap.push(Reverse((priority, seq)));
            }
        }
        self.inner.pressure.on.store(true, Ordering::Release);
        drop(st);
        self.inner.pressure.wake.notify_one();
        true
    }

    /// Is this stored event waiting here or being delivered?
    pub fn knows(&self, seq: u64) -> bool {
        self.inner.state.lock().known.contains(&seq)
    }

    /// Waits for the next order that may start now, and claims its slot.
    pub async fn next(&self) -> Admitted {
        loop {
            let wake = self.inner.pressure.wake.notified();
            if let Some(a) = self.take() {
                return a;
            }
            // Woken by a freed slot or a new order; the timeout covers a
            // change of the memory budget's verdict.
            let _ = tokio::time::timeout(Duration::from_millis(200), wake).await;
        }
    }

    fn take(&self) -> Option<Admitted> {
        let mut st = self.inner.state.lock();
        // Orders still being delivered wait their turn (set aside, put back).
        let mut aside = Vec::new();
        let found = loop {
            let Some(&Reverse((priority, first))) = st.heap.peek() else {
                break None;
            };
            let Some(order) = st
                .waiting
                .get(&first)
                .filter(|w| w.priority == priority)
                .map(|w| w.order_id.clone())
            else {
                // A stale heap entry: the order started, or was lifted
                // by a later entry.
                st.heap.pop();
                continue;
            };
            if st.delivering.contains(&order) {
                st.heap.pop();
                aside.push(Reverse((priority, first)));
                continue;
            }
            if self.busy() >= self.limit() {
                break None;
            }
            st.heap.pop();
            let Some(w) = st.waiting.remove(&first) else {
                continue;
            };
            st.by_order.remove(&w.order_id);
            st.delivering.insert(w.order_id.clone());
            self.inner.delivering.fetch_add(1, Ordering::AcqRel);
            break Some(Admitted {
                order_id: w.order_id,
                seqs: w.seqs,
            });
        };
        st.heap.extend(aside);
        self.refresh(&st);
        found
    }

    /// An order's delivery (from [`Admission::try_now`] or
    /// [`Admission::next`]) finished.
    pub fn delivered(&self, order_id: &str, seqs: &[u64]) {
        {
            let mut st = self.inner.state.lock();
            for s in seqs {
                st.known.remove(s);
            }
            st.delivering.remove(order_id);
            if !st.by_order.contains_key(order_id) {
                self.inner.pressure.held.lock().remove(order_id);
            }
        }
        self.inner.delivering.fetch_sub(1, Ordering::AcqRel);
        self.inner.pressure.wake.notify_one();
    }

    fn refresh(&self, st: &State) {
        self.inner
            .pressure
            .on
            .store(!st.waiting.is_empty(), Ordering::Release);
    }

    /// Orders acknowledged and waiting to start, due to ship before
    /// `until_ms` by the earliest ship-by their stored snapshots name, and
    /// of those already past it at `now_ms`: `(at_risk, late)`. Only
    /// orders `counted` says are not counted yet (no checkpoint, or one
    /// that knows no ship-by) are taken, so an order is never counted
    /// twice; nor one a waiting event settled ([`Admission::settled`]).
    /// Costs the orders waiting.
    pub fn due_before(
        &self,
        now_ms: i64,
        until_ms: i64,
        counted: impl Fn(&str) -> bool,
    ) -> (u64, u64) {
        let st = self.inner.state.lock();
        // Operator and API events say nothing of a ship-by (`due_ms` is
        // the earliest any other event of the order names).
        let due: Vec<(String, i64)> = st
            .waiting
            .values()
            .filter(|w| w.due_ms < until_ms && !w.settled)
            .map(|w| (w.order_id.clone(), w.due_ms))
            .collect();
        drop(st);
        let (mut at_risk, mut late) = (0, 0);
        for (id, ship_by_ms) in due {
            if counted(&id) {
                continue;
            }
            at_risk += 1;
            if ship_by_ms < now_ms {
                late += 1;
            }
        }
        (at_risk, late)
    }

    /// Orders waiting with an event that says TikTok no longer waits for
    /// them to ship: their checkpoint may still count them at risk or
    /// late, which TikTok does not. Costs the orders waiting.
    pub fn settled(&self) -> Vec<String> {
        let st = self.inner.state.lock();
        st.waiting
            .values()
            .filter(|w| w.settled)
            .map(|w| w.order_id.clone())
            .collect()
    }

    /// Orders waiting, the longest wait and the memory verdict.
    pub fn backlog(&self) -> Backlog {
        let st = self.inner.state.lock();
        Backlog {
            waiting: st.waiting.len(),
            oldest_ms: st.waiting.values().map(|w| w.since_ms).min(),
            over_budget: self.inner.over_budget.load(Ordering::Acquire),
            rss_bytes: self.inner.rss.load(Ordering::Acquire),
        }
    }

    /// Reads the resident memory, judges it against the budget and
    /// publishes the gauges. Called every half second by the daemon.
    pub fn observe(&self, now_ms: i64) {
        if let Some(rss) = resident_bytes() {
            self.inner.rss.store(rss, Ordering::Release);
            ::metrics::gauge!(metrics::RSS_BYTES).set(rss as f64);
            let budget = self.inner.memory_budget;
            if budget > 0 {
                // Hysteresis: over at the budget, back under at 90% of it.
                let was = self.inner.over_budget.load(Ordering::Acquire);
                let over = if was {
                    rss > budget / 10 * 9
                } else {
                    rss > budget
                };
                if over != was {
                    if over {
                        tracing::warn!(rss, budget, "Memory over budget: admitting fewer orders and passivating idle ones now");
                    } else {
                        tracing::info!(rss, budget, "Memory back under budget");
                    }
                    self.inner.over_budget.store(over, Ordering::Release);
                    self.inner.pressure.wake.notify_one();
                }
                ::metrics::gauge!(metrics::OVER_BUDGET).set(if over { 1.0 } else { 0.0 });
            }
        }
        let b = {
            let st = self.inner.state.lock();
            self.refresh(&st);
            drop(st);
            self.backlog()
        };
        ::metrics::gauge!(metrics::WAITING).set(b.waiting as f64);
        ::metrics::gauge!(metrics::OLDEST_WAIT_SECONDS).set(
            b.oldest_ms
                .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0),
        );
    }
}

/// This process's resident memory (`VmRSS`), where `/proc` tells it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::event::EventKind;

    fn ev(order: &str, source: Source, received_ms: i64) -> OrderEvent {
        OrderEvent {
            id: format!("{order}-{received_ms}"),
            order_id: order.into(),
            shop_id: "s".into(),
            source,
            received_ms,
            kind: EventKind::Refresh { reason: "x".into() },
        }
    }

    #[test]
    fn waits_past_the_limit_and_starts_by_priority_keeping_one_orders_events_together() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(1, 0, p.clone());
        assert!(a.try_now(1, "first"));
        // One slot, taken: the rest wait, and pressure is on.
        assert!(!a.try_now(2, "second"));
        assert!(a.enqueue(2, &ev("late", Source::Webhook, 5_000)));
        assert!(a.enqueue(3, &ev("early", Source::Webhook, 1_000)));
        assert!(a.enqueue(4, &ev("late", Source::Webhook, 6_000)));
        assert!(
            !a.enqueue(4, &ev("late", Source::Webhook, 6_000)),
            "queued once"
        );
        assert!(a.enqueue(5, &ev("operator", Source::Operator, 9_000)));
        assert!(p.on());
        assert_eq!(a.backlog().waiting, 3);
        assert_eq!(a.backlog().oldest_ms, Some(1_000));
        assert!(a.take().is_none(), "no slot yet");
        a.delivered("first", &[1]);
        let first = a.take().unwrap();
        assert_eq!(first.order_id, "operator");
        assert!(a.take().is_none());
        a.delivered(&first.order_id, &first.seqs);
        let second = a.take().unwrap();
        assert_eq!(
            (second.order_id.as_str(), second.seqs.clone()),
            ("early", vec![3])
        );
        a.delivered(&second.order_id, &second.seqs);
        let third = a.take().unwrap();
        assert_eq!(
            (third.order_id.as_str(), third.seqs.clone()),
            ("late", vec![2, 4])
        );
        assert!(a.knows(4));
        a.delivered(&third.order_id, &third.seqs);
        assert!(!a.knows(4));
        assert_eq!(a.backlog().waiting, 0);
        assert!(!p.on(), "nothing waits: actors keep their usual idle time");
    }

    #[test]
    fn waiting_orders_count_by_their_ship_by_unless_counted_already() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(1, 0, p);
        assert!(a.try_now(1, "busy"));
        // Due 48 h after arrival when the ship-by is not known yet.
        assert!(a.enqueue(2, &ev("a", Source::Webhook, 0)));
        assert!(a.enqueue(3, &ev("b", Source::Webhook, 100_000_000)));
        assert!(a.enqueue(4, &ev("op", Source::Operator, 0)));
        let due_a = UNKNOWN_SHIP_BY.as_millis() as i64;
        assert_eq!(
            a.due_before(due_a + 1, due_a + 50_000_000, |_| false),
            (1, 1)
        );
        assert_eq!(a.due_before(due_a - 1, due_a + 1, |_| false), (1, 0));
        assert_eq!(
            a.due_before(due_a + 1, due_a + 50_000_000, |id| id == "a"),
            (0, 0),
            "an order with a checkpoint is counted there"
        );
        assert_eq!(
            a.due_before(0, i64::MAX, |_| false),
            (2, 0),
            "never the operator's"
        );
    }

    #[test]
    fn a_later_event_naming_an_earlier_due_moves_its_order_up_and_counts_once() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(1, 0, p);
        assert!(a.try_now(1, "busy"));
        let h = UNKNOWN_SHIP_BY.as_millis() as i64;
        assert!(a.enqueue(2, &ev("x", Source::Webhook, 100_000_000)));
        assert!(a.enqueue(3, &ev("y", Source::Webhook, 50_000_000)));
        // x's second event is due first (a paid order's snapshot names a
        // ship-by its unpaid one did not).
        assert!(a.enqueue(4, &ev("x", Source::Webhook, 0)));
        assert_eq!(
            a.due_before(0, h + 1, |_| false),
            (1, 0),
            "x, by its earlier due"
        );
        assert_eq!(
            a.due_before(h + 1, i64::MAX, |_| false),
            (2, 1),
            "each order once"
        );
        a.delivered("busy", &[1]);
        let first = a.take().unwrap();
        assert_eq!(
            (first.order_id.as_str(), first.seqs.clone()),
            ("x", vec![2, 4])
        );
        a.delivered(&first.order_id, &first.seqs);
        let second = a.take().unwrap();
        assert_eq!(second.order_id, "y");
        a.delivered(&second.order_id, &second.seqs);
        assert!(
            a.take().is_none(),
            "x's superseded entry is stale, not a start"
        );
        assert_eq!(a.backlog().waiting, 0);
    }

    fn status(order: &str, status: &str, received_ms: i64) -> OrderEvent {
        OrderEvent {
            kind: EventKind::Status {
                status: status.into(),
                update_time: 0,
            },
            ..ev(order, Source::Webhook, received_ms)
        }
    }

    fn hinted(order: &str, status: &str, received_ms: i64) -> OrderEvent {
        OrderEvent {
            kind: EventKind::status_webhook(status),
            ..ev(order, Source::Webhook, received_ms)
        }
    }

    #[test]
    fn an_order_shipped_or_cancelled_by_any_waiting_event_is_settled() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(1, 0, p);
        assert!(a.try_now(1, "busy"));
        assert!(a.enqueue(2, &ev("x", Source::Webhook, 0)));
        assert!(a.enqueue(3, &status("x", "AWAITING_SHIPMENT", 1)));
        assert!(a.enqueue(4, &status("x", "CANCELLED", 2)));
        assert!(a.enqueue(5, &status("y", "IN_TRANSIT", 0)));
        // A status webhook's refresh names its status; webhooks come in
        // any order, and a cancelled order stays cancelled.
        assert!(a.enqueue(6, &hinted("z", "CANCELLED", 0)));
        assert!(a.enqueue(7, &hinted("z", "AWAITING_SHIPMENT", 1)));
        assert!(a.enqueue(8, &status("w", "A_STATUS_TIKTOK_ADDS_LATER", 0)));
        assert!(a.enqueue(9, &hinted("v", "AWAITING_SHIPMENT", 0)));
        let mut settled = a.settled();
        settled.sort();
        assert_eq!(
            settled,
            ["x", "y", "z"],
            "an unknown status settles nothing"
        );
        assert_eq!(
            a.due_before(i64::MAX - 1, i64::MAX, |_| false),
            (2, 2),
            "w and v are still due; x, y and z are not counted"
        );
    }

    #[test]
    fn live_actors_count_against_the_limit() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(2, 0, p.clone());
        p.set_active(2);
        assert!(!a.try_now(1, "o"));
        a.enqueue(1, &ev("o", Source::Webhook, 0));
        assert!(a.take().is_none());
        p.set_active(1);
        assert_eq!(a.take().unwrap().order_id, "o");
    }

    #[test]
    fn one_orders_deliveries_take_turns_and_hold_it_hot() {
        let p = Arc::new(Pressure::default());
        let a = Admission::new(10, 0, p.clone());
        assert!(a.try_now(1, "o"));
        assert!(p.holds("o"), "an order being delivered is held");
        // A second event of the same order waits for the first delivery.
        assert!(!a.try_now(2, "o"));
        assert!(a.enqueue(2, &ev("o", Source::Webhook, 0)));
        assert!(a.take().is_none(), "not while its first delivery runs");
        // Another order is not held back by it.
        assert!(a.enqueue(3, &ev("other", Source::Webhook, 5)));
        assert_eq!(a.take().unwrap().order_id, "other");
        a.delivered("o", &[1]);
        assert!(p.holds("o"), "its second event still waits");
        let next = a.take().unwrap();
        assert_eq!((next.order_id.as_str(), next.seqs.clone()), ("o", vec![2]));
        a.delivered("o", &next.seqs);
        assert!(!p.holds("o"), "nothing left for it: it may be archived");
    }
}
