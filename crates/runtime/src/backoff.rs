//! Jittered exponential backoff, for sink retries, reconnects and probes.
//!
//! Each delay is drawn uniformly from `[d/2, d]` ("equal jitter") where `d`
//! doubles from `initial` up to `max`, so that many pods retrying
//! at once spread out, yet a delay never collapses to zero.

use std::time::Duration;

/// A backoff schedule. `next_delay` yields the next delay; `reset` starts over
/// after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A schedule from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            current: initial,
            rng: fastrand::Rng::new(),
        }
    }

    /// Seeds the jitter, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        let low = ceiling / 2;
        let spread = (ceiling - low).as_nanos() as u64;
        low + Duration::from_nanos(if spread == 0 { 0 } else { self.rng.u64(0..=spread) })
    }

    /// Starts over from the initial delay.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_within_jitter_bounds_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100)).with_seed(7);
        let ceilings = [10, 20, 40, 80, 100, 100];
        for ceiling in ceilings {
            let d = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let delays: std::collections::BTreeSet<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 10, "jitter should vary delays: {delays:?}");
    }
}
