//! The durable XLog store: a data directory of hourly segments plus a string
//! table, written by one writer thread with group commit and read concurrently
//! by the query API and the offline exporter.
//!
//! Layout of a data directory:
//! ```text
//! DATA/LOCK                      held by the one `jvmapm serve` writing here
//! DATA/strings.log               interned names (framed records)
//! DATA/instances.json            services and instances with last-seen times
//! DATA/segments/2026-11-22T01.*  one hour of points, details, metrics, events
//! ```
//! Every record is checked by a CRC. A restart after a crash cuts a torn tail
//! (the bytes after the last intact record) back to the last whole record, in
//! one log line, and goes on. A damaged record elsewhere costs that record
//! alone: it is skipped, counted and logged with its file and offset
//! ([`damage`]), and the names in `strings.log` keep their ids.

pub mod children;
pub mod damage;
pub mod detail;
mod frame;
pub mod instances;
pub mod partition;
mod segment;
mod strings;
pub mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use segment::{Sample, Segment};
pub use strings::Strings;

use crate::point::Point;

/// An error of the store, naming the file or directory at fault.
#[derive(Debug)]
pub struct StoreError {
    pub what: String,
    pub source: io::Error,
}

impl StoreError {
    fn at(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError { what, source }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// How a data directory is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The server: takes the directory's lock and repairs torn tails.
    Write,
    /// Offline readers: no lock, nothing changed on disk.
    ReadOnly,
}

pub struct Store {
    dir: PathBuf,
    segments_dir: PathBuf,
    pub strings: Strings,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// Highest seq whose point is committed and visible.
    committed_seq: AtomicU64,
    _lock: Option<File>,
}

impl Store {
    /// Opens (creating in write mode) the data directory `dir`.
    pub fn open(dir: &Path, mode: Mode) -> Result<Store, StoreError> {
        let repair = mode == Mode::Write;
        let segments_dir = dir.join("segments");
        let lock = if repair {
            fs::create_dir_all(&segments_dir).map_err(StoreError::at(format!(
                "cannot create data directory {}",
                segments_dir.display()
            )))?;
            let path = dir.join("LOCK");
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(StoreError::at(format!("cannot open {}", path.display())))?;
            file.try_lock().map_err(|_| StoreError {
                what: format!(
                    "data directory {} is in use by another jvmapm serve",
                    dir.display()
                ),
                source: io::Error::from(io::ErrorKind::WouldBlock),
            })?;
            Some(file)
        } else {
            if !dir.is_dir() {
                return Err(StoreError {
                    what: format!("data directory {}", dir.display()),
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
            None
        };
        let strings_path = dir.join("strings.log");
        let strings = strings::load(&strings_path, repair).map_err(StoreError::at(format!(
            "cannot read {}",
            strings_path.display()
        )))?;
        let mut segments = BTreeMap::new();
        let mut committed_seq = 0;
        let entries = match fs::read_dir(&segments_dir) {
            Ok(entries) => entries.collect::<Result<Vec<_>, _>>(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .map_err(StoreError::at(format!(
            "cannot list {}",
            segments_dir.display()
        )))?;
        for entry in entries {
            let name = entry.file_name();
            let Some(hour) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".points"))
                .and_then(partition::parse_label)
            else {
                continue;
            };
            let seg = Segment::recover(&segments_dir, hour, repair).map_err(StoreError::at(
                format!("cannot recover segment {}", partition::label(hour)),
            ))?;
            let count = seg.point_count();
            if count > 0 {
                if let Some(last) = seg
                    .read_points(count - 1, count)
                    .map_err(StoreError::at(format!(
                        "cannot read segment {}",
                        partition::label(hour)
                    )))?
                    .first()
                {
                    committed_seq = committed_seq.max(last.seq);
                }
            }
            segments.insert(hour, Arc::new(seg));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            segments_dir,
            strings,
            segments: RwLock::new(segments),
            committed_seq: AtomicU64::new(committed_seq),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The highest seq that readers may see.
    pub fn committed_seq(&self) -> u64 {
        self.committed_seq.load(Ordering::Acquire)
    }

    /// Makes points up to `seq` visible (writer thread only, after their files are published).
    fn publish_seq(&self, seq: u64) {
        self.committed_seq.store(seq, Ordering::Release);
    }

    /// Segments whose hour overlaps `[from_ms, to_ms]`, oldest first.
    pub fn segments_in(&self, from_ms: u64, to_ms: u64) -> Vec<Arc<Segment>> {
        let (from, to) = (partition::hour_of(from_ms), partition::hour_of(to_ms));
        if from > to {
            return Vec::new();
        }
        self.segments
            .read()
            .unwrap()
            .range(from..=to)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The segment of `hour`, if there is one.
    pub fn segment(&self, hour: u64) -> Option<Arc<Segment>> {
        self.segments.read().unwrap().get(&hour).cloned()
    }

    /// The segment of `hour`, created when missing (writer thread only).
    fn segment_for_write(&self, hour: u64) -> io::Result<Arc<Segment>> {
        if let Some(seg) = self.segments.read().unwrap().get(&hour) {
            return Ok(seg.clone());
        }
        let seg = Arc::new(Segment::create(&self.segments_dir, hour)?);
        self.segments.write().unwrap().insert(hour, seg.clone());
        Ok(seg)
    }

    /// Deletes the segments whose whole hour ended before `cutoff_ms`.
    pub fn expire(&self, cutoff_ms: u64) -> usize {
        let last_expired = partition::hour_of(cutoff_ms);
        let expired: Vec<u64> = {
            let mut segments = self.segments.write().unwrap();
            let keep = segments.split_off(&last_expired);
            let expired = std::mem::replace(&mut *segments, keep);
            expired.into_keys().collect()
        };
        for &hour in &expired {
            Segment::remove(&self.segments_dir, hour);
            tracing::info!(segment = %partition::label(hour), "removed segment past retention");
        }
        expired.len()
    }

    /// Looks a point up by its ids, newest segments first; `near_ms` (its end
    /// time, when the caller knows it) picks the segment at once.
    pub fn find_point(
        &self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        near_ms: Option<u64>,
    ) -> io::Result<Option<(Arc<Segment>, Point)>> {
        let mut candidates: Vec<Arc<Segment>> = self
            .segments
            .read()
            .unwrap()
            .values()
            .rev()
            .cloned()
            .collect();
        if let Some(t) = near_ms {
            let hour = partition::hour_of(t);
            candidates.sort_by_key(|s| s.hour != hour);
        }
        const CHUNK: u64 = 8192;
        for seg in candidates {
            let count = seg.point_count();
            let mut from = 0;
            while from < count {
                let to = (from + CHUNK).min(count);
                if let Some(p) = seg
                    .read_points(from, to)?
                    .into_iter()
                    .find(|p| &p.trace_id == trace_id && &p.span_id == span_id)
                {
                    return Ok(Some((seg, p)));
                }
                from = to;
            }
        }
        Ok(None)
    }
}
