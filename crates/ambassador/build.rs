//! Links the `ambassador` binary with the functions it runs at start-up,
//! while idle and on its first requests placed first in `.text`, so they
//! share a few pages instead of being spread over the whole binary (the
//! kernel maps a 64 KiB neighbourhood around each touched code page): the
//! idle resident set is what every pod pays for its ambassador.
//!
//! `symbol-order.txt` lists them (what a profiling run of the shipped build
//! entered); `cargo xtask symbol-order ambassador` regenerates it. lld moves
//! the section of each name it finds to the front and ignores names it does
//! not (a stale file only costs memory, never a failed build; `cargo xtask
//! check-static` catches it from the link map written below). Only the gnu
//! x86_64 target links with rust-lld by default; other linkers do not know
//! the flag, so they are left alone.

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bin=ambassador=-Wl,--symbol-ordering-file={dir}/symbol-order.txt");
    println!("cargo:rustc-link-arg-bin=ambassador=-Wl,--no-warn-symbol-ordering");
    // Release builds also write a link map, with mangled names like the
    // list's, beside this script's output: `cargo xtask check-static` counts
    // how many listed names are still in the binary.
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
        println!("cargo:rustc-link-arg-bin=ambassador=-Wl,-Map={out}/ambassador.map");
        println!("cargo:rustc-link-arg-bin=ambassador=-Wl,--no-demangle");
    }
}
