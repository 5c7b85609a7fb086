//! Timestamps: parsing the time a log line carries (RFC 3339, a few common
//! formats, or a strftime format the user gives), and formatting "now" as
//! RFC 3339 cheaply for every record.
//!
//! The canonical RFC 3339 layout that container runtimes write for every
//! line (`2016-10-06T00:17:09.669794202Z`, or with a numeric offset) has a
//! fixed-layout parser of its own ([`parse_rfc3339_fixed`]), several times
//! cheaper than the general one, and cheaper still for the lines that
//! follow in the same second (each thread remembers the last date and time
//! of day it read); [`parse_rfc3339`] tries it first and hands any other
//! form to jiff.
//!
//! No time zone database is available in a FROM-scratch image, so a zone
//! *name* is understood only when it means UTC (`UTC`, `GMT`, `Z`, …);
//! numeric offsets always work. A time without an offset is taken as UTC.

use std::fmt::Write as _;

use jiff::Timestamp;

/// Formats tried, in order, when no format is given (after RFC 3339 / ISO
/// 8601 with an offset).
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

/// A strftime format that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{format}` is not a usable strftime format: {reason}")]
pub struct TimestampFormatError {
    /// The format as given.
    pub format: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// Parses timestamps with one configuration: a strftime format, or RFC 3339
/// and then [`COMMON_FORMATS`].
///
/// ```
/// use podkit_record::timestamp::TimestampParser;
///
/// let clf = TimestampParser::new(Some("%d/%b/%Y:%H:%M:%S %z"))?;
/// let t = clf.parse("26/Nov/2026:23:08:26 +0200").unwrap();
/// assert_eq!(t.to_string(), "2026-11-26T21:08:26Z");
///
/// let any = TimestampParser::new(None)?;
/// assert_eq!(any.parse("2026-11-26 23:08:26").unwrap().to_string(), "2026-11-26T23:08:26Z");
/// assert!(any.parse("yesterday").is_none());
/// # Ok::<(), podkit_record::timestamp::TimestampFormatError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampParser {
    /// The strftime format, `%Z` already turned into `%Q` (which jiff
    /// parses as a zone name or an offset).
    format: Option<String>,
}

impl TimestampParser {
    /// A parser for `format` (strftime, as in `date +FORMAT`; `%Z` accepts a
    /// UTC zone name), or for RFC 3339 and [`COMMON_FORMATS`] when `None`.
    /// Fails when the format has a directive that is not understood.
    pub fn new(format: Option<&str>) -> Result<Self, TimestampFormatError> {
        let Some(given) = format else {
            return Ok(Self { format: None });
        };
        let format = given.replace("%Z", "%Q");
        // Formatting a sample time rejects unknown directives.
        let mut sample = jiff::fmt::strtime::BrokenDownTime::from(Timestamp::UNIX_EPOCH);
        sample.set_iana_time_zone(Some("UTC".to_owned()));
        let mut text = String::new();
        sample.format(&format, &mut text).map_err(|e| TimestampFormatError {
            format: given.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { format: Some(format) })
    }

    /// The strftime format, if one was given (with `%Z` spelt `%Q`).
    pub fn format(&self) -> Option<&str> {
        self.format.as_deref()
    }

    /// Parses `text` (surrounding white space ignored); `None` when it is
    /// not a time in the configured format(s).
    pub fn parse(&self, text: &str) -> Option<Timestamp> {
        let text = text.trim();
        match &self.format {
            Some(f) => strptime(text, f),
            None => parse_rfc3339(text.as_bytes()).or_else(|| COMMON_FORMATS.iter().find_map(|f| strptime(text, f))),
        }
    }
}

/// Parses a timestamp once: with `format` (strftime; `%Z` accepts UTC/GMT),
/// or RFC 3339 and then [`COMMON_FORMATS`]. A time without an offset is UTC.
/// To parse many, build a [`TimestampParser`] once.
pub fn parse_timestamp(text: &str, format: Option<&str>) -> Option<Timestamp> {
    let text = text.trim();
    match format {
        Some(f) => strptime(text, &f.replace("%Z", "%Q")),
        None => TimestampParser { format: None }.parse(text),
    }
}

fn strptime(text: &str, format: &str) -> Option<Timestamp> {
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

/// Why [`parse_rfc3339_fixed`] did not take a text. Either way the text
/// may still be a time in another form: [`parse_rfc3339`] then asks the
/// general parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FixedRfc3339Error {
    /// Byte `at` is not what the fixed layout has there (or the text ends
    /// there).
    #[error("not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`: unexpected byte at {at}")]
    Layout {
        /// The offending byte's index.
        at: usize,
    },
    /// A field is out of its range (month 13, 30 February, second 60,
    /// offset 24:00), or the time is outside the supported years.
    #[error("{field} out of range")]
    Range {
        /// The field.
        field: &'static str,
    },
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SS[.f]Z` or `…[.f]±HH:MM` (1 to 9
/// fraction digits, upper-case `T` and `Z`, offset up to ±23:59), the layout
/// container runtimes write; anything else is an error, never a panic. It
/// agrees with jiff on every text it takes.
///
/// ```
/// use podkit_record::timestamp::{FixedRfc3339Error, parse_rfc3339_fixed};
///
/// let t = parse_rfc3339_fixed(b"2016-10-06T00:17:09.669794202Z").unwrap();
/// assert_eq!(t.to_string(), "2016-10-06T00:17:09.669794202Z");
/// let t = parse_rfc3339_fixed(b"2016-10-06T02:17:09+02:00").unwrap();
/// assert_eq!(t.to_string(), "2016-10-06T00:17:09Z");
/// assert_eq!(parse_rfc3339_fixed(b"2016-10-06 00:17:09Z"), Err(FixedRfc3339Error::Layout { at: 10 }));
/// assert_eq!(parse_rfc3339_fixed(b"2016-02-30T00:17:09Z"), Err(FixedRfc3339Error::Range { field: "day" }));
/// ```
#[inline]
pub fn parse_rfc3339_fixed(text: &[u8]) -> Result<Timestamp, FixedRfc3339Error> {
    match fixed_fast(text) {
        Some(t) => Ok(t),
        None => fixed_checked(text),
    }
}

/// [`parse_rfc3339_fixed`] on a valid text, with few branches; `None` for
/// anything else (then [`fixed_checked`] says what is wrong).
#[inline]
fn fixed_fast(text: &[u8]) -> Option<Timestamp> {
    let head: [u8; 19] = text.get(..19)?.try_into().ok()?;
    let (last, last_secs) = LAST_SECOND.get();
    let local_secs = match last_secs {
        Some(secs) if last == head => secs,
        _ => {
            let secs = local_seconds(&head)?;
            LAST_SECOND.set((head, Some(secs)));
            secs
        }
    };
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let [b'.', fraction @ ..] = rest {
        let n = fraction.iter().take(10).take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        for &b in &fraction[..n] {
            nanos = nanos * 10 + u32::from(b - b'0');
        }
        nanos *= [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000][9 - n];
        rest = &fraction[n..];
    }
    let offset: i64 = match *rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let [h1, h2, m1, m2] = [h1, h2, m1, m2].map(|b| b.wrapping_sub(b'0'));
            if h1 > 2 || h2 > 9 || m1 > 5 || m2 > 9 {
                return None;
            }
            let (hours, minutes) = (h1 * 10 + h2, m1 * 10 + m2);
            if hours > 23 {
                return None;
            }
            let secs = i64::from(hours) * 3600 + i64::from(minutes) * 60;
            if sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Timestamp::new(local_secs - offset, nanos as i32).ok()
}

thread_local! {
    /// The last `YYYY-MM-DDTHH:MM:SS` [`fixed_fast`] read and what
    /// [`local_seconds`] made of it: a runtime writes many lines a second.
    static LAST_SECOND: std::cell::Cell<([u8; 19], Option<i64>)> = const { std::cell::Cell::new(([0; 19], None)) };
}

/// `YYYY-MM-DDTHH:MM:SS` as seconds since 1970-01-01T00:00:00 of its own
/// offset; `None` when it is not a valid date and time in that layout.
fn local_seconds(head: &[u8; 19]) -> Option<i64> {
    let d = |i: usize| head[i].wrapping_sub(b'0');
    let mut bad = (head[4] != b'-') | (head[7] != b'-') | (head[10] != b'T') | (head[13] != b':') | (head[16] != b':');
    for i in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18] {
        bad |= d(i) > 9;
    }
    if bad {
        return None;
    }
    let two = |i: usize| u32::from(d(i)) * 10 + u32::from(d(i + 1));
    let (year, month, day) = (two(0) * 100 + two(2), two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// [`parse_rfc3339_fixed`], field by field, saying what is wrong.
fn fixed_checked(text: &[u8]) -> Result<Timestamp, FixedRfc3339Error> {
    let layout = |at: usize| FixedRfc3339Error::Layout { at };
    let range = |field: &'static str| FixedRfc3339Error::Range { field };
    // The digits of text[at..at + n] as a number.
    let num = |at: usize, n: usize| -> Result<u32, FixedRfc3339Error> {
        let mut v = 0u32;
        for i in at..at + n {
            let d = text.get(i).ok_or(layout(i))?.wrapping_sub(b'0');
            if d > 9 {
                return Err(layout(i));
            }
            v = v * 10 + u32::from(d);
        }
        Ok(v)
    };
    let sep = |at: usize, want: u8| match text.get(at) {
        Some(&b) if b == want => Ok(()),
        _ => Err(layout(at)),
    };
    let year = num(0, 4)?;
    sep(4, b'-')?;
    let month = num(5, 2)?;
    sep(7, b'-')?;
    let day = num(8, 2)?;
    sep(10, b'T')?;
    let hour = num(11, 2)?;
    sep(13, b':')?;
    let minute = num(14, 2)?;
    sep(16, b':')?;
    let second = num(17, 2)?;
    let mut at = 19;
    let mut nanos = 0u32;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(d) = text.get(at).map(|b| b.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            if at - start == 9 {
                return Err(layout(at));
            }
            nanos = nanos * 10 + u32::from(d);
            at += 1;
        }
        if at == start {
            return Err(layout(at));
        }
        nanos *= 10u32.pow((9 - (at - start)) as u32);
    }
    let offset = match text.get(at) {
        Some(b'Z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = num(at + 1, 2)?;
            sep(at + 3, b':')?;
            let minutes = num(at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return Err(range("offset"));
            }
            at += 6;
            let secs = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' { -secs } else { secs }
        }
        _ => return Err(layout(at)),
    };
    if at != text.len() {
        return Err(layout(at));
    }
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(range("day"));
    }
    if hour > 23 {
        return Err(range("hour"));
    }
    if minute > 59 {
        return Err(range("minute"));
    }
    if second > 59 {
        return Err(range("second"));
    }
    let secs =
        days_from_civil(i64::from(year), month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Timestamp::new(secs, nanos as i32).map_err(|_| range("year"))
}

/// Parses an RFC 3339 time: the fixed layout first ([`parse_rfc3339_fixed`]),
/// then jiff's general parser for every other form it accepts (lower-case
/// `t`/`z`, a space for `T`, `,` for `.`, offsets with seconds, leap
/// seconds…).
///
/// ```
/// use podkit_record::timestamp::parse_rfc3339;
///
/// assert_eq!(parse_rfc3339(b"2016-10-06T00:17:09.669794202Z").unwrap().to_string(), "2016-10-06T00:17:09.669794202Z");
/// assert_eq!(parse_rfc3339(b"2016-10-06t00:17:09z").unwrap().to_string(), "2016-10-06T00:17:09Z");
/// assert!(parse_rfc3339(b"yesterday").is_none());
/// ```
#[inline]
pub fn parse_rfc3339(text: &[u8]) -> Option<Timestamp> {
    match parse_rfc3339_fixed(text) {
        Ok(t) => Some(t),
        Err(_) => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (proleptic Gregorian; H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with milliseconds (`2026-12-05T23:06:14.123Z`), formatted
/// in full at most once per second: at a million lines a second, most
/// records reuse the text of the one before, or change only its
/// milliseconds.
///
/// ```
/// use podkit_record::timestamp::Rfc3339Millis;
///
/// let mut clock = Rfc3339Millis::new();
/// let t: jiff::Timestamp = "2026-12-05T23:06:14.123456Z".parse().unwrap();
/// assert_eq!(clock.format(t), "2026-12-05T23:06:14.123Z");
/// assert!(clock.now().ends_with('Z'));
/// ```
#[derive(Debug, Clone)]
pub struct Rfc3339Millis {
    /// The millisecond since the epoch that `text` shows.
    ms: i64,
    text: String,
}

impl Default for Rfc3339Millis {
    fn default() -> Self {
        Self::new()
    }
}

impl Rfc3339Millis {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            ms: i64::MIN,
            text: String::with_capacity(32),
        }
    }

    /// `t` as RFC 3339 with milliseconds (truncated), formatted in full
    /// only when its second differs from the last call's (else only the
    /// milliseconds are rewritten).
    #[inline]
    pub fn format(&mut self, t: Timestamp) -> &str {
        // The millisecond shown: rounded down, also before 1970.
        let ms = t.as_second() * 1000 + i64::from(t.subsec_nanosecond().div_euclid(1_000_000));
        if ms != self.ms {
            if ms.div_euclid(1000) == self.ms.div_euclid(1000) {
                // `….SSS` + `Z`: the same second, other milliseconds.
                let digits = ms.rem_euclid(1000) as u16;
                self.text.truncate(self.text.len() - 4);
                for d in [digits / 100, digits / 10 % 10, digits % 10] {
                    self.text.push(char::from(b'0' + d as u8));
                }
                self.text.push('Z');
            } else {
                self.text.clear();
                let _ = write!(self.text, "{t:.3}");
            }
            self.ms = ms;
        }
        &self.text
    }

    /// The current time, as [`Rfc3339Millis::format`] gives it.
    #[inline]
    pub fn now(&mut self) -> &str {
        self.format(Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_formats() {
        for (text, format, want) in [
            ("2026-11-26T23:08:26Z", None, Some("2026-11-26T23:08:26Z")),
            ("2026-11-26 23:08:26", None, Some("2026-11-26T23:08:26Z")),
            ("  2026-11-26T23:08:26.5+01:00 ", None, Some("2026-11-26T22:08:26.5Z")),
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
            let parser = TimestampParser::new(format).unwrap();
            assert_eq!(
                parser.parse(text).map(|t| t.to_string()).as_deref(),
                want,
                "{text} {format:?}"
            );
        }
    }

    #[test]
    fn unknown_directives_are_rejected() {
        let err = TimestampParser::new(Some("%Y-%J")).unwrap_err();
        assert_eq!(err.format, "%Y-%J");
        assert!(
            err.to_string().starts_with("`%Y-%J` is not a usable strftime format: "),
            "{err}"
        );
    }

    #[test]
    fn fixed_rfc3339_layouts() {
        let jiff = |s: &str| s.parse::<Timestamp>().unwrap();
        for text in [
            "2016-10-06T00:17:09.669794202Z",
            "2016-10-06T00:17:09Z",
            "2016-10-06T00:17:09.5Z",
            "2016-10-06T00:17:09.000000001Z",
            "2016-10-06T02:17:09.669794202+02:00",
            "2016-10-05T20:47:09.1-03:30",
            "2016-10-06T00:17:09-00:00",
            "2024-02-29T23:59:59.999999999+23:59",
            "2000-02-29T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T00:00:00Z",
        ] {
            let got = parse_rfc3339_fixed(text.as_bytes());
            assert_eq!(got, Ok(jiff(text)), "{text}");
            assert_eq!(parse_rfc3339(text.as_bytes()), Some(jiff(text)), "{text}");
        }
    }

    #[test]
    fn the_remembered_second_serves_only_its_own_text() {
        // The same date and time of day again and again, with other
        // fractions, offsets and tails, and an invalid text in between.
        for text in [
            "2016-10-06T00:17:09Z",
            "2016-10-06T00:17:09.5+02:00",
            "2016-10-06T00:17:09.000000001-03:30",
            "2016-10-06T00:17:09+24:00",
            "2016-10-06T00:17:09.Z",
            "2016-02-30T00:17:09Z",
            "2016-10-06T00:17:09.25Z",
            "2016-10-06T00:17:10Z",
            "2016-10-06T00:17:09Z",
        ] {
            let jiff = text.parse::<Timestamp>().ok();
            let fixed = parse_rfc3339_fixed(text.as_bytes()).ok();
            assert!(fixed.is_none() || fixed == jiff, "{text}");
            assert_eq!(parse_rfc3339(text.as_bytes()), jiff, "{text}");
        }
    }

    #[test]
    fn fixed_rfc3339_refuses_every_other_form() {
        use FixedRfc3339Error::{Layout, Range};
        for (text, want, general) in [
            ("", Layout { at: 0 }, None),
            ("2016", Layout { at: 4 }, None),
            ("2016-10-06", Layout { at: 10 }, None),
            ("2016-10-06T00:17:09", Layout { at: 19 }, None),
            ("2016-10-06T00:17:09.Z", Layout { at: 20 }, None),
            ("2016-10-06T00:17:09.1234567891Z", Layout { at: 29 }, None),
            ("2016-10-06T00:17:09Zjunk", Layout { at: 20 }, None),
            ("2016-10-06T00:17:09Z ", Layout { at: 20 }, None),
            ("2016-10-06T00:17:09+02:0", Layout { at: 24 }, None),
            ("2016-1O-06T00:17:09Z", Layout { at: 6 }, None),
            ("2016/10/06T00:17:09Z", Layout { at: 4 }, None),
            ("+2016-10-06T00:17:09Z", Layout { at: 0 }, None),
            ("2016-10-06T00:17:09\u{0}Z", Layout { at: 19 }, None),
            ("2016-10-06T0\u{e9}:17:09Z", Layout { at: 12 }, None),
            ("2016-13-06T00:17:09Z", Range { field: "month" }, None),
            ("2016-00-06T00:17:09Z", Range { field: "month" }, None),
            ("2016-10-00T00:17:09Z", Range { field: "day" }, None),
            ("2015-02-29T00:17:09Z", Range { field: "day" }, None),
            ("1900-02-29T00:17:09Z", Range { field: "day" }, None),
            ("2016-04-31T00:17:09Z", Range { field: "day" }, None),
            ("2016-10-06T24:00:00Z", Range { field: "hour" }, None),
            ("2016-10-06T00:60:09Z", Range { field: "minute" }, None),
            ("2016-10-06T00:17:09+02:60", Range { field: "offset" }, None),
            ("9999-12-31T23:59:59Z", Range { field: "year" }, None),
            // Forms only the general parser takes.
            (
                "2016-12-31T23:59:60Z",
                Range { field: "second" },
                Some("2016-12-31T23:59:59Z"),
            ),
            ("2016-10-06 00:17:09Z", Layout { at: 10 }, Some("2016-10-06T00:17:09Z")),
            ("2016-10-06t00:17:09z", Layout { at: 10 }, Some("2016-10-06T00:17:09Z")),
            ("2016-10-06T00:17:09z", Layout { at: 19 }, Some("2016-10-06T00:17:09Z")),
            (
                "2016-10-06T00:17:09,5Z",
                Layout { at: 19 },
                Some("2016-10-06T00:17:09.5Z"),
            ),
            (
                "2016-10-06T00:17:09+0200",
                Layout { at: 22 },
                Some("2016-10-05T22:17:09Z"),
            ),
            (
                "2016-10-06T00:17:09+02",
                Layout { at: 22 },
                Some("2016-10-05T22:17:09Z"),
            ),
            (
                "2016-10-06T00:17:09+02:00:00",
                Layout { at: 25 },
                Some("2016-10-05T22:17:09Z"),
            ),
            (
                "2016-10-06T00:17:09+24:00",
                Range { field: "offset" },
                Some("2016-10-05T00:17:09Z"),
            ),
            (
                "2016-10-06T00:17:09+25:00",
                Range { field: "offset" },
                Some("2016-10-04T23:17:09Z"),
            ),
        ] {
            let fixed = parse_rfc3339_fixed(text.as_bytes());
            assert_eq!(fixed, Err(want), "{text:?}");
            assert!(!want.to_string().is_empty());
            let got = parse_rfc3339(text.as_bytes()).map(|t| t.to_string());
            assert_eq!(got.as_deref(), general, "{text:?}");
            let jiff = text.parse::<Timestamp>().ok().map(|t| t.to_string());
            assert_eq!(got, jiff, "{text:?}");
        }
    }

    #[test]
    fn millis_are_truncated_and_cached() {
        let mut clock = Rfc3339Millis::new();
        let a: Timestamp = "2026-12-05T23:06:14.1239Z".parse().unwrap();
        let b: Timestamp = "2026-12-05T23:06:14.1231Z".parse().unwrap();
        let c: Timestamp = "2026-12-05T23:06:15Z".parse().unwrap();
        assert_eq!(clock.format(a), "2026-12-05T23:06:14.123Z");
        assert_eq!(clock.format(b), "2026-12-05T23:06:14.123Z");
        assert_eq!(clock.format(c), "2026-12-05T23:06:15.000Z");
        let now = clock.now().to_owned();
        assert!(now.parse::<Timestamp>().is_ok(), "{now}");
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// `t` written as RFC 3339 at `offset` minutes, with `digits` fraction
    /// digits (0 to 9; the fraction truncated).
    fn rfc3339(t: Timestamp, offset: i32, digits: usize) -> String {
        let tz = jiff::tz::Offset::from_seconds(offset * 60).unwrap();
        let dt = tz.to_datetime(t);
        let mut text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if digits > 0 {
            let nanos = format!("{:09}", dt.subsec_nanosecond());
            text.push('.');
            text.push_str(&nanos[..digits]);
        }
        if offset == 0 {
            text.push('Z');
        } else {
            let sign = if offset < 0 { '-' } else { '+' };
            text.push_str(&format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60));
        }
        text
    }

    proptest! {
        /// On any valid time in the fixed layout, the fixed parser agrees
        /// with jiff.
        #[test]
        fn fixed_agrees_with_jiff(
            secs in -62_135_596_800i64..253_402_000_000,
            nanos in 0i32..1_000_000_000,
            offset in -1439i32..1440,
            digits in 0usize..10,
            utc: bool,
        ) {
            let t = Timestamp::new(secs, nanos).unwrap();
            let offset = if utc { 0 } else { offset };
            let text = rfc3339(t, offset, digits);
            let jiff = text.parse::<Timestamp>().ok();
            prop_assume!(jiff.is_some() && !text.starts_with('-'));
            prop_assert_eq!(parse_rfc3339_fixed(text.as_bytes()).ok(), jiff, "{}", text);
        }

        /// Any bytes: no panic, and whatever the fixed parser takes, jiff
        /// reads the same.
        #[test]
        fn fixed_never_panics_nor_disagrees(
            text in proptest::string::bytes_regex("[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?(Z|[+-][0-9]{2}:?[0-9]{0,2})?.?").unwrap(),
            noise in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            for bytes in [&text[..], &noise[..]] {
                if let Ok(t) = parse_rfc3339_fixed(bytes) {
                    let jiff = std::str::from_utf8(bytes).unwrap().parse::<Timestamp>().ok();
                    prop_assert_eq!(jiff, Some(t));
                }
                let _ = parse_rfc3339(bytes);
            }
        }

        /// The cached clock always shows what formatting afresh would.
        #[test]
        fn millis_cache_matches_fresh_formatting(
            times in proptest::collection::vec((-3i64..3, 0i64..3_000_000_000), 1..30),
        ) {
            let mut clock = Rfc3339Millis::new();
            for (base, nanos) in times {
                let t = Timestamp::from_nanosecond(i128::from(base * 1_000_000_000_000 + nanos)).unwrap();
                prop_assert_eq!(clock.format(t), format!("{t:.3}"));
            }
        }
    }
}
