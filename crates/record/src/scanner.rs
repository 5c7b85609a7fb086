//! A field scanner: the fast path of [`Matcher`](crate::matcher::Matcher)
//! for the shape almost every log pattern has, a sequence of literals and greedy character-class runs, each
//! run ending where a literal that the class cannot match begins:
//!
//! ```text
//! ^(?P<date>\S+) (?P<level>\w+) \[(?P<req>[^]]*)\] (?P<msg>.*)$
//! ```
//!
//! Such a pattern can match a line in only one way, so scanning it left to
//! right with no backtracking gives exactly the regex engine's captures,
//! at a fraction of the cost (a table lookup per ASCII byte). Patterns of any
//! other shape are not compiled ([`Scanner::compile`] returns `None`) and
//! lines that are not valid UTF-8 or hold a newline are left to the regex
//! engine ([`Scanner::captures`] returns `None`).

use regex_syntax::hir::{Class, ClassUnicode, Hir, HirKind, Look};

/// A set of characters with an ASCII lookup table.
#[derive(Debug, Clone)]
struct Set {
    ascii: [bool; 128],
    /// Ranges of non-ASCII code points, sorted.
    wide: Vec<(u32, u32)>,
}

impl Set {
    fn new(class: &ClassUnicode) -> Self {
        let mut ascii = [false; 128];
        let mut wide = Vec::new();
        for r in class.ranges() {
            let (s, e) = (r.start() as u32, r.end() as u32);
            for c in s..=e.min(127) {
                ascii[c as usize] = true;
            }
            if e >= 128 {
                wide.push((s.max(128), e));
            }
        }
        Self { ascii, wide }
    }

    #[inline]
    fn contains(&self, c: u32) -> bool {
        if c < 128 {
            return self.ascii[c as usize];
        }
        self.wide
            .binary_search_by(|&(s, e)| {
                if e < c {
                    std::cmp::Ordering::Less
                } else if s > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }
}

#[derive(Debug, Clone)]
enum Item {
    /// Exactly these bytes.
    Lit(Vec<u8>),
    /// One character of the set.
    One(Set),
    /// As many characters of the set as possible (at least `min`: 0 or 1).
    Run { set: Set, min: usize, group: Option<usize> },
    /// The rest of the line (`.*` at the end).
    Rest { group: Option<usize> },
    /// `$`.
    End,
}

/// A compiled field scanner.
#[derive(Debug, Clone)]
pub struct Scanner {
    items: Vec<Item>,
    /// Spans by group index (0 is the whole match).
    slots: Vec<Option<(usize, usize)>>,
}

/// The class of `.`, with or without `(?s)`.
pub(crate) fn is_dot(class: &ClassUnicode) -> bool {
    let ranges: Vec<(char, char)> = class.ranges().iter().map(|r| (r.start(), r.end())).collect();
    ranges == [('\0', '\t'), ('\u{b}', '\u{10FFFF}')] || ranges == [('\0', '\u{10FFFF}')]
}

/// A greedy unbounded repetition of a Unicode class: (class, min).
fn run_of(hir: &Hir) -> Option<(&ClassUnicode, usize)> {
    let HirKind::Repetition(rep) = hir.kind() else {
        return None;
    };
    if rep.max.is_some() || !rep.greedy || rep.min > 1 {
        return None;
    }
    let HirKind::Class(Class::Unicode(class)) = rep.sub.kind() else {
        return None;
    };
    Some((class, rep.min as usize))
}

impl Scanner {
    /// Compiles `pattern` (the regex crate's syntax; `groups` is its number
    /// of groups, including group 0) if it has the scanner's
    /// shape: `^`, then literals, single classes and greedy class runs
    /// (captured or not) where each run is followed by the end, `$`, a `.*`
    /// rest, or a literal starting with a character outside the run's class.
    pub fn compile(pattern: &str, groups: usize) -> Option<Self> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        if !matches!(parts.first()?.kind(), HirKind::Look(Look::Start)) {
            return None;
        }
        let mut items = Vec::new();
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate().skip(1) {
            let item = match part.kind() {
                HirKind::Literal(lit) => {
                    std::str::from_utf8(&lit.0).ok()?;
                    Item::Lit(lit.0.to_vec())
                }
                HirKind::Class(Class::Unicode(class)) => Item::One(Set::new(class)),
                HirKind::Look(Look::End) if i == last => Item::End,
                HirKind::Repetition(_) => {
                    let (class, min) = run_of(part)?;
                    Item::Run {
                        set: Set::new(class),
                        min,
                        group: None,
                    }
                }
                HirKind::Capture(cap) => {
                    let (class, min) = run_of(&cap.sub)?;
                    let group = Some(cap.index as usize);
                    let at_end = i == last || (i + 1 == last && matches!(parts[last].kind(), HirKind::Look(Look::End)));
                    if at_end && min == 0 && is_dot(class) {
                        Item::Rest { group }
                    } else {
                        Item::Run {
                            set: Set::new(class),
                            min,
                            group,
                        }
                    }
                }
                _ => return None,
            };
            items.push(item);
        }
        // Every run must stop where the next item begins.
        for w in 0..items.len() {
            if let Item::Run { set, .. } = &items[w] {
                match items.get(w + 1) {
                    None | Some(Item::End | Item::Rest { .. }) => {}
                    Some(Item::Lit(lit)) => {
                        let first = std::str::from_utf8(lit).ok()?.chars().next()?;
                        if set.contains(first as u32) {
                            return None;
                        }
                    }
                    _ => return None,
                }
            }
        }
        Some(Self {
            items,
            slots: vec![None; groups],
        })
    }

    /// Matches `line`: `Some(matched)`, or `None` when the line is not valid
    /// UTF-8 or holds a newline (the regex engine decides those).
    pub fn captures(&mut self, line: &[u8]) -> Option<bool> {
        if std::str::from_utf8(line).is_err() || memchr::memchr(b'\n', line).is_some() {
            return None;
        }
        self.slots.iter_mut().for_each(|s| *s = None);
        let len = line.len();
        let mut pos = 0;
        for item in &self.items {
            match item {
                Item::Lit(lit) => {
                    if !line[pos..].starts_with(lit) {
                        return Some(false);
                    }
                    pos += lit.len();
                }
                Item::One(set) => {
                    let Some((c, w)) = decode(line, pos) else {
                        return Some(false);
                    };
                    if !set.contains(c) {
                        return Some(false);
                    }
                    pos += w;
                }
                Item::Run { set, min, group } => {
                    let start = pos;
                    while pos < len {
                        let b = line[pos];
                        if b < 0x80 {
                            if !set.ascii[b as usize] {
                                break;
                            }
                            pos += 1;
                        } else {
                            let (c, w) = decode(line, pos).expect("valid UTF-8 was checked");
                            if !set.contains(c) {
                                break;
                            }
                            pos += w;
                        }
                    }
                    if pos == start && *min == 1 {
                        return Some(false);
                    }
                    if let Some(g) = group {
                        self.slots[*g] = Some((start, pos));
                    }
                }
                Item::Rest { group } => {
                    if let Some(g) = group {
                        self.slots[*g] = Some((pos, len));
                    }
                    pos = len;
                }
                Item::End => {
                    if pos != len {
                        return Some(false);
                    }
                }
            }
        }
        self.slots[0] = Some((0, pos));
        Some(true)
    }

    /// The span of group `i` in the last match.
    #[inline]
    pub fn get(&self, i: usize) -> Option<(usize, usize)> {
        self.slots.get(i).copied().flatten()
    }
}

/// The character at `at` of valid UTF-8, and its width.
fn decode(line: &[u8], at: usize) -> Option<(u32, usize)> {
    let b0 = *line.get(at)? as u32;
    let cont = |i: usize| (line[at + i] as u32) & 0x3F;
    Some(match b0 {
        0x00..=0x7F => (b0, 1),
        0xC0..=0xDF => (((b0 & 0x1F) << 6) | cont(1), 2),
        0xE0..=0xEF => (((b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3),
        _ => (((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3), 4),
    })
}

#[cfg(test)]
mod tests {
    use regex::bytes::Regex;

    use super::*;

    /// Every line, every pattern: the scanner agrees with the regex crate.
    #[test]
    fn agrees_with_the_regex_engine() {
        let patterns = [
            r"^(?P<date>\S+) (?P<level>\S+) \[(?P<req>[^]]*)\] (?P<msg>.*)$",
            r"^(?P<date>[^ ]+) (?P<level>\w+) (?P<msg>.*)",
            r"^(?P<ip>[0-9.]+) - (?P<user>[^ ]*) \[(?P<time>[^]]+)\] (?P<rest>.*)$",
            r"^(?i)(?P<level>[a-z]+): (?P<msg>.*)$",
            r"^(?P<a>\d*)x(?P<b>.*)",
            r"^(?P<word>\w+)$",
            r"^(?P<word>\w+)",
            r"^ab(?P<n>\d+)é(?P<rest>.*)$",
            r"^\d+ (?P<k>[^=]+)=(?P<v>\S*)$",
        ];
        let lines: &[&[u8]] = &[
            b"2026-11-26T23:08:26Z INFO [req-1] GET / 200",
            b"2026-11-26T23:08:26Z INFO [] x",
            b"2026-11-26T23:08:26Z  INFO [x] double space",
            b"d\xc3\xa9j\xc3\xa0 INFO [r] caf\xc3\xa9",
            b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200",
            b"127.0.0.1 -  [x] y",
            b"WARN: disk",
            b"warn: disk",
            b"123x",
            b"x",
            b"xyz",
            b"word",
            b"two words",
            b"ab12\xc3\xa9rest",
            b"ab\xc3\xa9rest",
            b"1 key=value",
            b"1 key=value extra",
            b"1 =v",
            b"",
            b"no\xa0break nbsp\xc2\xa0here",
            b"\xe3\x80\x80ideographic space",
        ];
        for pattern in patterns {
            let regex = Regex::new(pattern).unwrap();
            let mut scanner =
                Scanner::compile(pattern, regex.captures_len()).unwrap_or_else(|| panic!("{pattern} should compile"));
            for &line in lines {
                let Some(matched) = scanner.captures(line) else {
                    assert!(std::str::from_utf8(line).is_err(), "declined a valid line {line:?}");
                    continue;
                };
                let caps = regex.captures(line);
                assert_eq!(
                    matched,
                    caps.is_some(),
                    "{pattern} on {:?}",
                    String::from_utf8_lossy(line)
                );
                if let Some(caps) = caps {
                    for g in 0..regex.captures_len() {
                        let want = caps.get(g).map(|m| (m.start(), m.end()));
                        assert_eq!(scanner.get(g), want, "{pattern} group {g} on {line:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Random lines over an alphabet that exercises every boundary.
        #[test]
        fn agrees_on_random_lines(line in proptest::collection::vec(proptest::sample::select(
            vec![" ", "  ", "[", "]", "a", "Z", "1", "é", ":", "=", "\u{a0}", "\u{3000}", "-", "x", "_"]), 0..12)) {
            let line = line.concat();
            for pattern in [
                r"^(?P<a>\S+) (?P<b>\w+) \[(?P<c>[^]]*)\] (?P<d>.*)$",
                r"^(?P<k>[^=]+)=(?P<v>\S*)$",
                r"^(?P<a>\d*)x(?P<b>.*)",
                r"^(?P<a>[^ ]+)  ?(?P<b>.*)",
            ] {
                let regex = Regex::new(pattern).unwrap();
                let Some(mut scanner) = Scanner::compile(pattern, regex.captures_len()) else { continue };
                let matched = scanner.captures(line.as_bytes()).unwrap();
                let caps = regex.captures(line.as_bytes());
                proptest::prop_assert_eq!(matched, caps.is_some(), "{} on {:?}", pattern, line);
                if let Some(caps) = caps {
                    for g in 0..regex.captures_len() {
                        proptest::prop_assert_eq!(scanner.get(g), caps.get(g).map(|m| (m.start(), m.end())));
                    }
                }
            }
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_regex_engine() {
        for pattern in [
            r"(?P<a>\w+) (?P<b>.*)",        // not anchored
            r"^(?P<a>.*) (?P<b>\w+)$",      // a run that can swallow the next literal
            r"^(?P<a>\w+)(?P<b>\d+)",       // a run followed by an overlapping run
            r"^(?P<a>\w+)? x",              // an optional group
            r"^(?P<a>\w+|\d+) x",           // an alternation
            r"^(?P<a>\w{2,3}) x",           // a bounded repetition
            r"^(?P<a>\w+?) x",              // a lazy repetition
            r"^(?P<a>[^ ]+) (?P<b>[^ ]+)?", // an optional capture
        ] {
            assert!(Scanner::compile(pattern, 3).is_none(), "{pattern}");
        }
    }
}
