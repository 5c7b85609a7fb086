//! Delivery guarantees with the real binary and a local HTTP sink, under
//! load: an app thread writes numbered lines at a steady rate while files
//! rotate, the shipper restarts or is killed, and the sink fails or stalls.
//! Every line must arrive; duplicates only where at-least-once allows them
//! (lines read but not yet checkpointed when the shipper was killed).
//!
//! Every wait is on an event: what the sink received, or the shipper's own
//! metrics (`lines_sent` and the bytes behind each file). The load is
//! modest by default so that the tests hold on a busy 2-core machine;
//! `PODKIT_SHIP_TEST_RATE`, `PODKIT_SHIP_TEST_SECONDS` and
//! `PODKIT_SHIP_TEST_ROTATE_MS` scale it up (50000, 10, 2000 is the full
//! scenario).

mod support;

use std::time::{Duration, Instant};

use podkit_testkit::sink::{Mode, Sink};
use podkit_testkit::wait_until;
use support::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Lines per second, seconds of writing, rotation period.
fn load() -> (u64, u64, Duration) {
    let rate = env_or("PODKIT_SHIP_TEST_RATE", 20_000);
    let seconds = env_or("PODKIT_SHIP_TEST_SECONDS", 4);
    let rotate = Duration::from_millis(env_or("PODKIT_SHIP_TEST_ROTATE_MS", 1000));
    (rate, seconds, rotate)
}

/// Waits until the shipper has delivered everything in the live file.
fn settle(shipper: &Shipper, d: &Dirs) {
    let behind = format!(
        "podkit_log_shipper_behind_bytes{{source=\"default\",file=\"{}\"}}",
        d.app_log().display()
    );
    wait_until("every line of the live file to be delivered", || {
        shipper.metric(&behind) == Some(0.0)
            && shipper.metric("podkit_log_shipper_lines_read_total{source=\"default\"}")
                == shipper.metric("podkit_log_shipper_lines_sent_total{sink=\"http\"}")
    });
}

fn report(what: &str, written: u64, got: &Received, extra: &str) {
    eprintln!(
        "{what}: written {written}, delivered {} distinct, duplicated {}{extra}",
        got.counts.len(),
        got.duplicated().len()
    );
}

/// Ends the sink's outage, then waits until every line written arrived, once.
/// Returns how long after the recovery the first record was accepted.
fn recover(what: &str, sink: &Sink, written: u64) -> Duration {
    let recovered = Instant::now();
    sink.set_mode(Mode::Accept);
    sink.wait_records(1);
    let resumed = recovered.elapsed();
    let got = wait_delivered(sink, written);
    report(
        what,
        written,
        &got,
        &format!(", first accepted {resumed:?} after recovery"),
    );
    got.assert_once(0..written);
    resumed
}

#[test]
fn rename_rotation_under_load_loses_and_duplicates_nothing() {
    let (rate, seconds, rotate) = load();
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    let shipper = Shipper::following(&d, &sink.url("/"), &[]);
    let app = write_app_log(&d.logs, rate * seconds, rate, Rotation::Rename, rotate);
    let written = app.join();
    let got = wait_delivered(&sink, written);
    report("rename", written, &got, "");
    got.assert_once(0..written).assert_nothing_else();
    shipper.stop_ok();
    assert_eq!(sink.records(), written, "nothing more after the drain");
}

#[test]
fn copytruncate_under_load_loses_only_what_the_rotation_destroys() {
    let (rate, seconds, rotate) = load();
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    let shipper = Shipper::following(&d, &sink.url("/"), &[]);
    let app = write_app_log(&d.logs, rate * seconds, rate, Rotation::CopyTruncate, rotate);
    let written = app.join();
    settle(&shipper, &d);
    let (live, copies) = on_disk(&d.logs);
    let got = Received::from_sink(&sink);
    let missing = got.missing(0..written);
    // What copytruncate destroys for a follower of app.log: lines it had not
    // read before the truncation (they survive only in the copy), and lines
    // written between the copy and the truncation (in no file at all).
    let only_in_copy = missing.iter().filter(|s| copies.contains(s)).count();
    let nowhere = missing
        .iter()
        .filter(|s| !copies.contains(s) && !live.contains(s))
        .count();
    report(
        "copytruncate",
        written,
        &got,
        &format!(
            ", destroyed by the rotation {} (only in a copy {only_in_copy}, in no file {nowhere}), fragments {}",
            missing.len(),
            got.other.len()
        ),
    );
    assert!(
        live.iter().all(|s| got.counts.contains_key(s)),
        "a line of the live file is missing"
    );
    assert!(
        missing.iter().all(|s| !live.contains(s)),
        "lost a line that is still in app.log"
    );
    assert!(got.duplicated().is_empty(), "duplicated: {:?}", got.duplicated());
    // A line cut by the truncation while the tailer read it arrives as a
    // fragment: a prefix of a written line, never anything else.
    assert!(
        got.other
            .iter()
            .all(|f| f.starts_with("seq=") && f.len() < line(0).len()),
        "not fragments of written lines: {:?}",
        &got.other[..got.other.len().min(5)]
    );
    shipper.stop_ok();
}

#[test]
fn sigterm_and_restart_mid_run_lose_and_duplicate_nothing() {
    let (rate, seconds, rotate) = load();
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    let url = sink.url("/");
    let shipper = Shipper::following(&d, &url, &[]);
    let total = rate * seconds;
    let app = write_app_log(&d.logs, total, rate, Rotation::Rename, rotate);
    sink.wait_records(total / 3);
    shipper.stop_ok();
    let at_stop = app.written();
    let shipper = Shipper::following(&d, &url, &[]);
    let written = app.join();
    assert!(at_stop < written, "the app was still writing at the restart");
    let got = wait_delivered(&sink, written);
    report("SIGTERM + restart", written, &got, "");
    got.assert_once(0..written);
    shipper.stop_ok();
    assert_eq!(sink.records(), written);
}

#[test]
fn kill_9_and_restart_duplicates_only_unacknowledged_lines() {
    let (rate, seconds, _) = load();
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    let url = sink.url("/");
    let shipper = Shipper::following(&d, &url, &[]);
    let total = rate * seconds;
    // No rotation: a line's offset is its number times the line length.
    let app = write_app_log(&d.logs, total, rate, Rotation::None, Duration::MAX);
    sink.wait_records(total / 3);
    shipper.kill();
    let checkpointed = checkpoint_offset(&d.state, "log-shipper", &d.app_log()) / LINE_LEN;
    let shipper = Shipper::following(&d, &url, &[]);
    let written = app.join();
    settle(&shipper, &d);
    let got = Received::from_sink(&sink);
    report(
        "kill -9 + restart",
        written,
        &got,
        &format!(", checkpointed at the kill: line {checkpointed}"),
    );
    assert!(got.missing(0..written).is_empty(), "lost {:?}", got.missing(0..written));
    got.assert_redelivered_only_from(checkpointed);
    shipper.stop_ok();
}

/// Generous: a debug build holding a tailer channel of 256 KiB reads and
/// two 1 MiB bodies per sink stays far below this.
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[test]
fn a_failing_sink_stops_reading_bounds_memory_and_resumes() {
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    sink.set_mode(Mode::Fail {
        status: 503,
        retry_after: None,
    });
    let shipper = Shipper::following(&d, &sink.url("/"), &[]);
    // Far more than fits in the shipper's buffers (about 40 MB).
    let total = 350_000;
    let app = write_app_log(&d.logs, total, 1_000_000, Rotation::None, Duration::MAX);
    let written = app.join();
    sink.wait_until("a few failed attempts", |s| s.failed >= 5);
    let rss = shipper.rss_kib();
    let read = shipper
        .metric("podkit_log_shipper_lines_read_total{source=\"default\"}")
        .unwrap_or(0.0) as u64;
    eprintln!("503: RSS {rss} KiB; read {read} of {written} lines, the rest waits on disk");
    assert!(rss < RSS_BOUND_KIB, "RSS {rss} KiB");
    assert!(read < written / 2, "reading should pause: read {read} of {written}");
    // The sink counts an attempt as failed when it answers; the shipper
    // counts the retry once it has read that answer, a moment later.
    podkit_testkit::wait_until("the shipper to count 5 retries", || {
        shipper
            .metric("podkit_log_shipper_retries_total{sink=\"http\"}")
            .unwrap_or(0.0)
            >= 5.0
    });

    let resumed = recover("503 then recovery", &sink, written);
    assert!(
        resumed < Duration::from_secs(5),
        "delivery resumed {resumed:?} after recovery"
    );
    shipper.stop_ok();
}

#[test]
fn a_stalling_sink_is_timed_out_and_retried_without_loss() {
    let d = Dirs::new();
    let sink = Sink::keeping_bodies();
    sink.set_mode(Mode::Stall);
    let shipper = Shipper::following(&d, &sink.url("/"), &["--request-timeout", "1s"]);
    let total = 200_000;
    let app = write_app_log(&d.logs, total, 1_000_000, Rotation::None, Duration::MAX);
    let written = app.join();
    sink.wait_until("two stalled requests (the first timed out)", |s| s.stalled >= 2);
    let rss = shipper.rss_kib();
    eprintln!("stall: RSS {rss} KiB");
    assert!(rss < RSS_BOUND_KIB, "RSS {rss} KiB");
    recover("stall then recovery", &sink, written);
    shipper.stop_ok();
}

#[test]
fn retry_after_is_honoured() {
    let d = Dirs::new();
    let sink = Sink::start();
    sink.set_mode(Mode::Fail {
        status: 429,
        retry_after: Some("1".into()),
    });
    let shipper = Shipper::following(&d, &sink.url("/"), &[]);
    append(&d.app_log(), (0..10).map(line));
    sink.wait_until("three refused attempts", |s| s.failed >= 3);
    let times: Vec<Instant> = sink.requests().iter().map(|r| r.at).collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900),
            "retried after {gap:?} despite Retry-After: 1"
        );
    }
    sink.set_mode(Mode::Accept);
    sink.wait_records(10);
    shipper.stop_ok();
}
