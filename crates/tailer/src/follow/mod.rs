//! The follower itself: [`Tailer`] owns a dedicated thread whose [`Engine`]
//! scans the patterns, reads every followed file, frames lines, sends
//! [`Batch`]es on a bounded channel and writes acknowledged offsets to the
//! checkpoint.
//!
//! The thread is the only owner of file state; the outside talks to it
//! through one `std::sync::mpsc` channel of [`Signal`]s (wake-ups from
//! inotify and from cancellation, acks from [`AckToken`]s). The engine's
//! work is split by concern: [`scan`] finds files and rotations, [`read`]
//! reads and frames them into batches, [`ack`] settles acknowledgements and
//! writes the checkpoint.

mod ack;
mod read;
mod scan;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::batch::{Batch, FileInfo, Signal};
use crate::checkpoint::{Entry, Fingerprint, Progress, Store};
use crate::framing::Framer;
use crate::paths::{Key, Patterns};
use crate::watch::{Hints, Watcher};
use crate::{StartAt, TailerConfig, TailerError, TailerEvents};

/// Reads per file per round before moving on to the next file (fairness).
const READS_PER_ROUND: usize = 16;
/// How far back [`StartAt::Tail`] looks for the last line start.
const TAIL_LOOKBACK: u64 = 64 * 1024;
/// How long checkpoint entries that matched no file at start are kept (and
/// written back): a file may be renamed or briefly unreadable while the
/// first scans run, and must still resume where it was.
const UNMATCHED_ENTRY_GRACE: Duration = Duration::from_secs(60);

/// Follows files and sends their lines as [`Batch`]es.
///
/// Create it with [`Tailer::new`], which validates everything (so errors
/// surface before the binary reports ready) and returns the receiving end of
/// the batch channel; then drive it with [`Tailer::run`].
pub struct Tailer {
    config: TailerConfig,
    patterns: Patterns,
    /// The checkpoint file (locked), if a state directory is configured.
    store: Option<Store>,
    /// Checkpoint entries loaded at start, matched against files at the first scan.
    entries: Vec<Entry>,
    events: Arc<dyn TailerEvents>,
    /// Sending end of the bounded batch channel; awaiting capacity is the backpressure.
    tx: mpsc::Sender<Batch>,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tailer {
    /// Validates `config`, takes the checkpoint lock and loads the checkpoint.
    ///
    /// Returns the tailer and the receiver of its batches. Every error here
    /// is a configuration problem ([`TailerError::is_config`]): bad patterns
    /// or settings, a state directory that cannot be written, a checkpoint in
    /// use by another process or unreadable.
    pub fn new(
        config: TailerConfig,
        events: Arc<dyn TailerEvents>,
    ) -> Result<(Self, mpsc::Receiver<Batch>), TailerError> {
        config.validate()?;
        let patterns = Patterns::new(&config.include, &config.exclude)?;
        let (store, entries) = match &config.state_dir {
            Some(dir) => {
                let (store, entries) = Store::open(dir, &config.name)?;
                (Some(store), entries)
            }
            None => (None, Vec::new()),
        };
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        Ok((
            Self {
                config,
                patterns,
                store,
                entries,
                events,
                tx,
            },
            rx,
        ))
    }

    /// The checkpoint file, if there is a state directory.
    pub fn checkpoint_path(&self) -> Option<&Path> {
        self.store.as_ref().map(Store::path)
    }

    /// Follows the files until `shutdown` is cancelled (or the batch
    /// receiver is dropped), then finishes cleanly:
    ///
    /// 1. with `drain_on_shutdown`, reads every open file up to its size at
    ///    that moment and delivers the rest, incomplete last lines included;
    /// 2. closes the batch channel: keep receiving until `recv()` returns
    ///    `None` (or drop the receiver to stop early);
    /// 3. waits until every sent batch was acknowledged or dropped, writing
    ///    checkpoints meanwhile, and writes the final checkpoint.
    ///
    /// Must be called within a Tokio runtime; inotify needs its I/O and time
    /// drivers (`enable_all`), without them the tailer polls. The work runs
    /// on a dedicated thread (file reads block), plus a small task on the
    /// runtime reading inotify; dropping this future stops both.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), TailerError> {
        let token = shutdown.child_token();
        let _stop_on_drop = token.clone().drop_guard();
        let (sig_tx, sig_rx) = std::sync::mpsc::channel();
        let waker = sig_tx.clone();
        let cancelled = token.clone();
        tokio::spawn(async move {
            cancelled.cancelled().await;
            let _ = waker.send(Signal::Wake);
        });
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let hints = Hints::default();
        let (watcher, notify_error) = if self.config.use_notify {
            match Watcher::start(token.clone(), self.config.notify_delay, sig_tx.clone(), hints.clone()) {
                Ok(w) => (Some(w), None),
                Err(e) => (None, Some(format!("cannot start inotify: {e}"))),
            }
        } else {
            (None, None)
        };
        let engine = Engine::new(self, token, sig_tx, sig_rx, hints, watcher, notify_error);
        std::thread::Builder::new()
            .name("podkit-tailer".into())
            .spawn(move || {
                let _ = done_tx.send(engine.run());
            })?;
        done_rx
            .await
            .unwrap_or_else(|_| Err(TailerError::Io(io::Error::other("the tailer thread panicked"))))
    }
}

/// Whether a followed file is still reachable through the patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// A followed path names it.
    Followed,
    /// Renamed out of the followed paths (rotation): read on, release when idle.
    Rotated,
    /// Unlinked: read to the end, release when idle.
    Deleted,
}

/// One open file.
struct Tracked {
    /// Key of its [`Book`]; unique for the tailer's lifetime (inodes are not).
    id: u64,
    key: Key,
    file: File,
    /// What batches report; the path stays the followed name after a rotation.
    info: Arc<FileInfo>,
    /// Next byte to read.
    read_pos: u64,
    /// The file's size at the last `fstat`: reads stop there until the next
    /// check, so idle files cost no `read(2)` and no buffer.
    size: u64,
    /// Bytes read but not yet sent: an incomplete line (at most `max_line_bytes`).
    buf: BytesMut,
    framer: Framer,
    fp: Fingerprint,
    reach: Reach,
    /// Last time a read returned data (or the file was found).
    last_growth: Instant,
    /// Since when the incomplete line in `buf` is held.
    partial_since: Option<Instant>,
    /// The last read found no more data.
    at_eof: bool,
    /// A read or stat error was reported and not yet cleared by a success.
    failing: bool,
}

/// The acknowledged progress of a file, which outlives the open file until
/// its last batch is acknowledged.
struct Book {
    progress: Progress,
    dev: u64,
    ino: u64,
    fp: Fingerprint,
    /// Where the file is now, as far as we know (for the checkpoint).
    path: PathBuf,
    /// The name events report.
    info: Arc<FileInfo>,
    /// The file was closed; the book stays until its batches are settled.
    released: bool,
    /// Keep the entry after release while bytes are unacknowledged (a
    /// rotated file can be found again by its path after a restart).
    keep_unacked: bool,
    /// Where reading ended when the file was released.
    end: u64,
}

impl Book {
    /// A released file whose batches are all settled needs no entry anymore.
    fn settled(&self) -> bool {
        self.released && self.progress.inflight == 0 && (!self.keep_unacked || self.progress.committed >= self.end)
    }
}

/// The batch receiver is gone: stop reading.
struct Closed;

struct Engine {
    cfg: TailerConfig,
    patterns: Patterns,
    store: Option<Store>,
    /// Checkpoint entries not matched to a file yet; kept (and written back)
    /// until `entries_until`.
    entries: Vec<Entry>,
    entries_until: Instant,
    /// Whether [`StartAt::Tail`] applies at the first scan (no checkpoint history).
    tail_first: bool,
    events: Arc<dyn TailerEvents>,
    tx: Option<mpsc::Sender<Batch>>,
    shutdown: CancellationToken,
    /// Handed to every [`AckToken`].
    sig_tx: Sender<Signal>,
    sig_rx: Receiver<Signal>,
    /// Flags shared with the inotify task.
    hints: Hints,
    /// Adds and removes inotify watches; `None` when polling only.
    watcher: Option<Watcher>,
    /// Why inotify could not start (reported once the thread runs).
    notify_error: Option<String>,
    /// Watched directories, with the inode they had (re-watched if replaced).
    watched: HashMap<PathBuf, (u64, inotify::WatchDescriptor)>,
    files: Vec<Tracked>,
    by_key: HashMap<Key, u64>,
    books: HashMap<u64, Book>,
    next_id: u64,
    dirty: bool,
    last_checkpoint: Instant,
    failing_paths: HashSet<PathBuf>,
}

impl Engine {
    fn new(
        t: Tailer,
        shutdown: CancellationToken,
        sig_tx: Sender<Signal>,
        sig_rx: Receiver<Signal>,
        hints: Hints,
        watcher: Option<Watcher>,
        notify_error: Option<String>,
    ) -> Self {
        let tail_first = t.config.start_at == StartAt::Tail && t.entries.is_empty();
        Self {
            patterns: t.patterns,
            store: t.store,
            entries: t.entries,
            entries_until: Instant::now() + UNMATCHED_ENTRY_GRACE,
            tail_first,
            events: t.events,
            tx: Some(t.tx),
            shutdown,
            sig_tx,
            sig_rx,
            hints,
            watcher,
            notify_error,
            watched: HashMap::new(),
            files: Vec::new(),
            by_key: HashMap::new(),
            books: HashMap::new(),
            next_id: 0,
            dirty: false,
            last_checkpoint: Instant::now(),
            failing_paths: HashSet::new(),
            cfg: t.config,
        }
    }

    fn run(mut self) -> Result<(), TailerError> {
        if let Some(reason) = self.notify_error.take() {
            self.notify_failed(&reason);
        }
        self.scan(true);
        info!(files = self.files.len(), patterns = ?self.cfg.include, "Tailer started.");
        self.events.started(self.files.len());
        let poll = self.cfg.poll_interval;
        let mut last_scan = Instant::now();
        while !self.shutdown.is_cancelled() {
            self.drain_signals();
            if last_scan.elapsed() >= poll || self.hints.scan_needed.swap(false, Ordering::AcqRel) {
                self.scan(false);
                last_scan = Instant::now();
            }
            let progressed = match self.read_round() {
                Ok(p) => p,
                Err(Closed) => break,
            };
            if self.flush_stale_partials().is_err() {
                break;
            }
            if self.release_idle().is_err() {
                break;
            }
            self.maybe_checkpoint(false);
            if self.tx.as_ref().is_none_or(|tx| tx.is_closed()) {
                break;
            }
            if !progressed {
                self.wait(last_scan + poll);
            }
        }
        self.finish();
        Ok(())
    }

    /// Idles until `deadline` (the next poll tick) or a wake-up, handling
    /// acks meanwhile. After a wake-up, waits `notify_delay` more so that a
    /// burst of writes is read in one round instead of one round per write.
    fn wait(&mut self, deadline: Instant) {
        self.hints.wake_pending.store(false, Ordering::Release);
        let mut woke = false;
        let mut until = deadline.max(Instant::now() + Duration::from_millis(1));
        loop {
            let now = Instant::now();
            if now >= until || (woke && self.shutdown.is_cancelled()) {
                return;
            }
            match self.sig_rx.recv_timeout(until - now) {
                Ok(Signal::Ack(m)) => {
                    self.on_ack(m);
                    self.maybe_checkpoint(false);
                }
                Ok(Signal::Wake) if !woke => {
                    if self.shutdown.is_cancelled() {
                        return;
                    }
                    woke = true;
                    until = until.min(Instant::now() + self.cfg.notify_delay);
                }
                Ok(Signal::Wake) => {}
                Ok(split @ Signal::Split { .. }) => self.on_signal(split),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// The shutdown sequence (see [`Tailer::run`]).
    fn finish(&mut self) {
        debug!(files = self.files.len(), "Tailer draining.");
        if self.cfg.drain_on_shutdown && self.tx.as_ref().is_some_and(|tx| !tx.is_closed()) {
            let _ = self.drain_files();
        }
        self.tx = None;
        self.watcher = None;
        for i in 0..self.files.len() {
            if self.files[i].reach == Reach::Rotated {
                self.locate_rotated(i);
            }
        }
        loop {
            self.drain_signals();
            if self.books.values().all(|b| b.progress.inflight == 0) {
                break;
            }
            self.maybe_checkpoint(false);
            if let Ok(sig) = self.sig_rx.recv_timeout(self.cfg.checkpoint_interval) {
                self.on_signal(sig);
            }
        }
        self.maybe_checkpoint(true);
        info!(files = self.files.len(), "Tailer stopped.");
    }

    /// Reads every open file up to its current size, then flushes
    /// incomplete last lines.
    fn drain_files(&mut self) -> Result<(), Closed> {
        self.scan(false);
        for i in 0..self.files.len() {
            self.check(i)?;
            while self.read_once(i)? {}
            self.flush_partial(i)?;
        }
        Ok(())
    }
}
