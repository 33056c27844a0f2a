//! Every metric orderflow exports: names as constants, each described once,
//! units in the name. Labels are bounded: never an order id.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const ORDERS_RECEIVED_TOTAL: &str = "orderflow_orders_received_total";
pub const EVENTS_TOTAL: &str = "orderflow_events_total";
pub const WORKFLOWS_STARTED_TOTAL: &str = "orderflow_workflows_started_total";
pub const EFFECTS_TOTAL: &str = "orderflow_effects_total";
pub const LIFECYCLE_TRANSITIONS_TOTAL: &str = "orderflow_lifecycle_transitions_total";
pub const ORDER_FULFILLMENT_SECONDS: &str = "orderflow_order_fulfillment_seconds";
/// Histogram: from the order's first AWAITING_SHIPMENT (eligible to ship)
/// to TikTok taking its ship / mark-shipped call: the SLA clock.
pub const ORDER_ELIGIBLE_FULFILLMENT_SECONDS: &str =
    "orderflow_order_eligible_to_fulfillment_seconds";
/// Gauge: `[sla] fulfilment_target` in seconds, for the alert rule.
pub const SLA_FULFILLMENT_TARGET_SECONDS: &str = "orderflow_sla_fulfillment_target_seconds";
pub const CHECKPOINT_BATCH_SIZE: &str = "orderflow_checkpoint_batch_size";
pub const CHECKPOINT_FLUSH_SECONDS: &str = "orderflow_checkpoint_flush_seconds";
pub const ACTORS_ACTIVE: &str = "orderflow_actors_active";
pub const ACTOR_RESTARTS_TOTAL: &str = "orderflow_actor_restarts_total";
pub const HTTP_REQUESTS_TOTAL: &str = "orderflow_http_requests_total";
pub const WEBHOOKS_TOTAL: &str = "orderflow_webhooks_total";
pub const WEBHOOKS_QUARANTINED_TOTAL: &str = "orderflow_webhooks_quarantined_total";
pub const ORDERS_UNDECODABLE_TOTAL: &str = "orderflow_orders_undecodable_total";
pub const ORDERS_UNKNOWN_STATUS_TOTAL: &str = "orderflow_orders_unknown_status_total";
pub const CANCEL_REQUESTS_TOTAL: &str = "orderflow_cancel_requests_total";
pub const APPROVALS_OVERDUE_TOTAL: &str = "orderflow_approvals_overdue_total";
pub const ORDERS: &str = "orderflow_orders";
pub const ORDERS_AT_RISK: &str = "orderflow_orders_at_risk";
pub const ORDERS_LATE: &str = "orderflow_orders_late";
pub const WORKFLOW_STEPS_TOTAL: &str = "orderflow_workflow_steps_total";
pub const STEP_DURATION_SECONDS: &str = "orderflow_step_duration_seconds";
pub const HTTP_REFUSED_TOTAL: &str = "orderflow_http_refused_total";
pub const CONSOLE_LOGINS_TOTAL: &str = "orderflow_console_logins_total";
pub const CONSOLE_LOGIN_LOCKS_TOTAL: &str = "orderflow_console_login_locks_total";
pub const STORE_WRITABLE: &str = "orderflow_store_writable";
pub const STORE_FREE_BYTES: &str = "orderflow_store_free_bytes";
pub const WORKFLOWS_INVALID: &str = "orderflow_workflows_invalid";

/// Describes every metric (help text in the exposition).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        ORDERS_UNDECODABLE_TOTAL,
        "Orders TikTok's API returned that could not be read (a field of the wrong kind): kept in the quarantine with their raw JSON while the rest of the batch goes on."
    );
    describe_counter!(
        ORDERS_UNKNOWN_STATUS_TOTAL,
        "Orders TikTok reported in a status orderflow does not know: each is kept with its raw status and held for an operator."
    );
    describe_counter!(
        APPROVALS_OVERDUE_TOTAL,
        "Approvals nobody answered before their timeout: each order stays held for a person (nothing is cancelled) and one alert is sent."
    );
    describe_counter!(
        CANCEL_REQUESTS_TOTAL,
        "Buyers' cancellation requests met, by the workflow's answer (approve, reject, operator)."
    );
    describe_counter!(
        WEBHOOKS_QUARANTINED_TOTAL,
        "Signed webhooks stored as received and not acted on, by reason (malformed, unreadable, unknown_topic, unhandled); see GET /api/v1/webhooks/quarantine."
    );
    describe_counter!(
        ORDERS_RECEIVED_TOTAL,
        "Order events accepted into the inbox, by source."
    );
    describe_counter!(
        EVENTS_TOTAL,
        "Events submitted to intake, by result (accepted, duplicate)."
    );
    describe_counter!(WORKFLOWS_STARTED_TOTAL, "Workflow instances started.");
    describe_counter!(
        EFFECTS_TOTAL,
        "Action results recorded, by action and outcome (ok or error kind)."
    );
    describe_counter!(
        LIFECYCLE_TRANSITIONS_TOTAL,
        "Order lifecycle transitions, by target state."
    );
    describe_histogram!(
        ORDER_FULFILLMENT_SECONDS,
        Unit::Seconds,
        "From receipt of an order to TikTok taking its ship / mark-shipped call."
    );
    describe_histogram!(
        ORDER_ELIGIBLE_FULFILLMENT_SECONDS,
        Unit::Seconds,
        "From an order's first AWAITING_SHIPMENT (eligible to ship, after payment and TikTok's buyer-cancel hold) to TikTok taking its ship / mark-shipped call."
    );
    describe_gauge!(
        SLA_FULFILLMENT_TARGET_SECONDS,
        Unit::Seconds,
        "[sla] fulfilment_target: the eligible-to-fulfilment time orders should stay under."
    );
    describe_histogram!(
        CHECKPOINT_BATCH_SIZE,
        "Writers group-committed under one flush."
    );
    describe_histogram!(
        CHECKPOINT_FLUSH_SECONDS,
        Unit::Seconds,
        "Time to apply and flush one group commit."
    );
    describe_gauge!(ACTORS_ACTIVE, "Order actors currently in memory.");
    crate::runtime::admission::metrics::describe();
    crate::retention::metrics::describe();
    describe_counter!(
        ACTOR_RESTARTS_TOTAL,
        "Order actors found dead and rebuilt from their checkpoint."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests served, by route and status class."
    );
    describe_gauge!(ORDERS, "Orders per lifecycle state (refreshed every 15 s).");
    describe_gauge!(
        ORDERS_AT_RISK,
        "Unshipped orders with less than runtime.at_risk_margin before their ship-by deadline."
    );
    describe_gauge!(ORDERS_LATE, "Unshipped orders past their ship-by deadline.");
    describe_counter!(
        WORKFLOW_STEPS_TOTAL,
        "Call steps finished, by workflow, step and outcome (ok or error kind)."
    );
    describe_histogram!(
        STEP_DURATION_SECONDS,
        Unit::Seconds,
        "From a call step's effect starting to its result, by workflow and step."
    );
    describe_counter!(
        HTTP_REFUSED_TOTAL,
        "Requests refused at the gate, by reason (unauthorized, csrf, cross_site, host, throttled, role)."
    );
    describe_counter!(
        CONSOLE_LOGINS_TOTAL,
        "Console logins, by result (ok, refused, throttled)."
    );
    describe_counter!(
        CONSOLE_LOGIN_LOCKS_TOTAL,
        "Logins locked after a run of wrong passwords (or wrong admin tokens) in a row."
    );
    describe_gauge!(
        STORE_WRITABLE,
        "1 while the store takes writes; 0 while the disk has less than store.min_free_bytes free (webhooks get 503); -1 after sled failed a write (the daemon restarts)."
    );
    describe_gauge!(
        WORKFLOWS_INVALID,
        "Workflow files skipped at start because they are invalid (the log has each problem); 0 after a successful reload."
    );
    describe_gauge!(
        STORE_FREE_BYTES,
        Unit::Bytes,
        "Free space of the data directory's file system, as the store last measured it."
    );
    crate::tiktok::metrics::describe();
    crate::inventory::describe_metrics();
    crate::shipping::describe_metrics();
    crate::notify::describe_metrics();
}

/// Installs the global recorder once; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ])
                // Fulfilment times run to days (an approval, a restock):
                // buckets up to 3 days, so a target above 5 minutes can
                // still be compared with the p95.
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("fulfillment_seconds".into()),
                        &[
                            0.5,
                            1.0,
                            2.5,
                            5.0,
                            10.0,
                            30.0,
                            60.0,
                            300.0,
                            900.0,
                            3600.0,
                            4.0 * 3600.0,
                            12.0 * 3600.0,
                            86_400.0,
                            3.0 * 86_400.0,
                        ],
                    )
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("A metrics recorder was already installed");
            }
            describe();
            // Counters and gauges without labels exist from the start, so a
            // dashboard shows 0 rather than "no data" before the first event.
            metrics::counter!(crate::tiktok::metrics::THROTTLED_TOTAL).absolute(0);
            metrics::counter!(ACTOR_RESTARTS_TOTAL).absolute(0);
            metrics::gauge!(ACTORS_ACTIVE).increment(0.0);
            metrics::gauge!(crate::tiktok::metrics::QUEUE_DEPTH).increment(0.0);
            metrics::gauge!(ORDERS_AT_RISK).set(0.0);
            metrics::gauge!(ORDERS_LATE).set(0.0);
            handle
        })
        .clone()
}
