//! How application threads hand what they measured to the exporter: each
//! record is written into a ring of memory fixed at start, with no lock, no
//! allocation and no system call, so ending a transaction costs a thread one
//! compare-and-swap and a few stores.
//!
//! There are a few rings (one per CPU, up to [`MAX_STRIPES`]), and each
//! thread writes into the one it was given at its first record, so threads
//! seldom meet on the same ring. A record is a run of 8-byte words: a header
//! (its position, kind and length), then the record's own words. A writer
//! reserves its words by moving the ring's head with one compare-and-swap,
//! fills them, and publishes the header last; the exporter thread, the only
//! reader, reads records in order up to the first one not yet published and
//! then frees their words by moving the tail. A record that would run past
//! the end of the ring is preceded by a padding record to the end, so every
//! record's words are contiguous. A full ring refuses the record, and the
//! writer counts it as dropped.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Words in one ring (512 KiB): about 4 000 transactions, a second's worth
/// of a busy thread many times over between two polls of the exporter.
const WORDS: usize = 1 << 16;
/// The most rings, whatever the number of CPUs.
const MAX_STRIPES: usize = 8;
/// The longest record, in words, header included.
pub const MAX_RECORD_WORDS: usize = 1024;

/// What a record holds; the reader gets it back with the record.
pub type Kind = u8;
/// The padding before a record that would not fit before the ring's end.
const PADDING: Kind = 0;

/// A header: the low 40 bits of the record's position (so a header left
/// from an earlier lap never passes for a new one), its kind, and its length
/// in words (header included).
fn header(position: u64, kind: Kind, words: usize) -> u64 {
    ((position & 0xFF_FFFF_FFFF) << 24) | (u64::from(kind) << 16) | words as u64
}

/// One ring: many writers, the exporter thread the only reader.
pub struct Ring {
    words: Box<[AtomicU64]>,
    /// Words reserved so far, ever (the next record's position).
    head: AtomicU64,
    /// Words read so far, ever.
    tail: AtomicU64,
}

impl Ring {
    pub(crate) fn new(words: usize) -> Ring {
        Ring {
            words: zeroed(words),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
        }
    }

    fn capacity(&self) -> u64 {
        self.words.len() as u64
    }

    fn word(&self, position: u64) -> &AtomicU64 {
        &self.words[(position % self.capacity()) as usize]
    }

    /// Reserves a record of `kind` with `body_words` words after its
    /// header; `None` when the ring has no room for it. The record is
    /// published when the reservation is dropped.
    pub fn reserve(&self, kind: Kind, body_words: usize) -> Option<Reservation<'_>> {
        let words = body_words + 1;
        if words > MAX_RECORD_WORDS || words as u64 > self.capacity() / 2 {
            return None;
        }
        let mut head = self.head.load(Ordering::Relaxed);
        let (start, padding) = loop {
            let to_end = self.capacity() - head % self.capacity();
            let padding = if words as u64 > to_end { to_end } else { 0 };
            let end = head + padding + words as u64;
            // (A head read before the tail moved past it fails the swap below.)
            if end.saturating_sub(self.tail.load(Ordering::Acquire)) > self.capacity() {
                return None;
            }
            match self
                .head
                .compare_exchange_weak(head, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break (head, padding),
                Err(now) => head = now,
            }
        };
        if padding > 0 {
            self.word(start)
                .store(header(start, PADDING, padding as usize), Ordering::Release);
        }
        Some(Reservation {
            ring: self,
            at: start + padding,
            kind,
            words,
            written: 1,
        })
    }

    /// Hands the published records, in order and at most `limit` of them,
    /// to `read` as their kind and body, and frees their words; returns how
    /// many it read.
    pub fn read(
        &self,
        scratch: &mut Vec<u64>,
        limit: usize,
        mut read: impl FnMut(Kind, &[u64]),
    ) -> usize {
        let mut tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let mut count = 0;
        while tail < head && count < limit {
            let found = self.word(tail).load(Ordering::Acquire);
            let words = (found & 0xFFFF) as usize;
            let kind = ((found >> 16) & 0xFF) as Kind;
            if found >> 24 != tail & 0xFF_FFFF_FFFF || words == 0 {
                break; // reserved, not yet published
            }
            if kind != PADDING {
                scratch.clear();
                scratch
                    .extend((1..words as u64).map(|i| self.word(tail + i).load(Ordering::Relaxed)));
                read(kind, scratch);
                count += 1;
            }
            tail += words as u64;
        }
        // Once, not once a record: writers read the tail on every record,
        // and each store takes its cache line away from them.
        self.tail.store(tail, Ordering::Release);
        count
    }
}

/// `count` words of zero, in memory the system hands over untouched (so
/// a ring costs resident memory only as far as it has been written); none
/// when memory is short (a ring of none refuses every record).
fn zeroed(count: usize) -> Box<[AtomicU64]> {
    let Ok(layout) = std::alloc::Layout::array::<AtomicU64>(count) else {
        return Box::new([]);
    };
    if layout.size() == 0 {
        return Box::new([]);
    }
    // SAFETY: the layout is not empty; all-zero bytes are a valid
    // AtomicU64; the box owns the allocation with the layout it was made
    // with (an array of `count` AtomicU64).
    unsafe {
        let words = std::alloc::alloc_zeroed(layout).cast::<AtomicU64>();
        if words.is_null() {
            return Box::new([]);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(words, count))
    }
}

/// Every ring.
pub fn all() -> &'static [Ring] {
    static RINGS: OnceLock<Box<[Ring]>> = OnceLock::new();
    RINGS.get_or_init(|| {
        let stripes = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_STRIPES);
        (0..stripes).map(|_| Ring::new(WORDS)).collect()
    })
}

/// The ring this thread writes into, chosen at its first record.
pub fn mine() -> &'static Ring {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let rings = all();
    let stripe = STRIPE.with(|stripe| {
        if stripe.get() == usize::MAX {
            stripe.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        stripe.get()
    });
    &rings[stripe % rings.len()]
}

/// A record being written: its words are the writer's until it is dropped,
/// which publishes it (words not written read as zero).
pub struct Reservation<'a> {
    ring: &'a Ring,
    at: u64,
    kind: Kind,
    words: usize,
    /// Words written so far, header included.
    written: usize,
}

impl Reservation<'_> {
    /// Writes the next word (past the reserved length: ignored).
    pub fn push(&mut self, value: u64) {
        if self.written < self.words {
            self.ring
                .word(self.at + self.written as u64)
                .store(value, Ordering::Relaxed);
            self.written += 1;
        }
    }

    /// Writes the count of `bytes`, then the bytes eight a word,
    /// little-endian ([`bytes_words`] of them in all).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.push(bytes.len() as u64);
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.push(u64::from_le_bytes(word));
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        while self.written < self.words {
            self.push(0);
        }
        self.ring
            .word(self.at)
            .store(header(self.at, self.kind, self.words), Ordering::Release);
    }
}

/// Words that [`Reservation::push_bytes`] takes for `count` bytes.
pub fn bytes_words(count: usize) -> usize {
    1 + count.div_ceil(8)
}

/// Reads back what [`Reservation::push_bytes`] wrote at the start of
/// `words`: the bytes (into `out`) and the words they took.
pub fn take_bytes<'a>(words: &[u64], out: &'a mut Vec<u8>) -> (&'a [u8], usize) {
    out.clear();
    let Some(&count) = words.first() else {
        return (&out[..], 0);
    };
    let count = (count as usize).min((words.len() - 1) * 8);
    let used = bytes_words(count);
    for word in &words[1..used] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.truncate(count);
    (&out[..], used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn write(ring: &Ring, kind: Kind, body: &[u64]) -> bool {
        let Some(mut record) = ring.reserve(kind, body.len()) else {
            return false;
        };
        body.iter().for_each(|&w| record.push(w));
        true
    }

    #[test]
    fn records_come_back_in_order_across_the_ring_end() {
        let ring = Ring::new(64);
        let mut scratch = Vec::new();
        let mut seen = Vec::new();
        for round in 0..50u64 {
            assert!(write(&ring, 7, &[round, round * 2, round * 3]));
            if round % 3 == 0 {
                ring.read(&mut scratch, usize::MAX, |kind, body| {
                    seen.push((kind, body.to_vec()))
                });
            }
        }
        ring.read(&mut scratch, usize::MAX, |kind, body| {
            seen.push((kind, body.to_vec()))
        });
        let expected: Vec<(Kind, Vec<u64>)> =
            (0..50u64).map(|r| (7, vec![r, r * 2, r * 3])).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_full_ring_refuses_until_read() {
        let ring = Ring::new(16);
        let mut written = 0;
        while write(&ring, 1, &[1, 2, 3]) {
            written += 1;
        }
        assert_eq!(written, 4, "16 words hold four records of four words");
        assert_eq!(ring.read(&mut Vec::new(), usize::MAX, |_, _| {}), 4);
        assert!(write(&ring, 1, &[1, 2, 3]));
        assert!(
            !write(&ring, 1, &[0; 9]),
            "no record longer than half the ring"
        );
    }

    #[test]
    fn a_record_not_yet_published_holds_back_those_after_it() {
        let ring = Ring::new(64);
        let mut first = ring.reserve(1, 1).unwrap();
        assert!(write(&ring, 2, &[2]));
        let mut seen = Vec::new();
        ring.read(&mut Vec::new(), usize::MAX, |kind, _| seen.push(kind));
        assert!(seen.is_empty());
        first.push(1);
        drop(first);
        ring.read(&mut Vec::new(), usize::MAX, |kind, _| seen.push(kind));
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn a_limited_read_leaves_the_rest_for_the_next() {
        let ring = Ring::new(64);
        for n in 0..5 {
            assert!(write(&ring, 1, &[n]));
        }
        let mut seen = Vec::new();
        assert_eq!(
            ring.read(&mut Vec::new(), 2, |_, body| seen.push(body[0])),
            2
        );
        assert_eq!(
            ring.read(&mut Vec::new(), 9, |_, body| seen.push(body[0])),
            3
        );
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn many_writers_lose_nothing_the_ring_accepted() {
        let ring = Arc::new(Ring::new(1024));
        let writers: Vec<_> = (0..4u64)
            .map(|writer| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut accepted = Vec::new();
                    for n in 0..20_000u64 {
                        if write(&ring, 2, &[writer, n, writer ^ n]) {
                            accepted.push(n);
                        }
                    }
                    accepted
                })
            })
            .collect();
        let mut received: Vec<Vec<u64>> = vec![Vec::new(); 4];
        let mut scratch = Vec::new();
        let mut check = |_: Kind, body: &[u64]| {
            assert_eq!(body.len(), 3);
            assert_eq!(body[2], body[0] ^ body[1], "a record is never torn");
            received[body[0] as usize].push(body[1]);
        };
        while writers.iter().any(|w| !w.is_finished()) {
            ring.read(&mut scratch, usize::MAX, &mut check);
        }
        ring.read(&mut scratch, usize::MAX, &mut check);
        for (writer, handle) in writers.into_iter().enumerate() {
            assert_eq!(received[writer], handle.join().unwrap(), "writer {writer}");
        }
    }

    #[test]
    fn bytes_round_trip() {
        let ring = Ring::new(256);
        let texts = ["", "GET", "/orders/12345678", "héllo wörld, and more"];
        for text in texts {
            let mut record = ring.reserve(3, bytes_words(text.len()) + 1).unwrap();
            record.push_bytes(text.as_bytes());
            record.push(42);
        }
        let mut out = Vec::new();
        let mut n = 0;
        ring.read(&mut Vec::new(), usize::MAX, |_, body| {
            let (bytes, used) = take_bytes(body, &mut out);
            assert_eq!(bytes, texts[n].as_bytes());
            assert_eq!(body[used], 42);
            n += 1;
        });
        assert_eq!(n, texts.len());
    }
}
