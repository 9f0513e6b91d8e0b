//! System ports: time, identifiers and health.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::BoxError;
use crate::id::UserId;

/// The current time. Implementations MUST return UTC truncated to whole microseconds, the
/// precision every supported database keeps, so that a value reads back exactly as written.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// New unique identifiers. Implementations SHOULD return time-ordered UUIDs (v7) so that new rows
/// land at the end of indexes.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn next_id(&self) -> Uuid;
}

/// Who wrote what when, so that their next reads can go to the primary database instead of a
/// replica that may lag (read-your-own-writes).
///
/// Implementations MUST be cheap (called on every read of a list) and MUST bound their memory.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait RecentWrites: Send + Sync {
    /// `caller` committed a write at `at`.
    fn record(&self, caller: UserId, at: DateTime<Utc>);

    /// Whether `caller` committed a write at or after `since`.
    fn wrote_since(&self, caller: UserId, since: DateTime<Utc>) -> bool;
}

/// A dependency is not ready.
#[derive(Debug, thiserror::Error)]
#[error("{name} is not ready")]
pub struct ProbeError {
    pub name: &'static str,
    #[source]
    pub cause: BoxError,
}

/// A readiness check of one dependency (database, cache, ...).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// A short name for reports, such as `"database"`.
    fn name(&self) -> &'static str;

    /// Whether the service cannot work without this dependency (the database). A failing
    /// optional one (a cache the service degrades without) is reported but leaves it ready.
    fn required(&self) -> bool {
        true
    }

    /// # Errors
    /// [`ProbeError`] when the dependency does not answer correctly in time.
    async fn check(&self) -> Result<(), ProbeError>;
}
