//! `DatabaseProbe`: readiness of the primary (and replica) by running `SELECT 1`.

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::{HealthProbe, ProbeError};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::database::Database;

/// Ready when every pool answers `SELECT 1` in time.
#[derive(Debug, Clone)]
pub struct DatabaseProbe {
    database: Database,
    timeout: Duration,
}

impl DatabaseProbe {
    /// The default time allowed for an answer.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    #[must_use]
    pub fn new(database: Database) -> Self {
        Self {
            database,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Allows `timeout` for each answer (waiting for a free connection included).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn ping(&self, connection: &DatabaseConnection) -> Result<(), ProbeError> {
        let select_one = Query::select().expr(Expr::val(1)).to_owned();
        match tokio::time::timeout(self.timeout, connection.query_one(&select_one)).await {
            Ok(Ok(Some(_))) => Ok(()),
            Ok(Ok(None)) => Err(self.failure(NoAnswer::NoRow)),
            Ok(Err(error)) => Err(self.failure(error)),
            Err(_) => Err(self.failure(NoAnswer::TimedOut(self.timeout))),
        }
    }

    fn failure(&self, cause: impl std::error::Error + Send + Sync + 'static) -> ProbeError {
        ProbeError {
            name: self.name(),
            cause: Box::new(cause),
        }
    }
}

/// The database answered wrongly or not at all.
#[derive(Debug, thiserror::Error)]
enum NoAnswer {
    #[error("SELECT 1 returned no row")]
    NoRow,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

#[async_trait]
impl HealthProbe for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        self.ping(self.database.writer()).await?;
        if self.database.has_replica() {
            self.ping(self.database.reader()).await?;
        }
        Ok(())
    }
}
