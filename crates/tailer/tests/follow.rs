//! Behaviour a user of the tailer sees: start positions, restarts and
//! checkpoints, each rotation style, deletion, partial and long lines,
//! backpressure, and configuration errors.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use podkit_tailer::{LineKind, LongLines, NoopEvents, StartAt, Tailer, TailerConfig, TailerError};

#[test]
fn follows_existing_lines_then_new_ones_and_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, &numbered("a", 0..100));
    let f = Follower::start(config(&[p(dir.path(), "*.log")], None));
    f.wait_acked(&numbered("a", 0..100));
    append(&a, &numbered("a", 100..150));
    append(&dir.path().join("b.log"), &numbered("b", 0..10));
    fs::write(dir.path().join("c.txt"), "not followed\n").unwrap();
    f.wait_acked(&[numbered("a", 100..150), numbered("b", 0..10)].concat());
    let (seen, _) = f.stop();
    let a_lines: Vec<String> = seen
        .acked
        .iter()
        .filter(|g| g.path == a)
        .map(|g| g.text.clone())
        .collect();
    assert_eq!(a_lines, numbered("a", 0..150), "in order, once each");
    assert!(seen.acked.iter().all(|g| !g.text.contains("not followed")));
}

#[test]
fn started_is_reported_once_the_first_scan_has_opened_the_files() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), &numbered("a", 0..100));
    append(&dir.path().join("b.log"), &numbered("b", 0..100));
    fs::write(dir.path().join("c.txt"), "not followed\n").unwrap();
    let f = Follower::start(config(&[p(dir.path(), "*.log")], None));
    f.wait_event("started", |l| l.lines.iter().any(|s| s.starts_with("started")));
    let log = f.events_log();
    let at = log.iter().position(|s| s.starts_with("started")).unwrap();
    assert_eq!(log[at], "started 2", "{log:?}");
    assert_eq!(
        log[..at].iter().filter(|s| s.starts_with("added")).count(),
        2,
        "both files open first: {log:?}"
    );
    append(&dir.path().join("d.log"), &numbered("d", 0..10));
    f.wait_acked(&[numbered("a", 0..100), numbered("b", 0..100), numbered("d", 0..10)].concat());
    let (_, events) = f.stop();
    let log = events.0.read(|l| l.lines.clone());
    assert_eq!(log.iter().filter(|s| s.starts_with("started")).count(), 1, "{log:?}");
    assert_eq!(
        events.0.read(|l| l.batches_before_start),
        Some(0),
        "reported before any batch"
    );
}

#[test]
fn start_at_tail_skips_what_exists_but_not_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    append(&a, &numbered("old", 0..50));
    let mut c = config(&[p(dir.path(), "*.log")], None);
    c.start_at = StartAt::Tail;
    let f = Follower::start(c);
    f.wait_event("a.log added", |l| l.lines.iter().any(|s| s.starts_with("added")));
    append(&a, &numbered("new", 0..5));
    append(&dir.path().join("b.log"), &numbered("b", 0..5));
    f.wait_acked(&[numbered("new", 0..5), numbered("b", 0..5)].concat());
    let (seen, _) = f.stop();
    assert!(
        seen.received.iter().all(|g| !g.text.starts_with("old")),
        "{:?}",
        seen.received
    );
}

#[test]
fn restart_resumes_at_the_checkpoint_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let a = dir.path().join("a.log");
    append(&a, &numbered("a", 0..1000));
    let f = Follower::start(config(&[p(dir.path(), "*.log")], Some(&state)));
    f.wait_acked(&numbered("a", 0..1000));
    f.stop();
    append(&a, &numbered("a", 1000..1100));
    let f = Follower::start(config(&[p(dir.path(), "*.log")], Some(&state)));
    f.wait_acked(&numbered("a", 1000..1100));
    assert!(
        f.events.contains("true"),
        "resumed from the checkpoint: {:?}",
        f.events_log()
    );
    let (seen, _) = f.stop();
    let texts: Vec<String> = seen.received.iter().map(|g| g.text.clone()).collect();
    assert_eq!(texts, numbered("a", 1000..1100));
    let json = fs::read_to_string(state.join("tailer.checkpoint.json")).unwrap();
    assert!(json.contains("\"version\": \"1\""), "{json}");
}

#[test]
fn unacknowledged_lines_are_delivered_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let a = dir.path().join("a.log");
    append(&a, &numbered("a", 0..100));
    let f = Follower::start(config(&[p(dir.path(), "*.log")], Some(&state)));
    f.wait_acked(&numbered("a", 0..100));
    f.sink.ack.store(false, std::sync::atomic::Ordering::SeqCst);
    append(&a, &numbered("a", 100..200));
    f.wait("unacked delivery", |s| s.received.len() >= 200);
    let (_, events) = f.stop();
    assert!(events.0.read(|l| l.not_acked) >= 100);
    let f = Follower::start(config(&[p(dir.path(), "*.log")], Some(&state)));
    f.wait_acked(&numbered("a", 100..200));
    let (seen, _) = f.stop();
    let texts: Vec<String> = seen.received.iter().map(|g| g.text.clone()).collect();
    assert_eq!(texts, numbered("a", 100..200), "exactly the unacknowledged lines again");
}

#[test]
fn a_replaced_file_with_a_reused_name_is_read_from_its_head_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let a = dir.path().join("a.log");
    append(&a, &numbered("first", 0..50));
    let f = Follower::start(config(&[p(dir.path(), "a.log")], Some(&state)));
    f.wait_acked(&numbered("first", 0..50));
    f.stop();
    // While we were down: rotated away (not followed) and a new file created.
    fs::rename(&a, dir.path().join("a.log.1")).unwrap();
    append(&a, &numbered("second", 0..80));
    let f = Follower::start(config(&[p(dir.path(), "a.log")], Some(&state)));
    f.wait_acked(&numbered("second", 0..80));
    let (seen, _) = f.stop();
    assert_eq!(seen.received.len(), 80);
}

#[test]
fn rename_rotation_reads_the_old_file_while_the_app_still_writes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    let mut old = fs::OpenOptions::new().create(true).append(true).open(&a).unwrap();
    let f = Follower::start(config(&[p(dir.path(), "app.log")], None));
    writeln!(old, "before-0").unwrap();
    f.wait_acked(&["before-0".to_owned()]);
    // logrotate's create style: rename, the app writes on for a while, then reopens.
    fs::rename(&a, dir.path().join("app.log.1")).unwrap();
    f.wait_event("rotation noticed", |l| l.lines.iter().any(|s| s.starts_with("rotated")));
    for i in 0..20 {
        writeln!(old, "late-{i}").unwrap();
    }
    append(&a, &["new-0".to_owned()]);
    writeln!(old, "later").unwrap();
    let want: Vec<String> = ["before-0", "new-0", "later"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..20).map(|i| format!("late-{i}")))
        .collect();
    f.wait_acked(&want);
    drop(old);
    f.wait_event("old file released", |l| l.released == 1);
    let (seen, _) = f.stop();
    assert_eq!(seen.received.len(), want.len(), "no duplicates: {:?}", seen.received);
    // The rotated file keeps the followed name.
    assert!(seen.received.iter().all(|g| g.path == a));
}

#[test]
fn a_rotated_file_renamed_again_is_found_after_a_crash() {
    // logrotate shifts rotated files (`app.log.1` → `app.log.2`) while the
    // tailer may still be reading one. After a crash the checkpoint must
    // name the file where it is now, or its unacknowledged lines are lost.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let a = dir.path().join("app.log");
    let mut cfg = config(&[p(dir.path(), "app.log")], Some(&state));
    cfg.rotate_wait = Duration::from_secs(600);
    let mut old = fs::OpenOptions::new().create(true).append(true).open(&a).unwrap();
    let f = Follower::start(cfg.clone());
    writeln!(old, "before-0").unwrap();
    f.wait_acked(&["before-0".to_owned()]);
    f.sink.ack.store(false, std::sync::atomic::Ordering::SeqCst);
    fs::rename(&a, dir.path().join("app.log.1")).unwrap();
    f.wait_event("rotation noticed", |l| l.lines.iter().any(|s| s.starts_with("rotated")));
    writeln!(old, "late-0").unwrap();
    fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.2")).unwrap();
    writeln!(old, "late-1").unwrap();
    f.wait("the late lines (not acknowledged)", |s| {
        s.received.iter().any(|g| g.text == "late-1")
    });
    let (seen, _) = f.stop();
    assert!(seen.acked.iter().all(|g| g.text == "before-0"), "{:?}", seen.acked);
    let f = Follower::start(cfg);
    f.wait_acked(&["late-0".to_owned(), "late-1".to_owned()]);
    let (seen, events) = f.stop();
    let texts: Vec<&str> = seen.received.iter().map(|g| g.text.as_str()).collect();
    assert_eq!(
        texts,
        ["late-0", "late-1"],
        "events: {:?}",
        events.0.read(|l| l.lines.clone())
    );
}

#[test]
fn copytruncate_restarts_at_the_head_and_never_emits_nul_padding() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    // An app that writes without O_APPEND: after the truncate it keeps its
    // offset, leaving a hole of NULs at the start of the file.
    let app = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&a)
        .unwrap();
    let mut pos = 0u64;
    let mut write = |s: &str| {
        app.write_all_at(format!("{s}\n").as_bytes(), pos).unwrap();
        pos += s.len() as u64 + 1;
    };
    for l in numbered("before", 0..100) {
        write(&l);
    }
    let f = Follower::start(config(&[p(dir.path(), "app.log")], None));
    f.wait_acked(&numbered("before", 0..100));
    fs::copy(&a, dir.path().join("app.log.1")).unwrap();
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    for l in numbered("after", 0..100) {
        write(&l);
    }
    f.wait_acked(&numbered("after", 0..100));
    let (seen, events) = f.stop();
    assert!(
        events.0.read(|l| l.truncated) >= 1,
        "{:?}",
        events.0.read(|l| l.lines.clone())
    );
    assert!(
        seen.received
            .iter()
            .all(|g| !g.text.contains('\0') && !g.text.is_empty()),
        "no NUL lines"
    );
    let after: Vec<&Got> = seen.received.iter().filter(|g| g.text.starts_with("after")).collect();
    assert_eq!(
        after.len(),
        100,
        "each line once: {:#?}",
        events.0.read(|l| l.lines.clone())
    );
}

#[test]
fn copytruncate_to_a_shorter_size_is_noticed_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    append(&a, &numbered("one", 0..100));
    let f = Follower::start(config(&[p(dir.path(), "app.log")], None));
    f.wait_acked(&numbered("one", 0..100));
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    f.wait_event("truncation", |l| l.truncated == 1);
    append(&a, &numbered("two", 0..3));
    f.wait_acked(&numbered("two", 0..3));
    f.stop();
}

#[test]
fn deleted_files_are_read_to_the_end_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    append(&a, &numbered("a", 0..10));
    let mut c = config(&[p(dir.path(), "*.log")], None);
    c.rotate_wait = Duration::from_millis(300);
    let f = Follower::start(c);
    f.wait_acked(&numbered("a", 0..10));
    let mut held = fs::OpenOptions::new().append(true).open(&a).unwrap();
    fs::remove_file(&a).unwrap();
    writeln!(held, "written-after-delete").unwrap();
    drop(held);
    f.wait_acked(&["written-after-delete".to_owned()]);
    f.wait_event("release", |l| l.released == 1);
    // The descriptor is closed: no fd of this process points at the deleted file.
    let open_deleted = fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with(&a.display().to_string()))
        .collect::<Vec<_>>();
    assert!(
        open_deleted.is_empty(),
        "the deleted file is still open: {open_deleted:?} {:?}",
        f.events_log()
    );
    f.stop();
}

#[test]
fn an_incomplete_line_is_held_then_flushed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    let mut c = config(&[p(dir.path(), "app.log")], None);
    c.partial_flush_after = Duration::from_millis(300);
    let f = Follower::start(c);
    let mut w = fs::OpenOptions::new().create(true).append(true).open(&a).unwrap();
    // Completed quickly: arrives whole.
    write!(w, "hel").unwrap();
    write!(w, "lo\nno newline yet").unwrap();
    f.wait("flush", |s| s.acked.len() == 2);
    let (seen, _) = f.stop();
    assert_eq!(seen.acked[0].text, "hello");
    assert_eq!(seen.acked[0].kind, LineKind::Complete);
    assert_eq!(seen.acked[1].text, "no newline yet");
    assert_eq!(seen.acked[1].kind, LineKind::Partial);
}

#[test]
fn long_lines_are_split_or_truncated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    let long = "x".repeat(2500);
    append(&a, &[long.clone(), "short".into()]);
    let mut c = config(&[p(dir.path(), "app.log")], None);
    c.max_line_bytes = 1000;
    let f = Follower::start(c.clone());
    f.wait("split", |s| s.acked.iter().any(|g| g.text == "short"));
    let (seen, events) = f.stop();
    let kinds: Vec<(usize, LineKind)> = seen.acked.iter().map(|g| (g.text.len(), g.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1000, LineKind::Split),
            (1000, LineKind::Split),
            (500, LineKind::Complete),
            (5, LineKind::Complete)
        ]
    );
    assert_eq!(events.0.read(|l| l.too_long), 1);

    c.long_lines = LongLines::Truncate;
    let f = Follower::start(c);
    f.wait("truncate", |s| s.acked.iter().any(|g| g.text == "short"));
    let (seen, _) = f.stop();
    let kinds: Vec<(usize, LineKind)> = seen.acked.iter().map(|g| (g.text.len(), g.kind)).collect();
    assert_eq!(kinds, [(1000, LineKind::Truncated), (5, LineKind::Complete)]);
}

#[test]
fn crlf_and_invalid_utf8_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    fs::write(&a, b"dos line\r\n\xff\xfe raw\n").unwrap();
    let (tailer, mut rx) = Tailer::new(config(&[p(dir.path(), "app.log")], None), Arc::new(NoopEvents)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = podkit_tailer::CancellationToken::new();
    let task = rt.spawn(tailer.run(token.clone()));
    let batch = rt
        .block_on(async { tokio::time::timeout(*WAIT, rx.recv()).await })
        .unwrap()
        .unwrap();
    let lines: Vec<Vec<u8>> = batch.lines().map(|l| l.bytes.to_vec()).collect();
    assert_eq!(lines, [b"dos line".to_vec(), b"\xff\xfe raw".to_vec()]);
    assert_eq!(batch.line(1).unwrap().offset, 10);
    assert_eq!(batch.byte_range(), 0..17);
    batch.ack();
    token.cancel();
    drop(rx);
    rt.block_on(task).unwrap().unwrap();
}

#[test]
fn a_slow_consumer_pauses_reading() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    append(&a, &numbered("x", 0..200_000));
    let mut c = config(&[p(dir.path(), "app.log")], None);
    c.channel_capacity = 2;
    c.read_bytes = 4096;
    let events = Recorder::new();
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    struct Count(Arc<std::sync::atomic::AtomicU64>);
    impl podkit_tailer::TailerEvents for Count {
        fn batch_read(&self, _: &podkit_tailer::FileInfo, _: u64, _: u64) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    drop(events);
    let (tailer, mut rx) = Tailer::new(c, Arc::new(Count(read.clone()))).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = podkit_tailer::CancellationToken::new();
    let task = rt.spawn(tailer.run(token.clone()));
    let first = rt
        .block_on(async { tokio::time::timeout(*WAIT, rx.recv()).await })
        .unwrap()
        .unwrap();
    // Nothing received for a while: the tailer may fill the channel and hold
    // one more batch, never more. (A negative can only be observed over time.)
    std::thread::sleep(Duration::from_millis(500));
    let n = read.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 4, "read {n} batches while the consumer was stalled");
    first.ack();
    let mut total = 1;
    let mut lines = 0;
    rt.block_on(async {
        while lines < 199_000 {
            let b = tokio::time::timeout(*WAIT, rx.recv()).await.unwrap().unwrap();
            total += 1;
            lines += b.len();
            b.ack();
        }
    });
    assert!(total > 100);
    token.cancel();
    rt.block_on(async {
        while let Some(b) = rx.recv().await {
            b.ack();
        }
    });
    rt.block_on(task).unwrap().unwrap();
}

#[test]
fn batches_say_whether_the_tailer_caught_up_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("app.log");
    // About 120 KiB: many reads of 4 KiB, over more than one round.
    append(&a, &numbered("x", 0..10_000));
    let mut c = config(&[p(dir.path(), "app.log")], None);
    c.read_bytes = 4096;
    c.partial_flush_after = Duration::from_millis(100);
    let (tailer, mut rx) = Tailer::new(c, Arc::new(NoopEvents)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = podkit_tailer::CancellationToken::new();
    let task = rt.spawn(tailer.run(token.clone()));
    // (lines, at_eof) of each batch until `want` more lines arrived.
    let mut take = |want: usize| {
        rt.block_on(async {
            let mut got = Vec::new();
            let mut lines = 0;
            while lines < want {
                let b = tokio::time::timeout(*WAIT, rx.recv()).await.unwrap().unwrap();
                lines += b.len();
                got.push((b.len(), b.at_eof()));
                b.ack();
            }
            got
        })
    };
    let first = take(10_000);
    assert!(first.len() > 16, "{first:?}");
    let (last, before) = first.split_last().unwrap();
    assert!(before.iter().all(|(_, eof)| !eof), "more was waiting: {first:?}");
    assert!(last.1, "the last read reached the end: {first:?}");
    // Lines written later: caught up again. An incomplete last line is
    // held back: the batch before it is not caught up, its own batch is.
    append(&a, &numbered("y", 0..3));
    assert_eq!(take(3).last(), Some(&(3, true)));
    let mut w = fs::OpenOptions::new().append(true).open(&a).unwrap();
    write!(w, "z\nno newline").unwrap();
    assert_eq!(take(2), [(1, false), (1, true)]);
    token.cancel();
    rt.block_on(async { while rx.recv().await.is_some() {} });
    rt.block_on(task).unwrap().unwrap();
}

#[test]
fn an_unwritable_state_dir_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, "").unwrap();
    let c = config(&[p(dir.path(), "*.log")], Some(&file.join("state")));
    let err = Tailer::new(c, Arc::new(NoopEvents)).unwrap_err();
    assert!(matches!(err, TailerError::StateDir { .. }), "{err}");
    assert!(err.is_config());
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[test]
fn bad_settings_are_configuration_errors() {
    let mut c = TailerConfig::new(Vec::<String>::new());
    assert!(matches!(
        Tailer::new(c.clone(), Arc::new(NoopEvents)).unwrap_err(),
        TailerError::Config { field: "include", .. }
    ));
    c.include = vec!["/tmp/[x.log".into()];
    let err = Tailer::new(c.clone(), Arc::new(NoopEvents)).unwrap_err();
    assert!(matches!(err, TailerError::Pattern { .. }) && err.is_config(), "{err}");
    c.include = vec!["/tmp/x.log".into()];
    c.name = "../escape".into();
    assert!(Tailer::new(c, Arc::new(NoopEvents)).is_err());
}

#[test]
fn works_without_inotify() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&[p(dir.path(), "*.log")], None);
    c.use_notify = false;
    let f = Follower::start(c);
    append(&dir.path().join("a.log"), &numbered("a", 0..10));
    f.wait_acked(&numbered("a", 0..10));
    fs::rename(dir.path().join("a.log"), dir.path().join("a.log.1")).unwrap();
    append(&dir.path().join("a.log"), &numbered("b", 0..10));
    f.wait_acked(&numbered("b", 0..10));
    f.stop();
}
