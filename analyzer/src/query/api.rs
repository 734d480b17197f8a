//! The query API, JSON over HTTP under `/api/v1/`: XLog points with a cursor for
//! the live tail, per-endpoint statistics, TPS, instances, JVM series and
//! events, one transaction in full, the merged profile of an area of the
//! XLog, one distributed trace, and the service map with the calls of each
//! edge. Bad parameters get a 400 that names the parameter and what it
//! accepts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jvmapm_contract::clock::unix_ms;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::glob::MAX_PATTERN_CHARS;
use crate::meter::Meter;
use crate::point::{Point, SpanId, TraceId};
use crate::query::answers::{
    ApiFailure, AreaProfile, EdgeCalls, InstanceList, PointRow, ServiceMap, Stats, Tps, TpsSecond,
    Trace, Transaction, XlogPage,
};
use crate::query::profile::{self, Area};
use crate::query::reply::{ReplyBudget, REPLY_BUDGET_MB};
use crate::query::source::Points;
use crate::query::{self, Cancel};
use crate::query::{jvm::JvmView, service_map, trace, transaction};
use crate::store::instances::Instances;

/// Default and largest page of `/api/v1/xlog`.
const DEFAULT_LIMIT: usize = 10_000;
const MAX_LIMIT: usize = 100_000;
/// Window used when `from` is not given.
const DEFAULT_WINDOW_MS: u64 = 5 * 60_000;

/// Store reads (xlog pages, statistics from the store, JVM series,
/// transactions) that run at once; each holds at most one page of points
/// and its answer (about 45 MB for 100 000), so queries in flight stay
/// within about 256 MB with the answers being sent (see `reply`), however
/// many clients ask.
pub const SCANS_AT_ONCE: usize = 2;
/// Bytes of JSON a point row takes, at most in practice (about 290).
const ROW_BYTES: usize = 320;
/// How long a query waits for its turn before it is answered 503.
const SCAN_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Points>,
    pub meter: Arc<Mutex<Meter>>,
    pub instances: Arc<Instances>,
    /// Turns for store reads (see [`SCANS_AT_ONCE`]).
    pub scans: Arc<Semaphore>,
    /// Room for large answers being sent.
    replies: ReplyBudget,
}

impl ApiState {
    pub fn new(
        store: Arc<dyn Points>,
        meter: Arc<Mutex<Meter>>,
        instances: Arc<Instances>,
    ) -> Self {
        ApiState {
            store,
            meter,
            instances,
            scans: Arc::new(Semaphore::new(SCANS_AT_ONCE)),
            replies: ReplyBudget::default(),
        }
    }
}

pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/xlog", get(xlog))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/tps", get(tps))
        .route("/api/v1/instances", get(instances))
        .route("/api/v1/jvm", get(jvm))
        .route(
            "/api/v1/transactions/{trace_id}/{span_id}",
            get(transaction),
        )
        .route("/api/v1/profile", get(area_profile))
        .route("/api/v1/traces/{trace_id}", get(distributed_trace))
        .route("/api/v1/servicemap", get(servicemap))
        .route("/api/v1/servicemap/calls", get(servicemap_calls))
        .with_state(state)
}

/// An API error: a status and why, sent as an [`ApiFailure`].
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(ApiFailure { error: self.1 })).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the store: {e}"),
        )
    }
}

type Params = Query<HashMap<String, String>>;

fn bad(name: &str, value: &str, accepted: &str) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("invalid {name}={value:?}: {accepted}"),
    )
}

fn number(p: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad(name, v, "expected a non-negative integer"))
        })
        .transpose()
}

fn flag(p: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match p.get(name).map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(bad(name, v, "expected true or false")),
    }
}

/// `from` and `to` in Unix milliseconds; `to` defaults to no upper bound,
/// `from` to 5 minutes before `to` (or now), and `to` may not come before
/// `from`.
fn range(p: &HashMap<String, String>, now: u64) -> Result<(u64, u64), ApiError> {
    let to = number(p, "to")?.unwrap_or(u64::MAX / 2);
    let from = number(p, "from")?.unwrap_or(to.min(now).saturating_sub(DEFAULT_WINDOW_MS));
    if from > to {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid range: from={from} is after to={to}"),
        ));
    }
    Ok((from, to))
}

/// A turn to read the store (see [`SCANS_AT_ONCE`]), or a 503 after
/// waiting for one a few seconds.
async fn scan_turn(scans: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    tokio::time::timeout(SCAN_WAIT, scans.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{SCANS_AT_ONCE} queries are reading the store; try again shortly"),
            )
        })
}

/// Runs a blocking store read off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A glob parameter, at most [`MAX_PATTERN_CHARS`] long.
fn glob(p: &HashMap<String, String>, name: &str) -> Result<Option<String>, ApiError> {
    match p.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > MAX_PATTERN_CHARS => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid {name}: a pattern of {} characters; at most {MAX_PATTERN_CHARS}",
                v.chars().count()
            ),
        )),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// The area of the XLog `/api/v1/xlog` and `/api/v1/profile` read: `from`
/// and `to` (see [`range`]), `service` and `endpoint` globs, `min_ms` and
/// `max_ms`, `errors`.
fn area(p: &HashMap<String, String>, now: u64) -> Result<Area, ApiError> {
    let (from_ms, to_ms) = range(p, now)?;
    Ok(Area {
        from_ms,
        to_ms,
        service: glob(p, "service")?,
        endpoint: glob(p, "endpoint")?,
        min_ms: number(p, "min_ms")?,
        max_ms: number(p, "max_ms")?,
        errors: flag(p, "errors")?,
    })
}

/// The `limit` parameter: `default` when absent, at most `max`.
fn limit(p: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match number(p, "limit")? {
        None => Ok(default),
        Some(l @ 1..) => Ok((l as usize).min(max)),
        Some(l) => Err(bad(
            "limit",
            &l.to_string(),
            &format!("expected 1 to {max}"),
        )),
    }
}

async fn xlog(State(s): State<ApiState>, Query(p): Params) -> Result<Response, ApiError> {
    let filter = area(&p, unix_ms())?.filter();
    // The scan stops when this request is dropped (its client went away).
    let _cancel_on_drop = filter.cancel.on_drop();
    let after = match p.get("after").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse()
            .map_err(|_| bad("after", v, "pass back the cursor of the previous answer"))?,
        None => 0,
    };
    if after > s.store.newest_seq() {
        return Err(bad(
            "after",
            &after.to_string(),
            "a cursor this server did not give (it is ahead of every point stored)",
        ));
    }
    let limit = limit(&p, DEFAULT_LIMIT, MAX_LIMIT)?;
    // The turn lasts until the answer has room to be sent: an answer made
    // but not yet counted in the budget is one of at most SCANS_AT_ONCE.
    let turn = scan_turn(&s.scans).await?;
    let replies = s.replies.clone();
    let json = blocking(move || {
        let page = query::page(&*s.store, &filter, after, limit)?;
        let page = XlogPage {
            points: Rows {
                points: page.points,
                store: s.store,
            },
            cursor: page.cursor,
        };
        // Sized for the answer up front: growing by doubling would hold
        // twice its size at the end.
        let mut json = Vec::with_capacity(64 + page.points.points.len() * ROW_BYTES);
        serde_json::to_writer(&mut json, &page).expect("points serialize");
        Ok(json)
    })
    .await?;
    let reply = replies.json(json).await.ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("answers of {REPLY_BUDGET_MB} MB are being sent; try again shortly"),
        )
    });
    drop(turn);
    reply
}

/// The points of an `/api/v1/xlog` page, each made a [`PointRow`] only as
/// it is serialized (a JSON value tree of 100 000 points took ten times the
/// memory of the points).
struct Rows {
    points: Vec<Point>,
    store: Arc<dyn Points>,
}

impl Serialize for Rows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.points.iter().map(|p| PointRow::new(p, &*self.store)))
    }
}

async fn stats(State(s): State<ApiState>, Query(p): Params) -> Result<Json<Stats>, ApiError> {
    let now = unix_ms();
    if number(&p, "from")?.is_none() && number(&p, "to")?.is_none() && s.store.metered_here() {
        let meter = crate::lock(&s.meter);
        return Ok(Json(Stats {
            endpoints: meter.since_start().finish(s.store.strings()),
            since_ms: Some(meter.started_ms()),
            ..Stats::default()
        }));
    }
    if number(&p, "from")?.is_none() && number(&p, "to")?.is_none() {
        // What every analyzer stored since this one started.
        let since = crate::lock(&s.meter).started_ms();
        let cancel = Cancel::default();
        let _cancel_on_drop = cancel.on_drop();
        let _turn = scan_turn(&s.scans).await?;
        return blocking(move || {
            let acc = s.store.accumulate((0, u64::MAX / 2), since, &cancel)?;
            Ok(Json(Stats {
                endpoints: acc.finish(s.store.strings()),
                since_ms: Some(since),
                ..Stats::default()
            }))
        })
        .await;
    }
    let (from_ms, to_ms) = range(&p, now)?;
    let cancel = Cancel::default();
    let _cancel_on_drop = cancel.on_drop();
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || {
        Ok(Json(Stats {
            endpoints: query::stats(&*s.store, &s.meter, from_ms, to_ms, now, &cancel)?,
            from_ms: Some(from_ms),
            to_ms: Some(to_ms.min(now)),
            ..Stats::default()
        }))
    })
    .await
}

async fn tps(State(s): State<ApiState>, Query(p): Params) -> Result<Json<Tps>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let store = s.store.clone();
    let counted = blocking(move || Ok(store.tps(from_ms, to_ms)?)).await?;
    let seconds = counted.unwrap_or_else(|| crate::lock(&s.meter).tps(from_ms, to_ms));
    let seconds = seconds
        .iter()
        .map(|(sec, c)| TpsSecond {
            start_ms: sec * 1000,
            count: c.count,
            errors: c.errors,
        })
        .collect();
    Ok(Json(Tps { seconds }))
}

async fn instances(State(s): State<ApiState>) -> Result<Json<InstanceList>, ApiError> {
    blocking(move || {
        Ok(Json(InstanceList {
            instances: s.store.instances(&s.instances)?,
        }))
    })
    .await
}

async fn jvm(State(s): State<ApiState>, Query(p): Params) -> Result<Json<JvmView>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let instance = p
        .get("instance")
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "instance is required (see /api/v1/instances)".into(),
            )
        })?;
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || Ok(Json(s.store.jvm(&instance, from_ms, to_ms)?))).await
}

async fn transaction(
    State(s): State<ApiState>,
    Path((trace, span)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Json<Transaction>, ApiError> {
    let trace_id =
        (trace.parse::<TraceId>()).map_err(|e| bad("trace id", &trace, &e.to_string()))?;
    let span_id = (span.parse::<SpanId>()).map_err(|e| bad("span id", &span, &e.to_string()))?;
    let near = number(&p, "end_ms")?;
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || {
        transaction::find(&*s.store, trace_id, span_id, near)?
            .map(Json)
            .ok_or_else(|| {
                ApiError(
                    StatusCode::NOT_FOUND,
                    format!("no transaction {trace}/{span}"),
                )
            })
    })
    .await
}

/// The merged profile of the transactions in an area of the XLog, reading
/// the spans of at most `limit` of them.
async fn area_profile(
    State(s): State<ApiState>,
    Query(p): Params,
) -> Result<Json<AreaProfile>, ApiError> {
    let filter = area(&p, unix_ms())?.filter();
    let _cancel_on_drop = filter.cancel.on_drop();
    let limit = limit(&p, profile::DEFAULT_LIMIT, profile::MAX_LIMIT)?;
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || Ok(Json(profile::area(&*s.store, &filter, limit)?))).await
}

/// One distributed trace: the transactions ending within `within` ms
/// (default 15 minutes, at most 6 hours) of `around` (default now) that
/// share its id, and the spans inside them, as a tree.
async fn distributed_trace(
    State(s): State<ApiState>,
    Path(trace): Path<String>,
    Query(p): Params,
) -> Result<Json<Trace>, ApiError> {
    let trace_id =
        (trace.parse::<TraceId>()).map_err(|e| bad("trace id", &trace, &e.to_string()))?;
    let around = number(&p, "around")?.unwrap_or_else(unix_ms);
    let within = match number(&p, "within")? {
        None => trace::DEFAULT_WITHIN_MS,
        Some(ms) if ms <= trace::MAX_WITHIN_MS => ms,
        Some(ms) => {
            let most = format!("at most {} (6 hours)", trace::MAX_WITHIN_MS);
            return Err(bad("within", &ms.to_string(), &most));
        }
    };
    let cancel = Cancel::default();
    let _cancel_on_drop = cancel.on_drop();
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || {
        Ok(Json(trace::find(
            &*s.store, trace_id, around, within, &cancel,
        )?))
    })
    .await
}

/// The calls between services made by the transactions of a range.
async fn servicemap(
    State(s): State<ApiState>,
    Query(p): Params,
) -> Result<Json<ServiceMap>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let cancel = Cancel::default();
    let _cancel_on_drop = cancel.on_drop();
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || {
        Ok(Json(service_map::edges(
            &*s.store, from_ms, to_ms, &cancel,
        )?))
    })
    .await
}

/// The transactions of a range that made the calls of one edge of the
/// service map (`caller` and `callee` as the map names them).
async fn servicemap_calls(
    State(s): State<ApiState>,
    Query(p): Params,
) -> Result<Json<EdgeCalls>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let name = |key: &str| {
        p.get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{key} is required (an edge of /api/v1/servicemap)"),
                )
            })
    };
    let (caller, callee) = (name("caller")?, name("callee")?);
    let limit = limit(&p, service_map::DEFAULT_LIMIT, service_map::MAX_LIMIT)?;
    let cancel = Cancel::default();
    let _cancel_on_drop = cancel.on_drop();
    let _turn = scan_turn(&s.scans).await?;
    blocking(move || {
        let calls =
            service_map::edge_points(&*s.store, from_ms, to_ms, &caller, &callee, limit, &cancel)?;
        Ok(Json(calls))
    })
    .await
}
