//! Listener specs and per-listener options: the flag syntax
//! (`--tcp 127.0.0.1:81=db:5432`), the TOML config file, and their merge with
//! precedence flag > env > file > default.
//!
//! Everything here is pure parsing and validation; nothing binds or resolves.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::policy::AllowRule;
use crate::proxy_protocol::ProxyProtocol;

/// What a listener does with the connections it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Copies bytes both ways to one of the upstream endpoints.
    Tcp {
        /// The upstream endpoints (`host:port`, optionally `tls://`).
        upstreams: Vec<Target>,
    },
    /// An HTTP reverse proxy to a fixed upstream.
    Reverse {
        /// The upstream endpoints; they share scheme and path prefix.
        upstreams: Vec<Target>,
        /// The path prefix put in front of every request path (`/api`), or
        /// empty.
        prefix: String,
        /// The Host header sent upstream (the first URL's authority).
        host: String,
    },
    /// An HTTP forward proxy: absolute-form requests and CONNECT tunnels.
    Forward,
}

impl Mode {
    /// The mode's name as flags, logs and metrics spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp { .. } => "tcp",
            Self::Reverse { .. } => "reverse",
            Self::Forward => "http-forward",
        }
    }
}

/// One upstream endpoint as configured: a name (or IP) and port, with or
/// without TLS origination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether the ambassador speaks TLS to this endpoint.
    pub tls: bool,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls://" } else { "" };
        if self.host.contains(':') {
            write!(f, "{scheme}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}{}:{}", self.host, self.port)
        }
    }
}

/// How a listener picks an endpoint for a new upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest open connections.
    LeastConn,
}

/// The format of access log lines (written to stdout, one per request or
/// tunnel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLog {
    /// No access log.
    #[default]
    Off,
    /// `key=value` text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS origination settings for `tls://` and `https://` upstreams.
pub use podkit_tls::TlsOptions;

/// The effective options of one listener, after the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Longest time to establish an upstream TCP connection (and TLS
    /// handshake).
    pub connect_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Longest time from request to upstream response headers (HTTP modes);
    /// 504 after it.
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's headers (slowloris
    /// cut).
    pub header_read_timeout: Duration,
    /// How often upstream names are resolved again.
    pub dns_refresh: Duration,
    /// Endpoint choice.
    pub balance: Balance,
    /// Consecutive connect failures that eject an endpoint.
    pub eject_after: u32,
    /// How long an ejected endpoint is skipped.
    pub eject_for: Duration,
    /// Further endpoints tried after a failed connect.
    pub connect_retries: u32,
    /// Most concurrent client connections; further ones wait in the kernel
    /// backlog.
    pub max_connections: usize,
    /// Largest request head (request line plus headers) accepted; 431 beyond.
    pub max_header_size: usize,
    /// Largest request body accepted; 413 beyond (0: no limit).
    pub max_request_body: u64,
    /// Forward proxy destinations allowed (empty: any, except the default
    /// denials).
    pub allow: Vec<AllowRule>,
    /// Headers added to every upstream request (reverse mode).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// TLS origination.
    pub tls: TlsOptions,
    /// PROXY protocol header sent to tcp upstreams.
    pub proxy_protocol: ProxyProtocol,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            dns_refresh: Duration::from_secs(5),
            balance: Balance::RoundRobin,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            connect_retries: 2,
            max_connections: 4096,
            max_header_size: 64 << 10,
            max_request_body: 0,
            allow: Vec::new(),
            headers: Vec::new(),
            tls: TlsOptions::default(),
            proxy_protocol: ProxyProtocol::Off,
        }
    }
}

/// One listener: where it listens and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// A short name for logs and metrics (`tcp:127.0.0.1:81`).
    pub name: String,
    /// The address to bind (port 0 picks one; the log says which).
    pub listen: SocketAddr,
    /// The mode.
    pub mode: Mode,
    /// Its options.
    pub options: Options,
}

/// Options as given by flags/env or a config file: unset fields fall through
/// to the next source.
#[derive(Debug, Clone, Default)]
pub struct PartialOptions {
    /// See [`Options::connect_timeout`].
    pub connect_timeout: Option<Duration>,
    /// See [`Options::idle_timeout`].
    pub idle_timeout: Option<Duration>,
    /// See [`Options::request_timeout`].
    pub request_timeout: Option<Duration>,
    /// See [`Options::header_read_timeout`].
    pub header_read_timeout: Option<Duration>,
    /// See [`Options::dns_refresh`].
    pub dns_refresh: Option<Duration>,
    /// See [`Options::balance`].
    pub balance: Option<Balance>,
    /// See [`Options::eject_after`].
    pub eject_after: Option<u32>,
    /// See [`Options::eject_for`].
    pub eject_for: Option<Duration>,
    /// See [`Options::connect_retries`].
    pub connect_retries: Option<u32>,
    /// See [`Options::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Options::max_header_size`].
    pub max_header_size: Option<usize>,
    /// See [`Options::max_request_body`].
    pub max_request_body: Option<u64>,
    /// See [`Options::allow`].
    pub allow: Option<Vec<AllowRule>>,
    /// See [`Options::headers`].
    pub headers: Option<Vec<(HeaderName, HeaderValue)>>,
    /// See [`TlsOptions::ca_file`].
    pub ca_file: Option<PathBuf>,
    /// See [`TlsOptions::client_cert`].
    pub client_cert: Option<PathBuf>,
    /// See [`TlsOptions::client_key`].
    pub client_key: Option<PathBuf>,
    /// See [`TlsOptions::insecure`].
    pub insecure: Option<bool>,
    /// See [`TlsOptions::server_name`].
    pub server_name: Option<String>,
    /// See [`Options::proxy_protocol`].
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl PartialOptions {
    /// Fills every unset field of `self` from `lower` (a source of lower
    /// precedence).
    pub fn or(self, lower: &Self) -> Self {
        Self {
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            request_timeout: self.request_timeout.or(lower.request_timeout),
            header_read_timeout: self.header_read_timeout.or(lower.header_read_timeout),
            dns_refresh: self.dns_refresh.or(lower.dns_refresh),
            balance: self.balance.or(lower.balance),
            eject_after: self.eject_after.or(lower.eject_after),
            eject_for: self.eject_for.or(lower.eject_for),
            connect_retries: self.connect_retries.or(lower.connect_retries),
            max_connections: self.max_connections.or(lower.max_connections),
            max_header_size: self.max_header_size.or(lower.max_header_size),
            max_request_body: self.max_request_body.or(lower.max_request_body),
            allow: self.allow.or_else(|| lower.allow.clone()),
            headers: self.headers.or_else(|| lower.headers.clone()),
            ca_file: self.ca_file.or_else(|| lower.ca_file.clone()),
            client_cert: self.client_cert.or_else(|| lower.client_cert.clone()),
            client_key: self.client_key.or_else(|| lower.client_key.clone()),
            insecure: self.insecure.or(lower.insecure),
            server_name: self.server_name.or_else(|| lower.server_name.clone()),
            proxy_protocol: self.proxy_protocol.or(lower.proxy_protocol),
        }
    }

    /// The effective options: unset fields take their defaults.
    pub fn resolve(self) -> Result<Options, String> {
        let d = Options::default();
        let options = Options {
            connect_timeout: self.connect_timeout.unwrap_or(d.connect_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            header_read_timeout: self.header_read_timeout.unwrap_or(d.header_read_timeout),
            dns_refresh: self.dns_refresh.unwrap_or(d.dns_refresh),
            balance: self.balance.unwrap_or(d.balance),
            eject_after: self.eject_after.unwrap_or(d.eject_after),
            eject_for: self.eject_for.unwrap_or(d.eject_for),
            connect_retries: self.connect_retries.unwrap_or(d.connect_retries),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_header_size: self.max_header_size.unwrap_or(d.max_header_size),
            max_request_body: self.max_request_body.unwrap_or(d.max_request_body),
            allow: self.allow.unwrap_or_default(),
            headers: self.headers.unwrap_or_default(),
            tls: TlsOptions {
                ca_file: self.ca_file,
                client_cert: self.client_cert,
                client_key: self.client_key,
                insecure: self.insecure.unwrap_or(false),
                server_name: self.server_name,
            },
            proxy_protocol: self.proxy_protocol.unwrap_or_default(),
        };
        if options.connect_timeout.is_zero() {
            return Err("connect_timeout must be above 0".into());
        }
        if options.dns_refresh.is_zero() {
            return Err("dns_refresh must be above 0".into());
        }
        if options.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if options.max_header_size < 1024 {
            return Err("max_header_size must be at least 1KiB".into());
        }
        options.tls.check().map_err(|e| e.with_flag())?;
        Ok(options)
    }
}

/// Parses a listen address: `PORT` (loopback), `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = s.strip_prefix("localhost:").and_then(|p| p.parse::<u16>().ok()) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not a listen address like 8080, 127.0.0.1:81 or [::1]:81"))
}

/// Parses `host:port`, `[v6]:port` or `tls://host:port`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    let (tls, rest) = match s.split_once("://") {
        Some(("tls", rest)) => (true, rest),
        Some(("tcp", rest)) => (false, rest),
        Some((scheme, _)) => return Err(format!("`{s}`: unknown scheme `{scheme}://` (use tcp:// or tls://)")),
        None => (false, s),
    };
    let (host, port) = split_host_port(rest).ok_or_else(|| format!("`{s}` is not an upstream like db.svc:5432"))?;
    Ok(Target {
        host,
        port: port.ok_or_else(|| format!("`{s}` has no port (write host:port)"))?,
        tls,
    })
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when the host is empty or
/// not a plausible host name, or the port is not a number.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (host.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port.parse().ok()?)),
            None => (s.to_owned(), None),
        }
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some((host.to_ascii_lowercase(), port))
}

/// Parses an `http://` or `https://` URL into a target (default ports 80 and
/// 443), the path prefix (no trailing slash) and the authority for Host.
pub fn parse_url(s: &str) -> Result<(Target, String, String), String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not an upstream URL like http://api.svc:8080 or https://example.com/prefix");
    let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(format!("`{s}`: scheme must be http or https")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!("`{s}`: an upstream URL takes no query or fragment"));
    }
    let (host, port) = split_host_port(authority).ok_or_else(bad)?;
    let port = port.unwrap_or(if tls { 443 } else { 80 });
    let prefix = path.trim_end_matches('/').to_owned();
    if !prefix.is_empty() && http::uri::PathAndQuery::try_from(prefix.as_str()).is_err() {
        return Err(bad());
    }
    Ok((Target { host, port, tls }, prefix, authority.to_ascii_lowercase()))
}

/// Parses a listener given on the command line: `LISTEN=UPSTREAM[,UPSTREAM]`
/// for tcp and reverse, `LISTEN` for http-forward.
pub fn parse_listener_flag(flag: &str, value: &str) -> Result<(SocketAddr, Mode), String> {
    let value = value.trim();
    match flag {
        "http-forward" => Ok((parse_listen(value)?, Mode::Forward)),
        _ => {
            let (listen, upstreams) = value
                .split_once('=')
                .ok_or_else(|| format!("`{value}` is not LISTEN=UPSTREAM (e.g. 127.0.0.1:81=db.svc:5432)"))?;
            let ups: Vec<&str> = upstreams.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            Ok((parse_listen(listen)?, build_mode(flag, &ups)?))
        }
    }
}

/// Builds a tcp or reverse mode from its upstream strings.
pub fn build_mode(mode: &str, upstreams: &[&str]) -> Result<Mode, String> {
    if upstreams.is_empty() && mode != "http-forward" {
        return Err(format!("a {mode} listener needs at least one upstream"));
    }
    match mode {
        "tcp" => Ok(Mode::Tcp {
            upstreams: upstreams.iter().map(|u| parse_target(u)).collect::<Result<_, _>>()?,
        }),
        "reverse" => {
            let mut targets = Vec::new();
            let mut first: Option<(String, String, bool)> = None;
            for url in upstreams {
                let (target, prefix, authority) = parse_url(url)?;
                match &first {
                    None => first = Some((prefix, authority, target.tls)),
                    Some((p, _, tls)) if *p != prefix || *tls != target.tls => {
                        return Err(format!(
                            "`{url}`: all upstream URLs of a listener share scheme and path"
                        ));
                    }
                    Some(_) => {}
                }
                targets.push(target);
            }
            let (prefix, host, _) = first.unwrap_or_default();
            Ok(Mode::Reverse {
                upstreams: targets,
                prefix,
                host,
            })
        }
        "http-forward" => {
            if upstreams.is_empty() {
                Ok(Mode::Forward)
            } else {
                Err("an http-forward listener takes no upstreams".into())
            }
        }
        other => Err(format!("unknown mode `{other}` (use tcp, reverse or http-forward)")),
    }
}

/// Parses `Name: value` into a header pair.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a header like `X-Api-Key: value`"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|_| format!("`{}` is not a header name", name.trim()))?;
    let value =
        HeaderValue::try_from(value.trim()).map_err(|_| format!("the value of header `{name}` is not valid"))?;
    Ok((name, value))
}

/// A listener as the config file describes it.
#[derive(Debug, Clone)]
pub struct FileListener {
    /// Listen address.
    pub listen: SocketAddr,
    /// Mode.
    pub mode: Mode,
    /// Its own options.
    pub options: PartialOptions,
}

/// What the ambassador itself reads from a config file. Top-level keys are
/// flags (`connect-timeout = "2s"`, `tcp = ["81=db:5432"]`), which the
/// runtime turns into flag defaults; `[[listener]]` tables are listeners
/// with options of their own.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    /// The top-level option values (to tell them from flags and env, which
    /// a listener's own options do not override).
    pub top: PartialOptions,
    /// The listeners.
    pub listeners: Vec<FileListener>,
}

/// The top-level keys that are per-listener options (the other top-level
/// keys are flags the runtime has checked).
const OPTION_KEYS: &[&str] = &[
    "connect_timeout",
    "idle_timeout",
    "request_timeout",
    "header_read_timeout",
    "dns_refresh",
    "balance",
    "eject_after",
    "eject_for",
    "connect_retries",
    "max_connections",
    "max_header_size",
    "max_request_body",
    "allow",
    "add_header",
    "tls_ca_file",
    "tls_client_cert",
    "tls_client_key",
    "tls_insecure",
    "tls_server_name",
    "ca_file",
    "client_cert",
    "client_key",
    "insecure",
    "proxy_protocol",
];

/// Reads the ambassador's part of a TOML or YAML config file.
pub fn read_file(path: &Path) -> Result<FileConfig, String> {
    let map: toml::Table = podkit_runtime::config_file::read(path)?;
    from_table(map).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Parses the text of a TOML config file (tests, and `from_table`).
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    from_table(toml::from_str(text).map_err(|e| e.to_string())?)
}

fn normalize(t: toml::Table) -> toml::Table {
    t.into_iter().map(|(k, v)| (k.replace('-', "_"), v)).collect()
}

/// Takes the listeners and the top-level options out of a parsed file.
pub fn from_table(table: toml::Table) -> Result<FileConfig, String> {
    let mut table = normalize(table);
    let listeners = match table.remove("listener") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => return Err("`listener` must be an array of tables ([[listener]])".into()),
    };
    let mut top = toml::Table::new();
    for (key, value) in table {
        if OPTION_KEYS.contains(&key.as_str()) {
            top.insert(key, value);
        } else if value.is_table() || value.as_array().is_some_and(|a| a.iter().any(toml::Value::is_table)) {
            return Err(format!("unknown section `{key}` (the ambassador knows [[listener]])"));
        }
    }
    let top = parse_options(top)?;
    let mut out = Vec::new();
    for (i, item) in listeners.into_iter().enumerate() {
        let toml::Value::Table(t) = item else {
            return Err(format!("listener #{}: must be a table", i + 1));
        };
        let mut t = normalize(t);
        let ctx = |e: String| format!("listener #{}: {e}", i + 1);
        let mode = take_str(&mut t, "mode")
            .map_err(ctx)?
            .ok_or_else(|| ctx("`mode` is missing".into()))?;
        let listen = take_str(&mut t, "listen")
            .map_err(ctx)?
            .ok_or_else(|| ctx("`listen` is missing".into()))?;
        let listen = parse_listen(&listen).map_err(ctx)?;
        let upstreams = match t.remove("upstreams") {
            None => Vec::new(),
            Some(toml::Value::String(s)) => vec![s],
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ctx("`upstreams` must be strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ctx("`upstreams` must be a list of strings".into())),
        };
        let ups: Vec<&str> = upstreams.iter().map(String::as_str).collect();
        let mode = build_mode(&mode, &ups).map_err(ctx)?;
        let options = parse_options(t).map_err(ctx)?;
        out.push(FileListener { listen, mode, options });
    }
    Ok(FileConfig { top, listeners: out })
}

/// The options of a listener from the file: its own value for each option,
/// unless a flag or env gave one (told apart from the file's top level,
/// which the runtime folded into the flag values).
pub fn section_options(flags: &PartialOptions, top: &PartialOptions, own: &PartialOptions) -> PartialOptions {
    macro_rules! pick {
        ($($f:ident),*) => {
            PartialOptions {
                $($f: if own.$f.is_some() && flags.$f == top.$f { own.$f.clone() } else { flags.$f.clone() },)*
            }
        };
    }
    pick!(
        connect_timeout,
        idle_timeout,
        request_timeout,
        header_read_timeout,
        dns_refresh,
        balance,
        eject_after,
        eject_for,
        connect_retries,
        max_connections,
        max_header_size,
        max_request_body,
        allow,
        headers,
        ca_file,
        client_cert,
        client_key,
        insecure,
        server_name,
        proxy_protocol
    )
}

fn take_str(t: &mut toml::Table, key: &str) -> Result<Option<String>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn duration(key: &str, s: &str) -> Result<Duration, String> {
    podkit_runtime::cli::parse_duration(s).map_err(|e| format!("{key}: {e}"))
}

/// Older names of TLS keys, accepted in config files (one name per key).
const OLD_TLS_KEYS: &[(&str, &str)] = &[
    ("ca_file", "tls_ca_file"),
    ("client_cert", "tls_client_cert"),
    ("client_key", "tls_client_key"),
    ("insecure", "tls_insecure"),
];

fn parse_options(mut t: toml::Table) -> Result<PartialOptions, String> {
    for (old, new) in OLD_TLS_KEYS {
        if t.contains_key(*old) && t.contains_key(*new) {
            return Err(format!("`{old}` and `{new}` are the same setting: keep `{new}` only"));
        }
    }
    let mut o = PartialOptions::default();
    let keys: Vec<String> = t.keys().cloned().collect();
    for key in keys {
        let value = t.remove(&key).unwrap_or(toml::Value::Boolean(false));
        let as_str = || {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`{key}` must be a string"))
        };
        let as_int = || {
            value
                .as_integer()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
        };
        let as_size = || -> Result<u64, String> {
            match &value {
                toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| format!("`{key}` must not be negative")),
                toml::Value::String(s) => podkit_runtime::cli::parse_size(s).map_err(|e| format!("{key}: {e}")),
                _ => Err(format!("`{key}` must be a size like 64KiB")),
            }
        };
        let as_list = || -> Result<Vec<String>, String> {
            value
                .as_array()
                .ok_or_else(|| format!("`{key}` must be a list of strings"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("`{key}` must be strings"))
                })
                .collect()
        };
        match key.as_str() {
            "connect_timeout" => o.connect_timeout = Some(duration(&key, &as_str()?)?),
            "idle_timeout" => o.idle_timeout = Some(duration(&key, &as_str()?)?),
            "request_timeout" => o.request_timeout = Some(duration(&key, &as_str()?)?),
            "header_read_timeout" => o.header_read_timeout = Some(duration(&key, &as_str()?)?),
            "dns_refresh" => o.dns_refresh = Some(duration(&key, &as_str()?)?),
            "eject_for" => o.eject_for = Some(duration(&key, &as_str()?)?),
            "balance" => {
                let s = as_str()?;
                o.balance = Some(
                    <Balance as clap::ValueEnum>::from_str(&s, true)
                        .map_err(|_| format!("balance: `{s}` is not round-robin or least-conn"))?,
                );
            }
            "eject_after" => o.eject_after = Some(as_int()?),
            "connect_retries" => o.connect_retries = Some(as_int()?),
            "max_connections" => o.max_connections = Some(as_int()? as usize),
            "max_header_size" => {
                o.max_header_size = Some(usize::try_from(as_size()?).map_err(|_| "max_header_size is too large")?)
            }
            "max_request_body" => o.max_request_body = Some(as_size()?),
            "allow" => {
                o.allow = Some(
                    as_list()?
                        .iter()
                        .map(|r| r.parse::<AllowRule>())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("allow: {e}"))?,
                )
            }
            "headers" => {
                let table = value
                    .as_table()
                    .ok_or("`headers` must be a table of name = \"value\"")?;
                let mut headers = Vec::new();
                for (name, v) in table {
                    let v = v.as_str().ok_or_else(|| format!("headers.{name} must be a string"))?;
                    headers.push(parse_header(&format!("{name}: {v}"))?);
                }
                o.headers = Some(headers);
            }
            "add_header" => {
                o.headers = Some(
                    as_list()?
                        .iter()
                        .map(|h| parse_header(h))
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("add_header: {e}"))?,
                )
            }
            // The TLS keys, each with its older name (one or the other).
            "tls_ca_file" | "ca_file" => o.ca_file = Some(PathBuf::from(as_str()?)),
            "tls_client_cert" | "client_cert" => o.client_cert = Some(PathBuf::from(as_str()?)),
            "tls_client_key" | "client_key" => o.client_key = Some(PathBuf::from(as_str()?)),
            "tls_insecure" | "insecure" => {
                o.insecure = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| format!("`{key}` must be true or false"))?,
                )
            }
            "tls_server_name" => o.server_name = Some(as_str()?),
            "proxy_protocol" => {
                let s = as_str()?;
                o.proxy_protocol = Some(
                    <ProxyProtocol as clap::ValueEnum>::from_str(&s, true)
                        .map_err(|_| format!("proxy_protocol: `{s}` is not off, v1 or v2"))?,
                );
            }
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_default_to_loopback() {
        assert_eq!(parse_listen("81").unwrap(), "127.0.0.1:81".parse().unwrap());
        assert_eq!(parse_listen("localhost:81").unwrap(), "127.0.0.1:81".parse().unwrap());
        assert_eq!(parse_listen("0.0.0.0:81").unwrap(), "0.0.0.0:81".parse().unwrap());
        assert_eq!(parse_listen("[::1]:81").unwrap(), "[::1]:81".parse().unwrap());
        for bad in ["", "host:81", "127.0.0.1", "99999"] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tcp_flag_with_several_upstreams() {
        let (listen, mode) = parse_listener_flag("tcp", "127.0.0.1:81=db.svc:5432, tls://[::1]:6432").unwrap();
        assert_eq!(listen, "127.0.0.1:81".parse().unwrap());
        let Mode::Tcp { upstreams } = mode else { panic!() };
        assert_eq!(upstreams[0].to_string(), "db.svc:5432");
        assert_eq!(upstreams[1].to_string(), "tls://[::1]:6432");
        for bad in [
            "127.0.0.1:81",
            "127.0.0.1:81=",
            "81=db.svc",
            "81=ftp://db:1",
            "81=bad host:1",
        ] {
            assert!(parse_listener_flag("tcp", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reverse_urls_give_prefix_and_host() {
        let (_, mode) = parse_listener_flag("reverse", "8081=https://Example.com/api/").unwrap();
        assert_eq!(
            mode,
            Mode::Reverse {
                upstreams: vec![Target {
                    host: "example.com".into(),
                    port: 443,
                    tls: true
                }],
                prefix: "/api".into(),
                host: "example.com".into(),
            }
        );
        assert!(parse_listener_flag("reverse", "8081=http://a/x,http://b/y").is_err());
        assert!(parse_listener_flag("reverse", "8081=http://a/x?q=1").is_err());
    }

    #[test]
    fn config_file_listeners_and_options() {
        let file = parse_file(
            r#"
            connect_timeout = "2s"
            access-log = "json"
            tcp = ["81=db:5432"]
            [[listener]]
            mode = "tcp"
            listen = "127.0.0.1:5432"
            upstreams = ["db-1:5432", "db-2:5432"]
            balance = "least-conn"
            [[listener]]
            mode = "reverse"
            listen = "8081"
            upstreams = "https://example.com"
            headers = { "X-Api-Key" = "k" }
            [[listener]]
            mode = "http-forward"
            listen = "0.0.0.0:3128"
            allow = ["*.example.com:443", "10.0.0.0/8"]
            max_header_size = "16KiB"
            "#,
        )
        .unwrap();
        assert_eq!(file.top.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(file.listeners.len(), 3);
        assert_eq!(file.listeners[0].options.balance, Some(Balance::LeastConn));
        assert_eq!(file.listeners[2].options.max_header_size, Some(16 << 10));
        assert_eq!(file.listeners[2].options.allow.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn tls_keys_new_and_old_names() {
        let file = parse_file(
            r#"
            tls_ca_file = "/ca.pem"
            insecure = true
            [[listener]]
            mode = "tcp"
            listen = "81"
            upstreams = "tls://db:5432"
            client-cert = "/c.pem"
            tls_client_key = "/k.pem"
            tls_server_name = "db.internal"
            "#,
        )
        .unwrap();
        assert_eq!(file.top.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(file.top.insecure, Some(true));
        let own = &file.listeners[0].options;
        assert_eq!(own.client_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(own.client_key, Some(PathBuf::from("/k.pem")));
        assert_eq!(own.server_name.as_deref(), Some("db.internal"));
        let tls = own.clone().or(&file.top).resolve().unwrap().tls;
        assert_eq!(
            tls,
            TlsOptions {
                ca_file: Some("/ca.pem".into()),
                client_cert: Some("/c.pem".into()),
                client_key: Some("/k.pem".into()),
                insecure: true,
                server_name: Some("db.internal".into()),
            }
        );
        let err = parse_file("ca_file = \"/a\"\ntls-ca-file = \"/b\"").unwrap_err();
        assert!(
            err.contains("`ca_file` and `tls_ca_file` are the same setting"),
            "{err}"
        );
        let lone = PartialOptions {
            client_key: Some("/k.pem".into()),
            ..Default::default()
        };
        let err = lone.resolve().unwrap_err();
        assert!(
            err.starts_with("--tls-client-cert: the client key /k.pem was given without"),
            "{err}"
        );
    }

    #[test]
    fn config_file_errors_name_the_place() {
        for (text, needle) in [
            (
                "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"",
                "listener #1: a tcp listener needs",
            ),
            (
                "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"\nupstreams = \"a:1\"\nconect_timeout = \"1s\"",
                "unknown key `conect_timeout`",
            ),
            ("[[listeners]]\nmode = \"tcp\"", "unknown section `listeners`"),
            (
                "[[listener]]\nmode = \"udp\"\nlisten = \"81\"\nupstreams=[\"a:1\"]",
                "unknown mode",
            ),
            ("idle_timeout = \"soon\"", "idle_timeout"),
            ("[[listener]]\nlisten = \"81\"", "`mode` is missing"),
        ] {
            let err = parse_file(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_listener_section_beats_the_top_level_but_not_flags() {
        let secs = |n| Some(Duration::from_secs(n));
        let top = PartialOptions {
            idle_timeout: secs(1),
            ..Default::default()
        };
        let own = PartialOptions {
            idle_timeout: secs(2),
            connect_timeout: secs(2),
            ..Default::default()
        };
        // No flag: clap's value is the top-level one, and the section wins.
        let o = section_options(&top.clone(), &top, &own);
        assert_eq!((o.idle_timeout, o.connect_timeout), (secs(2), secs(2)));
        // A flag for idle_timeout wins over the section.
        let flags = PartialOptions {
            idle_timeout: secs(3),
            ..Default::default()
        };
        let o = section_options(&flags, &top, &own);
        assert_eq!((o.idle_timeout, o.connect_timeout), (secs(3), secs(2)));
    }

    #[test]
    fn precedence_takes_the_first_set_value() {
        let flags = PartialOptions {
            connect_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let file = PartialOptions {
            connect_timeout: Some(Duration::from_secs(9)),
            idle_timeout: Some(Duration::from_secs(9)),
            ..Default::default()
        };
        let o = flags.or(&file).resolve().unwrap();
        assert_eq!(o.connect_timeout, Duration::from_secs(1));
        assert_eq!(o.idle_timeout, Duration::from_secs(9));
        assert_eq!(o.request_timeout, Options::default().request_timeout);
    }
}
