//! Scenarios for `wait-for`, beside wait-for-it (Debian's `wait-for-it`
//! package, the script people copy into images):
//!
//! - `wait-for`: readiness latency. Each run starts the contender waiting for
//!   a loopback port that opens at a random moment 0.5–2 s later, and the
//!   sample's wall time is from the port opening to the contender exiting 0:
//!   the delay an init container adds to a pod's start. CPU and peak RSS
//!   cover the whole wait.
//! - `wait-for-exec`: start-to-exec with the dependency already up:
//!   `wait-for tcp://… -- /bin/true` run 200 times in a loop, so wall / run is the
//!   whole cost of the wait-for step before the app starts.
//! - `wait-for-sigterm`: the contender waits, as PID 1 of its own PID
//!   namespace (`unshare --pid --fork --map-root-user`, what a container
//!   gives), for a port that never opens; it gets SIGTERM and the sample's
//!   wall time is how long it takes to exit. The kernel drops SIGTERM for a
//!   PID 1 without a handler, so a contender that ignores it is killed after
//!   3 s and its sample shows 3 s.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use podkit_testkit::ClosedPort;

use super::{Contender, Env, Sample, Scenario, other_cores, run_to_completion};
use crate::proc;

/// Runs per `wait-for-exec` sample.
const RUNS: usize = 200;

const WAIT_FOR_IT: &str = "/usr/bin/wait-for-it";

pub fn latency() -> Scenario {
    Scenario {
        name: "wait-for",
        about: "readiness latency: a port opens 0.5-2 s after start; wall = port open -> exit 0",
        unit: "runs",
        tools: &[(WAIT_FOR_IT, "wait-for-it")],
        setup: setup_latency,
    }
}

pub fn exec() -> Scenario {
    Scenario {
        name: "wait-for-exec",
        about: "start-to-exec with the dependency up: `<tool> 127.0.0.1:PORT -- /bin/true`, 200 runs per sample",
        unit: "runs",
        tools: &[(WAIT_FOR_IT, "wait-for-it")],
        setup: setup_exec,
    }
}

fn setup_latency(env: &Env) -> Result<Vec<Contender>> {
    let bin = env.bin("wait-for").display().to_string();
    Ok(vec![
        latency_contender("podkit wait-for", true, move |port| {
            let mut cmd = Command::new(&bin);
            cmd.args(["-q", &format!("tcp://127.0.0.1:{port}")]);
            cmd
        }),
        latency_contender("wait-for-it (Debian)", false, |port| {
            let mut cmd = Command::new(WAIT_FOR_IT);
            cmd.args(["-q", "-s", "-t", "30", &format!("127.0.0.1:{port}")]);
            cmd
        }),
    ])
}

/// A contender that waits for a port this process opens after a random
/// delay; the sample's wall time is the readiness latency.
fn latency_contender(name: &str, podkit: bool, command: impl Fn(u16) -> Command + 'static) -> Contender {
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || {
            // Held closed (connections refused) until it opens on the same socket.
            let reserved = ClosedPort::new();
            let port = reserved.port();
            let delay = Duration::from_millis(500 + fastrand::u64(..1500));
            let mut cmd = command(port);
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let cpu0 = proc::children_cpu_seconds();
            let (busy0, _) = proc::machine_ticks();
            let start = Instant::now();
            let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
            let sampler = proc::RssSampler::start(child.id());
            std::thread::sleep(delay.saturating_sub(start.elapsed()));
            let listener = reserved.listen();
            let opened = Instant::now();
            let status = child.wait()?;
            let latency = opened.elapsed();
            let total = start.elapsed();
            drop(listener);
            let peak_rss = sampler.stop();
            let cpu = proc::children_cpu_seconds() - cpu0;
            ensure!(status.success(), "{cmd:?} exited with {status}");
            let (busy1, _) = proc::machine_ticks();
            Ok(Sample {
                units: 1.0,
                wall: latency,
                cpu,
                peak_rss,
                other_cores: other_cores(busy1 - busy0, cpu, total),
                p99: None,
            })
        }),
    }
}

pub fn sigterm() -> Scenario {
    Scenario {
        name: "wait-for-sigterm",
        about: "SIGTERM to the waiting tool as PID 1 (unshare --pid); wall = SIGTERM -> exit (3 s = ignored)",
        unit: "runs",
        tools: &[(WAIT_FOR_IT, "wait-for-it"), ("unshare", "util-linux")],
        setup: setup_sigterm,
    }
}

/// How long a contender may ignore SIGTERM before it is killed.
const SIGTERM_PATIENCE: Duration = Duration::from_secs(3);

fn setup_sigterm(env: &Env) -> Result<Vec<Contender>> {
    // Refuses connections for as long as any contender runs (each holds it).
    let reserved = Arc::new(ClosedPort::new());
    let closed = reserved.port();
    let bin = env.bin("wait-for").display().to_string();
    Ok(vec![
        pid1_contender(
            "podkit wait-for",
            true,
            vec![bin, format!("tcp://127.0.0.1:{closed}")],
            Arc::clone(&reserved),
        ),
        pid1_contender(
            "wait-for-it (Debian)",
            false,
            vec![
                WAIT_FOR_IT.into(),
                "-t".into(),
                "0".into(),
                format!("127.0.0.1:{closed}"),
            ],
            reserved,
        ),
    ])
}

/// `argv` as PID 1 of a new PID namespace, waiting on the `closed` port.
fn pid1_contender(name: &str, podkit: bool, argv: Vec<String>, closed: Arc<ClosedPort>) -> Contender {
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || {
            let _closed = &closed;
            let mut cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--map-root-user"]).args(&argv);
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let cpu0 = proc::children_cpu_seconds();
            let (busy0, _) = proc::machine_ticks();
            let start = Instant::now();
            let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
            let sampler = proc::RssSampler::start(child.id());
            // The contender is unshare's only child: PID 1 inside.
            let children = format!("/proc/{0}/task/{0}/children", child.id());
            let inner = loop {
                let found = std::fs::read_to_string(&children)
                    .ok()
                    .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()));
                if let Some(pid) = found {
                    break pid;
                }
                ensure!(start.elapsed() < Duration::from_secs(5), "unshare did not fork");
                std::thread::sleep(Duration::from_millis(1));
            };
            // Let it settle into its wait.
            std::thread::sleep(Duration::from_millis(300));
            let sent = Instant::now();
            proc::kill(inner, libc::SIGTERM);
            let mut wall = SIGTERM_PATIENCE;
            while sent.elapsed() < SIGTERM_PATIENCE {
                if child.try_wait()?.is_some() {
                    wall = sent.elapsed();
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if child.try_wait()?.is_none() {
                proc::kill(inner, libc::SIGKILL);
                child.wait()?;
            }
            let total = start.elapsed();
            let peak_rss = sampler.stop();
            let cpu = proc::children_cpu_seconds() - cpu0;
            let (busy1, _) = proc::machine_ticks();
            Ok(Sample {
                units: 1.0,
                wall,
                cpu,
                peak_rss,
                other_cores: other_cores(busy1 - busy0, cpu, total),
                p99: None,
            })
        }),
    }
}

fn setup_exec(env: &Env) -> Result<Vec<Contender>> {
    // One listener for the whole scenario: the dependency is up.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    // Keep accepting so the backlog never fills over thousands of runs.
    std::thread::spawn(move || for _ in listener.incoming() {});
    let bin = env.bin("wait-for").display().to_string();
    Ok(vec![
        exec_contender(
            "podkit wait-for",
            true,
            format!("{bin} -q tcp://127.0.0.1:{port} -- /bin/true"),
        ),
        exec_contender(
            "wait-for-it (Debian)",
            false,
            format!("{WAIT_FOR_IT} -q -s -t 5 127.0.0.1:{port} -- /bin/true"),
        ),
        exec_contender("floor: /bin/true", false, "/bin/true".to_owned()),
    ])
}

fn exec_contender(name: &str, podkit: bool, line: String) -> Contender {
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(format!(
                "i=0; while [ $i -lt {RUNS} ]; do {line} || exit 1; i=$((i+1)); done"
            ));
            run_to_completion(cmd, RUNS as f64)
        }),
    }
}
