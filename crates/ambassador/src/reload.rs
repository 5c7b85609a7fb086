//! Live reload of the `--config` file (the watching, parsing, metrics and
//! `/readyz` notes are the runtime's `reload`).
//!
//! A listener is known by its address. When a new version of the file
//! changes a listener's mode, upstreams, route (prefix, host), allow rules,
//! headers, timeouts, balancing, ejection, retries, size limits, TLS
//! origination or PROXY header, or the access log format, a new handler is
//! built for it and its accept loop hands **new** connections to it; a
//! connection already open keeps the handler (and upstream) it started
//! with until it closes. The old upstream's DNS refresh stops.
//!
//! Needing a restart (logged, and in `/readyz`): a listener added or
//! removed (addresses are bound once), a listener's `max_connections`
//! (its connection slots are counted from start-up), `hosts_file` (one
//! resolver for the process) and `drain_delay`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podkit_runtime::Context;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, AccessLog, ListenerConfig};
use crate::{Args, BINARY, Config, Handler, net};

/// What an accept loop hands new connections to.
pub(crate) type Current = (Handler, Arc<config::Options>);

/// One running listener, as a reload sees it.
pub(crate) struct Listener {
    /// The config its current handler was built from.
    config: ListenerConfig,
    /// The accept loop's handler for new connections.
    current: watch::Sender<Current>,
    /// Stops the current upstream's DNS refresh.
    stop: CancellationToken,
}

impl Listener {
    /// A running listener.
    pub(crate) fn new(config: ListenerConfig, current: watch::Sender<Current>, stop: CancellationToken) -> Self {
        Self { config, current, stop }
    }
}

/// What the process keeps from start-up whatever the file says.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    hosts_file: Option<PathBuf>,
    drain_delay: Duration,
}

/// Watches the `--config` file, if the process was started with one;
/// `build` makes a listener's handler, as at start-up.
/// `refresh_stop` is the parent of every upstream's refresh token (cancelled
/// by the drain).
pub(crate) fn spawn<B>(
    config: &Config,
    ctx: &Context,
    mut listeners: Vec<Listener>,
    refresh_stop: CancellationToken,
    build: B,
) where
    B: Fn(&ListenerConfig, net::AccessLogger, &CancellationToken) -> anyhow::Result<Handler> + Send + 'static,
{
    let fixed = Fixed {
        hosts_file: config.hosts_file.clone(),
        drain_delay: config.drain_delay,
    };
    let mut access = config.access_log;
    podkit_runtime::reload::spawn::<Args, Config>(ctx, BINARY.admin_default, Config::from_args, move |change| {
        let new = change.config;
        let mut restart = Vec::new();
        if new.hosts_file != fixed.hosts_file {
            restart.push("hosts-file".to_owned());
        }
        if new.drain_delay != fixed.drain_delay {
            restart.push("drain-delay".to_owned());
        }
        let access_changed = new.access_log != access;
        access = new.access_log;
        restart.extend(apply(
            &mut listeners,
            &new.listeners,
            access,
            access_changed,
            &refresh_stop,
            &build,
        ));
        restart
    });
}

/// Rebuilds the handlers of the listeners whose config changed; returns
/// what needs a restart.
fn apply<B>(
    running: &mut [Listener],
    new: &[ListenerConfig],
    access: AccessLog,
    access_changed: bool,
    refresh_stop: &CancellationToken,
    build: &B,
) -> Vec<String>
where
    B: Fn(&ListenerConfig, net::AccessLogger, &CancellationToken) -> anyhow::Result<Handler>,
{
    let mut restart = Vec::new();
    let running_addrs: Vec<SocketAddr> = running.iter().map(|l| l.config.listen).collect();
    for l in new.iter().filter(|l| !running_addrs.contains(&l.listen)) {
        restart.push(format!("listener {} (new)", l.listen));
    }
    for listener in running.iter_mut() {
        let Some(wanted) = new.iter().find(|l| l.listen == listener.config.listen) else {
            restart.push(format!("listener {} (removed; still serving)", listener.config.listen));
            continue;
        };
        if *wanted == listener.config && !access_changed {
            continue;
        }
        // Connection slots are counted from start-up.
        let mut wanted = wanted.clone();
        if wanted.options.max_connections != listener.config.options.max_connections {
            restart.push(format!("listener {}: max_connections", wanted.listen));
            wanted.options.max_connections = listener.config.options.max_connections;
        }
        // The metrics and logs keep the name the listener started with.
        wanted.name = listener.config.name.clone();
        let stop = listener.stop.clone();
        let next = refresh_stop.child_token();
        match build(&wanted, net::AccessLogger(access), &next) {
            Ok(handler) => {
                listener
                    .current
                    .send_replace((handler, Arc::new(wanted.options.clone())));
                stop.cancel();
                listener.stop = next;
                tracing::info!(listener = %wanted.name, mode = wanted.mode.name(), "Listener reconfigured for new connections.");
                listener.config = wanted;
            }
            Err(error) => {
                tracing::warn!(listener = %wanted.name, error = format!("{error:#}"), "Cannot reconfigure the listener; it keeps its running config.");
                restart.push(format!("listener {} ({error:#})", wanted.listen));
            }
        }
    }
    restart
}
