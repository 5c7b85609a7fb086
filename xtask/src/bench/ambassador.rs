//! Scenarios for the ambassador, each side by side with the proxies users
//! run as ambassadors today, all on loopback:
//!
//! - `amb-tcp`: TCP bulk (iperf3) through ambassador tcp mode, nginx
//!   stream, HAProxy (plain and with splice) and socat: CPU-s per GB.
//! - `amb-http-tcp`: HTTP keep-alive (wrk) through the same TCP proxies.
//! - `amb-http-tcp-close`: the same with `Connection: close` (a TCP
//!   connection, and an upstream connection, per request).
//! - `amb-reverse`: HTTP keep-alive (wrk) through ambassador reverse mode,
//!   nginx `proxy_pass` with an upstream keep-alive pool, HAProxy http mode.
//! - `amb-forward`: absolute-form requests (wrk) through ambassador
//!   http-forward, nginx (`proxy_pass http://$http_host`) and tinyproxy.
//! - `amb-connect`: a CONNECT tunnel carrying bulk data through ambassador
//!   http-forward and tinyproxy (nginx and HAProxy have no CONNECT).
//!
//! The HTTP scenarios also run the ambassador with `--workers 2` beside
//! nginx with 2 workers and HAProxy with 2 threads (the ratios the runner
//! prints compare the 1-worker ambassador; read the 2-worker rows side by
//! side). wrk keeps 50 connections open.
//!
//! The origin (nginx answering a fixed 200, or `iperf3 -s`, or an in-process
//! sink) is not measured; load generators' CPU is reported apart from
//! "other load".

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::{Contender, Env, Scenario, Server};

/// What one load run did: units of work, the load generator's own CPU
/// seconds, and the 99th-percentile latency when it measures one.
pub(super) type Load = (f64, f64, Option<Duration>);

/// Length of one measured load run.
const RUN: Duration = Duration::from_secs(4);

const ORIGIN_HTTP: u16 = 18910;
const ORIGIN_IPERF: u16 = 18911;
const ORIGIN_SINK: u16 = 18912;

const TOOLS: &[(&str, &str)] = &[
    ("nginx", "nginx-light"),
    ("haproxy", "haproxy"),
    ("socat", "socat"),
    ("tinyproxy", "tinyproxy"),
    ("wrk", "wrk"),
    ("iperf3", "iperf3"),
];

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "amb-tcp",
            about: "TCP bulk via iperf3 through a TCP proxy: ambassador vs nginx stream, HAProxy, socat",
            unit: "MB",
            tools: TOOLS,
            setup: setup_tcp_bulk,
        },
        Scenario {
            name: "amb-http-tcp",
            about: "HTTP keep-alive (wrk, 50 connections) through a TCP proxy",
            unit: "requests",
            tools: TOOLS,
            setup: setup_http_tcp,
        },
        Scenario {
            name: "amb-http-tcp-close",
            about: "HTTP with Connection: close (wrk, 50 connections) through a TCP proxy: ambassador vs nginx stream, HAProxy",
            unit: "requests",
            tools: TOOLS,
            setup: setup_http_tcp_close,
        },
        Scenario {
            name: "amb-reverse",
            about: "HTTP keep-alive (wrk, 50 connections) through a reverse proxy: ambassador vs nginx, HAProxy",
            unit: "requests",
            tools: TOOLS,
            setup: setup_reverse,
        },
        Scenario {
            name: "amb-forward",
            about: "absolute-form HTTP (wrk, 50 connections) through a forward proxy: ambassador vs nginx, HAProxy, tinyproxy",
            unit: "requests",
            tools: TOOLS,
            setup: setup_forward,
        },
        Scenario {
            name: "amb-connect",
            about: "bulk data through a CONNECT tunnel: ambassador vs tinyproxy",
            unit: "MB",
            tools: TOOLS,
            setup: setup_connect,
        },
    ]
}

fn ambassador(env: &Env, args: &[&str]) -> Command {
    ambassador_at(&env.bin("ambassador"), args)
}

/// Another ambassador binary to run side by side as "baseline" (an A/B
/// against, say, the main branch's build, interleaved in the same run):
/// `PODKIT_BENCH_BASELINE=/path/to/ambassador`.
fn baseline() -> Option<std::path::PathBuf> {
    std::env::var_os("PODKIT_BENCH_BASELINE").map(Into::into)
}

fn ambassador_at(bin: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--admin-addr",
        "127.0.0.1:0",
        "--log-level",
        "warn",
        "--drain-delay",
        "0s",
    ])
    .args(args);
    cmd
}

fn nginx(env: &Env, name: &str, body: &str) -> Result<Command> {
    nginx_workers(env, name, body, 1)
}

pub(super) fn nginx_workers(env: &Env, name: &str, body: &str, workers: usize) -> Result<Command> {
    let dir = env.work.join(name);
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("nginx.conf");
    let stream = std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    let load = if body.contains("stream {") && stream.exists() {
        format!("load_module {};\n", stream.display())
    } else {
        String::new()
    };
    std::fs::write(
        &conf,
        format!(
            "{load}daemon off; worker_processes {workers}; pid {d}/nginx.pid; error_log stderr error;\n\
             events {{ worker_connections 4096; }}\n{body}\n",
            d = dir.display()
        ),
    )?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c").arg(&conf).args(["-e", "stderr"]);
    Ok(cmd)
}

pub(super) fn http_block(env: &Env, servers: &str) -> String {
    format!(
        "http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; \
         uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests 1000000;\n{servers}\n}}",
        d = env.work.display()
    )
}

fn haproxy(env: &Env, name: &str, body: &str) -> Result<Command> {
    haproxy_threads(env, name, body, 1)
}

fn haproxy_threads(env: &Env, name: &str, body: &str, threads: usize) -> Result<Command> {
    let conf = env.work.join(format!("{name}.cfg"));
    std::fs::write(
        &conf,
        format!(
            "global\n  maxconn 4096\n  nbthread {threads}\ndefaults\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n{body}\n"
        ),
    )?;
    let mut cmd = Command::new("haproxy");
    cmd.arg("-f").arg(&conf).arg("-db");
    Ok(cmd)
}

/// The origin HTTP server every HTTP scenario proxies to: nginx answering a
/// fixed 200.
fn origin_http(env: &Env) -> Result<Arc<Server>> {
    let body = http_block(
        env,
        &format!(
            "server {{ listen 127.0.0.1:{ORIGIN_HTTP} backlog=4096; location / {{ return 200 \"hello from the origin\\n\"; }} }}"
        ),
    );
    let server = Server::spawn(nginx(env, "origin", &body)?)?;
    wait_port(ORIGIN_HTTP)?;
    Ok(Arc::new(server))
}

pub(super) fn wait_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nothing listens on 127.0.0.1:{port} after 10s")
}

/// A contender: a proxy started on first use and kept for every round,
/// measured while `load(port)` runs. `keep` holds the origin alive.
pub(super) fn proxy(
    name: &str,
    podkit: bool,
    cmd: Command,
    port: u16,
    keep: Arc<dyn std::any::Any>,
    load: fn(u16) -> Result<Load>,
) -> Contender {
    let mut cmd = Some(cmd);
    let mut server: Option<Server> = None;
    Contender {
        name: name.to_owned(),
        podkit,
        baseline: None,
        run: Box::new(move || {
            let _keep = &keep;
            if let (None, Some(cmd)) = (&server, cmd.take()) {
                server = Some(Server::spawn(cmd)?);
                wait_port(port)?;
                // One warm-up run: pools filled, pages touched.
                load(port)?;
            }
            let server = server.as_mut().expect("started above");
            server.measure_latency(|| load(port))
        }),
    }
}

fn children_cpu() -> f64 {
    crate::proc::children_cpu_seconds()
}

/// Runs a load generator to completion; returns its stdout and CPU seconds.
fn run_load(cmd: &mut Command) -> Result<(String, f64)> {
    let cpu0 = children_cpu();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), children_cpu() - cpu0))
}

fn iperf_load(port: u16) -> Result<Load> {
    let secs = RUN.as_secs().to_string();
    let mut total_cpu = 0.0;
    // The iperf3 server runs one test at a time and needs a moment after the
    // previous contender's test: retry while it says it is busy.
    for _ in 0..10 {
        let cpu0 = children_cpu();
        let out = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-t", &secs, "-J"])
            .output()
            .context("running iperf3")?;
        total_cpu += children_cpu() - cpu0;
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        // "sum_received": { ..., "bytes": N, ... }
        let Some(tail) = out.split("\"sum_received\"").nth(1) else {
            ensure!(
                out.contains("busy") || out.contains("error"),
                "iperf3 JSON without a result:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(500));
            continue;
        };
        let bytes: f64 = tail
            .split("\"bytes\":")
            .nth(1)
            .and_then(|s| s.split([',', '}']).next())
            .and_then(|s| s.trim().parse().ok())
            .context("iperf3 JSON without bytes")?;
        return Ok((bytes / 1e6, total_cpu, None));
    }
    anyhow::bail!("iperf3 through port {port} kept failing")
}

/// Connections wrk keeps open.
const CONNECTIONS: &str = "-c50";

fn wrk_load_with(port: u16, script: Option<&str>) -> Result<Load> {
    wrk_load_headers(port, script, &[])
}

fn wrk_load_headers(port: u16, script: Option<&str>, headers: &[&str]) -> Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", CONNECTIONS, "--latency", &format!("-d{}s", RUN.as_secs())]);
    if let Some(script) = script {
        cmd.args(["-s", script]);
    }
    for header in headers {
        cmd.args(["-H", header]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}/"));
    let (out, cpu) = run_load(&mut cmd)?;
    // "123456 requests in 4.00s, ..."
    let requests: f64 = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no request count in wrk output:\n{out}"))?;
    ensure!(
        !out.contains("Non-2xx"),
        "wrk saw non-2xx answers through port {port}:\n{out}"
    );
    let p99 = out
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(wrk_duration)
        .with_context(|| format!("no 99% latency in wrk output:\n{out}"))?;
    Ok((requests, cpu, Some(p99)))
}

/// A wrk duration (`812.00us`, `1.02ms`, `2.10s`).
fn wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    let secs = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

pub(super) fn wrk_load(port: u16) -> Result<Load> {
    wrk_load_with(port, None)
}

fn wrk_close_load(port: u16) -> Result<Load> {
    wrk_load_headers(port, None, &["Connection: close"])
}

fn wrk_forward_load(port: u16) -> Result<Load> {
    let script = std::env::temp_dir().join("podkit-bench-forward.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.path = \"http://127.0.0.1:{ORIGIN_HTTP}/\"\nwrk.headers[\"Host\"] = \"127.0.0.1:{ORIGIN_HTTP}\"\n"
        ),
    )?;
    wrk_load_with(port, script.to_str())
}

fn tcp_contenders(
    env: &Env,
    keep: Arc<dyn std::any::Any>,
    upstream: u16,
    load: fn(u16) -> Result<Load>,
    extras: bool,
) -> Result<Vec<Contender>> {
    let up = format!("127.0.0.1:{upstream}");
    let mut out = vec![
        proxy(
            "podkit ambassador (tcp)",
            true,
            ambassador(env, &["--tcp", &format!("127.0.0.1:18920={up}")]),
            18920,
            Arc::clone(&keep),
            load,
        ),
        proxy(
            "podkit ambassador (tcp, --workers 2)",
            false,
            ambassador(env, &["--workers", "2", "--tcp", &format!("127.0.0.1:18925={up}")]),
            18925,
            Arc::clone(&keep),
            load,
        ),
    ];
    if let Some(bin) = baseline() {
        out.push(proxy(
            "baseline ambassador (tcp)",
            false,
            ambassador_at(&bin, &["--tcp", &format!("127.0.0.1:18926={up}")]),
            18926,
            Arc::clone(&keep),
            load,
        ));
    }
    if std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists() {
        for (workers, port) in [(1, 18921), (2, 18927)] {
            out.push(proxy(
                &if workers == 1 {
                    "nginx stream".to_owned()
                } else {
                    format!("nginx stream ({workers} workers)")
                },
                false,
                nginx_workers(
                    env,
                    &format!("stream{workers}"),
                    &format!("stream {{ server {{ listen 127.0.0.1:{port} backlog=4096; proxy_pass {up}; }} }}"),
                    workers,
                )?,
                port,
                Arc::clone(&keep),
                load,
            ));
        }
    }
    for (threads, port) in [(1, 18922), (2, 18928)] {
        out.push(proxy(
            &if threads == 1 {
                "HAProxy tcp".to_owned()
            } else {
                format!("HAProxy tcp ({threads} threads)")
            },
            false,
            haproxy_threads(
                env,
                &format!("haproxy-tcp{threads}"),
                &format!("listen l\n  mode tcp\n  bind 127.0.0.1:{port}\n  server s {up}\n"),
                threads,
            )?,
            port,
            Arc::clone(&keep),
            load,
        ));
    }
    if !extras {
        return Ok(out);
    }
    out.push(proxy(
        "HAProxy tcp + splice",
        false,
        haproxy(
            env,
            "haproxy-splice",
            &format!("listen l\n  mode tcp\n  option splice-auto\n  bind 127.0.0.1:18923\n  server s {up}\n"),
        )?,
        18923,
        Arc::clone(&keep),
        load,
    ));
    let mut socat = Command::new("socat");
    socat.args([
        "TCP-LISTEN:18924,bind=127.0.0.1,reuseaddr,fork,backlog=4096".to_owned(),
        format!("TCP:{up}"),
    ]);
    out.push(proxy("socat (fork)", false, socat, 18924, keep, load));
    Ok(out)
}

fn setup_tcp_bulk(env: &Env) -> Result<Vec<Contender>> {
    let mut iperf = Command::new("iperf3");
    iperf.args(["-s", "-B", "127.0.0.1", "-p", &ORIGIN_IPERF.to_string()]);
    let origin: Arc<dyn std::any::Any> = Arc::new(Server::spawn(iperf)?);
    wait_port(ORIGIN_IPERF)?;
    tcp_contenders(env, origin, ORIGIN_IPERF, iperf_load, true)
}

fn setup_http_tcp(env: &Env) -> Result<Vec<Contender>> {
    let origin: Arc<dyn std::any::Any> = origin_http(env)?;
    tcp_contenders(env, origin, ORIGIN_HTTP, wrk_load, true)
}

fn setup_http_tcp_close(env: &Env) -> Result<Vec<Contender>> {
    let origin: Arc<dyn std::any::Any> = origin_http(env)?;
    tcp_contenders(env, origin, ORIGIN_HTTP, wrk_close_load, false)
}

fn setup_reverse(env: &Env) -> Result<Vec<Contender>> {
    let origin: Arc<dyn std::any::Any> = origin_http(env)?;
    let up = format!("127.0.0.1:{ORIGIN_HTTP}");
    let nginx_body = |port: u16| {
        http_block(
            env,
            &format!(
                "upstream o {{ server {up}; keepalive 64; }}\n\
                 server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host example.com; }} }}"
            ),
        )
    };
    let haproxy_body =
        |port: u16| format!("listen l\n  mode http\n  bind 127.0.0.1:{port}\n  http-reuse always\n  server s {up}\n");
    Ok(vec![
        proxy(
            "podkit ambassador (reverse)",
            true,
            ambassador(env, &["--reverse", &format!("127.0.0.1:18930=http://{up}")]),
            18930,
            Arc::clone(&origin),
            wrk_load,
        ),
        proxy(
            "podkit ambassador (reverse, --workers 2)",
            false,
            ambassador(
                env,
                &["--workers", "2", "--reverse", &format!("127.0.0.1:18933=http://{up}")],
            ),
            18933,
            Arc::clone(&origin),
            wrk_load,
        ),
        proxy(
            "nginx proxy_pass (keepalive pool)",
            false,
            nginx(env, "reverse", &nginx_body(18931))?,
            18931,
            Arc::clone(&origin),
            wrk_load,
        ),
        proxy(
            "nginx proxy_pass (keepalive pool, 2 workers)",
            false,
            nginx_workers(env, "reverse2", &nginx_body(18934), 2)?,
            18934,
            Arc::clone(&origin),
            wrk_load,
        ),
        proxy(
            "HAProxy http",
            false,
            haproxy(env, "haproxy-http", &haproxy_body(18932))?,
            18932,
            Arc::clone(&origin),
            wrk_load,
        ),
        proxy(
            "HAProxy http (2 threads)",
            false,
            haproxy_threads(env, "haproxy-http2", &haproxy_body(18935), 2)?,
            18935,
            origin,
            wrk_load,
        ),
    ])
}

fn setup_forward(env: &Env) -> Result<Vec<Contender>> {
    let origin: Arc<dyn std::any::Any> = origin_http(env)?;
    let nginx_body = |port: u16| {
        http_block(
            env,
            &format!(
                "server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://$http_host$request_uri; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
            ),
        )
    };
    // HAProxy has no forward proxy mode: this one sends the absolute-form
    // requests to the one origin it knows (less work than a forward proxy,
    // which must resolve and pick each destination).
    let haproxy_body = |port: u16| {
        format!(
            "listen l\n  mode http\n  bind 127.0.0.1:{port}\n  http-reuse always\n  server s 127.0.0.1:{ORIGIN_HTTP}\n"
        )
    };
    let tiny = env.work.join("tinyproxy-forward.conf");
    std::fs::write(
        &tiny,
        "Port 18942\nListen 127.0.0.1\nTimeout 600\nMaxClients 256\nLogLevel Critical\nDisableViaHeader Yes\n",
    )?;
    let mut tinyproxy = Command::new("tinyproxy");
    tinyproxy.arg("-d").arg("-c").arg(&tiny);
    Ok(vec![
        proxy(
            "podkit ambassador (http-forward)",
            true,
            ambassador(env, &["--http-forward", "127.0.0.1:18940"]),
            18940,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy(
            "podkit ambassador (http-forward, --workers 2)",
            false,
            ambassador(env, &["--workers", "2", "--http-forward", "127.0.0.1:18943"]),
            18943,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy(
            "nginx proxy_pass $http_host",
            false,
            nginx(env, "forward", &nginx_body(18941))?,
            18941,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy(
            "nginx proxy_pass $http_host (2 workers)",
            false,
            nginx_workers(env, "forward2", &nginx_body(18944), 2)?,
            18944,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy(
            "HAProxy http (fixed server)",
            false,
            haproxy(env, "haproxy-forward", &haproxy_body(18945))?,
            18945,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy(
            "HAProxy http (fixed server, 2 threads)",
            false,
            haproxy_threads(env, "haproxy-forward2", &haproxy_body(18946), 2)?,
            18946,
            Arc::clone(&origin),
            wrk_forward_load,
        ),
        proxy("tinyproxy", false, tinyproxy, 18942, origin, wrk_forward_load),
    ])
}

/// A sink that reads and discards everything sent to it.
struct Sink;

impl Sink {
    fn start() -> Result<Arc<Self>> {
        let listener = TcpListener::bind(("127.0.0.1", ORIGIN_SINK)).context("bind the sink")?;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = vec![0u8; 256 << 10];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        Ok(Arc::new(Self))
    }
}

fn self_cpu() -> f64 {
    // utime + stime of this process (the load generator's threads).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            Some((t(11)? + t(12)?) / crate::proc::USER_HZ)
        })
        .unwrap_or(0.0)
}

fn connect_load(port: u16) -> Result<Load> {
    let cpu0 = self_cpu();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    write!(
        s,
        "CONNECT 127.0.0.1:{ORIGIN_SINK} HTTP/1.1\r\nHost: 127.0.0.1:{ORIGIN_SINK}\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(s.read(&mut byte)? == 1, "proxy closed during CONNECT");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    ensure!(text.contains(" 200"), "CONNECT refused: {text}");
    let chunk = vec![0x5au8; 256 << 10];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < RUN {
        s.write_all(&chunk)?;
        sent += chunk.len() as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    Ok((sent as f64 / 1e6, self_cpu() - cpu0, None))
}

fn setup_connect(env: &Env) -> Result<Vec<Contender>> {
    let sink: Arc<dyn std::any::Any> = Sink::start()?;
    let tiny = env.work.join("tinyproxy-connect.conf");
    std::fs::write(
        &tiny,
        format!(
            "Port 18951\nListen 127.0.0.1\nTimeout 600\nMaxClients 256\nLogLevel Critical\nConnectPort {ORIGIN_SINK}\n"
        ),
    )?;
    let mut tinyproxy = Command::new("tinyproxy");
    tinyproxy.arg("-d").arg("-c").arg(&tiny);
    let mut out = vec![proxy(
        "podkit ambassador (CONNECT)",
        true,
        ambassador(env, &["--http-forward", "127.0.0.1:18950"]),
        18950,
        Arc::clone(&sink),
        connect_load,
    )];
    if let Some(bin) = baseline() {
        out.push(proxy(
            "baseline ambassador (CONNECT)",
            false,
            ambassador_at(&bin, &["--http-forward", "127.0.0.1:18952"]),
            18952,
            Arc::clone(&sink),
            connect_load,
        ));
    }
    out.push(proxy(
        "tinyproxy (CONNECT)",
        false,
        tinyproxy,
        18951,
        sink,
        connect_load,
    ));
    Ok(out)
}

/// Keeps one ambassador contender honest: the idle scenario needs a
/// listener to start it (an ambassador without one is a config error).
pub const IDLE_ARGS: &[&str] = &["--tcp", "127.0.0.1:18905=127.0.0.1:18902"];
