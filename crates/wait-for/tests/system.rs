//! The real `wait-for` binary against real servers from Debian packages
//! (PostgreSQL, Redis, MariaDB, dnsmasq, openssl's s_server), as PID 1 of a
//! PID namespace (`unshare`), and over IPv6 loopback.
//!
//! A `harness = false` test binary run by `podkit_testkit::runner`: a test
//! whose server or tool is not installed prints `SKIPPED: reason` (on stdout
//! with the test results and on stderr), so `cargo test` stays green on a
//! laptop and the gap is visible.
//! Every server is started by the test on loopback, on a free port, with its
//! data in a temporary directory, and killed when the test ends.

#![allow(clippy::print_stdout, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use podkit_testkit::find_program;
use podkit_testkit::runner::{Outcome, Runner, skip};

type Test = (&'static str, fn() -> Outcome);

/// A loopback port for a server that binds it itself (postgres, redis...):
/// bound to port 0, read back and released, so another process could take it
/// meanwhile. Acceptable here only because these tests run one at a time;
/// a port a test opens itself is reserved with [`ClosedPort`] instead.
fn port_for_a_server() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn main() {
    let tests: &[Test] = &[
        ("postgres_accepting_connections_per_pg_isready", postgres),
        ("redis_ping_with_auth", redis),
        ("mariadb_handshake", mariadb),
        ("dns_name_that_starts_resolving_mid_wait", dns_mid_wait),
        ("sigterm_as_pid_1_exits_143_and_exec_keeps_pid_1", pid1),
        ("ipv6_loopback_literals", ipv6),
        ("https_with_a_private_ca_and_insecure", https),
    ];
    let mut runner = Runner::from_args();
    for (name, test) in tests {
        runner.run(name, test);
    }
    runner.finish();
}

/// A server process, killed and reaped when the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &mut Command) -> Server {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Server(child)
}

/// Waits (in the test) until wait-for has reported `reason` for a target that
/// is not up yet, so the server is started while wait-for is waiting.
fn waiting_on(args: &[&str], reason: &str) -> Proc {
    let mut all = vec!["--progress-interval", "100ms"];
    all.extend_from_slice(args);
    let mut proc = spawn(&all, &[]);
    let line = proc.wait_for_line("Still waiting.");
    assert!(line.contains(reason), "{line}");
    proc
}

fn finish_ok(proc: Proc) -> String {
    let (status, _, err) = proc.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    err
}

fn postgres() -> Outcome {
    let dirs: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (Some(initdb), Some(server)) = (find_program("initdb", &dirs), find_program("postgres", &dirs)) else {
        return skip("PostgreSQL is not installed (Debian: postgresql)");
    };
    let tmp = tempfile::tempdir().unwrap();
    // PostgreSQL refuses to run as root: run it as nobody then.
    let as_server_user = |program: &Path| -> Command {
        if podkit_testkit::is_root() {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(program);
            cmd
        } else {
            Command::new(program)
        }
    };
    if podkit_testkit::is_root() {
        if find_program("setpriv", &[]).is_none() {
            return skip("running as root and setpriv (util-linux) is missing");
        }
        std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).unwrap();
    }
    let data = tmp.path().join("data");
    let status = as_server_user(&initdb)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "initdb failed");
    let port = port_for_a_server().to_string();
    let target = format!("postgres://127.0.0.1:{port}");
    // Wrong user and database: the server is up and says no, which
    // pg_isready counts as accepting connections.
    let stranger = format!("postgres://nobody:pw@127.0.0.1:{port}/nodb");
    let proc = waiting_on(&[&target, &stranger], "connection refused");
    let _server = start(
        as_server_user(&server)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", tmp.path().display())),
    );
    let err = finish_ok(proc);
    assert_eq!(err.matches("Ready.").count(), 2, "{err}");
    Ok(())
}

fn redis() -> Outcome {
    let Some(server) = find_program("redis-server", &[]) else {
        return skip("redis-server is not installed (Debian: redis-server)");
    };
    let tmp = tempfile::tempdir().unwrap();
    let port = port_for_a_server().to_string();
    let target = format!("redis://:s3cret@127.0.0.1:{port}");
    let proc = waiting_on(&[&target], "connection refused");
    let _server = start(
        Command::new(server)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--requirepass", "s3cret", "--dir"])
            .arg(tmp.path()),
    );
    let err = finish_ok(proc);
    assert!(!err.contains("s3cret"), "passwords are never logged: {err}");
    let (status, _, err) = spawn(&["-t", "300ms", &format!("redis://127.0.0.1:{port}")], &[]).finish();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("authentication required"), "{err}");
    let (status, _, err) = spawn(&["-t", "300ms", &format!("redis://:nope@127.0.0.1:{port}")], &[]).finish();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("AUTH failed"), "{err}");
    Ok(())
}

fn mariadb() -> Outcome {
    let (Some(install), Some(server)) = (
        find_program("mariadb-install-db", &[]),
        find_program("mariadbd", &["/usr/sbin"]).or_else(|| find_program("mysqld", &["/usr/sbin"])),
    ) else {
        return skip("MariaDB is not installed (Debian: mariadb-server)");
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let user = if podkit_testkit::is_root() {
        "--user=root"
    } else {
        "--no-defaults"
    };
    let status = Command::new(install)
        .args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            user,
        ])
        .arg(format!("--datadir={}", data.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mariadb-install-db failed");
    let port = port_for_a_server().to_string();
    let target = format!("mysql://127.0.0.1:{port}");
    let proc = waiting_on(&[&target], "connection refused");
    let _server = start(
        Command::new(server)
            .args(["--no-defaults", user, "--bind-address=127.0.0.1", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=8M", &format!("--port={port}")])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", tmp.path().join("sock").display()))
            .arg(format!("--pid-file={}", tmp.path().join("pid").display())),
    );
    finish_ok(proc);
    Ok(())
}

fn dns_mid_wait() -> Outcome {
    let Some(dnsmasq) = find_program("dnsmasq", &["/usr/sbin"]) else {
        return skip("dnsmasq is not installed (Debian: dnsmasq-base)");
    };
    let hosts = tempfile::tempdir().unwrap();
    let dns_port = port_for_a_server().to_string();
    let mut cmd = Command::new(dnsmasq);
    cmd.args(["--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", "--local=/test/", "--port", &dns_port])
        .arg(format!("--hostsdir={}", hosts.path().display()))
        .arg("--pid-file=");
    if podkit_testkit::is_root() {
        cmd.arg("--user=root");
    }
    let _server = start(&mut cmd);
    let (_listener, addr) = listen();
    let server = format!("127.0.0.1:{dns_port}");
    let dns = "dns://late.test?type=A&expect=127.0.0.1";
    let tcp = format!("tcp://late.test:{}", addr.port());
    // Until dnsmasq answers, the reason is a timeout or refusal; wait for the
    // NXDOMAIN that a running server gives for a name it does not know yet.
    let mut proc = spawn(
        &["--progress-interval", "100ms", "--dns-server", &server, dns, &tcp],
        &[],
    );
    proc.wait_for_line("NXDOMAIN");
    std::fs::write(hosts.path().join("late"), "127.0.0.1 late.test\n").unwrap();
    let err = finish_ok(proc);
    assert_eq!(err.matches("Ready.").count(), 2, "{err}");
    Ok(())
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--map-root-user", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pid1() -> Outcome {
    if !unshare_works() {
        return skip("`unshare --pid --fork --map-root-user` is not available here");
    }
    // Exec keeps the PID: inside its own PID namespace wait-for is PID 1, and
    // so is the command it becomes.
    let (_listener, addr) = listen();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--map-root-user", BIN, "-q", &addr.to_string()])
        .args(["--", "sh", "-c", "echo $$"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

    // SIGTERM to PID 1 is dropped by the kernel unless it has a handler.
    let closed_port = ClosedPort::new();
    let closed = closed_port.addr().to_string();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--map-root-user",
        BIN,
        &closed,
        "--",
        "touch",
        "/nonexistent/ran",
    ]);
    let mut proc = Proc::spawn_command(cmd);
    proc.wait_for_line("Starting.");
    let children = format!("/proc/{0}/task/{0}/children", proc.pid());
    let inner: u32 = std::fs::read_to_string(&children)
        .unwrap()
        .split_whitespace()
        .next()
        .expect("unshare has forked wait-for")
        .parse()
        .unwrap();
    let sent = Instant::now();
    podkit_testkit::signal(inner, libc::SIGTERM);
    let (status, _) = proc.wait_exit(PATIENCE);
    let took = sent.elapsed();
    println!("    (PID 1 exited {took:?} after SIGTERM)");
    // unshare reports its child's death by a signal by dying of it; a
    // handled SIGTERM shows as exit status 143.
    assert_eq!(status.code(), Some(143), "{status:?}: {}", proc.stderr());
    assert!(took < Duration::from_secs(5), "{took:?}");
    Ok(())
}

fn ipv6() -> Outcome {
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        return skip("no IPv6 loopback (::1) here");
    };
    let port = listener.local_addr().unwrap().port();
    let host = format!("[::1]:{port}");
    serve_http(listener, move |_, req| {
        if req.header("host") == Some(host.as_str()) {
            response(200, &[], "ok")
        } else {
            response(400, &[], "bad Host header")
        }
    });
    let (status, _, err) = spawn(
        &[
            &format!("[::1]:{port}"),
            &format!("tcp://[::1]:{port}"),
            &format!("http://[::1]:{port}/healthz"),
        ],
        &[],
    )
    .finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err.matches("Ready.").count(), 3, "{err}");
    Ok(())
}

fn https() -> Outcome {
    let Some(openssl) = find_program("openssl", &[]) else {
        return skip("openssl is not installed");
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let status = Command::new(&openssl)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=test CA",
            "-days",
            "1",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"],
    ]
    .concat());
    std::fs::write(dir.path().join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    let port = port_for_a_server().to_string();
    let _server = start(
        Command::new(&openssl)
            .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", "leaf.pem", "-key", "leaf.key"])
            .current_dir(dir.path()),
    );
    let url = format!("https://localhost:{port}/");
    let ca = dir.path().join("ca.pem");
    let (status, _, err) = spawn(&["--tls-ca-file", ca.to_str().unwrap(), &url], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    let (status, _, err) = spawn(&["-t", "500ms", &url], &[]).finish();
    assert_eq!(status.code(), Some(124), "public roots do not trust the test CA: {err}");
    // The reason in words (podkit-tls's), never rustls's variant name.
    assert!(
        err.contains("TLS") && err.contains("not signed by a CA this client trusts"),
        "{err}"
    );
    assert!(!err.contains("UnknownIssuer"), "{err}");
    let (status, _, err) = spawn(&["--tls-insecure", &url], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    Ok(())
}
