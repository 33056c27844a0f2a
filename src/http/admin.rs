//! The admin API beyond single orders: search with stable pagination, bulk
//! interventions as background jobs, and stats.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{error, AppState};
use crate::runtime::event::{EventKind, OperatorAction, OrderEvent, Source};
use crate::runtime::interventions::{self, Context};
use crate::runtime::report;
use crate::store::index::{self, Projection};
use crate::store::{OrderRecord, Store};

/// Mounted under `/api/v1`, behind [`super::auth::gate_api`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/orders", web::get().to(list_orders))
        .route("/bulk", web::post().to(start_bulk))
        .route("/bulk/{id}", web::get().to(get_bulk))
        .route("/stats", web::get().to(stats))
        .route("/overview", web::get().to(get_overview))
        .route("/approvals", web::get().to(approvals))
        .route("/admin/backup", web::post().to(backup))
        .route("/admin/retention", web::post().to(retention_pass));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// A new (or empty) folder on the daemon's machine, absolute.
    pub to: std::path::PathBuf,
}

/// `POST /api/v1/admin/backup`: a consistent backup of the running store
/// into a new folder ([`crate::store::backup`]); answers its manifest.
async fn backup(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    use crate::store::backup::Error as B;
    use actix_web::http::StatusCode;
    if let Err(r) = super::auth::require(&req, crate::people::Role::Admin) {
        return r.into();
    }
    // Busy while it runs: the idle-connection watcher leaves it be.
    let _busy = req
        .conn_data::<super::conn::ConnGuard>()
        .map(super::conn::ConnGuard::busy);
    let req: BackupRequest = match super::json_body(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let (store, dir) = (s.store.clone(), s.data_dir.clone());
    let done =
        tokio::task::spawn_blocking(move || crate::store::backup::backup(&store, &dir, &req.to))
            .await;
    match done {
        Ok(Ok(m)) => {
            tracing::info!(
                bytes = m.bytes,
                took_ms = m.took_ms,
                paused_ms = m.paused_ms,
                "Backup written"
            );
            HttpResponse::Ok().json(m)
        }
        Ok(Err(e @ B::NotAbsolute(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e @ B::NotEmpty(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Filters shared by listing and bulk.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    pub state: Option<String>,
    pub tiktok_status: Option<String>,
    pub shop: Option<String>,
    pub sku: Option<String>,
    /// Received at or after (Unix ms).
    #[serde(deserialize_with = "lenient::opt")]
    pub created_from: Option<i64>,
    #[serde(deserialize_with = "lenient::opt")]
    pub created_to: Option<i64>,
    #[serde(deserialize_with = "lenient::opt")]
    pub updated_from: Option<i64>,
    #[serde(deserialize_with = "lenient::opt")]
    pub updated_to: Option<i64>,
    #[serde(deserialize_with = "lenient::opt")]
    pub at_risk: Option<bool>,
    /// Search: a word starting with it (any case) in the order id, buyer
    /// id, email or name, tracking number, seller SKUs or tags.
    pub q: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &OrderRecord, now_ms: i64, margin_s: i64) -> bool {
        if let Some(s) = &self.state {
            if r.lifecycle.as_str() != s {
                return false;
            }
        }
        if let Some(t) = &self.tiktok_status {
            if r.order.as_ref().map(|o| o.status.as_str()) != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(shop) = &self.shop {
            if &r.shop_id != shop {
                return false;
            }
        }
        if let Some(sku) = &self.sku {
            if !r
                .order
                .as_ref()
                .is_some_and(|o| o.line_items.iter().any(|l| &l.sku_id == sku))
            {
                return false;
            }
        }
        let within = |v: i64, from: Option<i64>, to: Option<i64>| {
            from.is_none_or(|f| v >= f) && to.is_none_or(|t| v < t)
        };
        if !within(r.received_ms, self.created_from, self.created_to)
            || !within(r.updated_ms, self.updated_from, self.updated_to)
        {
            return false;
        }
        if let Some(risk) = self.at_risk {
            if report::is_at_risk(r, now_ms, margin_s) != risk {
                return false;
            }
        }
        if let Some(q) = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let q = q.to_lowercase();
            if !Projection::of(r).terms.iter().any(|t| t.starts_with(&q)) {
                return false;
            }
        }
        true
    }

    /// The orders matching, in order-id order after `after`, at most
    /// `limit`, and the id to continue after when there are more. Walks
    /// the narrowest index the filter names (search terms, at risk,
    /// state, TikTok status, shop, SKU) and decodes only its candidates.
    /// The first exact-value filter an index serves (state, TikTok status,
    /// shop, SKU), with its value.
    fn indexed(&self) -> Option<(index::By, &str)> {
        [
            (index::By::Lifecycle, &self.state),
            (index::By::TiktokStatus, &self.tiktok_status),
            (index::By::Shop, &self.shop),
            (index::By::Sku, &self.sku),
        ]
        .into_iter()
        .find_map(|(by, v)| v.as_deref().map(|v| (by, v)))
    }

    /// Whether the list has a filter that names its candidates through
    /// an index (a search, at-risk, state, status, shop, SKU or a date
    /// range), and their ids, up to `cap` + 1.
    fn candidate_ids(
        &self,
        tree: &sled::Tree,
        now_ms: i64,
        margin_s: i64,
        cap: usize,
    ) -> Result<Option<Vec<String>>, crate::store::Error> {
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let mut ids: Vec<String> = if let Some(q) = q {
            index::search(tree, q, SEARCH_CAP)?
        } else if self.at_risk == Some(true) {
            let until = now_ms / 1000 + margin_s;
            index::ship_by_before(tree, until)
                .take(cap + 1)
                .map(|r| r.map(|(_, id)| id))
                .collect::<Result<_, _>>()?
        } else if let Some((by, v)) = self.indexed() {
            index::ids(tree, by, v, None)
                .take(cap + 1)
                .collect::<Result<_, _>>()?
        } else if self.updated_from.is_some() || self.updated_to.is_some() {
            index::in_hours(
                tree,
                index::When::Updated,
                self.updated_from,
                self.updated_to,
            )?
        } else if self.created_from.is_some() || self.created_to.is_some() {
            index::in_hours(
                tree,
                index::When::Received,
                self.created_from,
                self.created_to,
            )?
        } else {
            return Ok(None);
        };
        ids.sort();
        ids.dedup();
        Ok(Some(ids))
    }

    /// One page in `sort` order, after the order `after`.
    ///
    /// - A filter with at most [`SORT_IN_MEMORY`] candidates: read them
    ///   all, sort, page (and `matched` is exact).
    /// - Otherwise by received or updated time: walk that hour index from
    ///   the cursor, by the hour and then by order id within it (TikTok's
    ///   ids grow with time); a page reads only its own orders (and, with a
    ///   filter, at most [`SCAN_PER_PAGE`]).
    /// - By ship-by: the ship-by index (orders not shipped yet), soonest
    ///   first.
    /// - By id: the orders tree's own order.
    /// - By total (or id, descending) over more than [`SORT_IN_MEMORY`] orders: refused
    ///   (narrow the list first), never a scan of everything.
    pub fn select_sorted(
        &self,
        store: &Store,
        now_ms: i64,
        margin_s: i64,
        sort: Sort,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, SortError> {
        let tree = &store.trees.orders;
        let cursor = match after {
            Some(a) => match store.load_order(a)? {
                Some(r) => Some(r),
                None => return Err(SortError::Cursor(a.to_string())),
            },
            None => None,
        };
        let past = |r: &OrderRecord| {
            cursor
                .as_ref()
                .is_none_or(|c| sort.cmp(c, r) == std::cmp::Ordering::Less)
        };
        if let Some(ids) = self.candidate_ids(tree, now_ms, margin_s, SORT_IN_MEMORY)? {
            if ids.len() <= SORT_IN_MEMORY {
                let mut all = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(r) = store.load_order(&id)? {
                        if self.matches(&r, now_ms, margin_s) {
                            all.push(r);
                        }
                    }
                }
                all.sort_by(|a, b| sort.cmp(a, b));
                let matched = Some(all.len() as u64);
                let mut rest: Vec<OrderRecord> = all.into_iter().filter(|r| past(r)).collect();
                let next = (rest.len() > limit).then(|| rest[limit - 1].order_id.clone());
                rest.truncate(limit);
                return Ok(Page {
                    orders: rest,
                    next,
                    matched,
                    partial: false,
                });
            }
        }
        let when = match sort.key {
            // Id order is the orders tree's own (and the indexes').
            SortKey::Id if !sort.desc => {
                let (orders, next) = self.select(store, now_ms, margin_s, after, limit)?;
                return Ok(Page {
                    orders,
                    next,
                    ..Page::default()
                });
            }
            SortKey::Received => index::When::Received,
            SortKey::Updated => index::When::Updated,
            SortKey::ShipBy if !sort.desc => {
                let mut page = Page::default();
                let mut examined = 0;
                for item in index::ship_by_before(tree, i64::MAX) {
                    let (_, id) = item?;
                    let Some(r) = store.load_order(&id)? else {
                        continue;
                    };
                    examined += 1;
                    if !past(&r) || !self.matches(&r, now_ms, margin_s) {
                        if examined >= SCAN_PER_PAGE {
                            page.next = Some(r.order_id);
                            page.partial = true;
                            return Ok(page);
                        }
                        continue;
                    }
                    if page.orders.len() == limit {
                        page.next = page.orders.last().map(|r| r.order_id.clone());
                        return Ok(page);
                    }
                    page.orders.push(r);
                }
                return Ok(page);
            }
            _ => return Err(SortError::TooMany),
        };
        let unfiltered = self == &Filter::default();
        let mut page = Page {
            matched: if unfiltered {
                Some(index::by_lifecycle(tree)?.values().sum())
            } else {
                None
            },
            ..Page::default()
        };
        // By the hour, then by id within it: a page reads its own orders,
        // however many share an hour (a viral hour, a backlog).
        let after = cursor.as_ref().and_then(|c| {
            sort.value(c)
                .map(|ms| (index::hour_of(ms), c.order_id.as_str()))
        });
        let mut examined = 0;
        for item in index::by_hour(tree, when, after, sort.desc) {
            let (_, id) = item?;
            let Some(r) = store.load_order(&id)? else {
                continue;
            };
            examined += 1;
            if self.matches(&r, now_ms, margin_s) {
                if page.orders.len() == limit {
                    page.next = page.orders.last().map(|r| r.order_id.clone());
                    return Ok(page);
                }
                page.orders.push(r);
            } else if examined >= SCAN_PER_PAGE {
                page.next = Some(r.order_id);
                page.partial = true;
                return Ok(page);
            }
        }
        Ok(page)
    }

    pub fn select(
        &self,
        store: &Store,
        now_ms: i64,
        margin_s: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<String>), crate::store::Error> {
        let tree = &store.trees.orders;
        let past = |id: &String| after.is_none_or(|a| id.as_str() > a);
        let sorted = |mut v: Vec<String>| -> Box<dyn Iterator<Item = _>> {
            v.sort();
            v.dedup();
            Box::new(v.into_iter().filter(past).map(Ok))
        };
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let candidates: Box<dyn Iterator<Item = Result<String, crate::store::Error>>> =
            if let Some(q) = q {
                sorted(index::search(tree, q, SEARCH_CAP)?)
            } else if self.at_risk == Some(true) {
                let until = now_ms / 1000 + margin_s;
                sorted(
                    index::ship_by_before(tree, until)
                        .map(|r| r.map(|(_, id)| id))
                        .collect::<Result<_, _>>()?,
                )
            } else if let Some((by, v)) = self.indexed() {
                Box::new(index::ids(tree, by, v, after))
            } else if self.updated_from.is_some() || self.updated_to.is_some() {
                sorted(index::in_hours(
                    tree,
                    index::When::Updated,
                    self.updated_from,
                    self.updated_to,
                )?)
            } else if self.created_from.is_some() || self.created_to.is_some() {
                sorted(index::in_hours(
                    tree,
                    index::When::Received,
                    self.created_from,
                    self.created_to,
                )?)
            } else {
                let start = after.map(|a| {
                    let mut k = a.as_bytes().to_vec();
                    k.push(0);
                    k
                });
                Box::new(
                    tree.range(start.unwrap_or_default()..vec![index::PREFIX])
                        .keys()
                        .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned())),
                )
            };
        let mut out = Vec::new();
        for id in candidates {
            let id = id?;
            let Some(r) = store.load_order(&id)? else {
                continue;
            };
            if !self.matches(&r, now_ms, margin_s) {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|r: &OrderRecord| r.order_id.clone());
                return Ok((out, next));
            }
            out.push(r);
        }
        Ok((out, None))
    }
}

/// A search matches at most this many orders (the newest pages of a
/// search this broad are not worth reading: narrow it).
const SEARCH_CAP: usize = 10_000;

/// Numbers and booleans as JSON gives them or as query strings do. A
/// query string's values are all text, and `#[serde(flatten)]` (which
/// [`ListQuery`] needs) hands them on as text: without this,
/// `?at_risk=true` would be refused.
mod lenient {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Native(T),
        Text(String),
    }

    pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match Option::<Either<T>>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Native(v)) => Ok(Some(v)),
            Some(Either::Text(s)) => s
                .parse()
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    pub filter: Filter,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub limit: Option<usize>,
    /// The `next` of the previous page: the last order shown (the next
    /// page starts after it in the list's order).
    pub after: Option<String>,
    /// `received` (the default), `updated`, `ship_by`, `total` or `id`;
    /// `-` first (or `dir=desc`) for the largest first. Without either,
    /// newest first.
    pub sort: Option<String>,
    pub dir: Option<String>,
    /// `csv`: the whole filtered list as CSV.
    pub format: Option<String>,
}

/// What a list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Received,
    Updated,
    ShipBy,
    Total,
    /// Order id order (the list's order before sorting existed).
    Id,
}

/// A list's order: the key and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub desc: bool,
}

impl Sort {
    /// From `sort` and `dir`: newest received first when neither is given.
    pub fn parse(sort: Option<&str>, dir: Option<&str>) -> Result<Sort, String> {
        let raw = sort
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("-received");
        let (name, minus) = match raw.strip_prefix('-') {
            Some(n) => (n, true),
            None => (raw, false),
        };
        let key = match name {
            "received" | "created" => SortKey::Received,
            "updated" => SortKey::Updated,
            "ship_by" => SortKey::ShipBy,
            "total" => SortKey::Total,
            "id" => SortKey::Id,
            other => {
                return Err(format!(
                    "unknown sort {other:?} (one of received, updated, ship_by, total, id; - first for descending)"
                ))
            }
        };
        let desc = match dir.map(str::trim) {
            Some("desc") => true,
            Some("asc") => false,
            Some(other) if !other.is_empty() => {
                return Err(format!("unknown dir {other:?} (asc or desc)"))
            }
            _ => minus,
        };
        Ok(Sort { key, desc })
    }

    /// The record's sort value; orders without one (no ship-by yet) sort
    /// last either way.
    fn value(self, r: &OrderRecord) -> Option<i64> {
        match self.key {
            SortKey::Received => Some(r.received_ms),
            SortKey::Updated => Some(r.updated_ms),
            SortKey::ShipBy => r.order.as_ref().and_then(|o| o.deadlines.ship_by()),
            SortKey::Total => r
                .order
                .as_ref()
                .map(|o| (o.payment.total_amount.as_f64() * 100.0).round() as i64),
            SortKey::Id => Some(0),
        }
    }

    fn cmp(self, a: &OrderRecord, b: &OrderRecord) -> std::cmp::Ordering {
        let (va, vb) = (self.value(a), self.value(b));
        let by_value = match (va, vb) {
            (Some(x), Some(y)) if self.desc => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        let by_id = if self.desc {
            b.order_id.cmp(&a.order_id)
        } else {
            a.order_id.cmp(&b.order_id)
        };
        by_value.then(by_id)
    }
}

/// Lists of up to this many candidates (a search, a state, a shop, a date
/// range) are read whole and sorted in memory.
pub const SORT_IN_MEMORY: usize = 5_000;
/// A page walking the hour indexes with a filter examines at most this
/// many orders; past it the page ends early with `next` (and `partial`).
pub const SCAN_PER_PAGE: usize = 20_000;

/// One page of a sorted list.
#[derive(Debug, Default)]
pub struct Page {
    pub orders: Vec<OrderRecord>,
    pub next: Option<String>,
    /// How many orders match, when the list knew without extra reads.
    pub matched: Option<u64>,
    /// The page stopped at [`SCAN_PER_PAGE`] before it was full.
    pub partial: bool,
}

/// A list row: [`summary`] with the interventions allowed now
/// A list row: [`summary`] with the interventions allowed now
/// (`actions`), which is all a row's buttons offer.
pub fn row(s: &AppState, r: &OrderRecord, now_ms: i64) -> serde_json::Value {
    let mut v = summary(r, now_ms);
    let def = r.workflow.as_deref().and_then(|k| s.registry.get(k).ok());
    let resolve = |n: &str| resolve_workflow(&s.registry, n);
    let cx = intervention_context(s, r, def.as_deref(), &resolve);
    v["actions"] = json!(interventions::allowed(r, &cx));
    v
}

pub fn summary(r: &OrderRecord, now_ms: i64) -> serde_json::Value {
    json!({
        "order_id": r.order_id,
        "shop_id": r.shop_id,
        "lifecycle": r.lifecycle.as_str(),
        "tiktok_status": r.order.as_ref().map(|o| o.status.as_str()),
        "workflow": r.workflow,
        "last_error": r.last_error,
        "received_ms": r.received_ms,
        "updated_ms": r.updated_ms,
        "ship_by": r.order.as_ref().and_then(|o| o.deadlines.ship_by()),
        "time_left_s": report::time_left_s(r, now_ms),
        "total": r.order.as_ref().map(|o| o.payment.total_amount.as_f64()),
        "items": r.order.as_ref().map(|o| o.line_items.len()),
    })
}

/// Rows a CSV export carries at most (a note ends a longer one).
pub const CSV_MAX_ROWS: usize = 200_000;

fn csv_field(v: &str) -> String {
    // A cell a spreadsheet would run as a formula is quoted as text.
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The CSV export's header.
pub const CSV_HEADER: &str = "order_id,shop_id,received,updated,lifecycle,tiktok_status,ship_by,total,currency,buyer_name,buyer_email,items,seller_skus,tracking_number,last_error";

/// One order as a CSV line (with its newline).
pub fn csv_line(r: &OrderRecord) -> String {
    let o = r.order.as_ref();
    let cells = [
        r.order_id.clone(),
        r.shop_id.clone(),
        iso(r.received_ms),
        iso(r.updated_ms),
        r.lifecycle.as_str().to_string(),
        o.map(|o| o.status.as_str().to_string()).unwrap_or_default(),
        o.and_then(|o| o.deadlines.ship_by())
            .map(|s| iso(s * 1000))
            .unwrap_or_default(),
        o.map(|o| o.payment.total_amount.to_string())
            .unwrap_or_default(),
        o.map(|o| o.payment.currency.clone()).unwrap_or_default(),
        o.and_then(|o| o.recipient.as_ref())
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        o.map(|o| o.buyer_email.clone()).unwrap_or_default(),
        o.map(|o| o.line_items.len().to_string())
            .unwrap_or_default(),
        o.map(|o| {
            o.line_items
                .iter()
                .map(|l| l.seller_sku.as_str())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default(),
        o.and_then(|o| o.tracking_number.clone())
            .unwrap_or_default(),
        r.last_error.clone().unwrap_or_default(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

async fn list_orders(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    q: web::Query<ListQuery>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let viewer = super::auth::principal(&req).role < crate::people::Role::Operator;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let now = s.runtime.shared.clock.now_ms();
    let q = q.into_inner();
    let sort = match Sort::parse(q.sort.as_deref(), q.dir.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (store, margin) = (s.store.clone(), s.at_risk_margin_s);
    if q.format.as_deref() == Some("csv") {
        return csv_export(store, q.filter, sort, now, margin).await;
    }
    // A search for an order id also finds it in the archive (first page).
    let archived_id = q
        .filter
        .q
        .as_deref()
        .map(str::trim)
        .filter(|t| q.after.is_none() && !t.is_empty() && !t.contains(' '))
        .map(str::to_string);
    // Off the HTTP workers: they also acknowledge TikTok's webhooks.
    let found = web::block(move || {
        let page = q
            .filter
            .select_sorted(&store, now, margin, sort, q.after.as_deref(), limit)?;
        let archived = match archived_id {
            Some(id) => store
                .trees
                .archive
                .get(id.as_bytes())
                .map_err(crate::store::Error::from)?
                .map(|v| crate::store::codec::decode::<crate::store::Archived>(&v))
                .transpose()
                .map_err(crate::store::Error::from)?
                .map(|a| (id, a)),
            None => None,
        };
        // Counts per state: the counters kept with the checkpoints.
        let counts = crate::store::index::by_lifecycle(&store.trees.orders)?;
        Ok::<_, SortError>((page, archived, counts))
    })
    .await;
    match found {
        Ok(Ok((page, archived, counts))) => {
            let mut out: Vec<_> = page
                .orders
                .iter()
                .map(|r| {
                    let mut v = row(&s, r, now);
                    if viewer {
                        v["actions"] = json!([]);
                    }
                    v
                })
                .collect();
            if let Some((id, a)) = archived {
                out.push(json!({
                    "order_id": id,
                    "shop_id": a.shop_id,
                    "lifecycle": a.lifecycle,
                    "received_ms": a.history.received_ms,
                    "updated_ms": a.updated_ms,
                    "archived": {"at_ms": a.archived_ms, "file": a.file},
                }));
            }
            HttpResponse::Ok().json(json!({
                "orders": out,
                "next": page.next,
                "matched": page.matched,
                "partial": page.partial,
                "counts": counts,
            }))
        }
        Ok(Err(e @ (SortError::TooMany | SortError::Cursor(_)))) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/v1/orders?format=csv&…`: every order the filter matches, in
/// the list's order, as CSV, read page by page on the blocking pool and
/// streamed (memory stays one page).
async fn csv_export(
    store: Store,
    filter: Filter,
    sort: Sort,
    now: i64,
    margin: i64,
) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let first = tx.clone();
    std::thread::spawn(move || {
        let _ = first.blocking_send(Ok(web::Bytes::from(format!("{CSV_HEADER}\n"))));
        let mut after: Option<String> = None;
        let mut rows = 0usize;
        loop {
            let page = match filter.select_sorted(&store, now, margin, sort, after.as_deref(), 500)
            {
                Ok(p) => p,
                Err(e) => {
                    let _ =
                        tx.blocking_send(Ok(web::Bytes::from(format!("# export stopped: {e}\n"))));
                    return;
                }
            };
            let mut chunk = String::new();
            for r in &page.orders {
                chunk.push_str(&csv_line(r));
            }
            rows += page.orders.len();
            if !chunk.is_empty() && tx.blocking_send(Ok(web::Bytes::from(chunk))).is_err() {
                return;
            }
            match page.next {
                Some(n) if rows < CSV_MAX_ROWS => after = Some(n),
                Some(_) => {
                    let _ = tx.blocking_send(Ok(web::Bytes::from(format!(
                        "# stopped at {CSV_MAX_ROWS} rows: narrow the filter for the rest\n"
                    ))));
                    return;
                }
                None => return,
            }
        }
    });
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"orders.csv\""))
        .streaming(body)
}

/// Approval timers a page of the inbox reads at most.
const APPROVAL_SCAN: usize = 50_000;

/// `GET /api/v1/approvals?limit=N`: orders waiting for a person's
/// decision, the soonest deadline first: each with its question, when the
/// approval times out (and what happens then), its total and items. Read
/// from the timers, which every approval arms, so it costs the orders
/// waiting, never all orders.
async fn approvals(
    s: web::Data<AppState>,
    req: actix_web::HttpRequest,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let limit = super::limit_of(&q, 50, 500);
    let viewer = super::auth::principal(&req).role < crate::people::Role::Operator;
    let store = s.store.clone();
    let registry = s.registry.clone();
    let now = s.runtime.shared.clock.now_ms();
    let found = web::block(move || {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for kv in store.trees.timers.iter().take(APPROVAL_SCAN) {
            let (k, v) = kv?;
            if !k.ends_with(b":ApprovalTimeout") {
                continue;
            }
            let t: crate::store::TimerEntry = crate::store::codec::decode(&v)?;
            if !seen.insert(t.order_id.clone()) {
                continue;
            }
            let Some(rec) = store.load_order(&t.order_id)? else {
                continue;
            };
            let view = super::order_view(&rec, &registry);
            let Some(question) = view["waiting"]["approval"].as_str().map(str::to_string) else {
                continue;
            };
            out.push((rec, question, t.due_ms));
            if out.len() >= limit {
                break;
            }
        }
        Ok::<_, crate::store::Error>(out)
    })
    .await;
    match found {
        Ok(Ok(list)) => {
            let rows: Vec<_> = list
                .iter()
                .map(|(rec, question, due_ms)| {
                    let mut v = row(&s, rec, now);
                    if viewer {
                        v["actions"] = json!([]);
                    }
                    v["question"] = json!(question);
                    v["decide_by_ms"] = json!(due_ms);
                    v["buyer_name"] = json!(rec
                        .order
                        .as_ref()
                        .and_then(|o| o.recipient.as_ref())
                        .map(|a| a.name.as_str()));
                    v["currency"] = json!(rec.order.as_ref().map(|o| o.payment.currency.as_str()));
                    v
                })
                .collect();
            HttpResponse::Ok().json(json!({ "approvals": rows }))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/v1/admin/retention`: one retention pass now (archive,
/// dedupe expiry, old jobs), answered with what it did.
async fn retention_pass(s: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    if let Err(r) = super::auth::require(&req, crate::people::Role::Admin) {
        return r.into();
    }
    let _busy = req
        .conn_data::<super::conn::ConnGuard>()
        .map(super::conn::ConnGuard::busy);
    match s.retention.pass(s.runtime.shared.clock.now_ms()).await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ),
    }
}

/// A bulk intervention running in the background. Kept in the `jobs` tree
/// (when it starts, every [`JOB_SAVE_EVERY`] orders and when it ends), so it
/// outlives a restart: one that a restart interrupted says `interrupted`,
/// with the orders it had not reached at its last save in `remaining` (up
/// to 99 of them may have been handled after that save; the results say
/// which were). It is not resumed: an intervention is not repeated behind
/// the operator's back. Deleted `[retention] keep_days` after it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub action: String,
    /// `running`, `finished` or `interrupted`.
    pub state: String,
    pub total: usize,
    pub done: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<JobResult>,
    #[serde(default)]
    pub started_ms: i64,
    #[serde(default)]
    pub ended_ms: Option<i64>,
    /// Orders not reached as of the last save (filled in saved copies;
    /// what an interrupted job had left).
    #[serde(default)]
    pub remaining: Vec<String>,
}

/// A running job is saved after this many orders.
const JOB_SAVE_EVERY: usize = 100;

async fn save_job(store: &crate::store::Store, job: &Job) {
    let op = crate::store::codec::encode(job).map(|value| crate::store::Op::Put {
        tree: crate::store::Tree::Jobs,
        key: job.id.as_bytes().to_vec(),
        value,
    });
    let r = match op {
        Ok(op) => store.commit(vec![op]).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = r {
        tracing::warn!(job = %job.id, error = %e, "Could not save a bulk job's progress");
    }
}

/// At start: jobs a restart interrupted say so.
pub fn interrupted_jobs(
    store: &crate::store::Store,
    now_ms: i64,
) -> Result<usize, crate::store::Error> {
    let mut n = 0;
    for kv in store.trees.jobs.iter() {
        let (k, v) = kv?;
        let mut job: Job = crate::store::codec::decode(&v)?;
        if job.state == "running" {
            job.state = "interrupted".into();
            job.ended_ms = Some(now_ms);
            store
                .trees
                .jobs
                .insert(k, crate::store::codec::encode(&job)?)?;
            n += 1;
        }
    }
    if n > 0 {
        store.trees.jobs.flush()?;
    }
    Ok(n)
}

/// Deletes the jobs that ended before `before_ms` (retention).
pub async fn prune_jobs(
    store: &crate::store::Store,
    before_ms: i64,
) -> Result<u64, crate::store::Error> {
    let mut ops = Vec::new();
    for kv in store.trees.jobs.iter() {
        let (k, v) = kv?;
        let job: Job = crate::store::codec::decode(&v)?;
        if job.ended_ms.is_some_and(|t| t < before_ms) {
            ops.push(crate::store::Op::Del {
                tree: crate::store::Tree::Jobs,
                key: k.to_vec(),
            });
        }
    }
    let n = ops.len() as u64;
    if n > 0 {
        store.commit(ops).await?;
    }
    Ok(n)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub order_id: String,
    pub ok: bool,
    pub message: String,
}

pub type Jobs = Arc<Mutex<HashMap<String, Job>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: String,
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub filter: Option<Filter>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// For `cancel`: the TikTok cancel reason (kind or official key).
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub workflow: Option<String>,
}

/// Why a sorted list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    #[error("the list matches more than {SORT_IN_MEMORY} orders: sort it by received, updated or ship_by, or narrow it (state, shop, SKU, dates, search) to sort by total or id")]
    TooMany,
    #[error("no order {0} to continue after (it may have been archived)")]
    Cursor(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

/// Why an intervention was not submitted; each variant chooses its HTTP
/// status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown action {0} (one of {all})", all = crate::runtime::interventions::ALL.join(", "))]
    UnknownAction(String),
    #[error("{action} needs \"{field}\"")]
    Missing {
        action: &'static str,
        field: &'static str,
    },
    #[error("no order {0}")]
    NoOrder(String),
    #[error(transparent)]
    Refused(#[from] crate::runtime::interventions::Error),
    /// TikTok would refuse the cancel reason for this order.
    #[error(transparent)]
    CancelReason(crate::tiktok::Error),
    /// TikTok could not be asked (to check a cancel reason).
    #[error(transparent)]
    Tiktok(crate::tiktok::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
    #[error(transparent)]
    Label(#[from] crate::shipping::Error),
    /// The blocking pool could not run a read.
    #[error("busy: {0}")]
    Busy(String),
}

impl Error {
    /// The JSON answer: `error`, and for an intervention the order refuses
    /// the `reason` alone and what it allows `instead` (a hold names
    /// `release`).
    pub fn body(&self) -> serde_json::Value {
        use crate::runtime::interventions::Error as I;
        let mut v = json!({ "error": self.to_string() });
        match self {
            Error::Refused(I::Refused {
                action,
                reason,
                instead,
                ..
            }) => {
                v["action"] = json!(action);
                v["reason"] = json!(reason);
                v["instead"] = json!(instead);
            }
            Error::Refused(I::BadArgument { action, reason, .. }) => {
                v["action"] = json!(action);
                v["reason"] = json!(reason);
            }
            _ => {}
        }
        v
    }

    pub fn status(&self) -> actix_web::http::StatusCode {
        use crate::runtime::interventions::Error as I;
        use actix_web::http::StatusCode;
        match self {
            Error::UnknownAction(_) | Error::NoOrder(_) => StatusCode::NOT_FOUND,
            Error::Missing { .. } | Error::Refused(I::BadArgument { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Error::Refused(I::Refused { .. }) | Error::CancelReason(_) => StatusCode::CONFLICT,
            // A full disk is the operator's to fix (507); a checkpoint that
            // cannot be read or written will not heal by asking again
            // (500); a busy or stopping runtime or TikTok will (503).
            Error::Store(e) | Error::Runtime(crate::runtime::Error::Store(e)) => match e {
                crate::store::Error::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Runtime(crate::runtime::Error::CheckpointUnreadable(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Tiktok(_) | Error::Runtime(_) | Error::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            // The old label could not be voided, or its record written.
            Error::Label(e) => match e.kind() {
                crate::actions::ErrorKind::Rejected | crate::actions::ErrorKind::Invalid => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }
}

/// What an intervention may carry besides its name.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionArgs {
    pub by: Option<String>,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// For `cancel`: TikTok's cancel reason, as a kind (`out_of_stock`, ...)
    /// or an official key (see `GET /api/v1/orders/{id}/cancel-reasons`).
    pub cancel_reason: Option<String>,
    /// For `run_from` and `move`: the step to run from.
    pub step: Option<String>,
    /// For `move`: `name@version`, or a name for the version in force.
    pub workflow: Option<String>,
    /// For `resume`, `run_from`, `release` and `move`: the label step buys
    /// a new label instead of reusing the order's (which is voided first).
    pub new_label: bool,
}

/// Builds the operator action an endpoint name stands for.
pub fn parse_action(name: &str, a: ActionArgs) -> Result<OperatorAction, Error> {
    let by = a.by.unwrap_or_else(|| "operator".into());
    let note = a.note.unwrap_or_default();
    let given = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    Ok(match name {
        "resume" | "retry" => OperatorAction::Resume,
        "skip" => OperatorAction::Skip,
        "approve" => OperatorAction::Approve { by, note },
        "reject" => OperatorAction::Reject { by, note },
        "hold" => OperatorAction::Hold {
            reason: a.reason.unwrap_or_else(|| "held by an operator".into()),
        },
        "release" => match given(a.step) {
            // Release into a chosen step: the same as running from it.
            Some(step) => OperatorAction::RunFrom { step },
            None => OperatorAction::Release,
        },
        "cancel" => {
            let reason = a
                .reason
                .unwrap_or_else(|| "cancelled by an operator".into());
            match given(a.cancel_reason) {
                Some(cancel_reason) => OperatorAction::SellerCancel {
                    reason,
                    cancel_reason,
                },
                None => OperatorAction::Cancel { reason },
            }
        }
        "approve_cancel_request" => OperatorAction::AnswerCancelRequest {
            approve: true,
            reason: None,
            by,
        },
        "reject_cancel_request" => OperatorAction::AnswerCancelRequest {
            approve: false,
            reason: given(a.reason),
            by,
        },
        "run_from" => OperatorAction::RunFrom {
            step: given(a.step).ok_or(Error::Missing {
                action: "run_from",
                field: "step",
            })?,
        },
        "move" => OperatorAction::Move {
            workflow: given(a.workflow).ok_or(Error::Missing {
                action: "move",
                field: "workflow",
            })?,
            step: given(a.step),
        },
        "note" => OperatorAction::Note {
            text: given(Some(note))
                .or_else(|| given(a.reason))
                .ok_or(Error::Missing {
                    action: "note",
                    field: "note",
                })?,
        },
        other => return Err(Error::UnknownAction(other.to_string())),
    })
}

/// What the intervention rules need to know about the order's world.
pub fn intervention_context<'a>(
    s: &'a AppState,
    rec: &OrderRecord,
    def: Option<&'a crate::workflow::Definition>,
    resolve: &'a dyn Fn(&str) -> Option<Arc<crate::workflow::Definition>>,
) -> Context<'a> {
    Context {
        def,
        in_force: s
            .registry
            .current()
            .definitions
            .iter()
            .map(|d| d.key())
            .collect(),
        tiktok: s
            .gateway
            .as_ref()
            .is_some_and(|g| g.knows_shop(&rec.shop_id)),
        resolve,
    }
}

/// Looks a workflow up as `move` names it: `name@version`, or a name for
/// the version in force.
pub fn resolve_workflow(
    registry: &crate::runtime::Registry,
    name: &str,
) -> Option<Arc<crate::workflow::Definition>> {
    if name.contains('@') {
        registry.get(name).ok()
    } else {
        registry.current().get(name).cloned()
    }
}

/// Checks and submits one intervention for one order, by `by`.
pub async fn intervene(
    s: &AppState,
    order_id: &str,
    action: OperatorAction,
    by: &str,
) -> Result<(), Error> {
    intervene_with(s, order_id, action, false, by).await
}

/// [`intervene`], and with `new_label` the order's label is marked to be
/// replaced (voided first) when its label step runs again; only for an
/// intervention that runs steps, and only once it is allowed.
pub async fn intervene_with(
    s: &AppState,
    order_id: &str,
    action: OperatorAction,
    new_label: bool,
    by: &str,
) -> Result<(), Error> {
    let rec = s
        .store
        .load_order(order_id)?
        .ok_or_else(|| Error::NoOrder(order_id.to_string()))?;
    let def = rec.workflow.as_deref().and_then(|k| s.registry.get(k).ok());
    let resolve = |n: &str| resolve_workflow(&s.registry, n);
    let cx = intervention_context(s, &rec, def.as_deref(), &resolve);
    interventions::check(&rec, &cx, &action)?;
    if new_label {
        let runs = matches!(
            action,
            OperatorAction::Resume
                | OperatorAction::RunFrom { .. }
                | OperatorAction::Release
                | OperatorAction::Move { .. }
        );
        let book = s.labels.as_ref().filter(|_| runs).ok_or(Error::Missing {
            action: "new_label",
            field: "an intervention that runs steps (resume, run_from, release, move)",
        })?;
        book.request_renewal(order_id).await?;
    }
    // A TikTok reason is checked for the shop's market and the order's
    // status before anything is cancelled here: a reason TikTok would
    // refuse must not leave the order cancelled here and live there.
    if let (OperatorAction::SellerCancel { cancel_reason, .. }, Some(order), Some(gateway)) = (
        &action,
        &rec.order,
        s.gateway.as_ref().filter(|g| g.knows_shop(&rec.shop_id)),
    ) {
        gateway
            .cancel_key(order, cancel_reason)
            .await
            .map_err(|e| match e {
                crate::tiktok::Error::CancelReason { .. } => Error::CancelReason(e),
                other => Error::Tiktok(other),
            })?;
    }
    let ev = OrderEvent {
        id: format!("op-{order_id}-{}", s.store.next_id().unwrap_or_default()),
        order_id: order_id.to_string(),
        shop_id: rec.shop_id.clone(),
        source: Source::Operator,
        received_ms: s.runtime.shared.clock.now_ms(),
        kind: EventKind::OperatorBy {
            by: by.to_string(),
            action,
        },
    };
    s.intake.submit(ev).await?;
    Ok(())
}

async fn start_bulk(
    s: web::Data<AppState>,
    http: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let req: BulkRequest = match super::json_body(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed body: {e}")),
    };
    let by = super::auth::principal(&http).actor(req.by.as_deref());
    let args = ActionArgs {
        by: Some(by.clone()),
        note: None,
        reason: req.reason.clone(),
        cancel_reason: req.cancel_reason.clone(),
        step: req.step.clone(),
        workflow: req.workflow.clone(),
        new_label: false,
    };
    let action = match parse_action(&req.action, args) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let now = s.runtime.shared.clock.now_ms();
    let ids: Vec<String> = match (&req.ids, &req.filter) {
        (Some(ids), None) => ids.clone(),
        (None, Some(f)) => {
            let (store, f, margin) = (s.store.clone(), f.clone(), s.at_risk_margin_s);
            match web::block(move || f.select(&store, now, margin, None, usize::MAX)).await {
                Ok(Ok((orders, _))) => orders.into_iter().map(|r| r.order_id).collect(),
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
        }
        _ => return error(StatusCode::BAD_REQUEST, "give exactly one of ids or filter"),
    };
    let id = format!("job-{}", s.store.next_id().unwrap_or_default());
    let job = Job {
        id: id.clone(),
        action: req.action.clone(),
        state: "running".into(),
        total: ids.len(),
        done: 0,
        succeeded: 0,
        failed: 0,
        results: Vec::new(),
        started_ms: now,
        ended_ms: None,
        remaining: ids.clone(),
    };
    save_job(&s.store, &job).await;
    // In memory the job carries no `remaining`: only its saved copies do.
    s.jobs.lock().insert(
        id.clone(),
        Job {
            remaining: Vec::new(),
            ..job
        },
    );
    let state = s.get_ref().clone();
    let job_id = id.clone();
    actix::spawn(async move {
        for (i, order_id) in ids.iter().enumerate() {
            let order_id = order_id.clone();
            let r = intervene(&state, &order_id, action.clone(), &by).await;
            let save = {
                let mut jobs = state.jobs.lock();
                if let Some(j) = jobs.get_mut(&job_id) {
                    j.done += 1;
                    match r {
                        Ok(()) => {
                            j.succeeded += 1;
                            j.results.push(JobResult {
                                order_id,
                                ok: true,
                                message: "accepted".into(),
                            });
                        }
                        Err(e) => {
                            j.failed += 1;
                            j.results.push(JobResult {
                                order_id,
                                ok: false,
                                message: e.to_string(),
                            });
                        }
                    }
                }
                // Saved after the update, with what is not reached yet.
                jobs.get(&job_id)
                    .filter(|j| j.done % JOB_SAVE_EVERY == 0)
                    .map(|j| Job {
                        remaining: ids[i + 1..].to_vec(),
                        ..j.clone()
                    })
            };
            if let Some(j) = save {
                save_job(&state.store, &j).await;
            }
        }
        let now = state.runtime.shared.clock.now_ms();
        let done = state.jobs.lock().get(&job_id).cloned().map(|mut j| {
            j.state = "finished".into();
            j.ended_ms = Some(now);
            j
        });
        if let Some(j) = done {
            // Finished: saved, then read from the store from now on.
            save_job(&state.store, &j).await;
            state.jobs.lock().remove(&job_id);
        }
    });
    HttpResponse::Accepted().json(json!({ "job": id }))
}

async fn get_bulk(s: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    if let Some(j) = s.jobs.lock().get(path.as_str()) {
        return HttpResponse::Ok().json(j);
    }
    let stored = s
        .store
        .trees
        .jobs
        .get(path.as_bytes())
        .map_err(crate::store::Error::from)
        .and_then(|v| {
            v.map(|v| crate::store::codec::decode::<Job>(&v).map_err(Into::into))
                .transpose()
        });
    match stored {
        Ok(Some(j)) => HttpResponse::Ok().json(j),
        Err(e) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ),
        Ok(None) => error(
            actix_web::http::StatusCode::NOT_FOUND,
            format!("no job {}", path.as_str()),
        ),
    }
}

async fn stats(s: web::Data<AppState>) -> HttpResponse {
    let (store, now, margin) = (
        s.store.clone(),
        s.runtime.shared.clock.now_ms(),
        s.at_risk_margin_s,
    );
    let admission = s.intake.admission().clone();
    // Counters only, but off the HTTP workers all the same.
    match web::block(move || {
        let mut sum = report::summarize(&store, now, margin);
        count_waiting(&store, &admission, now, margin, &mut sum);
        sum
    })
    .await
    {
        Ok(sum) => HttpResponse::Ok().json(stats_json(&s, sum)),
        Err(e) => error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        ),
    }
}

/// Orders the overview lists of each kind (the counts say how many there
/// are in all).
const OVERVIEW_ROWS: usize = 50;
/// The last overview computed, with the checkpoint generation it saw
/// (`actors::Shared::generation`) and when; one computation at a time.
#[derive(Default)]
pub struct OverviewCache {
    last: Mutex<Option<(u64, std::time::Instant, Arc<String>)>>,
    flight: tokio::sync::Mutex<()>,
}

/// Times left move on without any checkpoint: an overview is never older.
const OVERVIEW_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);
/// Any overview this young serves a caller that asks for no particular
/// change (API clients, a page opening), however busy the store.
const OVERVIEW_ANY_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl OverviewCache {
    fn fresh(&self, generation: u64, min: Option<u64>) -> Option<Arc<String>> {
        let last = self.last.lock();
        let (seen, at, v) = last.as_ref()?;
        let age = at.elapsed();
        let ok = match min {
            Some(m) => *seen >= m && age < OVERVIEW_MAX_AGE,
            None => (*seen == generation && age < OVERVIEW_MAX_AGE) || age < OVERVIEW_ANY_AGE,
        };
        ok.then(|| v.clone())
    }
}

/// The console's overview in one answer: the stats, the most urgent orders
/// at risk (ship-by index, soonest first) and exceptions, at most
/// [`OVERVIEW_ROWS`] each, from the indexes and counters, the reads off the
/// HTTP workers. One computation at a time serves every caller: API
/// clients and opening pages take any overview under a second old (or
/// the latest, if no checkpoint changed since); a live stream that saw
/// checkpoint generation `min` takes one computed at or after it.
pub async fn overview(s: &web::Data<AppState>, min: Option<u64>) -> Result<Arc<String>, Error> {
    let current = || {
        s.runtime
            .shared
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    };
    if let Some(v) = s.overview.fresh(current(), min) {
        return Ok(v);
    }
    let _one = s.overview.flight.lock().await;
    let generation = current();
    if let Some(v) = s.overview.fresh(generation, min) {
        return Ok(v);
    }
    let now = s.runtime.shared.clock.now_ms();
    let (store, margin) = (s.store.clone(), s.at_risk_margin_s);
    let admission = s.intake.admission().clone();
    let (sum, risky, excs) = web::block(move || {
        let mut sum = report::summarize(&store, now, margin);
        count_waiting(&store, &admission, now, margin, &mut sum);
        // Soonest ship-by first, straight from the ship-by index.
        let at_risk = Filter {
            at_risk: Some(true),
            ..Default::default()
        };
        let mut risky = Vec::new();
        for found in index::ship_by_before(&store.trees.orders, now / 1000 + margin) {
            let (_, id) = found?;
            match store.load_order(&id)? {
                Some(r) if at_risk.matches(&r, now, margin) => risky.push(r),
                _ => continue,
            }
            if risky.len() == OVERVIEW_ROWS {
                break;
            }
        }
        let excs = Filter {
            state: Some("exception".into()),
            ..Default::default()
        }
        .select(&store, now, margin, None, OVERVIEW_ROWS)?
        .0;
        Ok::<_, crate::store::Error>((sum, risky, excs))
    })
    .await
    .map_err(|e| Error::Busy(e.to_string()))??;
    let v = json!({
        "stats": stats_json(s, sum),
        "at_risk": risky.iter().map(|r| row(s, r, now)).collect::<Vec<_>>(),
        "exceptions": excs.iter().map(|r| row(s, r, now)).collect::<Vec<_>>(),
        "at_ms": now,
    });
    let text = Arc::new(v.to_string());
    *s.overview.last.lock() = Some((generation, std::time::Instant::now(), text.clone()));
    Ok(text)
}

/// `GET /api/v1/overview`.
async fn get_overview(s: web::Data<AppState>) -> HttpResponse {
    match overview(&s, None).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/json")
            .body(text.as_str().to_owned()),
        Err(e) => error(e.status(), e.to_string()),
    }
}

/// Orders acknowledged but still waiting to start (a backlog) count as
/// TikTok counts them: one with no checkpoint yet (or one that knows no
/// ship-by) by the ship-by its waiting snapshots name; one whose
/// checkpoint counts it at risk while a waiting event says TikTok shipped
/// or cancelled it, no more. Costs the orders waiting (a sled read for
/// each one due or settled), never the store's history.
fn count_waiting(
    store: &crate::store::Store,
    admission: &crate::runtime::admission::Admission,
    now: i64,
    margin_s: i64,
    sum: &mut report::Summary,
) {
    let counted = |id: &str| match store.load_order(id) {
        Ok(Some(r)) => {
            !(report::unshipped(&r)
                && r.order
                    .as_ref()
                    .and_then(|o| o.deadlines.ship_by())
                    .is_none())
        }
        Ok(None) => false,
        Err(_) => true,
    };
    let (at_risk, late) = admission.due_before(now, now + margin_s * 1000, counted);
    sum.at_risk += at_risk;
    sum.late += late;
    for id in admission.settled() {
        if let Ok(Some(r)) = store.load_order(&id) {
            if report::is_at_risk(&r, now, margin_s) {
                sum.at_risk = sum.at_risk.saturating_sub(1);
                if report::time_left_s(&r, now).is_some_and(|left| left < 0) {
                    sum.late = sum.late.saturating_sub(1);
                }
            }
        }
    }
}

fn stats_json(s: &AppState, mut sum: report::Summary) -> serde_json::Value {
    sum.fulfillment_target_s = Some(s.sla.fulfilment_target.as_secs_f64());
    let mut v = serde_json::to_value(&sum).unwrap_or_default();
    // The top SKUs' names and images, from the catalogue.
    if let Some(cat) = &s.catalogue {
        let names: serde_json::Map<String, serde_json::Value> = sum
            .top_skus
            .iter()
            .filter_map(|(sku, _)| {
                let info = cat.sku(sku)?;
                Some((
                    sku.clone(),
                    json!({"name": info.name(), "image_url": info.image_url}),
                ))
            })
            .collect();
        v["top_sku_names"] = serde_json::Value::Object(names);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_carry_booleans_and_numbers() {
        let q = web::Query::<ListQuery>::from_query(
            "at_risk=true&created_from=1764000000000&limit=5&state=exception",
        )
        .unwrap();
        assert_eq!(q.filter.at_risk, Some(true));
        assert_eq!(q.filter.created_from, Some(1_764_000_000_000));
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.filter.state.as_deref(), Some("exception"));
        assert!(web::Query::<ListQuery>::from_query("at_risk=perhaps").is_err());
        let f: Filter = serde_json::from_str(r#"{"at_risk": false, "updated_to": 5}"#).unwrap();
        assert_eq!((f.at_risk, f.updated_to), (Some(false), Some(5)));
    }
}
