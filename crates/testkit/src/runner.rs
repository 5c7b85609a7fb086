//! The runner of podkit's `harness = false` test binaries: the container
//! tests of `tests/` (the `k8s/` pods, the Helm chart, the DaemonSet) and
//! wait-for's system tests, which need a docker engine, helm or a server
//! that may not be installed, and say so instead of failing.
//!
//! A test returns an [`Outcome`]: `Ok(())` when it passed, or why it
//! [`Stop`]ped: it failed (`?` on a `Result<_, String>` turns the message
//! into a failure), or it cannot run here ([`Skip`], made with [`skip`]). A
//! skip prints `test NAME ... SKIPPED: why` on stdout with the results and
//! `SKIPPED: NAME: why` on stderr, so `cargo test` stays green on a laptop
//! and the gap is visible; [`Skip::failing_when_set`] names the variable
//! with which CI makes it a failure instead (`PODKIT_REQUIRE_HELM`). A
//! panic is a failure too, with its message.
//!
//! [`Runner`] runs tests one after another as libtest would report them:
//! the first argument that is not a flag selects the tests whose name
//! contains it, `--list` lists them without running any, each result line
//! gives the time taken, a summary line ends the run, and the exit code is
//! 101 when a test failed. [`run_tests`] adds a set-up shared by the tests
//! (the images they run), made once, only when a selected test needs it.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A test binary's report.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

/// Why a test stopped without passing.
#[derive(Debug, Clone)]
pub enum Stop {
    /// It ran, and what it saw was wrong.
    Fail(String),
    /// It cannot run here.
    Skip(Skip),
}

/// What a test reports: `Ok(())` when it passed.
pub type Outcome = Result<(), Stop>;

/// Why a test cannot run here (a tool, an engine, a file is missing).
#[derive(Debug, Clone)]
pub struct Skip {
    why: String,
    /// With this variable set, the skip is a failure.
    required_by: Option<&'static str>,
}

impl Skip {
    /// A skip, with the reason printed next to the test's name.
    pub fn new(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            required_by: None,
        }
    }

    /// Makes the skip a failure when the environment variable `var` is set
    /// (to anything): CI's way of saying that what is missing must be there.
    #[must_use]
    pub fn failing_when_set(mut self, var: &'static str) -> Self {
        self.required_by = Some(var);
        self
    }

    /// The reason.
    pub fn why(&self) -> &str {
        &self.why
    }
}

/// `Err(Stop::Skip(Skip::new(why)))`: `return skip("redis-server is not
/// installed")`.
pub fn skip<T>(why: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Skip(Skip::new(why)))
}

/// `Ok(())` when `condition` holds, else the failure `what` describes.
pub fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

impl From<String> for Stop {
    fn from(why: String) -> Self {
        Self::Fail(why)
    }
}

impl From<&str> for Stop {
    fn from(why: &str) -> Self {
        Self::Fail(why.to_owned())
    }
}

impl From<crate::TimedOut> for Stop {
    fn from(timed_out: crate::TimedOut) -> Self {
        Self::Fail(timed_out.to_string())
    }
}

impl From<Skip> for Stop {
    fn from(skip: Skip) -> Self {
        Self::Skip(skip)
    }
}

/// Runs the tests of one binary, one after another, and reports them.
#[derive(Debug)]
pub struct Runner {
    /// The first argument that is not a flag: runs only the tests whose
    /// name contains it.
    filter: Option<String>,
    /// `--list`: print the selected names, run nothing.
    list: bool,
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Runner {
    /// A runner for this process's arguments.
    pub fn from_args() -> Self {
        Self::new(std::env::args().skip(1))
    }

    /// A runner for `args` (without the program name).
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        let mut filter = None;
        let mut list = false;
        for arg in args {
            if arg == "--list" {
                list = true;
            } else if !arg.starts_with('-') && filter.is_none() {
                filter = Some(arg);
            }
        }
        Self {
            filter,
            list,
            passed: 0,
            failed: 0,
            skipped: 0,
        }
    }

    /// Whether the arguments select the test `name` (to run or to list).
    pub fn selects(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| name.contains(f.as_str()))
    }

    /// Runs the test `name` if the arguments select it (with `--list`, only
    /// names it), and reports how it went. A panic is a failure.
    pub fn run(&mut self, name: &str, test: impl FnOnce() -> Outcome) {
        if !self.selects(name) {
            return;
        }
        if self.list {
            println!("{name}: test");
            return;
        }
        println!("test {name} ...");
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(test)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            Err(Stop::Fail(match message {
                Some(message) => format!("panicked: {message}"),
                None => "panicked".to_owned(),
            }))
        });
        let took = started.elapsed().as_secs_f64();
        self.report(name, took, outcome);
    }

    fn report(&mut self, name: &str, took: f64, outcome: Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("test {name} ... ok ({took:.1}s)");
            }
            Err(Stop::Fail(why)) => {
                self.failed += 1;
                println!("test {name} ... FAILED ({took:.1}s): {why}");
            }
            Err(Stop::Skip(Skip {
                why,
                required_by: Some(var),
            })) if std::env::var_os(var).is_some() => {
                self.failed += 1;
                println!("test {name} ... FAILED: {var} is set but {why}");
            }
            Err(Stop::Skip(Skip { why, .. })) => {
                self.skipped += 1;
                println!("test {name} ... SKIPPED: {why}");
                eprintln!("SKIPPED: {name}: {why}");
            }
        }
    }

    /// Prints the summary line; exits with 101 when a test failed.
    pub fn finish(self) {
        if self.list {
            return;
        }
        let Self {
            passed,
            failed,
            skipped,
            ..
        } = self;
        let verdict = if failed == 0 { "ok" } else { "FAILED" };
        println!("\ntest result: {verdict}. {passed} passed; {failed} failed; {skipped} skipped\n");
        if failed > 0 {
            std::process::exit(101);
        }
    }
}

/// A `harness = false` binary's `main` for `tests` that share what `setup`
/// makes (the images they run): the tests the arguments select run in
/// order, each given the set-up, made once before the first of them and
/// not at all when none is selected (or with `--list`). When the set-up
/// stops, every selected test stops the same way: each is skipped (with
/// the set-up's reason) or fails. Exits with 101 when a test failed.
pub fn run_tests<C, T: Fn(&C) -> Outcome>(tests: &[(&str, T)], setup: impl FnOnce() -> Result<C, Stop>) {
    let mut runner = Runner::from_args();
    let mut setup = Some(setup);
    let mut made: Option<Result<C, Stop>> = None;
    for (name, test) in tests {
        runner.run(name, || {
            let made = made.get_or_insert_with(|| match setup.take() {
                Some(setup) => setup(),
                None => Err(Stop::Fail("the set-up panicked before".into())),
            });
            match made {
                Ok(fixture) => test(fixture),
                Err(stop) => Err(stop.clone()),
            }
        });
    }
    // The set-up's clean-up (temp dirs, ...) runs before a failure exits.
    drop(made);
    runner.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(args: &[&str]) -> Runner {
        Runner::new(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn the_first_plain_argument_filters_by_substring() {
        let r = runner(&["--nocapture", "pod", "other"]);
        assert!(r.selects("sidecar_pod") && r.selects("init_container_pod"));
        assert!(!r.selects("lint_strict"));
        assert!(runner(&["--quiet"]).selects("anything"));
    }

    #[test]
    fn outcomes_are_counted() {
        let mut r = runner(&[]);
        r.run("passes", || Ok(()));
        r.run("fails", || Err("wrong".into()));
        r.run("panics", || panic!("boom"));
        r.run("skips", || skip("no tool"));
        r.run("skips_unless_required", || {
            Err(Skip::new("no tool")
                .failing_when_set("PODKIT_TEST_RUNNER_UNSET_VARIABLE")
                .into())
        });
        assert_eq!((r.passed, r.failed, r.skipped), (1, 2, 2));
    }

    #[test]
    fn a_required_skip_fails_when_its_variable_is_set() {
        // PATH is set in every test process.
        let mut r = runner(&[]);
        r.run("required", || Err(Skip::new("no tool").failing_when_set("PATH").into()));
        assert_eq!((r.passed, r.failed, r.skipped), (0, 1, 0));
    }

    #[test]
    fn listing_runs_nothing() {
        let mut r = runner(&["--list"]);
        r.run("listed", || panic!("a listed test ran"));
        assert_eq!((r.passed, r.failed, r.skipped), (0, 0, 0));
    }
}
