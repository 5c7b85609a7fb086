//! What the consumer receives: [`Batch`]es of [`Line`]s, each batch carrying
//! the [`AckToken`] that lets its offsets reach the checkpoint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use bytes::Bytes;

use crate::framing::LineMeta;

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// An ordinary line: it ended with `\n` (or `\r\n`), which is not included.
    Complete,
    /// An incomplete last line delivered without its `\n`, because it stayed
    /// incomplete for `partial_flush_after`, or at shutdown, truncation or
    /// release. If the app later completes it, the rest arrives as another line.
    Partial,
    /// A `max_line_bytes` piece of a longer line; the next line of the same
    /// file continues it (the last piece is `Complete` or `Partial`).
    Split,
    /// The first `max_line_bytes` of a longer line whose rest was dropped.
    Truncated,
}

/// The file a batch was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its path when the batch was read (a rotated file keeps its old name
    /// unless the tailer follows its new one).
    pub path: PathBuf,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// One line, borrowed from its [`Batch`].
#[derive(Clone, Copy)]
pub struct Line<'a> {
    /// The line's bytes without its terminator; not necessarily UTF-8.
    pub bytes: &'a [u8],
    /// How it ended.
    pub kind: LineKind,
    /// Byte offset of its first byte in the file.
    pub offset: u64,
    data: &'a Bytes,
}

impl Line<'_> {
    /// The line as a `Bytes` sharing the batch's buffer (no copy), to keep it
    /// beyond the batch.
    pub fn to_bytes(&self) -> Bytes {
        self.data.slice_ref(self.bytes)
    }
}

impl fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("bytes", &String::from_utf8_lossy(self.bytes))
            .field("kind", &self.kind)
            .field("offset", &self.offset)
            .finish()
    }
}

/// Lines read from one file in one go, in file order.
///
/// Deliver the lines, then call [`Batch::ack`] (or keep the [`AckToken`]
/// from [`Batch::into_ack`] until your sink accepted them). Only acknowledged
/// batches advance the checkpoint; a batch dropped without an ack is read
/// again after a restart. Acks may come in any order: the checkpoint of a
/// file advances over the longest acknowledged prefix.
pub struct Batch {
    file: Arc<FileInfo>,
    data: Bytes,
    lines: Vec<LineMeta>,
    /// File offset of `data[0]`.
    offset: u64,
    /// The read reached the end of the file: nothing was left to read.
    at_eof: bool,
    ack: AckToken,
}

impl Batch {
    pub(crate) fn new(
        file: Arc<FileInfo>,
        data: Bytes,
        lines: Vec<LineMeta>,
        offset: u64,
        at_eof: bool,
        ack: AckToken,
    ) -> Self {
        Self {
            file,
            data,
            lines,
            offset,
            at_eof,
            ack,
        }
    }

    /// Whether the tailer was caught up with the file when it sent this
    /// batch: its read reached the file's end and no incomplete line is
    /// held back. When `false`, more of the file follows in later batches
    /// (it was read in several reads, or is held back by backpressure);
    /// when `true`, the next batch of the file, if any, holds what was
    /// written after this one was read.
    pub fn at_eof(&self) -> bool {
        self.at_eof
    }

    /// The path of the file the lines come from.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The file the lines come from.
    pub fn file(&self) -> &FileInfo {
        &self.file
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are no lines (never true for a received batch).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The `i`-th line.
    pub fn line(&self, i: usize) -> Option<Line<'_>> {
        self.lines.get(i).map(|m| self.make(m))
    }

    /// The lines, in file order.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = Line<'_>> + DoubleEndedIterator + '_ {
        self.lines.iter().map(|m| self.make(m))
    }

    /// The file byte range this batch covers (terminators and skipped bytes
    /// included); acknowledging it lets the checkpoint move to its end.
    pub fn byte_range(&self) -> Range<u64> {
        self.ack.start..self.ack.end
    }

    /// Acknowledges delivery of every line in this batch.
    pub fn ack(self) {
        self.ack.ack();
    }

    /// Drops the lines and keeps the acknowledgement for later.
    pub fn into_ack(self) -> AckToken {
        self.ack
    }

    fn make<'a>(&'a self, m: &LineMeta) -> Line<'a> {
        Line {
            bytes: &self.data[m.start..m.end],
            kind: m.kind,
            offset: self.offset + m.start as u64,
            data: &self.data,
        }
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("path", &self.file.path)
            .field("lines", &self.lines.len())
            .field("byte_range", &self.byte_range())
            .field("at_eof", &self.at_eof)
            .finish()
    }
}

/// What the tailer thread hears from the outside.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Something may have changed on disk, or shutdown began: look now.
    Wake,
    /// A batch was acknowledged (`acked`) or dropped without an ack.
    Ack(AckMsg),
    /// An [`AckToken`] of this book was split in two: one more answer to
    /// wait for. Sent before either part can answer.
    Split { book: u64 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AckMsg {
    pub(crate) book: u64,
    pub(crate) generation: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) lines: u64,
    pub(crate) acked: bool,
}

/// The acknowledgement of one [`Batch`], detached from its lines.
///
/// Call [`AckToken::ack`] once the batch's lines are delivered. Dropping it
/// without acking means "not delivered": the checkpoint stays before it and
/// the lines are read again after a restart.
pub struct AckToken {
    tx: Sender<Signal>,
    book: u64,
    generation: u64,
    start: u64,
    end: u64,
    lines: u64,
    done: bool,
}

impl AckToken {
    pub(crate) fn new(tx: Sender<Signal>, book: u64, generation: u64, range: Range<u64>, lines: u64) -> Self {
        Self {
            tx,
            book,
            generation,
            start: range.start,
            end: range.end,
            lines,
            done: false,
        }
    }

    /// Acknowledges delivery of the batch's lines.
    pub fn ack(mut self) {
        self.send(true);
    }

    /// The file byte range this token acknowledges.
    pub fn byte_range(&self) -> Range<u64> {
        self.start..self.end
    }

    /// Splits this token at file offset `at`: `self` keeps `start..at`, the
    /// returned token covers `at..end` and `lines` of the lines. Each part is
    /// answered on its own, and the checkpoint still advances only over the
    /// acknowledged prefix of the file, so a consumer that assembles records
    /// from several lines can acknowledge exactly up to a record boundary.
    ///
    /// `at` is clamped into the token's range; a split at either end yields
    /// an empty part, which acknowledges nothing.
    pub fn split_off(&mut self, at: u64, lines: u64) -> AckToken {
        let at = at.clamp(self.start, self.end);
        let lines = lines.min(self.lines);
        // The engine hears of the new part before either part answers.
        let _ = self.tx.send(Signal::Split { book: self.book });
        let tail = AckToken::new(self.tx.clone(), self.book, self.generation, at..self.end, lines);
        self.end = at;
        self.lines -= lines;
        tail
    }

    fn send(&mut self, acked: bool) {
        if !self.done {
            self.done = true;
            let msg = AckMsg {
                book: self.book,
                generation: self.generation,
                start: self.start,
                end: self.end,
                lines: self.lines,
                acked,
            };
            // The tailer may be gone already; then there is nothing to advance.
            let _ = self.tx.send(Signal::Ack(msg));
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        self.send(false);
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("range", &(self.start..self.end))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consumers move batches and ack tokens across tasks and threads.
    #[test]
    fn batches_and_tokens_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Batch>();
        check::<AckToken>();
        check::<LineKind>();
    }

    #[test]
    fn a_split_token_answers_for_both_parts() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut head = AckToken::new(tx, 7, 0, 100..200, 10);
        let tail = head.split_off(150, 4);
        assert_eq!((head.byte_range(), tail.byte_range()), (100..150, 150..200));
        tail.ack();
        drop(head);
        let got: Vec<String> = rx.try_iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("Split { book: 7 }"), "{got:?}");
        assert!(
            got[1].contains("start: 150, end: 200, lines: 4, acked: true"),
            "{got:?}"
        );
        assert!(
            got[2].contains("start: 100, end: 150, lines: 6, acked: false"),
            "{got:?}"
        );
    }
}
