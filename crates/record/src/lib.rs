//! podkit-record: turning log lines into records. The pieces `tail-rewrite`
//! and `log-shipper` share, each written once:
//!
//! - [`matcher`]: split a line into fields with a regex's named captures
//!   ([`Matcher`]), on the cheapest engine that gives the regex crate's exact
//!   captures: the [`scanner`] for literal-and-class-run patterns, a one-pass
//!   DFA, or the general engine.
//! - [`escape`]: JSON string and logfmt value writers that append straight
//!   to an output buffer; invalid UTF-8 becomes U+FFFD and is reported, so
//!   the output is always valid.
//! - [`timestamp`]: parse the time a line carries (RFC 3339, common formats,
//!   or a strftime format) and format "now" as RFC 3339 once per millisecond.
//! - [`output`]: stdout or an appended file rotated by size at line
//!   boundaries ([`Output`], [`Target`]).
//!
//! What a record holds and how it is laid out (keys, precedence, what to do
//! with a line that does not match) is each binary's policy, not this
//! crate's. Nothing here is async; nothing here knows about files being
//! followed or about HTTP.
//!
//! # Example
//!
//! A line, parsed with named captures, written as one NDJSON record:
//!
//! ```
//! use podkit_record::{Matcher, escape, timestamp::TimestampParser};
//!
//! let mut matcher = Matcher::new(r"^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$")?;
//! let time_field = matcher.group("time").unwrap();
//! let times = TimestampParser::new(None)?;
//!
//! let line = b"2026-12-05T23:06:14.5+01:00 WARN disk \"data\" 91% full";
//! let mut out = Vec::new();
//! assert!(matcher.captures(line));
//! out.push(b'{');
//! let text = std::str::from_utf8(&line[matcher.get(time_field).unwrap()])?;
//! let time = times.parse(text).unwrap();
//! escape::json_string(&mut out, "timestamp");
//! out.push(b':');
//! escape::json_string(&mut out, &time.to_string());
//! for (name, span) in matcher.fields().filter(|(name, _)| *name != "time") {
//!     out.push(b',');
//!     escape::json_string(&mut out, name);
//!     out.push(b':');
//!     escape::json_string_lossy(&mut out, &line[span]);
//! }
//! out.extend_from_slice(b"}\n");
//! assert_eq!(
//!     std::str::from_utf8(&out)?,
//!     "{\"timestamp\":\"2026-12-05T22:06:14.5Z\",\"level\":\"WARN\",\"msg\":\"disk \\\"data\\\" 91% full\"}\n"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod escape;
pub mod matcher;
pub mod output;
pub mod scanner;
pub mod timestamp;

pub use matcher::{Matcher, PatternError};
pub use output::{Output, Target};
