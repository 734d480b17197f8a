//! `otlp-load`: an OTLP/gRPC trace load generator for measuring how many spans
//! per second the analyzer (`jvmapm serve`) ingests and acknowledges.
//!
//! It exists because the analyzer's ingest target (>= 1M spans/s per core, see
//! BENCHMARKS.md "Targets") has to be checked against spans that look
//! like what the jvmapm agent or an OpenTelemetry Java agent sends: HTTP SERVER
//! spans with the stable semantic-convention attributes and our `jvmapm.`
//! extras, from a realistic resource, with varied routes, log-normal durations
//! and about 2% 5xx errors. A pool of distinct requests is built before the
//! timed run, and encoded once, so span generation is not measured and one
//! load-generator core can outrun the server; the run then keeps
//! `--concurrency` exports in flight for `--duration` seconds over tonic
//! channels (the same unary call the generated `TraceServiceClient` makes,
//! which `--typed` uses instead), stops by itself, and prints one summary line
//! (or one JSON object with `--json`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::bytes::{BufMut, Bytes};
use prost::Message;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::StdError;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use jvmapm_bench::spans::build_pool;

#[derive(Parser, Debug)]
#[command(
    name = "otlp-load",
    about = "Send realistic OTLP HTTP SERVER spans over gRPC as fast as the receiver acknowledges them"
)]
struct Args {
    /// OTLP/gRPC endpoint of the receiver.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Export requests kept in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of the run in seconds (requests in flight at the end are awaited).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Spans per export request.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Distinct requests generated before the run and sent in turn.
    #[arg(long, default_value_t = 48)]
    pool: usize,
    /// HTTP/2 connections the in-flight requests are spread over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Give up on one request after this many seconds (counts as DeadlineExceeded).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Tokio worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    threads: Option<usize>,
    /// Clone and encode every request with the generated `TraceServiceClient`, as an
    /// SDK exporter does (the load generator then needs far more CPU per span);
    /// by default each request is encoded once before the run and sent as bytes.
    #[arg(long)]
    typed: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.concurrency == 0 || args.batch == 0 || args.pool == 0 || args.connections == 0 {
        eprintln!("otlp-load: --concurrency, --batch, --pool and --connections must be at least 1");
        return ExitCode::FAILURE;
    }
    if !(args.duration > 0.0 && args.duration.is_finite() && args.timeout > 0.0) {
        eprintln!("otlp-load: --duration and --timeout must be positive numbers of seconds");
        return ExitCode::FAILURE;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otlp-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.json(&args));
            } else {
                println!("{}", summary.line(&args));
            }
            if summary.acked == 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("otlp-load: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What one sender task saw.
#[derive(Default)]
struct Tally {
    requests: u64,
    sent: u64,
    acked: u64,
    rejected: u64,
    /// Failed requests by gRPC code name, with the first message seen.
    errors: BTreeMap<String, (u64, String)>,
    /// Latency of each successful request, microseconds.
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.sent += other.sent;
        self.acked += other.acked;
        self.rejected += other.rejected;
        for (code, (n, message)) in other.errors {
            self.errors.entry(code).or_insert((0, message)).0 += n;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

struct Summary {
    wall: Duration,
    requests: u64,
    sent: u64,
    acked: u64,
    rejected: u64,
    errors: BTreeMap<String, (u64, String)>,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time this process used during the run, if /proc tells.
    client_cpu_s: Option<f64>,
    /// CPU time it used before the run (building the pool, connecting).
    setup_cpu_s: Option<f64>,
}

impl Summary {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.wall.as_secs_f64()
    }

    fn line(&self, args: &Args) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(code, (n, message))| format!("{code} x{n} ({message})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "otlp-load: {} spans/s acknowledged; sent {} spans in {} requests, acknowledged {}, rejected {}; errors: {errors}; wall {:.2} s; latency p50 {:.1} ms p99 {:.1} ms; load generator CPU {}; concurrency {} x batch {} over {} connection(s) to {}",
            self.rate().round() as u64,
            self.sent,
            self.requests,
            self.acked,
            self.rejected,
            self.wall.as_secs_f64(),
            self.p50_ms,
            self.p99_ms,
            self.client_cpu_s
                .map_or("unknown".to_string(), |s| format!("{s:.2} s")),
            args.concurrency,
            args.batch,
            args.connections,
            args.endpoint,
        )
    }

    fn json(&self, args: &Args) -> String {
        let errors = self
            .errors
            .iter()
            .map(|(code, (n, _))| format!("{}:{n}", json_string(code)))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"endpoint\":{},\"concurrency\":{},\"batch\":{},\"connections\":{},\"duration_s\":{},\"wall_s\":{:.3},\"requests\":{},\"spans_sent\":{},\"spans_acked\":{},\"spans_rejected\":{},\"spans_per_s\":{:.0},\"latency_p50_ms\":{:.2},\"latency_p99_ms\":{:.2},\"client_cpu_s\":{},\"setup_cpu_s\":{},\"errors\":{{{errors}}}}}",
            json_string(&args.endpoint),
            args.concurrency,
            args.batch,
            args.connections,
            args.duration,
            self.wall.as_secs_f64(),
            self.requests,
            self.sent,
            self.acked,
            self.rejected,
            self.rate(),
            self.p50_ms,
            self.p99_ms,
            self.client_cpu_s
                .map_or("null".to_string(), |s| format!("{s:.3}")),
            self.setup_cpu_s
                .map_or("null".to_string(), |s| format!("{s:.3}")),
        )
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One request of the pool, as a message and as the bytes that go on the wire.
struct Prepared {
    message: ExportTraceServiceRequest,
    encoded: Bytes,
    spans: u64,
}

/// gRPC method path of the OTLP trace export.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How requests are put on the wire.
enum Client {
    /// The generated `TraceServiceClient`: clones and encodes every request.
    Typed(TraceServiceClient<Channel>),
    /// The same unary call with the request bytes encoded once, up front.
    PreEncoded(Grpc<Channel>),
}

impl Client {
    async fn export(&mut self, request: &Prepared) -> Result<ExportTraceServiceResponse, Status> {
        let response = match self {
            Client::Typed(client) => client.export(request.message.clone()).await?,
            Client::PreEncoded(grpc) => {
                grpc.ready().await.map_err(|e| {
                    let e: StdError = e.into();
                    Status::unknown(format!("the channel is not ready: {e}"))
                })?;
                let path = PathAndQuery::from_static(EXPORT_PATH);
                let request = Request::new(request.encoded.clone());
                grpc.unary(request, path, PreEncodedCodec).await?
            }
        };
        Ok(response.into_inner())
    }
}

/// A codec that sends bytes already holding an encoded `ExportTraceServiceRequest`
/// and decodes the response with prost, as the generated client does.
#[derive(Clone, Copy, Default)]
struct PreEncodedCodec;

impl Codec for PreEncodedCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncodedCodec;
    type Decoder = PreEncodedCodec;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        PreEncodedCodec
    }
}

impl Encoder for PreEncodedCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PreEncodedCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("undecodable response: {e}")))
    }
}

async fn run(args: &Args) -> Result<Summary, String> {
    let pool: Vec<Prepared> = build_pool(args.pool, args.batch)
        .into_iter()
        .map(|message| Prepared {
            encoded: Bytes::from(message.encode_to_vec()),
            spans: span_count(&message),
            message,
        })
        .collect();
    let pool = Arc::new(pool);
    if !args.json {
        let bytes: usize = pool.iter().map(|p| p.encoded.len()).sum();
        eprintln!(
            "otlp-load: {} requests of {} spans ready ({} bytes per request on average)",
            pool.len(),
            args.batch,
            bytes / pool.len()
        );
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let endpoint = Endpoint::from_shared(args.endpoint.clone())
        .map_err(|e| format!("bad --endpoint {}: {e}", args.endpoint))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let mut channels: Vec<Channel> = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", args.endpoint, chain(&e)))?;
        channels.push(channel);
    }

    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu_s();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let channel = channels[i % channels.len()].clone();
        let client = if args.typed {
            Client::Typed(TraceServiceClient::new(channel).max_decoding_message_size(64 << 20))
        } else {
            Client::PreEncoded(Grpc::new(channel).max_decoding_message_size(64 << 20))
        };
        tasks.push(tokio::spawn(sender(
            client,
            pool.clone(),
            next.clone(),
            deadline,
            timeout,
        )));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.merge(
            task.await
                .map_err(|e| format!("a sender task failed: {e}"))?,
        );
    }
    let wall = started.elapsed();
    let client_cpu_s = process_cpu_s()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    total.latencies_us.sort_unstable();
    let quantile = |q: f64| {
        let l = &total.latencies_us;
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() - 1) as f64 * q).round() as usize;
        f64::from(l[i]) / 1000.0
    };
    Ok(Summary {
        wall,
        client_cpu_s,
        setup_cpu_s: cpu_before,
        requests: total.requests,
        sent: total.sent,
        acked: total.acked,
        rejected: total.rejected,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        errors: total.errors,
    })
}

/// Sends requests from the pool one after another until `deadline`.
async fn sender(
    mut client: Client,
    pool: Arc<Vec<Prepared>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let request = &pool[next.fetch_add(1, Ordering::Relaxed) % pool.len()];
        let began = Instant::now();
        let outcome = tokio::time::timeout(timeout, client.export(request)).await;
        tally.requests += 1;
        tally.sent += request.spans;
        let error = match outcome {
            Ok(Ok(response)) => {
                let rejected = response
                    .partial_success
                    .map_or(0, |p| p.rejected_spans.max(0) as u64);
                tally.acked += request.spans.saturating_sub(rejected);
                tally.rejected += rejected;
                let us = began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latencies_us.push(us);
                None
            }
            Ok(Err(status)) => Some((format!("{:?}", status.code()), status.message().to_string())),
            Err(_) => Some((
                "DeadlineExceeded".to_string(),
                format!("no answer within {timeout:?}"),
            )),
        };
        if let Some((code, message)) = error {
            tally.errors.entry(code).or_insert((0, message)).0 += 1;
            // Do not spin on a server that refuses (busy, down): back off a little.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tally
}

/// An error with its causes, `outer: inner: ...` (tonic's transport errors say
/// little on their own).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// User plus system CPU seconds of this process so far, from `/proc/self/stat`
/// (in USER_HZ ticks, 100 per second on Linux).
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which ends with the last ')'; utime and
    // stime are fields 14 and 15 of the whole line.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
