//! Name resolution, TCP connects and TLS, shared by every network probe.
//!
//! Names are resolved afresh on every attempt (a Service's DNS record often
//! appears after the pod that waits for it starts), through the system
//! resolver or, with `--dns-server`, by asking that server directly.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
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
                Err(err) => last = describe_io(&err),
            }
        }
        Err(last)
    }
}

/// A short, lower-case description of an I/O error, as progress lines show it.
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind::*;
    match err.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        ConnectionAborted => "connection aborted".into(),
        UnexpectedEof => "connection closed by the server".into(),
        TimedOut => "timed out".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        AddrNotAvailable => "address not available".into(),
        NotFound => "not found".into(),
        PermissionDenied => "permission denied".into(),
        _ => {
            let text = err.to_string();
            // "Broken pipe (os error 32)" → "broken pipe"
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => "I/O error".into(),
            }
        }
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

/// How TLS connections verify servers.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The compiled-in Mozilla roots (webpki-roots).
    #[default]
    WebPki,
    /// The PEM certificates from a file (a private CA, the pod's ca.crt).
    Pem(Vec<CertificateDer<'static>>),
    /// No verification at all (`--tls-insecure`).
    Insecure,
}

impl Trust {
    /// Reads a PEM CA bundle; an error names the file.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, String> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
            .collect();
        let certs = certs.map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file {} holds no PEM certificate", path.display()));
        }
        Ok(Self::Pem(certs))
    }

    /// Builds a client config that offers the ALPN protocols `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = match self {
            Self::WebPki => {
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Self::Pem(certs) => {
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("bad CA certificate: {e}"))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Self::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Wraps `stream` in TLS to `host`.
pub async fn tls(stream: TcpStream, host: &str, config: Arc<ClientConfig>) -> Result<Stream, String> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| format!("`{host}` is not a TLS server name"))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS: {}", describe_io(&e)))?;
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

/// The verifier behind `--tls-insecure`: accepts any certificate, still
/// checks handshake signatures so the connection is at least well-formed.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_users_search_for_them() {
        assert_eq!(
            describe_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(describe_io(&io::Error::from_raw_os_error(32)), "broken pipe");
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
