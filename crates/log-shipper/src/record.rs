//! Records: what a line becomes. A [`Record`] is a view (nothing copied) of
//! one line with what the shipper knows about it: the file, when it was
//! read, the source's labels, and the fields a [`Parser`] found. Encoders
//! ([`crate::encode`]) turn records into bytes; keeping the two apart lets
//! other encodings (labels apart from fields, nanosecond timestamps) read
//! the same record.
//!
//! Keys and precedence, as every encoding of a record as an object shows them:
//! - `timestamp`: the event time taken from the timestamp field when it
//!   parses (the field is then not repeated), else the time the line was
//!   read. Always RFC 3339 UTC with milliseconds.
//! - `file`: the path the line was read from.
//! - the labels, in the order given.
//! - the parsed fields (JSON object members in their order, or the regex's
//!   named captures in pattern order). A field whose key is already taken
//!   by `timestamp`, `file` or a label is left out and counted
//!   (`field_conflicts`); a timestamp field named `timestamp` that does not
//!   parse is kept as `timestamp_raw`.
//! - `message`: the whole line, when there is no parsing or the line did not
//!   parse (not a JSON object, or the regex did not match; counted as
//!   `unparsed`).

use std::borrow::Cow;

use jiff::Timestamp;
use serde_json::value::RawValue;

use crate::config::{Parse, SourceConfig};
use crate::rec::Matcher;
use crate::rec::timestamp::TimestampParser;

/// Keys every record has (labels may not use them).
pub const RESERVED_KEYS: [&str; 3] = ["timestamp", "file", "message"];

/// One line as a record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The line's bytes, without its terminator; not necessarily UTF-8.
    pub line: &'a [u8],
    /// The file it was read from.
    pub file: &'a str,
    /// When it was read.
    pub read_time: Timestamp,
    /// The event time from the timestamp field, when it parsed.
    pub time: Option<Timestamp>,
    /// The source's labels.
    pub labels: &'a [(String, String)],
    /// What parsing found.
    pub fields: Fields<'a>,
}

impl Record<'_> {
    /// The record's time: the event's when known, else the read time.
    pub fn timestamp(&self) -> Timestamp {
        self.time.unwrap_or(self.read_time)
    }
}

/// The fields of a record.
#[derive(Debug, Clone, Copy)]
pub enum Fields<'a> {
    /// None: the line is the message (no parsing, or it did not parse).
    Message,
    /// A JSON object's members: key and raw JSON value, in order.
    Json(&'a [(Cow<'a, str>, &'a RawValue)]),
    /// A regex's named captures, read from the matcher (last match).
    Captures(&'a Matcher),
}

/// Which field is the timestamp field, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampField<'a> {
    /// No timestamp field (or none in this record).
    None,
    /// This key parsed into [`Record::time`]; leave it out.
    Consumed(&'a str),
    /// This key did not parse; keep it (as `timestamp_raw` if it is `timestamp`).
    Unparsed(&'a str),
}

/// Counters a parser keeps (added to metrics per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Lines that did not parse (kept whole under `message`).
    pub unparsed: u64,
    /// Timestamp fields that did not parse.
    pub timestamp_failures: u64,
}

/// Parses a source's lines into fields (one per sink, since matching keeps
/// state).
#[derive(Debug, Clone)]
pub struct Parser {
    parse: Parse,
    timestamp_field: Option<String>,
    timestamp_parser: TimestampParser,
    /// Counters since the last [`Parser::take_stats`].
    stats: ParseStats,
}

impl Parser {
    /// The parser of `source`.
    pub fn new(source: &SourceConfig) -> Self {
        Self {
            parse: source.parse.clone(),
            timestamp_field: source.timestamp_field.clone(),
            timestamp_parser: source.timestamp_parser.clone(),
            stats: ParseStats::default(),
        }
    }

    /// Takes the counters.
    pub fn take_stats(&mut self) -> ParseStats {
        std::mem::take(&mut self.stats)
    }

    /// Parses `line` and calls `each` with its fields, event time and
    /// timestamp field.
    pub fn parse<R>(
        &mut self,
        line: &[u8],
        each: impl FnOnce(Fields<'_>, Option<Timestamp>, TimestampField<'_>) -> R,
    ) -> R {
        match &mut self.parse {
            Parse::None => each(Fields::Message, None, TimestampField::None),
            Parse::Json => {
                let members = json_members(line);
                let Some(members) = members else {
                    self.stats.unparsed += 1;
                    return each(Fields::Message, None, TimestampField::None);
                };
                let (time, field) = match self.timestamp_field.as_deref() {
                    Some(key) => match members.iter().find(|(k, _)| k == key) {
                        Some((_, raw)) => match json_time(&self.timestamp_parser, raw) {
                            Some(t) => (Some(t), TimestampField::Consumed(key)),
                            None => {
                                self.stats.timestamp_failures += 1;
                                (None, TimestampField::Unparsed(key))
                            }
                        },
                        None => (None, TimestampField::None),
                    },
                    None => (None, TimestampField::None),
                };
                each(Fields::Json(&members), time, field)
            }
            Parse::Regex(matcher) => {
                if !matcher.captures(line) {
                    self.stats.unparsed += 1;
                    return each(Fields::Message, None, TimestampField::None);
                }
                let (time, field) = match self.timestamp_field.as_deref() {
                    Some(key) => match matcher.fields().find(|(name, _)| *name == key) {
                        Some((_, range)) => {
                            let parsed = std::str::from_utf8(&line[range])
                                .ok()
                                .and_then(|text| self.timestamp_parser.parse(text));
                            match parsed {
                                Some(t) => (Some(t), TimestampField::Consumed(key)),
                                None => {
                                    self.stats.timestamp_failures += 1;
                                    (None, TimestampField::Unparsed(key))
                                }
                            }
                        }
                        None => (None, TimestampField::None),
                    },
                    None => (None, TimestampField::None),
                };
                each(Fields::Captures(matcher), time, field)
            }
        }
    }
}

/// The members of a JSON object, or `None` when the line is not one.
fn json_members(line: &[u8]) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    use serde::de::{Deserializer, MapAccess, Visitor};

    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(key) = map.next_key::<CowStr<'de>>()? {
                let value: &'de RawValue = map.next_value()?;
                out.push((key.0, value));
            }
            Ok(out)
        }
    }

    /// A key borrowed from the line when it has no escapes.
    struct CowStr<'a>(Cow<'a, str>);
    impl<'de> serde::Deserialize<'de> for CowStr<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = CowStr<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                    Ok(CowStr(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(CowStr(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(line);
    let members = de.deserialize_map(Members).ok()?;
    de.end().ok()?;
    Some(members)
}

/// A JSON value as a time: a string parsed by `parser`, or a number of
/// seconds (or milliseconds, microseconds, nanoseconds, by magnitude) since
/// the Unix epoch.
fn json_time(parser: &TimestampParser, raw: &RawValue) -> Option<Timestamp> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: Cow<'_, str> = serde_json::from_str(text).ok()?;
        return parser.parse(&s);
    }
    // Integers exactly; fractions of seconds (1764975974.5) as floats.
    let scale = |magnitude: f64| match magnitude {
        x if x < 1e11 => 1_000_000_000,
        x if x < 1e14 => 1_000_000,
        x if x < 1e17 => 1_000,
        _ => 1,
    };
    let nanos = match text.parse::<i128>() {
        Ok(n) => n.checked_mul(scale(n.unsigned_abs() as f64))?,
        Err(_) => {
            let n: f64 = text.parse().ok()?;
            (n * scale(n.abs()) as f64) as i128
        }
    };
    Timestamp::from_nanosecond(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_keep_order_and_raw_values() {
        let m = json_members(br#"{"b":1,"a\"q":{"x":[1,2]},"s":"t\u00e9"}"#).unwrap();
        let got: Vec<(String, &str)> = m.iter().map(|(k, v)| (k.to_string(), v.get())).collect();
        assert_eq!(
            got,
            [
                ("b".to_owned(), "1"),
                ("a\"q".to_owned(), r#"{"x":[1,2]}"#),
                ("s".to_owned(), r#""t\u00e9""#)
            ]
        );
        for bad in [&b"[1]"[..], b"\"s\"", b"{\"a\":1} x", b"{\"a\":", b"", b"\xff"] {
            assert!(json_members(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn json_times_from_strings_and_epoch_numbers() {
        let p = TimestampParser::new(None).unwrap();
        let t = |s: &str| json_time(&p, &RawValue::from_string(s.to_owned()).unwrap()).map(|t| t.to_string());
        assert_eq!(
            t(r#""2026-12-05T23:06:14.5Z""#).as_deref(),
            Some("2026-12-05T23:06:14.5Z")
        );
        assert_eq!(t("1764975974").as_deref(), Some("2025-12-05T23:06:14Z"));
        assert_eq!(t("1764975974123").as_deref(), Some("2025-12-05T23:06:14.123Z"));
        assert_eq!(t(r#""soon""#), None);
        assert_eq!(t("true"), None);
    }
}
