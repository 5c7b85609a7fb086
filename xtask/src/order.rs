//! `cargo xtask symbol-order wait-for|ambassador|log-shipper` (`wait-for-order`
//! is the old name): regenerates `crates/<bin>/symbol-order.txt`, the
//! functions the binary runs (a wait; the ambassador's start-up, idle time,
//! first requests and drain; log-shipper following files, shipping them over
//! HTTP and into a file, serving a directory, idling and draining), which the
//! crate's `build.rs` hands to lld so they are linked together at the front of
//! `.text`.
//!
//! Why: the kernel maps a file-backed page fault's whole 64 KiB neighbourhood
//! (fault-around), so a few hundred KB of start-up and wait code spread over
//! the 2.4 MB of wait-for's text mapped nearly all of it (peak RSS 3.2 MiB).
//! Clustered, it maps about 0.7 MB (peak RSS 1.6 MiB). The ambassador's idle
//! resident set shrinks the same way.
//!
//! How: build the binary exactly as shipped (its profile, built alone as
//! `cargo xtask build-release` builds it) but with its symbols kept
//! (`-C strip=none` on the final crate only, which leaves the symbol names
//! the same as in the shipped build), in a target dir of its own so the
//! shipped binary is not replaced; run the [`Tool::scenarios`] under
//! callgrind; collect every function they entered. Then add what callgrind
//! cannot see: every variant of a glibc string function one of whose variants
//! ran (the CPU picks the variant: valgrind's has no AVX-512), and the
//! start-up that maps the vDSO, which valgrind does not give its guest.
//!
//! The names carry Rust's crate hashes and LTO's suffixes, so a toolchain,
//! dependency, version or code change makes some stale: lld skips those, and
//! RSS creeps back up (`cargo xtask bench wait-for` and `bench idle` show it).
//! Rerun this then.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use podkit_testkit::{ClosedPort, Proc};

use crate::build;

/// glibc's start-up when the kernel gives the process a vDSO (`setup_vdso`:
/// a link map for it, its symbol lookups, the loader lock). Valgrind gives
/// its guest no vDSO, so callgrind never sees these; each name pulls its
/// object file's `.text` along.
const VDSO_STARTUP: &[&str] = &[
    "_start",
    "_dl_new_object",
    "_dl_add_to_namespace_list",
    "_dl_setup_hash",
    "_dl_lookup_symbol_x",
    "do_lookup_x",
    "check_match",
    "_dl_name_match_p",
    "___pthread_mutex_lock",
    "__pthread_mutex_unlock",
];

/// The string functions that vDSO start-up calls (its symbol lookups compare
/// names), whose variants are taken like the profiled ones'.
const VDSO_STARTUP_IFUNCS: &[&str] = &["strcmp"];

/// A binary whose link order this tool writes.
struct Tool {
    package: &'static str,
    bin: &'static str,
    /// The cargo profile it ships with.
    profile: &'static str,
    /// What the list holds, for its header line.
    what: &'static str,
    scenarios: fn() -> Vec<Scenario>,
}

const TOOLS: [Tool; 3] = [
    Tool {
        package: "podkit-wait-for",
        bin: "wait-for",
        profile: "release-small",
        what: "Functions a wait runs",
        scenarios: wait_for_scenarios,
    },
    Tool {
        package: "podkit-ambassador",
        bin: "ambassador",
        profile: "release",
        what: "Functions the ambassador runs to start, idle, answer its first requests and drain",
        scenarios: ambassador_scenarios,
    },
    Tool {
        package: "podkit-log-shipper",
        bin: "log-shipper",
        profile: "release",
        what: "Functions log-shipper runs to start, ship, serve, idle and drain",
        scenarios: log_shipper_scenarios,
    },
];

pub fn run(args: &[String]) -> Result<()> {
    let names: Vec<&str> = TOOLS.iter().map(|t| t.bin).collect();
    let [name] = args else {
        anyhow::bail!("symbol-order takes one binary: {}", names.join(" or "));
    };
    let tool = TOOLS
        .iter()
        .find(|t| t.bin == name.as_str())
        .with_context(|| format!("no symbol order for `{name}`; one of {}", names.join(", ")))?;
    let bin = build_profiling_binary(tool)?;
    let defined = defined_symbols(&bin)?;
    let dir = build::tempdir()?;
    let mut order = Order::default();
    let profiled = profile(&bin, &dir, (tool.scenarios)()).and_then(|profiles| {
        for profile in &profiles {
            let text = std::fs::read_to_string(profile).with_context(|| format!("reading {}", profile.display()))?;
            for name in callgrind_functions(&text).filter(|n| defined.contains(n)) {
                order.push(name);
            }
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    profiled?;
    let profiled = order.names.len();
    // glibc picks a string function's variant for the CPU (an ifunc):
    // valgrind's has no AVX-512, a production one may lack AVX2. When a
    // variant of one ran, take every variant. (Every resolver runs at
    // start-up, used or not, so a resolver says nothing.)
    let mut defined_sorted: Vec<&String> = defined.names.iter().collect();
    defined_sorted.sort();
    for ifunc in &defined.ifuncs {
        let prefix = format!("__{ifunc}_");
        if VDSO_STARTUP_IFUNCS.contains(&ifunc.as_str())
            || order.names[..profiled].iter().any(|n| n.starts_with(&prefix))
        {
            for name in defined_sorted.iter().filter(|n| n.starts_with(&prefix)) {
                order.push(name);
            }
        }
    }
    for name in VDSO_STARTUP {
        if defined.contains(name) {
            order.push(name);
        }
    }
    let out = build::root().join(format!("crates/{}/symbol-order.txt", tool.bin));
    let mut text = format!(
        "# {}, linked first in {}'s .text (see crates/{}/build.rs).\n\
         # Generated by `cargo xtask symbol-order {}`; do not edit by hand.\n",
        tool.what, tool.bin, tool.bin, tool.bin
    );
    // Sorted: where a name sits inside the front block does not matter, and
    // callgrind's order varies from run to run (diffs stay small).
    let mut names = order.names.clone();
    names.sort();
    for name in &names {
        text.push_str(name);
        text.push('\n');
    }
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {} functions ({profiled} profiled, {} glibc ifunc variants and vDSO start-up)",
        out.display(),
        order.names.len(),
        order.names.len() - profiled
    );
    Ok(())
}

/// Names without repeats.
#[derive(Default)]
struct Order {
    names: Vec<String>,
    seen: HashSet<String>,
}

impl Order {
    fn push(&mut self, name: &str) {
        if self.seen.insert(name.to_owned()) {
            self.names.push(name.to_owned());
        }
    }
}

/// Builds the shipped binary with its symbols, in `target/symbol-order`.
fn build_profiling_binary(tool: &Tool) -> Result<PathBuf> {
    let target = build::target_dir().join("symbol-order");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(build::root())
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "rustc",
            "--profile",
            tool.profile,
            "-p",
            tool.package,
            "--bin",
            tool.bin,
        ])
        .args(["--", "-C", "strip=none"])
        .status()
        .context("running cargo rustc")?;
    ensure!(status.success(), "building the profiling {} failed", tool.bin);
    Ok(target
        .join("x86_64-unknown-linux-gnu")
        .join(tool.profile)
        .join(tool.bin))
}

/// The symbols a binary defines, and the names of its ifuncs.
struct Defined {
    names: HashSet<String>,
    ifuncs: Vec<String>,
}

impl Defined {
    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// Every symbol the binary defines (`nm --defined-only`).
fn defined_symbols(bin: &Path) -> Result<Defined> {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(bin)
        .output()
        .context("running nm (binutils)")?;
    ensure!(
        out.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut defined = Defined {
        names: HashSet::new(),
        ifuncs: Vec::new(),
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(kind), Some(name)) = (fields.next(), fields.next()) else {
            continue;
        };
        // An ifunc is type `i`, or shows as its resolver `NAME_ifunc` (static
        // glibc turns some into `.iplt` stubs).
        if kind == "i" {
            defined.ifuncs.push(name.to_owned());
        } else if let Some(ifunc) = name.strip_suffix("_ifunc") {
            defined.ifuncs.push(ifunc.to_owned());
        }
        defined.names.insert(name.to_owned());
    }
    defined.ifuncs.sort();
    defined.ifuncs.dedup();
    Ok(defined)
}

/// The function names a callgrind profile defines (`fn=(id) name` and
/// `cfn=(id) name` lines), in order; `'2`-style recursion suffixes dropped.
fn callgrind_functions(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let rest = line.strip_prefix("fn=(").or_else(|| line.strip_prefix("cfn=("))?;
        let (_, name) = rest.split_once(") ")?;
        Some(name.split('\'').next().unwrap_or(name))
    })
}

/// Runs the scenarios under callgrind and returns the profile files.
fn profile(bin: &Path, dir: &Path, scenarios: Vec<Scenario>) -> Result<Vec<PathBuf>> {
    let mut profiles = Vec::new();
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let out = dir.join(format!("callgrind.{i}"));
        let mut cmd = Command::new("valgrind");
        cmd.args(["--tool=callgrind", "--demangle=no", "--dump-before=execve"])
            .arg(format!("--callgrind-out-file={}.%p", out.display()))
            .arg(bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        scenario(cmd).with_context(|| format!("profiling scenario {i}"))?;
        let prefix = format!("callgrind.{i}.");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .collect();
        ensure!(
            !files.is_empty(),
            "scenario {i} left no callgrind profile (is valgrind installed?)"
        );
        files.sort();
        profiles.extend(files);
    }
    Ok(profiles)
}

type Scenario = Box<dyn Fn(Command) -> Result<()>>;

/// The waits profiled: a tcp port that opens while waiting (the bench), an
/// open port then exec, a closed port until the timeout (progress lines),
/// SIGTERM while waiting, and an http target whose server comes up late.
fn wait_for_scenarios() -> Vec<Scenario> {
    vec![
        Box::new(|mut cmd| {
            let reserved = ClosedPort::new();
            let port = reserved.port();
            let opener = std::thread::spawn(move || -> Result<()> {
                std::thread::sleep(Duration::from_millis(700));
                let listener = reserved.listen();
                let _ = listener.accept();
                Ok(())
            });
            let status = cmd.args(["-q", &format!("tcp://127.0.0.1:{port}")]).status()?;
            ensure!(status.success(), "wait-for exited with {status}");
            let _ = TcpStream::connect(("127.0.0.1", port));
            opener.join().map_err(|_| anyhow::anyhow!("opener panicked"))?
        }),
        Box::new(|mut cmd| {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            let status = cmd.args([&format!("127.0.0.1:{port}"), "--", "/bin/true"]).status()?;
            ensure!(status.success(), "wait-for -- /bin/true exited with {status}");
            Ok(())
        }),
        Box::new(|mut cmd| {
            let closed = ClosedPort::new();
            let status = cmd
                .args([&format!("tcp://{}", closed.addr()), "--timeout", "1s"])
                .status()?;
            ensure!(status.code() == Some(124), "wait-for should time out, got {status}");
            Ok(())
        }),
        Box::new(|mut cmd| {
            let closed = ClosedPort::new();
            let mut child = cmd.arg(format!("tcp://{}", closed.addr())).spawn()?;
            std::thread::sleep(Duration::from_millis(1500));
            crate::proc::kill(child.id(), libc::SIGTERM);
            let status = child.wait()?;
            ensure!(
                status.code() == Some(143),
                "wait-for should stop on SIGTERM, got {status}"
            );
            Ok(())
        }),
        Box::new(|mut cmd| {
            let reserved = ClosedPort::new();
            let port = reserved.port();
            let server = std::thread::spawn(move || -> Result<()> {
                std::thread::sleep(Duration::from_millis(700));
                let listener = reserved.listen();
                let (mut conn, _) = listener.accept()?;
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf)?;
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")?;
                Ok(())
            });
            let status = cmd.arg(format!("http://127.0.0.1:{port}/")).status()?;
            ensure!(status.success(), "wait-for http exited with {status}");
            server.join().map_err(|_| anyhow::anyhow!("server panicked"))?
        }),
    ]
}

/// The ambassador with a listener of each mode: start-up, the admin
/// endpoints, two requests through each mode (the first makes the
/// connections), idle time, then SIGTERM and the drain.
fn ambassador_scenarios() -> Vec<Scenario> {
    vec![Box::new(|mut cmd| {
        let origin = TcpListener::bind("127.0.0.1:0")?;
        let up = origin.local_addr()?;
        std::thread::spawn(move || {
            for conn in origin.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    // One answer per connection, then close (what the
                    // client asks for with `Connection: close`).
                    let mut buf = [0u8; 4096];
                    if conn.read(&mut buf).is_ok_and(|n| n > 0) {
                        let _ =
                            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n");
                    }
                });
            }
        });
        cmd.args(["--admin-addr", "127.0.0.1:0", "--drain-delay", "0s"])
            .args(["--tcp", &format!("127.0.0.1:0={up}")])
            .args(["--reverse", &format!("127.0.0.1:0=http://{up}")])
            .args(["--http-forward", "127.0.0.1:0"]);
        // Every port is picked by the kernel and read back from the log
        // (nothing to race with another process for).
        let mut proc = Proc::spawn_command(cmd);
        let admin = proc.admin_addr().port();
        let tcp = proc.logged_addr("listener=tcp:", "addr").port();
        let reverse = proc.logged_addr("listener=reverse:", "addr").port();
        let forward = proc.logged_addr("listener=http-forward:", "addr").port();
        let result = (|| -> Result<()> {
            // Under valgrind start-up takes a while.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while http(admin, "/readyz", None).is_err() {
                ensure!(std::time::Instant::now() < deadline, "the ambassador did not come up");
                std::thread::sleep(Duration::from_millis(100));
            }
            for path in ["/livez", "/readyz", "/metrics"] {
                http(admin, path, None)?;
            }
            for _ in 0..2 {
                http(tcp, "/", None)?;
                http(reverse, "/", None)?;
                http(forward, &format!("http://{up}/"), Some(&up.to_string()))?;
            }
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        })();
        proc.signal(libc::SIGTERM);
        let (status, _) = proc.wait_exit(Duration::from_secs(60));
        result?;
        ensure!(status.success(), "the ambassador should drain and exit 0, got {status}");
        Ok(())
    })]
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`host` for absolute-form
/// targets); the answer must be a 200.
fn http(port: u16, target: &str, host: Option<&str>) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or("localhost")
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "GET {target} on port {port}: {answer}"
    );
    Ok(())
}

/// A loopback HTTP GET of `path` on `port` whose answer must be a 200;
/// returns the body.
fn get_ok(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "GET {path} on port {port}: {answer}"
    );
    Ok(answer)
}

/// Appends `n` numbered lines to `path`.
fn append_lines(path: &Path, from: usize, n: usize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut text = String::new();
    for i in from..from + n {
        text.push_str(&format!(
            "2026-12-06T02:00:00.{:03}Z INFO request {i} done in 12ms user=42\n",
            i % 1000
        ));
    }
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Waits (generously: valgrind is slow) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done() {
        ensure!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// log-shipper as the sidecar: following 10 files of a log directory
/// into an HTTP sink and serving that directory (listing, index, a file,
/// `?tail=`), the admin endpoints, more lines after a quiet spell, then
/// SIGTERM and the drain; and a second run into a `file://` sink.
fn log_shipper_scenarios() -> Vec<Scenario> {
    vec![
        Box::new(|mut cmd| {
            let dir = build::tempdir()?;
            let result = (|| -> Result<()> {
                let logs = dir.join("logs");
                std::fs::create_dir_all(&logs)?;
                std::fs::write(logs.join("index.html"), "<pre>hello</pre>\n")?;
                for f in 0..10 {
                    append_lines(&logs.join(format!("app-{f}.log")), 0, 100)?;
                }
                let sink = podkit_testkit::sink::Sink::start();
                cmd.args(["--follow", &format!("{}/*.log", logs.display())])
                    .arg("--state-dir")
                    .arg(dir.join("state"))
                    .args(["--sink", &sink.url("/ingest")])
                    .args(["--serve", "127.0.0.1:0"])
                    .arg("--serve-root")
                    .arg(&logs)
                    .args(["--admin-addr", "127.0.0.1:0", "--grace-period", "30s"]);
                // Ports picked by the kernel and read back from the log.
                let mut proc = Proc::spawn_command(cmd);
                let admin = proc.admin_addr().port();
                let serve = proc.logged_addr("Serving.", "addr").port();
                let run = (|| -> Result<()> {
                    wait_until("log-shipper ready", || http(admin, "/readyz", None).is_ok())?;
                    wait_until("1000 lines at the sink", || sink.records() >= 1000)?;
                    for path in ["/livez", "/readyz", "/metrics"] {
                        http(admin, path, None)?;
                    }
                    for path in ["/", "/app-0.log", "/app-1.log?tail=5", "/index.html"] {
                        get_ok(serve, path)?;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                    for f in 0..10 {
                        append_lines(&logs.join(format!("app-{f}.log")), 100, 10)?;
                    }
                    wait_until("1100 lines at the sink", || sink.records() >= 1100)?;
                    std::thread::sleep(Duration::from_secs(2));
                    http(admin, "/metrics", None)?;
                    Ok(())
                })();
                proc.signal(libc::SIGTERM);
                let (status, _) = proc.wait_exit(Duration::from_secs(60));
                run?;
                ensure!(status.success(), "log-shipper should drain and exit 0, got {status}");
                Ok(())
            })();
            let _ = std::fs::remove_dir_all(&dir);
            result
        }),
        Box::new(|mut cmd| {
            let dir = build::tempdir()?;
            let result = (|| -> Result<()> {
                let log = dir.join("app.log");
                append_lines(&log, 0, 500)?;
                let out = dir.join("shipped.ndjson");
                cmd.args(["--follow", &log.display().to_string()])
                    .arg("--state-dir")
                    .arg(dir.join("state"))
                    .args(["--sink", &format!("file://{}", out.display())])
                    .args(["--file-max-size", "16KiB", "--file-keep", "20"])
                    .args(["--admin-addr", "127.0.0.1:0", "--grace-period", "30s"]);
                let mut proc = Proc::spawn_command(cmd);
                let run = wait_until("500 lines in the file sink", || {
                    let lines = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
                    let rotated: usize = (1..=20)
                        .map(|n| lines(Path::new(&format!("{}.{n}", out.display()))))
                        .sum();
                    rotated + lines(&out) >= 500
                });
                proc.signal(libc::SIGTERM);
                let (status, _) = proc.wait_exit(Duration::from_secs(60));
                run?;
                ensure!(status.success(), "log-shipper should drain and exit 0, got {status}");
                Ok(())
            })();
            let _ = std::fs::remove_dir_all(&dir);
            result
        }),
    ]
}
