//! `ingest-stages`: CPU time per span of the analyzer's ingest stages, in one
//! process and one run, on the same realistic exports `otlp-load` sends:
//!
//! - `prost decode`: decoding an export into owned structs and dropping them,
//!   which is what the generated OTLP server does (the analyzer's first design);
//! - `xlog build`: the analyzer's in-place builder (`xlog::build`), which reads
//!   each span where it lies and keeps its bytes as the point's detail.
//!
//! Each stage runs over the whole pool `--rounds` times; the median round is
//! reported, so the figures do not depend on a network, a disk or a second core.

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use jvmapm_analyzer::ingest::xlog;
use jvmapm_bench::spans::build_pool;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

#[derive(Parser)]
#[command(about = "CPU time per span of the analyzer's ingest stages")]
struct Args {
    /// Distinct export requests in the pool.
    #[arg(long, default_value_t = 48)]
    pool: usize,
    /// Spans per export request.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Timed passes over the pool per stage (the median is reported).
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Time only the in-place builder (for profiling it alone).
    #[arg(long)]
    build_only: bool,
}

/// Median nanoseconds per span of `stage` over `rounds` passes.
fn time_stage(
    bodies: &[Bytes],
    spans: usize,
    rounds: usize,
    mut stage: impl FnMut(&Bytes) -> usize,
) -> f64 {
    let mut per_span: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let mut seen = 0;
            for body in bodies {
                seen += stage(body);
            }
            assert_eq!(seen, spans, "every span went through the stage");
            start.elapsed().as_nanos() as f64 / spans as f64
        })
        .collect();
    per_span.sort_by(f64::total_cmp);
    per_span
        .get(per_span.len() / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let args = Args::parse();
    let bodies: Vec<Bytes> = build_pool(args.pool, args.batch)
        .iter()
        .map(|r| Bytes::from(r.encode_to_vec()))
        .collect();
    let spans = args.pool * args.batch;
    let bytes: usize = bodies.iter().map(Bytes::len).sum();
    let prost_rounds = if args.build_only { 0 } else { args.rounds };
    let prost = time_stage(&bodies, spans, prost_rounds, |body| {
        let request = ExportTraceServiceRequest::decode(body.clone()).expect("valid export");
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    });
    let build = time_stage(&bodies, spans, args.rounds, |body| {
        xlog::build(body.clone())
            .expect("valid export")
            .point_count()
    });
    println!(
        "ingest-stages: {spans} spans ({} B each on average), median of {} rounds",
        bytes / spans,
        args.rounds
    );
    println!(
        "  prost decode + drop   {prost:8.0} ns/span  ({:.0}k spans/s per core)",
        1e6 / prost
    );
    println!(
        "  xlog build (in place) {build:8.0} ns/span  ({:.0}k spans/s per core)",
        1e6 / build
    );
    println!("  ratio                 {:8.1}x", prost / build);
}
