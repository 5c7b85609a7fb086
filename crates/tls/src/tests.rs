//! The loader's verdicts on good and bad files, the flags, and the
//! config-file keys, as a user would meet them.

use std::path::{Path, PathBuf};

use clap::Parser;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::*;

/// A CA, a client certificate it issued, and a stranger's key, as PEM files.
struct Files {
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let files = Self {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("client.pem"),
            key: dir.path().join("client-key.pem"),
            other_key: dir.path().join("other-key.pem"),
            dir,
        };
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        files
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn err(options: TlsOptions) -> String {
    options.load().unwrap_err().to_string()
}

fn ca(path: &Path) -> TlsOptions {
    TlsOptions {
        ca_file: Some(path.to_owned()),
        ..TlsOptions::default()
    }
}

fn identity(cert: &Path, key: &Path) -> TlsOptions {
    TlsOptions {
        client_cert: Some(cert.to_owned()),
        client_key: Some(key.to_owned()),
        ..TlsOptions::default()
    }
}

#[test]
fn good_files_load_and_build_configs() {
    let f = Files::new();
    let tls = TlsOptions {
        server_name: Some("api.test".into()),
        ..identity(&f.cert, &f.key)
    }
    .load()
    .unwrap();
    assert!(tls.identity.is_some());
    assert_eq!(tls.server_name("10.0.0.1").unwrap().to_str(), "api.test");
    let config = tls.client_config(&[b"h2", b"http/1.1"]).unwrap();
    assert!(config.client_auth_cert_resolver.has_certs());
    assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    let Trust::Pem(roots) = ca(&f.ca).load().unwrap().trust else {
        panic!("a CA file is a PEM trust");
    };
    assert_eq!(roots.len(), 1);
    assert!(matches!(TlsOptions::default().load().unwrap().trust, Trust::WebRoots));
    // A key block next to the certificates is not an error.
    let bundle = f.write(
        "bundle.pem",
        &(std::fs::read_to_string(&f.ca).unwrap() + &std::fs::read_to_string(&f.key).unwrap()),
    );
    ca(&bundle).load().unwrap();
}

#[test]
fn insecure_wins_but_the_ca_file_is_still_checked() {
    let f = Files::new();
    let options = TlsOptions {
        insecure: true,
        ..ca(&f.ca)
    };
    assert!(matches!(options.load().unwrap().trust, Trust::Insecure));
    let missing = f.dir.path().join("missing.pem");
    let options = TlsOptions {
        insecure: true,
        ..ca(&missing)
    };
    assert!(err(options).contains("missing.pem"));
}

#[test]
fn missing_unreadable_and_empty_files_are_named() {
    let f = Files::new();
    let missing = f.dir.path().join("nope.pem");
    assert_eq!(
        err(ca(&missing)),
        format!(
            "cannot read the CA file {}: no such file or directory",
            missing.display()
        )
    );
    assert_eq!(
        err(ca(f.dir.path())),
        format!("cannot read the CA file {}: is a directory", f.dir.path().display())
    );
    let empty = f.write("empty.pem", " \n\n");
    assert_eq!(err(ca(&empty)), format!("the CA file {} is empty", empty.display()));
    assert_eq!(
        err(identity(&f.cert, &empty)),
        format!("the client key file {} is empty", empty.display())
    );
}

#[test]
fn bad_pem_is_rejected_not_skipped() {
    let f = Files::new();
    let good = std::fs::read_to_string(&f.ca).unwrap();
    // A second, broken certificate after a good one: the whole file fails.
    let broken = f.write(
        "broken.pem",
        &format!("{good}-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n"),
    );
    let e = err(ca(&broken));
    assert!(
        e.starts_with(&format!(
            "the CA file {} is not valid PEM: a block is not valid base64",
            broken.display()
        )),
        "{e}"
    );
    let unterminated = f.write("cut.pem", &good[..good.len() / 2]);
    let e = err(ca(&unterminated));
    assert!(
        e.contains("is not valid PEM: a CERTIFICATE block has no END line"),
        "{e}"
    );
    // Valid base64 that is not a certificate.
    let junk = f.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    assert_eq!(
        err(ca(&junk)),
        format!(
            "certificate #1 in the CA file {} cannot be used: it is not a well-formed X.509 certificate",
            junk.display()
        )
    );
    let text = f.write("text.pem", "hello\n");
    assert_eq!(
        err(ca(&text)),
        format!(
            "the CA file {} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)",
            text.display()
        )
    );
    assert_eq!(
        err(identity(&f.cert, &text)),
        format!(
            "the client key file {} holds no PEM private key (no -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY block)",
            text.display()
        )
    );
}

#[test]
fn mixed_up_files_are_explained() {
    let f = Files::new();
    // Certificate and key swapped.
    assert_eq!(
        err(identity(&f.key, &f.cert)),
        format!(
            "the client certificate file {} holds no PEM certificate (only a private key: is it the key file?)",
            f.key.display()
        )
    );
    assert_eq!(
        err(identity(&f.cert, &f.other_key)),
        format!(
            "the client key file {} does not hold the private key of the client certificate in {}",
            f.other_key.display(),
            f.cert.display()
        )
    );
}

#[test]
fn a_certificate_and_its_key_come_together() {
    let f = Files::new();
    let cert_only = TlsOptions {
        client_cert: Some(f.cert.clone()),
        ..TlsOptions::default()
    };
    let e = cert_only.load().unwrap_err();
    assert_eq!(e.option(), Some(TlsOption::ClientKey));
    assert_eq!(
        format!("{}: {e}", e.option().unwrap()),
        format!(
            "--tls-client-key: the client certificate {} was given without its private key: give the client key file too",
            f.cert.display()
        )
    );
    let key_only = TlsOptions {
        client_key: Some(f.key.clone()),
        ..TlsOptions::default()
    };
    let e = key_only.check().unwrap_err();
    assert_eq!(e.option(), Some(TlsOption::ClientCert));
    assert!(e.to_string().contains("given without its certificate"), "{e}");
}

#[test]
fn server_names() {
    assert_eq!(server_name("[::1]").unwrap().to_str(), "::1");
    assert_eq!(server_name("db.test").unwrap().to_str(), "db.test");
    let options = TlsOptions {
        server_name: Some("not a name".into()),
        ..TlsOptions::default()
    };
    assert_eq!(
        options.check().unwrap_err().to_string(),
        "`not a name` is not a valid TLS server name (give a DNS name or an IP address)"
    );
}

#[derive(Debug)]
struct Flags;
impl TlsFlags for Flags {
    const ENV_PREFIX: &'static str = "PODKIT_TLS_TEST_";
    const SERVER_NAME: bool = true;
    const LEGACY: &'static [Legacy] = &[
        Legacy {
            option: TlsOption::CaFile,
            long: "ca-file",
            env: "PODKIT_TLS_TEST_CA_FILE",
        },
        Legacy {
            option: TlsOption::Insecure,
            long: "insecure",
            env: "PODKIT_TLS_TEST_INSECURE",
        },
    ];
}

#[derive(Debug)]
struct NoServerName;
impl TlsFlags for NoServerName {
    const ENV_PREFIX: &'static str = "PODKIT_TLS_TEST2_";
}

#[derive(Debug, Parser)]
struct Args<F: TlsFlags + 'static> {
    #[command(flatten)]
    tls: TlsArgs<F>,
}

#[test]
fn flags_new_spellings_old_spellings_and_help() {
    let parse = |argv: &[&str]| {
        Args::<Flags>::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))
            .map(|a| a.tls.into_options())
            .map_err(|e| e.to_string())
    };
    let all = parse(&[
        "--tls-ca-file=ca.pem",
        "--tls-client-cert",
        "c.pem",
        "--tls-client-key",
        "k.pem",
        "--tls-insecure",
        "--tls-server-name",
        "db.test",
    ])
    .unwrap();
    assert_eq!(
        all,
        TlsOptions {
            ca_file: Some("ca.pem".into()),
            client_cert: Some("c.pem".into()),
            client_key: Some("k.pem".into()),
            insecure: true,
            server_name: Some("db.test".into()),
        }
    );
    let old = parse(&["--ca-file", "old.pem", "--insecure"]).unwrap();
    assert_eq!((old.ca_file, old.insecure), (Some("old.pem".into()), true));
    // Both spellings on the command line: the new one wins.
    let both = parse(&["--ca-file", "old.pem", "--tls-ca-file", "new.pem"]).unwrap();
    assert_eq!(both.ca_file, Some("new.pem".into()));
    assert_eq!(parse(&[]).unwrap(), TlsOptions::default());

    let help = Args::<Flags>::try_parse_from(["t", "--help"]).unwrap_err().to_string();
    for shown in [
        "--tls-ca-file <FILE>",
        "PODKIT_TLS_TEST_TLS_CA_FILE",
        "--tls-server-name <NAME>",
    ] {
        assert!(help.contains(shown), "{shown} missing from:\n{help}");
    }
    for hidden in ["--ca-file", "--insecure ", "PODKIT_TLS_TEST_CA_FILE"] {
        assert!(!help.contains(hidden), "{hidden} should be hidden:\n{help}");
    }
    let e = Args::<NoServerName>::try_parse_from(["t", "--tls-server-name", "x"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn config_file_keys() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        tls: TlsOptions,
    }
    let s: Section = toml::from_str(
        "[tls]\ntls_ca_file = \"/ca.pem\"\ntls-client-cert = \"/c.pem\"\ntls_client_key = \"/k.pem\"\ntls_insecure = true\ntls_server_name = \"db\"\n",
    )
    .unwrap();
    assert_eq!(s.tls.ca_file, Some("/ca.pem".into()));
    assert_eq!(s.tls.client_cert, Some("/c.pem".into()));
    assert!(s.tls.insecure);
    assert_eq!(s.tls.server_name.as_deref(), Some("db"));
    let s: Section = toml::from_str("[tls]\n").unwrap();
    assert_eq!(s.tls, TlsOptions::default());
}

/// What a client built by [`ClientTls::client_config`] meets: certificates
/// made the ways users make them, served by a rustls server in memory.
mod explained {
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    use super::super::*;

    /// A certificate for `localhost` and 127.0.0.1 and its key.
    struct Served {
        cert: CertificateDer<'static>,
        key: KeyPair,
        /// The PEM file a user would pass with `--tls-ca-file`.
        trust_pem: String,
    }

    /// What `openssl req -x509` makes: self-signed, with `CA:TRUE`.
    fn openssl_req_x509() -> Served {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Served {
            trust_pem: cert.pem(),
            cert: cert.der().clone(),
            key,
        }
    }

    /// A server certificate issued by a CA; `edit` changes it first.
    fn issued(edit: impl FnOnce(&mut CertificateParams)) -> Served {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        edit(&mut params);
        let cert = params.signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key)).unwrap();
        Served {
            trust_pem: ca.pem(),
            cert: cert.der().clone(),
            key,
        }
    }

    fn server(served: &Served, client_auth_from: Option<&Served>) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_auth_from {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.cert.clone()).unwrap();
                builder.with_client_cert_verifier(
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap(),
                )
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(served.key.serialize_der().into());
        Arc::new(builder.with_single_cert(vec![served.cert.clone()], key).unwrap())
    }

    fn trusting(dir: &tempfile::TempDir, served: &Served) -> ClientTls {
        let path = dir.path().join("trust.pem");
        std::fs::write(&path, &served.trust_pem).unwrap();
        ClientTls::new(Trust::from_pem_file(&path).unwrap())
    }

    /// Runs a handshake to `name`; the client's error as a user reads it.
    fn connect(client: &ClientTls, name: &str, server: Arc<ServerConfig>) -> String {
        let config = client.client_config(&[b"http/1.1"]).unwrap();
        let mut c = ClientConnection::new(config, client.server_name(name).unwrap()).unwrap();
        let mut s = ServerConnection::new(server).unwrap();
        for _ in 0..16 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            s.read_tls(&mut wire.as_slice()).unwrap();
            // A server that refuses sends its alert on; the client reports it.
            let server_failed = s.process_new_packets().is_err();
            let mut wire = Vec::new();
            s.write_tls(&mut wire).unwrap();
            c.read_tls(&mut wire.as_slice()).unwrap();
            if let Err(err) = c.process_new_packets() {
                return explain(&err);
            }
            assert!(!server_failed, "the server failed without telling the client");
            if !c.is_handshaking() && !s.is_handshaking() {
                return "connected".into();
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn a_ca_certificate_served_as_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let served = openssl_req_x509();
        let expected = "the server's certificate is a CA certificate, not a server certificate: issue a server \
                        certificate from that CA and trust the CA with --tls-ca-file";
        // Trusted as a CA file, and not trusted at all: the same cause.
        assert_eq!(
            connect(&trusting(&dir, &served), "localhost", server(&served, None)),
            expected
        );
        assert_eq!(
            connect(&ClientTls::default(), "localhost", server(&served, None)),
            expected
        );
    }

    #[test]
    fn untrusted_wrong_name_expired_and_the_working_case() {
        let dir = tempfile::tempdir().unwrap();
        let good = issued(|_| {});
        assert_eq!(
            connect(&trusting(&dir, &good), "localhost", server(&good, None)),
            "connected"
        );
        assert_eq!(
            connect(&trusting(&dir, &good), "127.0.0.1", server(&good, None)),
            "connected"
        );
        assert_eq!(
            connect(&ClientTls::default(), "localhost", server(&good, None)),
            "the server's certificate is not signed by a CA this client trusts: trust the CA that issued it with \
             --tls-ca-file (or the server does not send its intermediate certificates)"
        );
        assert_eq!(
            connect(&trusting(&dir, &good), "api.test", server(&good, None)),
            "the server's certificate is not valid for api.test (it is for localhost, 127.0.0.1): connect by one \
             of its names, or set --tls-server-name to one"
        );
        let expired = issued(|p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
        let said = connect(&trusting(&dir, &expired), "localhost", server(&expired, None));
        assert!(
            said.starts_with("the server's certificate expired at 2021-01-01T00:00:00Z (it is now 20")
                && said.ends_with("): renew it, or check this machine's clock"),
            "{said}"
        );
        let client_only = issued(|p| p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]);
        assert_eq!(
            connect(&trusting(&dir, &client_only), "localhost", server(&client_only, None)),
            "the server's certificate is not for TLS servers (its extended key usage lacks serverAuth): issue one \
             for server authentication"
        );
    }

    #[test]
    fn a_server_that_wants_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let good = issued(|_| {});
        let client_ca = openssl_req_x509();
        assert_eq!(
            connect(&trusting(&dir, &good), "localhost", server(&good, Some(&client_ca))),
            "the server requires a client certificate: give --tls-client-cert and --tls-client-key"
        );
    }

    #[test]
    fn a_plain_text_answer_and_io_errors() {
        let client = ClientTls::default().client_config(&[]).unwrap();
        let mut c = ClientConnection::new(client, server_name("localhost").unwrap()).unwrap();
        c.write_tls(&mut Vec::new()).unwrap();
        let answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        c.read_tls(&mut answer.as_slice()).unwrap();
        let err = c.process_new_packets().unwrap_err();
        assert_eq!(
            explain(&err),
            "the server did not answer with TLS: if it speaks plain text on this port, use http:// or tcp:// \
             instead of https:// or tls://"
        );
        // tokio-rustls hands rustls errors over inside an io::Error.
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert_eq!(
            describe_io_error(&wrapped),
            explain(wrapped.get_ref().unwrap().downcast_ref().unwrap())
        );
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(describe_io_error(&refused), "connection refused");
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            describe_handshake_error(&eof),
            "the server closed the connection during the TLS handshake: does it speak TLS on this port, and does \
             it want a client certificate?"
        );
        assert_eq!(describe_io_error(&eof), "tls handshake eof");
    }
}
