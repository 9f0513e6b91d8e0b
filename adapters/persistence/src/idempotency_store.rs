//! `SeaIdempotencyStore`: the `IdempotencyStore` port over the `idempotency_keys` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{
    Claim, ClaimRequest, IdempotencyScope, IdempotencyStore, RepositoryError, StoredResponse,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};

use crate::database::Database;
use crate::entity::idempotency_keys::{self, Column, Model};
use crate::error::unavailable;
use crate::mapper::stored;

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// How many times a claim re-reads a record that changed under it before it reports
/// [`Claim::InProgress`] (someone else keeps winning the key).
const CLAIM_ATTEMPTS: usize = 3;

/// Idempotency records in PostgreSQL or SQLite, on the primary.
///
/// Every method runs on the pool, each statement committing at once: [`IdempotencyStore::claim`]
/// as the port requires; `complete` here is for callers without a unit of work (inside one, use
/// the transaction's `idempotency()`). The lengths the schema accepts: `caller` up to 64
/// characters, `route` and `key` up to 255, none empty; longer ones fail as
/// [`RepositoryError::Unavailable`], so the HTTP layer must bound the `Idempotency-Key` header.
#[derive(Debug, Clone)]
pub struct SeaIdempotencyStore {
    database: Database,
}

impl SeaIdempotencyStore {
    #[must_use]
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

#[async_trait]
impl IdempotencyStore for SeaIdempotencyStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, RepositoryError> {
        claim(self.database.writer(), request).await
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
    ) -> Result<(), RepositoryError> {
        complete(self.database.writer(), scope, response).await
    }

    async fn release(&self, scope: &IdempotencyScope) -> Result<(), RepositoryError> {
        release(self.database.writer(), scope).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        purge_expired(self.database.writer(), now).await
    }
}

/// A stored record that does not make a valid response.
#[derive(Debug, thiserror::Error)]
#[error("corrupt data: an idempotency_keys row of {route} has an invalid {column}: {reason}")]
struct CorruptRecord {
    route: String,
    column: &'static str,
    reason: String,
}

impl CorruptRecord {
    fn at<E: std::fmt::Display>(
        record: &Model,
        column: &'static str,
    ) -> impl FnOnce(E) -> RepositoryError {
        let route = record.route.clone();
        move |reason| {
            RepositoryError::Unavailable(Box::new(Self {
                route,
                column,
                reason: reason.to_string(),
            }))
        }
    }
}

/// Claims the key on `connection`: inserts an unfinished claim unless a record exists; else
/// decides from the record, taking over one that counts as absent (expired, or unfinished with
/// its lease ended) with a conditional update that only one of several takers can win.
///
/// A record that counts as absent is taken over whatever its fingerprint: it is as if it had been
/// purged, and purging must not change the answer.
pub(crate) async fn claim<C: ConnectionTrait>(
    connection: &C,
    request: &ClaimRequest,
) -> Result<Claim, RepositoryError> {
    for _ in 0..CLAIM_ATTEMPTS {
        if insert_claim(connection, request).await? {
            return Ok(Claim::Acquired);
        }
        // Released or purged since the insert: try again.
        let Some(record) = find(connection, &request.scope).await? else {
            continue;
        };
        let lease_ended = record.state == IN_PROGRESS && record.lease_until <= request.now;
        if record.expires_at <= request.now || lease_ended {
            if take_over(connection, request, &record).await? {
                return Ok(Claim::Acquired);
            }
            continue;
        }
        if record.fingerprint != request.fingerprint {
            return Ok(Claim::Mismatch);
        }
        return match record.state.as_str() {
            COMPLETED => Ok(Claim::Replay(response(&record)?)),
            IN_PROGRESS => Ok(Claim::InProgress),
            other => Err(CorruptRecord::at(&record, "state")(other)),
        };
    }
    Ok(Claim::InProgress)
}

/// `INSERT ... ON CONFLICT DO NOTHING`: whether the row was inserted.
async fn insert_claim<C: ConnectionTrait>(
    connection: &C,
    request: &ClaimRequest,
) -> Result<bool, RepositoryError> {
    let scope = &request.scope;
    let row = idempotency_keys::ActiveModel {
        caller: Set(scope.caller.clone()),
        route: Set(scope.route.clone()),
        key: Set(scope.key.clone()),
        fingerprint: Set(request.fingerprint.clone()),
        state: Set(IN_PROGRESS.to_owned()),
        response_status: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        created_at: Set(stored(request.now)),
        expires_at: Set(stored(request.expires_at)),
        lease_until: Set(stored(request.lease_until)),
    };
    let insert = idempotency_keys::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Caller, Column::Route, Column::Key])
                .do_nothing()
                .to_owned(),
        )
        .into_query();
    let result = connection.execute(&insert).await.map_err(unavailable)?;
    Ok(result.rows_affected() > 0)
}

/// Makes `record` (as read) a fresh claim of `request`, unless it changed since it was read.
async fn take_over<C: ConnectionTrait>(
    connection: &C,
    request: &ClaimRequest,
    record: &Model,
) -> Result<bool, RepositoryError> {
    let result = idempotency_keys::Entity::update_many()
        .col_expr(Column::Fingerprint, request.fingerprint.clone().into())
        .col_expr(Column::State, IN_PROGRESS.into())
        .col_expr(Column::ResponseStatus, Option::<i32>::None.into())
        .col_expr(Column::ResponseHeaders, Option::<String>::None.into())
        .col_expr(Column::ResponseBody, Option::<Vec<u8>>::None.into())
        .col_expr(Column::CreatedAt, stored(request.now).into())
        .col_expr(Column::ExpiresAt, stored(request.expires_at).into())
        .col_expr(Column::LeaseUntil, stored(request.lease_until).into())
        .filter(in_scope(&request.scope))
        .filter(Column::Fingerprint.eq(record.fingerprint.as_str()))
        .filter(Column::State.eq(record.state.as_str()))
        .filter(Column::ExpiresAt.eq(record.expires_at))
        .filter(Column::LeaseUntil.eq(record.lease_until))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    Ok(result.rows_affected > 0)
}

async fn find<C: ConnectionTrait>(
    connection: &C,
    scope: &IdempotencyScope,
) -> Result<Option<Model>, RepositoryError> {
    idempotency_keys::Entity::find()
        .filter(in_scope(scope))
        .one(connection)
        .await
        .map_err(unavailable)
}

/// The response a completed record keeps.
fn response(record: &Model) -> Result<StoredResponse, RepositoryError> {
    let status = record
        .response_status
        .ok_or("missing")
        .map_err(CorruptRecord::at(record, "response_status"))?;
    let status = u16::try_from(status).map_err(CorruptRecord::at(record, "response_status"))?;
    let headers = record
        .response_headers
        .as_deref()
        .ok_or("missing")
        .map_err(CorruptRecord::at(record, "response_headers"))?;
    let headers =
        serde_json::from_str(headers).map_err(CorruptRecord::at(record, "response_headers"))?;
    let body = record
        .response_body
        .clone()
        .ok_or("missing")
        .map_err(CorruptRecord::at(record, "response_body"))?;
    Ok(StoredResponse {
        status,
        headers,
        body,
    })
}

/// Completes the unfinished claim of `scope` on `connection` with `response`.
pub(crate) async fn complete<C: ConnectionTrait>(
    connection: &C,
    scope: &IdempotencyScope,
    response: &StoredResponse,
) -> Result<(), RepositoryError> {
    let headers = serde_json::to_string(&response.headers)
        .map_err(|error| RepositoryError::Unavailable(error.into()))?;
    let result = idempotency_keys::Entity::update_many()
        .col_expr(Column::State, COMPLETED.into())
        .col_expr(Column::ResponseStatus, i32::from(response.status).into())
        .col_expr(Column::ResponseHeaders, headers.into())
        .col_expr(Column::ResponseBody, response.body.clone().into())
        .filter(in_scope(scope))
        // Only a claim still being worked on: if its lease ended and another request took it
        // over and completed it first, this one finds nothing and its transaction must not
        // commit, so that the work is done once.
        .filter(Column::State.eq(IN_PROGRESS))
        .exec(connection)
        .await
        .map_err(unavailable)?;
    if result.rows_affected > 0 {
        Ok(())
    } else {
        Err(RepositoryError::NotFound)
    }
}

/// Deletes the unfinished claim of `scope` on `connection`; a completed record stays.
pub(crate) async fn release<C: ConnectionTrait>(
    connection: &C,
    scope: &IdempotencyScope,
) -> Result<(), RepositoryError> {
    idempotency_keys::Entity::delete_many()
        .filter(in_scope(scope))
        .filter(Column::State.eq(IN_PROGRESS))
        .exec(connection)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

/// Deletes the records expired at `now` on `connection` (`expires_at <= now`, the rule by which
/// a claim treats a record as absent).
pub(crate) async fn purge_expired<C: ConnectionTrait>(
    connection: &C,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    idempotency_keys::Entity::delete_many()
        .filter(Column::ExpiresAt.lte(stored(now)))
        .exec(connection)
        .await
        .map(|result| result.rows_affected)
        .map_err(unavailable)
}

fn in_scope(scope: &IdempotencyScope) -> Condition {
    Condition::all()
        .add(Column::Caller.eq(scope.caller.as_str()))
        .add(Column::Route.eq(scope.route.as_str()))
        .add(Column::Key.eq(scope.key.as_str()))
}
