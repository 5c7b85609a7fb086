//! TEMPORARY stand-in for the parts of `podkit-record` the shipper uses
//! (same paths and signatures: `escape`, `timestamp`, `Matcher`, `Output`,
//! `Target`), so that switching over at the merge is replacing this module
//! by `use podkit_record as rec;`. Delete this file then.

pub mod escape {
    //! JSON string writers (stand-in).

    /// Appends `s` as a JSON string literal.
    #[inline]
    pub fn json_string(out: &mut Vec<u8>, s: &str) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, s);
    }

    /// Appends `bytes` as a JSON string literal, U+FFFD for invalid UTF-8;
    /// returns whether anything was replaced.
    #[inline]
    pub fn json_string_lossy(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                json_string(out, s);
                false
            }
            Err(_) => {
                json_string(out, &String::from_utf8_lossy(bytes));
                true
            }
        }
    }
}

pub mod timestamp {
    //! Timestamp parsing and formatting (stand-in).

    use std::fmt::Write as _;

    use jiff::Timestamp;

    /// A strftime format that cannot be used.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("`{format}` is not a usable strftime format: {reason}")]
    pub struct TimestampFormatError {
        /// The format as given.
        pub format: String,
        /// Why.
        pub reason: String,
    }

    /// Parses timestamps with one format, or RFC 3339.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TimestampParser {
        format: Option<String>,
    }

    impl TimestampParser {
        /// A parser for `format` (strftime), or RFC 3339 when `None`.
        pub fn new(format: Option<&str>) -> Result<Self, TimestampFormatError> {
            if let Some(f) = format
                && f.trim().is_empty()
            {
                return Err(TimestampFormatError {
                    format: f.to_owned(),
                    reason: "it is empty".into(),
                });
            }
            Ok(Self {
                format: format.map(str::to_owned),
            })
        }

        /// Parses `text`.
        pub fn parse(&self, text: &str) -> Option<Timestamp> {
            let text = text.trim();
            match &self.format {
                None => text.parse().ok(),
                Some(f) => {
                    let tm = jiff::fmt::strtime::parse(f, text).ok()?;
                    tm.to_timestamp()
                        .ok()
                        .or_else(|| jiff::tz::offset(0).to_timestamp(tm.to_datetime().ok()?).ok())
                }
            }
        }
    }

    /// RFC 3339 with milliseconds in UTC, formatted once per millisecond.
    #[derive(Debug, Clone)]
    pub struct Rfc3339Millis {
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
                text: String::new(),
            }
        }

        /// `t` formatted.
        pub fn format(&mut self, t: Timestamp) -> &str {
            let ms = t.as_millisecond();
            if ms != self.ms {
                self.text.clear();
                let _ = write!(self.text, "{t:.3}");
                self.ms = ms;
            }
            &self.text
        }
    }
}

pub use matcher::{Matcher, PatternError};

mod matcher {
    use std::ops::Range;

    use regex::bytes::{CaptureLocations, Regex};

    /// A regex that cannot be used.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum PatternError {
        /// It does not compile.
        #[error("{0}")]
        Syntax(String),
        /// It has no named group.
        #[error("the pattern has no named group like (?P<level>\\w+)")]
        NoNamedGroup,
    }

    /// Named-capture matching (stand-in on the regex crate).
    #[derive(Debug, Clone)]
    pub struct Matcher {
        regex: Regex,
        locs: CaptureLocations,
        names: Vec<(usize, Box<str>)>,
    }

    impl Matcher {
        /// Compiles `pattern`.
        pub fn new(pattern: &str) -> Result<Self, PatternError> {
            let regex = Regex::new(pattern)
                .map_err(|e| PatternError::Syntax(e.to_string().lines().last().unwrap_or("").trim().to_owned()))?;
            let names: Vec<(usize, Box<str>)> = regex
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| n.map(|n| (i, n.into())))
                .collect();
            if names.is_empty() {
                return Err(PatternError::NoNamedGroup);
            }
            Ok(Self {
                locs: regex.capture_locations(),
                regex,
                names,
            })
        }

        /// Matches `line`.
        pub fn captures(&mut self, line: &[u8]) -> bool {
            self.regex.captures_read(&mut self.locs, line).is_some()
        }

        /// The named groups of the last match: (name, range).
        pub fn fields(&self) -> impl Iterator<Item = (&str, Range<usize>)> + '_ {
            self.names
                .iter()
                .filter_map(|(i, n)| self.locs.get(*i).map(|(s, e)| (&**n, s..e)))
        }
    }
}

pub use output::{Output, Target};

mod output {
    use std::fs::{File, OpenOptions};
    use std::io::{self, Write};
    use std::path::PathBuf;

    /// Where output goes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Target {
        /// Standard output.
        Stdout,
        /// A file (rotation arrives with podkit-record).
        File {
            /// Path.
            path: PathBuf,
            /// Rotate before this size.
            max_size: Option<u64>,
            /// Rotated files kept.
            keep: usize,
        },
    }

    /// An open output (stand-in: appends, no rotation).
    #[derive(Debug)]
    pub struct Output {
        file: Option<File>,
    }

    impl Output {
        /// Opens the target.
        pub fn open(target: Target) -> io::Result<Self> {
            let file = match &target {
                Target::Stdout => None,
                Target::File { path, .. } => Some(OpenOptions::new().create(true).append(true).open(path)?),
            };
            Ok(Self { file })
        }

        /// Writes whole lines.
        pub fn write(&mut self, buf: &[u8]) -> io::Result<()> {
            match &mut self.file {
                Some(f) => f.write_all(buf),
                None => {
                    let mut out = io::stdout().lock();
                    out.write_all(buf)?;
                    out.flush()
                }
            }
        }

        /// Reopens after an external rotation (stand-in: never).
        pub fn reopen_if_moved(&mut self) -> io::Result<bool> {
            Ok(false)
        }
    }
}
