//! The store's string table: service, instance, endpoint and metric series names
//! are written once to `strings.log` and referenced by a `u32` id everywhere
//! else, which is what keeps point records fixed-size.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::frame;

/// The id → string side of the table, shared with readers.
#[derive(Default)]
pub struct Strings {
    names: RwLock<Vec<Arc<str>>>,
}

impl Strings {
    /// The string with id `id`; empty if unknown (a damaged reference).
    pub fn get(&self, id: u32) -> Arc<str> {
        let names = self.names.read().unwrap();
        names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// How many strings the table holds (ids are `0..count`).
    pub fn count(&self) -> usize {
        self.names.read().unwrap().len()
    }

    /// The id of `name`, if the table has it (a scan: for rare lookups by name).
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let names = self.names.read().unwrap();
        names.iter().position(|s| &**s == name).map(|i| i as u32)
    }
}

/// Loads `strings.log`, cutting a torn tail when `repair` is set.
pub fn load(path: &Path, repair: bool) -> io::Result<Strings> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut frames = frame::Frames::new(&bytes);
    let names: Vec<Arc<str>> = frames
        .by_ref()
        .map(|payload| Arc::from(String::from_utf8_lossy(payload).as_ref()))
        .collect();
    let valid = frames.valid_len as u64;
    if valid < bytes.len() as u64 && repair {
        tracing::warn!(
            file = %path.display(),
            cut_bytes = bytes.len() as u64 - valid,
            "string table had a torn tail after a crash; cut back to the last whole record"
        );
        OpenOptions::new().write(true).open(path)?.set_len(valid)?;
    }
    Ok(Strings {
        names: RwLock::new(names),
    })
}

/// The writer's side: string → id, and new strings not yet on disk.
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    file: File,
    pending: Vec<u8>,
    durable_count: usize,
}

impl Interner {
    pub fn open(path: &Path, strings: &Strings) -> io::Result<Interner> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let names = strings.names.read().unwrap();
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Ok(Interner {
            ids,
            file,
            pending: Vec::new(),
            durable_count: names.len(),
        })
    }

    /// The id of `s`, adding it to the table (in memory now, on disk at [`Self::flush`]).
    pub fn intern(&mut self, strings: &Strings, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let name: Arc<str> = Arc::from(s);
        let mut names = strings.names.write().unwrap();
        let id = names.len() as u32;
        names.push(name.clone());
        self.ids.insert(name, id);
        frame::push(&mut self.pending, s.as_bytes());
        id
    }

    /// Writes and syncs new strings.
    pub fn flush(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        self.file.write_all(&self.pending)?;
        self.file.sync_data()?;
        self.pending.clear();
        self.durable_count = self.ids.len();
        Ok(true)
    }

    /// Forgets strings added since the last successful flush (their batch failed).
    pub fn rollback(&mut self, strings: &Strings, path: &Path) -> io::Result<()> {
        let mut names = strings.names.write().unwrap();
        for name in names.drain(self.durable_count..) {
            self.ids.remove(&name);
        }
        self.pending.clear();
        let durable_len: u64 = names.iter().map(|s| (frame::HEADER + s.len()) as u64).sum();
        drop(names);
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(durable_len)
    }
}
