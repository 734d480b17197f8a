//! The dump's bytes, with the offset of every read known so an error can say
//! where it happened. A plain file is mapped into memory ([`Mapped`]) and
//! read in place, a range at a time, so the heap's segments can be parsed on
//! every core; a gzip file (told by its magic) is inflated front to back in
//! large blocks. Standard input, a pipe or a FIFO is opened once and read
//! front to back as a stream ([`Input::stream`]): its first bytes tell
//! gzip and are read again from memory, never from the source. Nothing of
//! the dump is copied into the process beyond the block being parsed. (A
//! file cut short by another process while it is mapped would fault: dumps
//! are read once they are written.)

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// Bytes read from the source at a time.
const BLOCK: usize = 4 << 20;
/// Skipped stretches of a mapped dump from this long up are given back.
const RELEASE_SKIPPED: u64 = 64 << 10;
/// Most bytes one read may ask for at once; more is taken for damage.
pub const MAX_READ: usize = 64 << 20;

/// Where parsing stopped and what it expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Offset in the (uncompressed) dump.
    pub offset: u64,
    pub expected: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: expected {}", self.offset, self.expected)
    }
}

/// A plain dump's bytes: the file mapped read-only, or bytes in memory.
pub struct Mapped {
    ptr: *const u8,
    len: usize,
    /// Bytes in memory (tests, fuzzing); empty for a mapping.
    owned: Vec<u8>,
}

// SAFETY: the mapping is read-only and private, and lives until `Mapped`
// is dropped; nothing writes through `ptr`.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps the file at `path`. Fails for an empty file or one that cannot
    /// be mapped (a pipe).
    pub fn open(path: &Path) -> io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::other("the file is larger than the address space"))?;
        if len == 0 {
            return Err(io::Error::other("the file is empty"));
        }
        // SAFETY: a fresh read-only private mapping of an open file; the
        // pointer is checked before use and unmapped only in `drop`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on the range just mapped; a failure only loses the hint.
        unsafe { libc::madvise(ptr, len, libc::MADV_WILLNEED) };
        Ok(Mapped {
            ptr: ptr as *const u8,
            len,
            owned: Vec::new(),
        })
    }

    /// Bytes in memory, read as a mapped file is (tests, fuzzing).
    pub fn from_vec(owned: Vec<u8>) -> Mapped {
        Mapped {
            ptr: owned.as_ptr(),
            len: owned.len(),
            owned,
        }
    }

    /// Says the pages of `range` will not be read again soon, so they stop
    /// counting in this process's memory (they stay in the page cache and
    /// are read back in if they are read after all).
    pub fn release(&self, range: std::ops::Range<usize>) {
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = range.end.min(self.len) / PAGE * PAGE;
        if self.owned.is_empty() && start < end {
            // SAFETY: the page-aligned range lies inside the read-only
            // private mapping; a dropped page is read back from the file
            // on its next access.
            unsafe {
                libc::madvise(
                    self.ptr.add(start) as *mut libc::c_void,
                    end - start,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of `len` readable bytes (the mapping,
        // or `owned`, whose buffer never moves) for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.owned.is_empty() {
            // SAFETY: unmaps exactly what `open` mapped, once.
            unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        }
    }
}

/// A forward-only reader of big-endian values.
pub struct Input {
    /// Where further bytes come from; `None` for a mapped range, which is
    /// whole from the start.
    source: Option<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    /// The mapping a mapped range reads (kept alive while it is read).
    mapped: Option<std::sync::Arc<Mapped>>,
    /// The readable bytes: `buf`, or the mapped range (`end` bytes from here).
    data: *const u8,
    pos: usize,
    end: usize,
    /// Offset of `buf[0]` in the dump.
    base: u64,
    eof: bool,
    /// The source failed (not a short read): kept for the error message.
    failure: Option<String>,
    pub compressed: bool,
    /// Size of the file on disk, for progress.
    pub file_len: u64,
    /// Compressed bytes consumed so far (gzip) or the offset (plain).
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Counts the file bytes that go through it, for progress on gzip input.
struct Counted<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads its source on a thread of its own, a block or two ahead, so that
/// reading the file (and inflating it) overlaps parsing on the other core.
struct Prefetch {
    blocks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Emptied blocks go back to the reading thread.
    recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    done: bool,
}

impl Prefetch {
    fn start(mut source: Box<dyn Read + Send>) -> io::Result<Prefetch> {
        let (send, blocks) = std::sync::mpsc::sync_channel(2);
        let (recycle, recycled) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        std::thread::Builder::new()
            .name("jvmapm-heap-read".into())
            .spawn(move || loop {
                let mut block = recycled.try_recv().unwrap_or_default();
                block.resize(BLOCK, 0);
                let mut filled = 0;
                while filled < BLOCK {
                    match source.read(&mut block[filled..]) {
                        Ok(0) => break,
                        Ok(k) => filled += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = send.send(Err(e));
                            return;
                        }
                    }
                }
                block.truncate(filled);
                // An empty block says the end; a dropped receiver, that
                // nobody reads any more.
                if send.send(Ok(block)).is_err() || filled == 0 {
                    return;
                }
            })?;
        Ok(Prefetch {
            blocks,
            recycle,
            current: Vec::new(),
            at: 0,
            done: false,
        })
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) if !block.is_empty() => {
                    let empty = std::mem::replace(&mut self.current, block);
                    let _ = self.recycle.try_send(empty);
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Ok(Ok(_)) | Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Whether the file at `path` is gzip-compressed (by its magic number).
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path)?;
    let mut read = 0;
    while read < 2 {
        match file.read(&mut magic[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read == 2 && magic == [0x1f, 0x8b])
}

// SAFETY: `data` points into `buf` or into `mapped`, both owned by the
// Input and moved with it (a Vec's buffer does not move with the Vec).
unsafe impl Send for Input {}

impl Input {
    /// Reads `range` of a mapped dump in place; offsets are the file's.
    pub fn mapped(mapped: std::sync::Arc<Mapped>, range: std::ops::Range<usize>) -> Input {
        let range = range.start.min(mapped.len)..range.end.min(mapped.len);
        let data = mapped.bytes()[range.clone()].as_ptr();
        Input {
            source: None,
            buf: Vec::new(),
            data,
            pos: 0,
            end: range.len(),
            base: range.start as u64,
            eof: true,
            failure: None,
            compressed: false,
            file_len: mapped.len as u64,
            progress: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            mapped: Some(mapped),
        }
    }

    /// Opens a gzip dump, or a plain one that could not be mapped, to
    /// read front to back.
    pub fn open(path: &Path) -> io::Result<Input> {
        let file_len = std::fs::metadata(path)?.len();
        let compressed = is_gzip(path)?;
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            inner: File::open(path)?,
            count: progress.clone(),
        };
        Input::read_ahead(counted, compressed, file_len, progress)
    }

    /// Reads `counted` (inflating it when `compressed`) on a thread of its
    /// own, a block ahead of the parser.
    fn read_ahead<R: Read + Send + 'static>(
        counted: Counted<R>,
        compressed: bool,
        file_len: u64,
        progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> io::Result<Input> {
        let source: Box<dyn Read + Send> = if compressed {
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(
                BLOCK, counted,
            )))
        } else {
            Box::new(counted)
        };
        let source = Box::new(Prefetch::start(source)?);
        Ok(Input::new(source, compressed, file_len, progress, BLOCK))
    }

    /// Reads a stream (standard input, a pipe, a FIFO) front to back, once:
    /// its first two bytes tell whether it is gzip, and are kept to be read
    /// again. `file_len` is 0: the length is not known.
    pub fn stream(mut source: Box<dyn Read + Send>) -> io::Result<Input> {
        let mut magic = Vec::with_capacity(2);
        while magic.len() < 2 {
            let mut byte = [0u8; 2];
            let want = 2 - magic.len();
            match source.read(&mut byte[..want]) {
                Ok(0) => break,
                Ok(n) => magic.extend_from_slice(&byte[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let compressed = magic == [0x1f, 0x8b];
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            inner: io::Cursor::new(magic).chain(source),
            count: progress.clone(),
        };
        Input::read_ahead(counted, compressed, 0, progress)
    }

    /// Reads from memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Input {
        let len = bytes.len() as u64;
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let block = (len as usize).clamp(64, BLOCK);
        Input::new(
            Box::new(io::Cursor::new(bytes)),
            false,
            len,
            progress,
            block,
        )
    }

    fn new(
        source: Box<dyn Read + Send>,
        compressed: bool,
        file_len: u64,
        progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
        block: usize,
    ) -> Input {
        let buf = vec![0; block];
        Input {
            source: Some(source),
            data: buf.as_ptr(),
            buf,
            mapped: None,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            failure: None,
            compressed,
            file_len,
            progress,
        }
    }

    /// Offset of the next byte in the dump.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn error(&self, expected: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.offset(),
            expected: expected.into(),
        }
    }

    /// The input ended (or failed) before `what`.
    fn short(&self, what: &str) -> ParseError {
        match &self.failure {
            Some(why) => self.error(format!("{what} (reading failed: {why})")),
            None => self.error(format!("{what} (the file ends here: cut short?)")),
        }
    }

    /// The readable bytes.
    #[inline(always)]
    fn window(&self) -> &[u8] {
        // SAFETY: `data` is the start of `end` readable bytes: `buf`'s
        // (re-pointed after every change of `buf`) or the mapped range's.
        unsafe { std::slice::from_raw_parts(self.data, self.end) }
    }

    /// Makes `n` bytes available after `pos` (n at most a block); false at
    /// the end of the input.
    fn fill(&mut self, n: usize) -> bool {
        if self.end - self.pos >= n {
            return true;
        }
        let Some(source) = self.source.as_mut() else {
            return false;
        };
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        if n > self.buf.len() {
            self.buf.resize(n, 0);
        }
        while self.end < n && !self.eof {
            match source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failure = Some(e.to_string());
                    self.eof = true;
                }
            }
        }
        self.data = self.buf.as_ptr();
        if !self.compressed {
            self.progress.store(
                self.base + self.end as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        self.end - self.pos >= n
    }

    /// Bytes read from the source and not consumed yet: after a read that
    /// failed for want of bytes, all that was left of the input.
    pub fn left(&self) -> usize {
        self.end - self.pos
    }

    /// True when no byte is left.
    pub fn at_end(&mut self) -> bool {
        !self.fill(1)
    }

    /// The next `n` bytes (n at most [`MAX_READ`]), consumed.
    #[inline]
    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&[u8], ParseError> {
        if self.end - self.pos < n {
            self.refill(n, what)?;
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.window()[start..start + n])
    }

    /// The slow side of [`Input::bytes`]: reads more, or says why it cannot.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, n: usize, what: &str) -> Result<(), ParseError> {
        if n > MAX_READ {
            return Err(self.error(format!(
                "{what} of at most {MAX_READ} bytes, not {n}: damaged?"
            )));
        }
        if self.fill(n) {
            Ok(())
        } else {
            Err(self.short(what))
        }
    }

    /// The next `N` bytes as an array.
    #[inline(always)]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ParseError> {
        if self.end - self.pos < N {
            self.refill(N, what)?;
        }
        let bytes: [u8; N] = self.window()[self.pos..self.pos + N]
            .try_into()
            .expect("N bytes");
        self.pos += N;
        Ok(bytes)
    }

    #[inline(always)]
    pub fn u8(&mut self, what: &str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(what)?[0])
    }

    #[inline(always)]
    pub fn u16(&mut self, what: &str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    #[inline(always)]
    pub fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    #[inline(always)]
    pub fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// An identifier of `size` bytes (4 or 8).
    #[inline(always)]
    pub fn id(&mut self, size: u8, what: &str) -> Result<u64, ParseError> {
        if size == 4 {
            Ok(u64::from(self.u32(what)?))
        } else {
            self.u64(what)
        }
    }

    /// Skips `n` bytes, reading through them.
    /// A mapped input gives back the pages of a long stretch it skips: the
    /// kernel may have mapped them around the last page read (a large
    /// page-cache folio), and nothing will read them from here.
    pub fn skip(&mut self, mut n: u64, what: &str) -> Result<(), ParseError> {
        loop {
            let here = (self.end - self.pos) as u64;
            if here >= n {
                if let Some(mapped) = self.mapped.as_ref().filter(|_| n >= RELEASE_SKIPPED) {
                    let from = self.offset() as usize;
                    mapped.release(from..from + n as usize);
                }
                self.pos += n as usize;
                return Ok(());
            }
            n -= here;
            self.pos = self.end;
            if !self.fill(1) {
                return Err(self.short(what));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_big_endian_and_a_short_input_says_where_it_ends() {
        let mut input = Input::from_bytes(vec![0, 1, 0, 0, 0, 2, 9]);
        assert_eq!(input.u16("a").unwrap(), 1);
        assert_eq!(input.u32("b").unwrap(), 2);
        let e = input.u32("an int").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.expected.starts_with("an int"), "{e}");
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn files_plain_and_gzip_read_the_same_across_blocks() {
        use std::io::Write;
        let bytes: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
        let dir = std::env::temp_dir().join(format!("jvmapm-heap-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, &bytes).unwrap();
        let gzip = dir.join("gzip");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&bytes).unwrap();
        std::fs::write(&gzip, encoder.finish().unwrap()).unwrap();
        for path in [&plain, &gzip] {
            let mut input = Input::open(path).unwrap();
            assert_eq!(input.compressed, path == &gzip);
            input.skip(BLOCK as u64 - 2, "a").unwrap();
            let at = BLOCK - 2;
            let expected: Vec<u8> = (at..at + 4).map(|i| (i % 251) as u8).collect();
            assert_eq!(input.bytes(4, "b").unwrap(), &expected[..]);
            input.skip(bytes.len() as u64 - at as u64 - 5, "c").unwrap();
            assert_eq!(input.u8("d").unwrap(), bytes[bytes.len() - 1]);
            assert!(input.at_end());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn skipping_crosses_blocks() {
        let mut bytes = vec![0u8; BLOCK * 2 + 10];
        bytes[BLOCK * 2 + 3] = 7;
        let mut input = Input::from_bytes(bytes);
        input.skip((BLOCK * 2 + 3) as u64, "x").unwrap();
        assert_eq!(input.u8("y").unwrap(), 7);
        assert_eq!(input.offset(), (BLOCK * 2 + 4) as u64);
        assert!(input.skip(100, "z").is_err());
    }
}
