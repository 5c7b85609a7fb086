//! `tail-rewrite`: the adapter that follows a log across rotation and
//! rewrites each line, replacing `tail -f | sed`.
//!
//! Two modes share one per-line [`pipeline::Processor`] (filters → sed rules
//! → text/JSON/logfmt):
//! - **follow** (`--follow PATH_OR_GLOB`): files are followed through
//!   rotation by `podkit-tailer`; lines are acknowledged (checkpointed under
//!   `--state-dir`) only once written to the output, so a restart neither
//!   loses nor repeats output. Runs under the podkit runtime (admin
//!   endpoints, SIGTERM drain). See [`follow`].
//! - **once** (`--once [FILE]...`): reads stdin or files to the end, like
//!   sed in a pipe; no admin server, no checkpoint. See [`once`].
//!
//! In follow mode a `--config` file is watched and its rules and format
//! are applied live, between two batches of lines (see [`reload`]).
//!
//! The binary is a thin `main.rs` over [`Config::from_args`], [`run`] and
//! [`once::main`]. Tests run the real binary (tests/), not these functions.

pub mod follow;
pub mod format;
pub mod once;
pub mod pipeline;
pub mod reload;
pub mod sed;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, ConfigError, Context};

use crate::format::{Format, Structurer, TimestampSource, TimestampSpec, Unparsed};
use crate::pipeline::Processor;
use crate::sed::{ParseOptions, Program, ScriptSource, Syntax};
use podkit_record::Target;

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("tail-rewrite", "0.0.0.0:9702");

/// Command-line arguments; every flag has a `TAIL_REWRITE_` env twin.
#[derive(Debug, Parser)]
#[command(
    name = "tail-rewrite",
    version = podkit_runtime::VERSION,
    about = "Follows a log across rotation and rewrites each line with sed rules, or into JSON/logfmt; \
             replaces `tail -f | sed`.",
    after_help = "Examples:\n  \
        tail-rewrite --follow /var/log/app.log -e 's/^/Date /' --output /var/log/out.log\n  \
        tail-rewrite --follow '/var/log/app/*.log' --format json \\\n      \
          --parse '^(?P<time>\\S+) (?P<level>\\w+) (?P<msg>.*)$' --timestamp time --field pod=$POD_NAME\n  \
        app | tail-rewrite --once -E -e 's/password=\\S+/password=***/g'"
)]
pub struct Args {
    /// A sed script (repeatable; run in order as one script): s/RE/REPL/FLAGS,
    /// /RE/d, /RE/!d, /RE/s/a/b/, p with -n, {…} blocks.
    #[arg(
        short = 'e',
        long = "expression",
        env = "TAIL_REWRITE_EXPRESSION",
        value_name = "SCRIPT"
    )]
    pub expressions: Vec<String>,

    /// Read sed script from a file (repeatable; e.g. a mounted ConfigMap).
    #[arg(
        short = 'f',
        long = "file",
        env = "TAIL_REWRITE_SCRIPT_FILE",
        value_name = "PATH",
        value_delimiter = '\n'
    )]
    pub script_files: Vec<PathBuf>,

    /// Use extended regular expressions in the script (sed -E).
    #[arg(
        short = 'E',
        short_alias = 'r',
        long = "regexp-extended",
        env = "TAIL_REWRITE_REGEXP_EXTENDED"
    )]
    pub extended: bool,

    /// Print only what the script prints with `p` (sed -n).
    #[arg(short = 'n', long = "quiet", alias = "silent", env = "TAIL_REWRITE_QUIET")]
    pub quiet: bool,

    /// Keep only lines matching this regex (repeatable: any of them), before
    /// the script runs. Regex crate syntax.
    #[arg(long, env = "TAIL_REWRITE_INCLUDE", value_name = "REGEX", value_delimiter = '\n')]
    pub include: Vec<String>,

    /// Drop lines matching this regex (repeatable), before the script runs.
    #[arg(long, env = "TAIL_REWRITE_EXCLUDE", value_name = "REGEX", value_delimiter = '\n')]
    pub exclude: Vec<String>,

    /// Output format: the line as text, or one JSON object / logfmt record per line.
    #[arg(long, env = "TAIL_REWRITE_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Split each line (after the script) into fields with this regex's named
    /// captures, e.g. `^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$`. Needs
    /// --format json|logfmt.
    #[arg(long, env = "TAIL_REWRITE_PARSE", value_name = "REGEX")]
    pub parse: Option<String>,

    /// What to do with lines --parse does not match: keep them whole under
    /// the message key, or drop them (both are counted).
    #[arg(long, env = "TAIL_REWRITE_UNPARSED", value_enum, default_value_t = Unparsed::Keep)]
    pub unparsed: Unparsed,

    /// Key for the whole line when there is no --parse (or it did not match).
    #[arg(
        long,
        env = "TAIL_REWRITE_MESSAGE_KEY",
        default_value = "message",
        value_name = "KEY"
    )]
    pub message_key: String,

    /// Add a timestamp field: `now` (time of processing), or the name of a
    /// --parse capture whose text is parsed and rewritten as RFC 3339.
    #[arg(long, env = "TAIL_REWRITE_TIMESTAMP", value_name = "now|CAPTURE")]
    pub timestamp: Option<String>,

    /// strftime format of the timestamp capture (e.g. '%d/%b/%Y:%H:%M:%S %z');
    /// by default RFC 3339 and common formats are tried. Times without an
    /// offset are taken as UTC.
    #[arg(long, env = "TAIL_REWRITE_TIMESTAMP_FORMAT", value_name = "FORMAT")]
    pub timestamp_format: Option<String>,

    /// Key of the timestamp field [default: `timestamp` for now, else the
    /// capture's name].
    #[arg(long, env = "TAIL_REWRITE_TIMESTAMP_KEY", value_name = "KEY")]
    pub timestamp_key: Option<String>,

    /// A static field added to every record, KEY=VALUE (repeatable; env: one
    /// per line), e.g. --field pod=$(POD_NAME) in a pod spec.
    #[arg(
        long = "field",
        env = "TAIL_REWRITE_FIELDS",
        value_name = "KEY=VALUE",
        value_delimiter = '\n'
    )]
    pub fields: Vec<String>,

    /// A static field whose value is read from an environment variable,
    /// KEY=VAR (repeatable), e.g. --field-from-env pod=POD_NAME.
    #[arg(
        long = "field-from-env",
        env = "TAIL_REWRITE_FIELDS_FROM_ENV",
        value_name = "KEY=VAR",
        value_delimiter = '\n'
    )]
    pub fields_from_env: Vec<String>,

    /// Read stdin (or the FILEs) to the end and exit, like sed in a pipe: no
    /// admin server, no checkpoint.
    #[arg(long, env = "TAIL_REWRITE_ONCE", conflicts_with = "follow")]
    pub once: bool,

    /// Input files for --once (`-` is stdin); stdin when none.
    #[arg(value_name = "FILE", requires = "once")]
    pub inputs: Vec<PathBuf>,

    /// Follow this file or glob through rotation (repeatable; env: one per line).
    #[arg(long, env = "TAIL_REWRITE_FOLLOW", value_name = "PATH|GLOB", value_delimiter = '\n')]
    pub follow: Vec<String>,

    /// Never follow files matching this glob (repeatable), e.g. '*.gz' or
    /// '/var/log/app.log.*'; a pattern without `/` matches the file name.
    #[arg(
        long,
        env = "TAIL_REWRITE_FOLLOW_EXCLUDE",
        value_name = "GLOB",
        value_delimiter = '\n'
    )]
    pub follow_exclude: Vec<String>,

    /// Directory for checkpoints (a writable volume) [default: the output
    /// file's directory; required when writing to stdout].
    #[arg(long, env = "TAIL_REWRITE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Run without checkpoints: a restart starts over from the files' start.
    #[arg(long, env = "TAIL_REWRITE_NO_CHECKPOINT", conflicts_with = "state_dir")]
    pub no_checkpoint: bool,

    /// Lines longer than this are split into pieces of this size (or
    /// truncated with --long-lines truncate); always counted.
    #[arg(long, env = "TAIL_REWRITE_MAX_LINE_BYTES", value_name = "SIZE", default_value = "1MiB", value_parser = podkit_runtime::cli::parse_size)]
    pub max_line_bytes: u64,

    /// What to do with lines longer than --max-line-bytes.
    #[arg(long, env = "TAIL_REWRITE_LONG_LINES", value_enum, default_value_t = LongLines::Split)]
    pub long_lines: LongLines,

    /// Write here instead of stdout.
    #[arg(short = 'o', long, env = "TAIL_REWRITE_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Rotate the output file before it would exceed this size (at a line boundary).
    #[arg(long, env = "TAIL_REWRITE_OUTPUT_MAX_SIZE", value_name = "SIZE", value_parser = podkit_runtime::cli::parse_size, requires = "output")]
    pub output_max_size: Option<u64>,

    /// Rotated output files to keep (FILE.1 … FILE.N).
    #[arg(long, env = "TAIL_REWRITE_OUTPUT_KEEP", value_name = "N", default_value_t = 3)]
    pub output_keep: usize,

    /// Longest time a processed line may wait in the output buffer. Output is
    /// also written as soon as the input is idle, and whenever 64 KiB are buffered.
    #[arg(long, env = "TAIL_REWRITE_FLUSH_INTERVAL", value_name = "DURATION", default_value = "100ms", value_parser = podkit_runtime::cli::parse_duration)]
    pub flush_interval: Duration,

    /// A TOML or YAML file of flag values (keys are long flag names; lists
    /// for repeatable flags), e.g. `expression = ["s/^/Date /"]`. Flags and
    /// environment win over it.
    #[arg(long, env = "TAIL_REWRITE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Flags shared by every podkit binary.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl podkit_runtime::cli::Cli for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// What to do with a line longer than the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LongLines {
    /// Cut it into pieces of the maximum size, each handled as a line.
    Split,
    /// Keep the first piece, drop the rest.
    Truncate,
}

/// Where lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Read stdin or files to the end (`--once`); an empty list is stdin.
    Once(Vec<PathBuf>),
    /// Follow paths and globs.
    Follow {
        /// Paths and glob patterns.
        paths: Vec<String>,
        /// Globs never followed.
        exclude: Vec<String>,
        /// Checkpoint directory; `None` with `--no-checkpoint`.
        state_dir: Option<PathBuf>,
    },
}

/// The validated configuration [`run`] and [`once::run`] work from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where lines come from.
    pub input: Input,
    /// Filters, rules and format, ready to run.
    pub processor: Processor,
    /// Where output goes.
    pub output: Target,
    /// Longest wait of a line in the output buffer.
    pub flush_interval: Duration,
    /// Longest line handled whole.
    pub max_line_bytes: usize,
    /// What happens to longer lines.
    pub long_lines: LongLines,
}

/// Splits `KEY=VALUE`.
fn key_value(flag: &str, s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(ConfigError::new(format!("{flag}: `{s}` is not KEY=VALUE"))),
    }
}

impl Config {
    /// Validates the arguments; an error here exits 64. Reads `-f` script
    /// files and the variables named by `--field-from-env`.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        for (i, e) in args.expressions.iter().enumerate() {
            sources.push(ScriptSource::expression(i + 1, e.clone()));
        }
        for path in &args.script_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(format!("-f {}: cannot read the script: {e}", path.display())))?;
            sources.push(ScriptSource::file(&path.display().to_string(), text));
        }
        let syntax = if args.extended { Syntax::Extended } else { Syntax::Basic };
        let program = Program::compile(&sources, args.quiet, ParseOptions { syntax })
            .map_err(|e| ConfigError::new(e.to_string()))?;

        let include = pipeline::any_of("--include", &args.include).map_err(|e| ConfigError::new(e.to_string()))?;
        let exclude = pipeline::any_of("--exclude", &args.exclude).map_err(|e| ConfigError::new(e.to_string()))?;

        let mut fields = Vec::new();
        for f in &args.fields {
            fields.push(key_value("--field", f)?);
        }
        for f in &args.fields_from_env {
            let (key, var) = key_value("--field-from-env", f)?;
            let value = std::env::var(var.trim()).ok().ok_or_else(|| {
                ConfigError::new(format!("--field-from-env {f}: environment variable {var} is not set"))
            })?;
            fields.push((key, value));
        }
        let timestamp = args.timestamp.as_deref().map(|t| {
            let source = if t == "now" {
                TimestampSource::Now
            } else {
                TimestampSource::Capture(t.to_owned())
            };
            let key = args.timestamp_key.clone().unwrap_or_else(|| match &source {
                TimestampSource::Now => "timestamp".to_owned(),
                TimestampSource::Capture(name) => name.clone(),
            });
            TimestampSpec {
                source,
                format: args.timestamp_format.clone(),
                key,
            }
        });
        let structured = args.format != Format::Text;
        let wants_structure = args.parse.is_some() || timestamp.is_some() || !fields.is_empty();
        let structurer = if structured || wants_structure {
            Some(
                Structurer::new(
                    args.format,
                    args.parse.as_deref(),
                    args.unparsed,
                    &args.message_key,
                    timestamp,
                    &fields,
                )
                .map_err(|e| ConfigError::new(e.0))?,
            )
        } else {
            None
        };
        let processor = Processor::new(include, exclude, program, structurer);

        let output = match &args.output {
            None => Target::Stdout,
            Some(p) if p.as_os_str() == "-" => Target::Stdout,
            Some(path) => {
                if args.output_max_size == Some(0) {
                    return Err(ConfigError::new("--output-max-size: must be more than 0").into());
                }
                Target::File {
                    path: path.clone(),
                    max_size: args.output_max_size,
                    keep: args.output_keep,
                }
            }
        };
        let max_line_bytes = usize::try_from(args.max_line_bytes)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| ConfigError::new("--max-line-bytes: must be more than 0"))?;

        let input = if args.once {
            Input::Once(args.inputs.clone())
        } else {
            if args.follow.is_empty() {
                return Err(ConfigError::new(
                    "nothing to read: give --follow PATH_OR_GLOB, or --once to read stdin or files",
                )
                .into());
            }
            let state_dir = if args.no_checkpoint {
                None
            } else {
                let dir = match (&args.state_dir, &output) {
                    (Some(dir), _) => dir.clone(),
                    (None, Target::File { path, .. }) => path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from(".")),
                    (None, Target::Stdout) => {
                        return Err(ConfigError::new(
                            "--state-dir: follow mode writing to stdout needs a state directory for \
                             checkpoints (or --no-checkpoint)",
                        )
                        .into());
                    }
                };
                Some(dir)
            };
            Input::Follow {
                paths: args.follow.clone(),
                exclude: args.follow_exclude.clone(),
                state_dir,
            }
        };
        Ok(Self {
            input,
            processor,
            output,
            flush_interval: args.flush_interval,
            max_line_bytes,
            long_lines: args.long_lines,
        })
    }
}

/// Runs follow mode until shutdown is signalled (the `--once` mode runs
/// through [`once::main`] instead, outside the long-running lifecycle).
pub async fn run(config: Config, ctx: Context) -> anyhow::Result<()> {
    match config.input.clone() {
        Input::Follow {
            paths,
            exclude,
            state_dir,
        } => follow::run(config, paths, exclude, state_dir, ctx).await,
        Input::Once(_) => {
            // Reached only when a caller builds a once config and runs it
            // under the runtime: run it on a blocking thread.
            tokio::task::spawn_blocking(move || once::run(config, None))
                .await
                .context("the --once task panicked")?
        }
    }
}
