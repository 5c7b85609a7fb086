//! `--once` (pipe mode) on the real binary: sed-compatible output, exit codes,
//! errors naming the position, SIGTERM flushing, a closed stdout.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use podkit_testkit::{PATIENCE, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_tail-rewrite");

/// Runs `tail-rewrite ARGS` with `input` on stdin; returns (code, stdout, stderr).
fn pipe(args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_adapter_pod_expression_works_in_a_pipe() {
    let (code, out, err) = pipe(
        &["--once", "-e", "s/^/Date /"],
        b"Thu Nov 26 23:08:26 UTC 2026\nsecond\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"Date Thu Nov 26 23:08:26 UTC 2026\nDate second\n");
    assert!(
        err.is_empty(),
        "a filter writes nothing on stderr when all is well: {err}"
    );
}

#[test]
fn like_sed_a_missing_last_newline_stays_missing_and_bytes_pass_through() {
    let input = b"a\xff\xfeb\r\nno newline";
    let (code, out, _) = pipe(&["--once", "-e", "s/a/A/"], input);
    assert_eq!(code, 0);
    assert_eq!(out, b"A\xff\xfeb\r\nno newline");
}

#[test]
fn several_expressions_and_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("rules.sed");
    std::fs::write(&script, "# drop debug lines\n/DEBUG/d\ns/secret=[^ ]*/secret=***/g\n").unwrap();
    let f1 = dir.path().join("one.log");
    let f2 = dir.path().join("two.log");
    std::fs::write(&f1, "INFO secret=abc x\nDEBUG noise").unwrap();
    std::fs::write(&f2, "WARN y secret=def\n").unwrap();
    let (code, out, err) = pipe(
        &[
            "--once",
            "-f",
            script.to_str().unwrap(),
            "-e",
            "s/^/> /",
            f1.to_str().unwrap(),
            f2.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "> INFO secret=*** x\n> WARN y secret=***\n"
    );
}

#[test]
fn bad_expressions_exit_64_with_the_position() {
    for (args, needle) in [
        (
            &["--once", "-e", "s/a/b/x"][..],
            "-e expression #1, char 7: unknown option to `s`",
        ),
        (
            &["--once", "-e", "s/a/b/", "-e", "y/a/b/"],
            "-e expression #2, char 1: the `y`",
        ),
        (&["--once", "-e", r"s/\(a\)\1/b/"], "char 8: backreference \\1"),
        (&["--once", "-e", "1,5d"], "line-number addresses are not supported"),
        (&["--once", "--include", "("], "--include: invalid regular expression"),
        (&["--once", "--parse", "(x)", "--format", "json"], "no named capture"),
        (
            &["--once", "--field", "novalue", "--format", "json"],
            "--field: `novalue` is not KEY=VALUE",
        ),
    ] {
        let (code, out, err) = pipe(args, b"a\n");
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line of error: {err}");
    }
}

#[test]
fn json_output_is_valid_for_every_line() {
    let input = "2026-11-26T23:08:26Z INFO said \"hi\" \\ back\n\
                 2026-11-26T23:08:27Z WARN tab\there\n\
                 not matching\n";
    let mut bytes = input.as_bytes().to_vec();
    bytes.extend_from_slice(b"2026-11-26T23:08:28Z ERROR bad \xff byte\n");
    let (code, out, err) = pipe(
        &[
            "--once",
            "--format",
            "json",
            "--parse",
            r"^(?P<time>\S+) (?P<level>[A-Z]+) (?P<msg>.*)$",
            "--timestamp",
            "time",
            "--field",
            "pod=web-1",
        ],
        &bytes,
    );
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).expect("JSON output is UTF-8");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["msg"], "said \"hi\" \\ back");
    assert_eq!(records[0]["time"], "2026-11-26T23:08:26Z");
    assert_eq!(records[1]["msg"], "tab\there");
    assert_eq!(records[2]["message"], "not matching");
    assert_eq!(records[3]["msg"], "bad \u{FFFD} byte");
    assert!(records.iter().all(|r| r["pod"] == "web-1"));
}

#[test]
fn logfmt_and_field_from_env() {
    let mut child = Command::new(BIN)
        .args([
            "--once",
            "--format",
            "logfmt",
            "--field-from-env",
            "pod=POD_NAME",
            "--exclude",
            "^#",
        ])
        .env_clear()
        .env("POD_NAME", "adapter-pod")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# comment\nhello world\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "message=\"hello world\" pod=adapter-pod\n"
    );
}

#[test]
fn lines_appear_while_the_input_is_still_open() {
    // `tail -f app.log | tail-rewrite --once ...`: each line must show up
    // without waiting for more input or for the end.
    let mut child = Command::new(BIN)
        .args(["--once", "-e", "s/^/Date /"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    for i in 0..3 {
        stdin.write_all(format!("line {i}\n").as_bytes()).unwrap();
        let want = format!("Date line {i}\n");
        let mut got = vec![0u8; want.len()];
        stdout.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigterm_writes_what_was_read_and_exits_0() {
    let mut cmd = Command::new(BIN);
    cmd.args(["--once", "-e", "s/$/!/", "--log-level", "debug"]).env_clear();
    cmd.stdin(Stdio::piped());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    let mut got = vec![0u8; 10];
    stdout.read_exact(&mut got).unwrap();
    assert_eq!(got, b"one!\ntwo!\n");
    podkit_testkit::signal(child.id(), libc::SIGTERM);
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(0));
    drop(stdin);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(BIN)
        .args(["--once", "-e", "s/^/x/"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = vec![b'a'; 1023];
        for _ in 0..4096 {
            if stdin.write_all(&line).and_then(|()| stdin.write_all(b"\n")).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_admin_server_in_pipe_mode() {
    let proc = Proc::spawn(BIN, &["--once", "--admin-addr", "127.0.0.1:0"], &[]);
    let (status, _, err) = proc.finish();
    assert_eq!(status.code(), Some(0));
    assert!(!err.contains("Starting."), "{err}");
}

#[test]
fn rules_can_come_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("rewrite.toml");
    std::fs::write(&toml, "expression = [\"/^#/d\", \"s/^/Date /\"]\n").unwrap();
    let (code, out, err) = pipe(&["--once", "--config", toml.to_str().unwrap()], b"#x\nline\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"Date line\n");
    let yaml = dir.path().join("rewrite.yaml");
    std::fs::write(&yaml, "format: json\nfield:\n  - pod=web-1\n").unwrap();
    let (code, out, err) = pipe(&["--once", "--config", yaml.to_str().unwrap()], b"hi\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"{\"message\":\"hi\",\"pod\":\"web-1\"}\n");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "no-such-flag = 1\n").unwrap();
    let (code, _, err) = pipe(&["--once", "--config", bad.to_str().unwrap()], b"");
    assert_eq!(code, 64, "{err}");
}
