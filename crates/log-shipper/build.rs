//! Links the `log-shipper` binary with the functions it runs to start,
//! follow and ship files, serve a directory, idle and drain placed first in
//! `.text`, so they share a few pages instead of being spread over the whole
//! binary (the kernel maps a 64 KiB neighbourhood around each touched code
//! page): the idle resident set is what every pod pays for its sidecar.
//!
//! `symbol-order.txt` lists them (what profiling runs of the shipped build
//! entered); `cargo xtask symbol-order log-shipper` regenerates it. lld moves
//! the section of each name it finds to the front and ignores names it does
//! not (a stale file only costs memory, never a failed build). Only the gnu
//! x86_64 target links with rust-lld by default; other linkers do not know
//! the flag, so they are left alone.

fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bin=log-shipper=-Wl,--symbol-ordering-file={dir}/symbol-order.txt");
    println!("cargo:rustc-link-arg-bin=log-shipper=-Wl,--no-warn-symbol-ordering");
}
