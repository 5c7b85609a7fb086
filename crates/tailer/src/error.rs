//! [`TailerError`]: everything that stops a tailer from starting or running.

use std::io;
use std::path::PathBuf;

/// Why a [`Tailer`](crate::Tailer) could not start or had to stop.
///
/// Everything except [`TailerError::Io`] is a configuration problem: the
/// binaries map those to exit code 64 (see [`TailerError::is_config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailerError {
    /// A configuration field has a value the tailer cannot use.
    #[error("invalid tailer setting {field}: {reason}")]
    Config {
        /// The [`TailerConfig`](crate::TailerConfig) field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid path pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The state directory cannot be created or written.
    #[error("state directory {} is not writable: {source}", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process holds this follower's checkpoint lock.
    #[error("checkpoint {} is in use by another process (lock file {})", checkpoint.display(), lock.display())]
    StateLocked {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The lock file held by the other process.
        lock: PathBuf,
    },
    /// The checkpoint file exists but cannot be read or understood. Remove it
    /// to start over (files are then read from [`StartAt`](crate::StartAt)).
    #[error("checkpoint file {} is unreadable: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O failure while running (not a configuration problem).
    #[error("tailer failed: {0}")]
    Io(#[from] io::Error),
}

impl TailerError {
    /// Whether this is a configuration problem (exit 64) rather than a
    /// runtime failure.
    pub fn is_config(&self) -> bool {
        !matches!(self, TailerError::Io(_))
    }
}
