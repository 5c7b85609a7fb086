//! Redis targets: `PING` answered with `PONG`, after `AUTH` when the URL
//! carries a password (`redis://:pass@host`, `redis://user:pass@host`).
//!
//! Answers such as `-LOADING Redis is loading the dataset in memory`,
//! `-MASTERDOWN …` or `-NOAUTH Authentication required` are not ready, with
//! the server's words as the reason.

use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Check;
use crate::net::{self, Resolver, Stream};
use crate::target::HostPort;

/// One attempt at a Redis target.
pub async fn check(
    resolver: &Resolver,
    addr: &HostPort,
    tls: Option<&Arc<ClientConfig>>,
    user: Option<&str>,
    password: Option<&str>,
) -> Check {
    let mut stream = net::open(resolver, addr, tls).await?;
    if let Some(password) = password {
        let command = match user {
            Some(user) => command(&["AUTH", user, password]),
            None => command(&["AUTH", password]),
        };
        let reply = call(&mut stream, &command).await?;
        if reply != "+OK" {
            return Err(format!("AUTH failed: {}", reply.trim_start_matches('-')).into());
        }
    }
    let reply = call(&mut stream, &command(&["PING"])).await?;
    judge(&reply)
}

/// Whether a PING reply means ready.
pub fn judge(reply: &str) -> Check {
    match reply {
        "+PONG" => Ok(()),
        r if r.starts_with("-NOAUTH") => Err("authentication required (put the password in the URL)".into()),
        r if r.starts_with('-') => Err(r[1..].to_owned().into()),
        r => Err(format!("unexpected reply {r:?}").into()),
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends a command and reads the first reply line (without CRLF).
async fn call(stream: &mut Stream, command: &[u8]) -> Result<String, String> {
    stream
        .write_all(command)
        .await
        .map_err(|e| podkit_tls::describe_io_error(&e))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 4096 {
            return Err("reply line too long (not a Redis server?)".into());
        }
        match stream.read(&mut byte).await {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(podkit_tls::describe_io_error(&e)),
        }
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Fail;

    #[test]
    fn replies_and_commands() {
        assert_eq!(judge("+PONG"), Ok(()));
        assert_eq!(
            judge("-LOADING Redis is loading the dataset in memory"),
            Err(Fail::NotReady("LOADING Redis is loading the dataset in memory".into()))
        );
        assert!(matches!(judge("-NOAUTH Authentication required."), Err(Fail::NotReady(r)) if r.contains("password")));
        assert_eq!(command(&["AUTH", "pw"]), b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
    }
}
