//! HTTP/1 upstream connections owned by one client connection at a time
//! (reverse mode, plain-HTTP upstreams).
//!
//! A client connection's requests reuse its own upstream connection, and
//! the whole exchange runs inside the client connection's task: the
//! upstream connection is driven by whoever waits on it (the handler until
//! the answer's head arrives, then the answer's body), so a request costs
//! no pool lookup and no hop to a connection task. When the answer's body
//! is done the connection goes back to its client connection; when the
//! client connection ends, to the listener's idle list, where the next
//! client connection finds it (bounded, newest first, aged out).
//!
//! A reused connection that the upstream closed meanwhile is noticed
//! before the request is written (its driver reads the close), and a
//! request the connection could not take is sent again on a fresh one.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::http_conn::{Body, BoxError, ClientConn};
use crate::upstream::{Conn, Retired, Upstream, UpstreamError};

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No connection could be made.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The connection failed during the exchange.
    #[error("upstream failed: {0}")]
    Http(#[from] hyper::Error),
    /// A new connection was closed by the upstream before the request
    /// could be sent.
    #[error("upstream closed a new connection before the request was sent")]
    Closed,
}

/// One HTTP/1 connection to the upstream, with its driver.
pub struct OwnedConn {
    sender: http1::SendRequest<Body>,
    conn: Pin<Box<http1::Connection<TokioIo<Conn>, Body>>>,
    retired: Retired,
    closed: bool,
    idle_since: Instant,
}

impl fmt::Debug for OwnedConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedConn")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl OwnedConn {
    async fn connect(upstream: &Upstream) -> Result<Self, ExchangeError> {
        let conn = upstream.connect().await?;
        let retired = conn.retired().clone();
        let (sender, conn) = http1::handshake(TokioIo::new(conn)).await?;
        Ok(Self {
            sender,
            conn: Box::pin(conn),
            retired,
            closed: false,
            idle_since: Instant::now(),
        })
    }

    /// Lets the connection do its work: write the request, read the answer,
    /// notice a close.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.closed && self.conn.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
    }

    fn reusable(&self) -> bool {
        !self.closed && !self.sender.is_closed() && !self.retired.is_set()
    }
}

/// A listener's idle upstream connections, newest last.
#[derive(Debug)]
pub struct Idle {
    list: Mutex<Vec<OwnedConn>>,
    max: usize,
    timeout: Duration,
}

impl Idle {
    /// Keeps at most `max` idle connections, each for at most `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            list: Mutex::new(Vec::new()),
            max,
            timeout,
        })
    }

    fn take(&self) -> Option<OwnedConn> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest are first: drop those past their time.
        let stale = list
            .iter()
            .position(|s| s.idle_since.elapsed() < self.timeout)
            .unwrap_or(list.len());
        list.drain(..stale);
        list.pop()
    }

    fn put(&self, mut conn: OwnedConn) {
        if !conn.reusable() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() >= self.max {
            list.remove(0);
        }
        list.push(conn);
    }
}

/// A client connection's own upstream connection, between its requests.
/// When the client connection ends, the upstream connection goes to the
/// idle list it came from.
#[derive(Debug, Default)]
pub struct Home(Mutex<Option<(OwnedConn, Arc<Idle>)>>);

impl Home {
    fn take(&self) -> Option<OwnedConn> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|(conn, _)| conn)
    }

    fn keep(&self, conn: OwnedConn, idle: &Arc<Idle>) {
        if conn.reusable() {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((conn, Arc::clone(idle)));
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let slot = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((conn, idle)) = slot.take() {
            idle.put(conn);
        }
    }
}

/// Sends `req` to the upstream on `home`'s connection (or an idle one, or
/// a new one) and returns the answer. The raw HTTP/1 sender writes the URI
/// as given: `req` must carry an origin-form target (RFC 9112 3.2.1; some
/// servers, busybox httpd among them, answer absolute-form with 400). The answer's body drives the
/// connection and gives it back to `home` once complete.
pub async fn exchange(
    upstream: &Upstream,
    idle: &Arc<Idle>,
    home: &Arc<ClientConn>,
    mut req: Request<Body>,
) -> Result<Response<Body>, ExchangeError> {
    let mut cached = home.own_upstream.take().or_else(|| idle.take());
    loop {
        let reused = cached.is_some();
        let mut conn = match cached.take() {
            Some(conn) => conn,
            None => OwnedConn::connect(upstream).await?,
        };
        // A reused connection may have been closed by the upstream while it
        // waited: its driver reads the close here, before anything is sent.
        let ready = poll_fn(|cx| {
            conn.drive(cx);
            if conn.closed {
                return Poll::Ready(Err(None));
            }
            conn.sender.poll_ready(cx).map_err(Some)
        })
        .await;
        match ready {
            Ok(()) => {}
            Err(_) if reused => continue,
            Err(Some(err)) => return Err(err.into()),
            // A fresh connection the upstream closed at once: an answer,
            // not another connect.
            Err(None) => return Err(ExchangeError::Closed),
        }
        let mut sent = pin!(conn.sender.try_send_request(req));
        let result = poll_fn(|cx| {
            conn.drive(cx);
            sent.as_mut().poll(cx)
        })
        .await;
        match result {
            Ok(response) => {
                let idle = Arc::clone(idle);
                return Ok(response.map(|inner| {
                    OwnedBody {
                        inner,
                        conn: Some(conn),
                        home: Arc::clone(home),
                        idle,
                        done: false,
                    }
                    .boxed()
                }));
            }
            Err(mut err) => match err.take_message() {
                // Never written: safe to send again, on a fresh connection.
                Some(back) if reused => req = back,
                _ => return Err(err.into_error().into()),
            },
        }
    }
}

/// An upstream answer's body that drives its connection and, once read to
/// its end, gives the connection back to the client connection.
struct OwnedBody {
    inner: Incoming,
    conn: Option<OwnedConn>,
    home: Arc<ClientConn>,
    idle: Arc<Idle>,
    done: bool,
}

impl OwnedBody {
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.home.own_upstream.keep(conn, &self.idle);
        }
    }
}

impl hyper::body::Body for OwnedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = poll {
            this.done = true;
            this.release();
        }
        poll.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for OwnedBody {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away) leaves the
        // connection mid-answer: it is closed, not reused.
        if self.done || self.inner.is_end_stream() {
            self.release();
        }
    }
}
