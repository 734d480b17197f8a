//! The XLog point: one finished transaction as a fixed-size record.
//!
//! Every SERVER, CONSUMER or root span becomes one point. Points are what the
//! scatter draws, what the meters count and what the store keeps in its
//! `.points` files, so the record is small, fixed-size and self-checking: a
//! reader can seek to record `n` directly and a torn write is detected by its CRC.
//!
//! Two formats exist ([`Format`]). Version 1 (104 bytes a record, no file
//! header) is what data directories written before outgoing calls hold; it
//! is still read, and still appended to in an hour that began in it.
//! Version 2 (a 16-byte header, then 128 bytes a record) adds the outgoing
//! call totals and the point's lineage: its parent span id and whether
//! spans inside it were kept, so traces and the service map are found from
//! the records alone.

const FLAG_ERROR: u16 = 1;
const FLAG_CPU: u16 = 1 << 1;
const FLAG_SQL: u16 = 1 << 2;
/// Version 2: outgoing call totals present.
const FLAG_HTTP: u16 = 1 << 3;
/// Version 2: spans inside the transaction were kept with it.
const FLAG_CHILDREN: u16 = 1 << 4;

/// What a version 2 `.points` file starts with; a version 1 file starts with
/// the sequence number of its first point, which is never this.
pub const HEADER_V2: &[u8; 16] = b"jvmapm.points.v2";
/// The part of the header every later version will share.
const HEADER_FAMILY: &[u8] = b"jvmapm.points.v";

/// The layout of a `.points` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 104-byte records, no header: before outgoing calls were kept.
    V1,
    /// [`HEADER_V2`], then 128-byte records.
    V2,
}

/// What the first bytes of a `.points` file say of its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Format(Format),
    /// Empty, or a header cut short by a crash before any record: a new file.
    Fresh,
    /// A header of a later version this build cannot read.
    Newer,
}

impl Format {
    /// The format new files are written in.
    pub const CURRENT: Format = Format::V2;

    pub const fn record_size(self) -> usize {
        match self {
            Format::V1 => 104,
            Format::V2 => 128,
        }
    }

    /// Bytes before the first record.
    pub const fn header(self) -> &'static [u8] {
        match self {
            Format::V1 => &[],
            Format::V2 => HEADER_V2,
        }
    }

    /// The layout of a file starting with `head` (its first 16 bytes, or
    /// all of it when shorter).
    pub fn detect(head: &[u8]) -> Detected {
        if head.len() < HEADER_V2.len() && HEADER_V2.starts_with(head) {
            Detected::Fresh
        } else if head == HEADER_V2 {
            Detected::Format(Format::V2)
        } else if head.starts_with(HEADER_FAMILY) {
            Detected::Newer
        } else {
            Detected::Format(Format::V1)
        }
    }
}

/// Where a point's full span (all attributes) lies in its segment's details file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetailRef {
    pub offset: u64,
    pub len: u32,
}

/// One transaction, with strings replaced by ids of the store's string table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Point {
    /// Ingest sequence number: strictly increasing in the order points were stored.
    pub seq: u64,
    pub end_ms: u64,
    pub elapsed_us: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub service: u32,
    pub instance: u32,
    pub endpoint: u32,
    /// HTTP status code, 0 when the transaction had none.
    pub status_code: u16,
    pub error: bool,
    pub cpu_us: Option<u64>,
    pub sql: Option<CallTotals>,
    /// Outgoing calls (`jvmapm.http.count`, `jvmapm.http.time`).
    pub http: Option<CallTotals>,
    /// Where it sits in its trace; `None` in a version 1 record, which did
    /// not keep it (its span in the details has it).
    pub lineage: Option<Lineage>,
    pub detail: DetailRef,
}

/// Calls made inside one transaction, SQL statements or outgoing requests:
/// how many and their total time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTotals {
    pub count: u32,
    pub time_us: u64,
}

/// Where a point sits in its trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    /// Spans inside it (SQL calls, outgoing requests, steps) were kept
    /// with it and are listed in its detail.
    pub has_children: bool,
}

impl Point {
    /// Appends the point as one record of `format`, CRC last. Version 1
    /// has no room for the outgoing totals and lineage, which it drops.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + format.record_size(), 0);
        let rec = &mut out[start..];
        let mut flags = 0;
        let flag = |on: bool, bit: u16| if on { bit } else { 0 };
        flags |= flag(self.error, FLAG_ERROR);
        flags |= flag(self.cpu_us.is_some(), FLAG_CPU);
        flags |= flag(self.sql.is_some(), FLAG_SQL);
        let sql = self.sql.unwrap_or_default();
        rec[0..8].copy_from_slice(&self.seq.to_le_bytes());
        rec[8..16].copy_from_slice(&self.end_ms.to_le_bytes());
        rec[16..24].copy_from_slice(&self.elapsed_us.to_le_bytes());
        rec[24..40].copy_from_slice(&self.trace_id);
        rec[40..48].copy_from_slice(&self.span_id);
        rec[48..52].copy_from_slice(&self.service.to_le_bytes());
        rec[52..56].copy_from_slice(&self.instance.to_le_bytes());
        rec[56..60].copy_from_slice(&self.endpoint.to_le_bytes());
        rec[60..62].copy_from_slice(&self.status_code.to_le_bytes());
        rec[64..72].copy_from_slice(&self.cpu_us.unwrap_or(0).to_le_bytes());
        rec[72..80].copy_from_slice(&sql.time_us.to_le_bytes());
        rec[80..84].copy_from_slice(&sql.count.to_le_bytes());
        rec[84..88].copy_from_slice(&self.detail.len.to_le_bytes());
        rec[88..96].copy_from_slice(&self.detail.offset.to_le_bytes());
        if format == Format::V2 {
            let http = self.http.unwrap_or_default();
            let lineage = self.lineage.unwrap_or_default();
            flags |= flag(self.http.is_some(), FLAG_HTTP);
            flags |= flag(lineage.has_children, FLAG_CHILDREN);
            rec[96..104].copy_from_slice(&http.time_us.to_le_bytes());
            rec[104..108].copy_from_slice(&http.count.to_le_bytes());
            rec[108..116].copy_from_slice(&lineage.parent_span_id);
        }
        rec[62..64].copy_from_slice(&flags.to_le_bytes());
        let body = rec.len() - 4;
        let crc = crc32fast::hash(&rec[..body]);
        rec[body..].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a record of `format`; `None` when its CRC does not match (a
    /// torn or corrupt record) or it is not one record long.
    pub fn decode(format: Format, rec: &[u8]) -> Option<Point> {
        if rec.len() != format.record_size() {
            return None;
        }
        let body = rec.len() - 4;
        let crc = u32::from_le_bytes(rec[body..].try_into().ok()?);
        if crc32fast::hash(&rec[..body]) != crc {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().unwrap());
        let u16_at = |i: usize| u16::from_le_bytes(rec[i..i + 2].try_into().unwrap());
        let flags = u16_at(62);
        let v2 = format == Format::V2;
        Some(Point {
            seq: u64_at(0),
            end_ms: u64_at(8),
            elapsed_us: u64_at(16),
            trace_id: rec[24..40].try_into().unwrap(),
            span_id: rec[40..48].try_into().unwrap(),
            service: u32_at(48),
            instance: u32_at(52),
            endpoint: u32_at(56),
            status_code: u16_at(60),
            error: flags & FLAG_ERROR != 0,
            cpu_us: (flags & FLAG_CPU != 0).then(|| u64_at(64)),
            sql: (flags & FLAG_SQL != 0).then(|| CallTotals {
                time_us: u64_at(72),
                count: u32_at(80),
            }),
            http: (v2 && flags & FLAG_HTTP != 0).then(|| CallTotals {
                time_us: u64_at(96),
                count: u32_at(104),
            }),
            lineage: v2.then(|| Lineage {
                parent_span_id: rec[108..116].try_into().unwrap(),
                has_children: flags & FLAG_CHILDREN != 0,
            }),
            detail: DetailRef {
                len: u32_at(84),
                offset: u64_at(88),
            },
        })
    }
}

/// Lower-case hex of bytes, as OTLP/JSON and the query API spell ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses a hex id of exactly `N` bytes.
fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// A trace or span id of `N` bytes. Inside a process an id stays binary;
/// it is hex only at the edges: JSON (through serde), URLs and the screen
/// (through `Display` and `FromStr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id<const N: usize>(pub [u8; N]);

/// A W3C trace id: 16 bytes, 32 hex digits.
pub type TraceId = Id<16>;
/// A span id: 8 bytes, 16 hex digits.
pub type SpanId = Id<8>;

impl<const N: usize> From<[u8; N]> for Id<N> {
    fn from(bytes: [u8; N]) -> Self {
        Id(bytes)
    }
}

impl<const N: usize> std::fmt::Display for Id<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// Why a text is not an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAnId {
    pub digits: usize,
}

impl std::fmt::Display for NotAnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expected {} hex digits", self.digits)
    }
}

impl std::error::Error for NotAnId {}

impl<const N: usize> std::str::FromStr for Id<N> {
    type Err = NotAnId;

    fn from_str(s: &str) -> Result<Self, NotAnId> {
        parse_hex::<N>(s).map(Id).ok_or(NotAnId { digits: N * 2 })
    }
}

impl<const N: usize> serde::Serialize for Id<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for Id<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexId<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for HexId<N> {
            type Value = Id<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} hex digits", N * 2)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Id<N>, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexId::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Point {
        Point {
            seq: 7,
            end_ms: 1_763_780_000_123,
            elapsed_us: 12_345,
            trace_id: [1; 16],
            span_id: [2; 8],
            service: 1,
            instance: 2,
            endpoint: 3,
            status_code: 503,
            error: true,
            cpu_us: Some(800),
            sql: Some(CallTotals {
                count: 3,
                time_us: 400,
            }),
            http: Some(CallTotals {
                count: 2,
                time_us: 90_000,
            }),
            lineage: Some(Lineage {
                parent_span_id: [9; 8],
                has_children: true,
            }),
            detail: DetailRef {
                offset: 4096,
                len: 300,
            },
        }
    }

    #[test]
    fn record_round_trips_with_and_without_optional_fields() {
        for p in [
            sample(),
            Point {
                cpu_us: None,
                sql: None,
                http: None,
                lineage: Some(Lineage::default()),
                error: false,
                ..sample()
            },
        ] {
            let mut buf = Vec::new();
            p.encode(Format::V2, &mut buf);
            assert_eq!(buf.len(), 128);
            assert_eq!(Point::decode(Format::V2, &buf), Some(p));
        }
    }

    #[test]
    fn a_version_1_record_keeps_what_it_had_room_for() {
        let mut buf = Vec::new();
        sample().encode(Format::V1, &mut buf);
        assert_eq!(buf.len(), 104);
        let old = Point {
            http: None,
            lineage: None,
            ..sample()
        };
        assert_eq!(Point::decode(Format::V1, &buf), Some(old));
        assert_eq!(Point::decode(Format::V2, &buf), None, "one record long");
    }

    #[test]
    fn the_file_header_tells_the_formats_apart() {
        let mut v1 = Vec::new();
        sample().encode(Format::V1, &mut v1);
        assert_eq!(Format::detect(&v1[..16]), Detected::Format(Format::V1));
        assert_eq!(Format::detect(HEADER_V2), Detected::Format(Format::V2));
        assert_eq!(Format::detect(b""), Detected::Fresh);
        assert_eq!(Format::detect(&HEADER_V2[..5]), Detected::Fresh);
        assert_eq!(Format::detect(b"jvmapm.points.v9"), Detected::Newer);
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        for format in [Format::V1, Format::V2] {
            let mut buf = Vec::new();
            sample().encode(format, &mut buf);
            buf[20] ^= 0x40;
            assert_eq!(Point::decode(format, &buf), None);
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_input() {
        let id = [0xab, 0x01, 0xff, 0x10];
        assert_eq!(hex(&id), "ab01ff10");
        assert_eq!(parse_hex::<4>("ab01ff10"), Some(id));
        assert_eq!(parse_hex::<4>("ab01ff1"), None);
        assert_eq!(parse_hex::<4>("zz01ff10"), None);
    }

    #[test]
    fn ids_are_hex_in_json_and_text_and_bytes_inside() {
        let id = SpanId::from([0xab, 0x01, 0xff, 0x10, 0, 0, 0, 7]);
        let json = serde_json::to_value(id).unwrap();
        assert_eq!(json, "ab01ff1000000007");
        assert_eq!(serde_json::from_value::<SpanId>(json).unwrap(), id);
        assert_eq!(id.to_string().parse::<SpanId>(), Ok(id));
        let short = serde_json::from_value::<TraceId>("ab01".into()).unwrap_err();
        assert!(
            short.to_string().contains("expected 32 hex digits"),
            "{short}"
        );
    }
}
