//! Reading: a round of bounded reads over the open files, the `fstat` check
//! that notices growth and truncation, framing into lines and batches, and
//! releasing files that went idle after a rotation or deletion.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::Instant;

use bytes::BytesMut;
use tracing::{debug, warn};

use super::{Closed, Engine, READS_PER_ROUND, Reach, Tracked};
use crate::batch::{AckToken, Batch};
use crate::checkpoint::Fingerprint;
use crate::framing::{FrameStats, LineMeta};

impl Engine {
    /// One pass over every open file; returns whether anything was read.
    pub(super) fn read_round(&mut self) -> Result<bool, Closed> {
        let mut progressed = false;
        for i in 0..self.files.len() {
            self.check(i)?;
            for _ in 0..READS_PER_ROUND {
                if !self.read_once(i)? {
                    break;
                }
                progressed = true;
            }
        }
        Ok(progressed)
    }

    /// Detects truncation (size below our position, or the first bytes
    /// changed) and deletion, and grows a short fingerprint.
    pub(super) fn check(&mut self, i: usize) -> Result<(), Closed> {
        let t = &mut self.files[i];
        let meta = match t.file.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.file_error(i, &e);
                return Ok(());
            }
        };
        let size = meta.len();
        t.size = size;
        if meta.nlink() == 0 && t.reach != Reach::Deleted {
            t.reach = Reach::Deleted;
            debug!(path = %t.info.path.display(), "File deleted.");
            self.events.file_deleted(&t.info);
        }
        let rewritten = size < t.read_pos || !t.fp.matches(&t.file).unwrap_or(true);
        if rewritten {
            let old = t.read_pos;
            debug!(path = %t.info.path.display(), offset = old, size, "File truncated; reading from its start.");
            self.events.file_truncated(&t.info, old);
            self.flush_partial(i)?;
            let t = &mut self.files[i];
            t.read_pos = 0;
            t.buf.clear();
            t.framer.reset();
            t.partial_since = None;
            t.fp = Fingerprint::of(&t.file).unwrap_or_default();
            let book = self.books.get_mut(&t.id).expect("every open file has a book");
            book.progress.restart();
            book.fp = t.fp;
            self.dirty = true;
        } else if t.fp.is_short()
            && size > u64::from(t.fp.len)
            && let Ok(fp) = Fingerprint::of(&t.file)
        {
            t.fp = fp;
            self.books.get_mut(&t.id).expect("every open file has a book").fp = fp;
            self.dirty = true;
        }
        Ok(())
    }

    pub(super) fn file_error(&mut self, i: usize, e: &io::Error) {
        let t = &mut self.files[i];
        if !t.failing {
            t.failing = true;
            warn!(path = %t.info.path.display(), error = %e, "Cannot read file; will retry.");
            self.events.file_error(&t.info.path, e);
        }
    }

    /// One `read(2)` of what the last check saw; sends the complete lines.
    /// Returns whether data was read.
    pub(super) fn read_once(&mut self, i: usize) -> Result<bool, Closed> {
        let t = &mut self.files[i];
        if t.read_pos >= t.size {
            t.at_eof = true;
            return Ok(false);
        }
        let want = (t.size - t.read_pos).min(self.cfg.read_bytes as u64) as usize;
        let old = t.buf.len();
        t.buf.resize(old + want, 0);
        let n = loop {
            match t.file.read_at(&mut t.buf[old..], t.read_pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    t.buf.truncate(old);
                    self.file_error(i, &e);
                    return Ok(false);
                }
            }
        };
        t.buf.truncate(old + n);
        t.failing = false;
        if n == 0 {
            t.size = t.read_pos;
            t.at_eof = true;
            return Ok(false);
        }
        // Copytruncate race: if the file was truncated and rewritten before
        // this read, its first bytes changed and what was read belongs to the
        // new content. Checking after the read makes the bytes trustworthy:
        // they were read while the file was still the one we knew.
        if !t.fp.matches(&t.file).unwrap_or(true) {
            t.buf.truncate(old);
            self.check(i)?;
            return Ok(true);
        }
        let now = Instant::now();
        t.read_pos += n as u64;
        t.at_eof = false;
        t.last_growth = now;
        let mut lines = Vec::new();
        let consumed = t.framer.frame(&t.buf, &mut lines);
        t.partial_since = match (t.buf.len() > consumed, t.partial_since) {
            (false, _) => None,
            (true, Some(since)) if consumed == 0 => Some(since),
            (true, _) => Some(now),
        };
        self.emit(i, consumed, lines)?;
        Ok(true)
    }

    /// Sends `lines` (framed from the first `consumed` bytes of the file's
    /// buffer) as one batch; ranges without lines are acknowledged at once.
    pub(super) fn emit(&mut self, i: usize, consumed: usize, lines: Vec<LineMeta>) -> Result<(), Closed> {
        let t = &mut self.files[i];
        let stats = std::mem::take(&mut t.framer.stats);
        if stats != FrameStats::default() {
            if stats.too_long > 0 {
                debug!(path = %t.info.path.display(), count = stats.too_long, "Lines longer than the limit.");
                self.events.lines_too_long(&t.info, stats.too_long);
            }
            if stats.nul_skipped > 0 {
                self.events.nul_bytes_skipped(&t.info, stats.nul_skipped);
            }
        }
        if consumed == 0 {
            return Ok(());
        }
        let start = t.read_pos - t.buf.len() as u64;
        let end = start + consumed as u64;
        let data = t.buf.split_to(consumed).freeze();
        // Do not let the incomplete line pin the whole read buffer (shared
        // with the batch) while the file is idle.
        t.buf = if t.buf.is_empty() {
            BytesMut::new()
        } else {
            BytesMut::from(&t.buf[..])
        };
        let book = self.books.get_mut(&t.id).expect("every open file has a book");
        if lines.is_empty() {
            if book.progress.ack(book.progress.generation, start, end) {
                self.dirty = true;
            }
            return Ok(());
        }
        let count = lines.len() as u64;
        self.events.batch_read(&t.info, consumed as u64, count);
        book.progress.inflight += 1;
        let token = AckToken::new(self.sig_tx.clone(), t.id, book.progress.generation, start..end, count);
        // Caught up: everything the last check saw is read and sent.
        let at_eof = t.read_pos >= t.size && t.buf.is_empty();
        let batch = Batch::new(t.info.clone(), data, lines, start, at_eof, token);
        let Some(tx) = &self.tx else { return Err(Closed) };
        if tx.blocking_send(batch).is_err() {
            self.tx = None;
            return Err(Closed);
        }
        Ok(())
    }

    /// Delivers the incomplete last line of file `i`, if any.
    pub(super) fn flush_partial(&mut self, i: usize) -> Result<(), Closed> {
        let t = &mut self.files[i];
        t.partial_since = None;
        if t.buf.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        let consumed = t.framer.flush(&t.buf, &mut lines);
        self.emit(i, consumed, lines)
    }

    /// Delivers incomplete last lines held longer than `partial_flush_after`
    /// in files with nothing more to read.
    pub(super) fn flush_stale_partials(&mut self) -> Result<(), Closed> {
        for i in 0..self.files.len() {
            let t = &self.files[i];
            if t.at_eof
                && t.partial_since
                    .is_some_and(|s| s.elapsed() >= self.cfg.partial_flush_after)
            {
                self.flush_partial(i)?;
            }
        }
        Ok(())
    }

    /// Closes rotated and deleted files that were read to their end and did
    /// not grow for `rotate_wait`.
    pub(super) fn release_idle(&mut self) -> Result<(), Closed> {
        let mut i = 0;
        while i < self.files.len() {
            let t = &self.files[i];
            if t.reach == Reach::Followed || !t.at_eof || t.last_growth.elapsed() < self.cfg.rotate_wait {
                i += 1;
                continue;
            }
            // One last look: it may have grown since the last read.
            self.check(i)?;
            if self.read_once(i)? {
                i += 1;
                continue;
            }
            self.flush_partial(i)?;
            if self.files[i].reach == Reach::Rotated {
                self.locate_rotated(i);
            }
            let Tracked {
                id,
                key,
                file,
                info,
                read_pos,
                reach,
                ..
            } = self.files.swap_remove(i);
            drop(file); // Frees a deleted file's space now.
            self.by_key.remove(&key);
            debug!(path = %info.path.display(), offset = read_pos, "Released rotated file.");
            self.events.file_released(&info, read_pos);
            if let Some(book) = self.books.get_mut(&id) {
                book.released = true;
                book.keep_unacked = reach == Reach::Rotated;
                book.end = read_pos;
                if book.settled() {
                    self.books.remove(&id);
                }
            }
            self.dirty = true;
        }
        Ok(())
    }
}
