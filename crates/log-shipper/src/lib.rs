//! `log-shipper`: the sidecar that follows an app's log files and ships every line onward.
//!
//! The binary is a thin `main.rs` over [`run`], which tests call in-process.

pub mod serve;

use clap::Parser;
use podkit_runtime::{Binary, CommonArgs, Context};

/// This binary's identity: name, default admin address, runtime threads.
pub const BINARY: Binary = Binary::new("log-shipper", "0.0.0.0:9701").multi_thread(2);

/// Command-line arguments; every flag has a `LOG_SHIPPER_` env twin.
#[derive(Debug, Parser)]
#[command(name = "log-shipper", version = podkit_runtime::VERSION, about = "the sidecar that follows an app's log files and ships every line onward.")]
pub struct Args {
    /// Serve mode (provisional wiring until the shipping side is merged).
    #[command(flatten)]
    pub serve: serve::ServeArgs,

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
pub struct Config {
    /// Serve mode, when `--serve` is given.
    pub serve: Option<serve::ServeConfig>,
}

impl Config {
    /// Validates the arguments; an error here exits 64.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let mut serve = serve::ServeConfig::from_args(args.serve)?;
        if let Some(serve) = &mut serve {
            serve.set_grace_period(args.common.grace_period);
        }
        Ok(Self { serve })
    }
}

/// Runs until shutdown is signalled.
pub async fn run(config: Config, ctx: Context) -> anyhow::Result<()> {
    match config.serve {
        Some(serve) => serve::run(serve, ctx).await,
        None => {
            ctx.shutdown.cancelled().await;
            Ok(())
        }
    }
}
