//! Live reload of a binary's `--config` file: the file is watched, and a new
//! version is parsed exactly as at start-up (flags and env still win over
//! it) and handed to the binary, which applies what it can without a
//! restart.
//!
//! **What is watched.** The file's *directory*, with `notify` (inotify),
//! non-recursively. A Kubernetes ConfigMap volume is a directory where
//! `cfg.toml -> ..data/cfg.toml` and `..data -> ..2026_12_06_…`; an update
//! writes a new timestamped directory and renames a new `..data` symlink
//! over the old one, so neither the file's inode nor its path sees an event,
//! but the directory does (`..data` moved in). Plain edits, and editors that
//! write a new file and rename it over the old one, are seen the same way.
//! Events are only a hint: they are debounced ([`DEBOUNCE`], at most
//! [`DEBOUNCE_MAX`] while they keep coming), and the file is also read every
//! [`POLL`] in case an event was missed (or inotify is unavailable). A
//! reload happens only when the file's bytes differ from the last version
//! read, so our own reads and unrelated files cause nothing.
//!
//! **What a reload does.** The process's arguments are parsed again with the
//! new file's values as defaults, then the binary's own `Config::from_args`
//! validates them. Any error rejects the new file as a whole: it is logged
//! with the message (which names the key or flag), counted, shown in
//! `/readyz` (still 200), and the running config stays. Otherwise the
//! binary's `apply` callback gets the new config plus the keys that differ
//! from the file the process started with, applies what it can live, and
//! names the settings that need a restart.
//!
//! **Settings that need a restart** (the runtime's own: `log-level`,
//! `log-format`, `admin-addr`, `grace-period`; plus whatever each binary
//! says) are logged at warn and shown in `/readyz` as
//! `config: restart required for <keys>`. Readiness stays 200: the old
//! settings keep working, and a config rollout must not take every replica
//! out of service at once. The note goes away when a later file puts those
//! settings back to their running values.
//!
//! **Metrics**: `podkit_config_reloads_total{result="applied|rejected|restart_required"}`,
//! `podkit_config_last_reload_successful` (1 or 0) and
//! `podkit_config_last_reload_success_timestamp_seconds` (start-up counts
//! as the first success). They are shared by every binary, like
//! `podkit_build_info`, so one alert covers them all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;
use tokio::sync::Notify;

use crate::Context;
use crate::cli::Cli;
use crate::config_file::{self, Value};

/// Quiet time after the last event before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Longest wait for the events to stop before the file is read anyway.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// How often the file is read whatever the events say.
pub const POLL: Duration = Duration::from_secs(5);

/// The runtime's own keys, which only a restart changes.
const COMMON_RESTART_KEYS: [&str; 4] = ["log-level", "log-format", "admin-addr", "grace-period"];

/// The readiness note naming the settings that wait for a restart.
const NOTE_RESTART: &str = "config-restart";

/// The readiness note telling that the last file was rejected.
const NOTE_REJECTED: &str = "config-rejected";

/// A validated new config, handed to the binary's `apply` callback.
#[derive(Debug)]
pub struct Change<C> {
    /// The new config, built by the binary's own `Config::from_args`.
    pub config: C,
    /// Top-level keys (with `-`, as flags are spelled) whose value in the
    /// file differs from the file the process started with. Sections such as
    /// `[[listener]]` appear under their name.
    pub changed_since_start: Vec<String>,
}

impl<C> Change<C> {
    /// The keys of `restart_only` among [`Change::changed_since_start`]: for
    /// a binary whose restart-only settings are plain keys.
    pub fn changed_among(&self, restart_only: &[&str]) -> Vec<String> {
        self.changed_since_start
            .iter()
            .filter(|k| restart_only.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// What a reload ended as (the `result` label of `podkit_config_reloads_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every change is running.
    Applied,
    /// The file was rejected; the running config stays.
    Rejected,
    /// The live settings are running; some others wait for a restart.
    RestartRequired,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::RestartRequired => "restart_required",
        }
    }
}

/// The reload metrics.
#[derive(Debug, Clone, Default)]
struct Metrics {
    reloads: Family<Vec<(String, String)>, Counter>,
    last_successful: Gauge,
    last_success_time: Gauge<f64, AtomicU64>,
}

impl Metrics {
    fn register(&self, ctx: &Context) {
        ctx.metrics.register(
            "podkit_config_reloads",
            "Reloads of the --config file, by result (applied, rejected, restart_required)",
            self.reloads.clone(),
        );
        ctx.metrics.register(
            "podkit_config_last_reload_successful",
            "1 when the last version of the --config file was accepted, 0 when it was rejected",
            self.last_successful.clone(),
        );
        ctx.metrics.register_with_unit(
            "podkit_config_last_reload_success_timestamp",
            "When a version of the --config file was last accepted (start-up included), since the Unix epoch",
            Unit::Seconds,
            self.last_success_time.clone(),
        );
        for outcome in [Outcome::Applied, Outcome::Rejected, Outcome::RestartRequired] {
            // Present at 0 from the start, so rate() and alerts see them.
            let _ = self.reloads.get_or_create(&label(outcome));
        }
        self.success();
    }

    fn count(&self, outcome: Outcome) {
        self.reloads.get_or_create(&label(outcome)).inc();
        if outcome == Outcome::Rejected {
            self.last_successful.set(0);
        } else {
            self.success();
        }
    }

    fn success(&self) {
        self.last_successful.set(1);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.last_success_time.set(now);
    }
}

fn label(outcome: Outcome) -> Vec<(String, String)> {
    vec![("result".to_owned(), outcome.label().to_owned())]
}

/// Starts watching the `--config` file the process was started with, if
/// any (returns `false` when there is none: nothing to watch).
///
/// `admin_default` is the binary's default admin address (as given to
/// [`cli::parse`](crate::cli::parse)); `build` is the binary's
/// `Config::from_args`; `apply` runs for every accepted new version and
/// returns the settings (keys, or `listener[0].listen`-style names) that it
/// could not apply live. `apply` runs on the runtime's thread and must not
/// block: hand the config to the running component through a channel.
///
/// The watch task ends when draining starts.
pub fn spawn<A, C>(
    ctx: &Context,
    admin_default: &'static str,
    build: impl Fn(A) -> anyhow::Result<C> + Send + 'static,
    apply: impl FnMut(Change<C>) -> Vec<String> + Send + 'static,
) -> bool
where
    A: Cli + 'static,
    C: 'static,
{
    let args: Vec<OsString> = std::env::args_os().collect();
    spawn_with_args(ctx, admin_default, args, build, apply)
}

/// [`spawn`] with explicit process arguments (the first is the program name).
pub fn spawn_with_args<A, C>(
    ctx: &Context,
    admin_default: &'static str,
    args: Vec<OsString>,
    build: impl Fn(A) -> anyhow::Result<C> + Send + 'static,
    apply: impl FnMut(Change<C>) -> Vec<String> + Send + 'static,
) -> bool
where
    A: Cli + 'static,
    C: 'static,
{
    let command = crate::cli::with_admin_default(A::command(), admin_default);
    let Some(path) = config_file::requested(&command, &args) else {
        return false;
    };
    let metrics = Metrics::default();
    metrics.register(ctx);
    // Watching before the baseline is read: a change from now on is seen.
    let wake = Arc::new(Notify::new());
    let watcher = watch(&path, Arc::clone(&wake));
    // What the process started with: the baseline for "changed since start".
    let bytes = std::fs::read(&path).unwrap_or_default();
    let started = config_file::values(&path).unwrap_or_default();
    let mut reloader = Reloader {
        path,
        args,
        admin_default,
        build: Box::new(build),
        apply: Box::new(apply),
        started,
        last_bytes: bytes,
        metrics,
        ctx: ctx.clone(),
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _watcher = watcher;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                () = wake.notified() => {
                    let until = tokio::time::Instant::now() + DEBOUNCE_MAX;
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(DEBOUNCE) => break,
                            () = tokio::time::sleep_until(until) => break,
                            () = wake.notified() => {}
                        }
                    }
                }
                _ = poll.tick() => {}
            }
            if ctx.shutdown.is_cancelled() {
                break;
            }
            reloader.check();
        }
    });
    true
}

/// Watches `path`'s directory; events for the file or for Kubernetes'
/// `..data` names wake the reloader. `None` (polling only) when inotify is
/// unavailable, logged.
fn watch(path: &Path, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, Watcher as _};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_owned());
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let relevant = event.paths.is_empty()
                || event.paths.iter().any(|p| {
                    let file = p.file_name();
                    file.is_none()
                        || file == name.as_deref()
                        || file.and_then(|f| f.to_str()).is_some_and(|f| f.starts_with(".."))
                });
            if relevant {
                wake.notify_one();
            }
        }
        // Lost events (queue overflow): read the file to be sure.
        Err(_) => wake.notify_one(),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => Some(w),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, poll = ?POLL, "Cannot watch the config file's directory; polling it.");
            None
        }
    }
}

/// The reload state: what the process started with and what was last read.
struct Reloader<A, C> {
    path: PathBuf,
    /// The process's arguments, parsed again for every new version.
    args: Vec<OsString>,
    admin_default: &'static str,
    build: Box<dyn Fn(A) -> anyhow::Result<C> + Send>,
    apply: Box<dyn FnMut(Change<C>) -> Vec<String> + Send>,
    /// The file's top-level values at start-up.
    started: BTreeMap<String, Value>,
    /// The bytes last read (accepted or not): a reload needs new bytes.
    last_bytes: Vec<u8>,
    metrics: Metrics,
    ctx: Context,
}

impl<A: Cli, C> Reloader<A, C> {
    /// Reads the file and reloads when it changed.
    fn check(&mut self) {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                // Between an unlink and a rename, or a ConfigMap removed: keep
                // going on the running config; the next event or poll retries.
                tracing::debug!(path = %self.path.display(), %error, "Cannot read the config file.");
                return;
            }
        };
        if bytes == self.last_bytes {
            return;
        }
        self.last_bytes = bytes;
        // Notes and metrics first, the log line last: a test (or a user)
        // that sees the line sees the outcome everywhere.
        let path = self.path.display().to_string();
        match self.reload() {
            Ok((changed, restart)) => {
                self.ctx.readiness.set_note(NOTE_REJECTED, None);
                if restart.is_empty() {
                    self.ctx.readiness.set_note(NOTE_RESTART, None);
                    self.metrics.count(Outcome::Applied);
                    tracing::info!(%path, changed_since_start = %changed, "Config reloaded.");
                } else {
                    let restart = restart.join(", ");
                    self.ctx
                        .readiness
                        .set_note(NOTE_RESTART, Some(format!("config: restart required for {restart}")));
                    self.metrics.count(Outcome::RestartRequired);
                    tracing::warn!(
                        %path,
                        changed_since_start = %changed,
                        restart_required = %restart,
                        "Config reloaded; these settings keep their running values until a restart."
                    );
                }
            }
            Err(error) => {
                self.ctx
                    .readiness
                    .set_note(NOTE_REJECTED, Some(format!("config: rejected the new file: {error}")));
                self.metrics.count(Outcome::Rejected);
                tracing::warn!(%path, %error, "Config rejected; keeping the running config.");
            }
        }
    }

    /// Parses and validates the file, hands it to the binary; returns the
    /// keys changed since start-up and the settings that need a restart, or
    /// why the file was rejected.
    fn reload(&mut self) -> Result<(String, Vec<String>), String> {
        let values = config_file::values(&self.path)?;
        let args = parse::<A>(self.args.clone(), self.admin_default, &self.path)?;
        let config = (self.build)(args).map_err(|e| format!("{e:#}"))?;
        let changed_since_start = changed_keys(&self.started, &values);
        let mut restart: Vec<String> = changed_since_start
            .iter()
            .filter(|k| COMMON_RESTART_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        let changed = changed_since_start.join(", ");
        restart.extend((self.apply)(Change {
            config,
            changed_since_start,
        }));
        restart.sort();
        restart.dedup();
        Ok((changed, restart))
    }
}

/// Parses the process arguments again with `path`'s values as defaults;
/// clap's error becomes one line.
fn parse<A: Parser>(args: Vec<OsString>, admin_default: &'static str, path: &Path) -> Result<A, String> {
    let command = crate::cli::with_admin_default(A::command(), admin_default);
    let command = config_file::apply(command, path)?;
    command
        .try_get_matches_from(args)
        .and_then(|mut m| A::from_arg_matches_mut(&mut m))
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            format!(
                "config file {}: {}",
                path.display(),
                first.trim_start_matches("error: ")
            )
        })
}

/// Top-level keys (spelled with `-`) whose values differ between two
/// versions of a file, sorted.
fn changed_keys(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<String> {
    let norm = |m: &BTreeMap<String, Value>| -> BTreeMap<String, Value> {
        m.iter().map(|(k, v)| (k.replace('_', "-"), v.clone())).collect()
    };
    let (old, new) = (norm(old), norm(new));
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::CommonArgs;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, env = "T_RELOAD_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "none")]
        word: String,
    }

    impl Cli for Args {
        fn common(&self) -> &CommonArgs {
            &self.common
        }
    }

    /// An edit in place and an editor's write-and-rename both reload; a
    /// change of a runtime setting is applied for the rest and noted in
    /// readiness, which stays ready; putting it back clears the note.
    #[tokio::test]
    async fn edits_and_renames_over_a_plain_file_are_reloaded() {
        let dir = std::env::temp_dir().join(format!("podkit-reload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "word = \"one\"\n").unwrap();
        let ctx = Context::new("t");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let args = ["t", "--config", file.to_str().unwrap()].map(OsString::from).to_vec();
        let watching = spawn_with_args(
            &ctx,
            "127.0.0.1:0",
            args,
            |a: Args| Ok(a.word),
            move |change: Change<String>| {
                let _ = tx.send(change.config);
                Vec::new()
            },
        );
        assert!(watching);
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("a reload within 30 s")
                .unwrap()
        };

        std::fs::write(&file, "word = \"two\"\n").unwrap();
        assert_eq!(next().await, "two");

        let tmp = dir.join(".c.toml.swp");
        std::fs::write(&tmp, "word = \"three\"\ngrace-period = \"3s\"\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_eq!(next().await, "three");
        assert!(ctx.readiness.is_ready());
        assert_eq!(ctx.readiness.notes(), ["config: restart required for grace-period"]);

        std::fs::write(&file, "word = \"four\"\n").unwrap();
        assert_eq!(next().await, "four");
        assert!(ctx.readiness.notes().is_empty());
        let metrics = ctx.metrics.encode();
        assert!(
            metrics.contains("podkit_config_reloads_total{result=\"applied\"} 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("podkit_config_reloads_total{result=\"restart_required\"} 1"),
            "{metrics}"
        );

        ctx.shutdown.trigger();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn map(text: &str) -> BTreeMap<String, Value> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn changed_keys_are_named_as_flags() {
        let old = map("grace_period = \"5s\"\nroute = [\"a\"]\nsame = 1\n[[listener]]\nlisten = \"x\"\n");
        let new = map("grace-period = \"6s\"\nsame = 1\nextra = true\n[[listener]]\nlisten = \"y\"\n");
        assert_eq!(changed_keys(&old, &new), ["extra", "grace-period", "listener", "route"]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}
