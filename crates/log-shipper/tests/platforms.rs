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
    let d = Dirs::new();
    let loki = PlatformServer::start(Platform::Loki);
    let config = d.logs.join("../shipper.toml");
    let mut toml = format!(
        "state-dir = \"{}\"\nsink = [\"{}\"]\nloki-max-streams = 2\nbatch-timeout = \"1s\"\n",
        Dirs::s(&d.state),
        loki.sink_url()
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
    }
    shipper.stop_ok();
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
