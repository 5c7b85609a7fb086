//! Follow mode on the real binary, under the conditions the adapter pod's
//! `tail -f | sed` fails: an app appending 2,000 lines/s for 10 s, its log
//! rotated every 2 s (rename while the app keeps writing to the old file for
//! 0.2 s; rename and immediate reopen; copytruncate), a SIGTERM and restart
//! mid-run, malformed UTF-8 and 1 MB lines.
//!
//! Every check reads the output file: each written line must appear exactly
//! once, in order. Copytruncate destroys the lines the app writes between the
//! copy and the truncation (they are in neither file), and the lines the
//! follower had not yet read when the truncation came survive only in the
//! copy. At each copy the app records which written lines the output does not
//! hold yet: only those may be missing.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podkit_testkit::{Proc, http_get, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_tail-rewrite");

/// The line tail-rewrite logs once the tailer's first scan has opened the
/// files (and `/readyz` turns ready). Tests wait for it before rotating: a
/// file rotated away before the first scan is not followed (it no longer
/// matches the path).
const FOLLOWING: &str = "Following.";

/// Lines per second the app writes.
const RATE: u64 = 2_000;

/// Lines the app writes between copytruncate's copy and its truncation.
const COPY_RACE_LINES: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    /// `mv app.log app.log.N`, the app writes 0.2 s more to the old file, then reopens.
    RenameKeepWriting,
    /// `mv app.log app.log.N` and the app reopens at once.
    RenameReopen,
    /// Copy to `app.log.N`, the app writes a few lines more, then truncate.
    CopyTruncate,
    /// No rotation.
    None,
}

/// What the app did.
#[derive(Debug, Default)]
struct AppRun {
    /// Lines written, in order.
    written: u64,
    /// Rotations done.
    rotations: u32,
    /// Lines written between a copy and its truncation: in neither file.
    destroyed: BTreeSet<u64>,
    /// Lines the output did not hold when a copy began: a follower of the
    /// live file alone may not read them before the truncation, and then they
    /// exist only in the copy. Copytruncate's own race, counted apart.
    only_in_copy_risk: BTreeSet<u64>,
}

/// The app: writes `seq=N` lines at [`RATE`] for `duration`, one `write(2)`
/// per line, rotating every `every` once `following(rotations_done)` says a
/// follower has opened the file about to be rotated (a rotation waits for it:
/// a file renamed away before any scan found it is not followed, and how soon
/// a scan finds it is a matter of speed, not of correctness). `during` is
/// called once, at `at`. `out` is the follower's output, read at each copy.
///
/// No rotation comes so late that no ordinary line follows it: the tests wait
/// for the last line written, and a line written between a copy and its
/// truncation never arrives. (Under load the app runs behind its schedule,
/// so a rotation can fall due in its very last lines.)
fn app(
    log: &Path,
    out: &Path,
    duration: Duration,
    rotation: Rotation,
    every: Duration,
    following: &dyn Fn(u32) -> bool,
    mut during: Option<(Duration, Box<dyn FnMut() + Send>)>,
) -> AppRun {
    let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p).unwrap();
    let mut file = open(log);
    let mut run = AppRun::default();
    let start = Instant::now();
    let mut next_rotation = start + every;
    let mut old: Option<(File, Instant)> = None;
    let total = RATE * duration.as_secs();
    let line = |seq: u64| format!("seq={seq:08} the quick brown fox jumps over the lazy dog\n");
    for seq in 0..total {
        let due = start + Duration::from_micros(seq * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Some((at, f)) = during.as_mut()
            && start.elapsed() >= *at
        {
            f();
            during = None;
        }
        if rotation != Rotation::None
            && run.written + COPY_RACE_LINES < total
            && Instant::now() >= next_rotation
            && following(run.rotations)
        {
            run.rotations += 1;
            let rotations = run.rotations;
            next_rotation = Instant::now().max(next_rotation) + every;
            let rotated = PathBuf::from(format!("{}.{rotations}", log.display()));
            match rotation {
                Rotation::RenameKeepWriting => {
                    std::fs::rename(log, &rotated).unwrap();
                    old = Some((file, Instant::now() + Duration::from_millis(200)));
                    // Until the reopen, lines keep going to the renamed file.
                    file = old.as_ref().unwrap().0.try_clone().unwrap();
                }
                Rotation::RenameReopen => {
                    std::fs::rename(log, &rotated).unwrap();
                    file = open(log);
                }
                Rotation::CopyTruncate => {
                    let delivered = delivered_so_far(out);
                    run.only_in_copy_risk
                        .extend((0..run.written).filter(|s| !delivered.contains(s)));
                    std::fs::copy(log, &rotated).unwrap();
                    // logrotate's race: the app writes while the copy is made.
                    for _ in 0..COPY_RACE_LINES {
                        file.write_all(line(run.written).as_bytes()).unwrap();
                        run.destroyed.insert(run.written);
                        run.written += 1;
                    }
                    OpenOptions::new().write(true).open(log).unwrap().set_len(0).unwrap();
                }
                Rotation::None => {}
            }
        }
        if let Some((_, until)) = &old
            && Instant::now() >= *until
        {
            old = None;
            file = open(log);
        }
        if seq < run.written {
            continue;
        }
        file.write_all(line(run.written).as_bytes()).unwrap();
        run.written += 1;
    }
    run
}

/// Sequence numbers of the complete lines the output holds now (the
/// follower may be midway through writing the last one).
fn delivered_so_far(out: &Path) -> BTreeSet<u64> {
    let bytes = std::fs::read(out).unwrap_or_default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    seqs_of(&String::from_utf8_lossy(&bytes[..complete])).collect()
}

/// Sequence numbers in the output, checked to be `Date seq=N ...` lines.
fn output_seqs(out: &Path) -> Vec<u64> {
    seqs_of(&std::fs::read_to_string(out).unwrap_or_default()).collect()
}

fn seqs_of(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.lines().map(|l| {
        let rest = l
            .strip_prefix("Date seq=")
            .unwrap_or_else(|| panic!("unexpected output line {l:?}"));
        rest[..8]
            .parse()
            .unwrap_or_else(|e| panic!("unexpected output line {l:?}: {e}"))
    })
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| bytecount(&b)).unwrap_or(0)
}

fn bytecount(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// Checks the output against what the app wrote: no duplicate, in order,
/// nothing missing except lines copytruncate's race took (destroyed, or
/// not yet in the output at a copy and left only in the copy). Returns how many
/// of those were nevertheless delivered, and how many were lost.
fn check(seqs: &[u64], run: &AppRun) -> (usize, usize) {
    for w in seqs.windows(2) {
        assert!(w[0] < w[1], "out of order or duplicated: {} then {}", w[0], w[1]);
    }
    let got: BTreeSet<u64> = seqs.iter().copied().collect();
    let missing: Vec<u64> = (0..run.written).filter(|s| !got.contains(s)).collect();
    let race = |s: &u64| run.destroyed.contains(s) || run.only_in_copy_risk.contains(s);
    let lost: Vec<&u64> = missing.iter().filter(|s| !race(s)).collect();
    assert!(
        lost.is_empty(),
        "{} lines lost (not counting copytruncate's race): first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(seqs.iter().all(|s| *s < run.written), "a line that was never written");
    let delivered = run.destroyed.iter().filter(|s| got.contains(s)).count();
    (delivered, missing.len())
}

struct Setup {
    _dir: tempfile::TempDir,
    log: PathBuf,
    out: PathBuf,
    args: Vec<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    // The adapter pod's command, plus a private admin port.
    let args = vec![
        "--follow".to_owned(),
        log.display().to_string(),
        "-e".to_owned(),
        "s/^/Date /".to_owned(),
        "--output".to_owned(),
        out.display().to_string(),
        "--admin-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    Setup {
        _dir: dir,
        log,
        out,
        args,
    }
}

fn start(s: &Setup) -> Proc {
    let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    let mut proc = Proc::spawn(BIN, &args, &[]);
    proc.wait_for_line(FOLLOWING);
    proc
}

fn stop(mut proc: Proc) {
    proc.signal(libc::SIGTERM);
    let (status, _) = proc.wait_exit(podkit_testkit::PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", proc.stderr());
}

/// Whether the follower has reported following the live file after
/// `rotations` renames: it logs "Following file." for app.log at start and
/// for each new app.log it finds (a copytruncate keeps the same file).
fn follows_generation(proc: &std::cell::RefCell<Proc>, rotation: Rotation, rotations: u32) -> bool {
    match rotation {
        Rotation::RenameKeepWriting | Rotation::RenameReopen => {
            let stderr = proc.borrow_mut().stderr();
            stderr.matches("Following file.").count() > rotations as usize
        }
        Rotation::CopyTruncate | Rotation::None => true,
    }
}

fn rotation_case(rotation: Rotation) {
    let s = setup();
    std::fs::write(&s.log, "").unwrap();
    let proc = std::cell::RefCell::new(start(&s));
    let run = app(
        &s.log,
        &s.out,
        Duration::from_secs(10),
        rotation,
        Duration::from_secs(2),
        &|rotations| follows_generation(&proc, rotation, rotations),
        None,
    );
    let proc = proc.into_inner();
    // Wait for the last line written: it follows the last rotation (see
    // `app`), so nothing can destroy it.
    let last = format!("Date seq={:08} ", run.written - 1);
    // However long a loaded machine takes, as long as the output grows.
    podkit_testkit::wait_until_progressing(
        "the output to catch up",
        || std::fs::metadata(&s.out).map_or(0, |m| m.len()),
        || std::fs::read_to_string(&s.out).is_ok_and(|t| t.contains(&last)),
    );
    stop(proc);
    let seqs = output_seqs(&s.out);
    let (delivered_anyway, race_lost) = check(&seqs, &run);
    eprintln!(
        "{rotation:?}: written {}, rotations {}, output {}, written between copy and truncate {} ({} of \
         them read before the truncation); at risk at a copy {}, lost to copytruncate's race {}",
        run.written,
        run.rotations,
        seqs.len(),
        run.destroyed.len(),
        delivered_anyway,
        run.only_in_copy_risk.len(),
        race_lost
    );
}

#[test]
fn rotation_by_rename_while_the_app_keeps_writing_loses_nothing() {
    rotation_case(Rotation::RenameKeepWriting);
}

#[test]
fn rotation_by_rename_and_reopen_loses_nothing() {
    rotation_case(Rotation::RenameReopen);
}

#[test]
fn copytruncate_loses_only_what_the_rotation_destroyed() {
    rotation_case(Rotation::CopyTruncate);
}

#[test]
fn sigterm_and_restart_mid_run_neither_lose_nor_repeat() {
    let s = setup();
    std::fs::write(&s.log, "").unwrap();
    let proc = std::sync::Arc::new(std::sync::Mutex::new(Some(start(&s))));
    let restarted = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (p, r) = (proc.clone(), restarted.clone());
    let args = s.args.clone();
    let restart: Box<dyn FnMut() + Send> = Box::new(move || {
        // Stop and restart while the app keeps writing (from this thread,
        // so the app's pace is what a stalled writer would see: lines pile up
        // in the file meanwhile).
        let old = p.lock().unwrap().take().unwrap();
        let args = args.clone();
        let r = r.clone();
        std::thread::spawn(move || {
            stop(old);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut proc = Proc::spawn(BIN, &args, &[]);
            proc.wait_for_line(FOLLOWING);
            *r.lock().unwrap() = Some(proc);
        });
    });
    // A rotation while no follower runs would leave the renamed file's
    // unread lines behind (the path no longer names it): the app rotates only
    // while one reports it is following.
    let following = |_| proc.lock().unwrap().is_some() || restarted.lock().unwrap().is_some();
    let run = app(
        &s.log,
        &s.out,
        Duration::from_secs(6),
        Rotation::RenameReopen,
        Duration::from_secs(2),
        &following,
        Some((Duration::from_millis(3_100), restart)),
    );
    eprintln!("restart mid-run: written {}, rotations {}", run.written, run.rotations);
    wait_until("the restarted follower", || restarted.lock().unwrap().is_some());
    wait_until("the output to catch up", || count_lines(&s.out) >= run.written as usize);
    stop(restarted.lock().unwrap().take().unwrap());
    let seqs = output_seqs(&s.out);
    check(&seqs, &run);
    assert_eq!(seqs.len() as u64, run.written);
}

#[test]
fn malformed_utf8_and_long_lines_follow_the_documented_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.json");
    let mut input = Vec::new();
    input.extend_from_slice(b"ok line\n");
    input.extend_from_slice(b"bad \xff\xfe bytes \xc3\n");
    let one_mb = vec![b'x'; 1_000_000];
    input.extend_from_slice(&one_mb);
    input.push(b'\n');
    // 2.5 MiB: split into pieces of --max-line-bytes (1 MiB).
    let long = vec![b'y'; 5 << 19];
    input.extend_from_slice(&long);
    input.push(b'\n');
    input.extend_from_slice(b"last\n");
    std::fs::write(&log, &input).unwrap();
    let mut proc = Proc::spawn(
        BIN,
        &[
            "--follow",
            log.to_str().unwrap(),
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    let admin = proc.admin_addr();
    let following = proc.wait_for_line(FOLLOWING);
    assert!(following.contains("files=1"), "{following}");
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "ready once following: {}", ready.body);
    wait_until("7 records", || count_lines(&out) >= 7);
    let text = std::fs::read_to_string(&out).expect("JSON output is valid UTF-8");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", &l[..l.len().min(80)])))
        .collect();
    let messages: Vec<String> = records
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages[0], "ok line");
    assert_eq!(messages[1], "bad \u{FFFD}\u{FFFD} bytes \u{FFFD}");
    assert_eq!(messages[2].len(), 1_000_000, "a 1 MB line stays whole");
    let pieces: Vec<usize> = messages[3..6].iter().map(String::len).collect();
    assert_eq!(pieces, [1 << 20, 1 << 20, 1 << 19], "a 2.5 MiB line in 1 MiB pieces");
    assert_eq!(messages[6], "last");
    let metrics = http_get(admin, "/metrics").unwrap().body;
    assert!(
        metrics.contains("podkit_tail_rewrite_invalid_utf8_lines_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("podkit_tail_rewrite_long_lines_total 1"), "{metrics}");
    assert!(
        metrics.contains("podkit_tail_rewrite_lines_written_total 7"),
        "{metrics}"
    );
    stop(proc);
}

#[test]
fn text_mode_passes_malformed_bytes_through_untouched() {
    let s = setup();
    let input = b"caf\xc3\xa9 \xff\xfe\x00 raw\r\n";
    std::fs::write(&s.log, input).unwrap();
    let proc = start(&s);
    wait_until("the line", || count_lines(&s.out) >= 1);
    stop(proc);
    assert_eq!(std::fs::read(&s.out).unwrap(), b"Date caf\xc3\xa9 \xff\xfe\x00 raw\n");
}

#[test]
fn a_glob_covering_the_output_never_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "from a\n").unwrap();
    let out = dir.path().join("out.log");
    let glob = format!("{}/*.log", dir.path().display());
    let mut proc = Proc::spawn(
        BIN,
        &[
            "--follow",
            &glob,
            "-e",
            "s/^/> /",
            "--output",
            out.to_str().unwrap(),
            "--output-max-size",
            "1KiB",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    proc.wait_for_line(FOLLOWING);
    wait_until("the line", || count_lines(&out) >= 1);
    std::fs::write(dir.path().join("b.log"), "from b\n").unwrap();
    wait_until("the second file's line", || count_lines(&out) >= 2);
    stop(proc);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["> from a", "> from b"]);
}

#[test]
fn a_file_rotated_while_stopped_is_resumed_when_the_pattern_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    let pattern = format!("{}*", log.display());
    let args = [
        "--follow",
        pattern.as_str(),
        "-e",
        "s/^/Date /",
        "--output",
        out.to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
    ];
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let mut proc = Proc::spawn(BIN, &args, &[]);
    proc.wait_for_line(FOLLOWING);
    wait_until("two lines", || count_lines(&out) >= 2);
    stop(proc);
    // While it is down: more lines, a rotation by rename, a new file.
    OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"three\n")
        .unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&log, "four\n").unwrap();
    let mut proc = Proc::spawn(BIN, &args, &[]);
    proc.wait_for_line(FOLLOWING);
    wait_until("four lines", || count_lines(&out) >= 4);
    stop(proc);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // Two files are read concurrently after the restart: order within each.
    let three = lines.iter().position(|l| *l == "Date three");
    assert!(three.is_some(), "{text}");
    lines.sort();
    assert_eq!(lines, ["Date four", "Date one", "Date three", "Date two"], "{text}");
}

/// With a glob that also covers copytruncate's copies, nothing is lost, but
/// the tailer reads each copy (a new file) from its head, so its lines come
/// out twice. FIXME(podkit-tailer): recognise a copy by its fingerprint and
/// resume it from the truncated file's offset; then assert no duplicates.
/// Until then the README says to keep copies out of the pattern
/// (`--follow-exclude`).
#[test]
fn copytruncate_with_a_glob_covering_the_copies_loses_nothing_but_repeats_the_copies() {
    let s = setup();
    std::fs::write(&s.log, "").unwrap();
    let pattern = format!("{}*", s.log.display());
    let mut args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    args[1] = &pattern;
    let mut proc = Proc::spawn(BIN, &args, &[]);
    proc.wait_for_line(FOLLOWING);
    let run = app(
        &s.log,
        &s.out,
        Duration::from_secs(10),
        Rotation::CopyTruncate,
        Duration::from_secs(2),
        &|_| true,
        None,
    );
    let last = format!("Date seq={:08} ", run.written - 1);
    let out_len = || std::fs::metadata(&s.out).map_or(0, |m| m.len());
    podkit_testkit::wait_until_progressing("the output to catch up", out_len, || {
        std::fs::read_to_string(&s.out).is_ok_and(|t| t.contains(&last))
    });
    // The copies are read concurrently with the live file: let them finish.
    let expected = run.written as usize - run.destroyed.len();
    podkit_testkit::wait_until_progressing("the copies", out_len, || count_lines(&s.out) >= expected);
    stop(proc);
    let seqs = output_seqs(&s.out);
    let mut seen = BTreeSet::new();
    let dups: Vec<u64> = seqs.iter().copied().filter(|s| !seen.insert(*s)).collect();
    let lost: Vec<u64> = (0..run.written)
        .filter(|s| !seen.contains(s) && !run.destroyed.contains(s))
        .collect();
    eprintln!(
        "CopyTruncate, glob covers copies: written {}, output {}, destroyed {}, duplicated {}, lost {}",
        run.written,
        seqs.len(),
        run.destroyed.len(),
        dups.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost {:?}", &lost[..lost.len().min(10)]);
    assert!(!dups.is_empty(), "the FIXME above is fixed: assert no duplicates now");
}

#[test]
fn follow_exclude_keeps_copies_out() {
    let s = setup();
    std::fs::write(&s.log, "live\n").unwrap();
    std::fs::write(s.log.with_extension("log.1"), "old copy\n").unwrap();
    let pattern = format!("{}*", s.log.display());
    let mut args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    args[1] = &pattern;
    args.extend(["--follow-exclude", "app.log.*"]);
    let mut proc = Proc::spawn(BIN, &args, &[]);
    proc.wait_for_line(FOLLOWING);
    wait_until("the live line", || count_lines(&s.out) >= 1);
    stop(proc);
    assert_eq!(std::fs::read_to_string(&s.out).unwrap(), "Date live\n");
}
