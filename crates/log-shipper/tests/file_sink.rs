//! The `file://` sink's size rotation with the real binary: every line
//! shipped across several rotations, and across a restart, is in exactly
//! one of the files, once, in order.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use podkit_testkit::wait_until;
use support::*;

/// Rotation size: a few dozen records per file.
const MAX_SIZE: u64 = 16 * 1024;

/// The sink's files, oldest first: `out.N` … `out.1`, then `out`.
fn files_oldest_first(out: &Path) -> Vec<PathBuf> {
    let mut numbered: Vec<(usize, PathBuf)> = fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("shipped.ndjson.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if out.exists() {
        files.push(out.to_owned());
    }
    files
}

/// Complete records in the sink's files now, for waiting: only newlines are
/// counted, since the shipper may be writing (or rotating) while they are
/// read.
fn records_now(out: &Path) -> usize {
    files_oldest_first(out)
        .iter()
        .map(|f| fs::read(f).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()))
        .sum()
}

/// The sequence numbers of the records in the sink's files, oldest first
/// (once the shipper has stopped).
fn shipped(out: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for file in files_oldest_first(out) {
        let text = fs::read_to_string(&file).unwrap();
        for record in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(record).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {record}", file.display()));
            let message = v["message"].as_str().unwrap_or_default();
            seqs.push(parse(message).unwrap_or_else(|| panic!("{}: not an app line: {record}", file.display())));
        }
    }
    seqs
}

#[test]
fn size_rotation_keeps_every_line_once_and_in_order_across_files_and_a_restart() {
    let d = Dirs::new();
    let log = d.app_log();
    let out_dir = d.logs.parent().unwrap().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("shipped.ndjson");
    let sink = format!("file://{}", out.display());
    let (follow, state) = (Dirs::s(&log), Dirs::s(&d.state));
    let max_size = MAX_SIZE.to_string();
    let args = [
        "--follow",
        &follow,
        "--state-dir",
        &state,
        "--sink",
        &sink,
        "--file-max-size",
        &max_size,
        // Enough to keep every rotated file of this test.
        "--file-keep",
        "100",
    ];

    // Lines already there at start, then more in small appends while it
    // runs (several writes, several rotations each).
    append(&log, (0..400).map(line));
    let shipper = Shipper::start(&args, &[]);
    for chunk in 0..8 {
        let from = 400 + chunk * 100;
        append(&log, (from..from + 100).map(line));
    }
    wait_until("1200 records in the sink's files", || records_now(&out) >= 1200);
    shipper.stop_ok();

    // A restart continues the current file where it stopped and rotates on.
    let shipper = Shipper::start(&args, &[]);
    for chunk in 0..6 {
        let from = 1200 + chunk * 100;
        append(&log, (from..from + 100).map(line));
    }
    wait_until("1800 records in the sink's files", || records_now(&out) >= 1800);
    shipper.stop_ok();

    // The files' contents, oldest first, are the input: nothing lost,
    // nothing repeated, nothing out of order.
    assert_eq!(shipped(&out), (0..1800).collect::<Vec<u64>>());
    let files = files_oldest_first(&out);
    assert!(
        files.len() >= 10,
        "only {} files: too few rotations to test",
        files.len()
    );
    for file in &files {
        let bytes = fs::read(file).unwrap();
        assert!(
            bytes.len() as u64 <= MAX_SIZE,
            "{} holds {} bytes, over the {MAX_SIZE} limit",
            file.display(),
            bytes.len()
        );
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{} does not end at a line boundary",
            file.display()
        );
    }
}
