//! The dump's bytes, read front to back in large blocks (plain or gzip, told
//! apart by the gzip magic), with the offset of every read known so an error
//! can say where it happened. Nothing of the dump is held beyond the block
//! being parsed.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

/// Bytes read from the source at a time.
const BLOCK: usize = 4 << 20;
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

/// A forward-only reader of big-endian values.
pub struct Input {
    source: Box<dyn Read + Send>,
    buf: Vec<u8>,
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

impl Input {
    pub fn open(path: &Path) -> io::Result<Input> {
        let mut file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut magic = [0u8; 2];
        let compressed = file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
        drop(file);
        let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            inner: File::open(path)?,
            count: progress.clone(),
        };
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
        Input {
            source,
            buf: vec![0; block],
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

    /// Makes `n` bytes available after `pos` (n at most a block); false at
    /// the end of the input.
    fn fill(&mut self, n: usize) -> bool {
        if self.end - self.pos >= n {
            return true;
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        if n > self.buf.len() {
            self.buf.resize(n, 0);
        }
        while self.end < n && !self.eof {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failure = Some(e.to_string());
                    self.eof = true;
                }
            }
        }
        if !self.compressed {
            self.progress.store(
                self.base + self.end as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        self.end - self.pos >= n
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
        Ok(&self.buf[start..start + n])
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
        let bytes: [u8; N] = self.buf[self.pos..self.pos + N]
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
    pub fn skip(&mut self, mut n: u64, what: &str) -> Result<(), ParseError> {
        loop {
            let here = (self.end - self.pos) as u64;
            if here >= n {
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
