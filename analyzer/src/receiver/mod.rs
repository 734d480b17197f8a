//! The OTLP receiver: what gRPC and HTTP share. Both decode a request, hand it
//! to the XLog builder or the metric converter, submit the result to the store
//! writer and answer once it is durable, with partial success for the items
//! they had to refuse.

pub mod grpc;
pub mod http;

use std::sync::Mutex;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::ingest::jvm_metrics::{self, DeltaTracker};
use crate::ingest::xlog;
use crate::store::writer::{SubmitError, Work, WriterHandle};

/// Default limit of a request body, measured after decompression.
pub const DEFAULT_MAX_BODY: usize = 64 << 20;

/// Shared by the gRPC and HTTP receivers.
pub struct Receiver {
    writer: WriterHandle,
    deltas: Mutex<DeltaTracker>,
    /// Accepted token for `Authorization: Bearer ...`, when one is required.
    token: Option<String>,
    pub max_body: usize,
}

/// Why an export was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not a well-formed export: do not retry.
    Malformed(String),
    /// The store's queue is full: retry in a moment.
    Busy,
    /// The store cannot write, or the server is stopping.
    Unavailable(String),
}

impl From<SubmitError> for Refusal {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Busy => Refusal::Busy,
            SubmitError::Closed => Refusal::Unavailable("the server is shutting down".into()),
            SubmitError::Store(why) => Refusal::Unavailable(why),
        }
    }
}

impl Receiver {
    pub fn new(
        writer: WriterHandle,
        token: Option<String>,
        max_body: usize,
        started_ns: u64,
    ) -> Self {
        Receiver {
            writer,
            deltas: Mutex::new(DeltaTracker::new(started_ns)),
            token,
            max_body,
        }
    }

    /// Whether an `authorization` header value grants access.
    pub fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(value) = header else { return false };
        value
            .strip_prefix(b"Bearer ")
            .is_some_and(|given| constant_time_eq(given, token.as_bytes()))
    }

    /// Takes an encoded `ExportTraceServiceRequest`.
    pub async fn traces(&self, body: Bytes) -> Result<ExportTraceServiceResponse, Refusal> {
        let mut batch = xlog::build(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let rejected = std::mem::take(&mut batch.rejected);
        if !batch.groups.is_empty() || !batch.events.is_empty() {
            self.writer.submit(Work::Traces(batch)).await?;
        }
        Ok(ExportTraceServiceResponse {
            partial_success: (rejected.total() > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected.total() as i64,
                error_message: rejected.message(),
            }),
        })
    }

    pub async fn metrics(
        &self,
        request: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, Refusal> {
        let batch = jvm_metrics::build(request, &mut crate::lock(&self.deltas));
        let rejected = batch.rejected;
        if !batch.instances.is_empty() {
            self.writer.submit(Work::Metrics(batch)).await?;
        }
        Ok(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message: format!("{rejected} data point(s) without a value or a timestamp"),
            }),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
