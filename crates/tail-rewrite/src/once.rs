//! `--once`: read stdin or files to the end, like sed in a pipe.
//!
//! A reader thread reads big chunks (256 KiB) and hands them over a bounded
//! channel; the main thread splits lines, runs the [`Processor`](crate::pipeline::Processor) and batches
//! output. Output is written when 64 KiB are buffered, when the input is idle
//! (the reader has nothing more right now: `tail -f app.log | tail-rewrite
//! --once` shows each line at once), and at most `--flush-interval` after a
//! line was processed. SIGTERM/SIGINT: what was read is processed and
//! written, then exit 0. A closed stdout (`| head`) ends quietly with 0.
//!
//! Like sed, a last line without a newline is written without one (text
//! mode), and lines of several files form one stream.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::Instant;

use anyhow::Context as _;

use crate::{Args, Config, LongLines};
use podkit_record::Output;
use podkit_runtime::startup::{self, LogFilter};

/// Size of each read.
pub const CHUNK: usize = 256 * 1024;

/// Output is written once this much is buffered.
pub const FLUSH_BYTES: usize = 64 * 1024;

enum Msg {
    /// A buffer and how many bytes of it were read.
    Data(Vec<u8>, usize),
    /// The end of one input; `last` when no other follows.
    End { last: bool },
    /// A read failed.
    Failed(anyhow::Error),
    /// A signal asked us to stop.
    Stop,
}

/// The whole `--once` mode: logging, validation, run, exit code.
pub fn main(args: Args) -> ExitCode {
    let common = &args.common;
    if let Err(code) = startup::init_logging(
        crate::BINARY.name,
        common.log_level.as_deref(),
        common.log_format,
        LogFilter::Directives,
    ) {
        return code;
    }
    let config = match startup::build_config(args, Config::from_args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
    if let Err(err) = spawn_signal_thread(stop_tx) {
        tracing::error!(%err, "Cannot install signal handlers.");
        return ExitCode::from(podkit_runtime::exit::FAILURE);
    }
    match run(config, Some(stop_rx)) {
        Ok(()) => ExitCode::from(podkit_runtime::exit::OK),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(podkit_runtime::exit::OK),
        Err(err) => {
            tracing::error!("Failed: {err:#}");
            ExitCode::from(podkit_runtime::exit::FAILURE)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Turns the first SIGTERM/SIGINT into a message on `stop`; a second one
/// exits at once with 1.
fn spawn_signal_thread(stop: SyncSender<()>) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        runtime.block_on(async move {
            let mut signals = match podkit_runtime::shutdown::Signals::install() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let signal = signals.recv().await;
            tracing::debug!(signal = signal.name(), "Stopping after what was read.");
            let _ = stop.try_send(());
            let signal = signals.recv().await;
            tracing::warn!(signal = signal.name(), "Second signal; exiting now.");
            std::process::exit(i32::from(podkit_runtime::exit::FAILURE));
        });
    })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the signal thread ended")))
}

/// Reads every input in order and sends chunks; stops when the receiver is gone.
fn reader(inputs: Vec<PathBuf>, tx: SyncSender<Msg>, free: Receiver<Vec<u8>>) {
    let inputs = if inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        inputs
    };
    let count = inputs.len();
    for (i, path) in inputs.into_iter().enumerate() {
        let mut source: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(&path) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    let _ = tx.send(Msg::Failed(
                        anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
                    ));
                    return;
                }
            }
        };
        loop {
            let mut buf = free.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(Msg::Data(buf, n)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Msg::Failed(
                        anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                    ));
                    return;
                }
            }
        }
        if tx.send(Msg::End { last: i + 1 == count }).is_err() {
            return;
        }
    }
}

/// Splits chunks into lines, handling lines that span chunks and lines
/// longer than the maximum.
pub struct LineSplitter {
    /// The start of a line whose end has not been read yet.
    carry: Vec<u8>,
    /// True while dropping the rest of a truncated line.
    discarding: bool,
    /// True while the carried line has already been counted as long.
    in_long: bool,
    max: usize,
    policy: LongLines,
    /// Lines longer than the maximum seen so far.
    pub long_lines: u64,
}

impl LineSplitter {
    /// A splitter with this maximum line length and policy.
    pub fn new(max: usize, policy: LongLines) -> Self {
        Self {
            carry: Vec::new(),
            discarding: false,
            in_long: false,
            max,
            policy,
            long_lines: 0,
        }
    }

    /// Feeds a chunk; calls `line` for every complete line (without `\n`).
    #[inline]
    pub fn feed(&mut self, mut data: &[u8], mut line: impl FnMut(&[u8])) {
        if !self.carry.is_empty() || self.discarding {
            match memchr::memchr(b'\n', data) {
                None => {
                    self.append(data, &mut line);
                    return;
                }
                Some(p) => {
                    self.append(&data[..p], &mut line);
                    if !self.discarding {
                        line(&self.carry);
                    }
                    self.carry.clear();
                    self.discarding = false;
                    self.in_long = false;
                    data = &data[p + 1..];
                }
            }
        }
        let Some(last) = memchr::memrchr(b'\n', data) else {
            self.append(data, &mut line);
            return;
        };
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &data[..=last]) {
            let l = &data[start..nl];
            if l.len() > self.max {
                self.long(l, &mut line);
            } else {
                line(l);
            }
            start = nl + 1;
        }
        self.append(&data[last + 1..], &mut line);
    }

    /// A line longer than the maximum, complete.
    fn long(&mut self, l: &[u8], line: &mut impl FnMut(&[u8])) {
        self.long_lines += 1;
        match self.policy {
            LongLines::Split => l.chunks(self.max).for_each(&mut *line),
            LongLines::Truncate => line(&l[..self.max]),
        }
    }

    /// Appends to the carried partial line, cutting it at the maximum.
    fn append(&mut self, mut data: &[u8], line: &mut impl FnMut(&[u8])) {
        loop {
            if self.discarding || data.is_empty() {
                return;
            }
            let room = self.max - self.carry.len();
            if data.len() <= room {
                // Possibly exactly full: whether the line is long depends on
                // what comes next.
                self.carry.extend_from_slice(data);
                return;
            }
            self.carry.extend_from_slice(&data[..room]);
            data = &data[room..];
            if !self.in_long {
                self.long_lines += 1;
                self.in_long = true;
            }
            line(&self.carry);
            self.carry.clear();
            if self.policy == LongLines::Truncate {
                self.discarding = true;
            }
        }
    }

    /// Ends the input: returns the unterminated last line, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.discarding = false;
        self.in_long = false;
        if self.carry.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.carry))
        }
    }
}

/// Runs `--once` to the end of the inputs or until `stop` receives.
pub fn run(mut config: Config, stop: Option<Receiver<()>>) -> anyhow::Result<()> {
    let crate::Input::Once(inputs) = config.input.clone() else {
        anyhow::bail!("once::run needs a --once configuration");
    };
    let mut output = Output::open(config.output.clone()).with_context(|| format!("cannot open {:?}", config.output))?;
    let (tx, rx) = mpsc::sync_channel::<Msg>(4);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let reader_tx = tx.clone();
    std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || reader(inputs, reader_tx, free_rx))
        .context("cannot start the reader thread")?;
    if let Some(stop) = stop {
        std::thread::Builder::new()
            .name("stop".into())
            .spawn(move || {
                if stop.recv().is_ok() {
                    let _ = tx.send(Msg::Stop);
                }
            })
            .context("cannot start the stop thread")?;
    } else {
        drop(tx);
    }

    let processor = &mut config.processor;
    let structured = processor.is_structured();
    let mut splitter = LineSplitter::new(config.max_line_bytes, config.long_lines);
    let mut out: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + CHUNK);
    // When the oldest unwritten output was produced.
    let mut pending_since: Option<Instant> = None;
    let interval = config.flush_interval;
    let flush = |out: &mut Vec<u8>, output: &mut Output, since: &mut Option<Instant>| -> io::Result<()> {
        output.write(out)?;
        out.clear();
        *since = None;
        Ok(())
    };
    loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => {
                // The input is idle: write what we have, then wait.
                flush(&mut out, &mut output, &mut pending_since)?;
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match msg {
            Msg::Data(buf, n) => {
                splitter.feed(&buf[..n], |line| processor.line(line, &mut out));
                let _ = free_tx.send(buf);
                if !out.is_empty() && pending_since.is_none() {
                    pending_since = Some(Instant::now());
                }
                if out.len() >= FLUSH_BYTES || pending_since.is_some_and(|t| t.elapsed() >= interval) {
                    flush(&mut out, &mut output, &mut pending_since)?;
                }
            }
            Msg::End { last } => {
                if let Some(line) = splitter.finish() {
                    let before = out.len();
                    processor.line(&line, &mut out);
                    // sed writes a last line without its missing newline.
                    if last && !structured && out.len() > before && out.last() == Some(&b'\n') {
                        out.pop();
                    }
                }
                if last {
                    break;
                }
            }
            Msg::Failed(err) => {
                flush(&mut out, &mut output, &mut pending_since)?;
                return Err(err);
            }
            Msg::Stop => break,
        }
    }
    flush(&mut out, &mut output, &mut pending_since)?;
    let stats = processor.stats;
    tracing::debug!(
        lines_in = stats.lines_in,
        lines_out = stats.lines_out,
        filtered = stats.filtered,
        long_lines = splitter.long_lines,
        "Done."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, policy: LongLines, chunks: &[&[u8]]) -> (Vec<String>, Option<String>, u64) {
        let mut s = LineSplitter::new(max, policy);
        let mut lines = Vec::new();
        for c in chunks {
            s.feed(c, |l| lines.push(String::from_utf8_lossy(l).into_owned()));
        }
        let rest = s.finish().map(|r| String::from_utf8_lossy(&r).into_owned());
        (lines, rest, s.long_lines)
    }

    #[test]
    fn lines_spanning_chunks_are_joined() {
        let (lines, rest, long) = split(100, LongLines::Split, &[b"ab", b"c\nde", b"f\n\ngh"]);
        assert_eq!(lines, ["abc", "def", ""]);
        assert_eq!(rest.as_deref(), Some("gh"));
        assert_eq!(long, 0);
    }

    #[test]
    fn long_lines_are_split_or_truncated_and_counted() {
        let (lines, rest, long) = split(4, LongLines::Split, &[b"abcdefghij\nxy", b"z12345\n"]);
        assert_eq!(lines, ["abcd", "efgh", "ij", "xyz1", "2345"]);
        assert_eq!(rest, None);
        assert_eq!(long, 2);
        // A long line across many chunks counts once.
        let (lines, _, long) = split(2, LongLines::Split, &[b"ab", b"cd", b"ef", b"g\n"]);
        assert_eq!(lines, ["ab", "cd", "ef", "g"]);
        assert_eq!(long, 1);
        let (lines, _, long) = split(4, LongLines::Truncate, &[b"abcdefghij\nxy", b"z12345\nok\n"]);
        assert_eq!(lines, ["abcd", "xyz1", "ok"]);
        assert_eq!(long, 2);
        // Exactly the maximum is not long.
        let (lines, _, long) = split(4, LongLines::Split, &[b"ab", b"cd", b"\n"]);
        assert_eq!(lines, ["abcd"]);
        assert_eq!(long, 0);
    }
}
