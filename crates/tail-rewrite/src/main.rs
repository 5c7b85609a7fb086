//! The `tail-rewrite` binary: parses flags and env, then runs `--once` as a
//! plain filter ([`tail_rewrite::once::main`]), or follow mode under the
//! podkit runtime (signals, drain, admin endpoints, exit codes).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match podkit_runtime::cli::parse::<tail_rewrite::Args>(tail_rewrite::BINARY.admin_default) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.once {
        return tail_rewrite::once::main(args);
    }
    podkit_runtime::main_with_args(
        &tail_rewrite::BINARY,
        args,
        tail_rewrite::Config::from_args,
        tail_rewrite::run,
    )
}
