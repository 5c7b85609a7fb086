//! Multiline records with the real binary: Java stack traces joined into one
//! record each, across a restart that happens while a trace is half written
//! (the checkpoint stays at the trace's first line, so it arrives whole,
//! once), the flush timeout that ships the last record of a quiet file and
//! never a line whose CRI pieces are still unread.

mod support;

use podkit_testkit::sink::{Mode, Sink};
use podkit_testkit::wait_until;
use support::*;

/// Record `n`: a log line, an exception and two frames (four lines).
fn trace(n: u64) -> Vec<String> {
    vec![
        format!("2026-12-06 02:16:08 ERROR request {n} failed"),
        format!("java.lang.IllegalStateException: boom {n}"),
        format!("\tat com.example.App.handle(App.java:{n})"),
        "\tat com.example.App.main(App.java:3)".to_owned(),
    ]
}

/// The records of `trace(n)` as the rule joins them: the log line alone,
/// then the exception with its frames.
fn records(n: u64) -> [String; 2] {
    let t = trace(n);
    [t[0].clone(), t[1..].join("\n")]
}

fn messages(sink: &Sink) -> Vec<String> {
    sink.received_records()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r).unwrap();
            v["message"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn bytes_of(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

/// The shipper joining Java traces of `d`'s `app.log`, shipping to `sink`.
fn start(d: &Dirs, sink: &Sink, extra: &[&str]) -> Shipper {
    let mut args = vec!["--multiline", "java"];
    args.extend_from_slice(extra);
    Shipper::following(d, &sink.url("/"), &args)
}

#[test]
fn a_restart_mid_trace_resumes_at_the_record_boundary() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    // No flush while the test runs: the half-written trace must wait for
    // its other lines, across the restart.
    let extra = ["--multiline-flush-timeout", "1h"];

    let mut before: Vec<String> = (0..20).flat_map(trace).collect();
    let half: Vec<String> = trace(20)[..3].to_vec();
    before.extend(half.iter().cloned());
    append(&log, before.iter().cloned());
    let shipper = start(&d, &sink, &extra);
    // Records 0..19 are complete, and so is record 20's log line (its
    // exception started after it); the exception itself is still open.
    sink.wait_records(41);
    shipper.stop_ok();
    let exception_start = bytes_of(&before) - bytes_of(&half[1..]);
    assert_eq!(
        checkpoint_offset(&d.state, "log-shipper", &log),
        exception_start,
        "the checkpoint lies at the first line of the open trace"
    );
    assert_eq!(sink.records(), 41, "the open trace was not shipped in part");

    append(&log, trace(20)[3..].iter().cloned().chain((21..40).flat_map(trace)));
    let shipper = start(&d, &sink, &extra);
    // Everything but record 39's exception, which waits for a next record.
    sink.wait_records(79);
    append(&log, ["2026-12-06 02:16:09 INFO done".to_owned()]);
    sink.wait_records(80);
    shipper.stop_ok();

    let got = messages(&sink);
    let want: Vec<String> = (0..40).flat_map(records).collect();
    assert_eq!(got, want, "every record whole, once, in order");
}

#[test]
fn the_last_record_of_a_quiet_file_is_flushed() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    let shipper = start(&d, &sink, &[]);
    append(&log, (0..3).flat_map(trace));
    // Nothing follows the last trace: only the flush timeout (1 s by
    // default) can tell that it ended.
    sink.wait_records(6);
    let got = messages(&sink);
    let want: Vec<String> = (0..3).flat_map(records).collect();
    assert_eq!(got, want);
    wait_until("the checkpoint to cover the flushed record", || {
        checkpoint_offset(&d.state, "log-shipper", &log) == std::fs::metadata(&log).unwrap().len()
    });
    shipper.stop_ok();
}

/// Container lines cut into CRI pieces, a file long enough to take several
/// reads (some end between two pieces of a line), a sink that holds the
/// pipeline up, and a flush timeout far shorter than all that: no line
/// leaves in parts, since its file still had bytes to read.
#[test]
fn cri_pieces_across_reads_are_never_flushed_apart() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    let t = "2026-12-06T02:16:08.000000001Z";
    let n = 50_000;
    append(
        &log,
        (0..n).flat_map(|i| {
            [
                format!("{t} stdout P line {i:06} "),
                format!("{t} stdout P {} ", "x".repeat(40)),
                format!("{t} stdout F end"),
            ]
        }),
    );
    // The sink refuses at first: the shipper stops reading, records open.
    sink.set_mode(Mode::Fail {
        status: 503,
        retry_after: None,
    });
    let shipper = Shipper::following(
        &d,
        &sink.url("/"),
        &[
            "--container-format",
            "cri",
            "--multiline-flush-timeout",
            "1ms",
            "--retry-max-delay",
            "100ms",
        ],
    );
    sink.wait_until("refused attempts", |s| s.failed >= 5);
    sink.set_mode(Mode::Accept);
    wait_until("the checkpoint to cover the file", || {
        checkpoint_offset(&d.state, "log-shipper", &log) == std::fs::metadata(&log).unwrap().len()
    });
    shipper.stop_ok();
    let got = messages(&sink);
    assert_eq!(got.len(), n, "one record per line");
    let want: Vec<String> = (0..n).map(|i| format!("line {i:06} {} end", "x".repeat(40))).collect();
    assert_eq!(got, want);
}

#[test]
fn limits_split_a_record_and_count_it() {
    let d = Dirs::new();
    let log = d.app_log();
    let sink = Sink::keeping_bodies();
    let shipper = start(
        &d,
        &sink,
        &["--multiline-max-lines", "3", "--multiline-flush-timeout", "100ms"],
    );
    let mut lines = vec!["Exception: long".to_owned()];
    lines.extend((0..7).map(|i| format!("\tat frame{i}")));
    append(&log, lines.iter().cloned());
    sink.wait_records(3);
    let got = messages(&sink);
    assert_eq!(
        got,
        [lines[..3].join("\n"), lines[3..6].join("\n"), lines[6..].join("\n")]
    );
    wait_until("the split to be counted", || {
        shipper.metric("podkit_log_shipper_records_split_total{source=\"default\"}") == Some(2.0)
    });
    shipper.stop_ok();
}

/// Bad multiline settings exit 64 naming the flag.
#[test]
fn bad_settings_name_the_flag() {
    let d = Dirs::new();
    let path = Dirs::s(&d.app_log());
    let state = Dirs::s(&d.state);
    for (extra, needle) in [
        (&["--multiline", "ruby"][..], "--multiline"),
        (&["--multiline-start", "("][..], "--multiline-start"),
        (&["--multiline", "java", "--multiline-start", "^x"][..], "--multiline"),
        (&["--multiline-max-lines", "0"][..], "--multiline-max-lines"),
        (&["--container-format", "podman"][..], "--container-format"),
    ] {
        let mut a = vec!["--follow", &path, "--state-dir", &state, "--sink", "stdout"];
        a.extend_from_slice(extra);
        let out = std::process::Command::new(BIN).args(&a).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
}
