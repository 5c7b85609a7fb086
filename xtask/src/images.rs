//! `cargo xtask images`: builds one `FROM scratch` image per binary, tagged
//! `podkit/<name>:<version>` and `:latest`, from a context that holds only
//! the static release binary. Uses the legacy builder (no BuildKit, no pull).

use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::build::{self, BINARIES};

/// The workspace version and the git revision, for tags and labels.
fn version_and_revision(bins: &std::path::Path) -> Result<(String, String)> {
    let out = Command::new(bins.join("wait-for")).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().skip(1);
    let version = words.next().context("no version in --version")?.to_owned();
    let revision = words.next().unwrap_or("(unknown)").trim_matches(['(', ')']).to_owned();
    Ok((version, revision))
}

/// Builds the images and returns their tags.
pub fn build() -> Result<Vec<String>> {
    let bins = build::release()?;
    let (version, revision) = version_and_revision(&bins)?;
    let mut tags = Vec::new();
    for (_, bin) in BINARIES {
        let context = build::tempdir()?;
        std::fs::copy(bins.join(bin), context.join(bin))?;
        std::fs::copy(
            build::root().join("docker").join(format!("{bin}.Dockerfile")),
            context.join("Dockerfile"),
        )?;
        let tag = format!("podkit/{bin}:{version}");
        let status = Command::new("docker")
            .env_remove("DOCKER_BUILDKIT")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag, "-t", &format!("podkit/{bin}:latest")])
            .args([
                "--build-arg",
                &format!("VERSION={version}"),
                "--build-arg",
                &format!("REVISION={revision}"),
            ])
            .arg(&context)
            .status()
            .context("running docker build")?;
        let _ = std::fs::remove_dir_all(&context);
        ensure!(status.success(), "docker build of {tag} failed");
        println!("built {tag}");
        tags.push(tag);
    }
    Ok(tags)
}
