//! The one PEM loader: reads a whole file, and rejects it when it cannot be
//! read, is empty, is malformed, or lacks what it should hold. Nothing bad
//! is skipped silently.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{PemFile, TlsError};

/// The certificates in the PEM file at `path`, in file order; `file` says
/// what the file is for (it names the file in errors). Blocks of other kinds
/// (a key next to the chain) and text between blocks are ignored; a file
/// without any certificate is an error.
pub fn load_certs(path: &Path, file: PemFile) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, file)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(path, file, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            file,
            path: path.to_owned(),
            holds_key: PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the PEM file at
/// `path`.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = PemFile::ClientKey;
    let bytes = read(path, file)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoKey { path: path.to_owned() }),
        Err(e) => Err(not_pem(path, file, e)),
    }
}

fn read(path: &Path, file: PemFile) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read {
        file,
        path: path.to_owned(),
        error,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty {
            file,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn not_pem(path: &Path, file: PemFile, err: pem::Error) -> TlsError {
    let detail = match err {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("a {} block has no END line", String::from_utf8_lossy(&end_marker))
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("`{}` is not a valid BEGIN line", String::from_utf8_lossy(&line).trim())
        }
        pem::Error::Base64Decode(e) => format!("a block is not valid base64 ({e})"),
        other => other.to_string(),
    };
    TlsError::NotPem {
        file,
        path: path.to_owned(),
        detail,
    }
}
