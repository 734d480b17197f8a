//! The query API, JSON over HTTP under `/api/v1/`: XLog points with a cursor for
//! the live tail, per-endpoint statistics, TPS, instances, JVM series and
//! events, and one transaction in full. Bad parameters get a 400 that names the
//! parameter and what it accepts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::glob::{Glob, MAX_PATTERN_CHARS};
use crate::instances::Instances;
use crate::meter::Meter;
use crate::point::parse_hex;
use crate::query::{self, Cancel, PointRow, XlogFilter};
use crate::store::Store;
use crate::{jvm_query, transaction, unix_ms};

/// Default and largest page of `/api/v1/xlog`.
const DEFAULT_LIMIT: usize = 10_000;
const MAX_LIMIT: usize = 100_000;
/// Window used when `from` is not given.
const DEFAULT_WINDOW_MS: u64 = 5 * 60_000;

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub meter: Arc<Mutex<Meter>>,
    pub instances: Arc<Instances>,
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
        .with_state(state)
}

/// An API error: a status and a message in `{"error": ...}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
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

/// Runs blocking store reads off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// A glob parameter, at most [`MAX_PATTERN_CHARS`] long.
fn glob(p: &HashMap<String, String>, name: &str) -> Result<Option<Glob>, ApiError> {
    match p.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.chars().count() > MAX_PATTERN_CHARS => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid {name}: a pattern of {} characters; at most {MAX_PATTERN_CHARS}",
                v.chars().count()
            ),
        )),
        Some(v) => Ok(Some(Glob::new(v))),
    }
}

async fn xlog(State(s): State<ApiState>, Query(p): Params) -> Result<Json<Value>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let ms_to_us = |v: Option<u64>| v.map(|ms| ms.saturating_mul(1000));
    let filter = XlogFilter {
        from_ms,
        to_ms,
        service: glob(&p, "service")?,
        endpoint: glob(&p, "endpoint")?,
        errors_only: flag(&p, "errors")?,
        min_us: ms_to_us(number(&p, "min_ms")?),
        max_us: ms_to_us(number(&p, "max_ms")?),
        cancel: Cancel::default(),
    };
    // The scan stops when this request is dropped (its client went away).
    let _cancel_on_drop = filter.cancel.on_drop();
    let after = match p.get("after").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse()
            .map_err(|_| bad("after", v, "pass back the cursor of the previous answer"))?,
        None => 0,
    };
    let limit = number(&p, "limit")?.map_or(DEFAULT_LIMIT, |l| (l as usize).clamp(1, MAX_LIMIT));
    blocking(move || {
        let page = query::page(&s.store, &filter, after, limit)?;
        let points: Vec<PointRow> = page
            .points
            .iter()
            .map(|pt| PointRow::new(pt, &s.store))
            .collect();
        Ok(Json(
            json!({ "points": points, "cursor": page.cursor.to_string() }),
        ))
    })
    .await
}

async fn stats(State(s): State<ApiState>, Query(p): Params) -> Result<Json<Value>, ApiError> {
    let now = unix_ms();
    if number(&p, "from")?.is_none() && number(&p, "to")?.is_none() {
        let meter = crate::lock(&s.meter);
        let rows = meter.since_start().finish(&s.store.strings);
        return Ok(Json(
            json!({ "since_ms": meter.started_ms(), "endpoints": rows }),
        ));
    }
    let (from_ms, to_ms) = range(&p, now)?;
    let cancel = Cancel::default();
    let _cancel_on_drop = cancel.on_drop();
    blocking(move || {
        let rows = query::stats(&s.store, &s.meter, from_ms, to_ms, now, &cancel)?;
        Ok(Json(
            json!({ "from_ms": from_ms, "to_ms": to_ms.min(now), "endpoints": rows }),
        ))
    })
    .await
}

async fn tps(State(s): State<ApiState>, Query(p): Params) -> Result<Json<Value>, ApiError> {
    let (from_ms, to_ms) = range(&p, unix_ms())?;
    let seconds = crate::lock(&s.meter).tps(from_ms, to_ms);
    let rows: Vec<[u64; 3]> = seconds
        .iter()
        .map(|(sec, c)| [sec * 1000, c.count, c.errors])
        .collect();
    Ok(Json(json!({ "seconds": rows })))
}

async fn instances(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({ "instances": s.instances.list() }))
}

async fn jvm(
    State(s): State<ApiState>,
    Query(p): Params,
) -> Result<Json<jvm_query::JvmView>, ApiError> {
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
    blocking(move || Ok(Json(jvm_query::read(&s.store, &instance, from_ms, to_ms)?))).await
}

async fn transaction(
    State(s): State<ApiState>,
    Path((trace, span)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Json<Value>, ApiError> {
    let trace_id =
        parse_hex::<16>(&trace).ok_or_else(|| bad("trace id", &trace, "expected 32 hex digits"))?;
    let span_id =
        parse_hex::<8>(&span).ok_or_else(|| bad("span id", &span, "expected 16 hex digits"))?;
    let near = number(&p, "end_ms")?;
    blocking(move || {
        transaction::find(&s.store, &trace_id, &span_id, near)?
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
