//! The example pods of `k8s/` (one per classic pod pattern, with podkit
//! images in place of the usual stand-ins) run for real on a docker engine
//! with [`crate::pod`], each as a scenario that prints its steps (with the
//! time since it began) and returns what went wrong. `tests/tests/pods.rs`
//! runs them as tests and `cargo xtask pods` for a human.
//!
//! - [`sidecar_pod`]: log-shipper in place of nginx, serving the app's log
//!   directory on port 80: a client gets the app's dated lines at `/` (what
//!   the file held, read from the volume before and after the request),
//!   `?tail=1` gives the last line, a traversal and a symlink out of the
//!   directory are refused.
//! - [`shipper_pod`]: the same app, log-shipper shipping every line as NDJSON
//!   to a collector (a busybox httpd stand-in with a CGI script appending
//!   each POST body to a file); after the pod stopped, the collector holds
//!   each line of the app's log exactly once, in order, labelled with the
//!   pod, namespace and node from the downward API, the app and the
//!   container.
//! - [`ambassador_pod`]: podkit's ambassador in place of nginx-forward-proxy;
//!   a client of the pod's port 80 gets example.com's page (a busybox httpd
//!   stand-in known as `example.com` on the private network), the upstream
//!   sees `Host: example.com`, the ambassador runs as 65532 on a read-only
//!   root without capabilities and no_new_privs, and stops with exit 0 after
//!   the app containers (drain).
//! - [`adapter_pod`]: tail-rewrite in place of `tail -f | sed`; every line of
//!   app.log reaches out.log with the `Date ` prefix, the app's last ones too,
//!   since the adapter stops after the app; its checkpoint is in the volume.
//! - [`init_container_pod`]: wait-for holds the app back until both services
//!   it needs accept connections, then exits 0 and the app starts.
//! - [`init_container_timeout`]: with a 1 s timeout and no services, wait-for
//!   exits 124 and the app container is never created.
//!
//! Every podkit container is checked as the kernel sees it (uid/gid 65532,
//! no capabilities, no_new_privs, read-only root: [`check_hardened`]), and
//! stops with exit 0 after the app containers, within the grace period.
//! A pod held back by its init container starts on a thread while the
//! scenario acts beside it ([`start_held_back`], also used by the Helm
//! chart's pod test).
//!
//! Stand-ins and probes use the busybox image mapped as `busybox` in the
//! [`Images`].

#![allow(clippy::print_stdout)] // Scenarios narrate their steps on stdout.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::pod::{self, Images, Network, Pod, PodSpec, retry};
use crate::runner::check;
use crate::try_wait_until;

/// A scenario: name, and the function running it against the images and the
/// `k8s/` directory.
pub type Scenario = (&'static str, fn(&Images, &Path) -> Result<(), String>);

/// Every scenario, in the order they are best read.
pub const SCENARIOS: [Scenario; 6] = [
    ("sidecar_pod", sidecar_pod),
    ("shipper_pod", shipper_pod),
    ("ambassador_pod", ambassador_pod),
    ("adapter_pod", adapter_pod),
    ("init_container_pod", init_container_pod),
    ("init_container_timeout", init_container_timeout),
];

/// Prints a step with the time since `t0`.
fn step(t0: Instant, what: &str) {
    println!("  [{:6.2}s] {what}", t0.elapsed().as_secs_f64());
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that a [`retry`] loop awaiting the work of the pod's container
/// `container` succeeded; else the failure says what never came (`never`),
/// with the loop's output and the container's logs.
pub fn awaited(out: &std::process::Output, never: &str, pod: &Pod<'_>, container: &str) -> Result<(), String> {
    check(out.status.success(), || {
        format!(
            "{never}: {}\n{container} logs:\n{}",
            text(out),
            pod::logs(&pod.container_name(container))
        )
    })
}

/// A busybox httpd stand-in for a remote service, known on the network as
/// `alias`, with `files` (`(path, content, executable)`) under its web root.
struct StandIn {
    name: String,
    alias: String,
}

impl StandIn {
    /// Starts the container with its files in place, not listening yet: its
    /// name resolves (like a Kubernetes Service that exists before its
    /// endpoints are ready). Docker's DNS on an `--internal` network does not
    /// answer names it does not know (a lookup waits ~5 s for a timeout,
    /// where cluster DNS says NXDOMAIN at once), so names exist from the start.
    fn create(net: &Network, images: &Images, alias: &str, files: &[(&str, &str, bool)]) -> Result<Self, String> {
        let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
        let mut script = String::from("set -e; mkdir -p /tmp/www/cgi-bin; ");
        let mut env = Vec::new();
        for (i, (path, content, executable)) in files.iter().enumerate() {
            script.push_str(&format!("printf '%s' \"$FILE{i}\" > /tmp/www/{path}; "));
            if *executable {
                script.push_str(&format!("chmod +x /tmp/www/{path}; "));
            }
            env.push(format!("FILE{i}={content}"));
        }
        script.push_str("touch /tmp/prepared; exec sleep 2147483647");
        let mut flags = Vec::new();
        for e in &env {
            flags.extend(["-e", e.as_str()]);
        }
        let name = net
            .start_helper(alias, &[alias], &flags, busybox, &["sh", "-c", &script])
            .map_err(|e| e.to_string())?;
        Ok(Self {
            name,
            alias: alias.to_owned(),
        })
    }

    /// Starts httpd on `port` in the stand-in and waits until it answers.
    fn serve(&self, net: &Network, images: &Images, port: u16) -> Result<(), String> {
        let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
        let script = format!(
            "{}; exec httpd -f -p {port} -h /tmp/www",
            retry("[ -e /tmp/prepared ]", "true")
        );
        pod::docker(&["exec", "-d", &self.name, "sh", "-c", &script]).map_err(|e| e.to_string())?;
        let alias = &self.alias;
        let out = net
            .shell(
                &[],
                busybox,
                &retry(&format!("wget -q -O /dev/null http://{alias}:{port}/"), "true"),
            )
            .map_err(|e| e.to_string())?;
        check(out.status.success(), || {
            format!(
                "stand-in {alias} never answered: {}\n{}",
                text(&out),
                pod::logs(&self.name)
            )
        })
    }
}

fn load(k8s: &Path, manifest: &str) -> Result<PodSpec, String> {
    PodSpec::load(&k8s.join(manifest)).map_err(|e| e.to_string())
}

fn start(pod: &Pod<'_>, t0: Instant) -> Result<(), String> {
    pod.start(&mut |s| step(t0, s)).map_err(|e| e.to_string())
}

fn stop(pod: &Pod<'_>, t0: Instant) -> Result<Vec<pod::Stopped>, String> {
    let stopped = pod.stop().map_err(|e| e.to_string())?;
    for s in &stopped {
        step(
            t0,
            &format!(
                "{} exited {} ({:.2}s after SIGTERM)",
                s.container,
                s.exit_code,
                s.took.as_secs_f64()
            ),
        );
    }
    let bad: Vec<_> = stopped.iter().filter(|s| s.exit_code != 0).collect();
    check(bad.is_empty(), || format!("non-zero exits on stop: {bad:?}"))?;
    Ok(stopped)
}

/// The collector stand-in's ingest endpoint: `POST /ingest/` (a directory
/// URL with no index.html, which busybox httpd hands to `cgi-bin/index.cgi`)
/// appends the body to `/tmp/ingest.ndjson`. log-shipper sends one body at
/// a time, so bodies never interleave.
const CGI_INGEST: &str = "#!/bin/sh\n\
    if [ \"$REQUEST_METHOD\" = POST ]; then head -c \"$CONTENT_LENGTH\" >> /tmp/ingest.ndjson; fi\n\
    printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n";

/// Splits a stand-in container's output at lines holding only `===`.
fn sections(out: &str) -> Vec<&str> {
    out.split("===\n").collect()
}

/// The sidecar pod (see the module docs).
pub fn sidecar_pod(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load(k8s, "sidecar-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    step(t0, &format!("pause container up, pod IP {}", pod.ip()));
    start(&pod, t0)?;
    step(t0, "pod ready");

    // A client elsewhere on the network, with the log volume mounted to see
    // what the app wrote: the file, then `/`, then the file again (the app
    // writes on), so the page must lie between the two; the same around
    // `?tail=1`.
    let base = format!("http://{}:80", pod.ip());
    let logs_volume = format!("{}:/var/log", pod.volume_name("logs"));
    let script = retry(
        "[ \"$(grep -c . /var/log/index.html 2>/dev/null)\" -ge 2 ]",
        &format!(
            "cat /var/log/index.html; echo ===; wget -q -O - {base}/; echo ===; \
             cat /var/log/index.html; echo ===; wget -q -O - '{base}/?tail=1'; echo ===; \
             cat /var/log/index.html; echo ===; \
             wget -S -O - '{base}/%2e%2e/%2e%2e/etc/passwd' 2>&1; echo ===; \
             ln -s /etc/hostname /var/log/escape.html && wget -S -O - {base}/escape.html 2>&1; echo ==="
        ),
    );
    let out = net
        .shell(&["-v", &logs_volume], busybox, &script)
        .map_err(|e| e.to_string())?;
    let all = text(&out);
    let parts = sections(&all);
    let [before, page, during, tail, after, traversal, symlink, ..] = parts[..] else {
        return Err(format!(
            "the client did not get through its requests:\n{all}\nsidecar logs:\n{}",
            pod::logs(&pod.container_name("log-exporter-sidecar"))
        ));
    };
    step(
        t0,
        &format!(
            "client GET {base}/ -> {} lines of the app's index.html",
            page.lines().count()
        ),
    );
    for line in page.lines().take(3) {
        println!("    {line}");
    }
    check(
        page.lines().count() >= 2 && page.starts_with(before) && during.starts_with(page),
        || format!("GET / is not what index.html held:\nbefore:\n{before}\nserved:\n{page}\nafter:\n{during}"),
    )?;
    // `?tail=1`: one line, the file's last at some moment of the request.
    let lines: Vec<&str> = after.lines().collect();
    let at = lines.iter().position(|l| tail.strip_suffix('\n') == Some(*l));
    step(t0, &format!("client GET {base}/?tail=1 -> {:?}", tail.trim_end()));
    check(
        tail.lines().count() == 1 && at.is_some_and(|i| i + 1 >= during.lines().count()),
        || format!("?tail=1 gave {tail:?}, not the last line (the file held:\n{during}then:\n{after})"),
    )?;
    // Out of the directory: `..` (percent-encoded, as a client can send it)
    // and a symlink the app could plant, to the sidecar's own /etc/hostname.
    for (what, answer) in [
        ("/%2e%2e/%2e%2e/etc/passwd", traversal),
        ("/escape.html -> /etc/hostname", symlink),
    ] {
        let status = answer
            .lines()
            .find_map(|l| l.trim().strip_prefix("HTTP/1.1 "))
            .unwrap_or("no answer");
        step(t0, &format!("client GET {what} -> {status}"));
        check(
            status.starts_with('4') && !answer.contains("root:") && !answer.contains("sidecar-pod"),
            || format!("GET {what} was not refused:\n{answer}"),
        )?;
    }

    check_hardened(&net, images, &pod, "log-exporter-sidecar", "log-shipper")?;
    stop_sidecar_last(&pod, t0, "log-exporter-sidecar")?;
    step(t0, "pod stopped");
    Ok(())
}

/// The shipper pod (see the module docs).
pub fn shipper_pod(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load(k8s, "shipper-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let collector = StandIn::create(
        &net,
        images,
        "collector",
        &[
            ("index.html", "collector\n", false),
            ("cgi-bin/index.cgi", CGI_INGEST, true),
        ],
    )?;
    collector.serve(&net, images, 8080)?;
    step(t0, "collector stand-in answers on collector:8080");
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    step(
        t0,
        &format!("pause container up, pod IP {}, uid {}", pod.ip(), pod.uid()),
    );
    start(&pod, t0)?;
    step(t0, "pod ready");

    // Three of the app's lines (one every 2 s) reach the collector.
    let ingested = |then: &str, attempt: &str| {
        pod::docker_output(&["exec", &collector.name, "sh", "-c", &retry(attempt, then)]).map_err(|e| e.to_string())
    };
    let out = ingested("true", "[ \"$(grep -c . /tmp/ingest.ndjson 2>/dev/null)\" -ge 3 ]")?;
    awaited(&out, "the collector never held 3 records", &pod, "log-shipper")?;
    step(t0, "the collector holds 3 records");
    check_hardened(&net, images, &pod, "log-shipper", "log-shipper")?;

    // The app stops first; then log-shipper reads to the end of the file,
    // delivers, checkpoints and exits 0.
    stop_sidecar_last(&pod, t0, "log-shipper")?;
    let read_volume = |volume: &str, at: &str, script: &str| {
        pod.read_volume(volume, at, script)
            .map(|out| text(&out))
            .map_err(|e| e.to_string())
    };
    let app_log = read_volume("logs", "/var/log/app", "cat /var/log/app/app.log")?;
    let state = read_volume("shipper-state", "/var/lib/log-shipper", "ls -a /var/lib/log-shipper")?;
    let out = ingested("cat /tmp/ingest.ndjson", "true")?;
    let ndjson = text(&out);
    let mut messages = Vec::new();
    for (i, line) in ndjson.lines().enumerate() {
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("record {i} is not JSON ({e}): {line:?}"))?;
        if i == 0 {
            step(t0, &format!("the collector's first record: {line}"));
        }
        let field = |key: &str| record.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        for (key, want) in [
            ("pod", "shipper-pod"),
            ("namespace", "default"),
            ("node", pod::NODE_NAME),
            ("app", "shipper-app"),
            ("container", "app-container"),
            ("file", "/var/log/app/app.log"),
        ] {
            check(field(key) == want, || {
                format!("record {i}: {key} is {:?}, expected {want:?}: {line}", field(key))
            })?;
        }
        messages.push(field("message").to_owned());
    }
    let written: Vec<&str> = app_log.lines().collect();
    step(
        t0,
        &format!(
            "app.log: {} lines; the collector: {} records; state volume: {}",
            written.len(),
            messages.len(),
            state
                .split_whitespace()
                .filter(|f| !f.starts_with('.'))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    check(written.len() >= 3 && messages == written, || {
        format!(
            "the collector does not hold every line of app.log once, in order:\napp.log:\n{app_log}\ncollector:\n{ndjson}"
        )
    })?;
    check(state.contains("log-shipper.checkpoint.json"), || {
        format!("no checkpoint in the state volume: {state}")
    })?;
    step(t0, "every line arrived exactly once, in order, labelled");
    Ok(())
}

const CGI_HOST: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"Host: $HTTP_HOST\"\n";

/// The ambassador pod (see the module docs).
pub fn ambassador_pod(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load(k8s, "ambassador-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
    let page = format!(
        "<!doctype html>\n<html><head><title>Example Domain</title></head>\n\
         <body><h1>Example Domain</h1><p>stand-in for example.com, run {}</p></body></html>\n",
        net.name
    );
    StandIn::create(
        &net,
        images,
        "example.com",
        &[("index.html", &page, false), ("cgi-bin/host", CGI_HOST, true)],
    )?
    .serve(&net, images, 80)?;
    step(t0, "example.com stand-in answers");
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    step(t0, &format!("pause container up, pod IP {}", pod.ip()));
    start(&pod, t0)?;
    step(t0, "pod ready");

    // A client elsewhere on the network asks the pod's port 80 (by its IP),
    // until the poller's first fetch has landed in the shared volume.
    let url = format!("http://{}:80/index.html", pod.ip());
    let out = net
        .shell(
            &[],
            busybox,
            &retry(
                &format!("wget -q -O /tmp/page {url} && grep -q 'Example Domain' /tmp/page"),
                "cat /tmp/page",
            ),
        )
        .map_err(|e| e.to_string())?;
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    step(t0, &format!("client GET {url} -> {} bytes", got.len()));
    check(out.status.success() && got == page, || {
        format!(
            "client got {got:?} (stderr {:?}), expected example.com's page {page:?}; poller logs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            pod::logs(&pod.container_name("app-container-poller"))
        )
    })?;

    // From inside the pod, as the app: the upstream saw the Host rewritten.
    let in_pod = format!("container:{}", pod.pause_name());
    let out = net
        .run_once(
            &["--network", &in_pod, "--user", "65532:65532"],
            busybox,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:81/cgi-bin/host"],
        )
        .map_err(|e| e.to_string())?;
    let host = text(&out);
    step(
        t0,
        &format!("app GET http://127.0.0.1:81/cgi-bin/host -> {}", host.trim()),
    );
    check(host.trim() == "Host: example.com", || format!("upstream saw {host:?}"))?;

    check_hardened(&net, images, &pod, "ambassador-container", "ambassador")?;

    // kubelet order: the app containers first, then the ambassador, which
    // drains (keeps serving for --drain-delay) and exits 0.
    stop_sidecar_last(&pod, t0, "ambassador-container")?;
    step(t0, "pod stopped");
    Ok(())
}

/// Stops the pod (every container must exit 0) and checks `sidecar` went
/// last, drained (its logs say `Draining.` then `Stopped.`) and exited within
/// its 20 s grace period.
fn stop_sidecar_last(pod: &Pod<'_>, t0: Instant, sidecar: &str) -> Result<Vec<pod::Stopped>, String> {
    let stopped = stop(pod, t0)?;
    let last = stopped
        .last()
        .filter(|s| s.container == sidecar)
        .ok_or_else(|| format!("{sidecar} must stop last: {stopped:?}"))?;
    check(last.took < Duration::from_secs(20), || {
        format!("{sidecar}'s drain took {:?}, beyond the 20s grace period", last.took)
    })?;
    let logs = pod::logs(&pod.container_name(sidecar));
    check(logs.contains("Draining.") && logs.contains("Stopped."), || {
        format!("{sidecar} logs lack Draining./Stopped.:\n{logs}")
    })?;
    Ok(stopped)
}

/// Checks a pod's container as the kernel sees its PID 1 (from a busybox
/// container sharing its PID namespace): it is `binary`, runs as uid and gid
/// 65532 with no capability (permitted, effective, bounding) and
/// no_new_privs, and its root filesystem is mounted read-only and refuses a
/// write. What the manifest's security context asked for, in effect.
pub fn check_hardened(
    net: &Network,
    images: &Images,
    pod: &Pod<'_>,
    container: &str,
    binary: &str,
) -> Result<(), String> {
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
    let pid_ns = format!("container:{}", pod.container_name(container));
    let out = net
        .run_once(
            &["--network", "none", "--pid", &pid_ns, "--cap-add", "SYS_PTRACE"],
            busybox,
            &[
                "sh",
                "-c",
                "grep -E '^(Name|Uid|Gid|CapPrm|CapEff|CapBnd|NoNewPrivs):' /proc/1/status; \
                 awk '$5 == \"/\" { print \"root mount options: \" $6 }' /proc/1/mountinfo; \
                 touch /proc/1/root/probe 2>&1 && echo 'root filesystem: writable' || true",
            ],
        )
        .map_err(|e| e.to_string())?;
    let status = text(&out);
    println!("    {container}:");
    for line in status.lines() {
        println!("      {line}");
    }
    let field = |name: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    check(field("Name") == [binary], || {
        format!("PID 1 of {container} is not {binary}:\n{status}")
    })?;
    check(
        field("Uid").iter().all(|u| u == "65532") && field("Uid").len() == 4,
        || format!("{container} not uid 65532:\n{status}"),
    )?;
    check(
        field("Gid").iter().all(|g| g == "65532") && field("Gid").len() == 4,
        || format!("{container} not gid 65532:\n{status}"),
    )?;
    for caps in ["CapPrm", "CapEff", "CapBnd"] {
        check(field(caps) == ["0000000000000000"], || {
            format!("{container}: {caps} not empty:\n{status}")
        })?;
    }
    check(field("NoNewPrivs") == ["1"], || {
        format!("{container}: no_new_privs not set:\n{status}")
    })?;
    check(
        status.contains("root mount options: ro,") || status.lines().any(|l| l == "root mount options: ro"),
        || format!("{container}: root not mounted read-only:\n{status}"),
    )?;
    check(
        status.contains("Read-only file system") && !status.contains("writable"),
        || format!("{container}: writing the root filesystem did not fail as read-only:\n{status}"),
    )
}

/// The adapter pod (see the module docs).
pub fn adapter_pod(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load(k8s, "adapter-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    start(&pod, t0)?;
    step(t0, "pod ready");
    let read = |then: &str, attempt: &str| {
        pod.read_volume("logs", "/var/log", &retry(attempt, then))
            .map_err(|e| e.to_string())
    };
    // Two of the app's lines (written every 2 s) rewritten.
    let out = read(
        "cat /var/log/out.log",
        "[ \"$(grep -c '^Date ' /var/log/out.log 2>/dev/null)\" -ge 2 ]",
    )?;
    awaited(&out, "out.log never held 2 lines", &pod, "log-adapter")?;
    step(t0, "out.log holds 2 rewritten lines");
    check_hardened(&net, images, &pod, "log-adapter", "tail-rewrite")?;
    stop_sidecar_last(&pod, t0, "log-adapter")?;
    // After the stop (app first, then the adapter's drain), every app line is
    // in out.log, rewritten, in order, once.
    let out = read(
        "cat /var/log/app.log; echo ===; cat /var/log/out.log; echo ===; ls /var/log",
        "true",
    )?;
    let all = text(&out);
    let mut parts = all.split("===\n");
    let (app, rewritten, files) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let expected: String = app.lines().map(|l| format!("Date {l}\n")).collect();
    step(
        t0,
        &format!(
            "app.log {} lines, out.log {} lines; volume: {}",
            app.lines().count(),
            rewritten.lines().count(),
            files.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    );
    check(app.lines().count() >= 2 && rewritten == expected, || {
        format!("out.log is not app.log with `Date ` prefixes:\napp.log:\n{app}\nout.log:\n{rewritten}")
    })?;
    check(files.contains("tail-rewrite.checkpoint.json"), || {
        format!("no checkpoint next to out.log: {files}")
    })?;
    Ok(())
}

/// The init-container pod (see the module docs).
pub fn init_container_pod(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load(k8s, "init-container-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let myservice = StandIn::create(&net, images, "myservice", &[("index.html", "myservice\n", false)])?;
    let mydb = StandIn::create(&net, images, "mydb", &[("index.html", "mydb\n", false)])?;
    step(t0, "myservice and mydb exist, nothing listens yet");
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    let init = pod.container_name("init-wait-for");
    let app = pod.container_name("myapp-container");
    start_held_back(&pod, &init, &mut |s| step(t0, s), |held| {
        let waiting = || {
            let logs = pod::logs(&init);
            ["tcp://myservice:80", "tcp://mydb:5432"]
                .iter()
                .all(|t| logs.lines().any(|l| l.contains("Still waiting.") && l.contains(t)))
        };
        try_wait_until("wait-for to report both targets pending", || {
            waiting() || held.started()
        })?;
        held.check("without its services")?;
        step(t0, "wait-for reports both pending; no app container");
        myservice.serve(&net, images, 80)?;
        step(t0, "myservice listening (mydb still not)");
        held.check("before mydb listened")?;
        step(t0, "mydb starts listening");
        mydb.serve(&net, images, 5432)?;
        step(t0, "mydb answers");
        Ok(())
    })?;
    step(t0, "pod started: init container exited 0, app running");
    try_wait_until("the app's first line", || {
        pod::logs(&app).contains("The app is running!")
    })?;
    step(t0, "app: The app is running!");
    let init_logs = pod::logs(&init);
    for dependency in ["tcp://myservice:80", "tcp://mydb:5432"] {
        let ready = init_logs
            .lines()
            .find(|l| l.contains("Ready.") && l.contains(dependency));
        check(ready.is_some(), || {
            format!("wait-for logs lack Ready. for {dependency}:\n{init_logs}")
        })?;
        if let Some(line) = ready {
            println!("    wait-for: {}", line.split_once(" INFO ").map_or(line, |(_, l)| l));
        }
    }
    stop(&pod, t0)?;
    Ok(())
}

/// The init-container pod with nothing to wait for and a 1 s timeout:
/// wait-for exits 124, the pod does not start, no app container exists.
pub fn init_container_timeout(images: &Images, k8s: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let mut spec = load(k8s, "init-container-pod.yaml")?;
    let init = spec
        .spec
        .init_containers
        .first_mut()
        .ok_or("the manifest has no init container")?;
    let timeout = init
        .args
        .iter()
        .position(|a| a == "--timeout")
        .ok_or("wait-for has no --timeout in the manifest")?;
    init.args[timeout + 1] = "1s".to_owned();
    step(t0, &format!("wait-for {} (nothing listens)", init.args.join(" ")));
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    let outcome = pod.start(&mut |s| step(t0, s));
    let init = pod.container_name("init-wait-for");
    let code = pod::exit_code(&init).map_err(|e| e.to_string())?;
    step(
        t0,
        &format!(
            "init container exited {code:?}; pod start: {}",
            match &outcome {
                Ok(()) => "started".to_owned(),
                Err(e) => e.to_string().lines().next().unwrap_or_default().to_owned(),
            }
        ),
    );
    check(outcome.is_err() && code == Some(124), || {
        format!(
            "expected wait-for to exit 124 and the pod not to start; logs:\n{}",
            pod::logs(&init)
        )
    })?;
    check(pod::exit_code(&pod.container_name("myapp-container")).is_err(), || {
        "the app container was created after a failed wait".into()
    })?;
    let logs = pod::logs(&init);
    check(
        logs.contains("tcp://myservice:80") && logs.contains("tcp://mydb:5432"),
        || format!("wait-for's timeout does not name the pending targets:\n{logs}"),
    )?;
    step(t0, "no app container: the app never ran");
    Ok(())
}

/// Starts `pod` on a thread while `beside` runs on this one: for a pod whose
/// init container `init` (wait-for) holds it back until what `beside` makes
/// happen (a service starting to listen). `beside` can check that the pod
/// is still held back ([`HeldBack`]). When `beside` fails or panics, `init`
/// is removed so that the start ends too. `beside`'s error comes first,
/// then the start's.
pub fn start_held_back(
    pod: &Pod<'_>,
    init: &str,
    log: &mut (dyn FnMut(&str) + Send),
    beside: impl FnOnce(&HeldBack<'_>) -> Result<(), String>,
) -> Result<(), String> {
    std::thread::scope(|scope| {
        let starting = scope.spawn(|| pod.start(log).map_err(|e| e.to_string()));
        let outcome = {
            // If this thread panics, removing the init container ends the start.
            let _unblock = Unblock(init);
            beside(&HeldBack {
                pod,
                started: &|| starting.is_finished(),
            })
        };
        if outcome.is_err() {
            let _ = pod::docker_output(&["rm", "-f", init]);
        }
        let started = starting.join().map_err(|_| "pod start panicked".to_owned())?;
        outcome.and(started)
    })
}

/// A pod [`start_held_back`] is starting, as `beside` sees it.
pub struct HeldBack<'a> {
    pod: &'a Pod<'a>,
    started: &'a dyn Fn() -> bool,
}

impl HeldBack<'_> {
    /// Whether the start has ended: the pod came up, or failed.
    pub fn started(&self) -> bool {
        (self.started)()
    }

    /// Checks that the pod is still held back `when` (how the failure says
    /// when): its start has not ended and none of its app containers exists.
    pub fn check(&self, when: &str) -> Result<(), String> {
        check(!self.started(), || format!("the pod started {when}"))?;
        for container in &self.pod.spec.spec.containers {
            let name = self.pod.container_name(&container.name);
            check(pod::exit_code(&name).is_err(), || {
                format!("the app container {} exists {when}", container.name)
            })?;
        }
        Ok(())
    }
}

/// Removes a container when dropped while the thread panics (unblocks a
/// `docker wait` on it).
struct Unblock<'a>(&'a str);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = pod::docker_output(&["rm", "-f", self.0]);
        }
    }
}
