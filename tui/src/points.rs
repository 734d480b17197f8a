//! The transactions the viewer holds: one compact record each (about 64
//! bytes), names interned, plus the filter the operator set and the measure
//! the Y axis shows. Everything the scatter, the lists and the selection
//! count is read from here.

use std::collections::HashMap;
use std::sync::Arc;

use jvmapm_analyzer::glob::Glob;
use jvmapm_analyzer::point::{SpanId, TraceId};
use jvmapm_analyzer::query::answers::PointRow;

/// Marks an absent optional measure in [`Txn`].
const NONE: u32 = u32::MAX;

/// One transaction, compact. Times in microseconds saturate at about 71
/// minutes, which the Y axis never needs to tell apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Txn {
    pub end_ms: u64,
    pub elapsed_us: u32,
    cpu_us: u32,
    sql_us: u32,
    http_us: u32,
    pub sql_count: u16,
    /// HTTP status, 0 when the transaction had none.
    pub status_code: u16,
    pub service: u16,
    pub instance: u16,
    pub endpoint: u32,
    pub error: bool,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

impl Txn {
    pub fn cpu_us(&self) -> Option<u32> {
        (self.cpu_us != NONE).then_some(self.cpu_us)
    }

    pub fn sql_us(&self) -> Option<u32> {
        (self.sql_us != NONE).then_some(self.sql_us)
    }

    /// Time spent in outgoing calls, when the sender counted it.
    pub fn http_us(&self) -> Option<u32> {
        (self.http_us != NONE).then_some(self.http_us)
    }

    /// The value the Y axis shows for `measure`, when the transaction has it.
    pub fn value_us(&self, measure: Measure) -> Option<u32> {
        match measure {
            Measure::Elapsed => Some(self.elapsed_us),
            Measure::Cpu => self.cpu_us(),
            Measure::Sql => self.sql_us(),
            Measure::Outgoing => self.http_us(),
        }
    }
}

/// What the Y axis measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    Elapsed,
    Cpu,
    Sql,
    /// Time spent waiting on outgoing calls (other services).
    Outgoing,
}

impl Measure {
    pub fn next(self) -> Measure {
        match self {
            Measure::Elapsed => Measure::Cpu,
            Measure::Cpu => Measure::Sql,
            Measure::Sql => Measure::Outgoing,
            Measure::Outgoing => Measure::Elapsed,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Measure::Elapsed => "elapsed",
            Measure::Cpu => "cpu time",
            Measure::Sql => "sql time",
            Measure::Outgoing => "outgoing time",
        }
    }
}

/// Interned names: an id per distinct string.
#[derive(Default)]
pub struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let name: Arc<str> = Arc::from(name);
        let id = self.names.len() as u32;
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", |n| n)
    }
}

/// The operator's filter; the empty filter lets everything through.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub service: Option<String>,
    pub endpoint: Option<String>,
    pub errors_only: bool,
    pub min_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

impl Filter {
    /// The filter in words, for the line that always shows it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.service {
            parts.push(format!("service={s}"));
        }
        if let Some(e) = &self.endpoint {
            parts.push(format!("endpoint={e}"));
        }
        if self.errors_only {
            parts.push("errors only".to_string());
        }
        match (self.min_ms, self.max_ms) {
            (Some(lo), Some(hi)) => parts.push(format!("elapsed {lo}..{hi} ms")),
            (Some(lo), None) => parts.push(format!("elapsed >= {lo} ms")),
            (None, Some(hi)) => parts.push(format!("elapsed <= {hi} ms")),
            (None, None) => {}
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A filter ready to test transactions: globs compiled, and each name id's
/// verdict remembered.
pub struct CompiledFilter {
    service: Option<Glob>,
    endpoint: Option<Glob>,
    errors_only: bool,
    min_us: u64,
    max_us: u64,
    services: Vec<bool>,
    endpoints: Vec<bool>,
}

impl CompiledFilter {
    pub fn new(filter: &Filter, points: &Points) -> CompiledFilter {
        let service = filter.service.as_deref().map(Glob::new);
        let endpoint = filter.endpoint.as_deref().map(Glob::new);
        let verdicts = |glob: &Option<Glob>, names: &Names| -> Vec<bool> {
            names
                .names
                .iter()
                .map(|n| glob.as_ref().is_none_or(|g| g.matches(n)))
                .collect()
        };
        CompiledFilter {
            services: verdicts(&service, &points.services),
            endpoints: verdicts(&endpoint, &points.endpoints),
            service,
            endpoint,
            errors_only: filter.errors_only,
            min_us: filter.min_ms.map_or(0, |ms| ms.saturating_mul(1000)),
            max_us: filter.max_ms.map_or(u64::MAX, |ms| ms.saturating_mul(1000)),
        }
    }

    pub fn accepts(&self, t: &Txn, points: &Points) -> bool {
        let by_name = |verdicts: &[bool], id: u32, glob: &Option<Glob>, names: &Names| {
            verdicts
                .get(id as usize)
                .copied()
                .unwrap_or_else(|| glob.as_ref().is_none_or(|g| g.matches(names.get(id))))
        };
        (!self.errors_only || t.error)
            && (self.min_us..=self.max_us).contains(&u64::from(t.elapsed_us))
            && by_name(
                &self.services,
                t.service.into(),
                &self.service,
                &points.services,
            )
            && by_name(
                &self.endpoints,
                t.endpoint,
                &self.endpoint,
                &points.endpoints,
            )
    }
}

/// All transactions held, in arrival order.
#[derive(Default)]
pub struct Points {
    pub txns: Vec<Txn>,
    pub services: Names,
    pub instances: Names,
    pub endpoints: Names,
}

impl Points {
    pub fn push(&mut self, row: &PointRow) -> &Txn {
        let saturate = |us: u64| u32::try_from(us).unwrap_or(NONE - 1);
        let txn = Txn {
            end_ms: row.end_ms,
            elapsed_us: saturate(row.elapsed_us),
            cpu_us: row.cpu_us.map_or(NONE, saturate),
            sql_us: row.sql_us.map_or(NONE, saturate),
            http_us: row.http_us.map_or(NONE, saturate),
            sql_count: row
                .sql_count
                .map_or(0, |c| u16::try_from(c).unwrap_or(u16::MAX)),
            status_code: row.status_code.unwrap_or(0),
            service: small_id(self.services.id(&row.service)),
            instance: small_id(self.instances.id(&row.instance)),
            endpoint: self.endpoints.id(&row.endpoint),
            error: row.error,
            trace_id: row.trace_id,
            span_id: row.span_id,
        };
        self.txns.push(txn);
        self.txns.last().expect("just pushed")
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }
}

/// Ids of services and instances fit 16 bits; beyond that many, they share
/// the last id (the viewer then shows one of the names for the rest).
fn small_id(id: u32) -> u16 {
    u16::try_from(id).unwrap_or(u16::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row for tests: `endpoint` ending at `end_ms` after `elapsed_ms`.
    pub fn row(end_ms: u64, elapsed_ms: u64, endpoint: &str, error: bool) -> PointRow {
        PointRow {
            end_ms,
            elapsed_us: elapsed_ms * 1000,
            service: "orders".into(),
            instance: "orders-1".into(),
            endpoint: endpoint.into(),
            status_code: Some(if error { 500 } else { 200 }),
            error,
            trace_id: TraceId::from(u128::from(end_ms + 1).to_be_bytes()),
            span_id: SpanId::from((elapsed_ms + 1).to_be_bytes()),
            cpu_us: Some(elapsed_ms * 500),
            sql_count: None,
            sql_us: None,
            http_count: None,
            http_us: None,
        }
    }

    #[test]
    fn rows_become_compact_records_with_interned_names() {
        let mut points = Points::default();
        points.push(&row(1_000, 12, "/a", false));
        points.push(&row(2_000, 30, "/b", true));
        points.push(&row(3_000, 5, "/a", false));
        assert_eq!(points.txns[0].endpoint, points.txns[2].endpoint);
        assert_eq!(points.endpoints.get(points.txns[1].endpoint), "/b");
        assert_eq!(points.txns[1].cpu_us(), Some(15_000));
        assert_eq!(points.txns[1].sql_us(), None);
        assert_eq!(
            points.txns[0].trace_id.to_string(),
            format!("{:032x}", 1_001)
        );
        assert!(std::mem::size_of::<Txn>() <= 64);
    }

    #[test]
    fn a_row_without_an_http_status_is_taken_in() {
        let json = serde_json::json!({
            "end_ms": 1_000, "elapsed_us": 5_000, "service": "orders",
            "instance": "orders-1", "endpoint": "POST /pay", "status_code": null,
            "error": true, "trace_id": format!("{:032x}", 1), "span_id": format!("{:016x}", 2),
            "cpu_us": null, "sql_count": null, "sql_us": null
        });
        let row: PointRow = serde_json::from_value(json).unwrap();
        assert_eq!(row.status_code, None);
        let mut points = Points::default();
        assert_eq!(points.push(&row).status_code, 0, "shown as none");
    }

    #[test]
    fn the_filter_tests_names_errors_and_elapsed() {
        let mut points = Points::default();
        for r in [
            row(1, 12, "/orders/1", false),
            row(2, 300, "/orders/2", true),
            row(3, 50, "/health", false),
        ] {
            points.push(&r);
        }
        let count = |f: &Filter| {
            let c = CompiledFilter::new(f, &points);
            points.txns.iter().filter(|t| c.accepts(t, &points)).count()
        };
        assert_eq!(count(&Filter::default()), 3);
        let orders = Filter {
            endpoint: Some("/orders/*".into()),
            ..Filter::default()
        };
        assert_eq!(count(&orders), 2);
        let errors = Filter {
            errors_only: true,
            ..orders.clone()
        };
        assert_eq!(count(&errors), 1);
        let slow = Filter {
            min_ms: Some(40),
            max_ms: Some(100),
            ..Filter::default()
        };
        assert_eq!(count(&slow), 1);
        assert_eq!(
            errors.describe(),
            "endpoint=/orders/*, errors only",
            "the filter in force is shown in words"
        );
    }
}
