//! HTTP(S) targets: one request on a fresh HTTP/1.1 connection, ready when
//! the status is in range (200–399 by default, like a Kubernetes probe) and
//! the optional body and header checks match. Redirects are not followed.
//!
//! [`fetch`] is also the Kubernetes API client's transport.

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use tokio_util::task::AbortOnDropHandle;

use super::{Check, Fail};
use crate::net::{self, Resolver};
use crate::target::HostPort;

/// The most body wait-for reads for a `--http-body` match.
pub const BODY_LIMIT: usize = 1 << 20;

/// What makes an HTTP answer ready, from the `--http-*` flags.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// The request method.
    pub method: Method,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Accepted statuses.
    pub status: StatusSet,
    /// A regex the body must match.
    pub body: Option<regex_lite::Regex>,
    /// Response headers that must be present (and match, when a regex is given).
    pub expect_headers: Vec<(HeaderName, Option<regex_lite::Regex>)>,
}

impl Default for HttpCheck {
    fn default() -> Self {
        Self {
            method: Method::GET,
            headers: Vec::new(),
            status: StatusSet::default(),
            body: None,
            expect_headers: Vec::new(),
        }
    }
}

/// A set of accepted status codes: `200`, `200-299`, `2xx`, comma lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl Default for StatusSet {
    fn default() -> Self {
        Self(vec![200..=399])
    }
}

impl StatusSet {
    /// Parses `200`, `200-299`, `2xx`, `200,204`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a status list like 200, 200-299, 2xx or 200,204");
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let code = |s: &str| s.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
            let range = if let Some((lo, hi)) = part.split_once('-') {
                code(lo).zip(code(hi)).map(|(lo, hi)| lo..=hi)
            } else if let Some(class) = part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
                class
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (1..=5).contains(c))
                    .map(|c| c * 100..=c * 100 + 99)
            } else {
                code(part).map(|c| c..=c)
            };
            ranges.push(range.filter(|r| !r.is_empty()).ok_or_else(bad)?);
        }
        if ranges.is_empty() {
            return Err(bad());
        }
        Ok(Self(ranges))
    }

    /// Whether `status` is accepted.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

/// An HTTP answer, with as much body as was asked for.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, up to the limit given to [`fetch`] (empty when none was asked).
    pub body: Bytes,
}

/// Sends one request on a fresh connection to `addr` and reads the answer,
/// with the body when `body_limit` is given (an error past the limit).
pub async fn fetch(
    resolver: &Resolver,
    addr: &HostPort,
    tls: Option<&Arc<ClientConfig>>,
    request: Request<Full<Bytes>>,
    body_limit: Option<usize>,
) -> Result<Answer, String> {
    let io = net::open(resolver, addr, tls).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| describe_hyper(&e))?;
    // The connection task lives only as long as this call.
    let conn = AbortOnDropHandle::new(tokio::spawn(conn));
    let response = sender.send_request(request).await.map_err(|e| describe_hyper(&e))?;
    let (parts, body) = response.into_parts();
    let body = match body_limit {
        Some(limit) => Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("body larger than {limit} bytes")
                } else {
                    format!("reading the body: {e}")
                }
            })?
            .to_bytes(),
        None => Bytes::new(),
    };
    drop(conn);
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Builds a request in origin form (`GET /path HTTP/1.1`) with a Host header.
pub fn request(method: &Method, url: &Uri, addr: &HostPort) -> Request<Full<Bytes>> {
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    let host = url
        .authority()
        .map(|a| a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h).to_owned())
        .unwrap_or_else(|| addr.to_string());
    let headers = request.headers_mut();
    if let Ok(host) = HeaderValue::from_str(&host) {
        headers.insert(http::header::HOST, host);
    }
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("podkit-wait-for/", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    request
}

/// One attempt at an HTTP target.
pub async fn check(
    resolver: &Resolver,
    check: &HttpCheck,
    url: &Uri,
    addr: &HostPort,
    tls: Option<&Arc<ClientConfig>>,
) -> Check {
    let mut req = request(&check.method, url, addr);
    for (name, value) in &check.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let limit = check.body.as_ref().map(|_| BODY_LIMIT);
    let answer = fetch(resolver, addr, tls, req, limit).await?;
    judge(check, &answer)
}

/// Whether an answer passes the checks; the reason names the first miss.
pub fn judge(check: &HttpCheck, answer: &Answer) -> Check {
    let status = answer.status.as_u16();
    if !check.status.contains(status) {
        let reason = answer.status.canonical_reason().unwrap_or("");
        return Err(Fail::NotReady(format!("HTTP {status} {reason}").trim_end().to_owned()));
    }
    for (name, pattern) in &check.expect_headers {
        let values: Vec<&str> = answer
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        match pattern {
            _ if values.is_empty() => return Err(format!("HTTP {status} without header {name}").into()),
            Some(re) if !values.iter().any(|v| re.is_match(v)) => {
                return Err(format!("HTTP {status}, header {name} does not match /{re}/").into());
            }
            _ => {}
        }
    }
    if let Some(re) = &check.body {
        let body = String::from_utf8_lossy(&answer.body);
        if !re.is_match(&body) {
            return Err(format!("HTTP {status}, body does not match /{re}/").into());
        }
    }
    Ok(())
}

/// hyper's error with its causes, e.g. `connection closed before message completed`.
pub fn describe_hyper(err: &hyper::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn status_sets() {
        let set = StatusSet::parse("200, 204-206,3xx").unwrap();
        for (code, ok) in [(200, true), (205, true), (301, true), (201, false), (404, false)] {
            assert_eq!(set.contains(code), ok, "{code}");
        }
        for bad in ["", "20", "abc", "300-200", "6xx", "200-"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad:?}");
        }
        let default = StatusSet::default();
        assert!(default.contains(200) && default.contains(399) && !default.contains(500));
    }

    #[test]
    fn judging_answers() {
        let default = HttpCheck::default();
        assert_eq!(judge(&default, &answer(204, &[], "")), Ok(()));
        assert_eq!(
            judge(&default, &answer(503, &[], "")),
            Err(Fail::NotReady("HTTP 503 Service Unavailable".into()))
        );
        let strict = HttpCheck {
            status: StatusSet::parse("200").unwrap(),
            body: Some(regex_lite::Regex::new(r#""status":\s*"UP""#).unwrap()),
            expect_headers: vec![(
                HeaderName::from_static("x-ready"),
                Some(regex_lite::Regex::new("^yes$").unwrap()),
            )],
            ..HttpCheck::default()
        };
        assert_eq!(
            judge(&strict, &answer(200, &[("x-ready", "yes")], r#"{"status": "UP"}"#)),
            Ok(())
        );
        let miss = |a| match judge(&strict, &a) {
            Err(Fail::NotReady(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(miss(answer(200, &[("x-ready", "no")], r#"{"status":"UP"}"#)).contains("header x-ready"));
        assert!(miss(answer(200, &[], "")).contains("without header"));
        assert!(miss(answer(200, &[("x-ready", "yes")], r#"{"status":"DOWN"}"#)).contains("body"));
        assert!(miss(answer(302, &[("x-ready", "yes")], "")).contains("302"));
    }
}
