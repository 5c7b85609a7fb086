//! `cargo xtask pods [NAME]`: the example pods from `k8s/` (sidecar serving
//! and shipping logs, ambassador, adapter, init container), run on the docker
//! engine the way the kubelet would run them, narrated step by step. The
//! same scenarios as the pod tests (`podkit_testkit::example_pods`); NAME
//! picks the ones whose name contains it.

use anyhow::{Result, anyhow, ensure};
use podkit_testkit::example_pods::SCENARIOS;
use podkit_testkit::pod::Images;

use crate::images;

/// `cargo xtask pods [NAME]`.
pub fn run(args: &[String]) -> Result<()> {
    let filter = args.first();
    ensure!(
        podkit_testkit::docker_available(),
        "no docker engine answers `docker version`"
    );
    println!("== Images (release build, FROM scratch; busybox stand-in for the apps)");
    let mut built = images::build()?;
    built.push(images::build_busybox()?);
    let mut ids = Images::default();
    for image in &built {
        ids.insert(&image.repository, &image.id);
        if image.repository == images::BUSYBOX_REPOSITORY {
            ids.insert("busybox", &image.id);
        }
    }
    let k8s = crate::build::root().join("k8s");
    let mut ran = 0;
    for (name, scenario) in SCENARIOS {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        println!("\n== {name}");
        scenario(&ids, &k8s).map_err(|e| anyhow!("{name}: {e}"))?;
        ran += 1;
    }
    ensure!(ran > 0, "no pod scenario matches {filter:?}");
    println!("\npods: {ran} pod(s) behaved as their manifests say.");
    Ok(())
}
