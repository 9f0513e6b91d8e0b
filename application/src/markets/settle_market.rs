//! Settle a resolved or cancelled market: pay every position, one batch per transaction, so that a re-run (or a run after a crash) pays only what is left; the `settle_market` job runs it.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::settlement::{SettlementError, settle_position};
use domain::{Amount, Job, JobError, JobId, JobKind, MarketId, NewJob, Priority, User, UserId};
use serde::{Deserialize, Serialize};

use crate::jobs::{JobFailure, JobHandler};
use crate::notifications::{ResolutionNotice, resolution_notice_job};
use crate::{Unavailable, UseCases};

/// The kind of the job that settles one market.
pub const SETTLE_MARKET: &str = "settle_market";

/// How many times a settlement is tried before it is left in the dead-letter state.
const SETTLEMENT_ATTEMPTS: u32 = 10;

/// The payload of a `settle_market` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SettleMarketPayload {
    market_id: MarketId,
}

/// The job that settles `market`: high priority, and unique per market (a second request while
/// one is queued or running is the same job).
///
/// # Errors
/// [`JobError`] never in practice: the payload and the key are far below their bounds.
pub fn settle_market_job(
    id: JobId,
    market: MarketId,
    now: DateTime<Utc>,
) -> Result<NewJob, JobError> {
    let payload = serde_json::to_string(&SettleMarketPayload { market_id: market })
        .unwrap_or_else(|_| unreachable!("a payload of one id serialises"));
    NewJob::new(id, settle_market_kind(), payload, now)?
        .with_priority(Priority::High)
        .with_max_attempts(SETTLEMENT_ATTEMPTS)?
        .with_unique_key(format!("{SETTLE_MARKET}:{market}"))
}

fn settle_market_kind() -> JobKind {
    JobKind::parse(SETTLE_MARKET)
        .unwrap_or_else(|_| unreachable!("`settle_market` is a valid kind"))
}

/// What one settlement run paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settled {
    /// Positions paid by this run (0 when an earlier run paid them all).
    pub positions: u64,
    /// The sum of their payouts.
    pub paid: Amount,
}

/// Why a market could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleMarketError {
    #[error("no such market")]
    NotFound,
    /// The market is not resolved or cancelled, or a payout broke a rule.
    #[error(transparent)]
    Rule(#[from] SettlementError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<domain::ports::RepositoryError> for SettleMarketError {
    fn from(error: domain::ports::RepositoryError) -> Self {
        Self::Unavailable(error.into())
    }
}

impl UseCases {
    /// Pays every unpaid position of a resolved or cancelled market (see
    /// [`domain::settlement::payout`]), [`crate::Settings::settlement_batch`] positions per
    /// transaction. Each batch credits the holders, marks their positions paid and enqueues a
    /// `resolution_notice` email per position together, so
    /// running this again, concurrently or after a crash pays nothing twice: it only pays what is
    /// left.
    ///
    /// # Errors
    /// See [`SettleMarketError`]; batches committed before the error stay paid.
    pub async fn settle_market(&self, id: MarketId) -> Result<Settled, SettleMarketError> {
        let market = self
            .deps()
            .markets
            .find_by_id(id)
            .await?
            .ok_or(SettleMarketError::NotFound)?;
        if !market.status.is_final() {
            return Err(SettlementError::NotFinished(market.status).into());
        }
        let mut settled = Settled::default();
        loop {
            let batch = self.settle_batch(id).await?;
            if batch.positions == 0 {
                break;
            }
            settled.positions += batch.positions;
            settled.paid = settled.paid.checked_add(batch.paid).unwrap_or(Amount::MAX);
        }
        tracing::info!(market_id = %id, positions = settled.positions, paid = %settled.paid, "market settled");
        Ok(settled)
    }

    /// Pays one batch in one transaction; `positions == 0` when none was left.
    async fn settle_batch(&self, id: MarketId) -> Result<Settled, SettleMarketError> {
        let deps = self.deps();
        let transaction = deps.unit_of_work.begin().await?;
        let positions = transaction
            .positions()
            .unsettled(id, self.settings.settlement_batch.max(1))
            .await?;
        if positions.is_empty() {
            return Ok(Settled::default());
        }
        // Holders first, in id order, then the market: the order in which opening a position
        // locks its rows, so that the two never wait on each other in a cycle.
        let holder_ids: BTreeSet<UserId> = positions.iter().map(|p| p.user_id).collect();
        let mut holders: BTreeMap<UserId, (User, bool)> = BTreeMap::new();
        for user_id in holder_ids {
            let holder = transaction
                .lock_user(user_id)
                .await?
                .ok_or_else(|| Unavailable::from_error(MissingHolder(user_id)))?;
            holders.insert(user_id, (holder, false));
        }
        let market = transaction
            .lock_market(id)
            .await?
            .ok_or(SettleMarketError::NotFound)?;
        let now = deps.clock.now();
        let mut settled = Settled::default();
        for mut position in positions {
            let Some((holder, changed)) = holders.get_mut(&position.user_id) else {
                continue;
            };
            let mut credited = holder.clone();
            let paid = settle_position(&market, &mut position, &mut credited, now)?;
            // `false`: a concurrent run paid it after this one read the batch.
            if !transaction
                .positions()
                .record_payout(position.id, paid)
                .await?
            {
                continue;
            }
            *holder = credited;
            *changed = true;
            settled.positions += 1;
            settled.paid = settled.paid.checked_add(paid).unwrap_or(Amount::MAX);
            // The holder hears about it by email, exactly when the payout commits.
            let notice = ResolutionNotice {
                user_id: position.user_id,
                market_id: id,
                position_id: position.id,
                side: position.side,
                stake: position.amount,
                payout: paid,
            };
            let job = resolution_notice_job(JobId::from_uuid(deps.ids.next_id()), &notice, now)
                .map_err(Unavailable::from_error)?;
            transaction.jobs().enqueue(&job).await?;
        }
        for (holder, changed) in holders.values() {
            if *changed {
                transaction.users().update(holder).await?;
            }
        }
        transaction.commit().await?;
        Ok(settled)
    }
}

/// A holder's row vanished while their position exists: the store broke its own foreign key.
#[derive(Debug, thiserror::Error)]
#[error("the holder {0} of an unpaid position does not exist")]
struct MissingHolder(UserId);

/// Runs `settle_market` jobs.
#[derive(Clone)]
pub struct SettleMarketHandler {
    use_cases: UseCases,
}

impl SettleMarketHandler {
    #[must_use]
    pub const fn new(use_cases: UseCases) -> Self {
        Self { use_cases }
    }
}

#[async_trait]
impl JobHandler for SettleMarketHandler {
    fn kind(&self) -> JobKind {
        settle_market_kind()
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let payload: SettleMarketPayload = serde_json::from_str(&job.payload)
            .map_err(|error| JobFailure::Permanent(format!("the payload is not valid: {error}")))?;
        match self.use_cases.settle_market(payload.market_id).await {
            Ok(_) => Ok(()),
            Err(SettleMarketError::NotFound) => Err(JobFailure::Permanent(
                "the market no longer exists".to_owned(),
            )),
            Err(SettleMarketError::Rule(rule)) => Err(JobFailure::Permanent(rule.to_string())),
            Err(SettleMarketError::Unavailable(Unavailable(cause))) => Err(JobFailure::Retry(
                format!("a dependency failed ({cause}); settlement resumes where it stopped"),
            )),
        }
    }
}
