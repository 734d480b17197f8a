//! What `bench/src/exporter_cost.rs` times, and only that (feature `bench`):
//! the exporter thread's work on realistic records, reached from outside the
//! crate without making the agent's modules public. A `Workload` is HTTP
//! transactions of a servlet application, each with one JDBC call, 2% of
//! them 5xx; `Encoder` turns records into an OTLP request the way the
//! exporter does, `GrpcSender` also sends them to a backend.

use std::iter::Peekable;
use std::sync::Arc;
use std::vec;

use bytes::Bytes;

use crate::agent::{self, JvmFacts};
use crate::exporter::{self, BATCH};
use crate::options::{self, Settings};
use crate::otlp::TraceRequest;
use crate::record::{Record, SpanIds};
use crate::trace_client::TraceClient;
use crate::transaction::{self, Ending, Finished, Site, SiteKind, SqlCall};

/// Records as the exporter thread receives them.
#[derive(Clone)]
pub struct Workload {
    records: Vec<Record>,
}

impl Workload {
    /// `transactions` HTTP transactions and as many JDBC calls.
    pub fn new(transactions: usize) -> Workload {
        let servlet = register(
            SiteKind::Http,
            "org.apache.catalina.core.StandardWrapperValve",
            "invoke",
        );
        let jdbc = register(
            SiteKind::Sql,
            "org.postgresql.jdbc.PgPreparedStatement",
            "executeQuery",
        );
        let method: Arc<str> = "GET".into();
        let route: Arc<str> = "/orders/{id}".into();
        let thread: Arc<str> = "http-nio-8080-exec-7".into();
        let failure: Arc<str> = "java.lang.IllegalStateException".into();
        let start_ns = 1_750_000_000_000_000_000u64;
        let mut records = Vec::with_capacity(2 * transactions);
        for n in 0..transactions as u64 {
            let trace_id = u128::from(n) << 64 | 0x5eed;
            let span_id = 0x1000 + n;
            let failed = n % 50 == 7;
            records.push(Record::Sql(Box::new(SqlCall {
                site: jdbc,
                trace_id,
                parent_span_id: span_id,
                span_id: span_id | 1 << 48,
                start_ns: start_ns + n * 1_000_000 + 200_000,
                duration_ns: 450_000,
                statement: Some(
                    "select o.id, o.total, o.status from orders o where o.customer_id = ? and o.created > ?"
                        .into(),
                ),
                error_type: None,
            })));
            records.push(Record::Transaction(Box::new(Finished {
                site: servlet,
                start_ns: start_ns + n * 1_000_000,
                duration_ns: 1_200_000 + n % 997 * 1_000,
                cpu_ns: Some(310_000),
                trace_id,
                span_id,
                parent_span_id: 0,
                ending: Ending {
                    method: Some(method.clone()),
                    path: Some(format!("/orders/{}", 4711 + n % 500).into()),
                    route: Some(route.clone()),
                    status: if failed { 500 } else { 200 },
                    error_type: failed.then(|| failure.clone()),
                    thread: Some(thread.clone()),
                },
                stuck: false,
                sql_count: 1,
                sql_ns: 450_000,
                detailed: true,
            })));
        }
        Workload { records }
    }

    pub fn spans(&self) -> usize {
        self.records.len()
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
    agent::resource(
        settings,
        &JvmFacts {
            vm_name: "OpenJDK 64-Bit Server VM".into(),
            vm_version: "17.0.16+8-Debian-1deb12u1".into(),
        },
    )
}

/// Encodes without sending.
pub struct Encoder {
    request: TraceRequest,
    ids: SpanIds,
}

impl Encoder {
    pub fn new() -> Result<Encoder, String> {
        Ok(Encoder {
            request: TraceRequest::new(&resource(&settings("http://127.0.0.1:4317")?)),
            ids: SpanIds::new(),
        })
    }

    /// Encodes the records a batch at a time; the bytes written.
    pub fn encode(&mut self, workload: Workload) -> usize {
        let mut bytes = 0;
        let mut records = workload.records.into_iter().peekable();
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
    pub fn send(&mut self, workload: Workload) -> Result<(), String> {
        let mut records = workload.records.into_iter().peekable();
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
