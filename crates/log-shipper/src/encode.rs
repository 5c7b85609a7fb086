//! Encoders: [`Record`]s to bytes, written straight into a sink's buffer.
//!
//! - `ndjson`: one JSON object per line (keys as [`crate::record`] lists them).
//! - `raw`: the line as read, bytes untouched, and `\n`.
//! - `json-array`: the same objects, as one JSON array per request.
//! - the platform sinks' wire formats (Loki, `_bulk`, OTLP), laid out by a
//!   [`PlatformEncoder`] (`_bulk` documents are this module's NDJSON objects
//!   with `@timestamp`).
//!
//! The hot path (no parsing) costs one copy of a per-batch prefix and one
//! escaping pass per line: the part of the object shared by every line of a
//! batch (`,"file":…` and the labels) is encoded once per batch
//! ([`Encoder::begin_group`]; the last few groups are kept, so stdout and
//! stderr runs of a container log switch back and forth for free) and the
//! time is formatted in full once per second. Invalid UTF-8 becomes U+FFFD
//! and is counted, so the output is always valid JSON.

use crate::args::Format;
use crate::rec::escape::{json_string, json_string_lossy};
use crate::rec::timestamp::Rfc3339Millis;
use crate::record::{Fields, RESERVED_KEYS, Record, TimestampField};
use crate::sink::platform::{PlatformEncoder, Written};

/// Counters an encoder keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeStats {
    /// Records whose invalid UTF-8 was replaced by U+FFFD.
    pub invalid_utf8: u64,
    /// Parsed fields left out because their key was taken.
    pub field_conflicts: u64,
}

/// What the records of a group share, encoded.
#[derive(Debug, Clone, Default)]
struct Group {
    /// Which filling of its slot this is (see [`GroupId`]).
    serial: u64,
    file: String,
    labels: Vec<(String, String)>,
    /// `,"file":"…"` and the labels.
    tail: Vec<u8>,
}

/// Groups an encoder keeps encoded.
const GROUPS: usize = 4;

/// A group an [`Encoder`] began, to go back to without comparing its file
/// and labels again ([`Encoder::resume_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupId {
    slot: usize,
    serial: u64,
}

/// Encodes records in one [`Format`].
#[derive(Debug, Clone)]
pub struct Encoder {
    format: Format,
    /// The last few groups (stdout and stderr runs of one file alternate),
    /// each encoded once.
    groups: Vec<Group>,
    /// The current one in `groups`.
    current: usize,
    /// The serial of the last group encoded.
    serial: u64,
    clock: Rfc3339Millis,
    stats: EncodeStats,
    /// A platform sink's layout, which replaces `format`.
    platform: Option<Box<PlatformEncoder>>,
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            groups: Vec::with_capacity(GROUPS),
            current: 0,
            serial: 0,
            clock: Rfc3339Millis::new(),
            stats: EncodeStats::default(),
            platform: None,
        }
    }

    /// The encoder of a sink: its platform's layout, or its format's.
    pub fn for_sink(config: &crate::config::SinkConfig) -> Self {
        let mut encoder = Self::new(config.format);
        if let crate::config::SinkKind::Http(http) = &config.kind {
            encoder.platform = PlatformEncoder::new(&http.api).map(Box::new);
        }
        encoder
    }

    /// Whether the open body holds more groups (Loki streams) than one
    /// request may: the caller seals it before adding the current group's
    /// records.
    pub fn over_limit(&self) -> bool {
        self.platform.as_ref().is_some_and(|p| p.over_limit())
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Takes the counters.
    pub fn take_stats(&mut self) -> EncodeStats {
        std::mem::take(&mut self.stats)
    }

    /// Starts a group of records that share `file` and `labels` (a batch
    /// of lines read from one file, a run of one stream's records): what
    /// they share is encoded once, and kept for the next few groups.
    pub fn begin_group(&mut self, file: &str, labels: &[(String, String)]) -> GroupId {
        if let Some(p) = &mut self.platform {
            p.begin_group(file, labels);
        }
        self.own_group(file, labels)
    }

    /// Starts a group again that [`Encoder::begin_group`] returned `id` for,
    /// with the same `file` and `labels`: without comparing them when the
    /// encoder still holds it.
    pub fn resume_group(&mut self, id: GroupId, file: &str, labels: &[(String, String)]) -> GroupId {
        if let Some(p) = &mut self.platform {
            p.begin_group(file, labels);
        }
        match self.groups.get(id.slot) {
            Some(g) if g.serial == id.serial => {
                self.current = id.slot;
                id
            }
            _ => self.own_group(file, labels),
        }
    }

    /// The encoder's own part of beginning a group.
    fn own_group(&mut self, file: &str, labels: &[(String, String)]) -> GroupId {
        if self.format == Format::Raw && self.platform.is_none() {
            return GroupId {
                slot: usize::MAX,
                serial: 0,
            };
        }
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| g.file == file && g.labels.as_slice() == labels)
        {
            self.current = i;
            return GroupId {
                slot: i,
                serial: self.groups[i].serial,
            };
        }
        // A new one, in place of the one after the current (round robin).
        self.current = if self.groups.len() < GROUPS {
            self.groups.push(Group::default());
            self.groups.len() - 1
        } else {
            (self.current + 1) % GROUPS
        };
        self.serial += 1;
        let g = &mut self.groups[self.current];
        g.serial = self.serial;
        g.file.clear();
        g.file.push_str(file);
        g.labels.clear();
        g.labels.extend_from_slice(labels);
        g.tail.clear();
        g.tail.extend_from_slice(b",\"file\":");
        json_string(&mut g.tail, file);
        for (k, v) in labels {
            g.tail.push(b',');
            json_string(&mut g.tail, k);
            g.tail.push(b':');
            json_string(&mut g.tail, v);
        }
        GroupId {
            slot: self.current,
            serial: self.serial,
        }
    }

    /// Appends what opens a batch body (`[` for a JSON array).
    pub fn open(&mut self, out: &mut Vec<u8>) {
        if self.format == Format::JsonArray && self.platform.is_none() {
            out.push(b'[');
        }
    }

    /// Appends what closes a batch body (`]` for a JSON array).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(p) = &mut self.platform {
            p.close(out);
            return;
        }
        if self.format == Format::JsonArray {
            out.push(b']');
        }
    }

    /// Appends one record; `first` says whether it is the first of its body.
    /// The record's file and labels must be those of the last
    /// [`Encoder::begin_group`].
    #[inline]
    pub fn record(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, first: bool, out: &mut Vec<u8>) {
        if let Some(p) = &mut self.platform {
            match p.record(rec, ts_field, out) {
                Written::Done(bad_utf8) => self.stats.invalid_utf8 += u64::from(bad_utf8),
                Written::NeedsDocument => {
                    self.object(rec, ts_field, b"{\"@timestamp\":\"", out);
                    out.push(b'\n');
                }
            }
            return;
        }
        match self.format {
            Format::Raw => {
                out.extend_from_slice(rec.line);
                out.push(b'\n');
            }
            Format::Ndjson => {
                self.object(rec, ts_field, b"{\"timestamp\":\"", out);
                out.push(b'\n');
            }
            Format::JsonArray => {
                if !first {
                    out.push(b',');
                }
                self.object(rec, ts_field, b"{\"timestamp\":\"", out);
            }
        }
    }

    /// Writes the record as a JSON object opened by `head` (`{"timestamp":"`).
    fn object(&mut self, rec: &Record<'_>, ts_field: TimestampField<'_>, head: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(head);
        out.extend_from_slice(self.clock.format(rec.timestamp()).as_bytes());
        out.push(b'"');
        out.extend_from_slice(self.groups.get(self.current).map_or(&[][..], |g| &g.tail));
        let mut bad_utf8 = false;
        match rec.fields {
            Fields::Message => {
                out.extend_from_slice(b",\"message\":");
                bad_utf8 |= json_string_lossy(out, rec.line);
            }
            Fields::Json(members) => {
                for (key, value) in members {
                    let Some(key) = self.field_key(key, ts_field) else {
                        continue;
                    };
                    out.push(b',');
                    json_string(out, key);
                    out.push(b':');
                    out.extend_from_slice(value.get().as_bytes());
                }
            }
            Fields::Captures(matcher) => {
                for (name, range) in matcher.fields() {
                    let Some(key) = self.field_key(name, ts_field) else {
                        continue;
                    };
                    out.push(b',');
                    json_string(out, key);
                    out.push(b':');
                    bad_utf8 |= json_string_lossy(out, &rec.line[range]);
                }
            }
        }
        out.push(b'}');
        self.stats.invalid_utf8 += u64::from(bad_utf8);
    }

    /// The key a parsed field is written under, or `None` to leave it out.
    fn field_key<'k>(&mut self, key: &'k str, ts_field: TimestampField<'_>) -> Option<&'k str> {
        match ts_field {
            TimestampField::Consumed(k) if k == key => return None,
            TimestampField::Unparsed(k) if k == key && key == "timestamp" => return Some("timestamp_raw"),
            _ => {}
        }
        let taken = RESERVED_KEYS[..2].contains(&key)
            || self
                .groups
                .get(self.current)
                .is_some_and(|g| g.labels.iter().any(|(k, _)| k == key));
        if taken {
            self.stats.field_conflicts += 1;
            None
        } else {
            Some(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Parse, SourceConfig};
    use crate::rec::Matcher;
    use crate::rec::timestamp::TimestampParser;
    use crate::record::Parser;

    fn source(parse: Parse, ts: Option<&str>, labels: &[(&str, &str)]) -> SourceConfig {
        SourceConfig {
            name: "t".into(),
            include: vec!["x".into()],
            exclude: vec![],
            start_at: crate::args::StartAt::Beginning,
            max_line_bytes: 1024,
            long_lines: crate::args::LongLines::Split,
            parse,
            timestamp_field: ts.map(str::to_owned),
            timestamp_parser: TimestampParser::new(None).unwrap(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            assemble: Default::default(),
        }
    }

    /// Encodes `lines` as one body.
    fn encode(format: Format, src: &SourceConfig, lines: &[&[u8]]) -> (Vec<u8>, EncodeStats) {
        let mut parser = Parser::new(src);
        let mut enc = Encoder::new(format);
        let read_time: jiff::Timestamp = "2026-12-05T23:06:14.123456Z".parse().unwrap();
        enc.begin_group("/var/log/app.log", &src.labels);
        let mut out = Vec::new();
        enc.open(&mut out);
        for (i, line) in lines.iter().enumerate() {
            parser.parse(line, |fields, time, ts_field| {
                let rec = Record {
                    line,
                    file: "/var/log/app.log",
                    read_time,
                    time,
                    labels: &src.labels,
                    fields,
                };
                enc.record(&rec, ts_field, i == 0, &mut out);
            });
        }
        enc.close(&mut out);
        (out, enc.take_stats())
    }

    #[test]
    fn groups_switched_back_and_forth_keep_their_own_labels() {
        let labels = |stream: &str, n: usize| -> Vec<(String, String)> {
            vec![("stream".into(), stream.into()), ("n".into(), n.to_string())]
        };
        let read_time: jiff::Timestamp = "2026-12-05T23:06:14.123456Z".parse().unwrap();
        let mut enc = Encoder::new(Format::Ndjson);
        let mut out = Vec::new();
        // More label sets than the encoder keeps, visited out of order.
        let order = [
            (0, "a"),
            (1, "a"),
            (0, "a"),
            (0, "b"),
            (2, "a"),
            (3, "a"),
            (4, "a"),
            (0, "a"),
            (1, "a"),
            (4, "b"),
            (1, "a"),
        ];
        let mut ids = Vec::new();
        for (n, file) in order {
            let stream = if n % 2 == 0 { "stdout" } else { "stderr" };
            let labels = labels(stream, n);
            // Resumed by id when begun before (the id may be stale by then).
            let id = match ids.iter().find(|(k, _)| *k == (n, file)) {
                Some((_, id)) => enc.resume_group(*id, file, &labels),
                None => enc.begin_group(file, &labels),
            };
            ids.retain(|(k, _)| *k != (n, file));
            ids.push(((n, file), id));
            let rec = Record {
                line: b"x",
                file,
                read_time,
                time: None,
                labels: &labels,
                fields: Fields::Message,
            };
            enc.record(&rec, TimestampField::None, false, &mut out);
        }
        let got: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{}|{}|{}",
                    v["file"].as_str().unwrap(),
                    v["stream"].as_str().unwrap(),
                    v["n"].as_str().unwrap()
                )
            })
            .collect();
        let want: Vec<String> = order
            .iter()
            .map(|(n, file)| format!("{file}|{}|{n}", if n % 2 == 0 { "stdout" } else { "stderr" }))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ndjson_records_have_time_file_labels_and_message() {
        let src = source(Parse::None, None, &[("pod", "web-1"), ("ns", "prod")]);
        let (out, stats) = encode(Format::Ndjson, &src, &[b"hello \"world\"", b"bad \xff byte\ttab"]);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "{\"timestamp\":\"2026-12-05T23:06:14.123Z\",\"file\":\"/var/log/app.log\",\"pod\":\"web-1\",\"ns\":\"prod\",\"message\":\"hello \\\"world\\\"\"}\n\
             {\"timestamp\":\"2026-12-05T23:06:14.123Z\",\"file\":\"/var/log/app.log\",\"pod\":\"web-1\",\"ns\":\"prod\",\"message\":\"bad \u{FFFD} byte\\ttab\"}\n"
        );
        assert_eq!(stats.invalid_utf8, 1);
        for line in out.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn raw_is_the_line_and_arrays_are_arrays() {
        let src = source(Parse::None, None, &[]);
        let (out, _) = encode(Format::Raw, &src, &[b"a \xff", b"b"]);
        assert_eq!(out, b"a \xff\nb\n");
        let (out, _) = encode(Format::JsonArray, &src, &[b"a", b"b"]);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1]["message"], "b");
    }

    #[test]
    fn json_parse_merges_objects_takes_the_timestamp_and_skips_conflicts() {
        let src = source(Parse::Json, Some("ts"), &[("pod", "p")]);
        let (out, stats) = encode(
            Format::Ndjson,
            &src,
            &[
                br#"{"ts":"2026-01-02T03:04:05.6Z","level":"info","pod":"app-says","n":[1,{"x":null}]}"#,
                b"not json",
                br#"{"ts":"yesterday","message":"m"}"#,
            ],
        );
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["timestamp"], "2026-01-02T03:04:05.600Z");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(lines[0]["pod"], "p", "labels win over parsed fields");
        assert_eq!(lines[0]["n"][1]["x"], serde_json::Value::Null);
        assert!(lines[0].get("ts").is_none() && lines[0].get("message").is_none());
        assert_eq!(lines[1]["message"], "not json");
        assert_eq!(
            lines[2]["timestamp"], "2026-12-05T23:06:14.123Z",
            "read time when ts does not parse"
        );
        assert_eq!(lines[2]["ts"], "yesterday");
        assert_eq!(lines[2]["message"], "m");
        assert_eq!(stats.field_conflicts, 1);
    }

    #[test]
    fn regex_parse_writes_captures_and_keeps_unmatched_lines() {
        let matcher = Matcher::new(r"^(?P<timestamp>\S+) (?P<level>\w+) (?P<msg>.*)$").unwrap();
        let src = source(Parse::Regex(Box::new(matcher)), Some("timestamp"), &[]);
        let (out, _) = encode(
            Format::Ndjson,
            &src,
            &[b"2026-01-02T03:04:05Z WARN disk full", b"-", b"later WARN x"],
        );
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["timestamp"], "2026-01-02T03:04:05.000Z");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["msg"], "disk full");
        assert_eq!(lines[1]["message"], "-");
        assert_eq!(lines[2]["timestamp_raw"], "later");
    }
}
