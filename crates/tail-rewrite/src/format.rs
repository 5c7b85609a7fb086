//! Structured output: a line (after the rules) becomes one JSON object or one
//! logfmt record, optionally split into fields by a `--parse` regex with named
//! captures, with a timestamp and static fields added.
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

use regex::bytes::{CaptureLocations, Regex};

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
    /// a few common formats (see [`COMMON_FORMATS`]).
    pub format: Option<String>,
    /// The output key.
    pub key: String,
}

/// Formats tried, in order, when no `--timestamp-format` is given (after
/// RFC 3339 / ISO 8601 with an offset).
pub const COMMON_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f",
    // date(1): Thu Nov 26 23:08:26 UTC 2026
    "%a %b %e %H:%M:%S %Q %Y",
    // Common Log Format: 26/Nov/2026:23:08:26 +0000
    "%d/%b/%Y:%H:%M:%S %z",
    // syslog-ish without a year is ambiguous and not tried.
];

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
    now_cache: (i64, String),
    /// Scratch for lossy conversions and timestamps.
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
}

/// The capture engine of `--parse`.
#[derive(Debug, Clone)]
enum Engine {
    /// A one-pass DFA: one scan of the line yields every capture. Used when
    /// the pattern is anchored at the start and one-pass (most log formats
    /// are: `^(?P<a>\S+) (?P<b>\w+) …`).
    OnePass {
        dfa: Box<regex_automata::dfa::onepass::DFA>,
        cache: regex_automata::dfa::onepass::Cache,
        caps: regex_automata::util::captures::Captures,
    },
    /// The regex crate's general engine.
    Meta { regex: Regex, locs: CaptureLocations },
}

impl Engine {
    fn new(regex: Regex) -> Self {
        let anchored = regex_syntax::Parser::new().parse(regex.as_str()).is_ok_and(|hir| {
            hir.properties()
                .look_set_prefix()
                .contains(regex_syntax::hir::Look::Start)
        });
        let onepass = anchored
            .then(|| {
                regex_automata::dfa::onepass::DFA::builder()
                    .syntax(regex_automata::util::syntax::Config::new().utf8(false))
                    .thompson(regex_automata::nfa::thompson::Config::new().utf8(false))
                    .build(regex.as_str())
                    .ok()
            })
            .flatten();
        match onepass {
            Some(dfa) => Self::OnePass {
                cache: dfa.create_cache(),
                caps: dfa.create_captures(),
                dfa: Box::new(dfa),
            },
            None => Self::Meta {
                locs: regex.capture_locations(),
                regex,
            },
        }
    }

    /// Matches `line`; the captures are then available from [`Engine::get`].
    fn captures(&mut self, line: &[u8]) -> bool {
        match self {
            Self::OnePass { dfa, cache, caps } => {
                let input = regex_automata::Input::new(line).anchored(regex_automata::Anchored::Yes);
                dfa.captures(cache, input, caps);
                caps.is_match()
            }
            Self::Meta { regex, locs } => regex.captures_read(locs, line).is_some(),
        }
    }

    /// The span of group `i` in the last match.
    fn get(&self, i: usize) -> Option<(usize, usize)> {
        match self {
            Self::OnePass { caps, .. } => caps.get_group(i).map(|s| (s.start, s.end)),
            Self::Meta { locs, .. } => locs.get(i),
        }
    }
}

/// `--parse` matching, with a shortcut for the most common shape of log
/// pattern: fields, then "the rest of the line" as the last group
/// (`… (?P<msg>.*)$`). The engine then only runs the part before the last
/// group, and the last group is the rest of the line when that rest is valid
/// UTF-8 without a newline (what `.*` would match); otherwise the full
/// pattern runs. Same results, a fraction of the bytes through the engine.
#[derive(Debug, Clone)]
struct Matcher {
    /// The field scanner, when the pattern has its shape.
    scanner: Option<crate::scanner::Scanner>,
    /// Whether the last match came from the scanner.
    last_scanner: bool,
    full: Engine,
    /// The pattern without its trailing `(?P<x>.*)$`, and that group's index.
    split: Option<(Engine, usize)>,
    /// When the last match came from `split`: where the tail starts, and the
    /// line's length.
    last_split: Option<(usize, usize)>,
}

impl Matcher {
    fn new(regex: Regex) -> Self {
        Self {
            scanner: crate::scanner::Scanner::compile(regex.as_str(), regex.captures_len()),
            last_scanner: false,
            split: rest_of_line_split(&regex),
            full: Engine::new(regex),
            last_split: None,
        }
    }

    fn captures(&mut self, line: &[u8]) -> bool {
        self.last_split = None;
        self.last_scanner = false;
        if let Some(scanner) = &mut self.scanner
            && let Some(matched) = scanner.captures(line)
        {
            self.last_scanner = true;
            return matched;
        }
        if let Some((prefix, _)) = &mut self.split {
            if !prefix.captures(line) {
                // The full pattern is the prefix followed by the tail.
                return false;
            }
            let end = prefix.get(0).map_or(0, |(_, e)| e);
            let rest = &line[end..];
            if memchr::memchr(b'\n', rest).is_none() && std::str::from_utf8(rest).is_ok() {
                self.last_split = Some((end, line.len()));
                return true;
            }
        }
        self.full.captures(line)
    }

    fn get(&self, i: usize) -> Option<(usize, usize)> {
        if self.last_scanner
            && let Some(scanner) = &self.scanner
        {
            return scanner.get(i);
        }
        match (&self.split, self.last_split) {
            (Some((prefix, tail)), Some((end, len))) => {
                if i == *tail {
                    Some((end, len))
                } else if i == 0 {
                    prefix.get(0).map(|(s, _)| (s, len))
                } else {
                    prefix.get(i)
                }
            }
            _ => self.full.get(i),
        }
    }
}

/// When `regex` ends with a greedy `(?P<x>.*)` (optionally followed by `$`),
/// the engine for everything before it and the group's index.
fn rest_of_line_split(regex: &Regex) -> Option<(Engine, usize)> {
    use regex_syntax::hir::{Class, Hir, HirKind, Look};
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(regex.as_str())
        .ok()?;
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let mut n = parts.len();
    if matches!(parts[n - 1].kind(), HirKind::Look(Look::End)) {
        n -= 1;
    }
    if n < 2 {
        return None;
    }
    let HirKind::Capture(cap) = parts[n - 1].kind() else {
        return None;
    };
    let HirKind::Repetition(rep) = cap.sub.kind() else {
        return None;
    };
    if rep.min != 0 || rep.max.is_some() || !rep.greedy {
        return None;
    }
    let HirKind::Class(Class::Unicode(class)) = rep.sub.kind() else {
        return None;
    };
    let ranges: Vec<(char, char)> = class.ranges().iter().map(|r| (r.start(), r.end())).collect();
    let dot = ranges == [('\0', '\t'), ('\u{b}', '\u{10FFFF}')] || ranges == [('\0', '\u{10FFFF}')];
    if !dot || cap.index as usize + 1 != regex.captures_len() {
        return None;
    }
    let prefix = Regex::new(&Hir::concat(parts[..n - 1].to_vec()).to_string()).ok()?;
    if prefix.captures_len() + 1 != regex.captures_len() {
        return None;
    }
    Some((Engine::new(prefix), cap.index as usize))
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
                let regex = Regex::new(pattern).map_err(|e| {
                    FormatError(format!(
                        "--parse: invalid regular expression: {}",
                        last_line(&e.to_string())
                    ))
                })?;
                let names: Vec<(usize, String)> = regex
                    .capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, n.to_owned())))
                    .collect();
                if names.is_empty() {
                    return Err(FormatError(
                        "--parse: the regex has no named capture group; name the fields like (?P<level>\\w+)".into(),
                    ));
                }
                let timestamp_group = match &timestamp {
                    Some(TimestampSpec {
                        source: TimestampSource::Capture(name),
                        ..
                    }) => Some(names.iter().find(|(_, n)| n == name).map(|(i, _)| *i).ok_or_else(|| {
                        FormatError(format!("--timestamp: `{name}` is not a named capture group of --parse"))
                    })?),
                    _ => None,
                };
                Some(Parse {
                    engine: Matcher::new(regex),
                    names,
                    timestamp_group,
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
        let mut dummy = FormatStats::default();
        for (k, v) in fields {
            if k.is_empty() {
                return Err(FormatError("--field: empty key".into()));
            }
            push_field(
                format,
                &mut encoded,
                true,
                k,
                v.as_bytes(),
                &mut dummy,
                &mut String::new(),
            );
        }
        Ok(Self {
            format,
            parse,
            unparsed,
            message_key: message_key.to_owned(),
            timestamp,
            fields: encoded,
            now_cache: (i64::MIN, String::new()),
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
            now_cache,
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
            scratch,
        };
        if format == Format::Json {
            rec.out.push(b'{');
        }
        // The timestamp first.
        if let Some(ts) = timestamp {
            match &ts.source {
                TimestampSource::Now => {
                    let now = jiff::Timestamp::now();
                    let ms = now.as_millisecond();
                    if now_cache.0 != ms {
                        now_cache.1.clear();
                        let _ = write!(now_cache.1, "{now:.3}");
                        now_cache.0 = ms;
                    }
                    rec.field(&ts.key, now_cache.1.as_bytes());
                }
                TimestampSource::Capture(_) => {
                    if let Some(p) = parse.as_ref().filter(|_| matched)
                        && let Some((s, e)) = p.timestamp_group.and_then(|g| p.engine.get(g))
                    {
                        let raw = &line[s..e];
                        let parsed = std::str::from_utf8(raw)
                            .ok()
                            .and_then(|text| parse_timestamp(text, ts.format.as_deref()));
                        match parsed {
                            Some(t) => {
                                now_cache.0 = i64::MIN;
                                now_cache.1.clear();
                                let _ = write!(now_cache.1, "{t}");
                                rec.field(&ts.key, now_cache.1.as_bytes());
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
                    if let Some((s, e)) = p.engine.get(*group) {
                        rec.field(name, &line[s..e]);
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
    scratch: &'a mut String,
}

impl Record<'_> {
    fn field(&mut self, key: &str, value: &[u8]) {
        let mut stats = FormatStats::default();
        push_field(self.format, self.out, !self.first, key, value, &mut stats, self.scratch);
        self.first = false;
        if stats.invalid_utf8_lines > 0 {
            self.bad_utf8 = true;
        }
    }
}

/// Appends `,"key":"value"` (JSON) or ` key=value` (logfmt); without the
/// leading separator when `sep` is false.
fn push_field(
    format: Format,
    out: &mut Vec<u8>,
    sep: bool,
    key: &str,
    value: &[u8],
    stats: &mut FormatStats,
    scratch: &mut String,
) {
    let value: &str = match std::str::from_utf8(value) {
        Ok(v) => v,
        Err(_) => {
            stats.invalid_utf8_lines += 1;
            scratch.clear();
            scratch.push_str(&String::from_utf8_lossy(value));
            scratch.as_str()
        }
    };
    match format {
        Format::Json => {
            if sep {
                out.push(b',');
            }
            json_string(out, key);
            out.push(b':');
            json_string(out, value);
        }
        Format::Logfmt => {
            if sep {
                out.push(b' ');
            }
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            logfmt_value(out, value);
        }
        Format::Text => out.extend_from_slice(value.as_bytes()),
    }
}

/// Bytes that need escaping in a JSON string: `"`, `\` and controls.
const fn json_escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}

static JSON_ESCAPE: [bool; 256] = json_escape_table();

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !JSON_ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends a logfmt value, quoted when it is empty or holds a space, `=`,
/// a quote or a control character.
pub fn logfmt_value(out: &mut Vec<u8>, s: &str) {
    let needs_quotes = s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'=' || b == b'"' || b == 0x7f);
    if !needs_quotes {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    // Go's strconv.Quote-style escaping, which logfmt parsers accept.
    json_string(out, s);
}

/// Parses a timestamp: with `format` (strftime; `%Z` accepts UTC/GMT), or
/// RFC 3339 and then [`COMMON_FORMATS`]. A time without an offset is UTC.
pub fn parse_timestamp(text: &str, format: Option<&str>) -> Option<jiff::Timestamp> {
    let text = text.trim();
    match format {
        Some(f) => strptime(text, &f.replace("%Z", "%Q")),
        None => text
            .parse::<jiff::Timestamp>()
            .ok()
            .or_else(|| COMMON_FORMATS.iter().find_map(|f| strptime(text, f))),
    }
}

fn strptime(text: &str, format: &str) -> Option<jiff::Timestamp> {
    let tm = jiff::fmt::strtime::parse(format, text).ok()?;
    if let Ok(ts) = tm.to_timestamp() {
        return Some(ts);
    }
    if let Some(zone) = tm.iana_time_zone()
        && !matches!(zone, "UTC" | "GMT" | "UT" | "Z" | "Etc/UTC" | "Etc/GMT" | "Zulu")
    {
        // No time zone database in a FROM-scratch image: only UTC names.
        return None;
    }
    let dt = tm.to_datetime().ok()?;
    jiff::tz::offset(0).to_timestamp(dt).ok()
}

fn last_line(s: &str) -> String {
    s.lines()
        .last()
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
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
    fn one_pass_and_general_engines_agree() {
        let patterns = [
            r"^(?P<date>\S+) (?P<level>\S+) \[(?P<req>[^]]*)\] (?P<msg>.*)$",
            r"^(?P<a>\w+)(?: (?P<b>\d+))?",
            r"^(?P<k>[^=]+)=(?P<v>.*)",
        ];
        let lines: [&[u8]; 7] = [
            b"2026-11-26T23:08:26Z INFO [req-1] GET / 200",
            b"2026-11-26T23:08:26Z INFO [] empty req",
            b"word 123 tail",
            b"word tail",
            b"k=v=w",
            b"no match here at all",
            b"caf\xc3\xa9 9",
        ];
        for pattern in patterns {
            let regex = Regex::new(pattern).unwrap();
            let mut onepass = Engine::new(regex.clone());
            assert!(
                matches!(onepass, Engine::OnePass { .. }),
                "{pattern} should be one-pass"
            );
            let mut meta = Engine::Meta {
                locs: regex.capture_locations(),
                regex: regex.clone(),
            };
            for line in lines {
                assert_eq!(onepass.captures(line), meta.captures(line), "{pattern} {line:?}");
                for g in 0..regex.captures_len() {
                    assert_eq!(onepass.get(g), meta.get(g), "{pattern} {line:?} group {g}");
                }
            }
        }
        // Unanchored patterns use the general engine.
        assert!(matches!(
            Engine::new(Regex::new(r"(?P<a>\d+)").unwrap()),
            Engine::Meta { .. }
        ));
    }

    #[test]
    fn the_rest_of_line_shortcut_gives_the_same_captures() {
        let patterns = [
            r"^(?P<date>\S+) (?P<level>\S+) \[(?P<req>[^]]*)\] (?P<msg>.*)$",
            r"^(?P<level>\w+) (?P<msg>.*)",
            r"(?P<level>[A-Z]+): (?P<msg>.*)$",
            r"(?s)^(?P<a>x*)(?P<msg>.*)",
            r"^(?P<a>\w+)(?: (?P<b>\d+))? (?P<rest>.*)$",
        ];
        let lines: [&[u8]; 9] = [
            b"2026-11-26T23:08:26Z INFO [req-1] GET / 200",
            b"INFO hello world",
            b"prefix WARN: late start",
            b"xxxy\nz",
            b"INFO bad \xff tail",
            b"word 12 rest of it",
            b"word rest",
            b"no-space",
            b"",
        ];
        for pattern in patterns {
            let regex = Regex::new(pattern).unwrap();
            let mut matcher = Matcher::new(regex.clone());
            // Test the split path alone.
            matcher.scanner = None;
            assert!(matcher.split.is_some(), "{pattern} has a rest-of-line group");
            let mut full = Engine::new(regex.clone());
            for line in lines {
                let m = matcher.captures(line);
                assert_eq!(m, full.captures(line), "{pattern} {line:?}");
                if m {
                    for g in 0..regex.captures_len() {
                        assert_eq!(matcher.get(g), full.get(g), "{pattern} {line:?} group {g}");
                    }
                }
            }
        }
        for pattern in [
            r"^(?P<a>.*) (?P<b>\w+)$",
            r"^(?P<a>\w+) (?P<msg>.*?)$",
            r"^(?P<a>\w+) (?P<msg>.+)$",
        ] {
            assert!(Matcher::new(Regex::new(pattern).unwrap()).split.is_none(), "{pattern}");
        }
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
    fn timestamp_formats() {
        for (text, format, want) in [
            ("2026-11-26T23:08:26Z", None, Some("2026-11-26T23:08:26Z")),
            ("2026-11-26 23:08:26", None, Some("2026-11-26T23:08:26Z")),
            ("Thu Nov 26 23:08:26 UTC 2026", None, Some("2026-11-26T23:08:26Z")),
            ("26/Nov/2026:23:08:26 +0200", None, Some("2026-11-26T21:08:26Z")),
            (
                "Thu Nov 26 23:08:26 UTC 2026",
                Some("%a %b %e %H:%M:%S %Z %Y"),
                Some("2026-11-26T23:08:26Z"),
            ),
            ("Thu Nov 26 23:08:26 CET 2026", Some("%a %b %e %H:%M:%S %Z %Y"), None),
            ("1764198506", Some("%s"), Some("2025-11-26T23:08:26Z")),
            ("not a time", None, None),
        ] {
            let got = parse_timestamp(text, format).map(|t| t.to_string());
            assert_eq!(got.as_deref(), want, "{text} {format:?}");
        }
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
        assert!(err(Format::Json, None, Some(ts)).contains("needs --parse"));
    }
}
