//! MySQL and MariaDB targets: a server that accepts a connection sends its
//! Initial Handshake packet (protocol 10) first; ready when it does.
//!
//! A server that refuses sends an ERR packet instead ("Too many
//! connections", "Host '…' is not allowed to connect", "Host '…' is blocked");
//! not ready, with the server's code and message as the reason, since the
//! app would be refused too. wait-for does not log in.

use super::{Check, read_exact};
use crate::net::Resolver;
use crate::target::HostPort;

/// One attempt at a MySQL target.
pub async fn check(resolver: &Resolver, addr: &HostPort) -> Check {
    let mut stream = resolver.connect(addr).await?;
    let head = read_exact(&mut stream, 4)
        .await
        .map_err(|e| format!("no handshake ({e})"))?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    if len == 0 || len > 65_536 {
        return Err("not a MySQL handshake".into());
    }
    let payload = read_exact(&mut stream, len).await?;
    judge(&payload)
}

/// Reads the first packet's payload.
pub fn judge(payload: &[u8]) -> Check {
    match payload.first() {
        Some(10) => {
            let version = payload[1..].split(|b| *b == 0).next().unwrap_or_default();
            tracing::debug!(version = %String::from_utf8_lossy(version), "MySQL handshake.");
            Ok(())
        }
        Some(0xff) if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            let mut message = &payload[3..];
            if message.first() == Some(&b'#') && message.len() >= 6 {
                message = &message[6..];
            }
            Err(format!("MySQL error {code}: {}", String::from_utf8_lossy(message)).into())
        }
        Some(other) => Err(format!("unexpected handshake (protocol {other}; not a MySQL server?)").into()),
        None => Err("empty handshake".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Fail;

    #[test]
    fn handshake_and_error_packets() {
        assert_eq!(judge(b"\x0a11.4.2-MariaDB\0rest"), Ok(()));
        let mut err = vec![0xff, 0x10, 0x04];
        err.extend_from_slice(b"Too many connections");
        assert_eq!(
            judge(&err),
            Err(Fail::NotReady("MySQL error 1040: Too many connections".into()))
        );
        let mut err = vec![0xff, 0x6a, 0x04, b'#'];
        err.extend_from_slice(b"HY000Host 'x' is not allowed to connect");
        assert_eq!(
            judge(&err),
            Err(Fail::NotReady(
                "MySQL error 1130: Host 'x' is not allowed to connect".into()
            ))
        );
        assert!(judge(b"\x09old").is_err());
    }
}
