//! `cargo xtask images [--busybox] [--ids FILE]`: builds one `FROM scratch`
//! image per binary, tagged `podkit/<name>:<version>` and `:latest`, from a
//! context that holds only the static release binary. Uses the legacy builder
//! (no BuildKit, no pull).
//!
//! `--busybox` also builds the test image `podkit-test/busybox:<version>`, the
//! stand-in for the `busybox` apps of the example pods in `k8s/`, from Debian's
//! `busybox-static` (`/bin/busybox`): a rootfs with one symlink per applet,
//! `/etc/passwd` naming uid 65532, and a world-writable `/tmp`.
//!
//! `--ids FILE` writes `repository=image id` lines, so the pod tests run
//! exactly the images built here even if someone retags `podkit/*` meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::build::{self, BINARIES};

/// Where Debian's `busybox-static` puts the binary.
const BUSYBOX: &str = "/bin/busybox";

/// The test stand-in image's repository.
pub const BUSYBOX_REPOSITORY: &str = "podkit-test/busybox";

/// An image built here.
pub struct Built {
    /// Repository, e.g. `podkit/ambassador`.
    pub repository: String,
    /// The image id (`sha256:...`).
    pub id: String,
}

/// `cargo xtask images [--busybox] [--ids FILE]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut busybox = false;
    let mut ids = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--busybox" => busybox = true,
            "--ids" => ids = Some(PathBuf::from(args.next().context("--ids needs a file")?)),
            other => bail!("unknown images option `{other}` (usage: images [--busybox] [--ids FILE])"),
        }
    }
    let mut built = build()?;
    if busybox {
        built.push(build_busybox()?);
    }
    if let Some(path) = ids {
        let text: String = built.iter().map(|b| format!("{}={}\n", b.repository, b.id)).collect();
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The workspace version and the git revision, for tags and labels.
fn version_and_revision(bins: &Path) -> Result<(String, String)> {
    let out = Command::new(bins.join("wait-for")).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().skip(1);
    let version = words.next().context("no version in --version")?.to_owned();
    let revision = words.next().unwrap_or("(unknown)").trim_matches(['(', ')']).to_owned();
    Ok((version, revision))
}

/// Builds the four podkit images.
pub fn build() -> Result<Vec<Built>> {
    let bins = build::release()?;
    let (version, revision) = version_and_revision(&bins)?;
    let mut built = Vec::new();
    for (_, bin) in BINARIES {
        let context = build::tempdir()?;
        std::fs::copy(bins.join(bin), context.join(bin))?;
        std::fs::copy(
            build::root().join("docker").join(format!("{bin}.Dockerfile")),
            context.join("Dockerfile"),
        )?;
        let repository = format!("podkit/{bin}");
        let result = docker_build(
            &context,
            &repository,
            &version,
            &[format!("VERSION={version}"), format!("REVISION={revision}")],
        );
        let _ = std::fs::remove_dir_all(&context);
        built.push(result?);
    }
    Ok(built)
}

/// Builds the busybox stand-in image from the host's `/bin/busybox`.
pub fn build_busybox() -> Result<Built> {
    let busybox = Path::new(BUSYBOX);
    ensure!(
        busybox.is_file(),
        "{BUSYBOX} is missing: apt-get install busybox-static"
    );
    let file = Command::new("file").arg("-L").arg(busybox).output();
    if let Ok(out) = file {
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            !text.contains("dynamically linked"),
            "{BUSYBOX} is dynamically linked (Debian's `busybox`); the image needs `busybox-static`"
        );
    }
    let version = Command::new(busybox)
        .output()
        .ok()
        .and_then(|out| {
            // First line: "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary."
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .nth(1)
                .and_then(|v| v.strip_prefix('v'))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let context = build::tempdir()?;
    let result =
        busybox_context(busybox, &context).and_then(|()| docker_build(&context, BUSYBOX_REPOSITORY, &version, &[]));
    let _ = std::fs::remove_dir_all(&context);
    result
}

/// Writes a build context: `rootfs/` (busybox, applet links, passwd, group,
/// /tmp) and a Dockerfile copying it into an empty image.
fn busybox_context(busybox: &Path, context: &Path) -> Result<()> {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let rootfs = context.join("rootfs");
    for dir in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox"))?;
    std::fs::set_permissions(rootfs.join("bin/busybox"), std::fs::Permissions::from_mode(0o755))?;
    let list = Command::new(busybox).arg("--list").output().context("busybox --list")?;
    ensure!(list.status.success(), "busybox --list failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            symlink("busybox", rootfs.join("bin").join(applet))?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n\
         nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n",
    )?;
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
    )?;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::write(
        context.join("Dockerfile"),
        "# Test stand-in for the busybox apps of the example pods in k8s/, built by\n\
         # `cargo xtask images --busybox` from Debian's busybox-static (no pull).\n\
         FROM scratch\n\
         LABEL org.opencontainers.image.title=\"podkit-test-busybox\" \\\n      \
         org.opencontainers.image.description=\"Debian busybox-static as the apps of the example pods in tests\"\n\
         COPY rootfs/ /\n\
         ENV PATH=/bin\n\
         CMD [\"/bin/sh\"]\n",
    )?;
    Ok(())
}

/// `docker build` (legacy builder) of `context`, tagged `repository:version`
/// and `repository:latest`.
fn docker_build(context: &Path, repository: &str, version: &str, build_args: &[String]) -> Result<Built> {
    let tag = format!("{repository}:{version}");
    let iidfile = context.join("..").join(format!(
        "{}.iid",
        context.file_name().and_then(|n| n.to_str()).unwrap_or("image")
    ));
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag, "-t", &format!("{repository}:latest")])
        .arg("--iidfile")
        .arg(&iidfile);
    for arg in build_args {
        cmd.args(["--build-arg", arg]);
    }
    let status = cmd.arg(context).status().context("running docker build")?;
    let id = std::fs::read_to_string(&iidfile).unwrap_or_default();
    let _ = std::fs::remove_file(&iidfile);
    ensure!(status.success(), "docker build of {tag} failed");
    let id = id.trim().to_owned();
    ensure!(id.starts_with("sha256:"), "docker build of {tag} wrote no image id");
    println!("built {tag} ({})", &id[..19.min(id.len())]);
    Ok(Built {
        repository: repository.to_owned(),
        id,
    })
}
