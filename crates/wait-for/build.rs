//! Links the `wait-for` binary with the functions a wait runs placed first in
//! `.text`, so they share a few pages instead of being spread over the whole
//! binary: peak RSS 1.6 MiB instead of 3.2 (the why and how are in
//! xtask/src/order.rs).
//!
//! `symbol-order.txt` lists them (what profiling runs of the shipped build
//! entered); `cargo xtask wait-for-order` regenerates it. lld moves the
//! section of each name it finds to the front and ignores names it does not
//! (a stale file only costs memory, never a failed build; `cargo xtask
//! check-static` catches it from the link map written below). Only the gnu
//! x86_64 target links with rust-lld by default; other linkers do not know
//! the flag, so they are left alone.

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bin=wait-for=-Wl,--symbol-ordering-file={dir}/symbol-order.txt");
    println!("cargo:rustc-link-arg-bin=wait-for=-Wl,--no-warn-symbol-ordering");
    // Release builds (release, release-small) also write a link map, with
    // mangled names like the list's, beside this script's output:
    // `cargo xtask check-static` counts how many listed names are still in
    // the binary, so a stale list fails there instead of costing memory
    // silently.
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
        println!("cargo:rustc-link-arg-bin=wait-for=-Wl,-Map={out}/wait-for.map");
        println!("cargo:rustc-link-arg-bin=wait-for=-Wl,--no-demangle");
    }
}
