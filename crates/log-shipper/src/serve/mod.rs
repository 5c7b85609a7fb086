//! Serve mode: the files of one directory over HTTP, in place of the nginx
//! a sidecar pod used to run beside the app (`--serve 0.0.0.0:80
//! --serve-root /usr/share/nginx/html`).
//!
//! It answers like nginx where users meet it (index file, HEAD, ranges,
//! conditional requests, content types, 301/403/404/416; see `respond.rs`),
//! adds what nginx cannot (directory listings, `?tail=N`, `?follow=1`),
//! and is read-only and confined to the directory ([`resolve`]).
//!
//! Connections: hyper's HTTP/1 server, one task per connection on the
//! runtime's shutdown tracker, watched by hyper-util's `GracefulShutdown`. At most
//! `--serve-max-connections` at once: one more is answered 503 with
//! `Retry-After: 1` and closed, rather than left waiting in the backlog
//! (a follow stream can hold its connection for hours). Request heads are
//! bounded in size (`--serve-max-header-bytes`, hyper answers 431 beyond)
//! and in time (`--serve-header-read-timeout`, covering the wait for the
//! next request on a kept-alive connection too): a client that trickles
//! its headers (slowloris) is cut. On shutdown serve mode stops accepting,
//! idle connections close, requests in flight finish, follow streams end;
//! what is still busy at the runtime's drain deadline (a little before the
//! grace period ends) is closed.
//!
//! Files are read with positioned reads on the runtime threads (no
//! blocking-pool hop per request); hyper writes `Date` from its per-second
//! cache and `Content-Length` from the body's exact size.

mod body;
mod listing;
mod mime;
pub mod resolve;
mod respond;
mod tail;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use podkit_runtime::cli::{parse_duration, parse_size};
use podkit_runtime::{ConfigError, Context};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use self::resolve::Root;

/// Serve-mode flags, flattened into `log-shipper`'s arguments. Every flag
/// has a `LOG_SHIPPER_` env twin.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Serve mode")]
pub struct ServeArgs {
    /// Serve the files of --serve-root over HTTP on this address (what an
    /// nginx sidecar did), e.g. 0.0.0.0:80.
    #[arg(
        long = "serve",
        env = "LOG_SHIPPER_SERVE",
        value_name = "ADDR",
        requires = "serve_root"
    )]
    pub serve: Option<SocketAddr>,

    /// The directory to serve; nothing outside it is ever opened.
    #[arg(long, env = "LOG_SHIPPER_SERVE_ROOT", value_name = "DIR", requires = "serve")]
    pub serve_root: Option<PathBuf>,

    /// Serve and list dotfiles (names starting with `.`); refused with 403
    /// otherwise.
    #[arg(long, env = "LOG_SHIPPER_SERVE_HIDDEN")]
    pub serve_hidden: bool,

    /// Serve regular files that have more than one hard link. Refused by
    /// default: a hard link can bring a file from outside the root into it.
    #[arg(long, env = "LOG_SHIPPER_SERVE_ALLOW_HARD_LINKS")]
    pub serve_allow_hard_links: bool,

    /// The file a request for a directory gives when it exists; empty for
    /// none.
    #[arg(
        long,
        env = "LOG_SHIPPER_SERVE_INDEX",
        value_name = "NAME",
        default_value = "index.html"
    )]
    pub serve_index: String,

    /// Answer 403 for a directory without index file instead of listing
    /// its files.
    #[arg(long, env = "LOG_SHIPPER_SERVE_NO_LISTING")]
    pub serve_no_listing: bool,

    /// Most connections open at once; one more is answered 503 and closed.
    #[arg(
        long,
        env = "LOG_SHIPPER_SERVE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub serve_max_connections: u32,

    /// Largest request head (request line and headers); 431 beyond.
    #[arg(
        long,
        env = "LOG_SHIPPER_SERVE_MAX_HEADER_BYTES",
        value_name = "SIZE",
        default_value = "16KiB",
        value_parser = parse_size
    )]
    pub serve_max_header_bytes: u64,

    /// Longest time a client may take to send a request head, and to
    /// start the next one on a kept-alive connection; the connection is
    /// closed after it.
    #[arg(
        long,
        env = "LOG_SHIPPER_SERVE_HEADER_READ_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub serve_header_read_timeout: Duration,

    /// Largest N of `?tail=N`; a larger N is taken as this.
    #[arg(
        long,
        env = "LOG_SHIPPER_SERVE_MAX_TAIL_LINES",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub serve_max_tail_lines: u64,

    /// Log every request (method, path, status) at info on stderr.
    #[arg(long, env = "LOG_SHIPPER_SERVE_ACCESS_LOG")]
    pub serve_access_log: bool,
}

/// Serve mode's validated configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The served directory (canonical).
    pub root: PathBuf,
    /// Serve dotfiles.
    pub hidden: bool,
    /// Serve files with several hard links.
    pub allow_hard_links: bool,
    /// The index file name, if any.
    pub index: Option<String>,
    /// List directories without an index file.
    pub listing: bool,
    /// Connection limit.
    pub max_connections: usize,
    /// Request head limit in bytes.
    pub max_header_bytes: usize,
    /// Request head read timeout (zero: none).
    pub header_read_timeout: Duration,
    /// Largest `?tail=N`.
    pub max_tail_lines: u64,
    /// Log every request.
    pub access_log: bool,
    /// Paths never served (the shipper's state directory), see
    /// [`ServeConfig::hide`].
    pub hidden_paths: Vec<PathBuf>,
}

impl ServeConfig {
    /// Validates the flags: `None` when serve mode is off. The root must be
    /// an existing, readable directory; errors name the flag (exit 64).
    pub fn from_args(args: ServeArgs) -> Result<Option<Self>, ConfigError> {
        let Some(addr) = args.serve else {
            return Ok(None);
        };
        let Some(root) = args.serve_root else {
            return Err(ConfigError::new(
                "--serve needs --serve-root DIR, the directory to serve",
            ));
        };
        let bad_root = |what: String| ConfigError::new(format!("--serve-root {}: {what}", root.display()));
        let meta = std::fs::metadata(&root).map_err(|e| bad_root(e.to_string()))?;
        if !meta.is_dir() {
            return Err(bad_root("not a directory".to_owned()));
        }
        std::fs::read_dir(&root).map_err(|e| bad_root(format!("cannot read it: {e}")))?;
        let canonical = std::fs::canonicalize(&root).map_err(|e| bad_root(e.to_string()))?;
        if args.serve_max_header_bytes < 1024 || args.serve_max_header_bytes > 1 << 20 {
            return Err(ConfigError::new(format!(
                "--serve-max-header-bytes {}: must be between 1KiB and 1MiB",
                args.serve_max_header_bytes
            )));
        }
        let index = args.serve_index.trim().to_owned();
        if index.contains('/') || index == ".." || index == "." {
            return Err(ConfigError::new(format!(
                "--serve-index {index:?}: must be a file name, without `/`"
            )));
        }
        Ok(Some(Self {
            addr,
            root: canonical,
            hidden: args.serve_hidden,
            allow_hard_links: args.serve_allow_hard_links,
            index: (!index.is_empty()).then_some(index),
            listing: !args.serve_no_listing,
            max_connections: args.serve_max_connections as usize,
            max_header_bytes: args.serve_max_header_bytes as usize,
            header_read_timeout: args.serve_header_read_timeout,
            max_tail_lines: args.serve_max_tail_lines,
            access_log: args.serve_access_log,
            hidden_paths: Vec::new(),
        }))
    }

    /// Never serves `path` nor anything beneath it, even when it lies under
    /// the root: for the shipper's own state (checkpoints, dead-letter
    /// files under `--state-dir`). Checked against the real path of what a
    /// request opens, so a symbolic link to it is refused too.
    pub fn hide(&mut self, path: impl Into<PathBuf>) {
        self.hidden_paths.push(path.into());
    }
}

/// Connection-level metrics.
#[derive(Debug, Clone)]
struct ConnStats {
    active: Gauge,
    refused: Counter,
}

impl ConnStats {
    fn register(metrics: &podkit_runtime::Metrics) -> Self {
        let s = Self {
            active: Gauge::default(),
            refused: Counter::default(),
        };
        metrics.register(
            "podkit_log_shipper_serve_connections_active",
            "Serve-mode client connections open now",
            s.active.clone(),
        );
        metrics.register(
            "podkit_log_shipper_serve_connections_refused",
            "Serve-mode client connections refused (503) at the connection limit",
            s.refused.clone(),
        );
        s
    }
}

/// Binds, then serves until `ctx.shutdown` says to stop accepting; then
/// lets the requests in flight finish (follow streams end) until the
/// runtime's drain deadline closes what is left.
/// `/readyz` is not ready until the listener is bound.
pub async fn run(config: ServeConfig, ctx: Context) -> anyhow::Result<()> {
    let latch = ctx.readiness.latch("serve mode listening");
    let mut root = Root::open_root(&config.root)
        .map_err(|e| ConfigError::new(format!("--serve-root {}: {e}", config.root.display())))?
        .allow_hard_links(config.allow_hard_links);
    for path in &config.hidden_paths {
        root = root.hide(path);
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {} for --serve", config.addr))?;
    let local = listener.local_addr().context("serve listener address")?;
    let handler = Arc::new(respond::Handler {
        root: Arc::new(root),
        hidden_ok: config.hidden,
        index: config.index.as_deref().map(|i| i.as_bytes().into()),
        listing: config.listing,
        max_tail_lines: config.max_tail_lines,
        access_log: config.access_log,
        stats: respond::Stats::register(&ctx.metrics),
        stop: ctx.shutdown.token().child_token(),
    });
    let conns = ConnStats::register(&ctx.metrics);
    tracing::info!(
        addr = %local,
        root = %config.root.display(),
        resolver = handler.root.strategy().name(),
        max_connections = config.max_connections,
        "Serving."
    );
    latch.release();

    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .max_header_size(config.max_header_bytes)
        .header_read_timeout(if config.header_read_timeout.is_zero() {
            None
        } else {
            Some(config.header_read_timeout)
        });
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.shutdown.stop_accepting() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%err, "Serve mode accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            conns.refused.inc();
            handler.stats.count(http::StatusCode::SERVICE_UNAVAILABLE);
            ctx.shutdown.spawn(refuse_busy(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let h = Arc::clone(&handler);
        let service = service_fn(move |req| std::future::ready(Ok::<_, Infallible>(h.handle(&req))));
        let conn = graceful.watch(h1.serve_connection(TokioIo::new(stream), service));
        let active = conns.active.clone();
        active.inc();
        let shutdown = ctx.shutdown.clone();
        ctx.shutdown.spawn(async move {
            tokio::select! {
                result = conn => if let Err(err) = result {
                    tracing::debug!(%err, "Serve-mode connection ended with an error.");
                },
                // The drain deadline: the connection closes.
                () = shutdown.hard_stop() => {}
            }
            active.dec();
            drop(permit);
        });
    }
    drop(listener);
    handler.stop.cancel();
    tracing::debug!(
        open = graceful.count(),
        "Serve mode stopped accepting; finishing open requests."
    );
    // Connections watched by `graceful` end as soon as they are idle; those
    // still busy at the drain deadline close then (the runtime says so).
    tokio::select! {
        () = graceful.shutdown() => {}
        () = ctx.shutdown.hard_stop() => {}
    }
    Ok(())
}

/// Answers a connection over the limit with 503 and closes it, reading
/// (and dropping) what the client sent for a moment so that closing does
/// not reset the connection before the answer is read.
async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 40\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections; try again shortly\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
