//! The seed's pods, as rewritten in `k8s/`, run for real on a docker engine:
//! each manifest is started the way the kubelet would start it (a pause
//! container owning the network namespace, native sidecars gated by their
//! startup probes, `--network container:`, shared volumes, the manifests'
//! security contexts; see `podkit_testkit::pod`), on a private network with
//! stand-ins for the services the pods talk to.
//!
//! - `ambassador_pod`: podkit's ambassador in place of nginx-forward-proxy; a
//!   client of the pod's port 80 gets example.com's page (a busybox httpd
//!   stand-in known as `example.com`), the upstream sees `Host: example.com`,
//!   the ambassador runs as 65532 on a read-only root without capabilities,
//!   and stops with exit 0 after the app containers (drain).
//! - `adapter_pod`: tail-rewrite in place of `tail -f | sed`; every line of
//!   app.log reaches out.log with the `Date ` prefix, also the app's last
//!   ones, since the adapter is stopped after the app.
//! - `init_container_pod`: wait-for holds the app back until both services
//!   it needs accept connections.
//!
//! The images are built first with `cargo xtask images --busybox` (release
//! binaries in `FROM scratch` images, and the busybox stand-in from Debian's
//! busybox-static) and used by id. A `harness = false` binary: with no docker
//! engine (or no busybox-static) every test prints `SKIPPED: reason`.

#![allow(clippy::print_stdout, missing_docs)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podkit_testkit::pod::{self, Images, Network, Pod, PodSpec};

/// Why a test could not run here.
struct Skip(String);

type Test = (&'static str, fn(&Images) -> Result<(), String>);

fn main() {
    let tests: &[Test] = &[
        ("ambassador_pod", ambassador_pod),
        ("adapter_pod", adapter_pod),
        ("init_container_pod", init_container_pod),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("\ntest result: ok. 0 passed; 0 failed; 0 skipped\n");
        return;
    }
    let images = match setup() {
        Ok(images) => images,
        Err(Skip(why)) => {
            for (name, _) in &selected {
                println!("test {name} ... SKIPPED: {why}");
                eprintln!("SKIPPED: {name}: {why}");
            }
            println!("\ntest result: ok. 0 passed; 0 failed; {} skipped\n", selected.len());
            return;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in selected {
        println!("test {name} ...");
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| test(&images)));
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(())) => {
                passed += 1;
                println!("test {name} ... ok ({took:.1}s)");
            }
            Ok(Err(why)) => {
                failed += 1;
                println!("test {name} ... FAILED ({took:.1}s): {why}");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED ({took:.1}s): panicked");
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!("\ntest result: {verdict}. {passed} passed; {failed} failed; 0 skipped\n");
    if failed > 0 {
        std::process::exit(101);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Checks for a docker engine and busybox-static, then builds the images
/// (the release build; a no-op when it is fresh).
fn setup() -> Result<Images, Skip> {
    if !podkit_testkit::docker_available() {
        return Err(Skip("no docker engine answers `docker version`".into()));
    }
    if !Path::new("/bin/busybox").is_file() {
        return Err(Skip(
            "/bin/busybox missing (apt-get install busybox-static) for the apps' image".into(),
        ));
    }
    let ids = std::env::temp_dir().join(format!("{}.ids", pod::run_id("podkit-pods-images")));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let started = Instant::now();
    println!("building the images: cargo xtask images --busybox (release build)");
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["xtask", "images", "--busybox", "--ids"])
        .arg(&ids)
        .status()
        .expect("running cargo xtask images");
    let text = std::fs::read_to_string(&ids).unwrap_or_default();
    let _ = std::fs::remove_file(&ids);
    assert!(status.success(), "cargo xtask images --busybox failed");
    let mut images = Images::parse(&text);
    let busybox = images
        .resolve(&format!("{}:any", "podkit-test/busybox"))
        .expect("the busybox image was built")
        .to_owned();
    images.insert("busybox", &busybox);
    println!("images ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(images)
}

/// Prints a step with the time since `t0`.
fn step(t0: Instant, what: &str) {
    println!("  [{:6.2}s] {what}", t0.elapsed().as_secs_f64());
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A busybox shell loop that retries `attempt` every 100 ms for up to 30 s
/// (the test kit's patience), then runs `then`.
fn retry(attempt: &str, then: &str) -> String {
    format!(
        "i=0; until {attempt}; do i=$((i+1)); if [ $i -ge 300 ]; then echo 'gave up waiting: {}' >&2; exit 1; fi; \
         sleep 0.1; done; {then}",
        attempt.replace('\'', "")
    )
}

/// Starts a busybox httpd stand-in for a remote service, known on the network
/// as `alias`, serving `files` (`(path, content, executable)`) on `port`,
/// and waits until it answers.
fn stand_in(
    net: &Network,
    images: &Images,
    alias: &str,
    port: u16,
    files: &[(&str, &str, bool)],
) -> Result<String, String> {
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
    script.push_str(&format!("exec httpd -f -p {port} -h /tmp/www"));
    let mut flags = Vec::new();
    for e in &env {
        flags.extend(["-e", e.as_str()]);
    }
    let name = net
        .start_helper(alias, &[alias], &flags, busybox, &["sh", "-c", &script])
        .map_err(|e| e.to_string())?;
    let out = net
        .run_once(
            &[],
            busybox,
            &[
                "sh",
                "-c",
                &retry(&format!("wget -q -O /dev/null http://{alias}:{port}/"), "true"),
            ],
        )
        .map_err(|e| e.to_string())?;
    check(out.status.success(), || {
        format!("stand-in {alias} never answered: {}\n{}", text(&out), pod::logs(&name))
    })?;
    Ok(name)
}

fn load(manifest: &str) -> Result<PodSpec, String> {
    PodSpec::load(&root().join("k8s").join(manifest)).map_err(|e| e.to_string())
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

const CGI_HOST: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"Host: $HTTP_HOST\"\n";

fn ambassador_pod(images: &Images) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load("ambassador-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
    let page = format!(
        "<!doctype html>\n<html><head><title>Example Domain</title></head>\n\
         <body><h1>Example Domain</h1><p>stand-in for example.com, run {}</p></body></html>\n",
        net.name
    );
    stand_in(
        &net,
        images,
        "example.com",
        80,
        &[("index.html", &page, false), ("cgi-bin/host", CGI_HOST, true)],
    )?;
    step(t0, "example.com stand-in answers");
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    step(t0, &format!("pause container up, pod IP {}", pod.ip()));
    start(&pod, t0)?;
    step(t0, "pod ready");

    // A client elsewhere on the network asks the pod's port 80 (by its IP),
    // until the poller's first fetch has landed in the shared volume.
    let url = format!("http://{}:80/index.html", pod.ip());
    let out = net
        .run_once(
            &[],
            busybox,
            &[
                "sh",
                "-c",
                &retry(
                    &format!("wget -q -O /tmp/page {url} && grep -q 'Example Domain' /tmp/page"),
                    "cat /tmp/page",
                ),
            ],
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

    // The ambassador's process as the kernel sees it (from a container
    // sharing its PID namespace, where it is PID 1).
    let ambassador = pod.container_name("ambassador-container");
    let pid_ns = format!("container:{ambassador}");
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
    for line in status.lines() {
        println!("    {line}");
    }
    let field = |name: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    check(field("Name") == ["ambassador"], || {
        format!("PID 1 is not the ambassador:\n{status}")
    })?;
    check(
        field("Uid").iter().all(|u| u == "65532") && field("Uid").len() == 4,
        || format!("not uid 65532:\n{status}"),
    )?;
    check(
        field("Gid").iter().all(|g| g == "65532") && field("Gid").len() == 4,
        || format!("not gid 65532:\n{status}"),
    )?;
    for caps in ["CapPrm", "CapEff", "CapBnd"] {
        check(field(caps) == ["0000000000000000"], || {
            format!("{caps} not empty:\n{status}")
        })?;
    }
    check(field("NoNewPrivs") == ["1"], || {
        format!("no_new_privs not set:\n{status}")
    })?;
    check(
        status.contains("root mount options: ro,") || status.lines().any(|l| l == "root mount options: ro"),
        || format!("root not mounted read-only:\n{status}"),
    )?;
    check(
        status.contains("Read-only file system") && !status.contains("writable"),
        || format!("writing the root filesystem did not fail as read-only:\n{status}"),
    )?;

    // kubelet order: the app containers first, then the ambassador, which
    // drains (keeps serving for --drain-delay) and exits 0.
    let stopped = stop(&pod, t0)?;
    let amb = stopped
        .iter()
        .find(|s| s.container == "ambassador-container")
        .ok_or("the ambassador was not stopped")?;
    check(
        stopped.last().is_some_and(|s| s.container == "ambassador-container"),
        || format!("the ambassador must stop last: {stopped:?}"),
    )?;
    check(amb.took < Duration::from_secs(20), || {
        format!("drain took {:?}, beyond the 20s grace period", amb.took)
    })?;
    let logs = pod::logs(&ambassador);
    check(logs.contains("Draining.") && logs.contains("Stopped."), || {
        format!("ambassador logs lack Draining./Stopped.:\n{logs}")
    })?;
    step(t0, "pod stopped");
    Ok(())
}

fn adapter_pod(images: &Images) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load("adapter-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let busybox = images.resolve("busybox").map_err(|e| e.to_string())?;
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    start(&pod, t0)?;
    step(t0, "pod ready");
    let logs_volume = format!("{}:/var/log:ro", pod.volume_name("logs"));
    let read = |then: &str, attempt: &str| {
        net.run_once(
            &["--network", "none", "-v", &logs_volume],
            busybox,
            &["sh", "-c", &retry(attempt, then)],
        )
        .map_err(|e| e.to_string())
    };
    // Two of the app's lines (written every 2 s) rewritten.
    let out = read(
        "cat /var/log/out.log",
        "[ \"$(grep -c '^Date ' /var/log/out.log 2>/dev/null)\" -ge 2 ]",
    )?;
    check(out.status.success(), || {
        format!(
            "out.log never held 2 lines: {}\nadapter logs:\n{}",
            text(&out),
            pod::logs(&pod.container_name("log-adapter"))
        )
    })?;
    step(t0, "out.log holds 2 rewritten lines");
    stop(&pod, t0)?;
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

fn init_container_pod(images: &Images) -> Result<(), String> {
    let t0 = Instant::now();
    let spec = load("init-container-pod.yaml")?;
    let net = Network::create(&pod::run_id("podkit-pods")).map_err(|e| e.to_string())?;
    let pod = Pod::create(spec, &net, images.clone()).map_err(|e| e.to_string())?;
    let init = pod.container_name("init-wait-for");
    let app = pod.container_name("myapp-container");
    let result = std::thread::scope(|scope| {
        let starting = scope.spawn(|| start(&pod, t0));
        // If this thread fails, removing the init container ends the start.
        let _unblock = Unblock(&init);
        let steps = || -> Result<(), String> {
            let progress = || pod::logs(&init).contains("Still waiting.");
            wait(|| progress() || starting.is_finished(), "wait-for to report progress")?;
            check(!starting.is_finished(), || {
                "the pod started without its services".into()
            })?;
            step(t0, "wait-for is waiting; the app container does not exist");
            check(pod::exit_code(&app).is_err(), || {
                "the app container exists too early".into()
            })?;
            stand_in(&net, images, "myservice", 80, &[("index.html", "myservice\n", false)])?;
            step(t0, "myservice up (mydb still missing)");
            check(!starting.is_finished(), || "the pod started before mydb was up".into())?;
            check(pod::exit_code(&app).is_err(), || {
                "the app started before mydb was up".into()
            })?;
            stand_in(&net, images, "mydb", 5432, &[("index.html", "mydb\n", false)])?;
            step(t0, "mydb up");
            Ok(())
        };
        let outcome = steps();
        if outcome.is_err() {
            let _ = pod::docker_output(&["rm", "-f", &init]);
        }
        let started = starting.join().map_err(|_| "pod start panicked".to_owned())?;
        outcome.and(started)
    });
    result?;
    step(t0, "pod started: init container exited 0, app running");
    // When the port opened (the stand-in's start) and when wait-for exited.
    let mydb = format!("{}-mydb", net.name);
    let mydb_started = pod::docker(&["inspect", "-f", "{{.State.StartedAt}}", &mydb]).map_err(|e| e.to_string())?;
    let init_done = pod::docker(&["inspect", "-f", "{{.State.FinishedAt}}", &init]).map_err(|e| e.to_string())?;
    println!(
        "    mydb stand-in started {}, wait-for exited {}",
        mydb_started.trim(),
        init_done.trim()
    );
    wait(
        || pod::logs(&app).contains("The app is running!"),
        "the app's first line",
    )?;
    step(t0, "app: The app is running!");
    let init_logs = pod::logs(&init);
    for dependency in ["tcp://myservice:80", "tcp://mydb:5432"] {
        check(
            init_logs
                .lines()
                .any(|l| l.contains("Ready.") && l.contains(dependency)),
            || format!("wait-for logs lack Ready. for {dependency}:\n{init_logs}"),
        )?;
    }
    stop(&pod, t0)?;
    Ok(())
}

/// Removes a container when dropped (unblocks a `docker wait` on it).
struct Unblock<'a>(&'a str);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = pod::docker_output(&["rm", "-f", self.0]);
        }
    }
}

/// Polls `condition` (a docker query) until it holds, for up to 30 s.
fn wait(mut condition: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + podkit_testkit::PATIENCE;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
