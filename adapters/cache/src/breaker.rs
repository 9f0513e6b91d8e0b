//! `CircuitBreaker`: stops calling a failing dependency for a while, then lets one probe through.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`.
    Open { until: Instant },
    /// One probe is out; every other call is refused until it reports.
    HalfOpen,
}

/// What a caller may do now.
#[derive(Debug)]
pub(crate) enum Admission<'a> {
    /// Call, then report with [`CircuitBreaker::succeeded`] or [`CircuitBreaker::failed`].
    Allowed,
    /// Call as the one probe of a half-open breaker, and report through the [`Probe`].
    Probe(Probe<'a>),
    /// Do not call: the breaker is open (or half-open with its probe out).
    Refused,
}

/// A closed breaker opens after `failures_to_open` consecutive failures, refuses every call for
/// `open_for`, then turns half-open: exactly one caller gets a [`Probe`], whose success closes the
/// breaker and whose failure (or abandonment) opens it again.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    failures_to_open: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker; `failures_to_open` is at least 1.
    pub(crate) fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every write replaces the state whole: a poisoned lock still holds a valid one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub(crate) fn admit(&self) -> Admission<'_> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                Admission::Probe(Probe {
                    breaker: self,
                    reported: false,
                })
            }
            State::Open { .. } | State::HalfOpen => Admission::Refused,
        }
    }

    /// An allowed call succeeded: a closed breaker forgets its failures. (Only a probe closes an
    /// open or half-open breaker: a late success of a call sent before it opened proves little.)
    pub(crate) fn succeeded(&self) {
        let mut state = self.state();
        if let State::Closed { .. } = *state {
            *state = State::Closed { failures: 0 };
        }
    }

    /// An allowed call failed. Returns whether this opened the breaker.
    pub(crate) fn failed(&self) -> bool {
        let mut state = self.state();
        match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.failures_to_open {
                    *state = self.open();
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    /// `"closed"`, `"open"` or `"half_open"` (open past its time counts as open until the next
    /// call turns it half-open).
    pub(crate) fn state_name(&self) -> &'static str {
        match *self.state() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// Whether calls go through without a probe.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.state(), State::Closed { .. })
    }

    fn open(&self) -> State {
        State::Open {
            until: Instant::now() + self.open_for,
        }
    }

    fn report_probe(&self, success: bool) {
        let mut state = self.state();
        if *state == State::HalfOpen {
            *state = if success {
                State::Closed { failures: 0 }
            } else {
                self.open()
            };
        }
    }
}

/// The one call a half-open breaker lets through. Dropped without a report, it counts as a
/// failure (the call was cancelled: nothing was proven).
#[derive(Debug)]
pub(crate) struct Probe<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl Probe<'_> {
    /// The probe succeeded: the breaker closes.
    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        self.breaker.report_probe(true);
    }

    /// The probe failed: the breaker opens again for its full time.
    pub(crate) fn failed(mut self) {
        self.reported = true;
        self.breaker.report_probe(false);
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.report_probe(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_millis(30);

    fn allowed(breaker: &CircuitBreaker) -> bool {
        matches!(breaker.admit(), Admission::Allowed)
    }

    fn refused(breaker: &CircuitBreaker) -> bool {
        matches!(breaker.admit(), Admission::Refused)
    }

    fn open_breaker() -> CircuitBreaker {
        let breaker = CircuitBreaker::new(2, OPEN_FOR);
        assert!(!breaker.failed());
        assert!(breaker.failed());
        breaker
    }

    #[test]
    fn it_opens_after_consecutive_failures_only() {
        let breaker = CircuitBreaker::new(3, OPEN_FOR);
        assert_eq!(breaker.state_name(), "closed");
        assert!(!breaker.failed());
        assert!(!breaker.failed());
        breaker.succeeded();
        assert!(!breaker.failed());
        assert!(!breaker.failed());
        assert!(allowed(&breaker));
        assert!(breaker.failed(), "the third failure in a row opens it");
        assert_eq!(breaker.state_name(), "open");
        assert!(!breaker.is_closed());
        assert!(refused(&breaker));
        assert!(!breaker.failed(), "an open breaker does not open again");
    }

    #[test]
    fn after_its_time_one_probe_goes_through_and_its_success_closes_it() {
        let breaker = open_breaker();
        std::thread::sleep(OPEN_FOR);
        let Admission::Probe(probe) = breaker.admit() else {
            panic!("a probe after the open time");
        };
        assert_eq!(breaker.state_name(), "half_open");
        assert!(refused(&breaker), "only one probe at a time");
        breaker.succeeded();
        assert_eq!(
            breaker.state_name(),
            "half_open",
            "only the probe closes it"
        );
        probe.succeeded();
        assert_eq!(breaker.state_name(), "closed");
        assert!(allowed(&breaker));
        assert!(!breaker.failed(), "its failures start again from zero");
    }

    #[test]
    fn a_failed_or_abandoned_probe_opens_it_again_for_its_full_time() {
        let breaker = open_breaker();
        std::thread::sleep(OPEN_FOR);
        let Admission::Probe(probe) = breaker.admit() else {
            panic!("a probe after the open time");
        };
        probe.failed();
        assert_eq!(breaker.state_name(), "open");
        assert!(refused(&breaker));
        std::thread::sleep(OPEN_FOR);
        match breaker.admit() {
            Admission::Probe(probe) => drop(probe),
            other => panic!("a probe after the open time, not {other:?}"),
        }
        assert_eq!(breaker.state_name(), "open");
        assert!(refused(&breaker));
    }

    #[test]
    fn zero_failures_to_open_means_one() {
        let breaker = CircuitBreaker::new(0, OPEN_FOR);
        assert!(breaker.failed());
    }
}
