//! inotify as a latency hint: a small task on the caller's Tokio runtime
//! reads inotify events for the pattern directories and wakes the tailer
//! thread. It never decides anything: stat and readdir remain the source of
//! truth, and without inotify (unavailable, out of watches, queue overflow)
//! the tailer simply polls.
//!
//! After each wake-up the task sleeps for `notify_delay` before reading
//! again; meanwhile the kernel merges repeated `IN_MODIFY` events of the
//! same file, so an app writing 50k lines/s costs a few hundred event
//! reads per second, not 50k.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use crate::batch::Signal;

/// What the tailer thread shares with the inotify task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hints {
    /// A wake-up is queued already (coalesces bursts).
    pub(crate) wake_pending: Arc<AtomicBool>,
    /// A directory changed (create, delete, rename) or events were lost:
    /// re-scan the patterns before the next poll tick.
    pub(crate) scan_needed: Arc<AtomicBool>,
}

impl Hints {
    fn wake(&self, tx: &Sender<Signal>) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = tx.send(Signal::Wake);
        }
    }
}

/// The tailer thread's handle for adding and removing watches.
pub(crate) struct Watcher {
    watches: Watches,
}

impl Watcher {
    /// Starts the inotify task on the current Tokio runtime; it stops when
    /// `token` is cancelled. Fails when inotify or the runtime's I/O driver
    /// is unavailable.
    pub(crate) fn start(
        token: CancellationToken,
        delay: Duration,
        tx: Sender<Signal>,
        hints: Hints,
    ) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let fd = register(inotify)?;
        tokio::spawn(async move {
            token.run_until_cancelled(listen(fd, delay, tx, hints)).await;
        });
        Ok(Self { watches })
    }

    /// Watches directory `dir` for new, removed, renamed and modified files.
    pub(crate) fn watch(&mut self, dir: &Path) -> io::Result<WatchDescriptor> {
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        self.watches.add(dir, mask)
    }

    pub(crate) fn unwatch(&mut self, wd: WatchDescriptor) {
        let _ = self.watches.remove(wd);
    }
}

/// Registers the inotify descriptor with the runtime's reactor.
#[allow(unsafe_code)]
fn register(inotify: Inotify) -> io::Result<AsyncFd<Inotify>> {
    // SAFETY: `Inotify` owns its descriptor (shared only with the `Watches`
    // handle, which keeps it open too), so the descriptor stays open and
    // `as_raw_fd` returns the same one for as long as the `AsyncFd` lives.
    unsafe { AsyncFd::register_with_interest(inotify, tokio::io::Interest::READABLE) }.map_err(io::Error::from)
}

async fn listen(mut fd: AsyncFd<Inotify>, delay: Duration, tx: Sender<Signal>, hints: Hints) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(mut guard) = fd.readable_mut().await else { break };
        let read = guard.try_io(|inner| {
            let mut rescan = false;
            for ev in inner.get_mut().read_events(&mut buf)? {
                if ev.mask != EventMask::MODIFY {
                    rescan = true;
                }
            }
            Ok(rescan)
        });
        match read {
            Ok(Ok(rescan)) => {
                if rescan {
                    hints.scan_needed.store(true, Ordering::Release);
                }
                hints.wake(&tx);
                tokio::time::sleep(delay).await;
            }
            Ok(Err(_)) => break,
            Err(_would_block) => {}
        }
    }
    // inotify broke: polling carries on alone.
    hints.scan_needed.store(true, Ordering::Release);
    hints.wake(&tx);
}
