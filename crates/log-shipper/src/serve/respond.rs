//! The answer to one request: nginx's static-file behaviour where users
//! meet it, plus listings, `?tail=N` and `?follow=1`.
//!
//! - Methods: GET and HEAD; anything else is 405 with `Allow: GET, HEAD`.
//! - Paths: see [`super::resolve`] (400 for `..`, `%2F`, `%00`; 403 for
//!   dotfiles, escapes, hard links, FIFOs, permission denied; 404 when
//!   absent). A directory without its trailing slash is 301 to the slash
//!   form (query kept); with it, the index file (`index.html`) if there is
//!   one, else a listing (or 403 when listings are off, as nginx does).
//! - Files: `Content-Type` by extension ([`super::mime`]), `Last-Modified`,
//!   an nginx-style `ETag` (`"<mtime hex>-<size hex>"`), `Accept-Ranges:
//!   bytes`. `If-None-Match` (weak comparison, `*`), else
//!   `If-Modified-Since` (not modified since) → 304.
//! - `Range`: one range (`bytes=a-b`, `a-`, `-n`) → 206 with
//!   `Content-Range`; a range starting past the end → 416 with
//!   `Content-Range: bytes */len`. Several ranges are answered with the
//!   whole file (200), which RFC 9110 allows and many servers do, rather
//!   than nginx's multipart answer. A malformed `Range` is ignored (200);
//!   `If-Range` that does not match the current validator gives 200.
//! - `?tail=N` (at most `--serve-max-tail-lines`, larger N is clamped): the
//!   last N lines. `?follow=1`: the file and then what is appended to it,
//!   chunked, until the client leaves or serve mode stops; with `tail=N`
//!   it starts N lines from the end (`tail -n N -f`), without it from the
//!   start of the file (`tail=0&follow=1` sends only what comes next).
//!   These answers carry no validators and ignore `Range`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::body::{CHUNK, FileRange, Follow, FollowStart, ServeBody, read_at};
use super::listing::{self, ListingRules};
use super::resolve::{LookupError, OpenError, Opened, PathError, Root};
use super::{mime, tail};

/// Statuses counted by `podkit_log_shipper_serve_requests_total`.
const STATUSES: [u16; 11] = [200, 206, 301, 304, 400, 403, 404, 405, 416, 500, 503];

/// Per-status request counters and byte counters, created at start-up so
/// the hot path only touches atomics.
#[derive(Debug, Clone)]
pub struct Stats {
    requests: Vec<(StatusCode, Counter)>,
    /// Body bytes sent.
    pub sent: Counter,
    /// Follow streams open now.
    pub follows: Gauge,
}

impl Stats {
    /// Registers serve mode's metrics.
    pub fn register(metrics: &podkit_runtime::Metrics) -> Self {
        let family = prometheus_client::metrics::family::Family::<Vec<(String, String)>, Counter>::default();
        let requests = STATUSES
            .iter()
            .map(|&code| {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let counter = family
                    .get_or_create(&vec![("status".to_owned(), code.to_string())])
                    .clone();
                (status, counter)
            })
            .collect();
        metrics.register(
            "podkit_log_shipper_serve_requests",
            "Requests answered by serve mode, by status (431 and header timeouts are answered by the HTTP layer and not counted)",
            family,
        );
        let sent = Counter::default();
        metrics.register(
            "podkit_log_shipper_serve_sent_bytes",
            "Response body bytes sent by serve mode",
            sent.clone(),
        );
        let follows = Gauge::default();
        metrics.register(
            "podkit_log_shipper_serve_follow_streams",
            "Follow streams (?follow=1) open now",
            follows.clone(),
        );
        Self {
            requests,
            sent,
            follows,
        }
    }

    /// Counts one answer with this status.
    pub fn count(&self, status: StatusCode) {
        if let Some((_, counter)) = self.requests.iter().find(|(s, _)| *s == status) {
            counter.inc();
        }
    }
}

/// Everything a request is answered from; shared by all connections.
#[derive(Debug)]
pub struct Handler {
    /// The served directory and its confinement rules.
    pub root: Arc<Root>,
    /// Serve dotfiles.
    pub hidden_ok: bool,
    /// The file a directory request gives when it exists (`index.html`).
    pub index: Option<Box<[u8]>>,
    /// List directories that have no index file.
    pub listing: bool,
    /// Largest `?tail=N`.
    pub max_tail_lines: u64,
    /// Log every request at info.
    pub access_log: bool,
    /// Metrics.
    pub stats: Stats,
    /// Cancelled when serve mode stops: follow streams end.
    pub stop: CancellationToken,
}

/// A response of serve mode.
pub type Answer = Response<ServeBody>;

impl Handler {
    /// Answers one request (synchronously: every file operation it does is
    /// a quick system call on an open descriptor).
    pub fn handle<B>(&self, req: &Request<B>) -> Answer {
        let response = self.answer(req);
        self.stats.count(response.status());
        if let ServeBody::Bytes(Some(bytes)) = response.body() {
            // Streamed bodies count as they go.
            self.stats.sent.inc_by(bytes.len() as u64);
        }
        if self.access_log {
            tracing::info!(
                method = %req.method(),
                path = %req.uri().path(),
                query = req.uri().query().unwrap_or(""),
                status = response.status().as_u16(),
                "Request answered."
            );
        }
        response
    }

    fn answer<B>(&self, req: &Request<B>) -> Answer {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed: use GET or HEAD\n",
                    head_of(req),
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
        };
        let uri = req.uri();
        let raw = uri.path();
        let rel = match super::resolve::decode(raw, self.hidden_ok) {
            Ok(rel) => rel,
            Err(err) => return self.refused(LookupError::Path(err), head),
        };
        let opened = match self.root.open(&rel) {
            Ok(opened) => opened,
            Err(err) => return self.refused(LookupError::Open(err), head),
        };
        if opened.is_dir() {
            return self.directory(req, raw, &rel, opened, head);
        }
        self.regular(req, &rel, opened, head)
    }

    /// A regular file: whole, ranged, conditional, or its tail.
    fn regular<B>(&self, req: &Request<B>, rel: &[u8], opened: Opened, head: bool) -> Answer {
        let query = match Query::parse(req.uri().query()) {
            Ok(query) => query,
            Err(message) => return text(StatusCode::BAD_REQUEST, message, head),
        };
        if query.tail.is_some() || query.follow {
            return self.tail(rel, opened, query, head);
        }
        self.file(req.headers(), rel, opened, head)
    }

    fn refused(&self, err: LookupError, head: bool) -> Answer {
        match err {
            LookupError::Path(PathError::Encoded | PathError::DotDot) => {
                text(StatusCode::BAD_REQUEST, "bad request: path not allowed\n", head)
            }
            LookupError::Path(PathError::Hidden) => text(StatusCode::FORBIDDEN, "forbidden\n", head),
            LookupError::Open(OpenError::NotFound) => text(StatusCode::NOT_FOUND, "not found\n", head),
            LookupError::Open(OpenError::Other(errno)) => {
                tracing::warn!(%errno, "Serve mode cannot open a file.");
                text(StatusCode::INTERNAL_SERVER_ERROR, "cannot open the file\n", head)
            }
            LookupError::Open(_) => text(StatusCode::FORBIDDEN, "forbidden\n", head),
        }
    }

    fn directory<B>(&self, req: &Request<B>, raw: &str, rel: &[u8], dir: Opened, head: bool) -> Answer {
        if !raw.ends_with('/') {
            // One leading slash only: `//host/dir` must not become a
            // protocol-relative redirect to another site.
            let mut location = String::with_capacity(raw.len() + 2 + req.uri().query().map_or(0, str::len));
            location.push('/');
            location.push_str(raw.trim_start_matches('/'));
            location.push('/');
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            let mut r = text(StatusCode::MOVED_PERMANENTLY, "moved permanently\n", head);
            if let Ok(value) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, value);
            }
            return r;
        }
        if let Some(index) = &self.index {
            let mut path = Vec::with_capacity(rel.len() + index.len());
            path.extend_from_slice(rel);
            path.extend_from_slice(index);
            match self.root.open(&path) {
                Ok(file) if !file.is_dir() => return self.regular(req, &path, file, head),
                Ok(_) | Err(OpenError::NotFound) => {}
                Err(err) => return self.refused(LookupError::Open(err), head),
            }
        }
        if !self.listing {
            return text(StatusCode::FORBIDDEN, "forbidden: directory listing is off\n", head);
        }
        let html = req
            .headers()
            .get(header::ACCEPT)
            .is_some_and(|a| memchr::memmem::find(a.as_bytes(), b"text/html").is_some());
        let rules = ListingRules {
            hidden_ok: self.hidden_ok,
        };
        let body = match listing::render(&self.root, dir, rel, rules, html) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(%err, "Serve mode cannot list a directory.");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot list the directory\n", head);
            }
        };
        let content_type = if html {
            "text/html; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut r = Self::bytes_answer(StatusCode::OK, Bytes::from(body), head);
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }

    fn file(&self, headers: &HeaderMap, rel: &[u8], opened: Opened, head: bool) -> Answer {
        let len = opened.len();
        let mtime = u64::try_from(opened.stat.st_mtime).unwrap_or(0);
        let etag = etag(mtime, len);
        let last_modified = httpdate::HttpDate::from(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
        let content_type = HeaderValue::from_static(mime::content_type(rel));

        let not_modified = match headers.get(header::IF_NONE_MATCH) {
            Some(inm) => etag_matches(inm.as_bytes(), &etag),
            None => headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|since| mtime <= since.as_secs()),
        };
        let validators = |h: &mut HeaderMap| {
            // One allocation each: the formatted bytes become the value.
            if let Ok(v) = HeaderValue::from_maybe_shared(etag.clone()) {
                h.insert(header::ETAG, v);
            }
            if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(last_modified.to_string())) {
                h.insert(header::LAST_MODIFIED, v);
            }
        };
        if not_modified {
            let mut r = Response::new(ServeBody::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            validators(r.headers_mut());
            return r;
        }

        let range = match headers.get(header::RANGE) {
            Some(range) if if_range_holds(headers, &etag, &last_modified) => parse_range(range.as_bytes(), len),
            _ => RangeAnswer::Whole,
        };
        let (status, start, end) = match range {
            RangeAnswer::Whole => (StatusCode::OK, 0, len),
            RangeAnswer::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
            RangeAnswer::Unsatisfiable => {
                let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n", head);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return r;
            }
        };
        let mut r = match self.file_body(opened.into_file(), start, end, head) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(%err, "Serve mode cannot read a file.");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n", head);
            }
        };
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, content_type);
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        validators(h);
        if status == StatusCode::PARTIAL_CONTENT
            && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
        r
    }

    /// A 200 with bytes `start..end` of `file`: read now when small,
    /// streamed otherwise; HEAD gets the length only.
    fn file_body(&self, file: std::fs::File, start: u64, end: u64, head: bool) -> std::io::Result<Answer> {
        let len = end - start;
        if head {
            return Ok(head_answer(len));
        }
        if len <= CHUNK as u64 {
            let bytes = read_at(&file, start, len as usize)?;
            if (bytes.len() as u64) < len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file truncated while being read",
                ));
            }
            return Ok(Self::bytes_answer(StatusCode::OK, bytes, false));
        }
        Ok(Response::new(ServeBody::File(FileRange::new(
            file,
            start,
            end,
            self.stats.sent.clone(),
        ))))
    }

    fn tail(&self, rel: &[u8], opened: Opened, query: Query, head: bool) -> Answer {
        let len = opened.len();
        let id = opened.id();
        let file = opened.into_file();
        let start = match query.tail {
            Some(n) => match tail::start_of_last_lines(&file, len, n.min(self.max_tail_lines)) {
                Ok(start) => start,
                Err(err) => {
                    tracing::warn!(%err, "Serve mode cannot read a file.");
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n", head);
                }
            },
            None => 0,
        };
        let mut r = if query.follow {
            if head {
                Response::new(ServeBody::empty())
            } else {
                let start = FollowStart {
                    file,
                    id,
                    offset: start,
                };
                Response::new(ServeBody::Follow(Box::new(Follow::new(
                    Arc::clone(&self.root),
                    rel,
                    start,
                    self.stop.clone(),
                    self.stats.sent.clone(),
                    &self.stats.follows,
                ))))
            }
        } else {
            match self.file_body(file, start, len, head) {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!(%err, "Serve mode cannot read a file.");
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n", head);
                }
            }
        };
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime::content_type(rel)));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if query.follow {
            // Proxies in front (nginx) must pass chunks on as they come,
            // and browsers show text as it arrives only when they need not
            // sniff its type first.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        }
        r
    }

    fn bytes_answer(status: StatusCode, bytes: Bytes, head: bool) -> Answer {
        let mut r = if head {
            head_answer(bytes.len() as u64)
        } else {
            Response::new(ServeBody::bytes(bytes))
        };
        *r.status_mut() = status;
        r
    }
}

fn head_of<B>(req: &Request<B>) -> bool {
    req.method() == Method::HEAD
}

/// A HEAD answer: the length a GET would send, no body.
fn head_answer(len: u64) -> Answer {
    let mut r = Response::new(ServeBody::empty());
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// A short plain-text answer.
fn text(status: StatusCode, message: &'static str, head: bool) -> Answer {
    let mut r = if head {
        head_answer(message.len() as u64)
    } else {
        Response::new(ServeBody::bytes(Bytes::from_static(message.as_bytes())))
    };
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// nginx's ETag: `"<mtime seconds hex>-<size hex>"`.
fn etag(mtime: u64, len: u64) -> Bytes {
    Bytes::from(format!("\"{mtime:x}-{len:x}\""))
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison).
fn etag_matches(list: &[u8], etag: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|tag| {
        let tag = tag.trim_ascii();
        tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag
    })
}

/// Whether `If-Range` (if any) still describes the file: a strong ETag
/// match, or exactly the `Last-Modified` date.
fn if_range_holds(headers: &HeaderMap, etag: &[u8], last_modified: &httpdate::HttpDate) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let value = value.as_bytes().trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return value == etag;
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|date| httpdate::HttpDate::from(date) == *last_modified)
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAnswer {
    /// Send the whole file (no usable range, or several).
    Whole,
    /// Send bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn parse_range(value: &[u8], len: u64) -> RangeAnswer {
    let value = value.trim_ascii();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return RangeAnswer::Whole;
    };
    if spec.contains(&b',') {
        return RangeAnswer::Whole;
    }
    let Some(dash) = memchr::memchr(b'-', spec) else {
        return RangeAnswer::Whole;
    };
    let number = |s: &[u8]| -> Option<u64> {
        let s = s.trim_ascii();
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.trim_ascii().is_empty() {
        // `-n`: the last n bytes.
        return match number(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part(len.saturating_sub(n), len),
            None => RangeAnswer::Whole,
        };
    }
    let Some(start) = number(first) else {
        return RangeAnswer::Whole;
    };
    let end = if last.trim_ascii().is_empty() {
        len
    } else {
        match number(last) {
            Some(last) if last >= start => last.saturating_add(1).min(len),
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part(start, end)
}

/// The query parameters serve mode understands; others are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Query {
    tail: Option<u64>,
    follow: bool,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<Self, &'static str> {
        let mut q = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "tail" => {
                    q.tail = Some(
                        value
                            .parse()
                            .map_err(|_| "bad request: tail takes a number of lines, as in ?tail=100\n")?,
                    );
                }
                "follow" => {
                    q.follow = match value {
                        "" | "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" => false,
                        _ => return Err("bad request: follow takes 1 or 0\n"),
                    };
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_like_nginx() {
        use RangeAnswer::*;
        let check =
            |v: &str, len: u64, want: RangeAnswer| assert_eq!(parse_range(v.as_bytes(), len), want, "{v} of {len}");
        check("bytes=0-9", 100, Part(0, 10));
        check("bytes=10-", 100, Part(10, 100));
        check("bytes=-10", 100, Part(90, 100));
        check("bytes=-1000", 100, Part(0, 100));
        check("bytes=90-1000", 100, Part(90, 100));
        check("Bytes= 5 - 5 ", 100, Part(5, 6));
        check("bytes=100-", 100, Unsatisfiable);
        check("bytes=100-200", 100, Unsatisfiable);
        check("bytes=-0", 100, Unsatisfiable);
        check("bytes=0-", 0, Unsatisfiable);
        check("bytes=-5", 0, Unsatisfiable);
        check("bytes=0-1,5-6", 100, Whole);
        check("bytes=5-1", 100, Whole);
        check("bytes=a-b", 100, Whole);
        check("items=0-1", 100, Whole);
        check("bytes=", 100, Whole);
    }

    #[test]
    fn etags_compare_weakly_for_if_none_match() {
        let etag = etag(0x6752_1234, 0x1000);
        assert_eq!(etag, &b"\"67521234-1000\""[..]);
        assert!(etag_matches(b"\"67521234-1000\"", &etag));
        assert!(etag_matches(b"\"x\", W/\"67521234-1000\"", &etag));
        assert!(etag_matches(b"*", &etag));
        assert!(!etag_matches(b"\"67521234-1001\"", &etag));
    }

    #[test]
    fn query_parameters() {
        assert_eq!(Query::parse(None), Ok(Query::default()));
        assert_eq!(
            Query::parse(Some("tail=5&follow=1&x=y")),
            Ok(Query {
                tail: Some(5),
                follow: true
            })
        );
        assert_eq!(Query::parse(Some("follow")).map(|q| q.follow), Ok(true));
        assert_eq!(Query::parse(Some("follow=0")).map(|q| q.follow), Ok(false));
        assert!(Query::parse(Some("tail=-1")).is_err());
        assert!(Query::parse(Some("tail=lots")).is_err());
        assert!(Query::parse(Some("follow=maybe")).is_err());
    }
}
