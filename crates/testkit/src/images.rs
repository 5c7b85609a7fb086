//! Images for container tests: `cargo xtask images --busybox` (release
//! binaries in `FROM scratch` images, and the busybox stand-in built from
//! Debian's busybox-static), returned by id so that a test runs exactly what
//! it built even if someone retags `podkit/*` meanwhile. Without a docker
//! engine or busybox-static, a [`Skip`] with the reason; a failed build is a
//! failure.
//!
//! `PODKIT_TEST_IMAGES=FILE` (lines of `repository=image id`, as
//! `cargo xtask images --ids FILE` writes them) uses images built earlier
//! instead, e.g. to run one container test again without a release build.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::pod::{self, Images};
use crate::runner::{Skip, Stop};

/// Builds the images from the workspace at `root` (a no-op build when the
/// release binaries are fresh): a [`Stop::Skip`] says why the test cannot
/// run here, a [`Stop::Fail`] that the build failed. `busybox` resolves to
/// the stand-in.
pub fn build(root: &Path) -> Result<Images, Stop> {
    if !crate::docker_available() {
        return Err(Skip::new("no docker engine answers `docker version`").into());
    }
    if let Some(file) = std::env::var_os("PODKIT_TEST_IMAGES") {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("PODKIT_TEST_IMAGES={}: {e}", Path::new(&file).display()))?;
        return with_busybox(Images::parse(&text));
    }
    if !Path::new("/bin/busybox").is_file() {
        return Err(Skip::new("/bin/busybox missing (apt-get install busybox-static) for the apps' image").into());
    }
    let ids = std::env::temp_dir().join(format!("{}.ids", pod::run_id("podkit-images")));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let started = Instant::now();
    eprintln!("building the images: cargo xtask images --busybox (release build)");
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["xtask", "images", "--busybox", "--ids"])
        .arg(&ids)
        .status()
        .map_err(|e| format!("cannot run cargo xtask images: {e}"))?;
    let text = std::fs::read_to_string(&ids).unwrap_or_default();
    let _ = std::fs::remove_file(&ids);
    if !status.success() {
        return Err(format!("cargo xtask images --busybox failed ({status})").into());
    }
    eprintln!("images ready in {:.1}s", started.elapsed().as_secs_f64());
    with_busybox(Images::parse(&text))
}

/// Lets `busybox` name the stand-in image.
fn with_busybox(mut images: Images) -> Result<Images, Stop> {
    let busybox = images
        .resolve("podkit-test/busybox")
        .map_err(|e| format!("no busybox stand-in image: {}", e.0))?
        .to_owned();
    images.insert("busybox", &busybox);
    Ok(images)
}
