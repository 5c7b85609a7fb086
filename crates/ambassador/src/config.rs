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

use podkit_tls::TlsOption;

use crate::policy::AllowRule;
use crate::proxy_protocol::ProxyProtocol;

/// What a listener does with the connections it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Copies bytes both ways to one of the upstream endpoints.
    Tcp {
        /// The upstream endpoints (`host:port`, optionally `tls://`).
        upstreams: Vec<UpstreamSpec>,
    },
    /// An HTTP reverse proxy to a fixed upstream.
    Reverse {
        /// The upstream endpoints; they share scheme and path prefix.
        upstreams: Vec<UpstreamSpec>,
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
pub struct UpstreamSpec {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether the ambassador speaks TLS to this endpoint.
    pub tls: bool,
}

impl fmt::Display for UpstreamSpec {
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

/// The flag (or flags) an option comes from on the command line, to ask
/// clap whether the command line or the environment gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// A flag of the ambassador's own `Args`, by its clap id.
    Arg(&'static str),
    /// A TLS flag of `podkit-tls` (under any of its spellings).
    Tls(TlsOption),
}

/// Declares the per-listener options once: each line gives the field, its
/// type and default, the flag it comes from, its config-file keys (the
/// first is its name; further ones are older names) and the function that
/// reads it from a config file. From that list come [`Options`] and its
/// defaults, [`PartialOptions`] (one source's values) with its merge,
/// the filter that keeps what flags and env gave, [`OPTION_KEYS`] and the
/// config-file reader.
macro_rules! listener_options {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty = $default:expr, $flag:expr, [$($key:literal),+], $read:path;
    )*) => {
        /// The effective options of one listener, after the merge.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Options {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        impl Default for Options {
            fn default() -> Self {
                Self { $($name: $default,)* }
            }
        }

        /// Options as one source gives them (flags and env, a config file's
        /// top level, a `[[listener]]` section): unset fields fall through
        /// to the next source.
        #[derive(Debug, Clone, Default)]
        pub struct PartialOptions {
            $(#[doc = concat!("See [`Options::", stringify!($name), "`].")] pub $name: Option<$ty>,)*
        }

        impl PartialOptions {
            /// Fills every unset field of `self` from `lower`, a source of
            /// lower precedence.
            pub fn or(self, lower: Self) -> Self {
                Self { $($name: self.$name.or(lower.$name),)* }
            }

            /// Keeps the values whose flag `given` says the command line or
            /// the environment set (not a default or a config file).
            pub fn given_only(self, given: impl Fn(Flag) -> bool) -> Self {
                Self { $($name: self.$name.filter(|_| given($flag)),)* }
            }

            /// Unset fields take their defaults.
            fn fill(self) -> Options {
                let d = Options::default();
                Options { $($name: self.$name.unwrap_or(d.$name),)* }
            }

            /// Sets the option config key `key` names from `value`; `None`
            /// when no option has that key.
            fn set(&mut self, key: &str, value: toml::Value) -> Option<Result<(), String>> {
                match key {
                    $($($key)|+ => Some($read(key, value).map(|v| self.$name = Some(v))),)*
                    _ => None,
                }
            }
        }

        /// Every flag a listener option comes from (checked against `Args`
        /// by a test).
        pub const OPTION_FLAGS: &[Flag] = &[$($flag,)*];

        /// The config-file keys of listener options, one group per option:
        /// its name first, then older names.
        pub const OPTION_KEYS: &[&[&str]] = &[$(&[$($key),+],)*];
    };
}

listener_options! {
    /// Longest time to establish an upstream TCP connection (and TLS
    /// handshake).
    connect_timeout: Duration = Duration::from_secs(5), Flag::Arg("connect_timeout"), ["connect_timeout"], read::duration;
    /// A connection with no bytes either way for this long is closed.
    idle_timeout: Duration = Duration::from_secs(600), Flag::Arg("idle_timeout"), ["idle_timeout"], read::duration;
    /// Longest time from request to upstream response headers (HTTP modes);
    /// 504 after it.
    request_timeout: Duration = Duration::from_secs(60), Flag::Arg("request_timeout"), ["request_timeout"], read::duration;
    /// Longest time a client may take to send a request's headers (slowloris
    /// cut).
    header_read_timeout: Duration = Duration::from_secs(10), Flag::Arg("header_read_timeout"), ["header_read_timeout"], read::duration;
    /// How often upstream names are resolved again.
    dns_refresh: Duration = Duration::from_secs(5), Flag::Arg("dns_refresh"), ["dns_refresh"], read::duration;
    /// Endpoint choice.
    balance: Balance = Balance::RoundRobin, Flag::Arg("balance"), ["balance"], read::value_enum;
    /// Consecutive connect failures that eject an endpoint.
    eject_after: u32 = 3, Flag::Arg("eject_after"), ["eject_after"], read::count;
    /// How long an ejected endpoint is skipped.
    eject_for: Duration = Duration::from_secs(10), Flag::Arg("eject_for"), ["eject_for"], read::duration;
    /// Further endpoints tried after a failed connect.
    connect_retries: u32 = 2, Flag::Arg("connect_retries"), ["connect_retries"], read::count;
    /// Most concurrent client connections; further ones are refused.
    max_connections: usize = 4096, Flag::Arg("max_connections"), ["max_connections"], read::count;
    /// Largest request head (request line plus headers) accepted; 431 beyond.
    max_header_size: usize = 64 << 10, Flag::Arg("max_header_size"), ["max_header_size"], read::size;
    /// Largest request body accepted; 413 beyond (0: no limit).
    max_request_body: u64 = 0, Flag::Arg("max_request_body"), ["max_request_body"], read::size;
    /// Forward proxy destinations allowed (empty: any, except the default
    /// denials).
    allow: Vec<AllowRule> = Vec::new(), Flag::Arg("allow"), ["allow"], read::allow;
    /// Headers added to every upstream request (reverse mode): a table
    /// `headers = { Name = "value" }` or a list `add_header = ["Name: value"]`.
    headers: Vec<(HeaderName, HeaderValue)> = Vec::new(), Flag::Arg("add_header"), ["headers", "add_header"], read::headers;
    /// See [`TlsOptions::ca_file`].
    tls_ca_file: Option<PathBuf> = None, Flag::Tls(TlsOption::CaFile), ["tls_ca_file", "ca_file"], read::path;
    /// See [`TlsOptions::client_cert`].
    tls_client_cert: Option<PathBuf> = None, Flag::Tls(TlsOption::ClientCert), ["tls_client_cert", "client_cert"], read::path;
    /// See [`TlsOptions::client_key`].
    tls_client_key: Option<PathBuf> = None, Flag::Tls(TlsOption::ClientKey), ["tls_client_key", "client_key"], read::path;
    /// See [`TlsOptions::insecure`].
    tls_insecure: bool = false, Flag::Tls(TlsOption::Insecure), ["tls_insecure", "insecure"], read::boolean;
    /// See [`TlsOptions::server_name`].
    tls_server_name: Option<String> = None, Flag::Tls(TlsOption::ServerName), ["tls_server_name"], read::name;
    /// PROXY protocol header sent to tcp upstreams.
    proxy_protocol: ProxyProtocol = ProxyProtocol::Off, Flag::Arg("proxy_protocol"), ["proxy_protocol"], read::value_enum;
}

impl Options {
    /// The TLS origination settings.
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.tls_ca_file.clone(),
            client_cert: self.tls_client_cert.clone(),
            client_key: self.tls_client_key.clone(),
            insecure: self.tls_insecure,
            server_name: self.tls_server_name.clone(),
        }
    }
}

impl PartialOptions {
    /// The effective options: unset fields take their defaults; values
    /// that cannot work are refused.
    pub fn resolve(self) -> Result<Options, String> {
        let options = self.fill();
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
        options.tls().check().map_err(|e| e.with_flag())?;
        Ok(options)
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

/// Readers of config-file values, one per kind of option: each takes the
/// key (for its error) and the value.
mod read {
    use super::*;

    pub(super) fn string(key: &str, value: toml::Value) -> Result<String, String> {
        match value {
            toml::Value::String(s) => Ok(s),
            _ => Err(format!("`{key}` must be a string")),
        }
    }

    pub(super) fn duration(key: &str, value: toml::Value) -> Result<Duration, String> {
        podkit_runtime::cli::parse_duration(&string(key, value)?).map_err(|e| format!("{key}: {e}"))
    }

    pub(super) fn name(key: &str, value: toml::Value) -> Result<Option<String>, String> {
        string(key, value).map(Some)
    }

    pub(super) fn path(key: &str, value: toml::Value) -> Result<Option<PathBuf>, String> {
        string(key, value).map(|s| Some(PathBuf::from(s)))
    }

    pub(super) fn boolean(key: &str, value: toml::Value) -> Result<bool, String> {
        value.as_bool().ok_or_else(|| format!("`{key}` must be true or false"))
    }

    pub(super) fn count<T: TryFrom<u32>>(key: &str, value: toml::Value) -> Result<T, String> {
        value
            .as_integer()
            .and_then(|i| u32::try_from(i).ok())
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| format!("`{key}` must be a non-negative integer"))
    }

    pub(super) fn size<T: TryFrom<u64>>(key: &str, value: toml::Value) -> Result<T, String> {
        let bytes = match &value {
            toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| format!("`{key}` must not be negative"))?,
            toml::Value::String(s) => podkit_runtime::cli::parse_size(s).map_err(|e| format!("{key}: {e}"))?,
            _ => return Err(format!("`{key}` must be a size like 64KiB")),
        };
        T::try_from(bytes).map_err(|_| format!("`{key}` is too large"))
    }

    pub(super) fn value_enum<T: clap::ValueEnum>(key: &str, value: toml::Value) -> Result<T, String> {
        let s = string(key, value)?;
        T::from_str(&s, true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
                .collect();
            format!("{key}: `{s}` is not one of {}", names.join(", "))
        })
    }

    fn strings(key: &str, value: toml::Value) -> Result<Vec<String>, String> {
        let toml::Value::Array(items) = value else {
            return Err(format!("`{key}` must be a list of strings"));
        };
        items.into_iter().map(|v| string(key, v)).collect()
    }

    pub(super) fn allow(key: &str, value: toml::Value) -> Result<Vec<AllowRule>, String> {
        strings(key, value)?
            .iter()
            .map(|r| r.parse::<AllowRule>().map_err(|e| format!("{key}: {e}")))
            .collect()
    }

    pub(super) fn headers(key: &str, value: toml::Value) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        match value {
            toml::Value::Table(table) => table
                .into_iter()
                .map(|(name, v)| {
                    let v = v.as_str().ok_or_else(|| format!("{key}.{name} must be a string"))?;
                    parse_header(&format!("{name}: {v}"))
                })
                .collect(),
            toml::Value::Array(_) => strings(key, value)?
                .iter()
                .map(|h| parse_header(h).map_err(|e| format!("{key}: {e}")))
                .collect(),
            _ => Err(format!(
                "`{key}` must be a table of name = \"value\" or a list of \"Name: value\""
            )),
        }
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
pub fn parse_target(s: &str) -> Result<UpstreamSpec, String> {
    let s = s.trim();
    let (tls, rest) = match s.split_once("://") {
        Some(("tls", rest)) => (true, rest),
        Some(("tcp", rest)) => (false, rest),
        Some((scheme, _)) => return Err(format!("`{s}`: unknown scheme `{scheme}://` (use tcp:// or tls://)")),
        None => (false, s),
    };
    let (host, port) = split_host_port(rest).ok_or_else(|| format!("`{s}` is not an upstream like db.svc:5432"))?;
    Ok(UpstreamSpec {
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
pub fn parse_url(s: &str) -> Result<(UpstreamSpec, String, String), String> {
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
    Ok((UpstreamSpec { host, port, tls }, prefix, authority.to_ascii_lowercase()))
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

/// What the ambassador itself reads from a config file: its `[[listener]]`
/// tables, listeners with options of their own. Top-level keys are flags
/// (`connect-timeout = "2s"`, `tcp = ["81=db:5432"]`), which the runtime
/// turns into flag defaults, so they reach the ambassador as flag values
/// whose source is the file.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    /// The listeners.
    pub listeners: Vec<FileListener>,
}

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

/// Refuses an option given under two of its names (`ca_file` and
/// `tls_ca_file`) in one table.
fn one_name_each(t: &toml::Table) -> Result<(), String> {
    for names in OPTION_KEYS {
        let present: Vec<&str> = names.iter().copied().filter(|k| t.contains_key(*k)).collect();
        if let [first, .., other] = present[..] {
            return Err(format!(
                "`{other}` and `{first}` are the same setting: keep `{first}` only"
            ));
        }
    }
    Ok(())
}

/// Takes the listeners out of a parsed file and checks its top level.
pub fn from_table(table: toml::Table) -> Result<FileConfig, String> {
    let mut table = normalize(table);
    let listeners = match table.remove("listener") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => return Err("`listener` must be an array of tables ([[listener]])".into()),
    };
    one_name_each(&table)?;
    for (key, value) in &table {
        if value.is_table() || value.as_array().is_some_and(|a| a.iter().any(toml::Value::is_table)) {
            return Err(format!("unknown section `{key}` (the ambassador knows [[listener]])"));
        }
    }
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
    Ok(FileConfig { listeners: out })
}

fn take_str(t: &mut toml::Table, key: &str) -> Result<Option<String>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// The options of a `[[listener]]` table.
fn parse_options(t: toml::Table) -> Result<PartialOptions, String> {
    one_name_each(&t)?;
    let mut options = PartialOptions::default();
    for (key, value) in t {
        options
            .set(&key, value)
            .unwrap_or_else(|| Err(format!("unknown key `{key}`")))?;
    }
    Ok(options)
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
                upstreams: vec![UpstreamSpec {
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
        assert_eq!(file.listeners.len(), 3);
        assert_eq!(file.listeners[0].options.balance, Some(Balance::LeastConn));
        assert_eq!(file.listeners[2].options.max_header_size, Some(16 << 10));
        assert_eq!(file.listeners[2].options.allow.as_ref().map(Vec::len), Some(2));
        let headers = file.listeners[1].options.headers.as_ref().unwrap();
        assert_eq!(
            (headers[0].0.as_str(), headers[0].1.to_str().unwrap()),
            ("x-api-key", "k")
        );
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
            insecure = true
            client-cert = "/c.pem"
            tls_client_key = "/k.pem"
            tls_server_name = "db.internal"
            "#,
        )
        .unwrap();
        let tls = file.listeners[0].options.clone().resolve().unwrap().tls();
        assert_eq!(
            tls,
            TlsOptions {
                ca_file: None,
                client_cert: Some("/c.pem".into()),
                client_key: Some("/k.pem".into()),
                insecure: true,
                server_name: Some("db.internal".into()),
            }
        );
        for text in [
            "ca_file = \"/a\"\ntls-ca-file = \"/b\"",
            "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"\nupstreams = \"a:1\"\nca_file = \"/a\"\ntls_ca_file = \"/b\"",
        ] {
            let err = parse_file(text).unwrap_err();
            assert!(
                err.contains("`ca_file` and `tls_ca_file` are the same setting: keep `tls_ca_file` only"),
                "{err}"
            );
        }
        let lone = PartialOptions {
            tls_client_key: Some(Some("/k.pem".into())),
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
            (
                "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"\nupstreams = \"a:1\"\nidle_timeout = \"soon\"",
                "listener #1: idle_timeout: `soon` is not a duration",
            ),
            (
                "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"\nupstreams = \"a:1\"\nbalance = \"random\"",
                "balance: `random` is not one of round-robin, least-conn",
            ),
            (
                "[[listener]]\nmode = \"tcp\"\nlisten = \"81\"\nupstreams = \"a:1\"\neject_after = -1",
                "`eject_after` must be a non-negative integer",
            ),
            ("[[listener]]\nlisten = \"81\"", "`mode` is missing"),
        ] {
            let err = parse_file(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
