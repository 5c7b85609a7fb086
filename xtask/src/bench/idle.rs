//! Scenario `idle`: the cost of a helper that sits in every pod doing
//! nothing: resident memory and CPU over a few idle seconds, podkit's
//! long-running binaries beside nginx, HAProxy and tinyproxy, each started
//! with a minimal loopback configuration.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use super::{Contender, Env, Scenario, Server};

/// Length of one idle window.
const WINDOW: Duration = Duration::from_secs(2);

pub fn scenario() -> Scenario {
    Scenario {
        name: "idle",
        about: "resident memory and CPU of an idle helper: podkit vs nginx, HAProxy, tinyproxy",
        unit: "seconds",
        tools: &[
            ("nginx", "nginx-light"),
            ("haproxy", "haproxy"),
            ("tinyproxy", "tinyproxy"),
        ],
        setup,
    }
}

fn setup(env: &Env) -> Result<Vec<Contender>> {
    let mut contenders = Vec::new();
    for bin in ["ambassador", "log-shipper", "tail-rewrite"] {
        let mut cmd = Command::new(env.bin(bin));
        cmd.args(["--admin-addr", "127.0.0.1:0"]);
        match bin {
            "ambassador" => {
                cmd.args(super::ambassador::IDLE_ARGS);
            }
            "tail-rewrite" => {
                // The adapter pod's tail-rewrite, following a log nobody writes.
                let log = env.work.join("idle-app.log");
                std::fs::write(&log, "")?;
                cmd.arg("--follow")
                    .arg(&log)
                    .args(["-e", "s/^/Date /", "--no-checkpoint"]);
            }
            _ => {}
        }
        contenders.push(idle(format!("podkit {bin}"), true, cmd));
    }

    let nginx_conf = env.work.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            "daemon off; worker_processes auto; pid {dir}/nginx.pid; error_log stderr;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {dir}; proxy_temp_path {dir};\n\
             server {{ listen 127.0.0.1:18901; location / {{ proxy_pass http://127.0.0.1:18902; }} }} }}\n",
            dir = env.work.display()
        ),
    )?;
    let mut nginx = Command::new("nginx");
    nginx.arg("-c").arg(&nginx_conf).args(["-e", "stderr"]);
    contenders.push(idle("nginx (workers auto)".into(), false, nginx));

    let haproxy_conf = env.work.join("haproxy.cfg");
    std::fs::write(
        &haproxy_conf,
        "global\n  maxconn 1024\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend f\n  bind 127.0.0.1:18903\n  default_backend b\nbackend b\n  server s 127.0.0.1:18902\n",
    )?;
    let mut haproxy = Command::new("haproxy");
    haproxy.arg("-f").arg(&haproxy_conf).arg("-db");
    contenders.push(idle("HAProxy".into(), false, haproxy));

    let tinyproxy_conf = env.work.join("tinyproxy.conf");
    std::fs::write(
        &tinyproxy_conf,
        "Port 18904\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\n",
    )?;
    let mut tinyproxy = Command::new("tinyproxy");
    tinyproxy.arg("-d").arg("-c").arg(&tinyproxy_conf);
    contenders.push(idle("tinyproxy".into(), false, tinyproxy));
    Ok(contenders)
}

/// A contender that starts `cmd`, lets it settle, and measures a quiet window.
fn idle(name: String, podkit: bool, cmd: Command) -> Contender {
    let mut cmd = Some(cmd);
    let mut server: Option<Server> = None;
    Contender {
        name,
        podkit,
        baseline: None,
        run: Box::new(move || {
            if let (None, Some(cmd)) = (&server, cmd.take()) {
                server = Some(Server::spawn(cmd)?);
                // Let it finish starting up (workers forked, pages touched).
                std::thread::sleep(Duration::from_millis(500));
            }
            let server = server.as_mut().expect("started above");
            let sample = server.measure(|| {
                std::thread::sleep(WINDOW);
                Ok((WINDOW.as_secs_f64(), 0.0))
            })?;
            anyhow::ensure!(server.running(), "it exited during the idle window");
            Ok(sample)
        }),
    }
}
