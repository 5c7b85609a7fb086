//! The byte pipe between two plain TCP sockets (tcp mode without TLS,
//! CONNECT tunnels): each direction copies through a user-space buffer
//! while traffic is small, and on Linux moves to splice(2) (socket → pipe →
//! socket, no copy through user space) once a read fills the buffer, the
//! way HAProxy's `splice-auto` does. A direction whose spliced chunks turn
//! small again goes back to copying: splice costs two syscalls per chunk
//! where a copy costs two as well but needs no pipe.
//!
//! Both directions run in the connection's task; readiness comes from
//! tokio (`readable()`/`writable()` + `try_io`), so a splice never blocks.
//! End of input on one side is passed on as a write shutdown on the other
//! (half-close); the pipe ends when both directions did, or at the first
//! error. Bytes are counted on the client side like [`crate::net::Tracked`]
//! does: read from the client, written to the client.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

use crate::net::{Activity, COPY_BUFFER, CopyBuf};

/// Which way a direction carries bytes, for the client-side counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to upstream: reads count as "read".
    ToUpstream,
    /// Upstream to client: writes count as "written".
    ToClient,
}

/// Copies both ways until both sides closed (half-close passed on) or an
/// error; see the module docs.
pub async fn copy_bidirectional(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    activity: &Activity,
) -> io::Result<()> {
    let (client_r, client_w) = client.split();
    let (upstream_r, upstream_w) = upstream.split();
    let ended = AtomicBool::new(false);
    tokio::try_join!(
        one_way(client_r, upstream_w, activity, Way::ToUpstream, &ended),
        one_way(upstream_r, client_w, activity, Way::ToClient, &ended),
    )?;
    Ok(())
}

/// Copies one direction until its source ends, then passes the end on as a
/// write shutdown, unless the other direction ended first: then both
/// sockets are closed next, which tells the peer the same (a `Connection:
/// close` exchange saves a syscall). `ended` is shared by the two
/// directions.
async fn one_way(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    activity: &Activity,
    way: Way,
    ended: &AtomicBool,
) -> io::Result<()> {
    let mut pooled = CopyBuf::take();
    let buf = pooled.vec();
    #[cfg(target_os = "linux")]
    let mut bulk = zero_copy::Bulk::default();
    loop {
        #[cfg(target_os = "linux")]
        if bulk.active() {
            match bulk.relay(from.as_ref(), to.as_ref(), buf, activity, way).await? {
                zero_copy::Relayed::Moved => continue,
                zero_copy::Relayed::Eof => break,
                // Back to copying (small chunks again, or no splice here).
                zero_copy::Relayed::Copy => {}
            }
        }
        buf.clear();
        let n = from.read_buf(buf).await?;
        if n == 0 {
            break;
        }
        if way == Way::ToUpstream {
            activity.add_read(n);
        }
        to.write_all(&buf[..n]).await?;
        if way == Way::ToClient {
            activity.add_written(n);
        }
        #[cfg(target_os = "linux")]
        if n == COPY_BUFFER {
            bulk.start();
        }
    }
    if ended.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    match to.shutdown().await {
        // The peer is gone already: nothing left to tell it.
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

#[cfg(target_os = "linux")]
mod zero_copy {
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::io::Errno;
    use rustix::pipe::{PipeFlags, SpliceFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::Way;
    use crate::net::Activity;

    /// The pipe capacity asked for with `F_SETPIPE_SZ`: four times the copy
    /// buffer, so one splice moves what four reads would. The kernel may
    /// refuse (per-user pipe limits); the default size then serves.
    const PIPE_SIZE: usize = 256 << 10;

    /// A spliced chunk below this is "small".
    const SMALL: usize = 8 << 10;

    /// After this many small chunks in a row a direction copies again.
    const SMALL_STREAK: u32 = 4;

    const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

    /// What one relay did.
    pub(super) enum Relayed {
        /// Bytes went through; splice on.
        Moved,
        /// The source closed.
        Eof,
        /// Copy from now on (small traffic, or splice unsupported).
        Copy,
    }

    /// One direction's splice state: the pipe while splicing, and whether
    /// splice works at all for these sockets.
    #[derive(Default)]
    pub(super) struct Bulk {
        pipe: Option<Pipe>,
        small: u32,
        unsupported: bool,
    }

    struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        size: usize,
    }

    impl Bulk {
        pub(super) fn active(&self) -> bool {
            self.pipe.is_some()
        }

        /// Switches to splicing, unless splice failed here before or no
        /// pipe can be had (out of descriptors: copying still works).
        pub(super) fn start(&mut self) {
            if self.unsupported || self.pipe.is_some() {
                return;
            }
            match rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
                Ok((read, write)) => {
                    let size = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
                        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))
                        .unwrap_or(64 << 10);
                    self.pipe = Some(Pipe { read, write, size });
                    self.small = 0;
                }
                Err(err) => tracing::debug!(%err, "No pipe for splice; copying."),
            }
        }

        /// Moves one chunk: socket → pipe, then pipe → socket until the pipe
        /// is empty again.
        pub(super) async fn relay(
            &mut self,
            from: &TcpStream,
            to: &TcpStream,
            buf: &mut Vec<u8>,
            activity: &Activity,
            way: Way,
        ) -> io::Result<Relayed> {
            let Some(pipe) = &self.pipe else {
                return Ok(Relayed::Copy);
            };
            let n = match splice_in(from, pipe).await {
                Ok(0) => return Ok(Relayed::Eof),
                Ok(n) => n,
                Err(err) if unsupported(&err) => {
                    tracing::debug!(%err, "splice from the socket unsupported; copying.");
                    self.unsupported = true;
                    self.pipe = None;
                    return Ok(Relayed::Copy);
                }
                Err(err) => return Err(err),
            };
            if way == Way::ToUpstream {
                activity.add_read(n);
            }
            #[cfg(test)]
            super::tests::SPLICED.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            let mut left = n;
            while left > 0 {
                let moved = match splice_out(pipe, to, left).await {
                    Ok(moved) => moved,
                    Err(err) if unsupported(&err) => {
                        tracing::debug!(%err, "splice to the socket unsupported; copying.");
                        self.unsupported = true;
                        drain_by_copy(pipe, to, left, buf).await?;
                        if way == Way::ToClient {
                            activity.add_written(left);
                        }
                        self.pipe = None;
                        return Ok(Relayed::Copy);
                    }
                    Err(err) => return Err(err),
                };
                left -= moved;
                if way == Way::ToClient {
                    activity.add_written(moved);
                }
            }
            if n < SMALL {
                self.small += 1;
                if self.small >= SMALL_STREAK {
                    #[cfg(test)]
                    super::tests::BACK_TO_COPY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.pipe = None;
                    return Ok(Relayed::Copy);
                }
            } else {
                self.small = 0;
            }
            Ok(Relayed::Moved)
        }
    }

    fn unsupported(err: &io::Error) -> bool {
        let errno = err.raw_os_error().map(Errno::from_raw_os_error);
        matches!(errno, Some(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP))
    }

    /// Socket → empty pipe: at most the pipe's size; 0 at end of input.
    async fn splice_in(from: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
        loop {
            from.readable().await?;
            let spliced = from.try_io(Interest::READABLE, || {
                rustix::pipe::splice(from, None, &pipe.write, None, pipe.size, FLAGS).map_err(io::Error::from)
            });
            match spliced {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
        }
    }

    /// Pipe → socket: some of the `left` bytes in the pipe.
    async fn splice_out(pipe: &Pipe, to: &TcpStream, left: usize) -> io::Result<usize> {
        loop {
            to.writable().await?;
            let spliced = to.try_io(Interest::WRITABLE, || {
                rustix::pipe::splice(&pipe.read, None, to, None, left, FLAGS).map_err(io::Error::from)
            });
            match spliced {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
        }
    }

    /// Writes what sits in the pipe with plain reads and writes (splice to
    /// the socket was refused).
    async fn drain_by_copy(pipe: &Pipe, to: &TcpStream, mut left: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        // Rare (splice refused mid-stream): zeroing the buffer once is fine.
        buf.resize(buf.capacity().max(super::COPY_BUFFER), 0);
        while left > 0 {
            let want = left.min(buf.len());
            let n = rustix::io::read(&pipe.read, &mut buf[..want]).map_err(io::Error::from)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut done = 0;
            while done < n {
                to.writable().await?;
                match to.try_write(&buf[done..n]) {
                    Ok(m) => done += m,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
            left -= n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Bytes moved by splice in this test process.
    pub(super) static SPLICED: AtomicU64 = AtomicU64::new(0);

    /// Directions that went back from splice to copying.
    pub(super) static BACK_TO_COPY: AtomicU64 = AtomicU64::new(0);

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    async fn ping_pong(app: &mut TcpStream, origin: &mut TcpStream, rounds: usize) {
        for i in 0..rounds {
            let ping = format!("ping {i:04}");
            app.write_all(ping.as_bytes()).await.unwrap();
            let mut got = vec![0u8; ping.len()];
            origin.read_exact(&mut got).await.unwrap();
            assert_eq!(got, ping.as_bytes());
            origin.write_all(b"pong").await.unwrap();
            let mut got = [0u8; 4];
            app.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"pong");
        }
    }

    #[tokio::test]
    async fn small_messages_copy_bulk_splices_and_half_close_passes() {
        const BULK: usize = 8 << 20;
        // app ⇄ client … pipe … upstream ⇄ origin
        let (mut app, mut client) = pair().await;
        let (mut upstream, mut origin) = pair().await;
        let activity = Activity::new();
        let counts = std::sync::Arc::clone(&activity);
        let pipe = tokio::spawn(async move { copy_bidirectional(&mut client, &mut upstream, &counts).await });

        ping_pong(&mut app, &mut origin, 50).await;

        let spliced = SPLICED.load(Ordering::Relaxed);
        let bulk: Vec<u8> = (0..BULK).map(|i| (i * 7 % 251) as u8).collect();
        let expected = bulk.clone();
        let writer = tokio::spawn(async move {
            app.write_all(&bulk).await.unwrap();
            app
        });
        let mut got = vec![0u8; BULK];
        origin.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "bulk bytes arrive intact");
        let mut app = writer.await.unwrap();
        if cfg!(target_os = "linux") {
            assert!(SPLICED.load(Ordering::Relaxed) > spliced, "bulk went through splice");
        }

        // Small traffic again: answered one by one, in order, after the
        // bulk, and copied again once a few small chunks went by.
        let back = BACK_TO_COPY.load(Ordering::Relaxed);
        ping_pong(&mut app, &mut origin, 50).await;
        if cfg!(target_os = "linux") {
            assert!(
                BACK_TO_COPY.load(Ordering::Relaxed) > back,
                "small chunks go back to copying"
            );
        }

        // Half-close: the app is done sending; the origin sees EOF and may
        // still answer.
        app.shutdown().await.unwrap();
        let mut rest = Vec::new();
        origin.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        origin.write_all(b"after your EOF").await.unwrap();
        origin.shutdown().await.unwrap();
        let mut rest = Vec::new();
        app.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"after your EOF");

        pipe.await.unwrap().unwrap();
        let pings = 100 * "ping 0000".len();
        assert_eq!(activity.read_bytes(), (pings + BULK) as u64);
        assert_eq!(activity.written_bytes(), (100 * 4 + "after your EOF".len()) as u64);
    }

    #[tokio::test]
    async fn a_reset_ends_the_pipe_with_an_error() {
        let (app, mut client) = pair().await;
        let (mut upstream, origin) = pair().await;
        let activity = Activity::new();
        // SO_LINGER 0: closing sends a reset.
        origin.set_zero_linger().unwrap();
        drop(origin);
        let mut app = app;
        let _ = app.write_all(b"hello").await;
        let result = copy_bidirectional(&mut client, &mut upstream, &activity).await;
        assert!(result.is_err(), "{result:?}");
    }
}
