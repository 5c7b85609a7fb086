//! `k8s/daemonset.yaml` on a docker engine: log-shipper in node mode, run
//! from the image with the manifest's args, env, mounts and security
//! context (uid 0, read-only root, no capabilities, no privilege
//! escalation), reading a directory laid out like the kubelet's
//! `/var/log/pods` mounted read-only. A busybox container plays the
//! container runtime: it writes CRI-format files for two pods (partial
//! lines, stdout and stderr) and rotates one the kubelet's way (rename to
//! `0.log.<timestamp>` while it still writes to the renamed file, then a
//! new `0.log`), next to an old `.gz` copy that must never be shipped. A
//! busybox `httpd` with a CGI script on the same private network is the
//! collector. Every line must arrive once, with its pod's labels, its
//! stream, the node name from the downward API and the runtime's time;
//! SIGTERM must end the shipper with 0.
//!
//! A `harness = false` binary run by `podkit_testkit::runner`: with no
//! docker engine (or no busybox-static) the test prints `SKIPPED: reason`.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use podkit_testkit::pod::{self, Images, Network};
use podkit_testkit::{runner, wait_until};
use podkit_tests::root;
use serde_json::Value;

const NAME: &str = "daemonset_ships_every_container_line_with_its_labels";
const NODE: &str = "node-a";
const UID_A: &str = "6b0f7e2c-1d3a-4c5b-9e8f-0a1b2c3d4e5f";
const UID_B: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

fn main() {
    runner::run_tests(&[(NAME, |images: &Images| Ok(scenario(images)?))], || {
        podkit_testkit::images::build(&root())
    });
}

/// A host directory for the run, removed at the end.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `uid:gid` of this test, so what the helper containers write stays ours.
fn user() -> String {
    let id = |flag: &str| {
        let out = Command::new("id").arg(flag).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    format!("{}:{}", id("-u"), id("-g"))
}

/// The runtime's shell: `emit CONTAINER SEQ` writes line SEQ of CONTAINER
/// to fd 3 in the CRI format; every fifth in two pieces (P, then F), every
/// seventh (from 3) on stderr.
const EMIT: &str = r#"
emit() {
  t=$(printf '2026-12-06T02:%02d:%02d.123456789Z' $(($2 / 60)) $(($2 % 60)))
  st=stdout
  if [ $(($2 % 7)) -eq 3 ]; then st=stderr; fi
  m="$1 line $2"
  if [ $(($2 % 5)) -eq 0 ]; then
    printf '%s %s P %.4s\n%s %s F %s\n' "$t" "$st" "$m" "$t" "$st" "${m#????}" >&3
  else
    printf '%s %s F %s\n' "$t" "$st" "$m" >&3
  fi
}
emit_range() { s=$2; while [ "$s" -lt "$3" ]; do emit "$1" "$s"; s=$((s + 1)); done; }
"#;

/// The pods' log directories: (path under the root, namespace, pod, uid, container).
fn containers() -> [(String, &'static str, &'static str, &'static str, &'static str); 3] {
    [
        (format!("shop_web-7d9f_{UID_A}/app"), "shop", "web-7d9f", UID_A, "app"),
        (
            format!("shop_web-7d9f_{UID_A}/proxy"),
            "shop",
            "web-7d9f",
            UID_A,
            "proxy",
        ),
        (
            format!("kube-system_dns-5c4b_{UID_B}/dns"),
            "kube-system",
            "dns-5c4b",
            UID_B,
            "dns",
        ),
    ]
}

/// Records in the collector's file.
fn collected(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("received.ndjson")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The DaemonSet's pod template and its one container.
fn manifest() -> (Value, Value) {
    let text = std::fs::read_to_string(root().join("k8s/daemonset.yaml")).expect("k8s/daemonset.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("k8s/daemonset.yaml parses");
    let ds = docs
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet in k8s/daemonset.yaml");
    let pod = ds["spec"]["template"]["spec"].clone();
    let container = pod["containers"][0].clone();
    (pod, container)
}

/// `docker run` flags for the manifest's container: its security context,
/// env (the downward API's node name), and volumes (hostPath `/var/log/pods`
/// → `pods`, the state directory → an anonymous volume).
fn flags(pod: &Value, container: &Value, pods: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let psc = &pod["securityContext"];
    let csc = &container["securityContext"];
    let uid = csc["runAsUser"].as_u64().or(psc["runAsUser"].as_u64());
    let gid = csc["runAsGroup"].as_u64().or(psc["runAsGroup"].as_u64());
    if let Some(uid) = uid {
        out.push(format!("--user={uid}:{}", gid.unwrap_or(uid)));
    }
    if csc["readOnlyRootFilesystem"] == true {
        out.push("--read-only".into());
    }
    if csc["allowPrivilegeEscalation"] == false {
        out.push("--security-opt=no-new-privileges".into());
    }
    for cap in csc["capabilities"]["drop"].as_array().into_iter().flatten() {
        out.push(format!("--cap-drop={}", cap.as_str().unwrap_or_default()));
    }
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        let value = match (&env["value"], &env["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(path)) if path == "spec.nodeName" => NODE.to_owned(),
            other => return Err(format!("env {name}: {other:?} is not emulated")),
        };
        out.push(format!("--env={name}={value}"));
    }
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let at = mount["mountPath"].as_str().unwrap_or_default();
        let volume = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .ok_or(format!("volume {name} is not declared"))?;
        let host = volume["hostPath"]["path"].as_str().unwrap_or_default();
        let ro = if mount["readOnly"] == true { ":ro" } else { "" };
        match host {
            "/var/log/pods" => out.push(format!("--volume={}:{at}{ro}", pods.display())),
            // State: a fresh anonymous volume, removed with the container.
            _ => out.push(format!("--volume={at}")),
        }
    }
    Ok(out)
}

fn scenario(images: &Images) -> Result<(), String> {
    let run = pod::run_id("node-daemonset");
    let tmp = TempDir(std::env::temp_dir().join(&run));
    let (pods, collected_dir) = (tmp.0.join("pods"), tmp.0.join("collected"));
    for d in [&pods, &collected_dir] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let busybox = images.resolve("busybox").map_err(|e| e.0)?;
    let network = Network::create(&run).map_err(|e| e.0)?;
    let user = user();

    // The collector: busybox httpd appending each POSTed body to a file.
    let cgi = "#!/bin/sh\nhead -c \"$CONTENT_LENGTH\" >> /data/received.ndjson\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n";
    let collector_cmd = format!(
        "mkdir -p /tmp/www/cgi-bin && printf '%s' '{}' > /tmp/www/cgi-bin/ingest && chmod +x /tmp/www/cgi-bin/ingest \
         && exec httpd -f -p 8080 -h /tmp/www",
        cgi.replace('\'', r"'\''")
    );
    let data = format!("{}:/data", collected_dir.display());
    network
        .start_helper(
            "collector",
            &["collector"],
            &["--user", &user, "-v", &data],
            busybox,
            &["sh", "-c", &collector_cmd],
        )
        .map_err(|e| e.0)?;

    // The shipper, as the manifest runs it, with the collector as its sink.
    let (pod_spec, container) = manifest();
    let image = images
        .resolve(container["image"].as_str().unwrap_or_default())
        .map_err(|e| e.0)?;
    let mut args: Vec<String> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect();
    let sink = args
        .iter()
        .position(|a| a == "--sink")
        .ok_or("the manifest gives no --sink")?;
    args[sink + 1] = "http://collector:8080/cgi-bin/ingest".into();
    let flags = flags(&pod_spec, &container, &pods)?;
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let shipper = network
        .start_helper("log-shipper", &["log-shipper"], &flag_refs, image, &arg_refs)
        .map_err(|e| e.0)?;
    let mut ready = false;
    wait_until("the shipper to follow /var/log/pods", || {
        ready = pod::logs(&shipper).contains("Following.");
        ready || pod::exit_code(&shipper).ok().flatten().is_some()
    });
    if !ready {
        return Err(format!("the shipper stopped: {}", pod::logs(&shipper)));
    }
    let probe = network
        .run_once(&[], busybox, &["wget", "-qO-", "http://log-shipper:9701/readyz"])
        .map_err(|e| e.0)?;
    if !probe.status.success() {
        return Err(format!("/readyz on 9701 is not 200: {probe:?}"));
    }

    // The runtime writes 100 lines per container, plus an old compressed copy.
    let runtime = |script: &str| -> Result<(), String> {
        let mount = format!("{}:/var/log/pods", pods.display());
        let script = format!("set -e\n{EMIT}\n{script}");
        let out = network
            .run_once(&["--user", &user, "-v", &mount], busybox, &["sh", "-c", &script])
            .map_err(|e| e.0)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "runtime script failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let mut script = String::new();
    for (dir, _, _, _, name) in containers() {
        script.push_str(&format!(
            "d=/var/log/pods/{dir}; mkdir -p $d; exec 3>>$d/0.log; emit_range {name} 0 100; exec 3>&-\n"
        ));
    }
    let app = &containers()[0].0;
    script.push_str(&format!(
        "echo 'compressed earlier: never shipped' | gzip > /var/log/pods/{app}/0.log.20261206-010000.gz\n"
    ));
    runtime(&script)?;
    wait_until("the first 300 lines at the collector", || {
        collected(&collected_dir).len() >= 300
    });

    // The kubelet rotates app's log: rename, the runtime writes on into the
    // renamed file, then reopens 0.log.
    runtime(&format!(
        "d=/var/log/pods/{app}; exec 3>>$d/0.log; mv $d/0.log $d/0.log.20261206-021608; \
         emit_range app 100 150; exec 3>>$d/0.log; emit_range app 150 200; exec 3>&-\n"
    ))?;
    wait_until("all 400 lines at the collector", || {
        collected(&collected_dir).len() >= 400
    });

    let stop = pod::docker(&["stop", "-t", "30", &shipper]).map_err(|e| e.0);
    let code = pod::exit_code(&shipper).map_err(|e| e.0)?;
    stop?;
    if code != Some(0) {
        return Err(format!("SIGTERM: exit {code:?}: {}", pod::logs(&shipper)));
    }

    // Every line once, with its labels and the runtime's time.
    let records = collected(&collected_dir);
    let mut seen: HashMap<String, Value> = HashMap::new();
    for r in &records {
        let message = r["message"].as_str().unwrap_or_default().to_owned();
        if seen.insert(message.clone(), r.clone()).is_some() {
            return Err(format!("shipped twice: {message}"));
        }
    }
    let mut expected = 0;
    for (_, namespace, pod_name, uid, name) in containers() {
        let lines = if name == "app" { 200 } else { 100 };
        for seq in 0..lines {
            expected += 1;
            let message = format!("{name} line {seq}");
            let r = seen.get(&message).ok_or(format!("lost: {message}"))?;
            let stream = if seq % 7 == 3 { "stderr" } else { "stdout" };
            let time = format!("2026-12-06T02:{:02}:{:02}.123Z", seq / 60, seq % 60);
            let want = [
                ("namespace", namespace),
                ("pod", pod_name),
                ("pod_uid", uid),
                ("container", name),
                ("stream", stream),
                ("node", NODE),
                ("timestamp", time.as_str()),
            ];
            for (key, value) in want {
                if r[key] != value {
                    return Err(format!("{message}: {key} is {}, not {value}: {r}", r[key]));
                }
            }
        }
    }
    if records.len() != expected {
        return Err(format!("{} records, {expected} expected", records.len()));
    }
    Ok(())
}
