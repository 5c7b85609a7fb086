//! Kafka targets: the broker answers an ApiVersions request (API key 18,
//! version 0, the one every broker since 0.10 understands) with error code 0.

use tokio::io::AsyncWriteExt;

use super::{Check, read_exact};
use crate::net::Resolver;
use crate::target::HostPort;

const API_VERSIONS: i16 = 18;

/// One attempt at a Kafka target.
pub async fn check(resolver: &Resolver, addr: &HostPort) -> Check {
    let mut stream = resolver.connect(addr).await?;
    let correlation = fastrand::i32(1..);
    stream
        .write_all(&request(correlation))
        .await
        .map_err(|e| podkit_tls::describe_io_error(&e))?;
    let size = read_exact(&mut stream, 4)
        .await
        .map_err(|e| format!("no ApiVersions answer ({e})"))?;
    let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    if !(6..=1 << 20).contains(&size) {
        return Err("not a Kafka answer".into());
    }
    let body = read_exact(&mut stream, size as usize).await?;
    judge(correlation, &body)
}

/// A size-prefixed ApiVersions v0 request.
pub fn request(correlation: i32) -> Vec<u8> {
    let client = b"wait-for";
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut msg = (body.len() as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// Reads an ApiVersions v0 answer (without its size prefix).
pub fn judge(correlation: i32, body: &[u8]) -> Check {
    let got = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if got != correlation {
        return Err("answer to another request (not a Kafka broker?)".into());
    }
    match i16::from_be_bytes([body[4], body[5]]) {
        0 => Ok(()),
        35 => Err("UNSUPPORTED_VERSION for ApiVersions v0".into()),
        code => Err(format!("ApiVersions error code {code}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_and_answers() {
        let req = request(7);
        assert_eq!(
            req,
            [
                0, 0, 0, 18, 0, 18, 0, 0, 0, 0, 0, 7, 0, 8, b'w', b'a', b'i', b't', b'-', b'f', b'o', b'r'
            ]
        );
        assert_eq!(judge(7, &[0, 0, 0, 7, 0, 0, 0, 0, 0, 0]), Ok(()));
        assert!(judge(8, &[0, 0, 0, 7, 0, 0]).is_err());
        assert!(judge(7, &[0, 0, 0, 7, 0, 35]).is_err());
    }
}
