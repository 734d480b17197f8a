//! The query layer's reads of a local data directory: [`Points`] for
//! [`Store`], over its segments' point records and span details.

use std::io;

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::jvm::{self, JvmView};
use super::source::{Kept, Points, Want};
use super::{walk, Cancel, Matcher, Page, XlogFilter};
use crate::meter::{Accumulator, Counts};
use crate::point::{DetailRef, Point};
use crate::store::children::ChildRef;
use crate::store::instances::{InstanceInfo, Instances};
use crate::store::partition::hour_of;
use crate::store::{detail, Segment, Store, Strings};

impl Points for Store {
    fn strings(&self) -> &Strings {
        &self.strings
    }

    fn newest_seq(&self) -> u64 {
        self.committed_seq()
    }

    fn page(&self, filter: &XlogFilter, after: u64, limit: usize) -> io::Result<Page> {
        let committed = self.committed_seq();
        let mut matcher = Matcher::new(filter, &self.strings);
        let mut points = Vec::new();
        for seg in self.segments_in(filter.from_ms, filter.to_ms) {
            let mut found = 0;
            walk(
                &seg,
                seg.first_after(after)?,
                committed,
                &filter.cancel,
                |p| {
                    if matcher.matches(&p) {
                        points.push(p);
                        found += 1;
                    }
                    found < limit
                },
            )?;
        }
        points.sort_unstable_by_key(|p| p.seq);
        let cursor = if points.len() >= limit {
            points.truncate(limit);
            points.last().map_or(after, |p| p.seq)
        } else {
            committed.max(after)
        };
        Ok(Page { points, cursor })
    }

    fn scan(&self, filter: &XlogFilter, each: &mut dyn FnMut(&Point)) -> io::Result<()> {
        let committed = self.committed_seq();
        let mut matcher = Matcher::new(filter, &self.strings);
        for seg in self.segments_in(filter.from_ms, filter.to_ms) {
            walk(&seg, 0, committed, &filter.cancel, |p| {
                if matcher.matches(&p) {
                    each(&p);
                }
                true
            })?;
        }
        Ok(())
    }

    fn spans(&self, points: &[Point], want: Want) -> io::Result<Vec<Result<Kept, String>>> {
        Ok(points.iter().map(|p| self.kept(p, want)).collect())
    }

    fn find_point(
        &self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        near_ms: Option<u64>,
    ) -> io::Result<Option<Point>> {
        Ok(Store::find_point(self, trace_id, span_id, near_ms)?.map(|(_, p)| p))
    }

    fn jvm(&self, instance: &str, from_ms: u64, to_ms: u64) -> io::Result<JvmView> {
        jvm::read_local(self, instance, from_ms, to_ms)
    }

    fn metered_here(&self) -> bool {
        true
    }

    fn accumulate(
        &self,
        (from_ms, to_ms): (u64, u64),
        _stored_since_ms: u64,
        cancel: &Cancel,
    ) -> io::Result<Accumulator> {
        let mut acc = Accumulator::default();
        let filter = XlogFilter {
            cancel: cancel.clone(),
            ..XlogFilter::range(from_ms, to_ms)
        };
        self.scan(&filter, &mut |p| {
            acc.record((p.service, p.endpoint), p.end_ms, p.elapsed_us, p.error)
        })?;
        Ok(acc)
    }

    fn tps(&self, _from_ms: u64, _to_ms: u64) -> io::Result<Option<Vec<(u64, Counts)>>> {
        Ok(None)
    }

    fn instances(&self, local: &Instances) -> io::Result<Vec<InstanceInfo>> {
        Ok(local.list())
    }
}

impl Store {
    /// The spans kept of `point`, from the details of its hour's segment.
    fn kept(&self, point: &Point, want: Want) -> Result<Kept, String> {
        let seg = self
            .segment(hour_of(point.end_ms))
            .ok_or("its segment is past retention")?;
        let payload = seg
            .details
            .read_frame(point.detail.offset, point.detail.len)
            .map_err(|e| e.to_string())?;
        let record = detail::split_span(&payload).ok_or("damaged span record")?;
        let span = decode(record.span)?;
        let children = match want {
            Want::Own => Vec::new(),
            Want::Inside | Want::Full => record
                .children
                .iter()
                .map(|child| (child.span_id, self.read_child(child)))
                .collect(),
        };
        let resource = (want == Want::Full).then(|| resource(&seg, record.resource));
        Ok(Kept {
            span,
            children,
            resource,
        })
    }

    /// A child span from the details file of its own segment.
    fn read_child(&self, child: &ChildRef) -> Result<Span, String> {
        let seg = self
            .segment(child.hour)
            .ok_or("its segment is past retention")?;
        let payload = seg
            .details
            .read_frame(child.detail.offset, child.detail.len)
            .map_err(|e| e.to_string())?;
        decode(
            detail::split_span(&payload)
                .ok_or("damaged span record")?
                .span,
        )
    }
}

/// The resource record at `at` in the details of `seg`.
fn resource(seg: &Segment, at: DetailRef) -> Result<ResourceSpans, String> {
    let payload = seg
        .details
        .read_frame(at.offset, at.len)
        .map_err(|e| e.to_string())?;
    detail::resource_bytes(&payload)
        .and_then(|b| ResourceSpans::decode(b).ok())
        .ok_or_else(|| "the stored resource cannot be decoded".to_string())
}

/// A stored span's bytes decoded.
pub(crate) fn decode(bytes: &[u8]) -> Result<Span, String> {
    Span::decode(bytes).map_err(|e| format!("the stored span cannot be decoded: {e}"))
}
