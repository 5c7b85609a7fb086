//! Name resolution, TCP connects and TLS connects (configs come from
//! `podkit-tls`), shared by every network probe.
//!
//! Names are resolved afresh on every attempt (a Service's DNS record often
//! appears after the pod that waits for it starts), through the system
//! resolver or, with `--dns-server`, by asking that server directly.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use podkit_tls::{describe_handshake_error, describe_io_error};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::dns::{self, RecordType};
use crate::target::{Family, HostPort};

/// A byte stream: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A boxed [`Io`], so probes are not compiled once per stream type.
pub type Stream = Pin<Box<dyn Io>>;

/// How names are resolved.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Ask this DNS server directly instead of the system resolver.
    pub server: Option<SocketAddr>,
}

impl Resolver {
    /// The addresses of `host` (an IP literal is its own answer), in the
    /// resolver's order. Errors read like `NXDOMAIN` or `DNS SERVFAIL`.
    pub async fn resolve(&self, host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = match self.server {
            Some(server) => {
                let mut addrs = Vec::new();
                let mut first_err = None;
                let types: &[RecordType] = match family {
                    Family::V4 => &[RecordType::A],
                    Family::V6 => &[RecordType::Aaaa],
                    Family::Any => &[RecordType::A, RecordType::Aaaa],
                };
                for rtype in types {
                    match dns::lookup(server, host, *rtype).await {
                        Ok(ips) => addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if let (true, Some(err)) = (addrs.is_empty(), first_err) {
                    return Err(err.to_string());
                }
                addrs
            }
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| describe_lookup_error(&e))?
                .filter(|a| match family {
                    Family::Any => true,
                    Family::V4 => a.is_ipv4(),
                    Family::V6 => a.is_ipv6(),
                })
                .collect(),
        };
        if addrs.is_empty() {
            return Err(match family {
                Family::Any => "no addresses".into(),
                Family::V4 => "no A records".into(),
                Family::V6 => "no AAAA records".into(),
            });
        }
        Ok(addrs)
    }

    /// Resolves and connects to the first address that accepts; the error
    /// names why the last one failed (`connection refused`, `NXDOMAIN`).
    pub async fn connect(&self, addr: &HostPort) -> Result<TcpStream, String> {
        let addrs = self.resolve(&addr.host, addr.port, Family::Any).await?;
        let mut last = String::new();
        for sockaddr in addrs {
            match TcpStream::connect(sockaddr).await {
                Ok(stream) => {
                    // Probes exchange a few small messages; do not let Nagle
                    // hold them back.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(err) => last = describe_io_error(&err),
            }
        }
        Err(last)
    }
}

/// Turns getaddrinfo's messages into the DNS terms users search for.
fn describe_lookup_error(err: &io::Error) -> String {
    let text = err.to_string();
    if text.contains("Name or service not known") || text.contains("No address associated") {
        "NXDOMAIN (name does not resolve)".into()
    } else if text.contains("Temporary failure") {
        "DNS temporary failure (no answer from the resolver)".into()
    } else {
        text.trim_start_matches("failed to lookup address information: ")
            .to_owned()
    }
}

/// Wraps `stream` in TLS to `host`.
pub async fn tls(stream: TcpStream, host: &str, config: Arc<ClientConfig>) -> Result<Stream, String> {
    let name = podkit_tls::server_name(host).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {}", describe_handshake_error(&e)))?;
    Ok(Box::pin(stream))
}

/// Connects, then speaks TLS when `config` is given.
pub async fn open(resolver: &Resolver, addr: &HostPort, config: Option<&Arc<ClientConfig>>) -> Result<Stream, String> {
    let stream = resolver.connect(addr).await?;
    match config {
        Some(config) => tls(stream, &addr.host, config.clone()).await,
        None => Ok(Box::pin(stream)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_users_search_for_them() {
        assert_eq!(
            describe_io_error(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(describe_io_error(&io::Error::from_raw_os_error(32)), "broken pipe");
        let gai = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(describe_lookup_error(&gai), "NXDOMAIN (name does not resolve)");
    }

    #[tokio::test]
    async fn literals_need_no_lookup_and_localhost_resolves() {
        let resolver = Resolver::default();
        assert_eq!(
            resolver.resolve("::1", 80, Family::Any).await.unwrap(),
            ["[::1]:80".parse().unwrap()]
        );
        let local = resolver.resolve("localhost", 80, Family::Any).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }
}
