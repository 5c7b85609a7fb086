//! What the platform sinks (Loki, Elasticsearch/OpenSearch, OTLP/HTTP logs)
//! share: the [`Api`] an HTTP sink speaks, the [`PlatformEncoder`] that
//! lays its records out on the wire, the grouping of records into streams
//! or resources ([`Groups`]), the parsed fields as they read them, and the
//! dead-letter entries of what they reject.
//!
//! The wire formats are written by hand, straight into the sink's buffer,
//! like the NDJSON encoder: the formats are small and their JSON escaping
//! is the shared one, so they cost about what NDJSON costs. The protobuf
//! encodings of Loki and OTLP ([`super::loki_proto`], [`super::otlp_proto`])
//! encode each record with `prost` and frame the groups by hand
//! ([`Groups::close_framed`]). The test servers of `podkit-testkit` check
//! them against the real formats (the OTLP body is decoded into the
//! `opentelemetry-proto` types, the Loki protobuf push into message types
//! of the testkit's own).

use crate::args::{EsAction, WireEncoding};
use crate::rec::escape::{json_string, json_string_lossy};
use crate::record::{Fields, Record, TimestampField};

use super::elasticsearch::BulkEncoder;
use super::loki::LokiEncoder;
use super::loki_proto::LokiProtoEncoder;
use super::otlp::OtlpEncoder;
use super::otlp_proto::OtlpProtoEncoder;

/// The API an HTTP sink speaks.
#[derive(Debug, Clone)]
pub enum Api {
    /// Plain HTTP: the body in the sink's `--format`.
    Plain,
    /// Loki's push API (`/loki/api/v1/push`).
    Loki {
        /// Most streams in one push.
        max_streams: usize,
        /// JSON, or snappy-compressed protobuf.
        encoding: WireEncoding,
    },
    /// Elasticsearch/OpenSearch `_bulk`.
    Elasticsearch {
        /// The index name, with its date pattern.
        index: IndexPattern,
        /// `create` or `index`.
        action: EsAction,
    },
    /// OTLP/HTTP logs (`/v1/logs`).
    Otlp {
        /// JSON or protobuf.
        encoding: WireEncoding,
    },
}

impl Api {
    /// The standard path, appended to the sink's base URL.
    pub fn path(&self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Loki { .. } => "/loki/api/v1/push",
            Self::Elasticsearch { .. } => "/_bulk",
            Self::Otlp { .. } => "/v1/logs",
        }
    }

    /// The request's `Content-Type`, `None` for plain HTTP (the format's).
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Self::Plain => None,
            Self::Loki { encoding, .. } | Self::Otlp { encoding } => Some(match encoding {
                WireEncoding::Json => "application/json",
                WireEncoding::Protobuf => "application/x-protobuf",
            }),
            Self::Elasticsearch { .. } => Some("application/x-ndjson"),
        }
    }
}

/// An index name with an optional strftime pattern, formatted from a
/// record's time (UTC); the name is kept per second, so a batch formats it
/// about once.
#[derive(Debug, Clone)]
pub struct IndexPattern {
    pattern: String,
    dated: bool,
    /// The second of the last name made, and the name as a JSON string.
    last: Option<(i64, Vec<u8>)>,
}

impl IndexPattern {
    /// Checks `pattern` (a bad directive, or a name Elasticsearch refuses,
    /// is an error).
    pub fn new(pattern: &str) -> Result<Self, String> {
        let dated = pattern.contains('%');
        let sample = if dated {
            jiff::fmt::strtime::format(pattern, jiff::Timestamp::UNIX_EPOCH)
                .map_err(|e| format!("`{pattern}` is not a strftime pattern: {e}"))?
        } else {
            pattern.to_owned()
        };
        let bad = sample.is_empty()
            || sample == "."
            || sample == ".."
            || sample.starts_with(['-', '_', '+'])
            || sample.len() > 255
            || sample.chars().any(|c| {
                c.is_ascii_uppercase()
                    || matches!(
                        c,
                        '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                    )
            });
        if bad {
            return Err(format!(
                "`{sample}` is not an index name: lower case, no \\ / * ? \" < > | space , # :, \
                 not starting with - _ +"
            ));
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            dated,
            last: None,
        })
    }

    /// The index of a record of time `t`, as a JSON string.
    pub fn name(&mut self, t: jiff::Timestamp) -> &[u8] {
        let second = if self.dated { t.as_second() } else { 0 };
        if self.last.as_ref().is_none_or(|(s, _)| *s != second) {
            let text = if self.dated {
                // Checked at start; a time out of range falls back to the pattern.
                jiff::fmt::strtime::format(&self.pattern, t).unwrap_or_else(|_| self.pattern.clone())
            } else {
                self.pattern.clone()
            };
            let mut json = Vec::with_capacity(text.len() + 2);
            json_string(&mut json, &text);
            self.last = Some((second, json));
        }
        self.last.as_ref().map_or(&[], |(_, n)| n)
    }
}

/// What a platform encoder did with a record.
pub enum Written {
    /// The record is written; `true` when invalid UTF-8 was replaced.
    Done(bool),
    /// The action line is written; the document (the NDJSON object, with
    /// `@timestamp`) is the caller's to write.
    NeedsDocument,
}

/// Lays records out as a platform wants them.
#[derive(Debug, Clone)]
pub enum PlatformEncoder {
    /// Loki streams.
    Loki(LokiEncoder),
    /// `_bulk` pairs.
    Elasticsearch(BulkEncoder),
    /// OTLP resource logs.
    Otlp(OtlpEncoder),
    /// Loki streams, protobuf.
    LokiProto(LokiProtoEncoder),
    /// OTLP resource logs, protobuf.
    OtlpProto(OtlpProtoEncoder),
}

impl PlatformEncoder {
    /// The encoder of `api`, `None` for plain HTTP.
    pub fn new(api: &Api) -> Option<Self> {
        Some(match api {
            Api::Plain => return None,
            Api::Loki {
                max_streams,
                encoding: WireEncoding::Json,
            } => Self::Loki(LokiEncoder::new(*max_streams)),
            Api::Loki {
                max_streams,
                encoding: WireEncoding::Protobuf,
            } => Self::LokiProto(LokiProtoEncoder::new(*max_streams)),
            Api::Elasticsearch { index, action } => Self::Elasticsearch(BulkEncoder::new(index.clone(), *action)),
            Api::Otlp {
                encoding: WireEncoding::Json,
            } => Self::Otlp(OtlpEncoder::new()),
            Api::Otlp {
                encoding: WireEncoding::Protobuf,
            } => Self::OtlpProto(OtlpProtoEncoder::new()),
        })
    }

    /// Records of `file` with `labels` follow.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) {
        match self {
            Self::Loki(e) => e.begin_group(file, labels),
            Self::Elasticsearch(_) => {}
            Self::Otlp(e) => e.begin_group(file, labels),
            Self::LokiProto(e) => e.begin_group(file, labels),
            Self::OtlpProto(e) => e.begin_group(file, labels),
        }
    }

    /// Whether the open body holds more groups than one request may
    /// (the caller seals it before adding records).
    pub fn over_limit(&self) -> bool {
        match self {
            Self::Loki(e) => e.over_limit(),
            Self::LokiProto(e) => e.over_limit(),
            _ => false,
        }
    }

    /// Appends one record (or its first part) to `out`.
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, out: &mut Vec<u8>) -> Written {
        match self {
            Self::Loki(e) => Written::Done(e.record(rec, ts_field, out)),
            Self::Elasticsearch(e) => {
                e.action(rec.timestamp(), out);
                Written::NeedsDocument
            }
            Self::Otlp(e) => Written::Done(e.record(rec, ts_field, out)),
            Self::LokiProto(e) => Written::Done(e.record(rec, ts_field, out)),
            Self::OtlpProto(e) => Written::Done(e.record(rec, ts_field, out)),
        }
    }

    /// Turns the records in `out` into the request body.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Loki(e) => e.close(out),
            Self::Elasticsearch(_) => {}
            Self::Otlp(e) => e.close(out),
            Self::LokiProto(e) => e.close(out),
            Self::OtlpProto(e) => e.close(out),
        }
    }
}

/// Records of one body grouped by label set (Loki streams, OTLP
/// resources): records are written into the body buffer as they come,
/// each noted with its group, and [`Groups::close`] lays them out group by
/// group (stably sorted by a key within a group).
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// The groups of the open body: labels and the encoded head.
    groups: Vec<Group>,
    /// The group of the records that follow.
    current: usize,
    entries: Vec<Entry>,
    scratch: Vec<u8>,
}

/// A group's labels and its encoded head.
type Group = (Vec<(String, String)>, Vec<u8>);

#[derive(Debug, Clone, Copy)]
struct Entry {
    group: u32,
    key: i128,
    start: usize,
    end: usize,
}

/// The fixed parts around the groups of a body.
pub struct Layout {
    /// Before the first group.
    pub prefix: &'static [u8],
    /// After each group's records.
    pub group_tail: &'static [u8],
    /// After the last group.
    pub suffix: &'static [u8],
}

impl Groups {
    /// Makes the group of `labels` current, adding it (with the head
    /// `head` makes) when the body has none yet.
    pub fn begin(&mut self, labels: &[(String, String)], head: impl FnOnce(&[(String, String)]) -> Vec<u8>) {
        match self.groups.iter().position(|(l, _)| l.as_slice() == labels) {
            Some(i) => self.current = i,
            None => {
                self.groups.push((labels.to_vec(), head(labels)));
                self.current = self.groups.len() - 1;
            }
        }
    }

    /// Groups in the open body.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group was begun yet.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Notes the record at `start..end` of the body buffer.
    pub fn push(&mut self, key: i128, start: usize, end: usize) {
        self.entries.push(Entry {
            group: self.current as u32,
            key,
            start,
            end,
        });
    }

    /// Lays out the records of `out` group by group and replaces `out`
    /// with the result. Records cut off `out` (the caller truncated it)
    /// are left out. Afterwards only the current group is kept.
    pub fn close(&mut self, out: &mut Vec<u8>, layout: &Layout) {
        self.entries.retain(|e| e.end <= out.len());
        self.entries.sort_by_key(|e| (e.group, e.key));
        let body = &mut self.scratch;
        body.clear();
        body.reserve(out.len() + self.groups.len() * 256 + 64);
        body.extend_from_slice(layout.prefix);
        let mut group = None;
        for e in &self.entries {
            if group != Some(e.group) {
                if group.is_some() {
                    body.extend_from_slice(layout.group_tail);
                    body.push(b',');
                }
                group = Some(e.group);
                body.extend_from_slice(&self.groups[e.group as usize].1);
            } else {
                body.push(b',');
            }
            body.extend_from_slice(&out[e.start..e.end]);
        }
        if group.is_some() {
            body.extend_from_slice(layout.group_tail);
        }
        body.extend_from_slice(layout.suffix);
        self.finish(out);
    }

    /// Lays out the records of `out` group by group, like
    /// [`Groups::close`], for a binary format: before each group's records
    /// `frame` writes what opens the group, given the group's head and the
    /// length of its records (a protobuf message's key and length).
    pub fn close_framed(&mut self, out: &mut Vec<u8>, mut frame: impl FnMut(&mut Vec<u8>, &[u8], usize)) {
        self.entries.retain(|e| e.end <= out.len());
        self.entries.sort_by_key(|e| (e.group, e.key));
        let body = &mut self.scratch;
        body.clear();
        body.reserve(out.len() + self.groups.len() * 256 + 64);
        for run in self.entries.chunk_by(|a, b| a.group == b.group) {
            let len = run.iter().map(|e| e.end - e.start).sum();
            frame(body, &self.groups[run[0].group as usize].1, len);
            for e in run {
                body.extend_from_slice(&out[e.start..e.end]);
            }
        }
        self.finish(out);
    }

    /// Replaces `out` with the laid-out body and keeps only the current group.
    fn finish(&mut self, out: &mut Vec<u8>) {
        std::mem::swap(out, &mut self.scratch);
        self.scratch.clear();
        self.entries.clear();
        let current = self.groups.swap_remove(self.current);
        self.groups.clear();
        self.groups.push(current);
        self.current = 0;
    }
}

/// A parsed field's value as the platforms read it.
pub enum FieldValue<'a> {
    /// A JSON value, as it appeared in the line.
    Json(&'a str),
    /// Text captured by a regex (not necessarily UTF-8).
    Text(&'a [u8]),
}

impl FieldValue<'_> {
    /// Writes the value as a JSON string: a JSON string as it is, any other
    /// JSON value as its text; returns whether invalid UTF-8 was replaced.
    pub fn write_string(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Self::Json(raw) if raw.starts_with('"') => {
                out.extend_from_slice(raw.as_bytes());
                false
            }
            Self::Json(raw) => {
                json_string(out, raw);
                false
            }
            Self::Text(bytes) => json_string_lossy(out, bytes),
        }
    }

    /// Appends the value as text, as [`FieldValue::write_string`] reads it
    /// (a JSON string unescaped); returns whether invalid UTF-8 was replaced.
    pub fn push_text(&self, out: &mut String) -> bool {
        match self {
            Self::Json(raw) if raw.starts_with('"') => {
                match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                    Some(inner) if !inner.contains('\\') => out.push_str(inner),
                    // Parsed JSON already; a string it cannot unescape (a
                    // lone surrogate) stays as it was written.
                    _ => match serde_json::from_str::<String>(raw) {
                        Ok(text) => out.push_str(&text),
                        Err(_) => out.push_str(raw),
                    },
                }
                false
            }
            Self::Json(raw) => {
                out.push_str(raw);
                false
            }
            Self::Text(bytes) => push_lossy(out, bytes),
        }
    }

    /// The value as plain text when that needs no unescaping (for levels).
    pub fn simple_text(&self) -> Option<&[u8]> {
        match self {
            Self::Json(raw) => {
                let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
                (!inner.contains('\\')).then_some(inner.as_bytes())
            }
            Self::Text(bytes) => Some(bytes),
        }
    }
}

/// Calls `each` with every parsed field of `rec` but the consumed
/// timestamp field.
pub fn for_each_field(rec: &Record<'_>, ts_field: TimestampField<'_>, mut each: impl FnMut(&str, FieldValue<'_>)) {
    let consumed = match ts_field {
        TimestampField::Consumed(k) => Some(k),
        _ => None,
    };
    match rec.fields {
        Fields::Message => {}
        Fields::Json(members) => {
            for (key, value) in members {
                if Some(key.as_ref()) != consumed {
                    each(key, FieldValue::Json(value.get()));
                }
            }
        }
        Fields::Captures(matcher) => {
            for (name, range) in matcher.fields() {
                if Some(name) != consumed {
                    each(name, FieldValue::Text(&rec.line[range]));
                }
            }
        }
    }
}

/// Appends `bytes` as text, invalid UTF-8 replaced by U+FFFD; returns
/// whether any was.
pub fn push_lossy(out: &mut String, bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            out.push_str(text);
            false
        }
        Err(_) => {
            out.push_str(&String::from_utf8_lossy(bytes));
            true
        }
    }
}

/// Appends the key of protobuf field `field` (below 16) with the
/// length-delimited wire type, and `len`: what opens an embedded message,
/// a string or bytes.
pub fn proto_field_head(out: &mut Vec<u8>, field: u8, len: usize) {
    debug_assert!(field < 16);
    out.push(field << 3 | 2);
    // Writing into a Vec cannot fail.
    let _ = prost::encode_length_delimiter(len, out);
}

/// Writes `n` in decimal.
pub fn write_int(out: &mut Vec<u8>, n: i128) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// A nanosecond time as decimal text, kept for the next record: the
/// records of a batch mostly share their read time.
#[derive(Debug, Clone, Default)]
pub struct NanosText {
    last: Option<i128>,
    text: Vec<u8>,
}

impl NanosText {
    /// Appends `ns` in decimal.
    #[inline]
    pub fn write(&mut self, ns: i128, out: &mut Vec<u8>) {
        if self.last != Some(ns) {
            self.text.clear();
            write_int(&mut self.text, ns);
            self.last = Some(ns);
        }
        out.extend_from_slice(&self.text);
    }
}

/// One dead-letter entry: `{"time":…,"sink":…,"reason":…,` then `rest`
/// (JSON members) and `}` and a newline.
pub fn dead_letter_entry(out: &mut Vec<u8>, sink: &str, reason: &str, rest: &[(&str, &[u8])]) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(jiff::Timestamp::now().to_string().as_bytes());
    out.extend_from_slice(b"\",\"sink\":");
    json_string(out, sink);
    out.extend_from_slice(b",\"reason\":");
    json_string(out, reason);
    for (key, value) in rest {
        out.push(b',');
        json_string(out, key);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"}\n");
}

/// The dead-letter entries of a request body the platform rejected whole:
/// one entry holding the request (Loki, OTLP), or one per document
/// (`_bulk`).
pub fn rejected_body_entries(api: &Api, sink: &str, reason: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    match api {
        Api::Elasticsearch { .. } => {
            for pair in super::elasticsearch::pairs(body) {
                super::elasticsearch::dead_letter_item(&mut out, sink, reason, pair);
            }
        }
        Api::Loki {
            encoding: WireEncoding::Protobuf,
            ..
        }
        | Api::Otlp {
            encoding: WireEncoding::Protobuf,
        } => {
            // A binary request: kept as base64 in its JSON entry.
            use base64::Engine as _;
            let mut text = Vec::with_capacity(body.len() * 4 / 3 + 8);
            text.push(b'"');
            text.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(body).as_bytes());
            text.push(b'"');
            dead_letter_entry(&mut out, sink, reason, &[("request_protobuf", &text)]);
        }
        _ => dead_letter_entry(&mut out, sink, reason, &[("request", body)]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns_take_the_record_day_and_refuse_bad_names() {
        let mut p = IndexPattern::new("logs-podkit-%Y.%m.%d").unwrap();
        let t: jiff::Timestamp = "2026-12-05T23:59:59.9Z".parse().unwrap();
        assert_eq!(p.name(t), b"\"logs-podkit-2026.12.05\"");
        let t: jiff::Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        assert_eq!(p.name(t), b"\"logs-podkit-2026.12.06\"");
        let mut p = IndexPattern::new("logs-app-default").unwrap();
        assert_eq!(p.name(t), b"\"logs-app-default\"");
        for bad in ["Logs", "a b", "-x", "logs-%", "a,b", ""] {
            assert!(IndexPattern::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_lay_records_out_by_group_and_key_and_drop_cut_records() {
        let layout = Layout {
            prefix: b"[",
            group_tail: b"]",
            suffix: b"]",
        };
        let mut g = Groups::default();
        let a = [("app".to_owned(), "a".to_owned())];
        let b = [("app".to_owned(), "b".to_owned())];
        let mut out = Vec::new();
        let add = |g: &mut Groups, out: &mut Vec<u8>, key, text: &str| {
            let start = out.len();
            out.extend_from_slice(text.as_bytes());
            g.push(key, start, out.len());
        };
        g.begin(&a, |_| b"A[".to_vec());
        add(&mut g, &mut out, 2, "a2");
        add(&mut g, &mut out, 1, "a1");
        g.begin(&b, |_| b"B[".to_vec());
        add(&mut g, &mut out, 5, "b5");
        g.begin(&a, |_| unreachable!());
        add(&mut g, &mut out, 3, "a3");
        add(&mut g, &mut out, 0, "cut");
        out.truncate(out.len() - 3);
        g.close(&mut out, &layout);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), "[A[a1,a2,a3],B[b5]]");
        assert_eq!(g.len(), 1, "only the current group stays");
        out.clear();
        g.close(&mut out, &layout);
        assert_eq!(out, b"[]");
    }

    #[test]
    fn framed_groups_get_their_head_and_records_length_before_their_records() {
        let mut g = Groups::default();
        let a = [("app".to_owned(), "a".to_owned())];
        let b = [("app".to_owned(), "b".to_owned())];
        let mut out = Vec::new();
        let add = |g: &mut Groups, out: &mut Vec<u8>, key, text: &str| {
            let start = out.len();
            out.extend_from_slice(text.as_bytes());
            g.push(key, start, out.len());
        };
        let frame = |body: &mut Vec<u8>, head: &[u8], len: usize| {
            body.extend_from_slice(head);
            body.extend_from_slice(format!("{len}:").as_bytes());
        };
        g.begin(&a, |_| b"A".to_vec());
        add(&mut g, &mut out, 2, "a2");
        add(&mut g, &mut out, 1, "a1");
        g.begin(&b, |_| b"B".to_vec());
        add(&mut g, &mut out, 5, "b55");
        add(&mut g, &mut out, 6, "cut");
        out.truncate(out.len() - 3);
        g.close_framed(&mut out, frame);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), "A4:a1a2B3:b55");
        assert_eq!(g.len(), 1, "only the current group stays");
        out.clear();
        g.close_framed(&mut out, frame);
        assert!(out.is_empty());
    }

    #[test]
    fn protobuf_field_heads_and_field_text() {
        let mut out = Vec::new();
        proto_field_head(&mut out, 2, 300);
        assert_eq!(out, [0x12, 0xac, 0x02]);
        let mut text = String::new();
        assert!(!FieldValue::Json(r#""a"b""#).push_text(&mut text));
        assert!(!FieldValue::Json("1.5").push_text(&mut text));
        assert!(!FieldValue::Json(r#""plain""#).push_text(&mut text));
        assert!(FieldValue::Text(b"x\xff").push_text(&mut text));
        assert_eq!(text, "a\"b1.5plainx\u{FFFD}");
    }
}
