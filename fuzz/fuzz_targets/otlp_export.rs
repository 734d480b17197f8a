//! Fuzz target for the OTLP input path: arbitrary bytes, read as a protobuf or
//! JSON trace or metrics export, must decode to an error or build into points,
//! events and samples without a panic.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run otlp_export fuzz/seeds/otlp_export -- -max_total_time=60`
//! (the seeds are hostile exports found by hand: a selector byte, then the body).
#![no_main]

use jvmapm_analyzer::ingest::jvm_metrics::{self, DeltaTracker};
use jvmapm_analyzer::ingest::xlog;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let _ = xlog::build(body.to_vec().into());
        }
        1 => {
            if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(body) {
                xlog::build(request.encode_to_vec().into()).expect("a request prost encoded is readable");
            }
        }
        2 => {
            if let Ok(request) = ExportMetricsServiceRequest::decode(body) {
                jvm_metrics::build(request, &mut DeltaTracker::new(0));
            }
        }
        _ => {
            if let Ok(request) = serde_json::from_slice::<ExportMetricsServiceRequest>(body) {
                jvm_metrics::build(request, &mut DeltaTracker::new(0));
            }
        }
    }
});
