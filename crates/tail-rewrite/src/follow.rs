//! `--follow`: files followed through rotation by podkit-tailer (being wired in).

use std::path::PathBuf;

use podkit_runtime::Context;

use crate::Config;

/// Runs follow mode until shutdown.
pub async fn run(
    _config: Config,
    _paths: Vec<String>,
    _state_dir: Option<PathBuf>,
    _ctx: Context,
) -> anyhow::Result<()> {
    anyhow::bail!("follow mode is not built yet")
}
