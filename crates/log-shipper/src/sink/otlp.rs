//! OTLP/HTTP logs, JSON encoding (`POST /v1/logs`): an
//! `ExportLogsServiceRequest` in the OTLP JSON mapping (lowerCamelCase
//! names, 64-bit integers as decimal strings, enums as numbers):
//!
//! ```json
//! {"resourceLogs":[{"resource":{"attributes":[{"key":"k8s.pod.name","value":{"stringValue":"web-1"}}]},
//!   "scopeLogs":[{"scope":{"name":"log-shipper","version":"0.1.0"},"logRecords":[
//!     {"observedTimeUnixNano":"1733479200124000000","timeUnixNano":"1733479200123000000",
//!      "severityNumber":9,"severityText":"info","body":{"stringValue":"GET /cart 200"},
//!      "attributes":[{"key":"log.file.path","value":{"stringValue":"/var/log/app.log"}}]}]}]}]}
//! ```
//!
//! - One `ResourceLogs` per label set. The labels `pod`, `namespace`,
//!   `container`, `node` and `pod_uid` become the Kubernetes
//!   semantic-convention attributes `k8s.pod.name`, `k8s.namespace.name`,
//!   `k8s.container.name`, `k8s.node.name` and `k8s.pod.uid`; other labels
//!   keep their names.
//! - A log record: `observedTimeUnixNano` (the read time), `timeUnixNano`
//!   (the event time from the timestamp field; left out, which means
//!   unknown, when there is none, as the filelog receiver does), `severityText` and
//!   `severityNumber` from a parsed `level` (or `severity`, `lvl`,
//!   `loglevel`) field, `body` (the line), `attributes`: `log.file.path`
//!   and the other parsed fields (strings, numbers, booleans; objects and
//!   arrays as their JSON text).
//!
//! Answers: 2xx accepted, and a `partialSuccess.rejectedLogRecords` in it
//! is counted and logged (the spec says not to retry those); 429, 502, 503
//! and 504 retried; anything else rejected (the OTLP spec makes every other
//! status final).

use serde::Deserialize;

use crate::rec::escape::{json_string, json_string_lossy};
use crate::record::{Record, TimestampField};

use super::platform::{FieldValue, Groups, Layout, NanosText, for_each_field, write_int};

const LAYOUT: Layout = Layout {
    prefix: b"{\"resourceLogs\":[",
    group_tail: b"]}]}",
    suffix: b"]}",
};

/// Keys read as the severity, in this order.
pub(super) const LEVEL_KEYS: [&str; 4] = ["level", "severity", "lvl", "loglevel"];

/// Encodes records as OTLP log records, grouped by resource.
///
/// A body whose records all share one resource (one file's batch, the
/// common case) is laid out in the buffer as the records come: the body's
/// head and the resource's, then the records with commas between them, so
/// closing it appends four bytes instead of copying the body. When a
/// second resource joins the body, the records written so far are handed
/// to [`Groups`], which lays the body out again at close.
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    groups: Groups,
    /// `,"attributes":[{"key":"log.file.path",…}` for the current group.
    file_attr: Vec<u8>,
    time: NanosText,
    observed: NanosText,
    /// The labels of the current group, and its resource head.
    labels: Vec<(String, String)>,
    head: Vec<u8>,
    /// Where the open body stands.
    body: Body,
    /// The records laid out in place (start and end in the buffer).
    spans: Vec<(usize, usize)>,
}

/// How the open body is being laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No record yet.
    Empty,
    /// In place: the body's and the resource's head, then the records.
    InPlace,
    /// By [`Groups`] at close.
    Grouped,
}

impl Default for OtlpEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl OtlpEncoder {
    /// An encoder.
    pub fn new() -> Self {
        Self {
            groups: Groups::default(),
            file_attr: Vec::with_capacity(128),
            time: NanosText::default(),
            observed: NanosText::default(),
            labels: Vec::new(),
            head: resource_head(&[]),
            body: Body::Empty,
            spans: Vec::new(),
        }
    }

    /// Records of `file` with `labels` follow.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) {
        if self.labels != labels {
            if self.body == Body::InPlace {
                // A second resource: the records so far are the current group's.
                for &(start, end) in &self.spans {
                    self.groups.push(0, start, end);
                }
                self.spans.clear();
                self.body = Body::Grouped;
            }
            self.labels = labels.to_vec();
            self.head = resource_head(labels);
        }
        self.groups.begin(labels, |_| self.head.clone());
        self.file_attr.clear();
        self.file_attr
            .extend_from_slice(b",\"attributes\":[{\"key\":\"log.file.path\",\"value\":{\"stringValue\":");
        json_string(&mut self.file_attr, file);
        self.file_attr.extend_from_slice(b"}}");
    }

    /// Appends one log record; returns whether invalid UTF-8 was replaced.
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, out: &mut Vec<u8>) -> bool {
        match self.body {
            Body::Empty if out.is_empty() => {
                out.extend_from_slice(LAYOUT.prefix);
                out.extend_from_slice(&self.head);
                self.body = Body::InPlace;
            }
            Body::Empty => self.body = Body::Grouped,
            // After the record before (a record cut off the body takes its comma along).
            Body::InPlace => out.push(b','),
            Body::Grouped => {}
        }
        let start = out.len();
        out.extend_from_slice(b"{\"observedTimeUnixNano\":\"");
        self.observed.write(rec.read_time.as_nanosecond(), out);
        out.push(b'"');
        if let Some(time) = rec.time {
            out.extend_from_slice(b",\"timeUnixNano\":\"");
            self.time.write(time.as_nanosecond(), out);
            out.push(b'"');
        }
        let mut level_key = None;
        for_each_field(rec, ts_field, |key, value| {
            if level_key.is_none()
                && LEVEL_KEYS.contains(&key)
                && let Some(text) = value.simple_text()
            {
                level_key = Some(LEVEL_KEYS.iter().position(|k| *k == key).unwrap_or(0));
                out.extend_from_slice(b",\"severityNumber\":");
                write_int(out, i128::from(severity_number(text)));
                out.extend_from_slice(b",\"severityText\":");
                json_string_lossy(out, text);
            }
        });
        out.extend_from_slice(b",\"body\":{\"stringValue\":");
        let mut bad = json_string_lossy(out, rec.line);
        out.push(b'}');
        out.extend_from_slice(&self.file_attr);
        let level_key = level_key.map(|i| LEVEL_KEYS[i]);
        for_each_field(rec, ts_field, |key, value| {
            if Some(key) == level_key {
                return;
            }
            out.extend_from_slice(b",{\"key\":");
            json_string(out, key);
            out.extend_from_slice(b",\"value\":");
            bad |= any_value(out, &value);
            out.push(b'}');
        });
        out.extend_from_slice(b"]}");
        if self.body == Body::InPlace {
            self.spans.push((start, out.len()));
        } else {
            self.groups.push(0, start, out.len());
        }
        bad
    }

    /// Lays the records out as the request body.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        let body = std::mem::replace(&mut self.body, Body::Empty);
        if body == Body::InPlace {
            // Records cut off the body (the caller truncated it) are left out.
            self.spans.retain(|&(_, end)| end <= out.len());
            if self.spans.last().is_some_and(|&(_, end)| end == out.len()) {
                self.spans.clear();
                out.extend_from_slice(LAYOUT.group_tail);
                out.extend_from_slice(LAYOUT.suffix);
                // Nothing was noted in the groups: this only keeps the current one.
                self.groups.close(&mut Vec::new(), &LAYOUT);
                return;
            }
            for &(start, end) in &self.spans {
                self.groups.push(0, start, end);
            }
            self.spans.clear();
        }
        self.groups.close(out, &LAYOUT);
    }
}

/// `{"resource":{"attributes":[…]},"scopeLogs":[{"scope":{…},"logRecords":[`.
fn resource_head(labels: &[(String, String)]) -> Vec<u8> {
    let mut head = b"{\"resource\":{\"attributes\":[".to_vec();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        head.extend_from_slice(b"{\"key\":");
        json_string(&mut head, resource_key(k));
        head.extend_from_slice(b",\"value\":{\"stringValue\":");
        json_string(&mut head, v);
        head.extend_from_slice(b"}}");
    }
    head.extend_from_slice(b"]},\"scopeLogs\":[{\"scope\":{\"name\":\"log-shipper\",\"version\":");
    json_string(&mut head, env!("CARGO_PKG_VERSION"));
    head.extend_from_slice(b"},\"logRecords\":[");
    head
}

/// The resource attribute of a label: the Kubernetes semantic-convention
/// name of `pod`, `namespace`, `container`, `node` and `pod_uid`, else the
/// label's own.
pub(super) fn resource_key(label: &str) -> &str {
    match label {
        "pod" => "k8s.pod.name",
        "namespace" => "k8s.namespace.name",
        "container" => "k8s.container.name",
        "node" => "k8s.node.name",
        "pod_uid" => "k8s.pod.uid",
        other => other,
    }
}

/// How OTLP types a parsed field's value, the same in both encodings: JSON
/// `true`/`false` as a bool, a JSON number as an int when it has no fraction
/// or exponent and fits an i64, any other number as a double, and anything
/// else as a string.
pub(super) enum ValueKind<'a> {
    Bool(bool),
    /// The number as written, and its value.
    Int(&'a str, i64),
    /// The number as written.
    Double(&'a str),
    Text,
}

/// The [`ValueKind`] of a parsed field.
pub(super) fn value_kind<'a>(value: &FieldValue<'a>) -> ValueKind<'a> {
    match *value {
        FieldValue::Json("true") => ValueKind::Bool(true),
        FieldValue::Json("false") => ValueKind::Bool(false),
        FieldValue::Json(raw) if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
            match (!raw.contains(['.', 'e', 'E']))
                .then(|| raw.parse::<i64>().ok())
                .flatten()
            {
                Some(int) => ValueKind::Int(raw, int),
                None => ValueKind::Double(raw),
            }
        }
        _ => ValueKind::Text,
    }
}

/// An `AnyValue` for a parsed field; returns whether invalid UTF-8 was replaced.
fn any_value(out: &mut Vec<u8>, value: &FieldValue<'_>) -> bool {
    match value_kind(value) {
        ValueKind::Bool(b) => {
            out.extend_from_slice(b"{\"boolValue\":");
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        ValueKind::Double(raw) => {
            out.extend_from_slice(b"{\"doubleValue\":");
            out.extend_from_slice(raw.as_bytes());
        }
        ValueKind::Int(raw, _) => {
            out.extend_from_slice(b"{\"intValue\":\"");
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
        }
        ValueKind::Text => {
            out.extend_from_slice(b"{\"stringValue\":");
            let bad = value.write_string(out);
            out.push(b'}');
            return bad;
        }
    }
    out.push(b'}');
    false
}

/// The OpenTelemetry severity number of a level name (0: unknown).
pub(super) fn severity_number(level: &[u8]) -> u8 {
    let lower = level.to_ascii_lowercase();
    let starts = |p: &[u8]| lower.starts_with(p);
    if starts(b"trace") {
        1
    } else if starts(b"debug") || lower == b"dbg" {
        5
    } else if starts(b"info") || lower == b"notice" {
        9
    } else if starts(b"warn") {
        13
    } else if starts(b"err") {
        17
    } else if starts(b"fatal") || starts(b"crit") || starts(b"panic") || starts(b"emerg") || starts(b"alert") {
        21
    } else {
        0
    }
}

/// Log records a 2xx answer says the collector dropped, and its message.
pub fn rejected_records(answer: &[u8]) -> (u64, Option<String>) {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        partial_success: Option<Partial>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Partial {
        #[serde(default)]
        rejected_log_records: Option<serde_json::Value>,
        #[serde(default)]
        error_message: Option<String>,
    }
    let Ok(Answer {
        partial_success: Some(partial),
    }) = serde_json::from_slice::<Answer>(answer)
    else {
        return (0, None);
    };
    let n = match partial.rejected_log_records {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    (n, partial.error_message.filter(|m| !m.is_empty()))
}

/// Whether an OTLP answer status is worth retrying (429, 502, 503, 504).
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Fields;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    #[test]
    fn records_group_by_resource_with_k8s_attributes_and_severity() {
        let labels = vec![
            ("pod".to_owned(), "web-1".to_owned()),
            ("namespace".to_owned(), "shop".to_owned()),
            ("team".to_owned(), "a".to_owned()),
        ];
        let line = br#"{"level":"WARN","n":7,"x":1.5,"ok":true,"o":{"a":1},"s":"t"}"#;
        let members: Vec<(Cow<'_, str>, &RawValue)> =
            serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(line)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect();
        let rec = Record {
            line,
            file: "/var/log/app.log",
            read_time: "2026-12-06T00:00:01Z".parse().unwrap(),
            time: Some("2026-12-06T00:00:00Z".parse().unwrap()),
            labels: &labels,
            fields: Fields::Json(&members),
        };
        let mut e = OtlpEncoder::new();
        let mut out = Vec::new();
        e.begin_group(rec.file, &labels);
        e.record(&rec, TimestampField::None, &mut out);
        e.close(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let resource = &v["resourceLogs"][0]["resource"]["attributes"];
        assert_eq!(resource[0]["key"], "k8s.pod.name");
        assert_eq!(resource[1]["key"], "k8s.namespace.name");
        assert_eq!(resource[2]["key"], "team");
        let r = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(r["timeUnixNano"], "1796515200000000000");
        assert_eq!(r["observedTimeUnixNano"], "1796515201000000000");
        assert_eq!(r["severityNumber"], 13);
        assert_eq!(r["severityText"], "WARN");
        assert_eq!(r["body"]["stringValue"], std::str::from_utf8(line).unwrap());
        let attrs: Vec<(String, serde_json::Value)> = r["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
            .collect();
        let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("log.file.path")["stringValue"], "/var/log/app.log");
        assert_eq!(get("n")["intValue"], "7");
        assert_eq!(get("x")["doubleValue"], 1.5);
        assert_eq!(get("ok")["boolValue"], true);
        assert_eq!(get("o")["stringValue"], r#"{"a":1}"#);
        assert_eq!(get("s")["stringValue"], "t");
        assert!(attrs.iter().all(|(k, _)| k != "level"), "the level is the severity");
    }

    /// A plain record of `file` with `labels` and line `line`.
    fn plain<'a>(line: &'a [u8], file: &'a str, labels: &'a [(String, String)]) -> Record<'a> {
        Record {
            line,
            file,
            read_time: "2026-12-06T00:00:01Z".parse().unwrap(),
            time: None,
            labels,
            fields: Fields::Message,
        }
    }

    /// (resource attributes, bodies) of each `ResourceLogs` of a body.
    fn resources(body: &[u8]) -> Vec<(serde_json::Value, Vec<String>)> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["resourceLogs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rl| {
                let bodies = rl["scopeLogs"][0]["logRecords"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["body"]["stringValue"].as_str().unwrap().to_owned())
                    .collect();
                (rl["resource"]["attributes"].clone(), bodies)
            })
            .collect()
    }

    #[test]
    fn bodies_of_one_resource_are_laid_out_in_place_and_others_by_group() {
        let a = vec![("pod".to_owned(), "a".to_owned())];
        let b = vec![("pod".to_owned(), "b".to_owned())];
        let mut e = OtlpEncoder::new();
        let mut out = Vec::new();
        // One resource, then a record cut off the body by the caller.
        e.begin_group("/f", &a);
        e.record(&plain(b"one", "/f", &a), TimestampField::None, &mut out);
        e.record(&plain(b"two \"q\"", "/f", &a), TimestampField::None, &mut out);
        let mark = out.len();
        e.record(&plain(b"cut", "/f", &a), TimestampField::None, &mut out);
        out.truncate(mark);
        e.close(&mut out);
        let got = resources(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0[0]["value"]["stringValue"], "a");
        assert_eq!(got[0].1, ["one", "two \"q\""]);
        // The next body: a, b, a again: two resources, records in group order.
        out.clear();
        e.record(&plain(b"a1", "/f", &a), TimestampField::None, &mut out);
        e.begin_group("/g", &b);
        e.record(&plain(b"b1", "/g", &b), TimestampField::None, &mut out);
        e.begin_group("/f", &a);
        e.record(&plain(b"a2", "/f", &a), TimestampField::None, &mut out);
        e.close(&mut out);
        let got = resources(&out);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].0[0]["value"]["stringValue"].as_str(), &got[0].1[..]),
            (Some("a"), &["a1".to_owned(), "a2".to_owned()][..])
        );
        assert_eq!(got[1].1, ["b1"]);
        // And one in place again, of the group begun last.
        out.clear();
        e.record(&plain(b"a3", "/f", &a), TimestampField::None, &mut out);
        e.close(&mut out);
        assert_eq!(resources(&out), vec![(got[0].0.clone(), vec!["a3".to_owned()])]);
        // A body without records is an empty request.
        out.clear();
        e.close(&mut out);
        assert_eq!(out, b"{\"resourceLogs\":[]}");
    }

    #[test]
    fn severities_and_partial_success() {
        for (text, n) in [
            ("info", 9),
            ("Warning", 13),
            ("ERROR", 17),
            ("trace", 1),
            ("fatal", 21),
            ("x", 0),
        ] {
            assert_eq!(severity_number(text.as_bytes()), n, "{text}");
        }
        assert_eq!(
            rejected_records(br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too big"}}"#),
            (3, Some("too big".into()))
        );
        assert_eq!(
            rejected_records(br#"{"partialSuccess":{"rejectedLogRecords":2}}"#),
            (2, None)
        );
        assert_eq!(rejected_records(b"{}"), (0, None));
        assert_eq!(rejected_records(b""), (0, None));
    }
}
