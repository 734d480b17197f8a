//! Where the viewer's data comes from: a running `jvmapm serve` over its
//! query API ([`live`]), or a data directory read in place ([`offline`]).
//! Both give the query API's answers as the analyzer's types
//! (`jvmapm_analyzer::query::answers`), so the rest of the viewer does not
//! care which it has, and both fail with a [`SourceError`] that tells the
//! operator what failed. [`printable`] makes what they read safe to draw.

pub mod live;
pub mod offline;
pub mod printable;

use std::fmt;
use std::path::PathBuf;

use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::{
    AreaProfile, EdgeCalls, InstanceList, ServiceMap, Stats, Trace, Transaction, XlogPage,
};
use jvmapm_analyzer::query::jvm::JvmView;
use jvmapm_analyzer::query::profile::Area;
use jvmapm_analyzer::store::StoreError;

pub use live::Live;
pub use offline::Offline;
pub use printable::Printable;

/// Points asked for in one page.
pub const PAGE: usize = 100_000;

/// What the viewer reads.
pub trait Source: Send {
    /// Where from, for the status line.
    fn describe(&self) -> String;
    /// Points ending in `[from_ms, to_ms]` stored after the cursor `after`
    /// (0: from the first).
    fn xlog(&mut self, from_ms: u64, to_ms: u64, after: u64) -> Result<XlogPage, SourceError>;
    fn stats(&mut self, from_ms: u64, to_ms: u64) -> Result<Stats, SourceError>;
    fn instances(&mut self) -> Result<InstanceList, SourceError>;
    fn jvm(&mut self, instance: &str, from_ms: u64, to_ms: u64) -> Result<JvmView, SourceError>;
    fn transaction(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        end_ms: u64,
    ) -> Result<Transaction, SourceError>;
    /// The merged profile of the transactions in `area`, reading the spans
    /// of at most `limit` of them.
    fn profile(&mut self, area: &Area, limit: usize) -> Result<AreaProfile, SourceError>;
    /// The distributed trace `trace_id`, its transactions looked for around
    /// `around_ms` (the end of one of them).
    fn trace(&mut self, trace_id: TraceId, around_ms: u64) -> Result<Trace, SourceError>;
    /// The calls between services made by the transactions ending in
    /// `[from_ms, to_ms]`.
    fn service_map(&mut self, from_ms: u64, to_ms: u64) -> Result<ServiceMap, SourceError>;
    /// The transactions among those that made the calls of one edge.
    fn edge_calls(
        &mut self,
        from_ms: u64,
        to_ms: u64,
        caller: &str,
        callee: &str,
    ) -> Result<EdgeCalls, SourceError>;
    /// Something the operator should know about what was read (offline:
    /// damaged records skipped), shown once the points are loaded.
    fn note(&self) -> Option<String> {
        None
    }
}

/// Why a source gave no answer.
#[derive(Debug)]
pub enum SourceError {
    /// No HTTP client could be made.
    Client(String),
    /// The server at `url` could not be reached, or broke off its answer.
    Unreachable { url: String, why: String },
    /// The server at `url` refused the request with `status`, for `reason`.
    Refused {
        url: String,
        status: String,
        reason: String,
    },
    /// The answer of `endpoint` was not the JSON it answers with.
    Malformed { endpoint: String, why: String },
    /// The data directory could not be opened (the error names the file).
    Store(StoreError),
    /// The data directory `dir` could not be read.
    Unreadable { dir: PathBuf, why: std::io::Error },
    /// No transaction has these ids.
    NoTransaction { trace_id: TraceId, span_id: SpanId },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Client(why) => write!(f, "cannot make an HTTP client: {why}"),
            SourceError::Unreachable { url, why } => write!(f, "cannot reach {url}: {why}"),
            SourceError::Refused {
                url,
                status,
                reason,
            } => write!(f, "{url} answered {status}: {reason}"),
            SourceError::Malformed { endpoint, why } => {
                write!(f, "unexpected answer from {endpoint}: {why}")
            }
            SourceError::Store(e) => write!(f, "{e}"),
            SourceError::Unreadable { dir, why } => {
                write!(f, "cannot read the data directory {}: {why}", dir.display())
            }
            SourceError::NoTransaction { trace_id, span_id } => {
                write!(f, "no transaction {trace_id}/{span_id}")
            }
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Store(e) => Some(e),
            SourceError::Unreadable { why, .. } => Some(why),
            _ => None,
        }
    }
}
