//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that tcp
//! mode can send to the upstream before any byte of the client, so the
//! upstream sees the app's address rather than the ambassador's.

use std::net::{IpAddr, SocketAddr};

use crate::policy::canonical;

/// Which PROXY protocol version to send, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProxyProtocol {
    /// None (the default).
    #[default]
    Off,
    /// The text header: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// The v2 signature.
const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// The header for a connection from `src` (the client) to `dst` (the
/// address it connected to); empty for [`ProxyProtocol::Off`].
pub fn header(version: ProxyProtocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = (canonical(src.ip()), canonical(dst.ip()));
    match version {
        ProxyProtocol::Off => Vec::new(),
        ProxyProtocol::V1 => match (s, d) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
            }
            (IpAddr::V6(_), IpAddr::V6(_)) => {
                format!("PROXY TCP6 {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
            }
            _ => b"PROXY UNKNOWN\r\n".to_vec(),
        },
        ProxyProtocol::V2 => {
            let mut out = SIGNATURE.to_vec();
            out.push(0x21); // version 2, PROXY command
            match (s, d) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // TCP over IPv4
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    out.push(0x21); // TCP over IPv6
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                _ => {
                    out.push(0x00); // UNSPEC: the receiver uses the real addresses
                    out.extend_from_slice(&0u16.to_be_bytes());
                    return out;
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_text() {
        let h = header(
            ProxyProtocol::V1,
            "10.1.2.3:40000".parse().unwrap(),
            "[::ffff:127.0.0.1]:81".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 81\r\n");
        let h = header(
            ProxyProtocol::V1,
            "[::1]:1".parse().unwrap(),
            "[fd00::2]:2".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 ::1 fd00::2 1 2\r\n");
        assert!(
            header(
                ProxyProtocol::Off,
                "[::1]:1".parse().unwrap(),
                "[::1]:2".parse().unwrap()
            )
            .is_empty()
        );
    }

    #[test]
    fn v2_binary_matches_the_spec_layout() {
        let h = header(
            ProxyProtocol::V2,
            "10.1.2.3:40000".parse().unwrap(),
            "127.0.0.1:81".parse().unwrap(),
        );
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[10, 1, 2, 3]);
        assert_eq!(&h[20..24], &[127, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 81);
        assert_eq!(h.len(), 28);
        let h6 = header(
            ProxyProtocol::V2,
            "[::1]:1".parse().unwrap(),
            "[::2]:2".parse().unwrap(),
        );
        assert_eq!((h6[13], h6.len()), (0x21, 16 + 36));
    }
}
