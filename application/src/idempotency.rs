//! Idempotent POSTs: claim the key, do the work, store the response in the work's own transaction;
//! replay it for the same request, refuse a different request or a concurrent duplicate.

use std::future::Future;

use chrono::Duration;
use domain::ports::{
    Claim, ClaimRequest, IdempotencyScope, RepositoryError, StoredResponse, Transaction,
};

use crate::{Unavailable, UseCases};

/// What identifies a request for idempotency: its scope and a digest of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub scope: IdempotencyScope,
    pub fingerprint: String,
}

/// An idempotent call: the request and how to render its result as the response to keep.
pub struct Idempotent<'a, T> {
    pub request: &'a IdempotentRequest,
    pub render: &'a (dyn Fn(&T) -> StoredResponse + Send + Sync),
}

impl<T> Idempotent<'_, T> {
    /// Stores the response for `value` inside `transaction`, so that it exists exactly when the
    /// change does.
    ///
    /// # Errors
    /// The store's error (the transaction should then be dropped).
    pub async fn complete(
        &self,
        transaction: &dyn Transaction,
        value: &T,
    ) -> Result<(), RepositoryError> {
        transaction
            .idempotency()
            .complete(&self.request.scope, &(self.render)(value))
            .await
    }
}

/// The result of an idempotent call: done now, or the response of an earlier identical request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayable<T> {
    Done(T),
    Replay(StoredResponse),
}

/// Why an idempotent call was refused before any work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// The same key is being worked on by another request.
    #[error("a request with this Idempotency-Key is still being processed")]
    InProgress,
    /// The key was used for a different request.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
}

/// Completes `idempotency` inside `transaction` when there is one: the common last step of every
/// idempotent use case before it commits.
///
/// # Errors
/// The store's error, as [`Unavailable`].
pub(crate) async fn complete<T>(
    idempotency: Option<&Idempotent<'_, T>>,
    transaction: &dyn Transaction,
    value: &T,
) -> Result<(), Unavailable> {
    if let Some(idempotency) = idempotency {
        idempotency
            .complete(transaction, value)
            .await
            .map_err(Unavailable::from)?;
    }
    Ok(())
}

impl UseCases {
    /// Runs `work` at most once per idempotency key: claims the key first (replaying a stored
    /// response, or refusing a concurrent duplicate or a reused key), and gives the claim up if
    /// the work fails, so that the client may retry with the same key. `work` must call
    /// [`complete`] inside its transaction.
    pub(crate) async fn idempotently<T, E>(
        &self,
        idempotency: Option<&Idempotent<'_, T>>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<Replayable<T>, E>
    where
        E: From<IdempotencyError> + From<Unavailable>,
    {
        let Some(idempotency) = idempotency else {
            return work.await.map(Replayable::Done);
        };
        let deps = self.deps();
        let now = deps.clock.now();
        let after = |duration: std::time::Duration| {
            now + Duration::from_std(duration).unwrap_or(Duration::zero())
        };
        let claim = deps
            .idempotency
            .claim(&ClaimRequest {
                scope: idempotency.request.scope.clone(),
                fingerprint: idempotency.request.fingerprint.clone(),
                now,
                expires_at: after(self.settings.idempotency_ttl),
                lease_until: after(self.settings.idempotency_lease),
            })
            .await
            .map_err(Unavailable::from)?;
        match claim {
            Claim::Acquired => {}
            Claim::Replay(response) => return Ok(Replayable::Replay(response)),
            Claim::InProgress => return Err(IdempotencyError::InProgress.into()),
            Claim::Mismatch => return Err(IdempotencyError::KeyReused.into()),
        }
        let result = work.await;
        if result.is_err()
            && let Err(error) = deps.idempotency.release(&idempotency.request.scope).await
        {
            tracing::warn!(%error, "could not release an idempotency claim; it expires with its lease");
        }
        result.map(Replayable::Done)
    }
}
