//! Records of a segment's `.details` file: the full span behind each point and
//! the resource and scope it came with, kept as the OTLP protobuf they arrived
//! in so `/api/v1/transactions` can show every attribute.
//!
//! A resource record is `[1][encoded ResourceSpans without spans]`; a span
//! record is `[2][resource offset: u64][resource length: u32][encoded Span]`.

use super::frame;
use crate::point::DetailRef;

const RESOURCE: u8 = 1;
const SPAN: u8 = 2;

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

/// Appends a span record to `buf`, whose first byte lies at file offset `base`.
pub fn push_span(buf: &mut Vec<u8>, base: u64, resource: DetailRef, span: &[u8]) -> DetailRef {
    let at = frame::open(buf);
    buf.push(SPAN);
    buf.extend_from_slice(&resource.offset.to_le_bytes());
    buf.extend_from_slice(&resource.len.to_le_bytes());
    buf.extend_from_slice(span);
    frame::seal(buf, at);
    DetailRef {
        offset: base + at as u64,
        len: (buf.len() - at) as u32,
    }
}

/// Splits a span record's payload into its resource reference and span bytes.
pub fn split_span(payload: &[u8]) -> Option<(DetailRef, &[u8])> {
    let (&tag, rest) = payload.split_first()?;
    if tag != SPAN || rest.len() < 12 {
        return None;
    }
    let resource = DetailRef {
        offset: u64::from_le_bytes(rest[0..8].try_into().ok()?),
        len: u32::from_le_bytes(rest[8..12].try_into().ok()?),
    };
    Some((resource, &rest[12..]))
}

/// The encoded `ResourceSpans` of a resource record's payload.
pub fn resource_bytes(payload: &[u8]) -> Option<&[u8]> {
    match payload.split_first()? {
        (&RESOURCE, rest) => Some(rest),
        _ => None,
    }
}
