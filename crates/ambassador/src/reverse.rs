//! reverse mode: every request goes to one fixed upstream (the ambassador
//! pod's "curl 127.0.0.1:81 gets example.com"), with the Host header rewritten to
//! the upstream's, the path prefix put in front, extra headers added, over
//! a keep-alive pool (HTTP/2 when TLS ALPN offers it).
//!
//! Answers of the proxy itself: 502 when no endpoint can be reached, 504
//! when the upstream is slower than `request_timeout`, 413 and 431 for
//! requests over the size limits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;

use crate::http_conn::{
    Body, ClientConn, HttpListener, answer, find_cause, limit_body, restore_upgrade, strip_hop_by_hop,
};
use crate::owned_upstream::ExchangeError;
use crate::upstream::{Conn, Retired, Upstream, UpstreamError};

/// Connects the client pool to the listener's upstream, whatever the URI.
#[derive(Debug, Clone)]
pub struct UpstreamConnector(pub Arc<Upstream>);

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<Conn>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let upstream = Arc::clone(&self.0);
        Box::pin(async move { upstream.connect().await.map(TokioIo::new) })
    }
}

/// One reverse listener's proxy.
#[derive(Debug)]
pub struct ReverseProxy {
    /// The listener: its name, limits, timeouts, metrics, access log and
    /// drain.
    pub http: HttpListener,
    /// `http` or `https`, for the pool's URIs.
    pub scheme: &'static str,
    /// The Host header sent upstream.
    pub host: HeaderValue,
    /// The same as a URI authority, for the pool's URIs (`None`: not a
    /// valid one, every request is answered 400).
    pub authority: Option<Authority>,
    /// Prepended to every request path.
    pub prefix: String,
    /// Added to every upstream request (replacing same-named ones).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The upstream (its endpoints and their state).
    pub upstream: Arc<Upstream>,
    /// The keep-alive pool to the upstream (TLS upstreams, which may speak
    /// HTTP/2, and upgrades).
    pub client: Client<UpstreamConnector, Body>,
    /// Idle connections of the plain-HTTP/1 path ([`crate::owned_upstream`]).
    pub idle: Arc<crate::owned_upstream::Idle>,
}

/// Idle upstream connections kept per listener.
pub const MAX_IDLE: usize = 1024;

/// How long an idle upstream connection is kept (in the pool and in the
/// idle list alike).
pub const IDLE_TIMEOUT: Duration = crate::http_conn::POOL_IDLE_TIMEOUT;

/// Builds the keep-alive pool for an upstream.
fn pool(upstream: Arc<Upstream>) -> Client<UpstreamConnector, Body> {
    crate::http_conn::pool(UpstreamConnector(upstream), MAX_IDLE)
}

impl ReverseProxy {
    /// The proxy of a reverse listener to `upstream` (over TLS when `tls`),
    /// sending `host` as the Host header, `prefix` before every path and
    /// `headers` with every request. An error when `host` cannot be a
    /// header value.
    pub fn new(
        http: HttpListener,
        upstream: Arc<Upstream>,
        tls: bool,
        host: &str,
        prefix: String,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        Ok(Self {
            http,
            scheme: if tls { "https" } else { "http" },
            host: HeaderValue::from_str(host)?,
            authority: host.parse().ok(),
            prefix,
            headers,
            client: pool(Arc::clone(&upstream)),
            idle: crate::owned_upstream::Idle::new(MAX_IDLE, IDLE_TIMEOUT),
            upstream,
        })
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, client: Arc<ClientConn>) -> Response<Body> {
        self.http
            .handle_logged(client.peer, req, |req| self.proxy(req, &client))
            .await
    }

    /// The upstream URI of a request: the upstream's scheme and authority
    /// (for the pool, which writes origin-form itself; left out when
    /// `origin_form`, for the client-owned raw HTTP/1 upstream connection, which
    /// writes the URI as given), the prefix, then the request's path and
    /// query (`/` for a target without one). Built from parts, without
    /// formatting and parsing the whole URI again.
    fn upstream_uri(&self, target: &Uri, origin_form: bool) -> Option<Uri> {
        let path = match target.path_and_query() {
            Some(p) if p.as_str().starts_with('/') => p.clone(),
            _ => PathAndQuery::from_static("/"),
        };
        let path = if self.prefix.is_empty() {
            path
        } else {
            PathAndQuery::try_from(format!("{}{}", self.prefix, path.as_str())).ok()?
        };
        if origin_form {
            return Some(Uri::from(path));
        }
        let mut parts = uri::Parts::default();
        parts.scheme = Some(if self.scheme == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        parts.authority = Some(self.authority.clone()?);
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).ok()
    }

    async fn proxy(&self, mut req: Request<Incoming>, client: &Arc<ClientConn>) -> Response<Body> {
        if let Some(refused) = self.http.refuse_oversize(&req) {
            return refused;
        }
        let upgrade = strip_hop_by_hop(req.headers_mut());
        // Plain-HTTP upstreams without an upgrade use the client connection's own upstream connection.
        let owned = self.scheme == "http" && upgrade.is_none();
        let Some(uri) = self.upstream_uri(req.uri(), owned) else {
            return answer(StatusCode::BAD_REQUEST, "bad request target");
        };
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let slot = Some(client.slot.clone());
        let (mut parts, body) = req.into_parts();
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.headers.insert(header::HOST, self.host.clone());
        for (name, value) in &self.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        if let Some(upgrade) = upgrade {
            restore_upgrade(&mut parts.headers, upgrade);
        }
        let mut outbound = Request::from_parts(parts, limit_body(body, self.http.max_request_body));
        if owned {
            let exchange = crate::owned_upstream::exchange(&self.upstream, &self.idle, client, outbound);
            return match self.http.timed(exchange).await {
                None => self.http.timed_out("upstream"),
                Some(Err(ExchangeError::Upstream(cause))) => unreachable(&cause),
                Some(Err(err)) => {
                    tracing::debug!(%err, "Upstream exchange failed.");
                    answer(StatusCode::BAD_GATEWAY, &err.to_string())
                }
                Some(Ok(mut response)) => {
                    strip_hop_by_hop(response.headers_mut());
                    response
                }
            };
        }
        let capture = self
            .upstream
            .any_retired()
            .then(|| hyper_util::client::legacy::connect::capture_connection(&mut outbound));
        let response = match self.http.timed(self.client.request(outbound)).await {
            None => return self.http.timed_out("upstream"),
            Some(Err(err)) => return upstream_failure(&err),
            Some(Ok(response)) => response,
        };
        if let Some(capture) = &capture
            && let Some(connected) = capture.connection_metadata().as_ref()
        {
            let mut extras = http::Extensions::new();
            connected.get_extras(&mut extras);
            if extras.get::<Retired>().is_some_and(Retired::is_set) {
                // DNS no longer gives this endpoint: finish this exchange,
                // then let the pool drop the connection.
                connected.poison();
            }
        }
        self.http.finish_response(response, client_upgrade, slot)
    }
}

/// The answer when no upstream connection could be made: 504 for a connect
/// timeout, 502 otherwise, with the most telling reason in the body (the
/// upstream has logged every endpoint's).
fn unreachable(cause: &UpstreamError) -> Response<Body> {
    let status = if cause.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    answer(status, &cause.to_string())
}

/// The answer to a failed upstream exchange: 504 for a connect timeout,
/// 502 otherwise, with the reason in the body.
pub fn upstream_failure(err: &hyper_util::client::legacy::Error) -> Response<Body> {
    if let Some(cause) = find_cause::<UpstreamError>(err) {
        return unreachable(cause);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    tracing::debug!(err = %text, "Upstream exchange failed.");
    answer(StatusCode::BAD_GATEWAY, &format!("upstream failed: {text}"))
}
