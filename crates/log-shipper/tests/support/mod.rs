//! Fixtures for the shipper's process tests: the real binary started with
//! its admin address read from its log (and stopped, expecting exit 0), an
//! app that writes numbered lines (optionally rotating its file), and what
//! a sink or a platform stand-in received, decoded back into those numbers
//! and checked for lost and duplicated lines.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use podkit_testkit::platform::{Entry, PlatformServer};
use podkit_testkit::sink::Sink;
use podkit_testkit::{Proc, Writer};

pub const BIN: &str = env!("CARGO_BIN_EXE_log-shipper");

/// A running shipper.
pub struct Shipper {
    pub proc: Proc,
    pub admin: SocketAddr,
}

impl Shipper {
    /// Starts the binary with `args` (plus a free admin port and a 10 s grace
    /// period) and waits until it is following.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut all = vec!["--admin-addr", "127.0.0.1:0", "--grace-period", "10s"];
        all.extend_from_slice(args);
        let mut proc = Proc::spawn(BIN, &all, envs);
        let admin = proc.admin_addr();
        proc.wait_for_line("Following.");
        Self { proc, admin }
    }

    /// Starts the binary following `d`'s `app.log` into `sink` (a `--sink`
    /// value), its checkpoint in `d.state`, with `extra` arguments after.
    pub fn following(d: &Dirs, sink: &str, extra: &[&str]) -> Self {
        let (log, state) = (Dirs::s(&d.app_log()), Dirs::s(&d.state));
        let mut args = vec!["--follow", &log, "--state-dir", &state, "--sink", sink];
        args.extend_from_slice(extra);
        Self::start(&args, &[])
    }

    /// SIGTERM, then the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.proc.signal(libc::SIGTERM);
        let (status, _) = self.proc.wait_exit(podkit_testkit::PATIENCE);
        (status, self.proc.stderr())
    }

    /// SIGTERM; asserts that it exits 0 (showing its log otherwise) and
    /// returns its log.
    pub fn stop_ok(mut self) -> String {
        self.proc.stop_ok()
    }

    /// SIGKILL, waiting until it is gone.
    pub fn kill(mut self) {
        self.proc.signal(libc::SIGKILL);
        let _ = self.proc.wait_exit(podkit_testkit::PATIENCE);
    }

    /// The value of a metric line starting with `prefix` (name and labels).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let body = podkit_testkit::http_get(self.admin, "/metrics").ok()?.body;
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.proc.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Line `seq`: fixed width, so a line's byte offset is `seq * LINE_LEN`
/// in a file that was never rotated.
pub fn line(seq: u64) -> String {
    format!("seq={seq:010} {}", "x".repeat(100))
}

/// Bytes of a line with its newline.
pub const LINE_LEN: u64 = 4 + 10 + 1 + 100 + 1;

/// The sequence number of a line written by [`line`].
pub fn parse(text: &str) -> Option<u64> {
    let seq: u64 = text.strip_prefix("seq=")?.get(..10)?.parse().ok()?;
    (text == line(seq)).then_some(seq)
}

/// How an app rotates its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    None,
    /// Rename to app.log.N and reopen app.log.
    Rename,
    /// Copy to app.log.N, then truncate app.log in place.
    CopyTruncate,
}

/// An app writing `total` numbered lines ([`line`], from 0) to
/// `dir/app.log` at `rate` lines/s on a thread, rotating every
/// `rotate_every`; it returns the next sequence number.
pub fn write_app_log(dir: &Path, total: u64, rate: u64, rotation: Rotation, rotate_every: Duration) -> Writer<u64> {
    let dir = dir.to_owned();
    Writer::spawn(move |written, stop| {
        let path = dir.join("app.log");
        let open = || OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let mut f: File = open();
        let start = Instant::now();
        let rotate_every = rotate_every.min(Duration::from_secs(1 << 30));
        let mut next_rotation = start + rotate_every;
        let mut rotations = 0;
        let mut buf = String::new();
        let mut seq = 0;
        while seq < total && !stop.load(Ordering::SeqCst) {
            // Write in chunks of 100 lines, paced to the rate.
            buf.clear();
            let end = (seq + 100).min(total);
            for n in seq..end {
                buf.push_str(&line(n));
                buf.push('\n');
            }
            f.write_all(buf.as_bytes()).unwrap();
            seq = end;
            written.store(seq, Ordering::SeqCst);
            if rotation != Rotation::None && Instant::now() >= next_rotation {
                rotations += 1;
                next_rotation += rotate_every;
                let rotated = dir.join(format!("app.log.{rotations}"));
                match rotation {
                    Rotation::Rename => {
                        fs::rename(&path, &rotated).unwrap();
                        f = open();
                    }
                    Rotation::CopyTruncate => {
                        fs::copy(&path, &rotated).unwrap();
                        // The app keeps writing between the copy and the truncate.
                        f.write_all(format!("{}\n", line(seq)).as_bytes()).unwrap();
                        seq += 1;
                        written.store(seq, Ordering::SeqCst);
                        OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
                    }
                    Rotation::None => {}
                }
            }
            let due = Duration::from_secs_f64(seq as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        seq
    })
}

/// What the sink received, as sequence numbers.
#[derive(Debug, Default)]
pub struct Received {
    /// How many times each line arrived.
    pub counts: HashMap<u64, u32>,
    /// Records that were not lines of [`line`] (their `message`).
    pub other: Vec<String>,
}

impl Received {
    /// The `message` of every record the sink accepted (NDJSON or JSON array).
    pub fn from_sink(sink: &Sink) -> Self {
        let mut r = Self::default();
        for record in sink.received_records() {
            let v: serde_json::Value = serde_json::from_slice(&record)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&record)));
            r.add(v["message"].as_str().unwrap_or_default());
        }
        r
    }

    /// The line of every entry a platform stand-in stored.
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut r = Self::default();
        for e in entries {
            r.add(&e.line);
        }
        r
    }

    fn add(&mut self, message: &str) {
        match parse(message) {
            Some(seq) => *self.counts.entry(seq).or_default() += 1,
            None => self.other.push(message.to_owned()),
        }
    }

    pub fn missing(&self, range: std::ops::Range<u64>) -> Vec<u64> {
        range.filter(|s| !self.counts.contains_key(s)).collect()
    }

    pub fn duplicated(&self) -> Vec<u64> {
        let mut d: Vec<u64> = self.counts.iter().filter(|(_, c)| **c > 1).map(|(s, _)| *s).collect();
        d.sort_unstable();
        d
    }

    /// Asserts that every line of `lines` arrived and that no line arrived
    /// twice, naming the first lost or duplicated ones.
    pub fn assert_once(&self, lines: std::ops::Range<u64>) -> &Self {
        let missing = self.missing(lines);
        assert!(
            missing.is_empty(),
            "lost {} lines: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        let dups = self.duplicated();
        assert!(
            dups.is_empty(),
            "duplicated {} lines: {:?}",
            dups.len(),
            &dups[..dups.len().min(10)]
        );
        self
    }

    /// At least once across a kill -9: asserts that no line before
    /// `checkpointed` (what the checkpoint covered at the kill) arrived twice.
    pub fn assert_redelivered_only_from(&self, checkpointed: u64) -> &Self {
        let dups = self.duplicated();
        assert!(
            dups.iter().all(|&s| s >= checkpointed),
            "a line acknowledged before the kill was shipped again: {:?}",
            &dups[..dups.len().min(10)]
        );
        self
    }

    /// Asserts that nothing but lines of [`line`] arrived.
    pub fn assert_nothing_else(&self) -> &Self {
        assert!(self.other.is_empty(), "{:?}", &self.other[..self.other.len().min(5)]);
        self
    }
}

/// Where the shipper delivers: the HTTP sink or a platform stand-in.
pub trait Delivered {
    /// Waits until it holds at least `n` records.
    fn wait_for(&self, n: u64);
    /// What it holds now.
    fn received(&self) -> Received;
}

impl Delivered for Sink {
    fn wait_for(&self, n: u64) {
        self.wait_records(n);
    }

    fn received(&self) -> Received {
        Received::from_sink(self)
    }
}

impl Delivered for PlatformServer {
    fn wait_for(&self, n: u64) {
        self.wait_entries(n);
    }

    fn received(&self) -> Received {
        Received::from_entries(&self.entries())
    }
}

/// Waits until `to` holds at least `n` records; what it holds then.
pub fn wait_delivered(to: &impl Delivered, n: u64) -> Received {
    to.wait_for(n);
    to.received()
}

/// Sequence numbers of the lines in `dir`'s files named `app.log*`: (in the
/// live file, in rotated copies).
pub fn on_disk(dir: &Path) -> (std::collections::HashSet<u64>, std::collections::HashSet<u64>) {
    let (mut live, mut copies) = (Default::default(), std::collections::HashSet::new());
    let live_ref: &mut std::collections::HashSet<u64> = &mut live;
    for e in fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("app.log") {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned();
        let set = if name == "app.log" { &mut *live_ref } else { &mut copies };
        set.extend(text.lines().filter_map(|l| parse(l.trim_start_matches('\0'))));
    }
    (live, copies)
}

/// The offset the checkpoint holds for `path` (or 0).
pub fn checkpoint_offset(state: &Path, name: &str, path: &Path) -> u64 {
    let Ok(text) = fs::read_to_string(state.join(format!("{name}.checkpoint.json"))) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"].as_str() == Some(&path.display().to_string()))
        .and_then(|f| f["offset"].as_u64())
        .unwrap_or(0)
}

/// Writes `lines` to `path` (appending).
pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(&l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// A temp dir with `logs/` and `state/`.
pub struct Dirs {
    pub _tmp: tempfile::TempDir,
    pub logs: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let state = tmp.path().join("state");
        fs::create_dir_all(&logs).unwrap();
        Self { _tmp: tmp, logs, state }
    }

    pub fn app_log(&self) -> PathBuf {
        self.logs.join("app.log")
    }

    pub fn s(p: &Path) -> String {
        p.display().to_string()
    }
}
