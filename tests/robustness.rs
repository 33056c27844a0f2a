//! Robustness: everything that parses outside input — TikTok's webhook
//! bodies, TikTok's API responses, workflow YAML, the stock CSV and the
//! admin API's JSON bodies — fed random bytes, random near-valid
//! structures, and truncations and mutations of real valid inputs (bodies
//! the simulator pushes and returns, the bundled workflows, a valid CSV,
//! valid admin requests).
//!
//! What must hold: nothing panics; invalid input is a clear `Err` (over
//! HTTP: a 4xx, never a 5xx or a dropped connection, and nothing changes);
//! valid input keeps what was given (ids, rows, a round trip).
//!
//! Case counts are kept moderate: the file runs in well under a minute on
//! a busy 2-core machine. `PROPTEST_CASES` raises them for a longer soak.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, get_json, post_json, sim_config, wait_ready, Inbox};
use orderflow::daemon::Daemon;
use orderflow::runtime::Clock;
use orderflow::simulator::{self, SimulatorArgs, SimulatorHandle};
use orderflow::tiktok::client::{decode, Outcome};
use orderflow::tiktok::dto::{AuthorizedShopsData, OrderDetailData, SearchOrdersData, WireOrder};
use orderflow::tiktok::webhook::{self, Topic};
use orderflow::tiktok::{sign, Error as TiktokError};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};

const APP_KEY: &str = "robust-app-key";
const APP_SECRET: &str = "robust-app-secret";
const TOKEN: &str = "robust-access-token";

// ---------------------------------------------------------------------
// Input generators shared by every parser.
// ---------------------------------------------------------------------

/// Field names of the real inputs, so random structures often hit a real
/// field with a wrong or odd value.
const KEYS: &[&str] = &[
    "type",
    "shop_id",
    "tts_notification_id",
    "timestamp",
    "data",
    "order_id",
    "order_status",
    "update_time",
    "package_list",
    "package_id",
    "order_id_list",
    "cancel_status",
    "return_status",
    "code",
    "message",
    "request_id",
    "orders",
    "id",
    "status",
    "line_items",
    "payment",
    "total_amount",
    "sku_id",
    "shops",
    "cipher",
    "action",
    "ids",
    "filter",
    "by",
    "reason",
    "step",
    "note",
    "on_hand",
    "delta",
    "warehouse_id",
    "order",
    "signal",
    "from",
    "to",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KEYS).prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ]
}

/// Any JSON document, small.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        select(KEYS).prop_map(Value::from),
        "[0-9]{1,25}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One edit of a valid input.
#[derive(Debug, Clone)]
enum Edit {
    /// Keep only the first bytes.
    Truncate(Index),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Remove a run of bytes.
    Delete(Index, usize),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Repeat a run of bytes in place.
    Repeat(Index, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), 1usize..24).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..24).prop_map(|(i, n)| Edit::Repeat(i, n)),
    ]
}

fn apply(valid: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = valid.to_vec();
    for e in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Truncate(i) => {
                let n = at(i, v.len());
                v.truncate(n);
            }
            Edit::Set(i, b) if !v.is_empty() => {
                let n = i.index(v.len());
                v[n] = *b;
            }
            Edit::Set(..) => {}
            Edit::Delete(i, n) => {
                let s = at(i, v.len());
                let e = (s + n).min(v.len());
                v.drain(s..e);
            }
            Edit::Insert(i, b) => {
                let s = at(i, v.len());
                v.splice(s..s, b.iter().copied());
            }
            Edit::Repeat(i, n) => {
                let s = at(i, v.len());
                let run: Vec<u8> = v[s..(s + n).min(v.len())].to_vec();
                v.splice(s..s, run);
            }
        }
    }
    v
}

/// Real inputs with one to three edits each.
fn mutated(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (select(valid), prop::collection::vec(edit(), 1..4)).prop_map(|(v, e)| apply(&v, &e))
}

/// Every strict prefix of `valid` (trailing white space removed), a JSON
/// document that can never be complete.
fn prefixes(valid: &[u8]) -> impl Iterator<Item = &[u8]> {
    (0..valid.len())
        .map(move |n| &valid[..n])
        .filter(|p| !p.is_empty() && !p.last().is_some_and(u8::is_ascii_whitespace))
}

fn cases(default: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(default),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs a property over `strategy`, shrinking on failure.
fn check<S: Strategy>(n: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(cases(n));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// `n` values of `strategy` from a fixed seed, for properties that need
/// async I/O (no shrinking; a failure prints the input).
fn sample<S: Strategy>(n: usize, strategy: S) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
        .collect()
}

/// Whether `b` is a JSON document, reading invalid UTF-8 as U+FFFD: a
/// struct's decoder skips an unknown field without checking its UTF-8.
fn is_json(b: &[u8]) -> bool {
    serde_json::from_str::<Value>(&String::from_utf8_lossy(b)).is_ok()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn start_sim(webhook_url: Option<String>) -> SimulatorHandle {
    simulator::start(SimulatorArgs {
        app_key: APP_KEY.into(),
        app_secret: APP_SECRET.into(),
        access_token: TOKEN.into(),
        webhook_url,
        ..Default::default()
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------
// Webhook bodies: `tiktok::webhook::{parse, verify_signature,
// verify_and_parse}`.
// ---------------------------------------------------------------------

/// Bodies of the topics the simulator does not push, in the reference's
/// shapes.
fn other_topic_bodies() -> Vec<Vec<u8>> {
    [
        json!({"type": 3, "tts_notification_id": "7300000000000000003", "shop_id": "7494000000000000001", "timestamp": 1764070000,
               "data": {"order_id": "5769000000000000003", "update_time": 1764070000}}),
        json!({"type": 4, "tts_notification_id": "7300000000000000004", "shop_id": 7494000000000000001i64, "timestamp": 1764070000,
               "data": {"sc_type": "SPLIT", "role_type": "SELLER", "update_time": 1764070000,
                        "package_list": [{"package_id": "1153000000000000001", "order_id_list": ["5769000000000000004", "5769000000000000005"]}]}}),
        json!({"type": 5, "tts_notification_id": "7300000000000000005", "shop_id": "7494000000000000001", "timestamp": 1764070000,
               "data": {"product_id": 1729000000000000001i64, "status": "SUSPENDED", "suspended_reason": "x", "update_time": 1764070000}}),
        json!({"type": 6, "shop_id": "7494000000000000001", "timestamp": 1764070000, "data": {"message": "deauthorized"}}),
        json!({"type": 7, "shop_id": "7494000000000000001", "timestamp": 1764070000, "data": {"message": "expiring", "expiration_time": 1764999999}}),
        json!({"type": 11, "tts_notification_id": "7300000000000000011", "shop_id": "7494000000000000001", "timestamp": 1764070000,
               "data": {"order_id": "5769000000000000011", "cancellations_role": "BUYER", "cancel_status": "CANCELLATION_REQUEST_PENDING", "cancel_id": "4035000000000000001", "create_time": 1764070000}}),
        json!({"type": 12, "tts_notification_id": "7300000000000000012", "shop_id": "7494000000000000001", "timestamp": 1764070000,
               "data": {"order_id": "5769000000000000012", "return_role": "BUYER", "return_type": "REFUND", "return_status": "RETURN_OR_REFUND_REQUEST_PENDING", "return_id": "4035000000000000002", "create_time": 1764070000, "update_time": 1764070000}}),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).unwrap())
    .collect()
}

/// Real pushes: the simulator's ORDER_STATUS_CHANGE bodies (new orders,
/// payment, a buyer cancel) plus the other topics.
async fn real_webhook_bodies(http: &reqwest::Client) -> Vec<Vec<u8>> {
    let inbox = Inbox::start();
    let sim = start_sim(Some(inbox.url())).await;
    let mut ids =
        common::sim_orders_in(http, &sim.base_url(), &sim.shops()[0].0, "UNPAID", 2).await;
    ids.extend(
        common::sim_orders_in(
            http,
            &sim.base_url(),
            &sim.shops()[0].0,
            "AWAITING_SHIPMENT",
            2,
        )
        .await,
    );
    ids.extend(common::sim_orders_in(http, &sim.base_url(), &sim.shops()[0].0, "ON_HOLD", 1).await);
    let (st, v) = post_json(
        http,
        &format!("{}/sim/orders/{}/buyer_cancel", sim.base_url(), ids[4]),
        &json!({}),
    )
    .await;
    assert!(st < 500, "{st} {v}");
    let pushed = eventually(Duration::from_secs(30), "the simulator's pushes", || {
        let (inbox, want) = (inbox.clone(), ids.len());
        async move {
            let d = inbox.delivered();
            (d.len() >= want).then_some(d)
        }
    })
    .await;
    sim.stop().await;
    let mut bodies: Vec<Vec<u8>> = pushed
        .iter()
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect();
    bodies.extend(other_topic_bodies());
    bodies
}

/// What a valid body says, checked against what `parse` made of it.
fn check_webhook_keeps_ids(body: &[u8]) -> Result<(), TestCaseError> {
    let raw: Value = serde_json::from_slice(body).unwrap();
    let ev = webhook::parse(body).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let shop = match &raw["shop_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    prop_assert_eq!(&ev.shop_id, &shop);
    prop_assert_eq!(
        ev.notification_id.as_deref(),
        raw["tts_notification_id"].as_str()
    );
    let order = raw["data"]["order_id"].as_str();
    if matches!(raw["type"].as_i64(), Some(1 | 3 | 11 | 12)) {
        prop_assert_eq!(ev.order_id(), order);
    }
    prop_assert!(
        !matches!(ev.topic, Topic::Other { .. }),
        "a known topic read as other: {}",
        raw
    );
    Ok(())
}

#[actix_rt::test]
async fn webhook_bodies_never_panic_and_keep_their_ids() {
    let http = reqwest::Client::new();
    let real = real_webhook_bodies(&http).await;
    assert!(real.len() >= 10, "{} bodies", real.len());

    for body in &real {
        // Valid: parsed, ids kept, the signature checked both ways.
        check_webhook_keeps_ids(body).unwrap();
        let sig = sign::webhook_signature(APP_KEY, APP_SECRET, body);
        assert!(webhook::verify_and_parse(APP_KEY, APP_SECRET, body, &sig).is_ok());
        assert!(matches!(
            webhook::verify_and_parse(APP_KEY, "another-secret", body, &sig),
            Err(TiktokError::WebhookSignature)
        ));
        // Every truncation: a clear error.
        for p in prefixes(body) {
            assert!(
                matches!(webhook::parse(p), Err(TiktokError::WebhookPayload(_))),
                "prefix accepted: {}",
                String::from_utf8_lossy(p)
            );
            assert!(matches!(
                webhook::verify_and_parse(APP_KEY, APP_SECRET, p, &sig),
                Err(TiktokError::WebhookSignature)
            ));
        }
    }

    // Mutations of real bodies: never a panic; only JSON parses; a body
    // that changed no longer matches the original's signature.
    check(400, mutated(real.clone()), |body| {
        let parsed = webhook::parse(&body);
        prop_assert!(parsed.is_err() || is_json(&body));
        if !real.contains(&body) {
            let ok = real.iter().any(|r| {
                let sig = sign::webhook_signature(APP_KEY, APP_SECRET, r);
                webhook::verify_signature(APP_KEY, APP_SECRET, &body, &sig)
            });
            prop_assert!(!ok, "a changed body kept a valid signature");
        }
        Ok(())
    });

    // Random bytes and random signature headers.
    check(
        300,
        (prop::collection::vec(any::<u8>(), 0..300), ".{0,80}"),
        |(body, header)| {
            prop_assert!(webhook::parse(&body).is_err() || is_json(&body));
            prop_assert!(!webhook::verify_signature(
                APP_KEY, APP_SECRET, &body, &header
            ));
            prop_assert!(webhook::verify_and_parse(APP_KEY, APP_SECRET, &body, &header).is_err());
            Ok(())
        },
    );

    // Random envelopes of every topic with random data: parsed or refused,
    // and when parsed, the shop and the topic number are the ones given.
    let envelope = (
        prop_oneof![select(vec![1i64, 2, 3, 4, 5, 6, 7, 11, 12]), any::<i64>()],
        prop_oneof![
            "[0-9]{1,19}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            arb_json()
        ],
        arb_json(),
        proptest::option::of(arb_json()),
    );
    check(400, envelope, |(kind, shop, data, id)| {
        let mut env = json!({"type": kind, "shop_id": shop, "timestamp": 1764070000, "data": data});
        if let Some(id) = id {
            env["tts_notification_id"] = id;
        }
        let body = serde_json::to_vec(&env).unwrap();
        if let Ok(ev) = webhook::parse(&body) {
            let given = match &env["shop_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            prop_assert_eq!(ev.shop_id, given);
            if let Topic::Other { kind: k, .. } = ev.topic {
                prop_assert_eq!(k, kind);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------
// TikTok responses: `tiktok::client::decode`, the client's own envelope
// reading and `data` decoding, then `Order::from_wire`.
// ---------------------------------------------------------------------

/// Which endpoint's `data` a response is decoded as.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    AuthorizedShops,
    SearchOrders,
    OrderDetail,
    Any,
}

fn decode_as(e: Endpoint, status: StatusCode, body: &[u8]) -> Result<Outcome<()>, TiktokError> {
    fn unit<T>(o: Outcome<T>) -> Outcome<()> {
        match o {
            Outcome::Done(_) => Outcome::Done(()),
            Outcome::Throttled(m) => Outcome::Throttled(m),
            Outcome::Transient(m) => Outcome::Transient(m),
            Outcome::TokenExpired(m) => Outcome::TokenExpired(m),
        }
    }
    Ok(match e {
        Endpoint::AuthorizedShops => unit(decode::<AuthorizedShopsData>(
            "authorized_shops",
            status,
            body,
        )?),
        Endpoint::SearchOrders => unit(decode::<SearchOrdersData>("search_orders", status, body)?),
        Endpoint::OrderDetail => unit(decode::<OrderDetailData>("order_detail", status, body)?),
        Endpoint::Any => unit(decode::<Value>("any", status, body)?),
    })
}

/// One signed call to the simulator, as the client makes it; the raw
/// status and body.
async fn sim_call(
    http: &reqwest::Client,
    sim: &SimulatorHandle,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&[u8]>,
    secret: &str,
) -> (StatusCode, Vec<u8>) {
    let (_, cipher) = &sim.shops()[0];
    let ts = unix_now().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![("app_key", APP_KEY), ("timestamp", &ts)];
    if !path.starts_with("/authorization/") {
        pairs.push(("shop_cipher", cipher));
    }
    pairs.extend_from_slice(query);
    let signature = sign::sign(secret, path, pairs.iter().copied(), body);
    let mut url = reqwest::Url::parse(&format!("{}{path}", sim.base_url())).unwrap();
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().copied())
        .append_pair("sign", &signature);
    let mut rb = http
        .request(method, url)
        .header("x-tts-access-token", TOKEN);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_vec());
    }
    let r = rb.send().await.unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

async fn sim_get(
    http: &reqwest::Client,
    sim: &SimulatorHandle,
    path: &str,
    query: &[(&str, &str)],
    secret: &str,
) -> (StatusCode, Vec<u8>) {
    sim_call(http, sim, reqwest::Method::GET, path, query, None, secret).await
}

/// The data of a response that must be a success.
fn done<T: std::fmt::Debug>(r: Result<Outcome<T>, TiktokError>) -> T {
    match r {
        Ok(Outcome::Done(d)) => d,
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn tiktok_responses_decode_or_fail_cleanly() {
    use reqwest::Method;
    let http = reqwest::Client::new();
    let sim = start_sim(None).await;
    let ids = common::sim_orders_in(
        &http,
        &sim.base_url(),
        &sim.shops()[0].0,
        "AWAITING_SHIPMENT",
        3,
    )
    .await;
    let joined = ids.join(",");
    let by_ids = [("ids", joined.as_str())];
    const DETAIL: &str = "/order/202309/orders";

    let mut real: Vec<(Endpoint, StatusCode, Vec<u8>)> = Vec::new();
    let (st, b) = sim_get(&http, &sim, "/authorization/202309/shops", &[], APP_SECRET).await;
    let shops = done(decode::<AuthorizedShopsData>("authorized_shops", st, &b)).shops;
    assert_eq!(
        shops
            .iter()
            .map(|s| (s.id.clone(), s.cipher.clone()))
            .collect::<Vec<_>>(),
        sim.shops().to_vec()
    );
    real.push((Endpoint::AuthorizedShops, st, b));

    let (st, b) = sim_call(
        &http,
        &sim,
        Method::POST,
        "/order/202309/orders/search",
        &[("page_size", "50")],
        Some(b"{}"),
        APP_SECRET,
    )
    .await;
    let found = done(decode::<SearchOrdersData>("search_orders", st, &b))
        .orders
        .into_iter()
        .map(|o| o.id)
        .collect::<Vec<_>>();
    assert!(ids.iter().all(|i| found.contains(i)), "{found:?}");
    real.push((Endpoint::SearchOrders, st, b));

    let (st, b) = sim_get(&http, &sim, DETAIL, &by_ids, APP_SECRET).await;
    let orders = done(decode::<OrderDetailData>("order_detail", st, &b)).orders;
    let mut got: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    // Round trip: what we decoded, sent back in an envelope, decodes equal.
    let again = serde_json::to_vec(
        &json!({"code": 0, "message": "Success", "request_id": "r", "data": {"orders": orders}}),
    )
    .unwrap();
    let back = done(decode::<OrderDetailData>(
        "order_detail",
        StatusCode::OK,
        &again,
    ));
    assert_eq!(back.orders, orders);
    for (o, (shop, _)) in orders.iter().zip(sim.shops().iter().cycle()) {
        let order =
            orderflow::order::Order::from_wire(shop, o).expect("a simulated order converts");
        assert_eq!(order.id, o.id);
    }
    real.push((Endpoint::OrderDetail, st, b));

    // Error envelopes as the simulator sends them: a bad signature, an
    // unknown path, a throttled call.
    let (st, b) = sim_get(&http, &sim, DETAIL, &by_ids, "wrong-secret").await;
    assert!(
        matches!(
            decode::<OrderDetailData>("order_detail", st, &b),
            Err(TiktokError::Config { code: 106001, .. })
        ),
        "{}",
        String::from_utf8_lossy(&b)
    );
    real.push((Endpoint::OrderDetail, st, b));
    let (st, b) = sim_get(&http, &sim, "/order/202309/nowhere", &[], APP_SECRET).await;
    assert!(
        decode::<Value>("any", st, &b).is_err(),
        "{st} {}",
        String::from_utf8_lossy(&b)
    );
    real.push((Endpoint::Any, st, b));
    let (st, v) = post_json(
        &http,
        &format!("{}/sim/faults", sim.base_url()),
        &json!({"throttle_rate": 1.0}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, b) = sim_get(&http, &sim, DETAIL, &by_ids, APP_SECRET).await;
    assert!(
        matches!(
            decode::<OrderDetailData>("order_detail", st, &b),
            Ok(Outcome::Throttled(_))
        ),
        "{st} {}",
        String::from_utf8_lossy(&b)
    );
    real.push((Endpoint::OrderDetail, st, b));
    sim.stop().await;

    // Every truncation of every real response, under each status a
    // response can come with: no panic; a 2xx with a cut body is a decode
    // error, never success.
    let statuses = [200u16, 400, 429, 500, 503].map(|s| StatusCode::from_u16(s).unwrap());
    for (e, _, body) in &real {
        for p in prefixes(body) {
            for st in statuses {
                let r = decode_as(*e, st, p);
                if st.is_success() || st == StatusCode::BAD_REQUEST {
                    assert!(matches!(r, Err(TiktokError::Decode { .. })), "{st} {r:?}");
                } else {
                    assert!(
                        matches!(r, Ok(Outcome::Throttled(_) | Outcome::Transient(_))),
                        "{st} {r:?}"
                    );
                }
            }
        }
    }

    // Mutations with any status, random bytes, random envelopes.
    let status = (100u16..600).prop_map(|s| StatusCode::from_u16(s).unwrap());
    let endpoint = select(vec![
        Endpoint::AuthorizedShops,
        Endpoint::SearchOrders,
        Endpoint::OrderDetail,
        Endpoint::Any,
    ]);
    let bodies: Vec<Vec<u8>> = real.iter().map(|(_, _, b)| b.clone()).collect();
    check(
        400,
        (endpoint.clone(), status.clone(), mutated(bodies)),
        |(e, st, body)| {
            let r = decode_as(e, st, &body);
            if matches!(r, Ok(Outcome::Done(()))) {
                prop_assert!(st.is_success() && is_json(&body));
            }
            Ok(())
        },
    );
    check(
        200,
        (
            endpoint.clone(),
            status.clone(),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
        |(e, st, body)| {
            let r = decode_as(e, st, &body);
            prop_assert!(!matches!(r, Ok(Outcome::Done(()))) || is_json(&body));
            Ok(())
        },
    );
    let env = (
        any::<i64>(),
        prop_oneof![Just(0i64), Just(105002), Just(36009002), Just(36009003)],
        arb_json(),
        arb_json(),
    );
    check(
        300,
        (endpoint, status, env),
        |(e, st, (code, known, message, data))| {
            let code = if code % 2 == 0 { known } else { code };
            let body = serde_json::to_vec(&json!({"code": code, "message": message, "data": data}))
                .unwrap();
            if let Ok(Outcome::Done(())) = decode_as(e, st, &body) {
                prop_assert_eq!(code, 0);
                prop_assert!(st.is_success());
            }
            Ok(())
        },
    );

    // The simulator's orders with odd values where money, times and ids
    // go: converting never panics.
    let odd = prop_oneof![
        ".{0,24}",
        "-?[0-9]{0,30}(\\.[0-9]{0,30})?",
        Just("1e999".to_string()),
        Just("NaN".to_string())
    ];
    check(
        300,
        (select(orders), odd.clone(), odd, any::<i64>()),
        |(mut o, price, total, t)| {
            if let Some(p) = o.payment.as_mut() {
                p.total_amount = Some(total);
            }
            if let Some(l) = o.line_items.first_mut() {
                l.sale_price = Some(price);
            }
            o.update_time = t;
            o.rts_sla_time = Some(t);
            let _ = orderflow::order::Order::from_wire("7494000000000000001", &o);
            let w: Result<WireOrder, _> = serde_json::from_value(serde_json::to_value(&o).unwrap());
            prop_assert_eq!(w.unwrap(), o);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------
// Workflow YAML: `workflow::parse_workflow` on the bundled workflows cut
// and edited.
// ---------------------------------------------------------------------

fn bundled_workflows() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("workflows").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// A refusal says where and why: the file's name, at least one
/// diagnostic, each inside the text.
fn check_refusal(path: &str, text: &str) -> Result<(), TestCaseError> {
    match orderflow::workflow::parse_workflow(path, text) {
        Ok(d) => {
            prop_assert!(!d.name.is_empty());
            prop_assert!(!d.steps.is_empty());
        }
        Err(r) => {
            prop_assert!(!r.diagnostics.is_empty());
            // YAML breaks lines at \n, \r\n and a lone \r.
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1;
            for d in &r.diagnostics {
                prop_assert!(
                    d.pos.line as usize <= lines,
                    "{} past the end: {}",
                    d.pos.line,
                    r
                );
                prop_assert!(!d.message.is_empty());
            }
            prop_assert!(r.to_string().starts_with(path), "{}", r);
        }
    }
    Ok(())
}

#[test]
fn bundled_workflows_survive_truncation_and_mutation() {
    let files = bundled_workflows();
    assert!(files.len() >= 3, "{files:?}");
    for (path, text) in &files {
        let d = orderflow::workflow::parse_workflow(path, text).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name:"))
            .map(|n| n.trim().trim_matches('"').to_string());
        assert_eq!(Some(d.name.clone()), name, "{path}");
        // Cut at every line and in the middle of every line.
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            let mid = line
                .char_indices()
                .nth(line.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            check_refusal(path, &text[..at + mid]).unwrap();
            at += line.len();
            if at < text.len() {
                check_refusal(path, &text[..at]).unwrap();
            }
        }
    }
    let valid: Vec<Vec<u8>> = files.iter().map(|(_, t)| t.clone().into_bytes()).collect();
    check(300, mutated(valid), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        check_refusal("mutated.yaml", &text)
    });
    // YAML-looking noise: keys of the language with any values.
    let words = select(vec![
        "name:",
        "trigger:",
        "on:",
        "steps:",
        "- id:",
        "call:",
        "with:",
        "wait:",
        "sleep:",
        "if:",
        "retry:",
        "catch:",
        "compensate:",
        "switch:",
        "end:",
        "fail:",
        "set:",
        "&a",
        "*a",
        "<<:",
        "${{",
        "}}",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "|",
        ">",
        "\n",
        "\n  ",
        "\n    ",
        "- ",
        ":",
        "AWAITING_SHIPMENT",
        "order.payment.total_amount > 1",
        "!!binary",
        "%YAML 1.2\n",
        "---\n",
    ]);
    check(
        300,
        prop::collection::vec(prop_oneof![words.prop_map(str::to_string), ".{0,6}"], 0..60),
        |parts| check_refusal("noise.yaml", &parts.concat()),
    );
}

// ---------------------------------------------------------------------
// Stock CSV: `inventory::csv::parse`.
// ---------------------------------------------------------------------

const VALID_CSV: &str = "sku_id,warehouse_id,on_hand,product_id\n\
1729592969712207013,7068517275539719942,120,1729592969712141477\n\
\"SKU, with comma\",,7,\n\
\"SKU-\"\"x\"\"\",W2,0,P9\n\
1729592969712207014,7068517275539719942,4294967295,\n";

/// A quoted or bare CSV field.
fn field(s: &str, quote: bool) -> String {
    if quote || s.contains(',') || s.contains('"') || s.trim() != s {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Debug, Clone)]
struct GenRow {
    sku: String,
    warehouse: Option<String>,
    on_hand: u32,
    product: Option<String>,
}

fn gen_row() -> impl Strategy<Value = GenRow> {
    let id = "[A-Za-z0-9_\\-., \"]{0,14}[A-Za-z0-9_\\-\"]";
    (
        id,
        proptest::option::of(id),
        any::<u32>(),
        proptest::option::of(id),
    )
        .prop_map(|(sku, warehouse, on_hand, product)| GenRow {
            sku: sku.trim().to_string(),
            warehouse: warehouse
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty()),
            on_hand,
            product: product
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty()),
        })
}

#[test]
fn stock_csv_never_panics_and_keeps_every_row() {
    use orderflow::inventory::csv;
    let rows = csv::parse(VALID_CSV).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1].sku, "SKU, with comma");
    assert_eq!(rows[2].sku, "SKU-\"x\"");
    assert_eq!(rows[3].on_hand, u32::MAX);

    // Generated files, columns in any order, fields quoted at random: every
    // row comes back as written, with its line number.
    let file = (
        prop::collection::vec((gen_row(), any::<bool>()), 1..20),
        Just(["sku_id", "warehouse_id", "on_hand", "product_id"]).prop_shuffle(),
        any::<bool>(),
    );
    check(200, file, |(rows, cols, crlf)| {
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|(r, _)| !r.sku.is_empty() && seen.insert((r.sku.clone(), r.warehouse.clone())))
            .collect();
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = cols.join(",") + nl;
        for (r, q) in &rows {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match *c {
                    "sku_id" => field(&r.sku, *q),
                    "warehouse_id" => field(r.warehouse.as_deref().unwrap_or(""), *q),
                    "on_hand" => r.on_hand.to_string(),
                    _ => field(r.product.as_deref().unwrap_or(""), *q),
                })
                .collect();
            text.push_str(&cells.join(","));
            text.push_str(nl);
        }
        let parsed =
            csv::parse(&text).map_err(|p| TestCaseError::fail(format!("{p:?}\n{text}")))?;
        prop_assert_eq!(parsed.len(), rows.len());
        for (i, (p, (r, _))) in parsed.iter().zip(&rows).enumerate() {
            prop_assert_eq!(p.line, i + 2);
            prop_assert_eq!(&p.sku, &r.sku);
            prop_assert_eq!(&p.warehouse, &r.warehouse);
            prop_assert_eq!(p.on_hand, r.on_hand);
            prop_assert_eq!(&p.product_id, &r.product);
        }
        Ok(())
    });

    // Cut and edited: refused with every problem on a numbered line, or
    // read with rows that are all valid.
    let lines = VALID_CSV.lines().count();
    let judge = |text: &str| -> Result<(), TestCaseError> {
        match csv::parse(text) {
            Ok(rows) => {
                for r in rows {
                    prop_assert!(!r.sku.is_empty() && r.line >= 2);
                }
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                for p in &problems {
                    prop_assert!(
                        p.starts_with("line ") || p.starts_with("the file is empty"),
                        "{}",
                        p
                    );
                }
            }
        }
        Ok(())
    };
    for n in 0..=VALID_CSV.len() {
        judge(&VALID_CSV[..n]).unwrap();
    }
    assert!(lines >= 5);
    check(400, mutated(vec![VALID_CSV.as_bytes().to_vec()]), |b| {
        judge(&String::from_utf8_lossy(&b))
    });
    check(300, ".{0,200}", |s| judge(&s));
    check(
        200,
        prop::collection::vec(
            prop_oneof![
                Just(",".to_string()),
                Just("\"".to_string()),
                Just("\n".to_string()),
                "[a-z_ ]{0,8}",
                Just("sku_id,warehouse_id,on_hand\n".to_string())
            ],
            0..40,
        ),
        |parts| judge(&parts.concat()),
    );
}

// ---------------------------------------------------------------------
// Admin API bodies and webhooks through the real HTTP stack of an
// in-process daemon.
// ---------------------------------------------------------------------

/// Everything a refused request must not change.
async fn snapshot(http: &reqwest::Client, base: &str, order: &str, d: &Daemon) -> Value {
    let (_, mut orders) = get_json(http, &format!("{base}/api/v1/orders?limit=100")).await;
    // Time left to ship-by counts down by itself: not state.
    for o in orders["orders"].as_array_mut().into_iter().flatten() {
        if let Some(o) = o.as_object_mut() {
            o.remove("time_left_s");
        }
    }
    let (_, audit) = get_json(http, &format!("{base}/api/v1/orders/{order}/audit")).await;
    let (_, inventory) = get_json(http, &format!("{base}/api/v1/inventory")).await;
    let (_, lifecycle) = get_json(http, &format!("{base}/api/v1/stats/lifecycle")).await;
    json!({
        "orders": orders, "audit": audit, "inventory": inventory, "lifecycle": lifecycle,
        "inbox": d.store.inbox().unwrap().len(), "dedupe": d.store.trees.dedupe.len(),
    })
}

/// Where [`wrong_shape`] breaks a body: which key at each depth, whether
/// to go down into an object, which wrong value, or an unknown field.
#[derive(Debug, Clone)]
struct Breakage {
    keys: [Index; 3],
    down: [bool; 3],
    pick: Index,
    unknown: Option<(String, Value)>,
}

fn break_shape(v: &mut Value, depth: usize, b: &Breakage) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    // A signal is any JSON: no value of it is wrong.
    let keys: Vec<String> = obj.keys().filter(|k| *k != "signal").cloned().collect();
    if keys.is_empty() {
        obj.insert("zz_unknown".into(), json!(1));
        return;
    }
    let child = obj.get_mut(&keys[b.keys[depth].index(keys.len())]).unwrap();
    if child.is_object() && depth < 2 && b.down[depth] {
        return break_shape(child, depth + 1, b);
    }
    let wrong = match child {
        Value::String(_) => [json!(7), json!(true), json!([]), json!({})],
        Value::Number(_) => [json!("7"), json!(true), json!([1]), json!({})],
        Value::Bool(_) => [json!("true"), json!(1), json!([]), json!({})],
        Value::Array(_) => [json!("a"), json!(1), json!(true), json!({})],
        // Not an array: serde reads one as a nested struct's fields in
        // order (`"filter": []` is the empty filter), a spelling the API
        // tolerates below the top level.
        Value::Object(_) => [json!("a"), json!(1), json!(true), json!(2.5)],
        Value::Null => [json!({"z": 1}), json!([1]), json!(true), json!({"z": 1})],
    };
    *child = wrong[b.pick.index(4)].clone();
}

/// A valid JSON body with one field, at the top or up to two levels down,
/// changed into a wrong kind of value, or an unknown field added: still
/// JSON, never a valid request (every body type denies unknown fields).
fn wrong_shape(valid: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    let breakage = (
        any::<[Index; 3]>(),
        any::<[bool; 3]>(),
        any::<Index>(),
        proptest::option::weighted(0.2, ("zz_[a-z]{1,8}", arb_json())),
    )
        .prop_map(|(keys, down, pick, unknown)| Breakage {
            keys,
            down,
            pick,
            unknown,
        });
    (select(valid), breakage).prop_map(|(mut v, b)| {
        match &b.unknown {
            Some((k, x)) => v[k.as_str()] = x.clone(),
            None => break_shape(&mut v, 0, &b),
        }
        serde_json::to_vec(&v).unwrap()
    })
}

#[actix_rt::test]
async fn admin_api_and_webhooks_refuse_bad_bodies_and_change_nothing() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let sim = start_sim(None).await;
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let mut cfg = sim_config(
        &sim,
        APP_KEY,
        APP_SECRET,
        TOKEN,
        50.0,
        &dir.path().join("data"),
        &wf,
    );
    cfg.server.listen = common::free_addr();
    cfg.sync.poll_interval = orderflow::config::Dur(Duration::from_secs(3600));
    let daemon = Daemon::start(cfg, Clock::system()).await.unwrap();
    let base = format!("http://{}", daemon.addr);
    wait_ready(&http, &base).await;
    let shop = sim.shops()[0].0.clone();

    // State to protect: one order (with a workflow-free record and its
    // audit trail) and one SKU's stock.
    let order = "5769000000000000777";
    let now = unix_now();
    let event = json!({"id": "seed-1", "shop_id": shop, "order": common::wire_order(order, now)});
    let (st, v) = post_json(&http, &format!("{base}/api/v1/events"), &event).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post_json(
        &http,
        &format!("{base}/api/v1/inventory/SKU-1"),
        &json!({"on_hand": 10}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    eventually(Duration::from_secs(30), "the seeded order", || {
        let (h, b) = (http.clone(), base.clone());
        async move {
            let (st, _) = get_json(&h, &format!("{b}/api/v1/orders/{order}")).await;
            (st == 200).then_some(())
        }
    })
    .await;
    // Settled: two snapshots a moment apart agree.
    let before = eventually(Duration::from_secs(30), "a settled state", || {
        let (h, b, d) = (http.clone(), base.clone(), &daemon);
        async move {
            let a = snapshot(&h, &b, order, d).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (snapshot(&h, &b, order, d).await == a).then_some(a)
        }
    })
    .await;

    // Each state-changing endpoint with valid bodies to start from.
    let action = |a: &str| format!("/api/v1/orders/{order}/actions/{a}");
    let endpoints: Vec<(String, Vec<Value>)> = vec![
        (
            "/api/v1/events".into(),
            vec![
                json!({"id": "e-2", "shop_id": shop, "order": common::wire_order(order, now + 1)}),
                json!({"id": "e-3", "shop_id": shop, "order_id": order, "signal": {"type": "x"}}),
            ],
        ),
        (action("note"), vec![json!({"note": "a note", "by": "ops"})]),
        (action("hold"), vec![json!({"reason": "address"})]),
        (
            action("cancel"),
            vec![json!({"reason": "buyer asked", "by": "ops"})],
        ),
        (action("run_from"), vec![json!({"step": "reserve"})]),
        (
            "/api/v1/bulk".into(),
            vec![
                json!({"action": "hold", "ids": [order], "reason": "r"}),
                json!({"action": "note", "filter": {"state": "pending", "shop": shop, "created_from": 0, "at_risk": false, "q": "5769"}, "by": "ops"}),
            ],
        ),
        (
            "/api/v1/sync/resync".into(),
            vec![json!({"shop_id": shop, "from": now - 3600, "to": now})],
        ),
        (
            "/api/v1/inventory/SKU-1".into(),
            vec![
                json!({"on_hand": 5, "warehouse_id": "W1"}),
                json!({"delta": -3}),
            ],
        ),
    ];

    let post = |path: String, body: Vec<u8>, ctype: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http
                .post(&url)
                .header("content-type", ctype)
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{url}: no answer to {:?}: {e}",
                        String::from_utf8_lossy(&body)
                    )
                });
            (r.status().as_u16(), body)
        }
    };
    let assert_4xx = |path: &str, (st, body): (u16, Vec<u8>)| {
        assert!(
            (400..500).contains(&st),
            "{path}: {st} for {:?}",
            String::from_utf8_lossy(&body)
        );
    };

    let mut sent = 0;
    for (path, valid) in &endpoints {
        let bytes: Vec<Vec<u8>> = valid
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        // Cuts of the valid bodies: never JSON.
        for b in &bytes {
            bodies.extend(prefixes(b).step_by(3).map(<[u8]>::to_vec));
        }
        // Edits that break the JSON, wrong shapes, random bytes and
        // random JSON that is not a valid request.
        bodies.extend(
            sample(40, mutated(bytes.clone()))
                .into_iter()
                .filter(|b| !is_json(b)),
        );
        bodies.extend(sample(40, wrong_shape(valid.clone())));
        bodies.extend(
            sample(30, prop::collection::vec(any::<u8>(), 1..200))
                .into_iter()
                .filter(|b| !is_json(b)),
        );
        bodies.extend(
            sample(30, arb_json())
                .into_iter()
                .filter(|v| {
                    !v.is_object()
                        || v.as_object()
                            .is_some_and(|o| o.keys().any(|k| !KEYS.contains(&k.as_str())))
                })
                .filter(|v| !(v.is_object() && v.as_object().unwrap().is_empty()))
                .map(|v| serde_json::to_vec(&v).unwrap()),
        );
        // (An empty body is a valid one for interventions: all defaults.)
        for b in bodies.into_iter().filter(|b| !b.is_empty()) {
            assert_4xx(path, post(path.clone(), b, "application/json").await);
            sent += 1;
        }
    }

    // The CSV import: cut, edited and random files the parser refuses.
    let csv = "sku_id,warehouse_id,on_hand\nSKU-1,,3\nSKU-2,W1,4\nSKU-3,,x\n".to_string();
    let mut files: Vec<Vec<u8>> = (1..csv.len())
        .map(|n| csv.as_bytes()[..n].to_vec())
        .collect();
    files.extend(sample(60, mutated(vec![csv.clone().into_bytes()])));
    files.extend(sample(30, prop::collection::vec(any::<u8>(), 0..120)));
    for f in files {
        let refused =
            std::str::from_utf8(&f).map_or(true, |t| orderflow::inventory::csv::parse(t).is_err());
        if refused {
            assert_4xx(
                "import",
                post("/api/v1/inventory/import".into(), f, "text/csv").await,
            );
            sent += 1;
        }
    }

    // Webhooks: signed bodies that are not JSON get 200 and are kept in
    // the quarantine as received (TikTok accepts only 200 or 401);
    // unsigned or wrongly signed ones 401.
    let pushes: Vec<Vec<u8>> = other_topic_bodies();
    let mut hooks: Vec<(Vec<u8>, String)> = Vec::new();
    for b in sample(60, mutated(pushes.clone()))
        .into_iter()
        .chain(sample(20, prop::collection::vec(any::<u8>(), 0..200)))
    {
        if !is_json(&b) {
            let sig = sign::webhook_signature(APP_KEY, APP_SECRET, &b);
            hooks.push((b.clone(), sig));
        }
        hooks.push((b, "0".repeat(64)));
    }
    for (b, sig) in hooks {
        let r = http
            .post(format!("{base}/webhooks/tiktok"))
            .header("Authorization", &sig)
            .body(b.clone())
            .send()
            .await
            .expect("an answer");
        let st = r.status().as_u16();
        let want = if sig.starts_with("0000") { 401 } else { 200 };
        assert_eq!(st, want, "{:?}", String::from_utf8_lossy(&b));
        sent += 1;
    }

    // Candidate workflows: never a 5xx.
    for b in sample(
        40,
        mutated(
            bundled_workflows()
                .into_iter()
                .map(|(_, t)| t.into_bytes())
                .collect(),
        ),
    ) {
        let r = http
            .post(format!("{base}/api/v1/workflows/validate"))
            .body(b)
            .send()
            .await
            .expect("an answer");
        assert!(matches!(r.status().as_u16(), 200 | 400), "{}", r.status());
    }

    // Still healthy, and nothing changed.
    let (st, _) = get_json(&http, &format!("{base}/healthz")).await;
    assert_eq!(st, 200);
    let after = snapshot(&http, &base, order, &daemon).await;
    assert_eq!(before, after, "state changed after {sent} refused requests");
    let (_, q) = get_json(
        &http,
        &format!("{base}/api/v1/webhooks/quarantine?limit=500"),
    )
    .await;
    assert!(
        q["webhooks"].as_array().is_some_and(|w| !w.is_empty()),
        "the signed bodies that were not JSON are in the quarantine"
    );
    println!("{sent} refused requests, state unchanged");
    daemon.shutdown().await;
    sim.stop().await;
}
