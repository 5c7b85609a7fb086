//! One attempt at each kind of check. [`check`] runs a single attempt for a
//! target and says ready, not ready (why), or failed for good.
//!
//! Every probe is one short exchange on a fresh connection: wait-for never
//! keeps a connection between attempts, so a server that restarts, or a name
//! that moves to another address, is seen as it is now. The caller bounds
//! each attempt with the per-attempt timeout.

pub mod grpc;
pub mod http;
pub mod k8s;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod redis;

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::net::Resolver;
use crate::target::{FileState, Kind};

/// Why an attempt did not find the target ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// Not ready yet; try again. The reason is what progress lines show
    /// (`connection refused`, `HTTP 503`, `NXDOMAIN`).
    NotReady(String),
    /// It never will be (a Job that failed, a program that does not exist):
    /// the wait ends at once.
    Fatal(String),
}

impl From<String> for Fail {
    fn from(reason: String) -> Self {
        Self::NotReady(reason)
    }
}

impl From<&str> for Fail {
    fn from(reason: &str) -> Self {
        Self::NotReady(reason.to_owned())
    }
}

/// The outcome of one attempt.
pub type Check = Result<(), Fail>;

/// What probes share: how to resolve names, TLS settings, the HTTP checks,
/// the Kubernetes API client. Built once from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Resolves names on every attempt.
    pub resolver: Resolver,
    /// What makes an HTTP answer ready.
    pub http: http::HttpCheck,
    /// TLS for `https://` and `rediss://` (ALPN http/1.1); built only when a
    /// target needs it.
    pub tls: Option<Arc<ClientConfig>>,
    /// TLS for `grpcs://` (ALPN h2).
    pub tls_h2: Option<Arc<ClientConfig>>,
    /// The API server client for `k8s:` targets.
    pub k8s: Option<k8s::K8sEnv>,
}

/// Runs one attempt for `kind`.
pub async fn check(kind: &Kind, env: &Env) -> Check {
    match kind {
        Kind::Tcp(addr) => env.resolver.connect(addr).await.map(drop).map_err(Fail::NotReady),
        Kind::Http { url, addr, tls } => {
            let config = if *tls { Some(needs(&env.tls)?) } else { None };
            http::check(&env.resolver, &env.http, url, addr, config).await
        }
        Kind::Dns { name, family, expect } => {
            let addrs = env.resolver.resolve(name, 0, *family).await?;
            if expect.is_empty() || addrs.iter().any(|a| expect.contains(&a.ip())) {
                Ok(())
            } else {
                let got: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                Err(format!("resolves to {}, not the expected address", got.join(", ")).into())
            }
        }
        Kind::File { path, state } => file(path, *state).await,
        Kind::Exec { program, args } => exec(program, args).await,
        Kind::Postgres { addr, user, database } => postgres::check(&env.resolver, addr, user, database).await,
        Kind::Mysql(addr) => mysql::check(&env.resolver, addr).await,
        Kind::Redis {
            addr,
            tls,
            user,
            password,
        } => {
            let config = if *tls { Some(needs(&env.tls)?) } else { None };
            redis::check(&env.resolver, addr, config, user.as_deref(), password.as_deref()).await
        }
        Kind::Grpc { addr, tls, service } => {
            let config = if *tls { Some(needs(&env.tls_h2)?) } else { None };
            grpc::check(&env.resolver, addr, config, service).await
        }
        Kind::Kafka(addr) => kafka::check(&env.resolver, addr).await,
        Kind::K8s(object) => {
            let k8s = env
                .k8s
                .as_ref()
                .ok_or_else(|| Fail::Fatal("no Kubernetes API server configured".into()))?;
            k8s::check(&env.resolver, k8s, object).await
        }
    }
}

fn needs(config: &Option<Arc<ClientConfig>>) -> Result<&Arc<ClientConfig>, Fail> {
    config
        .as_ref()
        .ok_or_else(|| Fail::Fatal("TLS is not configured (a bug: the config builds it for TLS targets)".into()))
}

async fn file(path: &Path, state: FileState) -> Check {
    let path = path.to_owned();
    // A stat on a hung network mount must not block the runtime (signals,
    // the deadline): run it on the blocking pool, bounded by the attempt
    // timeout like any probe.
    let result = tokio::task::spawn_blocking(move || -> Check {
        match (std::fs::metadata(&path), state) {
            (Ok(_), FileState::Exists) => Ok(()),
            (Ok(_), FileState::Absent) => Err("still exists".into()),
            (Ok(meta), FileState::NonEmpty) if meta.is_dir() => match std::fs::read_dir(&path) {
                Ok(entries) => match entries.into_iter().next() {
                    Some(_) => Ok(()),
                    None => Err("directory is empty".into()),
                },
                Err(e) => Err(podkit_tls::describe_io_error(&e).into()),
            },
            (Ok(meta), FileState::NonEmpty) if meta.len() > 0 => Ok(()),
            (Ok(_), FileState::NonEmpty) => Err("file is empty".into()),
            (Err(e), FileState::Absent) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
            (Err(e), _) => Err(podkit_tls::describe_io_error(&e).into()),
        }
    })
    .await;
    result.unwrap_or_else(|e| Err(format!("stat failed: {e}").into()))
}

async fn exec(program: &str, args: &[String]) -> Check {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        // A timed-out or abandoned attempt must not leave the program behind.
        .kill_on_drop(true)
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fail::Fatal(format!("cannot run `{program}`: not found in PATH")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Fail::Fatal(format!("cannot run `{program}`: permission denied")));
        }
        Err(e) => return Err(format!("cannot run `{program}`: {}", podkit_tls::describe_io_error(&e)).into()),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let status = match output.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    };
    let mut reason = if last.is_empty() {
        status
    } else {
        format!("{status}: {last}")
    };
    reason.truncate(300);
    Err(reason.into())
}

/// Reads exactly `n` bytes, naming an early close the way users expect.
pub(crate) async fn read_exact(stream: &mut (impl AsyncRead + Unpin), n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| podkit_tls::describe_io_error(&e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn file_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let check = |state| block_on(file(&path, state));
        assert_eq!(check(FileState::Exists), Err("does not exist".into()));
        assert_eq!(check(FileState::Absent), Ok(()));
        std::fs::write(&path, "").unwrap();
        assert_eq!(check(FileState::Exists), Ok(()));
        assert_eq!(check(FileState::NonEmpty), Err("file is empty".into()));
        assert_eq!(check(FileState::Absent), Err("still exists".into()));
        std::fs::write(&path, "1").unwrap();
        assert_eq!(check(FileState::NonEmpty), Ok(()));
        assert_eq!(block_on(file(dir.path(), FileState::NonEmpty)), Ok(()));
    }

    #[test]
    fn exec_reports_status_and_last_stderr_line() {
        assert_eq!(block_on(exec("true", &[])), Ok(()));
        let args = [
            "-c".to_owned(),
            "echo starting >&2; echo 'not yet' >&2; exit 3".to_owned(),
        ];
        assert_eq!(
            block_on(exec("sh", &args)),
            Err(Fail::NotReady("exit status 3: not yet".into()))
        );
        assert!(matches!(
            block_on(exec("no-such-program-here", &[])),
            Err(Fail::Fatal(_))
        ));
    }
}
