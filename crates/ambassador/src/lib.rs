//! `ambassador`: a localhost proxy for the app: TCP forwarding, HTTP forward proxy with CONNECT, reverse proxy.
//!
//! The binary is a thin `main.rs` over [`run`], which tests call in-process.

use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, Context};

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("ambassador", "0.0.0.0:9703").multi_thread(0);

/// Command-line arguments; every flag has a `AMBASSADOR_` env twin.
#[derive(Debug, Parser)]
#[command(name = "ambassador", version = podkit_runtime::VERSION, about = "a localhost proxy for the app: TCP forwarding, HTTP forward proxy with CONNECT, reverse proxy.")]
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
