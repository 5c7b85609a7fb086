//! Connection plumbing shared by every mode: a stream
//! wrapper that counts bytes and remembers the last activity (for idle
//! timeouts), bidirectional copies with half-close, and the access log.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use podkit_runtime::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::AccessLog;
use crate::stats::ListenerStats;

/// Last activity and byte counts of one client connection.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    /// Requests being answered now (HTTP): an idle timeout never cuts a
    /// connection that waits on a slow upstream.
    pub in_flight: AtomicUsize,
    read: AtomicU64,
    written: AtomicU64,
}

impl Activity {
    /// Fresh activity, "now" being the last.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Counts `n` bytes read from the client (a pipe that bypasses
    /// [`Tracked`]).
    pub(crate) fn add_read(&self, n: usize) {
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    /// Counts `n` bytes written to the client.
    pub(crate) fn add_written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    /// Resolves once nothing moved for `idle` while no request was in
    /// flight. `Duration::ZERO` never resolves.
    pub async fn idle(&self, idle: Duration) {
        if idle.is_zero() {
            std::future::pending::<()>().await;
        }
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                if self.in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                tokio::time::sleep(idle).await;
                continue;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }

    /// Bytes read from the wrapped stream so far.
    pub fn read_bytes(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Bytes written to the wrapped stream so far.
    pub fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Adds the counts to a listener's byte counters (reads from the client
    /// go upstream, writes go to the client).
    pub fn account(&self, stats: &ListenerStats) {
        stats.to_upstream.inc_by(self.read_bytes());
        stats.to_client.inc_by(self.written_bytes());
    }
}

/// A stream that records activity and counts bytes.
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.read.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.activity.written.fetch_add(*n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            self.activity.written.fetch_add(*n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The buffer size of each direction of a byte copy: large buffers halve
/// the syscalls of bulk transfers against tokio's 8 KiB default.
pub const COPY_BUFFER: usize = 64 << 10;

/// Copy buffers kept per thread for the next connection.
const POOLED_BUFFERS: usize = 8;

thread_local! {
    static BUFFER_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A copy buffer: [`COPY_BUFFER`] bytes of capacity, never zeroed (reads
/// go into its spare capacity), taken from a small per-thread pool and put
/// back when dropped. A short connection costs neither the allocation nor
/// the 64 KiB memset of a fresh zeroed buffer per direction, which was most
/// of the user-space work of a `Connection: close` request through a tcp
/// listener (callgrind: 143k instructions per connection, 88% memset).
#[derive(Debug)]
pub struct CopyBuf(Vec<u8>);

impl CopyBuf {
    /// An empty buffer with [`COPY_BUFFER`] bytes of capacity.
    pub fn take() -> Self {
        let pooled = BUFFER_POOL.try_with(|pool| pool.borrow_mut().pop()).ok().flatten();
        let mut buf = pooled.unwrap_or_else(|| Vec::with_capacity(COPY_BUFFER));
        buf.clear();
        Self(buf)
    }

    /// The buffer: read into its spare capacity (`read_buf`), then use
    /// what was read.
    pub fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for CopyBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() != COPY_BUFFER {
            return;
        }
        // During thread teardown the pool may be gone: then just free.
        let _ = BUFFER_POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED_BUFFERS {
                pool.push(buf);
            }
        });
    }
}

/// How a byte pipe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeEnd {
    /// Both sides closed.
    Done,
    /// Idle for too long.
    Idle,
    /// The drain deadline passed.
    Drained,
    /// An I/O error on either side (a reset, usually).
    Error,
}

/// Copies both ways between `client` (already wrapped in [`Tracked`] with
/// `activity`) and `upstream` until both sides close (half-close is passed
/// on), the connection idles, or the drain deadline passes.
pub async fn pipe<A, B>(
    client: &mut Tracked<A>,
    upstream: &mut B,
    activity: &Activity,
    idle: Duration,
    drain: &Shutdown,
) -> PipeEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        biased;
        result = tokio::io::copy_bidirectional_with_sizes(client, upstream, COPY_BUFFER, COPY_BUFFER) => {
            match result {
                Ok(_) => PipeEnd::Done,
                Err(err) => {
                    tracing::debug!(%err, "Byte pipe ended with an error.");
                    PipeEnd::Error
                }
            }
        }
        () = activity.idle(idle) => PipeEnd::Idle,
        () = drain.hard_stop() => PipeEnd::Drained,
    }
}

/// [`pipe`] between two plain TCP sockets: the same ends, half-close and
/// counts (bytes from and to `client` go to `activity`), but bulk traffic
/// moves by splice(2) on Linux (see [`crate::splice`]).
pub async fn pipe_tcp(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    activity: &Activity,
    idle: Duration,
    drain: &Shutdown,
) -> PipeEnd {
    tokio::select! {
        biased;
        result = crate::splice::copy_bidirectional(client, upstream, activity) => {
            match result {
                Ok(()) => PipeEnd::Done,
                Err(err) => {
                    tracing::debug!(%err, "Byte pipe ended with an error.");
                    PipeEnd::Error
                }
            }
        }
        () = activity.idle(idle) => PipeEnd::Idle,
        () = drain.hard_stop() => PipeEnd::Drained,
    }
}

/// Writes access log lines to stdout (data, like any request log), one per
/// request or tunnel.
#[derive(Debug, Clone, Copy)]
pub struct AccessLogger(pub AccessLog);

/// One access log entry.
#[derive(Debug, serde::Serialize)]
pub struct AccessEntry<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Client address.
    pub client: SocketAddr,
    /// Method (or `TCP`).
    pub method: &'a str,
    /// Request target or upstream.
    pub target: &'a str,
    /// Status code (0 for TCP).
    pub status: u16,
    /// Upstream endpoint, when one was reached.
    pub upstream: Option<SocketAddr>,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Bytes to the upstream (request body or tunnel).
    pub bytes_in: u64,
    /// Bytes to the client (response body or tunnel).
    pub bytes_out: u64,
}

impl AccessLogger {
    /// Whether lines are written at all (skip building entries otherwise).
    pub fn enabled(&self) -> bool {
        self.0 != AccessLog::Off
    }

    /// Writes one entry.
    pub fn log(&self, entry: &AccessEntry<'_>) {
        let line = match self.0 {
            AccessLog::Off => return,
            AccessLog::Json => {
                let mut value = serde_json::to_value(entry).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("timestamp".into(), serde_json::Value::String(rfc3339_now()));
                }
                value.to_string()
            }
            AccessLog::Text => format!(
                "{} listener={} client={} method={} target={:?} status={} upstream={} duration_ms={:.3} bytes_in={} bytes_out={}",
                rfc3339_now(),
                entry.listener,
                entry.client,
                entry.method,
                entry.target,
                entry.status,
                entry.upstream.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                entry.duration_ms,
                entry.bytes_in,
                entry.bytes_out,
            ),
        };
        let mut out = io::stdout().lock();
        // A closed stdout must not take the proxy down.
        let _ = writeln!(out, "{line}");
    }
}

fn rfc3339_now() -> String {
    humantime_rfc3339(SystemTime::now())
}

fn humantime_rfc3339(t: SystemTime) -> String {
    // RFC 3339 in UTC with milliseconds, without pulling a date crate.
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_buffers_are_reused_empty_and_never_zeroed_again() {
        let mut first = CopyBuf::take();
        first.vec().extend_from_slice(b"request bytes");
        let at = first.vec().as_ptr();
        drop(first);
        let mut again = CopyBuf::take();
        assert_eq!(again.vec().as_ptr(), at, "the same allocation, from the pool");
        assert!(again.vec().is_empty());
        assert_eq!(again.vec().capacity(), COPY_BUFFER);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_198_000_123);
        assert_eq!(humantime_rfc3339(t), "2025-11-26T23:00:00.123Z");
        assert_eq!(humantime_rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[tokio::test]
    async fn idle_resolves_only_after_quiet_and_not_while_a_request_runs() {
        let activity = Activity::new();
        activity.in_flight.store(1, Ordering::Relaxed);
        let waited = tokio::time::timeout(Duration::from_millis(150), activity.idle(Duration::from_millis(20))).await;
        assert!(waited.is_err(), "a request in flight keeps the connection");
        activity.in_flight.store(0, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), activity.idle(Duration::from_millis(20)))
            .await
            .expect("idle after the request ends");
    }
}
