//! Readiness: `/readyz` answers 200 only when no component holds a
//! not-ready [`Latch`] and draining has not started.
//!
//! A component takes a latch at start-up, named after what it waits for
//! ("sink reachable", "upstream db.svc resolves"), and releases it (or drops
//! it) when ready. A latch can also go back to not-ready, for a dependency
//! that comes and goes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The process's readiness: a set of named conditions plus the draining flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    draining: AtomicBool,
    next_id: AtomicU64,
    /// Latch id → (name, ready).
    latches: Mutex<BTreeMap<u64, (String, bool)>>,
    /// Notes shown with the status that do not change it, by key.
    notes: Mutex<BTreeMap<String, String>>,
}

/// A condition that keeps the process not ready while it is held and not
/// marked ready. Dropping it counts as ready.
#[derive(Debug)]
pub struct Latch {
    inner: Arc<Inner>,
    id: u64,
}

/// A snapshot of readiness, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// True when ready.
    pub ready: bool,
    /// Why not, one reason per held latch (and "draining").
    pub reasons: Vec<String>,
}

impl Readiness {
    /// A readiness with no latches: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a latch named after what the component waits for; the process
    /// is not ready until it is released.
    pub fn latch(&self, name: impl Into<String>) -> Latch {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().insert(id, (name.into(), false));
        Latch {
            inner: Arc::clone(&self.inner),
            id,
        }
    }

    /// Marks the process as draining: not ready from now on, whatever the
    /// latches say.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// The current status.
    pub fn status(&self) -> Status {
        let mut reasons: Vec<String> = self
            .inner
            .lock()
            .values()
            .filter(|(_, ready)| !ready)
            .map(|(name, _)| name.clone())
            .collect();
        if self.is_draining() {
            reasons.insert(0, "draining".to_owned());
        }
        Status {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// True when ready.
    pub fn is_ready(&self) -> bool {
        self.status().ready
    }

    /// Sets (or with `None` clears) a note `/readyz` shows under its status
    /// without changing it, e.g. "config: restart required for admin-addr"
    /// while the old settings keep running.
    pub fn set_note(&self, key: &str, note: Option<String>) {
        let mut notes = self.inner.notes.lock().unwrap_or_else(PoisonError::into_inner);
        match note {
            Some(note) => notes.insert(key.to_owned(), note),
            None => notes.remove(key),
        };
    }

    /// The notes, ordered by key.
    pub fn notes(&self) -> Vec<String> {
        let notes = self.inner.notes.lock().unwrap_or_else(PoisonError::into_inner);
        notes.values().cloned().collect()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (String, bool)>> {
        // The map stays consistent even if a holder panicked mid-update.
        self.latches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Latch {
    /// Marks this condition ready (`true`) or not ready again (`false`).
    pub fn set_ready(&self, ready: bool) {
        if let Some(entry) = self.inner.lock().get_mut(&self.id) {
            entry.1 = ready;
        }
    }

    /// Renames the condition (the reason `/readyz` gives changes, e.g. from
    /// "connecting" to "connection refused").
    pub fn set_reason(&self, name: impl Into<String>) {
        if let Some(entry) = self.inner.lock().get_mut(&self.id) {
            entry.0 = name.into();
        }
    }

    /// Releases the latch for good.
    pub fn release(self) {}
}

impl Drop for Latch {
    fn drop(&mut self) {
        self.inner.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_latch_is_released_and_not_draining() {
        let readiness = Readiness::new();
        assert!(readiness.is_ready());
        let a = readiness.latch("sink reachable");
        let b = readiness.latch("files discovered");
        assert_eq!(readiness.status().reasons, ["sink reachable", "files discovered"]);
        a.set_ready(true);
        assert_eq!(readiness.status().reasons, ["files discovered"]);
        b.release();
        assert!(readiness.is_ready());
        a.set_ready(false);
        a.set_reason("sink unreachable: connection refused");
        assert_eq!(readiness.status().reasons, ["sink unreachable: connection refused"]);
        drop(a);
        assert!(readiness.is_ready());
        readiness.set_note("config", Some("config: restart required for admin-addr".into()));
        assert!(readiness.is_ready(), "a note does not change readiness");
        assert_eq!(readiness.notes(), ["config: restart required for admin-addr"]);
        readiness.set_note("config", None);
        assert!(readiness.notes().is_empty());
        readiness.start_draining();
        assert_eq!(
            readiness.status(),
            Status {
                ready: false,
                reasons: vec!["draining".into()]
            }
        );
    }
}
