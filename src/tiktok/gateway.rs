//! The gateway: the one way orderflow talks to TikTok.
//!
//! An actix actor behind [`GatewayHandle`] owns a priority queue per shop and
//! dispatches calls when three things allow it: the concurrency cap, the
//! shop's rate limiter (governor, keyed by shop under this app, at
//! `qps × safety_margin`), and priority. Priority is the call's class
//! (writes such as ships and cancels, then status sync, then background
//! polling) and then the order's ship-by deadline, earliest first, so the
//! orders closest to a late-dispatch penalty go first when quota is scarce.
//!
//! Order-detail lookups are coalesced: ids for one shop collect for
//! `batch_window` (or until 50) and go out as one call.
//!
//! The actor never panics and never blocks: calls run as futures spawned in
//! its context; the limiter is consulted with the non-blocking `check`, and
//! when nothing may go yet the actor schedules its own wake-up.

use std::cell::Cell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use governor::clock::{Clock, DefaultClock};
use tokio::sync::oneshot;

use super::client::{Client, Shipment, TokenSink, Tokens, PREPERMITTED};
use super::config::TiktokConfig;
use super::dto::*;
use super::metrics as m;
use super::Error;
use crate::order::Order;

/// How urgent a call is, before its deadline is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Mutations the workflows wait on: ship, cancel, inventory.
    Write = 0,
    /// Reading an order's status to keep a workflow in sync.
    Sync = 1,
    /// Reconciliation polling, webhook registration, housekeeping.
    Background = 2,
}

/// A call's place in the queue: class first, then the ship-by deadline
/// (Unix seconds, earliest first; none goes last), then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub class: Class,
    pub deadline: Option<i64>,
}

impl Priority {
    pub fn write(deadline: Option<i64>) -> Priority {
        Priority {
            class: Class::Write,
            deadline,
        }
    }
    pub fn sync(deadline: Option<i64>) -> Priority {
        Priority {
            class: Class::Sync,
            deadline,
        }
    }
    pub fn background() -> Priority {
        Priority {
            class: Class::Background,
            deadline: None,
        }
    }
    /// A call about `order`, ranked by its ship-by deadline.
    pub fn for_order(class: Class, order: &Order) -> Priority {
        Priority {
            class,
            deadline: order.deadlines.ship_by(),
        }
    }
    fn key(self) -> (Class, i64) {
        (self.class, self.deadline.unwrap_or(i64::MAX))
    }
    /// The more urgent of two.
    fn max(self, other: Priority) -> Priority {
        if other.key() < self.key() {
            other
        } else {
            self
        }
    }
}

type Job = Box<dyn FnOnce(Client) -> LocalBoxFuture<'static, ()> + Send>;

struct Queued {
    key: (Class, i64, u64),
    enqueued: Instant,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.cmp(&o.key)
    }
}

type DetailReply = oneshot::Sender<Result<WireOrder, Error>>;

/// Order-detail ids of one shop waiting to share a call.
struct Batch {
    gen: u64,
    ids: Vec<String>,
    waiters: HashMap<String, Vec<DetailReply>>,
    priority: Priority,
    opened: Instant,
}

/// A detail call that is queued (waiting for the rate limiter) but not yet
/// sent: ids arriving meanwhile ride along, up to 50, so a backlog of
/// webhooks costs one call per 50 orders rather than one per window.
#[derive(Default)]
struct Pending {
    ids: Vec<String>,
    waiters: HashMap<String, Vec<DetailReply>>,
    dispatched: bool,
}

struct Gateway {
    client: Client,
    queues: HashMap<String, BinaryHeap<Reverse<Queued>>>,
    batches: HashMap<String, Batch>,
    /// Per shop, the newest queued detail call still open for more ids.
    queued_details: HashMap<String, Arc<parking_lot::Mutex<Pending>>>,
    /// The limiters' clock, made once: making one calibrates a TSC clock
    /// (cpuid and all), which showed in the profile when done per dispatch.
    clock: DefaultClock,
    in_flight: usize,
    max_concurrency: usize,
    batch_window: Duration,
    seq: u64,
    depth: usize,
    wake_at: Option<Instant>,
}

impl Actor for Gateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: senders wait (`send().await`) instead of piling up.
        ctx.set_mailbox_capacity(256);
    }
}

impl Gateway {
    fn set_depth(&mut self) {
        let batched: usize = self.batches.values().map(|b| b.ids.len()).sum();
        let queued: usize = self.queues.values().map(|q| q.len()).sum();
        self.depth = batched + queued;
        metrics::gauge!(m::QUEUE_DEPTH).set(self.depth as f64);
    }

    fn enqueue(
        &mut self,
        shop: String,
        priority: Priority,
        enqueued: Instant,
        job: Job,
        ctx: &mut Context<Self>,
    ) {
        self.seq += 1;
        let (class, deadline) = priority.key();
        self.queues.entry(shop).or_default().push(Reverse(Queued {
            key: (class, deadline, self.seq),
            enqueued,
            job,
        }));
        self.set_depth();
        self.pump(ctx);
    }

    /// Dispatches as many queued calls as the cap and the limiters allow,
    /// most urgent first; schedules a wake-up for the rest.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let clock = self.clock.clone();
        while self.in_flight < self.max_concurrency {
            let mut heads: Vec<((Class, i64, u64), String)> = self
                .queues
                .iter()
                .filter_map(|(shop, q)| q.peek().map(|Reverse(h)| (h.key, shop.clone())))
                .collect();
            if heads.is_empty() {
                break;
            }
            heads.sort();
            let mut wait: Option<Duration> = None;
            let mut chosen = None;
            for (_, shop) in heads {
                let Ok(state) = self.client.shop(&shop) else {
                    // Unknown shops fail inside the job; no limiter needed.
                    chosen = Some(shop);
                    break;
                };
                match state.limiter.check() {
                    Ok(()) => {
                        chosen = Some(shop);
                        break;
                    }
                    Err(not_until) => {
                        let w = not_until.wait_time_from(clock.now());
                        wait = Some(wait.map_or(w, |x: Duration| x.min(w)));
                    }
                }
            }
            let Some(shop) = chosen else {
                if let Some(w) = wait {
                    self.wake_in(w, ctx);
                }
                break;
            };
            let Some(Reverse(q)) = self.queues.get_mut(&shop).and_then(|h| h.pop()) else {
                break;
            };
            if self.queues.get(&shop).is_some_and(|h| h.is_empty()) {
                self.queues.remove(&shop);
            }
            self.set_depth();
            let class = match q.key.0 {
                Class::Write => "write",
                Class::Sync => "sync",
                Class::Background => "background",
            };
            metrics::histogram!(m::QUEUE_WAIT_SECONDS, "class" => class)
                .record(q.enqueued.elapsed().as_secs_f64());
            self.in_flight += 1;
            let fut = PREPERMITTED.scope(Cell::new(true), (q.job)(self.client.clone()));
            ctx.spawn(fut.into_actor(self).map(|(), act, ctx| {
                act.in_flight = act.in_flight.saturating_sub(1);
                act.pump(ctx);
            }));
        }
    }

    fn wake_in(&mut self, w: Duration, ctx: &mut Context<Self>) {
        let at = Instant::now() + w;
        if self.wake_at.is_some_and(|t| t <= at && t > Instant::now()) {
            return;
        }
        self.wake_at = Some(at);
        ctx.run_later(w, |act, ctx| {
            act.wake_at = None;
            act.pump(ctx);
        });
    }

    fn flush(&mut self, shop: &str, gen: Option<u64>, ctx: &mut Context<Self>) {
        match self.batches.get(shop) {
            Some(b) if gen.is_none_or(|g| g == b.gen) => {}
            _ => return,
        }
        let Some(batch) = self.batches.remove(shop) else {
            return;
        };
        let shop_id = shop.to_string();
        let Batch {
            ids,
            waiters,
            priority,
            opened,
            ..
        } = batch;
        let pending = Arc::new(parking_lot::Mutex::new(Pending {
            ids,
            waiters,
            dispatched: false,
        }));
        self.queued_details.insert(shop_id.clone(), pending.clone());
        let job: Job = Box::new(move |client: Client| {
            // Bound at dispatch time: everything that joined while queued.
            let (ids, mut waiters) = {
                let mut p = pending.lock();
                p.dispatched = true;
                (std::mem::take(&mut p.ids), std::mem::take(&mut p.waiters))
            };
            async move {
                match client.order_detail(&shop_id, &ids).await {
                    Ok(orders) => {
                        let mut by_id: HashMap<String, WireOrder> =
                            orders.into_iter().map(|o| (o.id.clone(), o)).collect();
                        for (id, senders) in waiters.drain() {
                            let found = by_id.remove(&id);
                            for s in senders {
                                let r = found
                                    .clone()
                                    .ok_or_else(|| Error::OrderNotFound(id.clone()));
                                let _ = s.send(r);
                            }
                        }
                    }
                    Err(e) => {
                        for (_, senders) in waiters.drain() {
                            for s in senders {
                                let _ = s.send(Err(e.duplicate()));
                            }
                        }
                    }
                }
            }
            .boxed_local()
        });
        self.enqueue(shop.to_string(), priority, opened, job, ctx);
    }
}

struct Submit {
    shop: String,
    priority: Priority,
    job: Job,
}

impl Message for Submit {
    type Result = ();
}

impl Handler<Submit> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) {
        self.enqueue(msg.shop, msg.priority, Instant::now(), msg.job, ctx);
    }
}

struct Detail {
    shop: String,
    order_id: String,
    priority: Priority,
    reply: DetailReply,
}

impl Message for Detail {
    type Result = ();
}

impl Handler<Detail> for Gateway {
    type Result = ();
    fn handle(&mut self, msg: Detail, ctx: &mut Context<Self>) {
        // Join a queued call that has not gone out yet, while it has room.
        if let Some(p) = self.queued_details.get(&msg.shop) {
            let mut guard = p.lock();
            let p = &mut *guard;
            if !p.dispatched && (p.ids.len() < 50 || p.waiters.contains_key(&msg.order_id)) {
                let waiters = p.waiters.entry(msg.order_id.clone()).or_default();
                if waiters.is_empty() {
                    p.ids.push(msg.order_id);
                }
                waiters.push(msg.reply);
                return;
            }
        }
        self.seq += 1;
        let gen = self.seq;
        let batch = self
            .batches
            .entry(msg.shop.clone())
            .or_insert_with(|| Batch {
                gen,
                ids: Vec::new(),
                waiters: HashMap::new(),
                priority: msg.priority,
                opened: Instant::now(),
            });
        let fresh = batch.ids.is_empty();
        batch.priority = batch.priority.max(msg.priority);
        let waiters = batch.waiters.entry(msg.order_id.clone()).or_default();
        if waiters.is_empty() {
            batch.ids.push(msg.order_id);
        }
        waiters.push(msg.reply);
        let full = batch.ids.len() >= 50;
        let gen = batch.gen;
        self.set_depth();
        if full {
            self.flush(&msg.shop, None, ctx);
        } else if fresh {
            let shop = msg.shop;
            ctx.run_later(self.batch_window, move |act, ctx| {
                act.flush(&shop, Some(gen), ctx)
            });
        }
    }
}

struct Depth;

impl Message for Depth {
    type Result = usize;
}

impl Handler<Depth> for Gateway {
    type Result = usize;
    fn handle(&mut self, _: Depth, _: &mut Context<Self>) -> usize {
        self.depth
    }
}

/// The cheap-to-clone handle callers hold. Every method queues one call and
/// waits for its result.
#[derive(Clone)]
pub struct GatewayHandle {
    addr: Addr<Gateway>,
    client: Client,
    /// Get Shipping Providers per (shop, delivery option), for an hour.
    providers: Arc<parking_lot::Mutex<ProvidersCache>>,
}

/// (shop, delivery option) → when read, and the providers.
type ProvidersCache = HashMap<(String, String), (Instant, Vec<ShippingProvider>)>;

/// How long a delivery option's shipping providers are trusted.
const PROVIDERS_TTL: Duration = Duration::from_secs(3600);

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("client", &self.client)
            .finish()
    }
}

impl GatewayHandle {
    /// Builds the client and starts the gateway actor on the current actix
    /// arbiter (call from inside an actix `System`).
    pub fn start(config: &TiktokConfig, sink: Arc<dyn TokenSink>) -> Result<GatewayHandle, Error> {
        let client = Client::new(config, sink)?;
        Ok(Self::with_client(
            client,
            config.max_concurrency,
            config.batch_window,
        ))
    }

    /// Starts a gateway over an existing client.
    pub fn with_client(
        client: Client,
        max_concurrency: usize,
        batch_window: Duration,
    ) -> GatewayHandle {
        let actor = Gateway {
            client: client.clone(),
            queues: HashMap::new(),
            batches: HashMap::new(),
            queued_details: HashMap::new(),
            clock: DefaultClock::default(),
            in_flight: 0,
            max_concurrency: max_concurrency.max(1),
            batch_window,
            seq: 0,
            depth: 0,
            wake_at: None,
        };
        GatewayHandle {
            addr: actor.start(),
            client,
            providers: Default::default(),
        }
    }

    /// Runs `f` through the queue: it starts once the shop's limiter, the
    /// concurrency cap and every more urgent call allow. `f`'s first HTTP
    /// attempt uses the permit the gateway took; retries take their own.
    pub async fn call<T, F, Fut>(&self, shop_id: &str, priority: Priority, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |client| {
            async move {
                let _ = tx.send(f(client).await);
            }
            .boxed_local()
        });
        self.addr
            .send(Submit {
                shop: shop_id.to_string(),
                priority,
                job,
            })
            .await
            .map_err(|_| Error::GatewayStopped)?;
        rx.await.map_err(|_| Error::GatewayStopped)?
    }

    /// One order's detail as TikTok sends it, batched with other lookups of
    /// the same shop.
    pub async fn order_detail_wire(
        &self,
        shop_id: &str,
        order_id: &str,
        priority: Priority,
    ) -> Result<WireOrder, Error> {
        let (tx, rx) = oneshot::channel();
        self.addr
            .send(Detail {
                shop: shop_id.to_string(),
                order_id: order_id.to_string(),
                priority,
                reply: tx,
            })
            .await
            .map_err(|_| Error::GatewayStopped)?;
        rx.await.map_err(|_| Error::GatewayStopped)?
    }

    /// One order as the domain type.
    pub async fn order_detail(
        &self,
        shop_id: &str,
        order_id: &str,
        priority: Priority,
    ) -> Result<Order, Error> {
        let w = self.order_detail_wire(shop_id, order_id, priority).await?;
        Ok(Order::from_wire(shop_id, &w)?)
    }

    /// Calls and batched lookups waiting in the queue.
    pub async fn queue_depth(&self) -> Result<usize, Error> {
        self.addr
            .send(Depth)
            .await
            .map_err(|_| Error::GatewayStopped)
    }

    /// The shop's current tokens (after any refresh).
    pub fn tokens(&self, shop_id: &str) -> Result<Tokens, Error> {
        self.client.tokens(shop_id)
    }

    /// Exchanges a seller's authorization code for tokens. Goes to the auth
    /// host, which has no per-shop quota, so it bypasses the queue.
    pub async fn get_token(&self, auth_code: &str) -> Result<TokenData, Error> {
        self.client.get_token(auth_code).await
    }

    /// Adds a shop while running (its own rate limiter), or points a known
    /// one at a newer grant.
    pub fn add_shop(&self, spec: &super::ShopSpec, grant: Arc<super::Grant>) {
        self.client.add_shop(spec, grant)
    }

    /// Stops calling TikTok for a shop; queued and later calls for it fail
    /// with [`Error::UnknownShop`].
    pub fn remove_shop(&self, shop_id: &str) -> bool {
        self.client.remove_shop(shop_id)
    }

    /// The shops calls can be made for.
    pub fn shop_ids(&self) -> Vec<String> {
        self.client.shop_ids()
    }

    pub fn grant_of(&self, shop_id: &str) -> Result<Arc<super::Grant>, Error> {
        self.client.grant_of(shop_id)
    }

    /// When a call for the shop last succeeded (Unix seconds).
    pub fn last_ok(&self, shop_id: &str) -> Option<i64> {
        self.client.last_ok(shop_id)
    }

    /// Refreshes a grant before its access token expires (single-flight
    /// with the refresh on code 105002; skipped when `used` was replaced
    /// meanwhile). Goes to the auth host: no shop quota, no queue.
    pub async fn refresh_grant(
        &self,
        grant: &Arc<super::Grant>,
        used: Option<&super::Secret>,
        who: &str,
    ) -> Result<Tokens, Error> {
        self.client.refresh_grant(grant, used, who).await
    }

    /// The shops a just-exchanged grant covers, with their ciphers.
    pub async fn authorized_shops_with(
        &self,
        grant: Arc<super::Grant>,
    ) -> Result<Vec<AuthorizedShop>, Error> {
        self.client.authorized_shops_with(grant).await
    }

    /// Forces a refresh of the shop's tokens (single-flight with the
    /// automatic refresh on code 105002); the sink receives them.
    pub async fn refresh_token(&self, shop_id: &str) -> Result<Tokens, Error> {
        self.client.refresh_token(shop_id).await
    }

    pub async fn authorized_shops(&self, shop_id: &str) -> Result<Vec<AuthorizedShop>, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.authorized_shops(&s).await
        })
        .await
    }

    pub async fn search_orders(
        &self,
        shop_id: &str,
        filter: SearchOrdersFilter,
        page: SearchOrdersPage,
        priority: Priority,
    ) -> Result<SearchOrdersData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, priority, move |c| async move {
            c.search_orders(&s, &filter, &page).await
        })
        .await
    }

    pub async fn ship_package(
        &self,
        shop_id: &str,
        package_id: &str,
        body: ShipPackageRequest,
        priority: Priority,
    ) -> Result<Shipment<()>, Error> {
        let (s, p) = (shop_id.to_string(), package_id.to_string());
        self.call(shop_id, priority, move |c| async move {
            c.ship_package(&s, &p, &body).await
        })
        .await
    }

    /// Get Package Shipping Document: the URL of a TikTok Shipping
    /// package's label and packing slip.
    pub async fn shipping_document(
        &self,
        shop_id: &str,
        package_id: &str,
        document_type: &'static str,
        priority: Priority,
    ) -> Result<crate::tiktok::dto::ShippingDocumentData, Error> {
        let (s, p) = (shop_id.to_string(), package_id.to_string());
        self.call(shop_id, priority, move |c| async move {
            c.shipping_document(&s, &p, document_type, "A6").await
        })
        .await
    }

    pub async fn batch_ship(
        &self,
        shop_id: &str,
        body: BatchShipRequest,
        priority: Priority,
    ) -> Result<ItemErrorsData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, priority, move |c| async move {
            c.batch_ship(&s, &body).await
        })
        .await
    }

    pub async fn mark_package_shipped(
        &self,
        shop_id: &str,
        order_id: &str,
        body: MarkShippedRequest,
        priority: Priority,
    ) -> Result<Shipment<MarkShippedData>, Error> {
        let (s, o) = (shop_id.to_string(), order_id.to_string());
        self.call(shop_id, priority, move |c| async move {
            c.mark_package_shipped(&s, &o, &body).await
        })
        .await
    }

    pub async fn update_shipping_info(
        &self,
        shop_id: &str,
        order_id: &str,
        body: UpdateShippingInfoRequest,
        priority: Priority,
    ) -> Result<(), Error> {
        let (s, o) = (shop_id.to_string(), order_id.to_string());
        self.call(shop_id, priority, move |c| async move {
            c.update_shipping_info(&s, &o, &body).await
        })
        .await
    }

    /// The shipping providers TikTok takes for a delivery option, from a
    /// cache kept an hour (one call per option and shop, not per label).
    pub async fn providers_for(
        &self,
        shop_id: &str,
        delivery_option_id: &str,
    ) -> Result<Vec<ShippingProvider>, Error> {
        let key = (shop_id.to_string(), delivery_option_id.to_string());
        if let Some((at, p)) = self.providers.lock().get(&key) {
            if at.elapsed() < PROVIDERS_TTL {
                return Ok(p.clone());
            }
        }
        let p = self.shipping_providers(shop_id, delivery_option_id).await?;
        self.providers
            .lock()
            .insert(key, (Instant::now(), p.clone()));
        Ok(p)
    }

    /// The buyer cancellation requests awaiting the seller among
    /// `order_ids` (one Search Cancellations call for up to 50 orders).
    pub async fn pending_cancellations(
        &self,
        shop_id: &str,
        order_ids: Vec<String>,
        priority: Priority,
    ) -> Result<Vec<Cancellation>, Error> {
        let s = shop_id.to_string();
        let filter = SearchCancellationsFilter {
            order_ids,
            cancel_status: vec!["CANCELLATION_REQUEST_PENDING".into()],
            ..Default::default()
        };
        let d = self
            .call(shop_id, priority, move |c| async move {
                c.search_cancellations(&s, &filter).await
            })
            .await?;
        Ok(d.cancellations
            .into_iter()
            .filter(Cancellation::awaits_seller)
            .collect())
    }

    /// A return as Search Returns shows it, if TikTok has it.
    pub async fn return_order(
        &self,
        shop_id: &str,
        return_id: &str,
        priority: Priority,
    ) -> Result<Option<ReturnOrder>, Error> {
        let filter = SearchReturnsFilter {
            return_ids: vec![return_id.to_string()],
            ..Default::default()
        };
        let d = self.search_returns(shop_id, filter, None, priority).await?;
        Ok(d.return_orders
            .into_iter()
            .find(|r| r.return_id == return_id))
    }

    /// One page of Search Returns (50 returns).
    pub async fn search_returns(
        &self,
        shop_id: &str,
        filter: SearchReturnsFilter,
        page_token: Option<String>,
        priority: Priority,
    ) -> Result<SearchReturnsData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, priority, move |c| async move {
            c.search_returns(&s, &filter, page_token.as_deref()).await
        })
        .await
    }

    pub async fn approve_cancellation(
        &self,
        shop_id: &str,
        cancel_id: &str,
        idempotency_key: &str,
        priority: Priority,
    ) -> Result<(), Error> {
        let (s, c, k) = (
            shop_id.to_string(),
            cancel_id.to_string(),
            idempotency_key.to_string(),
        );
        self.call(shop_id, priority, move |cl| async move {
            cl.approve_cancellation(&s, &c, &k).await
        })
        .await
    }

    /// Rejects a buyer's cancellation request with `reason`: a reject kind
    /// ([`super::reasons::RejectKind`]) or an official key, mapped to the
    /// key for the shop's market.
    pub async fn reject_cancellation(
        &self,
        shop_id: &str,
        cancel_id: &str,
        reason: &str,
        idempotency_key: &str,
        priority: Priority,
    ) -> Result<(), Error> {
        let market = self.market(shop_id).await?;
        let key =
            super::reasons::reject_key(market, reason).ok_or_else(|| Error::CancelReason {
                reason: reason.to_string(),
                market,
                status: "a buyer's cancellation request".into(),
                valid: super::reasons::reject_reasons(market)
                    .iter()
                    .map(|(k, t)| format!("{k} ({t})"))
                    .collect(),
            })?;
        let body = RejectCancellationRequest {
            reject_reason: key.to_string(),
            comment: None,
        };
        let (s, c, k) = (
            shop_id.to_string(),
            cancel_id.to_string(),
            idempotency_key.to_string(),
        );
        self.call(shop_id, priority, move |cl| async move {
            cl.reject_cancellation(&s, &c, &body, &k).await
        })
        .await
    }

    pub async fn warehouses(&self, shop_id: &str) -> Result<Vec<Warehouse>, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.warehouses(&s).await
        })
        .await
    }

    pub async fn delivery_options(
        &self,
        shop_id: &str,
        warehouse_id: &str,
    ) -> Result<Vec<DeliveryOption>, Error> {
        let (s, w) = (shop_id.to_string(), warehouse_id.to_string());
        self.call(shop_id, Priority::background(), move |c| async move {
            c.delivery_options(&s, &w).await
        })
        .await
    }

    pub async fn shipping_providers(
        &self,
        shop_id: &str,
        delivery_option_id: &str,
    ) -> Result<Vec<ShippingProvider>, Error> {
        let (s, d) = (shop_id.to_string(), delivery_option_id.to_string());
        self.call(shop_id, Priority::background(), move |c| async move {
            c.shipping_providers(&s, &d).await
        })
        .await
    }

    /// Whether the shop is configured (TikTok can be asked about it).
    pub fn knows_shop(&self, shop_id: &str) -> bool {
        self.client.shop(shop_id).is_ok()
    }

    /// The shop's market: known without a call when configured or already
    /// read, else read from Get Authorized Shops through the queue.
    pub async fn market(&self, shop_id: &str) -> Result<super::reasons::Market, Error> {
        if let Some(m) = self.client.known_market(shop_id)? {
            return Ok(m);
        }
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.market(&s).await
        })
        .await
    }

    /// The official key for `reason` (a kind or a key) for this order's
    /// shop's market and its status, or [`Error::CancelReason`] with the
    /// reasons TikTok would take.
    pub async fn cancel_key(&self, order: &Order, reason: &str) -> Result<&'static str, Error> {
        let market = self.market(&order.shop_id).await?;
        super::reasons::seller_cancel_key(market, &order.status, reason).map_err(|r| {
            Error::CancelReason {
                reason: reason.to_string(),
                market,
                status: order.status.to_string(),
                valid: match r {
                    super::reasons::Refusal::NotValid { valid } => valid
                        .iter()
                        .map(|v| format!("{} ({})", v.kind.as_str(), v.key))
                        .collect(),
                    super::reasons::Refusal::NotCancellable => Vec::new(),
                },
            }
        })
    }

    /// A seller cancellation with `reason` (a kind or an official key)
    /// turned into the key TikTok takes for this shop's market and the
    /// order's status; a reason that does not fit is refused here, before
    /// any call ([`Error::CancelReason`]).
    pub async fn seller_cancel(
        &self,
        order: &Order,
        reason: &str,
        priority: Priority,
    ) -> Result<CancelOrderData, Error> {
        let key = self.cancel_key(order, reason).await?;
        let body = CancelOrderRequest {
            order_id: order.id.clone(),
            cancel_reason: key.to_string(),
            ..Default::default()
        };
        self.cancel_order(&order.shop_id, body, priority).await
    }

    pub async fn cancel_order(
        &self,
        shop_id: &str,
        body: CancelOrderRequest,
        priority: Priority,
    ) -> Result<CancelOrderData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, priority, move |c| async move {
            c.cancel_order(&s, &body).await
        })
        .await
    }

    pub async fn update_inventory(
        &self,
        shop_id: &str,
        product_id: &str,
        body: UpdateInventoryRequest,
        priority: Priority,
    ) -> Result<ItemErrorsData, Error> {
        let (s, p) = (shop_id.to_string(), product_id.to_string());
        self.call(shop_id, priority, move |c| async move {
            c.update_inventory(&s, &p, &body).await
        })
        .await
    }

    pub async fn inventory_search(
        &self,
        shop_id: &str,
        body: InventorySearchRequest,
        priority: Priority,
    ) -> Result<InventorySearchData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, priority, move |c| async move {
            c.inventory_search(&s, &body).await
        })
        .await
    }

    /// One page of the shop's products, at background priority: catalogue
    /// sync never delays an order's calls.
    pub async fn search_products(
        &self,
        shop_id: &str,
        body: SearchProductsRequest,
        page_size: u32,
        page_token: String,
    ) -> Result<SearchProductsData, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.search_products(&s, &body, page_size, &page_token).await
        })
        .await
    }

    /// One product in full (images, variant attributes, bundles), at
    /// background priority.
    pub async fn get_product(&self, shop_id: &str, product_id: &str) -> Result<Product, Error> {
        let (s, p) = (shop_id.to_string(), product_id.to_string());
        self.call(shop_id, Priority::background(), move |c| async move {
            c.get_product(&s, &p).await
        })
        .await
    }

    pub async fn webhooks(&self, shop_id: &str) -> Result<Vec<ShopWebhook>, Error> {
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.webhooks(&s).await
        })
        .await
    }

    pub async fn put_webhook(
        &self,
        shop_id: &str,
        body: UpdateWebhookRequest,
    ) -> Result<(), Error> {
        let s = shop_id.to_string();
        self.call(shop_id, Priority::background(), move |c| async move {
            c.put_webhook(&s, &body).await
        })
        .await
    }

    pub async fn delete_webhook(&self, shop_id: &str, event_type: &str) -> Result<(), Error> {
        let (s, e) = (shop_id.to_string(), event_type.to_string());
        self.call(shop_id, Priority::background(), move |c| async move {
            c.delete_webhook(&s, &e).await
        })
        .await
    }
}
