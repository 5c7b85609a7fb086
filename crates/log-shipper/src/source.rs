//! Sources: one podkit-tailer per source, and the fan-out that hands each
//! of its batches to every sink.
//!
//! The fan-out awaits each sink's bounded channel in turn, so the slowest
//! sink sets the pace and the tailer stops reading when the sinks fall
//! behind. A sink whose channel is gone (it stopped) ends the fan-out: the
//! batches it never finished stay unacknowledged.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use podkit_runtime::ConfigError;
use podkit_tailer::{Batch, FileInfo, Tailer, TailerConfig, TailerEvents};
use tokio::sync::{mpsc, oneshot};

use crate::args::{LongLines, StartAt};
use crate::assemble::Assembler;
use crate::chunk::Chunk;
use crate::config::{Config, SourceConfig};
use crate::delivery::Delivery;
use crate::metrics::SourceMetrics;

/// The checkpoint name of the source given by flags; a `[[source]]` named
/// `x` uses `log-shipper-x`.
pub const CHECKPOINT_NAME: &str = "log-shipper";

/// A source's tailer, ready to run.
pub struct Source {
    /// The tailer.
    pub tailer: Tailer,
    /// Its batches.
    pub batches: mpsc::Receiver<Batch>,
    /// Resolves once its first scan opened the files (number of files).
    pub started: oneshot::Receiver<usize>,
}

/// Creates the tailer of source `config`; errors are configuration errors
/// naming the flag.
pub fn open(config: &Config, index: usize, metrics: Arc<SourceMetrics>) -> Result<Source, ConfigError> {
    let source = &config.sources[index];
    let mut t = TailerConfig::new(source.include.clone());
    t.exclude = source.exclude.clone();
    t.exclude.extend(sink_excludes(config));
    t.state_dir = if config.checkpoint {
        config.state_dir.clone()
    } else {
        None
    };
    t.name = if source.name == "default" {
        CHECKPOINT_NAME.to_owned()
    } else {
        format!("{CHECKPOINT_NAME}-{}", source.name)
    };
    t.start_at = match source.start_at {
        StartAt::Beginning => podkit_tailer::StartAt::Head,
        StartAt::End => podkit_tailer::StartAt::Tail,
    };
    t.max_line_bytes = source.max_line_bytes;
    // Four reads of 256 KiB ahead of the sinks are plenty to keep them busy.
    t.channel_capacity = 4;
    t.long_lines = match source.long_lines {
        LongLines::Split => podkit_tailer::LongLines::Split,
        LongLines::Truncate => podkit_tailer::LongLines::Truncate,
    };
    let (started_tx, started) = oneshot::channel();
    let events = Arc::new(Events {
        started: Mutex::new(Some(started_tx)),
        metrics,
    });
    let (tailer, batches) = Tailer::new(t, events).map_err(|e| {
        let flag = if source.name == "default" {
            "--follow/--state-dir".to_owned()
        } else {
            format!("[[source]] {}", source.name)
        };
        ConfigError::new(format!("{flag}: {e}"))
    })?;
    Ok(Source {
        tailer,
        batches,
        started,
    })
}

/// Globs for the file sinks' files (and their rotated copies), so a source
/// that covers their directory never ships the shipper's own output.
fn sink_excludes(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for sink in &config.sinks {
        if let crate::config::SinkKind::File { path, .. } = &sink.kind {
            let escaped = globset_escape(path);
            out.push(escaped.clone());
            out.push(format!("{escaped}.*"));
        }
    }
    if let Some(dir) = &config.state_dir {
        out.push(format!("{}/**", globset_escape(dir)));
    }
    out
}

fn globset_escape(path: &Path) -> String {
    globset::escape(&path.to_string_lossy())
}

/// Hands every batch of a source to every sink: as it is, or through the
/// source's [`Assembler`] (multiline records, container logs), whose open
/// records are flushed when their file has been quiet for the flush timeout:
/// read to its end ([`Batch::at_eof`]) while this loop waited for more with
/// no batch queued. Time spent sending to a busy sink, or with batches
/// waiting, never counts, and queued batches always go before a flush.
pub async fn fan_out(
    index: usize,
    source: &SourceConfig,
    mut batches: mpsc::Receiver<Batch>,
    sinks: Vec<mpsc::Sender<Arc<Delivery>>>,
    metrics: Arc<SourceMetrics>,
) {
    let mut assembler = (!source.assemble.is_plain()).then(|| Assembler::new(source.assemble.clone()));
    loop {
        if let Some(a) = &mut assembler
            && batches.is_empty()
        {
            a.idle(std::time::Instant::now());
        }
        let deadline = assembler.as_ref().and_then(Assembler::next_flush);
        let chunks = tokio::select! {
            biased;
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                match &mut assembler {
                    None => vec![Chunk::Lines(batch)],
                    Some(a) => {
                        a.push(batch);
                        a.take_ready()
                    }
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => match &mut assembler {
                Some(a) => {
                    a.flush(std::time::Instant::now());
                    a.take_ready()
                }
                None => Vec::new(),
            },
        };
        if let Some(a) = &mut assembler {
            metrics.assembled(a.take_stats());
        }
        for chunk in chunks {
            let delivery = Arc::new(Delivery::new(chunk, index, sinks.len(), Arc::clone(&metrics)));
            for sink in &sinks {
                if sink.send(Arc::clone(&delivery)).await.is_err() {
                    tracing::debug!(source = %source.name, "A sink stopped; the source stops shipping.");
                    return;
                }
            }
        }
    }
    // Records still open are dropped unacknowledged here: after a restart
    // they are read again from their first line.
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Tailer events: counted, logged, and `started` passed on.
struct Events {
    started: Mutex<Option<oneshot::Sender<usize>>>,
    metrics: Arc<SourceMetrics>,
}

impl TailerEvents for Events {
    fn started(&self, files: usize) {
        if let Some(tx) = self.started.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = tx.send(files);
        }
    }
    fn file_added(&self, file: &FileInfo, offset: u64, resumed: bool) {
        self.metrics.file_added(file, offset);
        tracing::info!(source = %self.metrics.name, path = %file.path.display(), offset, resumed, "Following file.");
    }
    fn file_rotated(&self, file: &FileInfo, to: Option<&Path>) {
        self.metrics.rotated.inc();
        tracing::debug!(path = %file.path.display(), to = ?to, "File rotated.");
    }
    fn file_deleted(&self, file: &FileInfo) {
        tracing::debug!(path = %file.path.display(), "File deleted; reading it to its end.");
    }
    fn file_truncated(&self, file: &FileInfo, offset: u64) {
        self.metrics.truncated.inc();
        self.metrics.file_truncated(file);
        tracing::info!(path = %file.path.display(), offset, "File truncated; reading from its start.");
    }
    fn file_released(&self, file: &FileInfo, offset: u64) {
        self.metrics.file_released(file);
        tracing::debug!(path = %file.path.display(), offset, "File released.");
    }
    fn file_error(&self, path: &Path, error: &std::io::Error) {
        self.metrics.file_errors.inc();
        tracing::warn!(path = %path.display(), %error, "Cannot read file; retrying.");
    }
    fn lines_too_long(&self, _file: &FileInfo, count: u64) {
        self.metrics.long_lines.inc_by(count);
    }
    fn batch_read(&self, _file: &FileInfo, bytes: u64, lines: u64) {
        self.metrics.lines_read.inc_by(lines);
        self.metrics.bytes_read.inc_by(bytes);
    }
    fn checkpoint_written(&self, _files: usize) {
        self.metrics.checkpoint_written();
    }
    fn checkpoint_failed(&self, error: &std::io::Error) {
        tracing::warn!(%error, "Cannot write the checkpoint; retrying.");
    }
    fn notify_unavailable(&self, reason: &str) {
        tracing::info!(reason, "inotify unavailable; polling.");
    }
}
