//! cargo-fuzz target: arbitrary client bytes to the ambassador's forward
//! and reverse proxy request path (hyper's parser, hop-by-hop handling,
//! target checks, policy), in memory, reaching no network. The first byte
//! picks the listener kind. The stable twin is `crates/ambassador/tests/fuzz.rs`.
//!
//! Run: `cargo +nightly fuzz run ambassador_request` (from this directory).

#![no_main]

use ambassador::fuzzing::{Kind, check_answer, exchange_blocking};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let kind = if first & 1 == 0 { Kind::Forward } else { Kind::Reverse };
    let out = exchange_blocking(kind, input);
    if let Err(e) = check_answer(&out) {
        panic!("{e}");
    }
});
