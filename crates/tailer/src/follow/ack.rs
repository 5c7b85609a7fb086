//! Acknowledgements and the checkpoint: an [`AckToken`](crate::AckToken)'s
//! answer advances (or not) a file's committed offset, and committed offsets
//! are written to the checkpoint file at most every interval.

use std::collections::HashSet;
use std::time::Instant;

use tracing::warn;

use super::Engine;
use crate::batch::{AckMsg, Signal};
use crate::checkpoint::Entry;

impl Engine {
    pub(super) fn drain_signals(&mut self) {
        while let Ok(sig) = self.sig_rx.try_recv() {
            self.on_signal(sig);
        }
    }

    pub(super) fn on_signal(&mut self, sig: Signal) {
        match sig {
            Signal::Ack(msg) => self.on_ack(msg),
            Signal::Split { book } => {
                if let Some(book) = self.books.get_mut(&book) {
                    book.progress.inflight += 1;
                }
            }
            Signal::Wake => {}
        }
    }

    pub(super) fn on_ack(&mut self, m: AckMsg) {
        let Some(book) = self.books.get_mut(&m.book) else {
            return;
        };
        book.progress.inflight = book.progress.inflight.saturating_sub(1);
        if m.acked {
            if book.progress.ack(m.generation, m.start, m.end) {
                self.dirty = true;
            }
        } else {
            self.events.batch_not_acked(&book.info, m.lines);
        }
        if book.settled() {
            self.books.remove(&m.book);
            self.dirty = true;
        }
    }

    pub(super) fn maybe_checkpoint(&mut self, force: bool) {
        let Some(store) = &self.store else { return };
        if !self.dirty || (!force && self.last_checkpoint.elapsed() < self.cfg.checkpoint_interval) {
            return;
        }
        self.last_checkpoint = Instant::now();
        // The open file wins over a released one with the same (reused) inode.
        let live: HashSet<u64> = self.by_key.values().copied().collect();
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.books.len());
        let mut ids: Vec<&u64> = self.books.keys().collect();
        ids.sort_by_key(|id| (!live.contains(id), **id));
        for id in ids {
            let b = &self.books[id];
            if seen.insert((b.dev, b.ino)) {
                entries.push(Entry::new(b.dev, b.ino, b.fp, b.progress.committed, b.path.clone()));
            }
        }
        entries.extend(self.entries.iter().filter(|e| seen.insert((e.dev, e.ino))).cloned());
        match store.write(&entries) {
            Ok(()) => {
                self.dirty = false;
                self.events.checkpoint_written(entries.len());
            }
            Err(e) => {
                warn!(path = %store.path().display(), error = %e, "Cannot write checkpoint; will retry.");
                self.events.checkpoint_failed(&e);
            }
        }
    }
}
