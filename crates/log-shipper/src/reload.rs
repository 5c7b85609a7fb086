//! Live reload of the `--config` file (the watching, parsing, metrics and
//! `/readyz` notes are the runtime's `reload`).
//!
//! Applied live, by each sink's encoder between two deliveries (tailer
//! batches), so every record is encoded whole with one version: the
//! sources' labels (`label`, `label-from-env`, a `[[source]]`'s labels) and
//! each sink's batch limits (`batch-max-lines`, `batch-max-bytes`,
//! `batch-timeout`). A body being filled may hold records with the old and
//! the new labels; nothing is lost or repeated, since the tailers, their
//! offsets and the sinks' queues are untouched.
//!
//! Needing a restart (logged, and in `/readyz`): anything else about a
//! source (globs, start, parsing, line limits: its tailer and checkpoint
//! were opened with them), anything else about a sink (kind, URL, headers,
//! TLS, format, retries: its transport was opened with them), sources or
//! sinks added or removed, the state directory, checkpointing and serve
//! mode.

use std::sync::Arc;

use podkit_runtime::Context;
use tokio::sync::watch;

use crate::config::{BatchLimits, SinkConfig, SinkKind, SourceConfig};
use crate::{Args, BINARY, Config};

/// What a sink's encoder takes from a reload.
#[derive(Debug, Clone)]
pub struct SinkLive {
    /// Labels per source.
    pub labels: Vec<Vec<(String, String)>>,
    /// The sink's batch limits.
    pub batch: BatchLimits,
}

/// A sink encoder's end of the reloads: the newest accepted settings, taken
/// between deliveries. Without a `--config` file nothing ever arrives.
#[derive(Debug, Clone, Default)]
pub struct SinkUpdates(Option<watch::Receiver<Arc<SinkLive>>>);

impl SinkUpdates {
    /// The settings accepted since the last call, if any.
    pub fn take(&mut self) -> Option<Arc<SinkLive>> {
        let rx = self.0.as_mut()?;
        if rx.has_changed().unwrap_or(false) {
            Some(Arc::clone(&rx.borrow_and_update()))
        } else {
            None
        }
    }
}

/// The reload's ends: one channel per sink.
#[derive(Debug)]
pub struct Reloads {
    sinks: Vec<watch::Sender<Arc<SinkLive>>>,
}

impl Reloads {
    /// One channel per sink of `config`, holding its running settings.
    pub fn new(config: &Config) -> Self {
        Self {
            sinks: live(config)
                .into_iter()
                .map(|l| watch::channel(Arc::new(l)).0)
                .collect(),
        }
    }

    /// Sink `index`'s end.
    pub fn sink(&self, index: usize) -> SinkUpdates {
        let mut rx = self.sinks[index].subscribe();
        rx.mark_unchanged();
        SinkUpdates(Some(rx))
    }

    /// Watches the `--config` file, if the process was started with one,
    /// and sends each sink its part of every accepted version.
    pub fn spawn(self, config: &Config, ctx: &Context) {
        let running = Fixed::of(config);
        podkit_runtime::reload::spawn::<Args, Config>(ctx, BINARY.admin_default, Config::from_args, move |change| {
            let mut restart = running.differences(&Fixed::of(&change.config));
            restart.extend(
                change
                    .changed_since_start
                    .iter()
                    // Serve mode is not part of `Config` here (taken by `run`);
                    // TLS client configs cannot be compared, their keys can.
                    .filter(|k| k.starts_with("serve") || k.starts_with("tls"))
                    .cloned(),
            );
            if restart.iter().any(|r| r == "sources" || r == "sinks") {
                // Indexes no longer line up: keep every running setting.
                return restart;
            }
            for (tx, live) in self.sinks.iter().zip(live(&change.config)) {
                tx.send_replace(Arc::new(live));
            }
            restart
        });
    }
}

/// Each sink's live settings in `config`.
fn live(config: &Config) -> Vec<SinkLive> {
    let labels: Vec<Vec<(String, String)>> = config.sources.iter().map(|s| s.labels.clone()).collect();
    config
        .sinks
        .iter()
        .map(|s| SinkLive {
            labels: labels.clone(),
            batch: s.batch,
        })
        .collect()
}

/// What only a restart changes, as comparable text per source and sink.
#[derive(Debug, PartialEq)]
struct Fixed {
    sources: Vec<(String, String)>,
    sinks: Vec<(String, String)>,
    state_dir: String,
    checkpoint: bool,
}

impl Fixed {
    fn of(config: &Config) -> Self {
        Self {
            sources: config.sources.iter().map(|s| (s.name.clone(), source(s))).collect(),
            sinks: config.sinks.iter().map(|s| (s.name.clone(), sink(s))).collect(),
            state_dir: format!("{:?}", config.state_dir),
            checkpoint: config.checkpoint,
        }
    }

    /// What differs, named for the log and `/readyz`.
    fn differences(&self, new: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(&self.sources) != names(&new.sources) {
            out.push("sources".to_owned());
        } else {
            for ((name, old), (_, new)) in self.sources.iter().zip(&new.sources) {
                if old != new {
                    out.push(format!("source {name}"));
                }
            }
        }
        if names(&self.sinks) != names(&new.sinks) {
            out.push("sinks".to_owned());
        } else {
            for ((name, old), (_, new)) in self.sinks.iter().zip(&new.sinks) {
                if old != new {
                    out.push(format!("sink {name}"));
                }
            }
        }
        if self.state_dir != new.state_dir {
            out.push("state-dir".to_owned());
        }
        if self.checkpoint != new.checkpoint {
            out.push("no-checkpoint".to_owned());
        }
        out
    }
}

/// A source without its labels.
fn source(s: &SourceConfig) -> String {
    let mut s = s.clone();
    s.labels.clear();
    format!("{s:?}")
}

/// A sink without its batch limits, TLS shown only as present (its client
/// config has no meaningful comparison; its files are named in the flags).
fn sink(s: &SinkConfig) -> String {
    let kind = match &s.kind {
        SinkKind::Http(h) => format!(
            "http {} {:?} {:?} {:?} tls={}",
            h.uri,
            h.headers,
            h.compression,
            h.request_timeout,
            h.tls.is_some()
        ),
        other => format!("{other:?}"),
    };
    format!(
        "{kind} {:?} {:?} {:?} {:?}",
        s.format, s.retry, s.on_reject, s.dead_letter
    )
}
