//! Why a TLS connection failed, as a sentence a user can act on: rustls
//! reports `InvalidCertificate(Other(CaUsedAsEndEntity))`; a user needs "the
//! server's certificate is a CA certificate, not a server certificate: issue
//! a server certificate from that CA and trust the CA with --tls-ca-file".
//!
//! Written from the client's side (every podkit binary is a TLS client),
//! naming the `--tls-*` flags every binary shares.

use std::io;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, Error};

/// A rustls error met while connecting, as one sentence: what is wrong and,
/// where there is one, what to do about it.
pub fn explain(err: &Error) -> String {
    match err {
        Error::InvalidCertificate(cert) => explain_certificate(cert),
        Error::AlertReceived(alert) => explain_alert(*alert),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "the server did not answer with TLS: if it speaks plain text on this port, use http:// or tcp:// \
             instead of https:// or tls://"
                .into()
        }
        Error::NoCertificatesPresented => "the server presented no certificate".into(),
        Error::PeerIncompatible(why) => {
            format!("the server's TLS cannot work with this client ({why:?}): it needs TLS 1.2 or 1.3")
        }
        Error::PeerMisbehaved(why) => format!("the server broke the TLS protocol ({why:?})"),
        Error::NoApplicationProtocol => {
            "the server speaks none of the application protocols offered (ALPN: h2, http/1.1)".into()
        }
        Error::DecryptError => "the TLS handshake failed to decrypt a record (a damaged connection?)".into(),
        other => format!("TLS failed: {other}"),
    }
}

/// Why a certificate the server presented is refused.
fn explain_certificate(err: &CertificateError) -> String {
    match err {
        CertificateError::BadEncoding => "the server's certificate is not a well-formed X.509 certificate".into(),
        CertificateError::Expired => "the server's certificate has expired: renew it".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired at {} (it is now {}): renew it, or check this machine's clock",
            date(*not_after),
            date(*time)
        ),
        CertificateError::NotValidYet => {
            "the server's certificate is not valid yet: check the clocks of this machine and of its issuer".into()
        }
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is valid only from {} (it is now {}): check the clocks of this machine and \
             of its issuer",
            date(*not_before),
            date(*time)
        ),
        CertificateError::Revoked => "the server's certificate has been revoked".into(),
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a CA this client trusts: \
                                            trust the CA that issued it with --tls-ca-file (or the server does \
                                            not send its intermediate certificates)"
            .into(),
        CertificateError::BadSignature => {
            "the server's certificate has a bad signature: it was not signed by the CA it names".into()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the server's certificate is signed with an algorithm this client does not support".into()
        }
        CertificateError::NotValidForName => "the server's certificate is not valid for the name connected to: \
                                              connect by a name it lists, or set --tls-server-name to one"
            .into(),
        CertificateError::NotValidForNameContext { expected, presented } => {
            let names: Vec<String> = presented.iter().map(|p| presented_name(p)).collect();
            let listed = if names.is_empty() {
                "it lists no names".to_owned()
            } else {
                format!("it is for {}", names.join(", "))
            };
            format!(
                "the server's certificate is not valid for {} ({listed}): connect by one of its names, or set \
                 --tls-server-name to one",
                server_name(expected)
            )
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not for TLS servers (its extended key usage lacks serverAuth): issue \
             one for server authentication"
                .into()
        }
        CertificateError::UnhandledCriticalExtension => {
            "the server's certificate has a critical extension this client does not understand".into()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => "the server's certificate is a CA certificate, not a server \
                                                       certificate: issue a server certificate from that CA and \
                                                       trust the CA with --tls-ca-file"
                .into(),
            Some(webpki::Error::EndEntityUsedAsCa) => {
                "the server's chain has a certificate signed by a certificate that is not a CA".into()
            }
            Some(webpki::Error::NameConstraintViolation) => {
                "the server's certificate names something its CA is not allowed to certify (name constraints)".into()
            }
            Some(webpki::Error::PathLenConstraintViolated | webpki::Error::MaximumPathDepthExceeded) => {
                "the server's certificate chain is longer than its CAs allow".into()
            }
            _ => format!("the server's certificate is not acceptable ({other})"),
        },
        other => format!("the server's certificate is not acceptable ({other})"),
    }
}

/// What the server meant by ending the handshake with `alert`.
fn explain_alert(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            "the server requires a client certificate: give --tls-client-cert and --tls-client-key".into()
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateRevoked
        | AlertDescription::AccessDenied => format!(
            "the server refused the client certificate (TLS alert {alert:?}): check --tls-client-cert and \
             --tls-client-key, and that the server trusts their CA"
        ),
        AlertDescription::HandshakeFailure
        | AlertDescription::ProtocolVersion
        | AlertDescription::InsufficientSecurity => {
            format!("the server and this client have no TLS version or cipher suite in common (TLS alert {alert:?})")
        }
        AlertDescription::UnrecognisedName => {
            "the server does not know the name sent as SNI: connect by a name it serves, or set --tls-server-name"
                .into()
        }
        AlertDescription::NoApplicationProtocol => {
            "the server speaks none of the application protocols offered (ALPN: h2, http/1.1)".into()
        }
        other => format!("the server ended the TLS handshake (TLS alert {other:?})"),
    }
}

/// An I/O error as one short, lower-case phrase, the one wording every
/// podkit binary uses: a rustls failure (what tokio-rustls returns)
/// explained as [`explain`] does; a network failure in the terms users
/// search for (`connection refused`, `connection reset`, `timed out`,
/// `host unreachable`, `connection closed by the server`); anything else as
/// the system puts it, without the `(os error N)` suffix.
pub fn describe_io_error(err: &io::Error) -> String {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(tls) => explain(tls),
        None => brief(err),
    }
}

/// [`describe_io_error`] for an error of the TLS handshake itself, after the
/// TCP connection was made: there a close or a reset from the server also
/// says something (it may not speak TLS, or wants what it was not given).
pub fn describe_handshake_error(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            if err.get_ref().and_then(|inner| inner.downcast_ref::<Error>()).is_none() =>
        {
            "the server closed the connection during the TLS handshake: does it speak TLS on this port, and does \
             it want a client certificate?"
                .into()
        }
        _ => describe_io_error(err),
    }
}

/// [`describe_io_error`] for an error that is not a rustls one:
/// "Connection refused (os error 111)" → "connection refused",
/// "Connection reset by peer (os error 104)" → "connection reset".
pub(crate) fn brief(err: &io::Error) -> String {
    use io::ErrorKind::*;
    // An error that carries its own message (not an OS error nor a bare
    // kind) says it in its own words.
    let own_message = err.get_ref().is_some();
    let known = match err.kind() {
        _ if own_message => "",
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        UnexpectedEof => "connection closed by the server",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        _ => "",
    };
    if !known.is_empty() {
        return known.into();
    }
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "I/O error".into(),
    }
}

fn date(time: UnixTime) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(time.as_secs());
    humantime::format_rfc3339_seconds(at).to_string()
}

fn server_name(name: &ServerName<'_>) -> String {
    name.to_str().into_owned()
}

/// `DnsName("localhost")` → `localhost`, `IpAddress(127.0.0.1)` →
/// `127.0.0.1` (how rustls lists the names a certificate presents).
fn presented_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| presented.strip_prefix("IpAddress(").and_then(|s| s.strip_suffix(')')));
    inner.unwrap_or(presented).to_owned()
}
