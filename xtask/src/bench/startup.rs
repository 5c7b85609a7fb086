//! Scenario `startup`: start-to-exit of each podkit binary's `--version`,
//! beside `true` (the floor: a process that does nothing) and busybox. What an
//! init container or a `docker run` costs before any work happens.

use std::process::Command;

use anyhow::Result;

use super::{Contender, Env, Scenario, run_to_completion};

/// Runs per measured sample: one process start is too short to time alone.
const RUNS: usize = 200;

pub fn scenario() -> Scenario {
    Scenario {
        name: "startup",
        about: "start and exit (`--version`) of each binary vs `true` and busybox",
        unit: "runs",
        tools: &[("busybox", "busybox-static")],
        setup,
    }
}

fn setup(env: &Env) -> Result<Vec<Contender>> {
    let mut contenders = Vec::new();
    for bin in ["wait-for", "log-shipper", "tail-rewrite", "ambassador"] {
        let path = env.bin(bin);
        contenders.push(repeat(
            format!("podkit {bin}"),
            true,
            path.display().to_string(),
            "--version",
        ));
    }
    contenders.push(repeat("coreutils true".into(), false, "/bin/true".into(), ""));
    contenders.push(repeat("busybox true".into(), false, "busybox".into(), "true"));
    Ok(contenders)
}

/// A contender that starts `program arg` RUNS times from one shell loop.
fn repeat(name: String, podkit: bool, program: String, arg: &'static str) -> Contender {
    Contender {
        name,
        podkit,
        baseline: None,
        run: Box::new(move || {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!(
                    "i=0; while [ $i -lt {RUNS} ]; do \"$0\" {arg} >/dev/null; i=$((i+1)); done"
                ))
                .arg(&program);
            run_to_completion(cmd, RUNS as f64)
        }),
    }
}
