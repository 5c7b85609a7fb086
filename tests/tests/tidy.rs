//! Tidy checks on the repository itself (the rust-analyzer habit): every Rust
//! file opens with a `//!` doc saying what it is for, the README's two
//! commands are the ones CI runs, and the k8s/ manifests name podkit images
//! at the workspace version.

use std::path::{Path, PathBuf};

use podkit_tests::root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests", "fuzz"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap_or_default()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc on their first line: {missing:#?}"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    for command in ["cargo xtask demo", "cargo test --workspace"] {
        assert!(readme.contains(command), "README lacks `{command}`");
    }
    assert!(
        ci.contains("cargo test --workspace"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn k8s_manifests_name_podkit_images_at_the_workspace_version() {
    let version = env!("CARGO_PKG_VERSION");
    let mut manifests: Vec<_> = std::fs::read_dir(root().join("k8s"))
        .expect("k8s/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 5, "expected the example pods in k8s/: {manifests:?}");
    for path in manifests {
        let text = std::fs::read_to_string(&path).expect("manifest");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let images: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
        let policies = text
            .lines()
            .filter(|l| l.trim() == "imagePullPolicy: IfNotPresent")
            .count();
        assert!(
            images.iter().any(|i| i.starts_with("podkit/")),
            "{name} uses no podkit image"
        );
        for image in &images {
            if let Some(rest) = image.strip_prefix("podkit/") {
                assert!(
                    rest.ends_with(&format!(":{version}")),
                    "{name}: {image} is not at the workspace version {version}"
                );
            }
        }
        assert_eq!(
            images.len(),
            policies,
            "{name}: every container needs imagePullPolicy: IfNotPresent"
        );
    }
}
