//! What can go wrong setting up TLS: each error reads as one sentence that
//! names the file (or name) and what is wrong with it, so a user can act on
//! it without knowing rustls.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::explain::brief;
use crate::flags::TlsOption;

/// Which file a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// A bundle of CA certificates to trust.
    Ca,
    /// The client certificate chain (mutual TLS).
    ClientCert,
    /// The private key of the client certificate.
    ClientKey,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ca => "CA file",
            Self::ClientCert => "client certificate file",
            Self::ClientKey => "client key file",
        })
    }
}

/// A TLS file that cannot be used, or a client configuration that cannot be
/// built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file cannot be read (missing, a directory, no permission).
    #[error("cannot read the {file} {}: {}", path.display(), brief(error))]
    Read {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// Why reading failed.
        error: io::Error,
    },
    /// The file holds nothing but white space.
    #[error("the {file} {} is empty", path.display())]
    Empty {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
    },
    /// A PEM block in the file is malformed (bad base64, no END line).
    #[error("the {file} {} is not valid PEM: {detail}", path.display())]
    NotPem {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// What the PEM parser found.
        detail: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("the {file} {} holds no PEM certificate ({})", path.display(),
            if *holds_key { "only a private key: is it the key file?" } else { "no -----BEGIN CERTIFICATE----- block" })]
    NoCertificate {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// It holds a private key instead, a likely mix-up of two files.
        holds_key: bool,
    },
    /// The key file holds no private key block.
    #[error("the client key file {} holds no PEM private key (no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block)", path.display())]
    NoKey {
        /// Its path.
        path: PathBuf,
    },
    /// A certificate decodes from PEM but is not a usable X.509 certificate.
    #[error("certificate #{index} in the {file} {} cannot be used: {detail}", path.display())]
    BadCertificate {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// Its position in the file, from 1.
        index: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// The private key is of a kind the TLS library cannot sign with.
    #[error("the private key in the client key file {} cannot be used: {detail}", path.display())]
    BadKey {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The private key does not belong to the client certificate.
    #[error("the client key file {} does not hold the private key of the client certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The client certificate file.
        cert: PathBuf,
        /// The client key file.
        key: PathBuf,
    },
    /// A client certificate was given without its key.
    #[error("the client certificate {} was given without its private key: give the client key file too", cert.display())]
    CertWithoutKey {
        /// The client certificate file.
        cert: PathBuf,
    },
    /// A client key was given without its certificate.
    #[error("the client key {} was given without its certificate: give the client certificate file too", key.display())]
    KeyWithoutCert {
        /// The client key file.
        key: PathBuf,
    },
    /// Not a DNS name or IP address.
    #[error("`{name}` is not a valid TLS server name (give a DNS name or an IP address)")]
    ServerName {
        /// The name as given.
        name: String,
    },
    /// rustls refused the configuration (not expected with the defaults).
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// The option (flag or config key) whose value this error is about,
    /// for binaries that prefix errors with it (`--tls-ca-file: ...`).
    pub fn option(&self) -> Option<TlsOption> {
        let file = match self {
            Self::Read { file, .. }
            | Self::Empty { file, .. }
            | Self::NotPem { file, .. }
            | Self::NoCertificate { file, .. }
            | Self::BadCertificate { file, .. } => *file,
            Self::NoKey { .. } | Self::BadKey { .. } | Self::KeyMismatch { .. } | Self::CertWithoutKey { .. } => {
                PemFile::ClientKey
            }
            Self::KeyWithoutCert { .. } => PemFile::ClientCert,
            Self::ServerName { .. } => return Some(TlsOption::ServerName),
            Self::Rustls(_) => return None,
        };
        Some(match file {
            PemFile::Ca => TlsOption::CaFile,
            PemFile::ClientCert => TlsOption::ClientCert,
            PemFile::ClientKey => TlsOption::ClientKey,
        })
    }

    /// The message with the flag it is about in front, as a binary reports
    /// a bad flag: `--tls-ca-file: the CA file /etc/ca.pem is empty`.
    pub fn with_flag(&self) -> String {
        match self.option() {
            Some(option) => format!("{option}: {self}"),
            None => self.to_string(),
        }
    }
}
