//! `--follow`: files followed through rotation by podkit-tailer, rewritten by
//! the [`Processor`](crate::pipeline::Processor), written to the [`Output`], and acknowledged only once
//! written, so the checkpoint never runs ahead of the output.
//!
//! Batching and latency: each tailer batch (the lines of one read) is
//! processed into the output buffer; the buffer is written when the batch
//! channel is empty (the input is idle, the usual case: a line reaches the
//! output within a few milliseconds of being written), when 64 KiB are
//! buffered, or at the latest `--flush-interval` after the oldest buffered
//! line. So at high rates there is one `write(2)` per 64 KiB, not per line.
//!
//! Start: `/readyz` reports not ready ("files discovered") until the tailer's
//! first scan has opened the files (its `started` event); then "Following."
//! is logged. A file rotated away after that point is followed through the
//! rotation.
//!
//! Shutdown: the tailer drains (reads every file to its end), closes the
//! channel; everything buffered is written, acknowledged, and the tailer
//! writes its final checkpoint before `run` returns. A restart then resumes
//! exactly after the last written line. After a crash (SIGKILL) the batches
//! written but not yet checkpointed (at most `checkpoint_interval`, 1 s, of
//! lines) are written again: at-least-once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use podkit_runtime::backoff::Backoff;
use podkit_runtime::{ConfigError, Context};
use podkit_tailer::{AckToken, FileInfo, Tailer, TailerConfig, TailerEvents};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::once::FLUSH_BYTES;
use crate::pipeline::Stats;
use crate::{Config, LongLines};
use podkit_record::{Output, Target};

/// The checkpoint's name in the state directory (`tail-rewrite.checkpoint.json`).
pub const CHECKPOINT_NAME: &str = "tail-rewrite";

/// How long acknowledgements of written batches are held to be sent
/// together: each ack wakes the tailer's thread, so at a steady trickle of
/// lines one ack per batch would double the wake-ups. The tailer writes its
/// checkpoint every second anyway, and everything is acknowledged before the
/// final checkpoint at shutdown.
const ACK_DELAY: Duration = Duration::from_millis(250);

/// How often the output path is checked for an external rotation.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// The binary's metrics.
#[derive(Debug, Clone, Default)]
struct Metrics {
    lines_read: Counter,
    lines_written: Counter,
    lines_filtered: Counter,
    lines_dropped: Counter,
    invalid_utf8: Counter,
    unparsed: Counter,
    timestamp_failures: Counter,
    output_bytes: Counter,
    output_rotations: Counter,
    output_errors: Counter,
    events: Arc<TailEvents>,
}

/// Tailer events, counted.
#[derive(Debug, Default)]
struct TailEvents {
    /// Told the number of files once the tailer's first scan is done.
    started: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<usize>>>,
    rotated: Counter,
    truncated: Counter,
    long_lines: Counter,
    file_errors: Counter,
    files_added: AtomicU64,
}

impl TailerEvents for TailEvents {
    fn started(&self, files: usize) {
        if let Some(tx) = self.started.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(files);
        }
    }
    fn file_added(&self, file: &FileInfo, offset: u64, resumed: bool) {
        self.files_added.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %file.path.display(), offset, resumed, "Following file.");
    }
    fn file_rotated(&self, file: &FileInfo, to: Option<&Path>) {
        self.rotated.inc();
        tracing::debug!(path = %file.path.display(), to = ?to, "File rotated.");
    }
    fn file_truncated(&self, file: &FileInfo, offset: u64) {
        self.truncated.inc();
        tracing::info!(path = %file.path.display(), offset, "File truncated; reading from its start.");
    }
    fn file_error(&self, path: &Path, error: &std::io::Error) {
        self.file_errors.inc();
        tracing::warn!(path = %path.display(), %error, "Cannot read file; retrying.");
    }
    fn lines_too_long(&self, _file: &FileInfo, count: u64) {
        self.long_lines.inc_by(count);
    }
    fn checkpoint_failed(&self, error: &std::io::Error) {
        tracing::warn!(%error, "Cannot write the checkpoint; retrying.");
    }
    fn notify_unavailable(&self, reason: &str) {
        tracing::info!(reason, "inotify unavailable; polling.");
    }
}

impl Metrics {
    fn register(&self, ctx: &Context) {
        let m = &ctx.metrics;
        let p = "podkit_tail_rewrite_";
        m.register(
            &format!("{p}lines_read"),
            "Lines read from the followed files",
            self.lines_read.clone(),
        );
        m.register(
            &format!("{p}lines_written"),
            "Lines written to the output",
            self.lines_written.clone(),
        );
        m.register(
            &format!("{p}lines_filtered"),
            "Lines dropped by --include/--exclude",
            self.lines_filtered.clone(),
        );
        m.register(
            &format!("{p}lines_dropped"),
            "Lines that produced no output (d, -n, --unparsed drop)",
            self.lines_dropped.clone(),
        );
        m.register(
            &format!("{p}invalid_utf8_lines"),
            "Structured records whose invalid UTF-8 was replaced by U+FFFD",
            self.invalid_utf8.clone(),
        );
        m.register(
            &format!("{p}unparsed_lines"),
            "Lines --parse did not match",
            self.unparsed.clone(),
        );
        m.register(
            &format!("{p}timestamp_parse_failures"),
            "Timestamp captures that could not be parsed",
            self.timestamp_failures.clone(),
        );
        m.register(
            &format!("{p}output_bytes"),
            "Bytes written to the output",
            self.output_bytes.clone(),
        );
        m.register(
            &format!("{p}output_rotations"),
            "Rotations of the output file",
            self.output_rotations.clone(),
        );
        m.register(
            &format!("{p}output_errors"),
            "Failed writes to the output (retried)",
            self.output_errors.clone(),
        );
        m.register(
            &format!("{p}files_rotated"),
            "Followed files rotated",
            self.events.rotated.clone(),
        );
        m.register(
            &format!("{p}files_truncated"),
            "Followed files truncated (copytruncate)",
            self.events.truncated.clone(),
        );
        m.register(
            &format!("{p}long_lines"),
            "Lines longer than --max-line-bytes (split or truncated)",
            self.events.long_lines.clone(),
        );
        m.register(
            &format!("{p}file_errors"),
            "Errors reading followed files (retried)",
            self.events.file_errors.clone(),
        );
    }
}

/// Patterns for the output file and its rotated copies, so that a glob that
/// covers the output directory never follows our own output.
fn output_excludes(target: &Target) -> Vec<String> {
    match target {
        Target::Stdout => Vec::new(),
        Target::File { path, .. } => {
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let escaped = globset::escape(&abs.to_string_lossy());
            vec![escaped.clone(), format!("{escaped}.*")]
        }
    }
}

/// Runs follow mode until shutdown.
pub async fn run(
    mut config: Config,
    paths: Vec<String>,
    exclude: Vec<String>,
    state_dir: Option<PathBuf>,
    ctx: Context,
) -> anyhow::Result<()> {
    let mut tcfg = TailerConfig::new(paths.clone());
    tcfg.state_dir = state_dir.clone();
    tcfg.name = CHECKPOINT_NAME.to_owned();
    tcfg.max_line_bytes = config.max_line_bytes;
    tcfg.long_lines = match config.long_lines {
        LongLines::Split => podkit_tailer::LongLines::Split,
        LongLines::Truncate => podkit_tailer::LongLines::Truncate,
    };
    tcfg.exclude = exclude;
    tcfg.exclude.extend(output_excludes(&config.output));
    let (started_tx, mut started) = tokio::sync::oneshot::channel();
    let metrics = Metrics {
        events: Arc::new(TailEvents {
            started: std::sync::Mutex::new(Some(started_tx)),
            ..TailEvents::default()
        }),
        ..Metrics::default()
    };
    metrics.register(&ctx);
    let reloads = crate::reload::spawn(&config, &ctx);
    let (tailer, mut batches) = Tailer::new(tcfg, metrics.events.clone()).map_err(|e| {
        if e.is_config() {
            anyhow::Error::new(ConfigError::new(format!("--follow/--state-dir: {e}")))
        } else {
            anyhow::Error::new(e)
        }
    })?;
    let mut output = Output::open(config.output.clone())
        .map_err(|e| ConfigError::new(format!("--output: cannot open {:?} for appending: {e}", config.output)))?;
    // Not ready until the first scan has opened the files: a file rotated
    // away before then would not be followed (it no longer matches).
    let discovering = ctx.readiness.latch("files discovered");
    let mut awaiting_start = true;
    let tailer_task = tokio::spawn(tailer.run(ctx.shutdown.token().clone()));

    let processor = &mut config.processor;
    let mut out: Vec<u8> = Vec::with_capacity(FLUSH_BYTES * 2);
    // Batches processed into `out` but not written yet.
    let mut acks: Vec<AckToken> = Vec::new();
    // Batches written, to acknowledge at `ack_deadline`.
    let mut written: Vec<AckToken> = Vec::new();
    let mut ack_deadline: Option<Instant> = None;
    let mut deadline: Option<Instant> = None;
    let mut reported = Reported::default();
    let mut reopen_check = tokio::time::interval(REOPEN_CHECK);
    reopen_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writer = Writer {
        output: &mut output,
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
        metrics: &metrics,
        ctx: &ctx,
    };
    loop {
        tokio::select! {
            files = &mut started, if awaiting_start => {
                awaiting_start = false;
                // An error means the tailer stopped before its first scan;
                // its error is reported below.
                if let Ok(files) = files {
                    discovering.set_ready(true);
                    tracing::info!(
                        files,
                        follow = ?paths,
                        state_dir = ?state_dir,
                        output = ?config.output,
                        flush_interval = ?config.flush_interval,
                        "Following."
                    );
                }
            }
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                // A reloaded config takes over between batches, never
                // inside a line.
                if let Some(live) = reloads.take() {
                    reported.update(processor.stats, processor.format_stats(), writer.output, &metrics);
                    let stats = processor.stats;
                    *processor = live.processor;
                    processor.stats = stats;
                    reported.format = processor.format_stats();
                    config.flush_interval = live.flush_interval;
                }
                for line in batch.lines() {
                    processor.line(line.bytes, &mut out);
                }
                acks.push(batch.into_ack());
                if deadline.is_none() {
                    deadline = Some(Instant::now() + config.flush_interval);
                }
                if out.len() >= FLUSH_BYTES || batches.is_empty() {
                    writer.flush(&mut out).await?;
                    written.append(&mut acks);
                    ack_deadline.get_or_insert_with(|| Instant::now() + ACK_DELAY);
                    deadline = None;
                    reported.update(processor.stats, processor.format_stats(), writer.output, &metrics);
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                writer.flush(&mut out).await?;
                written.append(&mut acks);
                ack_deadline.get_or_insert_with(|| Instant::now() + ACK_DELAY);
                deadline = None;
            }
            () = sleep_until(ack_deadline), if ack_deadline.is_some() => {
                written.drain(..).for_each(AckToken::ack);
                ack_deadline = None;
            }
            _ = reopen_check.tick() => {
                if let Err(e) = writer.output.reopen_if_moved() {
                    tracing::warn!(error = %e, "Cannot reopen the output file.");
                }
            }
        }
    }
    writer.flush(&mut out).await?;
    written.append(&mut acks);
    written.drain(..).for_each(AckToken::ack);
    reported.update(processor.stats, processor.format_stats(), writer.output, &metrics);
    // The tailer writes its final checkpoint once every batch is acknowledged.
    tailer_task.await??;
    tracing::info!(
        lines_read = processor.stats.lines_in,
        lines_written = processor.stats.lines_out,
        "Checkpoint written; output flushed."
    );
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Writes buffers, retrying with backoff, and acknowledges what was written.
struct Writer<'a> {
    output: &'a mut Output,
    backoff: Backoff,
    metrics: &'a Metrics,
    ctx: &'a Context,
}

impl Writer<'_> {
    /// Writes `out` (the caller acknowledges the batches afterwards). A
    /// failed write is retried (not ready meanwhile); during shutdown the
    /// runtime gives up after the grace period, leaving the batches
    /// unacknowledged (they are read again after a restart).
    async fn flush(&mut self, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let mut latch = None;
        loop {
            match self.output.write(out) {
                Ok(()) => break,
                Err(e) => {
                    self.metrics.output_errors.inc();
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Err(anyhow::Error::new(e).context("the output was closed"));
                    }
                    tracing::warn!(error = %e, output = ?self.output.target(), "Cannot write the output; retrying.");
                    latch.get_or_insert_with(|| self.ctx.readiness.latch("output writable"));
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
            }
        }
        self.backoff.reset();
        out.clear();
        Ok(())
    }
}

/// What was already added to the counters.
#[derive(Debug, Default)]
struct Reported {
    stats: Stats,
    format: crate::format::FormatStats,
    bytes: u64,
    rotations: u64,
}

impl Reported {
    fn update(&mut self, stats: Stats, format: crate::format::FormatStats, output: &Output, m: &Metrics) {
        m.lines_read.inc_by(stats.lines_in - self.stats.lines_in);
        m.lines_written.inc_by(stats.lines_out - self.stats.lines_out);
        m.lines_filtered.inc_by(stats.filtered - self.stats.filtered);
        m.lines_dropped.inc_by(stats.dropped - self.stats.dropped);
        m.invalid_utf8
            .inc_by(format.invalid_utf8_lines - self.format.invalid_utf8_lines);
        m.unparsed.inc_by(format.unparsed_lines - self.format.unparsed_lines);
        m.timestamp_failures
            .inc_by(format.timestamp_failures - self.format.timestamp_failures);
        m.output_bytes.inc_by(output.bytes_written - self.bytes);
        m.output_rotations.inc_by(output.rotations - self.rotations);
        self.stats = stats;
        self.format = format;
        self.bytes = output.bytes_written;
        self.rotations = output.rotations;
    }
}
