//! The admin HTTP server: `/livez` (the process is alive; never checks
//! dependencies), `/readyz` and its alias `/healthz` (200 when ready, 503 with
//! the reasons otherwise), and `/metrics` (OpenMetrics text).
//!
//! It runs until the process exits, so probes see 503 during the drain rather
//! than a refused connection.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};
use crate::readiness::Readiness;

/// What the admin server reports on.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Answers `/readyz`.
    pub readiness: Readiness,
    /// Answers `/metrics`.
    pub metrics: Metrics,
}

/// Binds the admin listener, with a message naming the address on failure.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on admin address {addr}: {e}")))
}

/// Serves admin requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: AdminState) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: wait and go on.
                tracing::warn!(%err, "Admin accept failed.");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!(%err, "Admin connection ended with an error.");
            }
        });
    }
}

/// Answers one admin request.
pub fn respond(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    answer(state, req.method(), req.uri().path())
}

fn answer(state: &AdminState, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are allowed\n".to_owned(),
        );
    }
    match path {
        "/livez" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" | "/healthz" => {
            let status = state.readiness.status();
            // Notes (a config change waiting for a restart) follow the
            // first line, which stays `ready` or `not ready: …`.
            let notes: String = state.readiness.notes().iter().map(|n| format!("{n}\n")).collect();
            if status.ready {
                text(StatusCode::OK, format!("ready\n{notes}"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n{notes}", status.reasons.join("; ")),
                )
            }
        }
        "/metrics" => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
            .body(Full::new(Bytes::from(state.metrics.encode())))
            .unwrap_or_default(),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /livez, /readyz, /healthz or /metrics\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn check(state: &AdminState, method: Method, path: &str) -> (StatusCode, String) {
        let response = answer(state, &method, path);
        let status = response.status();
        let body = block_on(response.into_body().collect())
            .unwrap_or_else(|e| match e {})
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn endpoints_answer_as_documented() {
        let state = AdminState {
            readiness: Readiness::new(),
            metrics: Metrics::new("t"),
        };
        let latch = state.readiness.latch("sink reachable");
        assert_eq!(check(&state, Method::GET, "/livez"), (StatusCode::OK, "ok\n".into()));
        assert_eq!(
            check(&state, Method::GET, "/readyz"),
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: sink reachable\n".into())
        );
        latch.release();
        assert_eq!(
            check(&state, Method::GET, "/healthz"),
            (StatusCode::OK, "ready\n".into())
        );
        state
            .readiness
            .set_note("config", Some("config: restart required for admin-addr".into()));
        assert_eq!(
            check(&state, Method::GET, "/readyz"),
            (
                StatusCode::OK,
                "ready\nconfig: restart required for admin-addr\n".into()
            )
        );
        state.readiness.set_note("config", None);
        state.readiness.start_draining();
        assert_eq!(check(&state, Method::GET, "/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            check(&state, Method::GET, "/livez").0,
            StatusCode::OK,
            "alive while draining"
        );
        let (status, body) = check(&state, Method::GET, "/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("podkit_build_info"));
        assert_eq!(check(&state, Method::POST, "/livez").0, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(check(&state, Method::GET, "/nope").0, StatusCode::NOT_FOUND);
    }
}
