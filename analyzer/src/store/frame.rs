//! Length-prefixed, CRC-checked records for the store's variable-size files
//! (string table, span details, JVM events).
//!
//! A frame is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`.
//! Scanning stops at the first frame that is cut short or fails its CRC, which
//! is how a torn tail left by a crash is found.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const HEADER: usize = 8;

/// Largest payload a frame may claim; anything bigger is treated as corruption.
const MAX_PAYLOAD: usize = 256 << 20;

/// Appends one frame holding `payload` to `out`.
pub fn push(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reserves a frame header in `out` and returns its position; the caller writes
/// the payload after it and then calls [`seal`]. Saves a copy for large payloads.
pub fn open(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER]);
    at
}

/// Fills in the header reserved by [`open`] at `at` for the payload written since.
pub fn seal(out: &mut [u8], at: usize) {
    let payload_len = out.len() - at - HEADER;
    let crc = crc32fast::hash(&out[at + HEADER..]);
    out[at..at + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Iterates over the whole frames at the start of `bytes`; `valid_len` after the
/// iteration ends is the length of that whole-frame prefix.
pub struct Frames<'a> {
    bytes: &'a [u8],
    pub valid_len: usize,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Frames {
            bytes,
            valid_len: 0,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.bytes[self.valid_len..];
        let payload = check(rest)?;
        self.valid_len += HEADER + payload.len();
        Some(payload)
    }
}

/// The payload of the frame at the start of `bytes`, if it is whole and intact.
fn check(bytes: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Reads the frame of `len` total bytes at `offset` of `file` and returns its payload.
pub fn read_at(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    match check(&buf) {
        Some(payload) if payload.len() + HEADER == buf.len() => {
            buf.drain(..HEADER);
            Ok(buf)
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("damaged record at byte {offset}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stop_at_a_torn_tail() {
        let mut buf = Vec::new();
        push(&mut buf, b"alpha");
        let at = open(&mut buf);
        buf.extend_from_slice(b"beta");
        seal(&mut buf, at);
        let whole = buf.len();
        push(&mut buf, b"gamma");
        buf.truncate(buf.len() - 2);
        let mut frames = Frames::new(&buf);
        let got: Vec<&[u8]> = frames.by_ref().collect();
        assert_eq!(got, vec![&b"alpha"[..], &b"beta"[..]]);
        assert_eq!(frames.valid_len, whole);
    }

    #[test]
    fn a_corrupt_payload_ends_the_scan() {
        let mut buf = Vec::new();
        push(&mut buf, b"alpha");
        push(&mut buf, b"beta");
        let last = buf.len() - 1;
        buf[last] ^= 1;
        let mut frames = Frames::new(&buf);
        assert_eq!(frames.by_ref().count(), 1);
        assert_eq!(frames.valid_len, HEADER + 5);
    }
}
