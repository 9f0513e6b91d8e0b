//! System ports: time, identifiers and health.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::BoxError;

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

    /// # Errors
    /// [`ProbeError`] when the dependency does not answer correctly in time.
    async fn check(&self) -> Result<(), ProbeError>;
}
