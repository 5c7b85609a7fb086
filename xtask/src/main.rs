//! `cargo xtask`: the repo's own automation, in Rust so it runs wherever cargo
//! does (the rust-analyzer xtask pattern).
//!
//! - `demo`: runs the main job, a demo of the pod patterns as local processes.
//! - `bench <scenario>`: runs a scenario against podkit and the tools users
//!   would pick instead, interleaved, and prints medians and ratios.
//! - `check-static`: checks that the release binaries are static and run in
//!   an empty root.
//! - `images`: builds the `FROM scratch` images `podkit/<name>:<version>`
//!   (and, with `--busybox`, the test stand-in for the example pods' busybox apps).
//! - `pods`: runs the example pods from `k8s/` on the docker engine, narrated.
//! - `build-release`: builds the release binaries (what the other commands use).
//! - `symbol-order BIN` (`wait-for-order`): regenerates a binary's link order from a profiling run.

// Printing to stdout is what a developer tool is for.
#![allow(clippy::print_stdout)]

mod bench;
mod build;
mod demo;
mod images;
mod order;
mod pods;
mod proc;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo [--release]          run the demo of the pod patterns (local processes)
  bench <scenario> [--rounds N]
                            benchmark podkit against the tools users would pick
                            instead; `bench list` shows the scenarios
  check-static              check the release binaries are static and run in an
                            empty root (builds them first)
  images [--busybox] [--ids FILE]
                            build the FROM-scratch images podkit/<name>:<version>
                            (--busybox: also the test stand-in podkit-test/busybox
                            from Debian's busybox-static; --ids: write
                            repository=image-id lines to FILE)
  pods [NAME]               run the example pods from k8s/ on the docker engine, as
                            the kubelet would (builds the images first)
  build-release             build the release binaries
  symbol-order BIN          regenerate crates/BIN/symbol-order.txt (wait-for,
                            ambassador or log-shipper: the functions it runs,
                            linked first) from callgrind runs;
                            wait-for-order = symbol-order wait-for
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        std::process::exit(64);
    };
    match command.as_str() {
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "check-static" => build::check_static(),
        "images" => images::run(rest),
        "pods" => pods::run(rest),
        "build-release" => build::release().map(|_| ()),
        "symbol-order" => order::run(rest),
        "wait-for-order" => order::run(&["wait-for".to_owned()]),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n{USAGE}"),
    }
}
