//! The shipper's metrics, all named `podkit_log_shipper_*`:
//!
//! - per source (`source`): `lines_read_total`, `bytes_read_total`,
//!   `long_lines_total`, `files_rotated_total`, `files_truncated_total`,
//!   `file_errors_total`, `checkpoint_age_seconds` (since the checkpoint
//!   was last written), `records_split_total` (multiline records split at
//!   the most lines or bytes), `container_unparsed_lines_total` (lines not
//!   in the CRI or docker format, shipped whole);
//! - per followed file (`source`, `file`): `behind_bytes` (the file's size
//!   minus the offset every sink has accepted), read from disk at scrape time;
//! - per sink (`sink`): `lines_sent_total`, `bytes_sent_total` (on the
//!   wire), `requests_failed_total` (attempts), `retries_total`,
//!   `lines_failed_total` (in batches the sink rejected),
//!   `lines_dead_lettered_total`, `lines_dropped_total`,
//!   `records_dropped_by_sink_total` (OTLP `partialSuccess`),
//!   `dead_letter_discarded_bytes_total` (the dead-letter file's cap),
//!   `batch_latency_seconds` (from a body being sealed to its acceptance);
//! - records: `unparsed_lines_total`, `timestamp_failures_total`,
//!   `invalid_utf8_lines_total`, `field_conflicts_total`.
//!
//! Counters are bumped once per batch, never per line.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use podkit_runtime::Context;
use podkit_tailer::FileInfo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

use crate::encode::EncodeStats;
use crate::record::ParseStats;

type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;

const P: &str = "podkit_log_shipper_";

/// Every metric family, registered once.
#[derive(Debug, Clone)]
pub struct Metrics {
    lines_read: Counters,
    bytes_read: Counters,
    long_lines: Counters,
    rotated: Counters,
    truncated: Counters,
    file_errors: Counters,
    records_split: Counters,
    container_unparsed: Counters,
    lines_sent: Counters,
    bytes_sent: Counters,
    requests_failed: Counters,
    retries: Counters,
    lines_failed: Counters,
    dead_lettered: Counters,
    dropped: Counters,
    dropped_by_sink: Counters,
    dead_letter_discarded: Counters,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    unparsed: Counter,
    timestamp_failures: Counter,
    invalid_utf8: Counter,
    field_conflicts: Counter,
    files: Arc<Files>,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    /// Registers every family in the process registry.
    pub fn register(ctx: &Context) -> Self {
        let m = Self {
            lines_read: Counters::default(),
            bytes_read: Counters::default(),
            long_lines: Counters::default(),
            rotated: Counters::default(),
            truncated: Counters::default(),
            file_errors: Counters::default(),
            records_split: Counters::default(),
            container_unparsed: Counters::default(),
            lines_sent: Counters::default(),
            bytes_sent: Counters::default(),
            requests_failed: Counters::default(),
            retries: Counters::default(),
            lines_failed: Counters::default(),
            dead_lettered: Counters::default(),
            dropped: Counters::default(),
            dropped_by_sink: Counters::default(),
            dead_letter_discarded: Counters::default(),
            latency: Family::new_with_constructor(latency_histogram),
            unparsed: Counter::default(),
            timestamp_failures: Counter::default(),
            invalid_utf8: Counter::default(),
            field_conflicts: Counter::default(),
            files: Arc::new(Files::default()),
        };
        let r = &ctx.metrics;
        let counters: [(&str, &str, &Counters); 15] = [
            ("lines_read", "Lines read from followed files", &m.lines_read),
            ("bytes_read", "Bytes read from followed files", &m.bytes_read),
            (
                "long_lines",
                "Lines longer than --max-line-bytes (split or truncated)",
                &m.long_lines,
            ),
            ("files_rotated", "Followed files rotated", &m.rotated),
            (
                "files_truncated",
                "Followed files truncated (copytruncate)",
                &m.truncated,
            ),
            ("file_errors", "Errors reading followed files (retried)", &m.file_errors),
            ("lines_sent", "Lines a sink accepted", &m.lines_sent),
            (
                "bytes_sent",
                "Bytes a sink accepted, as sent (compressed or not)",
                &m.bytes_sent,
            ),
            (
                "requests_failed",
                "Sends that failed (each retry counts)",
                &m.requests_failed,
            ),
            ("retries", "Sends retried", &m.retries),
            ("lines_failed", "Lines in batches a sink rejected", &m.lines_failed),
            (
                "lines_dead_lettered",
                "Rejected lines written to the dead-letter file",
                &m.dead_lettered,
            ),
            ("lines_dropped", "Rejected lines dropped (--on-reject drop)", &m.dropped),
            (
                "records_dropped_by_sink",
                "Records a sink accepted the request of but dropped (OTLP partialSuccess.rejectedLogRecords)",
                &m.dropped_by_sink,
            ),
            (
                "dead_letter_discarded_bytes",
                "Bytes of rotated dead-letter files deleted (--dead-letter-max-size)",
                &m.dead_letter_discarded,
            ),
        ];
        for (name, help, family) in counters {
            r.register(&format!("{P}{name}"), help, family.clone());
        }
        for (name, help, family) in [
            (
                "records_split",
                "Multiline records split at --multiline-max-lines or --multiline-max-bytes",
                &m.records_split,
            ),
            (
                "container_unparsed_lines",
                "Lines not in the CRI or docker format (shipped whole)",
                &m.container_unparsed,
            ),
        ] {
            r.register(&format!("{P}{name}"), help, family.clone());
        }
        r.register_with_unit(
            &format!("{P}batch_latency"),
            "Time from a batch being sealed to the sink accepting it",
            Unit::Seconds,
            m.latency.clone(),
        );
        let plain: [(&str, &str, &Counter); 4] = [
            (
                "unparsed_lines",
                "Lines --parse could not parse (kept whole as message)",
                &m.unparsed,
            ),
            (
                "timestamp_failures",
                "Timestamp fields that could not be parsed",
                &m.timestamp_failures,
            ),
            (
                "invalid_utf8_lines",
                "Records whose invalid UTF-8 was replaced by U+FFFD",
                &m.invalid_utf8,
            ),
            (
                "field_conflicts",
                "Parsed fields left out because a label or file took their key",
                &m.field_conflicts,
            ),
        ];
        for (name, help, counter) in plain {
            r.register(&format!("{P}{name}"), help, counter.clone());
        }
        r.register_collector(Box::new(FilesCollector(Arc::clone(&m.files))));
        m
    }

    /// The metrics of one source.
    pub fn source(&self, name: &str) -> Arc<SourceMetrics> {
        let l = vec![("source".to_owned(), name.to_owned())];
        self.files.lock().checkpoints.insert(name.to_owned(), Instant::now());
        Arc::new(SourceMetrics {
            name: name.to_owned(),
            lines_read: self.lines_read.get_or_create(&l).clone(),
            bytes_read: self.bytes_read.get_or_create(&l).clone(),
            long_lines: self.long_lines.get_or_create(&l).clone(),
            rotated: self.rotated.get_or_create(&l).clone(),
            truncated: self.truncated.get_or_create(&l).clone(),
            file_errors: self.file_errors.get_or_create(&l).clone(),
            records_split: self.records_split.get_or_create(&l).clone(),
            container_unparsed: self.container_unparsed.get_or_create(&l).clone(),
            files: Arc::clone(&self.files),
        })
    }

    /// The metrics of one sink.
    pub fn sink(&self, name: &str) -> Arc<SinkMetrics> {
        let l = vec![("sink".to_owned(), name.to_owned())];
        Arc::new(SinkMetrics {
            lines_sent: self.lines_sent.get_or_create(&l).clone(),
            bytes_sent: self.bytes_sent.get_or_create(&l).clone(),
            requests_failed: self.requests_failed.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            lines_failed: self.lines_failed.get_or_create(&l).clone(),
            dead_lettered: self.dead_lettered.get_or_create(&l).clone(),
            dropped: self.dropped.get_or_create(&l).clone(),
            dropped_by_sink: self.dropped_by_sink.get_or_create(&l).clone(),
            dead_letter_discarded: self.dead_letter_discarded.get_or_create(&l).clone(),
            latency: self.latency.get_or_create(&l).clone(),
            unparsed: self.unparsed.clone(),
            timestamp_failures: self.timestamp_failures.clone(),
            invalid_utf8: self.invalid_utf8.clone(),
            field_conflicts: self.field_conflicts.clone(),
        })
    }
}

/// A source's counters and its files' progress.
#[derive(Debug)]
pub struct SourceMetrics {
    /// The source's name.
    pub name: String,
    /// Lines read.
    pub lines_read: Counter,
    /// Bytes read.
    pub bytes_read: Counter,
    /// Long lines.
    pub long_lines: Counter,
    /// Rotations.
    pub rotated: Counter,
    /// Truncations.
    pub truncated: Counter,
    /// Read errors.
    pub file_errors: Counter,
    /// Multiline records split at a limit.
    pub records_split: Counter,
    /// Lines not in the container format.
    pub container_unparsed: Counter,
    files: Arc<Files>,
}

impl SourceMetrics {
    /// Counts what the source's assembler saw.
    pub fn assembled(&self, stats: crate::assemble::Stats) {
        if stats.splits > 0 {
            self.records_split.inc_by(stats.splits);
        }
        if stats.unparsed > 0 {
            self.container_unparsed.inc_by(stats.unparsed);
        }
    }

    /// A file is followed from `offset`.
    pub fn file_added(&self, file: &FileInfo, offset: u64) {
        self.files.lock().files.insert(
            (self.name.clone(), file.dev, file.ino),
            FileProgress {
                path: file.path.clone(),
                acked: offset,
            },
        );
    }

    /// A file is no longer followed.
    pub fn file_released(&self, file: &FileInfo) {
        self.files.lock().files.remove(&(self.name.clone(), file.dev, file.ino));
    }

    /// A file was truncated: its progress starts over.
    pub fn file_truncated(&self, file: &FileInfo) {
        if let Some(p) = self
            .files
            .lock()
            .files
            .get_mut(&(self.name.clone(), file.dev, file.ino))
        {
            p.acked = 0;
        }
    }

    /// Every sink accepted a batch ending at `end`.
    pub fn acked(&self, file: &FileInfo, end: u64) {
        if let Some(p) = self
            .files
            .lock()
            .files
            .get_mut(&(self.name.clone(), file.dev, file.ino))
        {
            // A chunk of records acknowledges nothing when a later chunk
            // of the same cut carries the acknowledgement (end 0).
            p.acked = p.acked.max(end);
        }
    }

    /// The checkpoint was written.
    pub fn checkpoint_written(&self) {
        self.files.lock().checkpoints.insert(self.name.clone(), Instant::now());
    }
}

/// A sink's counters.
#[derive(Debug)]
pub struct SinkMetrics {
    lines_sent: Counter,
    bytes_sent: Counter,
    requests_failed: Counter,
    retries: Counter,
    lines_failed: Counter,
    dead_lettered: Counter,
    dropped: Counter,
    dropped_by_sink: Counter,
    dead_letter_discarded: Counter,
    latency: Histogram,
    unparsed: Counter,
    timestamp_failures: Counter,
    invalid_utf8: Counter,
    field_conflicts: Counter,
}

impl SinkMetrics {
    /// A batch was accepted.
    pub fn sent(&self, lines: u64, bytes: u64, latency: Duration) {
        self.lines_sent.inc_by(lines);
        self.bytes_sent.inc_by(bytes);
        self.latency.observe(latency.as_secs_f64());
    }

    /// A send failed.
    pub fn request_failed(&self) {
        self.requests_failed.inc();
    }

    /// A send is retried.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// A batch of `lines` was rejected.
    pub fn failed_lines(&self, lines: u64) {
        self.lines_failed.inc_by(lines);
    }

    /// Rejected lines went to the dead-letter file.
    pub fn dead_lettered(&self, lines: u64) {
        self.dead_lettered.inc_by(lines);
    }

    /// Rejected lines were dropped.
    pub fn dropped(&self, lines: u64) {
        self.dropped.inc_by(lines);
    }

    /// The sink dropped records of a request it accepted.
    pub fn dropped_by_sink(&self, records: u64) {
        self.dropped_by_sink.inc_by(records);
    }

    /// A full dead-letter file's old copy was deleted.
    pub fn dead_letter_discarded(&self, bytes: u64) {
        self.dead_letter_discarded.inc_by(bytes);
    }

    /// A parser's counters.
    pub fn parsed(&self, stats: ParseStats) {
        if stats.unparsed > 0 {
            self.unparsed.inc_by(stats.unparsed);
        }
        if stats.timestamp_failures > 0 {
            self.timestamp_failures.inc_by(stats.timestamp_failures);
        }
    }

    /// An encoder's counters.
    pub fn encoded(&self, stats: EncodeStats) {
        if stats.invalid_utf8 > 0 {
            self.invalid_utf8.inc_by(stats.invalid_utf8);
        }
        if stats.field_conflicts > 0 {
            self.field_conflicts.inc_by(stats.field_conflicts);
        }
    }
}

/// Followed files and checkpoint times, read at scrape time.
#[derive(Debug, Default)]
struct Files {
    inner: Mutex<FilesInner>,
}

#[derive(Debug, Default)]
struct FilesInner {
    /// (source, dev, ino) → progress.
    files: BTreeMap<(String, u64, u64), FileProgress>,
    /// source → when its checkpoint was last written (or it started).
    checkpoints: BTreeMap<String, Instant>,
}

#[derive(Debug)]
struct FileProgress {
    path: PathBuf,
    /// Offset every sink has accepted up to.
    acked: u64,
}

impl Files {
    fn lock(&self) -> std::sync::MutexGuard<'_, FilesInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct FilesCollector(Arc<Files>);

impl Collector for FilesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (behind, ages) = {
            let inner = self.0.lock();
            let files: Vec<(String, PathBuf, u64, u64, u64)> = inner
                .files
                .iter()
                .map(|((source, dev, ino), p)| (source.clone(), p.path.clone(), *dev, *ino, p.acked))
                .collect();
            let ages: Vec<(String, f64)> = inner
                .checkpoints
                .iter()
                .map(|(s, at)| (s.clone(), at.elapsed().as_secs_f64()))
                .collect();
            (files, ages)
        };
        let mut metric = encoder.encode_descriptor(
            "podkit_log_shipper_behind",
            "Bytes of a followed file not yet accepted by every sink",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for (source, path, dev, ino, acked) in behind {
            // A rotated file whose name now belongs to another has no size here.
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            if meta.dev() != dev || meta.ino() != ino {
                continue;
            }
            let labels: Labels = vec![
                ("source".to_owned(), source),
                ("file".to_owned(), path.display().to_string()),
            ];
            let behind = i64::try_from(meta.len().saturating_sub(acked)).unwrap_or(i64::MAX);
            metric.encode_family(&labels)?.encode_gauge(&behind)?;
        }
        let mut metric = encoder.encode_descriptor(
            "podkit_log_shipper_checkpoint_age",
            "Time since a source's checkpoint was last written (or the source started)",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (source, age) in ages {
            let labels: Labels = vec![("source".to_owned(), source)];
            metric.encode_family(&labels)?.encode_gauge(&age)?;
        }
        Ok(())
    }
}
