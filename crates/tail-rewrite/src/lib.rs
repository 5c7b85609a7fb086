//! `tail-rewrite`: the adapter that follows a log across rotation and rewrites each line, replacing tail -f | sed.
//!
//! The binary is a thin `main.rs` over [`run`], which tests call in-process.

pub mod sed;

use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, Context};

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("tail-rewrite", "0.0.0.0:9702");

/// Command-line arguments; every flag has a `TAIL_REWRITE_` env twin.
#[derive(Debug, Parser)]
#[command(name = "tail-rewrite", version = podkit_runtime::VERSION, about = "the adapter that follows a log across rotation and rewrites each line, replacing tail -f | sed.")]
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
