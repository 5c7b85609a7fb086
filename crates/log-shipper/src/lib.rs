//! `log-shipper`: the sidecar that follows an app's log files and ships every line onward.
//!
//! The binary is a thin `main.rs` over [`run`], which tests call in-process.

use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, Context};

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("log-shipper", "0.0.0.0:9701").multi_thread(2);

/// Command-line arguments; every flag has a `LOG_SHIPPER_` env twin.
#[derive(Debug, Parser)]
#[command(name = "log-shipper", version = podkit_runtime::VERSION, about = "the sidecar that follows an app's log files and ships every line onward.")]
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
