//! Entry points for fuzzing the request path: arbitrary client bytes go
//! through the same hyper server, hop-by-hop handling, target checks and
//! policy as a real forward or reverse listener, over an in-memory stream.
//!
//! The proxies built here can reach nothing: the forward policy allows only
//! a name that never resolves, and the reverse upstream is such a name too,
//! so no input makes a connection anywhere. Used by the proptest in
//! `tests/fuzz.rs` (stable, in CI) and the cargo-fuzz target in `fuzz/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use podkit_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::config::{Options, UpstreamSpec};
use crate::http_conn::{ConnSlot, HttpProxy, serve_connection};
use crate::net::AccessLogger;
use crate::{forward, policy, reverse, stats, upstream};

/// Which listener kind the bytes are sent to.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An http-forward listener.
    Forward,
    /// A reverse listener.
    Reverse,
}

/// Feeds `input` to a fresh proxy connection, closes the client's write
/// side, and returns everything the proxy answered (within a bound).
pub async fn exchange(kind: Kind, input: &[u8]) -> Vec<u8> {
    let metrics = podkit_runtime::Metrics::new("ambassador");
    let all = stats::Stats::register(&metrics);
    let lstats = all.listener("fuzz", "fuzz");
    let options = Options {
        header_read_timeout: Duration::from_secs(2),
        max_header_size: 16 << 10,
        max_request_body: 64 << 10,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let drain = Shutdown::new(Duration::from_secs(1));
    let resolver = upstream::Resolver::new(None);
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let slot = ConnSlot::new(
        Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit"),
        lstats.active.clone(),
    );
    let (mut client, server) = tokio::io::duplex(64 << 10);
    let http = || {
        crate::http_conn::HttpListener::new(
            "fuzz".into(),
            &options,
            lstats.clone(),
            AccessLogger(crate::config::AccessLog::Off),
            drain.clone(),
        )
    };
    let proxy = match kind {
        Kind::Forward => {
            let dialer = forward::Dialer {
                resolver,
                policy: Arc::new(policy::Policy::new(
                    vec!["nowhere.invalid".parse().expect("valid rule")],
                    vec![([127, 0, 0, 1], 3128).into()],
                )),
                connect_timeout: options.connect_timeout,
            };
            HttpProxy::Forward(Arc::new(forward::ForwardProxy::new(
                http(),
                dialer,
                forward::via_token(),
            )))
        }
        Kind::Reverse => {
            let targets = vec![UpstreamSpec {
                host: "nowhere.invalid".into(),
                port: 80,
                tls: false,
            }];
            let up = upstream::Upstream::new(
                targets,
                (&options).into(),
                resolver,
                None,
                &podkit_runtime::Readiness::new(),
                all.upstream("fuzz"),
                "fuzz".into(),
            );
            let proxy = reverse::ReverseProxy::new(http(), up, false, "nowhere.invalid", "/prefix".into(), vec![])
                .expect("a valid host");
            HttpProxy::Reverse(Arc::new(proxy))
        }
    };
    let serve = {
        let (drain, lstats, options) = (drain.clone(), lstats.clone(), options.clone());
        async move { serve_connection(server, peer, &options, &drain, &lstats, slot, proxy).await }
    };
    let server_task = tokio::spawn(serve);
    let talk = async {
        // The server may stop reading early (a bad request): a failed write
        // is part of the exchange, not an error of the harness.
        let _ = client.write_all(input).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(10), talk)
        .await
        .unwrap_or_default();
    drain.stop_now();
    server_task.abort();
    out
}

/// [`exchange`] on a fresh current-thread runtime (for cargo-fuzz).
pub fn exchange_blocking(kind: Kind, input: &[u8]) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(exchange(kind, input))
}

/// What every answer must look like: nothing (the connection was closed)
/// or one or more HTTP/1.x responses with a three-digit status.
pub fn check_answer(out: &[u8]) -> Result<(), String> {
    if out.is_empty() {
        return Ok(());
    }
    let head = &out[..out.len().min(12)];
    let ok = out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 ");
    let digits = head.len() == 12 && head[9..12].iter().all(u8::is_ascii_digit);
    if ok && digits {
        Ok(())
    } else {
        Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(200)])
        ))
    }
}
