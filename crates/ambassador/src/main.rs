//! The `ambassador` binary: parses flags and env, then runs [`ambassador::run`]
//! under the podkit runtime (signals, drain, admin endpoints, exit codes).

use std::process::ExitCode;

fn main() -> ExitCode {
    podkit_runtime::main::<ambassador::Args, _, _, _>(
        &ambassador::BINARY,
        ambassador::Config::from_args,
        ambassador::run,
    )
}
