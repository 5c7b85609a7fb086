//! Timestamps: parsing the time a log line carries (RFC 3339, a few common
//! formats, or a strftime format the user gives), and formatting "now" as
//! RFC 3339 cheaply for every record.
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
            None => text
                .parse::<Timestamp>()
                .ok()
                .or_else(|| COMMON_FORMATS.iter().find_map(|f| strptime(text, f))),
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

/// RFC 3339 in UTC with milliseconds (`2026-12-05T23:06:14.123Z`), formatted
/// at most once per millisecond: at a million lines a second, most records
/// reuse the text of the one before.
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
            text: String::with_capacity(24),
        }
    }

    /// `t` as RFC 3339 with milliseconds (truncated), reformatted only when
    /// its millisecond differs from the last call's.
    #[inline]
    pub fn format(&mut self, t: Timestamp) -> &str {
        let ms = t.as_millisecond();
        if ms != self.ms {
            self.text.clear();
            let _ = write!(self.text, "{t:.3}");
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
