//! podkit-tests: the home of tests that span several binaries (pod
//! simulations on loopback and a shared temp dir) and of the container tests
//! that run our images on a docker engine. The tests live in `tests/tests/`.
//!
//! The library holds what the test binaries share about the repository:
//! [`root`], where the workspace lies. How they run (filters, skips, the
//! summary) is `podkit_testkit::runner`'s, shared with wait-for's system
//! tests.

use std::path::{Path, PathBuf};

/// The workspace's root directory (`k8s/`, the chart, `tests/helm/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}
