//! The bench runner: `cargo xtask bench <scenario>`.
//!
//! A scenario sets up contenders: podkit's binary and the real tools users
//! would pick instead (nginx, HAProxy, sed, tail, ...), installed from Debian
//! when missing. The runner runs them interleaved for several rounds (so a
//! burst of load on a shared machine hits every contender alike), measures
//! each run over the whole process tree (CPU seconds, peak RSS) and records
//! the other load on the machine during the run, then prints medians and
//! ratios and writes the table to `target/bench/<scenario>.md`. Ratios are
//! podkit against each anchor, and, for contenders that name a
//! [`Contender::baseline`] (variants of one binary), CPU per unit as a
//! multiple of the baseline's in the same run (`× ndjson`).

mod ambassador;
mod idle;
mod log_shipper;
mod rewrite;
mod startup;
mod wait_for;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::proc;

/// One measured run of one contender.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Units of work done (lines, bytes, requests, runs).
    pub units: f64,
    /// Wall-clock time of the measured window.
    pub wall: Duration,
    /// CPU seconds of the contender's process tree in the window.
    pub cpu: f64,
    /// Peak resident memory of the contender's process tree, bytes.
    pub peak_rss: u64,
    /// Cores kept busy by everything else on the machine during the window.
    pub other_cores: f64,
    /// The 99th-percentile latency the load generator saw, when it measures
    /// one (wrk).
    pub p99: Option<Duration>,
}

/// A contender: a name and a closure that performs one measured run.
pub struct Contender {
    /// Shown in the table (`podkit tail-rewrite`, `GNU sed 4.9`).
    pub name: String,
    /// Whether this is podkit (ratios compare each anchor with the first
    /// podkit contender).
    pub podkit: bool,
    /// The contender (its index) this one is measured against in the same
    /// run, for variants of one binary (a sink beside the NDJSON sink): the
    /// table then gives its CPU per unit as a multiple of the baseline's,
    /// `1.23 × ndjson` (a baseline names itself).
    pub baseline: Option<usize>,
    /// Performs one run.
    pub run: Box<dyn FnMut() -> Result<Sample>>,
}

/// What a scenario's setup gets.
pub struct Env {
    /// Directory holding the release binaries.
    pub bins: PathBuf,
    /// A scratch directory for this run, removed afterwards.
    pub work: PathBuf,
}

impl Env {
    /// The path of a podkit binary.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bins.join(name)
    }
}

/// A benchmark scenario.
pub struct Scenario {
    /// Name on the command line.
    pub name: &'static str,
    /// One line on what it measures.
    pub about: &'static str,
    /// The unit of work (`lines`, `MB`, `requests`, `runs`).
    pub unit: &'static str,
    /// Commands the anchors need, with the Debian package providing each.
    pub tools: &'static [(&'static str, &'static str)],
    /// Builds the contenders.
    pub setup: fn(&Env) -> Result<Vec<Contender>>,
}

/// Every scenario, in the order `bench list` shows them.
fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        startup::scenario(),
        idle::scenario(),
        rewrite::prefix(),
        rewrite::json(),
        rewrite::latency(),
        wait_for::latency(),
        wait_for::exec(),
        wait_for::sigterm(),
    ];
    all.extend(ambassador::scenarios());
    all.extend(log_shipper::scenarios());
    all
}

/// What `bench --help` says beyond the list.
const NOTES: &str = "\
Tables go to target/bench/<scenario>.md. PODKIT_BENCH_BIN_DIR=DIR takes the podkit binaries
from DIR instead of building the release binaries first. Tools the anchors need are installed from Debian
when missing. The log-shipper scenarios (ship-http, ship-file, ship-idle) run Fluent Bit beside
log-shipper when a `fluent-bit` binary is on PATH (not packaged for Debian: build it from its
public source; see the README's performance section), at its defaults and tuned, and print
`SKIPPED: Fluent Bit` otherwise; serve and serve-idle run Debian's nginx with one worker.
ship-sinks and ship-cri measure log-shipper against itself, in the same run: each platform sink
(Loki, Elasticsearch, OTLP, JSON and protobuf; local stand-ins in xtask's process that answer as the
strict test servers do and count entries without decoding them) against the NDJSON sink at the
same gzip setting, and CRI container logs (node mode, partial lines, Java stack traces) against
plain lines; the table's `CPU × baseline` column gives the multiple. xtask is a dev build: for
receivers that keep ahead of the shipper on a loaded machine, build testkit optimised:
cargo --config 'profile.dev.package.podkit-testkit.opt-level=3' xtask bench ship-sinks";

/// `cargo xtask bench <scenario> [--rounds N]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut rounds = 5;
    let mut name = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .context("--rounds needs a number")?
                    .parse()
                    .context("--rounds")?
            }
            other if name.is_none() => name = Some(other.to_owned()),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    let all = scenarios();
    let Some(name) = name.filter(|n| !matches!(n.as_str(), "list" | "--help" | "-h" | "help")) else {
        println!("usage: cargo xtask bench <scenario> [--rounds N]   (default 5 rounds)\n\nscenarios:");
        for s in &all {
            println!("  {:<18} {}", s.name, s.about);
        }
        println!("\n{NOTES}");
        return Ok(());
    };
    let scenario = all
        .into_iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no scenario `{name}`"))?;
    ensure!(rounds >= 1, "--rounds must be at least 1");
    install_tools(scenario.tools)?;
    // PODKIT_BENCH_BIN_DIR: binaries built already (a build of only the
    // one under test, or another branch's for an A/B), instead of building
    // all four release binaries first.
    let bins = match std::env::var_os("PODKIT_BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => crate::build::release()?,
    };
    let work = crate::build::tempdir()?;
    let env = Env {
        bins,
        work: work.clone(),
    };
    let result = measure(&scenario, &env, rounds);
    let _ = std::fs::remove_dir_all(&work);
    let table = result?;
    print!("{table}");
    let out = crate::build::target_dir().join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join(format!("{}.md", scenario.name)), &table)?;
    Ok(())
}

fn measure(scenario: &Scenario, env: &Env, rounds: usize) -> Result<String> {
    let mut contenders = (scenario.setup)(env)?;
    ensure!(!contenders.is_empty(), "scenario has no contenders");
    let n = contenders.len();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    for round in 0..rounds {
        // Rotate the order each round so no contender always runs first.
        for k in 0..n {
            let i = (round + k) % n;
            let c = &mut contenders[i];
            eprintln!("[bench {}] round {}/{rounds}: {}", scenario.name, round + 1, c.name);
            let sample = (c.run)().with_context(|| format!("{} failed", c.name))?;
            samples[i].push(sample);
        }
    }
    Ok(report(scenario, rounds, &contenders, &samples))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median figures of one contender.
struct Summary {
    rate: f64,
    cpu_per_unit: f64,
    peak_rss: f64,
    wall: f64,
    other: f64,
    p99: Option<f64>,
}

fn summarize(samples: &[Sample]) -> Summary {
    Summary {
        rate: median(
            samples
                .iter()
                .map(|s| s.units / s.wall.as_secs_f64().max(1e-9))
                .collect(),
        ),
        cpu_per_unit: median(samples.iter().map(|s| s.cpu / s.units.max(1e-12)).collect()),
        peak_rss: median(samples.iter().map(|s| s.peak_rss as f64).collect()),
        wall: median(samples.iter().map(|s| s.wall.as_secs_f64()).collect()),
        other: samples.iter().map(|s| s.other_cores).fold(0.0, f64::max),
        p99: {
            let p99s: Vec<f64> = samples.iter().filter_map(|s| s.p99).map(|d| d.as_secs_f64()).collect();
            (!p99s.is_empty()).then(|| median(p99s))
        },
    }
}

fn report(scenario: &Scenario, rounds: usize, contenders: &[Contender], samples: &[Vec<Sample>]) -> String {
    let sums: Vec<Summary> = samples.iter().map(|s| summarize(s)).collect();
    let unit = scenario.unit;
    let mut out = String::new();
    let _ = writeln!(out, "### bench `{}`: {}\n", scenario.name, scenario.about);
    let _ = writeln!(
        out,
        "Medians of {rounds} interleaved rounds on {} ({} cores). CPU is summed over each contender's \
         process tree; \"other load\" is the most cores anything else kept busy during a run.\n",
        hostname(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let latency = sums.iter().any(|s| s.p99.is_some());
    let (lat_head, lat_rule) = if latency { (" p99 latency |", "---:|") } else { ("", "") };
    let cpu: Vec<f64> = sums.iter().map(|s| s.cpu_per_unit).collect();
    let baselines: Vec<Option<usize>> = contenders.iter().map(|c| c.baseline).collect();
    let relative = baseline_ratios(&baselines, &cpu);
    let (rel_head, rel_rule) = if relative.iter().any(Option::is_some) {
        (" CPU × baseline |", "---:|")
    } else {
        ("", "")
    };
    let _ = writeln!(
        out,
        "| contender | {unit}/s | CPU-µs per {} |{rel_head}{lat_head} peak RSS | wall (s) | other load (cores) |",
        unit.trim_end_matches('s')
    );
    let _ = writeln!(out, "|---|---:|---:|{rel_rule}{lat_rule}---:|---:|---:|");
    for (i, (c, s)) in contenders.iter().zip(&sums).enumerate() {
        let rel = match (rel_head.is_empty(), relative[i], c.baseline) {
            (true, ..) => String::new(),
            (false, Some(r), Some(b)) => format!(" {r:.2} × {} |", contenders[b].name),
            (false, None, Some(b)) if b == i => " baseline |".to_owned(),
            (false, ..) => " – |".to_owned(),
        };
        let lat = if latency {
            format!(
                " {} |",
                s.p99.map_or_else(|| "-".to_owned(), |v| format!("{:.2} ms", v * 1e3))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} |{rel}{lat} {} | {:.3} | {:.2} |",
            c.name,
            si(s.rate),
            s.cpu_per_unit * 1e6,
            mib(s.peak_rss),
            s.wall,
            s.other
        );
    }
    if rounds > 1 {
        spread(&mut out, unit, contenders, samples);
    }
    if let Some(p) = contenders.iter().position(|c| c.podkit) {
        let anchors: Vec<usize> = (0..contenders.len()).filter(|&i| !contenders[i].podkit).collect();
        if !anchors.is_empty() {
            let _ = writeln!(
                out,
                "\nRatios, {} vs each anchor (> 1 means podkit is better):\n",
                contenders[p].name
            );
            let _ = writeln!(
                out,
                "| anchor | throughput × | CPU efficiency × |{} memory × |",
                if latency { " p99 latency × |" } else { "" }
            );
            let _ = writeln!(out, "|---|---:|---:|{lat_rule}---:|");
            for a in anchors {
                let (ps, as_) = (&sums[p], &sums[a]);
                let lat = match (latency, ps.p99, as_.p99) {
                    (false, ..) => String::new(),
                    (true, Some(ours), Some(theirs)) => format!(" {:.2} |", theirs / ours.max(1e-12)),
                    (true, ..) => " - |".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {:.2} | {:.2} |{lat} {:.2} |",
                    contenders[a].name,
                    ps.rate / as_.rate.max(1e-12),
                    as_.cpu_per_unit / ps.cpu_per_unit.max(1e-15),
                    as_.peak_rss / ps.peak_rss.max(1.0)
                );
            }
        }
    }
    out
}

/// Each contender's CPU per unit as a multiple of its baseline's (`None`
/// without a baseline, for the baseline itself, or when the baseline
/// measured no CPU).
fn baseline_ratios(baselines: &[Option<usize>], cpu_per_unit: &[f64]) -> Vec<Option<f64>> {
    baselines
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let base = *cpu_per_unit.get((*b)?)?;
            (b.is_some_and(|b| b != i) && base > 0.0).then(|| cpu_per_unit[i] / base)
        })
        .collect()
}

/// The spread over rounds (min–max) of each contender's rate, CPU per unit
/// and peak RSS: how far one round's figures can be trusted.
fn spread(out: &mut String, unit: &str, contenders: &[Contender], samples: &[Vec<Sample>]) {
    let range = |v: Vec<f64>| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let _ = writeln!(
        out,
        "\nSpread over rounds (min–max):\n\n| contender | {unit}/s | CPU-µs per {} | peak RSS |\n|---|---:|---:|---:|",
        unit.trim_end_matches('s')
    );
    for (c, s) in contenders.iter().zip(samples) {
        let rate = range(s.iter().map(|s| s.units / s.wall.as_secs_f64().max(1e-9)).collect());
        let cpu = range(s.iter().map(|s| s.cpu / s.units.max(1e-12) * 1e6).collect());
        let rss = range(s.iter().map(|s| s.peak_rss as f64).collect());
        let _ = writeln!(
            out,
            "| {} | {}–{} | {:.3}–{:.3} | {}–{} |",
            c.name,
            si(rate.0),
            si(rate.1),
            cpu.0,
            cpu.1,
            mib(rss.0),
            mib(rss.1)
        );
    }
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.2} k", v / 1e3),
        v => format!("{v:.2}"),
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Installs the Debian packages providing missing commands.
fn install_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("[bench] installing {missing:?} from Debian packages");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let status = Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .status()?;
        ensure!(status.success(), "apt-get install {missing:?} failed");
    }
    Ok(())
}

/// Whether a command is on PATH (or an absolute path that exists).
pub fn have(cmd: &str) -> bool {
    if cmd.starts_with('/') {
        return std::path::Path::new(cmd).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Runs `cmd` to completion and measures it: wall time, CPU of it and every
/// descendant it reaped (getrusage of children), peak RSS of its tree.
pub fn run_to_completion(mut cmd: Command, units: f64) -> Result<Sample> {
    cmd.stdin(Stdio::null());
    let cpu0 = proc::children_cpu_seconds();
    let (busy0, _) = proc::machine_ticks();
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let sampler = proc::RssSampler::start(child.id());
    let status = child.wait()?;
    let wall = start.elapsed();
    let peak_rss = sampler.stop();
    let cpu = proc::children_cpu_seconds() - cpu0;
    ensure!(status.success(), "{cmd:?} exited with {status}");
    let (busy1, _) = proc::machine_ticks();
    Ok(Sample {
        units,
        wall,
        cpu,
        peak_rss,
        other_cores: other_cores(busy1 - busy0, cpu, wall),
        p99: None,
    })
}

/// A long-running server under measurement (nginx, the ambassador).
pub struct Server {
    child: Child,
}

impl Server {
    /// Spawns the server.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        Ok(Self {
            child: cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Measures the server's tree while `load` runs; `load` returns the units
    /// of work done and the CPU seconds the load generator itself used (which
    /// is not counted as "other load").
    pub fn measure(&mut self, load: impl FnOnce() -> Result<(f64, f64)>) -> Result<Sample> {
        self.measure_latency(|| load().map(|(units, cpu)| (units, cpu, None)))
    }

    /// [`Server::measure`] with a load generator that also reports its
    /// 99th-percentile latency.
    pub fn measure_latency(&mut self, load: impl FnOnce() -> Result<(f64, f64, Option<Duration>)>) -> Result<Sample> {
        let pid = self.child.id();
        let cpu0 = proc::tree_cpu_seconds(pid);
        let (busy0, _) = proc::machine_ticks();
        let sampler = proc::RssSampler::start(pid);
        let start = Instant::now();
        let (units, load_cpu, p99) = load()?;
        let wall = start.elapsed();
        let cpu = proc::tree_cpu_seconds(pid) - cpu0;
        let peak_rss = sampler.stop();
        let (busy1, _) = proc::machine_ticks();
        Ok(Sample {
            units,
            wall,
            cpu,
            peak_rss,
            other_cores: other_cores(busy1 - busy0, cpu + load_cpu, wall),
            p99,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        proc::kill(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn other_cores(machine_busy_ticks: u64, ours: f64, wall: Duration) -> f64 {
    let busy = machine_busy_ticks as f64 / proc::USER_HZ;
    ((busy - ours) / wall.as_secs_f64().max(1e-9)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_ratios_divide_by_the_named_contender_only() {
        let cpu = [2.0, 4.0, 3.0, 6.0, 1.0];
        let baselines = [Some(0), Some(1), Some(0), Some(1), None];
        let got = baseline_ratios(&baselines, &cpu);
        assert_eq!(got, vec![None, None, Some(1.5), Some(1.5), None]);
        // A baseline out of range or without CPU gives no ratio.
        assert_eq!(baseline_ratios(&[Some(9), Some(0)], &[0.0, 1.0]), vec![None, None]);
    }
}
