//! Throwaway TLS material for tests: a CA written to a PEM file that a
//! binary is told to trust (`--tls-ca-file`), server configs with a
//! certificate it signed, and a client certificate for mutual TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and what it issued, its PEM files written in a test's directory.
#[derive(Debug)]
pub struct TestCa {
    /// The CA certificate (`ca.pem`), to trust.
    pub ca_pem: PathBuf,
    /// A server config for `localhost` and 127.0.0.1, signed by the CA,
    /// offering `h2` and `http/1.1` (ALPN).
    pub server: Arc<ServerConfig>,
    /// The same certificate, demanding a client certificate from this CA
    /// (`http/1.1` only).
    pub server_mtls: Arc<ServerConfig>,
    /// A client certificate (`client.pem`, for `app.test`) issued by the CA.
    pub client_cert: PathBuf,
    /// Its key (`client-key.pem`).
    pub client_key: PathBuf,
}

impl TestCa {
    /// A fresh CA and certificates, written to `dir`.
    pub fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "podkit test CA");
        let ca = ca_params.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters")
            .signed_by(&key, &issuer)
            .expect("a server certificate");
        let client_key_pair = KeyPair::generate().expect("a client key");
        let mut client_params = CertificateParams::new(vec!["app.test".to_owned()]).expect("client parameters");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key_pair, &issuer)
            .expect("a client certificate");
        let ca_pem = write(dir, "ca.pem", &ca.pem());
        let client_cert = write(dir, "client.pem", &client.pem());
        let client_key = write(dir, "client-key.pem", &client_key_pair.serialize_pem());

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("the CA as a root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("a client verifier");
        let mut server_mtls = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der().clone()], private_key(&key))
            .expect("the server certificate");
        server_mtls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            ca_pem,
            server: server_config(cert.der().clone(), &key),
            server_mtls: Arc::new(server_mtls),
            client_cert,
            client_key,
        }
    }
}

/// What `openssl req -x509` makes by default and new users serve: a
/// self-signed certificate for `localhost` and 127.0.0.1 with `CA:TRUE`.
/// Returns the server config and the certificate's PEM file (in `dir`).
pub fn self_signed_server(dir: &Path) -> (Arc<ServerConfig>, PathBuf) {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let pem = write(dir, "self-signed.pem", &cert.pem());
    (server_config(cert.der().clone(), &key), pem)
}

/// A server config with one certificate, no client authentication, and
/// `h2` and `http/1.1` offered (ALPN).
fn server_config(cert: CertificateDer<'static>, key: &KeyPair) -> Arc<ServerConfig> {
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], private_key(key))
        .expect("the server certificate");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(server)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
