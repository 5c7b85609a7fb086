//! Parsing of sed scripts (`-e` expressions and `-f` files) into a
//! [`Program`](super::Program): the supported subset of sed, and a clear
//! error naming the position for everything else.
//!
//! Supported: commands `s`, `d`, `p`, `{…}` blocks and `#` comments,
//! separated by `;` or newlines; addresses `/RE/` and `\cREc` with an optional
//! `I` flag, negated with `!`. Everything else sed has (`y`, `a`/`i`/`c`,
//! hold space, branches, line-number and range addresses, `w` files, `e`)
//! is rejected by name.

use regex::bytes::{Regex, RegexBuilder};

use super::translate::{Syntax, Translated, translate};
use super::{Address, Cmd, CmdKind, ReplPart, Replacement, Subst, SubstFast};

/// A script that cannot be run: where and why, in the words sed uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}, char {char}: {message}")]
pub struct ScriptError {
    /// `-e expression #N` or `-f FILE`.
    pub source_name: String,
    /// 1-based character position in that expression.
    pub char: usize,
    /// What is wrong.
    pub message: String,
}

/// Options that change how expressions are read.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// `-E`: extended regular expressions.
    pub syntax: Syntax,
}

pub(super) struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    name: &'a str,
    opts: ParseOptions,
}

type Result<T> = std::result::Result<T, ScriptError>;

const UNSUPPORTED: &[(char, &str)] = &[
    ('y', "the `y` (transliterate) command"),
    ('a', "the `a` (append text) command"),
    ('i', "the `i` (insert text) command"),
    ('c', "the `c` (change) command"),
    ('h', "the `h` command (hold space)"),
    ('H', "the `H` command (hold space)"),
    ('g', "the `g` command (hold space)"),
    ('G', "the `G` command (hold space)"),
    ('x', "the `x` command (hold space)"),
    ('n', "the `n` (next line) command"),
    ('N', "the `N` (append next line) command"),
    ('D', "the `D` command"),
    ('P', "the `P` command"),
    ('b', "branches (`b`)"),
    ('t', "branches (`t`)"),
    ('T', "branches (`T`)"),
    (':', "labels (`:`)"),
    ('q', "the `q` (quit) command"),
    ('Q', "the `Q` (quit) command"),
    ('=', "the `=` (line number) command"),
    ('l', "the `l` (list) command"),
    ('r', "the `r` (read file) command"),
    ('R', "the `R` (read line) command"),
    ('w', "the `w` (write file) command"),
    ('W', "the `W` (write file) command"),
    ('e', "the `e` (execute) command"),
    ('F', "the `F` (file name) command"),
    ('z', "the `z` (zap) command"),
    ('v', "the `v` command"),
];

impl<'a> Parser<'a> {
    pub(super) fn new(text: &str, name: &'a str, opts: ParseOptions) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            name,
            opts,
        }
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ScriptError {
        ScriptError {
            source_name: self.name.to_owned(),
            char: at + 1,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// Parses commands until the end of the text (or a `}` when `nested`).
    pub(super) fn commands(&mut self, nested: bool, open_at: usize) -> Result<Vec<Cmd>> {
        let mut cmds = Vec::new();
        loop {
            // Separators and blank space between commands.
            while matches!(self.peek(), Some(' ' | '\t' | '\n' | ';')) {
                self.pos += 1;
            }
            match self.peek() {
                None if nested => return Err(self.error(open_at, "unmatched `{`")),
                None => return Ok(cmds),
                Some('}') if nested => {
                    self.pos += 1;
                    return Ok(cmds);
                }
                Some('}') => return Err(self.error(self.pos, "unexpected `}`")),
                Some('#') => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.pos += 1;
                    }
                }
                Some(_) => {
                    let cmd = self.command()?;
                    cmds.push(cmd);
                    self.end_of_command(nested)?;
                }
            }
        }
    }

    /// After a command: blanks, then `;`, a newline, `#`, `}` or the end.
    fn end_of_command(&mut self, nested: bool) -> Result<()> {
        self.skip_blanks();
        match self.peek() {
            None | Some(';' | '\n' | '#') => Ok(()),
            Some('}') if nested => Ok(()),
            Some(c) => Err(self.error(self.pos, format!("extra characters after command (`{c}`)"))),
        }
    }

    fn command(&mut self) -> Result<Cmd> {
        let address = self.address()?;
        self.skip_blanks();
        let mut negate = false;
        while self.peek() == Some('!') {
            if negate {
                return Err(self.error(self.pos, "multiple `!`s"));
            }
            negate = true;
            self.pos += 1;
            self.skip_blanks();
        }
        if negate && address.is_none() {
            return Err(self.error(self.pos.saturating_sub(1), "`!` needs an address before it"));
        }
        let at = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.error(at, "missing command"));
        };
        self.pos += 1;
        let kind = match c {
            's' => CmdKind::Subst(Box::new(self.subst(at, address.as_ref())?)),
            'd' => CmdKind::Delete,
            'p' => CmdKind::Print,
            '{' => CmdKind::Block(self.commands(true, at)?),
            _ => {
                let what = UNSUPPORTED
                    .iter()
                    .find(|(k, _)| *k == c)
                    .map(|(_, what)| format!("{what} is not supported by tail-rewrite"))
                    .unwrap_or_else(|| format!("unknown command: `{c}`"));
                return Err(self.error(at, what));
            }
        };
        Ok(Cmd {
            address: address.map(|regex| Address { regex, negate }),
            kind,
        })
    }

    /// An optional address: `/RE/` or `\cREc`, optionally followed by `I`.
    fn address(&mut self) -> Result<Option<Regex>> {
        let at = self.pos;
        let delim = match self.peek() {
            Some('/') => {
                self.pos += 1;
                '/'
            }
            Some('\\') => {
                self.pos += 1;
                match self.peek() {
                    Some(d) if d != '\n' && d != '\\' => {
                        self.pos += 1;
                        d
                    }
                    _ => return Err(self.error(self.pos, "expected a delimiter after `\\` in an address")),
                }
            }
            Some(c) if c.is_ascii_digit() || c == '$' => {
                return Err(self.error(
                    at,
                    "line-number addresses are not supported by tail-rewrite (a followed log has no \
                     stable line numbers); use /REGEX/",
                ));
            }
            _ => return Ok(None),
        };
        let (source, offsets) = self.delimited(delim, at, "address")?;
        if source.is_empty() {
            return Err(self.error(at, "an empty address regex (reuse of the last regex) is not supported"));
        }
        let mut insensitive = false;
        loop {
            match self.peek() {
                Some('I') => {
                    insensitive = true;
                    self.pos += 1;
                }
                Some('M') => return Err(self.error(self.pos, "the `M` (multi-line) address flag is not supported")),
                _ => break,
            }
        }
        self.skip_blanks();
        if self.peek() == Some(',') {
            return Err(self.error(
                self.pos,
                "address ranges (`addr1,addr2`) are not supported by tail-rewrite",
            ));
        }
        Ok(Some(self.compile(&source, &offsets, insensitive)?.0))
    }

    /// Reads up to an unescaped `delim`, returning the text with `\delim`
    /// turned into `delim` (as GNU sed does: the character then has its
    /// usual meaning) and, per character, its position in the script.
    fn delimited(&mut self, delim: char, open_at: usize, what: &str) -> Result<(String, Vec<usize>)> {
        let mut text = String::new();
        let mut offsets = Vec::new();
        loop {
            let at = self.pos;
            match self.peek() {
                None => return Err(self.error(open_at, format!("unterminated {what}"))),
                Some(c) if c == delim => {
                    self.pos += 1;
                    return Ok((text, offsets));
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.error(open_at, format!("unterminated {what}"))),
                        Some(c) if c == delim => {
                            text.push(c);
                            offsets.push(at);
                        }
                        Some(c) => {
                            text.push('\\');
                            offsets.push(at);
                            text.push(c);
                            offsets.push(self.pos);
                        }
                    }
                    self.pos += 1;
                }
                Some('\n') => {
                    return Err(self.error(open_at, format!("unterminated {what}")));
                }
                Some(c) => {
                    text.push(c);
                    offsets.push(at);
                    self.pos += 1;
                }
            }
        }
    }

    /// Compiles a sed pattern; errors point into the script.
    fn compile(&self, source: &str, offsets: &[usize], insensitive: bool) -> Result<(Regex, Translated)> {
        let at = |i: usize| offsets.get(i).or(offsets.last()).copied().unwrap_or(self.pos);
        let translated = translate(source, self.opts.syntax).map_err(|e| self.error(at(e.at), e.message))?;
        if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&translated.pattern) {
            let index = translated.source_index(e.span().start.offset);
            return Err(self.error(at(index), format!("invalid regular expression: {}", e.kind())));
        }
        let regex = RegexBuilder::new(&translated.pattern)
            .case_insensitive(insensitive)
            .dot_matches_new_line(true)
            .size_limit(64 << 20)
            .build()
            .map_err(|e| {
                let message = match e {
                    regex::Error::CompiledTooBig(limit) => {
                        format!("regular expression too big once compiled (over {limit} bytes)")
                    }
                    other => format!("invalid regular expression: {}", first_line_of_last_paragraph(&other)),
                };
                self.error(at(0), message)
            })?;
        Ok((regex, translated))
    }

    /// `s` after the `s`: delimiter, pattern, replacement, flags.
    fn subst(&mut self, at: usize, address: Option<&Regex>) -> Result<Subst> {
        let delim = match self.peek() {
            Some(d) if d != '\n' && d != '\\' => d,
            _ => return Err(self.error(at, "unterminated `s` command")),
        };
        self.pos += 1;
        let (source, offsets) = self.delimited(delim, at, "`s` command")?;
        let (raw_repl, repl_offsets) = self.delimited(delim, at, "replacement")?;
        let flags = self.subst_flags()?;

        let (regex, translated) = if source.is_empty() {
            // `/RE/s//X/`: the empty regex reuses the address's regex, which is
            // always the last one run when this command runs.
            match address {
                Some(regex) => {
                    let pattern = regex.as_str().to_owned();
                    let regex = if flags.insensitive {
                        RegexBuilder::new(&pattern)
                            .case_insensitive(true)
                            .dot_matches_new_line(true)
                            .build()
                            .map_err(|e| self.error(at, format!("invalid regular expression: {e}")))?
                    } else {
                        regex.clone()
                    };
                    let groups = regex.captures_len() - 1;
                    let translated = Translated {
                        pattern,
                        origin: Vec::new(),
                        groups,
                    };
                    (regex, translated)
                }
                None => {
                    return Err(self.error(
                        at,
                        "an empty regex (reuse of the last regex) is supported only as `/RE/s//…/`",
                    ));
                }
            }
        } else {
            self.compile(&source, &offsets, flags.insensitive)?
        };
        let replacement = self.replacement(&raw_repl, &repl_offsets, translated.groups)?;
        let fast = if flags.nth == 1 && !flags.print && replacement.is_literal() {
            if translated.is_start_anchor() {
                Some(SubstFast::Prefix(replacement.literal_bytes()))
            } else if translated.is_end_anchor() {
                Some(SubstFast::Suffix(replacement.literal_bytes()))
            } else {
                None
            }
        } else {
            None
        };
        let needs_groups = replacement.uses_groups();
        Ok(Subst {
            locs: needs_groups.then(|| regex.capture_locations()),
            regex,
            replacement,
            global: flags.global,
            nth: flags.nth,
            print: flags.print,
            fast,
        })
    }

    fn subst_flags(&mut self) -> Result<SubstFlags> {
        let mut flags = SubstFlags {
            global: false,
            print: false,
            insensitive: false,
            nth: 1,
        };
        let mut saw_number = false;
        loop {
            let at = self.pos;
            match self.peek() {
                Some('g') => {
                    if flags.global {
                        return Err(self.error(at, "multiple `g` options to `s` command"));
                    }
                    flags.global = true;
                }
                Some('p') => {
                    if flags.print {
                        return Err(self.error(at, "multiple `p` options to `s` command"));
                    }
                    flags.print = true;
                }
                Some('i' | 'I') => flags.insensitive = true,
                Some(c) if c.is_ascii_digit() => {
                    if saw_number {
                        return Err(self.error(at, "multiple number options to `s` command"));
                    }
                    saw_number = true;
                    let mut n: usize = 0;
                    while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
                        n = n.saturating_mul(10).saturating_add(d as usize);
                        self.pos += 1;
                    }
                    if n == 0 {
                        return Err(self.error(at, "number option to `s` command may not be zero"));
                    }
                    flags.nth = n;
                    continue;
                }
                Some('w') => {
                    return Err(self.error(at, "the `w` flag (write to a file) is not supported by tail-rewrite"));
                }
                Some('e') => return Err(self.error(at, "the `e` flag (execute) is not supported by tail-rewrite")),
                Some('m' | 'M') => {
                    return Err(self.error(at, "the `m`/`M` (multi-line) flag is not supported by tail-rewrite"));
                }
                None | Some(' ' | '\t' | ';' | '\n' | '}' | '#') => return Ok(flags),
                Some(c) => return Err(self.error(at, format!("unknown option to `s`: `{c}`"))),
            }
            self.pos += 1;
        }
    }

    /// Parses a replacement: `&`, `\0`..`\9`, escapes, literal text.
    fn replacement(&self, raw: &str, offsets: &[usize], groups: usize) -> Result<Replacement> {
        let chars: Vec<char> = raw.chars().collect();
        let mut parts: Vec<ReplPart> = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let flush = |lit: &mut Vec<u8>, parts: &mut Vec<ReplPart>| {
            if !lit.is_empty() {
                parts.push(ReplPart::Literal(std::mem::take(lit)));
            }
        };
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let at = offsets.get(i).copied().unwrap_or(self.pos);
            i += 1;
            match c {
                '&' => {
                    flush(&mut lit, &mut parts);
                    parts.push(ReplPart::Group(0));
                }
                '\\' => {
                    let Some(&e) = chars.get(i) else {
                        lit.push(b'\\');
                        continue;
                    };
                    i += 1;
                    match e {
                        '0'..='9' => {
                            let n = e as usize - '0' as usize;
                            if n > groups {
                                return Err(self.error(at, format!("invalid reference \\{n} on `s` command's RHS")));
                            }
                            flush(&mut lit, &mut parts);
                            parts.push(ReplPart::Group(n));
                        }
                        'n' | '\n' => lit.push(b'\n'),
                        't' => lit.push(b'\t'),
                        'r' => lit.push(b'\r'),
                        'f' => lit.push(0x0C),
                        'v' => lit.push(0x0B),
                        'a' => lit.push(0x07),
                        'L' | 'U' | 'l' | 'u' | 'E' => {
                            return Err(self.error(
                                at,
                                format!("case conversion `\\{e}` in a replacement is not supported by tail-rewrite"),
                            ));
                        }
                        'd' | 'o' | 'x' | 'c' => {
                            let value = numeric(&chars, i - 1);
                            match value {
                                Some((b, next)) => {
                                    lit.push(b);
                                    i = next;
                                }
                                None => push_char(&mut lit, e),
                            }
                        }
                        other => push_char(&mut lit, other),
                    }
                }
                c => push_char(&mut lit, c),
            }
        }
        flush(&mut lit, &mut parts);
        Ok(Replacement { parts })
    }
}

struct SubstFlags {
    global: bool,
    print: bool,
    insensitive: bool,
    nth: usize,
}

fn push_char(buf: &mut Vec<u8>, c: char) {
    let mut tmp = [0u8; 4];
    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
}

/// GNU numeric escapes in a replacement (`\d065`, `\o101`, `\x41`, `\cA`).
fn numeric(chars: &[char], i: usize) -> Option<(u8, usize)> {
    let (radix, max) = match chars[i] {
        'd' => (10, 3),
        'o' => (8, 3),
        'x' => (16, 2),
        'c' => {
            let c = *chars.get(i + 1)?;
            return c.is_ascii().then(|| ((c.to_ascii_uppercase() as u8) ^ 0x40, i + 2));
        }
        _ => return None,
    };
    let mut value: u32 = 0;
    let mut j = i + 1;
    while j < chars.len() && j - (i + 1) < max {
        let d = chars[j].to_digit(radix)?;
        value = value * radix + d;
        j += 1;
    }
    if j == i + 1 {
        return None;
    }
    u8::try_from(value).ok().map(|b| (b, j))
}

/// The useful line of a regex error message (its last line).
fn first_line_of_last_paragraph(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .last()
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}
