//! What an application thread writes into its ring (see `ring`) when a
//! transaction, or a call inside one (a JDBC statement, an outgoing HTTP
//! call, a step), ends, and how the exporter reads it back: fixed words of
//! numbers, strings as numbers from `interned`, and the only free text (the
//! URL path, the SQL statement, an outgoing call's URL) copied in as bytes. A step is a `hook=` method called inside
//! a transaction; its site number names the method, so its record has no
//! text at all. A thread's name is written once, in a record of its own,
//! and the exporter remembers it by thread id.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ring::{self, Kind, Ring};

/// A transaction that ended.
const TRANSACTION: Kind = 1;
/// A JDBC call inside a transaction.
const SQL: Kind = 2;
/// A thread's name, before its first transaction (and after a rename).
const THREAD_NAME: Kind = 3;
/// A hooked method called inside a transaction.
const STEP: Kind = 4;
/// An outgoing HTTP call inside a transaction.
const HTTP: Kind = 5;

/// Words of a transaction record before its path.
const TRANSACTION_WORDS: usize = 15;
/// Words of a call inside a transaction: all of a step's record, and a
/// SQL record's before its statement.
const CALL_WORDS: usize = 7;

/// Longest URL path kept, in bytes.
pub const MAX_PATH: usize = 2048;
/// Longest outgoing URL copied out of the JVM, in bytes.
pub const MAX_URL: usize = 2048;
/// Longest statement text copied out of the JVM, in bytes (normalised
/// later to at most 4 KiB).
pub const MAX_STATEMENT: usize = 6144;
/// Longest thread name kept, in bytes.
pub const MAX_THREAD_NAME: usize = 512;

const FLAG_STUCK: u64 = 1;
const FLAG_DETAILED: u64 = 2;
const FLAG_PATH_IS_ROUTE: u64 = 4;

/// A finished transaction, as the exporter turns it into a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub site: i32,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The thread's CPU time, unless `cpu=off`.
    pub cpu_ns: Option<u64>,
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: u64,
    /// What the helper said of it at its end.
    pub ending: Ending,
    /// The sampler reported it stuck while it ran.
    pub stuck: bool,
    /// JDBC statements it ran and their total time.
    pub sql_count: u32,
    pub sql_ns: u64,
    /// Outgoing HTTP calls it made and their total time.
    pub http_count: u32,
    pub http_ns: u64,
    /// Sent with full detail (`sample=`).
    pub detailed: bool,
    /// Steps past the bound of steps per transaction, not sent.
    pub steps_truncated: u32,
}

/// What the helper said at a transaction's end, its strings resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    pub method: Option<Arc<str>>,
    pub path: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
    /// Negative when there is none.
    pub status: i32,
    pub error_type: Option<Arc<str>>,
    pub thread: Option<Arc<str>>,
}

/// A call that ended inside a transaction (a step, or what a JDBC call
/// has besides its statement), as a child span of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The hooked method, or the JDBC statement's method.
    pub site: i32,
    pub trace_id: u128,
    pub parent_span_id: u64,
    pub span_id: u64,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub error_type: Option<Arc<str>>,
}

/// A JDBC call that ended inside a transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlCall {
    pub call: Call,
    /// The statement with its literals replaced by `?`.
    pub statement: Option<String>,
}

/// An outgoing HTTP call that ended inside a transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpCall {
    pub call: Call,
    /// The response's status; negative when there was none.
    pub status: i32,
    pub method: Option<Arc<str>>,
    /// The URL as the client had it (the exporter strips it before sending).
    pub url: Option<String>,
}

/// A transaction's end as the application thread writes it: its numbers,
/// and its strings as numbers (0: none) or bytes.
pub struct TransactionEnd<'a> {
    pub site: i32,
    pub status: i32,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub cpu_ns: Option<u64>,
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: u64,
    pub thread_id: u64,
    pub stuck: bool,
    pub detailed: bool,
    pub sql_count: u32,
    pub sql_ns: u64,
    pub http_count: u32,
    pub http_ns: u64,
    pub steps_truncated: u32,
    pub method: u32,
    pub route: u32,
    pub error: u32,
    /// The URL path, unless it is the route itself (`path_is_route`) or
    /// the transaction is sent thinned.
    pub path: &'a [u8],
    pub path_is_route: bool,
}

/// Writes a transaction's end; false when the ring is full.
pub fn write_transaction(ring: &Ring, t: &TransactionEnd) -> bool {
    let path = &t.path[..t.path.len().min(MAX_PATH)];
    let Some(mut record) = ring.reserve(
        TRANSACTION,
        TRANSACTION_WORDS + ring::bytes_words(path.len()),
    ) else {
        return false;
    };
    let flags = [
        (t.stuck, FLAG_STUCK),
        (t.detailed, FLAG_DETAILED),
        (t.path_is_route, FLAG_PATH_IS_ROUTE),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |flags, (_, flag)| flags | flag);
    record.push(u64::from(t.site as u32) | u64::from(t.status as u32) << 32);
    record.push(t.start_ns);
    record.push(t.duration_ns);
    record.push(t.cpu_ns.unwrap_or(u64::MAX));
    record.push((t.trace_id >> 64) as u64);
    record.push(t.trace_id as u64);
    record.push(t.span_id);
    record.push(t.parent_span_id);
    record.push(t.thread_id);
    record.push(u64::from(t.sql_count) | flags << 32);
    record.push(t.sql_ns);
    record.push(u64::from(t.method) | u64::from(t.route) << 32);
    record.push(u64::from(t.error) | u64::from(t.steps_truncated) << 32);
    record.push(u64::from(t.http_count));
    record.push(t.http_ns);
    record.push_bytes(path);
    true
}

/// The end of a call inside a transaction (a JDBC statement or a step) as
/// the application thread writes it.
pub struct CallEnd {
    pub site: i32,
    pub trace_id: u128,
    pub parent_span_id: u64,
    pub span_id: u64,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The exception's class as a number from `interned`; 0 for none.
    pub error: u32,
}

/// Reserves a record of `kind` with room for `extra` words after the call's
/// own, and writes the call's words; `None` when the ring is full.
fn reserve_call<'r>(
    ring: &'r Ring,
    kind: Kind,
    call: &CallEnd,
    extra: usize,
) -> Option<ring::Reservation<'r>> {
    let mut record = ring.reserve(kind, CALL_WORDS + extra)?;
    record.push(u64::from(call.site as u32) | u64::from(call.error) << 32);
    record.push((call.trace_id >> 64) as u64);
    record.push(call.trace_id as u64);
    record.push(call.parent_span_id);
    record.push(call.span_id);
    record.push(call.start_ns);
    record.push(call.duration_ns);
    Some(record)
}

/// Writes a JDBC call's end with its statement as the application gave it
/// (normalised on the exporter thread; empty for none); false when the
/// ring is full.
pub fn write_sql(ring: &Ring, call: &CallEnd, statement: &[u8]) -> bool {
    let statement = &statement[..statement.len().min(MAX_STATEMENT)];
    let Some(mut record) = reserve_call(ring, SQL, call, ring::bytes_words(statement.len())) else {
        return false;
    };
    record.push_bytes(statement);
    true
}

/// Writes an outgoing HTTP call's end: its status (negative: none), its
/// method as a number from `interned` and its URL as the client had it;
/// false when the ring is full.
pub fn write_http(ring: &Ring, call: &CallEnd, status: i32, method: u32, url: &[u8]) -> bool {
    let url = &url[..url.len().min(MAX_URL)];
    let Some(mut record) = reserve_call(ring, HTTP, call, 1 + ring::bytes_words(url.len())) else {
        return false;
    };
    record.push(u64::from(status as u32) | u64::from(method) << 32);
    record.push_bytes(url);
    true
}

/// Writes a step's end; false when the ring is full.
pub fn write_step(ring: &Ring, call: &CallEnd) -> bool {
    reserve_call(ring, STEP, call, 0).is_some()
}

/// Writes the name of the thread with this id; false when the ring is full.
pub fn write_thread_name(ring: &Ring, thread_id: u64, name: &[u8]) -> bool {
    let name = &name[..name.len().min(MAX_THREAD_NAME)];
    let Some(mut record) = ring.reserve(THREAD_NAME, 1 + ring::bytes_words(name.len())) else {
        return false;
    };
    record.push(thread_id);
    record.push_bytes(name);
    true
}

/// What the exporter reads from the rings.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    Transaction(Finished),
    Sql(SqlCall),
    Http(HttpCall),
    Step(Call),
}

/// Thread names the reader keeps: enough for every thread of a large
/// server; past it, the names least recently used are forgotten.
const MAX_THREAD_NAMES: usize = 16 * 1024;

/// The exporter's side: turns records back into transactions and calls.
#[derive(Default)]
pub struct Reader {
    /// Thread id to its name and the read (a count) that last used it.
    thread_names: HashMap<u64, (Arc<str>, u64)>,
    reads: u64,
    scratch: Vec<u64>,
    bytes: Vec<u8>,
}

impl Reader {
    /// Reads at most `limit` records from the rings, handing each
    /// transaction and call to `take`, with strings resolved through
    /// `resolve` (numbers from `interned`); returns how many it read.
    pub fn read(
        &mut self,
        rings: &[Ring],
        limit: usize,
        resolve: &dyn Fn(u32) -> Option<Arc<str>>,
        take: &mut dyn FnMut(Ended),
    ) -> usize {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut count = 0;
        for ring in rings {
            count += ring.read(&mut scratch, limit - count, |kind, body| {
                if let Some(ended) = self.decode(kind, body, resolve) {
                    take(ended);
                }
            });
        }
        self.scratch = scratch;
        self.forget_old_names();
        count
    }

    fn decode(
        &mut self,
        kind: Kind,
        body: &[u64],
        resolve: &dyn Fn(u32) -> Option<Arc<str>>,
    ) -> Option<Ended> {
        self.reads += 1;
        match kind {
            TRANSACTION if body.len() >= TRANSACTION_WORDS => {
                let w = body;
                let flags = w[9] >> 32;
                let route = resolve((w[11] >> 32) as u32);
                let path = if flags & FLAG_PATH_IS_ROUTE != 0 {
                    route.clone()
                } else {
                    let (bytes, _) = ring::take_bytes(&w[TRANSACTION_WORDS..], &mut self.bytes);
                    (!bytes.is_empty()).then(|| Arc::from(String::from_utf8_lossy(bytes)))
                };
                let thread = self.thread_names.get_mut(&w[8]).map(|(name, used)| {
                    *used = self.reads;
                    name.clone()
                });
                Some(Ended::Transaction(Finished {
                    site: w[0] as u32 as i32,
                    start_ns: w[1],
                    duration_ns: w[2],
                    cpu_ns: (w[3] != u64::MAX).then_some(w[3]),
                    trace_id: u128::from(w[4]) << 64 | u128::from(w[5]),
                    span_id: w[6],
                    parent_span_id: w[7],
                    ending: Ending {
                        method: resolve(w[11] as u32),
                        path,
                        route,
                        status: (w[0] >> 32) as u32 as i32,
                        error_type: resolve(w[12] as u32),
                        thread,
                    },
                    stuck: flags & FLAG_STUCK != 0,
                    sql_count: w[9] as u32,
                    sql_ns: w[10],
                    http_count: w[13] as u32,
                    http_ns: w[14],
                    detailed: flags & FLAG_DETAILED != 0,
                    steps_truncated: (w[12] >> 32) as u32,
                }))
            }
            SQL if body.len() >= CALL_WORDS => {
                let (bytes, _) = ring::take_bytes(&body[CALL_WORDS..], &mut self.bytes);
                let statement = (!bytes.is_empty())
                    .then(|| crate::sql::normalize(&String::from_utf8_lossy(bytes)));
                Some(Ended::Sql(SqlCall {
                    call: call(body, resolve),
                    statement,
                }))
            }
            HTTP if body.len() > CALL_WORDS => {
                let (bytes, _) = ring::take_bytes(&body[CALL_WORDS + 1..], &mut self.bytes);
                let w = body[CALL_WORDS];
                Some(Ended::Http(HttpCall {
                    call: call(body, resolve),
                    status: w as u32 as i32,
                    method: resolve((w >> 32) as u32),
                    url: (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned()),
                }))
            }
            STEP if body.len() >= CALL_WORDS => Some(Ended::Step(call(body, resolve))),
            THREAD_NAME if !body.is_empty() => {
                let (bytes, _) = ring::take_bytes(&body[1..], &mut self.bytes);
                let name: Arc<str> = Arc::from(String::from_utf8_lossy(bytes));
                self.thread_names.insert(body[0], (name, self.reads));
                None
            }
            _ => None,
        }
    }

    /// Past [`MAX_THREAD_NAMES`], forgets the half least recently used.
    fn forget_old_names(&mut self) {
        if self.thread_names.len() <= MAX_THREAD_NAMES {
            return;
        }
        let mut uses: Vec<u64> = self.thread_names.values().map(|(_, used)| *used).collect();
        let (_, median, _) = uses.select_nth_unstable(MAX_THREAD_NAMES / 2);
        let cut = *median;
        self.thread_names.retain(|_, (_, used)| *used > cut);
    }
}

/// The call in the first [`CALL_WORDS`] of a record.
fn call(w: &[u64], resolve: &dyn Fn(u32) -> Option<Arc<str>>) -> Call {
    Call {
        site: w[0] as u32 as i32,
        trace_id: u128::from(w[1]) << 64 | u128::from(w[2]),
        parent_span_id: w[3],
        span_id: w[4],
        start_ns: w[5],
        duration_ns: w[6],
        error_type: resolve((w[0] >> 32) as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(id: u32) -> Option<Arc<str>> {
        ["GET", "/orders/*", "java.io.IOException"]
            .get((id as usize).checked_sub(1)?)
            .map(|s| Arc::from(*s))
    }

    fn read(ring: &Ring, reader: &mut Reader) -> Vec<Ended> {
        let mut out = Vec::new();
        reader.read(std::slice::from_ref(ring), usize::MAX, &resolve, &mut |e| {
            out.push(e)
        });
        out
    }

    fn transaction(path: &[u8], path_is_route: bool) -> TransactionEnd<'_> {
        TransactionEnd {
            site: 3,
            status: 503,
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 1_234_567,
            cpu_ns: Some(456),
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
            parent_span_id: 7,
            thread_id: 42,
            stuck: true,
            detailed: false,
            sql_count: 2,
            sql_ns: 99,
            http_count: 3,
            http_ns: 77,
            steps_truncated: 44,
            method: 1,
            route: 2,
            error: 3,
            path,
            path_is_route,
        }
    }

    #[test]
    fn a_transaction_reads_back_as_it_was_written_with_its_thread_name() {
        let ring = Ring::new(1 << 16);
        let mut reader = Reader::default();
        assert!(write_thread_name(&ring, 42, b"http-nio-8080-exec-1"));
        assert!(write_transaction(&ring, &transaction(b"/orders/17", false)));
        assert!(write_transaction(&ring, &transaction(b"", true)));
        let ended = read(&ring, &mut reader);
        let Ended::Transaction(first) = &ended[0] else {
            panic!("{ended:?}")
        };
        assert_eq!(
            *first,
            Finished {
                site: 3,
                start_ns: 1_700_000_000_000_000_000,
                duration_ns: 1_234_567,
                cpu_ns: Some(456),
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                span_id: 0x00f0_67aa_0ba9_02b7,
                parent_span_id: 7,
                ending: Ending {
                    method: Some("GET".into()),
                    path: Some("/orders/17".into()),
                    route: Some("/orders/*".into()),
                    status: 503,
                    error_type: Some("java.io.IOException".into()),
                    thread: Some("http-nio-8080-exec-1".into()),
                },
                stuck: true,
                sql_count: 2,
                sql_ns: 99,
                http_count: 3,
                http_ns: 77,
                detailed: false,
                steps_truncated: 44,
            }
        );
        let Ended::Transaction(second) = &ended[1] else {
            panic!("{ended:?}")
        };
        assert_eq!(second.ending.path.as_deref(), Some("/orders/*"));
        assert_eq!(ended.len(), 2);
    }

    #[test]
    fn a_sql_call_reads_back_normalised_and_cpu_off_reads_back_as_none() {
        let ring = Ring::new(1 << 16);
        let mut reader = Reader::default();
        let mut t = transaction(b"", false);
        t.cpu_ns = None;
        t.status = -1;
        t.method = 0;
        t.route = 0;
        t.error = 0;
        assert!(write_transaction(&ring, &t));
        assert!(write_sql(
            &ring,
            &call_end(3),
            b"select * from t where id = 42"
        ));
        let ended = read(&ring, &mut reader);
        let Ended::Transaction(t) = &ended[0] else {
            panic!("{ended:?}")
        };
        assert_eq!(t.cpu_ns, None);
        assert_eq!(t.ending.status, -1);
        assert_eq!(t.ending.method, None);
        assert_eq!(t.ending.path, None);
        assert_eq!(t.ending.thread, None, "no name was written for it");
        assert_eq!(
            ended[1],
            Ended::Sql(SqlCall {
                call: call_of(Some("java.io.IOException")),
                statement: Some("select * from t where id = ?".into()),
            })
        );
    }

    fn call_end(error: u32) -> CallEnd {
        CallEnd {
            site: 9,
            trace_id: 5,
            parent_span_id: 6,
            span_id: 7,
            start_ns: 8,
            duration_ns: 9,
            error,
        }
    }

    /// What [`call_end`] reads back as.
    fn call_of(error_type: Option<&str>) -> Call {
        Call {
            site: 9,
            trace_id: 5,
            parent_span_id: 6,
            span_id: 7,
            start_ns: 8,
            duration_ns: 9,
            error_type: error_type.map(Arc::from),
        }
    }

    #[test]
    fn a_step_reads_back_as_a_call_with_its_error_and_nothing_else() {
        let ring = Ring::new(1 << 16);
        let mut reader = Reader::default();
        assert!(write_step(&ring, &call_end(3)));
        assert!(write_step(&ring, &call_end(0)));
        assert_eq!(
            read(&ring, &mut reader),
            [
                Ended::Step(call_of(Some("java.io.IOException"))),
                Ended::Step(call_of(None)),
            ]
        );
    }

    #[test]
    fn an_outgoing_call_reads_back_with_its_status_method_and_url() {
        let ring = Ring::new(1 << 16);
        let mut reader = Reader::default();
        let long = format!("http://h/{}", "x".repeat(MAX_URL));
        assert!(write_http(
            &ring,
            &call_end(3),
            -1,
            1,
            b"http://h:8080/a?b=c"
        ));
        assert!(write_http(&ring, &call_end(0), 503, 0, long.as_bytes()));
        let ended = read(&ring, &mut reader);
        assert_eq!(
            ended[0],
            Ended::Http(HttpCall {
                call: call_of(Some("java.io.IOException")),
                status: -1,
                method: Some("GET".into()),
                url: Some("http://h:8080/a?b=c".into()),
            })
        );
        let Ended::Http(cut) = &ended[1] else {
            panic!("{ended:?}")
        };
        assert_eq!((cut.status, cut.method.clone()), (503, None));
        assert_eq!(cut.url.as_deref(), Some(&long[..MAX_URL]), "bounded");
    }

    #[test]
    fn thread_names_past_the_bound_forget_the_least_recently_used() {
        let ring = Ring::new(1 << 16);
        let mut reader = Reader::default();
        assert!(write_thread_name(&ring, 1, b"busy"));
        read(&ring, &mut reader);
        for id in 2..(MAX_THREAD_NAMES as u64 + 10) {
            assert!(write_thread_name(&ring, id, b"short-lived"));
            if id % 1000 == 0 {
                assert!(write_transaction(&ring, &transaction(b"", true)));
                let mut t = transaction(b"", true);
                t.thread_id = 1;
                assert!(write_transaction(&ring, &t));
                read(&ring, &mut reader);
            }
        }
        read(&ring, &mut reader);
        assert!(reader.thread_names.len() <= MAX_THREAD_NAMES);
        assert!(
            reader.thread_names.contains_key(&1),
            "a thread still at work keeps its name"
        );
    }
}
