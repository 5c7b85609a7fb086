//! The command-line conventions shared by all binaries: common flags with
//! `PODKIT_` env twins, clap errors mapped to exit 64, value parsers for
//! durations (`250ms`, `5s`) and sizes (`64KiB`, `10MiB`), and
//! [`ValueSources`]: where each value came from (flag, env, config file,
//! default), for a binary that merges flags with config sections of its own.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgMatches, Parser};

pub use clap::parser::ValueSource;

use crate::exit;

/// Flags every long-running podkit binary takes (flatten into the binary's
/// `Args` with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Common options")]
pub struct CommonArgs {
    /// Log level (`info`) or tracing filter directives
    /// (`info,podkit_tailer=debug`); RUST_LOG is used when neither is set.
    #[arg(long, env = "PODKIT_LOG_LEVEL", value_name = "LEVEL|DIRECTIVES")]
    pub log_level: Option<String>,

    /// Format of the binary's own logs on stderr.
    #[arg(long, env = "PODKIT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the admin HTTP server (/livez, /readyz, /healthz,
    /// /metrics), or `off`.
    #[arg(long, env = "PODKIT_ADMIN_ADDR", value_name = "ADDR|off")]
    pub admin_addr: AdminAddr,

    /// Longest time to drain after SIGTERM/SIGINT before exiting anyway;
    /// keep it below the pod's terminationGracePeriodSeconds.
    #[arg(
        long,
        env = "PODKIT_GRACE_PERIOD",
        value_name = "DURATION",
        default_value = "20s",
        value_parser = parse_duration
    )]
    pub grace_period: Duration,
}

/// Format of a binary's own logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One flat JSON object per line.
    Json,
}

/// Where the admin server listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddr {
    /// No admin server.
    Off,
    /// Listen on this address.
    On(SocketAddr),
}

impl FromStr for AdminAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
            return Ok(Self::Off);
        }
        s.parse()
            .map(Self::On)
            .map_err(|_| format!("`{s}` is not an address like 0.0.0.0:9701 or [::1]:9701, nor `off`"))
    }
}

impl fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::On(addr) => addr.fmt(f),
        }
    }
}

/// Where the value of each argument came from, as clap saw it: the command
/// line, the environment, or a default (a config file's top-level value is
/// a default, see `config_file`). A binary that lets config sections of its
/// own override the file's top level asks [`ValueSources::given`] whether
/// a flag or env twin set a value, instead of guessing from the value
/// (a flag equal to the file's value is still a flag).
///
/// Flatten it into the binary's `Args` as the **first** field: clap's
/// derive takes each value out of the matches as it fills the fields that
/// follow, and this records the sources before any is taken.
///
/// ```
/// use clap::Parser;
/// use podkit_runtime::cli::{ValueSource, ValueSources};
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     sources: ValueSources,
///     #[arg(long, env = "EXAMPLE_RETRIES", default_value_t = 3)]
///     retries: u32,
///     #[arg(long)]
///     name: Option<String>,
/// }
///
/// let args = Args::try_parse_from(["example", "--retries", "3"])?;
/// assert!(args.sources.given("retries"), "given, even though equal to the default");
/// assert_eq!(args.sources.source("retries"), Some(ValueSource::CommandLine));
/// let args = Args::try_parse_from(["example"])?;
/// assert_eq!(args.sources.source("retries"), Some(ValueSource::DefaultValue));
/// assert!(!args.sources.given("retries") && !args.sources.given("name"));
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ValueSources(HashMap<String, ValueSource>);

impl ValueSources {
    /// Where the value of the argument `id` came from; `None` when it has
    /// none (not given, no default).
    pub fn source(&self, id: &str) -> Option<ValueSource> {
        self.0.get(id).copied()
    }

    /// Whether the command line or the environment gave argument `id` its
    /// value (not a default, nor a config file's top level).
    pub fn given(&self, id: &str) -> bool {
        matches!(
            self.source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }
}

impl clap::FromArgMatches for ValueSources {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(
            matches
                .ids()
                .filter_map(|id| {
                    let id = id.as_str();
                    matches.value_source(id).map(|source| (id.to_owned(), source))
                })
                .collect(),
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ValueSources {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd
    }
}

/// A binary's parsed arguments that carry the [`CommonArgs`].
pub trait Cli: Parser {
    /// The common flags.
    fn common(&self) -> &CommonArgs;
}

/// Parses the process arguments (and their env twins) into `A`.
///
/// `--help` and `--version` print to stdout and exit 0; any other clap error
/// (an unknown flag, a bad value) prints clap's message, which names the flag,
/// and exits 64. `admin_default` is this binary's default admin address, since
/// pods share one network namespace and every binary needs its own port.
pub fn parse<A: Parser>(admin_default: &'static str) -> Result<A, ExitCode> {
    parse_from(std::env::args_os(), admin_default)
}

/// [`parse`] from an explicit argument list (the first item is the program
/// name).
///
/// When `A` has a `config` argument (`--config PATH` and its env twin), the
/// file it names is read first and its values become defaults, so the
/// precedence is flag > environment > config file > built-in default (see
/// `config_file`).
pub fn parse_from<A, I, T>(args: I, admin_default: &'static str) -> Result<A, ExitCode>
where
    A: Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let mut command = with_admin_default(A::command(), admin_default);
    if let Some(path) = crate::config_file::requested(&command, &args) {
        command = match crate::config_file::apply(command, &path) {
            Ok(command) => command,
            Err(message) => {
                let name = args
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                eprintln!("{name}: error: {message}");
                return Err(ExitCode::from(exit::USAGE));
            }
        };
    }
    matches(command, args)
}

/// [`parse`] for a binary that takes no `--config` file, with the same
/// conventions otherwise. It does not link the TOML and YAML parsers (about
/// 0.5 MB of a static binary), for size-sensitive binaries (`wait-for`).
pub fn parse_without_config_file<A: Parser>(admin_default: &'static str) -> Result<A, ExitCode> {
    matches(
        with_admin_default(A::command(), admin_default),
        std::env::args_os().collect(),
    )
}

pub(crate) fn with_admin_default(command: clap::Command, admin_default: &'static str) -> clap::Command {
    if command.get_arguments().any(|a| a.get_id() == "admin_addr") {
        command.mut_arg("admin_addr", |a| a.required(false).default_value(admin_default))
    } else {
        command
    }
}

/// Matches `args` and maps clap's errors to exit codes.
fn matches<A: Parser>(command: clap::Command, args: Vec<std::ffi::OsString>) -> Result<A, ExitCode> {
    let result = command
        .try_get_matches_from(args)
        .and_then(|mut matches: ArgMatches| A::from_arg_matches_mut(&mut matches));
    result.map_err(|err| {
        let code = if err.use_stderr() { exit::USAGE } else { exit::OK };
        // Printing fails only when stdout/stderr are gone; nothing to do then.
        let _ = err.print();
        ExitCode::from(code)
    })
}

/// Parses a humantime duration: `250ms`, `5s`, `2m`, `1h 30m`, or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 250ms, 5s or 2m ({e})"))
}

/// Parses a size: a number of bytes, optionally with a unit `B`, `KB`, `MB`,
/// `GB` (powers of 1000), `KiB`, `MiB`, `GiB` (powers of 1024), or `K`, `M`,
/// `G` (taken as powers of 1024, as `ls` and k8s `Ki` users expect).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("`{s}` is not a size like 4096, 64KiB or 10MiB");
    let number: f64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "t", version = crate::VERSION)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse_ok(args: &[&str]) -> Args {
        parse_from(std::iter::once("t").chain(args.iter().copied()), "127.0.0.1:9799").expect("parses")
    }

    #[test]
    fn defaults_apply_including_the_binary_admin_default() {
        let a = parse_ok(&[]);
        assert_eq!(a.common.admin_addr, AdminAddr::On("127.0.0.1:9799".parse().unwrap()));
        assert_eq!(a.common.grace_period, Duration::from_secs(20));
        assert_eq!(a.common.log_format, LogFormat::Text);
    }

    #[test]
    fn admin_can_be_turned_off_and_values_parse() {
        let a = parse_ok(&["--admin-addr", "off", "--grace-period", "250ms", "--log-format", "json"]);
        assert_eq!(a.common.admin_addr, AdminAddr::Off);
        assert_eq!(a.common.grace_period, Duration::from_millis(250));
        assert_eq!(a.common.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_and_unknown_flags_are_usage_errors() {
        for args in [
            &["--grace-period", "soon"][..],
            &["--no-such-flag"],
            &["--admin-addr", "nowhere"],
        ] {
            let err =
                parse_from::<Args, _, _>(std::iter::once("t").chain(args.iter().copied()), "127.0.0.1:1").unwrap_err();
            assert_eq!(
                format!("{err:?}"),
                format!("{:?}", ExitCode::from(exit::USAGE)),
                "{args:?}"
            );
        }
    }

    #[derive(Debug, Parser)]
    #[command(name = "t")]
    struct WithSources {
        #[command(flatten)]
        sources: ValueSources,
        #[arg(long, env = "T_CLI_TEST_TIMEOUT", value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[arg(long = "route")]
        routes: Vec<String>,
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn value_sources_tell_flags_and_env_from_config_file_values() {
        let dir = std::env::temp_dir().join(format!("podkit-cli-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "timeout = \"5s\"\nroute = [\"a\"]\nverbose = true\n").unwrap();
        let file = file.to_str().unwrap();
        let parse = |args: &[&str]| {
            let mut all = vec!["t", "--admin-addr", "off"];
            all.extend_from_slice(args);
            let mut command = <WithSources as clap::CommandFactory>::command();
            command = crate::config_file::apply(command, std::path::Path::new(file)).unwrap();
            let mut matches = command.try_get_matches_from(all).unwrap();
            <WithSources as clap::FromArgMatches>::from_arg_matches_mut(&mut matches).unwrap()
        };
        // The file's values are defaults: not given.
        let a = parse(&[]);
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
        assert_eq!(a.sources.source("timeout"), Some(ValueSource::DefaultValue));
        assert!(!a.sources.given("timeout") && !a.sources.given("routes") && !a.sources.given("verbose"));
        // A flag equal to the file's value is still given.
        let a = parse(&["--timeout", "5s", "--route", "a", "--verbose"]);
        assert!(a.sources.given("timeout") && a.sources.given("routes") && a.sources.given("verbose"));
        assert_eq!(a.sources.source("admin_addr"), Some(ValueSource::CommandLine));
        assert_eq!(a.sources.source("grace_period"), Some(ValueSource::DefaultValue));
        assert!(a.common.admin_addr == AdminAddr::Off);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err(), "a bare number has no unit");
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("4096", 4096),
            ("64KiB", 64 << 10),
            ("64 KiB", 64 << 10),
            ("10MiB", 10 << 20),
            ("1.5KiB", 1536),
            ("2kb", 2000),
            ("1G", 1 << 30),
            ("256Ki", 256 << 10),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in ["", "KiB", "1.2.3MB", "10 parsecs", "-5", "0.5B"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
