//! `wait-for`: the init container that blocks until dependencies are really ready, then exits or execs the app.
//!
//! The binary is a thin `main.rs` over [`run`], which tests call in-process.

use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, Context};

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("wait-for", "off");

/// Command-line arguments; every flag has a `WAIT_FOR_` env twin.
#[derive(Debug, Parser)]
#[command(name = "wait-for", version = podkit_runtime::VERSION, about = "the init container that blocks until dependencies are really ready, then exits or execs the app.")]
pub struct Args {
    /// Flags shared by every podkit binary.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl podkit_runtime::cli::Cli for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// The validated configuration [`run`] works from.
#[derive(Debug, Clone, Default)]
pub struct Config {}

impl Config {
    /// Validates the arguments; an error here exits 64.
    pub fn from_args(_args: Args) -> anyhow::Result<Self> {
        Ok(Self {})
    }
}

/// Runs until shutdown is signalled.
pub async fn run(_config: Config, ctx: Context) -> anyhow::Result<()> {
    ctx.shutdown.cancelled().await;
    Ok(())
}
