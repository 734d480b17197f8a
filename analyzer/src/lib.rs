//! The jvmapm analyzer: receives OTLP from the jvmapm agent or any OpenTelemetry
//! SDK, turns transactions into XLog points, keeps them (and JVM metrics and
//! events) durably in a data directory, meters them, and answers queries.
//!
//! Data flow: `receiver` (gRPC, HTTP) → `xlog` / `jvm_metrics` (build) →
//! `store::writer` (durable group commit) → `meter` (live statistics);
//! `api` and `export` read back through `query`, `transaction` and `jvm_query`.

pub mod api;
pub mod duration;
pub mod export;
pub mod glob;
mod http_listener;
pub mod instances;
pub mod jvm_metrics;
pub mod jvm_query;
pub mod meter;
mod otlp_values;
pub mod point;
pub mod printable;
pub mod query;
pub mod receiver;
mod reply;
pub mod server;
mod span_reader;
pub mod store;
pub mod transaction;
pub mod wire;
pub mod xlog;

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Locks a mutex the server's tasks share, also after a task panicked while
/// holding it: what it guards (meters, the instance registry, metric
/// baselines) stays usable, so one failed request cannot disable the
/// server for good.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
