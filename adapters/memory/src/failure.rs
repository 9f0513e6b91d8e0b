//! The storage failures an in-memory repository can report: a poisoned lock and a simulated outage.

use std::fmt;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};

use domain::ports::RepositoryError;

/// A thread panicked while holding the store's lock; its contents may be half-changed.
#[derive(Debug, Clone, Copy)]
struct LockPoisoned;

impl fmt::Display for LockPoisoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the in-memory store's lock was poisoned by a panic")
    }
}

impl std::error::Error for LockPoisoned {}

/// The store was switched off with `set_unavailable(true)`.
#[derive(Debug, Clone, Copy)]
struct SimulatedOutage;

impl fmt::Display for SimulatedOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the in-memory store is switched off (simulated outage)")
    }
}

impl std::error::Error for SimulatedOutage {}

/// Maps a poisoned lock to [`RepositoryError::Unavailable`] instead of panicking.
pub(crate) fn poisoned<T>(_: PoisonError<T>) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(LockPoisoned))
}

/// A switch that makes every operation of a store fail with [`RepositoryError::Unavailable`].
#[derive(Debug, Default)]
pub(crate) struct OutageSwitch(AtomicBool);

impl OutageSwitch {
    pub(crate) fn set(&self, unavailable: bool) {
        self.0.store(unavailable, Ordering::SeqCst);
    }

    /// `Err(Unavailable)` while the switch is on.
    pub(crate) fn check(&self) -> Result<(), RepositoryError> {
        if self.0.load(Ordering::SeqCst) {
            Err(RepositoryError::Unavailable(Box::new(SimulatedOutage)))
        } else {
            Ok(())
        }
    }
}
