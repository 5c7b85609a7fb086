//! The start-up steps every binary takes before its work begins, each with
//! its exit code in one place: logging set up and arguments turned into a
//! config (either failing is bad configuration: exit 64), the tokio runtime
//! built and the admin server bound (failing is exit 1).
//!
//! [`main`](crate::main()) chains them for the long-running binaries;
//! `wait-for` and `tail-rewrite --once` call them one by one, since they run
//! under a lifecycle of their own.

use std::process::ExitCode;

use tokio_util::task::AbortOnDropHandle;

use crate::admin::{self, AdminState};
use crate::cli::{AdminAddr, LogFormat};
use crate::{Context, exit, logging};

/// How log directives are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFilter {
    /// Full tracing filter directives ([`logging::init`]).
    Directives,
    /// Per-target levels only, without a regex engine linked
    /// ([`logging::init_targets`]), for size-sensitive binaries.
    Targets,
}

/// Installs the global tracing subscriber; a bad `level` prints a message
/// naming it and is exit 64.
pub fn init_logging(binary: &str, level: Option<&str>, format: LogFormat, filter: LogFilter) -> Result<(), ExitCode> {
    let result = match filter {
        LogFilter::Directives => logging::init(level, format),
        LogFilter::Targets => logging::init_targets(level, format),
    };
    result.map_err(|err| {
        eprintln!("{binary}: {err}");
        ExitCode::from(exit::USAGE)
    })
}

/// Turns parsed arguments into a config; an error is logged as invalid
/// configuration and is exit 64.
pub fn build_config<A, C>(args: A, config: impl FnOnce(A) -> anyhow::Result<C>) -> Result<C, ExitCode> {
    config(args).map_err(|err| {
        tracing::error!("Invalid configuration: {err:#}");
        ExitCode::from(exit::USAGE)
    })
}

/// Builds the tokio runtime: `None` a current-thread runtime, `Some(0)` one
/// worker per available core, `Some(n)` `n` workers. A failure is exit 1.
pub fn build_runtime(worker_threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let runtime = match worker_threads {
        None => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if threads > 0 {
                builder.worker_threads(threads);
            }
            builder.enable_all().build()
        }
    };
    runtime.map_err(|err| {
        tracing::error!(%err, "Cannot start the async runtime.");
        ExitCode::from(exit::FAILURE)
    })
}

/// A running admin server; dropping it stops the server.
#[derive(Debug)]
pub struct AdminServer {
    addr: String,
    _task: Option<AbortOnDropHandle<()>>,
}

impl AdminServer {
    /// Where it listens (`off` when it does not), for the "Starting." line.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// Binds the admin server on `addr` (unless it is `off`) and serves `ctx`'s
/// readiness and metrics until the returned handle is dropped. A bind failure
/// is logged and is exit 1.
pub async fn start_admin(addr: AdminAddr, ctx: &Context) -> Result<AdminServer, ExitCode> {
    let AdminAddr::On(addr) = addr else {
        return Ok(AdminServer {
            addr: "off".to_owned(),
            _task: None,
        });
    };
    let listener = admin::bind(addr).await.map_err(|err| {
        tracing::error!(%err, "Cannot start the admin server.");
        ExitCode::from(exit::FAILURE)
    })?;
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let state = AdminState {
        readiness: ctx.readiness.clone(),
        metrics: ctx.metrics.clone(),
    };
    Ok(AdminServer {
        addr: local,
        _task: Some(AbortOnDropHandle::new(tokio::spawn(admin::serve(listener, state)))),
    })
}
