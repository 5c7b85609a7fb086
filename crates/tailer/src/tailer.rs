//! The follower itself: [`Tailer`] owns a dedicated thread that scans the
//! patterns, reads every followed file, frames lines, sends [`Batch`]es on a
//! bounded channel and writes acknowledged offsets to the checkpoint.
//!
//! The thread is the only owner of file state; the outside talks to it
//! through one `std::sync::mpsc` channel of [`Signal`]s (wake-ups from
//! inotify and from cancellation, acks from [`AckToken`]s).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::batch::{AckMsg, AckToken, Batch, FileInfo, Signal};
use crate::checkpoint::{Entry, Fingerprint, Progress, Store};
use crate::framing::{FrameStats, Framer, LineMeta};
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

    // === Signals and acks ===

    fn drain_signals(&mut self) {
        while let Ok(sig) = self.sig_rx.try_recv() {
            self.on_signal(sig);
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        if let Signal::Ack(msg) = sig {
            self.on_ack(msg);
        }
    }

    fn on_ack(&mut self, m: AckMsg) {
        let Some(book) = self.books.get_mut(&m.book) else {
            return;
        };
        book.progress.inflight = book.progress.inflight.saturating_sub(1);
        if m.acked {
            if book.progress.ack(m.generation, m.start, m.end) {
                self.dirty = true;
            }
        } else {
            self.events.batch_not_acked(&book.info, m.lines);
        }
        if book.settled() {
            self.books.remove(&m.book);
            self.dirty = true;
        }
    }

    // === Discovery ===

    fn notify_failed(&mut self, reason: &str) {
        warn!(reason, "Cannot use inotify; polling only.");
        self.events.notify_unavailable(reason);
        self.watcher = None;
    }

    /// Watches the pattern directories that exist and are not watched yet
    /// (again, if one was replaced). Subdirectories of `**` patterns are
    /// found by polling only.
    fn refresh_watches(&mut self) {
        if self.watcher.is_none() {
            return;
        }
        for dir in self.patterns.watch_dirs() {
            let ino = std::fs::metadata(&dir).ok().filter(|m| m.is_dir()).map(|m| m.ino());
            if ino.is_some() && self.watched.get(&dir).map(|w| w.0) == ino {
                continue;
            }
            let Some(w) = self.watcher.as_mut() else { return };
            if let Some((_, wd)) = self.watched.remove(&dir) {
                w.unwatch(wd);
            }
            let Some(ino) = ino else { continue };
            match w.watch(&dir) {
                Ok(wd) => {
                    self.watched.insert(dir, (ino, wd));
                }
                Err(e) if e.raw_os_error() == Some(28) => {
                    // ENOSPC: out of inotify watches (fs.inotify.max_user_watches).
                    self.notify_failed(&format!("cannot watch {}: {e}", dir.display()));
                    return;
                }
                Err(e) => debug!(dir = %dir.display(), error = %e, "Cannot watch directory."),
            }
        }
    }

    /// Reconciles the open files with what the patterns name now.
    fn scan(&mut self, first: bool) {
        self.refresh_watches();
        let found = self.patterns.scan();
        // Files we follow: renamed within the followed paths, rotated away, or deleted.
        for i in 0..self.files.len() {
            let key = self.files[i].key;
            match found.get(&key) {
                Some(path) => {
                    let t = &mut self.files[i];
                    if t.reach != Reach::Followed {
                        t.reach = Reach::Followed;
                    }
                    let book = self.books.get_mut(&t.id).expect("every open file has a book");
                    if *path != book.path && !resolves_to(&book.path, key) {
                        debug!(from = %book.path.display(), to = %path.display(), "File renamed.");
                        self.events.file_rotated(&t.info, Some(path));
                        let info = Arc::new(FileInfo {
                            path: path.clone(),
                            dev: key.0,
                            ino: key.1,
                        });
                        t.info = info.clone();
                        book.info = info;
                        book.path = path.clone();
                        self.dirty = true;
                    }
                }
                None if self.files[i].reach == Reach::Followed => self.mark_gone(i),
                None if self.files[i].reach == Reach::Rotated => self.locate_rotated(i),
                None => {}
            }
        }
        // New files.
        let mut new: Vec<(Key, PathBuf)> = found
            .into_iter()
            .filter(|(k, _)| !self.by_key.contains_key(k))
            .collect();
        new.sort_by(|a, b| a.1.cmp(&b.1));
        for (_, path) in new {
            self.open(&path, first, Reach::Followed);
        }
        if first {
            // Rotated files recorded in the checkpoint but no longer named by a pattern.
            let rotated: Vec<(Key, PathBuf)> = self
                .entries
                .iter()
                .filter(|e| resolves_to(&e.path, (e.dev, e.ino)))
                .map(|e| ((e.dev, e.ino), e.path.clone()))
                .collect();
            if !rotated.is_empty() {
                // A file may have appeared under a followed name since the
                // scan above (an entry's old path reused by a new file with a
                // reused inode): that one is followed, not rotated.
                let found = self.patterns.scan();
                for (key, path) in rotated {
                    match found.get(&key) {
                        Some(path) => self.open(path, true, Reach::Followed),
                        None => self.open(&path, true, Reach::Rotated),
                    }
                }
            }
        } else if !self.entries.is_empty() && Instant::now() >= self.entries_until {
            debug!(
                entries = self.entries.len(),
                "Dropping checkpoint entries that matched no file."
            );
            self.entries.clear();
            self.dirty = true;
        }
    }

    /// A followed file no longer has a followed name: rotated or deleted.
    fn mark_gone(&mut self, i: usize) {
        let t = &mut self.files[i];
        let deleted = t.file.metadata().map(|m| m.nlink() == 0).unwrap_or(true);
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if deleted {
            t.reach = Reach::Deleted;
            debug!(path = %t.info.path.display(), "File deleted.");
            self.events.file_deleted(&t.info);
        } else {
            t.reach = Reach::Rotated;
            let to = current_path(&t.file);
            debug!(path = %t.info.path.display(), to = ?to, "File rotated.");
            self.events.file_rotated(&t.info, to.as_deref());
            if let Some(to) = to {
                book.path = to;
                self.dirty = true;
            }
        }
    }

    /// A rotated file may be renamed again (`app.log.1` → `app.log.2`):
    /// keeps its book's path current, because after a restart the checkpoint
    /// finds a rotated file by that path alone.
    fn locate_rotated(&mut self, i: usize) {
        let t = &mut self.files[i];
        let Some(now) = current_path(&t.file) else {
            if t.file.metadata().is_ok_and(|m| m.nlink() == 0) {
                t.reach = Reach::Deleted;
                debug!(path = %t.info.path.display(), "Rotated file deleted.");
                self.events.file_deleted(&t.info);
            }
            return;
        };
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if book.path != now {
            debug!(path = %t.info.path.display(), from = %book.path.display(), to = %now.display(), "Rotated file renamed.");
            self.events.file_rotated(&t.info, Some(&now));
            book.path = now;
            self.dirty = true;
        }
    }

    /// Opens `path` and starts following it.
    fn open(&mut self, path: &Path, first: bool, reach: Reach) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.path_error(path, &e),
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return,
            Err(e) => return self.path_error(path, &e),
        };
        self.failing_paths.remove(path);
        let key = (meta.dev(), meta.ino());
        if self.by_key.contains_key(&key) {
            return; // Replaced between scan and open by a file we already follow.
        }
        let fp = match Fingerprint::of(&file) {
            Ok(fp) => fp,
            Err(e) => return self.path_error(path, &e),
        };
        let size = meta.len();
        let saved = self
            .entries
            .iter()
            .position(|e| (e.dev, e.ino) == key)
            .map(|i| self.entries.swap_remove(i));
        let resume = saved.as_ref().and_then(|e| {
            let efp = e.fingerprint()?;
            (e.offset <= size && efp.matches(&file).ok()?).then_some(e.offset)
        });
        let offset = match resume {
            Some(o) => o,
            None if first && self.tail_first => tail_offset(&file, size),
            None => 0,
        };
        let id = self.next_id;
        self.next_id += 1;
        let info = Arc::new(FileInfo {
            path: path.to_owned(),
            dev: key.0,
            ino: key.1,
        });
        debug!(path = %path.display(), offset, resumed = resume.is_some(), "Following file.");
        self.events.file_added(&info, offset, resume.is_some());
        self.books.insert(
            id,
            Book {
                progress: Progress::new(offset),
                dev: key.0,
                ino: key.1,
                fp,
                path: path.to_owned(),
                info: info.clone(),
                released: false,
                keep_unacked: false,
                end: 0,
            },
        );
        self.by_key.insert(key, id);
        self.files.push(Tracked {
            id,
            key,
            file,
            info,
            read_pos: offset,
            size,
            buf: BytesMut::new(),
            framer: Framer::new(self.cfg.max_line_bytes, self.cfg.long_lines),
            fp,
            reach,
            last_growth: Instant::now(),
            partial_since: None,
            at_eof: false,
            failing: false,
        });
        if reach == Reach::Rotated {
            self.events
                .file_rotated(&self.files.last().expect("just pushed").info, None);
        }
        self.dirty = true;
    }

    fn path_error(&mut self, path: &Path, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            return; // Gone between scan and open: nothing to follow.
        }
        if self.failing_paths.insert(path.to_owned()) {
            warn!(path = %path.display(), error = %e, "Cannot open file; will retry.");
            self.events.file_error(path, e);
        }
    }

    // === Reading ===

    /// One pass over every open file; returns whether anything was read.
    fn read_round(&mut self) -> Result<bool, Closed> {
        let mut progressed = false;
        for i in 0..self.files.len() {
            self.check(i)?;
            for _ in 0..READS_PER_ROUND {
                if !self.read_once(i)? {
                    break;
                }
                progressed = true;
            }
        }
        Ok(progressed)
    }

    /// Detects truncation (size below our position, or the first bytes
    /// changed) and deletion, and grows a short fingerprint.
    fn check(&mut self, i: usize) -> Result<(), Closed> {
        let t = &mut self.files[i];
        let meta = match t.file.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.file_error(i, &e);
                return Ok(());
            }
        };
        let size = meta.len();
        t.size = size;
        if meta.nlink() == 0 && t.reach != Reach::Deleted {
            t.reach = Reach::Deleted;
            debug!(path = %t.info.path.display(), "File deleted.");
            self.events.file_deleted(&t.info);
        }
        let rewritten = size < t.read_pos || !t.fp.matches(&t.file).unwrap_or(true);
        if rewritten {
            let old = t.read_pos;
            debug!(path = %t.info.path.display(), offset = old, size, "File truncated; reading from its start.");
            self.events.file_truncated(&t.info, old);
            self.flush_partial(i)?;
            let t = &mut self.files[i];
            t.read_pos = 0;
            t.buf.clear();
            t.framer.reset();
            t.partial_since = None;
            t.fp = Fingerprint::of(&t.file).unwrap_or_default();
            let book = self.books.get_mut(&t.id).expect("every open file has a book");
            book.progress.restart();
            book.fp = t.fp;
            self.dirty = true;
        } else if t.fp.is_short()
            && size > u64::from(t.fp.len)
            && let Ok(fp) = Fingerprint::of(&t.file)
        {
            t.fp = fp;
            self.books.get_mut(&t.id).expect("every open file has a book").fp = fp;
            self.dirty = true;
        }
        Ok(())
    }

    fn file_error(&mut self, i: usize, e: &io::Error) {
        let t = &mut self.files[i];
        if !t.failing {
            t.failing = true;
            warn!(path = %t.info.path.display(), error = %e, "Cannot read file; will retry.");
            self.events.file_error(&t.info.path, e);
        }
    }

    /// One `read(2)` of what the last check saw; sends the complete lines.
    /// Returns whether data was read.
    fn read_once(&mut self, i: usize) -> Result<bool, Closed> {
        let t = &mut self.files[i];
        if t.read_pos >= t.size {
            t.at_eof = true;
            return Ok(false);
        }
        let want = (t.size - t.read_pos).min(self.cfg.read_bytes as u64) as usize;
        let old = t.buf.len();
        t.buf.resize(old + want, 0);
        let n = loop {
            match t.file.read_at(&mut t.buf[old..], t.read_pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    t.buf.truncate(old);
                    self.file_error(i, &e);
                    return Ok(false);
                }
            }
        };
        t.buf.truncate(old + n);
        t.failing = false;
        if n == 0 {
            t.size = t.read_pos;
            t.at_eof = true;
            return Ok(false);
        }
        // Copytruncate race: if the file was truncated and rewritten before
        // this read, its first bytes changed and what was read belongs to the
        // new content. Checking after the read makes the bytes trustworthy:
        // they were read while the file was still the one we knew.
        if !t.fp.matches(&t.file).unwrap_or(true) {
            t.buf.truncate(old);
            self.check(i)?;
            return Ok(true);
        }
        let now = Instant::now();
        t.read_pos += n as u64;
        t.at_eof = false;
        t.last_growth = now;
        let mut lines = Vec::new();
        let consumed = t.framer.frame(&t.buf, &mut lines);
        t.partial_since = match (t.buf.len() > consumed, t.partial_since) {
            (false, _) => None,
            (true, Some(since)) if consumed == 0 => Some(since),
            (true, _) => Some(now),
        };
        self.emit(i, consumed, lines)?;
        Ok(true)
    }

    /// Sends `lines` (framed from the first `consumed` bytes of the file's
    /// buffer) as one batch; ranges without lines are acknowledged at once.
    fn emit(&mut self, i: usize, consumed: usize, lines: Vec<LineMeta>) -> Result<(), Closed> {
        let t = &mut self.files[i];
        let stats = std::mem::take(&mut t.framer.stats);
        if stats != FrameStats::default() {
            if stats.too_long > 0 {
                debug!(path = %t.info.path.display(), count = stats.too_long, "Lines longer than the limit.");
                self.events.lines_too_long(&t.info, stats.too_long);
            }
            if stats.nul_skipped > 0 {
                self.events.nul_bytes_skipped(&t.info, stats.nul_skipped);
            }
        }
        if consumed == 0 {
            return Ok(());
        }
        let start = t.read_pos - t.buf.len() as u64;
        let end = start + consumed as u64;
        let data = t.buf.split_to(consumed).freeze();
        // Do not let the incomplete line pin the whole read buffer (shared
        // with the batch) while the file is idle.
        t.buf = if t.buf.is_empty() {
            BytesMut::new()
        } else {
            BytesMut::from(&t.buf[..])
        };
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if lines.is_empty() {
            if book.progress.ack(book.progress.generation, start, end) {
                self.dirty = true;
            }
            return Ok(());
        }
        let count = lines.len() as u64;
        self.events.batch_read(&t.info, consumed as u64, count);
        book.progress.inflight += 1;
        let token = AckToken::new(self.sig_tx.clone(), t.id, book.progress.generation, start..end, count);
        let batch = Batch::new(t.info.clone(), data, lines, start, token);
        let Some(tx) = &self.tx else { return Err(Closed) };
        if tx.blocking_send(batch).is_err() {
            self.tx = None;
            return Err(Closed);
        }
        Ok(())
    }

    /// Delivers the incomplete last line of file `i`, if any.
    fn flush_partial(&mut self, i: usize) -> Result<(), Closed> {
        let t = &mut self.files[i];
        t.partial_since = None;
        if t.buf.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        let consumed = t.framer.flush(&t.buf, &mut lines);
        self.emit(i, consumed, lines)
    }

    /// Delivers incomplete last lines held longer than `partial_flush_after`
    /// in files with nothing more to read.
    fn flush_stale_partials(&mut self) -> Result<(), Closed> {
        for i in 0..self.files.len() {
            let t = &self.files[i];
            if t.at_eof
                && t.partial_since
                    .is_some_and(|s| s.elapsed() >= self.cfg.partial_flush_after)
            {
                self.flush_partial(i)?;
            }
        }
        Ok(())
    }

    /// Closes rotated and deleted files that were read to their end and did
    /// not grow for `rotate_wait`.
    fn release_idle(&mut self) -> Result<(), Closed> {
        let mut i = 0;
        while i < self.files.len() {
            let t = &self.files[i];
            if t.reach == Reach::Followed || !t.at_eof || t.last_growth.elapsed() < self.cfg.rotate_wait {
                i += 1;
                continue;
            }
            // One last look: it may have grown since the last read.
            self.check(i)?;
            if self.read_once(i)? {
                i += 1;
                continue;
            }
            self.flush_partial(i)?;
            if self.files[i].reach == Reach::Rotated {
                self.locate_rotated(i);
            }
            let Tracked {
                id,
                key,
                file,
                info,
                read_pos,
                reach,
                ..
            } = self.files.swap_remove(i);
            drop(file); // Frees a deleted file's space now.
            self.by_key.remove(&key);
            debug!(path = %info.path.display(), offset = read_pos, "Released rotated file.");
            self.events.file_released(&info, read_pos);
            if let Some(book) = self.books.get_mut(&id) {
                book.released = true;
                book.keep_unacked = reach == Reach::Rotated;
                book.end = read_pos;
                if book.settled() {
                    self.books.remove(&id);
                }
            }
            self.dirty = true;
        }
        Ok(())
    }

    // === Checkpoints ===

    fn maybe_checkpoint(&mut self, force: bool) {
        let Some(store) = &self.store else { return };
        if !self.dirty || (!force && self.last_checkpoint.elapsed() < self.cfg.checkpoint_interval) {
            return;
        }
        self.last_checkpoint = Instant::now();
        // The open file wins over a released one with the same (reused) inode.
        let live: HashSet<u64> = self.by_key.values().copied().collect();
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.books.len());
        let mut ids: Vec<&u64> = self.books.keys().collect();
        ids.sort_by_key(|id| (!live.contains(id), **id));
        for id in ids {
            let b = &self.books[id];
            if seen.insert((b.dev, b.ino)) {
                entries.push(Entry::new(b.dev, b.ino, b.fp, b.progress.committed, b.path.clone()));
            }
        }
        entries.extend(self.entries.iter().filter(|e| seen.insert((e.dev, e.ino))).cloned());
        match store.write(&entries) {
            Ok(()) => {
                self.dirty = false;
                self.events.checkpoint_written(entries.len());
            }
            Err(e) => {
                warn!(path = %store.path().display(), error = %e, "Cannot write checkpoint; will retry.");
                self.events.checkpoint_failed(&e);
            }
        }
    }
}

/// Whether `path` names the file `key` right now.
fn resolves_to(path: &Path, key: Key) -> bool {
    std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == key)
}

/// Where an open file lives now, from `/proc/self/fd` (Linux); `None` when
/// unknown or deleted.
fn current_path(file: &File) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (!p.to_string_lossy().ends_with(" (deleted)")).then_some(p)
}

/// The offset after the last `\n` near the end of the file (so the first
/// line read is whole), 0 for a short file without one.
fn tail_offset(file: &File, size: u64) -> u64 {
    let from = size.saturating_sub(TAIL_LOOKBACK);
    let mut buf = vec![0u8; (size - from) as usize];
    let n = file.read_at(&mut buf, from).unwrap_or(0);
    match memchr::memrchr(b'\n', &buf[..n]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    }
}
