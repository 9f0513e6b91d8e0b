//! `InMemoryIdempotencyStore`: idempotency records keyed by caller, route and key, with claims, leases, replays and expiry.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{
    Claim, ClaimRequest, IdempotencyScope, IdempotencyStore, RepositoryError, StoredResponse,
};

use crate::failure::OutageSwitch;
use crate::store::Scope;

/// One stored record.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyRecord {
    fingerprint: String,
    expires_at: DateTime<Utc>,
    progress: Progress,
}

/// Where the work behind a record stands.
#[derive(Debug, Clone)]
enum Progress {
    /// Claimed, not completed; honoured while the lease lasts.
    Claimed {
        lease_until: DateTime<Utc>,
    },
    Completed(StoredResponse),
}

impl IdempotencyRecord {
    /// Expired records are forgotten: "expired before `now`", as `purge_expired` deletes them.
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }
}

/// What a claim finds in an existing record, or `None` when the record counts as absent.
fn outcome(record: &IdempotencyRecord, request: &ClaimRequest) -> Option<Claim> {
    let lease_ended = matches!(
        record.progress,
        Progress::Claimed { lease_until } if lease_until <= request.now
    );
    if record.expired(request.now) || lease_ended {
        return None;
    }
    if record.fingerprint != request.fingerprint {
        return Some(Claim::Mismatch);
    }
    match &record.progress {
        Progress::Completed(response) => Some(Claim::Replay(response.clone())),
        Progress::Claimed { .. } => Some(Claim::InProgress),
    }
}

/// The domain's [`IdempotencyStore`] over the records of an [`crate::InMemoryStore`], or of one
/// of its transactions.
///
/// `claim` decides in the order the port documents:
/// 1. a record that expired (`expires_at <= now`, the rule of `purge_expired`), or an unfinished
///    claim whose lease ended (`lease_until <= now`), counts as absent;
/// 2. a record with a different fingerprint is [`Claim::Mismatch`], completed or not;
/// 3. a completed record is [`Claim::Replay`] of its response;
/// 4. an unfinished claim is [`Claim::InProgress`];
/// 5. absent: a new unfinished claim is stored (fingerprint, `expires_at`, `lease_until` from
///    the request) and the answer is [`Claim::Acquired`].
///
/// Outside a transaction (the store from [`crate::InMemoryStore::idempotency`], where `claim`
/// belongs) every operation commits at once. Inside a transaction every operation, `claim`
/// included, acts on the working copy and becomes visible at commit.
///
/// `complete` turns an unfinished claim into a completed record with the response and the
/// claim's expiry; it answers `NotFound` when there is no record or the record is completed
/// already (a second worker that took over an ended lease cannot overwrite the first one's
/// response: its transaction fails instead). `release` deletes an unfinished claim and keeps a
/// completed record (or nothing). `purge_expired` deletes every record, finished or not, whose
/// `expires_at` is before `now`.
#[derive(Debug)]
pub struct InMemoryIdempotencyStore {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryIdempotencyStore {
    pub(crate) fn in_scope(scope: Scope) -> Self {
        Self {
            scope,
            outage: OutageSwitch::default(),
        }
    }

    /// While `true`, every operation of this store fails with [`RepositoryError::Unavailable`]
    /// and changes nothing, as a database that cannot be reached would.
    /// [`crate::InMemoryStore::set_unavailable`] switches the whole store off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                if let Some(found) = state
                    .idempotency
                    .get(&request.scope)
                    .and_then(|record| outcome(record, request))
                {
                    return Ok(found);
                }
                Arc::make_mut(&mut state.idempotency).insert(
                    request.scope.clone(),
                    IdempotencyRecord {
                        fingerprint: request.fingerprint.clone(),
                        expires_at: request.expires_at,
                        progress: Progress::Claimed {
                            lease_until: request.lease_until,
                        },
                    },
                );
                Ok(Claim::Acquired)
            })
            .await
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
    ) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                if !matches!(
                    state.idempotency.get(scope),
                    Some(IdempotencyRecord {
                        progress: Progress::Claimed { .. },
                        ..
                    })
                ) {
                    return Err(RepositoryError::NotFound);
                }
                if let Some(record) = Arc::make_mut(&mut state.idempotency).get_mut(scope) {
                    record.progress = Progress::Completed(response.clone());
                }
                Ok(())
            })
            .await
    }

    async fn release(&self, scope: &IdempotencyScope) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                if matches!(
                    state.idempotency.get(scope),
                    Some(IdempotencyRecord {
                        progress: Progress::Claimed { .. },
                        ..
                    })
                ) {
                    Arc::make_mut(&mut state.idempotency).remove(scope);
                }
                Ok(())
            })
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                let expired = state
                    .idempotency
                    .values()
                    .filter(|record| record.expired(now))
                    .count();
                if expired > 0 {
                    Arc::make_mut(&mut state.idempotency).retain(|_, record| !record.expired(now));
                }
                Ok(u64::try_from(expired).unwrap_or(u64::MAX))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use domain::ports::UnitOfWork as _;

    use super::*;
    use crate::InMemoryStore;
    use crate::store::testing::start;

    fn scope(key: &str) -> IdempotencyScope {
        IdempotencyScope {
            caller: "user-1".into(),
            route: "POST /api/v1/markets/{id}/positions".into(),
            key: key.into(),
        }
    }

    /// A claim at `start() + minutes`, kept a day and leased for 30 seconds.
    fn request(key: &str, fingerprint: &str, minutes: i64) -> ClaimRequest {
        let now = start() + TimeDelta::minutes(minutes);
        ClaimRequest {
            scope: scope(key),
            fingerprint: fingerprint.into(),
            now,
            expires_at: now + TimeDelta::days(1),
            lease_until: now + TimeDelta::seconds(30),
        }
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![("Location".into(), "/api/v1/positions/1".into())],
            body: b"{\"data\":{}}".to_vec(),
        }
    }

    async fn claim(store: &InMemoryStore, request: &ClaimRequest) -> Claim {
        store.idempotency().claim(request).await.expect("a claim")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_key_is_acquired_then_in_progress_then_replayed() {
        let store = InMemoryStore::new();
        assert_eq!(claim(&store, &request("k", "f", 0)).await, Claim::Acquired);
        assert_eq!(
            claim(&store, &request("k", "f", 0)).await,
            Claim::InProgress
        );
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        tx.idempotency()
            .complete(&scope("k"), &response())
            .await
            .expect("completed");
        // A duplicate arriving now waits for the transaction, then sees its outcome.
        let duplicate = {
            let store = store.clone();
            tokio::spawn(async move { claim(&store, &request("k", "f", 0)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!duplicate.is_finished());
        tx.commit().await.expect("a commit");
        assert_eq!(
            duplicate.await.expect("the task finished"),
            Claim::Replay(response())
        );
        assert_eq!(
            claim(&store, &request("k", "f", 1)).await,
            Claim::Replay(response())
        );
        // Other keys, callers and routes are other records.
        assert_eq!(
            claim(&store, &request("other", "f", 1)).await,
            Claim::Acquired
        );
        let mut elsewhere = request("k", "f", 1);
        elsewhere.scope.caller = "user-2".into();
        assert_eq!(claim(&store, &elsewhere).await, Claim::Acquired);
    }

    #[tokio::test]
    async fn a_different_fingerprint_is_a_mismatch_while_the_record_lives() {
        let store = InMemoryStore::new();
        claim(&store, &request("claimed", "f", 0)).await;
        assert_eq!(
            claim(&store, &request("claimed", "g", 0)).await,
            Claim::Mismatch
        );
        // After the lease the unfinished claim is absent: taken over, whatever the fingerprint.
        assert_eq!(
            claim(&store, &request("claimed", "g", 5)).await,
            Claim::Acquired
        );

        claim(&store, &request("done", "f", 0)).await;
        let idempotency = store.idempotency();
        idempotency
            .complete(&scope("done"), &response())
            .await
            .expect("completed");
        assert_eq!(
            claim(&store, &request("done", "g", 0)).await,
            Claim::Mismatch
        );
    }

    #[tokio::test]
    async fn an_ended_lease_or_an_expired_record_counts_as_absent() {
        let store = InMemoryStore::new();
        let first = request("k", "f", 0);
        claim(&store, &first).await;
        let mut before_lease_end = request("k", "f", 0);
        before_lease_end.now = first.lease_until - TimeDelta::microseconds(1);
        assert_eq!(claim(&store, &before_lease_end).await, Claim::InProgress);
        let mut after_lease = request("k", "f", 0);
        after_lease.now = first.lease_until;
        after_lease.lease_until = after_lease.now + TimeDelta::seconds(30);
        assert_eq!(
            claim(&store, &after_lease).await,
            Claim::Acquired,
            "taken over"
        );
        assert_eq!(claim(&store, &after_lease).await, Claim::InProgress);

        let idempotency = store.idempotency();
        idempotency
            .complete(&scope("k"), &response())
            .await
            .expect("completed");
        let mut before_expiry = request("k", "f", 0);
        before_expiry.now = after_lease.expires_at - TimeDelta::microseconds(1);
        assert_eq!(
            claim(&store, &before_expiry).await,
            Claim::Replay(response())
        );
        let mut at_expiry = request("k", "f", 0);
        at_expiry.now = after_lease.expires_at;
        assert_eq!(claim(&store, &at_expiry).await, Claim::Acquired);
    }

    #[tokio::test]
    async fn only_a_claimed_key_can_be_completed_and_only_once() {
        let store = InMemoryStore::new();
        let idempotency = store.idempotency();
        assert!(matches!(
            idempotency.complete(&scope("k"), &response()).await,
            Err(RepositoryError::NotFound)
        ));
        claim(&store, &request("k", "f", 0)).await;
        idempotency
            .complete(&scope("k"), &response())
            .await
            .expect("completed");
        let mut other = response();
        other.status = 500;
        assert!(matches!(
            idempotency.complete(&scope("k"), &other).await,
            Err(RepositoryError::NotFound)
        ));
        assert_eq!(
            claim(&store, &request("k", "f", 0)).await,
            Claim::Replay(response())
        );
    }

    #[tokio::test]
    async fn a_released_claim_can_be_claimed_again_but_a_completed_record_stays() {
        let store = InMemoryStore::new();
        let idempotency = store.idempotency();
        idempotency
            .release(&scope("never"))
            .await
            .expect("nothing to release");
        claim(&store, &request("k", "f", 0)).await;
        idempotency.release(&scope("k")).await.expect("released");
        assert_eq!(claim(&store, &request("k", "g", 0)).await, Claim::Acquired);
        idempotency
            .complete(&scope("k"), &response())
            .await
            .expect("completed");
        idempotency.release(&scope("k")).await.expect("kept");
        assert_eq!(
            claim(&store, &request("k", "g", 0)).await,
            Claim::Replay(response())
        );
    }

    #[tokio::test]
    async fn purging_deletes_records_that_expired_by_now() {
        let store = InMemoryStore::new();
        let idempotency = store.idempotency();
        let early = request("early", "f", 0);
        claim(&store, &early).await;
        idempotency
            .complete(&scope("early"), &response())
            .await
            .expect("completed");
        claim(&store, &request("unfinished", "f", 0)).await;
        claim(&store, &request("late", "f", 10)).await;

        assert_eq!(
            idempotency
                .purge_expired(early.expires_at - TimeDelta::microseconds(1))
                .await
                .expect("a purge"),
            0,
            "nothing has expired yet"
        );
        let later = early.expires_at + TimeDelta::minutes(1);
        assert_eq!(idempotency.purge_expired(later).await.expect("a purge"), 2);
        assert_eq!(
            claim(&store, &request("early", "g", 0)).await,
            Claim::Acquired
        );
        assert_eq!(
            claim(&store, &request("late", "g", 10)).await,
            Claim::Mismatch
        );
    }

    #[tokio::test]
    async fn a_claim_inside_a_transaction_is_rolled_back_with_it() {
        let store = InMemoryStore::new();
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        assert_eq!(
            tx.idempotency()
                .claim(&request("k", "f", 0))
                .await
                .expect("a claim"),
            Claim::Acquired
        );
        drop(tx);
        assert_eq!(
            claim(&store, &request("k", "g", 0)).await,
            Claim::Acquired,
            "the rolled-back claim is gone"
        );
    }

    #[tokio::test]
    async fn a_switched_off_store_claims_nothing() {
        let store = InMemoryStore::new();
        store.set_unavailable(true);
        assert!(matches!(
            store.idempotency().claim(&request("k", "f", 0)).await,
            Err(RepositoryError::Unavailable(_))
        ));
        store.set_unavailable(false);
        assert_eq!(claim(&store, &request("k", "g", 0)).await, Claim::Acquired);
    }
}
