//! The wait itself: every target is checked in its own task, attempt after
//! attempt, until all (or, with `--any`, one) are ready, the deadline passes,
//! a target fails for good, or the process is told to stop.
//!
//! Pacing: the pause between attempts grows with the time already waited
//! (2% of it), from `--interval` (25 ms) up to `--max-interval` (1 s), and is
//! jittered. An attempt-count exponential backoff would reach its cap within
//! a few seconds, so a dependency that comes up 2 s after the start would be
//! noticed up to a second late; pacing by elapsed time keeps the delay in
//! noticing a dependency under ~2% of the wait while still easing off on
//! long waits.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use podkit_runtime::{Context, Latch};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Config;
use crate::probe::{self, Env, Fail};
use crate::target::Target;

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every target (or one, with `--any`) is ready.
    Ready,
    /// The global timeout passed first.
    TimedOut,
    /// SIGTERM or SIGINT (or a test's shutdown trigger) ended the wait.
    Interrupted,
    /// A target can never become ready (a failed Job, a missing program).
    Failed(String),
}

impl Outcome {
    /// The exit status: 0 ready, 124 timed out, 143 interrupted, 1 failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::TimedOut => 124,
            Self::Interrupted => 143,
            Self::Failed(_) => 1,
        }
    }
}

/// The pause schedule between attempts at one target.
#[derive(Debug, Clone)]
pub struct Pacer {
    min: Duration,
    max: Duration,
    rng: fastrand::Rng,
}

impl Pacer {
    /// Pauses from `min` growing to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            rng: fastrand::Rng::new(),
        }
    }

    /// The pause after an attempt, `waited` into the wait: a ceiling of 2% of
    /// `waited` clamped to `[min, max]`, jittered down to half of it.
    pub fn next(&mut self, waited: Duration) -> Duration {
        let ceiling = (waited / 50).clamp(self.min, self.max);
        let low = ceiling / 2;
        let spread = (ceiling - low).as_nanos() as u64;
        low + Duration::from_nanos(self.rng.u64(0..=spread))
    }
}

/// What the progress lines report for one target.
#[derive(Debug)]
struct Progress {
    attempts: u64,
    reason: String,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            attempts: 0,
            reason: "first attempt still running".to_owned(),
        }
    }
}

/// Waits for the configured targets. Returns [`Outcome::Interrupted`] as
/// soon as `ctx.shutdown` is triggered.
pub async fn run(config: &Config, ctx: &Context) -> Outcome {
    let start = Instant::now();
    let attempts: Counter = Counter::default();
    let pending_gauge: Gauge = Gauge::default();
    ctx.metrics.register(
        "podkit_wait_for_attempts",
        "Attempts made at checking targets",
        attempts.clone(),
    );
    ctx.metrics.register(
        "podkit_wait_for_pending_targets",
        "Targets not ready yet",
        pending_gauge.clone(),
    );
    let env = Arc::new(config.env.clone());
    let mut tasks = JoinSet::new();
    let mut progress = Vec::new();
    for (index, target) in config.targets.iter().enumerate() {
        let state = Arc::new(Mutex::new(Progress::default()));
        progress.push((target.display.clone(), Arc::clone(&state), true));
        let watch = Watch {
            target: target.clone(),
            env: Arc::clone(&env),
            state,
            latch: ctx.readiness.latch(target.display.clone()),
            attempts: attempts.clone(),
            attempt_timeout: config.attempt_timeout,
            pacer: Pacer::new(config.interval, config.max_interval),
            start,
        };
        tasks.spawn(async move { (index, watch.run().await) });
    }
    let mut pending = config.targets.len();
    let mut failed = 0;
    pending_gauge.set(pending as i64);
    let deadline = config.timeout.map(|t| start + t);
    let mut ticker = tokio::time::interval_at(start + config.progress_interval, config.progress_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if pending == 0 {
        return Outcome::Ready;
    }
    loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => return Outcome::Interrupted,
            joined = tasks.join_next() => {
                let Some(joined) = joined else { return Outcome::Ready };
                let (index, result) = match joined {
                    Ok(done) => done,
                    Err(err) => return Outcome::Failed(format!("a probe task ended abnormally: {err}")),
                };
                let (name, state, waiting) = &mut progress[index];
                *waiting = false;
                pending -= 1;
                pending_gauge.set(pending as i64);
                let attempts = lock(state).attempts;
                match result {
                    Ok(()) => {
                        tracing::info!(dependency = %name, took = %human(start.elapsed()), attempts, "Ready.");
                        if config.any || pending == 0 {
                            tracing::info!(took = %human(start.elapsed()), "Done waiting.");
                            return Outcome::Ready;
                        }
                    }
                    Err(reason) => {
                        tracing::error!(dependency = %name, %reason, "Will never be ready.");
                        failed += 1;
                        if !config.any || failed == config.targets.len() {
                            return Outcome::Failed(format!("{name}: {reason}"));
                        }
                    }
                }
            }
            () = sleep_until(deadline) => {
                let timeout = config.timeout.unwrap_or_default();
                for (name, state, waiting) in &progress {
                    if *waiting {
                        let state = lock(state);
                        tracing::error!(dependency = %name, reason = %state.reason, attempts = state.attempts,
                            "Timed out after {}.", human(timeout));
                    }
                }
                return Outcome::TimedOut;
            }
            _ = ticker.tick() => {
                for (name, state, waiting) in &progress {
                    if *waiting {
                        let state = lock(state);
                        tracing::info!(dependency = %name, reason = %state.reason, attempts = state.attempts,
                            waited = %human(start.elapsed()), "Still waiting.");
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn lock(state: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One target's attempts.
struct Watch {
    target: Target,
    env: Arc<Env>,
    /// Shared with the progress reporter.
    state: Arc<Mutex<Progress>>,
    /// `/readyz` shows the target as a not-ready reason until it is ready.
    latch: Latch,
    attempts: Counter,
    attempt_timeout: Duration,
    pacer: Pacer,
    start: Instant,
}

impl Watch {
    /// Checks until ready (`Ok`) or failed for good (`Err`).
    async fn run(mut self) -> Result<(), String> {
        loop {
            let attempt = tokio::time::timeout(self.attempt_timeout, probe::check(&self.target.kind, &self.env)).await;
            self.attempts.inc();
            let reason = match attempt {
                Ok(Ok(())) => {
                    lock(&self.state).attempts += 1;
                    self.latch.release();
                    return Ok(());
                }
                Ok(Err(Fail::Fatal(reason))) => return Err(reason),
                Ok(Err(Fail::NotReady(reason))) => reason,
                Err(_) => format!("no answer within {} (--attempt-timeout)", human(self.attempt_timeout)),
            };
            {
                let mut state = lock(&self.state);
                state.attempts += 1;
                if state.reason != reason {
                    tracing::debug!(dependency = %self.target.display, %reason, "Not ready.");
                    self.latch.set_reason(format!("{}: {reason}", self.target.display));
                    state.reason = reason;
                }
            }
            tokio::time::sleep(self.pacer.next(self.start.elapsed())).await;
        }
    }
}

/// A duration as people write it: `850ms`, `2.3s`, `4m10s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        match (s / 3600, s % 3600 / 60, s % 60) {
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, m, _) => format!("{h}h{m}m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_the_wait_within_bounds() {
        let mut pacer = Pacer::new(Duration::from_millis(25), Duration::from_secs(1));
        for (waited, ceiling) in [
            (0, 25),
            (1_000, 25),
            (2_500, 50),
            (10_000, 200),
            (50_000, 1000),
            (600_000, 1000),
        ] {
            for _ in 0..50 {
                let pause = pacer.next(Duration::from_millis(waited));
                let ceiling = Duration::from_millis(ceiling);
                assert!(
                    pause >= ceiling / 2 && pause <= ceiling,
                    "{pause:?} after {waited}ms, ceiling {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(2340)), "2.3s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(250)), "4m10s");
        assert_eq!(human(Duration::from_secs(7300)), "2h1m");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::Ready.exit_code(), 0);
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
        assert_eq!(Outcome::Interrupted.exit_code(), 143);
        assert_eq!(Outcome::Failed("x".into()).exit_code(), 1);
    }
}
