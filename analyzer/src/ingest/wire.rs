//! A minimal reader of the protobuf wire format, for the hot path of trace
//! ingest: it walks an encoded message field by field and hands out borrowed
//! slices, so a span can be read (and its original bytes kept) without
//! allocating. Malformed input is an error with the byte offset, never a panic.

use std::fmt;

/// Why a buffer is not a well-formed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed protobuf at byte {}: {}",
            self.offset, self.what
        )
    }
}

impl std::error::Error for WireError {}

/// The value of one field, by wire type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The payload of a length-delimited field (message, string, bytes).
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The fields of one message, in wire order.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the outermost buffer, for error messages.
    base: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// The fields of a nested message found at `offset` of the outer buffer.
    pub fn nested(buf: &'a [u8], offset: usize) -> Self {
        Fields {
            buf,
            pos: 0,
            base: offset,
        }
    }

    /// Offset (in the outermost buffer) of the next field.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    #[cold]
    fn error(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.offset(),
            what,
        }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most varints in OTLP (tags, lengths, small ints) are one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        let mut shift = 0;
        while shift < 64 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error("a varint runs past the end"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
        Err(self.error("a varint is longer than 10 bytes"))
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error("a field runs past the end of its message"))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The next field: its number, its value and the offset of the value.
    #[inline]
    pub fn next_field(&mut self) -> Option<Result<(u32, Value<'a>, usize), WireError>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(self.read_field())
    }

    #[inline(always)]
    fn read_field(&mut self) -> Result<(u32, Value<'a>, usize), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| self.error("invalid field number"))?;
        let at = self.offset();
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| self.error("length too large"))?;
                let at_payload = self.offset();
                let bytes = self.take(len)?;
                return Ok((number, Value::Bytes(bytes), at_payload));
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            _ => return Err(self.error("unsupported wire type (groups are not used by OTLP)")),
        };
        Ok((number, value, at))
    }
}

/// Checks that `bytes` is UTF-8, as protobuf requires of strings.
pub fn utf8(bytes: &[u8], offset: usize) -> Result<&str, WireError> {
    std::str::from_utf8(bytes).map_err(|_| WireError {
        offset,
        what: "a string is not valid UTF-8",
    })
}

/// Appends a length-delimited field to `out`.
pub fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_reports_offsets_of_damage() {
        let mut buf = Vec::new();
        put_bytes_field(&mut buf, 5, b"hello");
        buf.extend_from_slice(&[0x30, 0x96, 0x01]); // field 6, varint 150
        buf.extend_from_slice(&[0x39, 1, 0, 0, 0, 0, 0, 0, 0]); // field 7, fixed64 1
        let mut f = Fields::new(&buf);
        assert_eq!(f.next_field(), Some(Ok((5, Value::Bytes(b"hello"), 2))));
        assert_eq!(f.next_field().unwrap().unwrap().1, Value::Varint(150));
        assert_eq!(f.next_field().unwrap().unwrap().1, Value::Fixed64(1));
        assert_eq!(f.next_field(), None);

        let cut = &buf[..5];
        let err = Fields::new(cut).next_field().unwrap().unwrap_err();
        assert_eq!(err.what, "a field runs past the end of its message");
        let endless = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(Fields::new(&endless).next_field().unwrap().is_err());
        assert!(
            Fields::new(&[0x0b]).next_field().unwrap().is_err(),
            "group wire type"
        );
        assert!(
            Fields::new(&[0x00]).next_field().unwrap().is_err(),
            "field number 0"
        );
    }
}
