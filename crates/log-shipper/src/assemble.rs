//! Records from several lines: container log pieces joined into the lines
//! the container wrote (CRI `P`…`F`, docker's split lines), and those lines
//! joined into multiline records by a [`Rule`] (stack traces), within a
//! maximum of lines and bytes per record and a flush timeout.
//!
//! The [`Assembler`] sits between a source's tailer and its sinks. It keeps,
//! per file, the records still being joined, in the order they started, at
//! most one open record per stream (stdout and stderr pieces interleave in
//! one file). Records leave in that order as soon as the ones before them
//! are complete: when the next record of their stream starts, when the
//! container's line ends (without a rule), when a limit is reached (the
//! record is split there and counted, nothing is dropped), when the file
//! was quiet for the flush timeout, or when it was truncated.
//!
//! **Quiet means caught up.** The flush clock of a record starts only once
//! the tailer has caught up with its file ([`Batch::at_eof`]: nothing left
//! to read) *and* the consumer is waiting for more ([`Assembler::idle`]);
//! a record of a file with bytes still unread never leaves on a timeout,
//! however long the pipeline was blocked, so a record whose pieces straddle
//! two reads leaves whole.
//!
//! **Acknowledgements never split a record.** Records leave only at a
//! *clean cut* of the file: an offset before which every piece belongs to a
//! record that leaves, and from which every piece belongs to one that stays
//! (with one stream, every record's first line is one; when streams
//! interleave, a record whose pieces reach past the start of a record still
//! open waits for it). The acknowledgements of a file's batches are held
//! until a cut passes them, split there ([`AckToken::split_off`]: at most
//! once per batch and cut), and travel with the last chunk of records that
//! left at that cut. The tailer's checkpoint advances only over the
//! acknowledged prefix of a file, so it always lies at a cut: at the first
//! line of the oldest record not yet delivered. Records still open at
//! shutdown are dropped unacknowledged: after a restart they are read again
//! from their first line, whole.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use podkit_tailer::{AckToken, Batch, FileInfo};

use crate::chunk::{Chunk, Labels, Records};
use crate::cri::{ContainerFormat, Piece, Stream};
use crate::multiline::{Rule, State};

/// How a source's lines become records.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The container log format of its files.
    pub format: ContainerFormat,
    /// The multiline rule, if any.
    pub rule: Option<Rule>,
    /// Most lines per record.
    pub max_lines: usize,
    /// Most bytes per record.
    pub max_bytes: usize,
    /// How long a file must be quiet (read to its end, nothing new) before
    /// its open records are emitted.
    pub flush_after: Duration,
    /// Take namespace, pod, pod UID and container labels from the path.
    pub kubernetes: bool,
}

impl Default for Settings {
    /// Plain lines: one record each.
    fn default() -> Self {
        Self {
            format: ContainerFormat::None,
            rule: None,
            max_lines: 500,
            max_bytes: 256 * 1024,
            flush_after: Duration::from_secs(1),
            kubernetes: false,
        }
    }
}

impl Settings {
    /// Whether lines go to the sinks as they are (one record each).
    pub fn is_plain(&self) -> bool {
        self.format == ContainerFormat::None && self.rule.is_none() && !self.kubernetes
    }
}

/// Counters since the last [`Assembler::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records split because they reached the most lines or bytes.
    pub splits: u64,
    /// Lines that were not in the container format (shipped whole).
    pub unparsed: u64,
}

/// Records per chunk at most, and bytes per chunk at about most.
const CHUNK_RECORDS: usize = 4096;
const CHUNK_BYTES: usize = 256 * 1024;

/// Bytes and records a file's queue may hold behind a record left open
/// (by a stream that went quiet) before that record is completed.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;
const QUEUE_RECORDS: usize = 16 * 1024;

/// A part of a batch's acknowledgement: the tailer's [`AckToken`] (tests
/// use a stand-in that records what was acknowledged).
pub trait Part: Sized {
    /// The file bytes it acknowledges.
    fn range(&self) -> Range<u64>;
    /// Splits off the bytes from `at` on (with `lines` of the lines).
    fn split_off(&mut self, at: u64, lines: u64) -> Self;
    /// Acknowledges the bytes.
    fn ack(self);
}

impl Part for AckToken {
    fn range(&self) -> Range<u64> {
        self.byte_range()
    }
    fn split_off(&mut self, at: u64, lines: u64) -> Self {
        AckToken::split_off(self, at, lines)
    }
    fn ack(self) {
        AckToken::ack(self);
    }
}

/// Joins lines into records, file by file.
#[derive(Debug)]
pub struct Assembler<T = AckToken> {
    settings: Settings,
    files: HashMap<(u64, u64), FileState<T>>,
    next_id: u64,
    ready: Vec<Building<T>>,
    stats: Stats,
}

/// A file with records still open.
#[derive(Debug)]
struct FileState<T> {
    info: FileInfo,
    /// Records in the order they started; the front ones leave once complete.
    queue: VecDeque<Pending>,
    /// The acknowledgements of the bytes from the last cut on, in file order.
    held: VecDeque<T>,
    /// Where the last batch ended (an earlier start means truncation).
    end: u64,
    /// The last batch left the tailer caught up with the file: nothing
    /// more to read (until it grows). Only then do flush clocks run.
    at_eof: bool,
    /// Records left since the acknowledgements were last handed on: the
    /// next ones up to the cut go with the last chunk of this file.
    emitted: bool,
    /// The labels of its records of each [`Stream`], once known.
    labels: [Option<Option<Labels>>; 3],
    /// Buffers of records that left, to join the next ones in.
    spare: Vec<Vec<u8>>,
    /// The bytes of the last batch: what a new chunk reserves.
    batch_bytes: usize,
}

/// A record being joined.
#[derive(Debug)]
struct Pending {
    id: u64,
    stream: Stream,
    /// File offsets of its first and last piece.
    first: u64,
    last: u64,
    /// Since when it has been quiet: when the consumer was first idle
    /// ([`Assembler::idle`]) after its last piece, with the file read to
    /// its end; `None` until then.
    touched: Option<Instant>,
    buf: Vec<u8>,
    lines: usize,
    time: Option<Timestamp>,
    state: State,
    /// Nothing more will be added.
    complete: bool,
    /// Its last piece was partial: the next piece of its stream continues
    /// that line.
    in_line: bool,
}

/// A chunk being filled.
#[derive(Debug)]
struct Building<T> {
    key: (u64, u64),
    file: FileInfo,
    data: Vec<u8>,
    records: Vec<(Range<usize>, Option<Timestamp>)>,
    groups: Vec<(usize, Option<Labels>)>,
    acks: Vec<T>,
}

impl Assembler<AckToken> {
    /// Adds a tailer batch.
    pub fn push(&mut self, batch: Batch) {
        let lines = batch.lines().map(|l| (l.offset, l.bytes));
        let key = self.add_lines(batch.file(), batch.byte_range(), batch.at_eof(), lines);
        self.assign(key, batch.into_ack());
    }

    /// Takes the chunks of records that are complete.
    pub fn take_ready(&mut self) -> Vec<Chunk> {
        self.take_records().into_iter().map(Chunk::Records).collect()
    }
}

impl<T: Part> Assembler<T> {
    /// An assembler with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            files: HashMap::new(),
            next_id: 0,
            ready: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Takes the counters.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// Adds the lines (offset, bytes) of one batch of `info` covering `range`,
    /// after which the file was read to its end or not (`at_eof`); returns
    /// the file, to [`Self::assign`] the batch's acknowledgement to.
    pub fn add_lines<'a>(
        &mut self,
        info: &FileInfo,
        range: Range<u64>,
        at_eof: bool,
        lines: impl Iterator<Item = (u64, &'a [u8])>,
    ) -> (u64, u64) {
        let key = (info.dev, info.ino);
        let Self {
            settings,
            files,
            next_id,
            ready,
            stats,
        } = self;
        let file = files.entry(key).or_insert_with(|| FileState {
            info: info.clone(),
            queue: VecDeque::new(),
            held: VecDeque::new(),
            end: range.start,
            at_eof,
            emitted: false,
            labels: Default::default(),
            spare: Vec::new(),
            batch_bytes: 0,
        });
        if range.start < file.end {
            // Truncated: the bytes after what is open are gone.
            for p in &mut file.queue {
                p.complete = true;
            }
        }
        if file.info.path != info.path {
            file.info.path.clone_from(&info.path);
            file.labels = Default::default();
        }
        file.end = range.end;
        file.at_eof = at_eof;
        file.batch_bytes =
            usize::try_from(range.end.saturating_sub(range.start)).map_or(CHUNK_BYTES, |n| n.min(CHUNK_BYTES));

        for (offset, bytes) in lines {
            let piece = settings.format.parse(bytes).unwrap_or_else(|| {
                stats.unparsed += 1;
                Piece::raw(bytes)
            });
            if piece.last && settings.rule.is_none() && file.queue.is_empty() {
                // A whole line and nothing open before it: a record now.
                file.emit(ready, key, settings, piece.stream, &piece.content, piece.time);
                continue;
            }
            file.add(piece, offset, settings, next_id, stats);
            if file.queue.front().is_some_and(|p| p.complete) {
                file.emit_complete(ready, key, settings);
            }
        }
        key
    }

    /// Holds a batch's acknowledgement `token` until a cut passes it, then
    /// moves complete records out.
    pub fn assign(&mut self, key: (u64, u64), token: T) {
        match self.files.get_mut(&key) {
            Some(file) => file.held.push_back(token),
            None => token.ack(),
        }
        self.drain(key);
    }

    /// The consumer is idle at `now`: it has handled every batch the tailer
    /// sent and waits for the next. Starts the flush clock of the open
    /// records that got a piece since the last call, in files read to
    /// their end. (Call it only when no batch is waiting: time spent
    /// behind a busy sink, or with batches queued, is not quiet time.)
    pub fn idle(&mut self, now: Instant) {
        for f in self.files.values_mut().filter(|f| f.at_eof) {
            for p in f.queue.iter_mut().filter(|p| p.touched.is_none()) {
                p.touched = Some(now);
            }
        }
    }

    /// When the next open record will have been quiet for the flush
    /// timeout, if any flush clock runs.
    pub fn next_flush(&self) -> Option<Instant> {
        self.files
            .values()
            .filter(|f| f.at_eof)
            .flat_map(|f| f.queue.iter().filter(|p| !p.complete))
            .filter_map(|p| p.touched)
            .map(|t| t + self.settings.flush_after)
            .min()
    }

    /// Completes the records quiet since `now - flush_after` or longer.
    pub fn flush(&mut self, now: Instant) {
        let after = self.settings.flush_after;
        let mut due = Vec::new();
        for (key, f) in &mut self.files {
            if !f.at_eof {
                continue;
            }
            let mut any = false;
            for p in f
                .queue
                .iter_mut()
                .filter(|p| !p.complete && p.touched.is_some_and(|t| t + after <= now))
            {
                p.complete = true;
                any = true;
            }
            if any {
                due.push(*key);
            }
        }
        for key in due {
            self.drain(key);
        }
    }

    /// Completes every open record (the end of input, in tests).
    pub fn flush_all(&mut self) {
        let keys: Vec<_> = self.files.keys().copied().collect();
        for key in keys {
            if let Some(f) = self.files.get_mut(&key) {
                f.queue.iter_mut().for_each(|p| p.complete = true);
            }
            self.drain(key);
        }
    }

    /// Takes the records that are complete, in chunks.
    pub fn take_records(&mut self) -> Vec<Records<T>> {
        self.ready
            .drain(..)
            .map(|b| Records {
                file: b.file,
                data: b.data.into(),
                records: b.records,
                groups: b.groups,
                acks: b.acks,
            })
            .collect()
    }

    /// Moves complete records at the front of `key`'s queue to chunks (up
    /// to a clean cut, [`FileState::emit_complete`]) and hands the
    /// acknowledgements up to the cut to the last chunk of the file.
    fn drain(&mut self, key: (u64, u64)) {
        let Some(file) = self.files.get_mut(&key) else { return };
        // Bound what a record left open by one stream can hold back.
        let held: usize = file.queue.iter().map(|p| p.buf.len()).sum();
        if (held > QUEUE_BYTES.max(2 * self.settings.max_bytes) || file.queue.len() > QUEUE_RECORDS)
            && let Some(p) = file.queue.iter_mut().find(|p| !p.complete)
        {
            p.complete = true;
        }
        file.emit_complete(&mut self.ready, key, &self.settings);
        // The acknowledgements up to the cut go with the last chunk that
        // left at it (or are answered now when nothing left, e.g. a batch
        // that held no line).
        let upto = file.queue.front().map(|p| p.first);
        let mut parts = Vec::new();
        while let Some(front) = file.held.front_mut() {
            let range = front.range();
            match upto {
                Some(at) if range.start >= at => break,
                Some(at) if range.end > at => {
                    let tail = front.split_off(at, 0);
                    parts.push(std::mem::replace(front, tail));
                    break;
                }
                _ => parts.extend(file.held.pop_front()),
            }
        }
        let emitted = std::mem::take(&mut file.emitted);
        match self.ready.iter_mut().rev().find(|b| b.key == key) {
            Some(b) if emitted => b.acks.extend(parts),
            _ if upto.is_none() && !emitted => parts.into_iter().for_each(Part::ack),
            // Nothing left at this cut: the parts stay for the next one.
            _ => {
                file.emitted = emitted;
                parts.into_iter().rev().for_each(|p| file.held.push_front(p));
            }
        }
        if file.queue.is_empty() && file.held.is_empty() {
            self.files.remove(&key);
        }
    }
}

impl<T: Part> FileState<T> {
    /// Moves the complete records at the front of the queue to chunks, up
    /// to a clean cut: a point in the file before which every piece belongs
    /// to a record that leaves, and after which none does. (With one stream
    /// every record boundary is one; with interleaved streams a record whose
    /// pieces reach past the start of a record still open waits for it.)
    fn emit_complete(&mut self, ready: &mut Vec<Building<T>>, key: (u64, u64), s: &Settings) {
        let mut cut = 0;
        let mut reach = 0;
        for (i, p) in self.queue.iter().enumerate() {
            if !p.complete {
                break;
            }
            reach = reach.max(p.last);
            if self.queue.get(i + 1).is_none_or(|next| reach < next.first) {
                cut = i + 1;
            }
        }
        for _ in 0..cut {
            let p = self.queue.pop_front().expect("counted above");
            self.emit(ready, key, s, p.stream, &p.buf, p.time);
            if self.spare.len() < 64 && p.buf.capacity() <= 64 * 1024 {
                let mut buf = p.buf;
                buf.clear();
                self.spare.push(buf);
            }
        }
    }

    /// Appends one record to the chunk being filled for this file (a new
    /// one when there is none or it is full).
    fn emit(
        &mut self,
        ready: &mut Vec<Building<T>>,
        key: (u64, u64),
        s: &Settings,
        stream: Stream,
        content: &[u8],
        time: Option<Timestamp>,
    ) {
        self.emitted = true;
        let labels = self.labels[stream as usize].get_or_insert_with(|| labels(s, &self.info, stream));
        let fits = ready
            .last()
            .is_some_and(|b| b.key == key && b.records.len() < CHUNK_RECORDS && b.data.len() < CHUNK_BYTES);
        if !fits {
            ready.push(Building {
                key,
                file: self.info.clone(),
                data: Vec::with_capacity(self.batch_bytes),
                records: Vec::new(),
                groups: Vec::new(),
                acks: Vec::new(),
            });
        }
        let b = ready.last_mut().expect("pushed");
        let same = b.groups.last().is_some_and(|(_, last)| match (last, &*labels) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        });
        if !same {
            b.groups.push((b.records.len(), labels.clone()));
        }
        let start = b.data.len();
        b.data.extend_from_slice(content);
        b.records.push((start..b.data.len(), time));
    }

    /// Adds one piece; returns the record it went into.
    fn add(&mut self, piece: Piece<'_>, offset: u64, s: &Settings, next_id: &mut u64, stats: &mut Stats) -> u64 {
        let content = &piece.content[..];
        let open = self
            .queue
            .iter_mut()
            .rev()
            .find(|p| p.stream == piece.stream && !p.complete);
        let mut state = State::default();
        if let Some(p) = open {
            if p.in_line {
                // The rest of a partial line.
                if p.buf.len() + content.len() <= s.max_bytes {
                    p.buf.extend_from_slice(content);
                    (p.last, p.touched) = (offset, None);
                    p.in_line = !piece.last;
                    p.complete = piece.last && s.rule.is_none();
                    return p.id;
                }
                stats.splits += 1;
                state = p.state;
            } else if let Some(rule) = &s.rule {
                let mut next = p.state;
                if rule.continues(&mut next, content) {
                    if p.lines < s.max_lines && p.buf.len() + 1 + content.len() <= s.max_bytes {
                        p.buf.push(b'\n');
                        p.buf.extend_from_slice(content);
                        (p.last, p.touched) = (offset, None);
                        p.lines += 1;
                        p.state = next;
                        p.in_line = !piece.last;
                        return p.id;
                    }
                    stats.splits += 1;
                    state = next;
                } else {
                    state = rule.start(content);
                }
            }
            p.complete = true;
        } else if let Some(rule) = &s.rule {
            state = rule.start(content);
        }
        let id = *next_id;
        *next_id += 1;
        self.queue.push_back(Pending {
            id,
            stream: piece.stream,
            first: offset,
            last: offset,
            touched: None,
            buf: {
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.extend_from_slice(content);
                buf
            },
            lines: 1,
            time: piece.time,
            state,
            complete: piece.last && s.rule.is_none(),
            in_line: !piece.last,
        });
        id
    }
}

/// The labels of `file`'s records of `stream` beside the source's: the
/// pod's (Kubernetes node mode) and the stream; `None` when there are none.
fn labels(s: &Settings, file: &FileInfo, stream: Stream) -> Option<Labels> {
    let pod = if s.kubernetes {
        crate::kubernetes::path_labels(&file.path)
    } else {
        None
    };
    if pod.is_none() && stream.as_str().is_none() {
        return None;
    }
    let mut labels: Vec<(String, String)> = pod.into_iter().flatten().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Some(stream) = stream.as_str() {
        labels.push(("stream".to_owned(), stream.to_owned()));
    }
    Some(Arc::from(labels))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::rc::Rc;

    use proptest::prelude::*;
    use regex::bytes::Regex;

    use super::*;

    /// A stand-in for the tailer's token: records the ranges acknowledged.
    #[derive(Debug)]
    struct Fake {
        range: Range<u64>,
        log: Rc<RefCell<Vec<Range<u64>>>>,
    }

    impl Part for Fake {
        fn range(&self) -> Range<u64> {
            self.range.clone()
        }
        fn split_off(&mut self, at: u64, _lines: u64) -> Self {
            let tail = Fake {
                range: at..self.range.end,
                log: Rc::clone(&self.log),
            };
            self.range.end = at;
            tail
        }
        fn ack(self) {
            self.log.borrow_mut().push(self.range);
        }
    }

    fn settings(format: ContainerFormat, rule: Option<Rule>) -> Settings {
        Settings {
            format,
            rule,
            max_lines: 1000,
            max_bytes: 1 << 20,
            flush_after: Duration::from_secs(1),
            kubernetes: false,
        }
    }

    fn info() -> FileInfo {
        FileInfo {
            path: PathBuf::from("/var/log/pods/ns_pod_uid/c/0.log"),
            dev: 1,
            ino: 2,
        }
    }

    /// What came out: (stream label, record text, event time) in order.
    type Out = Vec<(String, String, Option<String>)>;

    /// Feeds `text` to `a`, the lines from `from` on, in batches ending
    /// after the lines whose index is in `cuts`; acknowledges everything
    /// that comes out.
    struct Run {
        a: Assembler<Fake>,
        log: Rc<RefCell<Vec<Range<u64>>>>,
        out: Out,
        now: Instant,
    }

    impl Run {
        fn new(s: Settings) -> Self {
            Self {
                a: Assembler::new(s),
                log: Rc::default(),
                out: Vec::new(),
                now: Instant::now(),
            }
        }

        /// The lines of `text` from byte `from`, as (offset, bytes, end).
        fn lines(text: &[u8], from: u64) -> Vec<(u64, &[u8], u64)> {
            let mut out = Vec::new();
            let mut at = from as usize;
            while at < text.len() {
                let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i);
                out.push((at as u64, &text[at..end], (end + 1).min(text.len()) as u64));
                at = end + 1;
            }
            out
        }

        /// One batch that read the file to its end, handled when the
        /// consumer then waits for more at `now`.
        fn feed(&mut self, lines: &[(u64, &[u8], u64)]) {
            self.read(lines, true);
            self.a.idle(self.now);
        }

        /// One batch, after which the file was read to its end or not.
        fn read(&mut self, lines: &[(u64, &[u8], u64)], at_eof: bool) {
            if lines.is_empty() {
                return;
            }
            let range = lines[0].0..lines[lines.len() - 1].2;
            let token = Fake {
                range: range.clone(),
                log: Rc::clone(&self.log),
            };
            let key = self
                .a
                .add_lines(&info(), range, at_eof, lines.iter().map(|l| (l.0, l.1)));
            self.a.assign(key, token);
            self.collect();
        }

        fn collect(&mut self) {
            for r in self.a.take_records() {
                assert_eq!(
                    r.groups.first().map(|g| g.0),
                    Some(0),
                    "the first run starts at the first record"
                );
                for (i, (range, time)) in r.records.iter().enumerate() {
                    let (_, labels) = r.groups.iter().rev().find(|(start, _)| *start <= i).unwrap();
                    let stream = labels
                        .as_ref()
                        .and_then(|l| l.iter().find(|(k, _)| k == "stream").map(|(_, v)| v.clone()))
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&r.data[range.clone()]).into_owned();
                    self.out.push((stream, text, time.map(|t| t.to_string())));
                }
                for a in r.acks {
                    a.ack();
                }
            }
        }

        /// Every byte before this was acknowledged.
        fn committed(&self) -> u64 {
            let mut ranges = self.log.borrow().clone();
            ranges.sort_by_key(|r| r.start);
            let mut c = 0;
            for r in ranges {
                if r.start <= c {
                    c = c.max(r.end);
                }
            }
            c
        }
    }

    fn texts(out: &Out) -> Vec<String> {
        out.iter().map(|(s, t, _)| format!("{s}|{t}")).collect()
    }

    const T: &str = "2026-12-06T02:16:08.000000001Z";

    #[test]
    fn cri_partials_are_joined_per_stream() {
        let text =
            format!("{T} stdout P hel\n{T} stderr F oops\n{T} stdout P lo \n{T} stdout F world\n{T} stdout F next\n");
        let mut run = Run::new(settings(ContainerFormat::Cri, None));
        run.feed(&Run::lines(text.as_bytes(), 0));
        assert_eq!(texts(&run.out), ["stdout|hello world", "stderr|oops", "stdout|next"]);
        assert_eq!(run.out[0].2.as_deref(), Some(T));
        assert_eq!(run.committed(), text.len() as u64);
    }

    #[test]
    fn interleaved_streams_share_a_chunk_in_runs() {
        let text = format!("{T} stdout F a\n{T} stderr F b\n{T} stderr P c\n{T} stdout F d\n{T} stderr F e\n");
        let lines = Run::lines(text.as_bytes(), 0);
        let mut run = Run::new(settings(ContainerFormat::Cri, None));
        let range = 0..text.len() as u64;
        let key = run
            .a
            .add_lines(&info(), range.clone(), true, lines.iter().map(|l| (l.0, l.1)));
        run.a.assign(
            key,
            Fake {
                range,
                log: Rc::clone(&run.log),
            },
        );
        let chunks = run.a.take_records();
        assert_eq!(chunks.len(), 1, "one chunk for both streams");
        let c = &chunks[0];
        let stream = |labels: &Option<Labels>| {
            labels
                .as_ref()
                .unwrap()
                .iter()
                .find(|(k, _)| k == "stream")
                .unwrap()
                .1
                .clone()
        };
        let runs: Vec<(usize, String)> = c.groups.iter().map(|(i, l)| (*i, stream(l))).collect();
        assert_eq!(runs, [(0, "stdout".into()), (1, "stderr".into()), (3, "stdout".into())]);
        // In the order they started: `c` before `d`.
        let data: Vec<&[u8]> = c.records.iter().map(|(r, _)| &c.data[r.clone()]).collect();
        assert_eq!(data, [&b"a"[..], b"b", b"ce", b"d"]);
        assert!(Arc::ptr_eq(
            c.groups[0].1.as_ref().unwrap(),
            c.groups[2].1.as_ref().unwrap()
        ));
        for a in chunks.into_iter().flat_map(|c| c.acks) {
            a.ack();
        }
        assert_eq!(run.committed(), text.len() as u64);
    }

    #[test]
    fn docker_partials_are_joined() {
        let t = "2026-12-06T02:16:08Z";
        let text = format!(
            "{{\"log\":\"a \",\"stream\":\"stdout\",\"time\":\"{t}\"}}\n{{\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"{t}\"}}\nnot docker\n"
        );
        let mut run = Run::new(settings(ContainerFormat::Docker, None));
        run.feed(&Run::lines(text.as_bytes(), 0));
        assert_eq!(texts(&run.out), ["stdout|a b", "|not docker"]);
        assert_eq!(run.a.take_stats().unparsed, 1);
    }

    #[test]
    fn a_record_open_across_batches_holds_the_checkpoint_at_its_start() {
        let text = b"first\nException: boom\n\tat a\n\tat b\nnext\n\tat c\nlast\n";
        let lines = Run::lines(text, 0);
        let mut run = Run::new(settings(ContainerFormat::None, Some(Rule::Java)));
        run.feed(&lines[..3]); // first, Exception, at a
        assert_eq!(texts(&run.out), ["|first"]);
        assert_eq!(run.committed(), 6, "at the start of the open Exception record");
        run.feed(&lines[3..5]); // at b, next
        assert_eq!(texts(&run.out), ["|first", "|Exception: boom\n\tat a\n\tat b"]);
        assert_eq!(run.committed(), lines[4].0, "at the start of `next`");
        assert_eq!(run.a.next_flush(), Some(run.now + Duration::from_secs(1)));
        run.a.flush(run.now + Duration::from_millis(999));
        run.collect();
        assert_eq!(run.out.len(), 2, "not flushed before the timeout");
        run.feed(&lines[5..]);
        run.a.flush(run.now + Duration::from_secs(1));
        run.collect();
        assert_eq!(texts(&run.out)[2..], ["|next\n\tat c", "|last"]);
        assert_eq!(run.committed(), text.len() as u64);
    }

    #[test]
    fn a_record_with_unread_pieces_is_not_flushed_on_a_timeout() {
        // One line in three CRI pieces; the first read ends after two.
        let text = format!("{T} stdout P one \n{T} stdout P two \n{T} stdout F three\n{T} stdout P last\n");
        let lines = Run::lines(text.as_bytes(), 0);
        let mut run = Run::new(settings(ContainerFormat::Cri, None));
        run.read(&lines[..2], false);
        run.a.idle(run.now);
        assert_eq!(run.a.next_flush(), None, "no clock while bytes are unread");
        run.a.flush(run.now + Duration::from_secs(10));
        run.collect();
        assert!(run.out.is_empty(), "{:?}", run.out);
        assert_eq!(run.committed(), 0);
        // The rest, long after the timeout: the line leaves whole.
        run.now += Duration::from_secs(10);
        run.feed(&lines[2..]);
        assert_eq!(texts(&run.out), ["stdout|one two three"]);
        assert_eq!(run.committed(), lines[3].0);
        // The file is quiet now: its last record leaves after the timeout.
        assert_eq!(run.a.next_flush(), Some(run.now + Duration::from_secs(1)));
        run.a.flush(run.now + Duration::from_secs(1));
        run.collect();
        assert_eq!(texts(&run.out), ["stdout|one two three", "stdout|last"]);
        assert_eq!(run.committed(), text.len() as u64);
        assert_eq!(run.a.take_stats(), Stats::default(), "nothing split");
    }

    #[test]
    fn more_to_read_in_a_file_stops_the_clocks_of_its_records() {
        // stdout's line is cut; stderr goes on writing, faster than one read.
        let text = format!("{T} stdout P one \n{T} stderr F a\n{T} stderr F b\n{T} stdout F two\n");
        let lines = Run::lines(text.as_bytes(), 0);
        let mut run = Run::new(settings(ContainerFormat::Cri, None));
        run.feed(&lines[..1]);
        assert_eq!(run.a.next_flush(), Some(run.now + Duration::from_secs(1)));
        run.read(&lines[1..2], false);
        assert_eq!(run.a.next_flush(), None, "the file has bytes unread");
        run.a.flush(run.now + Duration::from_secs(10));
        run.collect();
        assert!(run.out.is_empty(), "{:?}", run.out);
        run.now += Duration::from_secs(10);
        run.feed(&lines[2..]);
        assert_eq!(texts(&run.out), ["stdout|one two", "stderr|a", "stderr|b"]);
        assert_eq!(run.committed(), text.len() as u64);
    }

    #[test]
    fn the_flush_clock_starts_when_the_consumer_waits_at_the_end_of_the_file() {
        let text = b"Exception: boom\n\tat a\n";
        let lines = Run::lines(text, 0);
        let mut run = Run::new(settings(ContainerFormat::None, Some(Rule::Java)));
        // Read to the end, but the consumer is held up (a busy sink, more
        // batches queued): that time is not quiet time.
        run.read(&lines, true);
        assert_eq!(run.a.next_flush(), None);
        run.a.flush(run.now + Duration::from_secs(10));
        run.collect();
        assert!(run.out.is_empty(), "{:?}", run.out);
        // Then it waits for more: the record leaves one timeout later.
        run.now += Duration::from_secs(10);
        run.a.idle(run.now);
        run.a.flush(run.now + Duration::from_millis(999));
        run.collect();
        assert!(run.out.is_empty(), "{:?}", run.out);
        run.a.flush(run.now + Duration::from_secs(1));
        run.collect();
        assert_eq!(texts(&run.out), ["|Exception: boom\n\tat a"]);
        assert_eq!(run.committed(), text.len() as u64);
    }

    #[test]
    fn limits_split_records_and_count_them() {
        let mut s = settings(ContainerFormat::None, Some(Rule::Java));
        s.max_lines = 3;
        let text = b"E\n\t1\n\t2\n\t3\n\t4\nF\n";
        let mut run = Run::new(s.clone());
        run.feed(&Run::lines(text, 0));
        run.a.flush_all();
        run.collect();
        assert_eq!(texts(&run.out), ["|E\n\t1\n\t2", "|\t3\n\t4", "|F"]);
        assert_eq!(run.a.take_stats().splits, 1);

        s.max_lines = 100;
        s.max_bytes = 8;
        let mut run = Run::new(s);
        run.feed(&Run::lines(b"E 1234\n\tab\n\tcd\n\tlong line\n", 0));
        run.a.flush_all();
        run.collect();
        assert_eq!(texts(&run.out), ["|E 1234", "|\tab\n\tcd", "|\tlong line"]);
    }

    #[test]
    fn interleaved_streams_leave_at_a_clean_cut() {
        // stdout's first record ends after stderr's trace starts, and the
        // trace goes on after stdout's second record starts: no record can
        // leave on its own without the checkpoint splitting another.
        let text = format!(
            "{T} stdout F S one\n{T} stderr F S trace\n{T} stdout F  more\n{T} stdout F S two\n{T} stderr F  at x\n{T} stderr F S end\n{T} stdout F S three\n"
        );
        let rule = Rule::Start(Regex::new("^S").unwrap());
        let lines = Run::lines(text.as_bytes(), 0);
        let mut run = Run::new(settings(ContainerFormat::Cri, Some(rule)));
        run.feed(&lines[..6]);
        assert!(run.out.is_empty(), "{:?}", run.out);
        assert_eq!(run.committed(), 0);
        // `S three` completes `S two`: everything before `S end` can leave.
        run.feed(&lines[6..]);
        assert_eq!(
            texts(&run.out),
            ["stdout|S one\n more", "stderr|S trace\n at x", "stdout|S two"]
        );
        assert_eq!(run.committed(), lines[5].0);
        run.a.flush(run.now + Duration::from_secs(1));
        run.collect();
        assert_eq!(
            texts(&run.out),
            [
                "stdout|S one\n more",
                "stderr|S trace\n at x",
                "stdout|S two",
                "stderr|S end",
                "stdout|S three"
            ],
            "in the order they started"
        );
        assert_eq!(run.committed(), text.len() as u64);

        // One stream: each record leaves as soon as the next one starts.
        let text = format!("{T} stdout F S one\n{T} stdout F  more\n{T} stdout F S two\n");
        let mut run = Run::new(settings(
            ContainerFormat::Cri,
            Some(Rule::Start(Regex::new("^S").unwrap())),
        ));
        run.feed(&Run::lines(text.as_bytes(), 0));
        assert_eq!(texts(&run.out), ["stdout|S one\n more"]);
    }

    #[test]
    fn kubernetes_labels_come_from_the_path() {
        let mut s = settings(ContainerFormat::Auto, None);
        s.kubernetes = true;
        let own = labels(&s, &info(), Stream::Stderr).unwrap();
        let source = [
            ("app".to_owned(), "x".to_owned()),
            ("pod".to_owned(), "overridden".to_owned()),
        ];
        let merged = crate::chunk::merge_labels(&source, &own);
        let got: Vec<String> = merged.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "app=x",
                "namespace=ns",
                "pod=pod",
                "pod_uid=uid",
                "container=c",
                "stream=stderr"
            ]
        );
        assert!(labels(&settings(ContainerFormat::None, None), &info(), Stream::Unknown).is_none());
    }

    /// One logical line a container wrote: stream, starts a record, text,
    /// and where its CRI pieces are cut.
    type Written = (bool, bool, String, Vec<usize>);

    fn written() -> impl Strategy<Value = Vec<Written>> {
        proptest::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                "[a-z ]{0,12}",
                proptest::collection::vec(0usize..12, 0..3),
            ),
            1..40,
        )
    }

    /// The CRI file for `lines`, pieces cut as they say.
    fn cri_file(lines: &[Written]) -> String {
        let mut out = String::new();
        for (stderr, start, text, cuts) in lines {
            let stream = if *stderr { "stderr" } else { "stdout" };
            let text = format!("{}{text}", if *start { "S" } else { " " });
            let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut at = 0;
            for c in cuts.into_iter().filter(|&c| c > 0 && c < text.len()) {
                out.push_str(&format!("{T} {stream} P {}\n", &text[at..c]));
                at = c;
            }
            out.push_str(&format!("{T} {stream} F {}\n", &text[at..]));
        }
        out
    }

    /// The records of `lines` by stream, joined by the `^S` rule.
    fn model(lines: &[Written]) -> Vec<(String, String)> {
        let mut open: [Option<usize>; 2] = [None, None];
        let mut out: Vec<(String, String)> = Vec::new();
        for (stderr, start, text, _) in lines {
            let stream = if *stderr { "stderr" } else { "stdout" };
            let text = format!("{}{text}", if *start { "S" } else { " " });
            match open[*stderr as usize] {
                Some(i) if !start => {
                    out[i].1.push('\n');
                    out[i].1.push_str(&text);
                }
                _ => {
                    open[*stderr as usize] = Some(out.len());
                    out.push((stream.to_owned(), text));
                }
            }
        }
        out
    }

    fn by_stream(records: &[(String, String)], stream: &str) -> Vec<String> {
        records
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn feed_in_batches(run: &mut Run, lines: &[(u64, &[u8], u64)], cuts: &[usize]) {
        let mut at = 0;
        for &c in cuts {
            let c = c.min(lines.len());
            if c > at {
                run.feed(&lines[at..c]);
                at = c;
            }
        }
        run.feed(&lines[at..]);
    }

    proptest! {
        /// However the lines are cut into pieces and batches, the records
        /// (per stream) are the model's; every byte is acknowledged once.
        #[test]
        fn any_split_gives_the_same_records(lines in written(), mut cuts in proptest::collection::vec(0usize..200, 0..6)) {
            cuts.sort_unstable();
            let text = cri_file(&lines);
            let rule = Rule::Start(Regex::new("^S").unwrap());
            let mut run = Run::new(settings(ContainerFormat::Cri, Some(rule)));
            let framed = Run::lines(text.as_bytes(), 0);
            feed_in_batches(&mut run, &framed, &cuts);
            run.a.flush_all();
            run.collect();
            let got: Vec<(String, String)> = run.out.iter().map(|(s, t, _)| (s.clone(), t.clone())).collect();
            let want = model(&lines);
            for stream in ["stdout", "stderr"] {
                prop_assert_eq!(by_stream(&got, stream), by_stream(&want, stream));
            }
            let mut acked = run.log.borrow().clone();
            acked.retain(|r| !r.is_empty());
            acked.sort_by_key(|r| r.start);
            let mut at = 0;
            for r in acked {
                prop_assert_eq!(r.start, at, "acknowledged once, no gap");
                at = r.end;
            }
            prop_assert_eq!(at, text.len() as u64);
        }

        /// Stopping after any batch and starting again at the checkpoint
        /// yields every record exactly once.
        #[test]
        fn a_restart_at_the_checkpoint_loses_and_repeats_nothing(
            lines in written(),
            mut cuts in proptest::collection::vec(0usize..200, 1..6),
            stop in 0usize..6,
        ) {
            cuts.sort_unstable();
            let text = cri_file(&lines);
            let rule = Rule::Start(Regex::new("^S").unwrap());
            let s = settings(ContainerFormat::Cri, Some(rule));
            let framed = Run::lines(text.as_bytes(), 0);
            let stop = cuts[stop.min(cuts.len() - 1)].min(framed.len());
            let mut first = Run::new(s.clone());
            feed_in_batches(&mut first, &framed[..stop], &cuts);
            // Shutdown: open records are dropped unacknowledged.
            let committed = first.committed();
            drop(first.a);
            let mut second = Run::new(s);
            let rest = Run::lines(text.as_bytes(), committed);
            feed_in_batches(&mut second, &rest, &[rest.len() / 2]);
            second.a.flush_all();
            second.collect();
            let got: Vec<(String, String)> =
                first.out.iter().chain(&second.out).map(|(s, t, _)| (s.clone(), t.clone())).collect();
            let want = model(&lines);
            for stream in ["stdout", "stderr"] {
                prop_assert_eq!(by_stream(&got, stream), by_stream(&want, stream));
            }
        }

        /// With limits, no record is longer than allowed and no line is lost.
        #[test]
        fn limits_hold_and_nothing_is_lost(
            lines in proptest::collection::vec((any::<bool>(), "[a-z]{1,6}"), 1..60),
            max_lines in 1usize..5,
            max_bytes in 8usize..30,
            mut cuts in proptest::collection::vec(0usize..60, 0..4),
        ) {
            cuts.sort_unstable();
            let text: String = lines.iter().map(|(start, t)| format!("{}{t}\n", if *start { "S" } else { " " })).collect();
            let mut s = settings(ContainerFormat::None, Some(Rule::Start(Regex::new("^S").unwrap())));
            s.max_lines = max_lines;
            s.max_bytes = max_bytes;
            let mut run = Run::new(s);
            feed_in_batches(&mut run, &Run::lines(text.as_bytes(), 0), &cuts);
            run.a.flush_all();
            run.collect();
            for (_, record, _) in &run.out {
                prop_assert!(record.lines().count() <= max_lines, "{record:?}");
                prop_assert!(record.len() <= max_bytes, "{record:?}");
            }
            let joined: Vec<&str> = run.out.iter().map(|(_, t, _)| t.as_str()).collect();
            prop_assert_eq!(format!("{}\n", joined.join("\n")), text);
        }
    }
}
