//! orderflow: a durable order-workflow daemon for TikTok Shop sellers.
//!
//! # Layout
//!
//! - [`order`]: the domain order (exact money, units per SKU, both cancel
//!   spellings) converted from TikTok's wire shape.
//! - [`workflow`]: the workflow language. YAML parsed with spans
//!   ([`workflow::node`]), checked by the validator ([`workflow::validate`])
//!   into a definition ([`workflow::model`]), CEL expressions
//!   ([`workflow::expr`]), the built-in action catalogue
//!   ([`workflow::actions`]) and the pure interpreter
//!   ([`workflow::interpreter`]): `advance(instance, input) -> (instance',
//!   effects)`. Nothing in it does I/O.
//! - [`tiktok`]: the TikTok Shop API: wire types, signing, client, the
//!   rate-limited gateway actor, webhook verification, its config.
//! - [`simulator`]: a TikTok Shop simulator speaking the same wire protocol,
//!   with faults, a ledger and control endpoints for tests.
//! - [`cli`]: the command line; `main.rs` only parses it and calls in here.
pub mod cli;
pub mod order;
pub mod simulator;
pub mod tiktok;
pub mod workflow;
