//! Live reload of the `--config` file in follow mode (the watching, parsing,
//! metrics and `/readyz` notes are the runtime's `reload`).
//!
//! Applied live: everything the per-line [`Processor`] is built from (the
//! sed script: `expression`, `file`, `regexp-extended`, `quiet`; the
//! filters `include`, `exclude`; the output format: `format`, `parse`,
//! `unparsed`, `message-key`, `timestamp*`, `field`, `field-from-env`) and
//! `flush-interval`. The new processor takes over between two tailer
//! batches, so a line is always rewritten whole by one version of the
//! rules; sed's hold space starts empty with it.
//!
//! Needing a restart ([`RESTART_KEYS`]): what the tailer and the output
//! were opened with (`follow`, `follow-exclude`, `state-dir`,
//! `no-checkpoint`, `max-line-bytes`, `long-lines`, `output`,
//! `output-max-size`, `output-keep`, `once`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use podkit_record::Target;
use podkit_runtime::Context;

use crate::pipeline::Processor;
use crate::{Args, BINARY, Config, Input, LongLines};

/// Keys of the config file that only a restart applies.
pub const RESTART_KEYS: &[&str] = &[
    "follow",
    "follow-exclude",
    "state-dir",
    "no-checkpoint",
    "max-line-bytes",
    "long-lines",
    "output",
    "output-max-size",
    "output-keep",
    "once",
];

/// The settings a reload changes in the running loop.
#[derive(Debug)]
pub struct Live {
    /// Filters, rules and format.
    pub processor: Processor,
    /// Longest wait of a line in the output buffer.
    pub flush_interval: Duration,
}

/// The newest accepted config, waiting for the follow loop to take it
/// between two batches (a newer one replaces one not taken yet).
#[derive(Debug, Clone, Default)]
pub struct Reloads {
    slot: Arc<Mutex<Option<Live>>>,
}

impl Reloads {
    /// The settings accepted since the last call, if any.
    pub fn take(&self) -> Option<Live> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// What the tailer and the output were opened with.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    input: Input,
    output: Target,
    max_line_bytes: usize,
    long_lines: LongLines,
}

impl Fixed {
    fn of(config: &Config) -> Self {
        Self {
            input: config.input.clone(),
            output: config.output.clone(),
            max_line_bytes: config.max_line_bytes,
            long_lines: config.long_lines,
        }
    }
}

/// Watches the `--config` file, if the process was started with one, and
/// hands each accepted version to the follow loop through the returned
/// [`Reloads`].
pub fn spawn(config: &Config, ctx: &Context) -> Reloads {
    let reloads = Reloads::default();
    let slot = Arc::clone(&reloads.slot);
    let running = Fixed::of(config);
    podkit_runtime::reload::spawn::<Args, Config>(ctx, BINARY.admin_default, Config::from_args, move |change| {
        let restart = if Fixed::of(&change.config) == running {
            Vec::new()
        } else {
            change.changed_among(RESTART_KEYS)
        };
        let live = Live {
            processor: change.config.processor,
            flush_interval: change.config.flush_interval,
        };
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(live);
        restart
    });
    reloads
}
