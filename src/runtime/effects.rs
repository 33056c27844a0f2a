//! Performing actions: the outside world's side of a `call` step.
//!
//! Every call carries the effect's idempotency key, derived from (order,
//! workflow version, step, visit): the same for each retry and crash replay
//! of one visit. External services get it as an `Idempotency-Key` header,
//! so a replay after a crash never repeats an effect.
//!
//! Failures are values ([`ActionError`] with a kind the workflow can
//! `retry` on or `catch`), never panics.

use std::sync::Arc;
use std::time::Duration;

use crate::order::Order;
use crate::store::StartedEffect;
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

fn err(kind: &str, message: impl Into<String>) -> ActionError {
    ActionError {
        kind: kind.into(),
        message: message.into(),
    }
}

/// Performs actions. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    default_timeout: Duration,
    gateway: Option<crate::tiktok::GatewayHandle>,
}

/// TikTok's answers as error kinds a workflow can retry on or catch.
fn tiktok_error(e: crate::tiktok::Error) -> ActionError {
    use crate::tiktok::Error as T;
    let kind = match &e {
        T::Config { .. } | T::InvalidConfig(_) | T::UnknownShop(_) | T::NoCipher(_) => "invalid",
        T::Api { code, .. } if *code == crate::tiktok::codes::TOO_MANY_REQUESTS => "rate_limited",
        T::Api { .. } => "rejected",
        T::OrderNotFound(_) => "not_found",
        T::InvalidRequest(_) => "invalid",
        _ => "transient",
    };
    err(kind, e.to_string())
}

impl Executor {
    pub fn new(default_timeout: Duration) -> Executor {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Executor {
            http,
            default_timeout,
            gateway: None,
        }
    }

    /// TikTok actions go through this gateway (rate limits, priorities).
    pub fn with_gateway(mut self, g: crate::tiktok::GatewayHandle) -> Executor {
        self.gateway = Some(g);
        self
    }

    pub async fn run(
        &self,
        order: Option<Arc<Order>>,
        e: &StartedEffect,
    ) -> Result<Data, ActionError> {
        let timeout = e
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.default_timeout);
        match e.action.as_str() {
            "http.request" => self.http_request(e, timeout).await,
            // Applied to the order by its actor when the result arrives.
            "order.tag" => Ok(Data::map([(
                "tags",
                e.args.get("tags").cloned().unwrap_or(Data::List(vec![])),
            )])),
            "order.hold" => Ok(Data::map([("held", Data::Bool(true))])),
            "tiktok.mark_shipped" | "tiktok.ship_package" | "tiktok.cancel_order" => {
                let order =
                    order.ok_or_else(|| err("invalid", "the order has not been fetched yet"))?;
                self.tiktok(&order, e).await
            }
            other => Err(err(
                "invalid",
                format!("action {other} is not configured in this daemon"),
            )),
        }
    }

    async fn tiktok(&self, order: &Order, e: &StartedEffect) -> Result<Data, ActionError> {
        use crate::tiktok::dto::{CancelOrderRequest, MarkShippedRequest, ShipPackageRequest};
        use crate::tiktok::{Priority, Shipment};
        let g = self
            .gateway
            .as_ref()
            .ok_or_else(|| err("invalid", "no TikTok gateway is configured"))?;
        let prio = Priority::write(order.deadlines.ship_by());
        let arg = |k: &str| e.args.get(k).and_then(Data::as_str).map(str::to_string);
        match e.action.as_str() {
            "tiktok.mark_shipped" => {
                let req = MarkShippedRequest {
                    tracking_number: arg("tracking_number").unwrap_or_default(),
                    shipping_provider_id: arg("shipping_provider_id").unwrap_or_default(),
                    order_line_item_ids: match e.args.get("line_item_ids") {
                        Some(Data::List(l)) => l
                            .iter()
                            .filter_map(Data::as_str)
                            .map(str::to_string)
                            .collect(),
                        _ => Vec::new(),
                    },
                };
                match g
                    .mark_package_shipped(&order.shop_id, &order.id, req, prio)
                    .await
                    .map_err(tiktok_error)?
                {
                    Shipment::Shipped(d) => {
                        Ok(Data::map([("package_id", Data::from(d.package_id))]))
                    }
                    Shipment::AlreadyShipped { .. } => Ok(Data::map([
                        (
                            "package_id",
                            Data::from(order.packages.first().cloned().unwrap_or_default()),
                        ),
                        ("already_shipped", Data::Bool(true)),
                    ])),
                }
            }
            "tiktok.ship_package" => {
                let pkg = arg("package_id")
                    .or_else(|| order.packages.first().cloned())
                    .ok_or_else(|| err("invalid", "the order has no package to ship"))?;
                let req = ShipPackageRequest {
                    handover_method: Some(
                        arg("handover_method").unwrap_or_else(|| "PICKUP".into()),
                    ),
                    ..Default::default()
                };
                g.ship_package(&order.shop_id, &pkg, req, prio)
                    .await
                    .map_err(tiktok_error)?;
                // TikTok assigns the carrier and tracking number: read them back.
                let fresh = g
                    .order_detail(&order.shop_id, &order.id, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("package_id", Data::from(pkg)),
                    (
                        "tracking_number",
                        Data::from(fresh.tracking_number.unwrap_or_default()),
                    ),
                    (
                        "shipping_provider_id",
                        Data::from(fresh.shipping_provider_id.unwrap_or_default()),
                    ),
                ]))
            }
            _ => {
                let req = CancelOrderRequest {
                    order_id: order.id.clone(),
                    cancel_reason: arg("reason")
                        .unwrap_or_else(|| "seller_cancel_reason_other".into()),
                    ..Default::default()
                };
                let d = g
                    .cancel_order(&order.shop_id, req, prio)
                    .await
                    .map_err(tiktok_error)?;
                Ok(Data::map([
                    ("cancel_id", Data::from(d.cancel_id)),
                    ("cancel_status", Data::from(d.cancel_status)),
                ]))
            }
        }
    }

    async fn http_request(
        &self,
        e: &StartedEffect,
        timeout: Duration,
    ) -> Result<Data, ActionError> {
        let url = e
            .args
            .get("url")
            .and_then(Data::as_str)
            .ok_or_else(|| err("invalid", "http.request needs a url"))?;
        let parsed =
            reqwest::Url::parse(url).map_err(|x| err("invalid", format!("bad url {url}: {x}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(err("invalid", format!("url {url} is not http(s)")));
        }
        let method = e
            .args
            .get("method")
            .and_then(Data::as_str)
            .unwrap_or("POST");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| err("invalid", format!("bad method {method}")))?;
        let mut req = self
            .http
            .request(method, parsed)
            .timeout(timeout)
            .header("Idempotency-Key", &e.key);
        if let Some(Data::Map(h)) = e.args.get("headers") {
            for (k, v) in h {
                req = req.header(k.as_str(), v.render());
            }
        }
        if let Some(body) = e.args.get("body") {
            req = req.json(&body.to_json());
        }
        let resp = req.send().await.map_err(|x| {
            if x.is_timeout() {
                err("timeout", format!("{url}: timed out after {timeout:?}"))
            } else {
                err("transient", format!("{url}: {x}"))
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|x| {
            if x.is_timeout() {
                err("timeout", format!("{url}: timed out reading the body"))
            } else {
                err("transient", format!("{url}: {x}"))
            }
        })?;
        let body = serde_json::from_str::<serde_json::Value>(&text)
            .map(|v| Data::from_json(&v))
            .unwrap_or(Data::Str(text.chars().take(4096).collect()));
        match status {
            200..=299 => Ok(Data::map([
                ("status", Data::Int(status.into())),
                ("body", body),
            ])),
            429 => Err(err("rate_limited", format!("{url}: HTTP 429"))),
            408 | 500..=599 => Err(err("transient", format!("{url}: HTTP {status}"))),
            409 => Err(err("rejected", format!("{url}: HTTP 409"))),
            _ => Err(err("invalid", format!("{url}: HTTP {status}"))),
        }
    }
}
