//! A scriptable HTTP sink on `127.0.0.1:0` that counts the records POSTed to
//! it: what log shippers send to (tests and benchmarks).
//!
//! Every request body is decoded (`Content-Encoding: gzip` included) and its
//! records counted cheaply: an NDJSON body counts its lines (one `memchr`
//! pass), a JSON array body (`[` first) counts its top-level items (a scan
//! that jumps over string contents with `memchr`). Only accepted requests
//! (answered 2xx) count as delivered.
//!
//! The sink can be scripted while it runs ([`Sink::set_mode`]):
//! - [`Mode::Accept`]: answer 200 (the default);
//! - [`Mode::Fail`]: answer a status (503, 429, …), with or without
//!   `Retry-After`, until told otherwise;
//! - [`Mode::Stall`]: accept the connection and read the request but never
//!   answer; when the stall ends, the stalled requests' connections are
//!   closed without an answer (they were never accepted);
//! - [`Sink::reject_containing`]: answer 400 to bodies holding a marker.
//!
//! With [`SinkOptions::tls`] it serves HTTPS instead.
//!
//! Tests wait on what the sink received with [`Sink::wait_until`] (a condition
//! variable, bounded by [`crate::PATIENCE`]), never on sleeps. The server
//! loop is [`crate::server`]'s, shared with the platform stand-ins.
//!
//! ```no_run
//! use podkit_testkit::sink::{Mode, Sink};
//!
//! let sink = Sink::start();
//! let url = sink.url("/ingest"); // http://127.0.0.1:PORT/ingest
//! // … start a shipper posting to `url` …
//! sink.set_mode(Mode::Fail { status: 503, retry_after: Some("1".into()) });
//! sink.set_mode(Mode::Accept);
//! sink.wait_records(1000);
//! ```

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::server::{Answer, HttpServer, ServerState, Shared, Stalled};

/// How the sink answers requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer 200 and count the records.
    #[default]
    Accept,
    /// Answer `status` (e.g. 503 or 429) with an optional `Retry-After`
    /// value (seconds or an HTTP date), counting nothing.
    Fail {
        /// The status code to answer.
        status: u16,
        /// The `Retry-After` header's value, if any.
        retry_after: Option<String>,
    },
    /// Read requests but never answer them.
    Stall,
}

/// What to keep of accepted requests besides the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Counts only (benchmarks).
    #[default]
    Nothing,
    /// Every accepted body, decoded (see [`Sink::records`]).
    Bodies,
}

/// Options of a [`Sink`].
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// What to keep of accepted bodies.
    pub keep: Keep,
    /// Serve HTTPS with this config (HTTP/1.1) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Close the connection after every answer (`Connection: close`), as
    /// HTTP/1.0-style collectors (a CGI script) do.
    pub close_after_answer: bool,
}

/// One request the sink saw.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// When its body was read.
    pub at: Instant,
    /// The status answered (0: stalled, never answered).
    pub status: u16,
    /// Method and path with query.
    pub method: String,
    /// The request target's path and query.
    pub path: String,
    /// Request headers (names lower-case), for auth and content-type checks.
    pub headers: Vec<(String, String)>,
    /// Body bytes on the wire (compressed, if it was).
    pub wire_bytes: usize,
    /// Body bytes after decoding.
    pub bytes: usize,
    /// Records counted in the body.
    pub records: u64,
}

impl RequestInfo {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Counters of a [`Sink`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received (every answer, and stalls).
    pub requests: u64,
    /// Requests answered 2xx.
    pub accepted: u64,
    /// Records in accepted requests.
    pub records: u64,
    /// Decoded body bytes of accepted requests.
    pub bytes: u64,
    /// Requests answered with a [`Mode::Fail`] status.
    pub failed: u64,
    /// Requests answered 400 because of the reject marker.
    pub rejected: u64,
    /// Requests stalled (never answered).
    pub stalled: u64,
    /// Bodies that could not be decoded (answered 400).
    pub undecodable: u64,
}

#[derive(Debug, Default)]
struct State {
    mode: Mode,
    reject_marker: Option<Vec<u8>>,
    stats: Stats,
    keep: Keep,
    close_after_answer: bool,
    bodies: Vec<Bytes>,
    requests: Vec<RequestInfo>,
}

impl ServerState for State {
    fn mode(&mut self) -> &mut Mode {
        &mut self.mode
    }

    fn describe(&self) -> String {
        format!("sink stats: {:?}", self.stats)
    }
}

/// A running sink; dropping it stops the server.
#[derive(Debug)]
pub struct Sink {
    server: HttpServer<State>,
}

impl Sink {
    /// A sink that keeps nothing but counts.
    pub fn start() -> Self {
        Self::start_with(SinkOptions::default())
    }

    /// A sink that keeps every accepted body (for tests that check records).
    pub fn keeping_bodies() -> Self {
        Self::start_with(SinkOptions {
            keep: Keep::Bodies,
            ..SinkOptions::default()
        })
    }

    /// A sink with `options`, serving on its own thread.
    pub fn start_with(options: SinkOptions) -> Self {
        let state = State {
            keep: options.keep,
            close_after_answer: options.close_after_answer,
            ..State::default()
        };
        let server = HttpServer::start("testkit-sink", options.tls, state, |shared, req| async move {
            handle(&shared, req).await
        });
        Self { server }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` (or `https://`) followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Changes how the following requests (and requests stalled now) are
    /// answered.
    pub fn set_mode(&self, mode: Mode) {
        self.server.set_mode(mode);
    }

    /// Answers 400 to every body that contains `marker` (after decoding);
    /// `None` stops rejecting.
    pub fn reject_containing(&self, marker: Option<&[u8]>) {
        self.server.lock().reject_marker = marker.map(<[u8]>::to_vec);
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.server.lock().stats
    }

    /// Records accepted so far.
    pub fn records(&self) -> u64 {
        self.stats().records
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestInfo> {
        self.server.lock().requests.clone()
    }

    /// The accepted bodies, decoded, in arrival order (empty unless the sink
    /// keeps bodies).
    pub fn bodies(&self) -> Vec<Bytes> {
        self.server.lock().bodies.clone()
    }

    /// The accepted records, in arrival order, each as its bytes (an NDJSON
    /// line without its newline, or a JSON array item); empty unless the sink
    /// keeps bodies. They share the bodies' memory.
    pub fn received_records(&self) -> Vec<Bytes> {
        let bodies = self.bodies();
        let mut out = Vec::new();
        for body in &bodies {
            split_records(body, &mut |range| out.push(body.slice(range)));
        }
        out
    }

    /// Waits until `condition` holds for the counters, at most
    /// [`crate::PATIENCE`]; panics with `what` otherwise.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&Stats) -> bool) -> Stats {
        self.server.wait_until(what, |state| condition(&state.stats)).stats
    }

    /// Waits until at least `n` records were accepted.
    pub fn wait_records(&self, n: u64) -> Stats {
        self.wait_until(&format!("{n} records at the sink"), |s| s.records >= n)
    }
}

async fn handle(shared: &Shared<State>, req: Request<Incoming>) -> Answer {
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let headers = crate::server::headers(&req);
    let gzip = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Err(Stalled);
    };
    let wire_bytes = body.len();
    let decoded = if gzip {
        let mut out = Vec::with_capacity(body.len() * 4);
        match flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out) {
            Ok(_) => Ok(Bytes::from(out)),
            Err(e) => Err(e),
        }
    } else {
        Ok(body)
    };
    let mut info = RequestInfo {
        at: Instant::now(),
        status: 0,
        method,
        path,
        headers,
        wire_bytes,
        bytes: 0,
        records: 0,
    };
    let body = match decoded {
        Ok(body) => body,
        Err(e) => {
            let mut state = shared.lock();
            state.stats.requests += 1;
            state.stats.undecodable += 1;
            info.status = 400;
            state.requests.push(info);
            shared.changed();
            return Ok(answer(400, format!("cannot decode the gzip body: {e}")));
        }
    };
    info.bytes = body.len();
    shared
        .unless_stalled(|state, stalled| decide(state, &body, &mut info, stalled))
        .await
}

/// Answers a request by the current mode, or `None` to stall it (counted
/// once, when it had not `stalled` yet).
fn decide(state: &mut State, body: &Bytes, info: &mut RequestInfo, stalled: bool) -> Option<Response<Full<Bytes>>> {
    let rejected = state
        .reject_marker
        .as_deref()
        .is_some_and(|m| memchr::memmem::find(body, m).is_some());
    let response = match state.mode.clone() {
        Mode::Stall => {
            if !stalled {
                state.stats.requests += 1;
                state.stats.stalled += 1;
                state.requests.push(info.clone());
            }
            return None;
        }
        Mode::Fail { status, retry_after } => {
            state.stats.failed += 1;
            info.status = status;
            crate::server::scripted_failure(status, retry_after.as_deref())
        }
        Mode::Accept if rejected => {
            state.stats.rejected += 1;
            info.status = 400;
            answer(400, "invalid record: the body holds the reject marker".into())
        }
        Mode::Accept => {
            let records = count_records(body);
            info.records = records;
            info.status = 200;
            state.stats.accepted += 1;
            state.stats.records += records;
            state.stats.bytes += body.len() as u64;
            if state.keep == Keep::Bodies {
                state.bodies.push(body.clone());
            }
            answer(200, String::new())
        }
    };
    state.stats.requests += 1;
    state.requests.push(info.clone());
    let mut response = response;
    if state.close_after_answer {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Some(response)
}

fn answer(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// Counts the records in a body: JSON array items when it starts with `[`,
/// else NDJSON lines (a last line without `\n` counts too).
pub fn count_records(body: &[u8]) -> u64 {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| body[i]) {
        None => 0,
        Some(b'[') => {
            let mut n = 0;
            split_array(body, &mut |_| n += 1);
            n
        }
        Some(_) => {
            let newlines = memchr::memchr_iter(b'\n', body).count() as u64;
            newlines + u64::from(body.last() != Some(&b'\n'))
        }
    }
}

/// Calls `each` with the byte range of every record of `body` (see
/// [`count_records`]).
pub fn split_records(body: &[u8], each: &mut dyn FnMut(std::ops::Range<usize>)) {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| body[i]) {
        None => {}
        Some(b'[') => split_array(body, each),
        Some(_) => {
            let mut from = 0;
            for nl in memchr::memchr_iter(b'\n', body) {
                each(from..nl);
                from = nl + 1;
            }
            if from < body.len() {
                each(from..body.len());
            }
        }
    }
}

/// The top-level items of a JSON array, found by tracking nesting and
/// jumping over string contents; a malformed body yields what it can.
fn split_array(body: &[u8], each: &mut dyn FnMut(std::ops::Range<usize>)) {
    let mut depth = 0usize;
    let mut item_start: Option<usize> = None;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                if depth == 1 && item_start.is_none() {
                    item_start = Some(i);
                }
                // Skip to the closing quote, over escapes.
                let mut j = i + 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[j..]) {
                        Some(k) if body[j + k] == b'\\' => j += k + 2,
                        Some(k) => {
                            j += k;
                            break;
                        }
                        None => {
                            j = body.len();
                            break;
                        }
                    }
                }
                i = j;
            }
            b'[' | b'{' => {
                if depth == 1 && item_start.is_none() {
                    item_start = Some(i);
                }
                depth += 1;
            }
            b']' | b'}' => {
                if depth == 1
                    && let Some(s) = item_start.take()
                {
                    each(s..trim_end(body, i));
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == 1 => {
                if let Some(s) = item_start.take() {
                    each(s..trim_end(body, i));
                }
            }
            b if b.is_ascii_whitespace() => {}
            _ => {
                if depth == 1 && item_start.is_none() {
                    item_start = Some(i);
                }
            }
        }
        i += 1;
    }
}

fn trim_end(body: &[u8], mut end: usize) -> usize {
    while end > 0 && body[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn post(sink: &Sink, body: &[u8], headers: &[(&str, &str)]) -> (u16, Option<String>) {
        use std::io::{BufRead, BufReader};
        let mut stream = std::net::TcpStream::connect(sink.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!(
            "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        if reader.read_line(&mut status).unwrap_or(0) == 0 {
            return (0, None);
        }
        let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut retry_after = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("retry-after:") {
                retry_after = Some(v.trim().to_owned());
            }
        }
        (code, retry_after)
    }

    #[test]
    fn counts_ndjson_lines_and_array_items() {
        for (body, n) in [
            (&b""[..], 0),
            (b"{\"a\":1}\n{\"a\":2}\n", 2),
            (b"raw line without newline", 1),
            (b"[]", 0),
            (b"[{\"m\":\"a,b]\"},{\"m\":\"\\\"}\"}, 3, \"x\"]", 4),
            (b" [ [1,2], {\"k\":[3]} ]", 2),
        ] {
            assert_eq!(count_records(body), n, "{}", String::from_utf8_lossy(body));
        }
        let mut items = Vec::new();
        split_records(b"[{\"m\":\"a,b\"}, 7 ,\"s\"]", &mut |r| items.push(r));
        assert_eq!(items, [1..12, 14..15, 17..20]);
    }

    #[test]
    fn accepts_counts_keeps_and_decodes_gzip() {
        let sink = Sink::keeping_bodies();
        assert_eq!(post(&sink, b"{\"a\":1}\n{\"a\":2}\n", &[]).0, 200);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"[{\"a\":3},{\"a\":4},{\"a\":5}]").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(post(&sink, &gz, &[("Content-Encoding", "gzip")]).0, 200);
        let stats = sink.wait_records(5);
        assert_eq!(stats.accepted, 2);
        let records: Vec<String> = sink
            .received_records()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(
            records,
            ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":4}", "{\"a\":5}"]
        );
        let requests = sink.requests();
        assert_eq!(requests[1].header("content-encoding"), Some("gzip"));
        assert_eq!(requests[1].wire_bytes, gz.len());
    }

    #[test]
    fn scripted_failures_rejects_and_stalls() {
        let sink = Sink::start();
        sink.set_mode(Mode::Fail {
            status: 503,
            retry_after: Some("2".into()),
        });
        assert_eq!(post(&sink, b"x\n", &[]), (503, Some("2".into())));
        sink.set_mode(Mode::Accept);
        sink.reject_containing(Some(b"POISON"));
        assert_eq!(post(&sink, b"ok\nPOISON\n", &[]).0, 400);
        assert_eq!(post(&sink, b"ok\n", &[]).0, 200);

        sink.set_mode(Mode::Stall);
        std::thread::scope(|s| {
            let stalled = s.spawn(|| post(&sink, b"late\n", &[]).0);
            sink.wait_until("a stalled request", |s| s.stalled == 1);
            sink.set_mode(Mode::Accept);
            // Closed without an answer, and never counted.
            assert_eq!(stalled.join().unwrap(), 0);
        });
        let stats = sink.stats();
        assert_eq!(
            (
                stats.failed,
                stats.rejected,
                stats.stalled,
                stats.accepted,
                stats.records
            ),
            (1, 1, 1, 1, 1)
        );
    }
}
