//! Damaged records met in the store's files: recovery and every reader skip
//! them and note them here, by file and byte offset, so that a damaged record
//! costs that record alone and is never skipped in silence. The server logs
//! one line per damaged file; `jvmapm export` and `jvmapm xlog --data` tell
//! the operator what they skipped ([`report`]).
//!
//! The record is process-wide (offline commands open one data directory;
//! the server keeps its own files), and a record noted twice counts once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Offsets remembered per file; past this a file's count stops growing.
const MAX_PER_FILE: usize = 1 << 20;

static DAMAGED: Mutex<BTreeMap<PathBuf, BTreeSet<u64>>> = Mutex::new(BTreeMap::new());

/// Notes damaged records of `file` at byte `offsets`; when some are new and
/// `log` is set, says so in one log line naming the file and the first offset.
pub fn note(file: &Path, offsets: impl IntoIterator<Item = u64>, log: bool) {
    let mut damaged = DAMAGED.lock().unwrap_or_else(|e| e.into_inner());
    let known = damaged.entry(file.to_path_buf()).or_default();
    let before = known.len();
    let mut first_new = None;
    for offset in offsets {
        if known.len() >= MAX_PER_FILE {
            break;
        }
        if known.insert(offset) {
            first_new = Some(first_new.map_or(offset, |f: u64| f.min(offset)));
        }
    }
    let added = known.len() - before;
    if known.is_empty() {
        damaged.remove(file);
    }
    if let (Some(at_byte), true) = (first_new, log) {
        tracing::warn!(
            file = %file.display(),
            at_byte,
            records = added,
            "damaged records skipped (the records around them are kept)"
        );
    }
}

/// Damaged records noted so far, in all files.
pub fn count() -> u64 {
    let damaged = DAMAGED.lock().unwrap_or_else(|e| e.into_inner());
    damaged.values().map(|s| s.len() as u64).sum()
}

/// What was skipped, for the operator: `None` when nothing was, else e.g.
/// `3 damaged records skipped: /d/strings.log at byte 40, /d/segments/2026-11-22T01.points
/// at bytes 312 (and 1 more)`.
pub fn report() -> Option<String> {
    let damaged = DAMAGED.lock().unwrap_or_else(|e| e.into_inner());
    let total: usize = damaged.values().map(BTreeSet::len).sum();
    if total == 0 {
        return None;
    }
    let files: Vec<String> = damaged
        .iter()
        .map(|(file, offsets)| {
            let first = offsets.first().copied().unwrap_or(0);
            match offsets.len() {
                1 => format!("{} at byte {first}", file.display()),
                n => format!("{} at byte {first} (and {} more)", file.display(), n - 1),
            }
        })
        .collect();
    let records = if total == 1 { "record" } else { "records" };
    Some(format!(
        "{total} damaged {records} skipped: {}",
        files.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_noted_twice_counts_once() {
        let file = Path::new("/nonexistent/damage-test/a.points");
        note(file, [208, 104], false);
        note(file, [104], false);
        let report = report().unwrap();
        assert!(
            report.contains("/nonexistent/damage-test/a.points at byte 104 (and 1 more)"),
            "{report}"
        );
        assert!(count() >= 2);
    }
}
