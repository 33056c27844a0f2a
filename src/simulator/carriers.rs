//! EasyPost and Shippo simulators, mounted in the same server as the TikTok
//! simulator, so `orderflow simulator` serves all three.
//!
//! Each speaks its provider's documented wire format with the types of
//! [`crate::shipping::easypost`] and [`crate::shipping::shippo`]:
//!
//! | Provider | Method & path | Answer |
//! |---|---|---|
//! | EasyPost | `POST /easypost/v2/shipments` | Shipment with rates (USPS, UPS, FedEx) |
//! | EasyPost | `GET /easypost/v2/shipments/{id or reference}` | Shipment |
//! | EasyPost | `POST /easypost/v2/shipments/{id}/buy` | Shipment with `postage_label`, `tracking_code`, `tracker`; 422 `SHIPMENT.POSTAGE.EXISTS` when bought |
//! | EasyPost | `GET /easypost/v2/shipments/{id}/label?file_format=` | Shipment with the label in that format |
//! | EasyPost | `POST /easypost/v2/shipments/{id}/refund` | Shipment with `refund_status` |
//! | EasyPost | `GET /easypost/v2/trackers/{id}` | Tracker |
//! | Shippo | `POST /shippo/shipments/` | Shipment with rates |
//! | Shippo | `GET /shippo/shipments/` (`object_created_gte`, `results`, `page`), `GET /shippo/shipments/{id}` | list, Shipment |
//! | Shippo | `POST /shippo/transactions/` | Transaction (201). A rate can be bought twice, as at Shippo: two labels, two charges |
//! | Shippo | `GET /shippo/transactions/?rate=` | list of Transactions |
//! | Shippo | `POST /shippo/refunds/` | Refund |
//! | Shippo | `GET /shippo/tracks/{carrier}/{tracking_number}` | Track |
//! | both | `GET /sim/carriers/files/{label_id}.{pdf,png,zpl}` | the label: a real one-page PDF, a PNG, or ZPL text |
//!
//! Authentication as each documents it: EasyPost HTTP basic with the key as
//! user (or a bearer token), Shippo `Authorization: ShippoToken <key>`; a
//! wrong key is 401 in the provider's error shape. Errors use each one's
//! body (`{"error": {code, message, errors}}`, `{"detail": …}` or field
//! errors). Faults ([`LabelFaults`]) are shared: failing calls, rate
//! limiting (429), latency, and answers held after the work is done (a
//! purchase that succeeds after the client's timeout).
//!
//! Control endpoints:
//!
//! | Method & path | Body | Answer |
//! |---|---|---|
//! | `GET /sim/labels/ledger[?provider=]` | | `{entries, bought, voided}` |
//! | `GET`/`POST /sim/labels/faults` | [`LabelFaults`] | [`LabelFaults`] |
//! | `POST /sim/labels/webhooks` | [`WebhookTargets`] | where tracking webhooks go |
//! | `POST /sim/labels/scan` | `{tracking_number, status[, message]}` (EasyPost's tracker statuses) | the tracker, after its webhook was sent (`webhook_status`) |

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::real_now_ms;
use super::SimulatorArgs;
use crate::order::Money;
use crate::shipping::provider::ProviderKind;
use crate::shipping::{easypost as ep, shippo as sh};

/// Faults of both label providers (`POST /sim/labels/faults` replaces them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelFaults {
    /// Fraction of API calls answered 503 without doing anything.
    pub error_rate: f64,
    /// The next this-many API calls fail with `fail_status`, without doing
    /// anything (429: the provider's rate-limit answer).
    pub fail_next: u32,
    /// Status of those failures (default 503).
    pub fail_status: Option<u16>,
    /// Delay added to every API answer, after the work is done.
    pub latency_ms: u64,
    /// Fraction of API calls whose answer is held `timeout_ms` after the
    /// work is done: the client gives up; the label is bought all the same.
    pub timeout_rate: f64,
    /// How long such an answer is held (default 30 s).
    pub timeout_ms: Option<u64>,
    /// The next this-many purchases are made and their answers held
    /// `timeout_ms`: a purchase that succeeds after the client's timeout.
    pub late_purchases: u32,
}

impl LabelFaults {
    fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be within [0, 1], got {v}"));
            }
        }
        if let Some(s) = self.fail_status {
            if !(400..=599).contains(&s) {
                return Err(format!("fail_status must be 400..=599, got {s}"));
            }
        }
        Ok(())
    }
}

/// Where the simulators send tracking webhooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookTargets {
    /// EasyPost's webhook URL and the secret it signs with.
    pub easypost_url: Option<String>,
    pub easypost_secret: String,
    /// Shippo's webhook URL (the token goes in its query, as registered).
    pub shippo_url: Option<String>,
}

/// One purchase, refund or scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelLedgerEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// `easypost` or `shippo`.
    pub provider: String,
    /// `buy`, `refund`, `refund_refused`, `scan`.
    pub action: String,
    /// EasyPost: the shipment id; Shippo: the transaction id.
    pub label_id: String,
    pub shipment_id: String,
    /// The shipment's reference (EasyPost) or metadata (Shippo).
    pub reference: String,
    pub tracking_number: String,
    pub detail: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct SimShipment {
    provider: ProviderKind,
    id: String,
    reference: String,
    created_ms: i64,
    /// (rate id, carrier, service, price, days)
    rates: Vec<(String, String, String, Money, u32)>,
    format: String,
    /// EasyPost: the label bought for it.
    bought: Option<String>,
    to: serde_json::Value,
    from: serde_json::Value,
}

#[derive(Clone, Serialize, Deserialize)]
struct SimLabel {
    provider: ProviderKind,
    id: String,
    shipment_id: String,
    rate_id: String,
    carrier: String,
    service: String,
    tracking_number: String,
    tracker_id: String,
    refunded: bool,
    /// EasyPost tracker status vocabulary.
    tracking_status: String,
    history: Vec<(String, String, i64)>,
    created_ms: i64,
    format: String,
}

struct World {
    rng: StdRng,
    seq: u64,
    shipments: HashMap<String, SimShipment>,
    /// Shipment ids in creation order (lists page through it).
    order: Vec<String>,
    labels: HashMap<String, SimLabel>,
    ledger: Vec<LabelLedgerEntry>,
    faults: LabelFaults,
    hooks: WebhookTargets,
}

/// What a restart keeps of the label APIs: shipments and labels (their
/// tracking goes on), and the id counter. The ledger and faults start
/// afresh.
#[derive(Serialize)]
struct SavedRef<'a> {
    seq: u64,
    shipments: &'a HashMap<String, SimShipment>,
    order: &'a [String],
    labels: &'a HashMap<String, SimLabel>,
}

#[derive(Deserialize)]
struct Saved {
    seq: u64,
    shipments: HashMap<String, SimShipment>,
    order: Vec<String>,
    labels: HashMap<String, SimLabel>,
}

/// Both simulators' state, shared by the HTTP workers.
pub(crate) struct CarrierSim {
    world: Mutex<World>,
    easypost_key: Option<String>,
    shippo_key: Option<String>,
    http: reqwest::Client,
}

/// Checks the carrier flags of the simulator's arguments.
pub(crate) fn validate_args(args: &SimulatorArgs) -> Result<(), String> {
    initial_faults(args).validate()
}

fn initial_faults(args: &SimulatorArgs) -> LabelFaults {
    LabelFaults {
        error_rate: args.label_error_rate,
        latency_ms: args.label_latency_ms,
        ..LabelFaults::default()
    }
}

/// The demo's `[shipping]`: both providers at this simulator, with its
/// keys and webhook secrets.
pub fn demo_config(cfg: &mut crate::shipping::ShippingConfig, sim_url: &str) {
    let p = &mut cfg.providers;
    p.easypost.base_url = format!("{sim_url}/easypost/v2");
    p.shippo.base_url = format!("{sim_url}/shippo");
    for (c, key, secret) in [
        (&mut p.easypost, DEMO_EASYPOST_KEY, DEMO_EASYPOST_SECRET),
        (&mut p.shippo, DEMO_SHIPPO_KEY, DEMO_SHIPPO_TOKEN),
    ] {
        if c.api_key.is_empty() {
            c.api_key = crate::tiktok::Secret::new(key);
        }
        if c.webhook_secret.is_empty() {
            c.webhook_secret = crate::tiktok::Secret::new(secret);
        }
    }
}

/// The demo's keys and webhook secrets (the simulator takes any key unless
/// given one).
pub const DEMO_EASYPOST_KEY: &str = "EZTKsimulated";
pub const DEMO_EASYPOST_SECRET: &str = "sim-easypost-webhook-secret";
pub const DEMO_SHIPPO_KEY: &str = "shippo_test_simulated";
pub const DEMO_SHIPPO_TOKEN: &str = "sim-shippo-webhook-token";

impl CarrierSim {
    pub(crate) fn new(args: &SimulatorArgs) -> CarrierSim {
        CarrierSim {
            world: Mutex::new(World {
                rng: StdRng::seed_from_u64(args.seed ^ 0x1abe1),
                // The run number in the high bits: ids unique across runs.
                seq: u64::from(args.run) << 40,
                shipments: HashMap::new(),
                order: Vec::new(),
                labels: HashMap::new(),
                ledger: Vec::new(),
                faults: initial_faults(args),
                hooks: match &args.tracking_webhook_base {
                    Some(base) => {
                        let base = base.trim_end_matches('/');
                        WebhookTargets {
                            easypost_url: Some(format!("{base}/webhooks/easypost")),
                            easypost_secret: args.easypost_webhook_secret.clone(),
                            shippo_url: Some(format!(
                                "{base}/webhooks/shippo?token={}",
                                args.shippo_webhook_token
                            )),
                        }
                    }
                    None => WebhookTargets::default(),
                },
            }),
            easypost_key: args.easypost_api_key.clone().filter(|k| !k.is_empty()),
            shippo_key: args.shippo_api_key.clone().filter(|k| !k.is_empty()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl CarrierSim {
    /// What a restart keeps (see [`SavedRef`]).
    pub(crate) fn saved(&self) -> serde_json::Result<serde_json::Value> {
        let w = self.world.lock();
        serde_json::to_value(SavedRef {
            seq: w.seq,
            shipments: &w.shipments,
            order: &w.order,
            labels: &w.labels,
        })
    }

    /// Takes back what [`CarrierSim::saved`] kept, keeping anything this
    /// run made already. Returns how many labels it took.
    pub(crate) fn restore(&self, saved: serde_json::Value) -> serde_json::Result<usize> {
        let saved: Saved = serde_json::from_value(saved)?;
        let mut w = self.world.lock();
        // Ids carry the run number in their counter's high bits; never
        // go back below either run's.
        w.seq = w.seq.max(saved.seq);
        let mut order: Vec<String> = saved
            .order
            .into_iter()
            .filter(|id| !w.shipments.contains_key(id))
            .collect();
        order.append(&mut w.order);
        w.order = order;
        for (id, s) in saved.shipments {
            w.shipments.entry(id).or_insert(s);
        }
        let mut taken = 0;
        for (id, l) in saved.labels {
            if let std::collections::hash_map::Entry::Vacant(e) = w.labels.entry(id) {
                e.insert(l);
                taken += 1;
            }
        }
        Ok(taken)
    }
}

/// Mounts both APIs and the control endpoints (before `/sim`'s scope).
pub(crate) fn routes(cfg: &mut web::ServiceConfig, sim: Data<CarrierSim>) {
    cfg.app_data(sim)
        .service(
            web::scope("/easypost/v2")
                .route("/shipments", web::post().to(ep_create))
                .route("/shipments/{id}", web::get().to(ep_get))
                .route("/shipments/{id}/buy", web::post().to(ep_buy))
                .route("/shipments/{id}/label", web::get().to(ep_label))
                .route("/shipments/{id}/refund", web::post().to(ep_refund))
                .route("/trackers/{id}", web::get().to(ep_tracker)),
        )
        .service(
            web::scope("/shippo")
                .route("/shipments/", web::post().to(sh_create))
                .route("/shipments/", web::get().to(sh_list_shipments))
                .route("/shipments/{id}", web::get().to(sh_get_shipment))
                .route("/transactions/", web::post().to(sh_buy))
                .route("/transactions/", web::get().to(sh_list_transactions))
                .route("/refunds/", web::post().to(sh_refund))
                .route("/tracks/{carrier}/{number}", web::get().to(sh_track)),
        )
        .service(
            web::scope("/sim/labels")
                .route("/ledger", web::get().to(ledger))
                .route("/faults", web::get().to(get_faults))
                .route("/faults", web::post().to(set_faults))
                .route("/webhooks", web::post().to(set_webhooks))
                .route("/scan", web::post().to(scan)),
        )
        .route("/sim/carriers/files/{file}", web::get().to(file));
}

// ---------------------------------------------------------------------------
// Shared: authentication, faults, rates, the ledger.

fn ep_error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ep::ApiError {
        error: ep::ErrorBody {
            code: code.into(),
            message: message.into(),
            errors: Vec::new(),
        },
    })
}

fn sh_error(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn error_for(p: ProviderKind, status: StatusCode, code: &str, message: String) -> HttpResponse {
    match p {
        ProviderKind::Shippo => sh_error(status, json!({ "detail": message })),
        _ => ep_error(status, code, message),
    }
}

fn authorized(sim: &CarrierSim, p: ProviderKind, req: &HttpRequest) -> bool {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match p {
        ProviderKind::Easypost => {
            let Some(k) = &sim.easypost_key else {
                return !header.is_empty();
            };
            if let Some(b) = header.strip_prefix("Bearer ") {
                return b == k;
            }
            header
                .strip_prefix("Basic ")
                .and_then(|b| base64_decode(b.trim()))
                .and_then(|d| String::from_utf8(d).ok())
                .is_some_and(|d| d.split_once(':').map(|(u, _)| u) == Some(k.as_str()))
        }
        _ => match (&sim.shippo_key, header.strip_prefix("ShippoToken ")) {
            (_, None) => false,
            (None, Some(t)) => !t.is_empty(),
            (Some(k), Some(t)) => t == k,
        },
    }
}

/// Base64 (standard alphabet, padding optional): HTTP basic auth.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let take = chunk.len().saturating_sub(1);
        for i in 0..take {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Authorization, then injected failures. `Err` is the answer to send.
fn gate(
    sim: &CarrierSim,
    p: ProviderKind,
    req: &HttpRequest,
) -> Result<Duration, Box<HttpResponse>> {
    if !authorized(sim, p, req) {
        return Err(Box::new(match p {
            ProviderKind::Shippo => sh_error(
                StatusCode::UNAUTHORIZED,
                json!({ "detail": "Invalid credentials" }),
            ),
            _ => ep_error(
                StatusCode::UNAUTHORIZED,
                "APIKEY.INACTIVE",
                "This api key is no longer active. Please use a different api key or reactivate this key.",
            ),
        }));
    }
    let mut w = sim.world.lock();
    let mut latency = Duration::from_millis(w.faults.latency_ms);
    let timeout_rate = w.faults.timeout_rate;
    if timeout_rate > 0.0 && w.rng.random_bool(timeout_rate) {
        latency = latency.max(Duration::from_millis(w.faults.timeout_ms.unwrap_or(30_000)));
    }
    let injected = if w.faults.fail_next > 0 {
        w.faults.fail_next -= 1;
        Some(w.faults.fail_status.unwrap_or(503))
    } else if w.faults.error_rate > 0.0 && {
        let r = w.faults.error_rate;
        w.rng.random_bool(r)
    } {
        Some(503)
    } else {
        None
    };
    match injected {
        None => Ok(latency),
        Some(429) => Err(Box::new(match p {
            ProviderKind::Shippo => sh_error(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "detail": "Request was throttled." }),
            ),
            _ => ep_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "You have exceeded the rate limit. Please slow down.",
            ),
        })),
        Some(s) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Err(Box::new(error_for(
                p,
                status,
                "INTERNAL_SERVER_ERROR",
                format!("injected failure ({s})"),
            )))
        }
    }
}

/// A request body, or the provider's answer to one it cannot read
/// (EasyPost: 422 `PARAMETER.REQUIRED`; Shippo: 400 with `__all__`).
fn parse<T: serde::de::DeserializeOwned>(
    p: ProviderKind,
    body: &[u8],
) -> Result<T, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(match p {
            ProviderKind::Shippo => sh_error(
                StatusCode::BAD_REQUEST,
                json!({ "__all__": [e.to_string()] }),
            ),
            _ => ep_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PARAMETER.REQUIRED",
                format!("Missing required parameter: {e}"),
            ),
        })
    })
}

async fn answer(latency: Duration, r: HttpResponse) -> HttpResponse {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    r
}

const SERVICES: [(&str, &str, i64, i64, u32); 6] = [
    // carrier, service, base cents, cents per 100 g, days
    ("USPS", "GroundAdvantage", 450, 35, 5),
    ("USPS", "Priority", 795, 45, 3),
    ("UPS", "Ground", 699, 30, 5),
    ("UPS", "2ndDayAir", 1599, 60, 2),
    ("FedEx", "FEDEX_GROUND", 689, 32, 5),
    ("FedEx", "FEDEX_2_DAY", 2450, 80, 1),
];

fn hex_id(w: &mut World) -> String {
    w.seq += 1;
    let r: u64 = w.rng.random();
    format!("{:016x}{:016x}", w.seq, r)
}

fn new_shipment(
    w: &mut World,
    p: ProviderKind,
    reference: String,
    grams: f64,
    format: String,
    to: serde_json::Value,
    from: serde_json::Value,
) -> SimShipment {
    let id = match p {
        ProviderKind::Easypost => format!("shp_{}", hex_id(w)),
        _ => hex_id(w),
    };
    let units = (grams / 100.0).ceil().max(1.0) as i64;
    let rates = SERVICES
        .iter()
        .map(|(carrier, service, base, per, days)| {
            let rid = match p {
                ProviderKind::Easypost => format!("rate_{}", hex_id(w)),
                _ => hex_id(w),
            };
            (
                rid,
                carrier.to_string(),
                service.to_string(),
                Money(base + per * units),
                *days,
            )
        })
        .collect();
    let s = SimShipment {
        provider: p,
        id: id.clone(),
        reference,
        created_ms: real_now_ms(),
        rates,
        format,
        bought: None,
        to,
        from,
    };
    w.shipments.insert(id.clone(), s.clone());
    w.order.push(id);
    s
}

fn record(w: &mut World, action: &str, l: &SimLabel, reference: &str, detail: impl Into<String>) {
    let seq = w.ledger.len() as u64 + 1;
    w.ledger.push(LabelLedgerEntry {
        seq,
        at_ms: real_now_ms(),
        provider: l.provider.as_str().into(),
        action: action.into(),
        label_id: l.id.clone(),
        shipment_id: l.shipment_id.clone(),
        reference: reference.into(),
        tracking_number: l.tracking_number.clone(),
        detail: detail.into(),
    });
}

fn buy_label(w: &mut World, shipment_id: &str, rate_id: &str, format: &str) -> Option<SimLabel> {
    let s = w.shipments.get(shipment_id)?.clone();
    let (rid, carrier, service, amount, _) = s.rates.iter().find(|r| r.0 == rate_id)?.clone();
    let digits: u64 = w.rng.random_range(0..10u64.pow(15));
    let tracking_number = match carrier.as_str() {
        "USPS" => format!("9400100{digits:015}"),
        "UPS" => format!("1Z{digits:015}"),
        _ => format!("7{digits:015}"),
    };
    let id = match s.provider {
        ProviderKind::Easypost => s.id.clone(),
        _ => hex_id(w),
    };
    let tracker_id = format!("trk_{}", hex_id(w));
    let l = SimLabel {
        provider: s.provider,
        id: id.clone(),
        shipment_id: s.id.clone(),
        rate_id: rid,
        carrier,
        service,
        tracking_number,
        tracker_id,
        refunded: false,
        tracking_status: "pre_transit".into(),
        history: vec![(
            "pre_transit".into(),
            "Label created".into(),
            real_now_ms() / 1000,
        )],
        created_ms: real_now_ms(),
        format: format.to_string(),
    };
    w.labels.insert(id.clone(), l.clone());
    if s.provider == ProviderKind::Easypost {
        if let Some(x) = w.shipments.get_mut(shipment_id) {
            x.bought = Some(id);
        }
    }
    record(
        w,
        "buy",
        &l,
        &s.reference,
        format!("{} {} {}", l.carrier, l.service, amount),
    );
    Some(l)
}

/// How long to hold a purchase's answer (a late purchase fault).
fn late_purchase(w: &mut World) -> Duration {
    if w.faults.late_purchases == 0 {
        return Duration::ZERO;
    }
    w.faults.late_purchases -= 1;
    Duration::from_millis(w.faults.timeout_ms.unwrap_or(30_000))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn file_url(host: &str, l: &SimLabel, ext: &str) -> String {
    format!("http://{host}/sim/carriers/files/{}.{ext}", l.id)
}

fn host(req: &HttpRequest) -> String {
    req.connection_info().host().to_string()
}

// ---------------------------------------------------------------------------
// EasyPost.

fn ep_rate(s: &SimShipment, r: &(String, String, String, Money, u32)) -> ep::Rate {
    ep::Rate {
        id: r.0.clone(),
        object: "Rate".into(),
        mode: Some("test".into()),
        service: r.2.clone(),
        carrier: r.1.clone(),
        rate: r.3.to_string(),
        currency: "USD".into(),
        retail_rate: Some(Money(r.3 .0 * 13 / 10).to_string()),
        retail_currency: Some("USD".into()),
        list_rate: Some(r.3.to_string()),
        list_currency: Some("USD".into()),
        billing_type: Some("easypost".into()),
        delivery_date_guaranteed: false,
        delivery_days: Some(r.4),
        est_delivery_days: Some(r.4),
        delivery_date: None,
        shipment_id: Some(s.id.clone()),
        carrier_account_id: Some(format!("ca_{}", r.1.to_ascii_lowercase())),
        created_at: Some(iso(s.created_ms)),
        updated_at: Some(iso(s.created_ms)),
    }
}

fn ep_tracker_of(l: &SimLabel) -> ep::Tracker {
    ep::Tracker {
        id: l.tracker_id.clone(),
        object: "Tracker".into(),
        mode: Some("test".into()),
        tracking_code: l.tracking_number.clone(),
        status: l.tracking_status.clone(),
        status_detail: Some(l.tracking_status.clone()),
        shipment_id: Some(l.shipment_id.clone()),
        carrier: Some(l.carrier.clone()),
        tracking_details: l
            .history
            .iter()
            .map(|(status, message, at)| ep::TrackingDetail {
                object: Some("TrackingDetail".into()),
                message: Some(message.clone()),
                status: Some(status.clone()),
                status_detail: Some(status.clone()),
                datetime: Some(iso(at * 1000)),
                source: Some(l.carrier.clone()),
                ..ep::TrackingDetail::default()
            })
            .collect(),
        public_url: Some(format!("https://track.easypost.com/{}", l.tracker_id)),
        created_at: Some(iso(l.created_ms)),
        updated_at: Some(iso(real_now_ms())),
        ..ep::Tracker::default()
    }
}

fn ep_shipment(w: &World, s: &SimShipment, host: &str) -> ep::Shipment {
    let label = s.bought.as_ref().and_then(|id| w.labels.get(id));
    let rates: Vec<ep::Rate> = s.rates.iter().map(|r| ep_rate(s, r)).collect();
    ep::Shipment {
        id: s.id.clone(),
        object: "Shipment".into(),
        mode: Some("test".into()),
        reference: Some(s.reference.clone()).filter(|r| !r.is_empty()),
        status: Some(
            label
                .map_or("unknown", |l| l.tracking_status.as_str())
                .into(),
        ),
        tracking_code: label.map(|l| l.tracking_number.clone()),
        to_address: serde_json::from_value(s.to.clone()).ok(),
        from_address: serde_json::from_value(s.from.clone()).ok(),
        options: Some(ep::ShipmentOptions {
            label_format: Some(s.format.clone()),
            other: Default::default(),
        }),
        selected_rate: label.and_then(|l| rates.iter().find(|r| r.id == l.rate_id).cloned()),
        postage_label: label.map(|l| ep::PostageLabel {
            id: format!("pl_{}", l.id.trim_start_matches("shp_")),
            object: "PostageLabel".into(),
            label_date: Some(iso(l.created_ms)),
            label_resolution: Some(300),
            label_size: Some("4x6".into()),
            label_type: Some("default".into()),
            label_file_type: Some(match l.format.as_str() {
                "PDF" => "application/pdf".into(),
                "ZPL" => "application/zpl".into(),
                _ => "image/png".into(),
            }),
            label_url: Some(file_url(host, l, "png")),
            label_pdf_url: (l.format == "PDF").then(|| file_url(host, l, "pdf")),
            label_zpl_url: (l.format == "ZPL").then(|| file_url(host, l, "zpl")),
            label_epl2_url: None,
            label_file: None,
            integrated_form: Some("none".into()),
            date_advance: 0,
            created_at: Some(iso(l.created_ms)),
            updated_at: Some(iso(l.created_ms)),
        }),
        tracker: label.map(ep_tracker_of),
        refund_status: label.and_then(|l| l.refunded.then(|| "submitted".to_string())),
        rates,
        created_at: Some(iso(s.created_ms)),
        updated_at: Some(iso(real_now_ms())),
        ..ep::Shipment::default()
    }
}

fn ep_grams(p: &ep::Parcel) -> f64 {
    p.weight.map_or(0.0, |w| w.get() * 28.349_523_125)
}

async fn ep_create(sim: Data<CarrierSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = ProviderKind::Easypost;
    let latency = match gate(&sim, p, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: ep::CreateShipment = match parse(ProviderKind::Easypost, &body) {
        Ok(b) => b,
        Err(r) => return answer(latency, *r).await,
    };
    let s = &b.shipment;
    let grams = ep_grams(&s.parcel);
    if s.to_address.zip.as_deref().unwrap_or("").is_empty()
        || s.to_address.country.as_deref().unwrap_or("").is_empty()
    {
        return answer(
            latency,
            ep_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ADDRESS.VERIFY.FAILURE",
                "to_address: zip and country are required",
            ),
        )
        .await;
    }
    if !(grams > 0.0 && grams <= 70_000.0) {
        return answer(
            latency,
            ep_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PARCEL.WEIGHT.INVALID",
                "parcel.weight must be positive and at most 2469 oz",
            ),
        )
        .await;
    }
    let host = host(&req);
    let r = {
        let mut w = sim.world.lock();
        let shipment = new_shipment(
            &mut w,
            p,
            s.reference.clone().unwrap_or_default(),
            grams,
            s.options
                .label_format
                .clone()
                .unwrap_or_else(|| "PNG".into())
                .to_ascii_uppercase(),
            serde_json::to_value(&s.to_address).unwrap_or_default(),
            serde_json::to_value(&s.from_address).unwrap_or_default(),
        );
        HttpResponse::Created().json(ep_shipment(&w, &shipment, &host))
    };
    answer(latency, r).await
}

/// A shipment by id, else by reference (the newest carrying it).
fn ep_find(w: &World, id: &str) -> Option<SimShipment> {
    if let Some(s) = w
        .shipments
        .get(id)
        .filter(|s| s.provider == ProviderKind::Easypost)
    {
        return Some(s.clone());
    }
    w.order
        .iter()
        .rev()
        .filter_map(|i| w.shipments.get(i))
        .find(|s| s.provider == ProviderKind::Easypost && s.reference == id)
        .cloned()
}

async fn ep_get(sim: Data<CarrierSim>, req: HttpRequest, id: Path<String>) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Easypost, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let host = host(&req);
    let r = {
        let w = sim.world.lock();
        match ep_find(&w, &id) {
            Some(s) => HttpResponse::Ok().json(ep_shipment(&w, &s, &host)),
            None => ep_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource could not be found.",
            ),
        }
    };
    answer(latency, r).await
}

async fn ep_buy(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    id: Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Easypost, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: ep::BuyShipment = match parse(ProviderKind::Easypost, &body) {
        Ok(b) => b,
        Err(r) => return answer(latency, *r).await,
    };
    let host = host(&req);
    let mut late = Duration::ZERO;
    let r = {
        let mut w = sim.world.lock();
        match w.shipments.get(id.as_str()).cloned() {
            None => ep_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource could not be found.",
            ),
            Some(s) if s.bought.is_some() => ep_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "SHIPMENT.POSTAGE.EXISTS",
                "Postage already exists for this shipment.",
            ),
            Some(s) => {
                let format = s.format.clone();
                match buy_label(&mut w, &s.id, &b.rate.id, &format) {
                    Some(_) => {
                        late = late_purchase(&mut w);
                        let s = w.shipments.get(id.as_str()).cloned().unwrap_or(s);
                        HttpResponse::Ok().json(ep_shipment(&w, &s, &host))
                    }
                    None => ep_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "SHIPMENT.RATE.INVALID",
                        format!("rate {} is not one of this shipment's", b.rate.id),
                    ),
                }
            }
        }
    };
    answer(latency.max(late), r).await
}

#[derive(Deserialize)]
struct FileFormat {
    file_format: String,
}

async fn ep_label(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    id: Path<String>,
    q: Query<FileFormat>,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Easypost, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let host = host(&req);
    let format = q.file_format.to_ascii_uppercase();
    let r = {
        let mut w = sim.world.lock();
        match w.shipments.get(id.as_str()).cloned() {
            Some(s) if s.bought.is_some() && matches!(format.as_str(), "PDF" | "ZPL" | "PNG") => {
                if let Some(l) = s.bought.as_ref().and_then(|l| w.labels.get_mut(l)) {
                    l.format = format;
                }
                HttpResponse::Ok().json(ep_shipment(&w, &s, &host))
            }
            Some(_) => ep_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "SHIPMENT.LABEL.INVALID",
                "the shipment has no label, or the format is not PDF, ZPL or PNG",
            ),
            None => ep_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource could not be found.",
            ),
        }
    };
    answer(latency, r).await
}

async fn ep_refund(sim: Data<CarrierSim>, req: HttpRequest, id: Path<String>) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Easypost, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let host = host(&req);
    let r = {
        let mut w = sim.world.lock();
        match w.shipments.get(id.as_str()).cloned() {
            None => ep_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource could not be found.",
            ),
            Some(s) => match s.bought.as_ref().and_then(|l| w.labels.get(l)).cloned() {
                None => ep_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "SHIPMENT.REFUND.UNAVAILABLE",
                    "The shipment has no postage to refund.",
                ),
                Some(l) if l.refunded => HttpResponse::Ok().json(ep_shipment(&w, &s, &host)),
                Some(l) if l.tracking_status != "pre_transit" => {
                    record(
                        &mut w,
                        "refund_refused",
                        &l,
                        &s.reference,
                        l.tracking_status.clone(),
                    );
                    let mut body = ep_shipment(&w, &s, &host);
                    body.refund_status = Some("rejected".into());
                    HttpResponse::Ok().json(body)
                }
                Some(mut l) => {
                    l.refunded = true;
                    w.labels.insert(l.id.clone(), l.clone());
                    record(&mut w, "refund", &l, &s.reference, "submitted");
                    HttpResponse::Ok().json(ep_shipment(&w, &s, &host))
                }
            },
        }
    };
    answer(latency, r).await
}

async fn ep_tracker(sim: Data<CarrierSim>, req: HttpRequest, id: Path<String>) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Easypost, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let r = {
        let w = sim.world.lock();
        match w.labels.values().find(|l| l.tracker_id == *id) {
            Some(l) => HttpResponse::Ok().json(ep_tracker_of(l)),
            None => ep_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource could not be found.",
            ),
        }
    };
    answer(latency, r).await
}

// ---------------------------------------------------------------------------
// Shippo.

fn sh_rate(s: &SimShipment, r: &(String, String, String, Money, u32)) -> sh::Rate {
    sh::Rate {
        object_id: r.0.clone(),
        object_created: Some(iso(s.created_ms)),
        object_owner: Some("sim@orderflow.invalid".into()),
        shipment: s.id.clone(),
        amount: r.3.to_string(),
        currency: "USD".into(),
        amount_local: Some(r.3.to_string()),
        currency_local: Some("USD".into()),
        provider: r.1.clone(),
        servicelevel: sh::ServiceLevel {
            name: r.2.clone(),
            token: format!("{}_{}", r.1.to_ascii_lowercase(), r.2.to_ascii_lowercase()),
            terms: String::new(),
        },
        estimated_days: Some(r.4),
        carrier_account: Some(format!("{}account", r.1.to_ascii_lowercase())),
        test: Some(true),
        ..sh::Rate::default()
    }
}

fn sh_shipment(s: &SimShipment) -> sh::Shipment {
    sh::Shipment {
        object_id: s.id.clone(),
        object_created: Some(iso(s.created_ms)),
        object_updated: Some(iso(s.created_ms)),
        object_owner: Some("sim@orderflow.invalid".into()),
        status: "SUCCESS".into(),
        address_from: Some(s.from.clone()),
        address_to: Some(s.to.clone()),
        rates: s.rates.iter().map(|r| sh_rate(s, r)).collect(),
        metadata: s.reference.clone(),
        test: Some(true),
        ..sh::Shipment::default()
    }
}

fn sh_status(status: &str) -> (&'static str, Option<&'static str>) {
    match status {
        "in_transit" => ("TRANSIT", None),
        "out_for_delivery" => ("TRANSIT", Some("out_for_delivery")),
        "delivered" => ("DELIVERED", None),
        "return_to_sender" => ("RETURNED", None),
        "failure" => ("FAILURE", None),
        "pre_transit" => ("PRE_TRANSIT", None),
        _ => ("UNKNOWN", None),
    }
}

fn sh_tracking_status(status: &str, message: &str, at: i64) -> sh::TrackingStatus {
    let (s, sub) = sh_status(status);
    sh::TrackingStatus {
        object_created: Some(iso(at * 1000)),
        object_updated: Some(iso(at * 1000)),
        status: s.into(),
        status_details: Some(message.into()),
        status_date: Some(iso(at * 1000)),
        substatus: sub.map(|c| sh::Substatus {
            code: c.into(),
            text: message.into(),
            action_required: false,
        }),
        ..sh::TrackingStatus::default()
    }
}

fn sh_transaction(l: &SimLabel, metadata: &str, host: &str) -> sh::Transaction {
    let ext = match l.format.as_str() {
        "ZPLII" => "zpl",
        "PNG" => "png",
        _ => "pdf",
    };
    sh::Transaction {
        object_id: l.id.clone(),
        object_state: "VALID".into(),
        status: if l.refunded {
            "REFUNDED".into()
        } else {
            "SUCCESS".into()
        },
        object_created: Some(iso(l.created_ms)),
        object_updated: Some(iso(real_now_ms())),
        object_owner: Some("sim@orderflow.invalid".into()),
        test: Some(true),
        rate: serde_json::Value::String(l.rate_id.clone()),
        tracking_number: l.tracking_number.clone(),
        tracking_status: Some(json!(sh_status(&l.tracking_status).0)),
        tracking_history: Vec::new(),
        order: None,
        tracking_url_provider: format!(
            "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
            l.tracking_number
        ),
        eta: None,
        label_url: file_url(host, l, ext),
        commercial_invoice_url: None,
        messages: Vec::new(),
        metadata: metadata.into(),
        parcel: None,
    }
}

fn sh_track_of(l: &SimLabel) -> sh::Track {
    let last = l.history.last().cloned().unwrap_or_default();
    sh::Track {
        carrier: l.carrier.to_ascii_lowercase(),
        tracking_number: l.tracking_number.clone(),
        tracking_status: Some(sh_tracking_status(&last.0, &last.1, last.2)),
        tracking_history: l
            .history
            .iter()
            .map(|(s, m, at)| sh_tracking_status(s, m, *at))
            .collect(),
        transaction: Some(l.id.clone()),
        test: Some(true),
        ..sh::Track::default()
    }
}

async fn sh_create(sim: Data<CarrierSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = ProviderKind::Shippo;
    let latency = match gate(&sim, p, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: sh::CreateShipment = match parse(ProviderKind::Shippo, &body) {
        Ok(b) => b,
        Err(r) => return answer(latency, *r).await,
    };
    let mut problems = serde_json::Map::new();
    if b.address_to.zip.is_empty() || b.address_to.country.is_empty() {
        problems.insert(
            "address_to".into(),
            json!(["zip and country are required."]),
        );
    }
    let grams = b.parcels.first().and_then(|p| {
        let w: f64 = p.weight.trim().parse().ok()?;
        Some(match p.mass_unit.as_str() {
            "g" => w,
            "kg" => w * 1000.0,
            "oz" => w * 28.349_523_125,
            "lb" => w * 453.592_37,
            _ => return None,
        })
    });
    match grams {
        Some(g) if g > 0.0 && g <= 70_000.0 => {}
        _ => {
            problems.insert(
                "parcels".into(),
                json!(["A parcel with a weight and a mass_unit (g, oz, lb, kg) is required."]),
            );
        }
    }
    if !problems.is_empty() {
        return answer(
            latency,
            sh_error(StatusCode::BAD_REQUEST, serde_json::Value::Object(problems)),
        )
        .await;
    }
    let r = {
        let mut w = sim.world.lock();
        let s = new_shipment(
            &mut w,
            p,
            b.metadata.clone(),
            grams.unwrap_or(1.0),
            "PDF".into(),
            serde_json::to_value(&b.address_to).unwrap_or_default(),
            serde_json::to_value(&b.address_from).unwrap_or_default(),
        );
        HttpResponse::Created().json(sh_shipment(&s))
    };
    answer(latency, r).await
}

#[derive(Deserialize)]
struct ShippoListQuery {
    object_created_gte: Option<String>,
    rate: Option<String>,
    results: Option<usize>,
    page: Option<usize>,
}

fn page_of<T: Serialize>(
    items: Vec<T>,
    q: &ShippoListQuery,
    path: &str,
    host: &str,
) -> HttpResponse {
    let per = q.results.unwrap_or(25).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let start = (page - 1) * per;
    let total = items.len();
    let results: Vec<T> = items.into_iter().skip(start).take(per).collect();
    let next = (start + per < total)
        .then(|| format!("http://{host}{path}?page={}&results={per}", page + 1));
    HttpResponse::Ok().json(json!({ "next": next, "previous": null, "results": results }))
}

async fn sh_list_shipments(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    q: Query<ShippoListQuery>,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let since = q
        .object_created_gte
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(i64::MIN, |t| t.timestamp_millis());
    let host = host(&req);
    let r = {
        let w = sim.world.lock();
        // Newest first, as Shippo lists.
        let items: Vec<sh::Shipment> = w
            .order
            .iter()
            .rev()
            .filter_map(|id| w.shipments.get(id))
            .filter(|s| s.provider == ProviderKind::Shippo && s.created_ms >= since / 1000 * 1000)
            .map(sh_shipment)
            .collect();
        page_of(items, &q, "/shippo/shipments/", &host)
    };
    answer(latency, r).await
}

async fn sh_get_shipment(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    id: Path<String>,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let r = match sim.world.lock().shipments.get(id.as_str()) {
        Some(s) if s.provider == ProviderKind::Shippo => HttpResponse::Ok().json(sh_shipment(s)),
        _ => sh_error(StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
    };
    answer(latency, r).await
}

async fn sh_buy(sim: Data<CarrierSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: sh::CreateTransaction = match parse(ProviderKind::Shippo, &body) {
        Ok(b) => b,
        Err(r) => return answer(latency, *r).await,
    };
    if b.rate.is_empty() {
        return answer(
            latency,
            sh_error(
                StatusCode::BAD_REQUEST,
                json!({ "rate": ["This field is required."] }),
            ),
        )
        .await;
    }
    let host = host(&req);
    let mut late = Duration::ZERO;
    let r = {
        let mut w = sim.world.lock();
        let shipment = w
            .shipments
            .values()
            .find(|s| s.provider == ProviderKind::Shippo && s.rates.iter().any(|r| r.0 == b.rate))
            .map(|s| s.id.clone());
        match shipment {
            None => sh_error(
                StatusCode::BAD_REQUEST,
                json!({ "rate": [format!("Rate with object_id {} does not exist.", b.rate)] }),
            ),
            Some(sid) => {
                let format = if b.label_file_type.is_empty() {
                    "PDF".to_string()
                } else {
                    b.label_file_type.clone()
                };
                match buy_label(&mut w, &sid, &b.rate, &format) {
                    Some(l) => {
                        late = late_purchase(&mut w);
                        HttpResponse::Created().json(sh_transaction(&l, &b.metadata, &host))
                    }
                    None => sh_error(
                        StatusCode::BAD_REQUEST,
                        json!({ "rate": ["Invalid rate."] }),
                    ),
                }
            }
        }
    };
    answer(latency.max(late), r).await
}

async fn sh_list_transactions(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    q: Query<ShippoListQuery>,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let host = host(&req);
    let r = {
        let w = sim.world.lock();
        let mut items: Vec<&SimLabel> = w
            .labels
            .values()
            .filter(|l| l.provider == ProviderKind::Shippo)
            .filter(|l| q.rate.as_deref().is_none_or(|r| l.rate_id == r))
            .collect();
        items.sort_by_key(|l| std::cmp::Reverse(l.created_ms));
        let items: Vec<sh::Transaction> = items
            .into_iter()
            .map(|l| {
                let meta = w
                    .shipments
                    .get(&l.shipment_id)
                    .map(|s| s.reference.clone())
                    .unwrap_or_default();
                sh_transaction(l, &meta, &host)
            })
            .collect();
        page_of(items, &q, "/shippo/transactions/", &host)
    };
    answer(latency, r).await
}

async fn sh_refund(sim: Data<CarrierSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: sh::CreateRefund = match parse(ProviderKind::Shippo, &body) {
        Ok(b) => b,
        Err(r) => return answer(latency, *r).await,
    };
    let r = {
        let mut w = sim.world.lock();
        match w.labels.get(&b.transaction).cloned() {
            Some(l) if l.provider == ProviderKind::Shippo => {
                let reference = w
                    .shipments
                    .get(&l.shipment_id)
                    .map(|s| s.reference.clone())
                    .unwrap_or_default();
                let status = if l.refunded {
                    "SUCCESS"
                } else if l.tracking_status != "pre_transit" {
                    record(
                        &mut w,
                        "refund_refused",
                        &l,
                        &reference,
                        l.tracking_status.clone(),
                    );
                    "ERROR"
                } else {
                    let mut l2 = l.clone();
                    l2.refunded = true;
                    w.labels.insert(l2.id.clone(), l2.clone());
                    record(&mut w, "refund", &l2, &reference, "SUCCESS");
                    "SUCCESS"
                };
                let id = hex_id(&mut w);
                HttpResponse::Created().json(sh::RefundObject {
                    object_id: id,
                    object_created: Some(iso(real_now_ms())),
                    object_updated: Some(iso(real_now_ms())),
                    object_owner: Some("sim@orderflow.invalid".into()),
                    status: status.into(),
                    transaction: l.id.clone(),
                    test: Some(true),
                })
            }
            _ => sh_error(
                StatusCode::BAD_REQUEST,
                json!({ "transaction": [format!("Transaction with object_id {} does not exist.", b.transaction)] }),
            ),
        }
    };
    answer(latency, r).await
}

async fn sh_track(
    sim: Data<CarrierSim>,
    req: HttpRequest,
    p: Path<(String, String)>,
) -> HttpResponse {
    let latency = match gate(&sim, ProviderKind::Shippo, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let (_, number) = p.into_inner();
    let r = {
        let w = sim.world.lock();
        match w.labels.values().find(|l| l.tracking_number == number) {
            Some(l) => HttpResponse::Ok().json(sh_track_of(l)),
            None => sh_error(StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
        }
    };
    answer(latency, r).await
}

// ---------------------------------------------------------------------------
// Documents and control.

/// A one-pixel PNG (a real one).
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn file(sim: Data<CarrierSim>, name: Path<String>) -> HttpResponse {
    let Some((id, ext)) = name.rsplit_once('.') else {
        return HttpResponse::NotFound().finish();
    };
    let l = match sim.world.lock().labels.get(id).cloned() {
        Some(l) => l,
        None => return HttpResponse::NotFound().finish(),
    };
    match ext {
        "pdf" => match crate::shipping::documents::text_pdf(&[vec![
            format!("{} {}", l.carrier, l.service),
            format!("TRACKING {}", l.tracking_number),
            format!("LABEL {}", l.id),
            "orderflow simulator".into(),
        ]]) {
            Ok(pdf) => HttpResponse::Ok().content_type("application/pdf").body(pdf),
            Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
        },
        "png" => HttpResponse::Ok().content_type("image/png").body(PNG_1X1),
        "zpl" => HttpResponse::Ok().content_type("text/plain").body(format!(
            "^XA\n^FO50,50^A0N,40,40^FD{} {}^FS\n^FO50,120^BY3^BCN,120,Y,N,N^FD{}^FS\n^XZ\n",
            l.carrier, l.service, l.tracking_number
        )),
        _ => HttpResponse::NotFound().finish(),
    }
}

#[derive(Deserialize)]
struct LedgerQuery {
    provider: Option<String>,
}

async fn ledger(sim: Data<CarrierSim>, q: Query<LedgerQuery>) -> HttpResponse {
    let w = sim.world.lock();
    let entries: Vec<&LabelLedgerEntry> = w
        .ledger
        .iter()
        .filter(|e| q.provider.as_deref().is_none_or(|p| e.provider == p))
        .collect();
    let count = |a: &str| entries.iter().filter(|e| e.action == a).count();
    HttpResponse::Ok().json(json!({
        "bought": count("buy"),
        "voided": count("refund"),
        "entries": entries,
    }))
}

async fn get_faults(sim: Data<CarrierSim>) -> HttpResponse {
    HttpResponse::Ok().json(&sim.world.lock().faults)
}

async fn set_faults(sim: Data<CarrierSim>, body: Json<LabelFaults>) -> HttpResponse {
    let f = body.into_inner();
    if let Err(e) = f.validate() {
        return HttpResponse::BadRequest().json(json!({ "error": e }));
    }
    let mut w = sim.world.lock();
    w.faults = f;
    HttpResponse::Ok().json(&w.faults)
}

async fn set_webhooks(sim: Data<CarrierSim>, body: Json<WebhookTargets>) -> HttpResponse {
    let t = body.into_inner();
    sim.world.lock().hooks = t.clone();
    HttpResponse::Ok().json(t)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    tracking_number: String,
    /// EasyPost's tracker statuses: `in_transit`, `out_for_delivery`,
    /// `delivered`, `return_to_sender`, `failure`.
    status: String,
    #[serde(default)]
    message: Option<String>,
    /// Send no webhook (the poll must find it).
    #[serde(default)]
    silent: bool,
}

async fn scan(sim: Data<CarrierSim>, body: Json<ScanRequest>) -> HttpResponse {
    if !matches!(
        body.status.as_str(),
        "in_transit" | "out_for_delivery" | "delivered" | "return_to_sender" | "failure"
    ) {
        return HttpResponse::BadRequest().json(json!({
            "error": "status must be in_transit, out_for_delivery, delivered, return_to_sender or failure"
        }));
    }
    let (label, hooks) = {
        let mut w = sim.world.lock();
        let Some(id) = w
            .labels
            .values()
            .find(|l| l.tracking_number == body.tracking_number)
            .map(|l| l.id.clone())
        else {
            return HttpResponse::NotFound()
                .json(json!({ "error": "no label with that tracking number" }));
        };
        let Some(l) = w.labels.get_mut(&id) else {
            return HttpResponse::NotFound().json(json!({ "error": "no such label" }));
        };
        if l.refunded {
            return HttpResponse::Conflict().json(json!({ "error": "label is refunded" }));
        }
        l.tracking_status = body.status.clone();
        let message = body
            .message
            .clone()
            .unwrap_or_else(|| body.status.replace('_', " "));
        l.history
            .push((body.status.clone(), message, real_now_ms() / 1000));
        let l = l.clone();
        let reference = w
            .shipments
            .get(&l.shipment_id)
            .map(|s| s.reference.clone())
            .unwrap_or_default();
        record(&mut w, "scan", &l, &reference, body.status.clone());
        (l, w.hooks.clone())
    };
    let mut webhook_status = None;
    if !body.silent {
        let sent = match label.provider {
            ProviderKind::Easypost => match &hooks.easypost_url {
                Some(url) => {
                    let event = ep::Event {
                        id: format!("evt_{}", hex_id(&mut sim.world.lock())),
                        object: "Event".into(),
                        mode: Some("test".into()),
                        description: "tracker.updated".into(),
                        result: serde_json::to_value(ep_tracker_of(&label)).unwrap_or_default(),
                        status: Some("pending".into()),
                        created_at: Some(iso(real_now_ms())),
                        updated_at: Some(iso(real_now_ms())),
                        ..ep::Event::default()
                    };
                    let body = serde_json::to_vec(&event).unwrap_or_default();
                    let sig = ep::signature(&hooks.easypost_secret, &body);
                    Some(
                        sim.http
                            .post(url)
                            .header("content-type", "application/json")
                            .header("X-Hmac-Signature", sig)
                            .body(body)
                            .send()
                            .await,
                    )
                }
                None => None,
            },
            _ => match &hooks.shippo_url {
                Some(url) => {
                    let ev = sh::WebhookEvent {
                        event: "track_updated".into(),
                        test: true,
                        data: serde_json::to_value(sh_track_of(&label)).unwrap_or_default(),
                    };
                    Some(sim.http.post(url).json(&ev).send().await)
                }
                None => None,
            },
        };
        webhook_status = match sent {
            Some(Ok(r)) => Some(r.status().as_u16()),
            Some(Err(_)) => Some(0),
            None => None,
        };
    }
    HttpResponse::Ok().json(json!({
        "tracker": ep_tracker_of(&label),
        "provider": label.provider.as_str(),
        "webhook_status": webhook_status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_decodes() {
        assert_eq!(base64_decode("dXNlcjo=").unwrap(), b"user:");
        assert_eq!(
            base64_decode("RVpUS3NpbXVsYXRlZDo").unwrap(),
            b"EZTKsimulated:"
        );
        assert!(base64_decode("**").is_none());
    }
}
