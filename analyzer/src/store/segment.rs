//! One hour of data: the files of a time partition and what of them is committed.
//!
//! A segment holds four append-only files named after its UTC hour:
//! `.points` (fixed-size XLog point records), `.details` (framed span and
//! resource protobufs a point refers to), `.metrics` (fixed-size JVM metric
//! samples) and `.events` (framed JSON JVM events such as GC pauses). Readers
//! only look below the committed length of each file, so they never see a
//! record whose batch has not been synced and acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::frame;
use super::partition;
use crate::point::{Point, RECORD_SIZE};

/// Size of one metric sample record.
pub const SAMPLE_SIZE: usize = 32;

/// Records at the end of a file that recovery checks one by one after a crash.
const RECOVERY_WINDOW: u64 = 1 << 16;

/// One JVM metric sample as stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t_ms: u64,
    pub value: f64,
    pub instance: u32,
    pub series: u32,
}

impl Sample {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.t_ms.to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.instance.to_le_bytes());
        out.extend_from_slice(&self.series.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    pub fn decode(rec: &[u8]) -> Option<Sample> {
        let rec: &[u8; SAMPLE_SIZE] = rec.try_into().ok()?;
        let crc = u32::from_le_bytes(rec[28..32].try_into().unwrap());
        if crc32fast::hash(&rec[..28]) != crc {
            return None;
        }
        Some(Sample {
            t_ms: u64::from_le_bytes(rec[0..8].try_into().unwrap()),
            value: f64::from_le_bytes(rec[8..16].try_into().unwrap()),
            instance: u32::from_le_bytes(rec[16..20].try_into().unwrap()),
            series: u32::from_le_bytes(rec[20..24].try_into().unwrap()),
        })
    }
}

/// An append-only file and the length of it that is committed.
pub struct Log {
    path: PathBuf,
    file: File,
    committed: AtomicU64,
}

impl Log {
    fn open(path: PathBuf, read_only: bool) -> io::Result<Log> {
        let file = if read_only {
            File::open(&path)?
        } else {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?
        };
        let len = file.metadata()?.len();
        Ok(Log {
            path,
            file,
            committed: AtomicU64::new(len),
        })
    }

    /// Bytes committed (synced and acknowledged).
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.file).write_all(bytes)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Makes `len` bytes visible to readers.
    pub fn publish(&self, len: u64) {
        self.committed.store(len, Ordering::Release);
    }

    /// Cuts anything written past the committed length (its batch failed).
    pub fn rollback(&self) -> io::Result<()> {
        self.file.set_len(self.committed())
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Reads the frame of `len` bytes at `offset`.
    pub fn read_frame(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        if offset + len as u64 > self.committed() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record past the end of {}", self.path.display()),
            ));
        }
        frame::read_at(&self.file, offset, len)
    }

    fn cut(&self, valid: u64, repair: bool, what: &str) -> io::Result<()> {
        let len = self.committed();
        if valid >= len {
            return Ok(());
        }
        if repair {
            tracing::warn!(
                file = %self.path.display(),
                cut_bytes = len - valid,
                "{what} had a torn tail after a crash; cut back to the last whole record"
            );
            self.file.set_len(valid)?;
        }
        self.publish(valid);
        Ok(())
    }
}

/// The files of one hour.
pub struct Segment {
    pub hour: u64,
    pub points: Log,
    pub details: Log,
    pub metrics: Log,
    pub events: Log,
}

impl Segment {
    fn paths(dir: &Path, hour: u64) -> [PathBuf; 4] {
        let base = partition::label(hour);
        ["points", "details", "metrics", "events"].map(|ext| dir.join(format!("{base}.{ext}")))
    }

    /// Creates the files of a new hour.
    pub fn create(dir: &Path, hour: u64) -> io::Result<Segment> {
        Self::open_files(dir, hour, false)
    }

    fn open_files(dir: &Path, hour: u64, read_only: bool) -> io::Result<Segment> {
        let [points, details, metrics, events] = Self::paths(dir, hour);
        Ok(Segment {
            hour,
            points: Log::open(points, read_only)?,
            details: Log::open(details, read_only)?,
            metrics: Log::open(metrics, read_only)?,
            events: Log::open(events, read_only)?,
        })
    }

    /// Opens an existing hour and finds its committed lengths, checking the tail
    /// written last before a crash. With `repair`, torn or dangling records are
    /// cut from the files; without it (offline readers) they are only ignored.
    pub fn recover(dir: &Path, hour: u64, strings: usize, repair: bool) -> io::Result<Segment> {
        let seg = Self::open_files(dir, hour, !repair)?;
        // Points: whole records whose CRC holds and whose references exist.
        let details_len = seg.details.committed();
        let whole = seg.points.committed() / RECORD_SIZE as u64;
        let first_checked = whole.saturating_sub(RECOVERY_WINDOW);
        let mut valid = first_checked;
        let mut details_end = 0;
        let mut buf = vec![0u8; ((whole - first_checked) as usize) * RECORD_SIZE];
        seg.points
            .read_at(&mut buf, first_checked * RECORD_SIZE as u64)?;
        for rec in buf.chunks_exact(RECORD_SIZE) {
            let Some(p) = Point::decode(rec) else { break };
            let end = p.detail.offset + p.detail.len as u64;
            let ids_ok = [p.service, p.instance, p.endpoint]
                .iter()
                .all(|&id| (id as usize) < strings);
            if end > details_len || !ids_ok {
                break;
            }
            details_end = end;
            valid += 1;
        }
        seg.points
            .cut(valid * RECORD_SIZE as u64, repair, "a points file")?;
        if valid > first_checked || whole == 0 {
            // Details past the last committed point belong to an unacknowledged batch.
            seg.details.cut(details_end, repair, "a details file")?;
        }
        // Metric samples: whole records with a good CRC.
        let whole = seg.metrics.committed() / SAMPLE_SIZE as u64;
        let first_checked = whole.saturating_sub(RECOVERY_WINDOW);
        let mut buf = vec![0u8; ((whole - first_checked) as usize) * SAMPLE_SIZE];
        seg.metrics
            .read_at(&mut buf, first_checked * SAMPLE_SIZE as u64)?;
        let good = buf
            .chunks_exact(SAMPLE_SIZE)
            .take_while(|rec| {
                Sample::decode(rec).is_some_and(|s| ((s.instance.max(s.series)) as usize) < strings)
            })
            .count() as u64;
        seg.metrics.cut(
            (first_checked + good) * SAMPLE_SIZE as u64,
            repair,
            "a metrics file",
        )?;
        // Events: whole frames.
        let mut bytes = vec![0u8; seg.events.committed() as usize];
        seg.events.read_at(&mut bytes, 0)?;
        let mut frames = frame::Frames::new(&bytes);
        frames.by_ref().for_each(drop);
        seg.events
            .cut(frames.valid_len as u64, repair, "an events file")?;
        Ok(seg)
    }

    /// Deletes the files of this hour (retention).
    pub fn remove(dir: &Path, hour: u64) {
        for path in Self::paths(dir, hour) {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %path.display(), error = %e, "could not delete an expired segment file");
                }
            }
        }
    }

    /// Committed points.
    pub fn point_count(&self) -> u64 {
        self.points.committed() / RECORD_SIZE as u64
    }

    /// Reads committed points `[from, to)` by index.
    pub fn read_points(&self, from: u64, to: u64) -> io::Result<Vec<Point>> {
        let mut buf = vec![0u8; ((to - from) as usize) * RECORD_SIZE];
        self.points.read_at(&mut buf, from * RECORD_SIZE as u64)?;
        Ok(buf
            .chunks_exact(RECORD_SIZE)
            .filter_map(Point::decode)
            .collect())
    }

    /// Index of the first committed point whose seq is greater than `after`
    /// (points are appended in seq order).
    pub fn first_after(&self, after: u64) -> io::Result<u64> {
        let (mut lo, mut hi) = (0, self.point_count());
        let mut rec = [0u8; 8];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.points.read_at(&mut rec, mid * RECORD_SIZE as u64)?;
            if u64::from_le_bytes(rec) <= after {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// All committed metric samples.
    pub fn read_samples(&self) -> io::Result<Vec<Sample>> {
        let mut buf = vec![0u8; self.metrics.committed() as usize];
        self.metrics.read_at(&mut buf, 0)?;
        Ok(buf
            .chunks_exact(SAMPLE_SIZE)
            .filter_map(Sample::decode)
            .collect())
    }

    /// All committed event payloads.
    pub fn read_events(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut buf = vec![0u8; self.events.committed() as usize];
        self.events.read_at(&mut buf, 0)?;
        Ok(frame::Frames::new(&buf).map(<[u8]>::to_vec).collect())
    }
}
