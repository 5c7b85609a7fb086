//! Container log files as the kubelet leaves them: the CRI format that
//! containerd and CRI-O write, and docker's JSON-file format. Each line of
//! such a file is one *piece* of a line the container wrote: its time, its
//! stream, whether it ends the container's line, and the content.
//!
//! - CRI: `<RFC 3339 time> <stdout|stderr> <P|F>[:more tags] <content>`.
//!   `P` (partial) pieces are followed by more pieces of the same line, the
//!   last one tagged `F` (full). The content may be empty.
//! - docker: `{"log":"content\n","stream":"stdout","time":"…"}`. A `log`
//!   that does not end with `\n` is a partial piece (docker splits lines
//!   longer than 16 KiB).
//!
//! Parsing borrows from the line where it can (CRI always; docker when the
//! `log` string has no escapes). A line in neither format is passed on
//! whole as a full piece without time or stream, and counted, never lost.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;

use crate::rec::timestamp::parse_rfc3339;

/// Which format a source's files are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerFormat {
    /// Plain lines (no container runtime framing).
    #[default]
    None,
    /// The CRI format (containerd, CRI-O).
    Cri,
    /// Docker's JSON-file format.
    Docker,
    /// Decided per line: a line starting with `{` is docker's, else CRI.
    Auto,
}

/// The stream a container wrote a piece to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Not known (the line was not in the container format).
    Unknown,
}

impl Stream {
    /// The label value (`stdout`, `stderr`), if known.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Stdout => Some("stdout"),
            Self::Stderr => Some("stderr"),
            Self::Unknown => None,
        }
    }

    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"stdout" => Some(Self::Stdout),
            b"stderr" => Some(Self::Stderr),
            _ => None,
        }
    }
}

/// One line of a container log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// When the runtime wrote it.
    pub time: Option<Timestamp>,
    /// Its stream.
    pub stream: Stream,
    /// Whether it ends the container's line (`F`, or docker's trailing `\n`).
    pub last: bool,
    /// The content, without the framing (and without docker's `\n`).
    pub content: Cow<'a, [u8]>,
}

impl<'a> Piece<'a> {
    /// A line that is in no container format: a whole line of its own.
    pub fn raw(line: &'a [u8]) -> Self {
        Self {
            time: None,
            stream: Stream::Unknown,
            last: true,
            content: Cow::Borrowed(line),
        }
    }
}

impl ContainerFormat {
    /// Parses `line`; `None` when it is not in this format (the caller then
    /// uses [`Piece::raw`] and counts it). Always `Some` for [`Self::None`].
    pub fn parse(self, line: &[u8]) -> Option<Piece<'_>> {
        match self {
            Self::None => Some(Piece::raw(line)),
            Self::Cri => parse_cri(line),
            Self::Docker => parse_docker(line),
            Self::Auto if line.first() == Some(&b'{') => parse_docker(line).or_else(|| parse_cri(line)),
            Self::Auto => parse_cri(line),
        }
    }
}

/// Parses one CRI log line.
pub fn parse_cri(line: &[u8]) -> Option<Piece<'_>> {
    let (time, rest) = split_space(line)?;
    let (stream, rest) = split_space(rest)?;
    // The tag field; a line whose content is empty may end right after it.
    let (tags, content) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let last = match tags.split(|&b| b == b':').next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let time = parse_rfc3339(time)?;
    Some(Piece {
        time: Some(time),
        stream: Stream::parse(stream)?,
        last,
        content: Cow::Borrowed(content),
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', s)?;
    (i > 0).then(|| (&s[..i], &s[i + 1..]))
}

/// Parses one line of docker's JSON-file format.
pub fn parse_docker(line: &[u8]) -> Option<Piece<'_>> {
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        log: Cow<'a, str>,
        #[serde(borrow)]
        stream: Cow<'a, str>,
        #[serde(borrow)]
        time: Option<Cow<'a, str>>,
    }
    let entry: Entry<'_> = serde_json::from_slice(line).ok()?;
    let stream = Stream::parse(entry.stream.as_bytes())?;
    let time = match entry.time {
        Some(t) => Some(parse_rfc3339(t.as_bytes())?),
        None => None,
    };
    let (content, last) = match entry.log {
        Cow::Borrowed(s) => match s.strip_suffix('\n') {
            Some(s) => (Cow::Borrowed(s.as_bytes()), true),
            None => (Cow::Borrowed(s.as_bytes()), false),
        },
        Cow::Owned(mut s) => {
            let last = s.ends_with('\n');
            if last {
                s.pop();
            }
            (Cow::Owned(s.into_bytes()), last)
        }
    };
    Some(Piece {
        time,
        stream,
        last,
        content,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(format: ContainerFormat, line: &str, want: Option<(&str, Stream, bool, &str)>) {
        let got = format.parse(line.as_bytes()).map(|p| {
            (
                p.time.map(|t| t.to_string()).unwrap_or_default(),
                p.stream,
                p.last,
                String::from_utf8(p.content.into_owned()).unwrap(),
            )
        });
        let want = want.map(|(t, s, l, c)| (t.to_owned(), s, l, c.to_owned()));
        assert_eq!(got, want, "{line:?}");
    }

    #[test]
    fn cri_lines() {
        use Stream::*;
        let c = ContainerFormat::Cri;
        let t = "2026-12-06T02:16:08.123456789Z";
        check(
            c,
            &format!("{t} stdout F hello world"),
            Some((t, Stdout, true, "hello world")),
        );
        check(c, &format!("{t} stderr P part "), Some((t, Stderr, false, "part ")));
        check(c, &format!("{t} stdout F "), Some((t, Stdout, true, "")));
        check(c, &format!("{t} stdout F"), Some((t, Stdout, true, "")));
        check(
            c,
            &format!("{t} stdout F:x  two  spaces"),
            Some((t, Stdout, true, " two  spaces")),
        );
        check(
            c,
            "2026-12-06T03:16:08.5+01:00 stdout F offset",
            Some(("2026-12-06T02:16:08.5Z", Stdout, true, "offset")),
        );
        for bad in [
            "",
            "hello",
            "2026-12-06T02:16:08Z stdout",
            "2026-12-06T02:16:08Z stdin F x",
            "2026-12-06T02:16:08Z stdout X x",
            "yesterday stdout F x",
            " 2026-12-06T02:16:08Z stdout F x",
        ] {
            check(c, bad, None);
        }
    }

    #[test]
    fn docker_lines() {
        use Stream::*;
        let d = ContainerFormat::Docker;
        let t = "2026-12-06T02:16:08.123456789Z";
        check(
            d,
            &format!(r#"{{"log":"hello\n","stream":"stdout","time":"{t}"}}"#),
            Some((t, Stdout, true, "hello")),
        );
        check(
            d,
            &format!(r#"{{"log":"tab\there \"q\" \u00e9","stream":"stderr","time":"{t}"}}"#),
            Some((t, Stderr, false, "tab\there \"q\" é")),
        );
        check(d, r#"{"log":"x\n","stream":"stdout"}"#, Some(("", Stdout, true, "x")));
        for bad in [
            r#"{"log":"x\n","stream":"other","time":"2026-12-06T02:16:08Z"}"#,
            r#"{"log":"x\n","time":"2026-12-06T02:16:08Z"}"#,
            r#"{"log":"x\n","stream":"stdout","time":"later"}"#,
            r#"{"log":1,"stream":"stdout"}"#,
            "not json",
        ] {
            check(d, bad, None);
        }
    }

    #[test]
    fn auto_decides_per_line() {
        let a = ContainerFormat::Auto;
        let t = "2026-12-06T02:16:08Z";
        check(a, &format!("{t} stdout F x"), Some((t, Stream::Stdout, true, "x")));
        check(
            a,
            &format!(r#"{{"log":"y\n","stream":"stderr","time":"{t}"}}"#),
            Some((t, Stream::Stderr, true, "y")),
        );
        check(a, "{not docker", None);
        check(
            ContainerFormat::None,
            "{anything",
            Some(("", Stream::Unknown, true, "{anything")),
        );
    }

    proptest! {
        /// Whatever a container wrote, framed as CRI, parses back to it.
        #[test]
        fn cri_round_trips(content in "[^\n]{0,40}", partial: bool, stderr: bool, nanos in 0u32..1_000_000_000) {
            let time = Timestamp::new(1_765_000_000, nanos as i32).unwrap();
            let stream = if stderr { "stderr" } else { "stdout" };
            let line = format!("{} {stream} {} {content}", time, if partial { "P" } else { "F" });
            let piece = parse_cri(line.as_bytes()).unwrap();
            prop_assert_eq!(piece.time, Some(time));
            prop_assert_eq!(piece.stream.as_str(), Some(stream));
            prop_assert_eq!(piece.last, !partial);
            prop_assert_eq!(&piece.content[..], content.as_bytes());
        }

        /// The same for docker's format, whatever needs escaping.
        #[test]
        fn docker_round_trips(content in "[^\n]{0,40}", partial: bool) {
            let log = if partial { content.clone() } else { format!("{content}\n") };
            let line = serde_json::json!({"log": log, "stream": "stdout", "time": "2026-12-06T02:16:08Z"}).to_string();
            let piece = parse_docker(line.as_bytes()).unwrap();
            prop_assert_eq!(piece.last, !partial);
            prop_assert_eq!(&piece.content[..], content.as_bytes());
        }

        /// No input makes a parser panic.
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            for f in [ContainerFormat::Cri, ContainerFormat::Docker, ContainerFormat::Auto] {
                let _ = f.parse(&line);
            }
        }
    }
}
