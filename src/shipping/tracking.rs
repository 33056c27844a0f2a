//! Following parcels: the providers' tracking webhooks, a poll for parcels
//! still travelling, and the `scan` events workflows wait on.
//!
//! - EasyPost posts an `Event` (`tracker.updated`, the tracker in
//!   `result`), signed in `X-Hmac-Signature`
//!   ([`super::easypost::verify_signature`]).
//! - Shippo posts `{event: "track_updated", data: Track}`; it does not sign
//!   its webhooks, so the webhook URL carries a secret token
//!   ([`super::shippo::verify_token`]).
//!
//! Either way a bad or missing signature is 401 and nothing is read. A
//! verified update becomes a [`Scan`]; its tracking number finds the order
//! (the `t/` index of [`super::book`]), and the order gets a `scan` event
//! ([`take`]):
//! `{type: "scan", status, detail, carrier, tracking_number, at, provider}`
//! with `status` one of [`ScanStatus`]. Updates for tracking numbers no
//! order owns are acknowledged and counted, never stored as work.
//!
//! The poll ([`poll_once`]) reads only the parcels still open (the `a/`
//! index), so its cost follows what is in transit, not history.

use serde::{Deserialize, Serialize};

use super::book::{Active, LabelBook, ScanRecord};
use super::provider::{LabelProvider, ProviderKind, Providers};
use super::Error;

/// Counter, labels `provider` and `outcome` (`applied`, `unknown_parcel`,
/// `unauthorized`, `unreadable`): tracking webhooks.
pub const TRACKING_WEBHOOKS_TOTAL: &str = "orderflow_tracking_webhooks_total";
/// Counter, label `status`: scan events given to orders.
pub const SCANS_TOTAL: &str = "orderflow_tracking_scans_total";

pub fn describe_metrics() {
    use metrics::{describe_counter, Unit};
    describe_counter!(
        TRACKING_WEBHOOKS_TOTAL,
        Unit::Count,
        "Tracking webhooks from label providers by provider and outcome"
    );
    describe_counter!(
        SCANS_TOTAL,
        Unit::Count,
        "Carrier scan events given to orders, by status"
    );
}

/// What a workflow sees of a carrier scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    PreTransit,
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
    ReturnToSender,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::PreTransit => "pre_transit",
            ScanStatus::InTransit => "in_transit",
            ScanStatus::OutForDelivery => "out_for_delivery",
            ScanStatus::Delivered => "delivered",
            ScanStatus::Exception => "exception",
            ScanStatus::ReturnToSender => "return_to_sender",
        }
    }

    /// The parcel's journey is over: its tracker closes.
    pub fn is_final(self) -> bool {
        matches!(self, ScanStatus::Delivered | ScanStatus::ReturnToSender)
    }

    /// EasyPost's tracker `status`. `unknown` is no news (None).
    pub fn from_easypost(status: &str) -> Option<ScanStatus> {
        Some(match status {
            "pre_transit" => ScanStatus::PreTransit,
            "in_transit" => ScanStatus::InTransit,
            "out_for_delivery" => ScanStatus::OutForDelivery,
            "delivered" => ScanStatus::Delivered,
            "available_for_pickup" => ScanStatus::OutForDelivery,
            "return_to_sender" => ScanStatus::ReturnToSender,
            "failure" | "error" | "cancelled" => ScanStatus::Exception,
            _ => return None,
        })
    }

    /// Shippo's `tracking_status.status` and `substatus.code`.
    pub fn from_shippo(status: &str, substatus: Option<&str>) -> Option<ScanStatus> {
        Some(match (status, substatus.unwrap_or("")) {
            ("TRANSIT", "out_for_delivery") => ScanStatus::OutForDelivery,
            ("PRE_TRANSIT", _) => ScanStatus::PreTransit,
            ("TRANSIT", _) => ScanStatus::InTransit,
            ("DELIVERED", _) => ScanStatus::Delivered,
            ("RETURNED", _) => ScanStatus::ReturnToSender,
            ("FAILURE", _) => ScanStatus::Exception,
            _ => return None,
        })
    }
}

/// One tracking update, whoever sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub provider: ProviderKind,
    pub tracking_number: String,
    pub carrier: String,
    pub status: ScanStatus,
    /// The provider's own status and message.
    pub detail: String,
    /// When the carrier saw it, Unix seconds (0 when not given).
    pub at: i64,
    /// The provider's event id, when it gives one.
    pub event_id: Option<String>,
}

impl Scan {
    /// The event's deduplication id: the provider's, else what it says.
    pub fn id(&self) -> String {
        match &self.event_id {
            Some(e) => format!("scan:{}:{e}", self.provider),
            None => format!(
                "scan:{}:{}:{}:{}",
                self.provider,
                self.tracking_number,
                self.status.as_str(),
                self.at
            ),
        }
    }

    /// The order's event for this scan (through intake, like any event).
    pub fn event(&self, order_id: &str, now_ms: i64) -> crate::runtime::event::OrderEvent {
        use crate::runtime::event::{EventKind, OrderEvent, Source};
        OrderEvent {
            id: self.id(),
            order_id: order_id.to_string(),
            shop_id: String::new(),
            source: Source::System,
            received_ms: now_ms,
            kind: EventKind::Signal(self.signal()),
        }
    }

    /// The `scan` event a workflow `wait`s on.
    pub fn signal(&self) -> crate::workflow::value::Data {
        use crate::workflow::value::Data;
        Data::map([
            ("type", Data::from("scan".to_string())),
            ("status", Data::from(self.status.as_str().to_string())),
            ("detail", Data::from(self.detail.clone())),
            ("carrier", Data::from(self.carrier.clone())),
            ("tracking_number", Data::from(self.tracking_number.clone())),
            ("at", Data::Int(self.at)),
            ("provider", Data::from(self.provider.as_str().to_string())),
        ])
    }
}

fn rfc3339(s: Option<&str>) -> i64 {
    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(0, |t| t.timestamp())
}

/// A scan from an EasyPost tracker.
pub fn from_easypost_tracker(
    t: &super::easypost::Tracker,
    event_id: Option<String>,
) -> Option<Scan> {
    let status = ScanStatus::from_easypost(&t.status)?;
    let last = t.tracking_details.last();
    Some(Scan {
        provider: ProviderKind::Easypost,
        tracking_number: t.tracking_code.clone(),
        carrier: t.carrier.clone().unwrap_or_default(),
        status,
        detail: format!(
            "{}{}",
            t.status_detail.clone().unwrap_or_else(|| t.status.clone()),
            last.and_then(|d| d.message.clone())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        at: rfc3339(
            last.and_then(|d| d.datetime.as_deref())
                .or(t.updated_at.as_deref()),
        ),
        event_id,
    })
}

/// A scan from a Shippo track.
pub fn from_shippo_track(t: &super::shippo::Track) -> Option<Scan> {
    let ts = t.tracking_status.as_ref()?;
    let sub = ts.substatus.as_ref().map(|s| s.code.as_str());
    let status = ScanStatus::from_shippo(&ts.status, sub)?;
    Some(Scan {
        provider: ProviderKind::Shippo,
        tracking_number: t.tracking_number.clone(),
        carrier: t.carrier.clone(),
        status,
        detail: format!(
            "{}{}",
            ts.status,
            ts.status_details
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        at: rfc3339(ts.status_date.as_deref()),
        event_id: None,
    })
}

/// Reads a verified webhook body. `Ok(None)`: a well-formed event that is
/// not a tracking update (acknowledged, nothing to do).
pub fn parse_webhook(provider: ProviderKind, body: &[u8]) -> Result<Option<Scan>, Error> {
    match provider {
        ProviderKind::Easypost => {
            let ev: super::easypost::Event = serde_json::from_slice(body)
                .map_err(|e| Error::Invalid(format!("EasyPost event: {e}")))?;
            if !ev.description.starts_with("tracker.") {
                return Ok(None);
            }
            let t: super::easypost::Tracker = serde_json::from_value(ev.result)
                .map_err(|e| Error::Invalid(format!("EasyPost tracker: {e}")))?;
            let id = (!ev.id.is_empty()).then_some(ev.id);
            Ok(from_easypost_tracker(&t, id))
        }
        ProviderKind::Shippo => {
            let ev: super::shippo::WebhookEvent = serde_json::from_slice(body)
                .map_err(|e| Error::Invalid(format!("Shippo webhook: {e}")))?;
            if ev.event != "track_updated" {
                return Ok(None);
            }
            let t: super::shippo::Track = serde_json::from_value(ev.data)
                .map_err(|e| Error::Invalid(format!("Shippo track: {e}")))?;
            Ok(from_shippo_track(&t))
        }
        ProviderKind::Tiktok => Ok(None),
    }
}

/// Takes a scan: when it is news for the order owning its tracking
/// number, the order gets it through intake (durable, deduplicated by the
/// scan's id) and only then is it recorded with the label, so a failure
/// in between is retried (by the provider, or by the next poll) and never
/// lost. `Ok(None)`: no order owns the tracking number.
pub async fn take(
    book: &LabelBook,
    intake: &crate::runtime::intake::Intake,
    scan: &Scan,
    now_ms: i64,
) -> Result<Option<String>, Error> {
    let Some(order_id) = book.order_for_tracking(&scan.tracking_number)? else {
        return Ok(None);
    };
    let mut scans = book.scans(&order_id)?;
    let status = scan.status.as_str();
    if scans.iter().any(|s| s.status == status && s.at == scan.at) {
        return Ok(Some(order_id));
    }
    intake
        .submit(scan.event(&order_id, now_ms))
        .await
        .map_err(Error::Intake)?;
    metrics::counter!(SCANS_TOTAL, "status" => status).increment(1);
    scans.push(ScanRecord {
        status: status.into(),
        detail: scan.detail.clone(),
        at: scan.at,
        received_ms: now_ms,
    });
    // Bounded: a parcel's history is tens of scans; keep the last 100.
    if scans.len() > 100 {
        let cut = scans.len() - 100;
        scans.drain(..cut);
    }
    let mut ops = vec![book.scans_op(&order_id, &scans)?];
    if let Some(a) = book.active_of(&order_id)? {
        let open = !scan.status.is_final();
        let a = Active {
            last_status: status.into(),
            ..a
        };
        ops.push(book.active_op(&a, open)?);
    }
    book.commit(ops).await?;
    Ok(Some(order_id))
}

/// One pass over a page of the parcels still travelling (`limit` of them,
/// after the order id `after`): reads each one's tracker and takes what
/// changed. Answers how many scans were new and where the next page
/// starts. A provider that cannot be read now is read on the next pass.
pub async fn poll_once(
    book: &LabelBook,
    providers: &Providers,
    intake: &crate::runtime::intake::Intake,
    after: Option<&str>,
    limit: usize,
    now_ms: i64,
) -> Result<(usize, Option<String>), Error> {
    let page = book.active(after, limit)?;
    let next = if page.len() == limit {
        page.last().map(|a| a.order_id.clone())
    } else {
        None
    };
    let mut new = 0;
    for a in page {
        let scan = match providers.get(a.provider) {
            Ok(LabelProvider::Easypost(c)) => match &a.tracker_id {
                Some(id) => c
                    .tracker(id)
                    .await
                    .ok()
                    .and_then(|t| from_easypost_tracker(&t, None)),
                None => None,
            },
            Ok(LabelProvider::Shippo(c)) => c
                .track(&a.carrier, &a.tracking_number)
                .await
                .ok()
                .and_then(|t| from_shippo_track(&t)),
            _ => None,
        };
        let Some(scan) = scan else { continue };
        if scan.status.as_str() == a.last_status {
            continue;
        }
        if take(book, intake, &scan, now_ms).await?.is_some() {
            new += 1;
        }
    }
    Ok((new, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_scan_events() {
        assert_eq!(
            ScanStatus::from_easypost("delivered"),
            Some(ScanStatus::Delivered)
        );
        assert_eq!(ScanStatus::from_easypost("unknown"), None);
        assert_eq!(
            ScanStatus::from_easypost("failure"),
            Some(ScanStatus::Exception)
        );
        assert_eq!(
            ScanStatus::from_shippo("TRANSIT", Some("out_for_delivery")),
            Some(ScanStatus::OutForDelivery)
        );
        assert_eq!(
            ScanStatus::from_shippo("TRANSIT", None),
            Some(ScanStatus::InTransit)
        );
        assert_eq!(
            ScanStatus::from_shippo("RETURNED", None),
            Some(ScanStatus::ReturnToSender)
        );
        assert_eq!(ScanStatus::from_shippo("UNKNOWN", None), None);
    }
}
