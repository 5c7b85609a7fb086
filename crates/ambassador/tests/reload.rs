//! Live reload of `--config` from a ConfigMap volume on the real binary:
//! after the kubelet's `..data` symlink swap names a new upstream, new
//! connections go to it while a connection opened before keeps working
//! with the old one; a bad file is rejected (logged, counted, old config
//! kept); a new listener address is reported as needing a restart in
//! `/readyz`, which stays 200.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use podkit_testkit::configmap::{ConfigMapDir, reloads};
use podkit_testkit::{PATIENCE, http_get};
use support::Amb;

/// A TCP upstream answering each line with `<id> <line>`.
fn upstream(id: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if writer.write_all(format!("{id} {line}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A client connection through the ambassador.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let writer = TcpStream::connect(addr).unwrap();
        writer.set_read_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Self { writer, reader }
    }

    /// Sends a line; returns the answer.
    fn ask(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        self.reader.read_line(&mut answer).unwrap();
        answer.trim_end().to_owned()
    }
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!("[[listener]]\nmode = \"tcp\"\nlisten = \"127.0.0.1:0\"\nupstreams = \"{upstream}\"\n{extra}")
}

#[test]
fn a_configmap_swap_sends_new_connections_to_the_new_upstream_and_keeps_open_ones() {
    let (a, b) = (upstream("A"), upstream("B"));
    let dir = tempfile::tempdir().unwrap();
    let mut map = ConfigMapDir::new(&dir.path().join("config"), "ambassador.toml", &config(a, ""));
    let path = map.path().display().to_string();
    let mut amb = Amb::start(&["--config", &path]);
    let admin = amb.admin();
    let listen = amb.addr("tcp:127.0.0.1:0");

    let mut open = Client::connect(listen);
    assert_eq!(open.ask("hello"), "A hello");

    map.update(&config(b, ""));
    amb.proc.wait_for_line("Config reloaded.");
    assert_eq!(reloads(admin, "applied"), Some(1.0));
    assert_eq!(
        Client::connect(listen).ask("new"),
        "B new",
        "a new connection uses the new upstream"
    );
    assert_eq!(open.ask("still"), "A still", "an open connection keeps its upstream");

    // A bad file: rejected, the running config stays.
    map.update("[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = \"nowhere\"\n");
    let rejected = amb.proc.wait_for_line("Config rejected");
    assert!(rejected.contains("`mode` is missing"), "{rejected}");
    assert_eq!(reloads(admin, "rejected"), Some(1.0));
    assert_eq!(Client::connect(listen).ask("after bad"), "B after bad");
    assert_eq!(open.ask("and still"), "A and still");

    // A listener that would need a new address: restart required, the
    // rest applied.
    let second = "[[listener]]\nmode = \"tcp\"\nlisten = \"127.0.0.2:0\"\nupstreams = \"127.0.0.1:1\"\n";
    map.update(&config(a, second));
    amb.proc
        .wait_for_line("these settings keep their running values until a restart");
    assert_eq!(reloads(admin, "restart_required"), Some(1.0));
    let ready = http_get(admin, "/readyz").unwrap();
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body,
        "ready\nconfig: restart required for listener 127.0.0.2:0 (new)\n"
    );
    assert_eq!(Client::connect(listen).ask("back"), "A back");

    drop(open);
    amb.proc.signal(libc::SIGTERM);
    let (status, _) = amb.proc.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", amb.proc.stderr());
}
