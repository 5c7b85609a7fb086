//! Helpers shared by wait-for's process tests: the binary, and a
//! tiny HTTP/1.1 server whose answers a test scripts per request.

#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use podkit_testkit::{ClosedPort, PATIENCE, Proc};

pub const BIN: &str = env!("CARGO_BIN_EXE_wait-for");

/// Spawns wait-for with a clean environment plus `envs`.
pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
    Proc::spawn(BIN, args, envs)
}

/// One HTTP request as the test server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET /path HTTP/1.1`
    pub line: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Serves HTTP/1.1 on `listener`, one response per connection, from
/// `answer(request number from 0, request)`. Returns the request counter.
pub fn serve_http(
    listener: TcpListener,
    answer: impl Fn(usize, &Seen) -> String + Send + Sync + 'static,
) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || handle(stream, n, &*answer));
        }
    });
    hits
}

fn handle(mut stream: TcpStream, n: usize, answer: &dyn Fn(usize, &Seen) -> String) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let seen = Seen {
        line: line.trim().to_owned(),
        headers,
    };
    let _ = stream.write_all(answer(n, &seen).as_bytes());
}

/// A complete HTTP/1.1 response.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// Binds a loopback listener on a free port.
pub fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}
