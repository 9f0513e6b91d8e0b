//! Background jobs: what is queued (kind, JSON payload, priority, schedule, attempts), their states, and the retry backoff.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::id::{JobId, UserId};

/// Why a job description is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("a job kind is 1 to {max} characters of a-z, 0-9, '_' and '.'")]
    InvalidKind { max: usize },
    #[error("a job payload is at most {max} bytes")]
    PayloadTooLarge { max: usize },
    #[error("max_attempts must be between 1 and {max}")]
    MaxAttemptsOutOfRange { max: u32 },
    #[error("a unique key is 1 to {max} characters")]
    InvalidUniqueKey { max: usize },
}

/// The name of a kind of job (`market.settle`, `email.welcome`): 1 to 64 characters of `a-z`,
/// `0-9`, `_` and `.`. Workers fetch the kinds they handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKind(String);

impl JobKind {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// [`JobError::InvalidKind`] when `name` is empty, too long or has another character.
    pub fn parse(name: &str) -> Result<Self, JobError> {
        let valid = (1..=Self::MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(JobError::InvalidKind { max: Self::MAX_LEN })
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How urgent a job is: workers take `High` jobs first, then `Normal`, then `Low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Self; 3] = [Self::High, Self::Normal, Self::Low];

    /// The rank stored and sorted on: 0 for `High`, 1 for `Normal`, 2 for `Low` (lower first).
    #[must_use]
    pub const fn rank(self) -> i16 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    /// The priority of a stored rank.
    #[must_use]
    pub const fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            0 => Some(Self::High),
            1 => Some(Self::Normal),
            2 => Some(Self::Low),
            _ => None,
        }
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

/// Where a job is in its life.
///
/// `Available` → (fetched) `Running` → `Succeeded`, or back to `Available` with a later `run_at`
/// (a failure with attempts left, or a release), or `Dead` (no attempts left, or not retryable).
/// A `Running` job whose lease ran out is fetched again (its worker is presumed dead). A `Dead`
/// job is made `Available` again only by hand ([`crate::ports::JobQueue::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to run at `run_at` (a job waiting for its retry time is available too).
    Available,
    /// Claimed by a worker until `lease_until`.
    Running,
    /// Done.
    Succeeded,
    /// Failed for good; `last_error` says why.
    Dead,
}

impl JobState {
    pub const ALL: [Self; 4] = [Self::Available, Self::Running, Self::Succeeded, Self::Dead];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }

    /// The state named `name` (as [`JobState::as_str`] writes it).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether the job may still run: only live jobs hold their unique key.
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(self, Self::Available | Self::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue, validated. Built with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    id: JobId,
    kind: JobKind,
    payload: String,
    priority: Priority,
    run_at: DateTime<Utc>,
    max_attempts: u32,
    unique_key: Option<String>,
    owner: Option<UserId>,
    created_at: DateTime<Utc>,
}

impl NewJob {
    /// The largest payload, in bytes of JSON text.
    pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
    pub const MAX_ATTEMPTS: u32 = 100;
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
    pub const MAX_UNIQUE_KEY_LEN: usize = 255;

    /// A job of `kind` with `payload` (JSON text, not checked here), created and runnable at
    /// `now`, of `Normal` priority, with [`Self::DEFAULT_MAX_ATTEMPTS`] attempts, no unique key
    /// and no owner.
    ///
    /// # Errors
    /// [`JobError::PayloadTooLarge`] above [`Self::MAX_PAYLOAD_BYTES`].
    pub fn new(
        id: JobId,
        kind: JobKind,
        payload: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, JobError> {
        let payload = payload.into();
        if payload.len() > Self::MAX_PAYLOAD_BYTES {
            return Err(JobError::PayloadTooLarge {
                max: Self::MAX_PAYLOAD_BYTES,
            });
        }
        Ok(Self {
            id,
            kind,
            payload,
            priority: Priority::Normal,
            run_at: now,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
            owner: None,
            created_at: now,
        })
    }

    #[must_use]
    pub const fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Not to run before `run_at` (a delayed job).
    #[must_use]
    pub const fn with_run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = run_at;
        self
    }

    /// # Errors
    /// [`JobError::MaxAttemptsOutOfRange`] outside `1..=100`.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Result<Self, JobError> {
        if max_attempts == 0 || max_attempts > Self::MAX_ATTEMPTS {
            return Err(JobError::MaxAttemptsOutOfRange {
                max: Self::MAX_ATTEMPTS,
            });
        }
        self.max_attempts = max_attempts;
        Ok(self)
    }

    /// At most one live (available or running) job holds `key` at a time: enqueueing another
    /// while one does is a [`crate::ports::Enqueued::Duplicate`].
    ///
    /// # Errors
    /// [`JobError::InvalidUniqueKey`] when `key` is empty or longer than 255 characters.
    pub fn with_unique_key(mut self, key: impl Into<String>) -> Result<Self, JobError> {
        let key = key.into();
        if key.is_empty() || key.chars().count() > Self::MAX_UNIQUE_KEY_LEN {
            return Err(JobError::InvalidUniqueKey {
                max: Self::MAX_UNIQUE_KEY_LEN,
            });
        }
        self.unique_key = Some(key);
        Ok(self)
    }

    /// The user the job acts for, if any (for listing a user's jobs and for access checks).
    #[must_use]
    pub const fn with_owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }

    #[must_use]
    pub const fn id(&self) -> JobId {
        self.id
    }

    #[must_use]
    pub const fn kind(&self) -> &JobKind {
        &self.kind
    }

    #[must_use]
    pub fn payload(&self) -> &str {
        &self.payload
    }

    #[must_use]
    pub const fn priority(&self) -> Priority {
        self.priority
    }

    #[must_use]
    pub const fn run_at(&self) -> DateTime<Utc> {
        self.run_at
    }

    #[must_use]
    pub const fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    #[must_use]
    pub fn unique_key(&self) -> Option<&str> {
        self.unique_key.as_deref()
    }

    #[must_use]
    pub const fn owner(&self) -> Option<UserId> {
        self.owner
    }

    #[must_use]
    pub const fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The job as stored right after enqueueing: available, never attempted.
    #[must_use]
    pub fn into_job(self) -> Job {
        Job {
            id: self.id,
            kind: self.kind,
            payload: self.payload,
            priority: self.priority,
            state: JobState::Available,
            attempts: 0,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            lease_until: None,
            worker: None,
            last_error: None,
            unique_key: self.unique_key,
            owner: self.owner,
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    /// JSON text.
    pub payload: String,
    pub priority: Priority,
    pub state: JobState,
    /// How many times a worker fetched it (a released job does not count).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not to run before this.
    pub run_at: DateTime<Utc>,
    /// While running: until when the worker holds it.
    pub lease_until: Option<DateTime<Utc>>,
    /// The worker that fetched it last.
    pub worker: Option<String>,
    /// The last failure, at most [`Job::MAX_ERROR_BYTES`] bytes.
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub owner: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// The longest error kept, in bytes; longer ones are cut at a character boundary.
    pub const MAX_ERROR_BYTES: usize = 2 * 1024;

    /// `error` cut to at most [`Self::MAX_ERROR_BYTES`] bytes, at a character boundary: what
    /// every adapter stores as `last_error`.
    #[must_use]
    pub fn truncate_error(error: &str) -> &str {
        if error.len() <= Self::MAX_ERROR_BYTES {
            return error;
        }
        let mut end = Self::MAX_ERROR_BYTES;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        &error[..end]
    }
}

/// Exponential backoff with jitter: how long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt (before jitter).
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after `attempt` failed attempts (1 after the first), with *equal jitter*:
    /// `d = min(max, base * 2^(attempt - 1))`, then `d/2 + d/2 * jitter`, so the delay is
    /// between half and all of `d` and retries of many jobs that failed together spread out.
    /// `jitter` is a random number in `[0, 1]` (clamped; not a number counts as 0), given by the
    /// caller so that this stays deterministic.
    #[must_use]
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63);
        let factor = 1_u64 << exponent;
        let factor = u32::try_from(factor).unwrap_or(u32::MAX);
        let capped = self
            .base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let half = capped / 2;
        half + half.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn kind() -> JobKind {
        JobKind::parse("market.settle").expect("a kind")
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    #[test]
    fn kinds_are_short_lowercase_names() {
        assert!(JobKind::parse("market.settle_2").is_ok());
        assert!(JobKind::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "Market", "market settle", "é", &"a".repeat(65)] {
            assert_eq!(
                JobKind::parse(bad),
                Err(JobError::InvalidKind { max: 64 }),
                "{bad}"
            );
        }
    }

    #[test]
    fn priorities_rank_high_first_and_round_trip() {
        assert!(Priority::High.rank() < Priority::Normal.rank());
        assert!(Priority::Normal.rank() < Priority::Low.rank());
        for priority in Priority::ALL {
            assert_eq!(Priority::from_rank(priority.rank()), Some(priority));
        }
        assert_eq!(Priority::from_rank(3), None);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("retrying"), None);
        assert!(JobState::Running.is_live());
        assert!(!JobState::Dead.is_live());
    }

    #[test]
    fn a_new_job_is_checked() {
        let id = JobId::from_uuid(Uuid::nil());
        let big = "x".repeat(NewJob::MAX_PAYLOAD_BYTES + 1);
        assert_eq!(
            NewJob::new(id, kind(), big, now()),
            Err(JobError::PayloadTooLarge { max: 65_536 })
        );
        let job = NewJob::new(id, kind(), "{}", now()).expect("a job");
        assert_eq!(
            job.clone().with_max_attempts(0),
            Err(JobError::MaxAttemptsOutOfRange { max: 100 })
        );
        assert_eq!(
            job.clone().with_max_attempts(101),
            Err(JobError::MaxAttemptsOutOfRange { max: 100 })
        );
        assert!(job.clone().with_unique_key("").is_err());
        assert!(job.clone().with_unique_key("k".repeat(256)).is_err());
        let stored = job
            .with_max_attempts(3)
            .expect("in range")
            .with_unique_key("settle:1")
            .expect("a key")
            .with_priority(Priority::High)
            .into_job();
        assert_eq!(stored.state, JobState::Available);
        assert_eq!((stored.attempts, stored.max_attempts), (0, 3));
        assert_eq!(stored.unique_key.as_deref(), Some("settle:1"));
        assert_eq!(stored.run_at, now());
    }

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(Job::truncate_error("short"), "short");
        let long = "é".repeat(Job::MAX_ERROR_BYTES);
        let cut = Job::truncate_error(&long);
        assert!(cut.len() <= Job::MAX_ERROR_BYTES);
        assert_eq!(cut.len(), Job::MAX_ERROR_BYTES);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(policy.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(1_000, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(0, 1.0), Duration::from_secs(2));
        assert_eq!(policy.delay(2, f64::NAN), Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn a_delay_stays_between_half_and_all_of_the_capped_backoff(
            base_ms in 1_u64..10_000,
            max_ms in 1_u64..1_000_000,
            attempt in 0_u32..200,
            jitter in -1.0_f64..2.0,
        ) {
            let policy = RetryPolicy {
                base: Duration::from_millis(base_ms),
                max: Duration::from_millis(max_ms),
            };
            let delay = policy.delay(attempt, jitter);
            let exponent = attempt.saturating_sub(1).min(40);
            let capped = Duration::from_millis(
                base_ms.saturating_mul(1_u64 << exponent).min(max_ms),
            );
            prop_assert!(delay <= capped);
            prop_assert!(delay >= capped / 2);
            prop_assert_eq!(policy.delay(attempt, jitter), delay);
        }

        #[test]
        fn delays_never_shrink_as_attempts_grow(attempt in 1_u32..100, jitter in 0.0_f64..=1.0) {
            let policy = RetryPolicy {
                base: Duration::from_millis(100),
                max: Duration::from_secs(3_600),
            };
            prop_assert!(policy.delay(attempt + 1, jitter) >= policy.delay(attempt, jitter));
        }
    }
}
