//! Every rotation style under load: an app thread writes 50k lines/s for a
//! few seconds while another thread rotates the file every half second, and
//! the tailer must deliver every line (rename styles: exactly once).
//!
//! Copytruncate has a race of its own: lines the tailer had not read when
//! the file was truncated survive only in the copy, and lines written between
//! the copy and the truncate survive nowhere. The rotator records, at each
//! copy, which written lines the consumer had not yet acknowledged: only
//! those may be missing ("destroyed by the rotation"); every other line must
//! be delivered, and a follower whose glob covers the copies loses none that
//! exist in any file. Rates here are load, not assertions.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use podkit_tailer::LineKind;

const RATE: u64 = 50_000;
const SECONDS: f64 = 4.0;
const ROTATE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    /// Rename, and the app reopens at once.
    Rename,
    /// Rename, and the app writes to the old file for 200 ms before it
    /// reopens (logrotate `create` + a slow HUP).
    RenameKeepWriting,
    /// Copy, then truncate in place; the app never reopens.
    CopyTruncate,
}

fn line(seq: u64) -> String {
    // Varying lengths so lines straddle read and page boundaries.
    format!("seq={seq:08}|{}|end", "p".repeat((seq % 97) as usize))
}

fn parse(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("seq=")?;
    let seq: u64 = rest.get(..8)?.parse().ok()?;
    (text == line(seq)).then_some(seq)
}

/// What the app and the rotator did.
struct AppRun {
    /// How many lines were written.
    written: u64,
    /// Lines a copytruncate may have destroyed: at each copy, those written
    /// (up to the truncation) that the consumer had not acknowledged when the
    /// copy began.
    at_risk: HashSet<u64>,
}

/// Runs the app and the rotator. The rotator reads the follower's
/// acknowledged lines at each copy, and renames a file only once the follower
/// has opened it: a file renamed away before any scan found it is not
/// followed (it never matched the pattern while the tailer looked), and how
/// soon a scan finds it is a matter of speed (a loaded machine can starve
/// the tailer's thread for longer than a rotation period), not of correctness.
fn run_app(dir: &Path, style: Style, f: &Follower) -> AppRun {
    let sink = &f.sink;
    let path = dir.join("app.log");
    let open = || OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let reopen = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    // Lines whose write(2) may have started: a line counts before it is written.
    let started = AtomicU64::new(0);
    let total = (RATE as f64 * SECONDS) as u64;
    std::thread::scope(|scope| {
        let rotator = scope.spawn(|| {
            let mut at_risk = HashSet::new();
            let mut n = 0;
            let live_added = format!("added {} ", path.display());
            let generations = |l: &Log| l.lines.iter().filter(|e| e.starts_with(&live_added)).count();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(ROTATE_EVERY);
                n += 1;
                if style != Style::CopyTruncate {
                    // The file about to be renamed is the n-th at the live path.
                    // (Checking `stop` now and then: once the app is done it
                    // opens no new file.)
                    let opened = loop {
                        if stop.load(Ordering::SeqCst) {
                            break false;
                        }
                        if f.events.0.wait(Duration::from_millis(100), |l| generations(l) >= n) {
                            break true;
                        }
                    };
                    if !opened {
                        break;
                    }
                }
                let rotated = dir.join(format!("app.log.{n}"));
                match style {
                    Style::Rename => {
                        fs::rename(&path, &rotated).unwrap();
                        reopen.store(true, Ordering::SeqCst);
                    }
                    Style::RenameKeepWriting => {
                        fs::rename(&path, &rotated).unwrap();
                        std::thread::sleep(Duration::from_millis(200));
                        reopen.store(true, Ordering::SeqCst);
                    }
                    Style::CopyTruncate => {
                        let acked: HashSet<u64> = sink
                            .seen
                            .read(|s| s.acked.iter().filter_map(|g| parse(&g.text)).collect());
                        fs::copy(&path, &rotated).unwrap();
                        OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
                        let upto = started.load(Ordering::SeqCst);
                        at_risk.extend((0..upto).filter(|s| !acked.contains(s)));
                    }
                }
            }
            at_risk
        });
        let mut f: File = open();
        let start = Instant::now();
        for seq in 0..total {
            if reopen.swap(false, Ordering::SeqCst) {
                f = open();
            }
            started.store(seq + 1, Ordering::SeqCst);
            f.write_all(format!("{}\n", line(seq)).as_bytes()).unwrap();
            if seq % 500 == 0 {
                let due = Duration::from_secs_f64(seq as f64 / RATE as f64);
                if let Some(ahead) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
        AppRun {
            written: total,
            at_risk: rotator.join().unwrap(),
        }
    })
}

/// Sequence numbers of the complete lines in the files named `app.log*`.
fn on_disk(dir: &Path) -> (HashSet<u64>, HashSet<u64>) {
    let (mut live, mut copies) = (HashSet::new(), HashSet::new());
    for e in fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("app.log") {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned();
        let set = if name == "app.log" { &mut live } else { &mut copies };
        set.extend(text.lines().filter_map(|l| parse(l.trim_start_matches('\0'))));
    }
    (live, copies)
}

/// Whether `text` is how some written line begins (a truncation can cut a
/// line after any byte, even inside `seq=`).
fn prefix_of_a_line(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 12 {
        let tag = &b[..b.len().min(4)];
        return b"seq=".starts_with(tag) && b[tag.len()..].iter().all(u8::is_ascii_digit);
    }
    text.get(4..12)
        .and_then(|d| d.parse().ok())
        .is_some_and(|seq| line(seq).starts_with(text))
}

struct Delivered {
    /// How many times each complete line was delivered.
    counts: HashMap<u64, u32>,
    /// Partial lines (cut by a truncation), all prefixes of written lines.
    fragments: usize,
    /// Per file (inode): were its lines in order?
    in_order: bool,
}

fn delivered(seen: &Seen, written: u64) -> Delivered {
    let mut counts = HashMap::new();
    let mut fragments = 0;
    let mut last: HashMap<(PathBuf, u64), u64> = HashMap::new();
    let mut in_order = true;
    for g in &seen.received {
        match parse(&g.text) {
            Some(seq) => {
                assert!(seq < written, "delivered a line never written: {g:?}");
                *counts.entry(seq).or_insert(0) += 1;
                let prev = last.insert((g.path.clone(), g.ino), seq);
                if prev.is_some_and(|p| p >= seq) {
                    in_order = false;
                }
            }
            None => {
                assert_eq!(g.kind, LineKind::Partial, "malformed line: {g:?}");
                assert!(prefix_of_a_line(&g.text), "fragment of no written line: {g:?}");
                fragments += 1;
            }
        }
    }
    Delivered {
        counts,
        fragments,
        in_order,
    }
}

fn follow_and_write(style: Style, pattern: &str) -> (tempfile::TempDir, AppRun, Seen, Arc<Recorder>) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&[p(dir.path(), pattern)], None);
    // A renamed file is read for `rotate_wait` after it last grew. The app
    // writes to it for 200 ms, but a loaded machine can stall the app's
    // thread for longer than the harness's 1 s between two of those writes;
    // give it as long as the test waits for anything.
    c.rotate_wait = *WAIT;
    let f = Follower::start(c);
    let run = run_app(dir.path(), style, &f);
    // Settle: wait until every line that exists in a followed file arrived.
    let (live, copies) = on_disk(dir.path());
    let mut want: Vec<String> = live.iter().map(|&s| line(s)).collect();
    if pattern.ends_with('*') || style != Style::CopyTruncate {
        want.extend(copies.iter().map(|&s| line(s)));
    }
    f.wait_acked(&want);
    let (seen, events) = f.stop();
    (dir, run, seen, events)
}

fn check_rename(style: Style, pattern: &str) {
    let (_dir, run, seen, events) = follow_and_write(style, pattern);
    let written = run.written;
    let d = delivered(&seen, written);
    let missing: Vec<u64> = (0..written).filter(|s| !d.counts.contains_key(s)).collect();
    let dups = d.counts.values().filter(|&&c| c > 1).count();
    eprintln!(
        "{style:?} ({pattern}): written {written}, delivered {}, missing {}, duplicated {dups}, released {}",
        d.counts.len(),
        missing.len(),
        events.0.read(|l| l.released)
    );
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(dups, 0, "duplicates");
    assert_eq!(d.fragments, 0);
    assert!(d.in_order, "out of order within a file");
}

#[test]
fn rename_rotation_at_50k_lines_per_second_loses_nothing() {
    check_rename(Style::Rename, "app.log");
}

#[test]
fn rename_while_the_app_keeps_writing_loses_nothing() {
    check_rename(Style::RenameKeepWriting, "app.log");
}

#[test]
fn rename_rotation_with_the_rotated_files_followed_too_duplicates_nothing() {
    check_rename(Style::RenameKeepWriting, "app.log*");
}

#[test]
fn copytruncate_at_50k_lines_per_second_loses_only_what_the_rotation_destroys() {
    let (dir, run, seen, events) = follow_and_write(Style::CopyTruncate, "app.log");
    let written = run.written;
    let (live, copies) = on_disk(dir.path());
    let d = delivered(&seen, written);
    let missing: Vec<u64> = (0..written).filter(|s| !d.counts.contains_key(s)).collect();
    let only_in_copy = missing.iter().filter(|s| copies.contains(s)).count();
    let nowhere = missing
        .iter()
        .filter(|s| !copies.contains(s) && !live.contains(s))
        .count();
    let dups = d.counts.values().filter(|&&c| c > 1).count();
    eprintln!(
        "CopyTruncate (app.log only): written {written}, delivered {}, destroyed by the rotation {} \
         (only in the copy {only_in_copy}, in no file {nowhere}; at risk {}), truncations seen {}, fragments {}",
        d.counts.len(),
        missing.len(),
        run.at_risk.len(),
        events.0.read(|l| l.truncated),
        d.fragments
    );
    // Lines still in a file the follower follows were all delivered, and only
    // the rotation's own victims are missing.
    assert!(
        live.iter().all(|s| d.counts.contains_key(s)),
        "a line of the live file is missing"
    );
    // Independently of the files: every missing line was unacknowledged
    // when a copy began (or was written after it, before the truncation).
    let lost: Vec<&u64> = missing.iter().filter(|s| !run.at_risk.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} lines lost that were acknowledged before every copy or written after every truncation, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(dups, 0, "duplicates");
    assert!(d.in_order, "out of order within a file");
    assert!(events.0.read(|l| l.truncated) >= 1);
}

#[test]
fn copytruncate_followed_with_the_copies_loses_nothing_that_exists() {
    let (dir, run, seen, _) = follow_and_write(Style::CopyTruncate, "app.log*");
    let written = run.written;
    let (live, copies) = on_disk(dir.path());
    let d = delivered(&seen, written);
    let missing: Vec<u64> = (0..written).filter(|s| !d.counts.contains_key(s)).collect();
    let lost_existing: Vec<&u64> = missing
        .iter()
        .filter(|s| copies.contains(s) || live.contains(s))
        .collect();
    eprintln!(
        "CopyTruncate (app.log*): written {written}, delivered {}, destroyed by the rotation (in no file) {}",
        d.counts.len(),
        missing.len() - lost_existing.len()
    );
    assert!(
        lost_existing.is_empty(),
        "lost lines that exist on disk: {:?}",
        &lost_existing[..lost_existing.len().min(10)]
    );
    assert!(d.in_order, "out of order within a file");
}
