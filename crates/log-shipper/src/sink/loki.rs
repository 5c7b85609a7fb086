//! Loki's push API, JSON encoding (`POST /loki/api/v1/push`):
//!
//! ```json
//! {"streams":[{"stream":{"namespace":"shop","pod":"web-1"},
//!   "values":[["1733440000123000000","GET /cart 200",{"file":"/var/log/app.log","level":"info"}]]}]}
//! ```
//!
//! - A stream is a label set: the source's labels (names made valid for
//!   Loki: `[a-zA-Z_][a-zA-Z0-9_]*`, other characters become `_`; a source
//!   without labels gets `job="log-shipper"`, since Loki needs one).
//! - A value is `[nanosecond timestamp as a string, the line, structured
//!   metadata]`; the metadata holds `file` and the parsed fields (strings;
//!   other JSON values as their JSON text), the timestamp field left out.
//! - Within a push, a stream's entries are in time order (stable, so lines
//!   of equal time keep their file order); a push holds at most
//!   `--loki-max-streams` streams.
//!
//! Answers are the plain HTTP sink's: 2xx accepted; 429 and 5xx retried;
//! 400 (`entry out of order`, `timestamp too old`, …) rejected with
//! Loki's message as the reason.

use crate::rec::escape::{json_string, json_string_lossy};
use crate::record::{Record, TimestampField};

use super::platform::{Groups, Layout, NanosText, for_each_field};

const LAYOUT: Layout = Layout {
    prefix: b"{\"streams\":[",
    group_tail: b"]}",
    suffix: b"]}",
};

/// Encodes records as Loki push values, grouped by stream.
#[derive(Debug, Clone)]
pub struct LokiEncoder {
    max_streams: usize,
    groups: Groups,
    /// `,{"file":"…"` for the current group.
    meta_head: Vec<u8>,
    time: NanosText,
}

impl LokiEncoder {
    /// An encoder putting at most `max_streams` streams in a push.
    pub fn new(max_streams: usize) -> Self {
        Self {
            max_streams,
            groups: Groups::default(),
            meta_head: Vec::with_capacity(128),
            time: NanosText::default(),
        }
    }

    /// Records of `file` with `labels` follow.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) {
        self.groups.begin(labels, stream_head);
        self.meta_head.clear();
        self.meta_head.extend_from_slice(b",{\"file\":");
        json_string(&mut self.meta_head, file);
    }

    /// Whether the open push holds more streams than allowed.
    pub fn over_limit(&self) -> bool {
        self.groups.len() > self.max_streams
    }

    /// Appends one value; returns whether invalid UTF-8 was replaced.
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ns = rec.timestamp().as_nanosecond();
        out.extend_from_slice(b"[\"");
        self.time.write(ns, out);
        out.extend_from_slice(b"\",");
        let mut bad = json_string_lossy(out, rec.line);
        out.extend_from_slice(&self.meta_head);
        for_each_field(rec, ts_field, |key, value| {
            if key == "file" {
                return;
            }
            out.push(b',');
            json_string(out, key);
            out.push(b':');
            bad |= value.write_string(out);
        });
        out.extend_from_slice(b"}]");
        self.groups.push(ns, start, out.len());
        bad
    }

    /// Lays the values out as the push body.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.groups.close(out, &LAYOUT);
    }
}

/// `{"stream":{…},"values":[`.
fn stream_head(labels: &[(String, String)]) -> Vec<u8> {
    let mut head = b"{\"stream\":{".to_vec();
    if labels.is_empty() {
        head.extend_from_slice(b"\"job\":\"log-shipper\"");
    }
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        json_string(&mut head, &label_name(k));
        head.push(b':');
        json_string(&mut head, v);
    }
    head.extend_from_slice(b"},\"values\":[");
    head
}

/// A label name Loki (Prometheus) accepts.
pub(super) fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Fields;

    fn rec<'a>(line: &'a [u8], t: &str, labels: &'a [(String, String)]) -> Record<'a> {
        Record {
            line,
            file: "/var/log/app.log",
            read_time: t.parse().unwrap(),
            time: None,
            labels,
            fields: Fields::Message,
        }
    }

    #[test]
    fn pushes_group_streams_and_order_their_values_by_time() {
        let web = vec![
            ("pod".to_owned(), "web-1".to_owned()),
            ("k8s.ns".to_owned(), "shop".to_owned()),
        ];
        let none: Vec<(String, String)> = Vec::new();
        let mut e = LokiEncoder::new(10);
        let mut out = Vec::new();
        e.begin_group("/var/log/app.log", &web);
        e.record(
            &rec(b"second", "2026-12-06T00:00:02Z", &web),
            TimestampField::None,
            &mut out,
        );
        e.record(
            &rec(b"first \xff", "2026-12-06T00:00:01Z", &web),
            TimestampField::None,
            &mut out,
        );
        e.begin_group("/var/log/other.log", &none);
        e.record(
            &rec(b"x", "2026-12-06T00:00:00Z", &none),
            TimestampField::None,
            &mut out,
        );
        assert!(!e.over_limit());
        e.close(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"streams":[
                {"stream":{"pod":"web-1","k8s_ns":"shop"},"values":[
                    ["1796515201000000000","first \u{FFFD}",{"file":"/var/log/app.log"}],
                    ["1796515202000000000","second",{"file":"/var/log/app.log"}]]},
                {"stream":{"job":"log-shipper"},"values":[["1796515200000000000","x",{"file":"/var/log/other.log"}]]}
            ]})
        );
    }

    #[test]
    fn streams_past_the_limit_are_reported() {
        let mut e = LokiEncoder::new(1);
        e.begin_group("f", &[("a".into(), "1".into())]);
        assert!(!e.over_limit());
        e.begin_group("f", &[("a".into(), "2".into())]);
        assert!(e.over_limit());
        assert_eq!(label_name("9lives.x"), "_9lives_x");
    }
}
