//! Shared copies of the strings transactions repeat (HTTP method, route,
//! path, thread name, exception class), so ending a transaction on an
//! application thread allocates nothing when its strings were seen before.
//!
//! A fixed table of slots indexed by a hash of the bytes; a slot holds the
//! last string that hashed there. Lookups never wait: a slot another thread
//! holds at that instant is passed by, and the string is copied as before.

use std::sync::{Arc, Mutex};

/// Slots in the table (a power of two); about 8 bytes each when empty.
const SLOTS: usize = 4096;

pub struct StringTable {
    slots: Box<[Mutex<Option<Arc<str>>>]>,
}

impl Default for StringTable {
    fn default() -> Self {
        StringTable {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl StringTable {
    /// The shared copy of `bytes` (modified UTF-8 from the JVM; anything not
    /// UTF-8 becomes U+FFFD).
    pub fn get(&self, bytes: &[u8]) -> Arc<str> {
        let slot = &self.slots[hash(bytes) as usize & (SLOTS - 1)];
        let Ok(mut held) = slot.try_lock() else {
            return Arc::from(String::from_utf8_lossy(bytes));
        };
        match held.as_ref() {
            Some(s) if s.as_bytes() == bytes => s.clone(),
            _ => {
                let s: Arc<str> = Arc::from(String::from_utf8_lossy(bytes));
                *held = Some(s.clone());
                s
            }
        }
    }
}

/// FNV-1a: short strings, no allocation, good enough spread for a cache.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_seen_before_is_the_same_copy() {
        let table = StringTable::default();
        let first = table.get(b"GET");
        let again = table.get(b"GET");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(&*table.get(b"/orders"), "/orders");
        assert_eq!(&*table.get(&[b'a', 0xff]), "a\u{fffd}");
    }

    #[test]
    fn strings_that_share_a_slot_replace_each_other_and_stay_right() {
        let table = StringTable::default();
        let names: Vec<String> = (0..3 * SLOTS).map(|i| format!("thread-{i}")).collect();
        for _ in 0..2 {
            for name in &names {
                assert_eq!(&*table.get(name.as_bytes()), name);
            }
        }
    }
}
