//! `ship-cri`: what reading container logs costs beside plain lines. The
//! same 2M lines of the ship mix, spread over 4 containers in a
//! `/var/log/pods`-like layout (`ROOT/NAMESPACE_POD_UID/CONTAINER/0.log`),
//! generated once, deterministically, into `target/bench-data`:
//!
//! - `plain`: the lines as they are, followed with `--follow ROOT/*/*/*.log`
//!   (the baseline);
//! - `cri`: each line as a CRI `F` piece (`TIME STREAM F LINE`; one line in
//!   ten on stderr), shipped in node mode (`--kubernetes-node
//!   --kubernetes-log-root ROOT`: pod labels from the path, the runtime's
//!   time and stream);
//! - `cri partial`: the same with every fourth line split (at character
//!   boundaries) into three pieces, `P`, `P`, `F`, which the shipper joins;
//! - `cri stdout only`: as `cri`, all on stdout (one label set per file:
//!   what the streams' interleaving costs);
//! - `cri java`: CRI files where one record slot in 25 is a Java exception
//!   (a message, `\tat` frames, a `Caused by:` with its frames and
//!   `\t... N more`, all on stderr) instead of a line of the mix, shipped
//!   with `--multiline java`; the sink counts the joined records.
//!
//! The flush timeout is 10 s for `cri partial` and 3 s for `cri java`
//! (1 s by default), as in the runs the README's table compares with. It
//! counts only while a file is read to its end and the shipper waits for
//! more, so a record whose pieces straddle two reads never leaves in two
//! parts, whatever the timeout. `cri java`'s wall time includes the wait
//! for its files' last records.
//!
//! Every variant holds 2M lines the app wrote (the unit: CPU-µs per line);
//! the sink is the NDJSON counting sink, and each variant's CPU per line is
//! given as a multiple of `plain`'s in the same run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Expect, LINES, Out, log_shipper_with, mixed_line, ship_once};
use crate::bench::rewrite::Rng;
use crate::bench::{Contender, Env, Scenario};

/// Containers (files) the lines are spread over.
const CONTAINERS: u64 = 4;

/// One record slot in this many is a Java exception in the `java` variant.
const TRACE_EVERY: u64 = 25;

pub fn scenario() -> Scenario {
    Scenario {
        name: "ship-cri",
        about: "2M lines in 4 container log files: plain vs CRI (node mode; stdout+stderr, stdout only), CRI with partial lines, \
                CRI + --multiline java with stack traces",
        unit: "lines",
        tools: &[],
        setup,
    }
}

/// The input variants, in table order; `plain` is the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Cri,
    Partial,
    Java,
    Stdout,
}

impl Variant {
    const ALL: [Self; 5] = [Self::Plain, Self::Cri, Self::Partial, Self::Java, Self::Stdout];

    fn dir(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Cri => "cri",
            Self::Partial => "cri-partial",
            Self::Java => "cri-java",
            Self::Stdout => "cri-stdout",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Cri => "cri",
            Self::Partial => "cri partial",
            Self::Java => "cri java",
            Self::Stdout => "cri stdout only",
        }
    }

    /// The shipper's flags for the variant's log root.
    fn args(self, root: &Path) -> Vec<String> {
        let root = root.display().to_string();
        match self {
            Self::Plain => vec!["--follow".into(), format!("{root}/*/*/*.log")],
            Self::Cri | Self::Stdout => vec!["--kubernetes-node".into(), "--kubernetes-log-root".into(), root],
            Self::Partial => vec![
                "--kubernetes-node".into(),
                "--kubernetes-log-root".into(),
                root,
                "--multiline-flush-timeout".into(),
                "10s".into(),
            ],
            Self::Java => vec![
                "--kubernetes-node".into(),
                "--kubernetes-log-root".into(),
                root,
                "--multiline".into(),
                "java".into(),
                "--multiline-flush-timeout".into(),
                "3s".into(),
            ],
        }
    }
}

/// The container runtime's time of line `i`, RFC 3339 with nanoseconds:
/// a millisecond apart, with varied nanosecond digits.
fn cri_time(i: u64, out: &mut Vec<u8>) {
    let secs = i / 1000;
    let nanos = (i % 1000) * 1_000_000 + (i * 7919) % 1_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let _ = write!(out, "2026-12-06T{h:02}:{m:02}:{s:02}.{nanos:09}Z");
}

/// Appends one CRI piece: `TIME STREAM TAG CONTENT\n`.
fn cri_piece(out: &mut Vec<u8>, i: u64, stderr: bool, tag: char, content: &[u8]) {
    cri_time(i, out);
    let stream = if stderr { "stderr" } else { "stdout" };
    let _ = write!(out, " {stream} {tag} ");
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// `line` in three pieces cut at character boundaries near a third and two
/// thirds (fewer when it is too short to cut).
fn split_pieces(line: &str) -> Vec<&str> {
    let boundary = |mut at: usize| {
        while !line.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    let (a, b) = (boundary(line.len() / 3), boundary(line.len() * 2 / 3));
    [&line[..a], &line[a..b], &line[b..]]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect()
}

/// A Java exception of at most `room` lines (at least 1): the message, its
/// frames, a cause with its frames and `... N more`.
fn java_trace(rng: &mut Rng, i: u64, room: u64) -> Vec<String> {
    let class = rng.pick(&["OrderService", "PaymentClient", "CartRepository", "SessionFilter"]);
    let mut lines = vec![format!(
        "2026-12-06T00:00:00.000Z ERROR [worker-{}] request failed id={i}",
        rng.next() % 8
    )];
    lines.push(format!(
        "java.lang.IllegalStateException: {class} could not complete id={i}"
    ));
    for (n, frame) in ["process", "handle", "invoke", "doFilter", "service", "run", "runWorker"]
        .iter()
        .enumerate()
    {
        lines.push(format!(
            "\tat com.example.shop.{class}.{frame}({class}.java:{})",
            40 + n * 17
        ));
    }
    lines.push("Caused by: java.net.SocketTimeoutException: Read timed out".into());
    lines.push("\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)".into());
    lines.push("\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)".into());
    lines.push("\t... 7 more".into());
    lines.truncate(room.max(1) as usize);
    lines
}

/// Whether `line` starts a record under `--multiline java` (the shipper's
/// rule: indented, `Caused by:` and `Suppressed:` lines continue one). The
/// logger's line and the exception's first line are two records.
fn java_starts(line: &[u8]) -> bool {
    !(line.starts_with(b" ")
        || line.starts_with(b"\t")
        || line.starts_with(b"Caused by:")
        || line.starts_with(b"Suppressed:"))
}

/// What the generator wrote for one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    lines: u64,
    records: u64,
}

/// Writes one container's file of every variant into `files` (in
/// [`Variant::ALL`] order), `lines` lines each, starting at line `first`.
fn write_container(files: &mut [&mut dyn std::io::Write; 5], first: u64, lines: u64) -> Result<[Written; 5]> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut trace_rng = Rng(0x9E37_79B9 ^ first | 1);
    let mut line = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(1024);
    let mut written = [Written { lines: 0, records: 0 }; 5];
    // The mix, for plain, cri and cri partial.
    for i in first..first + lines {
        line.clear();
        mixed_line(&mut rng, i, &mut line);
        line.pop();
        let stderr = i % 10 == 9;
        files[0].write_all(&line)?;
        files[0].write_all(b"\n")?;
        out.clear();
        cri_piece(&mut out, i, stderr, 'F', &line);
        files[1].write_all(&out)?;
        out.clear();
        let text = std::str::from_utf8(&line).context("the mix is UTF-8")?;
        let pieces = if i % 4 == 1 { split_pieces(text) } else { vec![text] };
        for (n, piece) in pieces.iter().enumerate() {
            let tag = if n + 1 == pieces.len() { 'F' } else { 'P' };
            cri_piece(&mut out, i, stderr, tag, piece.as_bytes());
        }
        files[2].write_all(&out)?;
        out.clear();
        cri_piece(&mut out, i, false, 'F', &line);
        files[4].write_all(&out)?;
    }
    for w in [0, 1, 2, 4] {
        written[w] = Written { lines, records: lines };
    }
    // The mix with Java exceptions, for cri java.
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ first.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut i = first;
    let mut slot = 0;
    while i < first + lines {
        out.clear();
        if slot % TRACE_EVERY == TRACE_EVERY / 2 {
            for text in java_trace(&mut trace_rng, i, first + lines - i) {
                cri_piece(&mut out, i, true, 'F', text.as_bytes());
                written[3].records += u64::from(java_starts(text.as_bytes()));
                i += 1;
            }
        } else {
            line.clear();
            mixed_line(&mut rng, i, &mut line);
            line.pop();
            cri_piece(&mut out, i, i % 10 == 9, 'F', &line);
            written[3].records += u64::from(java_starts(&line));
            i += 1;
        }
        files[3].write_all(&out)?;
        slot += 1;
    }
    written[3].lines = lines;
    Ok(written)
}

/// The directory of container `c` under a log root.
fn container_dir(root: &Path, c: u64) -> PathBuf {
    root.join(format!(
        "bench_shop-{c}-7d9f4b-x2x{c}_0f9c3a0e-6a4e-4d3c-9a4e-2b1f1e0c7d1{c}"
    ))
    .join("app")
}

/// Every variant's log root and what it must deliver, generated once into
/// target/bench-data.
fn inputs() -> Result<Vec<(Variant, PathBuf, Expect)>> {
    let data = crate::build::target_dir().join("bench-data");
    std::fs::create_dir_all(&data)?;
    let base = std::fs::canonicalize(&data)?.join(format!("cri-v2-{LINES}"));
    let records_file = base.join("records");
    if !records_file.exists() {
        eprintln!("[bench] generating {}", base.display());
        let tmp = base.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut total = [Written { lines: 0, records: 0 }; 5];
        let per = LINES / CONTAINERS;
        for c in 0..CONTAINERS {
            let mut files = Vec::new();
            for v in Variant::ALL {
                let dir = container_dir(&tmp.join(v.dir()), c);
                std::fs::create_dir_all(&dir)?;
                let file = std::fs::File::create(dir.join("0.log"))?;
                files.push(std::io::BufWriter::with_capacity(1 << 20, file));
            }
            let [a, b, d, e, f] = files.as_mut_slice() else {
                unreachable!("one file per variant")
            };
            let written = write_container(&mut [a, b, d, e, f], c * per, per)?;
            for f in &mut files {
                f.flush()?;
            }
            for (t, w) in total.iter_mut().zip(written) {
                t.lines += w.lines;
                t.records += w.records;
            }
        }
        let text: Vec<String> = total.iter().map(|w| format!("{} {}", w.lines, w.records)).collect();
        std::fs::write(tmp.join("records"), text.join("\n"))?;
        let _ = std::fs::remove_dir_all(&base);
        std::fs::rename(&tmp, &base)?;
    }
    let text = std::fs::read_to_string(&records_file)?;
    let counts: Vec<Expect> = text
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next()) {
                (Some(Ok(units)), Some(Ok(records))) => Ok(Expect { units, records }),
                _ => anyhow::bail!("{}: bad line {l:?}", records_file.display()),
            }
        })
        .collect::<Result<_>>()?;
    anyhow::ensure!(
        counts.len() == Variant::ALL.len(),
        "{}: one line per variant",
        records_file.display()
    );
    Ok(Variant::ALL
        .into_iter()
        .zip(counts)
        .map(|(v, e)| (v, base.join(v.dir()), e))
        .collect())
}

fn setup(env: &Env) -> Result<Vec<Contender>> {
    Ok(inputs()?
        .into_iter()
        .map(|(variant, root, expect)| {
            let launch = log_shipper_with(env.bin("log-shipper"), variant.args(&root));
            let work = env.work.clone();
            Contender {
                name: variant.label().to_owned(),
                podkit: true,
                baseline: Some(0),
                run: Box::new(move || ship_once(&work, expect, Out::Http, &launch)),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_at_character_boundaries_and_join_back() {
        for line in [
            "Платёж отклонён, повтор через 5 с",
            "ab",
            "a",
            "注文の処理に失敗しました",
        ] {
            let pieces = split_pieces(line);
            assert_eq!(pieces.concat(), line);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(split_pieces("abcdef"), ["ab", "cd", "ef"]);
    }

    #[test]
    fn cri_pieces_have_the_runtime_framing() {
        let mut out = Vec::new();
        cri_piece(&mut out, 3_723_004, true, 'P', b"hello");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-06T01:02:03.004468676Z stderr P hello\n"
        );
    }

    #[test]
    fn every_variant_holds_the_same_lines_and_java_traces_join() {
        let mut bufs: [Vec<u8>; 5] = Default::default();
        let written = {
            let [a, b, c, d, e] = &mut bufs;
            write_container(&mut [a, b, c, d, e], 1000, 1000).unwrap()
        };
        let texts: Vec<String> = bufs.iter().map(|b| String::from_utf8(b.clone()).unwrap()).collect();
        // The content of a CRI line: after time, stream and tag.
        let content = |l: &str| l.splitn(4, ' ').nth(3).unwrap().to_owned();
        let plain: Vec<&str> = texts[0].lines().collect();
        assert_eq!(plain.len(), 1000);
        let cri: Vec<String> = texts[1].lines().map(content).collect();
        assert_eq!(cri, plain);
        assert!(texts[1].lines().any(|l| l.contains(" stderr F ")));
        let stdout: Vec<String> = texts[4].lines().map(content).collect();
        assert_eq!(stdout, plain);
        assert!(texts[4].lines().all(|l| l.contains(" stdout F ")));
        // Partial pieces join back into the same lines.
        let mut joined = Vec::new();
        let mut open = String::new();
        for l in texts[2].lines() {
            let tag = l.split(' ').nth(2).unwrap();
            open.push_str(&content(l));
            if tag == "F" {
                joined.push(std::mem::take(&mut open));
            }
        }
        assert_eq!(joined, plain);
        assert!(
            texts[2].lines().count() > 1400,
            "a quarter of the lines in three pieces"
        );
        // The java variant: 1000 lines, records = lines that start one.
        let java: Vec<String> = texts[3].lines().map(content).collect();
        assert_eq!(java.len(), 1000);
        let starts = java.iter().filter(|l| java_starts(l.as_bytes())).count() as u64;
        assert!(java.iter().any(|l| l.starts_with("\tat ")) && java.iter().any(|l| l.starts_with("Caused by:")));
        assert_eq!(
            written[3],
            Written {
                lines: 1000,
                records: starts
            }
        );
        assert!(starts < 800, "{starts} records: the traces join");
        assert_eq!(
            written[0],
            Written {
                lines: 1000,
                records: 1000
            }
        );
    }
}
