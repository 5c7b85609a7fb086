//! Scenarios for `tail-rewrite`, against GNU sed and busybox sed on the same
//! generated log:
//!
//! - `rewrite-prefix`: the adapter pod's `s/^/Date /` over a 1 GiB log (MB/s and CPU
//!   per MB; the issue's target is ≥ 1× GNU sed).
//! - `rewrite-json`: capture groups → JSON over a 256 MiB log: `--parse` with
//!   named captures vs GNU `sed -E 's/…/{"date":"\1",…}/'` (target ≥ 25×).
//!   (sed's output is not even valid JSON for lines with quotes or
//!   backslashes, 2.5 % of this log; ours always is.)
//! - `rewrite-latency`: follow mode at 2,000 lines/s for 10 s, latency from
//!   the app's write to the line arriving on the adapter's stdout, vs the
//!   adapter pattern's usual `tail -F | sed` and `tail -F | sed -u` (target p99 ≤ 20 ms). The
//!   percentiles go to `target/bench/rewrite-latency-percentiles.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};

use super::{Contender, Env, Sample, Scenario, run_to_completion};
use crate::proc;

const PARSE: &str = r"^(?P<date>\S+) (?P<level>\S+) \[(?P<req>[^]]*)\] (?P<msg>.*)$";
const SED_JSON: &str = r#"s/^([^ ]+) ([^ ]+) \[([^]]*)\] (.*)$/{"date":"\1","level":"\2","req":"\3","msg":"\4"}/"#;

pub fn prefix() -> Scenario {
    Scenario {
        name: "rewrite-prefix",
        about: "tail-rewrite --once -e 's/^/Date /' vs GNU sed and busybox sed on a 1 GiB log",
        unit: "MB",
        tools: &[("sed", "sed"), ("busybox", "busybox-static")],
        setup: setup_prefix,
    }
}

pub fn json() -> Scenario {
    Scenario {
        name: "rewrite-json",
        about: "capture groups to JSON: tail-rewrite --parse vs GNU sed -E on a 256 MiB log",
        unit: "MB",
        tools: &[("sed", "sed")],
        setup: setup_json,
    }
}

pub fn latency() -> Scenario {
    Scenario {
        name: "rewrite-latency",
        about: "follow mode at 2,000 lines/s for 10 s: write-to-output latency vs tail -F + sed",
        unit: "lines",
        tools: &[("sed", "sed"), ("tail", "coreutils")],
        setup: setup_latency,
    }
}

/// A small deterministic generator (xorshift), so every run sees the same log.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// One log line like an HTTP service writes; 2.5 % carry quotes or
/// backslashes (the lines sed turns into invalid JSON).
fn log_line(rng: &mut Rng, i: u64, out: &mut Vec<u8>) {
    let level = rng.pick(&["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]);
    let method = rng.pick(&["GET", "POST", "PUT", "DELETE"]);
    let path = rng.pick(&[
        "/api/v1/items",
        "/api/v1/users/42",
        "/healthz",
        "/api/v2/orders?id=7",
        "/static/app.js",
    ]);
    let status = rng.pick(&["200", "200", "201", "404", "500"]);
    let _ = write!(
        out,
        "2026-11-26T{:02}:{:02}:{:02}.{:03}Z {level} [req-{:06}] {method} {path} {status} {}ms user={}",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        i % 1000,
        rng.next() % 1_000_000,
        rng.next() % 900,
        rng.next() % 10_000
    );
    match i % 80 {
        0 => out.extend_from_slice(br#" note="quoted \"value\"""#),
        40 => out.extend_from_slice(br" path=C:\temp\x"),
        _ => {}
    }
    out.push(b'\n');
}

/// The generated log of about `bytes` bytes, cached under target/bench-data.
fn log_file(bytes: u64) -> Result<PathBuf> {
    let dir = crate::build::target_dir().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("rewrite-{}m.log", bytes >> 20));
    if path.metadata().is_ok_and(|m| m.len() >= bytes) {
        return Ok(path);
    }
    eprintln!("[bench] generating {}", path.display());
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::with_capacity(256);
    let mut written = 0;
    let mut i = 0;
    while written < bytes {
        buf.clear();
        log_line(&mut rng, i, &mut buf);
        w.write_all(&buf)?;
        written += buf.len() as u64;
        i += 1;
    }
    w.flush()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// A contender that runs `program args... < input > /dev/null`.
fn filter(name: &str, podkit: bool, program: PathBuf, args: Vec<String>, input: PathBuf) -> Contender {
    let mb = input.metadata().map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg("exec \"$@\" < \"$IN\" > /dev/null")
                .arg("sh")
                .arg(&program)
                .args(&args)
                .env("IN", &input)
                .env("LC_ALL", "C.UTF-8");
            run_to_completion(cmd, mb)
        }),
    }
}

fn setup_prefix(env: &Env) -> Result<Vec<Contender>> {
    let input = log_file(1 << 30)?;
    let expr = "s/^/Date /".to_owned();
    Ok(vec![
        filter(
            "podkit tail-rewrite",
            true,
            env.bin("tail-rewrite"),
            vec!["--once".into(), "-e".into(), expr.clone()],
            input.clone(),
        ),
        filter(
            "GNU sed",
            false,
            "sed".into(),
            vec!["-e".into(), expr.clone()],
            input.clone(),
        ),
        filter(
            "busybox sed",
            false,
            "busybox".into(),
            vec!["sed".into(), "-e".into(), expr],
            input,
        ),
    ])
}

fn setup_json(env: &Env) -> Result<Vec<Contender>> {
    let input = log_file(256 << 20)?;
    Ok(vec![
        filter(
            "podkit tail-rewrite --parse --format json",
            true,
            env.bin("tail-rewrite"),
            vec![
                "--once".into(),
                "--format".into(),
                "json".into(),
                "--parse".into(),
                PARSE.into(),
            ],
            input.clone(),
        ),
        filter(
            "GNU sed -E",
            false,
            "sed".into(),
            vec!["-E".into(), SED_JSON.into()],
            input,
        ),
    ])
}

/// Lines per second and seconds of the latency scenario.
const RATE: u64 = 2_000;
const SECONDS: u64 = 10;

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Percentiles per contender, accumulated over rounds.
type Latencies = Arc<Mutex<Vec<(String, Vec<f64>)>>>;

fn setup_latency(env: &Env) -> Result<Vec<Contender>> {
    let latencies: Latencies = Arc::new(Mutex::new(Vec::new()));
    let bin = env.bin("tail-rewrite").display().to_string();
    let work = env.work.clone();
    let mut contenders = Vec::new();
    let specs: Vec<(&str, bool, String)> = vec![
        (
            "podkit tail-rewrite --follow",
            true,
            format!(
                "exec {bin} --follow \"$LOG\" -e 's/^/Date /' --state-dir \"$STATE\" --admin-addr off --log-level warn"
            ),
        ),
        (
            "tail -F + GNU sed (the usual adapter)",
            false,
            "tail -F \"$LOG\" | sed -e 's/^/Date /'".to_owned(),
        ),
        (
            "tail -F + GNU sed -u",
            false,
            "tail -F \"$LOG\" | sed -u -e 's/^/Date /'".to_owned(),
        ),
    ];
    for (name, podkit, script) in specs {
        let latencies = latencies.clone();
        let work = work.clone();
        let name_owned = name.to_owned();
        contenders.push(Contender {
            name: name.to_owned(),
            podkit,
            baseline: None,
            run: Box::new(move || {
                let (sample, lat) = follow_once(&work, &script)?;
                let mut all = latencies.lock().unwrap();
                match all.iter_mut().find(|(n, _)| *n == name_owned) {
                    Some((_, v)) => v.extend(lat),
                    None => all.push((name_owned.clone(), lat)),
                }
                write_percentiles(&all)?;
                Ok(sample)
            }),
        });
    }
    Ok(contenders)
}

/// One run: start the follower, write RATE lines/s for SECONDS carrying their
/// send time, read its stdout, and return the sample and per-line latencies
/// (ms). Lines that never arrive (sed's buffer at the end) count as lost.
fn follow_once(work: &Path, script: &str) -> Result<(Sample, Vec<f64>)> {
    let dir = work.join(format!("latency-{}", micros_now()));
    std::fs::create_dir_all(dir.join("state"))?;
    let log = dir.join("app.log");
    File::create(&log)?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("LOG", &log)
        .env("STATE", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().context("stdout")?;
    let total = RATE * SECONDS;
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(total as usize);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let now = micros_now();
            if let Some(sent) = line
                .strip_prefix("Date t=")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|t| t.parse::<u64>().ok())
            {
                lat.push(now.saturating_sub(sent) as f64 / 1000.0);
            }
            if lat.len() as u64 >= total {
                break;
            }
        }
        lat
    });
    // Let the follower open the file.
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = proc::tree_cpu_seconds(pid);
    let sampler = proc::RssSampler::start(pid);
    let (busy0, _) = proc::machine_ticks();
    let start = Instant::now();
    let mut app = OpenOptions::new().append(true).open(&log)?;
    for seq in 0..total {
        let due = start + Duration::from_micros(seq * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        app.write_all(format!("t={} seq={seq} GET /api/v1/items 200 12ms\n", micros_now()).as_bytes())?;
    }
    // Give the follower time to deliver, then stop it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = start.elapsed();
    let cpu = proc::tree_cpu_seconds(pid) - cpu0;
    let peak_rss = sampler.stop();
    let (busy1, _) = proc::machine_ticks();
    for p in proc::tree(pid) {
        proc::kill(p, libc::SIGTERM);
    }
    let _ = child.wait();
    let lat = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(!lat.is_empty() || script.contains("sed -e"), "no line arrived");
    let other = ((busy1 - busy0) as f64 / proc::USER_HZ - cpu) / wall.as_secs_f64();
    Ok((
        Sample {
            units: lat.len() as f64,
            wall,
            cpu,
            peak_rss,
            other_cores: other.max(0.0),
            p99: None,
        },
        lat,
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn write_percentiles(all: &[(String, Vec<f64>)]) -> Result<()> {
    let mut out = String::from(
        "### bench `rewrite-latency`: write-to-output latency at 2,000 lines/s (all rounds pooled)\n\n\
         | contender | lines delivered | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (name, lat) in all {
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            sorted.len(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.9),
            percentile(&sorted, 0.99),
            sorted.last().copied().unwrap_or(f64::NAN)
        ));
    }
    eprint!("{out}");
    let dir = crate::build::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("rewrite-latency-percentiles.md"), out)?;
    Ok(())
}
