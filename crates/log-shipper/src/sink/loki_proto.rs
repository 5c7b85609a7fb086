//! Loki's push API, protobuf encoding (`--loki-encoding protobuf`): the
//! body is a `logproto.PushRequest` (Loki's `pkg/push/push.proto`),
//! snappy block-compressed (by the sink, see [`crate::delivery`]), sent as
//! `Content-Type: application/x-protobuf`:
//!
//! ```text
//! PushRequest      { repeated StreamAdapter streams = 1; }
//! StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                    repeated LabelPairAdapter structuredMetadata = 3; }
//! LabelPairAdapter { string name = 1; string value = 2; }
//! ```
//!
//! What it holds is what the JSON push holds ([`super::loki`]): a stream
//! per label set, its labels as the selector `{name="value",…}` (names
//! made valid for Loki, `job="log-shipper"` for a source without labels;
//! the `hash` left for Loki to compute), the entries of a stream in time
//! order, structured metadata `file` and the parsed fields. Each entry is
//! encoded with `prost` as it comes; [`Groups::close_framed`] frames the
//! streams when the push is sealed.

use crate::record::{Record, TimestampField};

use super::loki::label_name;
use super::platform::{Groups, for_each_field, proto_field_head, push_lossy};

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second (0 to 999,999,999).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `logproto.EntryAdapter`: one log line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When it happened.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Its structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured metadata pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `PushRequest.streams`.
const STREAMS: u8 = 1;
/// `StreamAdapter.labels`.
const LABELS: u8 = 1;
/// `StreamAdapter.entries`.
const ENTRIES: u8 = 2;

/// Encodes records as Loki `EntryAdapter`s, grouped by stream.
#[derive(Debug, Clone)]
pub struct LokiProtoEncoder {
    max_streams: usize,
    groups: Groups,
    /// The entry being encoded, kept to reuse its buffers; its first
    /// metadata pair is the current group's `file`.
    entry: EntryAdapter,
}

impl LokiProtoEncoder {
    /// An encoder putting at most `max_streams` streams in a push.
    pub fn new(max_streams: usize) -> Self {
        Self {
            max_streams,
            groups: Groups::default(),
            entry: EntryAdapter {
                timestamp: None,
                line: String::with_capacity(256),
                structured_metadata: vec![LabelPairAdapter {
                    name: "file".into(),
                    value: String::new(),
                }],
            },
        }
    }

    /// Records of `file` with `labels` follow.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) {
        self.groups.begin(labels, stream_head);
        let value = &mut self.entry.structured_metadata[0].value;
        value.clear();
        value.push_str(file);
    }

    /// Whether the open push holds more streams than allowed.
    pub fn over_limit(&self) -> bool {
        self.groups.len() > self.max_streams
    }

    /// Appends one `entries` field; returns whether invalid UTF-8 was replaced.
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ns = rec.timestamp().as_nanosecond();
        let entry = &mut self.entry;
        entry.timestamp = Some(Timestamp {
            seconds: ns.div_euclid(1_000_000_000) as i64,
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        });
        entry.line.clear();
        let mut bad = push_lossy(&mut entry.line, rec.line);
        // Reuse the pairs' strings; the first is `file`.
        let meta = &mut entry.structured_metadata;
        let mut n = 1;
        for_each_field(rec, ts_field, |key, value| {
            if key == "file" {
                return;
            }
            if n == meta.len() {
                meta.push(LabelPairAdapter::default());
            }
            let pair = &mut meta[n];
            pair.name.clear();
            pair.name.push_str(key);
            pair.value.clear();
            bad |= value.push_text(&mut pair.value);
            n += 1;
        });
        meta.truncate(n);
        proto_field_head(out, ENTRIES, prost::Message::encoded_len(&*entry));
        prost::Message::encode_raw(&*entry, out);
        self.groups.push(ns, start, out.len());
        bad
    }

    /// Lays the entries out as the push body (before compression).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.groups.close_framed(out, |body, head, entries_len| {
            proto_field_head(body, STREAMS, head.len() + entries_len);
            body.extend_from_slice(head);
        });
    }
}

/// The `labels` field of a stream: its selector, `{name="value",…}`.
fn stream_head(labels: &[(String, String)]) -> Vec<u8> {
    let selector = selector(labels);
    let mut head = Vec::with_capacity(selector.len() + 4);
    proto_field_head(&mut head, LABELS, selector.len());
    head.extend_from_slice(selector.as_bytes());
    head
}

/// The label set as Loki parses a stream selector (values quoted as Go
/// string literals).
pub fn selector(labels: &[(String, String)]) -> String {
    let mut out = String::from("{");
    if labels.is_empty() {
        out.push_str("job=\"log-shipper\"");
    }
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&label_name(k));
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Fields;
    use podkit_testkit::platform::loki_proto::{PushRequest, parse_selector};
    use prost::Message as _;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    fn rec<'a>(line: &'a [u8], t: &str, labels: &'a [(String, String)], fields: Fields<'a>) -> Record<'a> {
        Record {
            line,
            file: "/var/log/app.log",
            read_time: t.parse().unwrap(),
            time: None,
            labels,
            fields,
        }
    }

    #[test]
    fn pushes_decode_as_loki_push_requests_with_streams_in_order() {
        let web = vec![
            ("pod".to_owned(), "web-1".to_owned()),
            ("k8s.ns".to_owned(), "sh\"op\\".to_owned()),
        ];
        let none: Vec<(String, String)> = Vec::new();
        let line = br#"{"level":"info","n":7,"s":"a\"b","file":"mine"}"#;
        let members: Vec<(Cow<'_, str>, &RawValue)> =
            serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(line)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect();
        let mut e = LokiProtoEncoder::new(10);
        let mut out = Vec::new();
        e.begin_group("/var/log/app.log", &web);
        let bad = e.record(
            &rec(line, "2026-12-06T00:00:02.5Z", &web, Fields::Json(&members)),
            TimestampField::None,
            &mut out,
        );
        assert!(!bad);
        assert!(e.record(
            &rec(b"first \xff", "2026-12-06T00:00:01Z", &web, Fields::Message),
            TimestampField::None,
            &mut out,
        ));
        e.begin_group("/var/log/other.log", &none);
        e.record(
            &rec(b"x", "2026-12-06T00:00:00Z", &none, Fields::Message),
            TimestampField::None,
            &mut out,
        );
        assert!(!e.over_limit());
        e.close(&mut out);
        let push = PushRequest::decode(&out[..]).unwrap();
        assert_eq!(
            push.encode_to_vec(),
            out,
            "no field the proto lacks, laid out canonically"
        );
        assert_eq!(push.streams.len(), 2);
        let s = &push.streams[0];
        let labels = parse_selector(&s.labels).unwrap();
        assert_eq!(labels["pod"], "web-1");
        assert_eq!(labels["k8s_ns"], "sh\"op\\");
        assert_eq!(s.entries.len(), 2);
        let first = &s.entries[0];
        assert_eq!(first.line, "first \u{FFFD}");
        let ts = first.timestamp.as_ref().unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_796_515_201, 0));
        let pairs = |i: usize| -> Vec<(String, String)> {
            s.entries[i]
                .structured_metadata
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect()
        };
        assert_eq!(pairs(0), [("file".to_owned(), "/var/log/app.log".to_owned())]);
        let second = &s.entries[1];
        assert_eq!(second.line, std::str::from_utf8(line).unwrap());
        let ts = second.timestamp.as_ref().unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_796_515_202, 500_000_000));
        let meta = pairs(1);
        assert_eq!(meta[0], ("file".to_owned(), "/var/log/app.log".to_owned()));
        for (k, v) in [("level", "info"), ("n", "7"), ("s", "a\"b")] {
            assert!(meta.contains(&(k.to_owned(), v.to_owned())), "{k} in {meta:?}");
        }
        assert!(
            !meta.iter().any(|(_, v)| v == "mine"),
            "a `file` field yields to the file"
        );
        let other = &push.streams[1];
        assert_eq!(parse_selector(&other.labels).unwrap()["job"], "log-shipper");
        assert_eq!(other.entries[0].structured_metadata[0].value, "/var/log/other.log");
        assert_eq!(
            other.entries[0].structured_metadata.len(),
            1,
            "no pair left from before"
        );
    }

    #[test]
    fn streams_past_the_limit_are_reported_and_selectors_quote_values() {
        let mut e = LokiProtoEncoder::new(1);
        e.begin_group("f", &[("a".into(), "1".into())]);
        assert!(!e.over_limit());
        e.begin_group("f", &[("a".into(), "2".into())]);
        assert!(e.over_limit());
        let labels = [("app".to_owned(), "x\ny\t\u{1}".to_owned())];
        assert_eq!(selector(&labels), "{app=\"x\\ny\\t\\u0001\"}");
        assert_eq!(parse_selector(&selector(&labels)).unwrap()["app"], labels[0].1);
    }
}
