//! What the query layer reads through, whichever the store: the local data
//! directory ([`Store`](crate::store::Store), see [`local`](super::local))
//! or ClickHouse ([`ClickHouse`](crate::clickhouse::ClickHouse), see
//! `clickhouse::read`). The queries (pages, traces, the service map,
//! profiles, transactions) are written once against this trait.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::jvm::JvmView;
use super::{Cancel, Page, XlogFilter};
use crate::meter::{Accumulator, Counts};
use crate::point::Point;
use crate::store::instances::{InstanceInfo, Instances};
use crate::store::Strings;

/// How much of a point's stored spans a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Its own span.
    Own,
    /// Its own span and the spans kept inside it.
    Inside,
    /// Both, and the resource and scope they came with.
    Full,
}

/// The spans kept of one point.
pub struct Kept {
    pub span: Span,
    /// The spans inside it, each read or why not (empty unless asked for).
    pub children: Vec<([u8; 8], Result<Span, String>)>,
    /// The resource and scope (one `ScopeSpans` without spans), with [`Want::Full`].
    pub resource: Option<Result<ResourceSpans, String>>,
}

/// A store the query layer reads.
pub trait Points: Send + Sync {
    /// The names behind the ids of the points this store gives.
    fn strings(&self) -> &Strings;

    /// The highest seq a page may hold now: a cursor beyond it was not given here.
    fn newest_seq(&self) -> u64;

    /// The first `limit` matching points stored after `after`, in the order
    /// they were stored (see [`super::page`]).
    fn page(&self, filter: &XlogFilter, after: u64, limit: usize) -> io::Result<Page>;

    /// Every point matching `filter`.
    fn scan(&self, filter: &XlogFilter, each: &mut dyn FnMut(&Point)) -> io::Result<()>;

    /// The kept spans of each of `points`, in their order, or why not.
    fn spans(&self, points: &[Point], want: Want) -> io::Result<Vec<Result<Kept, String>>>;

    /// The point with these ids; `near_ms`, its end time when known, speeds it up.
    fn find_point(
        &self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        near_ms: Option<u64>,
    ) -> io::Result<Option<Point>>;

    /// The JVM data of `instance` in `[from_ms, to_ms]`.
    fn jvm(&self, instance: &str, from_ms: u64, to_ms: u64) -> io::Result<JvmView>;

    /// Whether this process metered every point of the store, so its live
    /// meters may answer statistics (not so when other analyzers write too).
    fn metered_here(&self) -> bool;

    /// The per-endpoint statistics of the points whose end lies in `ends`
    /// (both included; and, on a store other analyzers share, stored since
    /// `stored_since_ms`: a local store's are all stored by this process).
    fn accumulate(
        &self,
        ends: (u64, u64),
        stored_since_ms: u64,
        cancel: &Cancel,
    ) -> io::Result<Accumulator>;

    /// Transactions per second by end second, when the store counts them
    /// (else the live meters do).
    fn tps(&self, from_ms: u64, to_ms: u64) -> io::Result<Option<Vec<(u64, Counts)>>>;

    /// The services and instances that sent data (`local` is this process's registry).
    fn instances(&self, local: &Instances) -> io::Result<Vec<InstanceInfo>>;
}
