//! `cargo xtask demo`: the main job, a demo of podkit's pod patterns run as
//! local processes on loopback and a temporary directory standing in for the
//! pod's shared `emptyDir`.
//!
//! Each section prints what it does and what it saw, and the demo fails
//! (non-zero exit) if any pattern does not behave as described.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use podkit_testkit::{ClosedPort, Proc};

/// `cargo xtask demo [--release]`.
pub fn run(args: &[String]) -> Result<()> {
    let profile = if args.iter().any(|a| a == "--release") {
        "release"
    } else {
        "dev"
    };
    let bins = crate::build::binaries(profile)?;
    let work = crate::build::tempdir()?;
    let result = sections(&bins, &work);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!("\ndemo: every pattern behaved as described.");
    Ok(())
}

fn sections(bins: &Path, work: &Path) -> Result<()> {
    heading("Versions");
    for (_, bin) in crate::build::BINARIES {
        let out = Command::new(bins.join(bin)).arg("--version").output()?;
        ensure!(out.status.success(), "{bin} --version failed");
        print!("  {}", String::from_utf8_lossy(&out.stdout));
    }
    let app_log = work.join("app.log");
    std::fs::write(&app_log, "")?;
    let follow = app_log.display().to_string();
    let serve_root = work.display().to_string();
    for (bin, args) in [
        (
            "log-shipper",
            vec!["--serve", "127.0.0.1:0", "--serve-root", serve_root.as_str()],
        ),
        ("tail-rewrite", vec!["--follow", follow.as_str(), "--no-checkpoint"]),
        ("ambassador", vec!["--http-forward", "127.0.0.1:0"]),
    ] {
        heading(&format!("{bin}: admin endpoints and graceful SIGTERM"));
        lifecycle(&bins.join(bin), &args)?;
    }
    heading("Sidecar: log-shipper serves the app's log directory in place of nginx");
    sidecar_serve(&bins.join("log-shipper"), work)?;
    heading("Sidecar: log-shipper ships every line to a collector, through a rotation and a restart");
    sidecar_ship(&bins.join("log-shipper"), work)?;
    heading("Init container: wait-for blocks until a dependency is really ready, then execs the app");
    init_container(&bins.join("wait-for"))?;
    heading("Adapter: tail-rewrite replaces `tail -f app.log | sed -e 's/^/Date /' > out.log`");
    adapter(&bins.join("tail-rewrite"), work)?;
    heading("Ambassador: the app curls 127.0.0.1 and reaches the remote service");
    ambassador(&bins.join("ambassador"), work)?;
    Ok(())
}

/// The classic sidecar pod: the app appends `date` lines to index.html in
/// the shared directory, and log-shipper serves it as nginx did, plus the
/// last lines (`?tail=N`), and refuses paths that leave the directory.
fn sidecar_serve(bin: &Path, work: &Path) -> Result<()> {
    let root = work.join("html");
    std::fs::create_dir_all(&root)?;
    let lines = "Sat Dec  5 23:06:14 UTC 2026\nSat Dec  5 23:06:16 UTC 2026\nSat Dec  5 23:06:18 UTC 2026\n";
    std::fs::write(root.join("index.html"), lines)?;
    let root_s = root.display().to_string();
    let args = [
        "--serve",
        "127.0.0.1:0",
        "--serve-root",
        &root_s,
        "--admin-addr",
        "127.0.0.1:0",
    ];
    println!("  log-shipper {}", args.join(" "));
    let mut proc = Proc::spawn(bin, &args, &[]);
    let addr = proc.logged_addr("Serving.", "addr");
    for (path, want_status, want_body) in [
        ("/", 200, lines),
        ("/?tail=1", 200, "Sat Dec  5 23:06:18 UTC 2026\n"),
        ("/%2e%2e/%2e%2e/etc/passwd", 400, ""),
    ] {
        let (status, body) = http_get(addr, path)?;
        println!("  curl http://{addr}{path} -> {status}");
        for line in body.lines().take(3) {
            println!("    {line}");
        }
        ensure!(
            status == want_status,
            "GET {path}: expected {want_status}, got {status}"
        );
        ensure!(
            want_body.is_empty() || body == want_body,
            "GET {path}: unexpected body {body:?}"
        );
    }
    let code = terminate(&mut proc);
    println!("  SIGTERM -> exited {code}");
    ensure!(code == 0, "expected exit 0 after SIGTERM");
    Ok(())
}

/// The shipping sidecar: log-shipper follows app.log and POSTs each line as
/// an NDJSON record to a collector (the test kit's sink); the log is rotated
/// by rename, the shipper restarted, and every line arrives exactly once.
fn sidecar_ship(bin: &Path, work: &Path) -> Result<()> {
    let dir = work.join("ship");
    let state = work.join("ship-state");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("app.log");
    let date = |i: usize| format!("Sat Dec  5 23:{:02}:{:02} UTC 2026", 6 + i / 30, (i % 30) * 2);
    let append = |from: usize, to: usize| -> Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        for i in from..to {
            writeln!(f, "{}", date(i))?;
        }
        Ok(())
    };
    append(0, 3)?;
    let sink = podkit_testkit::sink::Sink::keeping_bodies();
    let url = sink.url("/ingest");
    let (glob, state_s) = (dir.join("*.log").display().to_string(), state.display().to_string());
    let args = [
        "--follow",
        &glob,
        "--sink",
        &url,
        "--state-dir",
        &state_s,
        "--label",
        "pod=demo-pod",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    println!("  log-shipper {}", args.join(" "));
    let mut proc = Proc::spawn(bin, &args, &[]);
    proc.wait_for_line("Following.");
    sink.wait_records(3);
    std::fs::rename(&log, dir.join("app.log.1"))?;
    append(3, 5)?;
    println!("  app.log rotated by rename, 2 more lines written to the new app.log");
    sink.wait_records(5);
    let code = terminate(&mut proc);
    println!("  SIGTERM -> exited {code} (delivered, checkpointed)");
    ensure!(code == 0, "expected exit 0 after SIGTERM");
    append(5, 6)?;
    let mut proc = Proc::spawn(bin, &args, &[]);
    proc.wait_for_line("Following.");
    sink.wait_records(6);
    ensure!(terminate(&mut proc) == 0, "expected exit 0 after SIGTERM");
    let records = sink.received_records();
    let mut messages = Vec::new();
    for record in &records {
        let value: serde_json::Value = serde_json::from_slice(record)?;
        messages.push(value["message"].as_str().unwrap_or_default().to_owned());
    }
    if let Some(first) = records.first() {
        println!("  collector's first record: {}", String::from_utf8_lossy(first));
    }
    println!(
        "  restarted after one more line: the collector holds {} records in {} requests",
        records.len(),
        sink.stats().accepted
    );
    let expected: Vec<String> = (0..6).map(date).collect();
    ensure!(messages == expected, "expected every line once, in order: {messages:?}");
    println!("  every line arrived exactly once, in order, across the rotation and the restart");
    Ok(())
}

/// The init container: a database stand-in starts listening ~0.7 s after
/// wait-for starts; wait-for notices within milliseconds and execs the "app"
/// (same PID). Then the failure path: a dependency that never comes times
/// out with exit 124 and the app never runs.
fn init_container(bin: &Path) -> Result<()> {
    let port = ClosedPort::new();
    let target = format!("tcp://{}", port.addr());
    let opened = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let server = {
        let opened = std::sync::Arc::clone(&opened);
        std::thread::spawn(move || -> Result<()> {
            std::thread::sleep(Duration::from_millis(700));
            let listener = port.listen();
            *opened.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(Instant::now());
            // Accept wait-for's probe connection, then go away.
            let _ = listener.accept();
            Ok(())
        })
    };
    println!("  wait-for {target} -- sh -c 'echo app started as pid $$'   (port opens after ~0.7 s)");
    let started = Instant::now();
    let out = Command::new(bin)
        .args([
            target.as_str(),
            "--timeout",
            "30s",
            "--",
            "sh",
            "-c",
            "echo app started as pid $$",
        ])
        .stdin(Stdio::null())
        .output()?;
    let done = Instant::now();
    server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    ensure!(
        out.status.success(),
        "wait-for failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened_at = opened
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .context("port never opened")?;
    println!("  app: {}", String::from_utf8_lossy(&out.stdout).trim());
    println!(
        "  port opened {:?} after start; the app ran {:?} later (exit 0)",
        opened_at - started,
        done.saturating_duration_since(opened_at)
    );

    let closed = ClosedPort::new();
    let target = format!("tcp://{}", closed.addr());
    println!("  wait-for {target} --timeout 300ms -- echo SHOULD-NOT-RUN   (nothing ever listens)");
    let out = Command::new(bin)
        .args([target.as_str(), "--timeout", "300ms", "--", "echo", "SHOULD-NOT-RUN"])
        .stdin(Stdio::null())
        .output()?;
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("  exit {code}; app output: {:?}", stdout.trim());
    ensure!(
        code == 124 && !stdout.contains("SHOULD-NOT-RUN"),
        "expected exit 124 and no app run"
    );
    Ok(())
}

/// The classic ambassador pod: the app calls `http://127.0.0.1:PORT` and gets
/// the remote service's page. The "remote service" is a local HTTP server
/// known as `example.com` through a hosts file (the demo reaches no network),
/// so the Host header rewrite is visible in its answer.
fn ambassador(bin: &Path, work: &Path) -> Result<()> {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
    let upstream_port = upstream.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in upstream.incoming().flatten() {
            std::thread::spawn(move || serve_echo(stream));
        }
    });
    let hosts = work.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 example.com\n")?;
    let spec = format!("127.0.0.1:0=http://example.com:{upstream_port}");
    println!("  ambassador --reverse {spec} --hosts-file {}", hosts.display());
    let mut cmd = Command::new(bin);
    cmd.args(["--reverse", spec.as_str(), "--hosts-file"])
        .arg(&hosts)
        .args(["--admin-addr", "127.0.0.1:0", "--grace-period", "5s"]);
    let mut proc = Proc::spawn_command(cmd);
    let admin = proc.admin_addr();
    // The port the kernel picked for the listener, from its "Listening." line.
    let addr = proc.logged_addr("listener=reverse:127.0.0.1:0", "addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(admin, "/readyz").map(|(s, _)| s).unwrap_or(0) != 200 {
        ensure!(Instant::now() < deadline, "ambassador never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = http_get(addr, "/index.html")?;
    println!("  app: curl http://{addr}/index.html -> {status}");
    for line in body.lines() {
        println!("    {line}");
    }
    ensure!(
        status == 200 && body.contains("host: example.com"),
        "expected the upstream to see Host example.com"
    );
    let code = terminate(&mut proc);
    println!("  SIGTERM -> exited {code}");
    ensure!(code == 0, "expected exit 0 after SIGTERM");
    Ok(())
}

/// Answers one HTTP/1.1 request with the request line and Host header it saw.
fn serve_echo(stream: TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    let mut host = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if request_line.is_empty() {
            request_line = line.trim().to_owned();
        } else if line.trim().is_empty() {
            break;
        } else if let Some((_, v)) = line
            .split_once(':')
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        {
            host = v.trim().to_owned();
        }
    }
    let body = format!("remote service saw: {request_line}\nhost: {host}\n");
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The classic adapter pod: the app appends `date` lines to a shared log, the
/// adapter rewrites them into out.log; the log is rotated by rename midway,
/// and nothing is lost.
fn adapter(bin: &Path, work: &Path) -> Result<()> {
    let dir = work.join("adapter");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("app.log");
    let out = dir.join("out.log");
    std::fs::write(&log, "Thu Nov 26 23:08:26 UTC 2026\n")?;
    let (log_s, out_s) = (log.display().to_string(), out.display().to_string());
    let args = [
        "--follow",
        &log_s,
        "-e",
        "s/^/Date /",
        "--output",
        &out_s,
        "--admin-addr",
        "127.0.0.1:0",
    ];
    println!("  tail-rewrite {}", args.join(" "));
    let mut proc = Proc::spawn(bin, &args, &[]);
    // The tailer's first scan has opened app.log (a file renamed away before
    // that would not be followed: it no longer matches the path).
    proc.wait_for_line("Tailer started.");
    std::fs::rename(&log, dir.join("app.log.1"))?;
    std::fs::write(&log, "Thu Nov 26 23:08:28 UTC 2026\n")?;
    println!("  app.log rotated by rename (app.log -> app.log.1), new app.log written");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.lines().count() >= 2 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let code = terminate(&mut proc);
    for line in text.lines() {
        println!("  out.log: {line}");
    }
    ensure!(
        text == "Date Thu Nov 26 23:08:26 UTC 2026\nDate Thu Nov 26 23:08:28 UTC 2026\n",
        "unexpected out.log: {text:?}"
    );
    println!("  SIGTERM -> exited {code}; a restart resumes from the checkpoint next to out.log");
    ensure!(code == 0, "expected exit 0 after SIGTERM");
    Ok(())
}

fn heading(title: &str) {
    println!("\n== {title}");
}

/// Starts a long-running binary, shows its admin endpoints, stops it with
/// SIGTERM and shows the exit code.
fn lifecycle(bin: &Path, extra: &[&str]) -> Result<()> {
    let mut args = vec!["--admin-addr", "127.0.0.1:0", "--grace-period", "5s"];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn(bin, &args, &[]);
    let admin = proc.admin_addr();
    println!(
        "  started {} (pid {}), admin on http://{admin}",
        bin.display(),
        proc.pid()
    );
    for path in ["/livez", "/readyz"] {
        let (status, body) = http_get(admin, path)?;
        println!("  GET {path:<8} -> {status} {}", body.trim());
    }
    let (_, metrics) = http_get(admin, "/metrics")?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("podkit_build_info") || l.starts_with("process_resident"))
    {
        println!("  /metrics: {line}");
    }
    let start = Instant::now();
    let code = terminate(&mut proc);
    println!("  SIGTERM -> exited {code} after {:?}", start.elapsed());
    ensure!(code == 0, "expected exit 0 after SIGTERM");
    Ok(())
}

/// Sends SIGTERM and waits (at most 10 s) for the exit code.
fn terminate(proc: &mut Proc) -> i32 {
    proc.signal(libc::SIGTERM);
    proc.wait_exit(Duration::from_secs(10)).0.code().unwrap_or(-1)
}

/// A GET through the test kit's minimal client, as (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let response = podkit_testkit::http_get(addr, path)?;
    Ok((response.status, response.body))
}
