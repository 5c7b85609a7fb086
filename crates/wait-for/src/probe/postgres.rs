//! PostgreSQL targets, decided the way `pg_isready` (libpq's `PQping`)
//! decides: send a StartupMessage and read the first answer.
//!
//! - An authentication request (`R`): the server accepts connections. Ready.
//! - An error with SQLSTATE 57P03 (`cannot_connect_now`: "the database system
//!   is starting up", "… is shutting down", "… is in recovery mode"): the
//!   server rejects connections for now. Not ready.
//! - Any other error (a wrong user or database, "too many connections"): the
//!   server is up and said no to *us*. Ready, as pg_isready says; a real
//!   client with the right credentials gets in.
//! - No answer at all: not ready.
//!
//! wait-for never authenticates; it closes the connection after the answer.

use tokio::io::AsyncWriteExt;

use super::{Check, read_exact};
use crate::net::Resolver;
use crate::target::HostPort;

/// One attempt at a PostgreSQL target.
pub async fn check(resolver: &Resolver, addr: &HostPort, user: &str, database: &str) -> Check {
    let mut stream = resolver.connect(addr).await?;
    stream
        .write_all(&startup_message(user, database))
        .await
        .map_err(|e| podkit_tls::describe_io_error(&e))?;
    let head = read_exact(&mut stream, 5)
        .await
        .map_err(|e| format!("no answer to the startup message ({e})"))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if !(4..=65_536).contains(&len) {
        return Err("not a PostgreSQL answer".into());
    }
    let body = read_exact(&mut stream, len - 4).await?;
    let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await; // Terminate, politely.
    judge(head[0], &body)
}

/// Reads the first message type and body as pg_isready would.
pub fn judge(tag: u8, body: &[u8]) -> Check {
    match tag {
        // AuthenticationOk or a request for a password: the server is up.
        b'R' => Ok(()),
        // The server only negotiates a protocol version when it is up.
        b'v' => Ok(()),
        b'E' => {
            let fields = error_fields(body);
            let field = |code: u8| fields.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str());
            let sqlstate = field(b'C').unwrap_or("");
            let message = field(b'M').unwrap_or("");
            if sqlstate == "57P03" {
                Err(format!("server not accepting connections: {message}").into())
            } else if sqlstate.len() != 5 {
                Err(format!("error without SQLSTATE: {message}").into())
            } else {
                tracing::debug!(sqlstate, message, "PostgreSQL is up (it rejected our startup message).");
                Ok(())
            }
        }
        other => Err(format!("unexpected answer type {:?} (not a PostgreSQL server?)", other as char).into()),
    }
}

/// StartupMessage for protocol 3.0.
pub fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&196_608u32.to_be_bytes()); // 3.0
    for (key, value) in [("user", user), ("database", database), ("application_name", "wait-for")] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Fail;

    fn error(code: &str, message: &str) -> Vec<u8> {
        format!("SFATAL\0C{code}\0M{message}\0\0").into_bytes()
    }

    #[test]
    fn pg_isready_rules() {
        assert_eq!(judge(b'R', &[0, 0, 0, 10]), Ok(()));
        assert_eq!(
            judge(b'E', &error("57P03", "the database system is starting up")),
            Err(Fail::NotReady(
                "server not accepting connections: the database system is starting up".into()
            ))
        );
        assert_eq!(judge(b'E', &error("53300", "sorry, too many clients already")), Ok(()));
        assert_eq!(judge(b'E', &error("3D000", "database \"x\" does not exist")), Ok(()));
        assert!(judge(b'H', b"").is_err());
    }

    #[test]
    fn startup_message_layout() {
        let msg = startup_message("u", "d");
        assert_eq!(&msg[..4], &(msg.len() as u32).to_be_bytes());
        assert_eq!(&msg[4..8], &[0, 3, 0, 0]);
        assert!(msg.ends_with(b"application_name\0wait-for\0\0"));
    }
}
