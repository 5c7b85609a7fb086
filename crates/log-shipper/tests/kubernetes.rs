//! Node mode with the real binary: a directory laid out like the kubelet's
//! `/var/log/pods`, containers writing CRI (with partial lines, stdout and
//! stderr) and docker json-file logs, rotated the kubelet's way (rename to
//! `0.log.<timestamp>` while the runtime still writes to the renamed file,
//! a new `0.log`, the older copy compressed to `.gz` at the next rotation),
//! and a restart in between: every line arrives once, whole, with its pod's
//! labels, its stream and the runtime's time.

mod support;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use podkit_testkit::sink::Sink;
use support::*;

const UID_A: &str = "6b0f7e2c-1d3a-4c5b-9e8f-0a1b2c3d4e5f";
const UID_B: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

/// The runtime's time of line `seq`.
fn time(seq: u64) -> Timestamp {
    Timestamp::from_millisecond(1_765_000_000_000 + seq as i64 * 7).unwrap()
}

fn stream(seq: u64) -> &'static str {
    if seq % 7 == 3 { "stderr" } else { "stdout" }
}

fn message(container: &str, seq: u64) -> String {
    format!("{container} line {seq} {}", "x".repeat((seq % 13) as usize))
}

/// Line `seq` of `container` in the CRI format; every fifth in three pieces.
fn cri(container: &str, seq: u64) -> String {
    let (t, s, m) = (time(seq), stream(seq), message(container, seq));
    if seq.is_multiple_of(5) {
        let (a, rest) = m.split_at(4);
        let (b, c) = rest.split_at(3);
        format!("{t} {s} P {a}\n{t} {s} P {b}\n{t} {s} F {c}\n")
    } else {
        format!("{t} {s} F {m}\n")
    }
}

/// Line `seq` of `container` in docker's json-file format; every fourth
/// split in two (docker splits long lines).
fn docker(container: &str, seq: u64) -> String {
    let (t, s, m) = (time(seq), stream(seq), message(container, seq));
    let entry = |log: &str| serde_json::json!({"log": log, "stream": s, "time": t.to_string()}).to_string();
    if seq.is_multiple_of(4) {
        let (a, b) = m.split_at(5);
        format!("{}\n{}\n", entry(a), entry(&format!("{b}\n")))
    } else {
        format!("{}\n", entry(&format!("{m}\n")))
    }
}

struct Container {
    dir: PathBuf,
    file: File,
}

impl Container {
    fn new(root: &Path, pod_dir: &str, name: &str) -> Self {
        let dir = root.join(pod_dir).join(name);
        fs::create_dir_all(&dir).unwrap();
        let file = Self::open(&dir);
        Self { dir, file }
    }

    fn open(dir: &Path) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("0.log"))
            .unwrap()
    }

    fn write(&mut self, text: &str) {
        self.file.write_all(text.as_bytes()).unwrap();
    }

    /// The kubelet's rotation: `0.log` renamed to `0.log.<stamp>`; the
    /// runtime keeps its file open until it is told to reopen.
    fn rename(&self, stamp: &str) -> PathBuf {
        let to = self.dir.join(format!("0.log.{stamp}"));
        fs::rename(self.dir.join("0.log"), &to).unwrap();
        to
    }

    /// The runtime reopens `0.log`.
    fn reopen(&mut self) {
        self.file = Self::open(&self.dir);
    }
}

/// The kubelet compresses an older rotated copy: `.gz` (written through a
/// `.tmp` file), then the copy is removed.
fn compress(path: &Path) {
    let data = fs::read(path).unwrap();
    let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
    let mut gz = flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    gz.finish().unwrap();
    fs::rename(&tmp, format!("{}.gz", path.display())).unwrap();
    fs::remove_file(path).unwrap();
}

/// A delivered record: its labels and message, with the time it carried.
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
struct Got {
    namespace: String,
    pod: String,
    pod_uid: String,
    container: String,
    stream: String,
    node: String,
    message: String,
}

fn received(sink: &Sink) -> (HashMap<Got, u32>, Vec<(String, Timestamp)>) {
    let mut counts = HashMap::new();
    let mut times = Vec::new();
    for r in sink.received_records() {
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let got = Got {
            namespace: s("namespace"),
            pod: s("pod"),
            pod_uid: s("pod_uid"),
            container: s("container"),
            stream: s("stream"),
            node: s("node"),
            message: s("message"),
        };
        times.push((got.message.clone(), s("timestamp").parse().unwrap()));
        *counts.entry(got).or_default() += 1;
    }
    (counts, times)
}

fn want(namespace: &str, pod: &str, uid: &str, container: &str, seqs: std::ops::Range<u64>) -> Vec<Got> {
    seqs.map(|seq| Got {
        namespace: namespace.into(),
        pod: pod.into(),
        pod_uid: uid.into(),
        container: container.into(),
        stream: stream(seq).into(),
        node: "node-1".into(),
        message: message(container, seq),
    })
    .collect()
}

#[test]
fn kubelet_rotation_and_a_restart_lose_and_repeat_nothing() {
    let d = Dirs::new();
    let root = d.logs.join("pods");
    let pod_a = format!("shop_web-7d9f-x2x_{UID_A}");
    let pod_b = format!("kube-system_dns-5c4b_{UID_B}");
    let mut app = Container::new(&root, &pod_a, "app");
    let mut proxy = Container::new(&root, &pod_a, "proxy");
    let mut dns = Container::new(&root, &pod_b, "dns");
    // Something the glob must never pick up: an old compressed copy.
    fs::write(app.dir.join("0.log.20261205-000000.gz"), b"\x1f\x8b not for shipping\n").unwrap();

    let sink = Sink::keeping_bodies();
    let url = sink.url("/");
    let root_s = Dirs::s(&root);
    let state = Dirs::s(&d.state);
    let args = [
        "--kubernetes-node",
        "--kubernetes-log-root",
        &root_s,
        "--state-dir",
        &state,
        "--sink",
        &url,
        "--label-from-env",
        "node=NODE_NAME",
    ];
    let env = [("NODE_NAME", "node-1")];
    let shipper = Shipper::start(&args, &env);

    for seq in 0..100 {
        app.write(&cri("app", seq));
        proxy.write(&cri("proxy", seq));
        dns.write(&docker("dns", seq));
    }
    // First rotation: the runtime writes on into the renamed file until it
    // reopens 0.log.
    let first = app.rename("20261206-021608");
    for seq in 100..150 {
        app.write(&cri("app", seq));
    }
    app.reopen();
    for seq in 150..250 {
        app.write(&cri("app", seq));
    }
    sink.wait_records(250 + 100 + 100);

    // Second rotation, then a restart while the shipper is down for the
    // runtime's last lines in the renamed file and the new file's first.
    let second = app.rename("20261206-021710");
    for seq in 250..300 {
        app.write(&cri("app", seq));
    }
    shipper.stop_ok();
    app.reopen();
    for seq in 300..350 {
        app.write(&cri("app", seq));
    }
    compress(&first);
    let shipper = Shipper::start(&args, &env);
    for seq in 350..400 {
        app.write(&cri("app", seq));
    }
    for seq in 100..120 {
        proxy.write(&cri("proxy", seq));
    }
    sink.wait_records(400 + 120 + 100);
    compress(&second);
    shipper.stop_ok();

    let (counts, times) = received(&sink);
    let mut expected = want("shop", "web-7d9f-x2x", UID_A, "app", 0..400);
    expected.extend(want("shop", "web-7d9f-x2x", UID_A, "proxy", 0..120));
    expected.extend(want("kube-system", "dns-5c4b", UID_B, "dns", 0..100));
    let missing: Vec<_> = expected.iter().filter(|g| !counts.contains_key(g)).take(5).collect();
    assert!(missing.is_empty(), "missing (first 5): {missing:?}");
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    assert_eq!(counts.len(), expected.len(), "nothing else was shipped");
    for (message, t) in times {
        let seq: u64 = message.split(' ').nth(2).unwrap().parse().unwrap();
        assert_eq!(t, time(seq), "{message}: the runtime's time");
    }
}
