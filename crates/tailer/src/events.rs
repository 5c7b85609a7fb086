//! [`TailerEvents`]: how the tailer reports what it does, so that each binary
//! decides how to expose it (metrics, logs, or nothing).

use std::io;
use std::path::Path;

use crate::FileInfo;

/// Receives the tailer's events. Every method has an empty default; implement
/// the ones you need. Methods are called from the tailer's own thread, so
/// keep them cheap (bump a counter) and never block.
///
/// File events carry the [`FileInfo`] (path as followed, device, inode);
/// `batch_read` is called once per batch, never per line.
#[allow(unused_variables)]
pub trait TailerEvents: Send + Sync + 'static {
    /// The first scan is done: every file the patterns name (and every
    /// rotated file found again through the checkpoint) is open, at the
    /// position it will be read from; `files` is how many. Called once per
    /// [`Tailer::run`](crate::Tailer::run), before any batch is sent. A file
    /// renamed away after this is followed through its rotation, so this is
    /// the moment to report ready (`/readyz`) and log that following began.
    fn started(&self, files: usize) {}
    /// A file is followed from `offset`; `resumed` says the offset came from
    /// the checkpoint.
    fn file_added(&self, file: &FileInfo, offset: u64, resumed: bool) {}
    /// A followed file was renamed. `to` is its new name if the tailer knows
    /// it; the file is still read (to its end, then released after
    /// `rotate_wait` without growth, unless the new name is followed too).
    /// Called again if a rotated file is renamed again (`app.log.1` →
    /// `app.log.2`) while it is still open.
    fn file_rotated(&self, file: &FileInfo, to: Option<&Path>) {}
    /// A followed file was deleted; it is read to its end and then released.
    fn file_deleted(&self, file: &FileInfo) {}
    /// A followed file shrank or was rewritten (copytruncate); reading
    /// restarts at its head. `offset` is where the tailer had read to.
    fn file_truncated(&self, file: &FileInfo, offset: u64) {}
    /// A rotated or deleted file was closed; `offset` is where reading ended.
    fn file_released(&self, file: &FileInfo, offset: u64) {}
    /// A file could not be opened, stat'ed or read (it is retried).
    fn file_error(&self, path: &Path, error: &io::Error) {}
    /// `count` lines longer than `max_line_bytes` were split or truncated.
    fn lines_too_long(&self, file: &FileInfo, count: u64) {}
    /// `bytes` of NUL padding (from a copytruncate) were skipped.
    fn nul_bytes_skipped(&self, file: &FileInfo, bytes: u64) {}
    /// A batch was read: `bytes` bytes (terminators included) in `lines` lines.
    fn batch_read(&self, file: &FileInfo, bytes: u64, lines: u64) {}
    /// A batch was dropped without being acknowledged; its lines will be read
    /// again after a restart.
    fn batch_not_acked(&self, file: &FileInfo, lines: u64) {}
    /// The checkpoint file was written with `files` entries.
    fn checkpoint_written(&self, files: usize) {}
    /// Writing the checkpoint file failed (retried at the next interval).
    fn checkpoint_failed(&self, error: &io::Error) {}
    /// inotify cannot be used; the tailer relies on polling alone.
    fn notify_unavailable(&self, reason: &str) {}
}

/// Events that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopEvents;

impl TailerEvents for NoopEvents {}
