//! TLS client set-up for every podkit binary that speaks TLS: whom to trust
//! ([`Trust`]), what to present ([`Identity`]), the one PEM loader
//! ([`load_certs`], [`load_private_key`]) that rejects a bad, unreadable or
//! empty file with a sentence naming it, and [`client_config`], which turns
//! [`TlsOptions`] into a rustls `ClientConfig` (ring provider, safe default
//! protocol versions, the ALPN protocols the caller speaks).
//!
//! Options come from a config file ([`TlsOptions`] is `Deserialize`, keys
//! `tls_ca_file`, `tls_client_cert`, `tls_client_key`, `tls_insecure`,
//! `tls_server_name`) or from flags: [`TlsArgs`] adds `--tls-ca-file`,
//! `--tls-client-cert`, `--tls-client-key`, `--tls-insecure` (and, when the
//! binary asks, `--tls-server-name`) with env twins under the binary's prefix.
//!
//! ```
//! use clap::Parser;
//! use podkit_tls::{Legacy, TlsArgs, TlsFlags, TlsOption};
//!
//! /// The flags `--tls-ca-file` … with env twins `LOG_SHIPPER_TLS_CA_FILE` …,
//! /// plus `--tls-server-name`, plus an older `--ca-file` kept working.
//! struct ShipperTls;
//! impl TlsFlags for ShipperTls {
//!     const ENV_PREFIX: &'static str = "LOG_SHIPPER_";
//!     const SERVER_NAME: bool = true;
//!     const LEGACY: &'static [Legacy] = &[Legacy {
//!         option: TlsOption::CaFile,
//!         long: "ca-file",
//!         env: "LOG_SHIPPER_CA_FILE",
//!     }];
//! }
//!
//! #[derive(Debug, Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     tls: TlsArgs<ShipperTls>,
//! }
//!
//! let args = Args::try_parse_from(["log-shipper", "--tls-insecure", "--tls-server-name", "logs.example"])?;
//! assert!(args.tls.options.insecure);
//! let tls = args.tls.options.load()?; // reads and checks every file named
//! let config = tls.client_config(&[b"http/1.1"])?;
//! assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
//! assert_eq!(tls.server_name("10.0.0.7")?.to_str(), "logs.example");
//!
//! // A missing file is one sentence naming it; the binary adds the flag.
//! let args = Args::try_parse_from(["log-shipper", "--ca-file", "/no/such/ca.pem"])?;
//! let err = args.tls.options.load().unwrap_err();
//! assert_eq!(
//!     err.with_flag(),
//!     "--tls-ca-file: cannot read the CA file /no/such/ca.pem: no such file or directory"
//! );
//!
//! // The same options in a config file section.
//! #[derive(serde::Deserialize)]
//! struct Sink {
//!     url: String,
//!     #[serde(flatten)]
//!     tls: podkit_tls::TlsOptions,
//! }
//! let sink: Sink = toml::from_str("url = \"https://logs\"\ntls_insecure = true\ntls_server_name = \"logs.example\"")?;
//! assert!(sink.tls.insecure && sink.tls.server_name.as_deref() == Some("logs.example"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! When a connection fails, [`describe_io_error`] and [`explain`] say why
//! in a sentence a user can act on ("the server's certificate is a CA
//! certificate, not a server certificate: ...") instead of rustls's
//! variant names.
//!
//! `--tls-insecure` (accept any certificate) is for tests; everything else
//! verifies the server against web roots (webpki-roots, compiled in: images
//! have no CA store) or the CA file.

#![deny(missing_docs)]

mod error;
mod explain;
mod flags;
mod pem;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, ClientConfig, RootCertStore};

pub use crate::error::{PemFile, TlsError};
pub use crate::explain::{describe_handshake_error, describe_io_error, explain};
pub use crate::flags::{Legacy, TlsArgs, TlsFlags, TlsOption};
pub use crate::pem::{load_certs, load_private_key};
pub use rustls;

/// TLS settings as flags or a config file give them: paths and switches,
/// nothing read yet. [`TlsOptions::load`] reads and checks the files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct TlsOptions {
    /// PEM bundle of CA certificates to trust instead of the web roots.
    #[serde(rename = "tls_ca_file", alias = "tls-ca-file")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS); needs `client_key`.
    #[serde(rename = "tls_client_cert", alias = "tls-client-cert")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(rename = "tls_client_key", alias = "tls-client-key")]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (tests only); wins over `ca_file`.
    #[serde(rename = "tls_insecure", alias = "tls-insecure")]
    pub insecure: bool,
    /// The name to send as SNI and verify, instead of the host connected to.
    #[serde(rename = "tls_server_name", alias = "tls-server-name")]
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Checks what can be checked without reading files: a client
    /// certificate and key come together, the server name is a valid name.
    pub fn check(&self) -> Result<(), TlsError> {
        match (&self.client_cert, &self.client_key) {
            (Some(cert), None) => return Err(TlsError::CertWithoutKey { cert: cert.clone() }),
            (None, Some(key)) => return Err(TlsError::KeyWithoutCert { key: key.clone() }),
            _ => {}
        }
        if let Some(name) = &self.server_name {
            server_name(name)?;
        }
        Ok(())
    }

    /// Reads and checks every file named (even the CA file when `insecure`
    /// makes it moot, so a wrong path is reported, not ignored).
    pub fn load(&self) -> Result<ClientTls, TlsError> {
        self.check()?;
        let mut trust = match &self.ca_file {
            Some(path) => Trust::from_pem_file(path)?,
            None => Trust::WebRoots,
        };
        if self.insecure {
            trust = Trust::Insecure;
        }
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem_files(cert, key)?),
            _ => None,
        };
        Ok(ClientTls {
            trust,
            identity,
            server_name: self.server_name.as_deref().map(server_name).transpose()?,
        })
    }
}

/// Builds a client config from `options` offering the ALPN protocols `alpn`
/// (`h2`, `http/1.1`; empty for raw TCP). Shorthand for
/// `options.load()?.client_config(alpn)`.
pub fn client_config(options: &TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    options.load()?.client_config(alpn)
}

/// Whom a client trusts.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The Mozilla roots compiled in (webpki-roots).
    #[default]
    WebRoots,
    /// The CA certificates of a PEM bundle (a private CA, a pod's `ca.crt`).
    Pem(Arc<RootCertStore>),
    /// Anyone: no certificate verification (`--tls-insecure`, tests only).
    Insecure,
}

impl Trust {
    /// Trusts the CA certificates in the PEM file at `path`; every one must
    /// be usable (none is skipped).
    pub fn from_pem_file(path: &Path) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for (i, cert) in load_certs(path, PemFile::Ca)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| TlsError::BadCertificate {
                file: PemFile::Ca,
                path: path.to_owned(),
                index: i + 1,
                detail: describe_cert_error(e),
            })?;
        }
        Ok(Self::Pem(Arc::new(roots)))
    }
}

/// A client certificate chain and its private key, checked to belong
/// together.
#[derive(Debug, Clone)]
pub struct Identity(Arc<CertifiedKey>);

impl Identity {
    /// Loads the chain from `cert` and the key from `key` (PEM files).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = load_certs(cert, PemFile::ClientCert)?;
        let der = load_private_key(key)?;
        match CertifiedKey::from_der(chain, der, &provider()) {
            Ok(certified) => Ok(Self(Arc::new(certified))),
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }),
            Err(rustls::Error::InvalidCertificate(e)) => Err(TlsError::BadCertificate {
                file: PemFile::ClientCert,
                path: cert.to_owned(),
                index: 1,
                detail: describe_cert_error(rustls::Error::InvalidCertificate(e)),
            }),
            Err(e) => Err(TlsError::BadKey {
                path: key.to_owned(),
                detail: e.to_string(),
            }),
        }
    }
}

/// Everything a TLS client needs, loaded and checked: build one
/// [`ClientConfig`] per ALPN set with [`ClientTls::client_config`].
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Whom to trust.
    pub trust: Trust,
    /// What to present when the server asks for a client certificate.
    pub identity: Option<Identity>,
    /// The name to send and verify instead of the host (SNI override).
    pub server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Trusting `trust`, with no client certificate and no SNI override.
    pub fn new(trust: Trust) -> Self {
        Self {
            trust,
            ..Self::default()
        }
    }

    /// A client config offering the ALPN protocols `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let builder =
            ClientConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions()?;
        let builder = match &self.trust {
            Trust::WebRoots => builder.with_root_certificates(web_roots()),
            Trust::Pem(roots) => builder.with_root_certificates(Arc::clone(roots)),
            Trust::Insecure => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verify::AcceptAnyCertificate(
                        provider.signature_verification_algorithms,
                    )))
            }
        };
        let mut config = match &self.identity {
            Some(Identity(key)) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(key)))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The name to send as SNI and verify for a connection to `host`: the
    /// override when set, else `host` (a DNS name, or an IP literal, which
    /// is verified against the certificate's IP addresses and sends no SNI).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => server_name(host),
        }
    }
}

/// `host` as a TLS server name (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName { name: host.to_owned() })
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn web_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    }))
}

fn describe_cert_error(err: rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
            "it is not a well-formed X.509 certificate".into()
        }
        rustls::Error::InvalidCertificate(e) => format!("{e:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
