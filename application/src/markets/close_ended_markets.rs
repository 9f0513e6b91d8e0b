//! Close the active markets whose end date has passed; a scheduled `close_ended_markets` job runs it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::listing::{FieldSet, MarketFilter, MarketListQuery, MarketSort, PageRequest};
use domain::market::{MarketChanges, StatusChange};
use domain::{Job, JobError, JobId, JobKind, MarketId, MarketStatus, NewJob};

use super::ChangeMarketError;
use crate::jobs::{JobFailure, JobHandler};
use crate::{Unavailable, UseCases};

/// The kind of the scheduled job that closes ended markets.
pub const CLOSE_ENDED_MARKETS: &str = "close_ended_markets";

/// Markets read per page while looking for ended ones.
const PAGE: u64 = 100;

/// Pages one run goes through at most; the next run goes on from there.
const MAX_PAGES: u64 = 100;

/// The job that closes ended markets now: one at a time across every instance (unique key), so
/// that schedulers on several instances do not pile them up.
///
/// # Errors
/// [`JobError`] never in practice.
pub fn close_ended_markets_job(id: JobId, now: DateTime<Utc>) -> Result<NewJob, JobError> {
    NewJob::new(id, close_ended_markets_kind(), "{}", now)?
        .with_max_attempts(3)?
        .with_unique_key(CLOSE_ENDED_MARKETS)
}

fn close_ended_markets_kind() -> JobKind {
    JobKind::parse(CLOSE_ENDED_MARKETS)
        .unwrap_or_else(|_| unreachable!("`close_ended_markets` is a valid kind"))
}

impl UseCases {
    /// Closes every active market whose end date is before now (up to 10,000 per call), each in
    /// its own transaction with its `MarketStatusChanged` event, and returns how many it closed.
    /// A market changed meanwhile (resolved, cancelled, its end date moved) is left alone.
    ///
    /// # Errors
    /// [`Unavailable`] when the store fails; markets closed before stay closed.
    pub async fn close_ended_markets(&self) -> Result<u64, Unavailable> {
        let now = self.deps().clock.now();
        let query = MarketListQuery {
            filter: MarketFilter {
                status: Some(MarketStatus::Active),
                end_before: Some(now),
                ..MarketFilter::default()
            },
            sort: MarketSort::parse("end_date")
                .unwrap_or_else(|_| unreachable!("`end_date` is a sort key")),
            page: PageRequest::new(PAGE, 0)
                .unwrap_or_else(|_| unreachable!("100 is a valid page size")),
            fields: FieldSet::parse("status")
                .unwrap_or_else(|_| unreachable!("`status` is a market field")),
        };
        let mut closed = 0;
        for _ in 0..MAX_PAGES {
            let page = self.deps().markets.list(&query).await?;
            let mut closed_now = 0;
            for market in &page.items {
                if self.close_ended_market(market.id, now).await? {
                    closed_now += 1;
                }
            }
            closed += closed_now;
            // A short page was the last; a page where nothing closed would come back the same.
            if page.items.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) || closed_now == 0 {
                break;
            }
        }
        if closed > 0 {
            tracing::info!(closed, "ended markets closed");
        }
        Ok(closed)
    }

    /// Closes one market if, under its lock, it is still active and ended.
    async fn close_ended_market(
        &self,
        id: MarketId,
        now: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        let deps = self.deps();
        let transaction = deps.unit_of_work.begin().await?;
        let Some(mut market) = transaction.lock_market(id).await? else {
            return Ok(false);
        };
        if market.status != MarketStatus::Active || market.end_date > now {
            return Ok(false);
        }
        let read_version = market.version;
        let close = StatusChange {
            status: MarketStatus::Closed,
            outcome: None,
        };
        let changes = MarketChanges {
            status: Some(close),
            ..MarketChanges::default()
        };
        if market.apply(changes, deps.clock.now()).is_err() {
            return Ok(false);
        }
        match self
            .record_change(transaction.as_ref(), &market, read_version, Some(close))
            .await
        {
            Ok(()) => {}
            Err(ChangeMarketError::Unavailable(error)) => return Err(error),
            Err(_) => return Ok(false),
        }
        transaction.commit().await?;
        deps.cached_markets.market_changed(&market).await;
        Ok(true)
    }
}

/// Runs `close_ended_markets` jobs.
#[derive(Clone)]
pub struct CloseEndedMarketsHandler {
    use_cases: UseCases,
}

impl CloseEndedMarketsHandler {
    #[must_use]
    pub const fn new(use_cases: UseCases) -> Self {
        Self { use_cases }
    }
}

#[async_trait]
impl JobHandler for CloseEndedMarketsHandler {
    fn kind(&self) -> JobKind {
        close_ended_markets_kind()
    }

    async fn run(&self, _job: &Job) -> Result<(), JobFailure> {
        self.use_cases
            .close_ended_markets()
            .await
            .map(|_| ())
            .map_err(|Unavailable(cause)| {
                JobFailure::Retry(format!(
                    "a dependency failed ({cause}); the next run goes on"
                ))
            })
    }
}
