//! Live reload of `--config` from a ConfigMap volume on the real binary:
//! after the kubelet's `..data` symlink swap changes a label, records of
//! lines written after "Config reloaded." carry the new label, and every
//! line is shipped exactly once across the change; a bad file is rejected
//! (logged, counted, old labels kept); a change to what the tailer was
//! opened with is shown in `/readyz` as needing a restart.

mod support;

use std::path::Path;

use podkit_testkit::configmap::{ConfigMapDir, reloads, seq_writer};
use podkit_testkit::{http_get, wait_until};
use support::BIN;

fn config(log: &Path, out: &Path, state: &Path, label: &str) -> String {
    format!(
        "follow = [{:?}]\nsink = [{:?}]\nstate-dir = {:?}\nlabel = [{label:?}]\n",
        log.display().to_string(),
        format!("file://{}", out.display()),
        state.display().to_string()
    )
}

/// The shipped records as (seq, value of the `version` label).
fn shipped(out: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let seq = record["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("seq="))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no seq in {l}"));
            let version = record["version"]
                .as_str()
                .or_else(|| record["labels"]["version"].as_str())
                .unwrap_or_else(|| panic!("no version label in {l}"));
            (seq, version.to_owned())
        })
        .collect()
}

#[test]
fn a_configmap_swap_changes_the_labels_of_new_records_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.ndjson");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(&log, "").unwrap();
    let mut map = ConfigMapDir::new(
        &dir.path().join("config"),
        "log-shipper.toml",
        &config(&log, &out, &state, "version=v1"),
    );
    let (mut proc, admin) = map.spawn(BIN);
    let writer = seq_writer(&log);
    wait_until("records with the first label", || shipped(&out).len() > 50);

    map.update(&config(&log, &out, &state, "version=v2"));
    proc.wait_for_line("Config reloaded.");
    let after_reload = writer.written() + 1;
    assert_eq!(reloads(admin, "applied"), Some(1.0));
    wait_until("lines written after the reload", || {
        writer.written() > after_reload + 50
    });

    // A bad file: rejected, the new label stays.
    map.update(&config(&log, &out, &state, "no value"));
    let rejected = proc.wait_for_line("Config rejected");
    assert!(rejected.contains("no value"), "{rejected}");
    assert_eq!(reloads(admin, "rejected"), Some(1.0));
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    let after_reject = writer.written();
    wait_until("lines written after the rejection", || {
        writer.written() > after_reject + 50
    });

    // A setting the tailer was opened with: restart required, shown in
    // /readyz (still 200); the labels stay.
    map.update(&(config(&log, &out, &state, "version=v2") + "max-line-bytes = \"64KiB\"\n"));
    proc.wait_for_line("these settings keep their running values until a restart");
    assert_eq!(reloads(admin, "restart_required"), Some(1.0));
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body, "ready\nconfig: restart required for source default\n");

    let total = writer.stop();
    wait_until("every line shipped", || shipped(&out).len() as u64 >= total);
    proc.stop_ok();

    let records = shipped(&out);
    let seqs: Vec<u64> = records.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "every line exactly once, in order"
    );
    let v2_from = records
        .iter()
        .position(|(_, v)| v == "v2")
        .expect("some records carry v2");
    assert!(v2_from > 0, "the first records carry v1");
    assert!(records[..v2_from].iter().all(|(_, v)| v == "v1"));
    assert!(records[v2_from..].iter().all(|(_, v)| v == "v2"), "v1 never comes back");
    assert!(
        v2_from as u64 <= after_reload,
        "lines written after the reload carry v2"
    );
}
