//! A label API simulator (EasyPost/Shippo style), mounted in the same server
//! as the TikTok simulator, so `orderflow simulator` serves both.
//!
//! The wire format is [`crate::shipping::labels`]'s. It keeps a ledger of
//! every purchase and void, honours `Idempotency-Key` (the same key answers
//! the same shipment or label, and the ledger records a replay, never a
//! second purchase), refuses a key reused for a different request (422), and
//! injects faults: a fraction of failing requests, a fixed number of
//! upcoming failures with a chosen status, latency, and a fraction of
//! answers held long enough for the client to time out. Latency is added
//! *after* the work is done, as with a real provider whose answer is lost
//! to a client timeout: the label is bought, and only a retry with the same
//! key gets it.
//!
//! | Method & path | Body / query | Answer |
//! |---|---|---|
//! | `POST /labels/v1/shipments` | `CreateShipment` | `ShipmentData` (rates of USPS, UPS, FedEx) |
//! | `POST /labels/v1/shipments/{id}/buy` | `{rate_id}`, header `Idempotency-Key` | `LabelData` |
//! | `GET /labels/v1/labels/{id}` | | `LabelData` |
//! | `GET /labels/v1/labels/{id}/label.pdf` | | a stand-in PDF (the `label_url`) |
//! | `POST /labels/v1/labels/{id}/void` | | `LabelData` (`voided`); 409 once in transit |
//! | `GET /sim/labels/ledger` | | `{entries:[LabelLedgerEntry], bought, voided}` |
//! | `GET`/`POST /sim/labels/faults` | [`LabelFaults`] (replaces all) | [`LabelFaults`] |
//! | `POST /sim/labels/scan` | `{tracking_number, status: "in_transit"\|"delivered"}` | `LabelData` |
//!
//! With `--label-api-key` set, API calls need `Authorization: Bearer <key>`
//! (401 otherwise).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::real_now_ms;
use super::SimulatorArgs;
use crate::order::Money;
use crate::shipping::labels::{BuyRequest, CreateShipment, LabelData, Rate, ShipmentData};

/// Faults of the label API (`POST /sim/labels/faults` replaces them all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelFaults {
    /// Fraction of API calls answered 503 without doing anything.
    pub error_rate: f64,
    /// The next this-many API calls fail with `fail_status`, without doing
    /// anything.
    pub fail_next: u32,
    /// Status of those failures (default 503).
    pub fail_status: Option<u16>,
    /// Delay added to every API answer, after the work is done.
    pub latency_ms: u64,
    /// Fraction of API calls whose answer is held `timeout_ms` after the
    /// work is done: a carrier that times out sometimes (the client gives
    /// up; the label is bought all the same).
    pub timeout_rate: f64,
    /// How long such an answer is held (default 30 s).
    pub timeout_ms: Option<u64>,
}

impl LabelFaults {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be within [0, 1], got {}",
                self.error_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.timeout_rate) {
            return Err(format!(
                "timeout_rate must be within [0, 1], got {}",
                self.timeout_rate
            ));
        }
        if let Some(s) = self.fail_status {
            if !(400..=599).contains(&s) {
                return Err(format!("fail_status must be 400..=599, got {s}"));
            }
        }
        Ok(())
    }
}

/// One purchase, replay, void or scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelLedgerEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// `buy`, `buy_replayed`, `void`, `void_replayed`, `scan`.
    pub action: String,
    pub label_id: String,
    pub shipment_id: String,
    pub idempotency_key: Option<String>,
    pub tracking_number: String,
    pub detail: String,
}

struct Shipment {
    data: ShipmentData,
    /// The label bought for it, if any.
    label: Option<String>,
}

/// What an idempotency key was first used for.
#[derive(Clone, PartialEq)]
enum Keyed {
    Shipment {
        body: String,
        id: String,
    },
    Buy {
        shipment: String,
        rate: String,
        label: String,
    },
}

struct World {
    rng: StdRng,
    seq: u64,
    shipments: HashMap<String, Shipment>,
    labels: HashMap<String, LabelData>,
    keys: HashMap<String, Keyed>,
    ledger: Vec<LabelLedgerEntry>,
    faults: LabelFaults,
}

/// The label API's state, shared by the HTTP workers.
pub(crate) struct LabelSim {
    world: Mutex<World>,
    api_key: Option<String>,
}

/// Checks the label flags of the simulator's arguments.
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

impl LabelSim {
    pub(crate) fn new(args: &SimulatorArgs) -> LabelSim {
        LabelSim {
            world: Mutex::new(World {
                rng: StdRng::seed_from_u64(args.seed ^ 0x1abe1),
                seq: 0,
                shipments: HashMap::new(),
                labels: HashMap::new(),
                keys: HashMap::new(),
                ledger: Vec::new(),
                faults: initial_faults(args),
            }),
            api_key: args.label_api_key.clone().filter(|k| !k.is_empty()),
        }
    }
}

/// Mounts the label API and its control endpoints (before `/sim`'s scope,
/// which would otherwise swallow `/sim/labels`).
pub(crate) fn routes(cfg: &mut web::ServiceConfig, sim: Data<LabelSim>) {
    cfg.app_data(sim)
        .service(
            web::scope("/labels/v1")
                .route("/shipments", web::post().to(create_shipment))
                .route("/shipments/{id}/buy", web::post().to(buy))
                .route("/labels/{id}", web::get().to(get_label))
                .route("/labels/{id}/label.pdf", web::get().to(label_pdf))
                .route("/labels/{id}/void", web::post().to(void)),
        )
        .service(
            web::scope("/sim/labels")
                .route("/ledger", web::get().to(ledger))
                .route("/faults", web::get().to(get_faults))
                .route("/faults", web::post().to(set_faults))
                .route("/scan", web::post().to(scan)),
        );
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .json(json!({ "error": { "code": code, "message": message.into() } }))
}

/// Authorization, then injected failures. `Err` is the answer to send.
fn gate(sim: &LabelSim, req: &HttpRequest) -> Result<Duration, Box<HttpResponse>> {
    if let Some(k) = &sim.api_key {
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == k);
        if !ok {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key",
            )));
        }
    }
    let mut w = sim.world.lock();
    let mut latency = Duration::from_millis(w.faults.latency_ms);
    let timeout_rate = w.faults.timeout_rate;
    if timeout_rate > 0.0 && w.rng.random_bool(timeout_rate) {
        latency = latency.max(Duration::from_millis(w.faults.timeout_ms.unwrap_or(30_000)));
    }
    if w.faults.fail_next > 0 {
        w.faults.fail_next -= 1;
        let s = w.faults.fail_status.unwrap_or(503);
        let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(Box::new(error(
            status,
            "injected",
            format!("injected failure ({s})"),
        )));
    }
    let rate = w.faults.error_rate;
    if rate > 0.0 && w.rng.random_bool(rate) {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "injected transient failure",
        )));
    }
    Ok(latency)
}

async fn answer(latency: Duration, r: HttpResponse) -> HttpResponse {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    r
}

fn idempotency_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|k| !k.is_empty())
}

const SERVICES: [(&str, &str, i64, i64, u32); 6] = [
    // carrier, service, base cents, cents per 100 g, days
    ("USPS", "GroundAdvantage", 450, 35, 5),
    ("USPS", "Priority", 795, 45, 3),
    ("UPS", "Ground", 699, 30, 5),
    ("UPS", "2ndDayAir", 1599, 60, 2),
    ("FedEx", "Ground", 689, 32, 5),
    ("FedEx", "Express", 2450, 80, 1),
];

async fn create_shipment(sim: Data<LabelSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let latency = match gate(&sim, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: CreateShipment = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return answer(
                latency,
                error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
            )
            .await
        }
    };
    let r = {
        let mut w = sim.world.lock();
        shipment_inner(&mut w, &b, idempotency_key(&req), &body)
    };
    answer(latency, r).await
}

fn shipment_inner(
    w: &mut World,
    b: &CreateShipment,
    key: Option<String>,
    raw: &[u8],
) -> HttpResponse {
    let raw = String::from_utf8_lossy(raw).into_owned();
    if let Some(k) = &key {
        match w.keys.get(k) {
            Some(Keyed::Shipment { body, id }) if *body == raw => {
                if let Some(s) = w.shipments.get(id) {
                    return HttpResponse::Ok().json(&s.data);
                }
            }
            Some(_) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_mismatch",
                    "Idempotency-Key was used for a different request",
                )
            }
            None => {}
        }
    }
    if b.to.postal_code.trim().is_empty() || b.to.country.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_address",
            "to.postal_code and to.country are required",
        );
    }
    if !(1..=70_000).contains(&b.parcel.weight_grams) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parcel",
            "parcel.weight_grams must be 1..=70000",
        );
    }
    w.seq += 1;
    let id = format!("shp_{:06}", w.seq);
    let units = i64::from(b.parcel.weight_grams.div_ceil(100));
    let rates = SERVICES
        .iter()
        .enumerate()
        .map(|(i, (carrier, service, base, per, days))| Rate {
            id: format!("rate_{:06}_{i}", w.seq),
            carrier: carrier.to_string(),
            service: service.to_string(),
            amount: Money(base + per * units).to_string(),
            currency: "USD".into(),
            delivery_days: *days,
        })
        .collect();
    let data = ShipmentData {
        id: id.clone(),
        reference: b.reference.clone(),
        rates,
    };
    w.shipments.insert(
        id.clone(),
        Shipment {
            data: data.clone(),
            label: None,
        },
    );
    if let Some(k) = key {
        w.keys.insert(k, Keyed::Shipment { body: raw, id });
    }
    HttpResponse::Ok().json(data)
}

fn record(
    w: &mut World,
    action: &str,
    l: &LabelData,
    key: Option<String>,
    detail: impl Into<String>,
) {
    let seq = w.ledger.len() as u64 + 1;
    w.ledger.push(LabelLedgerEntry {
        seq,
        at_ms: real_now_ms(),
        action: action.into(),
        label_id: l.id.clone(),
        shipment_id: l.shipment_id.clone(),
        idempotency_key: key,
        tracking_number: l.tracking_number.clone(),
        detail: detail.into(),
    });
}

async fn buy(
    sim: Data<LabelSim>,
    req: HttpRequest,
    id: Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let latency = match gate(&sim, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let b: BuyRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return answer(
                latency,
                error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
            )
            .await
        }
    };
    let host = req.connection_info().host().to_string();
    let r = {
        let mut w = sim.world.lock();
        buy_inner(&mut w, &id, &b.rate_id, idempotency_key(&req), &host)
    };
    answer(latency, r).await
}

fn buy_inner(
    w: &mut World,
    shipment_id: &str,
    rate_id: &str,
    key: Option<String>,
    host: &str,
) -> HttpResponse {
    if let Some(k) = &key {
        match w.keys.get(k).cloned() {
            Some(Keyed::Buy {
                shipment,
                rate,
                label,
            }) => {
                if shipment != shipment_id || rate != rate_id {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_mismatch",
                        "Idempotency-Key was used to buy a different rate",
                    );
                }
                if let Some(l) = w.labels.get(&label).cloned() {
                    record(w, "buy_replayed", &l, key.clone(), "same key, same label");
                    return HttpResponse::Ok().json(l);
                }
            }
            Some(Keyed::Shipment { .. }) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_mismatch",
                    "Idempotency-Key was used for a different request",
                )
            }
            None => {}
        }
    }
    let Some(s) = w.shipments.get(shipment_id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such shipment");
    };
    if let Some(l) = &s.label {
        return error(
            StatusCode::CONFLICT,
            "already_purchased",
            format!("shipment already has label {l}"),
        );
    }
    let Some(rate) = s.data.rates.iter().find(|r| r.id == rate_id).cloned() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rate",
            format!("rate {rate_id} is not one of this shipment's"),
        );
    };
    w.seq += 1;
    let label_id = format!("lbl_{:06}", w.seq);
    let digits: u64 = w.rng.random_range(0..10u64.pow(15));
    let tracking_number = match rate.carrier.as_str() {
        "USPS" => format!("9400100{digits:015}"),
        "UPS" => format!("1Z{digits:015}"),
        _ => format!("7{digits:015}"),
    };
    let label = LabelData {
        id: label_id.clone(),
        shipment_id: shipment_id.to_string(),
        rate_id: rate.id.clone(),
        carrier: rate.carrier.clone(),
        service: rate.service.clone(),
        tracking_number,
        label_url: format!("http://{host}/labels/v1/labels/{label_id}/label.pdf"),
        amount: rate.amount.clone(),
        currency: rate.currency.clone(),
        status: "purchased".into(),
        tracking_status: "pre_transit".into(),
    };
    if let Some(s) = w.shipments.get_mut(shipment_id) {
        s.label = Some(label_id.clone());
    }
    w.labels.insert(label_id.clone(), label.clone());
    if let Some(k) = &key {
        w.keys.insert(
            k.clone(),
            Keyed::Buy {
                shipment: shipment_id.to_string(),
                rate: rate.id.clone(),
                label: label_id,
            },
        );
    }
    record(
        w,
        "buy",
        &label,
        key,
        format!("{} {} {}", rate.carrier, rate.service, rate.amount),
    );
    HttpResponse::Ok().json(label)
}

async fn get_label(sim: Data<LabelSim>, req: HttpRequest, id: Path<String>) -> HttpResponse {
    let latency = match gate(&sim, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let r = match sim.world.lock().labels.get(id.as_str()) {
        Some(l) => HttpResponse::Ok().json(l),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such label"),
    };
    answer(latency, r).await
}

/// The printable label: a tiny stand-in PDF naming the label.
async fn label_pdf(sim: Data<LabelSim>, id: Path<String>) -> HttpResponse {
    let w = sim.world.lock();
    match w.labels.get(id.as_str()) {
        Some(l) => HttpResponse::Ok()
            .content_type("application/pdf")
            .body(format!(
                "%PDF-1.4\n% orderflow simulated label {} {} {} {}\n%%EOF\n",
                l.id, l.carrier, l.service, l.tracking_number
            )),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such label"),
    }
}

async fn void(sim: Data<LabelSim>, req: HttpRequest, id: Path<String>) -> HttpResponse {
    let latency = match gate(&sim, &req) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let r = {
        let mut w = sim.world.lock();
        match w.labels.get(id.as_str()).cloned() {
            None => error(StatusCode::NOT_FOUND, "not_found", "no such label"),
            Some(l) if l.status == "voided" => {
                record(&mut w, "void_replayed", &l, None, "already voided");
                HttpResponse::Ok().json(l)
            }
            Some(l) if l.tracking_status != "pre_transit" => error(
                StatusCode::CONFLICT,
                "not_voidable",
                format!(
                    "label is {}; only unshipped labels can be voided",
                    l.tracking_status
                ),
            ),
            Some(mut l) => {
                l.status = "voided".into();
                w.labels.insert(l.id.clone(), l.clone());
                record(&mut w, "void", &l, None, "voided");
                HttpResponse::Ok().json(l)
            }
        }
    };
    answer(latency, r).await
}

async fn ledger(sim: Data<LabelSim>) -> HttpResponse {
    let w = sim.world.lock();
    let count = |a: &str| w.ledger.iter().filter(|e| e.action == a).count();
    HttpResponse::Ok().json(json!({
        "entries": w.ledger,
        "bought": count("buy"),
        "voided": count("void"),
    }))
}

async fn get_faults(sim: Data<LabelSim>) -> HttpResponse {
    HttpResponse::Ok().json(&sim.world.lock().faults)
}

async fn set_faults(sim: Data<LabelSim>, body: Json<LabelFaults>) -> HttpResponse {
    let f = body.into_inner();
    if let Err(e) = f.validate() {
        return HttpResponse::BadRequest().json(json!({ "error": e }));
    }
    let mut w = sim.world.lock();
    w.faults = f;
    HttpResponse::Ok().json(&w.faults)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scan {
    tracking_number: String,
    status: String,
}

async fn scan(sim: Data<LabelSim>, body: Json<Scan>) -> HttpResponse {
    if !matches!(body.status.as_str(), "in_transit" | "delivered") {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "status must be in_transit or delivered" }));
    }
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
    if l.status == "voided" {
        return HttpResponse::Conflict().json(json!({ "error": "label is voided" }));
    }
    l.tracking_status = body.status.clone();
    let l = l.clone();
    record(&mut w, "scan", &l, None, body.status.clone());
    HttpResponse::Ok().json(l)
}
