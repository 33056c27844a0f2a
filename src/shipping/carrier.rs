//! Carrier selection: the first rule whose every condition holds picks the
//! carrier; no match picks the default.
//!
//! A rule's conditions (all optional, all must hold):
//! - `when`: a CEL condition over `order` (the workflow view,
//!   [`Order::to_json`], plus `order.weight_grams`) and `now`;
//! - `regions`: the destination's `region_code` or any of its district
//!   names (state, city), case-insensitive;
//! - `postal_prefixes`: the destination postal code starts with one;
//! - `min_weight_grams` / `max_weight_grams`: the parcel weight, both
//!   bounds inclusive (units × per-SKU weight from the configuration);
//! - `min_value` / `max_value`: the order's `total_amount`, decimal strings,
//!   both inclusive, compared exactly in hundredths;
//! - `ship_within`: the order's ship-by deadline is at most this far from
//!   now (e.g. `"12h"` → an express service for orders about to be late).
//!
//! Rules compile once ([`CarrierRouter::new`]); selection only evaluates.
//! An expression that fails at evaluation is an error, not a silent skip: a
//! typo must not quietly send every order by the default carrier.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, ShippingConfig, SELECTIONS_TOTAL};
use crate::order::{Money, Order};
use crate::workflow::expr::{null, val, Expr, Scope};
use crate::workflow::value::Data;

/// One rule, as written in the configuration or a workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarrierRule {
    pub when: Option<String>,
    pub regions: Vec<String>,
    pub postal_prefixes: Vec<String>,
    pub min_weight_grams: Option<u32>,
    pub max_weight_grams: Option<u32>,
    pub min_value: Option<String>,
    pub max_value: Option<String>,
    /// Humantime, e.g. `"12h"`.
    pub ship_within: Option<String>,
    pub carrier: String,
    pub service: Option<String>,
    /// TikTok's id for the carrier; else looked up in `provider_ids`.
    pub shipping_provider_id: Option<String>,
    /// The label provider (`easypost`, `shippo`, `tiktok`); else the
    /// step's, else `[shipping] provider`.
    pub provider: Option<super::ProviderKind>,
    /// How the rate is chosen (`cheapest`, `fastest`,
    /// `cheapest_on_time`); else `[shipping] rate_choice`.
    pub rate: Option<super::RateChoice>,
}

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub carrier: String,
    pub service: Option<String>,
    pub shipping_provider_id: Option<String>,
    /// Index of the rule that matched (None: the default).
    pub rule: Option<usize>,
    /// The rule's label provider, when it names one.
    #[serde(default)]
    pub provider: Option<super::ProviderKind>,
    /// The rule's rate choice, when it names one.
    #[serde(default)]
    pub rate_choice: Option<super::RateChoice>,
}

#[derive(Debug, Clone)]
struct Compiled {
    rule: CarrierRule,
    when: Option<Expr>,
    regions: Vec<String>,
    min_value: Option<Money>,
    max_value: Option<Money>,
    ship_within: Option<Duration>,
}

fn compile(index: usize, r: &CarrierRule) -> Result<Compiled, Vec<String>> {
    let mut p = Vec::new();
    let at = |m: String| format!("shipping rule {index}: {m}");
    if r.carrier.trim().is_empty() {
        p.push(at("carrier must not be empty".into()));
    }
    let when = match r.when.as_deref().map(Expr::compile) {
        None => None,
        Some(Ok(e)) => {
            if let Some(bad) = e
                .idents
                .iter()
                .find(|i| !matches!(i.as_str(), "order" | "now"))
            {
                p.push(at(format!(
                    "`when` may use only `order` and `now`, not `{bad}`"
                )));
            }
            Some(e)
        }
        Some(Err(e)) => {
            p.push(at(format!(
                "`when` at column {}: {}",
                e.offset + 1,
                e.message
            )));
            None
        }
    };
    let money = |field: &str, v: &Option<String>, p: &mut Vec<String>| match v {
        None => None,
        Some(s) => match Money::parse(s) {
            Some(m) => Some(m),
            None => {
                p.push(at(format!("{field} {s:?} is not a decimal amount")));
                None
            }
        },
    };
    let min_value = money("min_value", &r.min_value, &mut p);
    let max_value = money("max_value", &r.max_value, &mut p);
    if let (Some(a), Some(b)) = (min_value, max_value) {
        if a > b {
            p.push(at("min_value is above max_value".into()));
        }
    }
    if let (Some(a), Some(b)) = (r.min_weight_grams, r.max_weight_grams) {
        if a > b {
            p.push(at("min_weight_grams is above max_weight_grams".into()));
        }
    }
    let ship_within = match &r.ship_within {
        None => None,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                p.push(at(format!("ship_within {s:?}: {e}")));
                None
            }
        },
    };
    if !p.is_empty() {
        return Err(p);
    }
    Ok(Compiled {
        rule: r.clone(),
        when,
        regions: r.regions.iter().map(|s| s.trim().to_lowercase()).collect(),
        min_value,
        max_value,
        ship_within,
    })
}

/// Compiled rules plus what selection needs from the configuration.
#[derive(Debug, Clone)]
pub struct CarrierRouter {
    rules: Vec<Compiled>,
    default_carrier: String,
    default_service: Option<String>,
    provider_ids: BTreeMap<String, String>,
    weights: BTreeMap<String, u32>,
    default_weight: u32,
}

impl CarrierRouter {
    /// Compiles the configuration's rules; `Error::InvalidConfig` lists
    /// every problem.
    pub fn new(cfg: &ShippingConfig) -> Result<CarrierRouter, Error> {
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            match compile(i, r) {
                Ok(c) => rules.push(c),
                Err(p) => problems.extend(p),
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidConfig(problems));
        }
        Ok(CarrierRouter {
            rules,
            default_carrier: cfg.default_carrier.clone(),
            default_service: cfg.default_service.clone(),
            provider_ids: cfg.provider_ids.clone(),
            weights: cfg.sku_weights_grams.clone(),
            default_weight: cfg.default_item_weight_grams,
        })
    }

    /// A router that tries a workflow's `rules` first (indices 0..n), then
    /// these, with `default` (when given) replacing the default carrier.
    pub fn with_workflow_rules(
        &self,
        rules: &[CarrierRule],
        default: Option<&str>,
    ) -> Result<CarrierRouter, Error> {
        let mut compiled = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            compiled.push(compile(i, r).map_err(|p| Error::Rule {
                index: i,
                message: p.join("; "),
            })?);
        }
        compiled.extend(self.rules.iter().cloned());
        let mut out = self.clone();
        out.rules = compiled;
        if let Some(d) = default {
            out.default_carrier = d.to_string();
            out.default_service = None;
        }
        Ok(out)
    }

    /// The parcel weight of an order, in grams.
    pub fn weight_grams(&self, order: &Order) -> u32 {
        order
            .units_by_sku()
            .iter()
            .map(|(sku, n)| {
                u64::from(*n) * u64::from(*self.weights.get(sku).unwrap_or(&self.default_weight))
            })
            .sum::<u64>()
            .min(u64::from(u32::MAX)) as u32
    }

    /// Picks the carrier for `order` at `now` (Unix seconds).
    pub fn select(&self, order: &Order, now: i64) -> Result<Selection, Error> {
        let weight = self.weight_grams(order);
        let mut scope = None;
        let mut chosen = None;
        for (i, c) in self.rules.iter().enumerate() {
            if self.matches(i, c, order, weight, now, &mut scope)? {
                chosen = Some((i, c));
                break;
            }
        }
        let (carrier, service, pid, rule, provider, rate_choice) = match chosen {
            Some((i, c)) => (
                c.rule.carrier.clone(),
                c.rule.service.clone(),
                c.rule.shipping_provider_id.clone(),
                Some(i),
                c.rule.provider,
                c.rule.rate,
            ),
            None => (
                self.default_carrier.clone(),
                self.default_service.clone(),
                None,
                None,
                None,
                None,
            ),
        };
        let shipping_provider_id = pid.or_else(|| self.provider_ids.get(&carrier).cloned());
        metrics::counter!(SELECTIONS_TOTAL, "carrier" => carrier.clone()).increment(1);
        Ok(Selection {
            carrier,
            service,
            shipping_provider_id,
            rule,
            provider,
            rate_choice,
        })
    }

    fn matches(
        &self,
        index: usize,
        c: &Compiled,
        order: &Order,
        weight: u32,
        now: i64,
        scope: &mut Option<Scope>,
    ) -> Result<bool, Error> {
        let r = &c.rule;
        if !c.regions.is_empty() {
            let Some(a) = &order.recipient else {
                return Ok(false);
            };
            let hit = std::iter::once(&a.region_code)
                .chain(a.districts.iter())
                .any(|d| c.regions.contains(&d.trim().to_lowercase()));
            if !hit {
                return Ok(false);
            }
        }
        if !r.postal_prefixes.is_empty() {
            let pc = order
                .recipient
                .as_ref()
                .map(|a| a.postal_code.trim())
                .unwrap_or("");
            if pc.is_empty() || !r.postal_prefixes.iter().any(|p| pc.starts_with(p.trim())) {
                return Ok(false);
            }
        }
        if r.min_weight_grams.is_some_and(|m| weight < m)
            || r.max_weight_grams.is_some_and(|m| weight > m)
        {
            return Ok(false);
        }
        let value = order.payment.total_amount;
        if c.min_value.is_some_and(|m| value < m) || c.max_value.is_some_and(|m| value > m) {
            return Ok(false);
        }
        if let Some(within) = c.ship_within {
            match order.deadlines.ship_by() {
                Some(t) if t - now <= within.as_secs().min(i64::MAX as u64) as i64 => {}
                _ => return Ok(false),
            }
        }
        if let Some(e) = &c.when {
            let scope = scope.get_or_insert_with(|| order_scope(order, weight, now));
            return e.eval_bool(scope).map_err(|message| Error::Expression {
                index,
                source_text: e.source.clone(),
                message,
            });
        }
        Ok(true)
    }
}

/// The CEL scope rules see: `order` (with `weight_grams`) and `now`.
pub fn order_scope(order: &Order, weight_grams: u32, now: i64) -> Scope {
    let mut json = order.to_json();
    if let Some(m) = json.as_object_mut() {
        m.insert("weight_grams".into(), weight_grams.into());
    }
    Scope {
        order: val(Data::from_json(&json).to_cel()),
        steps: null(),
        vars: null(),
        event: null(),
        error: null(),
        now,
    }
}

/// Selects with `rules` and a `default` carrier, the configuration's
/// defaults for everything else (weights: 500 g per unit), at the current
/// time. For repeated use, compile once with [`CarrierRouter`].
pub fn select_carrier(
    rules: &[CarrierRule],
    default: &str,
    order: &Order,
) -> Result<Selection, Error> {
    let cfg = ShippingConfig {
        default_carrier: default.to_string(),
        ..ShippingConfig::default()
    };
    CarrierRouter::new(&cfg)?
        .with_workflow_rules(rules, None)?
        .select(order, chrono::Utc::now().timestamp())
}
