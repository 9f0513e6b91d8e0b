//! Clocks: the system clock and a settable clock for tests, both truncated to whole microseconds.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use domain::ports::Clock;

/// The real time, truncated to whole microseconds as the [`Clock`] contract requires.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that stands still until told otherwise. Share it as `Arc<FixedClock>` and move it
/// with [`FixedClock::set`] or [`FixedClock::advance`].
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// 2026-01-01T00:00:00Z, the time of [`FixedClock::default`].
    pub const DEFAULT_START: DateTime<Utc> = match DateTime::from_timestamp(1_767_225_600, 0) {
        Some(start) => start,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };

    /// A clock showing `at`, truncated to whole microseconds.
    #[must_use]
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at.trunc_subsecs(6)))
    }

    /// Moves the clock to `at` (truncated to whole microseconds), forwards or backwards.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at.trunc_subsecs(6);
    }

    /// Moves the clock by `by` (which may be negative), truncated to whole microseconds.
    ///
    /// # Panics
    /// When the result is outside the range of [`DateTime`] (about 262,000 years either way).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now
            .checked_add_signed(by)
            .expect("FixedClock advanced out of the range of DateTime")
            .trunc_subsecs(6);
    }
}

impl Default for FixedClock {
    fn default() -> Self {
        Self::new(Self::DEFAULT_START)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        // A `DateTime` is written whole, so a panic elsewhere cannot leave it half-changed.
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn the_system_clock_keeps_whole_microseconds() {
        let now = SystemClock.now();
        assert_eq!(now.nanosecond() % 1_000, 0);
        assert!((Utc::now() - now).num_seconds().abs() < 5);
    }

    #[test]
    fn a_fixed_clock_stands_still_and_moves_when_told() {
        let clock = FixedClock::default();
        assert_eq!(clock.now(), FixedClock::DEFAULT_START);
        assert_eq!(clock.now(), clock.now());
        clock.advance(TimeDelta::minutes(90));
        assert_eq!(
            clock.now(),
            FixedClock::DEFAULT_START + TimeDelta::minutes(90)
        );
        clock.advance(TimeDelta::minutes(-90));
        assert_eq!(clock.now(), FixedClock::DEFAULT_START);
        let later = FixedClock::DEFAULT_START + TimeDelta::days(3);
        clock.set(later);
        assert_eq!(clock.now(), later);
    }

    #[test]
    fn a_fixed_clock_truncates_to_microseconds() {
        let at = FixedClock::DEFAULT_START + TimeDelta::nanoseconds(1_234_567);
        let clock = FixedClock::new(at);
        assert_eq!(clock.now().nanosecond(), 1_234_000);
        clock.advance(TimeDelta::nanoseconds(999));
        assert_eq!(clock.now().nanosecond(), 1_234_000);
        clock.set(at);
        assert_eq!(clock.now().nanosecond(), 1_234_000);
    }
}
