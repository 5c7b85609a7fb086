//! The `wait-for` binary: waits with [`wait_for::main`], then exits with its
//! status or execs the command after `--` (only once every target is ready).

use std::process::ExitCode;

fn main() -> ExitCode {
    match wait_for::main() {
        wait_for::Next::Exit(code) => code,
        wait_for::Next::Exec(command) => wait_for::exec(command),
    }
}
