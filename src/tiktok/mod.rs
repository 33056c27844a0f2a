//! The TikTok Shop Open API (version 202309): wire types, request signing,
//! the HTTP client, the rate-limited gateway actor and webhook verification.
//!
//! The simulator (`crate::simulator`) implements the other side of the same
//! wire protocol, so every test exercises this code as it would run against
//! TikTok itself.
//!
//! - [`sign`]: the 202309 request signature and the webhook signature.
//! - [`dto`]: request and response bodies, field for field.
//! - [`client`]: HTTP, envelopes, error mapping, retries, token refresh.
//! - [`gateway`]: the actor every caller goes through: per-shop rate
//!   limits, a concurrency cap, a deadline-ordered queue, detail batching.
//! - [`webhook`]: verifying and parsing pushes.
//! - [`codes`]: every envelope code TikTok lists per endpoint, classified.
//! - [`reasons`]: TikTok's cancel and reject reasons per market and status.
//! - [`config`]: the `[tiktok]` section; [`metrics`]: metric names.

pub mod client;
pub mod codes;
pub mod config;
pub mod dto;
mod error;
pub mod gateway;
pub mod metrics;
pub mod reasons;
pub mod sign;
pub mod webhook;

pub use client::{Client, DiscardTokens, Grant, Outcome, Shipment, ShopSpec, TokenSink, Tokens};
pub use config::{Secret, ShopConfig, TiktokConfig};
pub use error::{Error, LastFailure};
pub use gateway::{GatewayHandle, Priority};
