//! Links a podkit binary with the functions it runs first placed at the
//! front of `.text`, so they share a few pages instead of being spread over
//! the whole binary (the kernel maps a 64 KiB neighbourhood around each
//! touched code page): resident memory is what every pod pays for its
//! helper.
//!
//! Each binary's `build.rs` calls [`apply`] with its name. The list is the
//! crate's `symbol-order.txt` (the functions a profiling run of the shipped
//! build entered); `cargo xtask symbol-order BIN` regenerates it. lld moves
//! the section of each name it finds to the front and ignores names it does
//! not, so a stale list only costs memory, never a failed build; that is why
//! release builds also write a link map (with mangled names, like the
//! list's) into the build script's `OUT_DIR`: `cargo xtask check-static`
//! counts how many listed names are still in the binary and fails below a
//! share. Only the gnu x86_64 target links with rust-lld by default; other
//! linkers do not know the flags, so they are left alone.

use std::env;

/// Prints the cargo directives that link binary `bin` of the calling crate
/// in the order of the crate's `symbol-order.txt`, with a link map in
/// release builds (`release` and `release-small` both report `release`).
#[expect(clippy::print_stdout, reason = "a build script speaks to cargo on stdout")]
pub fn apply(bin: &str) {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    for line in directives(
        bin,
        env::var("TARGET").ok().as_deref(),
        env::var("PROFILE").ok().as_deref(),
        &env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for build scripts"),
        &env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"),
    ) {
        println!("{line}");
    }
}

/// The link directives for `bin`, from the build's target and profile.
fn directives(
    bin: &str,
    target: Option<&str>,
    profile: Option<&str>,
    manifest_dir: &str,
    out_dir: &str,
) -> Vec<String> {
    if target != Some("x86_64-unknown-linux-gnu") {
        return Vec::new();
    }
    let arg = |flag: String| format!("cargo:rustc-link-arg-bin={bin}={flag}");
    let mut lines = vec![
        arg(format!("-Wl,--symbol-ordering-file={manifest_dir}/symbol-order.txt")),
        arg("-Wl,--no-warn-symbol-ordering".to_owned()),
    ];
    if profile == Some("release") {
        lines.push(arg(format!("-Wl,-Map={out_dir}/{bin}.map")));
        lines.push(arg("-Wl,--no-demangle".to_owned()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn release_builds_on_the_gnu_target_order_the_link_and_write_a_map() {
        let lines = directives(
            "wait-for",
            Some("x86_64-unknown-linux-gnu"),
            Some("release"),
            "/src/wf",
            "/out",
        );
        assert_eq!(
            lines,
            [
                "cargo:rustc-link-arg-bin=wait-for=-Wl,--symbol-ordering-file=/src/wf/symbol-order.txt",
                "cargo:rustc-link-arg-bin=wait-for=-Wl,--no-warn-symbol-ordering",
                "cargo:rustc-link-arg-bin=wait-for=-Wl,-Map=/out/wait-for.map",
                "cargo:rustc-link-arg-bin=wait-for=-Wl,--no-demangle",
            ]
        );
    }

    #[test]
    fn debug_builds_are_ordered_without_a_map() {
        let lines = directives(
            "ambassador",
            Some("x86_64-unknown-linux-gnu"),
            Some("debug"),
            "/a",
            "/o",
        );
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| !l.contains("-Map")));
    }

    #[test]
    fn other_targets_are_left_alone() {
        assert!(
            directives(
                "log-shipper",
                Some("aarch64-unknown-linux-gnu"),
                Some("release"),
                "/a",
                "/o"
            )
            .is_empty()
        );
        assert!(directives("log-shipper", None, None, "/a", "/o").is_empty());
    }
}
