//! Scenarios for `log-shipper`, beside Fluent Bit (when a `fluent-bit`
//! binary is on PATH; it is not packaged for Debian) and nginx, or beside
//! itself:
//!
//! - `ship-http`: 2,000,000 lines of ~125 bytes (app, access-log, JSON and
//!   UTF-8 lines, generated once, deterministically) written before start,
//!   read from the head and shipped as NDJSON over HTTP to a local sink that
//!   counts records (`podkit_testkit::sink`); a run ends when every line
//!   arrived, and the count must then be exact. Figures: CPU-µs per line of
//!   the shipper process alone, lines/s, peak RSS.
//! - `ship-file`: the same into a file (log-shipper `file://`, Fluent Bit's
//!   `file` output with `format plain`), counted as it grows.
//! - `ship-idle`: resident memory while following 10 quiet files, after
//!   their lines were shipped.
//! - `ship-sinks`: the same 2M lines to each platform sink (Loki,
//!   Elasticsearch, OTLP; JSON and protobuf) and to the NDJSON sink, gzip
//!   off and on; the receivers are `podkit_testkit::platform`'s stand-ins
//!   in their counting mode (answers as the strict ones give, entries
//!   counted without decoding); CPU per line as a multiple of NDJSON's at
//!   the same gzip setting (`log_shipper/sinks.rs`).
//! - `ship-cri`: the same lines in 4 container log files, plain vs CRI in
//!   node mode, CRI with partial lines, CRI with Java stack traces and
//!   `--multiline java`; CPU per line as a multiple of plain's (`log_shipper/cri.rs`).
//! - `serve`: a 4 KiB file over keep-alive (wrk, 50 connections):
//!   `log-shipper --serve` vs nginx (one worker, run as nobody on a loopback
//!   port with a temporary config): CPU-µs per request, req/s, p99.
//! - `serve-idle`: resident memory of an idle `--serve` vs an idle nginx.
//!
//! Fluent Bit runs twice: at its defaults (the tail input from the head with
//! a database, the http or file output), and tuned (256 KiB read buffers
//! and database `sync off`, the best CPU per line of the variants tried:
//! one output worker, 1 MiB buffers with a 5 s flush, a threaded input and
//! `mem_buf_limit` all cost more). Its records carry the same fields as ours
//! (time, file path, the line under `message`; its file output's `plain`
//! format has no time).
//! Without `fluent-bit` the scenarios say `SKIPPED: …` for it and run the
//! rest.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use podkit_testkit::platform::{Platform, PlatformServer};
use podkit_testkit::sink::Sink;

use super::rewrite::Rng;
use super::{Contender, Env, Sample, Scenario, Server, have};
use crate::proc;

mod cri;
mod sinks;

/// Lines of the shipping scenarios.
const LINES: u64 = 2_000_000;

/// Files and lines per file of `ship-idle`.
const IDLE_FILES: usize = 10;
const IDLE_LINES: u64 = 1_000;

/// Length of one idle window.
const WINDOW: Duration = Duration::from_secs(2);

/// How long one shipping run may take before it counts as failed.
const RUN_LIMIT: Duration = Duration::from_secs(300);

const SERVE_PORT: u16 = 18960;
const SERVE_NGINX_PORT: u16 = 18961;
const SERVE_IDLE_PORT: u16 = 18962;
const SERVE_IDLE_NGINX_PORT: u16 = 18963;

const TOOLS: &[(&str, &str)] = &[("nginx", "nginx-light"), ("wrk", "wrk")];

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ship-http",
            about: "2M lines from a file's head as NDJSON over HTTP to a counting sink: log-shipper vs Fluent Bit",
            unit: "lines",
            tools: &[],
            setup: setup_http,
        },
        Scenario {
            name: "ship-file",
            about: "2M lines from a file's head into a file: log-shipper file:// vs Fluent Bit's file output",
            unit: "lines",
            tools: &[],
            setup: setup_file,
        },
        Scenario {
            name: "ship-idle",
            about: "resident memory following 10 quiet files (after shipping them): log-shipper vs Fluent Bit",
            unit: "seconds",
            tools: &[],
            setup: setup_ship_idle,
        },
        sinks::scenario(),
        cri::scenario(),
        Scenario {
            name: "serve",
            about: "a 4 KiB file over keep-alive (wrk, 50 connections): log-shipper --serve vs nginx",
            unit: "requests",
            tools: TOOLS,
            setup: setup_serve,
        },
        Scenario {
            name: "serve-idle",
            about: "resident memory of an idle file server: log-shipper --serve vs nginx",
            unit: "seconds",
            tools: TOOLS,
            setup: setup_serve_idle,
        },
    ]
}

// === the workload ===

/// Appends line `i` of the mix: 40 % app lines, 30 % access-log lines,
/// 20 % JSON lines, 10 % lines with non-ASCII UTF-8; ~125 bytes on average.
fn mixed_line(rng: &mut Rng, i: u64, out: &mut Vec<u8>) {
    let (h, m, s, ms) = ((i / 3_600_000) % 24, (i / 60_000) % 60, (i / 1000) % 60, i % 1000);
    match rng.next() % 10 {
        0..=3 => {
            let level = rng.pick(&["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]);
            let what = rng.pick(&[
                "order processed",
                "cache miss, loading from store",
                "payment authorised",
                "session refreshed",
            ]);
            let _ = write!(
                out,
                "2026-12-06T{h:02}:{m:02}:{s:02}.{ms:03}Z {level} [worker-{}] {what} id={i} took={}ms user={} trace={:016x}",
                rng.next() % 8,
                rng.next() % 900,
                rng.next() % 100_000,
                rng.next()
            );
        }
        4..=6 => {
            let method = rng.pick(&["GET", "GET", "POST", "PUT", "DELETE"]);
            let path = rng.pick(&["/api/v1/items", "/api/v1/users/42", "/healthz", "/static/app.js"]);
            let status = rng.pick(&["200", "200", "201", "304", "404", "500"]);
            let _ = write!(
                out,
                "10.0.{}.{} - - [06/Dec/2026:{h:02}:{m:02}:{s:02} +0000] \"{method} {path}?r={i} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0\"",
                rng.next() % 256,
                rng.next() % 256,
                rng.next() % 50_000
            );
        }
        7 | 8 => {
            let level = rng.pick(&["info", "info", "warn", "error"]);
            let _ = write!(
                out,
                "{{\"ts\":\"2026-12-06T{h:02}:{m:02}:{s:02}.{ms:03}Z\",\"level\":\"{level}\",\"msg\":\"request done\",\"seq\":{i},\"latency_ms\":{},\"trace\":\"{:016x}\"}}",
                rng.next() % 900,
                rng.next()
            );
        }
        _ => {
            let text = rng.pick(&[
                "Zahlung für Bestellung fehlgeschlagen — erneuter Versuch",
                "注文の処理に失敗しました。再試行します",
                "Paiement refusé : délai dépassé ✗",
                "Платёж отклонён, повтор через 5 с",
            ]);
            let _ = write!(
                out,
                "2026-12-06T{h:02}:{m:02}:{s:02}.{ms:03}Z WARN [billing] {text} seq={i} trace={:016x}",
                rng.next()
            );
        }
    }
    out.push(b'\n');
}

/// `lines` lines of the mix, starting at line `first`.
fn write_lines(path: &Path, first: u64, lines: u64) -> Result<u64> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut buf = Vec::with_capacity(256);
    let mut bytes = 0;
    for i in first..first + lines {
        buf.clear();
        mixed_line(&mut rng, i, &mut buf);
        w.write_all(&buf)?;
        bytes += buf.len() as u64;
    }
    w.flush()?;
    Ok(bytes)
}

/// The 2M-line log, generated once into target/bench-data.
fn ship_log() -> Result<PathBuf> {
    let dir = crate::build::target_dir().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("ship-v1-{LINES}.log"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("[bench] generating {}", path.display());
    let tmp = path.with_extension("tmp");
    let bytes = write_lines(&tmp, 0, LINES)?;
    std::fs::rename(&tmp, &path)?;
    eprintln!(
        "[bench] {LINES} lines, {bytes} bytes ({:.1} bytes per line with its newline)",
        bytes as f64 / LINES as f64
    );
    Ok(path)
}

// === contenders ===

/// Where a shipping run's records go, and how they are counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Http,
    File,
    /// A stand-in for a log platform, answering as the strict one does and
    /// counting entries without decoding them.
    Platform(Platform),
}

/// One shipper configuration: builds its command for a run.
type Launch = Box<dyn Fn(&RunDirs, &Target) -> Result<Command>>;

/// A run's fresh directories.
struct RunDirs {
    /// State directory (checkpoints, Fluent Bit's database).
    state: PathBuf,
    /// Where a file sink writes.
    out: PathBuf,
}

/// Where a run ships to.
enum Target {
    Http(Sink),
    File(PathBuf),
    Platform(PlatformServer),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Self::Http(sink) => sink.url("/ingest"),
            Self::File(path) => format!("file://{}", path.display()),
            Self::Platform(server) => server.sink_url(),
        }
    }
}

/// Counts the lines of a file as it grows.
struct FileCounter {
    path: PathBuf,
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    lines: u64,
}

impl FileCounter {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            buf: vec![0; 1 << 20],
            lines: 0,
        }
    }

    fn poll(&mut self) -> Result<u64> {
        if self.file.is_none() {
            match std::fs::File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        loop {
            let n = file.read(&mut self.buf)?;
            if n == 0 {
                return Ok(self.lines);
            }
            self.lines += memchr::memchr_iter(b'\n', &self.buf[..n]).count() as u64;
        }
    }
}

fn shipper(name: &str, podkit: bool, work: PathBuf, input_lines: u64, out: Out, launch: Launch) -> Contender {
    let expect = Expect {
        units: input_lines,
        records: input_lines,
    };
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || ship_once(&work, expect, out, &launch)),
    }
}

/// What a shipping run must deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    /// Units of work (the lines the app wrote).
    units: u64,
    /// Records the sink must count (fewer than `units` when lines join).
    records: u64,
}

/// One run: fresh state, a fresh sink, the shipper started and measured
/// until every record arrived; then stopped, and the count checked again.
fn ship_once(work: &Path, expect: Expect, out: Out, launch: &Launch) -> Result<Sample> {
    let lines = expect.records;
    let dir = work.join("run");
    let _ = std::fs::remove_dir_all(&dir);
    let dirs = RunDirs {
        state: dir.join("state"),
        out: dir.join("out"),
    };
    std::fs::create_dir_all(&dirs.state)?;
    std::fs::create_dir_all(&dirs.out)?;
    let target = match out {
        Out::Http => Target::Http(Sink::start()),
        Out::File => Target::File(dirs.out.join("shipped.ndjson")),
        Out::Platform(platform) => Target::Platform(PlatformServer::counting(platform)),
    };
    let mut counter = match &target {
        Target::File(path) => Some(FileCounter::new(path.clone())),
        _ => None,
    };
    let mut count = || -> Result<u64> {
        match (&target, counter.as_mut()) {
            (Target::Http(sink), _) => Ok(sink.records()),
            (Target::Platform(server), _) => {
                let malformed = server.malformed();
                ensure!(malformed.is_empty(), "the platform refused requests: {malformed:?}");
                Ok(server.stats().entries)
            }
            (_, Some(c)) => c.poll(),
            _ => unreachable!("a file target has a counter"),
        }
    };
    let mut cmd = launch(&dirs, &target)?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let (busy0, _) = proc::machine_ticks();
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let pid = child.id();
    let stderr = child.stderr.take().context("stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let sampler = proc::RssSampler::start(pid);
    let result = (|| -> Result<(Duration, f64)> {
        loop {
            let n = count()?;
            if n >= lines {
                return Ok((start.elapsed(), proc::tree_cpu_seconds(pid)));
            }
            if let Some(status) = child.try_wait()? {
                bail!("exited with {status} after {n} of {lines} lines");
            }
            ensure!(
                start.elapsed() < RUN_LIMIT,
                "only {n} of {lines} lines arrived in {RUN_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    })();
    let peak_rss = sampler.stop();
    let (busy1, _) = proc::machine_ticks();
    proc::kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stderr = stderr.join().unwrap_or_default();
    let (wall, cpu) = result.with_context(|| format!("stderr:\n{}", tail_lines(&stderr, 20)))?;
    // Nothing may arrive twice, also after the stop.
    let n = count()?;
    ensure!(n == lines, "{n} records arrived for {lines} lines");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        units: expect.units as f64,
        wall,
        cpu,
        peak_rss,
        other_cores: ((busy1 - busy0) as f64 / proc::USER_HZ - cpu).max(0.0) / wall.as_secs_f64(),
        p99: None,
    })
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn log_shipper(env: &Env, follow: String) -> Launch {
    log_shipper_at(env.bin("log-shipper"), follow)
}

fn log_shipper_at(bin: PathBuf, follow: String) -> Launch {
    log_shipper_with(bin, vec!["--follow".into(), follow])
}

/// log-shipper with `args` (what to follow, and how) to the run's sink.
fn log_shipper_with(bin: PathBuf, args: Vec<String>) -> Launch {
    Box::new(move |dirs, target| {
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .arg("--state-dir")
            .arg(&dirs.state)
            .args(["--sink", &target.url()])
            .args(["--admin-addr", "127.0.0.1:0", "--log-level", "warn"]);
        Ok(cmd)
    })
}

/// Fluent Bit's configuration: at its defaults, or tuned for throughput.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tuning {
    Defaults,
    Tuned,
}

/// The `fluent-bit` binary's version (`v5.1.1`), when one is on PATH.
fn fluent_bit_version() -> Option<String> {
    if !have("fluent-bit") {
        return None;
    }
    let out = Command::new("fluent-bit").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("?")
        .to_owned();
    Some(version)
}

fn fluent_bit_skipped(scenario: &str) {
    eprintln!(
        "[bench {scenario}] SKIPPED: Fluent Bit, no `fluent-bit` on PATH (build it from its public source, \
         see README's performance section)"
    );
}

/// Fluent Bit's classic config for following `follow` into `target`.
fn fluent_bit_config(follow: &str, dirs: &RunDirs, target: &Target, tuning: Tuning) -> String {
    let mut conf = String::new();
    let _ = writeln!(
        conf,
        "[SERVICE]\n    flush 1\n    grace 2\n    log_level warn\n    http_server off\n"
    );
    let _ = writeln!(
        conf,
        "[INPUT]\n    name tail\n    path {follow}\n    read_from_head true\n    db {}\n    \
         path_key file\n    key message",
        dirs.state.join("fluent-bit.db").display()
    );
    if tuning == Tuning::Tuned {
        let _ = writeln!(
            conf,
            "    buffer_chunk_size 256k\n    buffer_max_size 256k\n    db.sync off"
        );
    }
    match target {
        Target::Http(sink) => {
            let _ = write!(
                conf,
                "\n[OUTPUT]\n    name http\n    match *\n    host 127.0.0.1\n    port {}\n    uri /ingest\n    \
                 format json_lines\n    json_date_key timestamp\n    json_date_format iso8601\n",
                sink.addr().port()
            );
        }
        Target::Platform(_) => unreachable!("Fluent Bit ships to the NDJSON sink and files only"),
        Target::File(path) => {
            let _ = write!(
                conf,
                "\n[OUTPUT]\n    name file\n    match *\n    path {}\n    file {}\n    format plain\n",
                path.parent()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                path.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
        }
    }
    conf
}

fn fluent_bit(follow: String, tuning: Tuning) -> Launch {
    Box::new(move |dirs, target| {
        let conf = dirs.state.join("fluent-bit.conf");
        std::fs::write(&conf, fluent_bit_config(&follow, dirs, target, tuning))?;
        let mut cmd = Command::new("fluent-bit");
        cmd.arg("-c").arg(conf);
        Ok(cmd)
    })
}

/// log-shipper, then Fluent Bit tuned and at its defaults (when present).
fn shipping(env: &Env, scenario: &str, out: Out) -> Result<Vec<Contender>> {
    let log = ship_log()?;
    let follow = log.display().to_string();
    let mut contenders = vec![shipper(
        "podkit log-shipper",
        true,
        env.work.clone(),
        LINES,
        out,
        log_shipper(env, follow.clone()),
    )];
    // Another log-shipper build, for an A/B in the same run.
    if let Some(bin) = std::env::var_os("PODKIT_BENCH_BASELINE") {
        contenders.push(shipper(
            "baseline log-shipper",
            false,
            env.work.clone(),
            LINES,
            out,
            log_shipper_at(PathBuf::from(bin), follow.clone()),
        ));
    }
    match fluent_bit_version() {
        Some(v) => {
            for (label, tuning) in [("tuned", Tuning::Tuned), ("defaults", Tuning::Defaults)] {
                contenders.push(shipper(
                    &format!("Fluent Bit {v} ({label})"),
                    false,
                    env.work.clone(),
                    LINES,
                    out,
                    fluent_bit(follow.clone(), tuning),
                ));
            }
        }
        None => fluent_bit_skipped(scenario),
    }
    Ok(contenders)
}

fn setup_http(env: &Env) -> Result<Vec<Contender>> {
    shipping(env, "ship-http", Out::Http)
}

fn setup_file(env: &Env) -> Result<Vec<Contender>> {
    shipping(env, "ship-file", Out::File)
}

// === idle ===

/// A process under measurement and what it needs kept alive (its sink).
type Started = (Server, Box<dyn std::any::Any>);

/// Starts an idle contender.
type Start = Box<dyn FnMut() -> Result<Started>>;

/// A contender that starts a process (and what it needs kept alive) on
/// first use, and measures a quiet window each round.
fn idle(name: String, podkit: bool, mut start: Start) -> Contender {
    let mut running: Option<Started> = None;
    Contender {
        name,
        podkit,
        baseline: None,
        run: Box::new(move || {
            if running.is_none() {
                running = Some(start()?);
            }
            let (server, _keep) = running.as_mut().expect("started above");
            let sample = idle_window(server.pid());
            ensure!(server.running(), "it exited during the idle window");
            Ok(sample)
        }),
    }
}

/// Measures a quiet window: CPU, and the largest resident set the tree had
/// during it (VmRSS, not the high-water mark: a shipper's burst before it
/// went idle would count otherwise).
fn idle_window(pid: u32) -> Sample {
    let cpu0 = proc::tree_cpu_seconds(pid);
    let (busy0, _) = proc::machine_ticks();
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < WINDOW {
        let rss: u64 = proc::tree(pid)
            .iter()
            .map(|p| proc::status_kb(*p, "VmRSS:") * 1024)
            .sum();
        peak = peak.max(rss);
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    let cpu = proc::tree_cpu_seconds(pid) - cpu0;
    let (busy1, _) = proc::machine_ticks();
    Sample {
        units: wall.as_secs_f64(),
        wall,
        cpu,
        peak_rss: peak,
        other_cores: ((busy1 - busy0) as f64 / proc::USER_HZ - cpu).max(0.0) / wall.as_secs_f64(),
        p99: None,
    }
}

/// Starts a shipper over 10 small files, waits until every line reached
/// the sink, and lets it settle.
fn idle_shipper(dir: PathBuf, launch: Launch) -> Start {
    Box::new(move || {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        for f in 0..IDLE_FILES {
            write_lines(&logs.join(format!("app-{f}.log")), f as u64 * IDLE_LINES, IDLE_LINES)?;
        }
        let dirs = RunDirs {
            state: dir.join("state"),
            out: dir.join("out"),
        };
        std::fs::create_dir_all(&dirs.state)?;
        let target = Target::Http(Sink::start());
        let server = Server::spawn(launch(&dirs, &target)?)?;
        let Target::Http(sink) = &target else { unreachable!() };
        let want = IDLE_FILES as u64 * IDLE_LINES;
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink.records() < want {
            ensure!(
                Instant::now() < deadline,
                "only {} of {want} lines arrived",
                sink.records()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let batch timers, flushes and checkpoints run out.
        std::thread::sleep(Duration::from_secs(3));
        ensure!(sink.records() == want, "{} records for {want} lines", sink.records());
        Ok((server, Box::new(target) as Box<dyn std::any::Any>))
    })
}

fn setup_ship_idle(env: &Env) -> Result<Vec<Contender>> {
    let mut contenders = Vec::new();
    let dir = env.work.join("idle-podkit");
    contenders.push(idle(
        "podkit log-shipper".into(),
        true,
        idle_shipper(dir.clone(), log_shipper(env, format!("{}/logs/*.log", dir.display()))),
    ));
    match fluent_bit_version() {
        Some(v) => {
            for (label, tuning) in [("tuned", Tuning::Tuned), ("defaults", Tuning::Defaults)] {
                let dir = env.work.join(format!("idle-fluent-bit-{label}"));
                contenders.push(idle(
                    format!("Fluent Bit {v} ({label})"),
                    false,
                    idle_shipper(dir.clone(), fluent_bit(format!("{}/logs/*.log", dir.display()), tuning)),
                ));
            }
        }
        None => fluent_bit_skipped("ship-idle"),
    }
    Ok(contenders)
}

// === serve ===

/// The served directory: a 4 KiB `index.html`.
fn serve_root(env: &Env) -> Result<PathBuf> {
    let root = env.work.join("html");
    std::fs::create_dir_all(&root)?;
    let mut page = String::from("<!doctype html>\n<title>app log</title>\n<pre>\n");
    let mut i = 0;
    while page.len() < 4096 - 40 {
        let _ = writeln!(page, "Sun Dec  6 02:{:02}:{:02} UTC 2026", (i / 60) % 60, i % 60);
        i += 1;
    }
    page.push_str("</pre>\n");
    while page.len() < 4096 {
        page.push(' ');
    }
    page.truncate(4096);
    std::fs::write(root.join("index.html"), page)?;
    Ok(root)
}

fn serve_cmd(env: &Env, root: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env.bin("log-shipper"));
    cmd.args(["--serve", &format!("127.0.0.1:{port}")])
        .arg("--serve-root")
        .arg(root)
        .args(["--admin-addr", "127.0.0.1:0", "--log-level", "warn"]);
    cmd
}

/// Debian's nginx serving `root` on `port` with one worker, no access log,
/// sendfile on (its packaged default), as nobody when we are root.
fn nginx_serving(env: &Env, name: &str, root: &Path, port: u16) -> Result<Command> {
    let body = super::ambassador::http_block(
        env,
        &format!(
            "sendfile on; tcp_nopush on;\n\
             server {{ listen 127.0.0.1:{port} backlog=4096; root {}; location / {{ }} }}",
            root.display()
        ),
    );
    let mut cmd = super::ambassador::nginx_workers(env, name, &body, 1)?;
    if podkit_testkit::is_root() {
        // Unprivileged: nobody, with its pid file in a directory it may write.
        let dir = env.work.join(name);
        set_mode(&dir, 0o777)?;
        cmd.uid(65534).gid(65534);
    }
    Ok(cmd)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Checks that `port` serves the 4 KiB page (both contenders answer the
/// same thing before they are measured).
fn check_page(port: u16) -> Result<()> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    ensure!(text.starts_with("HTTP/1.1 200"), "GET / on port {port}: {text}");
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    ensure!(body == 4096, "GET / on port {port} gave {body} bytes, not 4096");
    Ok(())
}

fn page_load(port: u16) -> Result<super::ambassador::Load> {
    check_page(port)?;
    super::ambassador::wrk_load(port)
}

fn setup_serve(env: &Env) -> Result<Vec<Contender>> {
    let root = serve_root(env)?;
    let keep: Arc<dyn std::any::Any> = Arc::new(());
    Ok(vec![
        super::ambassador::proxy(
            "podkit log-shipper --serve",
            true,
            serve_cmd(env, &root, SERVE_PORT),
            SERVE_PORT,
            Arc::clone(&keep),
            page_load,
        ),
        super::ambassador::proxy(
            "nginx (1 worker)",
            false,
            nginx_serving(env, "serve-nginx", &root, SERVE_NGINX_PORT)?,
            SERVE_NGINX_PORT,
            keep,
            page_load,
        ),
    ])
}

/// Starts a file server, fetches the page a few times, and lets it settle.
fn idle_server(cmd: Command, port: u16) -> Start {
    let mut cmd = Some(cmd);
    Box::new(move || {
        let server = Server::spawn(cmd.take().context("started twice")?)?;
        super::ambassador::wait_port(port)?;
        for _ in 0..3 {
            check_page(port)?;
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok((server, Box::new(()) as Box<dyn std::any::Any>))
    })
}

fn setup_serve_idle(env: &Env) -> Result<Vec<Contender>> {
    let root = serve_root(env)?;
    Ok(vec![
        idle(
            "podkit log-shipper --serve".into(),
            true,
            idle_server(serve_cmd(env, &root, SERVE_IDLE_PORT), SERVE_IDLE_PORT),
        ),
        idle(
            "nginx (1 worker)".into(),
            false,
            idle_server(
                nginx_serving(env, "serve-idle-nginx", &root, SERVE_IDLE_NGINX_PORT)?,
                SERVE_IDLE_NGINX_PORT,
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_deterministic_and_about_125_bytes_a_line() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let (mut ra, mut rb) = (Rng(7), Rng(7));
        for i in 0..10_000 {
            mixed_line(&mut ra, i, &mut a);
            mixed_line(&mut rb, i, &mut b);
        }
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("valid UTF-8");
        assert_eq!(text.lines().count(), 10_000);
        let avg = text.len() as f64 / 10_000.0;
        assert!((115.0..=135.0).contains(&avg), "{avg} bytes per line");
        assert!(text.lines().any(|l| l.starts_with('{')), "JSON lines");
        assert!(text.lines().any(|l| l.contains("HTTP/1.1\"")), "access-log lines");
        assert!(text.lines().any(|l| !l.is_ascii()), "UTF-8 lines");
    }
}
