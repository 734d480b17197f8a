//! The store's string table: service, instance, endpoint and metric series names
//! are written once to `strings.log` and referenced by a `u32` id everywhere
//! else, which is what keeps point records fixed-size.
//!
//! Each record is a frame whose payload is `[0xFF][id: u32 LE][UTF-8 name]`:
//! the id is written with the name, so a damaged record costs that one name
//! and never shifts the ids of the names after it. `[0xFE][next id: u32 LE]`
//! records that ids below `next id` are taken (written after a damaged tail
//! was cut, as the cut bytes may have held names). Files written before ids
//! were stored hold plain UTF-8 payloads whose id is their position; they are
//! read as such and new names are written with their ids after them.
//!
//! A name is never given a second id's worth of meaning: new names get ids
//! above every id the file may ever have held (a damaged stretch counts as
//! many ids as it could have held), and a point whose name is lost shows
//! `<damaged name #ID>`.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::{damage, frame};

/// First payload byte of a name record.
const NAME: u8 = 0xFF;
/// First payload byte of a next-id record.
const NEXT_ID: u8 = 0xFE;
/// Ids above this are refused as damage (a table this large is not plausible).
const MAX_ID: u32 = 1 << 28;

/// The id → string side of the table, shared with readers.
#[derive(Default)]
pub struct Strings {
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    /// By id; `None` for ids whose record is damaged or lost.
    names: Vec<Option<Arc<str>>>,
    /// The id the next new name gets: above every id ever written.
    next_id: u32,
}

impl Table {
    fn set(&mut self, id: u32, name: Arc<str>) {
        let i = id as usize;
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        self.names[i] = Some(name);
        self.next_id = self.next_id.max(id + 1);
    }
}

impl Strings {
    /// The string with id `id`; `<damaged name #ID>` when its record is lost.
    pub fn get(&self, id: u32) -> Arc<str> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        match table.names.get(id as usize) {
            Some(Some(name)) => name.clone(),
            _ => Arc::from(format!("<damaged name #{id}>")),
        }
    }

    /// Adds `name` under the next id, in memory only (for names read from
    /// ClickHouse, whose ids live only as long as the process).
    pub(crate) fn add(&self, name: Arc<str>) -> u32 {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let id = table.next_id;
        table.set(id, name);
        id
    }

    /// The id of `name`, if the table has it (a scan: for rare lookups by name).
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table
            .names
            .iter()
            .position(|s| s.as_deref() == Some(name))
            .map(|i| i as u32)
    }
}

/// Loads `strings.log`. Damaged records in the middle are skipped (noted in
/// [`damage`]); with `repair`, bytes after the last intact record (a torn
/// tail) are cut and the ids they may have held stay taken.
pub fn load(path: &Path, repair: bool) -> io::Result<Strings> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Old-format records (any UTF-8) come only before the first record with an id.
    let with_ids = Cell::new(false);
    let mut records = Vec::new();
    let walk = frame::walk(
        &bytes,
        |p| match p.first() {
            Some(&NAME) => p.len() >= 5 && id_in(p) < MAX_ID,
            Some(&NEXT_ID) => p.len() == 5 && id_in(p) <= MAX_ID,
            _ => !with_ids.get() && std::str::from_utf8(p).is_ok(),
        },
        |at, payload| {
            with_ids.set(with_ids.get() || matches!(payload.first(), Some(&NAME | &NEXT_ID)));
            records.push((at, payload));
        },
    );
    let mut table = Table::default();
    // The position id of the next old-format record, while it is certain,
    // and a bound on the position ids taken.
    let (mut old_id, mut old_bound) = (Some(0u32), 0u32);
    let mut ids_seen = false;
    let mut damaged = walk.damaged.iter().peekable();
    for (at, payload) in records {
        while let Some(&(start, end)) = damaged.next_if(|d| d.0 < at) {
            if ids_seen {
                continue;
            }
            // Damage among old-format records: the ids after it stay certain
            // only if it is exactly one record (its length field held).
            let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
            let exact_one = start + frame::HEADER + len as usize == end;
            old_id = old_id.filter(|_| exact_one).map(|id| id + 1);
            let held = if exact_one {
                1
            } else {
                (end - start).div_ceil(frame::HEADER)
            };
            old_bound = old_bound.saturating_add(held as u32);
        }
        ids_seen |= matches!(payload.first(), Some(&NAME | &NEXT_ID));
        match payload.first() {
            Some(&NAME) => table.set(
                id_in(payload),
                Arc::from(String::from_utf8_lossy(&payload[5..])),
            ),
            Some(&NEXT_ID) => table.next_id = table.next_id.max(id_in(payload)),
            _ => {
                if let Some(id) = old_id {
                    table.set(
                        id,
                        Arc::from(std::str::from_utf8(payload).unwrap_or_default()),
                    );
                    old_id = Some(id + 1);
                } else {
                    // Its id is unknown: counted with the damage before it.
                }
                old_bound = old_bound.saturating_add(1);
            }
        }
    }
    table.next_id = table.next_id.max(old_bound);
    damage::note(
        path,
        walk.damaged.iter().map(|&(start, _)| start as u64),
        repair,
    );
    let valid = walk.valid_len as u64;
    if valid < bytes.len() as u64 {
        // The cut bytes may have held names: no id they could hold is handed out again.
        let cut = bytes.len() - walk.valid_len;
        table.next_id = table
            .next_id
            .saturating_add(cut.div_ceil(frame::HEADER) as u32);
        if repair {
            tracing::warn!(
                file = %path.display(),
                at_byte = valid,
                cut_bytes = cut,
                "string table had a torn tail after a crash; cut back to the last whole record"
            );
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(valid)?;
            let mut record = Vec::new();
            frame::push(&mut record, &next_id_payload(table.next_id));
            file.write_all_at(&record, valid)?;
            file.sync_data()?;
        }
    }
    Ok(Strings {
        table: RwLock::new(table),
    })
}

fn id_in(payload: &[u8]) -> u32 {
    u32::from_le_bytes(payload[1..5].try_into().unwrap())
}

fn next_id_payload(next_id: u32) -> [u8; 5] {
    let mut p = [NEXT_ID, 0, 0, 0, 0];
    p[1..].copy_from_slice(&next_id.to_le_bytes());
    p
}

/// The writer's side: string → id, and new strings not yet on disk.
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    file: File,
    pending: Vec<u8>,
    /// Ids added since the last flush.
    pending_ids: Vec<u32>,
    /// Length of the file after the last successful flush.
    durable_len: u64,
}

impl Interner {
    pub fn open(path: &Path, strings: &Strings) -> io::Result<Interner> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let durable_len = file.metadata()?.len();
        let table = strings.table.read().unwrap_or_else(|e| e.into_inner());
        let ids = table
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.clone()?, i as u32)))
            .collect();
        Ok(Interner {
            ids,
            file,
            pending: Vec::new(),
            pending_ids: Vec::new(),
            durable_len,
        })
    }

    /// The id of `s`, adding it to the table (in memory now, on disk at [`Self::flush`]).
    pub fn intern(&mut self, strings: &Strings, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let name: Arc<str> = Arc::from(s);
        let mut table = strings.table.write().unwrap_or_else(|e| e.into_inner());
        let id = table.next_id;
        table.set(id, name.clone());
        self.ids.insert(name, id);
        self.pending_ids.push(id);
        let at = frame::open(&mut self.pending);
        self.pending.push(NAME);
        self.pending.extend_from_slice(&id.to_le_bytes());
        self.pending.extend_from_slice(s.as_bytes());
        frame::seal(&mut self.pending, at);
        id
    }

    /// Writes and syncs new strings.
    pub fn flush(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        self.file.write_all(&self.pending)?;
        self.file.sync_data()?;
        self.durable_len += self.pending.len() as u64;
        self.pending.clear();
        self.pending_ids.clear();
        Ok(true)
    }

    /// Forgets strings added since the last successful flush (their batch
    /// failed). Their ids are not handed out again.
    pub fn rollback(&mut self, strings: &Strings, path: &Path) -> io::Result<()> {
        let mut table = strings.table.write().unwrap_or_else(|e| e.into_inner());
        for id in self.pending_ids.drain(..) {
            if let Some(name) = table.names[id as usize].take() {
                self.ids.remove(&name);
            }
        }
        drop(table);
        self.pending.clear();
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(self.durable_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, names: &[&str]) -> Strings {
        let strings = load(path, true).unwrap();
        let mut interner = Interner::open(path, &strings).unwrap();
        for name in names {
            interner.intern(&strings, name);
        }
        interner.flush().unwrap();
        strings
    }

    fn names(strings: &Strings) -> Vec<String> {
        (0..strings.table.read().unwrap().next_id)
            .map(|id| strings.get(id).to_string())
            .collect()
    }

    #[test]
    fn a_damaged_name_costs_that_name_alone_and_its_id_is_not_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strings.log");
        write(&path, &["orders", "payments", "/checkout", "/refund"]);
        let mut bytes = std::fs::read(&path).unwrap();
        // The second record's length field.
        let second = frame::HEADER + 5 + "orders".len();
        bytes[second] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let strings = write(&path, &["/new"]);
        assert_eq!(
            names(&strings),
            [
                "orders",
                "<damaged name #1>",
                "/checkout",
                "/refund",
                "/new"
            ]
        );
        assert!(damage::report()
            .unwrap()
            .contains(&format!("{} at byte {second}", path.display())));
    }

    #[test]
    fn a_cut_tail_keeps_its_ids_taken_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strings.log");
        write(&path, &["a", "b", "c"]);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        drop(load(&path, true).unwrap());
        let strings = write(&path, &["d"]);
        let got = names(&strings);
        assert_eq!(&got[..2], ["a", "b"]);
        assert_eq!(got.last().unwrap(), "d");
        assert!(got.len() > 4, "c's id 2 is not given to d: {got:?}");
        assert_eq!(strings.id_of("d"), Some(got.len() as u32 - 1));
    }

    #[test]
    fn old_records_are_numbered_by_position_and_new_ones_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strings.log");
        let mut old = Vec::new();
        for name in ["orders", "", "/checkout"] {
            frame::push(&mut old, name.as_bytes());
        }
        std::fs::write(&path, &old).unwrap();
        let strings = write(&path, &["/checkout", "/new"]);
        assert_eq!(names(&strings), ["orders", "", "/checkout", "/new"]);
        let strings = load(&path, false).unwrap();
        assert_eq!(names(&strings), ["orders", "", "/checkout", "/new"]);
    }
}
