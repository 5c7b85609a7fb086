//! Live reload of `--config` from a ConfigMap volume on the real binary:
//! the kubelet's `..data` symlink swap changes the rules while an app keeps
//! writing; every line appears exactly once, rewritten whole by the old or
//! the new rules (never a mix, never the old after the new), and lines
//! written after "Config reloaded." use the new ones. A bad file is rejected
//! (logged, counted, old rules kept); a change to a setting that needs a
//! restart is shown in `/readyz`, which stays 200.

use std::path::Path;

use podkit_testkit::configmap::{ConfigMapDir, metric, reloads, seq_writer};
use podkit_testkit::{http_get, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_tail-rewrite");

fn config(log: &Path, out: &Path, expression: &str, extra: &str) -> String {
    format!(
        "follow = [{:?}]\noutput = {:?}\nexpression = [{expression:?}]\n{extra}",
        log.display().to_string(),
        out.display().to_string()
    )
}

/// The output's lines as (prefix, seq).
fn output(out: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (prefix, seq) = l.rsplit_once("seq=").unwrap_or_else(|| panic!("bad output line {l:?}"));
            (
                prefix.to_owned(),
                seq.parse().unwrap_or_else(|_| panic!("bad output line {l:?}")),
            )
        })
        .collect()
}

/// Waits until the output holds every line written so far (the app paused
/// or stopped).
fn wait_output(out: &Path, written: u64) {
    wait_until(&format!("{written} lines in the output"), || {
        output(out).len() as u64 >= written
    });
}

#[test]
fn a_configmap_swap_changes_the_rules_between_lines_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    std::fs::write(&log, "").unwrap();
    let mut map = ConfigMapDir::new(
        &dir.path().join("config"),
        "cfg.toml",
        &config(&log, &out, "s/^/old /", ""),
    );
    let (mut proc, admin) = map.spawn(BIN);
    assert_eq!(reloads(admin, "applied"), Some(0.0));

    let writer = seq_writer(&log);
    wait_until("some lines rewritten by the old rules", || output(&out).len() > 50);

    // The swap, while the app writes.
    map.update(&config(&log, &out, "s/^/new /", ""));
    proc.wait_for_line("Config reloaded.");
    let after_reload = writer.written() + 1;
    assert_eq!(reloads(admin, "applied"), Some(1.0));
    wait_until("lines written after the reload", || {
        writer.written() > after_reload + 50
    });

    // A bad file: rejected, the new rules stay.
    map.update(&config(&log, &out, "s/unterminated", ""));
    let rejected = proc.wait_for_line("Config rejected");
    assert!(
        rejected.contains("unterminated") || rejected.contains("expression"),
        "{rejected}"
    );
    assert_eq!(reloads(admin, "rejected"), Some(1.0));
    assert_eq!(metric(admin, "podkit_config_last_reload_successful"), Some(0.0));
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("config: rejected"), "{}", ready.body);
    let after_reject = writer.written();
    wait_until("lines written after the rejection", || {
        writer.written() > after_reject + 50
    });

    // A live change plus one that needs a restart.
    map.update(&config(&log, &out, "s/^/third /", "max-line-bytes = \"64KiB\"\n"));
    proc.wait_for_line("these settings keep their running values until a restart");
    let after_third = writer.written() + 1;
    assert_eq!(reloads(admin, "restart_required"), Some(1.0));
    assert_eq!(metric(admin, "podkit_config_last_reload_successful"), Some(1.0));
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "the old settings keep working: {}", ready.body);
    assert_eq!(ready.body, "ready\nconfig: restart required for max-line-bytes\n");
    wait_until("lines written after the third version", || {
        writer.written() > after_third + 50
    });

    let total = writer.stop();
    wait_output(&out, total);
    proc.stop_ok();

    let lines = output(&out);
    let seqs: Vec<u64> = lines.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "every line exactly once, in order"
    );
    // Each line rewritten whole by one version, the versions in order.
    let rank = |p: &str| match p {
        "old " => 0,
        "new " => 1,
        "third " => 2,
        other => panic!("line rewritten by no version: {other:?}"),
    };
    let ranks: Vec<u8> = lines.iter().map(|(p, _)| rank(p)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "a version never comes back");
    for (prefix, seq) in &lines {
        if *seq >= after_third {
            assert_eq!(
                prefix, "third ",
                "seq={seq} was written after the third version was reloaded"
            );
        } else if *seq >= after_reload {
            assert_ne!(prefix, "old ", "seq={seq} was written after the reload");
        }
    }
    assert!(ranks.contains(&0) && ranks.contains(&1), "both versions ran");
}
