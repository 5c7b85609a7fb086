//! The real `wait-for` binary against local servers that need nothing
//! installed: TCP, HTTP, gRPC health (a real HTTP/2 server), a Kafka broker
//! fake speaking ApiVersions frames, a Kubernetes API fake answering the real
//! JSON shapes, files, programs; plus exit codes, exec, signals, env twins
//! and the admin endpoints.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;

#[test]
fn usage_errors_exit_64_naming_the_flag() {
    podkit_testkit::check_usage(BIN, "wait-for");
    let (status, _, err) = spawn(&["tcp://db"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(
        err.contains("invalid target `tcp://db`") && err.contains("no port"),
        "{err}"
    );
    let (status, _, err) = spawn(&[], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("no targets given"), "{err}");
    let (status, _, err) = spawn(&["--http-body", "(", "http://x"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--http-body"), "{err}");
    let (status, _, err) = spawn(&["k8s:deployment/api"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--k8s-api"), "{err}");
}

#[test]
fn port_opening_mid_wait_is_noticed_and_the_command_is_exec_d_with_the_same_pid() {
    let port = ClosedPort::new();
    let target = format!("tcp://{}", port.addr());
    let mut proc = spawn(
        &["--progress-interval", "100ms", &target, "--", "sh", "-c", "echo pid=$$"],
        &[],
    );
    let pid = proc.pid();
    let line = proc.wait_for_line("Still waiting.");
    assert!(line.contains(&target) && line.contains("connection refused"), "{line}");
    let _listener = port.listen();
    let (status, out, err) = proc.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(
        out.trim(),
        format!("pid={pid}"),
        "the command runs in wait-for's own process"
    );
    assert!(err.contains("Ready.") && err.contains(&target), "{err}");
}

#[test]
fn timeout_exits_124_names_what_is_missing_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let port = ClosedPort::new();
    let target = port.addr().to_string();
    let script = format!("touch {}", marker.display());
    let (status, _, err) = spawn(&["-t", "300ms", &target, "--", "sh", "-c", &script], &[]).finish();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(!marker.exists(), "the command must not run after a timeout");
    assert!(
        err.contains("Timed out") && err.contains(&target) && err.contains("connection refused"),
        "{err}"
    );
}

#[test]
fn sigterm_and_sigint_end_the_wait_with_143_and_run_nothing() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let script = format!("touch {}", marker.display());
        let closed_port = ClosedPort::new();
        let target = closed_port.addr().to_string();
        let mut proc = spawn(&[&target, "--", "sh", "-c", &script], &[]);
        proc.wait_for_line("Starting.");
        proc.signal(sig);
        let (status, _) = proc.wait_exit(PATIENCE);
        assert_eq!(status.code(), Some(143), "signal {sig}: {}", proc.stderr());
        assert!(!marker.exists());
        assert!(proc.stderr().contains("Stopped by a signal"), "{}", proc.stderr());
    }
}

#[test]
fn env_twin_lists_targets_and_any_mode_needs_just_one() {
    let (a, addr_a) = listen();
    let (b, addr_b) = listen();
    let targets = format!("tcp://{addr_a},\n {addr_b}");
    let (status, _, err) = spawn(&[], &[("WAIT_FOR_TARGETS", &targets)]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err.matches("Ready.").count(), 2, "{err}");
    drop((a, b));

    let (_open, addr) = listen();
    let closed_port = ClosedPort::new();
    let closed = closed_port.addr().to_string();
    let (status, _, err) = spawn(&["--any", &closed, &addr.to_string()], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    let (status, _, err) = spawn(&["-t", "200ms", &closed, &addr.to_string()], &[]).finish();
    assert_eq!(status.code(), Some(124), "all targets by default: {err}");
}

#[test]
fn http_waits_for_status_body_and_header_and_sends_request_headers() {
    let (listener, addr) = listen();
    let hits = serve_http(listener, |n, req| {
        if req.header("x-token") != Some("abc") || req.path() != "/health?deep=1" {
            return response(400, &[], "bad request");
        }
        match n {
            0 | 1 => response(503, &[], "starting"),
            2 => response(200, &[("X-Ready", "yes")], r#"{"status":"DOWN"}"#),
            3 => response(200, &[("X-Ready", "no")], r#"{"status":"UP"}"#),
            _ => response(200, &[("X-Ready", "yes")], r#"{"status":"UP"}"#),
        }
    });
    let url = format!("http://{addr}/health?deep=1");
    let (status, _, err) = spawn(
        &[
            "--http-header",
            "X-Token: abc",
            "--http-status",
            "200",
            "--http-body",
            r#""status":\s*"UP""#,
            "--http-expect-header",
            "x-ready: ^yes$",
            "--log-level",
            "debug",
            &url,
        ],
        &[],
    )
    .finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 5, "{err}");
    assert!(err.contains("HTTP 503"), "each reason is logged at debug: {err}");
    assert!(err.contains("body does not match"), "{err}");
    assert!(err.contains("header x-ready does not match"), "{err}");
}

#[test]
fn http_server_errors_are_not_ready_by_default() {
    let (listener, addr) = listen();
    serve_http(listener, |_, _| response(500, &[], "boom"));
    let (status, _, err) = spawn(&["-t", "300ms", &format!("http://{addr}/")], &[]).finish();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("HTTP 500 Internal Server Error"), "{err}");
}

#[test]
fn files_and_programs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.done");
    let lock = dir.path().join("lock");
    std::fs::write(&lock, "x").unwrap();
    let mut proc = spawn(
        &[
            "--progress-interval",
            "100ms",
            &format!("file://{}?nonempty", file.display()),
            &format!("file://{}?absent", lock.display()),
            &format!("exec:test -e {}", file.display()),
        ],
        &[],
    );
    let line = proc.wait_for_line("does not exist");
    assert!(line.contains("seed.done"), "{line}");
    proc.wait_for_line("exit status 1");
    proc.wait_for_line("still exists");
    std::fs::write(&file, "1").unwrap();
    std::fs::remove_file(&lock).unwrap();
    let (status, _, err) = proc.finish();
    assert_eq!(status.code(), Some(0), "{err}");

    let (status, _, err) = spawn(&["exec:no-such-program-anywhere"], &[]).finish();
    assert_eq!(
        status.code(),
        Some(1),
        "a program that does not exist fails at once: {err}"
    );
    assert!(err.contains("not found in PATH"), "{err}");
}

#[test]
fn kafka_broker_answering_api_versions() {
    use std::io::{Read, Write};
    let (listener, addr) = listen();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            if n == 0 {
                continue; // A broker still starting: accepts, then closes.
            }
            let mut size = [0u8; 4];
            if stream.read_exact(&mut size).is_err() {
                continue;
            }
            let mut request = vec![0u8; u32::from_be_bytes(size) as usize];
            stream.read_exact(&mut request).unwrap();
            assert_eq!(&request[..4], &[0, 18, 0, 0], "ApiVersions v0");
            // Response v0: correlation id, error code, [api_key, min, max].
            let mut body = request[4..8].to_vec();
            body.extend_from_slice(&0i16.to_be_bytes());
            body.extend_from_slice(&2i32.to_be_bytes());
            body.extend_from_slice(&[0, 0, 0, 0, 0, 9, 0, 18, 0, 0, 0, 3]);
            let mut frame = (body.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            stream.write_all(&frame).unwrap();
        }
    });
    let (status, _, err) = spawn(&["--log-level", "debug", &format!("kafka://{addr}")], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("no ApiVersions answer"),
        "the first, closed connection: {err}"
    );
}

#[test]
fn grpc_health_check_over_h2c() {
    let addr = grpc::start();
    let (status, _, err) = spawn(&["--log-level", "debug", &format!("grpc://{addr}")], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("NOT_SERVING"), "the first answers: {err}");
    let (status, _, err) = spawn(&["--log-level", "debug", &format!("grpc://{addr}/shop.Cart")], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    let (status, _, err) = spawn(&["-t", "300ms", &format!("grpc://{addr}/no.Such")], &[]).finish();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("grpc-status 5 NOT_FOUND"), "{err}");
    // A plain HTTP/1.1 server is not a gRPC server.
    let (listener, http_addr) = listen();
    serve_http(listener, |_, _| response(200, &[], "hi"));
    let (status, _, _) = spawn(&["-t", "300ms", &format!("grpc://{http_addr}")], &[]).finish();
    assert_eq!(status.code(), Some(124));
}

/// A gRPC health server on a real HTTP/2 stack (hyper), answering
/// NOT_SERVING twice, then SERVING; `shop.Cart` is SERVING, other services
/// get the trailers-only NOT_FOUND grpc-go sends.
mod grpc {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    pub fn start() -> SocketAddr {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        podkit_testkit::server::spawn("grpc-health", std_listener, |listener| async move {
            let calls = Arc::new(AtomicUsize::new(0));
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let calls = Arc::clone(&calls);
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let calls = Arc::clone(&calls);
                        async move {
                            assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                            assert_eq!(req.headers()["content-type"], "application/grpc");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let service = String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
                            Ok::<_, Infallible>(answer(&service, calls.fetch_add(1, Ordering::SeqCst)))
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

    fn answer(service: &str, call: usize) -> hyper::Response<Body> {
        let builder = hyper::Response::builder().header("content-type", "application/grpc");
        if !service.is_empty() && service != "shop.Cart" {
            return builder
                .header("grpc-status", "5")
                .header("grpc-message", "unknown service")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap();
        }
        let status: u8 = if service.is_empty() && call < 2 { 2 } else { 1 };
        let frame = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = Full::new(frame)
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed();
        builder.body(body).unwrap()
    }
}

#[test]
fn kubernetes_objects_via_a_fake_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (listener, addr) = listen();
    serve_http(listener, |n, req| {
        if req.header("authorization") != Some("Bearer s3cret") {
            return response(401, &[], r#"{"kind":"Status","message":"Unauthorized"}"#);
        }
        let json = |body: &str| response(200, &[("Content-Type", "application/json")], body);
        match req.path() {
            "/apis/apps/v1/namespaces/app/deployments/api" if n < 3 => json(
                r#"{"kind":"Deployment","metadata":{"name":"api","generation":2},"spec":{"replicas":2},
                    "status":{"observedGeneration":2,"replicas":3,"updatedReplicas":2,"availableReplicas":1}}"#,
            ),
            "/apis/apps/v1/namespaces/app/deployments/api" => json(
                r#"{"kind":"Deployment","metadata":{"name":"api","generation":2},"spec":{"replicas":2},
                    "status":{"observedGeneration":2,"replicas":2,"updatedReplicas":2,"availableReplicas":2,
                    "readyReplicas":2}}"#,
            ),
            "/apis/discovery.k8s.io/v1/namespaces/app/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Ddb" => {
                json(
                    r#"{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","items":[
                    {"metadata":{"name":"db-abc12","labels":{"kubernetes.io/service-name":"db"}},
                     "addressType":"IPv4","endpoints":[
                       {"addresses":["10.1.0.7"],"conditions":{"ready":false,"serving":false,"terminating":false}},
                       {"addresses":["10.1.0.8"],"conditions":{"ready":true,"serving":true,"terminating":false}}],
                     "ports":[{"name":"pg","port":5432,"protocol":"TCP"}]}]}"#,
                )
            }
            "/api/v1/namespaces/app/pods/db-0" => json(
                r#"{"kind":"Pod","metadata":{"name":"db-0"},"status":{"phase":"Running","conditions":[
                    {"type":"Initialized","status":"True"},{"type":"Ready","status":"True"},
                    {"type":"ContainersReady","status":"True"},{"type":"PodScheduled","status":"True"}]}}"#,
            ),
            "/api/v1/namespaces/app/pods?labelSelector=app%3Ddb" => json(
                r#"{"kind":"PodList","apiVersion":"v1","items":[
                    {"metadata":{"name":"db-0"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}},
                    {"metadata":{"name":"db-1"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}]}"#,
            ),
            "/apis/apps/v1/namespaces/app/statefulsets/db" => json(
                r#"{"kind":"StatefulSet","metadata":{"name":"db","generation":3},"spec":{"replicas":2},
                    "status":{"observedGeneration":3,"replicas":2,"readyReplicas":2,"currentReplicas":2,
                    "updatedReplicas":2,"currentRevision":"db-5d8f","updateRevision":"db-5d8f"}}"#,
            ),
            "/apis/batch/v1/namespaces/app/jobs/seed" => json(
                r#"{"kind":"Job","metadata":{"name":"seed"},"status":{"succeeded":1,"conditions":[
                    {"type":"SuccessCriteriaMet","status":"True"},{"type":"Complete","status":"True"}]}}"#,
            ),
            "/apis/batch/v1/namespaces/jobs/jobs/migrate" => json(
                r#"{"kind":"Job","metadata":{"name":"migrate"},"status":{"failed":3,"conditions":[
                    {"type":"FailureTarget","status":"True","reason":"BackoffLimitExceeded"},
                    {"type":"Failed","status":"True","reason":"BackoffLimitExceeded",
                     "message":"Job has reached the specified backoff limit"}]}}"#,
            ),
            "/api/v1/namespaces/app/pods/secret-pod" => response(
                403,
                &[("Content-Type", "application/json")],
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure",
                    "message":"pods \"secret-pod\" is forbidden: User \"system:serviceaccount:app:default\" cannot get resource \"pods\" in API group \"\" in the namespace \"app\"",
                    "reason":"Forbidden","details":{"name":"secret-pod","kind":"pods"},"code":403}"#,
            ),
            _ => response(404, &[], r#"{"kind":"Status","message":"not found","code":404}"#),
        }
    });
    let api = format!("http://{addr}");
    let token = token.to_str().unwrap();
    let k8s = |extra: &[&str]| {
        let mut args = vec!["--k8s-api", &api, "--k8s-token-file", token, "--k8s-namespace", "app"];
        args.extend_from_slice(extra);
        spawn(&args, &[]).finish()
    };

    let (status, _, err) = k8s(&["--log-level", "debug", "k8s:deployment/api", "k8s:svc/db"]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("1 of 2 replicas available"), "{err}");

    let (status, _, err) = k8s(&[
        "k8s:pod/db-0",
        "k8s:pod?selector=app=db",
        "k8s:statefulset/db",
        "k8s:job/seed",
    ]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err.matches("Ready.").count(), 4, "{err}");

    let (status, _, err) = k8s(&["k8s:jobs/job/migrate", "k8s:deployment/api"]);
    assert_eq!(status.code(), Some(1), "a failed Job fails the wait at once: {err}");
    assert!(err.contains("job failed: BackoffLimitExceeded"), "{err}");

    let (status, _, err) = k8s(&["-t", "300ms", "k8s:pod/secret-pod"]);
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(
        err.contains("may not `get` pods in namespace app")
            && err.contains("verbs [get]")
            && err.contains("system:serviceaccount:app:default"),
        "{err}"
    );

    let (status, _, err) = k8s(&["-t", "300ms", "k8s:statefulset/nope"]);
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("statefulset app/nope not found"), "{err}");
}

#[test]
fn admin_endpoints_report_what_is_pending() {
    let closed_port = ClosedPort::new();
    let target = closed_port.addr().to_string();
    let mut proc = spawn(&["--admin-addr", "127.0.0.1:0", &target], &[]);
    let admin = proc.admin_addr();
    podkit_testkit::wait_until("/readyz to name the refused target", || {
        podkit_testkit::http_get(admin, "/readyz")
            .is_ok_and(|r| r.status == 503 && r.body.contains(&target) && r.body.contains("connection refused"))
    });
    let metrics = podkit_testkit::http_get(admin, "/metrics").unwrap();
    assert!(
        metrics.body.contains("podkit_build_info{binary=\"wait-for\""),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("podkit_wait_for_attempts_total"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("podkit_wait_for_pending_targets 1"),
        "{}",
        metrics.body
    );
    proc.signal(libc::SIGTERM);
    let (status, _) = proc.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(143));
}

#[test]
fn json_logs_and_quiet() {
    let (_listener, addr) = listen();
    let (status, _, err) = spawn(&["--log-format", "json", &addr.to_string()], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    for line in err.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
    assert!(err.contains(r#""message":"Ready.""#), "{err}");
    let (status, _, err) = spawn(&["-q", &addr.to_string()], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "", "quiet prints nothing on success");
    let closed_port = ClosedPort::new();
    let target = closed_port.addr().to_string();
    let (status, _, err) = spawn(&["-q", "-t", "100ms", &target], &[("WAIT_FOR_QUIET", "true")]).finish();
    assert_eq!(status.code(), Some(124));
    assert!(err.contains("Timed out"), "errors still show: {err}");
}

#[test]
fn a_failing_exec_reports_127() {
    let (_listener, addr) = listen();
    let (status, _, err) = spawn(&[&addr.to_string(), "--", "/no/such/app"], &[]).finish();
    assert_eq!(status.code(), Some(127), "{err}");
    assert!(err.contains("cannot run `/no/such/app`"), "{err}");
}

#[test]
fn a_lone_command_runs_with_no_targets() {
    let (status, out, err) = spawn(&["--", "echo", "hello"], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(out, "hello\n");
}

/// A CA (PEM file in `dir`) and an HTTPS server on loopback with a
/// certificate it issued for `localhost`, answering 200 to every request.
fn https_server(dir: &std::path::Path) -> (std::path::PathBuf, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader, Write};

    let ca = podkit_testkit::tls::TestCa::new(dir);
    let config = Arc::clone(&ca.server);
    let (listener, addr) = listen();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
                let mut line = String::new();
                // Untrusting clients abort the handshake here: nothing to answer.
                while tls.read_line(&mut line).unwrap_or(0) > 0 && line.trim() != "" {
                    line.clear();
                }
                let tls = tls.get_mut();
                let _ = tls.write_all(response(200, &[], "ok").as_bytes());
                let _ = tls.flush();
            });
        }
    });
    (ca.ca_pem, addr)
}

#[test]
fn tls_flags_new_spellings_old_spellings_and_env_twins() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, addr) = https_server(dir.path());
    let ca = ca.to_str().unwrap();
    let url = format!("https://localhost:{}/", addr.port());
    type Flags<'a> = &'a [&'a str];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let ways: [(Flags<'_>, Env<'_>); 4] = [
        (&["--tls-ca-file", ca], &[]),
        (&["--tls-ca", ca], &[]),
        (&[], &[("WAIT_FOR_TLS_CA_FILE", ca)]),
        (&[], &[("WAIT_FOR_TLS_CA", ca)]),
    ];
    for (flags, env) in ways {
        let args: Vec<&str> = flags.iter().copied().chain([url.as_str()]).collect();
        let (status, _, err) = spawn(&args, env).finish();
        assert_eq!(status.code(), Some(0), "{flags:?} {env:?}: {err}");
    }
    let (status, _, err) = spawn(&["-t", "300ms", &url], &[]).finish();
    assert_eq!(status.code(), Some(124), "public roots do not trust the test CA: {err}");
    // Said in words, with the flag that fixes it (podkit-tls's sentence).
    assert!(
        err.contains("not signed by a CA this client trusts: trust the CA that issued it with --tls-ca-file"),
        "{err}"
    );
    let (status, _, err) = spawn(&["--tls-insecure", &url], &[]).finish();
    assert_eq!(status.code(), Some(0), "{err}");

    // A bad file is a usage error naming the flag and the file.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (status, _, err) = spawn(&["--tls-ca", empty.to_str().unwrap(), &url], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!("--tls-ca-file: the CA file {} is empty", empty.display())),
        "{err}"
    );
    let (status, _, err) = spawn(&["--tls-client-cert", ca, &url], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--tls-client-key: the client certificate"), "{err}");
    let help = spawn(&["--help"], &[]).finish().1;
    assert!(
        help.contains("--tls-ca-file <FILE>") && help.contains("WAIT_FOR_TLS_CLIENT_KEY"),
        "{help}"
    );
    assert!(!help.contains("--tls-ca "), "old spellings stay hidden: {help}");
}
