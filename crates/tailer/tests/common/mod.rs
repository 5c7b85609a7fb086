//! Test harness shared by the tailer's integration tests: a [`Follower`]
//! runs a real tailer with a background consumer that records every line
//! (and acks it, unless told not to), and a [`Recorder`] of events that tests
//! wait on instead of sleeping.

#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use podkit_tailer::{CancellationToken, FileInfo, LineKind, Tailer, TailerConfig, TailerError, TailerEvents};

/// Generous bound for anything a test waits on (machines are shared and
/// noisy); `TAILER_TEST_WAIT_SECS` shortens it when shrinking a failure.
pub static WAIT: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
    Duration::from_secs(
        std::env::var("TAILER_TEST_WAIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    )
});

/// A line as the consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub path: PathBuf,
    pub ino: u64,
    pub text: String,
    pub kind: LineKind,
}

/// Waits on a mutex-protected value until a predicate holds.
pub struct Watch<T> {
    state: Mutex<T>,
    cv: Condvar,
}

impl<T> Watch<T> {
    pub fn new(v: T) -> Self {
        Self {
            state: Mutex::new(v),
            cv: Condvar::new(),
        }
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let r = f(&mut self.state.lock().unwrap());
        self.cv.notify_all();
        r
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    /// Waits until `pred` holds; returns whether it did within `timeout`.
    pub fn wait(&self, timeout: Duration, mut pred: impl FnMut(&T) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.state.lock().unwrap();
        loop {
            if pred(&g) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
}

/// Every event, as text, plus counters.
#[derive(Debug, Default)]
pub struct Log {
    pub lines: Vec<String>,
    pub truncated: u64,
    pub released: u64,
    pub too_long: u64,
    pub nul_skipped: u64,
    pub not_acked: u64,
    pub checkpoints: u64,
    /// Batches read so far.
    pub batches: u64,
    /// How many batches had been read when `started` was reported.
    pub batches_before_start: Option<u64>,
}

pub struct Recorder(pub Watch<Log>);

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Watch::new(Log::default())))
    }
    fn push(&self, s: String, f: impl FnOnce(&mut Log)) {
        self.0.update(|l| {
            l.lines.push(s);
            f(l)
        });
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.0.read(|l| l.lines.iter().any(|s| s.contains(needle)))
    }
}

impl TailerEvents for Recorder {
    fn started(&self, files: usize) {
        self.push(format!("started {files}"), |l| {
            l.batches_before_start.get_or_insert(l.batches);
        });
    }
    fn file_added(&self, file: &FileInfo, offset: u64, resumed: bool) {
        self.push(
            format!("added {} {offset} {resumed} ino={}", file.path.display(), file.ino),
            |_| {},
        );
    }
    fn file_rotated(&self, file: &FileInfo, to: Option<&Path>) {
        self.push(format!("rotated {} {:?}", file.path.display(), to), |_| {});
    }
    fn file_deleted(&self, file: &FileInfo) {
        self.push(format!("deleted {}", file.path.display()), |_| {});
    }
    fn file_truncated(&self, file: &FileInfo, offset: u64) {
        self.push(format!("truncated {} {offset}", file.path.display()), |l| {
            l.truncated += 1
        });
    }
    fn file_released(&self, file: &FileInfo, offset: u64) {
        self.push(format!("released {} {offset}", file.path.display()), |l| {
            l.released += 1
        });
    }
    fn file_error(&self, path: &Path, error: &io::Error) {
        self.push(format!("error {} {error}", path.display()), |_| {});
    }
    fn lines_too_long(&self, _file: &FileInfo, count: u64) {
        self.0.update(|l| l.too_long += count);
    }
    fn nul_bytes_skipped(&self, _file: &FileInfo, bytes: u64) {
        self.0.update(|l| l.nul_skipped += bytes);
    }
    fn batch_read(&self, _file: &FileInfo, _bytes: u64, _lines: u64) {
        self.0.update(|l| l.batches += 1);
    }
    fn batch_not_acked(&self, _file: &FileInfo, lines: u64) {
        self.0.update(|l| l.not_acked += lines);
    }
    fn checkpoint_written(&self, _files: usize) {
        self.0.update(|l| l.checkpoints += 1);
    }
    fn checkpoint_failed(&self, error: &io::Error) {
        self.push(format!("checkpoint failed {error}"), |_| {});
    }
    fn notify_unavailable(&self, reason: &str) {
        self.push(format!("notify unavailable {reason}"), |_| {});
    }
}

/// What the consumer recorded.
#[derive(Debug, Default)]
pub struct Seen {
    /// Lines of batches that were acknowledged (the sink's durable view).
    pub acked: Vec<Got>,
    /// Every line received, acknowledged or not.
    pub received: Vec<Got>,
}

pub struct Sink {
    pub seen: Watch<Seen>,
    /// Acknowledge batches (false simulates a sink that never confirmed them).
    pub ack: AtomicBool,
}

/// A running tailer plus its consumer.
pub struct Follower {
    rt: tokio::runtime::Runtime,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), TailerError>>>,
    consumer: Option<tokio::task::JoinHandle<()>>,
    pub sink: Arc<Sink>,
    pub events: Arc<Recorder>,
}

impl Follower {
    pub fn start(config: TailerConfig) -> Self {
        Self::try_start(config).expect("tailer starts")
    }

    pub fn try_start(config: TailerConfig) -> Result<Self, TailerError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let events = Recorder::new();
        let (tailer, mut rx) = Tailer::new(config, events.clone())?;
        let token = CancellationToken::new();
        let sink = Arc::new(Sink {
            seen: Watch::new(Seen::default()),
            ack: AtomicBool::new(true),
        });
        let task = rt.spawn(tailer.run(token.clone()));
        let s = sink.clone();
        let consumer = rt.spawn(async move {
            while let Some(batch) = rx.recv().await {
                let lines: Vec<Got> = batch
                    .lines()
                    .map(|l| Got {
                        path: batch.path().to_owned(),
                        ino: batch.file().ino,
                        text: String::from_utf8_lossy(l.bytes).into_owned(),
                        kind: l.kind,
                    })
                    .collect();
                let ack = s.ack.load(Ordering::SeqCst);
                s.seen.update(|seen| {
                    seen.received.extend(lines.iter().cloned());
                    if ack {
                        seen.acked.extend(lines);
                    }
                });
                if ack {
                    batch.ack();
                }
            }
        });
        Ok(Self {
            rt,
            token,
            task: Some(task),
            consumer: Some(consumer),
            sink,
            events,
        })
    }

    /// Waits until `pred` holds for what was seen.
    pub fn wait(&self, what: &str, pred: impl FnMut(&Seen) -> bool) {
        assert!(
            self.sink.seen.wait(*WAIT, pred),
            "timed out waiting for {what}; events: {:#?}",
            self.events_log()
        );
    }

    /// Waits until the acknowledged lines include every text in `want`.
    pub fn wait_acked(&self, want: &[String]) {
        let want: std::collections::HashSet<&String> = want.iter().collect();
        let ok = self.sink.seen.wait(*WAIT, |s| {
            let got: std::collections::HashSet<&String> = s.acked.iter().map(|g| &g.text).collect();
            want.iter().all(|w| got.contains(w))
        });
        if !ok {
            let missing: Vec<String> = self.sink.seen.read(|s| {
                let got: std::collections::HashSet<&String> = s.acked.iter().map(|g| &g.text).collect();
                want.iter()
                    .filter(|w| !got.contains(**w))
                    .take(10)
                    .map(|w| (*w).clone())
                    .collect()
            });
            panic!(
                "timed out waiting for lines, e.g. {missing:?}; events: {:#?}",
                self.events_log()
            );
        }
    }

    pub fn wait_event(&self, what: &str, mut pred: impl FnMut(&Log) -> bool) {
        assert!(
            self.events.0.wait(*WAIT, &mut pred),
            "timed out waiting for {what}; events: {:#?}",
            self.events_log()
        );
    }

    pub fn events_log(&self) -> Vec<String> {
        self.events.0.read(|l| l.lines.clone())
    }

    pub fn acked_texts(&self) -> Vec<String> {
        self.sink
            .seen
            .read(|s| s.acked.iter().map(|g| g.text.clone()).collect())
    }

    /// Shuts down cleanly and returns everything seen.
    pub fn stop(mut self) -> (Seen, Arc<Recorder>) {
        self.token.cancel();
        let task = self.task.take().unwrap();
        let consumer = self.consumer.take().unwrap();
        let res = self.rt.block_on(async {
            let r = tokio::time::timeout(*WAIT, task).await.expect("tailer stops in time");
            tokio::time::timeout(*WAIT, consumer)
                .await
                .expect("consumer stops in time")
                .unwrap();
            r
        });
        res.unwrap().expect("tailer ends without error");
        let seen = self.sink.seen.update(std::mem::take);
        (seen, self.events.clone())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A config for tests: fast polling and checkpoints.
pub fn config(patterns: &[String], state: Option<&Path>) -> TailerConfig {
    let mut c = TailerConfig::new(patterns.iter().cloned());
    c.state_dir = state.map(Path::to_owned);
    c.poll_interval = Duration::from_millis(50);
    c.checkpoint_interval = Duration::from_millis(100);
    c.rotate_wait = Duration::from_secs(1);
    c
}

pub fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Appends `lines` (each plus `\n`) to `path`, creating it if needed.
pub fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:06}")).collect()
}
