//! The built-in action catalogue: every action a `call` step may name, with
//! its argument schema, the fields of its output and the error kinds it can
//! raise.
//!
//! The validator checks steps against this table (unknown action, missing
//! or mistyped argument, `catch` of an error the action cannot raise), the
//! interpreter only emits effects naming these actions, and dry-run uses the
//! stub outputs. The implementations live with the runtime.

use super::value::Data;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Str,
    Int,
    Number,
    Bool,
    List,
    Map,
    Any,
}

impl ArgType {
    pub fn name(self) -> &'static str {
        match self {
            ArgType::Str => "a string",
            ArgType::Int => "an integer",
            ArgType::Number => "a number",
            ArgType::Bool => "a boolean",
            ArgType::List => "a list",
            ArgType::Map => "a mapping",
            ArgType::Any => "any value",
        }
    }

    /// Does a literal value fit? (Expressions are checked at run time.)
    pub fn accepts(self, d: &Data) -> bool {
        matches!(
            (self, d),
            (ArgType::Any, _)
                | (ArgType::Str, Data::Str(_))
                | (ArgType::Int, Data::Int(_))
                | (ArgType::Number, Data::Int(_) | Data::Float(_))
                | (ArgType::Bool, Data::Bool(_))
                | (ArgType::List, Data::List(_))
                | (ArgType::Map, Data::Map(_))
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    pub ty: ArgType,
    pub required: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub name: &'static str,
    pub doc: &'static str,
    pub args: &'static [Arg],
    /// Fields of the output, readable as `steps.<id>.<field>`.
    pub outputs: &'static [&'static str],
    /// Error kinds beyond the common ones ([`COMMON_ERRORS`]).
    pub errors: &'static [&'static str],
    /// Does it change something outside orderflow? Such calls carry an
    /// idempotency key and are checkpointed before and after.
    pub external: bool,
}

/// Error kinds any action may raise.
pub const COMMON_ERRORS: &[&str] = &[
    "transient",
    "timeout",
    "rate_limited",
    "invalid",
    "rejected",
];

/// Retried by default when a step has a `retry` policy without `on:`.
pub const DEFAULT_RETRYABLE: &[&str] = &["transient", "timeout", "rate_limited"];

/// Every error kind the language knows (for `catch` and `retry.on`).
pub const ALL_ERRORS: &[&str] = &[
    "transient",
    "timeout",
    "rate_limited",
    "invalid",
    "rejected",
    "out_of_stock",
    "unmapped_sku",
    "payment_mismatch",
    "not_found",
    "expression",
];

const fn a(name: &'static str, ty: ArgType, required: bool, doc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required,
        doc,
    }
}

use ArgType::*;

pub const CATALOGUE: &[Action] = &[
    Action {
        name: "tiktok.ship_package",
        doc: "Ship the order's package (Ship Package): through TikTok Shipping, or, for a seller-shipped order, with the seller's tracking number and TikTok's provider id (self_shipment).",
        args: &[
            a("package_id", Str, false, "defaults to the order's first package"),
            a("handover_method", Str, false, "PICKUP or DROP_OFF (default PICKUP)"),
            a("tracking_number", Str, false, "seller-shipped orders: the carrier's tracking number"),
            a("shipping_provider_id", Str, false, "seller-shipped orders: TikTok's id for the carrier"),
        ],
        outputs: &["package_id", "tracking_number", "shipping_provider_id"],
        errors: &[],
        external: true,
    },
    Action {
        name: "tiktok.mark_shipped",
        doc: "Tell TikTok the seller shipped the order with its own carrier (Mark Package As Shipped).",
        args: &[
            a("tracking_number", Str, true, "the carrier's tracking number"),
            a("shipping_provider_id", Str, true, "TikTok's id for the carrier"),
            a("line_item_ids", List, false, "defaults to every line item"),
        ],
        outputs: &["package_id"],
        errors: &[],
        external: true,
    },
    Action {
        name: "tiktok.cancel_order",
        doc: "Cancel the order as the seller. The reason is a kind (out_of_stock, pricing_error, address_undeliverable, buyer_requested, buyer_did_not_pay, potential_fraud) or an official key; it is mapped to TikTok's key for the shop's market and the order's status, and one TikTok would refuse fails the step as invalid before any call.",
        args: &[a("reason", Str, true, "a reason kind, e.g. out_of_stock")],
        outputs: &["cancel_id", "cancel_status"],
        errors: &[],
        external: true,
    },
    Action {
        name: "tiktok.approve_cancellation",
        doc: "Approve the buyer's pending cancellation request (TikTok then cancels the order and the workflow's compensations run).",
        args: &[a("cancel_id", Str, false, "defaults to the order's pending request")],
        outputs: &["cancel_id", "approved"],
        errors: &[],
        external: true,
    },
    Action {
        name: "tiktok.reject_cancellation",
        doc: "Reject the buyer's pending cancellation request with a reason kind (packed, agreement, invalid_reason, on_schedule) or an official key, mapped for the shop's market.",
        args: &[
            a("cancel_id", Str, false, "defaults to the order's pending request"),
            a("reason", Str, false, "a reject kind, default packed"),
        ],
        outputs: &["cancel_id", "rejected"],
        errors: &[],
        external: true,
    },
    Action {
        name: "tiktok.update_inventory",
        doc: "Send a SKU's quantities to TikTok, each warehouse its own: our available units, or `quantity` for the one warehouse named.",
        args: &[
            a("sku_id", Str, true, "TikTok SKU id"),
            a("quantity", Int, false, "units for the named warehouse (the others get ours)"),
            a("warehouse_id", Str, false, "defaults to the order's warehouse, then inventory.default_warehouse"),
        ],
        outputs: &["sku_id", "quantity"],
        errors: &[],
        external: true,
    },
    Action {
        name: "inventory.reserve",
        doc: "Reserve every unit of the order, all or nothing.",
        args: &[a("warehouse_id", Str, false, "defaults to the order's warehouse")],
        outputs: &["reservation_id", "units"],
        errors: &["out_of_stock", "unmapped_sku"],
        external: false,
    },
    Action {
        name: "inventory.release",
        doc: "Release the order's reservation (compensation for reserve).",
        args: &[],
        outputs: &["released"],
        errors: &[],
        external: false,
    },
    Action {
        name: "inventory.commit",
        doc: "Turn the reservation into a shipment: on hand and reserved both drop.",
        args: &[],
        outputs: &["committed"],
        errors: &[],
        external: false,
    },
    Action {
        name: "shipping.select_carrier",
        doc: "Choose a carrier by rules (region, weight, value, deadline), else the default.",
        args: &[
            a("rules", List, false, "list of {when: CEL, carrier, service}"),
            a("default", Str, false, "carrier when no rule matches"),
        ],
        outputs: &["carrier", "service", "shipping_provider_id"],
        errors: &[],
        external: false,
    },
    Action {
        name: "shipping.buy_label",
        doc: "Buy a shipping label (idempotent per order and step).",
        args: &[
            a("carrier", Str, true, "carrier name from select_carrier"),
            a("service", Str, false, "service level"),
            a("provider", Str, false, "label_api (default) or tiktok"),
        ],
        outputs: &["label_id", "tracking_number", "label_url", "shipping_provider_id"],
        errors: &[],
        external: true,
    },
    Action {
        name: "shipping.void_label",
        doc: "Void a label that has not shipped (compensation for buy_label).",
        args: &[a("label_id", Str, true, "the label to void")],
        outputs: &["voided"],
        errors: &["not_found"],
        external: true,
    },
    Action {
        name: "notify.send",
        doc: "Send a notification to a configured channel (Slack-compatible JSON).",
        args: &[
            a("text", Str, true, "message text"),
            a("channel", Str, false, "configured channel name (default: default)"),
            a("data", Any, false, "structured payload"),
        ],
        outputs: &["delivered", "text"],
        errors: &[],
        external: true,
    },
    Action {
        name: "order.tag",
        doc: "Add tags to the order (orderflow's own, not TikTok's).",
        args: &[a("tags", List, true, "tags to add")],
        outputs: &["tags"],
        errors: &[],
        external: false,
    },
    Action {
        name: "order.hold",
        doc: "Put the order on hold for an operator, with a reason.",
        args: &[a("reason", Str, true, "why it is held")],
        outputs: &["held", "reason"],
        errors: &[],
        external: false,
    },
    Action {
        name: "order.validate",
        doc: "Check the order is paid and its amounts add up.",
        args: &[a("tolerance", Number, false, "allowed difference (default 0.01)")],
        outputs: &["ok"],
        errors: &["payment_mismatch"],
        external: false,
    },
    Action {
        name: "http.request",
        doc: "A generic outbound HTTP call, with an Idempotency-Key header.",
        args: &[
            a("url", Str, true, "absolute http(s) URL"),
            a("method", Str, false, "GET, POST (default), PUT, PATCH, DELETE"),
            a("body", Any, false, "JSON body"),
            a("headers", Map, false, "extra headers"),
        ],
        outputs: &["status", "body"],
        errors: &[],
        external: true,
    },
];

pub fn lookup(name: &str) -> Option<&'static Action> {
    CATALOGUE.iter().find(|a| a.name == name)
}

impl Action {
    pub fn arg(&self, name: &str) -> Option<&'static Arg> {
        self.args.iter().find(|a| a.name == name)
    }

    pub fn raises(&self, kind: &str) -> bool {
        COMMON_ERRORS.contains(&kind) || self.errors.contains(&kind)
    }

    /// What dry-run pretends the action returned: every output field with a
    /// recognisable placeholder.
    pub fn stub_output(&self, order_id: &str) -> Data {
        Data::Map(
            self.outputs
                .iter()
                .map(|f| {
                    let v = match *f {
                        "units" => Data::Int(1),
                        "released" | "committed" | "voided" | "delivered" | "held" | "ok" => {
                            Data::Bool(true)
                        }
                        "status" => Data::Int(200),
                        "tags" | "body" => Data::Null,
                        "quantity" => Data::Int(0),
                        other => Data::Str(format!("stub-{other}-{order_id}")),
                    };
                    (f.to_string(), v)
                })
                .collect(),
        )
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a sensible distance.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
