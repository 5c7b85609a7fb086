//! Shipping with the real binary: what each sink receives, what the
//! checkpoint holds afterwards, rejected batches, and configuration errors.

mod support;

use std::fs;

use podkit_testkit::sink::Sink;
use podkit_testkit::{Proc, wait_until};
use support::*;

#[test]
fn ships_ndjson_over_http_and_a_restart_sends_only_new_lines() {
    let d = Dirs::new();
    let log = d.app_log();
    append(&log, (0..500).map(line));
    // One line with bytes that are not UTF-8.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"bad \xff byte\n"))
        .unwrap();
    let sink = Sink::keeping_bodies();
    let url = sink.url("/ingest?x=1");
    let pattern = format!("{}/*.log", d.logs.display());
    let state = Dirs::s(&d.state);
    let args = [
        "--follow",
        &pattern,
        "--state-dir",
        &state,
        "--sink",
        &url,
        "--label",
        "pod=web-1",
        "--label-from-env",
        "ns=POD_NAMESPACE",
        "--header",
        "X-Scope: team-a",
    ];
    let shipper = Shipper::start(&args, &[("POD_NAMESPACE", "prod")]);
    sink.wait_records(501);
    let records: Vec<serde_json::Value> = sink
        .received_records()
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect();
    assert_eq!(records[0]["message"], line(0));
    assert_eq!(records[0]["file"], log.display().to_string());
    assert_eq!(records[0]["pod"], "web-1");
    assert_eq!(records[0]["ns"], "prod");
    assert!(records[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(records[500]["message"], "bad \u{FFFD} byte");
    let request = &sink.requests()[0];
    assert_eq!(request.path, "/ingest?x=1");
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(request.header("x-scope"), Some("team-a"));
    // The whole body with its length, never chunked (simple collectors, CGI).
    assert_eq!(
        request.header("content-length"),
        Some(request.wire_bytes.to_string().as_str())
    );
    assert_eq!(request.header("transfer-encoding"), None);
    wait_until("the metrics to count the lines", || {
        shipper.metric("podkit_log_shipper_lines_sent_total{sink=\"http\"}") == Some(501.0)
    });
    assert_eq!(shipper.metric("podkit_log_shipper_invalid_utf8_lines_total"), Some(1.0));
    assert_eq!(
        shipper.metric("podkit_log_shipper_lines_read_total{source=\"default\"}"),
        Some(501.0)
    );

    shipper.stop_ok();
    let size = fs::metadata(&log).unwrap().len();
    assert_eq!(checkpoint_offset(&d.state, "log-shipper", &log), size);

    // A restart resumes after what was delivered.
    append(&log, (500..600).map(line));
    let shipper = Shipper::start(&args, &[("POD_NAMESPACE", "prod")]);
    // The line with bytes that are not UTF-8 is the 601st record.
    wait_delivered(&sink, 601).assert_once(0..600);
    shipper.stop_ok();
    assert_eq!(sink.records(), 601);
}

#[test]
fn stdout_raw_and_file_ndjson_sinks() {
    let d = Dirs::new();
    let log = d.app_log();
    append(&log, (0..300).map(line));
    let out = d.logs.join("../out/shipped.ndjson");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let out = fs::canonicalize(out.parent().unwrap()).unwrap().join("shipped.ndjson");
    let file_sink = format!("file://{}", out.display());
    let pattern = Dirs::s(&log);
    let mut shipper = Shipper::start(
        &[
            "--follow",
            &pattern,
            "--no-checkpoint",
            "--sink",
            "stdout",
            "--format",
            "raw",
        ],
        &[],
    );
    let stdout = shipper.proc.stdout().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            lines.push(l.unwrap());
            if lines.len() == 300 {
                break;
            }
        }
        lines
    });
    let lines = reader.join().unwrap();
    assert_eq!(lines, (0..300).map(line).collect::<Vec<_>>());
    shipper.stop_ok();

    // Through a config file: a file sink, NDJSON, and a source section.
    let config = d.logs.join("../shipper.toml");
    fs::write(
        &config,
        format!(
            "no-checkpoint = true\n[[source]]\nname = \"app\"\nfollow = \"{}\"\nlabels = {{ app = \"demo\" }}\n\
             [[sink]]\nurl = \"{file_sink}\"\nname = \"archive\"\n",
            log.display()
        ),
    )
    .unwrap();
    let cfg = Dirs::s(&config);
    let shipper = Shipper::start(&["--config", &cfg], &[]);
    wait_until("300 records in the file sink", || {
        fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 300)
    });
    let text = fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["message"], line(0));
    assert_eq!(first["app"], "demo");
    shipper.stop_ok();
}

#[test]
fn json_array_gzip_and_bearer_token() {
    let d = Dirs::new();
    let log = d.app_log();
    append(&log, (0..1000).map(line));
    let token = d.logs.join("../token");
    fs::write(&token, "s3cret\n").unwrap();
    let sink = Sink::keeping_bodies();
    let (pattern, url, token) = (Dirs::s(&log), sink.url("/bulk"), Dirs::s(&token));
    let shipper = Shipper::start(
        &[
            "--follow",
            &pattern,
            "--no-checkpoint",
            "--sink",
            &url,
            "--format",
            "json-array",
            "--compression",
            "gzip",
            "--bearer-token-file",
            &token,
            "--batch-max-lines",
            "400",
            "--on-reject",
            "drop",
        ],
        &[],
    );
    wait_delivered(&sink, 1000).assert_once(0..1000);
    let requests = sink.requests();
    assert!(
        requests.len() >= 3,
        "at most 400 records per request: {}",
        requests.len()
    );
    for r in &requests {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
        assert!(r.records <= 400 && r.wire_bytes < r.bytes);
    }
    shipper.stop_ok();
}

#[test]
fn a_rejected_batch_is_dead_lettered_and_the_rest_flows() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    sink.reject_containing(Some(b"POISON"));
    let shipper = Shipper::following(&d, &sink.url("/"), &[]);
    append(&log, (0..100).map(line));
    sink.wait_records(100);
    append(&log, ["POISON pill".to_owned()]);
    sink.wait_until("the poisoned batch to be rejected", |s| s.rejected == 1);
    let dead = d.state.join("dead-letter/http.ndjson");
    wait_until("the dead-letter file", || {
        fs::read_to_string(&dead).is_ok_and(|t| t.contains("POISON pill"))
    });
    append(&log, (100..200).map(line));
    wait_delivered(&sink, 200).assert_once(0..200);
    wait_until("the dead-letter metric", || {
        shipper.metric("podkit_log_shipper_lines_dead_lettered_total{sink=\"http\"}") == Some(1.0)
    });
    let stderr = shipper.stop_ok();
    assert!(stderr.contains("dead-letter"), "{stderr}");
    // Everything is acknowledged, the poisoned line included.
    assert_eq!(
        checkpoint_offset(&d.state, "log-shipper", &log),
        fs::metadata(&log).unwrap().len()
    );
}

#[test]
fn configuration_mistakes_exit_64_naming_the_flag_or_key() {
    let d = Dirs::new();
    let pattern = format!("{}/*.log", d.logs.display());
    let state = Dirs::s(&d.state);
    // A path under a regular file can never be a directory (even for root).
    let not_a_dir = d.logs.join("../plain-file");
    fs::write(&not_a_dir, "").unwrap();
    let unwritable = format!("{}/state", not_a_dir.display());
    let bad_config = d.logs.join("../bad.toml");
    fs::write(&bad_config, "[[sink]]\nurl = \"stdout\"\nbatch_size = 5\n").unwrap();
    let bad_config = Dirs::s(&bad_config);
    let base = ["--follow", pattern.as_str(), "--state-dir", state.as_str()];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--sink", "kafka://broker:9092"], "--sink"),
        (vec!["--sink", "http://"], "--sink"),
        (vec!["--sink", "file://relative/path"], "--sink"),
        (vec!["--sink", "stdout", "--parse", "regex:(?P<x"], "--parse"),
        (vec!["--sink", "stdout", "--parse", "yaml"], "--parse"),
        (
            vec!["--sink", "stdout", "--label-from-env", "pod=NO_SUCH_VAR"],
            "NO_SUCH_VAR",
        ),
        (vec!["--sink", "stdout", "--format", "json-array"], "--format"),
        (vec![], "--sink"),
        (vec!["--config", &bad_config], "batch_size"),
    ];
    for (extra, needle) in cases {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        let (status, _, stderr) = Proc::spawn(BIN, &args, &[]).finish();
        assert_eq!(status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?} should name {needle}: {stderr}");
    }
    let (status, _, stderr) = Proc::spawn(
        BIN,
        &["--follow", &pattern, "--state-dir", &unwritable, "--sink", "stdout"],
        &[],
    )
    .finish();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("--state-dir") && stderr.contains("plain-file"),
        "{stderr}"
    );
    let (status, _, stderr) = Proc::spawn(BIN, &["--follow", &pattern, "--sink", "stdout"], &[]).finish();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--state-dir"), "{stderr}");
}

#[test]
fn on_reject_stop_exits_1_without_acknowledging_the_batch() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    sink.reject_containing(Some(b"POISON"));
    let mut shipper = Shipper::following(&d, &sink.url("/"), &["--on-reject", "stop"]);
    append(&log, (0..50).map(line));
    sink.wait_records(50);
    let acked = fs::metadata(&log).unwrap().len();
    append(&log, ["POISON pill".to_owned()]);
    let (status, _) = shipper.proc.wait_exit(podkit_testkit::PATIENCE);
    let stderr = shipper.proc.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--on-reject stop"), "{stderr}");
    // The rejected line is read again after a restart.
    assert_eq!(checkpoint_offset(&d.state, "log-shipper", &log), acked);
}

#[test]
fn sigterm_with_a_sink_down_ends_within_the_grace_period_and_keeps_the_lines() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    let url = sink.url("/");
    let shipper = Shipper::following(&d, &url, &[]);
    append(&log, (0..50).map(line));
    sink.wait_records(50);
    let acked = fs::metadata(&log).unwrap().len();
    sink.set_mode(podkit_testkit::sink::Mode::Fail {
        status: 503,
        retry_after: None,
    });
    append(&log, (50..100).map(line));
    sink.wait_until("a failed attempt", |s| s.failed >= 1);
    // The 10 s grace period: the sink gives up retrying shortly before it ends.
    let started = std::time::Instant::now();
    let stderr = shipper.stop_ok();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(stderr.contains("shipped again after a restart"), "{stderr}");
    assert_eq!(checkpoint_offset(&d.state, "log-shipper", &log), acked);
    // After a restart the undelivered lines arrive, once.
    sink.set_mode(podkit_testkit::sink::Mode::Accept);
    let shipper = Shipper::following(&d, &url, &[]);
    wait_delivered(&sink, 100).assert_once(0..100);
    shipper.stop_ok();
}

#[test]
fn start_at_end_skips_what_the_file_held_at_the_first_start() {
    let d = Dirs::new();
    let log = d.app_log();
    append(&log, (0..10).map(line));
    let sink = Sink::keeping_bodies();
    let url = sink.url("/");
    let shipper = Shipper::following(&d, &url, &["--start-at", "end"]);
    append(&log, (10..15).map(line));
    sink.wait_records(5);
    shipper.stop_ok();
    // The checkpoint wins at the next start: what came meanwhile is shipped.
    append(&log, (15..20).map(line));
    let shipper = Shipper::following(&d, &url, &["--start-at", "end"]);
    let got = wait_delivered(&sink, 10);
    got.assert_once(10..20);
    assert_eq!(got.counts.len(), 10, "nothing before the first start");
    shipper.stop_ok();
}

#[test]
fn https_sinks_verify_the_server_against_the_given_ca() {
    let d = Dirs::new();
    let log = d.app_log();
    append(&log, (0..100).map(line));
    let podkit_testkit::tls::TestCa { ca_pem: ca, server, .. } =
        podkit_testkit::tls::TestCa::new(d.state.parent().unwrap());
    let sink = Sink::start_with(podkit_testkit::sink::SinkOptions {
        keep: podkit_testkit::sink::Keep::Bodies,
        tls: Some(server),
        ..Default::default()
    });
    let url = sink.url("/ingest");
    assert!(url.starts_with("https://"));
    let (pattern, ca) = (Dirs::s(&log), Dirs::s(&ca));

    // Without the CA the certificate is not trusted: nothing is delivered,
    // and the failure says why.
    let mut untrusting = Shipper::start(
        &[
            "--follow",
            &pattern,
            "--no-checkpoint",
            "--on-reject",
            "drop",
            "--sink",
            &url,
        ],
        &[],
    );
    let warning = untrusting.proc.wait_for_line("Sink failed; retrying");
    assert!(warning.contains("TLS handshake"), "{warning}");
    assert_eq!(sink.stats().requests, 0);
    untrusting.stop_ok();

    // With it (the env twin here), everything arrives.
    let state = Dirs::s(&d.state);
    let shipper = Shipper::start(
        &["--follow", &pattern, "--state-dir", &state, "--sink", &url],
        &[("LOG_SHIPPER_TLS_CA_FILE", &ca)],
    );
    wait_delivered(&sink, 100).assert_once(0..100);
    shipper.stop_ok();

    // A CA file that is not PEM is a configuration error naming the flag.
    let bad = d.state.parent().unwrap().join("bad.pem");
    fs::write(&bad, "not a certificate").unwrap();
    let bad = Dirs::s(&bad);
    let (status, _, stderr) = Proc::spawn(
        BIN,
        &[
            "--follow",
            &pattern,
            "--no-checkpoint",
            "--sink",
            &url,
            "--tls-ca-file",
            &bad,
        ],
        &[],
    )
    .finish();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("--tls-ca-file") && stderr.contains("bad.pem"),
        "{stderr}"
    );
}

#[test]
fn a_sink_that_closes_the_connection_after_each_answer_gets_every_batch() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::start_with(podkit_testkit::sink::SinkOptions {
        keep: podkit_testkit::sink::Keep::Bodies,
        close_after_answer: true,
        ..Default::default()
    });
    let shipper = Shipper::following(&d, &sink.url("/cgi-bin/ingest"), &["--batch-max-lines", "50"]);
    for chunk in 0..5 {
        append(&log, (chunk * 100..(chunk + 1) * 100).map(line));
        sink.wait_records((chunk + 1) * 100);
    }
    sink.received().assert_once(0..500);
    assert!(sink.requests().len() >= 10);
    assert_eq!(sink.stats().failed, 0);
    assert_eq!(
        shipper.metric("podkit_log_shipper_requests_failed_total{sink=\"http\"}"),
        Some(0.0),
        "reconnecting is not a failure"
    );
    shipper.stop_ok();
}
