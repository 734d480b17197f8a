//! The query layer's reads of ClickHouse: [`Points`] for [`ClickHouse`].
//! Ranges, errors and elapsed bounds are filtered in SQL, name globs here;
//! statistics are grouped in ClickHouse by the buckets of the meters' HDR
//! histograms and added up here, so they are exactly what the local store
//! answers over the same points, whichever analyzer stored them.

use std::collections::{HashMap, HashSet};
use std::io;

use clickhouse::{Row, RowOwned, RowRead};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use serde::Deserialize;

use super::rows::{PointRecord, SpanRecord};
use super::{seq, timed, ClickHouse};
use crate::meter::{Accumulator, Counts};
use crate::point::{hex, Point};
use crate::query::jvm::JvmView;
use crate::query::local::decode;
use crate::query::source::{Kept, Points, Want};
use crate::query::{Cancel, Matcher, Page, XlogFilter, SPANS_AT_ONCE};
use crate::store::children::MAX_PER_TRANSACTION;
use crate::store::instances::{InstanceInfo, Instances};
use crate::store::Strings;

/// How far outside their transaction's time its spans are looked for.
const SKEW_MS: u64 = 1_000;
/// How far from a range JVM events are read (their time is their start).
const EVENT_SLACK_MS: u64 = 3_600_000;

impl ClickHouse {
    /// Runs `sql` and collects its rows.
    fn rows<T: RowOwned + RowRead>(&self, sql: &str) -> io::Result<Vec<T>> {
        self.runtime
            .block_on(timed(self.client.query(sql).fetch_all::<T>()))
    }

    /// Streams the points `sql` selects that match `filter` to `each`
    /// until it returns false.
    fn stream(
        &self,
        sql: &str,
        filter: &XlogFilter,
        mut each: impl FnMut(Point) -> bool,
    ) -> io::Result<()> {
        let mut matcher = Matcher::new(filter, &self.strings);
        self.runtime.block_on(async {
            let mut cursor = self
                .client
                .query(sql)
                .fetch::<PointRecord>()
                .map_err(|e| io::Error::other(format!("ClickHouse: {e}")))?;
            loop {
                if filter.cancel.is_set() {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "the query was cancelled",
                    ));
                }
                let Some(row) = timed(cursor.next()).await? else {
                    return Ok(());
                };
                let point = row.point(|name| self.id(name));
                if matcher.matches(&point) && !each(point) {
                    return Ok(());
                }
            }
        })
    }
}

/// The SQL condition of what `filter` asks, but its globs.
fn condition(filter: &XlogFilter) -> String {
    let mut sql = format!(
        "end_ms >= {} AND end_ms <= {}",
        filter.from_ms, filter.to_ms
    );
    if filter.errors_only {
        sql.push_str(" AND error = 1");
    }
    if let Some(min) = filter.min_us {
        sql.push_str(&format!(" AND elapsed_us >= {min}"));
    }
    if let Some(max) = filter.max_us {
        sql.push_str(&format!(" AND elapsed_us <= {max}"));
    }
    if let Some(trace) = filter.trace_id {
        sql.push_str(&format!(" AND trace_id = unhex('{}')", hex(&trace)));
    }
    sql
}

/// A string as a quoted SQL literal.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Points for ClickHouse {
    fn strings(&self) -> &Strings {
        &self.strings
    }

    fn newest_seq(&self) -> u64 {
        seq::watermark()
    }

    fn page(&self, filter: &XlogFilter, after: u64, limit: usize) -> io::Result<Page> {
        let watermark = seq::watermark();
        let sql = format!(
            "SELECT {} FROM points WHERE {} AND seq > {after} AND seq <= {watermark} ORDER BY seq",
            PointRecord::COLUMNS,
            condition(filter)
        );
        let mut points = Vec::new();
        self.stream(&sql, filter, |p| {
            points.push(p);
            points.len() <= limit
        })?;
        if points.len() <= limit {
            return Ok(Page {
                points,
                cursor: watermark.max(after),
            });
        }
        // Cut after the last whole seq: analyzers that drew the same number
        // may share one, and the cursor must not split them.
        let next = points[limit].seq;
        points.truncate(limit);
        if points.last().is_some_and(|p| p.seq == next) {
            points.retain(|p| p.seq != next);
        }
        let cursor = points.last().map_or(after, |p| p.seq);
        Ok(Page { points, cursor })
    }

    fn scan(&self, filter: &XlogFilter, each: &mut dyn FnMut(&Point)) -> io::Result<()> {
        let sql = format!(
            "SELECT {} FROM points WHERE {}",
            PointRecord::COLUMNS,
            condition(filter)
        );
        self.stream(&sql, filter, |p| {
            each(&p);
            true
        })
    }

    fn spans(&self, points: &[Point], want: Want) -> io::Result<Vec<Result<Kept, String>>> {
        let mut out = Vec::with_capacity(points.len());
        for chunk in points.chunks(SPANS_AT_ONCE) {
            let traces: HashSet<[u8; 16]> = chunk.iter().map(|p| p.trace_id).collect();
            let list: Vec<String> = traces
                .iter()
                .map(|t| format!("unhex('{}')", hex(t)))
                .collect();
            let from = chunk
                .iter()
                .map(|p| p.end_ms.saturating_sub(p.elapsed_us / 1000))
                .min()
                .unwrap_or(0)
                .saturating_sub(SKEW_MS);
            let to = chunk.iter().map(|p| p.end_ms).max().unwrap_or(0) + SKEW_MS;
            let resource = if want == Want::Full {
                "resource"
            } else {
                "'' AS resource"
            };
            let own_only = if want == Want::Own {
                " AND is_point = 1"
            } else {
                ""
            };
            let sql = format!(
                "SELECT trace_id, span_id, parent_span_id, end_ms, is_point, {resource}, span \
                 FROM spans WHERE trace_id IN ({}) AND end_ms >= {from} AND end_ms <= {to}{own_only}",
                list.join(", ")
            );
            let mut by_trace: HashMap<[u8; 16], Vec<SpanRecord>> = HashMap::new();
            for row in self.rows::<SpanRecord>(&sql)? {
                by_trace.entry(row.trace_id).or_default().push(row);
            }
            let none = Vec::new();
            for point in chunk {
                let rows = by_trace.get(&point.trace_id).unwrap_or(&none);
                out.push(kept(point, rows, want));
            }
        }
        Ok(out)
    }

    fn find_point(
        &self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        _near_ms: Option<u64>,
    ) -> io::Result<Option<Point>> {
        let ids = format!(
            "trace_id = unhex('{}') AND span_id = unhex('{}')",
            hex(trace_id),
            hex(span_id)
        );
        #[derive(Row, Deserialize)]
        struct End {
            end_ms: u64,
        }
        let Some(end) = self
            .rows::<End>(&format!(
                "SELECT end_ms FROM spans WHERE {ids} AND is_point = 1 LIMIT 1"
            ))?
            .pop()
        else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM points WHERE end_ms = {} AND {ids} LIMIT 1",
            PointRecord::COLUMNS,
            end.end_ms
        );
        Ok(self
            .rows::<PointRecord>(&sql)?
            .pop()
            .map(|row| row.point(|name| self.id(name))))
    }

    fn jvm(&self, instance: &str, from_ms: u64, to_ms: u64) -> io::Result<JvmView> {
        #[derive(Row, Deserialize)]
        struct Sample {
            series: String,
            t_ms: u64,
            value: f64,
        }
        #[derive(Row, Deserialize)]
        struct Event {
            #[serde(with = "super::rows::bytes")]
            event: Vec<u8>,
        }
        let mut view = JvmView::default();
        let sql = format!(
            "SELECT series, t_ms, value FROM jvm_metrics \
             WHERE instance = {} AND t_ms >= {from_ms} AND t_ms <= {to_ms}",
            quoted(instance)
        );
        for s in self.rows::<Sample>(&sql)? {
            view.series
                .entry(s.series)
                .or_default()
                .push((s.t_ms, s.value));
        }
        let sql = format!(
            "SELECT event FROM jvm_events WHERE instance = {} AND t_ms >= {} AND t_ms <= {}",
            quoted(instance),
            from_ms.saturating_sub(EVENT_SLACK_MS),
            to_ms.saturating_add(EVENT_SLACK_MS)
        );
        for e in self.rows::<Event>(&sql)? {
            view.add_event(&e.event, instance, from_ms, to_ms);
        }
        view.sort();
        Ok(view)
    }

    fn metered_here(&self) -> bool {
        false
    }

    fn accumulate(
        &self,
        (from_ms, to_ms): (u64, u64),
        stored_since_ms: u64,
        _cancel: &Cancel,
    ) -> io::Result<Accumulator> {
        #[derive(Row, Deserialize)]
        struct Bucket {
            service: String,
            endpoint: String,
            elapsed_us: u64,
            count: u64,
            errors: u64,
            first_ms: u64,
            last_ms: u64,
        }
        // The lowest value of each bucket of a 3-digit HDR histogram (the
        // meters'): exact below 2048, then 1024 buckets per power of two.
        let sql = format!(
            "SELECT service, endpoint, bitShiftLeft(bitShiftRight(v, s), s) AS bucket, \
             count(), countIf(error = 1), min(end_ms), max(end_ms) FROM ( \
               SELECT service, endpoint, error, end_ms, \
                 greatest(toUInt64(1), least(elapsed_us, toUInt64({}))) AS v, \
                 toUInt64(greatest(0, toInt64(floor(log2(v))) - 10)) AS s \
               FROM points WHERE end_ms >= {from_ms} AND end_ms <= {to_ms} \
                 AND seq >= {}) \
             GROUP BY service, endpoint, bucket",
            crate::meter::HIGHEST_US,
            seq::first_of(stored_since_ms)
        );
        let mut acc = Accumulator::default();
        for b in self.rows::<Bucket>(&sql)? {
            let key = (self.id(&b.service), self.id(&b.endpoint));
            acc.record_bucket(key, b.elapsed_us, b.count, b.errors, b.first_ms, b.last_ms);
        }
        Ok(acc)
    }

    fn tps(&self, from_ms: u64, to_ms: u64) -> io::Result<Option<Vec<(u64, Counts)>>> {
        #[derive(Row, Deserialize)]
        struct Second {
            second: u64,
            count: u64,
            errors: u64,
        }
        let sql = format!(
            "SELECT intDiv(end_ms, 1000) AS second, count(), countIf(error = 1) FROM points \
             WHERE end_ms >= {from_ms} AND end_ms <= {to_ms} GROUP BY second ORDER BY second"
        );
        let seconds = self.rows::<Second>(&sql)?;
        Ok(Some(
            seconds
                .into_iter()
                .map(|s| {
                    let counts = Counts {
                        count: s.count,
                        errors: s.errors,
                    };
                    (s.second, counts)
                })
                .collect(),
        ))
    }

    fn instances(&self, _local: &Instances) -> io::Result<Vec<InstanceInfo>> {
        let sql =
            "SELECT service, instance, min(seen_ms), max(seen_ms), argMax(attributes, seen_ms) \
                   FROM instances GROUP BY service, instance ORDER BY service, instance";
        let rows = self.rows::<(String, String, u64, u64, String)>(sql)?;
        Ok(rows
            .into_iter()
            .map(
                |(service, instance, first_seen_ms, last_seen_ms, attributes)| InstanceInfo {
                    service,
                    instance,
                    first_seen_ms,
                    last_seen_ms,
                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                },
            )
            .collect())
    }
}

/// The spans kept of `point` among the `rows` of its trace: its own, and
/// those inside it (the spans under it that are not transactions
/// themselves), each once, at most [`MAX_PER_TRANSACTION`].
fn kept(point: &Point, rows: &[SpanRecord], want: Want) -> Result<Kept, String> {
    let own = rows
        .iter()
        .find(|r| r.is_point == 1 && r.span_id == point.span_id)
        .ok_or("its span is not in ClickHouse")?;
    let span = decode(&own.span)?;
    let mut children = Vec::new();
    if want != Want::Own {
        let mut under: HashMap<[u8; 8], Vec<&SpanRecord>> = HashMap::new();
        for r in rows.iter().filter(|r| r.is_point == 0) {
            under.entry(r.parent_span_id).or_default().push(r);
        }
        let mut seen = HashSet::new();
        let mut parents = vec![point.span_id];
        while let Some(parent) = parents.pop() {
            for child in under.get(&parent).into_iter().flatten() {
                if children.len() == MAX_PER_TRANSACTION {
                    break;
                }
                if seen.insert(child.span_id) {
                    children.push((child.span_id, decode(&child.span)));
                    parents.push(child.span_id);
                }
            }
        }
    }
    let resource = (want == Want::Full).then(|| {
        ResourceSpans::decode(own.resource.as_slice())
            .map_err(|e| format!("the stored resource cannot be decoded: {e}"))
    });
    Ok(Kept {
        span,
        children,
        resource,
    })
}
