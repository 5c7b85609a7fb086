//! The target syntax: one string per dependency, parsed into a [`Target`].
//!
//! ```text
//! host:port | tcp://host:port           a TCP connect succeeds
//! http://… | https://…                  an HTTP answer that passes the --http-* checks
//! dns://name[?type=A|AAAA&expect=IP]    the name resolves (to IP)
//! file:///path[?absent|?nonempty]       the file exists (is absent, is non-empty)
//! exec:program arg…                     the program exits 0
//! postgres://[user@]host[:5432][/db]    the server accepts connections (pg_isready's rule)
//! mysql://host[:3306]                   the server sends its handshake
//! redis[s]://[[user]:pass@]host[:6379]  PING answers PONG (after AUTH when a password is given)
//! grpc[s]://host:port[/service]         grpc.health.v1.Health/Check answers SERVING
//! kafka://host[:9092]                   the broker answers ApiVersions
//! k8s:[namespace/]kind/name             a pod/deployment/statefulset ready, a job complete,
//! k8s:[namespace/]pod?selector=a=b      a service with a ready endpoint
//! ```
//!
//! IPv6 literals go in brackets (`tcp://[::1]:8080`). Parsing never touches the
//! network; names are resolved on every attempt.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// One dependency to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target as given, with any password replaced by `****`: what logs
    /// and progress lines show.
    pub display: String,
    /// What to check.
    pub kind: Kind,
}

/// A host (a name or an IP literal, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The kinds of check, with what each needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A TCP connect succeeds.
    Tcp(HostPort),
    /// An HTTP(S) request gets an answer passing the configured checks.
    Http {
        /// The full URL.
        url: http::Uri,
        /// Where to connect.
        addr: HostPort,
        /// Whether to speak TLS.
        tls: bool,
    },
    /// A name resolves (to one of `expect`, when given).
    Dns {
        /// The name.
        name: String,
        /// Which address families count.
        family: Family,
        /// Addresses of which at least one must be among the answers.
        expect: Vec<IpAddr>,
    },
    /// A file is in the wanted state.
    File {
        /// The path.
        path: PathBuf,
        /// The wanted state.
        state: FileState,
    },
    /// A program exits 0.
    Exec {
        /// The program (looked up in PATH).
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A PostgreSQL server accepts connections.
    Postgres {
        /// Where to connect.
        addr: HostPort,
        /// The user named in the startup message.
        user: String,
        /// The database named in the startup message.
        database: String,
    },
    /// A MySQL/MariaDB server sends its initial handshake.
    Mysql(HostPort),
    /// A Redis server answers PING.
    Redis {
        /// Where to connect.
        addr: HostPort,
        /// Whether to speak TLS (`rediss://`).
        tls: bool,
        /// ACL user for AUTH.
        user: Option<String>,
        /// Password for AUTH.
        password: Option<String>,
    },
    /// A gRPC server's health service reports SERVING.
    Grpc {
        /// Where to connect.
        addr: HostPort,
        /// Whether to speak TLS (`grpcs://`).
        tls: bool,
        /// The service to ask about (empty: the server as a whole).
        service: String,
    },
    /// A Kafka broker answers ApiVersions.
    Kafka(HostPort),
    /// A Kubernetes object is ready.
    K8s(K8sObject),
}

/// Which address families a DNS target accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A or AAAA.
    Any,
    /// A records only.
    V4,
    /// AAAA records only.
    V6,
}

/// What a file target waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// The path exists.
    Exists,
    /// The path does not exist.
    Absent,
    /// The path is a file with at least one byte.
    NonEmpty,
}

/// A Kubernetes object (or set of pods) to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sObject {
    /// The namespace, when given in the target (else the pod's own).
    pub namespace: Option<String>,
    /// The kind.
    pub kind: K8sKind,
    /// The object's name; `None` with a selector (pods only).
    pub name: Option<String>,
    /// A label selector (pods only): every matching pod ready, at least one.
    pub selector: Option<String>,
}

/// The Kubernetes kinds wait-for understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K8sKind {
    /// Ready condition True.
    Pod,
    /// Rolled out and available.
    Deployment,
    /// Rolled out and ready.
    StatefulSet,
    /// Complete (Failed ends the wait at once).
    Job,
    /// At least one ready endpoint in its EndpointSlices.
    Service,
}

/// A target that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target `{target}`: {reason}")]
pub struct TargetError {
    /// The target, password redacted.
    pub target: String,
    /// What is wrong.
    pub reason: String,
}

impl Target {
    /// Parses one target.
    pub fn parse(spec: &str) -> Result<Self, TargetError> {
        let spec = spec.trim();
        let fail = |reason: String| TargetError {
            target: redact(spec),
            reason,
        };
        let kind = parse_kind(spec).map_err(fail)?;
        Ok(Self {
            display: redact(spec),
            kind,
        })
    }
}

fn parse_kind(spec: &str) -> Result<Kind, String> {
    if spec.is_empty() {
        return Err("empty target".into());
    }
    if let Some(rest) = strip_scheme(spec, "exec:") {
        let words = split_words(rest)?;
        let mut words = words.into_iter();
        let program = words
            .next()
            .ok_or("`exec:` needs a program, like exec:pg_isready -h db")?;
        return Ok(Kind::Exec {
            program,
            args: words.collect(),
        });
    }
    if let Some(rest) = strip_scheme(spec, "file:") {
        return parse_file(rest);
    }
    if let Some(rest) = strip_scheme(spec, "k8s:").or_else(|| strip_scheme(spec, "kube:")) {
        return parse_k8s(rest.trim_start_matches("//")).map(Kind::K8s);
    }
    let Some((scheme, _)) = spec.split_once("://") else {
        // The wait-for-it habit: a bare host:port means TCP.
        return parse_authority(spec, None, spec)
            .map(Kind::Tcp)
            .map_err(|e| format!("{e} (give host:port, or a URL like tcp://, http://, postgres://; see --help)"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "http" || scheme == "https" {
        return parse_http(spec, scheme == "https");
    }
    let url = Url::split(spec)?;
    let default_port = match scheme.as_str() {
        "tcp" => None,
        "dns" => Some(0),
        "postgres" | "postgresql" => Some(5432),
        "mysql" | "mariadb" => Some(3306),
        "redis" | "rediss" => Some(6379),
        "grpc" | "grpcs" => None,
        "kafka" => Some(9092),
        other => return Err(format!("unknown scheme `{other}://`; see --help for the target kinds")),
    };
    if scheme == "dns" {
        return parse_dns(&url);
    }
    let addr = parse_authority(url.authority, default_port, spec)?;
    let no_path = |what: &str| -> Result<(), String> {
        if url.path.trim_matches('/').is_empty() {
            Ok(())
        } else {
            Err(format!("{what} targets take no path (got `{}`)", url.path))
        }
    };
    let kind = match scheme.as_str() {
        "tcp" => {
            no_path("tcp")?;
            Kind::Tcp(addr)
        }
        "postgres" | "postgresql" => {
            let user = url
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .or_else(|| url.query("user"))
                .unwrap_or_else(|| "postgres".into());
            let database = match url.path.trim_matches('/') {
                "" => url.query("dbname").unwrap_or_else(|| user.clone()),
                db => percent_decode(db)?,
            };
            Kind::Postgres { addr, user, database }
        }
        "mysql" | "mariadb" => Kind::Mysql(addr),
        "redis" | "rediss" => Kind::Redis {
            addr,
            tls: scheme == "rediss",
            user: url.user.clone().filter(|u| !u.is_empty()),
            password: url.password.clone(),
        },
        "grpc" | "grpcs" => Kind::Grpc {
            addr,
            tls: scheme == "grpcs",
            service: percent_decode(url.path.trim_matches('/'))?,
        },
        "kafka" => {
            no_path("kafka")?;
            Kind::Kafka(addr)
        }
        _ => unreachable!("schemes are matched above"),
    };
    Ok(kind)
}

/// The parts of a `scheme://[user[:password]@]authority[/path][?query]` URL.
struct Url<'a> {
    user: Option<String>,
    password: Option<String>,
    authority: &'a str,
    path: &'a str,
    query: &'a str,
}

impl<'a> Url<'a> {
    fn split(spec: &'a str) -> Result<Self, String> {
        let (_, rest) = spec.split_once("://").unwrap_or(("", spec));
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((u, a)) => (Some(u), a),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(info)?), None),
            },
        };
        Ok(Self {
            user,
            password,
            authority,
            path,
            query,
        })
    }

    /// The first value of a query parameter.
    fn query(&self, key: &str) -> Option<String> {
        query_pairs(self.query)
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| percent_decode(v).ok())
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Strips a case-insensitive scheme prefix.
fn strip_scheme<'a>(spec: &'a str, scheme: &str) -> Option<&'a str> {
    let head = spec.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme).then(|| &spec[scheme.len()..])
}

/// Parses `host:port`, `[v6]:port` or (with a default port) `host`.
fn parse_authority(authority: &str, default_port: Option<u16>, spec: &str) -> Result<HostPort, String> {
    let _ = spec;
    if authority.is_empty() {
        return Err("no host given".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 address (write [::1]:port)")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(format!("unexpected `{p}` after `]`"))?),
        };
        (host, port)
    } else if authority.matches(':').count() > 1 {
        return Err(format!(
            "`{authority}` looks like an IPv6 address without brackets; write [addr]:port"
        ));
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host given".into());
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(format!("`{p}` is not a port (1-65535)"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("`{authority}` has no port (write {authority}:PORT)")),
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

fn parse_http(spec: &str, tls: bool) -> Result<Kind, String> {
    let url: http::Uri = spec.parse().map_err(|e| format!("not a URL: {e}"))?;
    let authority = url.authority().ok_or("no host given")?;
    let default_port = if tls { 443 } else { 80 };
    // Strip any userinfo; http::Uri keeps it in the authority.
    let hostport = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, a)| a);
    let addr = parse_authority(hostport, Some(default_port), spec)?;
    Ok(Kind::Http { url, addr, tls })
}

fn parse_dns(url: &Url<'_>) -> Result<Kind, String> {
    let name = url.authority.trim_end_matches('.');
    if name.is_empty() {
        return Err("no name given (write dns://name)".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("`{name}` is not a DNS name"));
    }
    let mut family = Family::Any;
    let mut expect = Vec::new();
    for (key, value) in query_pairs(url.query) {
        match key {
            "type" | "family" => {
                family = match value.to_ascii_uppercase().as_str() {
                    "A" | "IPV4" | "4" => Family::V4,
                    "AAAA" | "IPV6" | "6" => Family::V6,
                    "ANY" | "" => Family::Any,
                    other => return Err(format!("type `{other}` is not A, AAAA or ANY")),
                }
            }
            "expect" | "ip" => {
                for ip in value.split(',').filter(|s| !s.is_empty()) {
                    let ip = percent_decode(ip)?;
                    let ip = ip.trim_matches(|c| c == '[' || c == ']');
                    expect.push(ip.parse().map_err(|_| format!("expect=`{ip}` is not an IP address"))?);
                }
            }
            other => return Err(format!("unknown dns option `{other}` (type, expect)")),
        }
    }
    Ok(Kind::Dns {
        name: name.to_owned(),
        family,
        expect,
    })
}

fn parse_file(rest: &str) -> Result<Kind, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    // file:///abs, file://localhost/abs, file:/abs and file:relative all work.
    let path = if let Some(p) = path.strip_prefix("//") {
        p.strip_prefix("localhost").unwrap_or(p)
    } else {
        path
    };
    if path.is_empty() {
        return Err("no path given (write file:///path)".into());
    }
    let mut state = FileState::Exists;
    for (key, _) in query_pairs(query) {
        state = match key {
            "absent" | "missing" | "gone" => FileState::Absent,
            "nonempty" | "non-empty" | "not-empty" => FileState::NonEmpty,
            "exists" => FileState::Exists,
            other => return Err(format!("unknown file option `{other}` (absent, nonempty)")),
        };
    }
    Ok(Kind::File {
        path: PathBuf::from(percent_decode(path)?),
        state,
    })
}

fn parse_k8s(rest: &str) -> Result<K8sObject, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut selector = None;
    for (key, value) in query_pairs(query) {
        match key {
            "selector" | "l" | "labelSelector" => selector = Some(percent_decode(value)?),
            other => return Err(format!("unknown k8s option `{other}` (selector)")),
        }
    }
    let parts: Vec<&str> = path.split('/').collect();
    let (namespace, kind, name) = match (parts.as_slice(), selector.is_some()) {
        ([kind], true) => (None, k8s_kind(kind)?, None),
        ([first, second], true) => match k8s_kind(second) {
            Ok(kind) => (Some(*first), kind, None),
            Err(_) => return Err("give a name or a selector, not both".into()),
        },
        ([kind, name], false) => (None, k8s_kind(kind)?, Some(*name)),
        ([ns, kind, name], false) => (Some(*ns), k8s_kind(kind)?, Some(*name)),
        ([_, _, _], true) => return Err("give a name or a selector, not both".into()),
        ([kind], false) => {
            k8s_kind(kind)?;
            return Err("no name given (write k8s:kind/name)".into());
        }
        _ => return Err("write k8s:[namespace/]kind/name, e.g. k8s:deployment/api".into()),
    };
    if selector.is_some() && kind != K8sKind::Pod {
        return Err("selectors work for pods only".into());
    }
    for part in namespace.iter().chain(name.iter()) {
        if part.is_empty()
            || !part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(format!("`{part}` is not a Kubernetes name"));
        }
    }
    Ok(K8sObject {
        namespace: namespace.map(|s| (*s).to_owned()),
        kind,
        name: name.map(|s| (*s).to_owned()),
        selector,
    })
}

fn k8s_kind(kind: &str) -> Result<K8sKind, String> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "pod" | "pods" | "po" => K8sKind::Pod,
        "deployment" | "deployments" | "deploy" => K8sKind::Deployment,
        "statefulset" | "statefulsets" | "sts" => K8sKind::StatefulSet,
        "job" | "jobs" => K8sKind::Job,
        "service" | "services" | "svc" => K8sKind::Service,
        other => {
            return Err(format!(
                "unknown kind `{other}` (pod, deployment, statefulset, job, service)"
            ));
        }
    })
}

/// Replaces the password in `scheme://user:password@host` with `****`.
pub fn redact(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return spec.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****{}", &rest[at..]),
        None => spec.to_owned(),
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` does not decode to UTF-8"))
}

/// Splits an `exec:` command line into words: whitespace separates, '…' and
/// "…" quote, a backslash escapes the next character. No other shell syntax:
/// images built FROM scratch have no shell.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed ' in exec: command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(chars.next().ok_or("trailing \\ in exec: command")?),
                        Some(c) => word.push(c),
                        None => return Err("unclosed \" in exec: command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or("trailing \\ in exec: command")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Splits the `WAIT_FOR_TARGETS` habit: targets one per line, or separated
/// by commas. A comma-separated piece that does not look like the start of a
/// target (`http://x/?a=1,2`, `k8s:pod?selector=a=1,b=2`) is glued back to
/// the piece before it.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in value.lines() {
        let mut glue_allowed = false;
        for piece in line.split(',') {
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                continue;
            }
            if glue_allowed
                && !looks_like_target_start(trimmed)
                && let Some(last) = out.last_mut()
            {
                {
                    last.push(',');
                    last.push_str(piece.trim_end());
                    continue;
                }
            }
            out.push(trimmed.to_owned());
            glue_allowed = true;
        }
    }
    out
}

fn looks_like_target_start(piece: &str) -> bool {
    if piece.contains("://") {
        return true;
    }
    for scheme in ["exec:", "file:", "k8s:", "kube:"] {
        if strip_scheme(piece, scheme).is_some() {
            return true;
        }
    }
    // host:port or [v6]:port
    match piece.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains('=') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    fn kind(spec: &str) -> Kind {
        Target::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}")).kind
    }

    #[test]
    fn tcp_forms_including_ipv6_literals() {
        assert_eq!(kind("db:5432"), Kind::Tcp(hp("db", 5432)));
        assert_eq!(kind("tcp://db.svc:5432"), Kind::Tcp(hp("db.svc", 5432)));
        assert_eq!(kind("tcp://[::1]:8080"), Kind::Tcp(hp("::1", 8080)));
        assert_eq!(kind("[::1]:8080"), Kind::Tcp(hp("::1", 8080)));
        assert_eq!(kind("TCP://10.0.0.1:80"), Kind::Tcp(hp("10.0.0.1", 80)));
        assert_eq!(hp("::1", 80).to_string(), "[::1]:80");
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (spec, needle) in [
            ("db", "no port"),
            ("tcp://db", "no port"),
            ("tcp://db:0", "not a port"),
            ("tcp://db:99999", "not a port"),
            ("::1:80", "without brackets"),
            ("tcp://[::1:80", "unclosed"),
            ("tcp://[zz]:80", "not an IPv6"),
            ("ftp://x:1", "unknown scheme"),
            ("exec:", "needs a program"),
            ("exec:'x", "unclosed"),
            ("file://", "no path"),
            ("file:///x?sideways", "unknown file option"),
            ("k8s:widget/x", "unknown kind"),
            ("k8s:deployment/x?selector=a=b", "not both"),
            ("k8s:job?selector=a=b", "pods only"),
            ("k8s:deployment/X", "not a Kubernetes name"),
            ("dns://", "no name"),
            ("dns://x?type=MX", "not A, AAAA"),
            ("dns://x?expect=nope", "not an IP"),
            ("http://", "URL"),
            ("", "empty"),
            ("tcp://db:1/path", "no path"),
        ] {
            let err = Target::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }

    #[test]
    fn urls_with_credentials_defaults_and_redaction() {
        assert_eq!(
            kind("postgres://app:s3cr%40t@db/orders"),
            Kind::Postgres {
                addr: hp("db", 5432),
                user: "app".into(),
                database: "orders".into()
            }
        );
        assert_eq!(
            kind("postgresql://[::1]:6543"),
            Kind::Postgres {
                addr: hp("::1", 6543),
                user: "postgres".into(),
                database: "postgres".into()
            }
        );
        assert_eq!(
            kind("rediss://:p%3Ass@cache"),
            Kind::Redis {
                addr: hp("cache", 6379),
                tls: true,
                user: None,
                password: Some("p:ss".into())
            }
        );
        assert_eq!(
            Target::parse("redis://u:hunter2@cache:6380").unwrap().display,
            "redis://u:****@cache:6380"
        );
        let err = Target::parse("postgres://u:hunter2@db:port").unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("u:****@db:port"), "{err}");
        assert_eq!(kind("mysql://db"), Kind::Mysql(hp("db", 3306)));
        assert_eq!(kind("kafka://k:19092"), Kind::Kafka(hp("k", 19092)));
        assert_eq!(
            kind("grpcs://api:443/my.Service"),
            Kind::Grpc {
                addr: hp("api", 443),
                tls: true,
                service: "my.Service".into()
            }
        );
        assert!(Target::parse("grpc://api").is_err(), "gRPC has no default port");
    }

    #[test]
    fn http_urls_keep_path_and_query() {
        let Kind::Http { url, addr, tls } = kind("https://[::1]:8443/healthz?full=1") else {
            panic!()
        };
        assert_eq!(addr, hp("::1", 8443));
        assert!(tls);
        assert_eq!(url.path_and_query().unwrap().as_str(), "/healthz?full=1");
        let Kind::Http { addr, tls, .. } = kind("http://api") else {
            panic!()
        };
        assert_eq!((addr, tls), (hp("api", 80), false));
    }

    #[test]
    fn dns_file_exec_forms() {
        assert_eq!(
            kind("dns://db.svc.cluster.local.?type=AAAA&expect=::1,[fd00::1]"),
            Kind::Dns {
                name: "db.svc.cluster.local".into(),
                family: Family::V6,
                expect: vec!["::1".parse().unwrap(), "fd00::1".parse().unwrap()]
            }
        );
        assert_eq!(
            kind("file:///run/ready?absent"),
            Kind::File {
                path: "/run/ready".into(),
                state: FileState::Absent
            }
        );
        assert_eq!(
            kind("file:data/seed.sql?nonempty"),
            Kind::File {
                path: "data/seed.sql".into(),
                state: FileState::NonEmpty
            }
        );
        assert_eq!(
            kind(r#"exec:pg_isready -h "db host" -U 'a b' x\ y"#),
            Kind::Exec {
                program: "pg_isready".into(),
                args: vec!["-h".into(), "db host".into(), "-U".into(), "a b".into(), "x y".into()]
            }
        );
    }

    #[test]
    fn k8s_forms() {
        let obj = |ns: Option<&str>, kind, name: Option<&str>, sel: Option<&str>| {
            Kind::K8s(K8sObject {
                namespace: ns.map(Into::into),
                kind,
                name: name.map(Into::into),
                selector: sel.map(Into::into),
            })
        };
        assert_eq!(
            kind("k8s:deployment/api"),
            obj(None, K8sKind::Deployment, Some("api"), None)
        );
        assert_eq!(
            kind("k8s:prod/sts/db"),
            obj(Some("prod"), K8sKind::StatefulSet, Some("db"), None)
        );
        assert_eq!(kind("k8s:job/migrate"), obj(None, K8sKind::Job, Some("migrate"), None));
        assert_eq!(kind("k8s:svc/api"), obj(None, K8sKind::Service, Some("api"), None));
        assert_eq!(
            kind("k8s:pod?selector=app=db,tier=data"),
            obj(None, K8sKind::Pod, None, Some("app=db,tier=data"))
        );
        assert_eq!(
            kind("k8s:prod/pods?selector=app%3Ddb"),
            obj(Some("prod"), K8sKind::Pod, None, Some("app=db"))
        );
    }

    #[test]
    fn env_lists_split_on_lines_and_commas_but_keep_commas_inside_targets() {
        assert_eq!(
            split_list("postgres:5432, mysql:3306,\nhttp://api/x?a=1,2\n\n k8s:pod?selector=a=1,b=2 ,tcp://[::1]:80"),
            [
                "postgres:5432",
                "mysql:3306",
                "http://api/x?a=1,2",
                "k8s:pod?selector=a=1,b=2",
                "tcp://[::1]:80"
            ]
        );
    }
}
