//! Small numbers for the strings transactions repeat (HTTP method, route,
//! exception class), so a transaction's record carries numbers instead of
//! text. The helper class keeps a map from string to number and asks here
//! only for a string it has not seen; the exporter turns numbers back into
//! strings. Numbers are never reused, so a record read late still means
//! what it meant; the table is bounded, and once it is full new strings get
//! no number (the transaction goes without that attribute, said once in the
//! log).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::log;
use crate::options::LogLevel;

/// The most strings the table holds.
const MAX_STRINGS: usize = 1 << 16;
/// The most bytes of text the table holds.
const MAX_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct StringIds {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_text: HashMap<Arc<str>, u32>,
    /// Number n is `texts[n - 1]`; 0 stands for no string.
    texts: Vec<Arc<str>>,
    bytes: usize,
}

impl StringIds {
    /// The number of `bytes` (modified UTF-8 from the JVM; anything not
    /// UTF-8 becomes U+FFFD), or 0 when the table is full.
    pub fn intern(&self, bytes: &[u8]) -> u32 {
        let text = String::from_utf8_lossy(bytes);
        let Ok(mut table) = self.inner.lock() else {
            return 0;
        };
        if let Some(&id) = table.by_text.get(&*text) {
            return id;
        }
        if table.texts.len() >= MAX_STRINGS || table.bytes + text.len() > MAX_BYTES {
            drop(table);
            log::once(
                "string-ids-full",
                LogLevel::Warn,
                &format!(
                    "{MAX_STRINGS} distinct routes, methods and exception classes (or {} MiB of them) seen; \
                     new ones are sent without that attribute",
                    MAX_BYTES >> 20
                ),
            );
            return 0;
        }
        let text: Arc<str> = Arc::from(text);
        table.bytes += text.len();
        table.texts.push(text.clone());
        let id = table.texts.len() as u32;
        table.by_text.insert(text, id);
        id
    }

    /// Resolves numbers while the table is held once (the exporter reads
    /// a whole batch's strings this way).
    pub fn with<R>(&self, read: impl FnOnce(&dyn Fn(u32) -> Option<Arc<str>>) -> R) -> R {
        match self.inner.lock() {
            Ok(table) => read(&|id| table.texts.get((id as usize).checked_sub(1)?).cloned()),
            Err(_) => read(&|_| None),
        }
    }
}

/// The agent's one table.
pub static STRING_IDS: LazyLock<StringIds> = LazyLock::new(StringIds::default);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_keeps_its_number_and_numbers_resolve() {
        let ids = StringIds::default();
        let get = ids.intern(b"GET");
        let post = ids.intern(b"POST");
        assert_ne!(get, 0);
        assert_ne!(get, post);
        assert_eq!(ids.intern(b"GET"), get);
        assert_eq!(ids.intern(&[b'a', 0xff]), 3);
        ids.with(|resolve| {
            assert_eq!(resolve(get).as_deref(), Some("GET"));
            assert_eq!(resolve(post).as_deref(), Some("POST"));
            assert_eq!(resolve(3).as_deref(), Some("a\u{fffd}"));
            assert_eq!(resolve(0), None);
            assert_eq!(resolve(99), None);
        });
    }

    #[test]
    fn a_full_table_gives_no_number_and_keeps_the_ones_it_gave() {
        let ids = StringIds::default();
        let first = ids.intern(b"/first");
        assert_eq!(
            ids.intern(&vec![b'x'; 5 << 20]),
            0,
            "more bytes than the table holds"
        );
        for n in 0..MAX_STRINGS {
            ids.intern(format!("/{n}").as_bytes());
        }
        assert_eq!(ids.intern(b"/new"), 0, "full");
        assert_eq!(
            ids.intern(b"/first"),
            first,
            "known strings keep their number"
        );
    }
}
