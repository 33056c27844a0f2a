//! orderflow: a durable order-workflow daemon for TikTok Shop sellers.
//!
//! # Layout
//!
//! - [`order`]: the domain order (exact money, units per SKU, both cancel
//!   spellings) converted from TikTok's wire shape.
//! - [`tiktok`]: the TikTok Shop API: wire types, signing, client, gateway.
pub mod order;
pub mod tiktok;
