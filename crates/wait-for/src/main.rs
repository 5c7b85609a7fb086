//! The `wait-for` binary: parses flags and env, then runs [`wait_for::run`]
//! under the podkit runtime (signals, drain, admin endpoints, exit codes).

use std::process::ExitCode;

fn main() -> ExitCode {
    podkit_runtime::main::<wait_for::Args, _, _, _>(&wait_for::BINARY, wait_for::Config::from_args, wait_for::run)
}
