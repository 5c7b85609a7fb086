//! The platform sinks with the real binary against the strict stand-ins of
//! `podkit_testkit::platform`: Loki, Elasticsearch `_bulk` and an OTLP/HTTP
//! collector. Each test checks what the server holds against what was
//! written: the wire format, the platform's error answers and partial
//! failures (dead-lettered with the reason, or counted), an outage (nothing
//! lost, delivery resumes) and kill -9 with a restart (nothing lost;
//! duplicates only of lines the checkpoint did not cover).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use podkit_testkit::platform::{Entry, Mode, Platform, PlatformServer};
use podkit_testkit::{wait_until, wait_until_progressing};
use support::*;

/// What the server holds, as the sequence numbers of [`line`]s.
fn received(entries: &[Entry]) -> Received {
    Received::from_entries(entries)
}

/// A shipper into `server`, with `extra` after the follow, state and sink flags.
fn start(d: &Dirs, server: &PlatformServer, extra: &[&str]) -> Shipper {
    Shipper::following(d, &server.sink_url(), extra)
}

fn json_line(ts: &str, level: &str, msg: &str) -> String {
    format!(r#"{{"ts":"{ts}","level":"{level}","msg":"{msg}","n":7}}"#)
}

/// The dead-letter entries of a sink, parsed.
fn dead_letters(d: &Dirs, sink: &str) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(d.state.join(format!("dead-letter/{sink}.ndjson"))).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn loki_pushes_streams_in_time_order_with_metadata_tenant_and_gzip() {
    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    let shipper = start(
        &d,
        &loki,
        &[
            "--label",
            "app=web",
            "--label",
            "k8s.pod=web-1",
            "--loki-tenant",
            "team-a",
            "--compression",
            "gzip",
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
        ],
    );
    // Out of time order within the file: the push puts them in order.
    append(
        &d.app_log(),
        [
            json_line("2026-12-06T10:00:02Z", "info", "second"),
            json_line("2026-12-06T10:00:01Z", "warn", "first"),
            "not json \u{e9}".to_owned(),
        ],
    );
    loki.wait_entries(3);
    assert_eq!(loki.malformed(), Vec::<String>::new());
    let entries = loki.entries();
    let labels = BTreeMap::from([("app".into(), "web".into()), ("k8s_pod".into(), "web-1".into())]);
    assert!(entries.iter().all(|e| e.labels == labels), "{entries:?}");
    let first = entries.iter().find(|e| e.line.contains("first")).unwrap();
    assert_eq!(first.time_ns, 1_796_551_201_000_000_000);
    assert_eq!(first.fields["level"], "warn");
    assert_eq!(first.fields["n"], "7");
    assert_eq!(first.fields["file"], Dirs::s(&d.app_log()));
    assert!(
        !first.fields.contains_key("ts"),
        "the timestamp field is the entry's time"
    );
    let plain = entries.iter().find(|e| e.line.starts_with("not json")).unwrap();
    assert_eq!(plain.line, "not json \u{e9}");
    let headers = loki.request_headers();
    let has = |name: &str, value: &str| headers[0].iter().any(|(k, v)| k == name && v == value);
    assert!(
        has("x-scope-orgid", "team-a") && has("content-encoding", "gzip") && has("content-type", "application/json")
    );
    shipper.stop_ok();
}

#[test]
fn loki_out_of_order_and_too_old_entries_are_dead_lettered_with_the_reason() {
    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    loki.loki_ordered(true);
    let shipper = start(
        &d,
        &loki,
        &["--parse", "json", "--timestamp-field", "ts", "--label", "app=a"],
    );
    append(&d.app_log(), [json_line("2026-12-06T10:00:10Z", "info", "new")]);
    loki.wait_entries(1);
    append(&d.app_log(), [json_line("2026-12-06T10:00:05Z", "info", "late")]);
    loki.wait_until("the late entry refused", |s| s.refused == 1);
    wait_until("the dead letter", || !dead_letters(&d, "loki").is_empty());
    let dead = dead_letters(&d, "loki");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("entry out of order"),
        "{dead:?}"
    );
    assert_eq!(dead[0]["sink"], "loki");
    assert!(
        dead[0]["request"]["streams"][0]["values"][0][1]
            .as_str()
            .unwrap()
            .contains("late")
    );
    // Delivery goes on.
    append(&d.app_log(), [json_line("2026-12-06T10:00:11Z", "info", "after")]);
    loki.wait_entries(2);
    // Older than Loki's reject_old_samples_max_age.
    loki.loki_reject_older_than(Some(1_796_000_000_000_000_000));
    append(&d.app_log(), [json_line("2026-11-30T00:00:00Z", "info", "ancient")]);
    wait_until("the second dead letter", || dead_letters(&d, "loki").len() == 2);
    let dead = dead_letters(&d, "loki");
    assert!(
        dead[1]["reason"].as_str().unwrap().contains("timestamp too old"),
        "{dead:?}"
    );
    append(&d.app_log(), [json_line("2026-12-06T10:00:12Z", "info", "last")]);
    loki.wait_entries(3);
    wait_until("the dead-letter metric", || {
        shipper.metric("podkit_log_shipper_lines_dead_lettered_total{sink=\"loki\"}") == Some(2.0)
    });
    shipper.stop_ok();
    assert_eq!(
        checkpoint_offset(&d.state, "log-shipper", &d.app_log()),
        fs::metadata(d.app_log()).unwrap().len(),
        "a dead-lettered push is acknowledged"
    );
}

#[test]
fn elasticsearch_bulk_documents_item_errors_and_retries_of_failed_items_only() {
    let d = Dirs::new();
    let es = PlatformServer::start(Platform::Elasticsearch);
    es.es_fail_items("MAPPING-BAD", 400, None);
    es.es_fail_items("BUSY", 429, Some(2));
    let shipper = start(
        &d,
        &es,
        &[
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
            "--label",
            "pod=web-1",
            "--es-index",
            "logs-test-%Y.%m.%d",
            "--retry-max-delay",
            "100ms",
        ],
    );
    append(
        &d.app_log(),
        [
            json_line("2026-12-05T23:59:59.5Z", "info", "one"),
            json_line("2026-12-06T00:00:00Z", "info", "MAPPING-BAD"),
            json_line("2026-12-06T00:00:01Z", "info", "BUSY"),
            json_line("2026-12-06T00:00:02Z", "info", "four"),
        ],
    );
    es.wait_entries(3);
    wait_until("the dead letter", || !dead_letters(&d, "elasticsearch").is_empty());
    assert_eq!(es.malformed(), Vec::<String>::new());
    let entries = es.entries();
    let msgs: Vec<&str> = entries.iter().map(|e| e.fields["msg"].as_str()).collect();
    assert_eq!(msgs, ["one", "four", "BUSY"], "the failed item alone was sent again");
    assert_eq!(entries[0].labels["_index"], "logs-test-2026.12.05");
    assert_eq!(entries[1].labels["_index"], "logs-test-2026.12.06");
    assert_eq!(entries[0].fields["@timestamp"], "2026-12-05T23:59:59.500Z");
    assert_eq!(entries[0].fields["pod"], "web-1");
    assert_eq!(entries[0].fields["level"], "info");
    let dead = dead_letters(&d, "elasticsearch");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["document"]["msg"], "MAPPING-BAD");
    assert!(dead[0]["action"]["create"]["_index"].is_string());
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("mapper_parsing_exception"),
        "{dead:?}"
    );
    wait_until("the metrics", || {
        shipper.metric("podkit_log_shipper_lines_dead_lettered_total{sink=\"elasticsearch\"}") == Some(1.0)
            && shipper.metric("podkit_log_shipper_lines_sent_total{sink=\"elasticsearch\"}") == Some(3.0)
    });
    shipper.stop_ok();
}

#[test]
fn opensearch_data_streams_take_create_with_timestamp() {
    let d = Dirs::new();
    let es = PlatformServer::start(Platform::Elasticsearch);
    es.es_data_streams(true);
    let url = es.sink_url().replace("elasticsearch:", "opensearch:");
    let shipper = Shipper::following(&d, &url, &["--es-index", "logs-app-default", "--compression", "gzip"]);
    append(&d.app_log(), (0..500).map(line));
    wait_delivered(&es, 500).assert_once(0..500);
    assert!(es.entries().iter().all(|e| e.labels["_index"] == "logs-app-default"));
    assert_eq!(es.stats().refused, 0);
    shipper.stop_ok();
}

#[test]
fn otlp_resource_logs_with_k8s_attributes_severity_and_partial_success() {
    let d = Dirs::new();
    let otlp = PlatformServer::start(Platform::Otlp);
    otlp.otlp_reject_containing(Some("DROPME"));
    let shipper = start(
        &d,
        &otlp,
        &[
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
            "--label",
            "pod=web-1",
            "--label",
            "namespace=shop",
            "--label",
            "container=app",
            "--label",
            "node=n1",
            "--label",
            "team=a",
        ],
    );
    append(
        &d.app_log(),
        [
            json_line("2026-12-06T10:00:01Z", "ERROR", "boom"),
            json_line("2026-12-06T10:00:02Z", "info", "DROPME"),
            "plain line".to_owned(),
        ],
    );
    otlp.wait_until("the records", |s| s.entries == 2 && s.refused == 1);
    assert_eq!(otlp.malformed(), Vec::<String>::new());
    let entries = otlp.entries();
    let resource = BTreeMap::from([
        ("k8s.pod.name".into(), "web-1".into()),
        ("k8s.namespace.name".into(), "shop".into()),
        ("k8s.container.name".into(), "app".into()),
        ("k8s.node.name".into(), "n1".into()),
        ("team".into(), "a".into()),
    ]);
    assert!(entries.iter().all(|e| e.labels == resource), "{entries:?}");
    let boom = &entries[0];
    assert!(boom.line.contains("boom"));
    assert_eq!(boom.time_ns, 1_796_551_201_000_000_000);
    assert_eq!(boom.fields["severityText"], "ERROR");
    assert_eq!(boom.fields["severityNumber"], "17");
    assert_eq!(boom.fields["n"], "7");
    assert_eq!(boom.fields["log.file.path"], Dirs::s(&d.app_log()));
    assert!(boom.fields["observedTimeUnixNano"].parse::<u128>().unwrap() > 0);
    assert_eq!(entries[1].line, "plain line");
    assert_eq!(entries[1].time_ns, 0, "no event time: unknown, as the spec says");
    assert_eq!(entries[1].fields["severityNumber"], "0");
    wait_until("the partial-success metric", || {
        shipper.metric("podkit_log_shipper_records_dropped_by_sink_total{sink=\"otlp\"}") == Some(1.0)
    });
    let stderr = shipper.stop_ok();
    assert!(stderr.contains("dropped some of its records"), "{stderr}");
}

#[test]
fn otlp_final_statuses_are_rejected_and_retryable_ones_retried() {
    let d = Dirs::new();
    let otlp = PlatformServer::start(Platform::Otlp);
    otlp.set_mode(Mode::Fail {
        status: 500,
        retry_after: None,
    });
    let shipper = start(&d, &otlp, &["--on-reject", "drop"]);
    append(&d.app_log(), (0..10).map(line));
    wait_until("the batch dropped (500 is final for OTLP)", || {
        shipper.metric("podkit_log_shipper_lines_dropped_total{sink=\"otlp\"}") == Some(10.0)
    });
    otlp.set_mode(Mode::Fail {
        status: 503,
        retry_after: None,
    });
    append(&d.app_log(), (10..20).map(line));
    otlp.wait_until("a retried 503", |s| s.failed >= 3);
    otlp.set_mode(Mode::Accept);
    wait_delivered(&otlp, 10).assert_once(10..20);
    shipper.stop_ok();
}

/// An outage, then kill -9 and a restart, for one platform: every line
/// arrives, and only lines the checkpoint did not cover come twice.
fn outage_and_kill_9(platform: Platform, extra: &[&str]) {
    let d = Dirs::new();
    let server = PlatformServer::start(platform);
    let mut args = vec!["--retry-max-delay", "200ms", "--batch-max-lines", "500"];
    args.extend_from_slice(extra);
    let shipper = start(&d, &server, &args);
    let total = 20_000;
    let app = write_app_log(&d.logs, total, 10_000, Rotation::None, Duration::MAX);

    // An outage: nothing is stored, nothing is lost.
    server.wait_entries(total / 10);
    server.set_mode(Mode::Fail {
        status: 503,
        retry_after: None,
    });
    server.wait_until("failed requests", |s| s.failed >= 3);
    server.set_mode(Mode::Accept);
    server.wait_entries(total / 3);

    shipper.kill();
    let checkpointed = checkpoint_offset(&d.state, "log-shipper", &d.app_log()) / LINE_LEN;
    let shipper = start(&d, &server, &args);
    let written = app.join();
    // A loaded machine works through the backlog slowly: only a stall fails.
    wait_until_progressing(
        "every line at the server",
        || server.stats().entries,
        || server.received().missing(0..written).is_empty(),
    );
    assert_eq!(server.malformed(), Vec::<String>::new());
    let got = server.received();
    eprintln!(
        "{platform:?}: {written} lines written, {} stored, {} duplicated (checkpoint at the kill: line {checkpointed})",
        server.stats().entries,
        got.duplicated().len()
    );
    got.assert_nothing_else().assert_redelivered_only_from(checkpointed);
    shipper.stop_ok();
}

#[test]
fn loki_outage_and_kill_9_lose_nothing() {
    outage_and_kill_9(Platform::Loki, &["--compression", "gzip"]);
}

#[test]
fn elasticsearch_outage_and_kill_9_lose_nothing() {
    outage_and_kill_9(Platform::Elasticsearch, &[]);
}

#[test]
fn otlp_outage_and_kill_9_lose_nothing() {
    outage_and_kill_9(Platform::Otlp, &["--compression", "gzip"]);
}

#[test]
fn platform_sink_mistakes_exit_64_naming_the_flag_or_key() {
    let d = Dirs::new();
    let log = Dirs::s(&d.app_log());
    for (args, needle) in [
        (
            vec!["--sink", "loki:loki:3100"],
            "--sink: `loki:loki:3100` is not loki:http://",
        ),
        (
            vec!["--sink", "elasticsearch:http://es:9200", "--es-index", "Logs"],
            "--es-index:",
        ),
        (
            vec!["--sink", "otlp:http://c:4318", "--es-action", "upsert"],
            "--es-action",
        ),
    ] {
        let mut all = vec!["--follow", &log, "--no-checkpoint", "--on-reject", "drop"];
        all.extend_from_slice(&args);
        let mut proc = podkit_testkit::Proc::spawn(BIN, &all, &[]);
        let (status, _) = proc.wait_exit(podkit_testkit::PATIENCE);
        let stderr = proc.stderr();
        assert_eq!(status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let config = d.logs.join("c.toml");
    fs::write(
        &config,
        "[[sink]]\nurl = \"loki:http://l:3100\"\nloki_tennant = \"a\"\n",
    )
    .unwrap();
    let mut proc = podkit_testkit::Proc::spawn(
        BIN,
        &["--follow", &log, "--no-checkpoint", "--config", &Dirs::s(&config)],
        &[],
    );
    let (status, _) = proc.wait_exit(podkit_testkit::PATIENCE);
    let stderr = proc.stderr();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("loki_tennant"), "{stderr}");
}

#[test]
fn loki_pushes_hold_at_most_max_streams_streams() {
    at_most_two_streams_per_push(|url| format!("sink = [\"{url}\"]\nloki-max-streams = 2\n"));
}

/// Three sources of 100 lines each (`app` = a, b, c) shipped to a Loki
/// stand-in by a config file whose sink part `sink` writes for the
/// stand-in's URL, with at most 2 streams per push: no push holds more, and
/// each app's lines arrive once each, in file order. The stand-in, for more
/// checks.
fn at_most_two_streams_per_push(sink: impl FnOnce(&str) -> String) -> PlatformServer {
    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    let config = d.logs.join("../shipper.toml");
    let mut toml = format!(
        "state-dir = \"{}\"\nbatch-timeout = \"1s\"\n{}",
        Dirs::s(&d.state),
        sink(&loki.sink_url())
    );
    for app in ["a", "b", "c"] {
        toml.push_str(&format!(
            "[[source]]\nname = \"{app}\"\nfollow = \"{}\"\nlabels = {{ app = \"{app}\" }}\n",
            Dirs::s(&d.logs.join(format!("{app}.log")))
        ));
        append(&d.logs.join(format!("{app}.log")), (0..100).map(line));
    }
    fs::write(&config, toml).unwrap();
    let shipper = Shipper::start(&["--config", &Dirs::s(&config)], &[]);
    let stats = loki.wait_entries(300);
    assert_eq!(loki.malformed(), Vec::<String>::new());
    assert!(stats.max_groups <= 2, "{stats:?}");
    for app in ["a", "b", "c"] {
        let lines: Vec<Entry> = loki.entries().into_iter().filter(|e| e.labels["app"] == app).collect();
        eprintln!("the records of app {app}:");
        received(&lines).assert_once(0..100);
        let seqs: Vec<u64> = lines.iter().filter_map(|e| parse(&e.line)).collect();
        assert!(seqs.is_sorted(), "{app}: in file order");
    }
    shipper.stop_ok();
    loki
}

#[test]
fn elasticsearch_items_that_keep_failing_are_dead_lettered_alone_after_retry_max() {
    let d = Dirs::new();
    let es = PlatformServer::start(Platform::Elasticsearch);
    es.es_fail_items("ALWAYS-BUSY", 429, None);
    let shipper = start(
        &d,
        &es,
        &[
            "--parse",
            "json",
            "--retry-max",
            "2",
            "--retry-max-delay",
            "50ms",
            "--compression",
            "gzip",
        ],
    );
    append(
        &d.app_log(),
        [
            json_line("2026-12-06T00:00:00Z", "info", "ok1"),
            json_line("2026-12-06T00:00:01Z", "info", "ALWAYS-BUSY"),
            json_line("2026-12-06T00:00:02Z", "info", "ok2"),
        ],
    );
    wait_until("the dead letter", || !dead_letters(&d, "elasticsearch").is_empty());
    let dead = dead_letters(&d, "elasticsearch");
    assert_eq!(dead.len(), 1, "only the failing item: {dead:?}");
    assert_eq!(dead[0]["document"]["msg"], "ALWAYS-BUSY");
    assert!(dead[0]["reason"].as_str().unwrap().contains("--retry-max"), "{dead:?}");
    let msgs: Vec<String> = es.entries().iter().map(|e| e.fields["msg"].clone()).collect();
    assert_eq!(msgs, ["ok1", "ok2"]);
    assert_eq!(es.malformed(), Vec::<String>::new());
    shipper.stop_ok();
}

/// A header of the first request a server got.
fn first_header(server: &PlatformServer, name: &str) -> Option<String> {
    let headers = server.request_headers();
    headers.first()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The binary request of a dead-letter entry (`request_protobuf`, base64).
fn dead_request(entry: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    let text = entry["request_protobuf"].as_str().expect("a protobuf request");
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

#[test]
fn loki_protobuf_pushes_streams_in_time_order_with_structured_metadata_and_tenant() {
    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    let shipper = start(
        &d,
        &loki,
        &[
            "--loki-encoding",
            "protobuf",
            "--label",
            "app=web",
            "--label",
            "k8s.pod=web \"1\"\\",
            "--loki-tenant",
            "team-a",
            // Applies to the other sinks; a protobuf push is snappy alone.
            "--compression",
            "gzip",
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
        ],
    );
    append(
        &d.app_log(),
        [
            json_line("2026-12-06T10:00:02.25Z", "info", "second"),
            json_line("2026-12-06T10:00:01Z", "warn", "first"),
            "not json \u{e9}".to_owned(),
        ],
    );
    loki.wait_entries(3);
    assert_eq!(loki.malformed(), Vec::<String>::new());
    let entries = loki.entries();
    let labels = BTreeMap::from([("app".into(), "web".into()), ("k8s_pod".into(), "web \"1\"\\".into())]);
    assert!(entries.iter().all(|e| e.labels == labels), "{entries:?}");
    let lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    let (first, second) = (
        lines.iter().position(|l| l.contains("first")).unwrap(),
        lines.iter().position(|l| l.contains("second")).unwrap(),
    );
    assert!(first < second, "a stream's entries in time order: {lines:?}");
    let first = &entries[first];
    assert_eq!(first.time_ns, 1_796_551_201_000_000_000);
    assert_eq!(entries[second].time_ns, 1_796_551_202_250_000_000);
    assert_eq!(first.fields["level"], "warn");
    assert_eq!(first.fields["msg"], "first");
    assert_eq!(first.fields["n"], "7");
    assert_eq!(first.fields["file"], Dirs::s(&d.app_log()));
    assert!(
        !first.fields.contains_key("ts"),
        "the timestamp field is the entry's time"
    );
    assert!(entries.iter().any(|e| e.line == "not json \u{e9}"));
    assert_eq!(
        first_header(&loki, "content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(
        first_header(&loki, "content-encoding"),
        None,
        "snappy only, no gzip on top"
    );
    assert_eq!(first_header(&loki, "x-scope-orgid").as_deref(), Some("team-a"));
    let (status, stderr) = shipper.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn loki_protobuf_refusals_are_dead_lettered_with_the_reason_and_the_push() {
    use podkit_testkit::platform::loki_proto::{PushRequest, parse_selector};
    use prost::Message as _;

    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    loki.loki_ordered(true);
    let shipper = start(
        &d,
        &loki,
        &[
            "--loki-encoding",
            "protobuf",
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
            "--label",
            "app=a",
        ],
    );
    append(&d.app_log(), [json_line("2026-12-06T10:00:10Z", "info", "new")]);
    loki.wait_entries(1);
    append(&d.app_log(), [json_line("2026-12-06T10:00:05Z", "info", "late")]);
    wait_until("the dead letter", || !dead_letters(&d, "loki").is_empty());
    let dead = dead_letters(&d, "loki");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("entry out of order"),
        "{dead:?}"
    );
    assert_eq!(dead[0]["sink"], "loki");
    let push = PushRequest::decode(&dead_request(&dead[0])[..]).unwrap();
    assert_eq!(parse_selector(&push.streams[0].labels).unwrap()["app"], "a");
    assert!(push.streams[0].entries[0].line.contains("late"));
    // Retried answers are retried, then delivery goes on.
    loki.set_mode(Mode::Fail {
        status: 503,
        retry_after: None,
    });
    append(&d.app_log(), [json_line("2026-12-06T10:00:11Z", "info", "after")]);
    loki.wait_until("failed requests", |s| s.failed >= 2);
    loki.set_mode(Mode::Accept);
    loki.wait_entries(2);
    assert_eq!(loki.malformed(), Vec::<String>::new());
    wait_until("the dead-letter metric", || {
        shipper.metric("podkit_log_shipper_lines_dead_lettered_total{sink=\"loki\"}") == Some(1.0)
    });
    let (status, stderr) = shipper.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn loki_protobuf_outage_and_kill_9_lose_nothing() {
    outage_and_kill_9(Platform::Loki, &["--loki-encoding", "protobuf"]);
}

#[test]
fn loki_protobuf_from_a_sink_table_holds_at_most_max_streams_streams() {
    let loki = at_most_two_streams_per_push(|url| {
        format!("[[sink]]\nurl = \"{url}\"\nloki_encoding = \"protobuf\"\nloki_max_streams = 2\n")
    });
    assert_eq!(
        first_header(&loki, "content-type").as_deref(),
        Some("application/x-protobuf")
    );
}

#[test]
fn otlp_protobuf_records_severity_partial_success_and_rejections() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message as _;

    let d = Dirs::new();
    let otlp = PlatformServer::start(Platform::Otlp);
    otlp.otlp_reject_containing(Some("DROPME"));
    let shipper = start(
        &d,
        &otlp,
        &[
            "--otlp-encoding",
            "protobuf",
            "--compression",
            "gzip",
            "--parse",
            "json",
            "--timestamp-field",
            "ts",
            "--label",
            "pod=web-1",
            "--label",
            "team=a",
        ],
    );
    append(
        &d.app_log(),
        [
            json_line("2026-12-06T10:00:01Z", "ERROR", "boom"),
            json_line("2026-12-06T10:00:02Z", "info", "DROPME"),
            "plain line".to_owned(),
        ],
    );
    otlp.wait_until("the records", |s| s.entries == 2 && s.refused == 1);
    assert_eq!(otlp.malformed(), Vec::<String>::new());
    let entries = otlp.entries();
    let resource = BTreeMap::from([("k8s.pod.name".into(), "web-1".into()), ("team".into(), "a".into())]);
    assert!(entries.iter().all(|e| e.labels == resource), "{entries:?}");
    let boom = &entries[0];
    assert!(boom.line.contains("boom"));
    assert_eq!(boom.time_ns, 1_796_551_201_000_000_000);
    assert_eq!(boom.fields["severityText"], "ERROR");
    assert_eq!(boom.fields["severityNumber"], "17");
    assert_eq!(boom.fields["n"], "7");
    assert_eq!(boom.fields["log.file.path"], Dirs::s(&d.app_log()));
    assert!(boom.fields["observedTimeUnixNano"].parse::<u128>().unwrap() > 0);
    assert_eq!(entries[1].line, "plain line");
    assert_eq!(entries[1].time_ns, 0, "no event time: unknown");
    assert_eq!(
        first_header(&otlp, "content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(first_header(&otlp, "content-encoding").as_deref(), Some("gzip"));
    wait_until("the partial-success metric", || {
        shipper.metric("podkit_log_shipper_records_dropped_by_sink_total{sink=\"otlp\"}") == Some(1.0)
    });
    // A final status: the request is dead-lettered with the reason.
    otlp.set_mode(Mode::Fail {
        status: 400,
        retry_after: None,
    });
    append(&d.app_log(), [json_line("2026-12-06T10:00:03Z", "info", "refused")]);
    wait_until("the dead letter", || !dead_letters(&d, "otlp").is_empty());
    let dead = dead_letters(&d, "otlp");
    assert!(dead[0]["reason"].as_str().unwrap().contains("400"), "{dead:?}");
    let request = ExportLogsServiceRequest::decode(&dead_request(&dead[0])[..]).unwrap();
    let body = &request.resource_logs[0].scope_logs[0].log_records[0].body;
    assert!(format!("{body:?}").contains("refused"), "{body:?}");
    otlp.set_mode(Mode::Accept);
    append(&d.app_log(), [json_line("2026-12-06T10:00:04Z", "info", "after")]);
    otlp.wait_entries(3);
    let (status, stderr) = shipper.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("dropped some of its records"), "{stderr}");
}
