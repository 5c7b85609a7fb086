//! What every podkit binary shares, so that all four behave alike in a pod.
//!
//! - [`cli`]: the common flags (`--log-level`, `--log-format`, `--admin-addr`,
//!   `--grace-period`, each with its `PODKIT_` env twin), clap errors mapped to
//!   exit code 64, and the duration and size parsers every binary uses.
//!   With the `config-file` feature, a binary with a `--config PATH` flag gets
//!   TOML/YAML config files for free, with the precedence flag > env > file >
//!   default.
//! - [`logging`]: tracing on stderr, as text or flat JSON lines.
//! - [`shutdown`]: SIGTERM/SIGINT turned into a cancellation token, a task
//!   tracker, and a drain bounded by the grace period.
//! - [`readiness`]: latches that components hold until they are ready; what
//!   `/readyz` answers.
//! - [`metrics`]: one Prometheus registry with `podkit_build_info` and process
//!   metrics read from `/proc/self`.
//! - [`admin`]: the admin HTTP server (`/livez`, `/readyz`, `/healthz`, `/metrics`).
//! - [`backoff`]: jittered exponential backoff.
//! - `reload` (with the `config-file` feature): the `--config` file watched
//!   (ConfigMap symlink swaps included), parsed again and handed to the
//!   binary to apply live; metrics and `/readyz` notes for the outcome.
//! - [`startup`]: the steps before the work begins (logging, config, tokio
//!   runtime, admin server), each with its exit code.
//! - [`main`](crate::main()): the whole lifecycle of a long-running binary, so each
//!   `main.rs` is a few lines.
//!
//! The runtime holds no business logic: it knows nothing of files, proxies or
//! probes (see ARCHITECTURE.md).
//!
//! ```no_run
//! use clap::Parser;
//! use podkit_runtime::{Binary, CommonArgs, Context};
//!
//! /// An example binary.
//! #[derive(Parser)]
//! #[command(name = "example", version = podkit_runtime::VERSION)]
//! struct Args {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! impl podkit_runtime::cli::Cli for Args {
//!     fn common(&self) -> &CommonArgs {
//!         &self.common
//!     }
//! }
//!
//! const BINARY: Binary = Binary::new("example", "127.0.0.1:9700");
//!
//! async fn run(_config: (), ctx: Context) -> anyhow::Result<()> {
//!     ctx.shutdown.cancelled().await;
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     podkit_runtime::main::<Args, _, _, _>(&BINARY, |_args| Ok(()), run)
//! }
//! ```

#![deny(missing_docs)]

pub mod admin;
pub mod backoff;
pub mod cli;
pub mod config_file;
pub mod logging;
pub mod metrics;
pub mod readiness;
#[cfg(feature = "config-file")]
pub mod reload;
pub mod shutdown;
pub mod startup;

mod lifecycle;

pub use cli::CommonArgs;
pub use lifecycle::{Binary, Context, main, main_with_args, serve};
pub use metrics::Metrics;
pub use readiness::{Latch, Readiness};
pub use shutdown::Shutdown;

/// The version every podkit binary reports: `<semver> (<git revision>)`.
///
/// The whole workspace shares one version, so the runtime's is the binaries'.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PODKIT_REVISION"), ")");

/// The semantic version alone, for labels.
pub const SEMVER: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binaries were built from, or `unknown`.
pub const REVISION: &str = env!("PODKIT_REVISION");

/// Exit codes shared by all binaries (see CONTRIBUTING.md).
pub mod exit {
    /// Success, including a drain after SIGTERM.
    pub const OK: u8 = 0;
    /// A runtime failure.
    pub const FAILURE: u8 = 1;
    /// Bad usage or configuration (`EX_USAGE`).
    pub const USAGE: u8 = 64;
}

/// An error in the configuration found after argument parsing (an unwritable
/// state directory, a rule that does not compile): the binary exits 64.
///
/// Wrap such errors in this type anywhere in an `anyhow` chain;
/// [`main`](crate::main()) looks for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A configuration error with this message (one line, naming the flag or
    /// field and what is wrong with it).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
