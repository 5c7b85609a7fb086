//! Serve mode, checked on the real `log-shipper` binary: the sidecar pod's nginx
//! cases (index, HEAD, ranges, conditional requests, content types, error
//! statuses), listings, `?tail=N`, `?follow=1` across rotation and
//! truncation, confinement (traversal, symbolic and hard links, dotfiles),
//! limits (header size, slowloris, connections) and shutdown.
//!
//! Every wait is on an event: the `Serving.` line, an HTTP answer, bytes
//! received on a stream, the server closing a connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use podkit_testkit::{PATIENCE, Proc, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_log-shipper");

/// A running `log-shipper --serve` over a temporary directory holding
/// `root/` (served) and `outside/` (never to be reached).
struct Served {
    proc: Proc,
    addr: SocketAddr,
    /// The admin server (metrics).
    admin: SocketAddr,
    /// The `Serving.` line, which names the resolver in use.
    serving: String,
    dir: tempfile::TempDir,
}

impl Served {
    fn start(setup: impl FnOnce(&Path, &Path), extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "SECRET\n").unwrap();
        setup(&root, &outside);
        let root_arg = root.to_str().unwrap().to_owned();
        let mut args = vec![
            "--admin-addr",
            "127.0.0.1:0",
            "--grace-period",
            "10s",
            "--serve",
            "127.0.0.1:0",
            "--serve-root",
            &root_arg,
        ];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(BIN, &args, &[]);
        let admin = proc.admin_addr();
        let line = proc.wait_for_line("Serving.");
        let addr = proc.logged_addr("Serving.", "addr");
        Self {
            proc,
            addr,
            admin,
            serving: line,
            dir,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        exchange(self.addr, raw.as_bytes())
    }

    /// Opens a follow stream (or any streamed GET) and reads its head.
    fn stream(&self, path: &str) -> Stream {
        let stream = connect(self.addr);
        let mut s = Stream {
            reader: BufReader::new(stream),
            body: Vec::new(),
            done: false,
        };
        write!(
            s.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut s.reader);
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.header("transfer-encoding"), Some("chunked"), "{head:?}");
        s
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Resp {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Resp {
        status,
        headers,
        body: Vec::new(),
    }
}

/// Sends a raw request and reads the answer to the end (the request says
/// `Connection: close`), decoding a chunked body.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut stream = connect(addr);
    stream.write_all(raw).unwrap();
    let mut reader = BufReader::new(stream);
    let mut resp = read_head(&mut reader);
    if resp.header("transfer-encoding") == Some("chunked") {
        let mut s = Stream {
            reader,
            body: Vec::new(),
            done: false,
        };
        while !s.done {
            s.read_chunk().unwrap();
        }
        resp.body = s.body;
    } else {
        reader.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

/// A chunked body read as it arrives.
struct Stream {
    reader: BufReader<TcpStream>,
    body: Vec<u8>,
    /// The terminating chunk was received.
    done: bool,
}

impl Stream {
    fn read_chunk(&mut self) -> std::io::Result<()> {
        let mut size = String::new();
        if self.reader.read_line(&mut size)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed mid-body",
            ));
        }
        let size = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
        if size == 0 {
            let mut end = String::new();
            self.reader.read_line(&mut end)?;
            self.done = true;
            return Ok(());
        }
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        self.body.extend_from_slice(&chunk[..size]);
        Ok(())
    }

    /// Reads until the body received so far contains `needle`.
    fn until(&mut self, needle: &str) {
        while !String::from_utf8_lossy(&self.body).contains(needle) {
            assert!(!self.done, "stream ended before {needle:?}; got {:?}", self.text());
            self.read_chunk()
                .unwrap_or_else(|e| panic!("reading the stream for {needle:?}: {e}; got {:?}", self.text()));
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn sidecar_index(root: &Path, _: &Path) {
    std::fs::write(
        root.join("index.html"),
        "Sat Dec  5 23:00:01 UTC 2026\nSat Dec  5 23:00:06 UTC 2026\n",
    )
    .unwrap();
}

#[test]
fn the_sidecar_index_is_served_at_the_root_and_head_matches_get() {
    let s = Served::start(sidecar_index, &[]);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "Sat Dec  5 23:00:01 UTC 2026\nSat Dec  5 23:00:06 UTC 2026\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("58"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(
        r.header("date").is_some() && r.header("last-modified").is_some(),
        "{r:?}"
    );
    assert_eq!(s.get("/index.html").body, r.body);

    let h = s.request("HEAD", "/", &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty(), "HEAD has no body: {h:?}");
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
    ] {
        assert_eq!(h.header(name), r.header(name), "{name}");
    }

    let post = s.request("POST", "/", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(s.get("/nope.html").status, 404);
}

#[test]
fn ranges_answer_206_and_416_like_nginx() {
    let s = Served::start(|root, _| std::fs::write(root.join("a.txt"), "0123456789").unwrap(), &[]);
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=2-5")]);
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=7-")]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=-3")]);
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
    assert_eq!(r.header("content-range"), Some("bytes 7-9/10"));
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=10-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=0-1,4-5")]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "0123456789"),
        "several ranges: the whole file"
    );
    let r = s.request("GET", "/a.txt", &[("Range", "bytes=2-5"), ("If-Range", "\"stale-1\"")]);
    assert_eq!(r.status, 200, "If-Range that does not match: the whole file");
}

#[test]
fn conditional_requests_answer_304() {
    let s = Served::start(sidecar_index, &[]);
    let r = s.get("/");
    let etag = r.header("etag").unwrap().to_owned();
    let meta = std::fs::metadata(s.root().join("index.html")).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(etag, format!("\"{mtime:x}-{:x}\"", meta.len()), "nginx's ETag format");
    let last_modified = r.header("last-modified").unwrap().to_owned();

    let c = s.request("GET", "/", &[("If-None-Match", &etag)]);
    assert_eq!(c.status, 304, "{c:?}");
    assert!(c.body.is_empty());
    assert_eq!(c.header("etag"), Some(etag.as_str()));
    let c = s.request("GET", "/", &[("If-Modified-Since", &last_modified)]);
    assert_eq!(c.status, 304);
    let c = s.request("GET", "/", &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:01 GMT")]);
    assert_eq!(c.status, 200);
    let c = s.request(
        "GET",
        "/",
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &last_modified)],
    );
    assert_eq!(c.status, 200, "If-None-Match wins over If-Modified-Since");
}

#[test]
fn content_types_by_extension() {
    let s = Served::start(
        |root, _| {
            for name in ["app.log", "app.log.1", "data.json", "logo.png", "style.css", "blob"] {
                std::fs::write(root.join(name), "x").unwrap();
            }
        },
        &[],
    );
    for (path, want) in [
        ("/app.log", "text/plain; charset=utf-8"),
        ("/app.log.1", "text/plain; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/logo.png", "image/png"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/blob", "application/octet-stream"),
    ] {
        assert_eq!(s.get(path).header("content-type"), Some(want), "{path}");
    }
}

#[test]
fn directories_are_listed_for_browsers_and_curl() {
    let s = Served::start(
        |root, _| {
            std::fs::create_dir(root.join("logs")).unwrap();
            std::fs::write(root.join("logs/app.log"), "hello\n").unwrap();
            std::fs::write(root.join("logs/b <&>.log"), "").unwrap();
            std::fs::create_dir(root.join("logs/old")).unwrap();
            std::fs::write(root.join("logs/.hidden"), "").unwrap();
        },
        &[],
    );
    let r = s.get("/logs");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/logs/"));
    assert_eq!(s.get("/logs?tail=1").header("location"), Some("/logs/?tail=1"));
    assert_eq!(s.get("//logs").header("location"), Some("/logs/"), "never //host/");

    let text = s.get("/logs/");
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(text.text(), "old/\napp.log\nb <&>.log\n");

    let html = s.request("GET", "/logs/", &[("Accept", "text/html,application/xhtml+xml")]);
    assert_eq!(html.header("content-type"), Some("text/html; charset=utf-8"));
    let page = html.text();
    assert!(
        page.contains("<a href=\"app.log\">app.log</a></td><td class=\"n\">6</td>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"b%20%3C%26%3E.log\">b &lt;&amp;&gt;.log</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"old/\">old/</a>") && page.contains("GMT"),
        "{page}"
    );
    assert!(!page.contains("hidden"), "{page}");

    // The root has no index.html, so it is listed too.
    assert_eq!(s.get("/").text(), "logs/\n");
}

#[test]
fn tail_gives_the_last_lines() {
    let s = Served::start(
        |root, _| {
            let lines: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
            std::fs::write(root.join("app.log"), lines).unwrap();
        },
        &["--serve-max-tail-lines", "500"],
    );
    let r = s.get("/app.log?tail=3");
    assert_eq!((r.status, r.text().as_str()), (200, "line 998\nline 999\nline 1000\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(s.get("/app.log?tail=0").text(), "");
    assert_eq!(s.get("/app.log?tail=5000").text().lines().count(), 500, "clamped");
    assert_eq!(s.get("/app.log?tail=many").status, 400);
}

#[test]
fn follow_streams_a_file_across_rename_rotation_and_truncation() {
    let s = Served::start(|root, _| std::fs::write(root.join("app.log"), "one\n").unwrap(), &[]);
    let log = s.root().join("app.log");
    let mut stream = s.stream("/app.log?follow=1");
    stream.until("one\n");
    append(&log, "two\n");
    stream.until("two\n");

    // Rotation by rename: what the writer still put in the old file before
    // creating the new one is sent, then the stream goes on with the new file.
    std::fs::rename(&log, s.root().join("app.log.1")).unwrap();
    append(&s.root().join("app.log.1"), "late\n");
    append(&log, "three\n");
    stream.until("three\n");
    append(&log, "four\n");
    stream.until("four\n");

    // Truncation (copytruncate): from the start of the file again.
    std::fs::write(&log, "five\n").unwrap();
    stream.until("five\n");
    assert_eq!(
        stream.text(),
        "one\ntwo\nlate\nthree\nfour\nfive\n",
        "nothing lost or repeated"
    );
}

#[test]
fn tail_and_follow_together_start_n_lines_from_the_end() {
    let s = Served::start(
        |root, _| std::fs::write(root.join("index.html"), "a\nb\nc\nd\n").unwrap(),
        &[],
    );
    let mut stream = s.stream("/?tail=2&follow=1");
    stream.until("c\nd\n");
    append(&s.root().join("index.html"), "e\n");
    stream.until("e\n");
    assert_eq!(stream.text(), "c\nd\ne\n");
}

#[test]
fn sigterm_ends_follow_streams_and_exits_0() {
    let mut s = Served::start(sidecar_index, &[]);
    let mut stream = s.stream("/?follow=1");
    stream.until("23:00:06");
    s.proc.signal(libc::SIGTERM);
    while !stream.done {
        stream
            .read_chunk()
            .expect("the stream ends with its last chunk, not a reset");
    }
    let (status, _) = s.proc.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", s.proc.stderr());
}

#[test]
fn traversal_is_refused() {
    let s = Served::start(sidecar_index, &[]);
    for path in [
        "/../etc/passwd",
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/..%2foutside/secret.txt",
        "/%2fetc/passwd",
        "/index.html%00.txt",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(!r.text().contains("SECRET") && !r.text().contains("root:"), "{path}");
    }
}

#[test]
fn symbolic_links_that_leave_the_root_are_refused() {
    let s = Served::start(
        |root, outside| {
            std::fs::write(root.join("a.txt"), "inside\n").unwrap();
            std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
            std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("abs.txt")).unwrap();
            std::os::unix::fs::symlink("../outside/secret.txt", root.join("rel.txt")).unwrap();
            std::os::unix::fs::symlink("../outside", root.join("out")).unwrap();
            std::os::unix::fs::symlink("a.txt", root.join("inside.txt")).unwrap();
        },
        &[],
    );
    for path in ["/etc/passwd", "/abs.txt", "/rel.txt", "/out/secret.txt", "/etc/"] {
        let r = s.get(path);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert!(!r.text().contains("SECRET") && !r.text().contains("root:"), "{path}");
    }
    let listing = s.get("/").text();
    assert!(!listing.contains("etc") && !listing.contains("abs.txt"), "{listing}");
    // A link that stays inside is followed where openat2 resolves beneath
    // the root; without openat2 every link is refused.
    let inside = s.get("/inside.txt");
    if s.serving.contains("openat2-beneath") {
        assert_eq!((inside.status, inside.text().as_str()), (200, "inside\n"), "{inside:?}");
        assert_eq!(listing, "a.txt\ninside.txt\n");
    } else {
        assert_eq!(inside.status, 403, "{inside:?}");
    }
}

#[test]
fn hard_links_are_refused_unless_allowed() {
    let setup = |root: &Path, outside: &Path| {
        std::fs::hard_link(outside.join("secret.txt"), root.join("linked.txt")).unwrap();
        std::fs::write(root.join("plain.txt"), "plain\n").unwrap();
    };
    let s = Served::start(setup, &[]);
    assert_eq!(s.get("/linked.txt").status, 403);
    assert_eq!(s.get("/plain.txt").status, 200);
    assert_eq!(s.get("/").text(), "plain.txt\n", "not listed either");
    let s = Served::start(setup, &["--serve-allow-hard-links"]);
    assert_eq!(s.get("/linked.txt").text(), "SECRET\n");
}

#[test]
fn dotfiles_are_hidden_unless_asked() {
    let setup = |root: &Path, _: &Path| {
        std::fs::write(root.join(".env"), "TOKEN=x\n").unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
        std::fs::write(root.join("app.log"), "x\n").unwrap();
    };
    let s = Served::start(setup, &[]);
    for path in ["/.env", "/.git/config", "/%2eenv", "/.git/"] {
        assert_eq!(s.get(path).status, 403, "{path}");
    }
    assert_eq!(s.get("/").text(), "app.log\n");
    let s = Served::start(setup, &["--serve-hidden"]);
    assert_eq!(s.get("/.env").text(), "TOKEN=x\n");
    assert_eq!(s.get("/").text(), ".git/\n.env\napp.log\n");
}

#[test]
fn huge_headers_get_431() {
    let s = Served::start(sidecar_index, &["--serve-max-header-bytes", "4KiB"]);
    let big = "x".repeat(8 * 1024);
    let r = s.request("GET", "/", &[("X-Big", &big)]);
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(s.request("GET", "/", &[("X-Small", "x")]).status, 200);
}

#[test]
fn a_slowloris_client_is_cut_off() {
    let s = Served::start(sidecar_index, &["--serve-header-read-timeout", "1s"]);
    let mut stream = connect(s.addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").unwrap();
    // Trickle a header line whenever the server has been quiet for 100 ms,
    // never finishing the head: the server must close the connection.
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("answered an unfinished head: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                assert!(started.elapsed() < PATIENCE, "the connection is still open");
                if stream.write_all(b"X-Slow: 1\r\n").is_err() {
                    break;
                }
            }
            Err(_) => break, // reset: closed too
        }
    }
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let s = Served::start(sidecar_index, &["--serve-max-connections", "2"]);
    let mut a = s.stream("/?follow=1");
    let mut b = s.stream("/?follow=1");
    a.until("23:00:06");
    b.until("23:00:06");
    let r = s.get("/");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(a);
    // Once a stream's connection is gone, its slot is free again.
    podkit_testkit::wait_until("a free connection slot", || s.get("/").status == 200);
    let admin = http_get(s.admin, "/metrics").unwrap().body;
    let refused = admin
        .lines()
        .find_map(|l| l.strip_prefix("podkit_log_shipper_serve_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "{admin}");
    drop(b);
}

#[test]
fn bad_serve_flags_exit_64_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let missing = dir.path().join("missing");
    let cases: [(&[&str], &str); 5] = [
        (&["--serve", "127.0.0.1:0"], "--serve-root"),
        (
            &["--serve", "127.0.0.1:0", "--serve-root", missing.to_str().unwrap()],
            "--serve-root",
        ),
        (
            &["--serve", "127.0.0.1:0", "--serve-root", file.to_str().unwrap()],
            "not a directory",
        ),
        (&["--serve", "here", "--serve-root", "/"], "--serve"),
        (
            &[
                "--serve",
                "127.0.0.1:0",
                "--serve-root",
                "/",
                "--serve-max-connections",
                "0",
            ],
            "--serve-max-connections",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--admin-addr", "off"];
        all.extend_from_slice(args);
        let (status, _, err) = Proc::spawn(BIN, &all, &[]).finish();
        assert_eq!(status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?} should name {needle}: {err}");
    }
}

#[test]
fn env_twins_configure_serve_mode_and_metrics_count_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let root = dir.path().to_str().unwrap();
    let mut proc = Proc::spawn(
        BIN,
        &["--admin-addr", "127.0.0.1:0"],
        &[
            ("LOG_SHIPPER_SERVE", "127.0.0.1:0"),
            ("LOG_SHIPPER_SERVE_ROOT", root),
            ("LOG_SHIPPER_SERVE_ACCESS_LOG", "true"),
        ],
    );
    let admin = proc.admin_addr();
    let addr = proc.logged_addr("Serving.", "addr");
    podkit_testkit::wait_until("/readyz to answer 200", || {
        http_get(admin, "/readyz").is_ok_and(|r| r.status == 200)
    });
    assert_eq!(http_get(addr, "/").unwrap().body, "hello\n");
    assert_eq!(http_get(addr, "/missing").unwrap().status, 404);
    proc.wait_for_line("status=404");
    let metrics = http_get(admin, "/metrics").unwrap().body;
    for want in [
        "podkit_log_shipper_serve_requests_total{status=\"200\"} 1",
        "podkit_log_shipper_serve_requests_total{status=\"404\"} 1",
        "podkit_log_shipper_serve_sent_bytes_total 16",
        "podkit_log_shipper_serve_connections_active",
    ] {
        assert!(metrics.contains(want), "{want} in:\n{metrics}");
    }
}

#[test]
fn a_client_that_stops_reading_does_not_hold_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'x'; 64 << 20];
    std::fs::write(dir.path().join("big.log"), &big).unwrap();
    let root = dir.path().to_str().unwrap();
    let mut proc = Proc::spawn(
        BIN,
        &[
            "--admin-addr",
            "off",
            "--grace-period",
            "3s",
            "--serve",
            "127.0.0.1:0",
            "--serve-root",
            root,
        ],
        &[],
    );
    let addr = proc.logged_addr("Serving.", "addr");
    let stream = connect(addr);
    let mut reader = BufReader::new(stream);
    write!(reader.get_mut(), "GET /big.log HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let head = read_head(&mut reader);
    assert_eq!(head.status, 200);
    // The answer is in flight and the client reads no more of it.
    proc.signal(libc::SIGTERM);
    let (status, _) = proc.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", proc.stderr());
    assert!(
        proc.stderr().contains("still busy at the drain deadline"),
        "{}",
        proc.stderr()
    );
    drop(reader);
}
