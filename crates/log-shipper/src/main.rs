//! The `log-shipper` binary: parses flags and env, then runs [`log_shipper::run`]
//! under the podkit runtime (signals, drain, admin endpoints, exit codes).

use std::process::ExitCode;

fn main() -> ExitCode {
    podkit_runtime::main::<log_shipper::Args, _, _, _>(
        &log_shipper::BINARY,
        log_shipper::Config::from_args,
        log_shipper::run,
    )
}
