//! What the agent's threads hand to the exporter: small records, written as
//! OTLP spans (`otlp::SpanOut`) only on the exporter thread, one small
//! function per kind. JVM events are spans marked with
//! `jvmapm.event` (the analyzer keeps them as events, not XLog points).

use std::borrow::Cow;
use std::io::Write;

use jvmapm_contract::names::{event, metric, span};
use jvmapm_contract::random::Rng;

use crate::ended::{Call, Finished, HttpCall, SqlCall};
use crate::gc::Collection;
use crate::otlp::{Attributes, Kind, SpanOut, TraceRequest, Value};
use crate::stacks::Profile;
use crate::transaction::{self, Site, SiteKind, Stuck};
use crate::url;

/// One thing for the exporter to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A stop-the-world pause; its collection when a collector's bean told it.
    GcPause {
        start_ns: u64,
        duration_ns: u64,
        collection: Option<Collection>,
    },
    /// A heap dump the agent wrote.
    HeapDump {
        start_ns: u64,
        duration_ns: u64,
        path: String,
        reason: String,
    },
    /// A transaction that ended.
    Transaction(Box<Finished>),
    /// A transaction that ended, with its profile.
    Profiled(Box<Finished>, Box<Profile>),
    /// A profile on its way to its transaction: the exporter joins the two
    /// (`profile_join`); alone it is no span.
    Profile(Box<Profile>),
    /// A JDBC call inside a transaction.
    Sql(Box<SqlCall>),
    /// An outgoing HTTP call inside a transaction.
    Http(Box<HttpCall>),
    /// A hooked method called inside a transaction.
    Step(Box<Call>),
    /// A transaction open past the `stuck` threshold, with its thread's
    /// stack when it could be read.
    Stuck(Box<Stuck>, Option<String>),
}

/// Random trace and span ids for events, seeded from the OS's randomness.
pub struct SpanIds {
    rng: Rng,
}

impl SpanIds {
    pub fn new() -> SpanIds {
        SpanIds {
            rng: Rng::from_entropy(),
        }
    }

    /// A new trace id and span id.
    fn trace_and_span(&mut self) -> (u128, u64) {
        let trace = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
        (trace, self.rng.next_u64())
    }
}

impl Record {
    /// Writes the record as a span into `request`.
    pub fn write_span(&self, ids: &mut SpanIds, request: &mut TraceRequest) {
        match self {
            Record::GcPause {
                start_ns,
                duration_ns,
                collection,
            } => gc_pause_span(*start_ns, *duration_ns, collection.as_ref(), ids, request),
            Record::HeapDump {
                start_ns,
                duration_ns,
                path,
                reason,
            } => heap_dump_span(*start_ns, *duration_ns, path, reason, ids, request),
            Record::Transaction(finished) => transaction_span(finished, None, request),
            Record::Profiled(finished, profile) => {
                transaction_span(finished, Some(profile), request)
            }
            Record::Profile(_) => {}
            Record::Stuck(stuck, stack) => stuck_span(stuck, stack.as_deref(), request),
            Record::Sql(call) => sql_span(call, request),
            Record::Http(call) => http_span(call, request),
            Record::Step(call) => step_span(call, request),
        }
    }
}

fn gc_pause_span(
    start_ns: u64,
    duration_ns: u64,
    collection: Option<&Collection>,
    ids: &mut SpanIds,
    request: &mut TraceRequest,
) {
    let mut attributes = Attributes::default();
    attributes.push(event::KIND, Value::Str(event::GC_PAUSE));
    if let Some(collection) = collection {
        attributes.push(metric::GC_ACTION, Value::Str(&collection.action));
        attributes.push(metric::GC_NAME, Value::Str(&collection.collector));
    }
    event_span(
        ids,
        event::GC_PAUSE,
        start_ns,
        duration_ns,
        &attributes,
        request,
    );
}

fn heap_dump_span(
    start_ns: u64,
    duration_ns: u64,
    path: &str,
    reason: &str,
    ids: &mut SpanIds,
    request: &mut TraceRequest,
) {
    let mut attributes = Attributes::default();
    attributes.push(event::KIND, Value::Str(event::HEAP_DUMP));
    attributes.push(event::HEAP_DUMP_PATH, Value::Str(path));
    attributes.push(event::HEAP_DUMP_REASON, Value::Str(reason));
    event_span(
        ids,
        event::HEAP_DUMP,
        start_ns,
        duration_ns,
        &attributes,
        request,
    );
}

/// A JVM event as an INTERNAL root span of a trace of its own.
fn event_span(
    ids: &mut SpanIds,
    name: &str,
    start_ns: u64,
    duration_ns: u64,
    attributes: &Attributes<'_>,
    request: &mut TraceRequest,
) {
    let (trace_id, span_id) = ids.trace_and_span();
    request.push(&SpanOut {
        trace_id,
        span_id,
        parent_span_id: 0,
        parent_is_remote: false,
        kind: Kind::Internal,
        name: &[name],
        start_ns,
        end_ns: start_ns.saturating_add(duration_ns),
        attributes: attributes.as_slice(),
        error: false,
    });
}

/// A JDBC call as a CLIENT span under its transaction, named by its
/// operation (`SELECT`, `INSERT`, ...) as the database conventions say.
fn sql_span(sql: &SqlCall, request: &mut TraceRequest) {
    let mut capitals = [0; 32];
    let operation = operation(sql.statement.as_deref(), &mut capitals);
    let mut attributes = Attributes::default();
    attributes.push(span::DB_OPERATION_NAME, Value::Str(&operation));
    if let Some(statement) = &sql.statement {
        attributes.push(span::DB_QUERY_TEXT, Value::Str(statement));
    }
    let site = transaction::site(sql.call.site);
    call_span(
        &sql.call,
        Kind::Client,
        &[&operation],
        site.as_deref(),
        attributes,
        sql.call.error_type.as_deref(),
        request,
    );
}

/// An outgoing HTTP call as a CLIENT span under its transaction, named by
/// its method as the HTTP conventions say, its URL stripped (`url`). A
/// status from 400 up fails it, as it does a client's span in the
/// conventions, and is its `error.type`; else the exception it ended with.
fn http_span(http: &HttpCall, request: &mut TraceRequest) {
    let method = http.method.as_deref().unwrap_or("_OTHER");
    let target = http.url.as_deref().map(url::target);
    let mut attributes = Attributes::default();
    attributes.push(span::HTTP_REQUEST_METHOD, Value::Str(method));
    if let Some(target) = &target {
        attributes.push(span::URL_FULL, Value::Str(&target.full));
        if !target.host.is_empty() {
            attributes.push(span::SERVER_ADDRESS, Value::Str(target.host));
        }
        if let Some(port) = target.port {
            attributes.push(span::SERVER_PORT, Value::Int(i64::from(port)));
        }
    }
    if http.status >= 0 {
        attributes.push(
            span::HTTP_RESPONSE_STATUS_CODE,
            Value::Int(i64::from(http.status)),
        );
    }
    let mut digits = [0; 12];
    let error_type = if http.status >= 400 {
        Some(decimal(http.status, &mut digits))
    } else {
        http.call.error_type.as_deref()
    };
    call_span(
        &http.call,
        Kind::Client,
        &[method],
        None,
        attributes,
        error_type,
        request,
    );
}

/// A step (a hooked method called inside a transaction) as an INTERNAL span
/// under it, named `Class.method` like a hooked method's own transaction.
fn step_span(call: &Call, request: &mut TraceRequest) {
    let site = transaction::site(call.site);
    let name = match site.as_deref() {
        Some(site) => [site.class.as_str(), ".", site.method.as_str()],
        None => ["unknown", "", ""],
    };
    call_span(
        call,
        Kind::Internal,
        &name,
        site.as_deref(),
        Attributes::default(),
        call.error_type.as_deref(),
        request,
    );
}

/// A call inside a transaction as a child span of it: `attributes` of its
/// kind, then the method it ran (`site`) and why it failed (`error_type`,
/// which sets its status Error).
fn call_span<'a>(
    call: &'a Call,
    kind: Kind,
    name: &[&str],
    site: Option<&'a Site>,
    mut attributes: Attributes<'a>,
    error_type: Option<&'a str>,
    request: &mut TraceRequest,
) {
    if let Some(site) = site {
        attributes.push(span::CODE_NAMESPACE, Value::Str(&site.class));
        attributes.push(span::CODE_FUNCTION, Value::Str(&site.method));
    }
    if let Some(error_type) = error_type {
        attributes.push(span::ERROR_TYPE, Value::Str(error_type));
    }
    request.push(&SpanOut {
        trace_id: call.trace_id,
        span_id: call.span_id,
        parent_span_id: call.parent_span_id,
        // Its transaction, in this JVM.
        parent_is_remote: false,
        kind,
        name,
        start_ns: call.start_ns,
        end_ns: call.start_ns.saturating_add(call.duration_ns),
        attributes: attributes.as_slice(),
        error: error_type.is_some(),
    });
}

/// The statement's first word in capitals when it is one (`SELECT`, ...),
/// else `SQL`; written into `capitals` when it fits.
fn operation<'a>(statement: Option<&'a str>, capitals: &'a mut [u8; 32]) -> Cow<'a, str> {
    let Some(word) = statement
        .and_then(|s| s.split_whitespace().next())
        .filter(|w| w.bytes().all(|b| b.is_ascii_alphabetic()))
    else {
        return Cow::Borrowed("SQL");
    };
    match capitals.get_mut(..word.len()) {
        Some(room) => {
            room.copy_from_slice(word.as_bytes());
            room.make_ascii_uppercase();
            // ASCII letters only, so always UTF-8.
            Cow::Borrowed(std::str::from_utf8(room).unwrap_or("SQL"))
        }
        None => Cow::Owned(word.to_ascii_uppercase()),
    }
}

/// A stuck transaction as an event in its own trace, a child of its span.
fn stuck_span(stuck: &Stuck, stack: Option<&str>, request: &mut TraceRequest) {
    let site = transaction::site(stuck.site);
    let mut attributes = Attributes::default();
    attributes.push(event::KIND, Value::Str(event::STUCK));
    attributes.push(span::THREAD_ID, Value::Int(stuck.thread_id as i64));
    attributes.push(
        event::OPEN_MS,
        Value::Int((stuck.open_ns / 1_000_000) as i64),
    );
    if let Some(site) = &site {
        attributes.push(span::CODE_NAMESPACE, Value::Str(&site.class));
        attributes.push(span::CODE_FUNCTION, Value::Str(&site.method));
    }
    if let Some(stack) = stack {
        attributes.push(event::STACK, Value::Str(stack));
    }
    let now = stuck.start_ns.saturating_add(stuck.open_ns);
    request.push(&SpanOut {
        trace_id: stuck.trace_id,
        span_id: (stuck.span_id ^ 0x5357_5543_4b00_0000) | 1,
        parent_span_id: stuck.span_id,
        // The transaction, in this JVM.
        parent_is_remote: false,
        kind: Kind::Internal,
        name: &[event::STUCK],
        start_ns: now,
        end_ns: now,
        attributes: attributes.as_slice(),
        error: false,
    });
}

/// A finished transaction as a span, named as `jvmapm_contract::names` says:
/// a SERVER span named `{method} {route}` for HTTP, an INTERNAL root span
/// named `Class.method` for a hooked method.
fn transaction_span(t: &Finished, profile: Option<&Profile>, request: &mut TraceRequest) {
    let site = transaction::site(t.site);
    let ending = &t.ending;
    let mut attributes = Attributes::default();
    let mut error = ending.error_type.is_some();
    // Thinned by `sample=` unless it failed (a 5xx is found below).
    let full = t.detailed || error || ending.status >= 500;
    let method = ending.method.as_deref().unwrap_or("_OTHER");
    let mut name: [&str; 3] = ["unknown", "", ""];
    let kind = match &site {
        Some(site) if site.kind == SiteKind::Http => {
            // Without a route (a default servlet), the path names it.
            name = match ending.route.as_ref().or(ending.path.as_ref()) {
                Some(target) => [method, " ", target],
                None => [method, "", ""],
            };
            attributes.push(span::HTTP_REQUEST_METHOD, Value::Str(method));
            if let Some(path) = ending.path.as_deref().filter(|_| full) {
                attributes.push(span::URL_PATH, Value::Str(path));
            }
            if let Some(route) = &ending.route {
                attributes.push(span::HTTP_ROUTE, Value::Str(route));
            }
            // The status the client received, as the helper worked it out
            // (after a throw: the container's answer, or none when the
            // connection was closed without one).
            if ending.status >= 0 {
                attributes.push(
                    span::HTTP_RESPONSE_STATUS_CODE,
                    Value::Int(i64::from(ending.status)),
                );
            }
            if ending.status >= 500 {
                error = true;
            }
            Kind::Server
        }
        Some(site) => {
            name = [&site.class, ".", &site.method];
            attributes.push(span::CODE_NAMESPACE, Value::Str(&site.class));
            attributes.push(span::CODE_FUNCTION, Value::Str(&site.method));
            Kind::Internal
        }
        None => Kind::Internal,
    };
    let mut digits = [0; 12];
    match (&ending.error_type, error) {
        (Some(error_type), _) => attributes.push(span::ERROR_TYPE, Value::Str(error_type)),
        (None, true) => attributes.push(
            span::ERROR_TYPE,
            Value::Str(decimal(ending.status, &mut digits)),
        ),
        (None, false) => {}
    }
    if let Some(cpu_ns) = t.cpu_ns {
        attributes.push(span::CPU_TIME, Value::Int((cpu_ns / 1_000) as i64));
    }
    if let Some(thread) = ending.thread.as_deref().filter(|_| full) {
        attributes.push(span::THREAD_NAME, Value::Str(thread));
    }
    if !full {
        attributes.push(span::DETAIL, Value::Str(span::DETAIL_THINNED));
    }
    if t.stuck {
        attributes.push(span::STUCK, Value::Bool(true));
    }
    if t.sql_count > 0 {
        attributes.push(span::SQL_COUNT, Value::Int(i64::from(t.sql_count)));
        attributes.push(span::SQL_TIME, Value::Int((t.sql_ns / 1_000) as i64));
    }
    if t.http_count > 0 {
        attributes.push(span::HTTP_COUNT, Value::Int(i64::from(t.http_count)));
        attributes.push(span::HTTP_TIME, Value::Int((t.http_ns / 1_000) as i64));
    }
    if t.steps_truncated > 0 {
        attributes.push(
            span::STEPS_TRUNCATED,
            Value::Int(i64::from(t.steps_truncated)),
        );
    }
    if let Some(profile) = profile {
        push_profile(profile, &mut attributes);
    }
    request.push(&SpanOut {
        trace_id: t.trace_id,
        span_id: t.span_id,
        parent_span_id: t.parent_span_id,
        // A parent can only come from a `traceparent` header.
        parent_is_remote: t.parent_span_id != 0,
        kind,
        name: &name,
        start_ns: t.start_ns,
        end_ns: t.start_ns.saturating_add(t.duration_ns),
        attributes: attributes.as_slice(),
        error,
    });
}

/// A transaction's profile as the contract's attributes.
fn push_profile<'a>(profile: &'a Profile, attributes: &mut Attributes<'a>) {
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    if !profile.text.is_empty() {
        attributes.push(span::PROFILE, Value::Str(&profile.text));
    }
    attributes.push(span::PROFILE_SAMPLES, int(profile.samples));
    attributes.push(span::PROFILE_DROPPED, int(profile.dropped));
    attributes.push(span::PROFILE_TRUNCATED, int(profile.truncated));
    attributes.push(span::PROFILE_INTERVAL, int(profile.interval_us));
}

/// `n` in decimal, written into `digits`.
fn decimal(n: i32, digits: &mut [u8; 12]) -> &str {
    let mut rest = &mut digits[..];
    let _ = write!(rest, "{n}");
    let len = 12 - rest.len();
    std::str::from_utf8(&digits[..len]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ended::Ending;
    use crate::otlp::tests::spans_of;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::trace::v1::{span, status, Span};
    use opentelemetry_sdk::Resource;
    use std::sync::Arc;

    /// The span a record is written as.
    fn written(record: &Record) -> Span {
        let mut request = TraceRequest::new(&Resource::builder_empty().build());
        record.write_span(&mut SpanIds::new(), &mut request);
        let mut spans = spans_of(request.finish());
        assert_eq!(spans.len(), 1);
        spans.remove(0)
    }

    /// `key=value` for each attribute, in order, a value's type told by
    /// quotes (string) or none (int, bool).
    fn attributes(span: &Span) -> Vec<String> {
        span.attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
                    Some(any_value::Value::IntValue(n)) => n.to_string(),
                    Some(any_value::Value::BoolValue(b)) => b.to_string(),
                    other => format!("{other:?}"),
                };
                format!("{}={value}", kv.key)
            })
            .collect()
    }

    fn site(kind: SiteKind, class: &str, method: &str) -> i32 {
        transaction::register(Site {
            kind,
            class: class.into(),
            method: method.into(),
        })
        .unwrap()
    }

    fn http_transaction(status: i32, detailed: bool, parent_span_id: u64) -> Finished {
        Finished {
            site: site(SiteKind::Http, "com.acme.OrderServlet", "service"),
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 3_000_000,
            cpu_ns: Some(1_234_567),
            trace_id: 0xabcd,
            span_id: 0x1234,
            parent_span_id,
            ending: Ending {
                method: Some("GET".into()),
                path: Some("/orders/7".into()),
                route: Some("/orders/{id}".into()),
                status,
                error_type: None,
                thread: Some("http-nio-8080-exec-1".into()),
            },
            stuck: false,
            sql_count: 2,
            sql_ns: 450_000,
            http_count: 1,
            http_ns: 250_000,
            detailed,
            steps_truncated: 0,
        }
    }

    #[test]
    fn a_gc_pause_is_an_event_span_with_its_collector_and_action() {
        let span = written(&Record::GcPause {
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 12_000_000,
            collection: Some(Collection {
                collector: "G1 Old Generation".into(),
                action: "end of major GC".into(),
                start_ms: 1_700_000_000_000,
                end_ms: 1_700_000_000_012,
            }),
        });
        assert_eq!(span.name, "gc.pause");
        assert_eq!(span.kind, span::SpanKind::Internal as i32);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            12_000_000
        );
        assert_eq!(
            attributes(&span),
            [
                "jvmapm.event=\"gc.pause\"",
                "jvm.gc.action=\"end of major GC\"",
                "jvm.gc.name=\"G1 Old Generation\"",
            ]
        );
        assert!(span.parent_span_id.is_empty());
        assert!(span.trace_id.iter().any(|&b| b != 0) && span.span_id.iter().any(|&b| b != 0));
    }

    #[test]
    fn an_http_transaction_is_a_server_span_named_by_its_route() {
        let span = written(&Record::Transaction(Box::new(http_transaction(
            200, true, 0x77,
        ))));
        assert_eq!(span.name, "GET /orders/{id}");
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.trace_id, 0xabcd_u128.to_be_bytes());
        assert_eq!(span.span_id, 0x1234_u64.to_be_bytes());
        assert_eq!(span.parent_span_id, 0x77_u64.to_be_bytes());
        assert_eq!(span.flags, 0x301, "sampled, its parent remote");
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            3_000_000
        );
        assert_eq!(span.status, None);
        assert_eq!(
            attributes(&span),
            [
                "http.request.method=\"GET\"",
                "url.path=\"/orders/7\"",
                "http.route=\"/orders/{id}\"",
                "http.response.status_code=200",
                "jvmapm.cpu.time=1234",
                "thread.name=\"http-nio-8080-exec-1\"",
                "jvmapm.sql.count=2",
                "jvmapm.sql.time=450",
                "jvmapm.http.count=1",
                "jvmapm.http.time=250",
            ]
        );
    }

    #[test]
    fn a_5xx_is_an_error_kept_in_full_and_a_thinned_success_loses_its_detail() {
        let failed = written(&Record::Transaction(Box::new(http_transaction(
            503, false, 0,
        ))));
        assert_eq!(
            failed.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
        assert_eq!(failed.flags, 0x101);
        assert!(attributes(&failed).contains(&"error.type=\"503\"".to_string()));
        assert!(attributes(&failed).contains(&"url.path=\"/orders/7\"".to_string()));

        let thinned = written(&Record::Transaction(Box::new(http_transaction(
            200, false, 0,
        ))));
        let thinned = attributes(&thinned);
        assert!(thinned.contains(&"jvmapm.detail=\"thinned\"".to_string()));
        assert!(!thinned
            .iter()
            .any(|a| a.starts_with("url.path") || a.starts_with("thread.name")));
    }

    #[test]
    fn a_hooked_method_is_an_internal_span_named_by_class_and_method() {
        let mut t = http_transaction(-1, true, 0);
        t.site = site(SiteKind::Method, "com.acme.Batch", "run");
        t.ending = Ending {
            method: None,
            path: None,
            route: None,
            status: -1,
            error_type: Some("java.lang.IllegalStateException".into()),
            thread: None,
        };
        t.stuck = true;
        t.sql_count = 0;
        t.http_count = 0;
        let span = written(&Record::Transaction(Box::new(t)));
        assert_eq!(span.name, "com.acme.Batch.run");
        assert_eq!(span.kind, span::SpanKind::Internal as i32);
        assert_eq!(
            attributes(&span),
            [
                "code.namespace=\"com.acme.Batch\"",
                "code.function=\"run\"",
                "error.type=\"java.lang.IllegalStateException\"",
                "jvmapm.cpu.time=1234",
                "jvmapm.stuck=true",
            ]
        );
        assert!(span.status.is_some());
    }

    #[test]
    fn a_jdbc_call_is_a_client_span_under_its_transaction() {
        let span = written(&Record::Sql(Box::new(SqlCall {
            call: Call {
                site: site(
                    SiteKind::Sql,
                    "org.h2.jdbc.JdbcPreparedStatement",
                    "executeQuery",
                ),
                trace_id: 0xabcd,
                parent_span_id: 0x1234,
                span_id: 0x5678,
                start_ns: 1_700_000_000_000_000_000,
                duration_ns: 400_000,
                error_type: Some("org.h2.jdbc.JdbcSQLSyntaxErrorException".into()),
            },
            statement: Some("select id from orders where id = ?".into()),
        })));
        assert_eq!(span.name, "SELECT");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.parent_span_id, 0x1234_u64.to_be_bytes());
        assert_eq!(span.flags, 0x101, "its parent is in this JVM");
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
        assert_eq!(
            attributes(&span),
            [
                "db.operation.name=\"SELECT\"",
                "db.query.text=\"select id from orders where id = ?\"",
                "code.namespace=\"org.h2.jdbc.JdbcPreparedStatement\"",
                "code.function=\"executeQuery\"",
                "error.type=\"org.h2.jdbc.JdbcSQLSyntaxErrorException\"",
            ]
        );
    }

    fn http_call(status: i32, error_type: Option<&str>, url: Option<&str>) -> Record {
        Record::Http(Box::new(HttpCall {
            call: Call {
                site: site(
                    SiteKind::Outgoing,
                    "okhttp3.internal.http.RealInterceptorChain",
                    "proceed",
                ),
                trace_id: 0xabcd,
                parent_span_id: 0x1234,
                span_id: 0x5678,
                start_ns: 1_700_000_000_000_000_000,
                duration_ns: 2_000_000,
                error_type: error_type.map(Arc::from),
            },
            status,
            method: Some("POST".into()),
            url: url.map(String::from),
        }))
    }

    #[test]
    fn an_outgoing_call_is_a_client_span_under_its_transaction_without_secrets() {
        let span = written(&http_call(
            201,
            None,
            Some("http://u:p@orders.internal:8081/orders?id=7#x"),
        ));
        assert_eq!(span.name, "POST");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.trace_id, 0xabcd_u128.to_be_bytes());
        assert_eq!(span.parent_span_id, 0x1234_u64.to_be_bytes());
        assert_eq!(span.span_id, 0x5678_u64.to_be_bytes());
        assert_eq!(span.flags, 0x101, "its parent is in this JVM");
        assert_eq!(span.status, None);
        assert_eq!(
            attributes(&span),
            [
                "http.request.method=\"POST\"",
                "url.full=\"http://orders.internal:8081/orders?id=\"",
                "server.address=\"orders.internal\"",
                "server.port=8081",
                "http.response.status_code=201",
            ]
        );
    }

    #[test]
    fn an_outgoing_call_fails_with_its_exception_or_a_status_from_400() {
        let error = Some(status::StatusCode::Error as i32);
        let refused = written(&http_call(-1, Some("java.net.ConnectException"), None));
        assert_eq!(refused.status.as_ref().map(|s| s.code), error);
        assert_eq!(
            attributes(&refused),
            [
                "http.request.method=\"POST\"",
                "error.type=\"java.net.ConnectException\"",
            ]
        );
        let failed = written(&http_call(
            503,
            Some("java.io.IOException"),
            Some("https://h/x"),
        ));
        assert_eq!(failed.status.as_ref().map(|s| s.code), error);
        let failed = attributes(&failed);
        assert!(
            failed.contains(&"error.type=\"503\"".to_string()),
            "{failed:?}"
        );
        assert!(
            failed.contains(&"server.port=443".to_string()),
            "{failed:?}"
        );
    }

    #[test]
    fn a_step_is_an_internal_span_under_its_transaction_named_by_its_method() {
        let span = written(&Record::Step(Box::new(Call {
            site: site(SiteKind::Method, "com.acme.Orders", "price"),
            trace_id: 0xabcd,
            parent_span_id: 0x1234,
            span_id: 0x5678,
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 30_000_000,
            error_type: Some("java.lang.ArithmeticException".into()),
        })));
        assert_eq!(span.name, "com.acme.Orders.price");
        assert_eq!(span.kind, span::SpanKind::Internal as i32);
        assert_eq!(span.trace_id, 0xabcd_u128.to_be_bytes());
        assert_eq!(span.parent_span_id, 0x1234_u64.to_be_bytes());
        assert_eq!(span.flags, 0x101, "its parent is in this JVM");
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            30_000_000
        );
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
        assert_eq!(
            attributes(&span),
            [
                "code.namespace=\"com.acme.Orders\"",
                "code.function=\"price\"",
                "error.type=\"java.lang.ArithmeticException\"",
            ]
        );
    }

    #[test]
    fn steps_past_the_bound_are_counted_on_the_transaction() {
        let mut t = http_transaction(200, true, 0);
        t.steps_truncated = 44;
        let span = written(&Record::Transaction(Box::new(t)));
        assert!(
            attributes(&span).contains(&"jvmapm.steps.truncated=44".to_string()),
            "{:?}",
            attributes(&span)
        );
    }

    #[test]
    fn the_operation_is_the_first_word_in_capitals() {
        let operation_of =
            |statement: Option<&str>| operation(statement, &mut [0; 32]).into_owned();
        assert_eq!(operation_of(Some("  insert into t values (?)")), "INSERT");
        assert_eq!(operation_of(Some("{call refresh(?)}")), "SQL");
        assert_eq!(operation_of(Some("")), "SQL");
        assert_eq!(operation_of(None), "SQL");
        let long = "a".repeat(40);
        assert_eq!(operation_of(Some(&long)), "A".repeat(40));
    }

    #[test]
    fn a_stuck_transaction_is_an_event_under_its_span() {
        let span = written(&Record::Stuck(
            Box::new(Stuck {
                site: site(SiteKind::Method, "com.acme.Batch", "run"),
                thread_id: 9,
                trace_id: 0xabcd,
                span_id: 0x1234,
                start_ns: 1_700_000_000_000_000_000,
                open_ns: 9_000_000_000,
            }),
            Some("at com.acme.Batch.run".into()),
        ));
        assert_eq!(span.name, "stuck");
        assert_eq!(span.parent_span_id, 0x1234_u64.to_be_bytes());
        assert_eq!(span.start_time_unix_nano, 1_700_000_009_000_000_000);
        assert_eq!(
            attributes(&span),
            [
                "jvmapm.event=\"stuck\"",
                "thread.id=9",
                "jvmapm.open_ms=9000",
                "code.namespace=\"com.acme.Batch\"",
                "code.function=\"run\"",
                "jvmapm.stack=\"at com.acme.Batch.run\"",
            ]
        );
    }

    #[test]
    fn a_profiled_transaction_carries_its_profile() {
        let profile = Profile {
            span_id: 0x1234,
            text: "Thread.run;Orders.place:17;[running] 7\n".into(),
            samples: 9,
            dropped: 1,
            truncated: 2,
            interval_us: 10_000,
        };
        let span = written(&Record::Profiled(
            Box::new(http_transaction(200, true, 0)),
            Box::new(profile),
        ));
        let attributes = attributes(&span);
        let profile_attributes: Vec<&str> = attributes
            .iter()
            .map(String::as_str)
            .filter(|a| a.starts_with("jvmapm.profile"))
            .collect();
        assert_eq!(
            profile_attributes,
            [
                "jvmapm.profile=\"Thread.run;Orders.place:17;[running] 7\\n\"",
                "jvmapm.profile.samples=9",
                "jvmapm.profile.dropped=1",
                "jvmapm.profile.truncated=2",
                "jvmapm.profile.interval=10000",
            ]
        );
        assert!(attributes.contains(&"http.route=\"/orders/{id}\"".to_string()));
    }

    #[test]
    fn span_ids_differ() {
        let mut ids = SpanIds::new();
        let a = ids.trace_and_span();
        let b = ids.trace_and_span();
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }
}
