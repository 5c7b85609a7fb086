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
