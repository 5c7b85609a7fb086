//! The `ambassador` binary: parses flags and env, then runs [`ambassador::run`]
//! under the podkit runtime (signals, drain, admin endpoints, exit codes) on
//! the number of threads `--workers` asks for.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match podkit_runtime::cli::parse::<ambassador::Args>(ambassador::BINARY.admin_default) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let binary = ambassador::binary(args.workers);
    podkit_runtime::main_with_args(&binary, args, ambassador::Config::from_args, ambassador::run)
}
