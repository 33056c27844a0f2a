//! Performing actions: the outside world's side of a `call` step.
//!
//! Every call carries the effect's idempotency key, derived from (order,
//! workflow version, step, visit): the same for each retry and crash replay
//! of one visit. External services get it as an `Idempotency-Key` header,
//! so a replay after a crash never repeats an effect.
//!
//! The actions themselves live in [`crate::actions`], one file per family;
//! the [`Executor`] holds the services they use and runs the one a stored
//! effect names. Failures are values ([`ActionError`] with a kind the
//! workflow can `retry` on or `catch`), never panics.

use std::sync::Arc;
use std::time::Duration;

use crate::actions::{ActionName, Call, ErrorKind};
use crate::order::Order;
use crate::store::StartedEffect;
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

/// Performs actions. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    default_timeout: Duration,
    gateway: Option<crate::tiktok::GatewayHandle>,
    fulfil: Option<Arc<Fulfilment>>,
}

/// The fulfilment services behind inventory, shipping and notify actions.
pub struct Fulfilment {
    pub inventory: crate::inventory::InventoryHandle,
    pub router: crate::shipping::CarrierRouter,
    pub providers: crate::shipping::Providers,
    /// Each order's one label and its documents.
    pub labels: crate::shipping::LabelBook,
    pub notifier: crate::notify::Notifier,
    /// Carrier name → TikTok's shipping provider id (`shipping.provider_ids`).
    pub provider_ids: std::collections::BTreeMap<String, String>,
}

impl Fulfilment {
    /// TikTok's id for a carrier (`shipping.provider_ids`, any case).
    pub(crate) fn provider_id(&self, carrier: &str) -> Option<String> {
        self.provider_ids
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(carrier))
            .map(|(_, v)| v.clone())
    }
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
            fulfil: None,
        }
    }

    /// Sends a system alert (to `notify.alerts_channel`) in the background:
    /// a failure is recorded by the notifier, never blocking the caller.
    pub fn alert(&self, text: String, data: serde_json::Value) {
        if let Some(f) = &self.fulfil {
            let n = f.notifier.clone();
            actix::spawn(async move {
                n.alert(&text, data).await;
            });
        }
    }

    /// Inventory, shipping and notification actions use these.
    pub fn with_fulfilment(mut self, f: Arc<Fulfilment>) -> Executor {
        self.fulfil = Some(f);
        self
    }

    /// TikTok actions go through this gateway (rate limits, priorities).
    pub fn with_gateway(mut self, g: crate::tiktok::GatewayHandle) -> Executor {
        self.gateway = Some(g);
        self
    }

    /// Runs the action a started effect names; one this build does not know
    /// (a stored effect from another version) fails as `invalid`.
    pub async fn run(
        &self,
        order: Option<Arc<Order>>,
        e: &StartedEffect,
    ) -> Result<Data, ActionError> {
        let Some(name) = ActionName::parse(&e.action) else {
            return Err(ErrorKind::Invalid.error(format!(
                "action {} is not configured in this daemon",
                e.action
            )));
        };
        let call = Call {
            effect: e,
            order,
            timeout: e
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(self.default_timeout),
            http: &self.http,
            gateway: self.gateway.as_ref(),
            fulfil: self.fulfil.as_deref(),
        };
        crate::actions::run(name, &call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored effect naming an action this build does not know fails as
    /// `invalid`, whatever its family.
    #[tokio::test]
    async fn an_unknown_action_is_invalid() {
        for name in ["shipping.unknown", "inventory.", "notify", ""] {
            let e = StartedEffect {
                effect: crate::workflow::interpreter::EffectId {
                    step: "call".into(),
                    visit: 1,
                    compensation: false,
                },
                key: "k".into(),
                action: name.into(),
                args: Data::Null,
                attempt: 1,
                timeout_ms: None,
                started_ms: 0,
            };
            let r = Executor::new(Duration::from_secs(1)).run(None, &e).await;
            assert_eq!(
                r.map_err(|x| x.kind),
                Err(ErrorKind::Invalid.as_str().to_string()),
                "{name}"
            );
        }
    }
}
