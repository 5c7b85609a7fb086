//! Bakes the git revision into the binaries: `PODKIT_REVISION` from the
//! environment wins (image builds from a tarball), then `git rev-parse`,
//! else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PODKIT_REVISION");
    let revision = std::env::var("PODKIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PODKIT_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // Rebuild when HEAD moves: a checkout changes HEAD, a commit changes the
    // branch it points to. (The working tree's dirtiness is not tracked: that
    // would rebuild the world on every save.) Worktrees keep HEAD in their own
    // git dir and the branches in the common one.
    let git_dir = std::path::PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = std::path::PathBuf::from(git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    let head = std::fs::read_to_string(git_dir.join("HEAD")).unwrap_or_default();
    if let Some(reference) = head.trim().strip_prefix("ref: ") {
        let loose = common.join(reference);
        let path = if loose.exists() {
            loose
        } else {
            common.join("packed-refs")
        };
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
