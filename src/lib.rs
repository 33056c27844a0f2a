//! orderflow: a durable order-workflow daemon for TikTok Shop sellers.
//!
//! # Layout
//!
//! - [`order`]: the domain order (exact money, units per SKU, both cancel
//!   spellings) converted from TikTok's wire shape.
//! - [`workflow`]: the workflow language. YAML parsed with spans
//!   ([`workflow::node`]), checked by the validator ([`workflow::validate`])
//!   into a definition ([`workflow::model`]), CEL expressions
//!   ([`workflow::expr`]) with their cost bound ([`workflow::cost`]) and
//!   the pure interpreter ([`workflow::interpreter`]): `advance(instance,
//!   input) -> (instance', effects)`. Nothing in it does I/O.
//! - [`actions`]: the built-in actions, one file per family (tiktok,
//!   inventory, shipping, notify, order, http), each with its actions'
//!   argument spec, execution and error mapping; the typed action names
//!   and the error kinds the language and the runtime share.
//! - [`tiktok`]: the TikTok Shop API: wire types, signing, client, the
//!   rate-limited gateway actor, webhook verification, its config; every
//!   listed error code classified ([`tiktok::codes`]) and the cancel and
//!   reject reasons per market and status ([`tiktok::reasons`]).
//! - [`simulator`]: a TikTok Shop simulator speaking the same wire protocol
//!   (the seller authorization page and rotating tokens included), with
//!   faults, a ledger and control endpoints for tests; EasyPost and Shippo
//!   simulators on their own wire formats beside it
//!   ([`simulator::carriers`]).
//! - [`catalogue`]: each connected shop's products and SKUs read from
//!   TikTok's Product API (names, variants, images, prices, virtual
//!   bundles), at background priority, on connect, on a schedule, on demand
//!   and on product webhooks; past 10,000 products in creation-time windows.
//! - [`shops`]: connected shops: TikTok's seller authorization, grants whose
//!   tokens are sealed at rest ([`shops::secrets`]) and refreshed before
//!   they expire, the newest pair winning, webhook subscriptions checked and
//!   repaired, shops added, disconnected and deauthorized while running.
//! - [`lifecycle`]: the order lifecycle state machine (pending → processing
//!   → fulfilled → delivered → completed, with on_hold, exception,
//!   cancelled).
//! - [`store`]: sled trees, versioned envelopes (format V3; V1 values read,
//!   with fields added since as defaults: [`store::codec::since_v3`]), group
//!   commit, the order indexes and counters written with each checkpoint
//!   ([`store::index`]), the disk guard that refuses writes on a nearly
//!   full disk, export, import and checksum of a closed store
//!   ([`store::transfer`]), and the online backup and its restore
//!   ([`store::backup`]).
//! - [`runtime`]: one order's step ([`runtime::core`]), effects, intake
//!   with its admission control ([`runtime::admission`]: at most
//!   `max_active_orders` live, the rest stored and waiting oldest ship-by
//!   first, a memory budget), timers, the ship-by deadline watcher, the workflow registry, the
//!   clock, and which interventions an order allows now and why
//!   ([`runtime::interventions`]: the API, CLI and console only render it).
//! - [`actors`]: the supervisor and one actix actor per order, behind
//!   [`actors::RuntimeHandle`].
//! - [`sync`]: TikTok order sync: signed webhooks (those of shops not
//!   connected kept and replayed when they are), hydration through the
//!   gateway's batched order detail, polling from a durable cursor, and the
//!   buyers' pending cancellation requests read for the orders TikTok flags.
//! - [`http`]: health, metrics, intake, the admin API and stock over
//!   handles; the gate on each route scope ([`http::auth`]: Host check,
//!   cross-site check, bearer token or a console session with its CSRF
//!   token, login rate limits, roles); request bounds ([`http::limits`]: body
//!   size, read deadline, shared body memory) and connections
//!   ([`http::conn`]: idle connections shut); shops and the authorization
//!   callback ([`http::shops`]); SKU mappings ([`http::mappings`]); order
//!   lists sorted through the indexes, with counts and CSV export, and the
//!   approvals inbox ([`http::admin`]); workflows read, checked, dry-run,
//!   saved to `edit_dir` and kept in a history ([`http::workflows`]); the
//!   web console ([`http::console`]: compiled-in pages, login, live
//!   events).
//! - [`people`]: the console's users with roles (viewer, operator,
//!   admin), Argon2id passwords, sessions kept in the store and per-user
//!   API tokens; served by [`http::people`] and checked by the gate
//!   ([`http::auth`]), which puts the person on every request.
//! - [`config`]: layered configuration with one `validate()`.
//! - [`metrics`]: every metric name, described once.
//! - [`daemon`]: wiring, recovery, graceful shutdown.
//! - [`demo`]: demo mode around the built-in simulator: one clock (the
//!   simulator's on real time, TikTok's durations divided by the time
//!   scale), a run number in the store so restarts never repeat an id,
//!   the simulator's state saved at a clean stop and taken back at the
//!   next start, stock seeded and replenished, notification channels, and what `GET
//!   /api/v1/about` says for the console's DEMO banner.
//! - [`inventory`]: stock per item (the seller's key) and warehouse in
//!   sled, TikTok SKUs mapped to items ([`inventory::mapping`]: multipacks,
//!   bundles, by seller SKU), all-or-nothing idempotent reservations that
//!   never oversell (a SKU mapped to no item is `unmapped_sku`, not out of
//!   stock), orders waiting for stock or a mapping woken on a
//!   restock ([`inventory::restock`]), a journal of changes by hand,
//!   imports and reconciles ([`inventory::journal`]), one debounced push of available
//!   quantities per connected shop and the drift reconcile (and fix).
//! - [`shipping`]: carrier selection by rules (CEL, region, weight, value,
//!   deadline), label providers on their documented APIs
//!   ([`shipping::easypost`], [`shipping::shippo`], TikTok Shipping) with
//!   rate shopping, one label per order as a protocol
//!   ([`shipping::book`], [`shipping::purchase`]), label documents and the
//!   day's merged PDF ([`shipping::documents`]), tracking webhooks and
//!   poll as `scan` events ([`shipping::tracking`]), the carrier → TikTok
//!   provider mapping checked against what TikTok offers
//!   ([`shipping::tiktok_providers`]).
//! - [`notify`]: notifications and system alerts to named channels, each a
//!   webhook (Slack-compatible JSON), email (SMTP) or Web Push to the
//!   console on people's devices, with bounded retries.
//! - [`payment`]: is the order paid, and do its amounts add up.
//! - [`tenant`]: the tenant this process is (`[tenant] id`, `epoch`,
//!   `shops`), the epoch recorded in the store and the fence that keeps an
//!   old copy of a moved tenant from running; the shard map every cell
//!   reads (`orderflow shards`); which shops it owns.
//! - [`retention`]: finished orders past `[retention] keep_days` moved
//!   to gzip JSON-lines archive files by their own actor and still read by
//!   id, dedupe keys expired, old bulk jobs deleted.
//! - [`cli`]: the command line; `main.rs` only parses it and calls in here.
//! - [`client`]: the CLI's client for a running daemon's admin API.
//! - [`loadtest`]: `orderflow loadtest`: the daemon as a child process
//!   against the simulator (steady rate, spike, backlog, max rate) and the
//!   engine alone, one table of figures per scenario.
/// mimalloc for every binary that links the crate (the daemon, tests,
/// benches): per-thread free lists suit a daemon whose actors, HTTP workers
/// and commit thread allocate and free small records all the time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod actions;
pub mod actors;
pub mod catalogue;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod http;
pub mod inventory;
pub mod lifecycle;
pub mod loadtest;
pub mod metrics;
pub mod notify;
pub mod order;
pub mod payment;
pub mod people;
pub mod retention;
pub mod runtime;
pub mod shipping;
pub mod shops;
pub mod simulator;
pub mod store;
pub mod sync;
pub mod tenant;
pub mod tiktok;
pub mod workflow;
