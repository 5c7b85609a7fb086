//! Strict stand-ins for the log platforms the shipper's platform sinks talk
//! to, on `127.0.0.1:0`: a Loki push endpoint, an Elasticsearch `_bulk`
//! endpoint and an OTLP/HTTP logs collector ([`Platform`]).
//!
//! Each decodes and checks the wire format (a request that breaks it is
//! answered 400 and counted in [`PlatformStats::malformed`], with the
//! reason kept, so a test fails on it) and answers like the real one:
//!
//! - **Loki** (`POST /loki/api/v1/push`, JSON with gzip allowed, or snappy
//!   protobuf read with [`loki_proto`]): streams with
//!   at least one valid label, `[ns string, line, {metadata}]` values, each
//!   stream's values in time order within the push. 204 when accepted.
//!   With [`PlatformServer::loki_reject_older_than`] it refuses entries
//!   older than a time ("timestamp too old"), and with
//!   [`PlatformServer::loki_ordered`] entries older than the newest of their
//!   stream ("entry out of order"): like Loki, it keeps the other entries
//!   and answers 400 naming the refused ones.
//! - **Elasticsearch** (`POST /_bulk`, NDJSON ending in a newline): action
//!   lines (`create`/`index` with `_index`) and JSON object documents. A 200
//!   answer lists every item; documents containing a marker
//!   ([`PlatformServer::es_fail_items`]) get an item error (400
//!   `mapper_parsing_exception`, or 429 a number of times) while the others
//!   are stored. Data streams (indices named `logs-*-*` without a date, or
//!   any index with [`PlatformServer::es_data_streams`]) take only `create`
//!   and need `@timestamp`.
//! - **OTLP** (`POST /v1/logs`, JSON or protobuf, answered in kind): the body is decoded into the
//!   `opentelemetry-proto` message types (`ExportLogsServiceRequest`), not a
//!   hand-written shape, and checked to hold no key those types do not know.
//!   Records whose body holds a marker ([`PlatformServer::otlp_reject_containing`])
//!   are dropped and reported in `partialSuccess.rejectedLogRecords`.
//!
//! Outages are scripted with [`PlatformServer::set_mode`] (the HTTP sink's
//! [`Mode`]: accept, fail with a status and `Retry-After`, stall).
//! What the server holds is read with [`PlatformServer::entries`]; tests
//! wait on [`PlatformServer::wait_until`].
//! A test that ships many entries turns keeping them off
//! ([`PlatformServer::keep_entries`]): every request is still decoded and
//! checked, and entries only counted. A benchmark, where decoding every
//! request would set the pace, starts the server counting
//! ([`PlatformServer::counting`], `counting`): requests answered as a
//! valid one is, their entries counted without decoding them. The server
//! loop is [`crate::server`]'s, shared with the sink.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;

// A stalled request ends as the sink's do: the connection closes without an answer.
use crate::server::{Answer, HttpServer, ServerState, Shared, Stalled};
pub use crate::sink::Mode;

mod counting;
pub mod loki_proto;

/// Which platform a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Loki's push API.
    Loki,
    /// Elasticsearch `_bulk`.
    Elasticsearch,
    /// An OTLP/HTTP logs collector.
    Otlp,
}

/// One log entry the server holds, whatever the platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The log line (Loki's line, the document's `message`, the OTLP body).
    pub line: String,
    /// Time in Unix nanoseconds (Loki's timestamp, `@timestamp`, `timeUnixNano`).
    pub time_ns: i128,
    /// Loki stream labels, the ES index (`_index`), or the OTLP resource
    /// attributes.
    pub labels: BTreeMap<String, String>,
    /// Loki structured metadata, the other document fields (as JSON text
    /// unless strings), or the OTLP record's attributes plus `severityText`
    /// and `severityNumber` and `observedTimeUnixNano`.
    pub fields: BTreeMap<String, String>,
}

/// Counters of a [`PlatformServer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlatformStats {
    /// Requests received.
    pub requests: u64,
    /// Requests answered 2xx.
    pub accepted: u64,
    /// Entries stored.
    pub entries: u64,
    /// Requests answered by a scripted failure.
    pub failed: u64,
    /// Requests that broke the wire format (answered 400).
    pub malformed: u64,
    /// Entries refused (Loki too old / out of order, ES item errors, OTLP
    /// partial rejections).
    pub refused: u64,
    /// Largest number of streams (Loki) or resources (OTLP) in one request.
    pub max_groups: u64,
    /// Requests stalled.
    pub stalled: u64,
}

#[derive(Debug, Default)]
struct State {
    mode: Mode,
    stats: PlatformStats,
    entries: Vec<Entry>,
    /// Why requests were malformed.
    malformed: Vec<String>,
    /// Request headers (lower-case names), per request.
    headers: Vec<Vec<(String, String)>>,
    loki_ordered: bool,
    loki_min_ns: Option<i128>,
    /// Newest time accepted per Loki stream.
    loki_newest: BTreeMap<BTreeMap<String, String>, i128>,
    /// Marker, item status, and how many more times (None: always).
    es_fail: Vec<(String, u16, Option<u32>)>,
    es_data_streams: bool,
    otlp_reject: Option<String>,
    /// Entries stored and then let go (keeping them is off), or counted
    /// without decoding (counting).
    dropped: u64,
    /// Whether to let go of entries once counted.
    count_only: bool,
    /// Whether requests are only counted, not decoded ([`counting`]).
    counting: bool,
}

impl ServerState for State {
    fn mode(&mut self) -> &mut Mode {
        &mut self.mode
    }

    fn describe(&self) -> String {
        format!("stats: {:?}; malformed: {:?}", self.stats, self.malformed)
    }
}

/// A running platform stand-in; dropping it stops the server.
#[derive(Debug)]
pub struct PlatformServer {
    platform: Platform,
    server: HttpServer<State>,
}

impl PlatformServer {
    /// Starts a server playing `platform`, on its own thread.
    pub fn start(platform: Platform) -> Self {
        Self::with_state(platform, State::default())
    }

    /// Starts a server playing `platform` for a benchmark: each request is
    /// answered as the strict server answers a valid one, and its entries
    /// are counted without decoding it (see the `counting` module); nothing is kept
    /// for [`PlatformServer::entries`], and `max_groups` stays 0. Scripted
    /// modes work as with [`PlatformServer::start`].
    pub fn counting(platform: Platform) -> Self {
        Self::with_state(
            platform,
            State {
                counting: true,
                count_only: true,
                ..State::default()
            },
        )
    }

    fn with_state(platform: Platform, state: State) -> Self {
        let server = HttpServer::start("testkit-platform", None, state, move |shared, req| async move {
            handle(platform, &shared, req).await
        });
        Self { platform, server }
    }

    /// The shipper's `--sink` value for this server, e.g. `loki:http://127.0.0.1:PORT`.
    pub fn sink_url(&self) -> String {
        let kind = match self.platform {
            Platform::Loki => "loki",
            Platform::Elasticsearch => "elasticsearch",
            Platform::Otlp => "otlp",
        };
        format!("{kind}:{}", self.server.base_url())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes how the following requests (and requests stalled now) are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.server.set_mode(mode);
    }

    /// Loki: refuse entries older than the newest accepted of their
    /// stream ("entry out of order"), as Loki without unordered writes does.
    pub fn loki_ordered(&self, on: bool) {
        self.server.lock().loki_ordered = on;
    }

    /// Loki: refuse entries older than `ns` ("timestamp too old").
    pub fn loki_reject_older_than(&self, ns: Option<i128>) {
        self.server.lock().loki_min_ns = ns;
    }

    /// ES: documents containing `marker` get item status `status` (400:
    /// `mapper_parsing_exception`, 429: `es_rejected_execution_exception`)
    /// `times` times (`None`: always).
    pub fn es_fail_items(&self, marker: &str, status: u16, times: Option<u32>) {
        self.server.lock().es_fail.push((marker.to_owned(), status, times));
    }

    /// ES: treat every index as a data stream (`create` only, `@timestamp` required).
    pub fn es_data_streams(&self, on: bool) {
        self.server.lock().es_data_streams = on;
    }

    /// OTLP: drop records whose body contains `marker`, reporting them in
    /// `partialSuccess`.
    pub fn otlp_reject_containing(&self, marker: Option<&str>) {
        self.server.lock().otlp_reject = marker.map(str::to_owned);
    }

    /// Whether to keep the entries for [`PlatformServer::entries`] (the
    /// default) or only count them (benchmarks: millions of entries).
    pub fn keep_entries(&self, on: bool) {
        self.server.lock().count_only = !on;
    }

    /// The counters now.
    pub fn stats(&self) -> PlatformStats {
        self.server.lock().stats
    }

    /// Every entry stored, in arrival order.
    pub fn entries(&self) -> Vec<Entry> {
        self.server.lock().entries.clone()
    }

    /// Why requests were malformed (empty when the sink kept to the format).
    pub fn malformed(&self) -> Vec<String> {
        self.server.lock().malformed.clone()
    }

    /// The headers of every request, in arrival order (names lower-case).
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        self.server.lock().headers.clone()
    }

    /// Waits until `condition` holds for the counters, at most
    /// [`crate::PATIENCE`]; panics with `what` (and any malformed request) otherwise.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut(&PlatformStats) -> bool) -> PlatformStats {
        self.server.wait_until(what, |state| condition(&state.stats)).stats
    }

    /// Waits until at least `n` entries are stored.
    pub fn wait_entries(&self, n: u64) -> PlatformStats {
        self.wait_until(&format!("{n} entries at the {:?} server", self.platform), |s| {
            s.entries >= n
        })
    }
}

fn answer(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(platform: Platform, shared: &Shared<State>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let headers = crate::server::headers(&req);
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Err(Stalled);
    };
    // The scripted mode first: a failing server reads nothing.
    let failure = shared
        .unless_stalled(|state, stalled| {
            if !stalled {
                state.stats.requests += 1;
                state.headers.push(headers.clone());
            }
            match state.mode.clone() {
                Mode::Stall => {
                    if !stalled {
                        state.stats.stalled += 1;
                    }
                    None
                }
                Mode::Fail { status, retry_after } => {
                    state.stats.failed += 1;
                    Some(Some(crate::server::scripted_failure(status, retry_after.as_deref())))
                }
                Mode::Accept => Some(None),
            }
        })
        .await?;
    if let Some(r) = failure {
        return Ok(r);
    }
    let decoded = match header("content-encoding").as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            match flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out) {
                Ok(_) => Ok(out),
                Err(e) => Err(format!("cannot decode the gzip body: {e}")),
            }
        }
        None | Some("identity") => Ok(body.to_vec()),
        Some(other) => Err(format!("unknown Content-Encoding {other}")),
    };
    let content_type = header("content-type").unwrap_or_default();
    let counting = shared.lock().counting;
    let result = decoded.and_then(|body| {
        if method != hyper::Method::POST {
            return Err(format!("{method} {path}: only POST is served"));
        }
        if counting {
            let (n, response) = counting::count(platform, &path, &content_type, &body)?;
            shared.lock().dropped += n;
            return Ok(response);
        }
        let mut state = shared.lock();
        // A malformed request keeps nothing.
        let before = state.entries.len();
        let result = match platform {
            Platform::Loki => loki(&mut state, &path, &content_type, &body),
            Platform::Elasticsearch => bulk(&mut state, &path, &content_type, &body),
            Platform::Otlp => otlp(&mut state, &path, &content_type, &body),
        };
        if result.is_err() {
            state.entries.truncate(before);
        }
        result
    });
    let mut state = shared.lock();
    let response = match result {
        Ok(r) => {
            if r.status().is_success() {
                state.stats.accepted += 1;
            }
            r
        }
        Err(reason) => {
            state.stats.malformed += 1;
            state.malformed.push(reason.clone());
            answer(400, "text/plain", reason)
        }
    };
    if state.count_only {
        state.dropped += state.entries.len() as u64;
        state.entries.clear();
    }
    state.stats.entries = state.dropped + state.entries.len() as u64;
    shared.changed();
    Ok(response)
}

// === Loki ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LokiPush {
    streams: Vec<LokiStream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LokiStream {
    stream: BTreeMap<String, String>,
    values: Vec<LokiValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LokiValue {
    Plain((String, String)),
    WithMetadata((String, String, BTreeMap<String, String>)),
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A Loki stream as a push carries it: labels, then `(ns, line, metadata)`.
type LokiStreamValues = (BTreeMap<String, String>, Vec<(i128, String, BTreeMap<String, String>)>);

fn loki(state: &mut State, path: &str, content_type: &str, body: &[u8]) -> Result<Response<Full<Bytes>>, String> {
    if path != "/loki/api/v1/push" {
        return Err(format!("Loki serves /loki/api/v1/push, not {path}"));
    }
    let streams = if content_type.starts_with("application/json") {
        loki_json(body)?
    } else if content_type.starts_with("application/x-protobuf") {
        loki_protobuf(body)?
    } else {
        return Err(format!(
            "Content-Type {content_type:?}: Loki reads application/json or (snappy) application/x-protobuf"
        ));
    };
    state.stats.max_groups = state.stats.max_groups.max(streams.len() as u64);
    // Check the whole push before keeping anything of it.
    let mut values = Vec::new();
    for (stream, entries) in streams {
        if stream.is_empty() {
            return Err("error at least one label pair is required per stream".into());
        }
        if let Some(bad) = stream.keys().find(|k| !valid_label_name(k)) {
            return Err(format!("invalid label name {bad:?}"));
        }
        let mut last = i128::MIN;
        for (ns, line, metadata) in entries {
            if ns < last {
                return Err(format!(
                    "the values of stream {stream:?} are not in time order within the push"
                ));
            }
            last = ns;
            values.push((stream.clone(), ns, line, metadata));
        }
    }
    let mut refused = Vec::new();
    for (labels, ns, line, metadata) in values {
        if state.loki_min_ns.is_some_and(|min| ns < min) {
            refused.push(format!("entry for stream '{labels:?}' has timestamp too old: {ns}"));
            continue;
        }
        let newest = state.loki_newest.entry(labels.clone()).or_insert(i128::MIN);
        if state.loki_ordered && ns < *newest {
            refused.push(format!(
                "entry with timestamp {ns} ignored, reason: 'entry out of order' for stream: {labels:?}"
            ));
            continue;
        }
        *newest = (*newest).max(ns);
        state.entries.push(Entry {
            line,
            time_ns: ns,
            labels,
            fields: metadata,
        });
    }
    if refused.is_empty() {
        return Ok(answer(204, "text/plain", Bytes::new()));
    }
    state.stats.refused += refused.len() as u64;
    let n = refused.len();
    Ok(answer(
        400,
        "text/plain",
        format!("{}\ntotal ignored: {n} out of the push", refused.join(",\n")),
    ))
}

/// The streams of a JSON push.
fn loki_json(body: &[u8]) -> Result<Vec<LokiStreamValues>, String> {
    let push: LokiPush = serde_json::from_slice(body).map_err(|e| format!("not a Loki push: {e}"))?;
    let mut streams = Vec::new();
    for stream in push.streams {
        let mut entries = Vec::new();
        for value in stream.values {
            let (ts, line, metadata) = match value {
                LokiValue::Plain((ts, line)) => (ts, line, BTreeMap::new()),
                LokiValue::WithMetadata((ts, line, m)) => (ts, line, m),
            };
            if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("timestamp {ts:?} is not nanoseconds as a decimal string"));
            }
            let ns: i128 = ts.parse().map_err(|e| format!("timestamp {ts:?}: {e}"))?;
            entries.push((ns, line, metadata));
        }
        streams.push((stream.stream, entries));
    }
    Ok(streams)
}

/// The streams of a protobuf push (snappy, `logproto.PushRequest`).
fn loki_protobuf(body: &[u8]) -> Result<Vec<LokiStreamValues>, String> {
    let push = loki_proto::decode(body)?;
    if !push.format.is_empty() {
        return Err(format!(
            "PushRequest.format {:?} is Loki's own, not a client's",
            push.format
        ));
    }
    let mut streams = Vec::new();
    for stream in push.streams {
        let labels = loki_proto::parse_selector(&stream.labels)?;
        let mut entries = Vec::new();
        for entry in stream.entries {
            let ts = entry.timestamp.ok_or("an entry without its timestamp")?;
            if !(0..1_000_000_000).contains(&ts.nanos) || ts.seconds < 0 {
                return Err(format!("timestamp {ts:?} is not a time after 1970"));
            }
            if !entry.parsed.is_empty() {
                return Err("an entry with `parsed` labels, which only query answers carry".into());
            }
            let mut metadata = BTreeMap::new();
            for pair in entry.structured_metadata {
                if pair.name.is_empty() {
                    return Err("a structured metadata pair without a name".into());
                }
                if let Some(old) = metadata.insert(pair.name.clone(), pair.value) {
                    return Err(format!("structured metadata {:?} twice (was {old:?})", pair.name));
                }
            }
            let ns = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
            entries.push((ns, entry.line, metadata));
        }
        streams.push((labels, entries));
    }
    Ok(streams)
}

// === Elasticsearch ===

fn bulk(state: &mut State, path: &str, content_type: &str, body: &[u8]) -> Result<Response<Full<Bytes>>, String> {
    if path != "/_bulk" {
        return Err(format!("this Elasticsearch serves /_bulk, not {path}"));
    }
    if !(content_type.starts_with("application/x-ndjson") || content_type.starts_with("application/json")) {
        return Err(format!("Content-Type header [{content_type}] is not supported"));
    }
    if body.last() != Some(&b'\n') {
        return Err("The bulk request must be terminated by a newline [\\n]".into());
    }
    let lines: Vec<&[u8]> = body[..body.len() - 1].split(|&b| b == b'\n').collect();
    if !lines.len().is_multiple_of(2) {
        return Err("an action line without its document".into());
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
            serde_json::from_slice(pair[0]).map_err(|e| format!("action line: {e}"))?;
        let (op, meta) = match action.into_iter().collect::<Vec<_>>().as_slice() {
            [(op, meta)] if op == "create" || op == "index" => (op.clone(), meta.clone()),
            other => return Err(format!("unexpected action {other:?}")),
        };
        if let Some(k) = meta.keys().find(|k| k.as_str() != "_index") {
            return Err(format!("unexpected action key {k}"));
        }
        let index = meta
            .get("_index")
            .and_then(|v| v.as_str())
            .ok_or("no _index in the action (and none in the path)")?
            .to_owned();
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(pair[1]).map_err(|e| format!("document: {e}"))?;
        let text = String::from_utf8_lossy(pair[1]);
        let data_stream = state.es_data_streams;
        let mut failure = None;
        if data_stream && op != "create" {
            failure = Some((
                400,
                "illegal_argument_exception",
                "only write ops with an op_type of create are allowed in data streams".to_owned(),
            ));
        } else if data_stream && !doc.contains_key("@timestamp") {
            failure = Some((
                400,
                "mapper_parsing_exception",
                "data stream timestamp field [@timestamp] is missing".to_owned(),
            ));
        }
        for (marker, status, times) in &mut state.es_fail {
            if failure.is_none() && text.contains(marker.as_str()) && times.is_none_or(|t| t > 0) {
                if let Some(t) = times {
                    *t -= 1;
                }
                failure = Some(if *status == 429 {
                    (
                        429,
                        "es_rejected_execution_exception",
                        "rejected execution: write queue full".to_owned(),
                    )
                } else {
                    (
                        *status,
                        "mapper_parsing_exception",
                        format!("failed to parse field [message] of type [long] in document ({marker})"),
                    )
                });
            }
        }
        if let Some((status, kind, reason)) = failure {
            errors = true;
            state.stats.refused += 1;
            items.push(serde_json::json!({ op.clone(): {
                "_index": index, "status": status,
                "error": {"type": kind, "reason": reason}
            }}));
            continue;
        }
        let line = doc
            .get("message")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let time_ns = doc
            .get("@timestamp")
            .and_then(|v| v.as_str())
            .and_then(|t| t.parse::<jiff_free::Rfc3339>().ok())
            .map_or(0, |t| t.0);
        let fields = doc
            .iter()
            .filter(|(k, _)| k.as_str() != "message")
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        state.entries.push(Entry {
            line,
            time_ns,
            labels: BTreeMap::from([("_index".to_owned(), index.clone())]),
            fields,
        });
        let id = state.entries.len();
        items.push(serde_json::json!({ op: {
            "_index": index, "_id": id.to_string(), "_version": 1, "result": "created",
            "status": 201, "_seq_no": id, "_primary_term": 1
        }}));
    }
    let answer_body = serde_json::json!({"took": 1, "errors": errors, "items": items});
    Ok(answer(200, "application/json", answer_body.to_string()))
}

/// RFC 3339 with a `Z` or offset, to nanoseconds, without a date library.
mod jiff_free {
    /// Unix nanoseconds.
    pub struct Rfc3339(pub i128);

    impl std::str::FromStr for Rfc3339 {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            // YYYY-MM-DDTHH:MM:SS(.fff)Z only: what the shipper writes.
            let b = s.as_bytes();
            if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
                return Err(());
            }
            let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or(());
            let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
            let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
            let frac = &s[19..s.len() - 1];
            let nanos = match frac.strip_prefix('.') {
                Some(digits) if !digits.is_empty() && digits.len() <= 9 => {
                    digits.parse::<i64>().map_err(|_| ())? * 10i64.pow(9 - digits.len() as u32)
                }
                None if frac.is_empty() => 0,
                _ => return Err(()),
            };
            // Days from civil (Howard Hinnant).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (m + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
            Ok(Self(i128::from(secs) * 1_000_000_000 + i128::from(nanos)))
        }
    }
}

// === OTLP ===

fn otlp(state: &mut State, path: &str, content_type: &str, body: &[u8]) -> Result<Response<Full<Bytes>>, String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    if path != "/v1/logs" {
        return Err(format!("the OTLP logs endpoint is /v1/logs, not {path}"));
    }
    let protobuf = content_type.starts_with("application/x-protobuf");
    let request = if protobuf {
        otlp_protobuf(body)?
    } else if content_type.starts_with("application/json") {
        otlp_json(body)?
    } else {
        return Err(format!(
            "Content-Type {content_type:?}: OTLP/HTTP needs application/json or application/x-protobuf"
        ));
    };
    state.stats.max_groups = state.stats.max_groups.max(request.resource_logs.len() as u64);
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let mut rejected = 0u64;
    for rl in request.resource_logs {
        let labels: BTreeMap<String, String> = rl
            .resource
            .map(|r| r.attributes.into_iter().map(|kv| (kv.key, text(&kv.value))).collect())
            .unwrap_or_default();
        for sl in rl.scope_logs {
            if sl.scope.as_ref().is_none_or(|s| s.name.is_empty()) {
                return Err("a ScopeLogs without its scope name".into());
            }
            for record in sl.log_records {
                if record.observed_time_unix_nano == 0 {
                    return Err("a log record without observedTimeUnixNano".into());
                }
                let line = text(&record.body);
                if state.otlp_reject.as_deref().is_some_and(|m| line.contains(m)) {
                    rejected += 1;
                    continue;
                }
                let mut fields: BTreeMap<String, String> = record
                    .attributes
                    .into_iter()
                    .map(|kv| (kv.key, text(&kv.value)))
                    .collect();
                fields.insert("severityText".into(), record.severity_text.clone());
                fields.insert("severityNumber".into(), record.severity_number.to_string());
                fields.insert(
                    "observedTimeUnixNano".into(),
                    record.observed_time_unix_nano.to_string(),
                );
                state.entries.push(Entry {
                    line,
                    time_ns: i128::from(record.time_unix_nano),
                    labels: labels.clone(),
                    fields,
                });
            }
        }
    }
    state.stats.refused += rejected;
    let message = format!("{rejected} log records refused by the test collector");
    if protobuf {
        use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
        use prost::Message as _;
        let response = ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: message,
            }),
        };
        return Ok(answer(200, "application/x-protobuf", response.encode_to_vec()));
    }
    if rejected == 0 {
        return Ok(answer(200, "application/json", "{}"));
    }
    let body = serde_json::json!({"partialSuccess": {
        "rejectedLogRecords": rejected.to_string(),
        "errorMessage": message
    }});
    Ok(answer(200, "application/json", body.to_string()))
}

/// A JSON request, decoded into the OTLP types.
fn otlp_json(body: &[u8]) -> Result<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest, String> {
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let request: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
        serde_json::from_value(raw.clone()).map_err(|e| format!("not an ExportLogsServiceRequest: {e}"))?;
    // The types ignore unknown keys (as receivers must); a sink that sends
    // one has a typo, so check that every key sent is one the types know.
    let known = serde_json::to_value(&request).map_err(|e| e.to_string())?;
    check_known(&raw, &known, "$")?;
    Ok(request)
}

/// A protobuf request, decoded into the OTLP types; like unknown JSON
/// keys, fields the types lack are refused (the message re-encoded must
/// be the body itself, which also wants fields in number order).
fn otlp_protobuf(
    body: &[u8],
) -> Result<opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest, String> {
    use prost::Message as _;
    let request = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(body)
        .map_err(|e| format!("not an ExportLogsServiceRequest: {e}"))?;
    if request.encode_to_vec() != body {
        return Err(
            "the ExportLogsServiceRequest holds fields the OTLP types do not have (or is not laid out by field number)"
                .into(),
        );
    }
    Ok(request)
}

/// Every object key of `sent` is in `known` (the same message serialized
/// from the decoded types), recursively; numbers may be strings on one side.
/// The error names where: `$.resourceLogs[0].…`.
fn check_known(sent: &serde_json::Value, known: &serde_json::Value, at: &str) -> Result<(), String> {
    // The path is spelled out only on the way back from an error (a body
    // holds millions of keys when a benchmark ships through the server).
    check_known_at(sent, known).map_err(|(path, what)| format!("{at}{path} {what}"))
}

fn check_known_at(sent: &serde_json::Value, known: &serde_json::Value) -> Result<(), (String, &'static str)> {
    use serde_json::Value as V;
    match (sent, known) {
        (V::Object(s), V::Object(k)) => {
            for (key, value) in s {
                let Some(other) = k.get(key) else {
                    return Err((format!(".{key}"), "is not a field of the OTLP message"));
                };
                check_known_at(value, other).map_err(|(path, what)| (format!(".{key}{path}"), what))?;
            }
            Ok(())
        }
        (V::Array(s), V::Array(k)) if s.len() == k.len() => {
            for (i, (a, b)) in s.iter().zip(k).enumerate() {
                check_known_at(a, b).map_err(|(path, what)| (format!("[{i}]{path}"), what))?;
            }
            Ok(())
        }
        (V::Object(_) | V::Array(_), _) => Err((String::new(), "does not have the shape of the OTLP message")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_to_nanoseconds() {
        let t: jiff_free::Rfc3339 = "2026-12-06T00:00:01.5Z".parse().unwrap();
        assert_eq!(t.0, 1_796_515_201_500_000_000);
        assert!("2026-12-06 00:00:01Z".parse::<jiff_free::Rfc3339>().is_err());
    }

    #[test]
    fn otlp_bodies_decode_into_the_proto_types_and_unknown_keys_are_refused() {
        let mut state = State::default();
        let good =
            br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.pod.name","value":{"stringValue":"p"}}]},
            "scopeLogs":[{"scope":{"name":"log-shipper"},"logRecords":[{"timeUnixNano":"5","observedTimeUnixNano":"6",
            "severityNumber":9,"severityText":"info","body":{"stringValue":"hi"},
            "attributes":[{"key":"n","value":{"intValue":"3"}}]}]}]}]}"#;
        let r = otlp(&mut state, "/v1/logs", "application/json", good).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(state.entries[0].line, "hi");
        assert_eq!(state.entries[0].labels["k8s.pod.name"], "p");
        assert_eq!(state.entries[0].fields["n"], "3");
        assert_eq!(state.entries[0].time_ns, 5);
        let typo = br#"{"resourceLogs":[{"scopeLogs":[{"scope":{"name":"x"},"logRecords":[{"observedTimeUnixNano":"1","timeUnixNanos":"5"}]}]}]}"#;
        let e = otlp(&mut state, "/v1/logs", "application/json", typo).unwrap_err();
        assert!(e.contains("timeUnixNanos"), "{e}");
    }

    #[test]
    fn loki_checks_order_labels_and_refuses_old_entries() {
        let mut state = State::default();
        let ok = br#"{"streams":[{"stream":{"app":"a"},"values":[["1","x",{"file":"f"}],["2","y"]]}]}"#;
        assert_eq!(
            loki(&mut state, "/loki/api/v1/push", "application/json", ok)
                .unwrap()
                .status(),
            204
        );
        let unordered = br#"{"streams":[{"stream":{"app":"a"},"values":[["3","x"],["2","y"]]}]}"#;
        assert!(loki(&mut state, "/loki/api/v1/push", "application/json", unordered).is_err());
        let no_label = br#"{"streams":[{"stream":{},"values":[["3","x"]]}]}"#;
        assert!(loki(&mut state, "/loki/api/v1/push", "application/json", no_label).is_err());
        state.loki_ordered = true;
        let old = br#"{"streams":[{"stream":{"app":"a"},"values":[["1","old"],["9","new"]]}]}"#;
        let r = loki(&mut state, "/loki/api/v1/push", "application/json", old).unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(state.entries.len(), 3, "the valid entry of the push is kept");
    }

    #[test]
    fn bulk_answers_per_item() {
        let mut state = State::default();
        state.es_fail.push(("BAD".into(), 400, None));
        let body = b"{\"create\":{\"_index\":\"i\"}}\n{\"message\":\"ok\",\"@timestamp\":\"2026-12-06T00:00:00Z\"}\n\
            {\"create\":{\"_index\":\"i\"}}\n{\"message\":\"BAD\"}\n";
        let r = bulk(&mut state, "/_bulk", "application/x-ndjson", body).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.stats.refused, 1);
        assert!(bulk(&mut state, "/_bulk", "application/x-ndjson", &body[..body.len() - 1]).is_err());
    }
}
