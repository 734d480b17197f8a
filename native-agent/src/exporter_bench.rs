//! What `bench/src/exporter_cost.rs` times, and only that (feature `bench`):
//! the exporter thread's work on realistic records, reached from outside the
//! crate without making the agent's modules public. A `Workload` is HTTP
//! transactions of a servlet application, each with one JDBC call, 2% of
//! them 5xx, written into a ring as application threads write them;
//! `Encoder` reads them back and turns them into OTLP requests the way the
//! exporter does, `GrpcSender` also sends them to a backend.

use std::iter::Peekable;
use std::vec;

use bytes::Bytes;

use crate::ended::{self, CallEnd, TransactionEnd};
use crate::exporter::{self, BATCH};
use crate::interned::STRING_IDS;
use crate::options::{self, Settings};
use crate::otlp::TraceRequest;
use crate::record::{Record, SpanIds};
use crate::resource::{self, JvmFacts};
use crate::ring::Ring;
use crate::trace_client::TraceClient;
use crate::transaction::{self, Site, SiteKind};

/// What application threads would write: `transactions` HTTP transactions
/// of one thread, each with one JDBC call (the records' strings numbered in
/// the agent's table, its thread's name written once).
pub struct Workload {
    transactions: usize,
    servlet: i32,
    jdbc: i32,
    method: u32,
    route: u32,
    failure: u32,
}

/// A workload written into a ring of its own, ready for the exporter.
pub struct Written {
    ring: Ring,
}

impl Workload {
    pub fn new(transactions: usize) -> Workload {
        let id = |text: &str| STRING_IDS.intern(text.as_bytes());
        Workload {
            transactions,
            servlet: register(
                SiteKind::Http,
                "org.apache.catalina.core.StandardWrapperValve",
                "invoke",
            ),
            jdbc: register(
                SiteKind::Sql,
                "org.postgresql.jdbc.PgPreparedStatement",
                "executeQuery",
            ),
            method: id("GET"),
            route: id("/orders/{id}"),
            failure: id("java.lang.IllegalStateException"),
        }
    }

    pub fn spans(&self) -> usize {
        2 * self.transactions
    }

    /// Writes the workload into a ring, as application threads would.
    pub fn write(&self) -> Written {
        const THREAD: u64 = 7;
        let ring = Ring::new((64 * self.transactions).next_power_of_two());
        let start_ns = 1_750_000_000_000_000_000u64;
        ended::write_thread_name(&ring, THREAD, b"http-nio-8080-exec-7");
        for n in 0..self.transactions as u64 {
            let trace_id = u128::from(n) << 64 | 0x5eed;
            let span_id = 0x1000 + n;
            let failed = n % 50 == 7;
            let path = format!("/orders/{}", 4711 + n % 500);
            ended::write_sql(
                &ring,
                &CallEnd {
                    site: self.jdbc,
                    trace_id,
                    parent_span_id: span_id,
                    span_id: span_id | 1 << 48,
                    start_ns: start_ns + n * 1_000_000 + 200_000,
                    duration_ns: 450_000,
                    error: 0,
                },
                b"select o.id, o.total, o.status from orders o where o.customer_id = 42 and o.created > '2026-01-01'",
            );
            ended::write_transaction(
                &ring,
                &TransactionEnd {
                    site: self.servlet,
                    status: if failed { 500 } else { 200 },
                    start_ns: start_ns + n * 1_000_000,
                    duration_ns: 1_200_000 + n % 997 * 1_000,
                    cpu_ns: Some(310_000),
                    trace_id,
                    span_id,
                    parent_span_id: 0,
                    thread_id: THREAD,
                    stuck: false,
                    detailed: true,
                    sql_count: 1,
                    sql_ns: 450_000,
                    http_count: 0,
                    http_ns: 0,
                    steps_truncated: 0,
                    method: self.method,
                    route: self.route,
                    error: if failed { self.failure } else { 0 },
                    path: path.as_bytes(),
                    path_is_route: false,
                },
            );
        }
        Written { ring }
    }
}

fn register(kind: SiteKind, class: &str, method: &str) -> i32 {
    transaction::register(Site {
        kind,
        class: class.into(),
        method: method.into(),
    })
    .unwrap_or(-1)
}

fn settings(endpoint: &str) -> Result<Settings, String> {
    options::resolve(
        &format!("service=exporter-bench,endpoint={endpoint}"),
        |_| None,
    )
    .map_err(|e| e.to_string())
}

fn resource(settings: &Settings) -> opentelemetry_sdk::Resource {
    resource::build(
        settings,
        &JvmFacts {
            vm_name: "OpenJDK 64-Bit Server VM".into(),
            vm_version: "17.0.16+8-Debian-1deb12u1".into(),
            java_version: "17".into(),
        },
    )
}

/// Reads records from a ring and encodes them, without sending.
pub struct Encoder {
    reader: ended::Reader,
    request: TraceRequest,
    ids: SpanIds,
}

impl Encoder {
    pub fn new() -> Result<Encoder, String> {
        Ok(Encoder {
            reader: ended::Reader::default(),
            request: TraceRequest::new(&resource(&settings("http://127.0.0.1:4317")?)),
            ids: SpanIds::new(),
        })
    }

    /// Reads the records as the exporter does (strings resolved, SQL
    /// normalised).
    fn read(&mut self, written: Written) -> Peekable<vec::IntoIter<Record>> {
        let mut records = Vec::new();
        exporter::read_rings(
            &mut self.reader,
            std::slice::from_ref(&written.ring),
            usize::MAX,
            &mut |record| records.push(record),
        );
        records.into_iter().peekable()
    }

    /// Reads and encodes the records a batch at a time; the bytes written.
    pub fn encode(&mut self, written: Written) -> usize {
        let mut bytes = 0;
        let mut records = self.read(written);
        while let Some(request) = self.next_request(&mut records) {
            bytes += request.len();
        }
        bytes
    }

    /// The request of the next batch, until every record is taken.
    fn next_request(&mut self, records: &mut Peekable<vec::IntoIter<Record>>) -> Option<Bytes> {
        records.peek()?;
        let batch = records.by_ref().take(BATCH);
        Some(exporter::encode(batch, &mut self.ids, &mut self.request))
    }
}

/// Sends to an OTLP/gRPC endpoint as the exporter thread does.
pub struct GrpcSender {
    runtime: tokio::runtime::Runtime,
    client: TraceClient,
    encoder: Encoder,
}

impl GrpcSender {
    pub fn new(endpoint: &str) -> Result<GrpcSender, String> {
        let settings = settings(endpoint)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = runtime.block_on(async {
            TraceClient::grpc(endpoint, settings.timeout, Default::default())
        })?;
        Ok(GrpcSender {
            runtime,
            client,
            encoder: Encoder::new()?,
        })
    }

    /// Sends the records a batch at a time, each export awaited; an export
    /// the backend rejected spans of is an error.
    pub fn send(&mut self, written: Written) -> Result<(), String> {
        let mut records = self.encoder.read(written);
        while let Some(request) = self.encoder.next_request(&mut records) {
            let rejected = self
                .runtime
                .block_on(self.client.export(request))
                .map_err(|e| e.to_string())?;
            if rejected.spans > 0 {
                return Err(format!(
                    "the backend rejected {} spans: {}",
                    rejected.spans, rejected.message
                ));
            }
        }
        Ok(())
    }
}
