//! The delivery core: a tailer's batch goes to every sink, each sink
//! batches, encodes and sends on its own, and the batch is acknowledged to
//! the tailer (so its offsets can reach the checkpoint) only when **every**
//! sink is done with its lines: accepted, or dead-lettered or dropped by
//! policy.
//!
//! ```text
//! tailer ──Batch──▶ fan-out ──Arc<Delivery>──▶ sink encoder ──Sealed──▶ sink sender ──▶ stdout/file/HTTP
//!   (thread)        (task)    bounded, per sink   (task)      capacity 1    (task)
//! ```
//!
//! - [`Delivery`] wraps a batch with a count of sinks still working on it;
//!   when the last holder drops it and that count is zero, the batch is
//!   acknowledged. Dropped earlier (a sink gave up at the end of the grace
//!   period, or stopped), it is not: its lines are read again after a restart.
//! - A sink's encoder turns deliveries into bodies of at most
//!   `batch.max_lines` records and `batch.max_bytes` bytes, sealed when full,
//!   when `batch.timeout` passed since their first record, or (stdout, file)
//!   as soon as the input is idle. While the sender has a body in flight,
//!   the encoder fills the next one: encoding overlaps sending.
//! - A sink's sender delivers one body at a time, in order, retrying with
//!   jittered exponential backoff (or `Retry-After`) until it is accepted,
//!   rejected (then the `--on-reject` policy decides), or the drain ran out
//!   of time.
//!
//! Every channel is bounded, so a slow or unreachable sink stops the
//! fan-out, which stops the tailer: the file on disk is the buffer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use podkit_runtime::backoff::Backoff;
use podkit_tailer::FileInfo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::{Compression, Format, OnReject};
use crate::chunk::{Chunk, ChunkAck, Labels};
use crate::config::{SinkConfig, SinkKind};
use crate::encode::Encoder;
use crate::metrics::{SinkMetrics, SourceMetrics};
use crate::record::{Parser, Record};
use crate::sink::platform::{Api, rejected_body_entries};
use crate::sink::{SendError, Transport};

/// One chunk of a source (a tailer batch, or assembled records) on its way
/// to every sink.
///
/// Its lines are kept only until every sink's encoder has encoded them;
/// after that only the acknowledgement is kept, so a body waiting to be
/// sent does not also pin the file data it was encoded from.
pub struct Delivery {
    /// The chunk, until every encoder is done with its lines.
    batch: Mutex<Option<Chunk>>,
    /// Its acknowledgement, once the lines are gone.
    ack: Mutex<Option<ChunkAck>>,
    /// Index of the source it came from.
    pub source: usize,
    /// The file's path, as text.
    pub file: Box<str>,
    /// When it was read (the time of records without an event time).
    pub read_time: Timestamp,
    /// Encoders that have not encoded its lines yet.
    encoders: AtomicUsize,
    /// Sinks that have not finished with it yet.
    pending: AtomicUsize,
    /// The file and the offset its acknowledgement reaches (bytes-behind gauge).
    file_info: FileInfo,
    end: u64,
    metrics: Arc<SourceMetrics>,
}

impl Delivery {
    /// Wraps `batch` for `sinks` sinks.
    pub fn new(batch: Chunk, source: usize, sinks: usize, metrics: Arc<SourceMetrics>) -> Self {
        Self {
            file: batch.path().to_string_lossy().into(),
            file_info: batch.file().clone(),
            end: batch.end(),
            batch: Mutex::new(Some(batch)),
            ack: Mutex::new(None),
            source,
            read_time: Timestamp::now(),
            encoders: AtomicUsize::new(sinks),
            pending: AtomicUsize::new(sinks),
            metrics,
        }
    }

    /// The chunk, while some encoder has not encoded it yet.
    pub fn batch(&self) -> MutexGuard<'_, Option<Chunk>> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One sink's encoder has encoded the lines; after the last one, only
    /// the acknowledgement is kept.
    pub fn encoded(&self) {
        if self.encoders.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(batch) = self.batch().take()
        {
            *self.ack.lock().unwrap_or_else(PoisonError::into_inner) = Some(batch.into_ack());
        }
    }

    /// One sink is done with the lines (accepted, dead-lettered or dropped
    /// by policy).
    pub fn done(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.pending.load(Ordering::Acquire) != 0 {
            // Not every sink accepted it: it drops unacknowledged and is
            // read again after a restart.
            return;
        }
        let batch = self.batch.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        let ack = self.ack.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        self.metrics.acked(&self.file_info, self.end);
        match (batch, ack) {
            (Some(batch), _) => batch.ack(),
            (None, Some(ack)) => ack.ack(),
            (None, None) => {}
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("file", &self.file)
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}

/// A body ready to send, with the deliveries it carries lines of.
#[derive(Debug)]
pub struct Sealed {
    /// What goes on the wire (compressed as `compression` says).
    pub body: Bytes,
    /// How `body` is compressed.
    pub compression: Compression,
    /// Records in it.
    pub lines: u64,
    /// Its size before compression.
    pub raw_bytes: usize,
    /// The deliveries whose lines it holds; `true` for the body holding a
    /// delivery's last line (the one whose completion completes it).
    parts: Vec<(Arc<Delivery>, bool)>,
    /// When it was sealed (for the latency histogram).
    sealed_at: Instant,
}

impl Sealed {
    /// The body before compression (for the dead-letter file).
    pub fn plain(&self) -> std::io::Result<Vec<u8>> {
        match self.compression {
            Compression::None => Ok(self.body.to_vec()),
            Compression::Gzip => {
                let mut out = Vec::with_capacity(self.raw_bytes);
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&self.body[..]), &mut out)?;
                Ok(out)
            }
            Compression::Snappy => snap::raw::Decoder::new()
                .decompress_vec(&self.body)
                .map_err(std::io::Error::other),
        }
    }

    /// The sink is done with these lines: complete the deliveries that
    /// end here, and hand the buffer back.
    fn complete(self, spares: &Spares) {
        for (delivery, last) in self.parts {
            if last {
                delivery.done();
            }
        }
        if self.compression == Compression::None {
            spares.put(self.body);
        }
    }
}

/// Spare body buffers: the sender hands a delivered body's buffer back,
/// so that at a steady high rate bodies are written into memory that is
/// already mapped (a fresh 1 MiB buffer per body cost a page fault per 4 KiB).
/// Emptied when the sink goes quiet, so an idle sink holds no big buffer;
/// bodies delivered after that (the ones in flight when it went quiet) are
/// not kept either, until input comes again.
#[derive(Debug, Clone, Default)]
pub struct Spares(Arc<std::sync::Mutex<SpareList>>);

/// The buffers, and whether to keep more (the sink is busy).
#[derive(Debug, Default)]
pub struct SpareList {
    buffers: Vec<Vec<u8>>,
    keeping: bool,
}

impl Spares {
    /// Buffers kept at most: the one being filled, one waiting, one in flight.
    const KEEP: usize = 2;

    fn lock(&self) -> std::sync::MutexGuard<'_, SpareList> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A spare buffer, or a new one of `capacity`; delivered buffers are
    /// kept again from now on.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut spares = self.lock();
        spares.keeping = true;
        spares.buffers.pop().unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Hands back a delivered body's buffer, if nothing else holds it and
    /// the sink is busy.
    pub fn put(&self, body: Bytes) {
        if let Ok(buf) = body.try_into_mut() {
            let mut buf = Vec::from(buf);
            let mut spares = self.lock();
            if spares.keeping && spares.buffers.len() < Self::KEEP && buf.capacity() > 0 {
                buf.clear();
                spares.buffers.push(buf);
            }
        }
    }

    /// Lets every spare buffer go, and the ones delivered until the next
    /// [`Spares::take`].
    fn clear(&self) {
        let mut spares = self.lock();
        spares.keeping = false;
        spares.buffers.clear();
    }
}

/// A body being filled.
struct Open {
    buf: Vec<u8>,
    lines: usize,
    parts: Vec<(Arc<Delivery>, bool)>,
    /// When its first record arrived.
    since: Option<Instant>,
}

impl Open {
    fn new(buf: Vec<u8>) -> Self {
        Self {
            buf,
            lines: 0,
            parts: Vec::new(),
            since: None,
        }
    }
}

/// A sink's encoder: deliveries in, sealed bodies out.
pub struct SinkEncoder {
    /// The sink's settings.
    pub config: SinkConfig,
    /// One parser per source.
    pub parsers: Vec<Parser>,
    /// Labels per source.
    pub labels: Vec<Vec<(String, String)>>,
    /// Encodes records.
    pub encoder: Encoder,
    /// Whether to seal as soon as the input is idle (stdout, file).
    pub flush_when_idle: bool,
    /// Its metrics.
    pub metrics: Arc<SinkMetrics>,
    /// Whether this sink reports the parsers' counters (only one sink does,
    /// so a line is counted once).
    pub reports_parse_stats: bool,
    /// Buffers of delivered bodies, to fill again.
    pub spares: Spares,
    /// Labels and batch limits from a reloaded `--config` file, taken
    /// between deliveries.
    pub live: crate::reload::SinkUpdates,
}

impl SinkEncoder {
    /// Runs until `input` closes (the fan-out ended) or the sender is gone.
    pub async fn run(mut self, mut input: mpsc::Receiver<Arc<Delivery>>, output: mpsc::Sender<Sealed>) {
        let mut capacity = self.config.batch.max_bytes + 64 * 1024;
        let mut open = Open::new(Vec::new());
        let mut ready: Vec<Sealed> = Vec::new();
        loop {
            let deadline = open.since.map(|t| t + self.config.batch.timeout);
            tokio::select! {
                delivery = input.recv() => {
                    let Some(delivery) = delivery else { break };
                    if let Some(live) = self.live.take() {
                        self.labels.clone_from(&live.labels);
                        self.config.batch = live.batch;
                        capacity = self.config.batch.max_bytes + 64 * 1024;
                    }
                    if open.buf.capacity() == 0 {
                        open = Open::new(self.spares.take(capacity));
                    }
                    self.encode(&delivery, &mut open, &mut ready, capacity);
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    // Sealed by age: the input is slow, keep no spare buffers.
                    ready.push(self.seal(&mut open));
                    self.spares.clear();
                }
            }
            if self.flush_when_idle && open.lines > 0 && input.is_empty() {
                ready.push(self.seal(&mut open));
            }
            for sealed in ready.drain(..) {
                if output.send(sealed).await.is_err() {
                    return;
                }
            }
        }
        if open.lines > 0 {
            let sealed = self.seal(&mut open);
            let _ = output.send(sealed).await;
        }
    }

    /// Encodes every line of `delivery` into `open`, sealing into `ready`
    /// whenever a limit is reached.
    fn encode(&mut self, delivery: &Arc<Delivery>, open: &mut Open, ready: &mut Vec<Sealed>, capacity: usize) {
        let Self {
            config,
            parsers,
            labels,
            encoder,
            spares,
            ..
        } = self;
        let guard = delivery.batch();
        let Some(batch) = guard.as_ref() else { return };
        // A run's own labels (a pod's, a stream's) add to the source's
        // (live) labels and win on the same key; merged once per label set.
        let source_labels = &labels[delivery.source];
        let mut merged: Vec<(&Labels, Vec<(String, String)>)> = Vec::new();
        let mut groups: Vec<(usize, Option<usize>)> = Vec::new();
        for (start, own) in batch.groups() {
            let at = own.map(|own| match merged.iter().position(|(l, _)| Arc::ptr_eq(l, own)) {
                Some(i) => i,
                None => {
                    merged.push((own, crate::chunk::merge_labels(source_labels, own)));
                    merged.len() - 1
                }
            });
            groups.push((start, at));
        }
        let mut groups = groups.into_iter().peekable();
        // The encoder's id of the source's labels (0) and of each merged set.
        let mut ids: Vec<Option<crate::encode::GroupId>> = vec![None; merged.len() + 1];
        let mut labels: &[(String, String)] = source_labels;
        let parser = &mut parsers[delivery.source];
        let limits = config.batch;
        let mut sealed_here: Vec<Sealed> = Vec::new();
        for (i, line) in batch.lines().enumerate() {
            if let Some((_, own)) = groups.next_if(|(start, _)| *start == i) {
                labels = own.map_or(source_labels, |at| &merged[at].1);
                let slot = own.map_or(0, |at| at + 1);
                ids[slot] = Some(match ids[slot] {
                    Some(id) => encoder.resume_group(id, &delivery.file, labels),
                    None => encoder.begin_group(&delivery.file, labels),
                });
                if open.lines > 0 && encoder.over_limit() {
                    // A new Loki stream past the limit: this group starts the next body.
                    sealed_here.push(seal_open(encoder, open, Some((spares, capacity)), config));
                }
            }
            if open.lines == 0 {
                encoder.open(&mut open.buf);
                open.since.get_or_insert_with(Instant::now);
            }
            if open.parts.last().is_none_or(|(d, _)| !Arc::ptr_eq(d, delivery)) {
                open.parts.push((Arc::clone(delivery), false));
            }
            parser.parse(line.bytes, |fields, time, ts_field| {
                let record = Record {
                    line: line.bytes,
                    file: &delivery.file,
                    read_time: delivery.read_time,
                    time: time.or(line.time),
                    labels,
                    fields,
                };
                let mark = open.buf.len();
                encoder.record(&record, ts_field, open.lines == 0, &mut open.buf);
                // Keep a body within max_bytes (the closing `]` included):
                // a record that does not fit starts the next body.
                if open.buf.len() + 1 > limits.max_bytes && open.lines > 0 {
                    open.buf.truncate(mark);
                    sealed_here.push(seal_open(encoder, open, Some((spares, capacity)), config));
                    open.parts.push((Arc::clone(delivery), false));
                    encoder.open(&mut open.buf);
                    open.since = Some(Instant::now());
                    encoder.record(&record, ts_field, true, &mut open.buf);
                }
                open.lines += 1;
                if open.lines >= limits.max_lines || open.buf.len() >= limits.max_bytes {
                    sealed_here.push(seal_open(encoder, open, Some((spares, capacity)), config));
                }
            });
        }
        // This delivery's last line is in the open body or in the last sealed one.
        match open.parts.last_mut() {
            Some((d, last)) if Arc::ptr_eq(d, delivery) => *last = true,
            _ => {
                if let Some((d, last)) = sealed_here.last_mut().and_then(|s| s.parts.last_mut())
                    && Arc::ptr_eq(d, delivery)
                {
                    *last = true;
                }
            }
        }
        drop(guard);
        delivery.encoded();
        ready.append(&mut sealed_here);
        if self.reports_parse_stats {
            let stats = self.parsers[delivery.source].take_stats();
            self.metrics.parsed(stats);
        }
        let stats = self.encoder.take_stats();
        self.metrics.encoded(stats);
    }

    /// Seals the open body; the next one gets no buffer until input comes.
    fn seal(&mut self, open: &mut Open) -> Sealed {
        seal_open(&mut self.encoder, open, None, &self.config)
    }
}

/// Closes `open`'s body and starts the next one, with a buffer from
/// `spares` (or of `capacity`) when more input is at hand, else none.
fn seal_open(encoder: &mut Encoder, open: &mut Open, next: Option<(&Spares, usize)>, config: &SinkConfig) -> Sealed {
    encoder.close(&mut open.buf);
    let buf = next.map_or_else(Vec::new, |(spares, capacity)| spares.take(capacity));
    let old = std::mem::replace(open, Open::new(buf));
    let raw_bytes = old.buf.len();
    let compression = match &config.kind {
        crate::config::SinkKind::Http(h) => h.compression,
        _ => Compression::None,
    };
    let body = if compression == Compression::Snappy {
        // Snappy's block format, as Loki reads a protobuf push.
        let body = snap::raw::Encoder::new().compress_vec(&old.buf).unwrap_or_default();
        if let Some((spares, _)) = next {
            spares.put(Bytes::from(old.buf));
        }
        Bytes::from(body)
    } else if compression == Compression::Gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(raw_bytes / 4), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = std::io::Write::write_all(&mut gz, &old.buf);
        if let Some((spares, _)) = next {
            spares.put(Bytes::from(old.buf));
        }
        Bytes::from(gz.finish().unwrap_or_default())
    } else {
        Bytes::from(old.buf)
    };
    Sealed {
        body,
        compression,
        lines: old.lines as u64,
        raw_bytes,
        parts: old.parts,
        sealed_at: Instant::now(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What the sender did with a body.
#[derive(Debug)]
enum Outcome {
    Accepted,
    Rejected(String),
    /// The drain ran out of time, or the transport cannot go on.
    GaveUp,
    Fatal(String),
}

/// A sink's sender: sealed bodies in, delivered in order.
pub struct SinkSender {
    /// The sink's settings.
    pub config: SinkConfig,
    /// Where bodies go.
    pub transport: Transport,
    /// Its metrics.
    pub metrics: Arc<SinkMetrics>,
    /// Cancelled when the drain must end: stop retrying.
    pub give_up: CancellationToken,
    /// Where a `stop` policy (or a fatal transport error) reports, ending the process.
    pub fatal: mpsc::Sender<anyhow::Error>,
    /// Where delivered bodies' buffers go back to the encoder.
    pub spares: Spares,
}

impl SinkSender {
    /// Runs until the encoder is done, or the sink gives up or stops.
    pub async fn run(mut self, mut input: mpsc::Receiver<Sealed>) {
        let mut backoff = Backoff::new(Duration::from_millis(50), self.config.retry.max_delay);
        let mut failing = false;
        while let Some(sealed) = input.recv().await {
            match self.deliver(&sealed, &mut backoff, &mut failing).await {
                Outcome::Accepted => {
                    let partial = self.transport.take_partial();
                    let refused = (partial.rejected.len() as u64 + partial.dropped_by_sink).min(sealed.lines);
                    self.metrics.sent(
                        sealed.lines - refused,
                        sealed.body.len() as u64,
                        sealed.sealed_at.elapsed(),
                    );
                    if partial.dropped_by_sink > 0 {
                        self.metrics.dropped_by_sink(partial.dropped_by_sink);
                        tracing::warn!(sink = %self.config.name, records = partial.dropped_by_sink, message = ?partial.message, "The sink accepted a batch but dropped some of its records.");
                    }
                    if !partial.rejected.is_empty() && !self.reject_records(partial.rejected).await {
                        return;
                    }
                    sealed.complete(&self.spares);
                }
                Outcome::Rejected(reason) => {
                    self.metrics.failed_lines(sealed.lines);
                    match self.config.on_reject {
                        OnReject::DeadLetter => match self.dead_letter(&sealed, &reason).await {
                            Ok(()) => {
                                tracing::warn!(sink = %self.config.name, lines = sealed.lines, reason = %reason, "Batch rejected; written to the dead-letter file.");
                                self.metrics.dead_lettered(sealed.lines);
                                sealed.complete(&self.spares);
                            }
                            Err(e) => {
                                let _ = self
                                    .fatal
                                    .send(anyhow::anyhow!(
                                        "sink {}: a rejected batch ({reason}) cannot be written to the dead-letter file: {e}",
                                        self.config.name
                                    ))
                                    .await;
                                return;
                            }
                        },
                        OnReject::Drop => {
                            tracing::warn!(sink = %self.config.name, lines = sealed.lines, reason = %reason, "Batch rejected; dropped (--on-reject drop).");
                            self.metrics.dropped(sealed.lines);
                            sealed.complete(&self.spares);
                        }
                        OnReject::Stop => {
                            let _ = self
                                .fatal
                                .send(anyhow::anyhow!(
                                    "sink {} rejected a batch of {} lines ({reason}); stopping (--on-reject stop)",
                                    self.config.name,
                                    sealed.lines
                                ))
                                .await;
                            return;
                        }
                    }
                }
                Outcome::Fatal(reason) => {
                    let _ = self
                        .fatal
                        .send(anyhow::anyhow!("sink {}: {reason}", self.config.name))
                        .await;
                    return;
                }
                Outcome::GaveUp => {
                    let queued = 1 + input.len();
                    tracing::warn!(
                        sink = %self.config.name,
                        batches = queued,
                        "The drain ran out of time before this sink accepted everything; the lines not \
                         acknowledged will be shipped again after a restart."
                    );
                    return;
                }
            }
        }
    }

    async fn deliver(&mut self, sealed: &Sealed, backoff: &mut Backoff, failing: &mut bool) -> Outcome {
        let mut retries: u32 = 0;
        loop {
            let result = tokio::select! {
                r = self.transport.send(sealed, &self.config) => r,
                () = self.give_up.cancelled() => return Outcome::GaveUp,
            };
            let (reason, retry_after) = match result {
                Ok(()) => {
                    if *failing {
                        *failing = false;
                        tracing::info!(sink = %self.config.name, "Sink accepts batches again.");
                    }
                    backoff.reset();
                    return Outcome::Accepted;
                }
                Err(SendError::Reject(reason)) => return Outcome::Rejected(reason),
                Err(SendError::Fatal(reason)) => return Outcome::Fatal(reason),
                Err(SendError::Retry { reason, retry_after }) => (reason, retry_after),
            };
            self.metrics.request_failed();
            if self.config.retry.max.is_some_and(|max| retries >= max) {
                return Outcome::Rejected(format!("{reason}; gave up after {retries} retries (--retry-max)"));
            }
            retries += 1;
            self.metrics.retried();
            let delay = retry_after
                .map(|d| d.min(Duration::from_secs(300)))
                .unwrap_or_else(|| backoff.next_delay());
            if !*failing {
                *failing = true;
                tracing::warn!(sink = %self.config.name, reason = %reason, retry_in = ?delay, "Sink failed; retrying until it accepts.");
            } else {
                tracing::debug!(sink = %self.config.name, reason = %reason, retry_in = ?delay, "Sink still failing.");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.give_up.cancelled() => return Outcome::GaveUp,
            }
        }
    }

    /// Writes a rejected body to the dead-letter file: as it is for plain
    /// HTTP sinks, as entries with the reason for the platform sinks.
    async fn dead_letter(&mut self, sealed: &Sealed, reason: &str) -> std::io::Result<()> {
        let mut body = sealed.plain()?;
        if let SinkKind::Http(http) = &self.config.kind
            && !matches!(http.api, Api::Plain)
        {
            // Of a `_bulk` body whose failed items were being retried: the
            // items refused so far, and those never accepted.
            let partial = self.transport.take_partial();
            let unaccepted = self.transport.take_unaccepted();
            let mut entries: Vec<u8> = partial.rejected.into_iter().flat_map(|(_, e)| e).collect();
            let rest = unaccepted.as_deref().unwrap_or(&body);
            entries.extend(rejected_body_entries(&http.api, &self.config.name, reason, rest));
            body = entries;
        } else if self.config.format == Format::JsonArray || body.last() != Some(&b'\n') {
            body.push(b'\n');
        }
        self.write_dead_letter(body).await
    }

    /// Appends entries to the dead-letter file (bounded, see
    /// [`crate::dead_letter`]).
    async fn write_dead_letter(&self, entries: Vec<u8>) -> std::io::Result<()> {
        let Some(path) = self.config.dead_letter.clone() else {
            return Err(std::io::Error::other("no dead-letter file configured"));
        };
        let max_size = self.config.dead_letter_max_size;
        let discarded = tokio::task::spawn_blocking(move || crate::dead_letter::append(&path, max_size, &entries))
            .await
            .map_err(std::io::Error::other)??;
        if discarded > 0 {
            self.metrics.dead_letter_discarded(discarded);
            tracing::warn!(sink = %self.config.name, bytes = discarded, "The dead-letter file reached --dead-letter-max-size; its oldest rotated copy was deleted.");
        }
        Ok(())
    }

    /// Applies the `--on-reject` policy to records a platform refused out of
    /// an accepted request (each a dead-letter entry with its reason);
    /// `false` when the sender must stop.
    async fn reject_records(&self, rejected: Vec<(String, Vec<u8>)>) -> bool {
        let n = rejected.len() as u64;
        let reason = rejected[0].0.clone();
        self.metrics.failed_lines(n);
        match self.config.on_reject {
            OnReject::DeadLetter => {
                let entries = rejected.into_iter().flat_map(|(_, e)| e).collect();
                match self.write_dead_letter(entries).await {
                    Ok(()) => {
                        tracing::warn!(sink = %self.config.name, lines = n, first_reason = %reason, "Records rejected; written to the dead-letter file.");
                        self.metrics.dead_lettered(n);
                        true
                    }
                    Err(e) => {
                        let _ = self
                            .fatal
                            .send(anyhow::anyhow!(
                                "sink {}: rejected records ({reason}) cannot be written to the dead-letter file: {e}",
                                self.config.name
                            ))
                            .await;
                        false
                    }
                }
            }
            OnReject::Drop => {
                tracing::warn!(sink = %self.config.name, lines = n, first_reason = %reason, "Records rejected; dropped (--on-reject drop).");
                self.metrics.dropped(n);
                true
            }
            OnReject::Stop => {
                let _ = self
                    .fatal
                    .send(anyhow::anyhow!(
                        "sink {} rejected {n} records ({reason}); stopping (--on-reject stop)",
                        self.config.name
                    ))
                    .await;
                false
            }
        }
    }
}
