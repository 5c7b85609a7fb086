//! Building the binaries and checking that release builds are static.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// The four binaries, by package and binary name.
pub const BINARIES: [(&str, &str); 4] = [
    ("podkit-log-shipper", "log-shipper"),
    ("podkit-tail-rewrite", "tail-rewrite"),
    ("podkit-ambassador", "ambassador"),
    ("podkit-wait-for", "wait-for"),
];

/// Sizes the README promises, in bytes (MB = 10^6 bytes): `check-static`
/// fails when a shipped binary outgrows its promise.
pub const PROMISED_MAX_SIZE: [(&str, u64); 1] = [("wait-for", 4_000_000)];

/// Whether `bin` at `size` bytes breaks a size promise; the message says by
/// how much.
fn over_promise(bin: &str, size: u64) -> Option<String> {
    let (_, max) = PROMISED_MAX_SIZE.iter().find(|(b, _)| *b == bin)?;
    (size > *max).then(|| format!("{bin} is {size} bytes, over the {max} the README promises"))
}

/// Binaries linked with a `symbol-order.txt` (and a link map, see their
/// build.rs), and the share of the list's names the shipped binary must still
/// contain: below it the list is stale (the names changed with a toolchain,
/// dependency or code change) and `cargo xtask symbol-order BIN` must
/// regenerate it. lld ignores missing names silently, so only this notices.
///
/// Not 100 %: LTO numbers its local copies (`…eq_ignore_ascii_case.2449`) and
/// the numbers shift with most code changes, so a third of a list goes
/// missing long before the list stops working (wait-for: 988 of 1,471 names
/// after a round of refactoring). A new toolchain or changed crate hashes
/// take nearly all names at once, which this catches.
pub const SYMBOL_ORDER_MIN_SHARE: [(&str, f64); 3] = [("wait-for", 0.6), ("ambassador", 0.6), ("log-shipper", 0.6)];

/// How many of the names in `crates/<bin>/symbol-order.txt` the newest
/// release link map of `bin` holds, and how many it lists.
fn symbol_order_coverage(bin: &str) -> Result<(usize, usize)> {
    let list_path = root().join(format!("crates/{bin}/symbol-order.txt"));
    let list = std::fs::read_to_string(&list_path).with_context(|| format!("reading {}", list_path.display()))?;
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut maps = Vec::new();
    for profile in ["release", "release-small"] {
        let build = target_dir()
            .join("x86_64-unknown-linux-gnu")
            .join(profile)
            .join("build");
        for dir in std::fs::read_dir(&build).into_iter().flatten().flatten() {
            let map = dir.path().join("out").join(format!("{bin}.map"));
            if let Ok(modified) = std::fs::metadata(&map).and_then(|m| m.modified()) {
                maps.push((modified, map));
            }
        }
    }
    let (_, map) = maps
        .into_iter()
        .max()
        .with_context(|| format!("no link map of {bin} (its build.rs writes one in release builds)"))?;
    let text = std::fs::read_to_string(&map).with_context(|| format!("reading {}", map.display()))?;
    // Symbol lines end in the symbol's name; input-section lines end in
    // `file.o:(.text.NAME)`, which never equals a bare name.
    let present: std::collections::HashSet<&str> = text.lines().filter_map(|l| l.split_whitespace().last()).collect();
    Ok((names.iter().filter(|n| present.contains(*n)).count(), names.len()))
}

/// Whether `found` of `listed` names meet `bin`'s minimum share.
fn stale_order(bin: &str, found: usize, listed: usize) -> Option<String> {
    let (_, min) = SYMBOL_ORDER_MIN_SHARE.iter().find(|(b, _)| *b == bin)?;
    let share = if listed == 0 { 0.0 } else { found as f64 / listed as f64 };
    (share < *min).then(|| {
        format!(
            "{bin}: only {found} of the {listed} names in its symbol-order.txt are in the binary \
             ({:.0} %, below {:.0} %): run `cargo xtask symbol-order {bin}`",
            share * 100.0,
            min * 100.0
        )
    })
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The target directory, honouring CARGO_TARGET_DIR.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the binaries with `profile` (`dev` or `release`) and returns the
/// directory holding them.
///
/// For `release`, wait-for is built with the `release-small` profile (its
/// dependencies optimised for size too, which a build shared with the other
/// binaries cannot do) and copied beside the others; the ambassador and
/// log-shipper are each built on their own (no features merged in from the
/// other binaries: the ambassador 0.5 MB smaller, and both with the symbol
/// names their `symbol-order.txt` was made for, since `cargo xtask
/// symbol-order` builds them alone too).
pub fn binaries(profile: &str) -> Result<PathBuf> {
    if profile != "release" {
        return cargo_build(profile, &BINARIES);
    }
    let (small, rest): (Vec<_>, Vec<_>) = BINARIES.iter().copied().partition(|(_, bin)| *bin == "wait-for");
    let (alone, rest): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|(_, bin)| matches!(*bin, "ambassador" | "log-shipper"));
    for bin in &alone {
        cargo_build("release", std::slice::from_ref(bin))?;
    }
    let dir = cargo_build("release", &rest)?;
    let small_dir = cargo_build("release-small", &small)?;
    for (_, bin) in small {
        std::fs::copy(small_dir.join(bin), dir.join(bin))
            .with_context(|| format!("copying the release-small {bin} beside the others"))?;
    }
    Ok(dir)
}

fn cargo_build(profile: &str, binaries: &[(&str, &str)]) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).arg("build").arg("--profile").arg(profile);
    for (package, _) in binaries {
        cmd.args(["-p", package]);
    }
    let status = cmd.status().context("running cargo build")?;
    ensure!(status.success(), "cargo build --profile {profile} failed");
    let dir = if profile == "dev" { "debug" } else { profile };
    Ok(target_dir().join("x86_64-unknown-linux-gnu").join(dir))
}

/// Builds the release binaries.
pub fn release() -> Result<PathBuf> {
    binaries("release")
}

/// Checks every release binary: `file` says static-pie linked, `ldd` says
/// statically linked, `--version` runs in an empty root (a chroot holding
/// only the binary), so the FROM-scratch images can work, and the binary is
/// no bigger than the README promises ([`PROMISED_MAX_SIZE`]); and that the
/// link-order lists still match the build ([`SYMBOL_ORDER_MIN_SHARE`]).
pub fn check_static() -> Result<()> {
    let dir = release()?;
    let mut failures = Vec::new();
    for (_, bin) in BINARIES {
        let path = dir.join(bin);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{} missing", path.display()))?
            .len();
        let file = output("file", &[path.as_os_str()])?;
        let ldd = output("ldd", &[path.as_os_str()]).unwrap_or_else(|e| e.to_string());
        let is_static = file.contains("static-pie linked") || file.contains("statically linked");
        let ldd_static = ldd.contains("statically linked") || ldd.contains("not a dynamic executable");
        let chroot = run_in_empty_root(&path, bin);
        println!(
            "{bin:<13} {size:>10} bytes  file: {}  ldd: {}  empty root: {}",
            if is_static { "static" } else { "DYNAMIC" },
            if ldd_static { "statically linked" } else { "DYNAMIC" },
            match &chroot {
                Ok(v) => v.trim().to_owned(),
                Err(e) => format!("FAILED ({e:#})"),
            }
        );
        if !is_static || !ldd_static || chroot.is_err() {
            failures.push(format!("{bin}: not static or not runnable in an empty root"));
        }
        if let Some(over) = over_promise(bin, size) {
            println!("{over}");
            failures.push(over);
        }
    }
    for (bin, _) in SYMBOL_ORDER_MIN_SHARE {
        let (found, listed) = symbol_order_coverage(bin)?;
        println!("{bin:<13} symbol-order.txt: {found} of {listed} names in the binary");
        if let Some(stale) = stale_order(bin, found, listed) {
            println!("{stale}");
            failures.push(stale);
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Runs `bin --version` chrooted into a fresh directory that holds only the
/// binary, with an empty environment. Needs root (CI and dev machines here
/// are root); elsewhere it tries `unshare -r` to become root in a user
/// namespace.
fn run_in_empty_root(path: &Path, bin: &str) -> Result<String> {
    let root = tempdir()?;
    std::fs::copy(path, root.join(bin))?;
    let is_root = output("id", &["-u".as_ref()]).map(|u| u.trim() == "0").unwrap_or(false);
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("no chroot command")?;
    let mut cmd = if is_root {
        Command::new(chroot)
    } else {
        let mut c = Command::new("unshare");
        c.args(["-r", chroot]);
        c
    };
    let out = cmd
        .arg(&root)
        .arg(format!("/{bin}"))
        .arg("--version")
        .env_clear()
        .output();
    let _ = std::fs::remove_dir_all(&root);
    let out = out.context("running chroot")?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn output(program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// A fresh temporary directory under the system temp dir.
pub fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("podkit-xtask-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) ^ (NEXT.fetch_add(1, Ordering::Relaxed) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_promises_are_checked() {
        assert_eq!(over_promise("wait-for", 3_866_800), None);
        assert_eq!(over_promise("wait-for", 4_000_000), None);
        let over = over_promise("wait-for", 4_000_001).expect("over 4 MB");
        assert!(over.contains("4000001") && over.contains("4000000"), "{over}");
        assert_eq!(over_promise("ambassador", 9_000_000), None, "no promise for it");
    }

    #[test]
    fn a_stale_symbol_order_is_reported() {
        assert_eq!(stale_order("wait-for", 95, 100), None);
        let stale = stale_order("wait-for", 50, 100).expect("half the names gone");
        assert!(
            stale.contains("50 of the 100") && stale.contains("symbol-order wait-for"),
            "{stale}"
        );
        assert!(stale_order("wait-for", 0, 0).is_some(), "an empty list is stale");
    }
}
