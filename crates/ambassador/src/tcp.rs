//! tcp mode: each client connection is piped to one upstream endpoint, both
//! ways, with half-close passed on, until both sides close, the connection
//! idles past `idle_timeout`, or the drain deadline passes.
//!
//! When no endpoint can be reached the client connection is closed at once
//! (the app sees a reset or EOF, as if the upstream had refused it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podkit_runtime::Shutdown;
use tokio::net::TcpStream;

use crate::net::{AccessEntry, AccessLogger, Activity, PipeEnd, Tracked, pipe, pipe_tcp};
use crate::stats::ListenerStats;
use crate::upstream::Upstream;

/// One tcp listener's proxy.
#[derive(Debug)]
pub struct TcpProxy {
    /// The listener's name.
    pub name: String,
    /// Where connections go.
    pub upstream: Arc<Upstream>,
    /// See [`crate::config::Options::idle_timeout`].
    pub idle_timeout: Duration,
    /// Metrics.
    pub stats: ListenerStats,
    /// Access log.
    pub access: AccessLogger,
    /// The PROXY protocol header to send upstream first.
    pub proxy_protocol: crate::proxy_protocol::ProxyProtocol,
}

impl TcpProxy {
    /// Proxies one client connection to its end.
    pub async fn handle(&self, client: TcpStream, peer: SocketAddr, drain: &Shutdown) {
        let start = Instant::now();
        let _ = client.set_nodelay(true);
        // The local address costs a syscall: ask only when a header is sent.
        let preamble = match self.proxy_protocol {
            crate::proxy_protocol::ProxyProtocol::Off => Vec::new(),
            version => match client.local_addr() {
                Ok(local) => crate::proxy_protocol::header(version, peer, local),
                Err(_) => Vec::new(),
            },
        };
        let connected = tokio::select! {
            biased;
            result = self.upstream.connect_with(&preamble) => result,
            () = drain.hard_stop() => return,
        };
        let mut upstream = match connected {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(listener = %self.name, client = %peer, %err, "No upstream; closing the client connection.");
                self.log(peer, None, start, None);
                return;
            }
        };
        self.stats.duration.observe(start.elapsed().as_secs_f64());
        let activity = Activity::new();
        let end = if let Some(tcp) = upstream.plain_tcp() {
            let mut client = client;
            pipe_tcp(&mut client, tcp, &activity, self.idle_timeout, drain).await
        } else {
            let mut client = Tracked::new(client, Arc::clone(&activity));
            pipe(&mut client, &mut upstream, &activity, self.idle_timeout, drain).await
        };
        if end == PipeEnd::Idle {
            tracing::debug!(listener = %self.name, client = %peer, idle_timeout = ?self.idle_timeout, "Closing an idle connection.");
        }
        activity.account(&self.stats);
        self.log(peer, Some(upstream.addr), start, Some(&activity));
    }

    fn log(&self, peer: SocketAddr, upstream: Option<SocketAddr>, start: Instant, activity: Option<&Activity>) {
        if !self.access.enabled() {
            return;
        }
        self.access.log(&AccessEntry {
            listener: &self.name,
            client: peer,
            method: "TCP",
            target: &self.upstream.name,
            status: 0,
            upstream,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            bytes_in: activity.map_or(0, Activity::read_bytes),
            bytes_out: activity.map_or(0, Activity::written_bytes),
        });
    }
}
