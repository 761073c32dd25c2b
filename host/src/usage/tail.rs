//! Follows a transcript file by what is appended to it.
//!
//! Each call reads from the last offset to the end in fixed-size chunks, so the work is
//! proportional to the append and memory is bounded whatever the file's size: one chunk
//! plus at most one partial line of [`MAX_LINE`] bytes.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Meter, Transcript};

/// Bytes read at a time.
const CHUNK: usize = 256 * 1024;
/// Longer lines are skipped (with a debug log): no record Canopy reads is this large,
/// and buffering one would make memory depend on the file.
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// A transcript file being followed.
pub struct Tail {
    path: PathBuf,
    reader: Box<dyn Transcript>,
    /// Bytes of the file consumed so far (complete lines plus `partial`).
    offset: u64,
    /// The file followed, as (device, inode), to notice it being replaced.
    identity: Option<(u64, u64)>,
    /// The start of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The current line is over [`MAX_LINE`]: drop bytes until its newline.
    skipping: bool,
    chunk: Vec<u8>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Tail {
    pub fn new(path: PathBuf, reader: Box<dyn Transcript>) -> Self {
        Self {
            path,
            reader,
            offset: 0,
            identity: None,
            partial: Vec::new(),
            skipping: false,
            chunk: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read what was appended since the last call and meter its complete lines.
    /// Returns whether any new complete line was read. A missing file is not an error
    /// (the agent has not written it yet). A truncated or replaced file is read again
    /// from its start; what was metered before stands.
    pub fn read_new(&mut self, meter: &mut Meter) -> io::Result<bool> {
        // Non-blocking, so that a FIFO named as a transcript cannot hold the open (and
        // the session's usage task) until some writer comes; only regular files are read.
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let identity = (meta.dev(), meta.ino());
        if self.identity.is_some_and(|id| id != identity) || meta.len() < self.offset {
            self.restart();
        }
        self.identity = Some(identity);
        if meta.len() == self.offset {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(self.offset))?;
        if self.chunk.len() != CHUNK {
            self.chunk = vec![0; CHUNK];
        }
        let mut any = false;
        loop {
            let n = match file.read(&mut self.chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            any |= self.consume(n, meter);
        }
        Ok(any)
    }

    fn restart(&mut self) {
        tracing::debug!(path = %self.path.display(), "transcript truncated or replaced; reading it again");
        self.reader.restart();
        self.offset = 0;
        self.partial.clear();
        self.skipping = false;
    }

    /// Feed the complete lines in the first `n` bytes of the chunk to the reader and keep
    /// the rest as the partial line. Returns whether any complete line was fed.
    fn consume(&mut self, n: usize, meter: &mut Meter) -> bool {
        let chunk = &self.chunk[..n];
        let mut start = 0;
        let mut any = false;
        for end in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..end];
            start = end + 1;
            any = true;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.is_empty() {
                feed(&mut *self.reader, piece, meter);
            } else if self.partial.len() + piece.len() > MAX_LINE {
                self.skip_long_line();
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(piece);
                feed(&mut *self.reader, &self.partial, meter);
                self.partial.clear();
            }
        }
        let rest = &chunk[start..];
        if !self.skipping && !rest.is_empty() {
            if self.partial.len() + rest.len() > MAX_LINE {
                self.skip_long_line();
                self.partial = Vec::new();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        any
    }

    fn skip_long_line(&self) {
        tracing::debug!(
            path = %self.path.display(),
            "skipping a transcript line over {} MiB",
            MAX_LINE / 1024 / 1024
        );
    }
}

/// One complete line, without a trailing carriage return.
fn feed(reader: &mut dyn Transcript, line: &[u8], meter: &mut Meter) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.is_empty() {
        reader.line(line, meter);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::usage::Prices;

    /// Records the lines it is given.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>, Arc<Mutex<u32>>);

    impl Transcript for Lines {
        fn line(&mut self, line: &[u8], _: &mut Meter) {
            let mut v = self.0.lock().expect("lock");
            v.push(String::from_utf8_lossy(line).into_owned());
        }
        fn restart(&mut self) {
            *self.1.lock().expect("lock") += 1;
        }
    }

    impl Lines {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().expect("lock"))
        }
        fn restarts(&self) -> u32 {
            *self.1.lock().expect("lock")
        }
    }

    fn setup() -> (tempfile::TempDir, PathBuf, Lines, Tail, Meter) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jsonl");
        let lines = Lines::default();
        let tail = Tail::new(path.clone(), Box::new(lines.clone()));
        (
            dir,
            path,
            lines,
            tail,
            Meter::new(Arc::new(Prices::default())),
        )
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(bytes).expect("write");
    }

    #[test]
    fn a_missing_file_is_nothing_new() {
        let (_d, _p, lines, mut tail, mut m) = setup();
        assert!(!tail.read_new(&mut m).expect("read"));
        assert!(lines.take().is_empty());
    }

    /// A hook may name any path: a FIFO with no writer would block a plain open forever.
    #[test]
    fn a_fifo_or_device_is_refused_without_blocking() {
        let (_d, path, lines, mut tail, mut m) = setup();
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = tail
            .read_new(&mut m)
            .expect_err("a FIFO is not a transcript");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let mut dev = Tail::new("/dev/zero".into(), Box::new(lines.clone()));
        assert!(dev.read_new(&mut m).is_err());
        assert!(lines.take().is_empty());
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let (_d, path, lines, mut tail, mut m) = setup();
        append(&path, b"one\ntw");
        assert!(tail.read_new(&mut m).expect("read"));
        assert_eq!(lines.take(), ["one"]);
        append(&path, b"o");
        assert!(!tail.read_new(&mut m).expect("read"));
        assert!(lines.take().is_empty());
        append(&path, b"\r\nthree\n");
        assert!(tail.read_new(&mut m).expect("read"));
        assert_eq!(lines.take(), ["two", "three"]);
        assert!(!tail.read_new(&mut m).expect("read"));
    }

    #[test]
    fn lines_across_chunks_are_whole() {
        let (_d, path, lines, mut tail, mut m) = setup();
        let long = "x".repeat(CHUNK * 2 + 17);
        append(&path, format!("a\n{long}\nb\n").as_bytes());
        tail.read_new(&mut m).expect("read");
        let got = lines.take();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].len(), long.len());
        assert_eq!(got[2], "b");
    }

    #[test]
    fn truncation_reads_again_from_the_start() {
        let (_d, path, lines, mut tail, mut m) = setup();
        append(&path, b"one\ntwo\n");
        tail.read_new(&mut m).expect("read");
        lines.take();
        std::fs::write(&path, b"new\n").expect("truncate");
        assert!(tail.read_new(&mut m).expect("read"));
        assert_eq!(lines.take(), ["new"]);
        assert_eq!(lines.restarts(), 1);
    }

    #[test]
    fn rotation_reads_the_new_file_from_the_start() {
        let (dir, path, lines, mut tail, mut m) = setup();
        append(&path, b"one\ntwo\nthree\n");
        tail.read_new(&mut m).expect("read");
        lines.take();
        // A longer replacement, renamed over the old file: size alone would not tell.
        let other = dir.path().join("next.jsonl");
        append(&other, b"four\nfive\nsix\nseven\n");
        std::fs::rename(&other, &path).expect("rename");
        assert!(tail.read_new(&mut m).expect("read"));
        assert_eq!(lines.take(), ["four", "five", "six", "seven"]);
        assert_eq!(lines.restarts(), 1);
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let (_d, path, lines, mut tail, mut m) = setup();
        append(&path, b"before\n");
        let big = vec![b'y'; MAX_LINE + CHUNK];
        append(&path, &big);
        tail.read_new(&mut m).expect("read");
        assert!(tail.partial.len() <= MAX_LINE);
        append(&path, b"yyy\nafter\n");
        tail.read_new(&mut m).expect("read");
        assert_eq!(lines.take(), ["before", "after"]);
    }

    #[test]
    fn an_append_to_a_large_file_costs_only_the_append() {
        let (_d, path, lines, mut tail, mut m) = setup();
        let line = format!("{}\n", "z".repeat(1023));
        let block = line.repeat(1024); // 1 MiB
        for _ in 0..64 {
            append(&path, block.as_bytes());
        }
        tail.read_new(&mut m).expect("read");
        assert_eq!(lines.take().len(), 64 * 1024);
        append(&path, line.as_bytes());
        let start = Instant::now();
        assert!(tail.read_new(&mut m).expect("read"));
        let took = start.elapsed();
        assert_eq!(lines.take().len(), 1);
        // Reading 64 MiB again would take tens of ms; the append alone takes microseconds.
        assert!(took.as_millis() < 20, "{took:?}");
    }
}
