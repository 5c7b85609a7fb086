//! http-forward mode: absolute-form requests (`GET http://host/path`) over a
//! keep-alive pool to origins, and `CONNECT host:port` tunnels.
//!
//! Every destination passes the [`Policy`] on its *resolved* addresses
//! before any connection is made: 403 when refused. A request carrying this
//! process's own `Via` token is a loop and gets 403 too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http_conn::{
    Body, ClientConn, HttpListener, answer, find_cause, limit_body, restore_upgrade, strip_hop_by_hop,
};
use crate::policy::{Denied, Policy};
use crate::upstream::{Resolver, connect_addr};

/// Why a destination could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Refused by policy.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The name does not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    /// The connection failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// The URI has no host.
    #[error("request target has no host")]
    NoHost,
}

impl ForwardError {
    /// The proxy's answer to this failure.
    pub fn answer(&self) -> Response<Body> {
        let status = match self {
            Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::Connect(_, e) if e.kind() == std::io::ErrorKind::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            Self::NoHost => StatusCode::BAD_REQUEST,
            Self::Resolve(..) | Self::Connect(..) => StatusCode::BAD_GATEWAY,
        };
        answer(status, &self.to_string())
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Denied(Denied::NotAllowed(_)) => "not_allowed",
            Self::Denied(Denied::LinkLocalOrMetadata(..)) => "metadata",
            Self::Denied(Denied::SelfLoop(_)) => "self_loop",
            _ => "other",
        }
    }
}

/// Resolves, checks and connects a destination.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// Name resolution.
    pub resolver: Resolver,
    /// Destination policy.
    pub policy: Arc<Policy>,
    /// Connect timeout per address.
    pub connect_timeout: Duration,
}

impl Dialer {
    /// Connects to `host:port` if the policy allows every resolved address.
    pub async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, ForwardError> {
        let dest = format!("{host}:{port}");
        self.policy.check_name(host, port)?;
        let addrs = self
            .resolver
            .resolve(host, port)
            .await
            .map_err(|e| ForwardError::Resolve(host.to_owned(), e))?;
        self.policy.check(host, port, &addrs)?;
        connect_addr(&addrs, self.connect_timeout)
            .await
            .map_err(|e| ForwardError::Connect(dest, e))
    }
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = ForwardError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or(ForwardError::NoHost)?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(80);
            this.dial(&host, port).await.map(TokioIo::new)
        })
    }
}

/// One forward listener's proxy.
#[derive(Debug)]
pub struct ForwardProxy {
    /// The listener: its name, limits, timeouts, metrics, access log and
    /// drain.
    pub http: HttpListener,
    /// Resolution, policy and connects for tunnels.
    pub dialer: Dialer,
    /// The keep-alive pool to origins.
    pub client: Client<Dialer, Body>,
    /// This process's `Via` entry; seeing it come back means a loop.
    pub via: HeaderValue,
}

/// Builds the keep-alive pool to origins.
fn pool(dialer: Dialer) -> Client<Dialer, Body> {
    crate::http_conn::pool(dialer, 64)
}

/// A `Via` token unique to this process.
pub fn via_token() -> HeaderValue {
    let token = format!("1.1 ambassador-{:016x}", fastrand::u64(..));
    HeaderValue::from_str(&token).unwrap_or(HeaderValue::from_static("1.1 ambassador"))
}

impl ForwardProxy {
    /// The proxy of an http-forward listener, reaching destinations through
    /// `dialer` and marking requests with `via`.
    pub fn new(http: HttpListener, dialer: Dialer, via: HeaderValue) -> Self {
        Self {
            http,
            client: pool(dialer.clone()),
            dialer,
            via,
        }
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, client: Arc<ClientConn>) -> Response<Body> {
        self.http
            .handle_logged(client.peer, req, |req| self.proxy(req, &client))
            .await
    }

    fn refuse(&self, err: &ForwardError) -> Response<Body> {
        if let ForwardError::Denied(denied) = err {
            self.http.stats.denied(err.reason());
            tracing::debug!(listener = %self.http.name, %denied, "Destination refused.");
        }
        err.answer()
    }

    async fn proxy(&self, mut req: Request<Incoming>, client: &ClientConn) -> Response<Body> {
        if req
            .headers()
            .get_all(header::VIA)
            .iter()
            .any(|v| v.as_bytes().windows(self.via.len()).any(|w| w == self.via.as_bytes()))
        {
            self.http.stats.denied("self_loop");
            return answer(StatusCode::FORBIDDEN, "request loops back to this proxy");
        }
        if req.method() == Method::CONNECT {
            return self.connect(req, client).await;
        }
        if let Some(refused) = self.http.refuse_oversize(&req) {
            return refused;
        }
        let uri = req.uri();
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "only http:// targets are forwarded; use CONNECT for https",
                );
            }
            None => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "this is a forward proxy: send an absolute-form target (GET http://host/path) or CONNECT",
                );
            }
        }
        let Some(authority) = uri.authority().cloned() else {
            return answer(StatusCode::BAD_REQUEST, "request target has no host");
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if let Err(denied) = self.dialer.policy.check_name(host, authority.port_u16().unwrap_or(80)) {
            return self.refuse(&ForwardError::Denied(denied));
        }
        let upgrade = strip_hop_by_hop(req.headers_mut());
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let slot = Some(client.slot.clone());
        let (mut parts, body) = req.into_parts();
        parts.version = Version::HTTP_11;
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
        parts.headers.append(header::VIA, self.via.clone());
        if let Some(upgrade) = upgrade {
            restore_upgrade(&mut parts.headers, upgrade);
        }
        let outbound = Request::from_parts(parts, limit_body(body, self.http.max_request_body));
        let response = match self.http.timed(self.client.request(outbound)).await {
            None => return self.http.timed_out("origin"),
            Some(Err(err)) => {
                if let Some(cause) = find_cause::<ForwardError>(&err) {
                    return self.refuse(cause);
                }
                return crate::reverse::upstream_failure(&err);
            }
            Some(Ok(response)) => response,
        };
        self.http.finish_response(response, client_upgrade, slot)
    }

    async fn connect(&self, mut req: Request<Incoming>, client: &ClientConn) -> Response<Body> {
        let Some(authority) = req.uri().authority().cloned() else {
            return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let Some(port) = authority.port_u16() else {
            return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let started = Instant::now();
        let origin = match self.dialer.dial(host, port).await {
            Ok(origin) => origin,
            Err(err) => return self.refuse(&err),
        };
        self.http.stats.duration.observe(started.elapsed().as_secs_f64());
        let on_upgrade = hyper::upgrade::on(&mut req);
        let slot = Some(client.slot.clone());
        let (idle, drain, stats) = (self.http.idle_timeout, self.http.drain.clone(), self.http.stats.clone());
        self.http.drain.spawn(async move {
            let _slot = slot;
            match on_upgrade.await {
                Ok(client) => crate::http_conn::tunnel_tcp(client, origin, idle, drain, stats).await,
                Err(err) => tracing::debug!(%err, "CONNECT upgrade failed."),
            }
        });
        Response::new(crate::http_conn::full(bytes::Bytes::new()))
    }
}
