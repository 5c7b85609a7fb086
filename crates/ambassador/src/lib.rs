//! `ambassador`: a localhost proxy for the app — TCP forwarding, an HTTP
//! forward proxy with CONNECT, and a reverse proxy — several listeners in
//! one process.
//!
//! - [`config`]: listener specs, the TOML file, precedence flag > env > file
//!   > default.
//! - [`upstream`]: re-resolved names, balancing, passive health, connects
//!   with retries and TLS (set up by `podkit-tls`).
//! - [`tcp`], [`reverse`], [`forward`]: the three modes; [`http_conn`] what
//!   the HTTP ones share; [`owned_upstream`] the reverse proxy's upstream
//!   connections owned by one client connection; [`policy`] the forward
//!   proxy's destination rules.
//! - [`net`]: byte pipes, idle timeouts, access log; [`stats`] the metrics.
//!   The drain is the runtime's `Shutdown`.
//! - [`reload`]: a `--config` file's new upstreams, routes, allow rules and
//!   timeouts applied to new connections without a restart.
//!
//! The binary is a thin `main.rs` over [`run`]; tests run the real binary.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use podkit_runtime::cli::{AdminAddr, parse_duration, parse_size};
use podkit_runtime::{Binary, CommonArgs, ConfigError, Context, Shutdown};
use podkit_tls::{Legacy, TlsArgs, TlsFlags, TlsOption};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

pub mod config;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_conn;
pub mod net;
pub mod owned_upstream;
pub mod policy;
pub mod proxy_protocol;
pub mod reload;
pub mod reverse;
pub mod splice;
pub mod stats;
pub mod tcp;
pub mod upstream;

use config::{AccessLog, Balance, ListenerConfig, Mode, PartialOptions};

/// This binary's identity: name, default admin address, and the default
/// runtime (one thread; see [`binary`] for `--workers`).
pub const BINARY: Binary = Binary::new("ambassador", "0.0.0.0:9703");

/// [`BINARY`] with the runtime `--workers` asks for: 1 runs every
/// connection on the main thread (tokio's current-thread runtime), N > 1 a
/// multi-thread runtime with N workers, 0 one worker per core.
///
/// One thread is the default: on the small CPU limits sidecars get, the
/// work-stealing scheduler's cross-thread wake-ups cost more CPU per request
/// than a second core gives back (`cargo xtask bench amb-reverse`), and each
/// worker thread adds resident memory (`cargo xtask bench idle`).
pub const fn binary(workers: usize) -> Binary {
    match workers {
        1 => BINARY,
        n => BINARY.multi_thread(n),
    }
}

/// Command-line arguments; every flag has an `AMBASSADOR_` env twin. The
/// repeatable ones take one value per line in their env twin.
#[derive(Debug, Parser)]
#[command(
    name = "ambassador",
    version = podkit_runtime::VERSION,
    about = "A localhost proxy for the app: TCP forwarding, HTTP forward proxy with CONNECT, reverse proxy.",
    after_help = "Examples:\n  ambassador --tcp 127.0.0.1:5432=db.prod.svc:5432\n  ambassador --reverse 127.0.0.1:81=https://example.com\n  ambassador --http-forward 127.0.0.1:3128\n  ambassador --config /etc/ambassador.toml"
)]
pub struct Args {
    /// Where each value came from (flag, env, config file): first, before
    /// clap's derive takes the values out for the fields below.
    #[command(flatten)]
    pub sources: podkit_runtime::cli::ValueSources,

    /// A tcp listener: `LISTEN=UPSTREAM[,UPSTREAM...]`; LISTEN is `PORT`
    /// (loopback), `IP:PORT` or `[IPv6]:PORT`; UPSTREAM is `host:port` or
    /// `tls://host:port`.
    #[arg(
        long = "tcp",
        env = "AMBASSADOR_TCP",
        value_name = "LISTEN=HOST:PORT",
        value_delimiter = '\n',
        help_heading = "Listeners"
    )]
    pub tcp: Vec<String>,

    /// A reverse proxy listener: `LISTEN=URL[,URL...]`, e.g.
    /// `127.0.0.1:81=https://example.com/prefix`.
    #[arg(
        long = "reverse",
        env = "AMBASSADOR_REVERSE",
        value_name = "LISTEN=URL",
        value_delimiter = '\n',
        help_heading = "Listeners"
    )]
    pub reverse: Vec<String>,

    /// A forward proxy listener (absolute-form requests and CONNECT):
    /// LISTEN. Beyond loopback it needs --allow.
    #[arg(
        long = "http-forward",
        env = "AMBASSADOR_HTTP_FORWARD",
        value_name = "LISTEN",
        value_delimiter = '\n',
        help_heading = "Listeners"
    )]
    pub http_forward: Vec<String>,

    /// A TOML or YAML file: top-level keys are flags (`connect-timeout =
    /// "2s"`, `tcp = ["81=db:5432"]`), below flags and env; `[[listener]]`
    /// tables (mode, listen, upstreams, options) add listeners.
    #[arg(long, env = "AMBASSADOR_CONFIG", value_name = "PATH", help_heading = "Listeners")]
    pub config: Option<PathBuf>,

    /// Forward proxy destinations allowed: host glob, IP or CIDR, with
    /// optional ports (`*.example.com:443`, `10.0.0.0/8:80,8000-8999`).
    #[arg(
        long,
        env = "AMBASSADOR_ALLOW",
        value_name = "RULE",
        value_delimiter = '\n',
        help_heading = "Forward proxy"
    )]
    pub allow: Vec<String>,

    /// A header added to every reverse proxy request: `Name: value`.
    #[arg(
        long = "add-header",
        env = "AMBASSADOR_ADD_HEADER",
        value_name = "NAME: VALUE",
        value_delimiter = '\n',
        hide_env_values = true,
        help_heading = "Reverse proxy"
    )]
    pub add_header: Vec<String>,

    /// Endpoint choice: round-robin or least-conn [default: round-robin].
    #[arg(long, env = "AMBASSADOR_BALANCE", value_enum, help_heading = "Upstreams")]
    pub balance: Option<Balance>,

    /// Upstream connect timeout (TCP plus TLS handshake) [default: 5s].
    #[arg(long, env = "AMBASSADOR_CONNECT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, help_heading = "Timeouts")]
    pub connect_timeout: Option<Duration>,

    /// Close connections with no traffic for this long; 0 never [default: 10m].
    #[arg(long, env = "AMBASSADOR_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, help_heading = "Timeouts")]
    pub idle_timeout: Option<Duration>,

    /// Longest wait for an upstream's response headers; 504 after it [default: 60s].
    #[arg(long, env = "AMBASSADOR_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, help_heading = "Timeouts")]
    pub request_timeout: Option<Duration>,

    /// Longest time a client may take to send request headers (slowloris
    /// cut); 0 never [default: 10s].
    #[arg(long, env = "AMBASSADOR_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, help_heading = "Timeouts")]
    pub header_read_timeout: Option<Duration>,

    /// How often upstream names are resolved again [default: 5s].
    #[arg(long, env = "AMBASSADOR_DNS_REFRESH", value_name = "DURATION", value_parser = parse_duration, help_heading = "Upstreams")]
    pub dns_refresh: Option<Duration>,

    /// A hosts file consulted before the system resolver, read again on
    /// every resolution (pin or move names without a restart).
    #[arg(long, env = "AMBASSADOR_HOSTS_FILE", value_name = "PATH", help_heading = "Upstreams")]
    pub hosts_file: Option<PathBuf>,

    /// Consecutive connect failures that eject an endpoint; 0 never [default: 3].
    #[arg(long, env = "AMBASSADOR_EJECT_AFTER", value_name = "N", help_heading = "Upstreams")]
    pub eject_after: Option<u32>,

    /// How long an ejected endpoint is skipped [default: 10s].
    #[arg(long, env = "AMBASSADOR_EJECT_FOR", value_name = "DURATION", value_parser = parse_duration, help_heading = "Upstreams")]
    pub eject_for: Option<Duration>,

    /// Further endpoints tried when a connect fails [default: 2].
    #[arg(
        long,
        env = "AMBASSADOR_CONNECT_RETRIES",
        value_name = "N",
        help_heading = "Upstreams"
    )]
    pub connect_retries: Option<u32>,

    /// Most concurrent client connections per listener; more are refused
    /// (HTTP: 503) [default: 4096].
    #[arg(long, env = "AMBASSADOR_MAX_CONNECTIONS", value_name = "N", help_heading = "Limits")]
    pub max_connections: Option<usize>,

    /// Largest request head (line plus headers); 431 beyond [default: 64KiB].
    #[arg(long, env = "AMBASSADOR_MAX_HEADER_SIZE", value_name = "SIZE", value_parser = parse_size, help_heading = "Limits")]
    pub max_header_size: Option<u64>,

    /// Largest request body; 413 beyond; 0 no limit [default: 0].
    #[arg(long, env = "AMBASSADOR_MAX_REQUEST_BODY", value_name = "SIZE", value_parser = parse_size, help_heading = "Limits")]
    pub max_request_body: Option<u64>,

    /// TLS origination for `tls://` and `https://` upstreams:
    /// `--tls-ca-file`, `--tls-client-cert`, `--tls-client-key`,
    /// `--tls-insecure`, `--tls-server-name`.
    #[command(flatten)]
    pub tls: TlsArgs<AmbassadorTls>,

    /// After SIGTERM, keep accepting for this long (the app's last calls
    /// still work), then drain; at most half the grace period [default: 2s].
    #[arg(long, env = "AMBASSADOR_DRAIN_DELAY", value_name = "DURATION", value_parser = parse_duration, help_heading = "Operations")]
    pub drain_delay: Option<Duration>,

    /// PROXY protocol header sent to tcp-mode upstreams first, so they see
    /// the client's address: off, v1 or v2 [default: off].
    #[arg(long, env = "AMBASSADOR_PROXY_PROTOCOL", value_enum, help_heading = "Upstreams")]
    pub proxy_protocol: Option<proxy_protocol::ProxyProtocol>,

    /// Access log lines on stdout: off, text or json [default: off].
    #[arg(long, env = "AMBASSADOR_ACCESS_LOG", value_enum, help_heading = "Operations")]
    pub access_log: Option<AccessLog>,

    /// Runtime threads serving connections: 1 runs everything on one
    /// thread (least CPU per request and memory), N more spreads connections
    /// over N threads, 0 one per core.
    #[arg(
        long,
        env = "AMBASSADOR_WORKERS",
        value_name = "N",
        default_value_t = 1,
        help_heading = "Operations"
    )]
    pub workers: usize,

    /// Flags shared by every podkit binary.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The ambassador's TLS flags: env twins `AMBASSADOR_TLS_*`, an SNI
/// override, and the older `--ca-file`, `--client-cert`, `--client-key`,
/// `--insecure` (and their `AMBASSADOR_*` env names and config keys) still
/// working, hidden.
#[derive(Debug)]
pub struct AmbassadorTls;

impl TlsFlags for AmbassadorTls {
    const ENV_PREFIX: &'static str = "AMBASSADOR_";
    const HELP_HEADING: &'static str = "TLS origination";
    const SERVER_NAME: bool = true;
    const LEGACY: &'static [Legacy] = &[
        Legacy {
            option: TlsOption::CaFile,
            long: "ca-file",
            env: "AMBASSADOR_CA_FILE",
        },
        Legacy {
            option: TlsOption::ClientCert,
            long: "client-cert",
            env: "AMBASSADOR_CLIENT_CERT",
        },
        Legacy {
            option: TlsOption::ClientKey,
            long: "client-key",
            env: "AMBASSADOR_CLIENT_KEY",
        },
        Legacy {
            option: TlsOption::Insecure,
            long: "insecure",
            env: "AMBASSADOR_INSECURE",
        },
    ];
}

impl podkit_runtime::cli::Cli for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// The validated configuration [`run`] works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listeners.
    pub listeners: Vec<ListenerConfig>,
    /// After SIGTERM, how long listeners keep accepting (the runtime's
    /// drain caps it at half the grace period).
    pub drain_delay: Duration,
    /// Extra hosts file.
    pub hosts_file: Option<PathBuf>,
    /// Access log format.
    pub access_log: AccessLog,
    /// The admin address, which the forward proxy refuses as a destination.
    pub admin_addr: Option<SocketAddr>,
}

impl Config {
    /// Validates the arguments; an error here exits 64.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        Self::build(args).map_err(|e| anyhow::Error::new(ConfigError::new(e)))
    }

    fn build(args: Args) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => config::read_file(path)?,
            None => config::FileConfig::default(),
        };
        // Every value clap has, the file's top level included (as flag
        // defaults), for flag listeners; what flags and env gave, which a
        // `[[listener]]` section's own values do not override.
        let flags = flag_options(&args)?;
        let given = flags.clone().given_only(|flag| args.given(flag));
        let mut listeners: Vec<ListenerConfig> = Vec::new();
        let flag_listeners = [
            ("tcp", &args.tcp),
            ("reverse", &args.reverse),
            ("http-forward", &args.http_forward),
        ];
        for (flag, values) in flag_listeners {
            for value in values.iter().filter(|v| !v.trim().is_empty()) {
                let (listen, mode) = config::parse_listener_flag(flag, value).map_err(|e| format!("--{flag}: {e}"))?;
                let options = flags.clone().resolve().map_err(|e| format!("--{flag} {value}: {e}"))?;
                listeners.push(listener(listen, mode, options));
            }
        }
        for (i, l) in file.listeners.iter().enumerate() {
            // A flag listener on the same address wins over the file's.
            if listeners.iter().any(|f| f.listen == l.listen && l.listen.port() != 0) {
                continue;
            }
            let options = given
                .clone()
                .or(l.options.clone())
                .or(flags.clone())
                .resolve()
                .map_err(|e| format!("config listener #{}: {e}", i + 1))?;
            listeners.push(listener(l.listen, l.mode.clone(), options));
        }
        if listeners.is_empty() {
            return Err(
                "no listener: give --tcp, --reverse, --http-forward or a --config file with [[listener]]".into(),
            );
        }
        for l in &listeners {
            if l.listen.port() != 0 && listeners.iter().filter(|o| o.listen == l.listen).count() > 1 {
                return Err(format!("two listeners on {}", l.listen));
            }
            if l.mode == Mode::Forward && !is_loopback(l.listen.ip()) && l.options.allow.is_empty() {
                return Err(format!(
                    "the forward proxy on {} listens beyond loopback and would be an open relay: give --allow rules (or listen on 127.0.0.1)",
                    l.listen
                ));
            }
            // Fail on unreadable TLS files now, not at the first request.
            if matches!(&l.mode, Mode::Tcp { upstreams } | Mode::Reverse { upstreams, .. } if upstreams.iter().any(|t| t.tls))
            {
                l.options
                    .tls()
                    .load()
                    .map_err(|e| format!("{}: {}", l.name, e.with_flag()))?;
            }
        }
        Ok(Self {
            listeners,
            drain_delay: args.drain_delay.unwrap_or(Duration::from_secs(2)),
            hosts_file: args.hosts_file,
            access_log: args.access_log.unwrap_or_default(),
            admin_addr: match args.common.admin_addr {
                AdminAddr::On(addr) => Some(addr),
                AdminAddr::Off => None,
            },
        })
    }
}

impl Args {
    /// Whether the command line or the environment gave the option behind
    /// `flag` (not a default, nor the config file's top level).
    fn given(&self, flag: config::Flag) -> bool {
        match flag {
            config::Flag::Arg(id) => self.sources.given(id),
            config::Flag::Tls(option) => TlsArgs::<AmbassadorTls>::arg_ids(option).any(|id| self.sources.given(&id)),
        }
    }
}

/// The listener options as flags, env and the config file's top level give
/// them (the runtime made the top-level keys flag defaults).
fn flag_options(args: &Args) -> Result<PartialOptions, String> {
    let tls = &args.tls.options;
    Ok(PartialOptions {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        request_timeout: args.request_timeout,
        header_read_timeout: args.header_read_timeout,
        dns_refresh: args.dns_refresh,
        balance: args.balance,
        eject_after: args.eject_after,
        eject_for: args.eject_for,
        connect_retries: args.connect_retries,
        max_connections: args.max_connections,
        max_header_size: args
            .max_header_size
            .map(|s| usize::try_from(s).map_err(|_| "--max-header-size is too large".to_owned()))
            .transpose()?,
        max_request_body: args.max_request_body,
        allow: if args.allow.is_empty() {
            None
        } else {
            Some(
                args.allow
                    .iter()
                    .filter(|r| !r.trim().is_empty())
                    .map(|r| r.parse().map_err(|e| format!("--allow: {e}")))
                    .collect::<Result<_, String>>()?,
            )
        },
        headers: if args.add_header.is_empty() {
            None
        } else {
            Some(
                args.add_header
                    .iter()
                    .filter(|h| !h.trim().is_empty())
                    .map(|h| config::parse_header(h).map_err(|e| format!("--add-header: {e}")))
                    .collect::<Result<_, String>>()?,
            )
        },
        tls_ca_file: tls.ca_file.clone().map(Some),
        tls_client_cert: tls.client_cert.clone().map(Some),
        tls_client_key: tls.client_key.clone().map(Some),
        tls_insecure: Some(tls.insecure),
        tls_server_name: tls.server_name.clone().map(Some),
        proxy_protocol: args.proxy_protocol,
    })
}

fn listener(listen: SocketAddr, mode: Mode, options: config::Options) -> ListenerConfig {
    ListenerConfig {
        name: format!("{}:{listen}", mode.name()),
        listen,
        mode,
        options,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    policy::canonical(ip).is_loopback()
}

/// What an accepted connection is handed to.
#[derive(Clone)]
pub(crate) enum Handler {
    Tcp(Arc<tcp::TcpProxy>),
    Http(http_conn::HttpProxy),
}

struct Bound {
    config: ListenerConfig,
    listener: TcpListener,
}

/// Binds every listener, then serves until shutdown, on the runtime's
/// drain: on SIGTERM listeners keep accepting for the drain delay, then
/// stop; open connections (tasks on `ctx.shutdown`) get until its drain
/// deadline, shortly before the grace period ends, and what is left then is
/// closed.
pub async fn run(config: Config, ctx: Context) -> anyhow::Result<()> {
    ctx.shutdown.set_drain_delay(config.drain_delay);
    let mut bound = Vec::new();
    for l in &config.listeners {
        let listener = TcpListener::bind(l.listen)
            .await
            .with_context(|| format!("cannot listen on {} for {}", l.listen, l.name))?;
        bound.push(Bound {
            config: l.clone(),
            listener,
        });
    }
    let mut own: Vec<SocketAddr> = bound.iter().filter_map(|b| b.listener.local_addr().ok()).collect();
    own.extend(config.admin_addr);
    // A wildcard listener is reachable at every local address (the pod IP).
    if own.iter().any(|a| a.ip().is_unspecified()) {
        let locals = policy::local_addresses();
        let wildcard: Vec<u16> = own
            .iter()
            .filter(|a| a.ip().is_unspecified())
            .map(SocketAddr::port)
            .collect();
        for port in wildcard {
            own.extend(locals.iter().map(|ip| SocketAddr::new(*ip, port)));
        }
    }

    let stats = stats::Stats::register(&ctx.metrics);
    let resolver = upstream::Resolver::new(config.hosts_file.clone());
    let drain = &ctx.shutdown;
    // DNS refreshes end when the listeners stop accepting.
    let refresh_stop = drain.stop_accepting_token();
    let access = net::AccessLogger(config.access_log);
    let via = forward::via_token();

    // Builds a listener's handler; a reload builds new ones with it.
    let build = {
        let (stats, resolver, ctx, drain, via) =
            (stats.clone(), resolver.clone(), ctx.clone(), drain.clone(), via.clone());
        move |l: &ListenerConfig,
              access: net::AccessLogger,
              refresh_stop: &tokio_util::sync::CancellationToken|
              -> anyhow::Result<Handler> {
            let lstats = stats.listener(&l.name, l.mode.name());
            let http_listener =
                || http_conn::HttpListener::new(l.name.clone(), &l.options, lstats.clone(), access, drain.clone());
            let handler = match &l.mode {
                Mode::Tcp { upstreams } => {
                    let upstream = make_upstream(upstreams, l, &resolver, &ctx, &stats, &[])?;
                    upstream.spawn_refresh(refresh_stop.clone());
                    Handler::Tcp(Arc::new(tcp::TcpProxy {
                        name: l.name.clone(),
                        upstream,
                        idle_timeout: l.options.idle_timeout,
                        stats: lstats.clone(),
                        access,
                        proxy_protocol: l.options.proxy_protocol,
                    }))
                }
                Mode::Reverse {
                    upstreams,
                    prefix,
                    host,
                } => {
                    let upstream = make_upstream(upstreams, l, &resolver, &ctx, &stats, &[b"h2", b"http/1.1"])?;
                    upstream.spawn_refresh(refresh_stop.clone());
                    let tls = upstreams.first().is_some_and(|t| t.tls);
                    let proxy = reverse::ReverseProxy::new(
                        http_listener(),
                        upstream,
                        tls,
                        host,
                        prefix.clone(),
                        l.options.headers.clone(),
                    )
                    .context("upstream host")?;
                    Handler::Http(http_conn::HttpProxy::Reverse(Arc::new(proxy)))
                }
                Mode::Forward => {
                    let dialer = forward::Dialer {
                        resolver: resolver.clone(),
                        policy: Arc::new(policy::Policy::new(l.options.allow.clone(), own.clone())),
                        connect_timeout: l.options.connect_timeout,
                    };
                    let proxy = forward::ForwardProxy::new(http_listener(), dialer, via.clone());
                    Handler::Http(http_conn::HttpProxy::Forward(Arc::new(proxy)))
                }
            };
            Ok(handler)
        }
    };
    let mut reloadable = Vec::new();
    for b in bound {
        let local = b.listener.local_addr().context("listener address")?;
        let l = &b.config;
        let lstats = stats.listener(&l.name, l.mode.name());
        let stop = refresh_stop.child_token();
        let handler = build(l, access, &stop)?;
        let (current, handlers) = tokio::sync::watch::channel((handler, Arc::new(l.options.clone())));
        reloadable.push(reload::Listener::new(l.clone(), current, stop));
        tracing::info!(listener = %l.name, mode = l.mode.name(), addr = %local, "Listening.");
        drain.spawn(accept_loop(b.listener, l.clone(), handlers, lstats, drain.clone()));
    }
    reload::spawn(&config, &ctx, reloadable, refresh_stop.clone(), build);

    // Keeps the timer driver's next wake-up within a second. Without it,
    // each per-request timer (header read, request timeout) that is due
    // sooner than every other timer makes tokio wake its driver through an
    // eventfd write: a syscall and an extra poll for about a quarter of
    // all requests (measured with strace under wrk).
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    });

    // The accept loops and every connection are on the runtime's tracker,
    // which its drain waits for.
    drain.stop_accepting().await;
    Ok(())
}

fn make_upstream(
    targets: &[config::UpstreamSpec],
    l: &ListenerConfig,
    resolver: &upstream::Resolver,
    ctx: &Context,
    stats: &stats::Stats,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<upstream::Upstream>> {
    let tls = if targets.iter().any(|t| t.tls) {
        let error = |e: podkit_tls::TlsError| ConfigError::new(format!("{}: {}", l.name, e.with_flag()));
        let tls = l.options.tls().load().map_err(error)?;
        Some(upstream::TlsOrigin {
            connector: TlsConnector::from(tls.client_config(alpn).map_err(error)?),
            server_name: tls.server_name,
        })
    } else {
        None
    };
    let name = upstream::Upstream::label(targets);
    Ok(upstream::Upstream::new(
        targets.to_vec(),
        (&l.options).into(),
        resolver.clone(),
        tls,
        &ctx.readiness,
        stats.upstream(&name),
        name,
    ))
}

async fn accept_loop(
    listener: TcpListener,
    l: ListenerConfig,
    mut handlers: tokio::sync::watch::Receiver<(Handler, Arc<config::Options>)>,
    stats: stats::ListenerStats,
    drain: Shutdown,
) {
    let limit = Arc::new(Semaphore::new(l.options.max_connections));
    // The handler and the options (shared by every connection of the
    // listener: cloned per connection, they cost an allocation for each list
    // they hold); a config reload replaces them for new connections.
    let (mut handler, mut options) = handlers.borrow_and_update().clone();
    loop {
        let accepted = tokio::select! {
            // Fixed order (no random pick per poll); the stop first, so a
            // flood of connections cannot hide it.
            biased;
            () = drain.stop_accepting() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(listener = %l.name, %err, "Accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.connections.inc();
        if handlers.has_changed().unwrap_or(false) {
            (handler, options) = handlers.borrow_and_update().clone();
        }
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            stats.rejected_limit.inc();
            tracing::debug!(listener = %l.name, client = %peer, "Connection limit reached; refusing.");
            if !matches!(handler, Handler::Tcp(_)) {
                tokio::spawn(refuse_busy(stream));
            }
            continue;
        };
        let handler = handler.clone();
        let slot = http_conn::ConnSlot::new(permit, stats.active.clone());
        let (drain2, stats2, options) = (drain.clone(), stats.clone(), Arc::clone(&options));
        drain.spawn(async move {
            match handler {
                Handler::Tcp(proxy) => proxy.handle(stream, peer, &drain2).await,
                Handler::Http(proxy) => {
                    let _ = stream.set_nodelay(true);
                    http_conn::serve_connection(stream, peer, &options, &drain2, &stats2, slot.clone(), proxy).await
                }
            }
            drop(slot);
        });
    }
    tracing::debug!(listener = %l.name, "Stopped accepting.");
}

async fn refuse_busy(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "too many connections to this proxy; try again\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let mut all = vec!["ambassador", "--admin-addr", "off", "--tcp", "1=127.0.0.1:2"];
        all.extend_from_slice(args);
        Args::try_parse_from(all).unwrap()
    }

    #[test]
    fn every_option_flag_is_an_argument_and_sources_are_recorded() {
        use clap::CommandFactory;
        let command = Args::command();
        for flag in config::OPTION_FLAGS {
            if let config::Flag::Arg(id) = flag {
                assert!(command.get_arguments().any(|a| a.get_id() == *id), "no argument {id}");
            }
        }
        let args = parse(&["--request-timeout", "60s", "--ca-file", "/ca.pem"]);
        assert!(
            args.given(config::Flag::Arg("request_timeout")),
            "equal to the default, still given"
        );
        assert!(
            args.given(config::Flag::Tls(TlsOption::CaFile)),
            "an old spelling counts"
        );
        assert!(!args.given(config::Flag::Arg("connect_timeout")));
        assert!(!args.given(config::Flag::Tls(TlsOption::Insecure)));
    }

    #[test]
    fn workers_pick_the_runtime() {
        assert_eq!(parse(&[]).workers, 1, "one thread by default");
        assert_eq!(binary(1).worker_threads, None, "1: the current-thread runtime");
        assert_eq!(binary(0).worker_threads, Some(0), "0: one worker per core");
        assert_eq!(binary(parse(&["--workers", "3"]).workers).worker_threads, Some(3));
        assert!(Args::try_parse_from(["ambassador", "--admin-addr", "off", "--workers", "-1"]).is_err());
    }
}
