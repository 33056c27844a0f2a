//! The TikTok Shop Open API (version 202309): wire types, request signing,
//! the HTTP client, the rate-limited gateway actor and webhook verification.
//!
//! The simulator (`crate::simulator`) implements the other side of the same
//! wire protocol, so every test exercises this code as it would run against
//! TikTok itself.

pub mod dto;
