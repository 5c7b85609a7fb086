//! Structured output: a line (after the rules) becomes one JSON object or one
//! logfmt record, optionally split into fields by a `--parse` regex with named
//! captures, with a timestamp and static fields added. The capture engines,
//! escaping and timestamp parsing are `podkit-record`'s; this module is the
//! record's layout and these policies.
//!
//! Policies, so that the output is always well-formed:
//! - JSON strings are always escaped correctly; bytes that are not valid
//!   UTF-8 are replaced by U+FFFD and the line is counted
//!   (`invalid_utf8_lines`). Text mode never gets here and passes bytes through.
//! - A trailing `\r` (CRLF input) is dropped before parsing.
//! - A line the `--parse` regex does not match is kept as
//!   `{"message": LINE}` (with the timestamp when it is `now`, and the static
//!   fields) and counted (`unparsed_lines`), or dropped with `--unparsed drop`.
//! - A capture that did not participate in the match is left out.
//! - A timestamp capture that cannot be parsed is kept as the raw text and
//!   counted (`timestamp_failures`).

use std::fmt::Write as _;

use podkit_record::Matcher;
use podkit_record::escape::{json_string, json_string_lossy, logfmt_value_lossy};
use podkit_record::timestamp::{Rfc3339Millis, TimestampParser};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The line itself, bytes untouched.
    Text,
    /// One JSON object per line (NDJSON).
    Json,
    /// One logfmt record (`key=value ...`) per line.
    Logfmt,
}

/// What to do with a line `--parse` does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unparsed {
    /// Emit it whole under the message key.
    Keep,
    /// Drop it (still counted).
    Drop,
}

/// Where the timestamp field comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampSource {
    /// The time the line is processed.
    Now,
    /// A named capture of `--parse`, parsed and rewritten as RFC 3339.
    Capture(String),
}

/// The timestamp field's configuration.
#[derive(Debug, Clone)]
pub struct TimestampSpec {
    /// Where the value comes from.
    pub source: TimestampSource,
    /// strftime-style format of the captured text; `None` tries RFC 3339 and
    /// a few common formats (see [`podkit_record::timestamp::COMMON_FORMATS`]).
    pub format: Option<String>,
    /// The output key.
    pub key: String,
}

/// Counters the structurer keeps (added to the metrics in batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatStats {
    /// Lines with bytes that were not valid UTF-8 (replaced by U+FFFD).
    pub invalid_utf8_lines: u64,
    /// Lines `--parse` did not match.
    pub unparsed_lines: u64,
    /// Timestamp captures that could not be parsed.
    pub timestamp_failures: u64,
}

/// Turns lines into JSON or logfmt records.
#[derive(Debug, Clone)]
pub struct Structurer {
    format: Format,
    parse: Option<Parse>,
    unparsed: Unparsed,
    message_key: String,
    timestamp: Option<TimestampSpec>,
    /// Static fields, already encoded for the format (`,"k":"v"` or ` k=v`).
    fields: Vec<u8>,
    /// The "now" timestamp of the current millisecond, already formatted.
    now: Rfc3339Millis,
    /// Scratch for a parsed timestamp, formatted.
    scratch: String,
    /// A line with invalid UTF-8, converted (U+FFFD), to parse again.
    lossy: Vec<u8>,
    /// Counters.
    pub stats: FormatStats,
}

#[derive(Debug, Clone)]
struct Parse {
    engine: Matcher,
    /// (group index, encoded key) for every named group, in pattern order.
    names: Vec<(usize, String)>,
    /// The group index of the timestamp capture, if any.
    timestamp_group: Option<usize>,
    /// Parses the timestamp capture.
    timestamp_parser: TimestampParser,
}

/// A configuration error in the structured options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl Structurer {
    /// Builds a structurer; `parse` is a regex (the regex crate's syntax)
    /// with named captures; `fields` are static key/value pairs.
    pub fn new(
        format: Format,
        parse: Option<&str>,
        unparsed: Unparsed,
        message_key: &str,
        timestamp: Option<TimestampSpec>,
        fields: &[(String, String)],
    ) -> Result<Self, FormatError> {
        let parse = match parse {
            None => None,
            Some(pattern) => {
                let engine = Matcher::new(pattern).map_err(|e| FormatError(format!("--parse: {e}")))?;
                let names: Vec<(usize, String)> = engine.names().map(|(i, n)| (i, n.to_owned())).collect();
                let timestamp_group = match &timestamp {
                    Some(TimestampSpec {
                        source: TimestampSource::Capture(name),
                        ..
                    }) => Some(engine.group(name).ok_or_else(|| {
                        FormatError(format!("--timestamp: `{name}` is not a named capture group of --parse"))
                    })?),
                    _ => None,
                };
                let timestamp_parser = TimestampParser::new(timestamp.as_ref().and_then(|t| t.format.as_deref()))
                    .map_err(|e| FormatError(format!("--timestamp-format: {e}")))?;
                Some(Parse {
                    engine,
                    names,
                    timestamp_group,
                    timestamp_parser,
                })
            }
        };
        if let Some(TimestampSpec {
            source: TimestampSource::Capture(name),
            ..
        }) = &timestamp
            && parse.is_none()
        {
            return Err(FormatError(format!(
                "--timestamp {name}: taking the timestamp from a capture needs --parse"
            )));
        }
        if format == Format::Text {
            return Err(FormatError(
                "--parse, --timestamp and --field need --format json or --format logfmt".into(),
            ));
        }
        let mut keys: Vec<&str> = vec![message_key];
        if let Some(ts) = &timestamp {
            keys.push(&ts.key);
        }
        keys.extend(fields.iter().map(|(k, _)| k.as_str()));
        if let Some(p) = &parse {
            keys.extend(p.names.iter().map(|(_, n)| n.as_str()));
        }
        if format == Format::Logfmt
            && let Some(bad) = keys
                .iter()
                .find(|k| k.is_empty() || k.bytes().any(|b| b <= b' ' || b == b'=' || b == b'"'))
        {
            return Err(FormatError(format!(
                "key `{bad}` cannot be used in logfmt (no spaces, `=` or quotes)"
            )));
        }
        let mut encoded = Vec::new();
        for (k, v) in fields {
            if k.is_empty() {
                return Err(FormatError("--field: empty key".into()));
            }
            push_field(format, &mut encoded, true, k, v.as_bytes());
        }
        Ok(Self {
            format,
            parse,
            unparsed,
            message_key: message_key.to_owned(),
            timestamp,
            fields: encoded,
            now: Rfc3339Millis::new(),
            scratch: String::new(),
            lossy: Vec::new(),
            stats: FormatStats::default(),
        })
    }

    /// Appends the record for `line` (no newline in it) to `out`, with a
    /// newline. Returns false when the line was dropped (`--unparsed drop`).
    pub fn record(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        let Self {
            format,
            parse,
            unparsed,
            message_key,
            timestamp,
            fields,
            now,
            scratch,
            lossy,
            stats,
        } = self;
        let format = *format;
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut matched = match parse {
            Some(p) => p.engine.captures(line),
            None => false,
        };
        if let Some(p) = parse
            && !matched
            && std::str::from_utf8(line).is_err()
        {
            // `.` does not match invalid UTF-8; parse the line as it will be
            // written anyway, with U+FFFD in place of the bad bytes.
            lossy.clear();
            lossy.extend_from_slice(String::from_utf8_lossy(line).as_bytes());
            stats.invalid_utf8_lines += 1;
            line = lossy;
            matched = p.engine.captures(line);
        }
        if parse.is_some() && !matched {
            stats.unparsed_lines += 1;
            if *unparsed == Unparsed::Drop {
                return false;
            }
        }
        let mut rec = Record {
            format,
            out,
            first: true,
            bad_utf8: false,
        };
        if format == Format::Json {
            rec.out.push(b'{');
        }
        // The timestamp first.
        if let Some(ts) = timestamp {
            match &ts.source {
                TimestampSource::Now => rec.field(&ts.key, now.now().as_bytes()),
                TimestampSource::Capture(_) => {
                    if let Some(p) = parse.as_ref().filter(|_| matched)
                        && let Some(span) = p.timestamp_group.and_then(|g| p.engine.get(g))
                    {
                        let raw = &line[span];
                        let parsed = std::str::from_utf8(raw)
                            .ok()
                            .and_then(|text| p.timestamp_parser.parse(text));
                        match parsed {
                            Some(t) => {
                                scratch.clear();
                                let _ = write!(scratch, "{t}");
                                rec.field(&ts.key, scratch.as_bytes());
                            }
                            None => {
                                stats.timestamp_failures += 1;
                                rec.field(&ts.key, raw);
                            }
                        }
                    }
                }
            }
        }
        match parse.as_ref().filter(|_| matched) {
            Some(p) => {
                for (group, name) in &p.names {
                    if Some(*group) == p.timestamp_group {
                        continue;
                    }
                    if let Some(span) = p.engine.get(*group) {
                        rec.field(name, &line[span]);
                    }
                }
            }
            None => rec.field(message_key, line),
        }
        // Static fields, pre-encoded with a leading separator.
        if !fields.is_empty() {
            let skip = usize::from(rec.first);
            rec.out.extend_from_slice(&fields[skip..]);
        }
        if format == Format::Json {
            rec.out.push(b'}');
        }
        rec.out.push(b'\n');
        if rec.bad_utf8 {
            stats.invalid_utf8_lines += 1;
        }
        true
    }
}

/// One record being written.
struct Record<'a> {
    format: Format,
    out: &'a mut Vec<u8>,
    /// No field written yet (the first has no leading separator).
    first: bool,
    bad_utf8: bool,
}

impl Record<'_> {
    #[inline]
    fn field(&mut self, key: &str, value: &[u8]) {
        if push_field(self.format, self.out, !self.first, key, value) {
            self.bad_utf8 = true;
        }
        self.first = false;
    }
}

/// Appends `,"key":"value"` (JSON) or ` key=value` (logfmt); without the
/// leading separator when `sep` is false. Returns whether `value` held
/// invalid UTF-8 (written as U+FFFD).
fn push_field(format: Format, out: &mut Vec<u8>, sep: bool, key: &str, value: &[u8]) -> bool {
    match format {
        Format::Json => {
            if sep {
                out.push(b',');
            }
            json_string(out, key);
            out.push(b':');
            json_string_lossy(out, value)
        }
        Format::Logfmt => {
            if sep {
                out.push(b' ');
            }
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            logfmt_value_lossy(out, value)
        }
        Format::Text => {
            out.extend_from_slice(value);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structurer(
        format: Format,
        parse: Option<&str>,
        ts: Option<TimestampSpec>,
        fields: &[(&str, &str)],
    ) -> Structurer {
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Structurer::new(format, parse, Unparsed::Keep, "message", ts, &fields).unwrap()
    }

    fn one(s: &mut Structurer, line: &[u8]) -> String {
        let mut out = Vec::new();
        assert!(s.record(line, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_escaping_is_always_valid() {
        let mut s = structurer(Format::Json, None, None, &[]);
        for line in [
            &b"plain"[..],
            b"quote \" backslash \\ tab \t",
            b"ctl \x01\x1f bell \x07 del \x7f",
            b"unicode \xc3\xa9 \xe2\x80\xa8",
            b"bad \xff\xfe utf8 \xc3",
            b"",
        ] {
            let text = one(&mut s, line);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let expected = String::from_utf8_lossy(line);
            assert_eq!(v["message"], serde_json::Value::String(expected.into_owned()), "{text}");
        }
        assert_eq!(s.stats.invalid_utf8_lines, 1);
    }

    #[test]
    fn parse_named_captures_with_fields_and_timestamp() {
        let ts = TimestampSpec {
            source: TimestampSource::Capture("date".into()),
            format: None,
            key: "timestamp".into(),
        };
        let mut s = structurer(
            Format::Json,
            Some(r"^(?P<date>\S+) (?P<level>\w+) (?P<msg>.*)$"),
            Some(ts),
            &[("pod", "web-1"), ("ns", "prod")],
        );
        let text = one(&mut s, b"2026-11-26T23:08:26.5+01:00 INFO hello \"world\"\r");
        assert_eq!(
            text,
            "{\"timestamp\":\"2026-11-26T22:08:26.5Z\",\"level\":\"INFO\",\"msg\":\"hello \\\"world\\\"\",\"pod\":\"web-1\",\"ns\":\"prod\"}\n"
        );
        // Unparsed lines are kept whole under `message`.
        let text = one(&mut s, b"garbage");
        assert_eq!(text, "{\"message\":\"garbage\",\"pod\":\"web-1\",\"ns\":\"prod\"}\n");
        assert_eq!(s.stats.unparsed_lines, 1);
        // A timestamp that does not parse stays raw and is counted.
        let text = one(&mut s, b"yesterday WARN x");
        assert_eq!(
            text,
            "{\"timestamp\":\"yesterday\",\"level\":\"WARN\",\"msg\":\"x\",\"pod\":\"web-1\",\"ns\":\"prod\"}\n"
        );
        assert_eq!(s.stats.timestamp_failures, 1);
    }

    #[test]
    fn invalid_utf8_lines_are_parsed_with_replacement_characters() {
        let mut s = structurer(Format::Json, Some(r"^(?P<level>\w+) (?P<msg>.*)$"), None, &[]);
        assert_eq!(
            one(&mut s, b"INFO bad \xff here"),
            "{\"level\":\"INFO\",\"msg\":\"bad \u{FFFD} here\"}\n"
        );
        assert_eq!(
            one(&mut s, b"INFO \xc3\xa9 ok"),
            "{\"level\":\"INFO\",\"msg\":\"\u{e9} ok\"}\n"
        );
        assert_eq!(s.stats.invalid_utf8_lines, 1);
        assert_eq!(s.stats.unparsed_lines, 0);
    }

    #[test]
    fn logfmt_quotes_when_needed() {
        let mut s = structurer(
            Format::Logfmt,
            Some(r"(?P<level>\w+) (?P<msg>.*)"),
            None,
            &[("pod", "a b")],
        );
        assert_eq!(
            one(&mut s, b"INFO hi there"),
            "level=INFO msg=\"hi there\" pod=\"a b\"\n"
        );
        assert_eq!(
            one(&mut s, b"WARN x=\"1\""),
            "level=WARN msg=\"x=\\\"1\\\"\" pod=\"a b\"\n"
        );
        assert_eq!(one(&mut s, b"DEBUG "), "level=DEBUG msg=\"\" pod=\"a b\"\n");
    }

    #[test]
    fn now_timestamp_is_rfc3339_and_first() {
        let ts = TimestampSpec {
            source: TimestampSource::Now,
            format: None,
            key: "time".into(),
        };
        let mut s = structurer(Format::Json, None, Some(ts), &[]);
        let text = one(&mut s, b"x");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let time = v["time"].as_str().unwrap();
        assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
        assert!(text.starts_with("{\"time\":"), "{text}");
    }

    #[test]
    fn configuration_errors() {
        let err = |format, parse: Option<&str>, ts: Option<TimestampSpec>| {
            Structurer::new(format, parse, Unparsed::Keep, "message", ts, &[])
                .unwrap_err()
                .0
        };
        assert!(err(Format::Json, Some("(a)"), None).contains("no named capture"));
        assert!(err(Format::Json, Some("(?P<a>"), None).contains("invalid regular expression"));
        assert!(err(Format::Text, Some("(?P<a>x)"), None).contains("--format json"));
        let ts = TimestampSpec {
            source: TimestampSource::Capture("when".into()),
            format: None,
            key: "t".into(),
        };
        assert!(err(Format::Json, Some("(?P<a>x)"), Some(ts.clone())).contains("`when`"));
        assert!(err(Format::Json, None, Some(ts.clone())).contains("needs --parse"));
        let bad_format = TimestampSpec {
            source: TimestampSource::Capture("a".into()),
            format: Some("%Y-%J".into()),
            key: "t".into(),
        };
        assert!(err(Format::Json, Some("(?P<a>x)"), Some(bad_format)).starts_with("--timestamp-format: `%Y-%J`"));
    }
}
