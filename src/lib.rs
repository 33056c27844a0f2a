//! orderflow: a durable order-workflow daemon for TikTok Shop sellers.
//!
//! # Layout
//!
//! - [`order`]: the domain order (exact money, units per SKU, both cancel
//!   spellings) converted from TikTok's wire shape.
//! - [`tiktok`]: the TikTok Shop API: wire types, signing, client, gateway.
//! - [`simulator`]: a TikTok Shop simulator speaking the same wire protocol,
//!   with faults, a ledger and control endpoints for tests.
pub mod order;
pub mod simulator;
pub mod tiktok;
