//! Splitting a line into fields with a regex's named captures, as fast as
//! the pattern allows.
//!
//! [`Matcher`] picks the cheapest engine that gives the regex crate's exact
//! captures for the pattern:
//! - the [field scanner](crate::scanner) when the pattern is a run of
//!   literals and character-class runs (`^(?P<a>\S+) (?P<b>\w+) …`);
//! - else a one-pass DFA when the pattern is anchored at the start and
//!   one-pass (one scan of the line yields every capture);
//! - else the regex crate's general engine.
//!
//! When the pattern ends with "the rest of the line" (`… (?P<msg>.*)$`), the
//! engine runs only the part before it, and the last group is the rest of
//! the line when that rest is valid UTF-8 without a newline (what `.*` would
//! match); otherwise the full pattern runs. Same results, a fraction of the
//! bytes through the engine.
//!
//! `.` does not match bytes that are not valid UTF-8, so a line holding some
//! may not match a pattern it would match after replacing them with U+FFFD;
//! callers that write JSON anyway can match the lossy text again.

use std::ops::Range;

use regex::bytes::{CaptureLocations, Regex};

use crate::scanner::Scanner;

/// A pattern that cannot be used to split lines into fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not a valid regular expression.
    #[error("invalid regular expression: {0}")]
    Syntax(String),
    /// No group has a name, so there would be no fields.
    #[error("the regex has no named capture group; name the fields like (?P<level>\\w+)")]
    NoNamedGroup,
}

/// A compiled field pattern: match a line, then read its named captures.
///
/// It keeps the last match's captures and per-engine scratch space, so
/// matching takes `&mut self`; clone it for each thread.
///
/// ```
/// use podkit_record::matcher::Matcher;
///
/// let mut m = Matcher::new(r"^(?P<level>\w+) \[(?P<req>[^]]*)\] (?P<msg>.*)$")?;
/// let line = b"WARN [req-7] disk almost full";
/// assert!(m.captures(line));
/// let fields: Vec<(&str, &[u8])> = m.fields().map(|(name, span)| (name, &line[span])).collect();
/// assert_eq!(
///     fields,
///     [("level", &b"WARN"[..]), ("req", b"req-7"), ("msg", b"disk almost full")]
/// );
/// assert!(!m.captures(b"no brackets here"));
/// # Ok::<(), podkit_record::matcher::PatternError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Named groups, (index, name), in pattern order.
    names: Vec<(usize, Box<str>)>,
    /// Groups in the pattern, including group 0 (the whole match).
    groups: usize,
    /// The field scanner, when the pattern has its shape.
    scanner: Option<Scanner>,
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
    /// Compiles `pattern` (the regex crate's syntax, matched against bytes);
    /// it needs at least one named group.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let regex = Regex::new(pattern).map_err(|e| PatternError::Syntax(last_line(&e.to_string())))?;
        let names: Vec<(usize, Box<str>)> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.into())))
            .collect();
        if names.is_empty() {
            return Err(PatternError::NoNamedGroup);
        }
        Ok(Self {
            names,
            groups: regex.captures_len(),
            scanner: Scanner::compile(regex.as_str(), regex.captures_len()),
            last_scanner: false,
            split: rest_of_line_split(&regex),
            full: Engine::new(regex),
            last_split: None,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        self.full.as_str()
    }

    /// Named groups in pattern order: (group index, name).
    pub fn names(&self) -> impl ExactSizeIterator<Item = (usize, &str)> + '_ {
        self.names.iter().map(|(i, n)| (*i, &**n))
    }

    /// The index of the group called `name`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.names.iter().find(|(_, n)| &**n == name).map(|(i, _)| *i)
    }

    /// The number of groups, including group 0 (the whole match).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Matches `line` (without its newline); when it matches, the captures
    /// are then available from [`Matcher::get`] and [`Matcher::fields`].
    pub fn captures(&mut self, line: &[u8]) -> bool {
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
            let end = prefix.span(0).map_or(0, |(_, e)| e);
            let rest = &line[end..];
            if memchr::memchr(b'\n', rest).is_none() && std::str::from_utf8(rest).is_ok() {
                self.last_split = Some((end, line.len()));
                return true;
            }
        }
        self.full.captures(line)
    }

    /// The byte range of group `group` in the last matched line; `None`
    /// when the group did not take part in the match (or after a line that
    /// did not match).
    #[inline]
    pub fn get(&self, group: usize) -> Option<Range<usize>> {
        self.span(group).map(|(s, e)| s..e)
    }

    /// The named groups that took part in the last match, in pattern
    /// order: (name, byte range in the line).
    pub fn fields(&self) -> impl Iterator<Item = (&str, Range<usize>)> + '_ {
        self.names.iter().filter_map(|(i, n)| self.get(*i).map(|r| (&**n, r)))
    }

    fn span(&self, i: usize) -> Option<(usize, usize)> {
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
                    prefix.span(0).map(|(s, _)| (s, len))
                } else {
                    prefix.span(i)
                }
            }
            _ => self.full.span(i),
        }
    }
}

/// One regex engine with its scratch space.
#[derive(Debug, Clone)]
enum Engine {
    /// A one-pass DFA: one scan of the line yields every capture. Used when
    /// the pattern is anchored at the start and one-pass (most log formats
    /// are: `^(?P<a>\S+) (?P<b>\w+) …`).
    OnePass {
        dfa: Box<regex_automata::dfa::onepass::DFA>,
        cache: regex_automata::dfa::onepass::Cache,
        caps: regex_automata::util::captures::Captures,
        /// The pattern, for [`Engine::as_str`].
        regex: Regex,
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
                regex,
            },
            None => Self::Meta {
                locs: regex.capture_locations(),
                regex,
            },
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::OnePass { regex, .. } | Self::Meta { regex, .. } => regex.as_str(),
        }
    }

    /// Matches `line`; the captures are then available from [`Engine::span`].
    fn captures(&mut self, line: &[u8]) -> bool {
        match self {
            Self::OnePass { dfa, cache, caps, .. } => {
                let input = regex_automata::Input::new(line).anchored(regex_automata::Anchored::Yes);
                dfa.captures(cache, input, caps);
                caps.is_match()
            }
            Self::Meta { regex, locs } => regex.captures_read(locs, line).is_some(),
        }
    }

    /// The span of group `i` in the last match.
    #[inline]
    fn span(&self, i: usize) -> Option<(usize, usize)> {
        match self {
            Self::OnePass { caps, .. } => caps.get_group(i).map(|s| (s.start, s.end)),
            Self::Meta { locs, .. } => locs.get(i),
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
    if !crate::scanner::is_dot(class) || cap.index as usize + 1 != regex.captures_len() {
        return None;
    }
    let prefix = Regex::new(&Hir::concat(parts[..n - 1].to_vec()).to_string()).ok()?;
    if prefix.captures_len() + 1 != regex.captures_len() {
        return None;
    }
    Some((Engine::new(prefix), cap.index as usize))
}

/// The last line of a multi-line regex error, which says what is wrong.
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
                    assert_eq!(onepass.span(g), meta.span(g), "{pattern} {line:?} group {g}");
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
            let mut matcher = Matcher::new(pattern).unwrap();
            // Test the split path alone.
            matcher.scanner = None;
            assert!(matcher.split.is_some(), "{pattern} has a rest-of-line group");
            let mut full = Engine::new(regex.clone());
            for line in lines {
                let m = matcher.captures(line);
                assert_eq!(m, full.captures(line), "{pattern} {line:?}");
                if m {
                    for g in 0..regex.captures_len() {
                        assert_eq!(matcher.span(g), full.span(g), "{pattern} {line:?} group {g}");
                    }
                }
            }
        }
        for pattern in [
            r"^(?P<a>.*) (?P<b>\w+)$",
            r"^(?P<a>\w+) (?P<msg>.*?)$",
            r"^(?P<a>\w+) (?P<msg>.+)$",
        ] {
            assert!(Matcher::new(pattern).unwrap().split.is_none(), "{pattern}");
        }
    }

    proptest::proptest! {
        /// Whatever engine it picks, the matcher gives the regex crate's
        /// captures.
        #[test]
        fn agrees_with_the_regex_crate(line in proptest::collection::vec(proptest::sample::select(
            vec![" ", "[", "]", "a", "Z", "1", "é", ":", "=", "\n", "\u{a0}", "x", "\u{ff}"]), 0..12),
            bad in proptest::bool::ANY) {
            let mut line = line.concat().into_bytes();
            if bad {
                line.push(0xff);
            }
            for pattern in [
                r"^(?P<a>\S+) (?P<b>\w+) \[(?P<c>[^]]*)\] (?P<d>.*)$",
                r"^(?P<k>[^=]+)=(?P<v>\S*)$",
                r"^(?P<a>\w+)(?: (?P<b>\d+))? (?P<rest>.*)$",
                r"(?P<level>[A-Z]+): (?P<msg>.*)",
                r"^(?P<a>x*)(?:=(?P<b>1))?",
            ] {
                let regex = Regex::new(pattern).unwrap();
                let mut matcher = Matcher::new(pattern).unwrap();
                let caps = regex.captures(&line);
                proptest::prop_assert_eq!(matcher.captures(&line), caps.is_some(), "{} on {:?}", pattern, line);
                if let Some(caps) = caps {
                    for g in 0..regex.captures_len() {
                        proptest::prop_assert_eq!(matcher.get(g), caps.get(g).map(|m| m.range()));
                    }
                }
            }
        }
    }

    #[test]
    fn names_and_fields() {
        let mut m = Matcher::new(r"^(?P<a>\w+)(?: (?P<b>\d+))?(x)? (?P<c>.*)$").unwrap();
        assert_eq!(m.names().collect::<Vec<_>>(), [(1, "a"), (2, "b"), (4, "c")]);
        assert_eq!(m.groups(), 5);
        assert_eq!(m.group("c"), Some(4));
        assert_eq!(m.group("x"), None);
        assert!(m.captures(b"word rest"));
        // A group that did not take part is left out.
        assert_eq!(m.fields().collect::<Vec<_>>(), [("a", 0..4), ("c", 5..9)]);
        assert!(!m.captures(b""));
        assert_eq!(m.as_str(), r"^(?P<a>\w+)(?: (?P<b>\d+))?(x)? (?P<c>.*)$");
    }

    #[test]
    fn pattern_errors() {
        assert_eq!(Matcher::new("(a)").unwrap_err(), PatternError::NoNamedGroup);
        let err = Matcher::new("(?P<a>").unwrap_err();
        assert!(matches!(err, PatternError::Syntax(_)), "{err:?}");
        assert!(err.to_string().starts_with("invalid regular expression: "), "{err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }
}
