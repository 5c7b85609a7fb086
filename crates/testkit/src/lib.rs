//! Shared test helpers for podkit's process and pod tests.
//!
//! - [`Proc`]: a spawned binary whose stderr is collected line by line, so a
//!   test waits for an event ("Starting." with the admin address) instead of
//!   sleeping, and which is killed if the test fails midway. Its stdout is
//!   drained as it comes (a child never blocks on a full pipe) and readable
//!   through [`Proc::stdout`].
//! - [`http_get`]: a minimal HTTP/1.1 GET for scraping admin endpoints.
//! - [`signal`]: sends SIGTERM/SIGINT to a child.
//! - [`is_root`]: whether the test runs as root.
//! - [`find_program`]: a tool or server in the PATH (or `/usr/sbin`), for
//!   the tests that skip without it.
//! - [`wait_until`]: polls a condition against a generous deadline, for state
//!   that has no event to wait on ([`try_wait_until`]: the time-out as an
//!   error rather than a panic).
//! - [`Writer`]: an app writing on its own thread while the test watches
//!   how far it got, until it is done or told to stop.
//! - [`sink`]: a scriptable HTTP sink on `127.0.0.1:0` that counts the
//!   records log shippers POST to it (NDJSON or JSON arrays, gzip or not).
//! - [`server`]: the loop of every test server ([`server::spawn`]: a
//!   listener served on its own thread), and the HTTP server plumbing the
//!   sink and the [`platform`] stand-ins share.
//! - [`images`]: the podkit images (and the busybox stand-in) built for a
//!   container test, by id, or why the test must be skipped.
//! - [`tls::TestCa`]: a throwaway CA, server configs with a certificate it
//!   signed, and a client certificate, for the TLS tests of every binary.
//! - [`ClosedPort`]: a loopback port that refuses connections and stays
//!   reserved until the test opens it, so parallel tests never share one.
//! - [`configmap`]: a ConfigMap volume laid out by hand, updated with the
//!   kubelet's atomic `..data` symlink swap, and [`configmap::metric`] to read
//!   one sample from `/metrics`.
//! - [`pod`]: Kubernetes pods from `k8s/` run on a docker engine the way the
//!   kubelet runs them (pause container, native sidecars, probes, the
//!   downward API), and [`example_pods`], the scenarios that check the
//!   example pods with it.
//! - [`runner`]: the test runner of the `harness = false` binaries (the
//!   container tests, wait-for's system tests): filters, `SKIPPED: why` for
//!   what is missing here, libtest's summary and exit code.

pub mod configmap;
pub mod example_pods;
pub mod images;
pub mod platform;
pub mod pod;
pub mod runner;
pub mod server;
pub mod sink;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// How long tests wait for an event before failing. Generous, since CI
/// machines are shared and noisy; a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running binary under test. Dropping it kills the process.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// What the child wrote to stdout, drained by a thread; taken by
    /// [`Proc::stdout`].
    stdout: Option<Stdout>,
    /// Every stderr line seen so far (for failure messages).
    seen: Vec<String>,
}

impl Proc {
    /// Spawns `bin` with `args`, a clean environment (only `PATH`) plus `envs`,
    /// stdout and stderr collected.
    pub fn spawn(bin: impl AsRef<Path>, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin.as_ref());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Self::spawn_command(cmd)
    }

    /// Spawns a prepared command, collecting its stdout and stderr.
    pub fn spawn_command(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let stdout = Stdout::drain(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stdout: Some(stdout),
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line containing {needle:?} within {PATIENCE:?}; saw:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// The admin address the binary logged at start-up (`admin=ADDR` in its
    /// "Starting." line), so tests can pass `--admin-addr 127.0.0.1:0`.
    pub fn admin_addr(&mut self) -> SocketAddr {
        self.logged_addr("Starting.", "admin")
    }

    /// The address in the `FIELD=ADDR` field of the first stderr line
    /// containing `needle`: how a test learns the port of a listener it
    /// asked for on port 0 (the ambassador's `Listening.` lines, serve
    /// mode's `Serving.`). Binding port 0 in the binary itself leaves no
    /// window in which another test could take the port, unlike reserving
    /// one by binding, reading and closing it.
    pub fn logged_addr(&mut self, needle: &str, field: &str) -> SocketAddr {
        let line = self.wait_for_line(needle);
        let prefix = format!("{field}=");
        let value = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} field in {line:?}"));
        value
            .trim_matches('"')
            .parse()
            .unwrap_or_else(|e| panic!("bad {field} address in {line:?}: {e}"))
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGINT`).
    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits for the process to exit, at most `limit`; returns its status and
    /// how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.drain_stderr();
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "process {} did not exit within {limit:?}; stderr so far:\n{}",
                self.pid(),
                self.stderr()
            );
            // Reaping has no event to await without a SIGCHLD handler; a short
            // poll is the honest way to wait for exit.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and waits for the exit (at most [`PATIENCE`]); asserts
    /// that it exited 0 (showing its stderr otherwise) and returns its stderr.
    pub fn stop_ok(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let (status, _) = self.wait_exit(PATIENCE);
        let stderr = self.stderr();
        assert_eq!(status.code(), Some(0), "{stderr}");
        stderr
    }

    /// Runs to completion (with stdin closed) and returns status, stdout and
    /// stderr.
    pub fn finish(mut self) -> (ExitStatus, String, String) {
        let mut out = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let (status, _) = self.wait_exit(PATIENCE);
        (status, out, self.stderr())
    }

    /// Stderr lines seen so far, joined.
    pub fn stderr(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    fn drain_stderr(&mut self) {
        // The reader thread ends at EOF once the process is gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
    }

    /// The child's stdout, to read data from (once; `None` after). Reads
    /// block until the child writes more, and end when it closes stdout.
    pub fn stdout(&mut self) -> Option<Stdout> {
        self.stdout.take()
    }
}

/// A child's stdout, drained into memory by a thread as the child writes it
/// so the child never blocks on a full pipe; read it like the pipe itself.
pub struct Stdout {
    chunks: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Stdout {
    fn drain(mut pipe: std::process::ChildStdout) -> Self {
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            chunks,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for Stdout {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.chunks.recv() {
                Ok(chunk) => (self.chunk, self.pos) = (chunk, 0),
                // The drain thread ended: the child closed stdout.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` to process `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid fits in i32");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
}

/// A response from [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy).
    pub body: String,
}

impl HttpResponse {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close` (enough for admin
/// endpoints; not a general client).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A loopback port nothing listens on, held by a socket that is bound but not
/// listening: connections to it are refused, and no other test or process
/// can bind it while this lives (unlike binding port 0, reading the port and
/// closing, which frees the port for anyone). [`ClosedPort::listen`] opens
/// it later on the same socket.
#[derive(Debug)]
pub struct ClosedPort {
    socket: socket2::Socket,
    addr: SocketAddr,
}

impl ClosedPort {
    /// Reserves a port on 127.0.0.1.
    pub fn new() -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a TCP socket");
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&any.into()).expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound IPv4 address");
        Self { socket, addr }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Starts listening on the reserved port.
    pub fn listen(self) -> std::net::TcpListener {
        self.socket.listen(128).expect("listen on the reserved port");
        self.socket.into()
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// An app writing on its own thread while a test watches: `write` publishes
/// how far it got in the counter it is given (read with
/// [`Writer::written`]) and ends when it is done or when the flag it is
/// given is set ([`Writer::stop`]); what it returns, [`Writer::join`] and
/// [`Writer::stop`] give back. Dropped, it is stopped and joined.
#[derive(Debug)]
pub struct Writer<T> {
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Writer<T> {
    /// Runs `write` on its own thread.
    pub fn spawn(write: impl FnOnce(&AtomicU64, &AtomicBool) -> T + Send + 'static) -> Self {
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (Arc::clone(&written), Arc::clone(&stop));
        let thread = std::thread::spawn(move || write(&w, &s));
        Self {
            written,
            stop,
            thread: Some(thread),
        }
    }

    /// How far it got (what it stored in its counter last).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits until it is done; what it returned.
    pub fn join(mut self) -> T {
        let thread = self.thread.take().expect("a writer is joined once");
        thread.join().expect("the writer thread panicked")
    }

    /// Asks it to stop, then joins it.
    pub fn stop(self) -> T {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out (then panics
/// with `what`). For state with no event to await (a file appearing on disk).
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    if let Err(timed_out) = try_wait_until(what, condition) {
        panic!("{timed_out}");
    }
}

/// [`wait_until`] for a test that reports a failure as a value and cleans
/// up on it (the docker scenarios): the time-out is an error, not a panic.
pub fn try_wait_until(what: &str, mut condition: impl FnMut() -> bool) -> Result<(), TimedOut> {
    let deadline = Instant::now() + PATIENCE;
    let mut delay = Duration::from_millis(1);
    while !condition() {
        if Instant::now() >= deadline {
            return Err(TimedOut(what.to_owned()));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    Ok(())
}

/// [`try_wait_until`]'s error: what never came within [`PATIENCE`].
#[derive(Debug, Clone)]
pub struct TimedOut(pub String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "timed out after {PATIENCE:?} waiting for {}", self.0)
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for String {
    fn from(timed_out: TimedOut) -> Self {
        timed_out.to_string()
    }
}

/// Polls `condition` until it holds, as long as `progress` keeps changing:
/// panics with `what` only when [`PATIENCE`] passes with no change. For a
/// backlog a loaded machine works through slowly (a follower catching up),
/// where a stall is the failure, not the time the work takes.
pub fn wait_until_progressing<P: PartialEq>(
    what: &str,
    mut progress: impl FnMut() -> P,
    mut condition: impl FnMut() -> bool,
) {
    let mut last = progress();
    let mut deadline = Instant::now() + PATIENCE;
    let mut delay = Duration::from_millis(1);
    while !condition() {
        let now = progress();
        if now != last {
            last = now;
            deadline = Instant::now() + PATIENCE;
        }
        assert!(
            Instant::now() < deadline,
            "no progress for {PATIENCE:?} while waiting for {what}"
        );
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Finds `program` in the PATH, then in `extra_dirs` (such as `/usr/sbin`,
/// where Debian puts servers and which a user's PATH may lack): how a test
/// finds a tool or server that may not be installed, to skip without it.
pub fn find_program(program: &str, extra_dirs: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (effective uid 0, read from
/// `/proc/self/status`): servers started by a test or a benchmark then drop
/// to an unprivileged user.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uids.split_whitespace().nth(1).map(|effective| effective == "0")
        })
        .unwrap_or(false)
}

/// Whether a docker engine answers. Tests that need one print a visible
/// `SKIPPED:` line and return when it does not.
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Checks the lifecycle every long-running podkit binary shares: started with
/// `--admin-addr 127.0.0.1:0`, it serves `/livez`, `/readyz` and `/metrics`
/// (with `podkit_build_info` naming `binary`), and on SIGTERM it exits 0
/// within the grace period. `extra_args` are what the binary needs to start.
pub fn check_admin_and_sigterm(bin: &str, binary: &str, extra_args: &[&str]) {
    let mut args = vec!["--admin-addr", "127.0.0.1:0", "--grace-period", "5s"];
    args.extend_from_slice(extra_args);
    let mut proc = Proc::spawn(bin, &args, &[]);
    let admin = proc.admin_addr();
    let live = http_get(admin, "/livez").expect("GET /livez");
    assert_eq!(live.status, 200, "{live:?}");
    let metrics = http_get(admin, "/metrics").expect("GET /metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/openmetrics-text")),
        "{metrics:?}"
    );
    assert!(
        metrics
            .body
            .contains(&format!("podkit_build_info{{binary=\"{binary}\"")),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("process_resident_memory_bytes"),
        "{}",
        metrics.body
    );
    wait_until("/readyz to answer 200", || {
        http_get(admin, "/readyz").is_ok_and(|r| r.status == 200)
    });

    proc.signal(libc::SIGTERM);
    let (status, took) = proc.wait_exit(Duration::from_secs(5) + PATIENCE);
    assert_eq!(status.code(), Some(0), "exit after SIGTERM; stderr:\n{}", proc.stderr());
    assert!(
        took < Duration::from_secs(5),
        "drain took {took:?}, beyond the 5s grace period"
    );
    let stderr = proc.stderr();
    assert!(stderr.contains("Draining.") && stderr.contains("Stopped."), "{stderr}");
}

/// Checks the usage conventions: `--version` prints `<binary> <semver>
/// (<revision>)`, `--help` exits 0, and an unknown flag or a bad value exits
/// 64 with a message naming the flag.
pub fn check_usage(bin: &str, binary: &str) {
    let (status, out, _) = Proc::spawn(bin, &["--version"], &[]).finish();
    assert_eq!(status.code(), Some(0));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.first(), Some(&binary), "{out}");
    assert!(
        words.get(2).is_some_and(|r| r.starts_with('(') && r.ends_with(')')),
        "{out}"
    );

    let (status, out, _) = Proc::spawn(bin, &["--help"], &[]).finish();
    assert_eq!(status.code(), Some(0));
    assert!(
        out.contains("--log-format") && out.contains("PODKIT_GRACE_PERIOD"),
        "{out}"
    );

    let (status, _, err) = Proc::spawn(bin, &["--no-such-flag"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");

    let (status, _, err) = Proc::spawn(bin, &["--grace-period", "soonish"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--grace-period") && err.contains("soonish"), "{err}");

    // The env twin is checked the same way as the flag.
    let (status, _, err) = Proc::spawn(bin, &[], &[("PODKIT_LOG_FORMAT", "xml")]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--log-format") && err.contains("xml"), "{err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_writing_more_than_a_pipe_holds_is_not_blocked() {
        // 1 MiB on stdout before the stderr line: with an undrained pipe the
        // child would block at 64 KiB and the line never come.
        let mut proc = Proc::spawn(
            "sh",
            &["-c", "head -c 1048576 /dev/zero; echo written >&2; echo tail"],
            &[],
        );
        proc.wait_for_line("written");
        let (status, out, _) = proc.finish();
        assert!(status.success());
        assert_eq!(out.len(), 1_048_576 + "tail\n".len());
        assert!(out.ends_with("\0tail\n"));
    }

    #[test]
    fn a_closed_port_refuses_until_it_listens() {
        let port = ClosedPort::new();
        let addr = port.addr();
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(std::net::TcpListener::bind(addr).is_err(), "the port stays reserved");
        let listener = port.listen();
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("open once listening");
        drop(listener);
    }
}
