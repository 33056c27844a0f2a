//! Metric names of the TikTok client and gateway, described once.
//!
//! Labels are low-cardinality on purpose: an endpoint name and an outcome,
//! never an order or package id.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Counter, labels `endpoint`, `outcome` (`ok`, `throttled`, `transient`,
/// `fatal`, `configuration`, `api_error`, `transport`, `already_done`,
/// `token_expired`).
/// One per HTTP attempt.
pub const REQUESTS_TOTAL: &str = "orderflow_tiktok_requests_total";
/// Histogram, label `endpoint`: seconds per HTTP attempt.
pub const REQUEST_DURATION_SECONDS: &str = "orderflow_tiktok_request_duration_seconds";
/// Counter, labels `endpoint`, `code`: calls TikTok refused for the app's
/// or shop's setup (API version retired, scope missing, IP not allowed).
pub const CONFIGURATION_ERRORS_TOTAL: &str = "orderflow_tiktok_configuration_errors_total";
/// Counter: responses TikTok throttled (HTTP 429 / code 36009002).
pub const THROTTLED_TOTAL: &str = "orderflow_tiktok_throttled_total";
/// Counter, label `endpoint`: attempts repeated after a transient failure.
pub const RETRIES_TOTAL: &str = "orderflow_tiktok_retries_total";
/// Gauge: calls waiting in the gateway's priority queue (batches pending
/// their window included).
pub const QUEUE_DEPTH: &str = "orderflow_gateway_queue_depth";
/// Histogram, label `class` (`write`, `sync`, `background`): seconds a
/// call waited in the gateway before its first attempt.
pub const QUEUE_WAIT_SECONDS: &str = "orderflow_gateway_queue_wait_seconds";

/// Registers the descriptions with the installed recorder. Idempotent.
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "TikTok Shop API attempts by endpoint and outcome"
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one TikTok Shop API attempt"
    );
    describe_counter!(
        CONFIGURATION_ERRORS_TOTAL,
        Unit::Count,
        "TikTok Shop API calls refused for the app's or shop's setup (API version retired, scope missing, IP not allowed), by endpoint and code"
    );
    describe_counter!(
        THROTTLED_TOTAL,
        Unit::Count,
        "Responses TikTok throttled with HTTP 429 / code 36009002"
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "TikTok Shop API attempts repeated after a transient failure"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Calls waiting in the TikTok gateway's priority queue"
    );
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time a call waited in the TikTok gateway before its first attempt"
    );
}
