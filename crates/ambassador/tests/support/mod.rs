//! Test fixtures for the ambassador's process tests: echo origins (plain
//! HTTP and TLS with a CA made in the test, HTTP/2 via ALPN), the binary
//! started with its listener addresses read from its log, and curl.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use podkit_testkit::Proc;

pub const BIN: &str = env!("CARGO_BIN_EXE_ambassador");

/// An HTTP origin on loopback that answers every request with a text echo:
/// `id`, method, path, version and the request headers, one per line.
/// `/slow` waits until [`Origin::release`] (or 30 s) and reports arrival.
pub struct Origin {
    pub addr: SocketAddr,
    arrived: Mutex<mpsc::Receiver<()>>,
    release: mpsc::Sender<()>,
}

impl Origin {
    /// A plain HTTP origin on `ip:port` (port 0 picks one).
    pub fn start(id: &str, bind: &str) -> Self {
        Self::start_with(id, bind, None)
    }

    /// A TLS origin serving HTTP/1.1 and HTTP/2 (ALPN) with `tls`.
    pub fn start_with(id: &str, bind: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self::serve(id, std::net::TcpListener::bind(bind).expect("bind origin"), tls)
    }

    /// A plain HTTP origin on a listener the test already holds (a
    /// [`podkit_testkit::ClosedPort`] opened at last).
    pub fn on(id: &str, listener: std::net::TcpListener) -> Self {
        Self::serve(id, listener, None)
    }

    fn serve(id: &str, listener: std::net::TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let addr = listener.local_addr().unwrap();
        let (arrived_tx, arrived) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let id = id.to_owned();
        podkit_testkit::server::spawn("origin", listener, move |listener| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (id, arrived_tx, release_rx, tls) =
                    (id.clone(), arrived_tx.clone(), Arc::clone(&release_rx), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (id, arrived_tx, release_rx) = (id.clone(), arrived_tx.clone(), Arc::clone(&release_rx));
                        async move { Ok::<_, Infallible>(echo(&id, req, arrived_tx, release_rx).await) }
                    });
                    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // Clients that half-close after their request (the
                    // half-close test) still get the answer.
                    builder.http1().half_close(true);
                    match tls {
                        Some(config) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            arrived: Mutex::new(arrived),
            release,
        }
    }

    /// Waits until a `/slow` request has arrived.
    pub fn wait_slow_arrival(&self) {
        self.arrived
            .lock()
            .unwrap()
            .recv_timeout(podkit_testkit::PATIENCE)
            .expect("the slow request reached the origin");
    }

    /// Lets one `/slow` request finish.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

async fn echo(
    id: &str,
    mut req: Request<Incoming>,
    arrived: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
) -> Response<Full<Bytes>> {
    let mut text = format!(
        "id={id}\nmethod={}\npath={}\ntarget={}\nversion={:?}\n",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str()),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("{k}={}\n", v.to_str().unwrap_or("?")));
    }
    if req.headers().contains_key(hyper::header::UPGRADE) {
        // A WebSocket-style upgrade: answer 101 and echo raw bytes.
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(upgraded) = on_upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, "upgrade".parse().unwrap());
        response
            .headers_mut()
            .insert(hyper::header::UPGRADE, "websocket".parse().unwrap());
        return response;
    }
    if req.uri().path().starts_with("/slow") {
        let _ = arrived.send(());
        let _ = tokio::task::spawn_blocking(move || {
            let _ = release.lock().unwrap().recv_timeout(Duration::from_secs(30));
        })
        .await;
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("body_len={}\n", body.len()));
    Response::new(Full::new(Bytes::from(text)))
}

/// The running binary plus its listener addresses.
pub struct Amb {
    pub proc: Proc,
}

impl Amb {
    /// Starts the binary with an admin server on a free port.
    pub fn start(args: &[&str]) -> Self {
        let mut all = vec!["--admin-addr", "127.0.0.1:0", "--log-level", "info,ambassador=debug"];
        all.extend_from_slice(args);
        Self {
            proc: Proc::spawn(BIN, &all, &[]),
        }
    }

    /// The bound address of the listener whose name contains `needle`
    /// (e.g. `reverse:127.0.0.1:0`).
    pub fn addr(&mut self, needle: &str) -> SocketAddr {
        self.proc.logged_addr(&format!("listener={needle}"), "addr")
    }

    pub fn admin(&mut self) -> SocketAddr {
        self.proc.admin_addr()
    }
}

/// Runs curl with `args`; returns (HTTP status, body). Status 0 when curl
/// got no HTTP answer.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env("NO_PROXY", "")
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}
