//! podkit-tailer: follows log files through every kind of rotation, with
//! checkpoints that advance only when the consumer acknowledges delivery.
//!
//! Shared by `log-shipper` and `tail-rewrite`. It knows nothing of HTTP or
//! regular expressions: it turns files into [`Batch`]es of [`Line`]s.
//!
//! # Guarantees
//!
//! - **At least once, in order per file.** Every line is delivered at least
//!   once, in file order. A batch's offsets reach the checkpoint only after
//!   [`Batch::ack`]; a crash replays at most the unacknowledged batches and
//!   never skips data. After a clean shutdown (all batches acknowledged) a
//!   restart delivers nothing twice.
//! - **Rotation.** Files are identified by device, inode and a fingerprint of
//!   their first bytes, not by name. Rename rotation (`app.log` →
//!   `app.log.1`, new `app.log`): the old file stays open and is read to its
//!   end, including lines the app still writes to it, and released once it
//!   has not grown for [`TailerConfig::rotate_wait`]; the new file is read
//!   from its head. Copytruncate: a file that shrank or whose first bytes
//!   changed is read again from its head; NUL padding is skipped. Deleted
//!   files are read to their end and closed, so their space is freed.
//! - **Backpressure.** The batch channel is bounded; when it is full the
//!   tailer stops reading and the file on disk is the buffer.
//! - **Lines are bytes.** `\n` and `\r\n` end lines; invalid UTF-8 passes
//!   through untouched; long lines are split or truncated
//!   ([`TailerConfig::max_line_bytes`], [`LongLines`]) and counted, never
//!   stalled on; an incomplete last line is delivered after
//!   [`TailerConfig::partial_flush_after`] ([`LineKind::Partial`]).
//!
//! Discovery polls (stat and readdir every [`TailerConfig::poll_interval`]);
//! inotify, when available, only wakes the tailer sooner. Once the first scan
//! has opened the files, [`TailerEvents::started`] is reported (before any
//! batch): binaries report ready and log that they are following then. A
//! rotated file is found again after a restart by the path the checkpoint
//! recorded, which follows it when it is renamed again (`app.log.1` →
//! `app.log.2`).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use podkit_tailer::{NoopEvents, Tailer, TailerConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("app.log"), "hello\nworld\n")?;
//! # let logs = dir.path().display();
//! let mut config = TailerConfig::new([format!("{logs}/*.log")]);
//! config.state_dir = Some(dir.path().join("state")); // e.g. --state-dir
//! config.name = "tail-rewrite".into();
//! let (tailer, mut batches) = Tailer::new(config, Arc::new(NoopEvents))?; // errors: exit 64
//!
//! let shutdown = CancellationToken::new();
//! let task = tokio::spawn(tailer.run(shutdown.clone()));
//!
//! let mut seen = Vec::new();
//! while let Some(batch) = batches.recv().await {
//!     for line in batch.lines() {
//!         seen.push(String::from_utf8_lossy(line.bytes).into_owned());
//!     }
//!     batch.ack(); // after the sink accepted the lines
//!     # if seen.len() == 2 { shutdown.cancel(); }
//! }
//! task.await??; // the final checkpoint is written before `run` returns
//! assert_eq!(seen, ["hello", "world"]);
//! # Ok(())
//! # }
//! ```

mod batch;
mod checkpoint;
mod config;
mod error;
mod events;
mod follow;
mod framing;
mod paths;
mod watch;

pub use batch::{AckToken, Batch, FileInfo, Line, LineKind};
pub use config::{LongLines, StartAt, TailerConfig};
pub use error::TailerError;
pub use events::{NoopEvents, TailerEvents};
pub use follow::Tailer;
pub use tokio_util::sync::CancellationToken;
