//! `wait-for`: the init container that blocks until dependencies are really
//! ready, then exits, or replaces itself with the app (`-- cmd args`).
//!
//! ```text
//! wait-for postgres://db:5432 http://api:8080/healthz k8s:job/migrate -- ./app --serve
//! ```
//!
//! - [`target`]: the target syntax, parsed into [`target::Target`]s.
//! - [`probe`]: one attempt at each kind of check (tcp, http, dns, file, exec,
//!   postgres, mysql, redis, grpc, kafka, k8s).
//! - [`wait`]: the wait: targets in parallel, pacing, progress lines, the
//!   deadline, and how it ended ([`wait::Outcome`]).
//! - [`net`] and [`dns`]: resolution on every attempt, connects, TLS.
//!
//! Unlike the long-running podkit binaries, wait-for does not use
//! `podkit_runtime::main`: its exit status says how the wait ended (0 ready,
//! 124 timed out, 143 interrupted, 1 failed, 64 bad usage), a signal ends it
//! at once instead of draining, and on success it may `exec` the app, which
//! must happen after the async runtime is gone. [`main`] does all that with
//! the runtime's building blocks; `main.rs` only calls it.

#![deny(missing_docs)]

pub mod dns;
pub mod net;
pub mod probe;
pub mod target;
pub mod wait;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use http::header::{HeaderName, HeaderValue};
use podkit_runtime::cli::parse_duration;
use podkit_runtime::shutdown::Signals;
use podkit_runtime::startup::{self, LogFilter};
use podkit_runtime::{Binary, CommonArgs, ConfigError, Context};

use podkit_tls::{Legacy, TlsArgs, TlsFlags, TlsOption};

use crate::net::Resolver;
use crate::probe::Env;
use crate::probe::http::{HttpCheck, StatusSet};
use crate::probe::k8s::K8sEnv;
use crate::target::{Kind, Target};
pub use crate::wait::Outcome;

/// This binary's identity: name, and no admin server unless asked for.
pub const BINARY: Binary = Binary::new("wait-for", "off");

const TARGET_HELP: &str = "\
Targets:
  host:port, tcp://host:port         a TCP connect succeeds ([::1]:port for IPv6)
  http://URL, https://URL            the answer passes the --http-* checks (default: status 200-399)
  dns://name[?type=A|AAAA&expect=IP] the name resolves (to IP)
  file:///path[?absent|?nonempty]    the file exists (is absent / is non-empty)
  exec:program args...               the program exits 0 (no shell: quote with '' or \"\")
  postgres://[user@]host[:5432][/db] the server accepts connections (pg_isready's rule)
  mysql://host[:3306]                the server sends its handshake
  redis://[[user]:pass@]host[:6379]  PING answers PONG (rediss:// for TLS)
  grpc://host:port[/service]         grpc.health.v1 Check answers SERVING (grpcs:// for TLS)
  kafka://host[:9092]                the broker answers ApiVersions
  k8s:[namespace/]KIND/NAME          pod or deployment or statefulset ready, job complete,
                                     service with a ready endpoint (KIND: pod, deployment,
                                     statefulset, job, service)
  k8s:[namespace/]pod?selector=a=b   every pod matching the selector ready (at least one)

Exit status: 0 ready (then COMMAND is exec'd), 124 timed out, 143 stopped by SIGTERM/SIGINT,
1 a target failed for good (a failed Job), 64 bad usage; COMMAND never runs unless ready.

Examples:
  wait-for db:5432 http://api:8080/healthz -- ./app
  WAIT_FOR_TARGETS='postgres://db, redis://cache' wait-for --timeout 2m
  wait-for --http-status 200 --http-body '\"status\":\"UP\"' https://api/actuator/health";

/// Command-line arguments; every flag has a `WAIT_FOR_` env twin.
#[derive(Debug, Parser)]
#[command(
    name = "wait-for",
    version = podkit_runtime::VERSION,
    about = "Blocks until dependencies are really ready, then exits 0 or execs COMMAND.",
    after_help = TARGET_HELP
)]
pub struct Args {
    /// What to wait for (see Targets below). The env twin takes one target per
    /// line, or comma-separated.
    #[arg(env = "WAIT_FOR_TARGETS", value_name = "TARGET")]
    pub targets: Vec<String>,

    /// The command to replace wait-for with (same PID) once ready.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,

    /// Done when any one target is ready, instead of all.
    #[arg(long, env = "WAIT_FOR_ANY")]
    pub any: bool,

    /// Give up after this long (exit 124); 0 waits forever.
    #[arg(short = 't', long, env = "WAIT_FOR_TIMEOUT", value_name = "DURATION", default_value = "5m",
          value_parser = parse_duration)]
    pub timeout: Duration,

    /// Longest time one attempt at one target may take.
    #[arg(long, env = "WAIT_FOR_ATTEMPT_TIMEOUT", value_name = "DURATION", default_value = "5s",
          value_parser = parse_duration)]
    pub attempt_timeout: Duration,

    /// First pause between attempts; pauses grow with the time waited (2% of it).
    #[arg(long, env = "WAIT_FOR_INTERVAL", value_name = "DURATION", default_value = "25ms",
          value_parser = parse_duration)]
    pub interval: Duration,

    /// Longest pause between attempts.
    #[arg(long, env = "WAIT_FOR_MAX_INTERVAL", value_name = "DURATION", default_value = "1s",
          value_parser = parse_duration)]
    pub max_interval: Duration,

    /// How often to log what is still not ready, and why.
    #[arg(long, env = "WAIT_FOR_PROGRESS_INTERVAL", value_name = "DURATION", default_value = "2s",
          value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// Log errors only (no progress lines); --log-level wins when given.
    #[arg(short, long, env = "WAIT_FOR_QUIET")]
    pub quiet: bool,

    /// Resolve names by asking this DNS server (an IP address, optionally
    /// with a port) instead of the system resolver; no search domains apply.
    #[arg(long, env = "WAIT_FOR_DNS_SERVER", value_name = "IP[:PORT]")]
    pub dns_server: Option<String>,

    /// HTTP: the request method.
    #[arg(
        long,
        env = "WAIT_FOR_HTTP_METHOD",
        value_name = "METHOD",
        default_value = "GET",
        help_heading = "HTTP checks"
    )]
    pub http_method: String,

    /// HTTP: a request header to send (repeatable; env: one per line).
    #[arg(
        long = "http-header",
        env = "WAIT_FOR_HTTP_HEADERS",
        value_name = "NAME: VALUE",
        help_heading = "HTTP checks",
        hide_env_values = true
    )]
    pub http_headers: Vec<String>,

    /// HTTP: accepted statuses, like 200, 200-299, 2xx or 200,204.
    #[arg(
        long,
        env = "WAIT_FOR_HTTP_STATUS",
        value_name = "LIST",
        default_value = "200-399",
        help_heading = "HTTP checks"
    )]
    pub http_status: String,

    /// HTTP: a regex the response body must match (the first 1 MiB is read).
    #[arg(long, env = "WAIT_FOR_HTTP_BODY", value_name = "REGEX", help_heading = "HTTP checks")]
    pub http_body: Option<String>,

    /// HTTP: a response header that must be present, and match REGEX when
    /// given (repeatable; env: one per line).
    #[arg(
        long = "http-expect-header",
        env = "WAIT_FOR_HTTP_EXPECT_HEADERS",
        value_name = "NAME[: REGEX]",
        help_heading = "HTTP checks"
    )]
    pub http_expect_headers: Vec<String>,

    /// TLS for https, rediss and grpcs targets: `--tls-ca-file`,
    /// `--tls-client-cert`, `--tls-client-key`, `--tls-insecure`.
    #[command(flatten)]
    pub tls: TlsArgs<WaitForTls>,

    /// Kubernetes: the API server URL [default: from KUBERNETES_SERVICE_HOST/PORT in a pod].
    #[arg(
        long,
        env = "WAIT_FOR_K8S_API",
        value_name = "URL",
        help_heading = "Kubernetes targets"
    )]
    pub k8s_api: Option<String>,

    /// Kubernetes: the bearer token file, re-read on every attempt
    /// [default: the pod's service-account token].
    #[arg(
        long,
        env = "WAIT_FOR_K8S_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Kubernetes targets"
    )]
    pub k8s_token_file: Option<PathBuf>,

    /// Kubernetes: the API server's CA bundle [default: the pod's service-account ca.crt].
    #[arg(
        long,
        env = "WAIT_FOR_K8S_CA_FILE",
        value_name = "FILE",
        help_heading = "Kubernetes targets"
    )]
    pub k8s_ca_file: Option<PathBuf>,

    /// Kubernetes: the namespace of targets that name none [default: the pod's own].
    #[arg(
        long,
        env = "WAIT_FOR_K8S_NAMESPACE",
        value_name = "NAME",
        help_heading = "Kubernetes targets"
    )]
    pub k8s_namespace: Option<String>,

    /// Set by Kubernetes in every pod.
    #[arg(long, env = "KUBERNETES_SERVICE_HOST", hide = true)]
    pub kubernetes_service_host: Option<String>,

    /// Set by Kubernetes in every pod.
    #[arg(long, env = "KUBERNETES_SERVICE_PORT", hide = true)]
    pub kubernetes_service_port: Option<String>,

    /// Flags shared by every podkit binary.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// wait-for's TLS flags: env twins `WAIT_FOR_TLS_*`; the older
/// `--tls-ca` / `WAIT_FOR_TLS_CA` still work, hidden.
#[derive(Debug)]
pub struct WaitForTls;

impl TlsFlags for WaitForTls {
    const ENV_PREFIX: &'static str = "WAIT_FOR_";
    const HELP_HEADING: &'static str = "TLS (https, rediss, grpcs targets)";
    const LEGACY: &'static [Legacy] = &[Legacy {
        option: TlsOption::CaFile,
        long: "tls-ca",
        env: "WAIT_FOR_TLS_CA",
    }];
}

impl podkit_runtime::cli::Cli for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// The validated configuration [`wait::run`] works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to wait for.
    pub targets: Vec<Target>,
    /// What to exec once ready (empty: just exit 0).
    pub command: Vec<OsString>,
    /// One ready target is enough.
    pub any: bool,
    /// The global deadline; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Bound on one attempt.
    pub attempt_timeout: Duration,
    /// First pause between attempts.
    pub interval: Duration,
    /// Longest pause between attempts.
    pub max_interval: Duration,
    /// How often progress lines are logged.
    pub progress_interval: Duration,
    /// What the probes share (resolver, TLS, HTTP checks, Kubernetes client).
    pub env: Env,
}

impl Config {
    /// Validates the arguments; an error here exits 64 and names the flag or
    /// target at fault.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let specs: Vec<String> = args.targets.iter().flat_map(|t| target::split_list(t)).collect();
        let targets = specs
            .iter()
            .map(|spec| Target::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(e.to_string()))?;
        if targets.is_empty() && args.command.is_empty() {
            bail!(ConfigError::new(
                "no targets given: pass them as arguments or in WAIT_FOR_TARGETS (see --help)"
            ));
        }
        let positive = |name: &str, d: Duration| -> anyhow::Result<Duration> {
            if d.is_zero() {
                bail!(ConfigError::new(format!("{name} must be more than 0")));
            }
            Ok(d)
        };
        let mut env = Env {
            resolver: Resolver {
                server: args.dns_server.as_deref().map(parse_dns_server).transpose()?,
            },
            http: http_check(&args)?,
            ..Env::default()
        };
        let needs = |pred: fn(&Kind) -> bool| targets.iter().any(|t| pred(&t.kind));
        // TLS files are read even when no target needs TLS, so a wrong path
        // is reported rather than ignored.
        let tls = args.tls.options.load().map_err(|e| ConfigError::new(e.with_flag()))?;
        let config = |alpn: &[&[u8]]| tls.client_config(alpn).map_err(|e| ConfigError::new(e.with_flag()));
        if needs(|k| matches!(k, Kind::Http { tls: true, .. } | Kind::Redis { tls: true, .. })) {
            env.tls = Some(config(&[b"http/1.1"])?);
        }
        if needs(|k| matches!(k, Kind::Grpc { tls: true, .. })) {
            env.tls_h2 = Some(config(&[b"h2"])?);
        }
        if needs(|k| matches!(k, Kind::K8s(_))) {
            env.k8s = Some(K8sEnv::from_args(&args)?);
        }
        Ok(Self {
            targets,
            command: args.command,
            any: args.any,
            timeout: (!args.timeout.is_zero()).then_some(args.timeout),
            attempt_timeout: positive("--attempt-timeout", args.attempt_timeout)?,
            interval: positive("--interval", args.interval)?,
            max_interval: positive("--max-interval", args.max_interval)?,
            progress_interval: positive("--progress-interval", args.progress_interval)?,
            env,
        })
    }
}

fn parse_dns_server(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    if let Ok(ip) = text.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse().map_err(|_| {
        ConfigError::new(format!(
            "--dns-server: `{text}` is not an IP address with an optional port (10.96.0.10, 127.0.0.1:5353, [::1]:53)"
        ))
        .into()
    })
}

/// Repeatable options whose env twin holds one value per line.
fn lines(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|v| v.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

fn http_check(args: &Args) -> anyhow::Result<HttpCheck> {
    let method = http::Method::from_bytes(args.http_method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ConfigError::new(format!("--http-method: `{}` is not an HTTP method", args.http_method)))?;
    let mut headers = Vec::new();
    for line in lines(&args.http_headers) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ConfigError::new(format!("--http-header: `{line}` is not `Name: value`")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError::new(format!("--http-header: `{}` is not a header name", name.trim())))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| ConfigError::new(format!("--http-header: the value for {name} is not valid")))?;
        headers.push((name, value));
    }
    let mut expect_headers = Vec::new();
    for line in lines(&args.http_expect_headers) {
        let (name, pattern) = match line.split_once(':') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (line, None),
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(format!("--http-expect-header: `{name}` is not a header name")))?;
        let pattern = pattern.map(|p| regex("--http-expect-header", p)).transpose()?;
        expect_headers.push((name, pattern));
    }
    Ok(HttpCheck {
        method,
        headers,
        status: StatusSet::parse(&args.http_status).map_err(|e| ConfigError::new(format!("--http-status: {e}")))?,
        body: args.http_body.as_deref().map(|p| regex("--http-body", p)).transpose()?,
        expect_headers,
    })
}

fn regex(flag: &str, pattern: &str) -> anyhow::Result<regex_lite::Regex> {
    regex_lite::Regex::new(pattern)
        .map_err(|e| ConfigError::new(format!("{flag}: `{pattern}` is not a valid regex: {e}")).into())
}

/// What `main` does once the wait is over.
#[derive(Debug)]
pub enum Next {
    /// Exit with this status.
    Exit(ExitCode),
    /// Replace the process with this command.
    Exec(Vec<OsString>),
}

/// The whole of `wait-for`'s main, up to the exec: parse (exit 64 on bad
/// usage), log, validate, wait on a current-thread runtime with SIGTERM and
/// SIGINT ending the wait at once, tear the runtime down, and say what next.
pub fn main() -> Next {
    // The variants without config-file support and without EnvFilter keep
    // the TOML/YAML parsers and a regex engine out of this small binary.
    let args = match podkit_runtime::cli::parse_without_config_file::<Args>(BINARY.admin_default) {
        Ok(args) => args,
        Err(code) => return Next::Exit(code),
    };
    let common = args.common.clone();
    let level = match (&common.log_level, args.quiet) {
        (Some(level), _) => Some(level.as_str()),
        (None, true) => Some("error"),
        (None, false) => None,
    };
    let prologue = startup::init_logging(BINARY.name, level, common.log_format, LogFilter::Targets)
        .and_then(|()| startup::build_config(args, Config::from_args))
        .and_then(|config| Ok((config, startup::build_runtime(None)?)));
    let (config, runtime) = match prologue {
        Ok(ready) => ready,
        Err(code) => return Next::Exit(code),
    };
    let command = config.command.clone();
    let outcome = runtime.block_on(serve(config, &common));
    // A lookup stuck in the blocking pool must not hold the exit or the exec.
    runtime.shutdown_background();
    match outcome {
        Outcome::Ready if !command.is_empty() => Next::Exec(command),
        outcome => Next::Exit(ExitCode::from(outcome.exit_code())),
    }
}

/// Waits under signals and the optional admin server.
async fn serve(config: Config, common: &CommonArgs) -> Outcome {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => return Outcome::Failed(format!("cannot install signal handlers: {err}")),
    };
    let ctx = Context::new(BINARY.name, common.grace_period);
    let admin = match startup::start_admin(common.admin_addr, &ctx).await {
        Ok(admin) => admin,
        Err(_) => return Outcome::Failed("cannot start the admin server".to_owned()),
    };
    tracing::info!(
        binary = BINARY.name,
        version = podkit_runtime::VERSION,
        targets = config.targets.len(),
        mode = if config.any { "any" } else { "all" },
        timeout = %config.timeout.map_or("none".to_owned(), wait::human),
        admin = admin.addr(),
        "Starting."
    );
    let outcome = tokio::select! {
        biased;
        signal = signals.recv() => {
            tracing::warn!(signal = signal.name(), "Stopped by a signal while waiting; the command will not run.");
            ctx.shutdown.trigger();
            Outcome::Interrupted
        }
        outcome = wait::run(&config, &ctx) => outcome,
    };
    match &outcome {
        Outcome::Ready | Outcome::Interrupted => {}
        Outcome::TimedOut if !config.command.is_empty() => {
            tracing::error!("Timed out; the command will not run.");
        }
        Outcome::Failed(reason) if !config.command.is_empty() => {
            tracing::error!(%reason, "A target failed; the command will not run.");
        }
        Outcome::TimedOut | Outcome::Failed(_) => {}
    }
    outcome
}

/// Replaces the process with `command` (same PID, same stdio, same
/// environment). Returns only when that fails: 127 when the program is not
/// found, 126 when it cannot be run, as shells do.
pub fn exec(command: Vec<OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else {
        return ExitCode::SUCCESS;
    };
    let err = std::process::Command::new(program).args(args).exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    let err = anyhow::Error::new(err).context(format!("cannot run `{}`", program.to_string_lossy()));
    tracing::error!("{err:#}");
    ExitCode::from(code)
}
