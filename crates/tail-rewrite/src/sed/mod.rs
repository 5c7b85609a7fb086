//! The rules engine: a sed-compatible subset, compiled once and run on each
//! line. Pure and synchronous; no I/O.
//!
//! A [`Program`] is built from `-e` expressions and `-f` files (in order, as
//! one script, like sed) and runs one sed cycle per line: the pattern space
//! starts as the line, commands run in order, `d` ends the cycle without
//! output, and at the end the pattern space is printed unless `-n` was given.
//!
//! Supported: `s/RE/REPL/FLAGS` (any delimiter; flags `g`, `p`, `i`/`I`, a
//! number `N`, and combinations such as `2g`), `d`, `p`, `{…}` blocks, `#`
//! comments, addresses `/RE/`, `\cREc` and `/RE/I`, negated with `!`.
//! Replacements understand `&`, `\0`..`\9`, `\n`, `\t` and the other GNU
//! escapes. Patterns are POSIX basic syntax with the GNU extensions, or
//! extended syntax with `-E`, translated into the `regex` crate's syntax by
//! [`translate`]. Anything else is a [`ScriptError`] naming the position.
//!
//! Matching follows GNU sed in a UTF-8 locale, with the differences listed in
//! the crate's README ("Differences from sed"): alternation picks the
//! leftmost-first branch, not the leftmost-longest one; backreferences in
//! patterns are rejected; `.` and bracket expressions never match bytes that
//! are not valid UTF-8 (as in GNU sed).
//!
//! ```
//! use tail_rewrite::sed::{ParseOptions, Program, ScriptSource, Syntax};
//!
//! let sources = [
//!     ScriptSource::expression(1, "/DEBUG/d"),
//!     ScriptSource::expression(2, r"s/\(user\)=[^ ]*/\1=***/g"),
//! ];
//! let mut program = Program::compile(&sources, false, ParseOptions { syntax: Syntax::Basic })?;
//! let mut out = Vec::new();
//! for line in ["INFO login user=alice", "DEBUG noise"] {
//!     program.run(line.as_bytes(), |l| out.push(String::from_utf8_lossy(l).into_owned()));
//! }
//! assert_eq!(out, ["INFO login user=***"]);
//!
//! let err = Program::compile(&[ScriptSource::expression(1, "y/a/b/")], false, ParseOptions { syntax: Syntax::Basic })
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "-e expression #1, char 1: the `y` (transliterate) command is not supported by tail-rewrite");
//! # Ok::<(), tail_rewrite::sed::ScriptError>(())
//! ```

mod parse;
pub mod translate;

use regex::bytes::{CaptureLocations, Regex};

pub use parse::{ParseOptions, ScriptError};
pub use translate::Syntax;

/// One piece of a sed script: an `-e` expression or the content of a `-f` file.
#[derive(Debug, Clone)]
pub struct ScriptSource {
    /// How errors name it: `-e expression #2`, `-f rules.sed`.
    pub name: String,
    /// The script text.
    pub text: String,
}

impl ScriptSource {
    /// The `n`th `-e` expression (1-based, counting across all `-e`).
    pub fn expression(n: usize, text: impl Into<String>) -> Self {
        Self {
            name: format!("-e expression #{n}"),
            text: text.into(),
        }
    }

    /// A script read from a file.
    pub fn file(path: &str, text: impl Into<String>) -> Self {
        Self {
            name: format!("-f {path}"),
            text: text.into(),
        }
    }
}

/// A compiled script.
#[derive(Debug, Clone)]
pub struct Program {
    cmds: Vec<Cmd>,
    /// `-n`: no automatic print at the end of a cycle.
    quiet: bool,
    /// When the whole script only adds a prefix and/or a suffix to every line
    /// (`s/^/Date /`, `s/$/;/`), those bytes: the pipeline then copies the line
    /// between them without running anything.
    affix: Option<(Vec<u8>, Vec<u8>)>,
    space: Space,
}

/// The pattern space and a scratch buffer, reused across lines.
#[derive(Debug, Clone, Default)]
struct Space {
    /// The pattern space when it is not the input line itself.
    ps: Vec<u8>,
    /// Where a substitution builds its result before swapping it into `ps`.
    tmp: Vec<u8>,
    /// True while the pattern space is still the unmodified input line.
    is_line: bool,
}

#[derive(Debug, Clone)]
struct Cmd {
    address: Option<Address>,
    kind: CmdKind,
}

#[derive(Debug, Clone)]
struct Address {
    regex: Regex,
    negate: bool,
}

#[derive(Debug, Clone)]
enum CmdKind {
    Subst(Box<Subst>),
    Delete,
    Print,
    Block(Vec<Cmd>),
}

#[derive(Debug, Clone)]
struct Subst {
    regex: Regex,
    replacement: Replacement,
    global: bool,
    /// Replace from the `nth` match on (1 unless a number flag was given).
    nth: usize,
    print: bool,
    fast: Option<SubstFast>,
    /// Capture positions, reused across lines (only when groups are needed).
    locs: Option<CaptureLocations>,
}

/// Substitutions that need no regex at all.
#[derive(Debug, Clone)]
enum SubstFast {
    /// `s/^/TEXT/`.
    Prefix(Vec<u8>),
    /// `s/$/TEXT/`.
    Suffix(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Replacement {
    parts: Vec<ReplPart>,
}

#[derive(Debug, Clone)]
enum ReplPart {
    Literal(Vec<u8>),
    /// `&` or `\0` (0), `\1`..`\9`.
    Group(usize),
}

impl Replacement {
    /// True when the replacement inserts only fixed bytes (`&` of an empty
    /// match counts as nothing, and callers only ask for empty matches).
    fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, ReplPart::Literal(_) | ReplPart::Group(0)))
    }

    fn literal_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            if let ReplPart::Literal(bytes) = part {
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    fn uses_groups(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, ReplPart::Group(n) if *n > 0))
    }
}

impl Program {
    /// Compiles the script pieces in order, as one script.
    ///
    /// A script whose first line is exactly `#n` turns on `quiet`, as in sed.
    pub fn compile(sources: &[ScriptSource], quiet: bool, opts: ParseOptions) -> Result<Self, ScriptError> {
        let mut cmds = Vec::new();
        let mut quiet = quiet;
        if let Some(first) = sources.first()
            && (first.text == "#n" || first.text.starts_with("#n\n"))
        {
            quiet = true;
        }
        for source in sources {
            let mut parser = parse::Parser::new(&source.text, &source.name, opts);
            cmds.extend(parser.commands(false, 0)?);
        }
        let affix = affix_of(&cmds, quiet);
        Ok(Self {
            cmds,
            quiet,
            affix,
            space: Space::default(),
        })
    }

    /// A program that passes every line through unchanged.
    pub fn identity() -> Self {
        Self {
            cmds: Vec::new(),
            quiet: false,
            affix: Some((Vec::new(), Vec::new())),
            space: Space::default(),
        }
    }

    /// When the program only wraps every line in fixed bytes: the prefix and
    /// suffix. Callers can then skip [`Program::run`] entirely.
    pub fn affix(&self) -> Option<(&[u8], &[u8])> {
        self.affix.as_ref().map(|(p, s)| (p.as_slice(), s.as_slice()))
    }

    /// Whether the program passes lines through unchanged.
    pub fn is_identity(&self) -> bool {
        self.affix().is_some_and(|(p, s)| p.is_empty() && s.is_empty())
    }

    /// Runs one cycle on `line` (without its newline) and calls `emit` for
    /// each line of output, in order: zero (deleted, or `-n`), one, or more
    /// (`p`).
    pub fn run<F: FnMut(&[u8])>(&mut self, line: &[u8], mut emit: F) {
        self.space.is_line = true;
        let deleted = exec(&mut self.cmds, line, &mut self.space, &mut emit);
        if !deleted && !self.quiet {
            emit(self.space.text(line));
        }
    }
}

impl Space {
    fn text<'a>(&'a self, line: &'a [u8]) -> &'a [u8] {
        if self.is_line { line } else { &self.ps }
    }
}

/// The prefix and suffix when every command is an unaddressed `s/^/…/` or
/// `s/$/…/` (and nothing is printed by other means).
fn affix_of(cmds: &[Cmd], quiet: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    if quiet {
        return None;
    }
    let mut prefix = Vec::new();
    let mut suffix = Vec::new();
    for cmd in cmds {
        if cmd.address.is_some() {
            return None;
        }
        let CmdKind::Subst(s) = &cmd.kind else {
            return None;
        };
        match &s.fast {
            Some(SubstFast::Prefix(p)) => {
                let mut new = p.clone();
                new.extend_from_slice(&prefix);
                prefix = new;
            }
            Some(SubstFast::Suffix(x)) => suffix.extend_from_slice(x),
            None => return None,
        }
    }
    Some((prefix, suffix))
}

/// Runs commands; returns true when `d` ended the cycle.
fn exec<F: FnMut(&[u8])>(cmds: &mut [Cmd], line: &[u8], space: &mut Space, emit: &mut F) -> bool {
    for cmd in cmds {
        if let Some(address) = &cmd.address {
            let matched = address.regex.is_match(space.text(line));
            if matched == address.negate {
                continue;
            }
        }
        match &mut cmd.kind {
            CmdKind::Delete => return true,
            CmdKind::Print => emit(space.text(line)),
            CmdKind::Block(inner) => {
                if exec(inner, line, space, emit) {
                    return true;
                }
            }
            CmdKind::Subst(s) => {
                if s.apply(line, space) && s.print {
                    emit(space.text(line));
                }
            }
        }
    }
    false
}

/// The length of the character starting at `at` (1 for a byte that does not
/// start valid UTF-8), so an empty match never splits a character.
fn char_len(text: &[u8], at: usize) -> usize {
    let b = text[at];
    let want = match b {
        0x00..=0x7F => return 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return 1,
    };
    match text.get(at..at + want) {
        Some(bytes) if std::str::from_utf8(bytes).is_ok() => want,
        _ => 1,
    }
}

impl Subst {
    /// Substitutes in the pattern space; returns whether anything was replaced.
    fn apply(&mut self, line: &[u8], space: &mut Space) -> bool {
        let Space { ps, tmp, is_line } = space;
        let text: &[u8] = if *is_line { line } else { ps };
        tmp.clear();
        match &self.fast {
            Some(SubstFast::Prefix(p)) => {
                tmp.extend_from_slice(p);
                tmp.extend_from_slice(text);
            }
            Some(SubstFast::Suffix(s)) => {
                tmp.extend_from_slice(text);
                tmp.extend_from_slice(s);
            }
            None => {
                if !self.replace(text, tmp) {
                    return false;
                }
            }
        }
        std::mem::swap(ps, tmp);
        *is_line = false;
        true
    }

    /// sed's substitution loop: counts matches, replaces the `nth` (and every
    /// later one with `g`), and skips an empty match right after a previous
    /// match, as sed does (`s/a*/x/g` on `baaac` gives `xbxcx`).
    fn replace(&mut self, text: &[u8], out: &mut Vec<u8>) -> bool {
        let locs = &mut self.locs;
        let mut start = 0;
        let mut count = 0;
        let mut copied = 0;
        let mut last_end: Option<usize> = None;
        let mut replaced = false;
        while start <= text.len() {
            let found = match locs.as_mut() {
                Some(locs) => self.regex.captures_read_at(locs, text, start),
                None => self.regex.find_at(text, start),
            };
            let Some(m) = found else { break };
            let (ms, me) = (m.start(), m.end());
            if ms == me && last_end == Some(ms) {
                if ms >= text.len() {
                    break;
                }
                start = ms + char_len(text, ms);
                continue;
            }
            count += 1;
            if count >= self.nth {
                out.extend_from_slice(&text[copied..ms]);
                for part in &self.replacement.parts {
                    match part {
                        ReplPart::Literal(bytes) => out.extend_from_slice(bytes),
                        ReplPart::Group(0) => out.extend_from_slice(&text[ms..me]),
                        ReplPart::Group(n) => {
                            if let Some((s, e)) = locs.as_ref().and_then(|l| l.get(*n)) {
                                out.extend_from_slice(&text[s..e]);
                            }
                        }
                    }
                }
                copied = me;
                replaced = true;
                if !self.global {
                    break;
                }
            }
            last_end = Some(me);
            start = if me == ms {
                if me >= text.len() {
                    break;
                }
                me + char_len(text, me)
            } else {
                me
            };
        }
        if replaced {
            out.extend_from_slice(&text[copied..]);
        }
        replaced
    }
}

#[cfg(test)]
mod tests;
