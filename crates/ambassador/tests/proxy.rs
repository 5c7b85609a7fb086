//! The real `ambassador` binary on loopback, driven with curl and raw
//! sockets: each mode, TLS origination, CONNECT, policy, DNS changes,
//! upstream failures, limits, slowloris and the SIGTERM drain.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use podkit_testkit::tls::{TestCa, self_signed_server};
use podkit_testkit::{ClosedPort, PATIENCE, http_get, wait_until};
use support::{Amb, Origin, curl};

#[test]
fn tcp_mode_carries_http_and_spreads_over_endpoints() {
    let a = Origin::start("a", "127.0.0.1:0");
    let b = Origin::start("b", "127.0.0.1:0");
    let spec = format!("127.0.0.1:0={},{}", a.addr, b.addr);
    let mut amb = Amb::start(&["--tcp", &spec]);
    let addr = amb.addr("tcp:127.0.0.1:0");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, body) = curl(&[&format!("http://{addr}/hello")]);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("path=/hello"), "{body}");
        seen.push(body.lines().next().unwrap_or_default().to_owned());
    }
    assert!(
        seen.contains(&"id=a".to_owned()) && seen.contains(&"id=b".to_owned()),
        "round-robin: {seen:?}"
    );

    // Half-close: the client shuts its write side and still reads the answer.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /half HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200") && out.contains("path=/half"), "{out}");
}

#[test]
fn reverse_mode_rewrites_host_adds_prefix_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("o", "127.0.0.1:0");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 upstream.test\n").unwrap();
    let spec = format!("127.0.0.1:0=http://upstream.test:{}/api", origin.addr.port());
    let mut amb = Amb::start(&[
        "--reverse",
        &spec,
        "--hosts-file",
        hosts.to_str().unwrap(),
        "--add-header",
        "X-Api-Key: secret",
        "--access-log",
        "json",
    ]);
    let addr = amb.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[
        "-H",
        "Connection: X-Hop",
        "-H",
        "X-Hop: 1",
        &format!("http://{addr}/v1/items?q=1"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("path=/api/v1/items?q=1"), "{body}");
    // Origin-form to an origin server (RFC 9112 3.2.1), never absolute-form.
    assert!(body.contains("target=/api/v1/items?q=1\n"), "{body}");
    assert!(
        body.contains(&format!("host=upstream.test:{}", origin.addr.port())),
        "{body}"
    );
    assert!(body.contains("x-api-key=secret"), "{body}");
    assert!(
        !body.contains("x-hop"),
        "Connection-listed headers are hop-by-hop: {body}"
    );

    // Keep-alive: two requests over one client connection both work.
    let (status, body) = curl(&[&format!("http://{addr}/one"), &format!("http://{addr}/two")]);
    assert_eq!(status, 200);
    assert!(
        body.contains("path=/api/one") && body.contains("path=/api/two"),
        "{body}"
    );

    let admin = amb.admin();
    let metrics = http_get(admin, "/metrics").unwrap().body;
    assert!(
        metrics.contains("podkit_ambassador_requests_total{listener=\"reverse:127.0.0.1:0\",code=\"200\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("podkit_ambassador_dns_refreshes_total{upstream="),
        "{metrics}"
    );
    assert!(
        metrics.contains("podkit_ambassador_upstream_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn reverse_mode_originates_tls_with_sni_verification_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let origin = Origin::start_with("tls", "127.0.0.1:0", Some(ca.server.clone()));
    let spec = format!("127.0.0.1:0=https://localhost:{}", origin.addr.port());
    let mut amb = Amb::start(&["--reverse", &spec, "--tls-ca-file", ca.ca_pem.to_str().unwrap()]);
    let addr = amb.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[&format!("http://{addr}/secure")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=tls") && body.contains("version=HTTP/2.0"), "{body}");

    // Without the CA the certificate is not trusted: 502, never plaintext.
    let mut untrusting = Amb::start(&["--reverse", &spec]);
    let addr = untrusting.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[&format!("http://{addr}/secure")]);
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("id=tls"), "{body}");
}

#[test]
fn forward_proxy_relays_absolute_form_and_connect_tunnels() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let plain = Origin::start("plain", "127.0.0.1:0");
    let tls = Origin::start_with("tls", "127.0.0.1:0", Some(ca.server.clone()));
    let mut amb = Amb::start(&["--http-forward", "127.0.0.1:0"]);
    let proxy = format!("http://{}", amb.addr("http-forward:127.0.0.1:0"));

    let (status, body) = curl(&[
        "-x",
        &proxy,
        "-H",
        "Proxy-Authorization: Basic c2VjcmV0",
        "-H",
        "Connection: X-Hop",
        "-H",
        "X-Hop: 1",
        &format!("http://{}/p?x=1", plain.addr),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("path=/p?x=1") && body.contains("via=1.1 ambassador-"),
        "{body}"
    );
    assert!(
        !body.contains("proxy-authorization") && !body.contains("x-hop"),
        "{body}"
    );

    // CONNECT to a TLS origin with its own CA: curl verifies end to end.
    let (status, body) = curl(&[
        "-x",
        &proxy,
        "--cacert",
        ca.ca_pem.to_str().unwrap(),
        &format!("https://localhost:{}/tunnelled", tls.addr.port()),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=tls") && body.contains("path=/tunnelled"), "{body}");

    // A request to the proxy itself is refused, not looped.
    let (status, body) = curl(&["-x", &proxy, &format!("{proxy}/loop")]);
    assert_eq!(status, 403, "{body}");
    // Origin-form requests are not proxy requests.
    let (status, _) = curl(&[&format!("{proxy}/direct")]);
    assert_eq!(status, 400);
}

#[test]
fn forward_proxy_allowlist_and_metadata_denials() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("o", "127.0.0.1:0");
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 allowed.test denied.test\n169.254.169.254 sneaky.test\n",
    )
    .unwrap();
    let mut amb = Amb::start(&[
        "--http-forward",
        "127.0.0.1:0",
        "--hosts-file",
        hosts.to_str().unwrap(),
        "--allow",
        "allowed.test\nsneaky.test",
    ]);
    let proxy = format!("http://{}", amb.addr("http-forward:127.0.0.1:0"));
    let port = origin.addr.port();
    let (status, body) = curl(&["-x", &proxy, &format!("http://allowed.test:{port}/ok")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&["-x", &proxy, &format!("http://denied.test:{port}/no")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not in the allowlist"), "{body}");
    // Allowed by name, but the name resolves to the metadata address.
    let (status, body) = curl(&["-x", &proxy, "http://sneaky.test/latest/meta-data"]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("metadata"), "{body}");
    // CONNECT is held to the same rules.
    let mut s = TcpStream::connect(proxy.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "CONNECT denied.test:{port} HTTP/1.1\r\nHost: denied.test:{port}\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 403");
}

#[test]
fn forward_proxy_beyond_loopback_without_allowlist_is_a_config_error() {
    let (status, _, err) = podkit_testkit::Proc::spawn(support::BIN, &["--http-forward", "0.0.0.0:0"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("open relay") && err.contains("--allow"), "{err}");
    let (status, _, err) = podkit_testkit::Proc::spawn(support::BIN, &[], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("no listener"), "{err}");
    let (status, _, err) =
        podkit_testkit::Proc::spawn(support::BIN, &[], &[("AMBASSADOR_TCP", "127.0.0.1:0=nohostport")]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--tcp") && err.contains("nohostport"), "{err}");
}

#[test]
fn upstream_dns_changes_are_picked_up_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = Origin::start("a", "127.0.0.1:0");
    let port = a.addr.port();
    let b = Origin::start("b", &format!("127.0.0.2:{port}"));
    let hosts = dir.path().join("hosts");
    // The name does not resolve at start: the ambassador starts anyway and
    // says so in /readyz.
    std::fs::write(&hosts, "# empty\n").unwrap();
    let spec = format!("127.0.0.1:0=http://db.invalid:{port}");
    let mut amb = Amb::start(&[
        "--reverse",
        &spec,
        "--hosts-file",
        hosts.to_str().unwrap(),
        "--dns-refresh",
        "100ms",
    ]);
    let admin = amb.admin();
    let addr = amb.addr("reverse:127.0.0.1:0");
    wait_until("/readyz to say the upstream does not resolve", || {
        http_get(admin, "/readyz")
            .is_ok_and(|r| r.status == 503 && r.body.contains("db.invalid") && r.body.contains("does not resolve"))
    });
    let (status, _) = curl(&[&format!("http://{addr}/")]);
    assert_eq!(status, 502);
    // The log says so too, once, at the default level.
    let line = amb.proc.wait_for_line("Upstream name does not resolve");
    assert!(line.contains("WARN") && line.contains("db.invalid"), "{line}");

    std::fs::write(&hosts, "127.0.0.1 db.invalid\n").unwrap();
    wait_until("/readyz to turn 200", || {
        http_get(admin, "/readyz").is_ok_and(|r| r.status == 200)
    });
    amb.proc.wait_for_line("Upstream name resolves again");
    let (status, body) = curl(&[&format!("http://{addr}/")]);
    assert_eq!(status, 200);
    assert!(body.starts_with("id=a"), "{body}");

    // The name moves: traffic follows, even though the pooled keep-alive
    // connection to the old address still works (it is retired, not reused).
    std::fs::write(&hosts, "127.0.0.2 db.invalid\n").unwrap();
    wait_until("traffic to move to the new address", || {
        let (_, body) = curl(&[&format!("http://{addr}/")]);
        body.starts_with("id=b")
    });
    for _ in 0..3 {
        assert!(
            curl(&[&format!("http://{addr}/")]).1.starts_with("id=b"),
            "stays on the new address"
        );
    }
    drop(b);

    // A failing lookup keeps the last good answer.
    std::fs::write(&hosts, "# gone\n").unwrap();
    std::thread::sleep(Duration::from_millis(500)); // several refresh intervals
    assert_eq!(http_get(admin, "/readyz").unwrap().status, 200);
}

#[test]
fn upstream_down_fails_fast_then_recovers() {
    let closed = ClosedPort::new();
    let port = closed.port();
    let spec_rev = format!("127.0.0.1:0=http://127.0.0.1:{port}");
    let spec_tcp = format!("127.0.0.1:0=127.0.0.1:{port}");
    let mut amb = Amb::start(&["--reverse", &spec_rev, "--tcp", &spec_tcp, "--connect-timeout", "20s"]);
    let rev = amb.addr("reverse:127.0.0.1:0");
    let tcp = amb.addr("tcp:127.0.0.1:0");
    for _ in 0..4 {
        let started = Instant::now();
        let (status, body) = curl(&[&format!("http://{rev}/")]);
        assert_eq!(status, 502, "{body}");
        assert_eq!(
            body.trim_end(),
            format!("cannot connect to upstream 127.0.0.1:{port}: 127.0.0.1:{port}: connection refused")
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a refused connect is not a timeout"
        );
    }
    // tcp mode closes the client connection at once.
    let mut s = TcpStream::connect(tcp).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without data");

    // The upstream comes up (after the endpoint was ejected: a lone
    // endpoint is still tried) and traffic flows again.
    let _origin = Origin::on("back", closed.listen());
    let (status, body) = curl(&[&format!("http://{rev}/")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&[&format!("http://{tcp}/")]);
    assert_eq!(status, 200, "{body}");
    // Said once at warn when it went, and once when it came back.
    let line = amb.proc.wait_for_line("Upstream reachable again.");
    assert!(
        line.contains("INFO") && line.contains(&format!("endpoint=127.0.0.1:{port}")),
        "{line}"
    );
    let log = amb.proc.stderr();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains("Upstream unreachable"))
            .count(),
        2,
        "once per listener's upstream, not per request: {log}"
    );
    let metrics = http_get(amb.admin(), "/metrics").unwrap().body;
    assert!(
        metrics.contains("podkit_ambassador_endpoint_ejections_total{upstream="),
        "{metrics}"
    );
}

/// `localhost` is 127.0.0.1 and [::1]; the server listens on 127.0.0.1 only
/// and serves a certificate that cannot work. The refused [::1] must not
/// hide why 127.0.0.1 failed.
#[test]
fn an_unreachable_upstream_names_the_telling_cause_and_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cert_pem) = self_signed_server(dir.path());
    let origin = Origin::start_with("tls", "127.0.0.1:0", Some(server));
    let port = origin.addr.port();
    let spec = format!("127.0.0.1:0=https://localhost:{port}");
    let sentence = "TLS: the server's certificate is a CA certificate, not a server certificate: issue a server \
                    certificate from that CA and trust the CA with --tls-ca-file";
    // Not trusted at all, and trusted with --tls-ca-file: the same cause.
    for trust in [&[][..], &["--tls-ca-file", cert_pem.to_str().unwrap()]] {
        let mut args = vec!["--reverse", spec.as_str()];
        args.extend_from_slice(trust);
        let mut amb = Amb::start(&args);
        let addr = amb.addr("reverse:127.0.0.1:0");
        let (status, body) = curl(&[&format!("http://{addr}/")]);
        assert_eq!(status, 502, "{body}");
        assert_eq!(
            body.trim_end(),
            format!("cannot connect to upstream tls://localhost:{port}: 127.0.0.1:{port}: {sentence}"),
            "{trust:?}"
        );
        let line = amb.proc.wait_for_line("Upstream unreachable");
        assert!(line.contains(&format!("cause=127.0.0.1:{port}: {sentence}")), "{line}");
        // Every endpoint with its reason, the most telling first.
        let endpoints = line.split("endpoints=").nth(1).unwrap_or_default();
        assert!(
            endpoints.starts_with(&format!("127.0.0.1:{port}: {sentence}; [::1]:{port}: ")),
            "{line}"
        );
    }

    // TLS to a port that speaks plain HTTP.
    let plain = Origin::start("plain", "127.0.0.1:0");
    let spec = format!("127.0.0.1:0=https://127.0.0.1:{}", plain.addr.port());
    let mut amb = Amb::start(&["--reverse", &spec]);
    let addr = amb.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[&format!("http://{addr}/")]);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains(
            "TLS: the server did not answer with TLS: if it speaks plain text on this port, use http:// or tcp://"
        ),
        "{body}"
    );

    // A name the certificate does not list.
    let ca = TestCa::new(dir.path());
    let good = Origin::start_with("good", "127.0.0.1:0", Some(ca.server.clone()));
    let spec = format!("127.0.0.1:0=https://127.0.0.1:{}", good.addr.port());
    let ca_pem = ca.ca_pem.to_str().unwrap();
    let mut amb = Amb::start(&[
        "--reverse",
        &spec,
        "--tls-ca-file",
        ca_pem,
        "--tls-server-name",
        "api.test",
    ]);
    let addr = amb.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[&format!("http://{addr}/")]);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("TLS: the server's certificate is not valid for api.test (it is for localhost, 127.0.0.1)"),
        "{body}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_accepts_during_the_delay() {
    let origin = Origin::start("o", "127.0.0.1:0");
    let spec = format!("127.0.0.1:0=http://{}", origin.addr);
    let mut amb = Amb::start(&["--reverse", &spec, "--drain-delay", "5s", "--grace-period", "30s"]);
    let addr = amb.addr("reverse:127.0.0.1:0");
    let slow = std::thread::spawn(move || curl(&[&format!("http://{addr}/slow")]));
    origin.wait_slow_arrival();
    amb.proc.signal(libc::SIGTERM);
    amb.proc.wait_for_line("Still accepting for the drain delay.");
    // The app's last calls during the delay still work.
    let (status, body) = curl(&[&format!("http://{addr}/late")]);
    assert_eq!(status, 200, "{body}");
    origin.release();
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 200, "in-flight request completes: {body}");
    assert!(body.contains("path=/slow"));
    let (exit, _) = amb.proc.wait_exit(PATIENCE);
    assert_eq!(exit.code(), Some(0), "{}", amb.proc.stderr());
}

#[test]
fn slow_header_senders_are_cut_and_limits_answer_4xx() {
    let origin = Origin::start("o", "127.0.0.1:0");
    let spec = format!("127.0.0.1:0=http://{}", origin.addr);
    let mut amb = Amb::start(&[
        "--reverse",
        &spec,
        "--header-read-timeout",
        "1s",
        "--max-header-size",
        "8KiB",
        "--max-request-body",
        "1KiB",
        "--max-connections",
        "2",
    ]);
    let addr = amb.addr("reverse:127.0.0.1:0");

    // Slowloris: half a request head, then nothing; the proxy hangs up.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    slow.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(started.elapsed() < PATIENCE, "the connection was cut, not left open");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    let big = format!("X-Big: {}", "a".repeat(10_000));
    let (status, _) = curl(&["-H", &big, &format!("http://{addr}/")]);
    assert_eq!(status, 431);
    let (status, body) = curl(&["--data-binary", &"b".repeat(2000), &format!("http://{addr}/")]);
    assert_eq!(status, 413, "{body}");

    // Two idle connections hold both slots: the third is told 503.
    let _hold1 = TcpStream::connect(addr).unwrap();
    let _hold2 = TcpStream::connect(addr).unwrap();
    wait_until("both slots to be taken", || {
        http_get(amb.admin(), "/metrics").is_ok_and(|m| {
            m.body
                .contains("podkit_ambassador_connections_active{listener=\"reverse:127.0.0.1:0\"} 2")
        })
    });
    let (status, body) = curl(&[&format!("http://{addr}/")]);
    assert_eq!(status, 503, "{body}");
}

#[test]
fn config_file_defines_listeners_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("o", "127.0.0.1:0");
    let file = dir.path().join("ambassador.toml");
    std::fs::write(
        &file,
        format!(
            "request_timeout = \"1ms\"\n[[listener]]\nmode = \"reverse\"\nlisten = \"127.0.0.3:0\"\nupstreams = [\"http://{}\"]\n[[listener]]\nmode = \"tcp\"\nlisten = \"127.0.0.4:0\"\nupstreams = \"{}\"\n",
            origin.addr, origin.addr
        ),
    )
    .unwrap();
    // The file's 1ms request timeout would turn every answer into a 504;
    // the flag overrides it.
    let mut amb = Amb::start(&["--config", file.to_str().unwrap(), "--request-timeout", "30s"]);
    let rev = amb.addr("reverse:127.0.0.3:0");
    let tcp = amb.addr("tcp:127.0.0.4:0");
    assert_eq!(curl(&[&format!("http://{rev}/")]).0, 200);
    assert_eq!(curl(&[&format!("http://{tcp}/")]).0, 200);
}

/// flag > env > config file, told by where a value came from: a flag or env
/// value equal to the file's top level still beats a `[[listener]]`
/// section, and a section's own `tls_insecure = true`, `allow` and
/// `headers` are not lost because the top level says `false` or `[]`.
#[test]
fn precedence_is_flag_then_env_then_listener_section_then_top_level() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("o", "127.0.0.1:0");
    let ca = TestCa::new(dir.path());
    let tls = Origin::start_with("tls", "127.0.0.1:0", Some(ca.server.clone()));
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 allowed.test denied.test\n").unwrap();
    let file = dir.path().join("ambassador.toml");
    std::fs::write(
        &file,
        format!(
            r#"
hosts-file = {hosts:?}
request_timeout = "1ms"
tls_insecure = false
allow = []
add_header = []

[[listener]]
mode = "reverse"
listen = "127.0.0.11:0"
upstreams = "http://{o}/slow"
request_timeout = "30s"

[[listener]]
mode = "reverse"
listen = "127.0.0.12:0"
upstreams = "https://localhost:{tls_port}"
tls_insecure = true
request_timeout = "30s"

[[listener]]
mode = "http-forward"
listen = "127.0.0.13:0"
allow = ["allowed.test"]
request_timeout = "30s"

[[listener]]
mode = "reverse"
listen = "127.0.0.14:0"
upstreams = "http://{o}"
headers = {{ X-Api-Key = "k" }}
request_timeout = "30s"
"#,
            hosts = hosts.to_str().unwrap(),
            o = origin.addr,
            tls_port = tls.addr.port(),
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();

    // No flag, no env: each section's own values.
    let mut amb = Amb::start(&["--config", config]);
    let insecure = amb.addr("reverse:127.0.0.12:0");
    let (status, body) = curl(&[&format!("http://{insecure}/")]);
    assert_eq!(status, 200, "the section's tls_insecure = true holds: {body}");
    let proxy = format!("http://{}", amb.addr("http-forward:127.0.0.13:0"));
    let port = origin.addr.port();
    assert_eq!(curl(&["-x", &proxy, &format!("http://allowed.test:{port}/")]).0, 200);
    let (status, body) = curl(&["-x", &proxy, &format!("http://denied.test:{port}/")]);
    assert_eq!(status, 403, "the section's allow holds: {body}");
    let headers = amb.addr("reverse:127.0.0.14:0");
    let (status, body) = curl(&[&format!("http://{headers}/")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("x-api-key=k"), "the section's headers hold: {body}");
    drop(amb);

    // A flag, then an env twin, equal to the top level: both beat the
    // section's 30s, so the held /slow request times out at once.
    for (args, env) in [
        (&["--request-timeout", "1ms"][..], &[][..]),
        (&[][..], &[("AMBASSADOR_REQUEST_TIMEOUT", "1ms")][..]),
    ] {
        let mut all = vec!["--admin-addr", "127.0.0.1:0", "--config", config];
        all.extend_from_slice(args);
        let mut amb = Amb {
            proc: podkit_testkit::Proc::spawn(support::BIN, &all, env),
        };
        let slow = amb.addr("reverse:127.0.0.11:0");
        let (status, body) = curl(&[&format!("http://{slow}/")]);
        assert_eq!(status, 504, "{args:?} {env:?}: {body}");
        origin.release();
    }
}

#[test]
fn websocket_upgrades_pass_through_reverse_and_forward() {
    let origin = Origin::start("ws", "127.0.0.1:0");
    let spec = format!("127.0.0.1:0=http://{}", origin.addr);
    let mut amb = Amb::start(&["--reverse", &spec, "--http-forward", "127.0.0.1:0"]);
    let reverse = amb.addr("reverse:127.0.0.1:0");
    let forward = amb.addr("http-forward:127.0.0.1:0");
    for (proxy, target) in [
        (reverse, "/ws".to_owned()),
        (forward, format!("http://{}/ws", origin.addr)),
    ] {
        let mut s = TcpStream::connect(proxy).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");
        s.write_all(b"ping over the upgraded stream").unwrap();
        let mut echo = [0u8; 29];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping over the upgraded stream");
    }
}

#[test]
fn tcp_mode_originates_tls_and_reverse_mode_does_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let tls = Origin::start_with("tls", "127.0.0.1:0", Some(ca.server.clone()));
    let mtls = Origin::start_with("mtls", "127.0.0.1:0", Some(ca.server_mtls.clone()));
    let tcp_spec = format!("127.0.0.1:0=tls://localhost:{}", tls.addr.port());
    let rev_spec = format!("127.0.0.1:0=https://localhost:{}", mtls.addr.port());
    let mut amb = Amb::start(&[
        "--tcp",
        &tcp_spec,
        "--reverse",
        &rev_spec,
        "--tls-ca-file",
        ca.ca_pem.to_str().unwrap(),
        "--tls-client-cert",
        ca.client_cert.to_str().unwrap(),
        "--tls-client-key",
        ca.client_key.to_str().unwrap(),
    ]);
    let tcp = amb.addr("tcp:127.0.0.1:0");
    let rev = amb.addr("reverse:127.0.0.1:0");
    let (status, body) = curl(&[&format!("http://{tcp}/plain-to-tls")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=tls") && body.contains("version=HTTP/1.1"), "{body}");
    let (status, body) = curl(&[&format!("http://{rev}/with-client-cert")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("id=mtls"), "{body}");

    // Without the client certificate the origin refuses the handshake (the
    // old `--ca-file` spelling still works).
    let mut anonymous = Amb::start(&["--reverse", &rev_spec, "--ca-file", ca.ca_pem.to_str().unwrap()]);
    let rev = anonymous.addr("reverse:127.0.0.1:0");
    assert_eq!(curl(&[&format!("http://{rev}/")]).0, 502);
}

#[test]
fn env_twins_take_one_listener_per_line_and_access_log_is_json_on_stdout() {
    let origin = Origin::start("o", "127.0.0.1:0");
    let tcp = format!("127.0.0.1:0={}\n127.0.0.2:0={}", origin.addr, origin.addr);
    let mut amb = Amb {
        proc: podkit_testkit::Proc::spawn(
            support::BIN,
            &["--admin-addr", "127.0.0.1:0"],
            &[
                ("AMBASSADOR_TCP", tcp.as_str()),
                ("AMBASSADOR_REVERSE", &format!("127.0.0.3:0=http://{}", origin.addr)),
                ("AMBASSADOR_ACCESS_LOG", "json"),
                ("AMBASSADOR_DRAIN_DELAY", "0s"),
            ],
        ),
    };
    let a = amb.addr("tcp:127.0.0.1:0");
    let b = amb.addr("tcp:127.0.0.2:0");
    let rev = amb.addr("reverse:127.0.0.3:0");
    assert_eq!(curl(&[&format!("http://{a}/")]).0, 200);
    assert_eq!(curl(&[&format!("http://{b}/")]).0, 200);
    assert_eq!(curl(&[&format!("http://{rev}/logged?x=1")]).0, 200);
    let mut stdout = amb.proc.stdout().unwrap();
    amb.proc.signal(libc::SIGTERM);
    let (exit, _) = amb.proc.wait_exit(PATIENCE);
    assert_eq!(exit.code(), Some(0));
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let http = lines
        .iter()
        .find(|l| l["method"] == "GET")
        .expect("the reverse request");
    assert_eq!(http["status"], 200);
    assert_eq!(http["target"], "/logged?x=1");
    assert_eq!(http["listener"], "reverse:127.0.0.3:0");
    assert!(http["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let tcp_line = lines.iter().find(|l| l["method"] == "TCP").expect("a tcp line");
    assert!(tcp_line["bytes_in"].as_u64().unwrap() > 0 && tcp_line["bytes_out"].as_u64().unwrap() > 0);
}

#[test]
fn idle_tcp_connections_are_closed() {
    // An upstream that accepts and then says nothing, ever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("127.0.0.1:0={}", silent.local_addr().unwrap());
    let mut amb = Amb::start(&["--tcp", &spec, "--idle-timeout", "300ms"]);
    let addr = amb.addr("tcp:127.0.0.1:0");
    let mut s = TcpStream::connect(addr).unwrap();
    let (_held, _) = silent.accept().unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed by the idle timeout");
}

#[test]
fn yaml_config_top_level_flags_and_listener_sections() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("o", "127.0.0.1:0");
    let file = dir.path().join("ambassador.yaml");
    std::fs::write(
        &file,
        format!(
            "request-timeout: 1ms\ntcp:\n  - 127.0.0.5:0={o}\naccess-log: text\nlistener:\n  - mode: reverse\n    listen: 127.0.0.6:0\n    upstreams: [\"http://{o}\"]\n    request_timeout: 30s\n  - mode: reverse\n    listen: 127.0.0.7:0\n    upstreams: [\"http://{o}/slow\"]\n",
            o = origin.addr
        ),
    )
    .unwrap();
    let mut amb = Amb::start(&["--config", file.to_str().unwrap()]);
    let tcp = amb.addr("tcp:127.0.0.5:0");
    let own = amb.addr("reverse:127.0.0.6:0");
    let top = amb.addr("reverse:127.0.0.7:0");
    assert_eq!(curl(&[&format!("http://{tcp}/")]).0, 200);
    // The listener's own request_timeout beats the top-level 1ms...
    assert_eq!(curl(&[&format!("http://{own}/")]).0, 200);
    // ...which applies where the listener has none.
    let (status, body) = curl(&[&format!("http://{top}/")]);
    assert_eq!(status, 504, "{body}");
    origin.release();

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[listeners]]\nmode = \"tcp\"\n").unwrap();
    let (status, _, err) =
        podkit_testkit::Proc::spawn(support::BIN, &["--config", bad.to_str().unwrap()], &[]).finish();
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("unknown section `listeners`"), "{err}");
}

#[test]
fn tcp_mode_sends_a_proxy_protocol_header_first() {
    for (version, check) in [("v1", 1), ("v2", 2)] {
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let spec = format!("127.0.0.1:0={}", upstream.local_addr().unwrap());
        let mut amb = Amb::start(&["--tcp", &spec, "--proxy-protocol", version]);
        let addr = amb.addr("tcp:127.0.0.1:0");
        let mut client = TcpStream::connect(addr).unwrap();
        let client_port = client.local_addr().unwrap().port();
        client.write_all(b"payload").unwrap();
        let (mut up, _) = upstream.accept().unwrap();
        up.set_read_timeout(Some(PATIENCE)).unwrap();
        if check == 1 {
            let expected = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {}\r\npayload",
                addr.port()
            );
            let mut got = vec![0u8; expected.len()];
            up.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), expected);
        } else {
            let mut got = [0u8; 28 + 7];
            up.read_exact(&mut got).unwrap();
            assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n");
            assert_eq!(&got[12..16], &[0x21, 0x11, 0, 12]);
            assert_eq!(u16::from_be_bytes([got[24], got[25]]), client_port);
            assert_eq!(u16::from_be_bytes([got[26], got[27]]), addr.port());
            assert_eq!(&got[28..], b"payload");
        }
    }
}

/// A bare HTTP/1.1 origin on a thread per connection that numbers its
/// connections in each answer (`conn=N`), records the request lines it got,
/// and can close every connection it holds, as an upstream's keep-alive
/// timeout does.
struct CountingOrigin {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CountingOrigin {
    fn start() -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, held, seen) = (accepted.clone(), open.clone(), lines.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                held.lock().unwrap().push(stream.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            let line = String::from_utf8_lossy(&head)
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_owned();
                            seen.lock().unwrap().push(line);
                            let body = format!("conn={n}\n");
                            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                            if stream.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                });
            }
        });
        Self {
            addr,
            accepted,
            open,
            lines,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every connection, without a `Connection: close` first.
    fn close_all(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn reverse_mode_reuses_upstream_connections_and_survives_their_close() {
    let origin = CountingOrigin::start();
    let spec = format!("127.0.0.1:0=http://{}", origin.addr);
    let mut amb = Amb::start(&["--reverse", &spec]);
    let addr = amb.addr("reverse:127.0.0.1:0");

    // One client connection after another (a curl each): the upstream
    // connection outlives each of them and serves the next.
    for i in 0..5 {
        let (status, body) = curl(&[&format!("http://{addr}/{i}")]);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "conn=1\n", "request {i} reused the first upstream connection");
    }
    // Several requests on one client connection, too.
    let (status, body) = curl(&[&format!("http://{addr}/a"), &format!("http://{addr}/b")]);
    assert_eq!(status, 200);
    assert_eq!(body.matches("conn=1\n").count(), 2, "{body}");
    assert_eq!(origin.connections(), 1);
    // Origin-form request-targets (RFC 9112 3.2.1): some servers, busybox
    // httpd among them, answer an absolute-form target with 400.
    assert_eq!(
        origin.lines.lock().unwrap().first().map(String::as_str),
        Some("GET /0 HTTP/1.1")
    );

    // The upstream closes its idle connection (its keep-alive timeout): the
    // next request notices before sending and goes over a new one; no 502.
    origin.close_all();
    let (status, body) = curl(&[&format!("http://{addr}/after-close")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "conn=2\n");

    // A client that leaves mid-answer does not leave a half-read connection
    // behind for the next one.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(s);
    let (status, body) = curl(&[&format!("http://{addr}/next")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("conn="), "{body}");
}

/// Deterministic bytes (xorshift) for integrity checks without a hash
/// crate: the same seed gives the same stream however it is chunked.
struct Noise {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Noise {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state.to_le_bytes()
    }

    fn fill(&mut self, mut buf: &mut [u8]) {
        // The rest of the current word, whole words, then a partial one.
        let head = (8 - self.used).min(buf.len());
        buf[..head].copy_from_slice(&self.word[self.used..self.used + head]);
        self.used += head;
        buf = &mut buf[head..];
        let mut words = buf.chunks_exact_mut(8);
        for chunk in &mut words {
            let word = self.next_word();
            chunk.copy_from_slice(&word);
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
    }
}

/// Sends `total` bytes of `seed`'s noise.
fn send_noise(mut to: &TcpStream, seed: u64, total: usize) {
    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; 256 << 10];
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        noise.fill(&mut buf[..n]);
        to.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

/// Reads until EOF and checks that exactly `seed`'s noise came, then
/// `trailer`.
fn expect_noise(mut from: &TcpStream, seed: u64, total: usize, trailer: &[u8]) {
    let mut noise = Noise::new(seed);
    let mut got = vec![0u8; 256 << 10];
    let mut want = vec![0u8; 256 << 10];
    let mut seen = 0usize;
    while seen < total {
        let n = from.read(&mut got[..(total - seen).min(256 << 10)]).unwrap();
        assert!(n > 0, "EOF after {seen} of {total} bytes");
        noise.fill(&mut want[..n]);
        assert!(got[..n] == want[..n], "corrupt bytes in {seen}..{}", seen + n);
        seen += n;
    }
    let mut rest = Vec::new();
    from.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, trailer, "after the bulk bytes");
}

#[test]
fn tcp_mode_carries_bulk_both_ways_intact_with_half_close_and_counts() {
    const BULK: usize = 64 << 20;
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("127.0.0.1:0={}", upstream.local_addr().unwrap());
    let mut amb = Amb::start(&["--tcp", &spec]);
    let addr = amb.addr("tcp:127.0.0.1:0");
    let admin = amb.admin();

    let client = TcpStream::connect(addr).unwrap();
    let (up, _) = upstream.accept().unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    up.set_read_timeout(Some(PATIENCE)).unwrap();
    std::thread::scope(|s| {
        // Upstream: reads the client's bulk to EOF (the client's half-close
        // arrives), then still answers after it: half-close both ways.
        s.spawn(|| {
            let reader = s.spawn(|| expect_noise(&up, 1, BULK, b""));
            send_noise(&up, 2, BULK);
            reader.join().unwrap();
            (&up).write_all(b"after your EOF").unwrap();
            up.shutdown(std::net::Shutdown::Write).unwrap();
        });
        s.spawn(|| {
            send_noise(&client, 1, BULK);
            client.shutdown(std::net::Shutdown::Write).unwrap();
        });
        expect_noise(&client, 2, BULK, b"after your EOF");
    });
    drop(client);
    drop(up);

    // The pipe counted what it moved.
    let want_up =
        format!("podkit_ambassador_bytes_total{{listener=\"tcp:127.0.0.1:0\",direction=\"to_upstream\"}} {BULK}");
    let want_client = format!(
        "podkit_ambassador_bytes_total{{listener=\"tcp:127.0.0.1:0\",direction=\"to_client\"}} {}",
        BULK + b"after your EOF".len()
    );
    wait_until("the byte counts of the bulk connection", || {
        http_get(admin, "/metrics").is_ok_and(|m| m.body.contains(&want_up) && m.body.contains(&want_client))
    });
}

#[test]
fn connect_tunnels_carry_bulk_intact_with_bytes_sent_along_the_request() {
    const BULK: usize = 16 << 20;
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let mut amb = Amb::start(&["--http-forward", "127.0.0.1:0"]);
    let proxy = amb.addr("http-forward:127.0.0.1:0");
    let mut client = TcpStream::connect(proxy).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    // The first tunnel bytes ride in the same write as the request head:
    // hyper reads them along, and the tunnel must pass them on first.
    let mut first = vec![0u8; 4096];
    Noise::new(3).fill(&mut first);
    let mut head = format!("CONNECT {origin_addr} HTTP/1.1\r\nHost: {origin_addr}\r\n\r\n").into_bytes();
    head.extend_from_slice(&first);
    client.write_all(&head).unwrap();
    let (up, _) = origin.accept().unwrap();
    up.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).unwrap(), 1, "proxy closed during CONNECT");
        answer.push(byte[0]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            let reader = s.spawn(|| {
                let mut got = vec![0u8; first.len()];
                (&up).read_exact(&mut got).unwrap();
                assert!(got == first, "the bytes sent along the request head come first");
                expect_noise(&up, 4, BULK, b"");
            });
            send_noise(&up, 5, BULK);
            reader.join().unwrap();
            up.shutdown(std::net::Shutdown::Write).unwrap();
        });
        s.spawn(|| {
            send_noise(&client, 4, BULK);
            client.shutdown(std::net::Shutdown::Write).unwrap();
        });
        expect_noise(&client, 5, BULK, b"");
    });
}

#[test]
fn tls_flags_old_spellings_env_twins_config_keys_and_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let origin = Origin::start_with("tls", "127.0.0.1:0", Some(ca.server.clone()));
    let ca_pem = ca.ca_pem.to_str().unwrap();
    let spec = format!("127.0.0.1:0=https://localhost:{}", origin.addr.port());
    let serves = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--admin-addr", "127.0.0.1:0", "--reverse", &spec];
        all.extend_from_slice(args);
        let mut amb = Amb {
            proc: podkit_testkit::Proc::spawn(support::BIN, &all, env),
        };
        let addr = amb.addr("reverse:127.0.0.1:0");
        curl(&[&format!("http://{addr}/")])
    };
    for env in [[("AMBASSADOR_TLS_CA_FILE", ca_pem)], [("AMBASSADOR_CA_FILE", ca_pem)]] {
        let (status, body) = serves(&[], &env);
        assert_eq!(status, 200, "{env:?}: {body}");
    }
    assert_eq!(serves(&["--insecure"], &[]).0, 200);
    assert_eq!(serves(&[], &[("AMBASSADOR_TLS_INSECURE", "true")]).0, 200);

    // Config file keys, new and old, at the top and in a listener section.
    for key in ["tls_ca_file", "ca_file"] {
        let file = dir.path().join(format!("{key}.toml"));
        std::fs::write(&file, format!("{key} = {ca_pem:?}\n")).unwrap();
        let (status, body) = serves(&["--config", file.to_str().unwrap()], &[]);
        assert_eq!(status, 200, "top-level {key}: {body}");
        let sectioned = format!(
            "[[listener]]\nmode = \"reverse\"\nlisten = \"127.0.0.9:0\"\nupstreams = \"https://localhost:{}\"\n{key} = {ca_pem:?}\n",
            origin.addr.port()
        );
        std::fs::write(&file, sectioned).unwrap();
        let mut amb = Amb::start(&["--config", file.to_str().unwrap()]);
        let addr = amb.addr("reverse:127.0.0.9:0");
        assert_eq!(curl(&[&format!("http://{addr}/")]).0, 200, "[[listener]] {key}");
    }

    // The SNI override: the name verified is the flag's, not the IP address
    // connected to (which the certificate also names).
    let by_ip = format!("127.0.0.1:0=https://127.0.0.1:{}", origin.addr.port());
    let verified = |name: &str| {
        let mut amb = Amb::start(&["--reverse", &by_ip, "--tls-ca-file", ca_pem, "--tls-server-name", name]);
        let addr = amb.addr("reverse:127.0.0.1:0");
        curl(&[&format!("http://{addr}/")]).0
    };
    assert_eq!(verified("localhost"), 200);
    assert_eq!(verified("someone-else.test"), 502);

    // A bad file, or a certificate without its key, exits 64 naming both.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let exit = |args: &[&str]| {
        let mut all = vec!["--reverse", spec.as_str()];
        all.extend_from_slice(args);
        podkit_testkit::Proc::spawn(support::BIN, &all, &[]).finish()
    };
    let (status, _, err) = exit(&["--ca-file", empty.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!("--tls-ca-file: the CA file {} is empty", empty.display())),
        "{err}"
    );
    let (status, _, err) = exit(&["--tls-client-cert", ca.client_cert.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--tls-client-key: the client certificate"), "{err}");
    let both = dir.path().join("both.toml");
    std::fs::write(&both, format!("ca_file = {ca_pem:?}\ntls_ca_file = {ca_pem:?}\n")).unwrap();
    let (status, _, err) = exit(&["--config", both.to_str().unwrap()]);
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(
        err.contains("`ca_file` and `tls_ca_file` are the same setting"),
        "{err}"
    );
}
