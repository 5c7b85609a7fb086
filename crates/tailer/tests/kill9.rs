//! Real crashes: a child process follows `app.log*` and writes every line to
//! a sink file (taking 10 ms per batch) before acknowledging it; the parent writes lines (rotating by
//! rename) and kills the child with SIGKILL at random moments, restarting it
//! each time. Every written line must reach the sink at least once, and
//! nothing that was never written may appear. Duplicates (lines in the sink
//! whose ack was not checkpointed yet) are allowed and counted.
//!
//! `harness = false`: this binary is both the test and, with `child DIR`,
//! the process under test.

#![allow(clippy::print_stdout)] // A harness-less test reports on stdout like libtest.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use podkit_tailer::{CancellationToken, NoopEvents, Tailer, TailerConfig};

const LINES: u64 = 100_000;
const RATE: u64 = 30_000;

fn line(seq: u64) -> String {
    format!("seq={seq:08}|{}|end", "k".repeat((seq % 61) as usize))
}

fn parse(text: &str) -> Option<u64> {
    let seq: u64 = text.strip_prefix("seq=")?.get(..8)?.parse().ok()?;
    (text == line(seq)).then_some(seq)
}

/// The process under test: follow, write to the sink, then ack.
fn child(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = TailerConfig::new([format!("{}/app.log*", dir.display())]);
        config.state_dir = Some(dir.join("state"));
        config.checkpoint_interval = Duration::from_millis(50);
        let (tailer, mut rx) = Tailer::new(config, Arc::new(NoopEvents)).unwrap();
        let task = tokio::spawn(tailer.run(CancellationToken::new()));
        let sink_path = dir.join("sink.txt");
        let mut sink = OpenOptions::new().create(true).append(true).open(&sink_path).unwrap();
        // A kill may have cut the last write short: start on a fresh line.
        if fs::read(&sink_path).unwrap().last().is_some_and(|&b| b != b'\n') {
            sink.write_all(b"\n").unwrap();
        }
        while let Some(batch) = rx.recv().await {
            // A sink with latency (like an HTTP request), so batches queue up
            // between reading and acknowledging.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut buf = Vec::new();
            for l in batch.lines() {
                buf.extend_from_slice(l.bytes);
                buf.push(b'\n');
            }
            sink.write_all(&buf).unwrap();
            batch.ack();
        }
        task.await.unwrap().unwrap();
    });
}

fn spawn_child(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("child")
        .arg(dir)
        .spawn()
        .expect("spawn the child")
}

fn sink_counts(dir: &Path) -> (HashMap<u64, u32>, usize) {
    let text = fs::read_to_string(dir.join("sink.txt")).unwrap_or_default();
    let mut counts = HashMap::new();
    let mut fragments = 0;
    for l in text.lines() {
        match parse(l) {
            Some(seq) => *counts.entry(seq).or_insert(0) += 1,
            None if l.is_empty() => {}
            None => {
                assert!(l.starts_with("seq="), "the sink holds a line never written: {l:?}");
                fragments += 1;
            }
        }
    }
    (counts, fragments)
}

fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, done) = (dir.clone(), done.clone());
        std::thread::spawn(move || {
            let open = || {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("app.log"))
                    .unwrap()
            };
            let mut f = open();
            let start = Instant::now();
            let mut rotations = 0;
            for seq in 0..LINES {
                f.write_all(format!("{}\n", line(seq)).as_bytes()).unwrap();
                if seq % 20_000 == 19_999 {
                    rotations += 1;
                    fs::rename(dir.join("app.log"), dir.join(format!("app.log.{rotations}"))).unwrap();
                    f = open();
                }
                if seq % 300 == 0
                    && let Some(ahead) = Duration::from_secs_f64(seq as f64 / RATE as f64).checked_sub(start.elapsed())
                {
                    std::thread::sleep(ahead);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) {
        let mut c = spawn_child(&dir);
        std::thread::sleep(Duration::from_millis(100 + fastrand::u64(..300)));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        kills += 1;
    }
    writer.join().unwrap();
    // A last run must catch up with everything.
    let mut c = spawn_child(&dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    let complete = loop {
        let (counts, _) = sink_counts(&dir);
        if (0..LINES).all(|s| counts.contains_key(&s)) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100)); // Polling the sink file for a condition.
    };
    c.kill().unwrap();
    c.wait().unwrap();
    let (counts, fragments) = sink_counts(&dir);
    let missing: Vec<u64> = (0..LINES).filter(|s| !counts.contains_key(s)).collect();
    let dups: u64 = counts.values().map(|&c| u64::from(c - 1)).sum();
    eprintln!(
        "kill9: {LINES} lines written, {kills} SIGKILLs, missing {}, duplicated {dups}, cut by a kill {fragments}",
        missing.len()
    );
    assert!(
        complete && missing.is_empty(),
        "lines lost after SIGKILL, e.g. {:?}",
        &missing[..missing.len().min(10)]
    );
    assert!(fragments <= kills, "more cut lines than kills");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(Path::new(&args[2]));
        return;
    }
    // Behave like a libtest binary for `cargo test -- --list` and filters.
    if args.iter().any(|a| a == "--list") {
        println!("kill9_loses_nothing: test");
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"kill9_loses_nothing".contains(f.as_str())) {
        return;
    }
    parent();
    println!("test kill9_loses_nothing ... ok");
}
