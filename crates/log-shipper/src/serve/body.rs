//! Response bodies of serve mode: bytes already in memory (small files,
//! listings, errors), a byte range of a large file read in chunks as the
//! client takes them, and a follow stream that sends a file as it grows.
//!
//! Reads are positioned reads (`pread`) on the runtime thread, 64 KiB at a
//! time, as nginx does without its thread pool: for page-cached log files a
//! read costs less than a hand-off to a blocking thread.
//!
//! The follow stream is a small stat-based follower rather than
//! `podkit-tailer`: it copies bytes (no line framing, no checkpoints), must
//! reopen the path beneath the served root at every rotation (the tailer
//! opens by absolute path), and a thread plus inotify watch per request
//! would cost more than it gives. When it has caught up it polls: `fstat`
//! of its descriptor (growth, truncation) and the path's identity beneath
//! the root (rotation), every 25 ms at first, backing off to 250 ms while
//! nothing happens.
//!
//! - Growth: new bytes are sent as they appear.
//! - Truncation (`copytruncate`, `> file`): the size drops below what was
//!   sent, so it goes on from the start of the file. A truncation followed
//!   by a regrowth past the old size within one poll goes unnoticed.
//! - Rotation by rename: once the old file has been read to its end and the
//!   path leads to another file, the stream goes on with the new file from
//!   its start. The old file is read once more after the new one is seen,
//!   so what a writer put there before creating the new file is sent; what
//!   it writes to the old file after the switch is not. While the path
//!   leads nowhere, the old file is still read.
//! - Shutdown: the stream ends cleanly (the chunked terminator is sent).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::resolve::Root;

/// Largest read, and largest body frame.
pub const CHUNK: usize = 64 * 1024;

/// First poll delay of a follow stream that has caught up.
const FOLLOW_MIN_DELAY: Duration = Duration::from_millis(25);
/// Longest poll delay of an idle follow stream.
const FOLLOW_MAX_DELAY: Duration = Duration::from_millis(250);

/// A response body.
#[derive(Debug)]
pub enum ServeBody {
    /// Bytes in memory, sent as one frame (taken when sent).
    Bytes(Option<Bytes>),
    /// A byte range of a file, read chunk by chunk.
    File(FileRange),
    /// A file as it grows.
    Follow(Box<Follow>),
}

impl ServeBody {
    /// No body (HEAD, 304).
    pub fn empty() -> Self {
        Self::Bytes(None)
    }

    /// A body of these bytes.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Bytes(if bytes.is_empty() { None } else { Some(bytes) })
    }
}

impl hyper::body::Body for ServeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::File(range) => Poll::Ready(range.next().map(|r| r.map(Frame::data))),
            Self::Follow(follow) => follow.poll_next(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Bytes(bytes) => bytes.is_none(),
            Self::File(range) => range.pos >= range.end,
            Self::Follow(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Bytes(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::File(range) => SizeHint::with_exact(range.end.saturating_sub(range.pos)),
            Self::Follow(_) => SizeHint::new(),
        }
    }
}

/// Reads `len` bytes of `file` at `at` into a new buffer; fewer if the file
/// ends first.
pub fn read_at(file: &File, at: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// A byte range of a file, sent in chunks.
#[derive(Debug)]
pub struct FileRange {
    file: File,
    pos: u64,
    end: u64,
    sent: Counter,
}

impl FileRange {
    /// Bytes `start..end` of `file`, counted into `sent` as they go.
    pub fn new(file: File, start: u64, end: u64, sent: Counter) -> Self {
        Self {
            file,
            pos: start,
            end,
            sent,
        }
    }

    fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.pos >= self.end {
            return None;
        }
        let want = usize::try_from(self.end - self.pos).unwrap_or(CHUNK).min(CHUNK);
        match read_at(&self.file, self.pos, want) {
            Ok(bytes) if bytes.is_empty() => {
                // The file shrank under us: the promised length cannot be
                // sent, so the connection is aborted (as nginx does).
                self.pos = self.end;
                Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file truncated while being sent",
                )))
            }
            Ok(bytes) => {
                self.pos += bytes.len() as u64;
                self.sent.inc_by(bytes.len() as u64);
                Some(Ok(bytes))
            }
            Err(err) => {
                self.pos = self.end;
                Some(Err(err))
            }
        }
    }
}

/// Decrements a gauge when dropped (open follow streams).
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `gauge` until the guard drops.
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A file sent as it grows, across truncation and rotation, until shutdown.
#[derive(Debug)]
pub struct Follow {
    root: Arc<Root>,
    /// The decoded request path, reopened beneath the root on rotation.
    rel: Box<[u8]>,
    file: File,
    /// `(dev, ino)` of `file`.
    id: (u64, u64),
    /// Next byte to send.
    offset: u64,
    /// Resolves when serve mode shuts down: the stream then ends.
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    sleep: Pin<Box<Sleep>>,
    sleeping: bool,
    delay: Duration,
    sent: Counter,
    _open: GaugeGuard,
}

/// What [`Follow::new`] starts from.
#[derive(Debug)]
pub struct FollowStart {
    /// The file as opened for the request.
    pub file: File,
    /// Its `(dev, ino)`.
    pub id: (u64, u64),
    /// Where to start sending (0, or where the last N lines start).
    pub offset: u64,
}

impl Follow {
    /// A stream of the file at `rel` (already opened as `start`).
    pub fn new(
        root: Arc<Root>,
        rel: &[u8],
        start: FollowStart,
        stop: CancellationToken,
        sent: Counter,
        open: &Gauge,
    ) -> Self {
        Self {
            root,
            rel: rel.into(),
            file: start.file,
            id: start.id,
            offset: start.offset,
            stop: Box::pin(stop.cancelled_owned()),
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            sleeping: false,
            delay: FOLLOW_MIN_DELAY,
            sent,
            _open: GaugeGuard::new(open),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        loop {
            if self.stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if self.sleeping {
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleeping = false;
            }
            match self.step() {
                Ok(Some(bytes)) => {
                    self.delay = FOLLOW_MIN_DELAY;
                    self.sent.inc_by(bytes.len() as u64);
                    return Poll::Ready(Some(Ok(bytes)));
                }
                Ok(None) => {
                    let at = Instant::now() + self.delay;
                    self.sleep.as_mut().reset(at);
                    self.sleeping = true;
                    self.delay = (self.delay * 2).min(FOLLOW_MAX_DELAY);
                }
                Err(err) => {
                    tracing::debug!(%err, "Follow stream ended by a read error.");
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// Sends what is new, or notices truncation and rotation; `None` when
    /// there is nothing to send yet.
    fn step(&mut self) -> std::io::Result<Option<Bytes>> {
        for _ in 0..2 {
            if let Some(bytes) = self.read_new()? {
                return Ok(Some(bytes));
            }
            // Caught up: does the path lead to another file now?
            match self.root.identity(&self.rel) {
                Ok(id) if id != self.id => {
                    // What the writer put in the old file before it made the
                    // new one is visible now: send it before switching.
                    if let Some(bytes) = self.read_new()? {
                        return Ok(Some(bytes));
                    }
                    match self.root.open(&self.rel) {
                        Ok(opened) if !opened.is_dir() => {
                            tracing::debug!("Followed file rotated; following the new one from its start.");
                            self.id = opened.id();
                            self.file = opened.into_file();
                            self.offset = 0;
                        }
                        _ => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Reads what the current file holds past `offset` (from its start
    /// again if it was truncated).
    fn read_new(&mut self) -> std::io::Result<Option<Bytes>> {
        let size = u64::try_from(rustix::fs::fstat(&self.file)?.st_size).unwrap_or(0);
        if size < self.offset {
            tracing::debug!(offset = self.offset, size, "Followed file truncated; from its start.");
            self.offset = 0;
        }
        if size == self.offset {
            return Ok(None);
        }
        let want = usize::try_from(size - self.offset).unwrap_or(CHUNK).min(CHUNK);
        let bytes = read_at(&self.file, self.offset, want)?;
        self.offset += bytes.len() as u64;
        Ok((!bytes.is_empty()).then_some(bytes))
    }
}
