//! One hour of data: the files of a time partition and what of them is committed.
//!
//! A segment holds four append-only files named after its UTC hour:
//! `.points` (fixed-size XLog point records, after a header naming their
//! format, see [`Format`]), `.details` (framed span and
//! resource protobufs a point refers to), `.metrics` (fixed-size JVM metric
//! samples) and `.events` (framed JSON JVM events such as GC pauses). Readers
//! only look below the committed length of each file, so they never see a
//! record whose batch has not been synced and acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::partition;
use super::{damage, frame};
use crate::point::{Detected, Format, Point};

/// Size of one metric sample record.
pub const SAMPLE_SIZE: usize = 32;

/// Records read at a time when recovery looks for the last intact one.
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

    /// How many records of `size` bytes, from byte `base` on, to keep: up
    /// to the last one `intact` accepts, looking back from the end
    /// [`RECOVERY_WINDOW`] records at a time. Records before it that
    /// `intact` refuses are noted as damaged.
    fn last_intact(
        &self,
        base: u64,
        size: usize,
        log: bool,
        mut intact: impl FnMut(&[u8]) -> Option<()>,
    ) -> io::Result<u64> {
        let mut to = self.committed().saturating_sub(base) / size as u64;
        while to > 0 {
            let from = to.saturating_sub(RECOVERY_WINDOW);
            let mut buf = vec![0u8; ((to - from) as usize) * size];
            self.read_at(&mut buf, base + from * size as u64)?;
            let mut last = None;
            let mut bad = Vec::new();
            for (i, rec) in buf.chunks_exact(size).enumerate() {
                let at = from + i as u64;
                match intact(rec) {
                    Some(()) => last = Some(at),
                    None => bad.push(at),
                }
            }
            if let Some(last) = last {
                let offsets = bad.into_iter().filter(|&at| at < last);
                let offsets = offsets.map(|at| base + at * size as u64);
                damage::note(&self.path, offsets, log);
                return Ok(last + 1);
            }
            to = from;
        }
        Ok(0)
    }

    /// Cuts the bytes after the last intact frame, walking from `from` (a
    /// frame boundary); damaged frames before an intact one are noted.
    fn cut_framed(
        &self,
        from: u64,
        repair: bool,
        what: &str,
        plausible: impl Fn(&[u8]) -> bool,
    ) -> io::Result<()> {
        let len = self.committed();
        let mut bytes = vec![0u8; len.saturating_sub(from) as usize];
        self.read_at(&mut bytes, from)?;
        let walk = frame::walk(&bytes, plausible, |_, _| {});
        let damaged = walk.damaged.iter().map(|&(start, _)| from + start as u64);
        damage::note(&self.path, damaged, repair);
        self.cut(from + walk.valid_len as u64, repair, what)
    }

    fn cut(&self, valid: u64, repair: bool, what: &str) -> io::Result<()> {
        let len = self.committed();
        if valid >= len {
            return Ok(());
        }
        if repair {
            tracing::warn!(
                file = %self.path.display(),
                at_byte = valid,
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
    /// The layout of its `.points` file.
    pub format: Format,
    pub points: Log,
    pub details: Log,
    pub metrics: Log,
    pub events: Log,
    /// Log damaged records readers meet (the server); offline readers only
    /// note them, for their command to report.
    log_damage: bool,
}

/// Whether a frame payload looks like an event (a JSON object).
fn is_event(payload: &[u8]) -> bool {
    payload.first() == Some(&b'{')
}

impl Segment {
    fn paths(dir: &Path, hour: u64) -> [PathBuf; 4] {
        let base = partition::label(hour);
        ["points", "details", "metrics", "events"].map(|ext| dir.join(format!("{base}.{ext}")))
    }

    /// Creates the files of a new hour, its points file in the current
    /// format.
    pub fn create(dir: &Path, hour: u64) -> io::Result<Segment> {
        let mut seg = Self::open_files(dir, hour, false)?;
        seg.start_points_file()?;
        Ok(seg)
    }

    /// Makes the points file an empty one of the current format: its header,
    /// synced, and nothing after it.
    fn start_points_file(&mut self) -> io::Result<()> {
        self.format = Format::CURRENT;
        let header = self.format.header();
        self.points.file.set_len(0)?;
        self.points.append(header)?;
        self.points.sync()?;
        self.points.publish(header.len() as u64);
        Ok(())
    }

    fn open_files(dir: &Path, hour: u64, read_only: bool) -> io::Result<Segment> {
        let [points, details, metrics, events] = Self::paths(dir, hour);
        Ok(Segment {
            hour,
            format: Format::CURRENT,
            points: Log::open(points, read_only)?,
            details: Log::open(details, read_only)?,
            metrics: Log::open(metrics, read_only)?,
            events: Log::open(events, read_only)?,
            log_damage: true,
        })
    }

    /// Opens an existing hour and finds its committed lengths. Only a torn
    /// tail is cut (with `repair`; offline readers only ignore it): the bytes
    /// after the last intact record, and points whose detail is not on disk
    /// (their batch was never acknowledged). A damaged record before an
    /// intact one costs that record alone: it stays in the file, readers skip
    /// it, and it is noted in [`damage`] with its file and offset.
    pub fn recover(dir: &Path, hour: u64, repair: bool) -> io::Result<Segment> {
        let mut seg = Self::open_files(dir, hour, !repair)?;
        seg.log_damage = repair;
        // The points file's format, from its first bytes.
        let mut head = vec![0u8; (seg.points.committed() as usize).min(16)];
        seg.points.read_at(&mut head, 0)?;
        match Format::detect(&head) {
            Detected::Format(format) => seg.format = format,
            Detected::Fresh if repair => seg.start_points_file()?,
            // Offline: a file with no record yet reads as empty.
            Detected::Fresh => seg.points.publish(0),
            Detected::Newer => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} was written by a newer jvmapm (points format {})",
                        seg.points.path.display(),
                        String::from_utf8_lossy(&head)
                    ),
                ))
            }
        }
        // Points: the last intact record whose detail is on disk ends what is kept.
        let (format, base) = (seg.format, seg.points_base());
        let details_len = seg.details.committed();
        let mut details_end = 0;
        let kept = seg
            .points
            .last_intact(base, format.record_size(), repair, |rec| {
                let p = Point::decode(format, rec)?;
                let end = p.detail.offset + p.detail.len as u64;
                (end <= details_len).then(|| details_end = end)
            })?;
        let kept_len = base.min(seg.points.committed()) + kept * format.record_size() as u64;
        seg.points.cut(kept_len, repair, "a points file")?;
        // Details: whole frames after the last kept point's (children waiting
        // for their transaction are kept too).
        seg.details
            .cut_framed(details_end, repair, "a details file", |p| {
                matches!(p.first(), Some(1..=3))
            })?;
        // Metric samples: the last intact record ends what is kept.
        let kept = seg
            .metrics
            .last_intact(0, SAMPLE_SIZE, repair, |rec| Sample::decode(rec).map(drop))?;
        seg.metrics
            .cut(kept * SAMPLE_SIZE as u64, repair, "a metrics file")?;
        // Events: whole frames.
        seg.events
            .cut_framed(0, repair, "an events file", is_event)?;
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

    /// Where the first point record lies in the points file.
    fn points_base(&self) -> u64 {
        self.format.header().len() as u64
    }

    /// Where point record `index` lies in the points file.
    fn point_offset(&self, index: u64) -> u64 {
        self.points_base() + index * self.format.record_size() as u64
    }

    /// Committed points.
    pub fn point_count(&self) -> u64 {
        let records = self.points.committed().saturating_sub(self.points_base());
        records / self.format.record_size() as u64
    }

    /// Reads committed points `[from, to)` by index.
    /// A damaged record is skipped and noted (see [`damage`]).
    pub fn read_points(&self, from: u64, to: u64) -> io::Result<Vec<Point>> {
        let (format, size) = (self.format, self.format.record_size());
        let mut buf = vec![0u8; ((to - from) as usize) * size];
        self.points.read_at(&mut buf, self.point_offset(from))?;
        let (points, damaged) = decode_all(&buf, size, |rec| Point::decode(format, rec));
        self.note(&self.points, self.point_offset(from), damaged);
        Ok(points)
    }

    /// Notes damaged records at `offsets` relative to `base` of `log`.
    fn note(&self, log: &Log, base: u64, offsets: Vec<u64>) {
        if !offsets.is_empty() {
            damage::note(
                &log.path,
                offsets.into_iter().map(|o| base + o),
                self.log_damage,
            );
        }
    }

    /// Index of the first committed point whose seq is greater than `after`
    /// (points are appended in seq order).
    /// A damaged record is judged by the next intact one.
    pub fn first_after(&self, after: u64) -> io::Result<u64> {
        let (mut lo, mut hi) = (0, self.point_count());
        let mut rec = vec![0u8; self.format.record_size()];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let mut seq = None;
            for i in mid..hi {
                self.points.read_at(&mut rec, self.point_offset(i))?;
                if let Some(p) = Point::decode(self.format, &rec) {
                    seq = Some(p.seq);
                    break;
                }
            }
            match seq {
                Some(seq) if seq <= after => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// All committed metric samples.
    pub fn read_samples(&self) -> io::Result<Vec<Sample>> {
        let mut buf = vec![0u8; self.metrics.committed() as usize];
        self.metrics.read_at(&mut buf, 0)?;
        let (samples, damaged) = decode_all(&buf, SAMPLE_SIZE, Sample::decode);
        self.note(&self.metrics, 0, damaged);
        Ok(samples)
    }

    /// All committed event payloads.
    pub fn read_events(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut buf = vec![0u8; self.events.committed() as usize];
        self.events.read_at(&mut buf, 0)?;
        let mut events = Vec::new();
        let walk = frame::walk(&buf, is_event, |_, p| events.push(p.to_vec()));
        let damaged = walk.damaged.iter().map(|&(start, _)| start as u64);
        self.note(&self.events, 0, damaged.collect());
        Ok(events)
    }
}

/// The records of `buf` that `decode` accepts, and the offsets of those it refuses.
fn decode_all<T>(
    buf: &[u8],
    size: usize,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> (Vec<T>, Vec<u64>) {
    let mut damaged = Vec::new();
    let records = buf
        .chunks_exact(size)
        .enumerate()
        .filter_map(|(i, rec)| {
            let record = decode(rec);
            if record.is_none() {
                damaged.push((i * size) as u64);
            }
            record
        })
        .collect();
    (records, damaged)
}
