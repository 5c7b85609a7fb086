//! Graceful shutdown: SIGTERM and SIGINT cancel a token; long-running tasks
//! are spawned on a tracker so the drain can wait for them, bounded by the
//! grace period.
//!
//! This works as PID 1 in a container: the kernel drops signals for PID 1
//! unless a handler is installed, and tokio installs one.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The shutdown protocol handed to every component: a token to watch and a
/// tracker to spawn on.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled once, when draining starts (a signal, or [`Shutdown::trigger`]).
    token: CancellationToken,
    /// Tasks that must finish before the process exits; the drain waits on it.
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh protocol with nothing cancelled and nothing tracked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when draining starts.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Whether draining has started.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Starts draining (what a signal does).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// The token itself, to hand to code that takes one.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns a task the drain will wait for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// The task tracker.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Waits until every tracked task has finished (closing the tracker first,
    /// so no new task can be added).
    pub async fn wait_tasks(&self) {
        self.tracker.close();
        self.tracker.wait().await;
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
