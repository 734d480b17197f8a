//! The XLog point: one finished transaction as a fixed-size record.
//!
//! Every SERVER, CONSUMER or root span becomes one point. Points are what the
//! scatter draws, what the meters count and what the store keeps in its
//! `.points` files, so the record is small, fixed-size and self-checking: a
//! reader can seek to record `n` directly and a torn write is detected by its CRC.

/// Size of one encoded point record in bytes.
pub const RECORD_SIZE: usize = 104;

const FLAG_ERROR: u16 = 1;
const FLAG_CPU: u16 = 1 << 1;
const FLAG_SQL: u16 = 1 << 2;

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
    pub sql: Option<SqlTotals>,
    pub detail: DetailRef,
}

/// SQL statements run inside one transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqlTotals {
    pub count: u32,
    pub time_us: u64,
}

impl Point {
    /// Encodes the point into exactly [`RECORD_SIZE`] bytes, CRC last.
    pub fn encode(&self, out: &mut [u8; RECORD_SIZE]) {
        let mut flags = 0;
        if self.error {
            flags |= FLAG_ERROR;
        }
        if self.cpu_us.is_some() {
            flags |= FLAG_CPU;
        }
        if self.sql.is_some() {
            flags |= FLAG_SQL;
        }
        let sql = self.sql.unwrap_or_default();
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.end_ms.to_le_bytes());
        out[16..24].copy_from_slice(&self.elapsed_us.to_le_bytes());
        out[24..40].copy_from_slice(&self.trace_id);
        out[40..48].copy_from_slice(&self.span_id);
        out[48..52].copy_from_slice(&self.service.to_le_bytes());
        out[52..56].copy_from_slice(&self.instance.to_le_bytes());
        out[56..60].copy_from_slice(&self.endpoint.to_le_bytes());
        out[60..62].copy_from_slice(&self.status_code.to_le_bytes());
        out[62..64].copy_from_slice(&flags.to_le_bytes());
        out[64..72].copy_from_slice(&self.cpu_us.unwrap_or(0).to_le_bytes());
        out[72..80].copy_from_slice(&sql.time_us.to_le_bytes());
        out[80..84].copy_from_slice(&sql.count.to_le_bytes());
        out[84..88].copy_from_slice(&self.detail.len.to_le_bytes());
        out[88..96].copy_from_slice(&self.detail.offset.to_le_bytes());
        out[96..100].fill(0);
        let crc = crc32fast::hash(&out[..100]);
        out[100..104].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a record; `None` when its CRC does not match (a torn or corrupt record).
    pub fn decode(rec: &[u8]) -> Option<Point> {
        let rec: &[u8; RECORD_SIZE] = rec.try_into().ok()?;
        let crc = u32::from_le_bytes(rec[100..104].try_into().ok()?);
        if crc32fast::hash(&rec[..100]) != crc {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().unwrap());
        let u16_at = |i: usize| u16::from_le_bytes(rec[i..i + 2].try_into().unwrap());
        let flags = u16_at(62);
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
            sql: (flags & FLAG_SQL != 0).then(|| SqlTotals {
                time_us: u64_at(72),
                count: u32_at(80),
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
            sql: Some(SqlTotals {
                count: 3,
                time_us: 400,
            }),
            detail: DetailRef {
                offset: 4096,
                len: 300,
            },
        }
    }

    #[test]
    fn record_round_trips_with_and_without_optional_fields() {
        let mut buf = [0u8; RECORD_SIZE];
        for p in [
            sample(),
            Point {
                cpu_us: None,
                sql: None,
                error: false,
                ..sample()
            },
        ] {
            p.encode(&mut buf);
            assert_eq!(Point::decode(&buf), Some(p));
        }
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let mut buf = [0u8; RECORD_SIZE];
        sample().encode(&mut buf);
        buf[20] ^= 0x40;
        assert_eq!(Point::decode(&buf), None);
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
