//! Records of a segment's `.details` file: the full span behind each point and
//! the resource and scope it came with, kept as the OTLP protobuf they arrived
//! in so `/api/v1/transactions` can show every attribute.
//!
//! A resource record is `[1][encoded ResourceSpans without spans]`; a span
//! record is `[2][resource offset: u64][resource length: u32][encoded Span]`;
//! a transaction with children is `[3][resource offset: u64][resource length:
//! u32][child count: u32][count x (span id: 8 bytes, hour: u64, offset: u64,
//! length: u32)][encoded Span]`, each child being a span record of its own.

use super::children::ChildRef;
use super::frame;
use crate::point::DetailRef;

const RESOURCE: u8 = 1;
const SPAN: u8 = 2;
const SPAN_WITH_CHILDREN: u8 = 3;
const CHILD_REF_SIZE: usize = 28;

/// Appends a resource record to `buf`, whose first byte lies at file offset `base`.
pub fn push_resource(buf: &mut Vec<u8>, base: u64, resource_spans: &[u8]) -> DetailRef {
    let at = frame::open(buf);
    buf.push(RESOURCE);
    buf.extend_from_slice(resource_spans);
    frame::seal(buf, at);
    DetailRef {
        offset: base + at as u64,
        len: (buf.len() - at) as u32,
    }
}

/// Appends a span record to `buf`, whose first byte lies at file offset
/// `base`, listing `children` when there are any.
pub fn push_span(
    buf: &mut Vec<u8>,
    base: u64,
    resource: DetailRef,
    children: &[ChildRef],
    span: &[u8],
) -> DetailRef {
    let at = frame::open(buf);
    buf.push(if children.is_empty() {
        SPAN
    } else {
        SPAN_WITH_CHILDREN
    });
    buf.extend_from_slice(&resource.offset.to_le_bytes());
    buf.extend_from_slice(&resource.len.to_le_bytes());
    if !children.is_empty() {
        buf.extend_from_slice(&(children.len() as u32).to_le_bytes());
        for child in children {
            buf.extend_from_slice(&child.span_id);
            buf.extend_from_slice(&child.hour.to_le_bytes());
            buf.extend_from_slice(&child.detail.offset.to_le_bytes());
            buf.extend_from_slice(&child.detail.len.to_le_bytes());
        }
    }
    buf.extend_from_slice(span);
    frame::seal(buf, at);
    DetailRef {
        offset: base + at as u64,
        len: (buf.len() - at) as u32,
    }
}

/// A span record read back.
pub struct SpanRecord<'a> {
    pub resource: DetailRef,
    pub children: Vec<ChildRef>,
    pub span: &'a [u8],
}

/// Splits a span record's payload into its parts; `None` if it is damaged.
pub fn split_span(payload: &[u8]) -> Option<SpanRecord<'_>> {
    let (&tag, rest) = payload.split_first()?;
    let (resource, rest) = take_ref(rest)?;
    let (children, span) = match tag {
        SPAN => (Vec::new(), rest),
        SPAN_WITH_CHILDREN => {
            let (count, rest) = rest.split_first_chunk::<4>()?;
            let count = u32::from_le_bytes(*count) as usize;
            let (list, span) = rest.split_at_checked(count.checked_mul(CHILD_REF_SIZE)?)?;
            let children = list
                .chunks_exact(CHILD_REF_SIZE)
                .map(|c| {
                    let (span_id, c) = c.split_first_chunk::<8>()?;
                    let (hour, c) = c.split_first_chunk::<8>()?;
                    let (detail, _) = take_ref(c)?;
                    Some(ChildRef {
                        span_id: *span_id,
                        hour: u64::from_le_bytes(*hour),
                        detail,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            (children, span)
        }
        _ => return None,
    };
    Some(SpanRecord {
        resource,
        children,
        span,
    })
}

/// A `[offset: u64][length: u32]` reference and what follows it.
fn take_ref(bytes: &[u8]) -> Option<(DetailRef, &[u8])> {
    let (offset, rest) = bytes.split_first_chunk::<8>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let detail = DetailRef {
        offset: u64::from_le_bytes(*offset),
        len: u32::from_le_bytes(*len),
    };
    Some((detail, rest))
}

/// The encoded `ResourceSpans` of a resource record's payload.
pub fn resource_bytes(payload: &[u8]) -> Option<&[u8]> {
    match payload.split_first()? {
        (&RESOURCE, rest) => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_records_read_back_with_and_without_children() {
        let resource = DetailRef { offset: 5, len: 9 };
        let child = ChildRef {
            span_id: [3; 8],
            hour: 490_000,
            detail: DetailRef {
                offset: 77,
                len: 40,
            },
        };
        for children in [vec![], vec![child, child]] {
            let mut buf = Vec::new();
            let at = push_span(&mut buf, 100, resource, &children, b"span");
            let start = (at.offset - 100) as usize;
            let mut payloads = Vec::new();
            frame::walk(&buf[start..], |_| true, |_, p| payloads.push(p));
            let payload = payloads[0];
            let record = split_span(payload).unwrap();
            assert_eq!(
                (record.resource, record.children, record.span),
                (resource, children, &b"span"[..])
            );
        }
    }

    #[test]
    fn a_damaged_child_list_is_refused() {
        let mut payload = vec![SPAN_WITH_CHILDREN];
        payload.extend_from_slice(&[0; 12]);
        payload.extend_from_slice(&1000u32.to_le_bytes());
        payload.extend_from_slice(&[0; 30]);
        assert!(split_span(&payload).is_none());
    }
}
