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
//! busybox-static) and used by id (`podkit_testkit::images`;
//! `PODKIT_TEST_IMAGES` reuses images built earlier). A `harness = false`
//! binary run by `podkit_testkit::runner`: with no docker engine (or no
//! busybox-static) every test prints `SKIPPED: reason`.

use std::path::PathBuf;

use podkit_testkit::example_pods::SCENARIOS;
use podkit_testkit::pod::Images;
use podkit_testkit::{images, runner};

fn main() {
    let root = podkit_tests::root();
    let tests = SCENARIOS.map(|(name, scenario)| {
        (name, move |(images, k8s): &(Images, PathBuf)| {
            Ok(scenario(images, k8s)?)
        })
    });
    runner::run_tests(&tests, || Ok((images::build(&root)?, root.join("k8s"))));
}
