//! Translation of POSIX sed regular expressions (GNU basic syntax, or
//! extended syntax with `-E`) into the `regex` crate's syntax.
//!
//! The translation is purely syntactic: it decides what each character means
//! in sed's syntax and writes the equivalent in the regex crate's. It keeps a
//! map from every output byte back to the source character, so a compile error
//! reported by `regex-syntax` names a position in the user's expression.
//!
//! What cannot be honoured is rejected here with a message: backreferences in
//! a pattern (`\1`), equivalence classes and collating symbols of more than
//! one character, unknown character class names.

use std::fmt::Write as _;

/// A syntax error at a character index of the source pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    /// Index (0-based, in characters) into the source pattern.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// A pattern translated to the regex crate's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// The pattern in the regex crate's syntax (without flags).
    pub pattern: String,
    /// For each byte of `pattern`, the index of the source character it came from.
    pub origin: Vec<usize>,
    /// Number of capture groups.
    pub groups: usize,
}

impl Translated {
    /// The source character index for a byte offset into `pattern`.
    pub fn source_index(&self, offset: usize) -> usize {
        self.origin
            .get(offset)
            .or_else(|| self.origin.last())
            .copied()
            .unwrap_or(0)
    }

    /// Whether the pattern is exactly an anchor at the start (`^`).
    pub fn is_start_anchor(&self) -> bool {
        self.pattern == "^"
    }

    /// Whether the pattern is exactly an anchor at the end (`$`).
    pub fn is_end_anchor(&self) -> bool {
        self.pattern == "$"
    }
}

/// Which regular expression syntax the source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// POSIX basic syntax with GNU extensions (`\+`, `\?`, `\|`): sed's default.
    Basic,
    /// POSIX extended syntax (`sed -E`).
    Extended,
}

const CLASS_NAMES: [&str; 12] = [
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit",
];

struct Out {
    pattern: String,
    origin: Vec<usize>,
}

impl Out {
    fn push_str(&mut self, s: &str, from: usize) {
        self.pattern.push_str(s);
        self.origin.resize(self.pattern.len(), from);
    }

    /// A literal character, escaped when it means something to the regex crate.
    fn literal(&mut self, c: char, from: usize) {
        if (c as u32) < 0x80 && (regex_syntax::is_meta_character(c) || c == '\n' || c == '\t' || c == '\r') {
            match c {
                '\n' => self.push_str("\\n", from),
                '\t' => self.push_str("\\t", from),
                '\r' => self.push_str("\\r", from),
                _ => {
                    let mut buf = [0u8; 4];
                    self.push_str("\\", from);
                    self.push_str(c.encode_utf8(&mut buf), from);
                }
            }
        } else if (c as u32) < 0x20 || c as u32 == 0x7f {
            let mut s = String::new();
            let _ = write!(s, "\\x{:02X}", c as u32);
            self.push_str(&s, from);
        } else {
            let mut buf = [0u8; 4];
            self.push_str(c.encode_utf8(&mut buf), from);
        }
    }

    /// Pushes a quantifier. A quantifier right after another one applies to
    /// the whole repetition in POSIX (`a+?` is `(a+)?`), whereas the regex
    /// crate would read `+?` as a lazy `+`, so the repetition is grouped first.
    fn quantifier(&mut self, q: &str, from: usize, atom: Option<usize>, quantified: &mut bool) {
        if *quantified && let Some(at) = atom {
            self.pattern.insert_str(at, "(?:");
            self.origin.splice(at..at, [from; 3]);
            self.push_str(")", from);
        }
        self.push_str(q, from);
        *quantified = true;
    }

    /// A literal byte (from `\xHH`, `\dNNN`, `\oNNN`), matched as a byte.
    fn byte(&mut self, b: u8, from: usize) {
        if b < 0x80 {
            self.literal(b as char, from);
        } else {
            let mut s = String::new();
            let _ = write!(s, "(?-u:\\x{b:02X})");
            self.push_str(&s, from);
        }
    }

    /// A literal character inside a bracket expression.
    fn class_literal(&mut self, c: char, from: usize) {
        match c {
            '\\' | '[' | ']' | '^' | '-' | '&' | '~' => {
                let mut buf = [0u8; 4];
                self.push_str("\\", from);
                self.push_str(c.encode_utf8(&mut buf), from);
            }
            '\n' => self.push_str("\\n", from),
            '\t' => self.push_str("\\t", from),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let mut s = String::new();
                let _ = write!(s, "\\x{:02X}", c as u32);
                self.push_str(&s, from);
            }
            c => {
                let mut buf = [0u8; 4];
                self.push_str(c.encode_utf8(&mut buf), from);
            }
        }
    }
}

fn err(at: usize, message: impl Into<String>) -> TranslateError {
    TranslateError {
        at,
        message: message.into(),
    }
}

/// The value of a GNU numeric or control escape (`\dNNN`, `\oNNN`, `\xHH`,
/// `\cX`) starting at `chars[i]` (the letter), and the index after it.
fn numeric_escape(chars: &[char], i: usize) -> Option<Result<(u8, usize), TranslateError>> {
    let (radix, max_digits) = match chars[i] {
        'd' => (10, 3),
        'o' => (8, 3),
        'x' => (16, 2),
        'c' => {
            let Some(&c) = chars.get(i + 1) else {
                return Some(Err(err(i, "stray \\c at the end of the expression")));
            };
            if !c.is_ascii() {
                return Some(Err(err(i + 1, "\\c must be followed by an ASCII character")));
            }
            return Some(Ok(((c.to_ascii_uppercase() as u8) ^ 0x40, i + 2)));
        }
        _ => return None,
    };
    let mut value: u32 = 0;
    let mut j = i + 1;
    while j < chars.len() && j - (i + 1) < max_digits {
        match chars[j].to_digit(radix) {
            Some(d) => value = value * radix + d,
            None => break,
        }
        j += 1;
    }
    if j == i + 1 {
        // GNU treats `\d` without digits as a literal `d`.
        return None;
    }
    match u8::try_from(value) {
        Ok(b) => Some(Ok((b, j))),
        Err(_) => Some(Err(err(i, format!("escape value {value} does not fit in a byte")))),
    }
}

/// Translates `source` (the pattern between the delimiters, with escaped
/// delimiters already unescaped) from sed's syntax into the regex crate's.
pub fn translate(source: &str, syntax: Syntax) -> Result<Translated, TranslateError> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Out {
        pattern: String::with_capacity(source.len() + 8),
        origin: Vec::with_capacity(source.len() + 8),
    };
    let mut groups = 0usize;
    let mut depth = 0usize;
    // True where a `*` would have nothing to repeat in basic syntax: at the
    // start, after `\(`, after `\|`, and after a leading `^`.
    let mut at_start = true;
    let basic = syntax == Syntax::Basic;
    // Where the last repeatable item starts in the output, whether it has
    // been repeated already, and where open groups start.
    let mut atom: Option<usize> = None;
    let mut quantified = false;
    let mut opens: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        let before = out.pattern.len();
        // What this item is: Some(true) an atom; Some(false) a quantifier or
        // a group close (which set `atom` themselves); None neither (anchors,
        // alternation, group open), after which nothing can be repeated.
        let mut kind: Option<bool> = Some(true);
        match c {
            '\\' => {
                let Some(&e) = chars.get(i) else {
                    return Err(err(start, "trailing backslash"));
                };
                i += 1;
                let mut next_at_start = false;
                match e {
                    '(' if basic => {
                        groups += 1;
                        depth += 1;
                        opens.push(before);
                        out.push_str("(", start);
                        next_at_start = true;
                        kind = None;
                    }
                    ')' if basic => {
                        if depth == 0 {
                            return Err(err(start, "unmatched \\)"));
                        }
                        depth -= 1;
                        out.push_str(")", start);
                        atom = opens.pop();
                        quantified = false;
                        kind = Some(false);
                    }
                    '|' if basic => {
                        out.push_str("|", start);
                        next_at_start = true;
                        kind = None;
                        atom = None;
                    }
                    '{' if basic => {
                        let (text, next) = interval(&chars, i, start, true)?;
                        i = next;
                        out.quantifier(&text, start, atom, &mut quantified);
                        kind = Some(false);
                    }
                    '}' if basic => return Err(err(start, "unmatched \\}")),
                    '+' | '?' if basic => {
                        if at_start {
                            out.literal(e, start);
                        } else {
                            out.quantifier(if e == '+' { "+" } else { "?" }, start, atom, &mut quantified);
                            kind = Some(false);
                        }
                    }
                    '1'..='9' => {
                        return Err(err(
                            start,
                            format!(
                                "backreference \\{e} inside a pattern is not supported (the regex engine \
                                 guarantees linear time and cannot match backreferences)"
                            ),
                        ));
                    }
                    'n' => out.push_str("\\n", start),
                    't' => out.push_str("\\t", start),
                    'r' => out.push_str("\\r", start),
                    'f' => out.push_str("\\x0C", start),
                    'v' => out.push_str("\\x0B", start),
                    'a' => out.push_str("\\x07", start),
                    'w' => out.push_str("\\w", start),
                    'W' => out.push_str("\\W", start),
                    's' => out.push_str("\\s", start),
                    'S' => out.push_str("\\S", start),
                    'b' => out.push_str("\\b", start),
                    'B' => out.push_str("\\B", start),
                    '<' | '>' | '`' | '\'' => {
                        let anchor = match e {
                            '<' => "\\b{start}",
                            '>' => "\\b{end}",
                            '`' => "\\A",
                            _ => "\\z",
                        };
                        out.push_str(anchor, start);
                        kind = None;
                    }
                    'd' | 'o' | 'x' | 'c' => match numeric_escape(&chars, i - 1) {
                        Some(Ok((b, next))) => {
                            out.byte(b, start);
                            i = next;
                        }
                        Some(Err(e)) => return Err(e),
                        None => out.literal(e, start),
                    },
                    // Any other escaped character stands for itself.
                    other => out.literal(other, start),
                }
                at_start = next_at_start;
            }
            '[' => {
                i = bracket(&chars, i, start, &mut out)?;
                at_start = false;
            }
            '*' if basic && at_start => {
                out.literal('*', start);
                at_start = false;
            }
            '*' if basic => {
                out.quantifier("*", start, atom, &mut quantified);
                kind = Some(false);
            }
            '^' if basic => {
                if at_start {
                    out.push_str("^", start);
                    kind = None;
                    // A `*` right after a leading anchor is literal too.
                } else {
                    out.literal('^', start);
                    at_start = false;
                }
            }
            '$' if basic => {
                let rest = &chars[i..];
                let anchors = rest.is_empty() || rest.starts_with(&['\\', ')']) || rest.starts_with(&['\\', '|']);
                if anchors {
                    out.push_str("$", start);
                    kind = None;
                } else {
                    out.literal('$', start);
                }
                at_start = false;
            }
            '(' | ')' | '{' | '}' | '+' | '?' | '|' if basic => {
                out.literal(c, start);
                at_start = false;
            }
            // Extended syntax: the regex crate's syntax is a superset.
            '(' => {
                groups += 1;
                depth += 1;
                opens.push(before);
                out.push_str("(", start);
                at_start = true;
                kind = None;
            }
            ')' => {
                if depth == 0 {
                    return Err(err(start, "unmatched )"));
                }
                depth -= 1;
                out.push_str(")", start);
                at_start = false;
                atom = opens.pop();
                quantified = false;
                kind = Some(false);
            }
            '|' => {
                out.push_str("|", start);
                at_start = true;
                atom = None;
                kind = None;
            }
            '{' => {
                let (text, next) = interval(&chars, i, start, false)?;
                i = next;
                out.quantifier(&text, start, atom, &mut quantified);
                at_start = false;
                kind = Some(false);
            }
            '*' | '+' | '?' => {
                let mut buf = [0u8; 4];
                out.quantifier(c.encode_utf8(&mut buf), start, atom, &mut quantified);
                at_start = false;
                kind = Some(false);
            }
            '^' | '$' => {
                let mut buf = [0u8; 4];
                out.push_str(c.encode_utf8(&mut buf), start);
                at_start = c == '^' && at_start;
                kind = None;
            }
            '.' => {
                out.push_str(".", start);
                at_start = false;
            }
            c => {
                out.literal(c, start);
                at_start = false;
            }
        }
        match kind {
            Some(true) => {
                atom = Some(before);
                quantified = false;
            }
            Some(false) => {}
            None => atom = None,
        }
    }
    if depth > 0 {
        return Err(err(chars.len().saturating_sub(1), "unmatched ( or \\("));
    }
    Ok(Translated {
        pattern: out.pattern,
        origin: out.origin,
        groups,
    })
}

/// Parses an interval `{m}`, `{m,}`, `{m,n}`, `{,n}` (basic: closed by `\}`)
/// starting after the opening brace; returns the index after it.
fn interval(chars: &[char], mut i: usize, start: usize, basic: bool) -> Result<(String, usize), TranslateError> {
    let mut body = String::new();
    loop {
        match chars.get(i) {
            None => return Err(err(start, if basic { "unmatched \\{" } else { "unmatched {" })),
            Some('\\') if basic && chars.get(i + 1) == Some(&'}') => {
                i += 2;
                break;
            }
            Some('}') if !basic => {
                i += 1;
                break;
            }
            Some(&c) if c.is_ascii_digit() || c == ',' => {
                body.push(c);
                i += 1;
            }
            Some(_) => return Err(err(i, "invalid content of \\{\\}")),
        }
    }
    let (min, max) = match body.split_once(',') {
        Some((min, max)) => (min, Some(max)),
        None => (body.as_str(), None),
    };
    if (min.is_empty() && max.is_none()) || max.is_some_and(|m| m.contains(',')) {
        return Err(err(start, "invalid content of \\{\\}"));
    }
    let min = if min.is_empty() { "0" } else { min };
    let text = match max {
        None => format!("{{{min}}}"),
        Some("") => format!("{{{min},}}"),
        Some(max) => format!("{{{min},{max}}}"),
    };
    Ok((text, i))
}

/// Parses a bracket expression starting after `[`; returns the index after
/// the closing `]`.
fn bracket(chars: &[char], mut i: usize, start: usize, out: &mut Out) -> Result<usize, TranslateError> {
    let unterminated = || err(start, "unterminated [ (bracket expression)");
    out.push_str("[", start);
    if chars.get(i) == Some(&'^') {
        out.push_str("^", i);
        i += 1;
    }
    let first = i;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(unterminated());
        };
        let at = i;
        i += 1;
        match c {
            ']' if at > first => break,
            '[' if matches!(chars.get(i), Some(':' | '=' | '.')) => {
                let kind = chars[i];
                let body_start = i + 1;
                let mut j = body_start;
                while j + 1 < chars.len() && !(chars[j] == kind && chars[j + 1] == ']') {
                    j += 1;
                }
                if j + 1 >= chars.len() {
                    return Err(unterminated());
                }
                let name: String = chars[body_start..j].iter().collect();
                i = j + 2;
                match kind {
                    ':' => {
                        if !CLASS_NAMES.contains(&name.as_str()) {
                            return Err(err(at, format!("invalid character class [:{name}:]")));
                        }
                        out.push_str(&format!("[:{name}:]"), at);
                    }
                    _ => {
                        let mut it = name.chars();
                        match (it.next(), it.next()) {
                            (Some(single), None) => out.class_literal(single, at),
                            _ => {
                                return Err(err(
                                    at,
                                    format!(
                                        "[{kind}{name}{kind}] is not supported (only single-character \
                                         equivalence classes and collating symbols are)"
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            '\\' => {
                // POSIX makes a backslash literal inside brackets; GNU sed
                // first turns \n, \t and friends into the characters.
                let mapped = match chars.get(i) {
                    Some('n') => Some('\n'),
                    Some('t') => Some('\t'),
                    Some('r') => Some('\r'),
                    Some('f') => Some('\x0C'),
                    Some('v') => Some('\x0B'),
                    Some('a') => Some('\x07'),
                    Some(']') => {
                        // `[\]]`: GNU sed takes `\` then `]` as the end.
                        None
                    }
                    _ => None,
                };
                match mapped {
                    Some(m) => {
                        out.class_literal(m, at);
                        i += 1;
                    }
                    None => out.class_literal('\\', at),
                }
            }
            '-' => {
                let is_edge = at == first || chars.get(i) == Some(&']');
                if is_edge {
                    out.class_literal('-', at);
                } else {
                    out.push_str("-", at);
                }
            }
            c => out.class_literal(c, at),
        }
    }
    out.push_str("]", i - 1);
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        translate(s, Syntax::Basic)
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .pattern
    }

    fn extended(s: &str) -> String {
        translate(s, Syntax::Extended)
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .pattern
    }

    #[test]
    fn basic_syntax_translations() {
        for (sed, re) in [
            ("^", "^"),
            ("$", "$"),
            ("a.b", "a.b"),
            (r"\(a\)\{2,3\}", "(a){2,3}"),
            (r"a\{,3\}", "a{0,3}"),
            (r"a\+b\?", "a+b?"),
            (r"a\|b", "a|b"),
            ("(a)+?{1}|", r"\(a\)\+\?\{1\}\|"),
            ("*a", r"\*a"),
            ("^*a", r"^\*a"),
            (r"\(*a\)", r"(\*a)"),
            ("x^y$z", r"x\^y\$z"),
            (r"\(^a$\)", "(^a$)"),
            (r"\<w\>", r"\b{start}w\b{end}"),
            (r"\`a\'", r"\Aa\z"),
            (r"\.\*\[\]\\", r"\.\*\[\]\\"),
            (r"\x41\d066\o103", "ABC"),
            (r"\xff", r"(?-u:\xFF)"),
            ("a&b#c", r"a\&b\#c"),
            (r"\n\t", r"\n\t"),
            (r"a*\?", "(?:a*)?"),
            (r"\(a\)*\{2\}", "(?:(a)*){2}"),
        ] {
            assert_eq!(basic(sed), re, "{sed}");
        }
    }

    #[test]
    fn extended_syntax_translations() {
        for (sed, re) in [
            ("(a|b)+", "(a|b)+"),
            (r"\(\)\{\}\|\+\?", r"\(\)\{\}\|\+\?"),
            ("a{2}", "a{2}"),
            ("a{,2}", "a{0,2}"),
            ("a+?", "(?:a+)?"),
            ("(ab)*+", "(?:(ab)*)+"),
            ("a{2}*", "(?:a{2})*"),
            ("^a$", "^a$"),
        ] {
            assert_eq!(extended(sed), re, "{sed}");
        }
    }

    #[test]
    fn bracket_expressions() {
        for (sed, re) in [
            ("[abc]", "[abc]"),
            ("[^abc]", "[^abc]"),
            ("[]a]", r"[\]a]"),
            ("[^]a]", r"[^\]a]"),
            ("[a-z]", "[a-z]"),
            ("[-a]", r"[\-a]"),
            ("[a-]", r"[a\-]"),
            ("[[:alpha:][:digit:]_]", "[[:alpha:][:digit:]_]"),
            ("[[=e=]]", "[e]"),
            ("[[.-.]]", r"[\-]"),
            (r"[\n]", r"[\n]"),
            (r"[\.]", r"[\\.]"),
            ("[&~^]", r"[\&\~\^]"),
            ("[[]", r"[\[]"),
        ] {
            assert_eq!(basic(sed), re, "{sed}");
        }
    }

    #[test]
    fn rejections_name_the_position() {
        for (sed, at, needle) in [
            (r"a\(b\)\1", 6, "backreference"),
            ("[[:nope:]]", 1, "invalid character class"),
            ("[abc", 0, "unterminated"),
            (r"a\{2", 1, "unmatched"),
            (r"a\)", 1, "unmatched"),
            (r"\(a", 2, "unmatched"),
            ("[[.ch.]]", 1, "not supported"),
            ("a\\", 1, "trailing backslash"),
        ] {
            let e = translate(sed, Syntax::Basic).expect_err(sed);
            assert_eq!(e.at, at, "{sed}: {e:?}");
            assert!(e.message.contains(needle), "{sed}: {e:?}");
        }
        let e = translate("(a)|\\2", Syntax::Extended).unwrap_err();
        assert_eq!(e.at, 4);
    }

    #[test]
    fn origin_maps_back_to_source() {
        let t = translate(r"ab\{2\}", Syntax::Basic).unwrap();
        assert_eq!(t.pattern, "ab{2}");
        assert_eq!(t.source_index(2), 2);
        assert_eq!(t.groups, 0);
        let t = translate(r"\(a\)\(b\)", Syntax::Basic).unwrap();
        assert_eq!(t.groups, 2);
    }
}
