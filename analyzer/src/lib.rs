//! The jvmapm analyzer: receives OTLP from the jvmapm agent or any OpenTelemetry
//! SDK, turns transactions into XLog points, keeps them (and JVM metrics and
//! events) durably in a data directory, meters them, and answers queries.
//!
//! The folders follow the data, one way:
//!
//! - `receiver` (OTLP over gRPC and HTTP) hands each export to
//! - `ingest` (XLog points, span details, JVM events and metric samples,
//!   built from the bytes without I/O), whose batches go to
//! - `store` (the writer thread's durable group commit into hourly segment
//!   files, the string table, the instance registry), which after each
//!   commit feeds `meter` (live TPS and HDR histograms);
//! - or, with `--clickhouse`, `clickhouse` (the same batches inserted in
//!   groups into ClickHouse tables, which many analyzers share);
//! - `query` reads all of it back for the HTTP query API (`query::api`),
//!   `jvmapm export` and the viewer's offline source.
//!
//! `server` wires them together for `jvmapm serve`; `point` (the fixed-size
//! XLog record), `glob` and `printable` are shared by all stages.

pub mod clickhouse;
pub mod glob;
mod http_listener;
pub mod ingest;
pub mod meter;
pub mod point;
pub mod printable;
pub mod query;
pub mod receiver;
pub mod server;
pub mod store;

/// Locks a mutex the server's tasks share, also after a task panicked while
/// holding it: what it guards (meters, the instance registry, metric
/// baselines) stays usable, so one failed request cannot disable the
/// server for good.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
