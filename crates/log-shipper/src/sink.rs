//! Transports: how a sealed body reaches a sink. `stdout` and `file` write
//! (on a blocking thread, so a slow disk or a full pipe never stalls the
//! runtime); `http` POSTs over one reused HTTP/1.1 connection, and so do
//! the platform sinks ([`loki`] and [`loki_proto`], [`elasticsearch`],
//! [`otlp`] and [`otlp_proto`]; what they share is in [`platform`]), which
//! read their answers as their platform writes them.
//!
//! Each send ends in one of three ways ([`SendError`]): accepted; failed in
//! a way worth retrying (connection errors, timeouts, 408, 429, 5xx, with
//! the server's `Retry-After`); or rejected (any other status: the batch
//! itself is the problem, and retrying would not help). A platform can
//! also accept a request but refuse some of its records: `_bulk` items
//! (the failed 429/5xx items are sent again alone, the refused ones handed
//! back through [`Transport::take_partial`]) and OTLP's `partialSuccess`.

pub mod elasticsearch;
pub mod loki;
pub mod loki_proto;
pub mod otlp;
pub mod otlp_proto;
pub mod platform;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::args::{Compression, Format, WireEncoding};
use crate::config::{HttpConfig, SinkConfig, SinkKind};
use crate::delivery::Sealed;
use crate::rec::{Output, Target};
use platform::Api;

/// What a platform accepted only in part, for the sender to handle.
#[derive(Debug, Default)]
pub struct Partial {
    /// Records refused for good, each with its platform's reason, as
    /// dead-letter entries (one JSON line each).
    pub rejected: Vec<(String, Vec<u8>)>,
    /// Records the sink dropped while accepting the request (OTLP
    /// `partialSuccess.rejectedLogRecords`).
    pub dropped_by_sink: u64,
    /// The sink's message about them.
    pub message: Option<String>,
}

/// Why a send did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// Worth retrying; `retry_after` is the server's wish.
    Retry {
        /// What happened, for logs.
        reason: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The sink refused the batch: status and the start of its answer.
    Reject(String),
    /// The sink cannot be used any more (stdout closed).
    Fatal(String),
}

/// A sink's way out.
#[derive(Debug)]
pub enum Transport {
    /// stdout or a file.
    Output(Option<Output>),
    /// An HTTP endpoint.
    Http(Box<HttpTransport>),
}

impl Transport {
    /// Opens the sink (a file is created and opened for appending).
    pub fn open(config: &SinkConfig) -> std::io::Result<Self> {
        Ok(match &config.kind {
            SinkKind::Stdout => Self::Output(Some(Output::open(Target::Stdout)?)),
            SinkKind::File { path, max_size, keep } => Self::Output(Some(Output::open(Target::File {
                path: path.clone(),
                max_size: *max_size,
                keep: *keep,
            })?)),
            SinkKind::Http(http) => Self::Http(Box::new(HttpTransport::new(http, config.format))),
        })
    }

    /// Sends one body.
    pub async fn send(&mut self, sealed: &Sealed, config: &SinkConfig) -> Result<(), SendError> {
        match self {
            Self::Output(slot) => {
                let Some(mut output) = slot.take() else {
                    return Err(SendError::Fatal("the output was lost after a failed write".into()));
                };
                let body = sealed.body.clone();
                let (output, result) = tokio::task::spawn_blocking(move || {
                    let result = output.reopen_if_moved().and_then(|_| output.write(&body));
                    (output, result)
                })
                .await
                .map_err(|e| SendError::Fatal(format!("the writer thread failed: {e}")))?;
                *slot = Some(output);
                match result {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && matches!(config.kind, SinkKind::Stdout) => {
                        Err(SendError::Fatal("stdout was closed".into()))
                    }
                    Err(e) => Err(SendError::Retry {
                        reason: format!("cannot write: {e}"),
                        retry_after: None,
                    }),
                }
            }
            Self::Http(http) => http.send(sealed, &config.name).await,
        }
    }

    /// What the last accepted body had refused in part (empty for a body
    /// accepted whole).
    pub fn take_partial(&mut self) -> Partial {
        match self {
            Self::Http(http) => std::mem::take(&mut http.partial),
            Self::Output(_) => Partial::default(),
        }
    }

    /// Of the body given up on, the part the sink had not accepted yet
    /// (`_bulk` items still failing), uncompressed; `None` when that is
    /// the whole body.
    pub fn take_unaccepted(&mut self) -> Option<Vec<u8>> {
        let Self::Http(http) = self else { return None };
        let (_, body) = http.remaining.take()?;
        if !http.gzip {
            return Some(body.to_vec());
        }
        let mut out = Vec::with_capacity(body.len() * 4);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).ok()?;
        Some(out)
    }
}

/// One HTTP/1.1 connection to a sink, reopened when it breaks.
#[derive(Debug)]
pub struct HttpTransport {
    uri: Uri,
    /// `host:port` to connect to.
    authority: String,
    host: String,
    port: u16,
    /// The request target (path and query).
    target: String,
    headers: http::HeaderMap,
    content_type: HeaderValue,
    gzip: bool,
    timeout: Duration,
    tls: Option<crate::config::HttpsConfig>,
    conn: Option<SendRequest<Full<Bytes>>>,
    /// The platform API spoken, which decides how answers are read.
    api: Api,
    /// `_bulk` items still to send of the body being delivered: the body's
    /// address and length (which body it is), and the items as a body.
    remaining: Option<((usize, usize), Bytes)>,
    /// What the body being delivered had refused so far.
    partial: Partial,
}

/// Largest answer read whole (a `_bulk` answer lists every item).
const MAX_ANSWER: usize = 64 << 20;

/// How much of an error answer is kept for the log.
const ANSWER_PREVIEW: usize = 200;

impl HttpTransport {
    fn new(config: &HttpConfig, format: Format) -> Self {
        let host = config
            .uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = config
            .uri
            .port_u16()
            .unwrap_or(if config.uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let authority = config
            .uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
        let target = config.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let content_type = HeaderValue::from_static(config.api.content_type().unwrap_or(match format {
            Format::Ndjson => "application/x-ndjson",
            Format::JsonArray => "application/json",
            Format::Raw => "text/plain; charset=utf-8",
        }));
        Self {
            uri: config.uri.clone(),
            authority,
            host,
            port,
            target,
            headers: config.headers.clone(),
            content_type,
            gzip: config.compression == Compression::Gzip,
            timeout: config.request_timeout,
            tls: config.tls.clone(),
            conn: None,
            api: config.api.clone(),
            remaining: None,
            partial: Partial::default(),
        }
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let handshake_failed = |e: hyper::Error| format!("HTTP handshake with {} failed: {e}", self.authority);
        let Some(tls) = &self.tls else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(handshake_failed)?;
            tokio::spawn(conn);
            return Ok(sender);
        };
        let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&tls.client))
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|e| format!("TLS handshake with {} failed: {e}", self.authority))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(handshake_failed)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.target.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let headers = req.headers_mut();
        headers.extend(self.headers.clone());
        if let Ok(host) = HeaderValue::from_str(&self.authority) {
            headers.insert(header::HOST, host);
        }
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        if self.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        req
    }

    async fn send(&mut self, sealed: &Sealed, sink: &str) -> Result<(), SendError> {
        let id = (sealed.body.as_ptr() as usize, sealed.body.len());
        let body = match &self.remaining {
            Some((of, body)) if *of == id => body.clone(),
            _ => {
                self.remaining = None;
                self.partial = Partial::default();
                sealed.body.clone()
            }
        };
        let timeout = self.timeout;
        let answer = match tokio::time::timeout(timeout, self.attempt(body.clone())).await {
            Ok(answer) => answer?,
            Err(_) => {
                self.conn = None;
                return Err(SendError::Retry {
                    reason: format!("no answer from {} within {timeout:?}", self.uri),
                    retry_after: None,
                });
            }
        };
        let Answer {
            status,
            retry_after,
            body: text,
        } = answer;
        let result = match &self.api {
            Api::Plain | Api::Loki { .. } => classify(status, retry_after, &preview(&text)),
            Api::Otlp { encoding } if status.is_success() => {
                let (n, message) = match encoding {
                    WireEncoding::Json => otlp::rejected_records(&text),
                    WireEncoding::Protobuf => otlp_proto::rejected_records(&text),
                };
                self.partial.dropped_by_sink = n;
                self.partial.message = message;
                Ok(())
            }
            Api::Otlp { encoding } => {
                let message = match encoding {
                    WireEncoding::Protobuf => otlp_proto::status_message(&text),
                    WireEncoding::Json => None,
                };
                let reason = reason(status, &message.unwrap_or_else(|| preview(&text)));
                if otlp::retryable(status.as_u16()) {
                    Err(SendError::Retry { reason, retry_after })
                } else {
                    Err(SendError::Reject(reason))
                }
            }
            Api::Elasticsearch { .. } if status.is_success() => self.bulk_items(id, &body, &text, sink),
            Api::Elasticsearch { .. } => classify(status, retry_after, &preview(&text)),
        };
        if result.is_ok() {
            self.remaining = None;
        }
        result
    }

    /// Reads a `_bulk` answer's items: refused items are kept for the
    /// sender, failed ones become the body sent next.
    fn bulk_items(&mut self, id: (usize, usize), body: &Bytes, answer: &[u8], sink: &str) -> Result<(), SendError> {
        if elasticsearch::all_succeeded(answer) {
            return Ok(());
        }
        let plain = if self.gzip {
            let mut out = Vec::with_capacity(body.len() * 4);
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                .map_err(|e| SendError::Fatal(format!("cannot read back a compressed body: {e}")))?;
            out
        } else {
            body.to_vec()
        };
        let items = elasticsearch::read_answer(&plain, answer).map_err(SendError::Reject)?;
        let Some(items) = items else { return Ok(()) };
        for (pair, reason) in items.rejected {
            let mut entry = Vec::with_capacity(pair.len() + 256);
            elasticsearch::dead_letter_item(&mut entry, sink, &reason, &pair);
            self.partial.rejected.push((reason, entry));
        }
        if items.retry.is_empty() {
            return Ok(());
        }
        let next = if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = std::io::Write::write_all(&mut gz, &items.retry);
            Bytes::from(gz.finish().unwrap_or_default())
        } else {
            Bytes::from(items.retry)
        };
        self.remaining = Some((id, next));
        Err(SendError::Retry {
            reason: format!("some _bulk items failed ({})", items.retry_reason.unwrap_or_default()),
            retry_after: None,
        })
    }

    async fn attempt(&mut self, body: Bytes) -> Result<Answer, SendError> {
        let retry = |reason: String| SendError::Retry {
            reason,
            retry_after: None,
        };
        // A kept-alive connection the server closed meanwhile fails at once;
        // then one fresh connection is tried before counting a failure.
        for fresh_attempt in [false, true] {
            let reused = match self.conn.take() {
                Some(c) if !c.is_closed() && !fresh_attempt => Some(c),
                _ => None,
            };
            let was_reused = reused.is_some();
            let mut sender = match reused {
                Some(c) => c,
                None => self.connect().await.map_err(retry)?,
            };
            if sender.ready().await.is_err() {
                if was_reused {
                    continue;
                }
                return Err(retry(format!("the connection to {} closed", self.authority)));
            }
            let response = match sender.send_request(self.request(body.clone())).await {
                Ok(r) => r,
                Err(e) if was_reused && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => continue,
                Err(e) => return Err(retry(format!("request to {} failed: {e}", self.uri))),
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let answer = read_answer(response.into_body()).await;
            if answer.is_ok() {
                self.conn = Some(sender);
            }
            return Ok(Answer {
                status,
                retry_after,
                body: answer.unwrap_or_default(),
            });
        }
        Err(retry(format!("the connection to {} keeps closing", self.authority)))
    }
}

/// An answer: status, `Retry-After`, body.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Bytes,
}

/// Reads an answer's body (at most [`MAX_ANSWER`]); an error (or a body too
/// big to drain) means the connection cannot be reused.
async fn read_answer(body: hyper::body::Incoming) -> Result<Bytes, ()> {
    let limited = http_body_util::Limited::new(body, MAX_ANSWER);
    Ok(limited.collect().await.map_err(|_| ())?.to_bytes())
}

/// The first bytes of an answer, for logs and reasons.
fn preview(body: &[u8]) -> String {
    let end = body.len().min(ANSWER_PREVIEW);
    String::from_utf8_lossy(&body[..end]).trim().to_owned()
}

/// `HTTP 400 Bad Request: <answer>`.
fn reason(status: StatusCode, answer: &str) -> String {
    if answer.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {answer}")
    }
}

/// Sorts a status into accepted, retry and reject.
fn classify(status: StatusCode, retry_after: Option<Duration>, answer: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let reason = reason(status, answer);
    if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(SendError::Retry { reason, retry_after })
    } else {
        Err(SendError::Reject(reason))
    }
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_retry_and_reject() {
        assert!(classify(StatusCode::OK, None, "").is_ok());
        assert!(classify(StatusCode::NO_CONTENT, None, "").is_ok());
        for retry in [408, 429, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(retry).unwrap();
            assert!(matches!(classify(s, None, ""), Err(SendError::Retry { .. })), "{retry}");
        }
        for reject in [400, 401, 403, 404, 413, 422, 301] {
            let s = StatusCode::from_u16(reject).unwrap();
            assert!(
                matches!(classify(s, None, "bad"), Err(SendError::Reject(r)) if r.contains("bad")),
                "{reject}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let text = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        let wait = parse_retry_after(&text).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?} from {text}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
