//! Length-prefixed, CRC-checked records for the store's variable-size files
//! (string table, span details, JVM events).
//!
//! A frame is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`.
//! [`walk`] goes over a file's frames and past damage: after a frame that is
//! damaged it looks for the next intact frame, byte by byte, and goes on from
//! there, so damage in the middle costs only the stretch it hit. Bytes after
//! the last intact frame are the tail a crash tore (or damage with nothing
//! intact after it): the only part of a file that recovery cuts.

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

/// What [`walk`] found besides the intact frames.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Stretches `[start, end)` (offsets in the walked bytes) that hold no
    /// intact frame and are followed by one: damage in the middle.
    pub damaged: Vec<(usize, usize)>,
    /// End of the last intact frame; what follows it is a torn tail.
    pub valid_len: usize,
}

/// Calls `each(offset, payload)` for every intact frame of `bytes` whose
/// payload `plausible` accepts, skipping damaged stretches (see [`Walk`]).
/// `plausible` also keeps runs of zeros (empty frames with a matching CRC)
/// and chance matches out: payloads have a recognisable first byte.
pub fn walk<'a>(
    bytes: &'a [u8],
    plausible: impl Fn(&[u8]) -> bool,
    mut each: impl FnMut(usize, &'a [u8]),
) -> Walk {
    let mut walk = Walk::default();
    let mut at = 0;
    while at < bytes.len() {
        let payload = match intact(&bytes[at..], &plausible) {
            Some(payload) => payload,
            None => {
                let Some(next) = (at + 1..bytes.len())
                    .find(|&next| intact(&bytes[next..], &plausible).is_some())
                else {
                    break;
                };
                walk.damaged.push((at, next));
                at = next;
                continue;
            }
        };
        each(at, payload);
        at += HEADER + payload.len();
        walk.valid_len = at;
    }
    walk
}

/// The payload of an intact, plausible frame at the start of `bytes`.
fn intact<'a>(bytes: &'a [u8], plausible: &impl Fn(&[u8]) -> bool) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    // The cheap test first: most positions of a damaged stretch fail it.
    if !plausible(payload) {
        return None;
    }
    check(bytes)
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
        let mut got = Vec::new();
        let walk = walk(&buf, |_| true, |_, p| got.push(p));
        assert_eq!(got, vec![&b"alpha"[..], &b"beta"[..]]);
        assert_eq!(walk.valid_len, whole);
    }

    fn walked(buf: &[u8]) -> (Vec<(usize, &[u8])>, Walk) {
        let mut frames = Vec::new();
        let walk = walk(
            buf,
            |p| p.first() == Some(&b'#'),
            |at, p| frames.push((at, p)),
        );
        (frames, walk)
    }

    #[test]
    fn a_walk_goes_past_a_damaged_frame_and_stops_at_a_torn_tail() {
        let mut buf = Vec::new();
        for name in [&b"#alpha"[..], b"#beta", b"#gamma", b"#delta"] {
            push(&mut buf, name);
        }
        let whole = buf.len();
        push(&mut buf, b"#epsilon");
        buf.truncate(buf.len() - 3);
        let beta = HEADER + 6;
        let gamma = beta + HEADER + 5;
        // The payload of beta and the length of gamma are both damaged.
        buf[beta + HEADER + 2] ^= 0x55;
        buf[gamma] ^= 0x10;
        let (frames, walk) = walked(&buf);
        let names: Vec<&[u8]> = frames.iter().map(|f| f.1).collect();
        assert_eq!(names, vec![&b"#alpha"[..], b"#delta"]);
        assert_eq!(walk.damaged, vec![(beta, gamma + HEADER + 6)]);
        assert_eq!(walk.valid_len, whole);
    }

    #[test]
    fn zeros_are_no_frames() {
        let mut buf = Vec::new();
        push(&mut buf, b"#alpha");
        buf.extend_from_slice(&[0; 40]);
        let (frames, walk) = walked(&buf);
        assert_eq!(frames.len(), 1);
        assert_eq!((walk.damaged, walk.valid_len), (vec![], HEADER + 6));
        buf.extend_from_within(..HEADER + 6);
        let (frames, walk) = walked(&buf);
        assert_eq!(frames.len(), 2);
        assert_eq!(walk.damaged, vec![(HEADER + 6, HEADER + 6 + 40)]);
    }

    #[test]
    fn a_corrupt_last_payload_is_a_tail() {
        let mut buf = Vec::new();
        push(&mut buf, b"alpha");
        push(&mut buf, b"beta");
        let last = buf.len() - 1;
        buf[last] ^= 1;
        let mut count = 0;
        let walk = walk(&buf, |_| true, |_, _| count += 1);
        assert_eq!(count, 1);
        assert_eq!(
            walk,
            Walk {
                damaged: vec![],
                valid_len: HEADER + 5
            }
        );
    }
}
