//! Which destinations the forward proxy may reach: an allowlist of host
//! globs, CIDRs and ports; default denials of link-local and cloud metadata
//! addresses; and no connections back to the proxy's own listeners.
//!
//! Checks run on the *resolved* addresses, after DNS, so a name that points
//! at 169.254.169.254 is denied like the literal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Ports a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Any port.
    Any,
    /// These inclusive ranges.
    Ranges(Vec<(u16, u16)>),
}

impl Ports {
    fn contains(&self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Ranges(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self::Any);
        }
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u16 = lo
                .trim()
                .parse()
                .map_err(|_| format!("`{part}` is not a port or range"))?;
            let hi: u16 = hi
                .trim()
                .parse()
                .map_err(|_| format!("`{part}` is not a port or range"))?;
            if lo > hi {
                return Err(format!("`{part}`: range ends below its start"));
            }
            ranges.push((lo, hi));
        }
        Ok(Self::Ranges(ranges))
    }
}

/// An IP network, `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A network (bits below the prefix are ignored).
    pub const fn new(addr: IpAddr, prefix: u8) -> Self {
        Self { addr, prefix }
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix.min(32))).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix.min(128)))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not a CIDR like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?
        };
        Ok(Self::new(canonical(addr), prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 (`::ffff:169.254.169.254`) as the IPv4 it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What an allow rule matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A host name glob (`*` matches any run of characters), case-insensitive.
    Host(String),
    /// Resolved addresses inside this network.
    Net(Cidr),
}

/// One allowlist entry: `*.example.com`, `api.example.com:443`,
/// `10.0.0.0/8:80,443`, `[fd00::/8]:8000-8999`, `*:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// What it matches.
    pub pattern: Pattern,
    /// On which ports.
    pub ports: Ports,
}

impl FromStr for AllowRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (pattern, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(|| format!("`{s}`: missing `]`"))?;
            let ports = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:` after `]`"))?,
                ),
            };
            (inner, ports)
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 network has colons of its own and no port.
            (s, None)
        } else {
            match s.split_once(':') {
                Some((p, ports)) => (p, Some(ports)),
                None => (s, None),
            }
        };
        let ports = ports
            .map_or(Ok(Ports::Any), Ports::parse)
            .map_err(|e| format!("`{s}`: {e}"))?;
        if pattern.is_empty() {
            return Err(format!("`{s}`: empty host pattern"));
        }
        let pattern = if pattern.parse::<IpAddr>().is_ok() || pattern.contains('/') {
            Pattern::Net(pattern.parse()?)
        } else if pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
        {
            Pattern::Host(pattern.to_ascii_lowercase())
        } else {
            return Err(format!("`{s}` is not a host glob, IP or CIDR"));
        };
        Ok(Self { pattern, ports })
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No allowlist rule matches.
    #[error("destination {0} is not in the allowlist")]
    NotAllowed(String),
    /// A link-local or cloud metadata address.
    #[error("destination {0} resolves to {1}, a link-local or metadata address")]
    LinkLocalOrMetadata(String, IpAddr),
    /// One of the ambassador's own listeners.
    #[error("destination {0} is this proxy itself")]
    SelfLoop(String),
}

/// Networks denied unless an allow rule names them by CIDR: link-local
/// (where cloud metadata services live) and the well-known metadata
/// addresses of the major clouds.
pub const DEFAULT_DENY: &[Cidr] = &[
    Cidr::new(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    Cidr::new(IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), 32), // Alibaba Cloud
    Cidr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)), 32),     // Oracle Cloud
    Cidr::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
    Cidr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), 128), // AWS IMDS over IPv6
];

/// The destination policy of one forward listener.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<AllowRule>,
    /// Addresses the ambassador itself listens on (its listeners and the
    /// admin server); an unspecified IP stands for every local address.
    own: Vec<SocketAddr>,
}

impl Policy {
    /// A policy from an allowlist (empty: anything not denied by default)
    /// and the proxy's own addresses.
    pub fn new(allow: Vec<AllowRule>, own: Vec<SocketAddr>) -> Self {
        Self { allow, own }
    }

    /// Checks the name before resolving: an allowlist with only host rules
    /// can refuse early, without a DNS query.
    pub fn check_name(&self, host: &str, port: u16) -> Result<(), Denied> {
        if self.allow.is_empty() {
            return Ok(());
        }
        let host = host.to_ascii_lowercase();
        let maybe = self.allow.iter().any(|rule| {
            rule.ports.contains(port)
                && match &rule.pattern {
                    Pattern::Host(glob) => glob_match(glob, &host),
                    Pattern::Net(_) => true,
                }
        });
        if maybe {
            Ok(())
        } else {
            Err(Denied::NotAllowed(format!("{host}:{port}")))
        }
    }

    /// Checks the resolved addresses of `host:port`; every address must pass.
    pub fn check(&self, host: &str, port: u16, addrs: &[SocketAddr]) -> Result<(), Denied> {
        let host = host.to_ascii_lowercase();
        let dest = || format!("{host}:{port}");
        let host_allowed = self.allow.iter().any(|rule| {
            rule.ports.contains(port) && matches!(&rule.pattern, Pattern::Host(glob) if glob_match(glob, &host))
        });
        for addr in addrs {
            let ip = canonical(addr.ip());
            let net_allowed = self
                .allow
                .iter()
                .any(|rule| rule.ports.contains(port) && matches!(&rule.pattern, Pattern::Net(n) if n.contains(ip)));
            if self.is_own(ip, addr.port()) {
                return Err(Denied::SelfLoop(dest()));
            }
            if !net_allowed && DEFAULT_DENY.iter().any(|net| net.contains(ip)) {
                return Err(Denied::LinkLocalOrMetadata(dest(), ip));
            }
            if !self.allow.is_empty() && !net_allowed && !host_allowed {
                return Err(Denied::NotAllowed(dest()));
            }
        }
        Ok(())
    }

    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|own| {
            own.port() == port
                && (canonical(own.ip()) == ip
                    || (own.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())))
        }) || (ip.is_unspecified() && self.own.iter().any(|own| own.port() == port))
    }
}

/// The addresses of this network namespace's interfaces (the pod's IPs),
/// read from `/proc/net/fib_trie` (IPv4) and `/proc/net/if_inet6` (IPv6);
/// empty where those are not readable. A listener on `0.0.0.0` is reachable
/// at each of them, so each counts as the proxy itself.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = local_v4(&std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default());
    out.extend(local_v6(
        &std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default(),
    ));
    out
}

/// The `/32 host LOCAL` entries of a `fib_trie` dump.
fn local_v4(fib_trie: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in fib_trie.lines() {
        let line = line.trim();
        if let Some(ip) = line.strip_prefix("|-- ").and_then(|ip| ip.parse().ok()) {
            last = Some(ip);
        } else if line.starts_with("/32 host LOCAL")
            && let Some(ip) = last.filter(|ip| !out.contains(ip))
        {
            out.push(ip);
        }
    }
    out
}

/// The addresses of an `if_inet6` listing (32 hex digits per line).
fn local_v6(if_inet6: &str) -> Vec<IpAddr> {
    if_inet6
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(|bits| IpAddr::V6(Ipv6Addr::from(bits)))
        .collect()
}

/// Matches a glob where `*` stands for any run of characters (including
/// dots): `*.example.com` matches `a.b.example.com` but not `example.com`.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t) = (glob.as_bytes(), text.as_bytes());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi] == t[ti] {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_addresses_from_proc() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 4\n     |-- 0.0.0.0\n        /0 universe UNICAST\n           |-- 127.0.0.1\n              /32 host LOCAL\n           |-- 10.1.2.3\n              /32 host LOCAL\n        |-- 10.1.255.255\n           /32 link BROADCAST\nLocal:\n           |-- 10.1.2.3\n              /32 host LOCAL\n";
        assert_eq!(
            local_v4(fib),
            vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 1, 2, 3])]
        );
        let v6 = "fd000000000000000000000000000002 04 40 00 82     eth0\n00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(
            local_v6(v6),
            vec!["fd00::2".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]
        );
        assert!(
            local_addresses().iter().any(IpAddr::is_loopback),
            "this machine has a loopback"
        );
    }

    #[test]
    fn globs() {
        for (glob, text, want) in [
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("api.*.svc", "api.prod.svc", true),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_match(glob, text), want, "{glob} vs {text}");
        }
    }

    #[test]
    fn rules_parse() {
        let r: AllowRule = "*.example.com:443".parse().unwrap();
        assert_eq!(r.pattern, Pattern::Host("*.example.com".into()));
        assert_eq!(r.ports, Ports::Ranges(vec![(443, 443)]));
        let r: AllowRule = "10.0.0.0/8:80,8000-8999".parse().unwrap();
        assert!(matches!(r.pattern, Pattern::Net(_)));
        assert!(r.ports.contains(8500) && r.ports.contains(80) && !r.ports.contains(443));
        let r: AllowRule = "[fd00::/8]:443".parse().unwrap();
        assert!(matches!(r.pattern, Pattern::Net(n) if n.contains("fd12::1".parse().unwrap())));
        let r: AllowRule = "fd00::/8".parse().unwrap();
        assert_eq!(r.ports, Ports::Any);
        for bad in ["", ":443", "a b", "10.0.0.0/33", "host:99999", "host:9-1", "[::1"] {
            assert!(bad.parse::<AllowRule>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_is_denied_by_default_even_behind_a_name() {
        let p = Policy::default();
        assert!(p.check("example.com", 80, &[addr("93.184.216.34:80")]).is_ok());
        for meta in [
            "169.254.169.254:80",
            "[fd00:ec2::254]:80",
            "[::ffff:169.254.169.254]:80",
            "[fe80::1]:80",
            "100.100.100.200:80",
        ] {
            assert!(
                matches!(
                    p.check("innocent.example", 80, &[addr(meta)]),
                    Err(Denied::LinkLocalOrMetadata(..))
                ),
                "{meta}"
            );
        }
        // An explicit CIDR rule opens it.
        let p = Policy::new(vec!["169.254.169.254/32".parse().unwrap()], vec![]);
        assert!(p.check("metadata", 80, &[addr("169.254.169.254:80")]).is_ok());
        // A host rule alone does not.
        let p = Policy::new(vec!["metadata".parse().unwrap()], vec![]);
        assert!(p.check("metadata", 80, &[addr("169.254.169.254:80")]).is_err());
    }

    #[test]
    fn allowlist_and_self_loops() {
        let p = Policy::new(
            vec!["*.example.com:443".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            vec![addr("0.0.0.0:3128"), addr("127.0.0.1:9703")],
        );
        assert!(p.check_name("api.example.com", 443).is_ok());
        assert!(
            p.check_name("api.example.com", 80).is_ok(),
            "a CIDR rule may still match after DNS"
        );
        assert!(p.check("api.example.com", 443, &[addr("93.184.216.34:443")]).is_ok());
        assert!(p.check("api.example.com", 80, &[addr("93.184.216.34:80")]).is_err());
        assert!(p.check("db.internal", 5432, &[addr("10.1.2.3:5432")]).is_ok());
        assert!(p.check("evil.com", 443, &[addr("93.184.216.34:443")]).is_err());
        assert!(matches!(
            p.check("10.0.0.1", 3128, &[addr("127.0.0.1:3128")]),
            Err(Denied::SelfLoop(_))
        ));
        assert!(matches!(
            p.check("localhost", 9703, &[addr("127.0.0.1:9703")]),
            Err(Denied::SelfLoop(_))
        ));
        let open = Policy::new(vec![], vec![addr("127.0.0.1:3128")]);
        assert!(open.check("localhost", 8080, &[addr("127.0.0.1:8080")]).is_ok());
        assert!(open.check("0.0.0.0", 3128, &[addr("0.0.0.0:3128")]).is_err());
    }
}
