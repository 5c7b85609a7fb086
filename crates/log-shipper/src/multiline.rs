//! Multiline rules: which line starts a new record and which continues the
//! one before it. A rule is either a start-of-record regex
//! (`--multiline-start`) or one of the built-in rules for stack traces
//! (`--multiline java|python|go|node`). The rules only decide; joining,
//! limits and acknowledgements live in [`crate::assemble`].
//!
//! Built-in rules, on the line as the app wrote it:
//! - `java`: lines starting with a space or tab (`\tat com.x.Y.z(Y.java:1)`,
//!   `\t... 3 more`) and `Caused by:` / `Suppressed:` lines continue.
//! - `node`: lines starting with a space or tab (`    at f (file.js:1:2)`)
//!   continue.
//! - `python`: `Traceback (most recent call last):` continues the line
//!   before it (a `logging.exception` message), the indented frame lines
//!   continue, the first unindented line after them (`ValueError: …`) ends
//!   the trace; a chained trace (blank line, `During handling of the above
//!   exception…` or `The above exception was the direct cause…`, blank
//!   line, `Traceback…`) stays in the same record.
//! - `go`: after `panic: ` or `fatal error: `, blank lines, `goroutine N
//!   [...]:`, tab-indented lines, `created by …` and function lines
//!   (`main.main()`, `main.f(0x1, ...)`) continue, as do `[recovered]`
//!   panics and `[signal …` lines.

use regex::bytes::Regex;

/// A multiline rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// A line matching the regex starts a record; any other line continues it.
    Start(Regex),
    /// Java stack traces.
    Java,
    /// Python tracebacks.
    Python,
    /// Go panics.
    Go,
    /// Node.js stack traces.
    Node,
}

/// What a rule remembers about the record being joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State(u8);

// Python.
const PY_PLAIN: State = State(0);
const PY_TRACE: State = State(1);
const PY_DONE: State = State(2);
const PY_CHAIN: State = State(3);
// Go.
const GO_PANIC: State = State(1);

impl Rule {
    /// The built-in rule named `name`.
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name {
            "java" => Self::Java,
            "python" => Self::Python,
            "go" => Self::Go,
            "node" | "nodejs" => Self::Node,
            _ => return None,
        })
    }

    /// The state of a record that starts with `line`.
    pub fn start(&self, line: &[u8]) -> State {
        match self {
            Self::Python if line.starts_with(b"Traceback (most recent call last):") => PY_TRACE,
            Self::Go if line.starts_with(b"panic: ") || line.starts_with(b"fatal error: ") => GO_PANIC,
            _ => State::default(),
        }
    }

    /// Whether `line` continues the record in `state` (updated when it does).
    pub fn continues(&self, state: &mut State, line: &[u8]) -> bool {
        match self {
            Self::Start(re) => !re.is_match(line),
            Self::Java => {
                indented(line)
                    || line.starts_with(b"Caused by:")
                    || line.starts_with(b"Suppressed:")
                    || line.starts_with(b"... ")
            }
            Self::Node => indented(line),
            Self::Python => python(state, line),
            Self::Go => go(state, line),
        }
    }
}

fn indented(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

fn python(state: &mut State, line: &[u8]) -> bool {
    let traceback = line.starts_with(b"Traceback (most recent call last):");
    let (goes_on, next) = match *state {
        PY_PLAIN if traceback => (true, PY_TRACE),
        PY_PLAIN => (false, PY_PLAIN),
        PY_TRACE if traceback || indented(line) => (true, PY_TRACE),
        PY_TRACE if line.is_empty() => (false, PY_PLAIN),
        // The exception line ends the trace.
        PY_TRACE => (true, PY_DONE),
        PY_DONE | PY_CHAIN if line.is_empty() => (true, PY_CHAIN),
        PY_CHAIN if traceback => (true, PY_TRACE),
        PY_CHAIN
            if line.starts_with(b"During handling of the above exception")
                || line.starts_with(b"The above exception was the direct cause") =>
        {
            (true, PY_CHAIN)
        }
        // A multi-line exception message.
        PY_DONE if indented(line) => (true, PY_DONE),
        _ => (false, PY_PLAIN),
    };
    if goes_on {
        *state = next;
    }
    goes_on
}

fn go(state: &mut State, line: &[u8]) -> bool {
    if *state != GO_PANIC {
        return false;
    }
    line.is_empty()
        || line.starts_with(b"\t")
        || line.starts_with(b"goroutine ")
        || line.starts_with(b"created by ")
        || line.starts_with(b"panic: ")
        || line.starts_with(b"[signal ")
        || function_line(line)
}

/// `main.main()`, `main.f(0x1, 0x2)`, `pkg.(*T).m(...)`: a name without
/// spaces, then arguments in parentheses.
fn function_line(line: &[u8]) -> bool {
    match memchr::memchr(b'(', line) {
        Some(i) if i > 0 => line.ends_with(b")") && !line[..i].contains(&b' '),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` into records with `rule`, each record's lines joined by `\n`.
    fn join(rule: &Rule, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut state = State::default();
        for line in text.lines() {
            if !out.is_empty() && rule.continues(&mut state, line.as_bytes()) {
                let last = out.last_mut().unwrap();
                last.push('\n');
                last.push_str(line);
            } else {
                state = rule.start(line.as_bytes());
                out.push(line.to_owned());
            }
        }
        out
    }

    fn check(rule: &Rule, text: &str, want: &[&str]) {
        assert_eq!(join(rule, text), want, "{rule:?}");
    }

    #[test]
    fn java() {
        let text = "\
2026-12-06 INFO start
2026-12-06 ERROR failed
java.lang.IllegalStateException: boom
\tat com.example.App.run(App.java:10)
\tat com.example.App.main(App.java:3)
Caused by: java.io.IOException: disk
\tat com.example.Io.read(Io.java:7)
\t... 2 more
2026-12-06 INFO next";
        check(
            &Rule::Java,
            text,
            &[
                "2026-12-06 INFO start",
                "2026-12-06 ERROR failed",
                "java.lang.IllegalStateException: boom\n\tat com.example.App.run(App.java:10)\n\tat com.example.App.main(App.java:3)\nCaused by: java.io.IOException: disk\n\tat com.example.Io.read(Io.java:7)\n\t... 2 more",
                "2026-12-06 INFO next",
            ],
        );
    }

    #[test]
    fn python() {
        let text = "\
ERROR:root:failed
Traceback (most recent call last):
  File \"app.py\", line 3, in <module>
    main()
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"app.py\", line 5, in <module>
ValueError: bad
INFO:root:next
Traceback (most recent call last):
  File \"b.py\", line 1, in <module>
ZeroDivisionError: division by zero
INFO:root:last";
        check(
            &Rule::Python,
            text,
            &[
                "ERROR:root:failed\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nKeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"app.py\", line 5, in <module>\nValueError: bad",
                "INFO:root:next\nTraceback (most recent call last):\n  File \"b.py\", line 1, in <module>\nZeroDivisionError: division by zero",
                "INFO:root:last",
            ],
        );
    }

    #[test]
    fn go() {
        let text = "\
starting
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.main()
\t/app/main.go:8 +0x1d
created by main.start in goroutine 1
\t/app/main.go:3 +0x2
exit status 2
next";
        check(
            &Rule::Go,
            text,
            &[
                "starting",
                "panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:8 +0x1d\ncreated by main.start in goroutine 1\n\t/app/main.go:3 +0x2",
                "exit status 2",
                "next",
            ],
        );
    }

    #[test]
    fn node() {
        let text = "\
listening
Error: boom
    at Object.<anonymous> (/app/index.js:3:9)
    at node:internal/main:1:1
done";
        check(
            &Rule::Node,
            text,
            &[
                "listening",
                "Error: boom\n    at Object.<anonymous> (/app/index.js:3:9)\n    at node:internal/main:1:1",
                "done",
            ],
        );
    }

    #[test]
    fn start_regex() {
        let rule = Rule::Start(Regex::new(r"^\d{4}-\d\d-\d\d ").unwrap());
        check(
            &rule,
            "2026-12-06 a\nmore\n more\n2026-12-06 b\n2026-12-06 c\nx",
            &["2026-12-06 a\nmore\n more", "2026-12-06 b", "2026-12-06 c\nx"],
        );
        assert!(Rule::builtin("ruby").is_none());
    }
}
