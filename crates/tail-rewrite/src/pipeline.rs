//! The per-line pipeline shared by both modes: include/exclude filters, then
//! the sed rules, then text or structured output, appended to a buffer.
//!
//! [`Processor::line`] allocates nothing per line: the pattern space, capture
//! positions and the output buffer are all reused. A script that only adds a
//! prefix or suffix (`s/^/Date /`) skips the rules engine and copies the line
//! between the fixed bytes.

use regex::bytes::Regex;

use crate::format::{FormatStats, Structurer};
use crate::sed::Program;

/// Counters kept per line, added to the metrics in batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines read.
    pub lines_in: u64,
    /// Lines written (a `p` can write more than one per input line).
    pub lines_out: u64,
    /// Lines dropped by `--include`/`--exclude`.
    pub filtered: u64,
    /// Lines that produced no output (deleted by `d`, `-n`, `--unparsed drop`).
    pub dropped: u64,
}

/// Filters, rules and output format, run on each line.
#[derive(Debug, Clone)]
pub struct Processor {
    /// Lines must match this (any of the `--include` patterns) when set.
    include: Option<Regex>,
    /// Lines matching this (any of the `--exclude` patterns) are dropped.
    exclude: Option<Regex>,
    program: Program,
    /// `None` for text output.
    structurer: Option<Structurer>,
    /// Counters.
    pub stats: Stats,
}

/// A filter pattern that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{flag}: invalid regular expression `{pattern}`: {message}")]
pub struct FilterError {
    /// `--include` or `--exclude`.
    pub flag: &'static str,
    /// The pattern.
    pub pattern: String,
    /// What the regex parser said.
    pub message: String,
}

/// Compiles several patterns into one that matches when any of them does.
pub fn any_of(flag: &'static str, patterns: &[String]) -> Result<Option<Regex>, FilterError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        if let Err(e) = regex_syntax::Parser::new().parse(p) {
            return Err(FilterError {
                flag,
                pattern: p.clone(),
                message: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned(),
            });
        }
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&joined).map(Some).map_err(|e| FilterError {
        flag,
        pattern: patterns.join(" | "),
        message: e.to_string(),
    })
}

impl Processor {
    /// A processor from its parts.
    pub fn new(
        include: Option<Regex>,
        exclude: Option<Regex>,
        program: Program,
        structurer: Option<Structurer>,
    ) -> Self {
        Self {
            include,
            exclude,
            program,
            structurer,
            stats: Stats::default(),
        }
    }

    /// Whether the output is structured (every record ends with a newline).
    pub fn is_structured(&self) -> bool {
        self.structurer.is_some()
    }

    /// The structured-output counters.
    pub fn format_stats(&self) -> FormatStats {
        self.structurer.as_ref().map(|s| s.stats).unwrap_or_default()
    }

    /// Processes one line (without its terminator), appending what it
    /// produces, each output line ending with `\n`, to `out`.
    #[inline]
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        self.stats.lines_in += 1;
        if let Some(re) = &self.include
            && !re.is_match(line)
        {
            self.stats.filtered += 1;
            return;
        }
        if let Some(re) = &self.exclude
            && re.is_match(line)
        {
            self.stats.filtered += 1;
            return;
        }
        let Self {
            program,
            structurer,
            stats,
            ..
        } = self;
        if structurer.is_none()
            && let Some((prefix, suffix)) = program.affix()
        {
            out.reserve(prefix.len() + line.len() + suffix.len() + 1);
            out.extend_from_slice(prefix);
            out.extend_from_slice(line);
            out.extend_from_slice(suffix);
            out.push(b'\n');
            stats.lines_out += 1;
            return;
        }
        let mut emitted = 0u64;
        match structurer {
            None => program.run(line, |text| {
                out.extend_from_slice(text);
                out.push(b'\n');
                emitted += 1;
            }),
            Some(s) => program.run(line, |text| {
                if s.record(text, out) {
                    emitted += 1;
                }
            }),
        }
        stats.lines_out += emitted;
        if emitted == 0 {
            stats.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Format, Unparsed};
    use crate::sed::{ParseOptions, ScriptSource, Syntax};

    fn processor(script: &[&str], include: &[&str], exclude: &[&str], json: bool) -> Processor {
        let sources: Vec<ScriptSource> = script
            .iter()
            .enumerate()
            .map(|(i, s)| ScriptSource::expression(i + 1, *s))
            .collect();
        let program = Program::compile(&sources, false, ParseOptions { syntax: Syntax::Basic }).unwrap();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let structurer =
            json.then(|| Structurer::new(Format::Json, None, Unparsed::Keep, "message", None, &[]).unwrap());
        Processor::new(
            any_of("--include", &strings(include)).unwrap(),
            any_of("--exclude", &strings(exclude)).unwrap(),
            program,
            structurer,
        )
    }

    fn run(p: &mut Processor, input: &str) -> String {
        let mut out = Vec::new();
        for line in input.lines() {
            p.line(line.as_bytes(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn filters_run_before_the_rules() {
        let mut p = processor(&["s/^/Date /"], &["keep", "also"], &["noise"], false);
        assert_eq!(
            run(&mut p, "keep 1\ndrop 2\nalso 3\nkeep noise 4\n"),
            "Date keep 1\nDate also 3\n"
        );
        assert_eq!(p.stats.filtered, 2);
        assert_eq!(p.stats.lines_in, 4);
        assert_eq!(p.stats.lines_out, 2);
    }

    #[test]
    fn rules_then_json() {
        let mut p = processor(&["/debug/d", "s/\"//g"], &[], &[], true);
        assert_eq!(run(&mut p, "a \"q\"\ndebug x\n"), "{\"message\":\"a q\"}\n");
        assert_eq!(p.stats.dropped, 1);
    }

    #[test]
    fn bad_filters_name_the_flag() {
        let e = any_of("--exclude", &["(".into()]).unwrap_err();
        assert!(
            e.to_string().starts_with("--exclude: invalid regular expression `(`"),
            "{e}"
        );
    }
}
