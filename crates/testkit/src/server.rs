//! The loop behind the test servers: [`spawn`] serves a listener on its own
//! thread with a current-thread tokio runtime (the accept loop of every
//! test server, in any crate), and `HttpServer` is what testkit's own
//! scriptable servers (the [`crate::sink::Sink`] and the
//! [`crate::platform::PlatformServer`] stand-ins) share: HTTP/1.1 (or HTTPS)
//! with hyper on `127.0.0.1:0`, their state behind a mutex that tests wait
//! on with a condition variable (bounded by [`PATIENCE`]), the scripted
//! [`Mode`], and the stall that ends a request without an answer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::PATIENCE;
use crate::sink::Mode;

/// Serves `listener` on a thread named `name`: `serve` gets it as a tokio
/// listener and runs on a current-thread runtime until it returns (or the
/// process ends).
pub fn spawn<F, Fut>(name: &str, listener: std::net::TcpListener, serve: F) -> std::thread::JoinHandle<()>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    listener.set_nonblocking(true).expect("non-blocking listener");
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                serve(listener).await;
            });
        })
        .expect("spawn the test server thread")
}

/// The error a stalled request ends with: hyper closes the connection
/// without an answer.
#[derive(Debug)]
pub(crate) struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stalled request dropped")
    }
}

impl std::error::Error for Stalled {}

/// What a request handler gives back: an answer, or a stall that ended.
pub(crate) type Answer = Result<Response<Full<Bytes>>, Stalled>;

/// The state of a scriptable server.
pub(crate) trait ServerState: Default + std::fmt::Debug + Send + 'static {
    /// How requests are answered now.
    fn mode(&mut self) -> &mut Mode;
    /// What a test that timed out waiting is shown.
    fn describe(&self) -> String;
}

/// A server's state, its changes and its mode changes.
#[derive(Debug, Default)]
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    changed: Condvar,
    /// Wakes stalled requests when the mode changes.
    mode_changed: tokio::sync::Notify,
}

impl<S: ServerState> Shared<S> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the tests waiting on the state.
    pub(crate) fn changed(&self) {
        self.changed.notify_all();
    }

    /// Answers by `decide`, called under the lock and told whether the
    /// request stalled already; `None` stalls the request until the mode
    /// changes, and a request that stalled ends without an answer
    /// ([`Stalled`]) once the server no longer stalls.
    pub(crate) async fn unless_stalled<T>(
        &self,
        mut decide: impl FnMut(&mut S, bool) -> Option<T>,
    ) -> Result<T, Stalled> {
        let mut stalled = false;
        loop {
            // Decide under the lock, wait (for a stall) outside it.
            let notified = self.mode_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decided = decide(&mut self.lock(), stalled);
            self.changed();
            if let Some(answer) = decided {
                return Ok(answer);
            }
            stalled = true;
            notified.await;
            // The stall ended (or the server stopped): never answer this one.
            if *self.lock().mode() != Mode::Stall {
                return Err(Stalled);
            }
        }
    }
}

/// A running scriptable server; dropping it stops the server.
#[derive(Debug)]
pub(crate) struct HttpServer<S> {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared<S>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<S: ServerState> HttpServer<S> {
    /// Serves `handle` on `127.0.0.1:0` (HTTPS with `tls`) on a thread named
    /// `name`, starting from `state`.
    pub(crate) fn start<H, Fut>(name: &str, tls: Option<Arc<rustls::ServerConfig>>, state: S, handle: H) -> Self
    where
        H: Fn(Arc<Shared<S>>, Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            ..Shared::default()
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let (server, handle) = (Arc::clone(&shared), Arc::new(handle));
        spawn(name, listener, move |listener| async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stopped => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let (shared, handle, tls) = (Arc::clone(&server), Arc::clone(&handle), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| (*handle)(Arc::clone(&shared), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            // A client that fails the handshake sees a closed connection.
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            scheme,
            shared,
            stop: Some(stop),
        }
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub(crate) fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The state, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.shared.lock()
    }

    /// Changes how the following requests (and requests stalled now) are
    /// answered.
    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.shared.lock().mode() = mode;
        self.shared.mode_changed.notify_waiters();
    }

    /// Waits until `condition` holds for the state, at most [`PATIENCE`];
    /// panics with `what` and the state's description otherwise.
    pub(crate) fn wait_until(&self, what: &str, mut condition: impl FnMut(&S) -> bool) -> MutexGuard<'_, S> {
        let deadline = Instant::now() + PATIENCE;
        let mut state = self.shared.lock();
        loop {
            if condition(&state) {
                return state;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {PATIENCE:?} waiting for {what}; {}",
                state.describe()
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl<S> Drop for HttpServer<S> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Stalled requests end with the runtime.
        self.shared.mode_changed.notify_waiters();
    }
}

/// The request's headers (names lower-case), in order.
pub(crate) fn headers(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The answer of [`Mode::Fail`]: `status`, with `Retry-After` if given.
pub(crate) fn scripted_failure(status: u16, retry_after: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("scripted failure {status}"))));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    if let Some(value) = retry_after.and_then(|v| hyper::header::HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(hyper::header::RETRY_AFTER, value);
    }
    response
}
