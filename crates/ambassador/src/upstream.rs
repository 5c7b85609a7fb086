//! Upstreams: name resolution that is repeated on an interval (keeping the
//! last good answer), endpoint choice (round-robin or least connections),
//! passive health (eject an endpoint after consecutive connect failures),
//! and connects that move on to the next endpoint, with optional TLS.
//!
//! Invariant: an upstream never blocks start-up. A name that does not
//! resolve yet keeps the upstream's readiness latch closed (and `/readyz`
//! says why) until it does.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::{Connected, Connection};
use podkit_runtime::{Latch, Readiness};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{Balance, Options, UpstreamSpec};
use crate::stats::UpstreamStats;

/// Resolves names: IP literals as they are, then the optional hosts file
/// (read again on every lookup, so edits apply at once), then the special
/// names of RFC 6761 (`*.invalid` fails, `*.localhost` is loopback, without
/// a DNS query), then the system resolver (`/etc/hosts`, `/etc/resolv.conf`).
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts_file: Option<PathBuf>,
}

impl Resolver {
    /// A resolver with an optional extra hosts file consulted first.
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        Self { hosts_file }
    }

    /// The addresses of `host:port`, never empty on success.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(path) = &self.hosts_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| io::Error::new(e.kind(), format!("hosts file {}: {e}", path.display())))?;
            let ips = hosts_lookup(&text, host);
            if !ips.is_empty() {
                return Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect());
            }
        }
        // RFC 6761: `invalid.` never resolves and `localhost.` is loopback;
        // neither is sent to a DNS server.
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        if lower == "invalid" || lower.ends_with(".invalid") {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} is a reserved name that never resolves (RFC 6761)"),
            ));
        }
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Ok(vec![
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            ]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no addresses"),
            ));
        }
        Ok(addrs)
    }
}

/// The addresses a hosts-file text gives `name` (case-insensitive), in file
/// order.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next().and_then(|ip| ip.parse::<IpAddr>().ok()) else {
            continue;
        };
        if fields.any(|n| n.eq_ignore_ascii_case(name)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Why no upstream connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No name resolved yet.
    #[error("upstream {0} has no resolved address yet ({1})")]
    Unresolved(String, String),
    /// Every endpoint tried failed. The message names the most telling
    /// failure (see [`Stage`]); the log line lists them all.
    #[error("cannot connect to upstream {upstream}: {}", failures.first().map_or_else(String::new, Failure::to_string))]
    Connect {
        /// The upstream.
        upstream: String,
        /// Each endpoint tried and why it failed, the most telling first.
        failures: Vec<Failure>,
    },
}

impl UpstreamError {
    /// Whether the most telling failure is a timeout (504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Connect { failures, .. } if failures.first().is_some_and(Failure::timed_out))
    }
}

/// How far a connection attempt got before it failed, which says how much
/// its failure tells: a TLS or protocol failure means the endpoint is there
/// and something about talking to it is wrong (a certificate, a port that
/// speaks plain text), which a refused connect on another address (an IPv6
/// loopback nothing listens on) must not hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The connect could not even start (no route, no such address family).
    Unroutable,
    /// Nothing listens there.
    Refused,
    /// No answer within the connect timeout.
    TimedOut,
    /// Connected, then the TLS handshake or the PROXY header failed.
    Protocol,
}

/// One endpoint's failed connection attempt.
#[derive(Debug)]
pub struct Failure {
    /// The endpoint.
    pub addr: SocketAddr,
    /// How far it got.
    pub stage: Stage,
    /// Why it failed, as a sentence (rustls errors explained by podkit-tls).
    pub reason: String,
}

impl Failure {
    fn new(addr: SocketAddr, stage: Stage, reason: String) -> Self {
        Self { addr, stage, reason }
    }

    /// Whether it is a connect or handshake timeout.
    pub fn timed_out(&self) -> bool {
        self.stage == Stage::TimedOut
    }

    /// A failed TCP connect.
    fn connect(addr: SocketAddr, err: &io::Error) -> Self {
        let stage = match err.kind() {
            io::ErrorKind::ConnectionRefused => Stage::Refused,
            io::ErrorKind::TimedOut => Stage::TimedOut,
            _ => Stage::Unroutable,
        };
        Self::new(addr, stage, podkit_tls::describe_io_error(err))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.addr, self.reason)
    }
}

/// Orders failures the most telling first (stable: ties keep the order
/// they were tried in).
fn most_telling_first(failures: &mut [Failure]) {
    failures.sort_by_key(|f| std::cmp::Reverse(f.stage));
}

/// The failures as the log line lists them: `a: why; b: why`.
fn list(failures: &[Failure]) -> String {
    let all: Vec<String> = failures.iter().map(Failure::to_string).collect();
    all.join("; ")
}

/// Connect-time settings of an upstream.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// See [`Options::balance`].
    pub balance: Balance,
    /// See [`Options::connect_timeout`].
    pub connect_timeout: Duration,
    /// See [`Options::eject_after`].
    pub eject_after: u32,
    /// See [`Options::eject_for`].
    pub eject_for: Duration,
    /// See [`Options::connect_retries`].
    pub connect_retries: u32,
    /// See [`Options::dns_refresh`].
    pub dns_refresh: Duration,
}

impl From<&Options> for ConnectOptions {
    fn from(o: &Options) -> Self {
        Self {
            balance: o.balance,
            connect_timeout: o.connect_timeout,
            eject_after: o.eject_after,
            eject_for: o.eject_for,
            connect_retries: o.connect_retries,
            dns_refresh: o.dns_refresh,
        }
    }
}

/// One resolved address of a target, with its health and load.
#[derive(Debug)]
struct Endpoint {
    addr: SocketAddr,
    target: usize,
    /// Open connections (least-conn balancing).
    active: Arc<AtomicUsize>,
    /// Consecutive connect failures.
    failures: AtomicU32,
    /// Skipped until this many ms after `Upstream::epoch` (0: not ejected).
    ejected_until_ms: AtomicU64,
    /// Set when DNS no longer gives this address: pooled HTTP connections
    /// to it are then not reused (see [`Retired`]).
    retired: Retired,
}

/// A flag shared by the connections to one endpoint, set once DNS drops the
/// endpoint's address. It travels in the connection's `Connected` extras;
/// the HTTP proxy poisons a pooled connection that carries a set flag.
#[derive(Debug, Clone, Default)]
pub struct Retired(Arc<std::sync::atomic::AtomicBool>);

impl Retired {
    /// Whether the endpoint is gone from DNS.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How an upstream speaks TLS: the connector (its rustls config) and the
/// name to send as SNI and verify when it is not the target's host.
#[derive(Clone)]
pub struct TlsOrigin {
    /// Connects with the listener's TLS options.
    pub connector: TlsConnector,
    /// `--tls-server-name`, when given.
    pub server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// A set of endpoints behind one listener.
pub struct Upstream {
    /// A name for logs, metrics and `/readyz` (the first target, plus a
    /// count when there are more).
    pub name: String,
    targets: Vec<UpstreamSpec>,
    options: ConnectOptions,
    resolver: Resolver,
    tls: Option<TlsOrigin>,
    /// The endpoints now known; replaced whole on each resolution.
    endpoints: Mutex<Arc<Vec<Arc<Endpoint>>>>,
    /// Why the last resolution failed, per target.
    errors: Mutex<Vec<Option<String>>>,
    next: AtomicUsize,
    /// Set once any endpoint was retired: from then on the HTTP proxy looks
    /// at each pooled connection's flag (skipped until needed, since the
    /// look costs a little on every request).
    any_retired: std::sync::atomic::AtomicBool,
    epoch: Instant,
    latch: Latch,
    stats: UpstreamStats,
    /// Set while the upstream is unreachable and that was logged: the
    /// cause logged, so a repeat goes to debug and a change to warn.
    unreachable: Mutex<Option<String>>,
    /// Whether `unreachable` holds a cause (read on every connect without
    /// taking the lock).
    any_unreachable: std::sync::atomic::AtomicBool,
}

/// An established upstream connection.
pub struct Conn {
    stream: Stream,
    /// The endpoint connected to.
    pub addr: SocketAddr,
    h2: bool,
    retired: Retired,
    /// Counts this connection among the endpoint's open ones until dropped.
    _active: ActiveGuard,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream over `targets`; `tls` is how `tls` targets are spoken to.
    /// Nothing is resolved yet: call [`Upstream::refresh`] or
    /// [`Upstream::spawn_refresh`].
    pub fn new(
        targets: Vec<UpstreamSpec>,
        options: ConnectOptions,
        resolver: Resolver,
        tls: Option<TlsOrigin>,
        readiness: &Readiness,
        stats: UpstreamStats,
        name: String,
    ) -> Arc<Self> {
        let latch = readiness.latch(format!("upstream {name} not resolved yet"));
        let n = targets.len();
        Arc::new(Self {
            name,
            targets,
            options,
            resolver,
            tls,
            endpoints: Mutex::new(Arc::new(Vec::new())),
            errors: Mutex::new(vec![None; n]),
            next: AtomicUsize::new(0),
            any_retired: std::sync::atomic::AtomicBool::new(false),
            epoch: Instant::now(),
            latch,
            stats,
            unreachable: Mutex::new(None),
            any_unreachable: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The label for an upstream over these targets.
    pub fn label(targets: &[UpstreamSpec]) -> String {
        match targets {
            [] => String::new(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first}+{}", rest.len()),
        }
    }

    /// Whether DNS ever dropped an address of this upstream.
    pub fn any_retired(&self) -> bool {
        self.any_retired.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Endpoint>>> {
        Arc::clone(&self.endpoints.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Resolves every target again. A target whose resolution fails keeps
    /// its last good addresses. Returns whether any endpoint is known.
    pub async fn refresh(&self) -> bool {
        let old = self.snapshot();
        let mut new: Vec<Arc<Endpoint>> = Vec::new();
        let mut errors = Vec::with_capacity(self.targets.len());
        for (i, target) in self.targets.iter().enumerate() {
            match self.resolver.resolve(&target.host, target.port).await {
                Ok(addrs) => {
                    self.stats.dns_ok.inc();
                    errors.push(None);
                    for addr in addrs {
                        if new.iter().any(|e| e.target == i && e.addr == addr) {
                            continue;
                        }
                        // Keep the health and load of an address seen before.
                        let endpoint = old
                            .iter()
                            .find(|e| e.target == i && e.addr == addr)
                            .cloned()
                            .unwrap_or_else(|| {
                                Arc::new(Endpoint {
                                    addr,
                                    target: i,
                                    active: Arc::new(AtomicUsize::new(0)),
                                    failures: AtomicU32::new(0),
                                    ejected_until_ms: AtomicU64::new(0),
                                    retired: Retired::default(),
                                })
                            });
                        new.push(endpoint);
                    }
                }
                Err(err) => {
                    self.stats.dns_error.inc();
                    tracing::debug!(upstream = %self.name, host = %target.host, %err, "Resolution failed; keeping the last answer.");
                    errors.push(Some(format!("{}: {err}", target.host)));
                    new.extend(old.iter().filter(|e| e.target == i).cloned());
                }
            }
        }
        for gone in old.iter().filter(|o| !new.iter().any(|n| Arc::ptr_eq(n, o))) {
            // Pooled connections to an address DNS no longer gives are not
            // reused; open ones finish their exchange.
            gone.retired.set();
            self.any_retired.store(true, Ordering::Relaxed);
        }
        let changed = new.len() != old.len() || new.iter().zip(old.iter()).any(|(a, b)| a.addr != b.addr);
        if changed {
            let addrs: Vec<String> = new.iter().map(|e| e.addr.to_string()).collect();
            tracing::info!(upstream = %self.name, endpoints = %addrs.join(","), "Upstream endpoints changed.");
        }
        let any = !new.is_empty();
        if any {
            self.latch.set_ready(true);
        } else {
            let why: Vec<String> = errors.iter().flatten().cloned().collect();
            self.latch.set_reason(format!(
                "upstream {} does not resolve yet: {}",
                self.name,
                why.join("; ")
            ));
            self.latch.set_ready(false);
        }
        let mut last = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        // Say it once when a name stops (or starts) resolving; the repeats
        // stay at debug above.
        for ((target, before), now) in self.targets.iter().zip(last.iter()).zip(errors.iter()) {
            match (before, now) {
                (None, Some(err)) => {
                    tracing::warn!(upstream = %self.name, host = %target.host, %err, "Upstream name does not resolve; keeping the last answer and retrying.");
                }
                (Some(_), None) => {
                    tracing::info!(upstream = %self.name, host = %target.host, "Upstream name resolves again.");
                }
                _ => {}
            }
        }
        *last = errors;
        drop(last);
        *self.endpoints.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
        any
    }

    /// Resolves now, then every `dns_refresh` until `stop` is cancelled.
    /// Upstreams made only of IP literals are resolved once.
    pub fn spawn_refresh(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.refresh().await;
            if this.targets.iter().all(|t| t.host.parse::<IpAddr>().is_ok()) {
                return;
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(this.options.dns_refresh) => {}
                }
                this.refresh().await;
            }
        });
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The endpoints to try, best first: healthy ones in balancing order,
    /// then ejected ones (an all-ejected upstream is still tried: failing
    /// open beats refusing everything).
    fn candidates(&self, endpoints: &[Arc<Endpoint>]) -> Vec<Arc<Endpoint>> {
        let now = self.now_ms();
        let n = endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut order: Vec<Arc<Endpoint>> = (0..n).map(|i| Arc::clone(&endpoints[(start + i) % n])).collect();
        if self.options.balance == Balance::LeastConn {
            // Stable: ties keep the rotated order.
            order.sort_by_key(|e| e.active.load(Ordering::Relaxed));
        }
        order.sort_by_key(|e| e.ejected_until_ms.load(Ordering::Relaxed) > now);
        order
    }

    fn record_failure(&self, endpoint: &Endpoint, failure: &Failure) {
        self.stats.connect_errors.inc();
        let failures = endpoint.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let reason = &failure.reason;
        if self.options.eject_after > 0 && failures >= self.options.eject_after {
            endpoint.failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + u64::try_from(self.options.eject_for.as_millis()).unwrap_or(u64::MAX / 2);
            endpoint.ejected_until_ms.store(until, Ordering::Relaxed);
            self.stats.ejections.inc();
            tracing::warn!(upstream = %self.name, endpoint = %endpoint.addr, %reason, eject_for = ?self.options.eject_for, "Endpoint ejected after consecutive connect failures.");
        } else {
            tracing::debug!(upstream = %self.name, endpoint = %endpoint.addr, %reason, "Connect failed.");
        }
    }

    /// Logs that every endpoint tried failed: at warn when the cause is new,
    /// at debug when it repeats (a dead upstream fails every request).
    fn record_unreachable(&self, failures: &[Failure]) {
        let Some(cause) = failures.first() else { return };
        let endpoints = list(failures);
        let mut last = self.unreachable.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() == Some(cause.reason.as_str()) {
            tracing::debug!(upstream = %self.name, %cause, %endpoints, "Upstream unreachable: every endpoint tried failed.");
        } else {
            tracing::warn!(upstream = %self.name, %cause, %endpoints, "Upstream unreachable: every endpoint tried failed.");
            *last = Some(cause.reason.clone());
            self.any_unreachable.store(true, Ordering::Relaxed);
        }
    }

    /// Logs, once, that a connection succeeded after the upstream was
    /// reported unreachable.
    fn record_reachable(&self, addr: SocketAddr) {
        if !self.any_unreachable.load(Ordering::Relaxed) {
            return;
        }
        self.any_unreachable.store(false, Ordering::Relaxed);
        if self
            .unreachable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
        {
            tracing::info!(upstream = %self.name, endpoint = %addr, "Upstream reachable again.");
        }
    }

    /// Connects to an endpoint, trying up to `connect_retries` further ones
    /// on failure. A name never resolved is resolved now first.
    pub async fn connect(&self) -> Result<Conn, UpstreamError> {
        self.connect_with(&[]).await
    }

    /// [`Upstream::connect`], writing `preamble` (a PROXY protocol header)
    /// first, before any TLS handshake.
    pub async fn connect_with(&self, preamble: &[u8]) -> Result<Conn, UpstreamError> {
        let mut endpoints = self.snapshot();
        if endpoints.is_empty() {
            self.refresh().await;
            endpoints = self.snapshot();
        }
        if endpoints.is_empty() {
            let errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
            let why: Vec<String> = errors.iter().flatten().cloned().collect();
            return Err(UpstreamError::Unresolved(self.name.clone(), why.join("; ")));
        }
        let attempts = (self.options.connect_retries as usize + 1).min(endpoints.len());
        let mut failures = Vec::new();
        // One endpoint (the usual upstream): no order to work out.
        let order = (endpoints.len() > 1).then(|| self.candidates(&endpoints));
        for endpoint in order.as_deref().unwrap_or(&endpoints[..]).iter().take(attempts) {
            match self.connect_one(endpoint, preamble).await {
                Ok(conn) => {
                    endpoint.failures.store(0, Ordering::Relaxed);
                    endpoint.ejected_until_ms.store(0, Ordering::Relaxed);
                    self.record_reachable(conn.addr);
                    return Ok(conn);
                }
                Err(failure) => {
                    self.record_failure(endpoint, &failure);
                    failures.push(failure);
                }
            }
        }
        most_telling_first(&mut failures);
        self.record_unreachable(&failures);
        Err(UpstreamError::Connect {
            upstream: self.name.clone(),
            failures,
        })
    }

    async fn connect_one(&self, endpoint: &Endpoint, preamble: &[u8]) -> Result<Conn, Failure> {
        let target = &self.targets[endpoint.target];
        let timeout = self.options.connect_timeout;
        let addr = endpoint.addr;
        // Set once TCP is connected: a timeout after it is the handshake's.
        let connected = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            let mut tcp = TcpStream::connect(addr).await.map_err(|e| Failure::connect(addr, &e))?;
            connected.store(true, Ordering::Relaxed);
            let protocol = |reason: String| Failure::new(addr, Stage::Protocol, reason);
            tcp.set_nodelay(true)
                .map_err(|e| protocol(podkit_tls::describe_io_error(&e)))?;
            if !preamble.is_empty() {
                tokio::io::AsyncWriteExt::write_all(&mut tcp, preamble)
                    .await
                    .map_err(|e| {
                        protocol(format!(
                            "sending the PROXY protocol header: {}",
                            podkit_tls::describe_io_error(&e)
                        ))
                    })?;
            }
            endpoint.active.fetch_add(1, Ordering::Relaxed);
            let guard = ActiveGuard(Arc::clone(&endpoint.active));
            match (&self.tls, target.tls) {
                (Some(tls), true) => {
                    let name = match &tls.server_name {
                        Some(name) => name.clone(),
                        None => podkit_tls::server_name(&target.host).map_err(|e| protocol(e.to_string()))?,
                    };
                    let stream = tls
                        .connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| protocol(format!("TLS: {}", podkit_tls::describe_handshake_error(&e))))?;
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    Ok(Conn {
                        stream: Stream::Tls(Box::new(stream)),
                        addr,
                        h2,
                        retired: endpoint.retired.clone(),
                        _active: guard,
                    })
                }
                _ => Ok(Conn {
                    stream: Stream::Plain(tcp),
                    addr,
                    h2: false,
                    retired: endpoint.retired.clone(),
                    _active: guard,
                }),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) if connected.load(Ordering::Relaxed) => Err(Failure::new(
                addr,
                Stage::Protocol,
                format!("connected, but the TLS handshake did not finish within {timeout:?}"),
            )),
            Err(_) => Err(Failure::new(
                addr,
                Stage::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }
}

/// Connects to the first of `addrs` that accepts within `timeout`, with
/// TCP_NODELAY (forward proxy destinations, which are not an [`Upstream`]).
/// When none does, the error is the most telling one (a timeout before a
/// refusal before an unroutable address).
pub async fn connect_addr(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut best: Option<(Stage, io::Error)> = None;
    for addr in addrs {
        let err = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Ok(Err(err)) => err,
            Err(_) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out after {timeout:?}"),
            ),
        };
        let stage = Failure::connect(*addr, &err).stage;
        if best.as_ref().is_none_or(|(s, _)| stage > *s) {
            best = Some((stage, err));
        }
    }
    Err(best.map_or_else(|| io::Error::other("no address to connect to"), |(_, err)| err))
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("addr", &self.addr)
            .field("tls", &matches!(self.stream, Stream::Tls(_)))
            .field("h2", &self.h2)
            .finish()
    }
}

impl Conn {
    /// The flag set when DNS drops this connection's endpoint.
    pub fn retired(&self) -> &Retired {
        &self.retired
    }

    /// Whether TLS negotiated HTTP/2 via ALPN.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// The socket itself when nothing (TLS) wraps it: a PROXY protocol
    /// header, if any, went out before this connection was handed over.
    pub fn plain_tcp(&mut self) -> Option<&mut TcpStream> {
        match &mut self.stream {
            Stream::Plain(tcp) => Some(tcp),
            Stream::Tls(_) => None,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.retired.clone());
        if self.h2 { connected.negotiated_h2() } else { connected }
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(
        targets: &[SocketAddr],
        balance: Balance,
        eject_after: u32,
        retries: u32,
    ) -> (Arc<Upstream>, Readiness) {
        let readiness = Readiness::new();
        let metrics = podkit_runtime::Metrics::new("ambassador");
        let stats = crate::stats::Stats::register(&metrics).upstream("t");
        let targets = targets
            .iter()
            .map(|a| UpstreamSpec {
                host: a.ip().to_string(),
                port: a.port(),
                tls: false,
            })
            .collect();
        let options = ConnectOptions {
            balance,
            connect_timeout: Duration::from_secs(5),
            eject_after,
            eject_for: Duration::from_secs(60),
            connect_retries: retries,
            dns_refresh: Duration::from_secs(60),
        };
        let up = Upstream::new(
            targets,
            options,
            Resolver::default(),
            None,
            &readiness,
            stats,
            "t".into(),
        );
        (up, readiness)
    }

    async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn dead() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn round_robin_alternates_and_failed_connects_move_on() {
        let (_a, a) = listener().await;
        let (_b, b) = listener().await;
        let (up, readiness) = upstream(&[a, b], Balance::RoundRobin, 3, 2);
        assert!(!readiness.is_ready(), "not ready before the first resolution");
        assert!(up.refresh().await);
        assert!(readiness.is_ready());
        let first = up.connect().await.unwrap().addr;
        let second = up.connect().await.unwrap().addr;
        assert_ne!(first, second);

        // A dead endpoint is skipped by the retry, and ejected after one failure.
        let (_c, c) = listener().await;
        let (up, _r) = upstream(&[dead(), c], Balance::RoundRobin, 1, 1);
        up.refresh().await;
        for _ in 0..6 {
            assert_eq!(up.connect().await.unwrap().addr, c);
        }
        assert_eq!(up.stats.ejections.get(), 1, "ejected once, then skipped while ejected");
        assert_eq!(up.stats.connect_errors.get(), 1);
    }

    #[tokio::test]
    async fn least_conn_prefers_the_idle_endpoint() {
        let (_a, a) = listener().await;
        let (_b, b) = listener().await;
        let (up, _r) = upstream(&[a, b], Balance::LeastConn, 3, 0);
        up.refresh().await;
        let held = up.connect().await.unwrap();
        for _ in 0..4 {
            let next = up.connect().await.unwrap();
            assert_ne!(next.addr, held.addr, "the endpoint with an open connection is avoided");
        }
    }

    #[tokio::test]
    async fn no_endpoint_reachable_is_an_error_naming_it() {
        let d = dead();
        let (up, _r) = upstream(&[d], Balance::RoundRobin, 3, 2);
        let err = up.connect().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to upstream t: {d}: connection refused")
        );
        assert!(!err.is_timeout());
    }

    #[test]
    fn the_most_telling_failure_comes_first() {
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let failure = |port, stage| Failure::new(at(port), stage, format!("{stage:?}"));
        let mut failures = vec![
            failure(1, Stage::Unroutable),
            failure(2, Stage::Refused),
            failure(3, Stage::Protocol),
            failure(4, Stage::TimedOut),
            failure(5, Stage::Refused),
        ];
        most_telling_first(&mut failures);
        let order: Vec<u16> = failures.iter().map(|f| f.addr.port()).collect();
        assert_eq!(
            order,
            [3, 4, 2, 5, 1],
            "protocol, timeout, refused (in the order tried), unroutable"
        );
        assert_eq!(list(&failures[..2]), "127.0.0.1:3: Protocol; 127.0.0.1:4: TimedOut");
        let err = UpstreamError::Connect {
            upstream: "u".into(),
            failures,
        };
        assert!(
            !err.is_timeout(),
            "a timeout behind a protocol failure is not the cause"
        );
        let err = UpstreamError::Connect {
            upstream: "u".into(),
            failures: vec![failure(4, Stage::TimedOut), failure(2, Stage::Refused)],
        };
        assert!(err.is_timeout());
    }

    #[test]
    fn hosts_file_lookup() {
        let text = "# comment\n127.0.0.5 api.test api\n::1 api.test # v6\nbad line\n127.0.0.6 other.test\n";
        assert_eq!(
            hosts_lookup(text, "API.test"),
            vec!["127.0.0.5".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]
        );
        assert!(hosts_lookup(text, "missing.test").is_empty());
    }
}
