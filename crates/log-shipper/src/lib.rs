//! `log-shipper`: the sidecar that follows an app's log files through
//! rotation and ships every line to stdout, files or HTTP collectors.
//!
//! The binary is a thin `main.rs` over [`Config::from_args`] and [`run`];
//! tests run the real binary. The pieces, in the order a line meets them:
//!
//! - [`args`] and [`config`]: flags, env twins, the config file's
//!   `[[source]]`/`[[sink]]` sections, validated into a [`Config`];
//! - [`source`]: one podkit-tailer per source and the fan-out of its
//!   batches to every sink;
//! - [`assemble`] (with [`cri`], [`multiline`] and [`kubernetes`]): lines
//!   joined into records (container log pieces, stack traces, node mode's
//!   pod labels) before the fan-out, acknowledged only at record boundaries;
//! - [`record`] and [`encode`]: a line seen as a record (file, read time,
//!   labels, parsed fields) and encoded as NDJSON, raw or a JSON array
//!   straight into a sink's buffer;
//! - [`delivery`]: per-sink batching, the send/retry loop, the reject
//!   policy, and the shared acknowledgement that lets a file's offset reach
//!   the checkpoint only once every sink accepted its lines;
//! - [`sink`]: stdout, file and HTTP transports, and the platform sinks'
//!   wire formats (Loki, Elasticsearch/OpenSearch `_bulk`, OTLP/HTTP logs);
//! - [`dead_letter`]: the bounded dead-letter file;
//! - [`metrics`]: the `podkit_log_shipper_*` metrics;
//! - [`reload`]: a `--config` file's new labels and batch limits applied
//!   without a restart.

pub mod args;
pub mod assemble;
pub mod chunk;
pub mod config;
pub mod cri;
pub mod dead_letter;
pub mod delivery;
pub mod encode;
pub mod kubernetes;
pub mod metrics;
pub mod multiline;
pub mod record;
pub mod reload;
pub mod serve;
pub mod sink;
pub mod source;

use std::sync::Arc;

/// The record pieces shared with tail-rewrite: the regex matcher, JSON
/// escaping, timestamp parsing and formatting, the rotated output file.
pub(crate) use podkit_record as rec;

use anyhow::Context as _;
use podkit_runtime::{Binary, ConfigError, Context};
use tokio::sync::mpsc;

pub use crate::args::Args;
pub use crate::config::Config;
use crate::config::SinkKind;
use crate::delivery::{SinkEncoder, SinkSender, Spares};
use crate::encode::Encoder;
use crate::metrics::Metrics;
use crate::record::Parser;
use crate::sink::Transport;

/// This binary's identity: name, default admin address, runtime threads.
///
/// One runtime thread: each tailer reads on a thread of its own, so the
/// runtime thread only encodes and sends, and a second worker would mostly
/// add wake-ups between threads.
pub const BINARY: Binary = Binary::new("log-shipper", "0.0.0.0:9701");

/// Deliveries a sink's encoder may have queued (each holds one tailer
/// batch, at most the tailer's read size).
const SINK_QUEUE: usize = 2;

/// Runs until shutdown is signalled and everything read was delivered (or
/// the grace period is nearly over), then returns after each tailer wrote
/// its final checkpoint.
///
/// Serve mode, when configured, runs beside the shipping (or alone).
pub async fn run(mut config: Config, ctx: Context) -> anyhow::Result<()> {
    let serving = config.serve.take().map(|serve| serve::run(serve, ctx.clone()));
    match (serving, config.sources.is_empty()) {
        (None, _) => ship(config, ctx).await,
        (Some(serving), true) => serving.await,
        (Some(serving), false) => {
            let (served, shipped) = tokio::join!(serving, ship(config, ctx));
            served.and(shipped)
        }
    }
}

/// The shipping side of [`run`]: every source to every sink.
async fn ship(config: Config, ctx: Context) -> anyhow::Result<()> {
    let metrics = Metrics::register(&ctx);
    let source_metrics: Vec<_> = config.sources.iter().map(|s| metrics.source(&s.name)).collect();
    let mut sources = Vec::new();
    for (i, m) in source_metrics.iter().enumerate() {
        sources.push(source::open(&config, i, Arc::clone(m))?);
    }

    // Stop retrying at the drain deadline, a little before the grace period
    // ends, so that the tailers can write their final checkpoints.
    let give_up = ctx.shutdown.hard_stop_token();

    let (fatal_tx, mut fatal) = mpsc::channel::<anyhow::Error>(1);
    let reloads = reload::Reloads::new(&config);
    let mut sink_inputs = Vec::new();
    for (i, sink) in config.sinks.iter().enumerate() {
        let transport =
            Transport::open(sink).map_err(|e| ConfigError::new(format!("--sink {}: cannot open: {e}", sink.name)))?;
        let sink_metrics = metrics.sink(&sink.name);
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let (sealed_tx, sealed_rx) = mpsc::channel(1);
        let spares = Spares::default();
        let encoder = SinkEncoder {
            config: sink.clone(),
            parsers: config.sources.iter().map(Parser::new).collect(),
            labels: config.sources.iter().map(|s| s.labels.clone()).collect(),
            encoder: Encoder::for_sink(sink),
            flush_when_idle: !matches!(sink.kind, SinkKind::Http(_)),
            metrics: Arc::clone(&sink_metrics),
            reports_parse_stats: i == 0,
            spares: spares.clone(),
            live: reloads.sink(i),
        };
        let sender = SinkSender {
            config: sink.clone(),
            transport,
            metrics: sink_metrics,
            give_up: give_up.clone(),
            fatal: fatal_tx.clone(),
            spares,
        };
        ctx.shutdown.spawn(encoder.run(rx, sealed_tx));
        ctx.shutdown.spawn(sender.run(sealed_rx));
        sink_inputs.push(tx);
    }
    drop(fatal_tx);
    reloads.spawn(&config, &ctx);

    let mut tailers = Vec::new();
    let mut started = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        let latch = ctx
            .readiness
            .latch(format!("source {} discovering files", config.sources[i].name));
        started.push((latch, source.started));
        tailers.push(ctx.shutdown.spawn(source.tailer.run(ctx.shutdown.token().clone())));
        let (cfg, inputs, m) = (
            config.sources[i].clone(),
            sink_inputs.clone(),
            Arc::clone(&source_metrics[i]),
        );
        ctx.shutdown
            .spawn(async move { source::fan_out(i, &cfg, source.batches, inputs, m).await });
    }
    drop(sink_inputs);

    // Ready, and "Following." (which tests wait for), once every tailer's
    // first scan opened its files.
    let mut files = 0;
    let mut all_started = true;
    for (latch, rx) in started {
        tokio::select! {
            n = rx => match n {
                Ok(n) => {
                    files += n;
                    latch.set_ready(true);
                }
                // The tailer stopped before starting: its error is reported below.
                Err(_) => all_started = false,
            },
            Some(err) = fatal.recv() => return Err(err),
        }
    }
    if all_started {
        tracing::info!(
            files,
            sources = config.sources.len(),
            sinks = ?config.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            state_dir = ?config.state_dir,
            "Following."
        );
    }

    for tailer in tailers {
        tokio::select! {
            result = tailer => {
                let result = result.context("a tailer task failed")?;
                result.map_err(|e| {
                    if e.is_config() {
                        anyhow::Error::new(ConfigError::new(format!("--follow/--state-dir: {e}")))
                    } else {
                        anyhow::Error::new(e).context("following files failed")
                    }
                })?;
            }
            Some(err) = fatal.recv() => return Err(err),
        }
    }
    tracing::info!("Checkpoints written; every sink is done.");
    Ok(())
}
