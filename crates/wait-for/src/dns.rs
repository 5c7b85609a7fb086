//! A minimal DNS client for `--dns-server`: one A or AAAA question over UDP
//! (RFC 1035), the answer's addresses and its response code.
//!
//! The system resolver (getaddrinfo) is the default; this client exists for
//! checking a particular server (CoreDNS at 10.96.0.10) and for tests, which
//! cannot edit /etc/hosts. It follows no search list: names are absolute.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

/// A or AAAA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// IPv4 addresses.
    A = 1,
    /// IPv6 addresses.
    Aaaa = 28,
}

/// Why a lookup found no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (RCODE 3).
    #[error("NXDOMAIN")]
    NxDomain,
    /// Another response code: SERVFAIL, REFUSED, …
    #[error("DNS {0}")]
    Rcode(&'static str),
    /// The server's answer could not be read.
    #[error("malformed DNS answer: {0}")]
    Malformed(&'static str),
    /// Sending or receiving failed.
    #[error("DNS server {server}: {reason}")]
    Io {
        /// The server asked.
        server: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// Asks `server` for the `rtype` addresses of `name`. The caller bounds the
/// time taken (a lost datagram is retried every 200 ms until then).
pub async fn lookup(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Vec<IpAddr>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        reason: podkit_tls::describe_io_error(&e),
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let id = fastrand::u16(..);
    let query = encode_query(id, name, rtype).ok_or(DnsError::Malformed("name too long"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        socket.send(&query).await.map_err(io)?;
        let received = tokio::time::timeout(std::time::Duration::from_millis(200), socket.recv(&mut buf)).await;
        let Ok(received) = received else { continue };
        let n = received.map_err(io)?;
        match decode_answer(id, &buf[..n], rtype) {
            // Not our answer (a late reply to an earlier attempt): keep waiting.
            Err(DnsError::Malformed("id mismatch")) => continue,
            other => return other,
        }
    }
}

/// Encodes a recursive query for one question.
pub fn encode_query(id: u16, name: &str, rtype: RecordType) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() > 12 + 255 {
        return None;
    }
    q.extend_from_slice(&(rtype as u16).to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    Some(q)
}

/// Reads the addresses of type `rtype` from an answer (any owner name, so a
/// CNAME chain is followed as the server resolved it).
pub fn decode_answer(id: u16, msg: &[u8], rtype: RecordType) -> Result<Vec<IpAddr>, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Malformed("short header"));
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("id mismatch"));
    }
    match msg[3] & 0x0f {
        0 => {}
        3 => return Err(DnsError::NxDomain),
        1 => return Err(DnsError::Rcode("FORMERR")),
        2 => return Err(DnsError::Rcode("SERVFAIL")),
        4 => return Err(DnsError::Rcode("NOTIMP")),
        5 => return Err(DnsError::Rcode("REFUSED")),
        _ => return Err(DnsError::Rcode("error")),
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..qdcount {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(msg, pos)?;
        let header = msg.get(pos..pos + 10).ok_or(DnsError::Malformed("short record"))?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[8], header[9]]));
        pos += 10;
        let data = msg
            .get(pos..pos + len)
            .ok_or(DnsError::Malformed("short record data"))?;
        pos += len;
        match (kind, rtype, len) {
            (1, RecordType::A, 4) => out.push(IpAddr::from(<[u8; 4]>::try_from(data).unwrap_or_default())),
            (28, RecordType::Aaaa, 16) => out.push(IpAddr::from(<[u8; 16]>::try_from(data).unwrap_or_default())),
            _ => {}
        }
    }
    Ok(out)
}

/// Skips a (possibly compressed) name, returning the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, DnsError> {
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Malformed("name runs past the end"))?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => return Ok(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encodes_labels_and_type() {
        let q = encode_query(0xabcd, "db.svc.", RecordType::Aaaa).unwrap();
        assert_eq!(
            q,
            [
                0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'd', b'b', 3, b's', b'v', b'c', 0, 0, 28, 0, 1
            ]
        );
        assert!(encode_query(1, "a..b", RecordType::A).is_none());
        assert!(encode_query(1, &"x".repeat(64), RecordType::A).is_none());
    }

    #[test]
    fn answers_with_cname_chains_compression_and_errors() {
        // A reply to `www.example` A: a CNAME to `db.example`, then its A
        // record, both owner names compressed, as servers send them.
        let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        msg.extend_from_slice(&[
            3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1,
        ]);
        msg.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5, 2, b'd', b'b', 0xc0, 16]);
        msg.extend_from_slice(&[0xc0, 41, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]);
        assert_eq!(
            decode_answer(0x1234, &msg, RecordType::A),
            Ok(vec![IpAddr::from([10, 0, 0, 7])])
        );
        assert_eq!(
            decode_answer(0x1235, &msg, RecordType::A),
            Err(DnsError::Malformed("id mismatch"))
        );
        msg[3] = 0x83;
        assert_eq!(decode_answer(0x1234, &msg, RecordType::A), Err(DnsError::NxDomain));
        msg[3] = 0x80;
        assert!(decode_answer(0x1234, &msg[..40], RecordType::A).is_err());
    }
}
