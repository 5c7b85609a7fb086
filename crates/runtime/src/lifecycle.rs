//! The lifecycle of a long-running binary: parse, log, validate, serve the
//! admin endpoints, run, and on SIGTERM/SIGINT flip readiness, cancel, and
//! drain within the grace period.

use std::future::Future;
use std::process::ExitCode;

use crate::cli::{self, Cli, CommonArgs};
use crate::shutdown::Signals;
use crate::startup::{self, LogFilter};
use crate::{ConfigError, Metrics, Readiness, Shutdown, exit};

/// A binary's identity and runtime needs.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The binary's name (`log-shipper`).
    pub name: &'static str,
    /// Its default admin address (each binary has its own port, since pods
    /// share a network namespace).
    pub admin_default: &'static str,
    /// Worker threads: `None` runs everything on the main thread (tokio's
    /// current-thread runtime), `Some(0)` one per available core.
    pub worker_threads: Option<usize>,
}

impl Binary {
    /// A binary on a current-thread runtime.
    pub const fn new(name: &'static str, admin_default: &'static str) -> Self {
        Self {
            name,
            admin_default,
            worker_threads: None,
        }
    }

    /// Runs on a multi-thread runtime with `threads` workers (0: one per core).
    pub const fn multi_thread(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads);
        self
    }
}

/// What a component's `run(config, ctx)` gets besides its config.
#[derive(Debug, Clone)]
pub struct Context {
    /// The drain: cancelled when draining starts, then stop accepting (after
    /// the drain delay) and hard stop (a margin before the grace period
    /// ends); spawn every long-running task here, so the drain waits for it.
    pub shutdown: Shutdown,
    /// Take a latch for every dependency that must be there before `/readyz`
    /// says ready.
    pub readiness: Readiness,
    /// Register metrics here at start-up.
    pub metrics: Metrics,
}

impl Context {
    /// A fresh context for `binary`, whose drain ends within `grace_period`.
    pub fn new(binary: &str, grace_period: std::time::Duration) -> Self {
        Self {
            shutdown: Shutdown::new(grace_period),
            readiness: Readiness::new(),
            metrics: Metrics::new(binary),
        }
    }
}

/// The whole `main` of a long-running binary.
///
/// Parses `A` (exit 64 on a usage error), sets up logging, turns the arguments
/// into a config with `config` (an error there exits 64), builds the tokio
/// runtime and calls [`serve`].
pub fn main<A, C, F, Fut>(binary: &Binary, config: impl FnOnce(A) -> anyhow::Result<C>, run: F) -> ExitCode
where
    A: Cli,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = match cli::parse::<A>(binary.admin_default) {
        Ok(args) => args,
        Err(code) => return code,
    };
    main_with_args(binary, args, config, run)
}

/// [`main`](crate::main()) with the arguments already parsed (by
/// [`cli::parse`]), for a binary that picks a mode from its arguments before
/// committing to the long-running lifecycle (`tail-rewrite --once` runs as a
/// plain filter, without admin server).
pub fn main_with_args<A, C, F, Fut>(
    binary: &Binary,
    args: A,
    config: impl FnOnce(A) -> anyhow::Result<C>,
    run: F,
) -> ExitCode
where
    A: Cli,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let common = args.common().clone();
    let prologue = startup::init_logging(
        binary.name,
        common.log_level.as_deref(),
        common.log_format,
        LogFilter::Directives,
    )
    .and_then(|()| startup::build_config(args, config))
    .and_then(|config| Ok((config, startup::build_runtime(binary.worker_threads)?)));
    let (config, runtime) = match prologue {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let code = runtime.block_on(serve(
        binary,
        &common,
        Context::new(binary.name, common.grace_period),
        config,
        run,
    ));
    // Blocking tasks (a read of stdin, say) must not hold the exit.
    runtime.shutdown_background();
    code
}

/// Runs a component under the shutdown protocol and returns the exit code.
///
/// 1. Installs the SIGTERM/SIGINT handlers, starts the admin server.
/// 2. Runs `run(config, ctx)`. If it returns first, that is the outcome.
/// 3. On the first signal: `/readyz` turns 503, the shutdown token is
///    cancelled, and the component and its tracked tasks get the grace period
///    to finish, on the timeline of [`Shutdown::run_deadlines`]: stop
///    accepting after the drain delay, hard stop at the drain deadline.
///    Exit 0 when they finish; 1 when the grace period runs out or a second
///    signal arrives.
pub async fn serve<C, F, Fut>(binary: &Binary, common: &CommonArgs, ctx: Context, config: C, run: F) -> ExitCode
where
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(%err, "Cannot install signal handlers.");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let admin = match startup::start_admin(common.admin_addr, &ctx).await {
        Ok(admin) => admin,
        Err(code) => return code,
    };
    tracing::info!(
        binary = binary.name,
        version = crate::VERSION,
        admin = admin.addr(),
        grace_period = ?common.grace_period,
        "Starting."
    );
    let shutdown = ctx.shutdown.clone();
    let readiness = ctx.readiness.clone();
    let app = run(config, ctx);
    tokio::pin!(app);

    let outcome = tokio::select! {
        result = &mut app => Some(result),
        signal = signals.recv() => {
            tracing::info!(signal = signal.name(), grace_period = ?common.grace_period, "Draining.");
            None
        }
    };
    readiness.start_draining();
    shutdown.trigger();
    let drain = async {
        let result = match outcome {
            Some(result) => result,
            None => app.await,
        };
        shutdown.wait_tasks().await;
        result
    };
    let code = tokio::select! {
        result = drain => finish(result),
        never = shutdown.run_deadlines() => match never {},
        () = tokio::time::sleep(common.grace_period) => {
            tracing::warn!(grace_period = ?common.grace_period, "Drain did not complete within the grace period; exiting now.");
            ExitCode::from(exit::FAILURE)
        }
        signal = signals.recv() => {
            tracing::warn!(signal = signal.name(), "Second signal during the drain; exiting now.");
            ExitCode::from(exit::FAILURE)
        }
    };
    drop(admin);
    code
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => {
            tracing::info!("Stopped.");
            ExitCode::from(exit::OK)
        }
        Err(err) if err.chain().any(|e| e.is::<ConfigError>()) => {
            tracing::error!("Invalid configuration: {err:#}");
            ExitCode::from(exit::USAGE)
        }
        Err(err) => {
            tracing::error!("Failed: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
