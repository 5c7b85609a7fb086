//! Graceful shutdown, one mechanism for every long-running binary: SIGTERM
//! and SIGINT start the drain; long-running tasks are spawned on the
//! [`Shutdown`] tracker so the drain can wait for them; and the drain runs
//! on one timeline computed here, from the grace period:
//!
//! 1. draining starts ([`Shutdown::cancelled`]): `/readyz` is 503, work that
//!    can stop at once stops;
//! 2. after the drain delay ([`Shutdown::set_drain_delay`], zero unless a
//!    binary sets one) listeners stop accepting ([`Shutdown::stop_accepting`]);
//! 3. at the drain deadline, a margin before the grace period ends
//!    ([`Shutdown::hard_stop`]), whatever is still open is closed, so the
//!    process still exits 0 within the grace period.
//!
//! This works as PID 1 in a container: the kernel drops signals for PID 1
//! unless a handler is installed, and tokio installs one.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The shutdown protocol handed to every component: the drain's three
/// signals and a tracker to spawn on. Cloning is one reference count.
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Cancelled once, when draining starts (a signal, or [`Shutdown::trigger`]).
    draining: CancellationToken,
    /// Cancelled the drain delay after draining starts: listeners stop
    /// accepting, HTTP connections close once their requests are answered.
    stop_accepting: CancellationToken,
    /// Cancelled at the drain deadline: everything still open is closed.
    hard_stop: CancellationToken,
    /// Tasks that must finish before the process exits; the drain waits on it.
    tracker: TaskTracker,
    /// The process's grace period, which every deadline is computed from.
    grace_period: Duration,
    /// How long listeners keep accepting after draining starts, in
    /// nanoseconds (set by the binary at start, read when draining starts).
    drain_delay_ns: AtomicU64,
}

impl Shutdown {
    /// A fresh protocol for a process with this grace period: nothing
    /// cancelled, nothing tracked, no drain delay.
    pub fn new(grace_period: Duration) -> Self {
        Self(Arc::new(Inner {
            draining: CancellationToken::new(),
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            grace_period,
            drain_delay_ns: AtomicU64::new(0),
        }))
    }

    /// Resolves when draining starts.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.0.draining.cancelled()
    }

    /// Whether draining has started.
    pub fn is_cancelled(&self) -> bool {
        self.0.draining.is_cancelled()
    }

    /// Starts draining (what a signal does). The later steps follow when
    /// [`Shutdown::run_deadlines`] reaches them.
    pub fn trigger(&self) {
        self.0.draining.cancel();
    }

    /// Every step at once: draining, stop accepting, hard stop (for a
    /// harness that ends all connections without a drain).
    pub fn stop_now(&self) {
        self.0.draining.cancel();
        self.0.stop_accepting.cancel();
        self.0.hard_stop.cancel();
    }

    /// The token cancelled when draining starts, to hand to code that takes one.
    pub fn token(&self) -> &CancellationToken {
        &self.0.draining
    }

    /// Sets how long listeners keep accepting after draining starts (so an
    /// app's last calls still work while the endpoints are updated), at most
    /// half the grace period; returns the delay in effect.
    pub fn set_drain_delay(&self, delay: Duration) -> Duration {
        let delay = delay.min(self.0.grace_period / 2);
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.0.drain_delay_ns.store(ns, Ordering::Relaxed);
        delay
    }

    /// The drain delay in effect.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_nanos(self.0.drain_delay_ns.load(Ordering::Relaxed))
    }

    /// Resolves when listeners must stop accepting: the drain delay after
    /// draining started.
    pub fn stop_accepting(&self) -> WaitForCancellationFuture<'_> {
        self.0.stop_accepting.cancelled()
    }

    /// The stop-accepting token, to hand to code that takes one.
    pub fn stop_accepting_token(&self) -> &CancellationToken {
        &self.0.stop_accepting
    }

    /// Resolves at the drain deadline: close whatever is still open.
    pub fn hard_stop(&self) -> WaitForCancellationFuture<'_> {
        self.0.hard_stop.cancelled()
    }

    /// Whether the drain deadline has passed.
    pub fn is_hard_stopped(&self) -> bool {
        self.0.hard_stop.is_cancelled()
    }

    /// The hard-stop token, to hand to code that takes one.
    pub fn hard_stop_token(&self) -> &CancellationToken {
        &self.0.hard_stop
    }

    /// How long after draining starts the hard stop comes: the grace period
    /// less a margin (a tenth of it plus 200 ms) in which what was closed
    /// finishes, so the process exits 0 rather than at the grace deadline.
    pub fn drain_deadline(&self) -> Duration {
        let grace = self.0.grace_period;
        grace.saturating_sub(grace / 10 + Duration::from_millis(200))
    }

    /// Spawns a task the drain will wait for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.tracker.spawn(task)
    }

    /// Tasks on the tracker that have not finished.
    pub fn open_tasks(&self) -> usize {
        self.0.tracker.len()
    }

    /// Waits until every tracked task has finished (closing the tracker first,
    /// so that the wait can end).
    pub async fn wait_tasks(&self) {
        self.0.tracker.close();
        self.0.tracker.wait().await;
    }

    /// The drain's timeline, from the moment it is called (when draining
    /// starts): stop accepting after the drain delay, hard stop at the drain
    /// deadline. Never resolves; the runtime's lifecycle awaits it beside
    /// the drain itself.
    pub async fn run_deadlines(&self) -> std::convert::Infallible {
        let started = tokio::time::Instant::now();
        let delay = self.drain_delay();
        if !delay.is_zero() {
            tracing::info!(drain_delay = ?delay, "Still accepting for the drain delay.");
            tokio::time::sleep(delay).await;
        }
        self.0.stop_accepting.cancel();
        tracing::debug!(open = self.open_tasks(), "Stopped accepting; draining what is open.");
        tokio::time::sleep_until(started + self.drain_deadline()).await;
        tracing::warn!(
            open = self.open_tasks(),
            "Closing what is still busy at the drain deadline."
        );
        self.0.hard_stop.cancel();
        std::future::pending().await
    }
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what Kubernetes and `docker stop` send.
    Term,
    /// SIGINT: Ctrl-C.
    Int,
}

impl Signal {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }
}

/// A listener for SIGTERM and SIGINT, installed as soon as it is created so
/// no signal is missed between start-up and the first wait.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Term,
            _ = self.int.recv() => Signal::Int,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_drain_stops_accepting_after_the_delay_and_hard_stops_before_the_grace_period_ends() {
        let shutdown = Shutdown::new(Duration::from_secs(10));
        assert_eq!(shutdown.set_drain_delay(Duration::from_secs(2)), Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        shutdown.trigger();
        let deadlines = shutdown.clone();
        tokio::spawn(async move { deadlines.run_deadlines().await });
        shutdown.stop_accepting().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(!shutdown.is_hard_stopped());
        shutdown.hard_stop().await;
        // A tenth of the grace period plus 200 ms before its end.
        assert_eq!(start.elapsed(), Duration::from_millis(8_800));
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_delay_is_at_most_half_the_grace_period_and_none_by_default() {
        let shutdown = Shutdown::new(Duration::from_secs(3));
        assert_eq!(shutdown.drain_delay(), Duration::ZERO);
        assert_eq!(
            shutdown.set_drain_delay(Duration::from_secs(5)),
            Duration::from_millis(1500)
        );
        let unset = Shutdown::new(Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        unset.trigger();
        let deadlines = unset.clone();
        tokio::spawn(async move { deadlines.run_deadlines().await });
        unset.stop_accepting().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no delay: stop accepting at once");
    }

    #[tokio::test]
    async fn the_drain_waits_for_tracked_tasks() {
        let shutdown = Shutdown::new(Duration::from_secs(10));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = shutdown.clone();
        shutdown.spawn(async move {
            task.hard_stop().await;
            drop(tx);
        });
        assert_eq!(shutdown.open_tasks(), 1);
        shutdown.stop_now();
        shutdown.wait_tasks().await;
        assert!(rx.await.is_err(), "the task ran to its end before the wait ended");
        assert_eq!(shutdown.open_tasks(), 0);
    }
}
