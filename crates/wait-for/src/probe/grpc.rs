//! gRPC targets: `grpc.health.v1.Health/Check` over HTTP/2 (h2c, or TLS with
//! ALPN h2 for `grpcs://`), ready when the answer says SERVING.
//!
//! The two messages are tiny, so they are encoded by hand:
//! `HealthCheckRequest { string service = 1; }` and
//! `HealthCheckResponse { ServingStatus status = 1; }`, each behind gRPC's
//! 5-byte frame prefix (compressed flag, big-endian length).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use tokio_util::task::AbortOnDropHandle;

use super::http::describe_hyper;
use super::{Check, Fail};
use crate::net::{self, Resolver};
use crate::target::HostPort;

/// One attempt at a gRPC target.
pub async fn check(resolver: &Resolver, addr: &HostPort, tls: Option<&Arc<ClientConfig>>, service: &str) -> Check {
    let io = net::open(resolver, addr, tls).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|e| describe_hyper(&e))?;
    let _conn = AbortOnDropHandle::new(tokio::spawn(conn));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = format!("{scheme}://{addr}/grpc.health.v1.Health/Check");
    let mut request = Request::new(Full::new(encode_request(service)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.parse().map_err(|e| format!("bad gRPC URI {uri}: {e}"))?;
    let headers = request.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("podkit-wait-for/", env!("CARGO_PKG_VERSION"))),
    );
    let response = sender.send_request(request).await.map_err(|e| describe_hyper(&e))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP {} (not a gRPC server?)", response.status().as_u16()).into());
    }
    // A trailers-only answer (an error) carries grpc-status in the headers.
    grpc_status(response.headers())?;
    let collected = Limited::new(response.into_body(), 64 << 10)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    if let Some(trailers) = collected.trailers() {
        grpc_status(trailers)?;
    }
    match decode_response(&collected.to_bytes())? {
        1 => Ok(()),
        0 => Err("status UNKNOWN".into()),
        2 => Err("status NOT_SERVING".into()),
        3 => Err(Fail::NotReady(format!(
            "SERVICE_UNKNOWN: the server has no service `{service}`"
        ))),
        other => Err(format!("status {other}").into()),
    }
}

/// Fails when `grpc-status` is present and not 0 (OK).
fn grpc_status(headers: &HeaderMap) -> Check {
    let Some(status) = headers.get("grpc-status") else {
        return Ok(());
    };
    let code = status.to_str().unwrap_or("?");
    if code == "0" {
        return Ok(());
    }
    let name = match code {
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "12" => "UNIMPLEMENTED (no health service)",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "16" => "UNAUTHENTICATED",
        _ => "",
    };
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Err(format!("grpc-status {code} {name}{message}")
        .trim_end()
        .to_owned()
        .into())
}

/// A framed `HealthCheckRequest`.
pub fn encode_request(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

/// The `status` of a framed `HealthCheckResponse` (0, UNKNOWN, when absent,
/// as proto3 omits default values).
pub fn decode_response(frame: &[u8]) -> Result<u64, String> {
    let header = frame.get(..5).ok_or("empty gRPC answer")?;
    if header[0] != 0 {
        return Err("compressed gRPC answer (not asked for)".into());
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut msg = frame.get(5..5 + len).ok_or("truncated gRPC answer")?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = get_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut msg)?,
            (_, 0) => {
                get_varint(&mut msg)?;
            }
            (_, 1) => msg = msg.get(8..).ok_or("truncated field")?,
            (_, 2) => {
                let n = get_varint(&mut msg)? as usize;
                msg = msg.get(n..).ok_or("truncated field")?;
            }
            (_, 5) => msg = msg.get(4..).ok_or("truncated field")?,
            _ => return Err("malformed HealthCheckResponse".into()),
        }
    }
    Ok(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_frames() {
        assert_eq!(&encode_request("")[..], [0, 0, 0, 0, 0]);
        assert_eq!(&encode_request("a.B")[..], [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']);
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields before the status are skipped.
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 7, 0x12, 1, b'x', 0x08, 2, 0x18, 5]),
            Ok(2)
        );
        assert!(decode_response(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(decode_response(&[]).is_err());
    }

    #[test]
    fn grpc_status_names_the_code() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("12"));
        headers.insert("grpc-message", HeaderValue::from_static("unknown service"));
        assert_eq!(
            grpc_status(&headers),
            Err(Fail::NotReady(
                "grpc-status 12 UNIMPLEMENTED (no health service): unknown service".into()
            ))
        );
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&headers), Ok(()));
    }
}
