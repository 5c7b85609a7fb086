//! What the two HTTP modes share: body types, hop-by-hop header handling
//! (RFC 9110 section 7.6.1), error answers, request size limits, what a
//! listener's reverse or forward proxy holds ([`HttpListener`]), the
//! keep-alive pool, the upgrade/tunnel pipe, and serving one client
//! connection with hyper ([`HttpProxy`] answering its requests) under the
//! drain protocol and the header-read (slowloris) timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use podkit_runtime::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Options;
use crate::forward::ForwardProxy;
use crate::net::{AccessEntry, AccessLogger, Activity, Tracked, pipe, pipe_tcp};
use crate::reverse::ReverseProxy;
use crate::stats::ListenerStats;

/// Errors carried by proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of everything the proxy sends and answers.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body with fixed content.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// What the reverse and the forward proxy of a listener both hold: its
/// name, request limits and timeouts, metrics, access log, and the drain
/// its tunnels and upgrades are tracked on.
#[derive(Debug)]
pub struct HttpListener {
    /// The listener's name.
    pub name: String,
    /// See [`Options::request_timeout`].
    pub request_timeout: Duration,
    /// See [`Options::max_request_body`].
    pub max_request_body: u64,
    /// Idle timeout of tunnels and upgraded connections.
    pub idle_timeout: Duration,
    /// Metrics.
    pub stats: ListenerStats,
    /// Access log.
    pub access: AccessLogger,
    /// Tunnels and upgraded connections are tracked for the drain.
    pub drain: Shutdown,
}

impl HttpListener {
    /// The listener `name` with its `options`.
    pub fn new(name: String, options: &Options, stats: ListenerStats, access: AccessLogger, drain: Shutdown) -> Self {
        Self {
            name,
            request_timeout: options.request_timeout,
            max_request_body: options.max_request_body,
            idle_timeout: options.idle_timeout,
            stats,
            access,
            drain,
        }
    }

    /// Answers one request with `proxy`, then counts its status and writes
    /// its access-log line.
    pub async fn handle_logged<F>(
        &self,
        peer: SocketAddr,
        req: Request<Incoming>,
        proxy: impl FnOnce(Request<Incoming>) -> F,
    ) -> Response<Body>
    where
        F: Future<Output = Response<Body>>,
    {
        let start = std::time::Instant::now();
        let log = self
            .access
            .enabled()
            .then(|| (req.method().to_string(), req.uri().to_string()));
        let response = proxy(req).await;
        let status = response.status().as_u16();
        self.stats.request(status);
        if let Some((method, target)) = log {
            self.access.log(&AccessEntry {
                listener: &self.name,
                client: peer,
                method: &method,
                target: &target,
                status,
                upstream: None,
                duration_ms: start.elapsed().as_secs_f64() * 1000.0,
                bytes_in: 0,
                bytes_out: 0,
            });
        }
        response
    }

    /// Refuses (413, counted) a request that declares a body over the
    /// limit, before anything is sent upstream.
    pub fn refuse_oversize(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        let refused = check_body_size(req, self.max_request_body)?;
        self.stats.rejected_size.inc();
        Some(refused)
    }

    /// Runs an upstream exchange under the request timeout, recording its
    /// duration; `None` when it timed out.
    pub async fn timed<T>(&self, exchange: impl Future<Output = T>) -> Option<T> {
        let sent = std::time::Instant::now();
        let result = tokio::time::timeout(self.request_timeout, exchange).await;
        self.stats.duration.observe(sent.elapsed().as_secs_f64());
        result.ok()
    }

    /// The answer when `who` (the upstream, the origin) did not answer
    /// within the request timeout: 504.
    pub fn timed_out(&self, who: &str) -> Response<Body> {
        answer(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("{who} did not answer within {:?}", self.request_timeout),
        )
    }

    /// Finishes a proxied response: for `101 Switching Protocols` with an
    /// upgrade the client asked for, spawns the tunnel between the two
    /// upgraded connections on the drain tracker (holding the connection
    /// slot until it closes); otherwise strips hop-by-hop headers.
    pub fn finish_response(
        &self,
        mut response: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        slot: Option<ConnSlot>,
    ) -> Response<Body> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                let (idle, drain, stats) = (self.idle_timeout, self.drain.clone(), self.stats.clone());
                self.drain.spawn(async move {
                    let _slot = slot;
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((client, upstream)) => {
                            tunnel(TokioIo::new(client), TokioIo::new(upstream), idle, drain, stats).await
                        }
                        Err(err) => tracing::debug!(%err, "Upgrade failed."),
                    }
                });
            }
        } else {
            strip_hop_by_hop(response.headers_mut());
        }
        response.map(|b| b.map_err(BoxError::from).boxed())
    }
}

/// An HTTP listener's proxy: what [`serve_connection`] hands each request to.
#[derive(Debug, Clone)]
pub enum HttpProxy {
    /// A reverse listener's.
    Reverse(Arc<ReverseProxy>),
    /// An http-forward listener's.
    Forward(Arc<ForwardProxy>),
}

impl HttpProxy {
    /// Answers one request that came on `client`.
    pub async fn handle(self, req: Request<Incoming>, client: Arc<ClientConn>) -> Response<Body> {
        match self {
            Self::Reverse(proxy) => proxy.handle(req, client).await,
            Self::Forward(proxy) => proxy.handle(req, client).await,
        }
    }
}

/// The keep-alive pool of a proxy's connections to its upstream or origins
/// (`connector` makes them), idle ones kept 90 s, at most `max_idle` per host.
pub fn pool<C>(connector: C, max_idle: usize) -> Client<C, Body>
where
    C: Connect + Clone,
{
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(max_idle)
        .retry_canceled_requests(true)
        .set_host(false)
        .build(connector)
}

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A plain-text answer from the proxy itself (`502 upstream refused`...).
pub fn answer(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The always hop-by-hop headers (RFC 9110 7.6.1, plus the legacy
/// `Proxy-Connection` and `Keep-Alive`; `Proxy-Authorization` and
/// `Proxy-Authenticate` are for this proxy, which takes no credentials, and
/// must not leak to origins).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers: the fixed set and every header the
/// `Connection` header names. Returns the `Upgrade` value when the message
/// asked for an upgrade (`Connection: upgrade`), for passthrough.
///
/// Called twice per proxied exchange, so it looks at each header name once
/// and removes only what is there (no hashing of absent names).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let mut doomed: Vec<HeaderName> = Vec::new();
    let mut connection_present = false;
    let mut te_present = false;
    for name in headers.keys() {
        if HOP_BY_HOP.contains(name) {
            connection_present |= name == header::CONNECTION;
            te_present |= name == header::TE;
            doomed.push(name.clone());
        }
    }
    if doomed.is_empty() {
        return None;
    }
    let mut wants_upgrade = false;
    if connection_present {
        for value in headers.get_all(header::CONNECTION) {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if token.eq_ignore_ascii_case("upgrade") {
                    wants_upgrade = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    // In the fixed set already (the usual token: skip the lookup).
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
                    && !doomed.contains(&name)
                    && headers.contains_key(&name)
                {
                    doomed.push(name);
                }
            }
        }
    }
    let upgrade = if wants_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    // gRPC and other trailer users say `TE: trailers`, which is end-to-end
    // in meaning: keep exactly that.
    let te_trailers = te_present
        && headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")));
    for name in &doomed {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    upgrade
}

/// Puts back the headers of an upgrade passthrough.
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// Checks the declared request size; `Some(answer)` refuses it with 413.
pub fn check_body_size(req: &Request<Incoming>, limit: u64) -> Option<Response<Body>> {
    if limit == 0 {
        return None;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Some(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body of {n} bytes is over the limit of {limit} bytes"),
        )),
        _ => None,
    }
}

/// The request body to send upstream, cut at `limit` bytes (0: no limit).
pub fn limit_body(body: Incoming, limit: u64) -> Body {
    if limit == 0 {
        body.map_err(BoxError::from).boxed()
    } else {
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).boxed()
    }
}

/// Finds an error of type `E` anywhere in `err`'s source chain.
pub fn find_cause<'a, E: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A client connection's slot under the listener's connection limit, and
/// its place in the active-connections gauge. It is shared with the
/// tunnels and upgrades the connection turns into (through
/// [`ClientConn`]), so a CONNECT tunnel holds its slot until it closes.
#[derive(Debug, Clone)]
pub struct ConnSlot {
    _inner: Arc<SlotInner>,
}

#[derive(Debug)]
struct SlotInner {
    _permit: tokio::sync::OwnedSemaphorePermit,
    active: prometheus_client::metrics::gauge::Gauge,
}

impl ConnSlot {
    /// Takes the slot (the permit is released and the gauge decremented
    /// when the last clone drops).
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit, active: prometheus_client::metrics::gauge::Gauge) -> Self {
        active.inc();
        Self {
            _inner: Arc::new(SlotInner {
                _permit: permit,
                active,
            }),
        }
    }
}

/// What a handler knows of the client connection a request came on.
#[derive(Debug)]
pub struct ClientConn {
    /// The client's address.
    pub peer: SocketAddr,
    /// The connection's slot, which tunnels and upgrades keep until they close.
    pub slot: ConnSlot,
    /// Its own upstream connection between requests (reverse mode).
    pub own_upstream: crate::owned_upstream::Home,
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// Pipes two upgraded streams (WebSocket, CONNECT) into each other,
/// counting bytes for the listener.
pub async fn tunnel<A, B>(client: A, mut upstream: B, idle: Duration, drain: Shutdown, stats: ListenerStats)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut client = Tracked::new(client, Arc::clone(&activity));
    pipe(&mut client, &mut upstream, &activity, idle, &drain).await;
    activity.account(&stats);
}

/// A CONNECT tunnel from an upgraded client connection to a plain TCP
/// origin. When the client connection is the plain socket
/// [`serve_connection`] was given, the tunnel runs on the sockets
/// themselves ([`pipe_tcp`]: splice for bulk); bytes hyper had read past
/// the request head go to the origin first. Anything else pipes through
/// the upgraded stream.
pub async fn tunnel_tcp(
    client: hyper::upgrade::Upgraded,
    mut origin: TcpStream,
    idle: Duration,
    drain: Shutdown,
    stats: ListenerStats,
) {
    let parts = match client.downcast::<TokioIo<Tracked<TcpStream>>>() {
        Ok(parts) => parts,
        Err(client) => return tunnel(TokioIo::new(client), origin, idle, drain, stats).await,
    };
    let activity = Activity::new();
    let mut client = parts.io.into_inner().into_inner();
    let early = async {
        origin.write_all(&parts.read_buf).await?;
        activity.add_read(parts.read_buf.len());
        Ok::<_, std::io::Error>(())
    };
    let sent = tokio::select! {
        biased;
        sent = early => sent,
        () = drain.hard_stop() => Ok(()),
    };
    match sent {
        Ok(()) if !drain.is_hard_stopped() => {
            pipe_tcp(&mut client, &mut origin, &activity, idle, &drain).await;
        }
        Ok(()) => {}
        Err(err) => tracing::debug!(%err, "Tunnel ended with an error."),
    }
    activity.account(&stats);
}

/// Serves one client connection with hyper's HTTP/1 server: keep-alive,
/// upgrades, `header_read_timeout` (a client slower than that to send its
/// headers is cut), `max_header_size` (431 beyond), the idle timeout, and a
/// graceful close once listeners stop accepting.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    options: &Options,
    drain: &Shutdown,
    stats: &ListenerStats,
    slot: ConnSlot,
    proxy: HttpProxy,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
    let client = Arc::new(ClientConn {
        peer,
        slot,
        own_upstream: crate::owned_upstream::Home::default(),
    });
    let service_activity = Arc::clone(&activity);
    let service = service_fn(move |req: Request<Incoming>| {
        let activity = Arc::clone(&service_activity);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let response = proxy.clone().handle(req, Arc::clone(&client));
        async move {
            let response = response.await;
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A client that sends its request and shuts its write side
        // (`nc -N`, scripts) still gets the answer.
        .half_close(true)
        .max_header_size(options.max_header_size)
        .header_read_timeout(if options.header_read_timeout.is_zero() {
            None
        } else {
            Some(options.header_read_timeout)
        });
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        biased;
        result = conn.as_mut() => result,
        () = drain.stop_accepting() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                result = conn.as_mut() => result,
                () = drain.hard_stop() => Ok(()),
            }
        }
        () = activity.idle(options.idle_timeout) => {
            tracing::debug!(client = %peer, "Closing an idle client connection.");
            Ok(())
        }
    };
    if let Err(err) = result {
        tracing::debug!(client = %peer, %err, "Client connection ended with an error.");
    }
    activity.account(stats);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_go_including_those_connection_names() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
            ("x-end-to-end", "kept"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), None, "no upgrade without Connection: upgrade");
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "x-end-to-end"]);
    }

    #[test]
    fn upgrades_and_te_trailers_survive() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers, deflate"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), Some(HeaderValue::from_static("websocket")));
        assert_eq!(h.get("te").unwrap(), "trailers");
        assert!(h.get("upgrade").is_none());
        restore_upgrade(&mut h, HeaderValue::from_static("websocket"));
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }
}
