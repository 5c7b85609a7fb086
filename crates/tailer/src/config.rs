//! [`TailerConfig`]: what to follow and how, with defaults that suit a sidecar.

use std::path::PathBuf;
use std::time::Duration;

use crate::TailerError;

/// Where to start reading a file the tailer has no checkpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// From the first byte (the default: a sidecar starts before its app, so
    /// nothing may be missed).
    #[default]
    Head,
    /// From the end, after the last complete line. Applies only to files that
    /// exist when the tailer starts; files that appear later are always read
    /// from their head (they are new, e.g. the fresh file after a rotation).
    Tail,
}

/// What to do with a line longer than [`TailerConfig::max_line_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongLines {
    /// Deliver it in pieces of `max_line_bytes` ([`LineKind::Split`](crate::LineKind::Split)),
    /// the last piece as an ordinary line. Nothing is lost.
    #[default]
    Split,
    /// Deliver the first `max_line_bytes` ([`LineKind::Truncated`](crate::LineKind::Truncated))
    /// and drop the rest of the line.
    Truncate,
}

/// Configuration of a [`Tailer`](crate::Tailer).
///
/// Build it with [`TailerConfig::new`] and adjust the public fields; new
/// fields may be added in later versions (hence `#[non_exhaustive]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TailerConfig {
    /// Files to follow: plain paths or glob patterns (`/var/log/app/*.log`,
    /// `/var/log/**/*.log`; `*` does not cross `/`). Relative paths are
    /// resolved against the current directory when the tailer is created.
    pub include: Vec<String>,
    /// Patterns of files never to follow, e.g. `*.gz`. A pattern without a
    /// `/` is matched against the file name, otherwise against the full path.
    pub exclude: Vec<String>,
    /// Directory for the checkpoint file; `None` runs without checkpoints
    /// (every start then begins at [`start_at`](Self::start_at)).
    pub state_dir: Option<PathBuf>,
    /// Name of this follower's checkpoint in `state_dir`:
    /// `<name>.checkpoint.json` (plus `<name>.lock`). Two followers of the
    /// same files in one pod (e.g. log-shipper and tail-rewrite) use
    /// different names. Default `tailer`.
    pub name: String,
    /// Where to start in files without a checkpoint. Default [`StartAt::Head`].
    pub start_at: StartAt,
    /// Longest line delivered in one piece, terminator excluded. Default 256 KiB.
    pub max_line_bytes: usize,
    /// What happens to longer lines. Default [`LongLines::Split`].
    pub long_lines: LongLines,
    /// How long an incomplete last line (no `\n` yet) is held before it is
    /// delivered as [`LineKind::Partial`](crate::LineKind::Partial). Default 1 s.
    pub partial_flush_after: Duration,
    /// How often files are stat'ed and globs re-scanned. This is the source
    /// of truth; inotify only wakes the tailer earlier. Default 250 ms.
    pub poll_interval: Duration,
    /// How long a file that was rotated away (renamed out of the followed
    /// paths, or deleted) is kept open after its last growth, so that lines
    /// the app still writes to it are read. Default 5 s.
    pub rotate_wait: Duration,
    /// How often acknowledged offsets are written to the checkpoint file
    /// (when they changed). Default 1 s.
    pub checkpoint_interval: Duration,
    /// Capacity of the batch channel, in batches. Default 16.
    pub channel_capacity: usize,
    /// Bytes read per `read(2)`; each batch holds the lines of one read.
    /// Default 64 KiB.
    pub read_bytes: usize,
    /// Use inotify as a latency hint. Default `true`; without it (or when
    /// inotify is unavailable) the tailer polls.
    pub use_notify: bool,
    /// On shutdown, read every open file to its end and deliver the rest
    /// (including incomplete last lines) before closing the channel.
    /// Default `true`.
    pub drain_on_shutdown: bool,
}

impl TailerConfig {
    /// A configuration following `include` with every default.
    pub fn new<I, S>(include: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            include: include.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
            state_dir: None,
            name: "tailer".to_owned(),
            start_at: StartAt::Head,
            max_line_bytes: 256 * 1024,
            long_lines: LongLines::Split,
            partial_flush_after: Duration::from_secs(1),
            poll_interval: Duration::from_millis(250),
            rotate_wait: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            channel_capacity: 16,
            read_bytes: 64 * 1024,
            use_notify: true,
            drain_on_shutdown: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), TailerError> {
        let bad = |field: &'static str, reason: &str| {
            Err(TailerError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.include.is_empty() {
            return bad("include", "no paths to follow");
        }
        if self.max_line_bytes == 0 || self.max_line_bytes > 1 << 30 {
            return bad("max_line_bytes", "must be between 1 byte and 1 GiB");
        }
        if self.read_bytes < 512 || self.read_bytes > 64 << 20 {
            return bad("read_bytes", "must be between 512 bytes and 64 MiB");
        }
        if self.channel_capacity == 0 {
            return bad("channel_capacity", "must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval", "must be greater than zero");
        }
        if self.checkpoint_interval.is_zero() {
            return bad("checkpoint_interval", "must be greater than zero");
        }
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.name.starts_with('.');
        if !name_ok {
            return bad(
                "name",
                "must be non-empty ASCII letters, digits, '-', '_' or '.' and not start with '.'",
            );
        }
        Ok(())
    }
}
