//! How the JVM lays objects out, so shallow sizes are the JVM's and not the
//! dump's (which writes every field at its dumped width and no header).
//!
//! A 64-bit HotSpot object is a header (mark word, class pointer: 12 bytes
//! with compressed class pointers, else 16) and its fields, packed, the whole
//! aligned to 8 bytes; references take 4 bytes with compressed oops, else 8.
//! An array's elements start at 16; without compressed class pointers at 24,
//! or from JDK 22 on at 20 when the elements are at most 4 bytes wide.
//! The dump does not say which flags the JVM ran with, but its object ids
//! are addresses: objects allocated one after the other lie one size apart,
//! so the layout whose sizes explain the most gaps between neighbours wins.

use crate::hprof::basic;

/// One way the JVM may have laid objects out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub compressed_oops: bool,
    pub compressed_class_pointers: bool,
    /// Array elements start right after the length when they fit (JDK 22+);
    /// matters only without compressed class pointers.
    pub packed_array_base: bool,
}

/// How many candidate layouts there are.
pub const LAYOUTS: usize = 6;

impl Layout {
    const fn new(
        compressed_oops: bool,
        compressed_class_pointers: bool,
        packed_array_base: bool,
    ) -> Layout {
        Layout {
            compressed_oops,
            compressed_class_pointers,
            packed_array_base,
        }
    }

    /// The candidates, the default first.
    pub const ALL: [Layout; LAYOUTS] = [
        Layout::new(true, true, false),
        Layout::new(false, true, false),
        Layout::new(false, false, false),
        Layout::new(false, false, true),
        Layout::new(true, false, false),
        Layout::new(true, false, true),
    ];

    pub fn header(self) -> u64 {
        if self.compressed_class_pointers {
            12
        } else {
            16
        }
    }

    pub fn reference(self) -> u64 {
        if self.compressed_oops {
            4
        } else {
            8
        }
    }

    /// Where an array's elements of `element_size` bytes start.
    pub fn array_base(self, element_size: u64) -> u64 {
        match (self.compressed_class_pointers, self.packed_array_base) {
            (true, _) => 16,
            (false, true) => 20u64.div_ceil(element_size) * element_size,
            (false, false) => 24,
        }
    }

    /// Bytes a field of `basic_type` takes in the object.
    pub fn field_size(self, basic_type: u8) -> u64 {
        match basic_type {
            basic::OBJECT => self.reference(),
            t => basic::dump_size(t, 8).unwrap_or(0) as u64,
        }
    }

    /// An instance whose class and superclasses declare `fields` (basic types).
    pub fn instance_size(self, fields: impl Iterator<Item = u8>) -> u64 {
        align(self.header() + fields.map(|t| self.field_size(t)).sum::<u64>())
    }

    /// An instance whose class and superclasses declare `primitive` bytes
    /// of primitive fields and `references` reference fields.
    pub fn instance_size_of(self, primitive: u64, references: u64) -> u64 {
        align(self.header() + primitive + references * self.reference())
    }

    pub fn array_size(self, element_type: u8, length: u32) -> u64 {
        let element = self.field_size(element_type).max(1);
        align(self.array_base(element) + u64::from(length) * element)
    }
}

fn align(bytes: u64) -> u64 {
    bytes.div_ceil(8) * 8
}

/// Gaps between neighbouring objects, counted by the layouts they fit.
#[derive(Default)]
pub struct Detector {
    fits: [u64; LAYOUTS],
    samples: u64,
}

/// Gaps sampled before the answer is considered settled.
const ENOUGH: u64 = 200_000;

impl Detector {
    /// `gap` is the next object's address minus this one's; `sizes` this
    /// object's size under each of [`Layout::ALL`].
    pub fn observe(&mut self, gap: u64, sizes: [u64; LAYOUTS]) {
        if self.samples >= ENOUGH || gap == 0 || gap > 1 << 20 {
            return;
        }
        self.samples += 1;
        for (fit, size) in self.fits.iter_mut().zip(sizes) {
            if size == gap {
                *fit += 1;
            }
        }
    }

    /// The layout explaining the most gaps (the default on a tie or when
    /// nothing fits), and whether the dump said anything at all.
    pub fn verdict(&self) -> (Layout, bool) {
        let best = (0..LAYOUTS)
            .max_by_key(|&i| (self.fits[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        (Layout::ALL[best], self.fits[best] > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_hotspot() {
        let default = Layout::ALL[0];
        // java.lang.Object: a header only.
        assert_eq!(default.instance_size([].into_iter()), 16);
        // java.lang.String on 17: byte[] value, int hash, byte coder, boolean hashIsZero.
        let string = [basic::OBJECT, basic::INT, basic::BYTE, basic::BOOLEAN];
        assert_eq!(default.instance_size(string.into_iter()), 24);
        assert_eq!(Layout::ALL[2].instance_size(string.into_iter()), 32);
        assert_eq!(default.array_size(basic::BYTE, 5), 24);
        assert_eq!(default.array_size(basic::OBJECT, 3), 32);
        assert_eq!(default.array_size(basic::LONG, 0), 16);
        assert_eq!(Layout::ALL[2].array_size(basic::INT, 1), 32);
        // JDK 22+ without compressed class pointers: short elements at 20.
        assert_eq!(Layout::ALL[3].array_size(basic::SHORT, 1), 24);
        assert_eq!(Layout::ALL[3].array_size(basic::LONG, 1), 32);
    }

    #[test]
    fn the_layout_that_explains_the_gaps_wins() {
        let mut detector = Detector::default();
        assert_eq!(detector.verdict(), (Layout::ALL[0], false));
        for _ in 0..10 {
            detector.observe(32, [24, 32, 32, 32, 24, 24]);
            detector.observe(40, [24, 32, 40, 32, 32, 32]);
        }
        assert_eq!(detector.verdict(), (Layout::ALL[2], true));
    }
}
