//! The `tail-rewrite` binary: parses flags and env, then runs [`tail_rewrite::run`]
//! under the podkit runtime (signals, drain, admin endpoints, exit codes).

use std::process::ExitCode;

fn main() -> ExitCode {
    podkit_runtime::main::<tail_rewrite::Args, _, _, _>(
        &tail_rewrite::BINARY,
        tail_rewrite::Config::from_args,
        tail_rewrite::run,
    )
}
