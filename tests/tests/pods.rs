//! The example pods of `k8s/` run for real on a docker engine the way the
//! kubelet would run them: the scenarios of `podkit_testkit::example_pods`
//! (sidecar serving the logs, sidecar shipping them, ambassador, adapter,
//! init container and its timeout), on `podkit_testkit::pod`'s emulation
//! (pause container, native sidecars gated by startup probes, `--network
//! container:`, volumes, the manifests' security contexts, downward-API env,
//! the kubelet's stop order), on a private network per scenario with
//! stand-ins for the services the pods talk to.
//!
//! The images are built first with `cargo xtask images --busybox` (release
//! binaries in `FROM scratch` images, and the busybox stand-in from Debian's
//! busybox-static) and used by id. A `harness = false` binary: with no docker
//! engine (or no busybox-static) every test prints `SKIPPED: reason`.

#![allow(clippy::print_stdout, missing_docs)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podkit_testkit::example_pods::SCENARIOS;
use podkit_testkit::pod::{self, Images};

/// Why the tests cannot run here.
struct Skip(String);

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = SCENARIOS
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
    let k8s = root().join("k8s");
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in selected {
        println!("test {name} ...");
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| scenario(&images, &k8s)));
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
        .resolve("podkit-test/busybox")
        .expect("the busybox image was built")
        .to_owned();
    images.insert("busybox", &busybox);
    println!("images ready in {:.1}s", started.elapsed().as_secs_f64());
    Ok(images)
}
