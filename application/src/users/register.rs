//! Register: create an account with role `user` and the starting balance, and queue its welcome email.

use domain::ports::RepositoryError;
use domain::{DisplayName, DomainEvent, Email, JobId, Password, Role, User, UserId};

use crate::idempotency::{self, IdempotencyError, Idempotent, Replayable};
use crate::notifications::welcome_email_job;
use crate::{Unavailable, UseCases};

/// A validated registration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub name: DisplayName,
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// An account with this email (compared case-insensitively) exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Creates a user with role `user` and the configured starting balance, records
    /// `UserRegistered` and enqueues their welcome email job, in one transaction.
    ///
    /// # Errors
    /// [`RegisterError::EmailTaken`] when the email is registered, [`RegisterError::Idempotency`]
    /// for a reused or busy key, [`RegisterError::Unavailable`] when hashing or storage fails.
    pub async fn register(
        &self,
        registration: Registration,
        idempotency: Option<&Idempotent<'_, User>>,
    ) -> Result<Replayable<User>, RegisterError> {
        self.idempotently(idempotency, self.register_once(registration, idempotency))
            .await
    }

    async fn register_once(
        &self,
        registration: Registration,
        idempotency: Option<&Idempotent<'_, User>>,
    ) -> Result<User, RegisterError> {
        let deps = self.deps();
        let password_hash = deps
            .hasher
            .hash(&registration.password)
            .await
            .map_err(Unavailable::from_error)?;
        let now = deps.clock.now();
        let user = User {
            id: UserId::from_uuid(deps.ids.next_id()),
            email: registration.email,
            name: registration.name,
            password_hash,
            role: Role::User,
            balance: self.settings.starting_balance,
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        match transaction.users().insert(&user).await {
            Ok(()) => {}
            Err(RepositoryError::Conflict("email")) => return Err(RegisterError::EmailTaken),
            Err(other) => return Err(Unavailable::from(other).into()),
        }
        transaction
            .outbox()
            .record(&self.event(DomainEvent::UserRegistered { user_id: user.id }))
            .await
            .map_err(Unavailable::from)?;
        let welcome = welcome_email_job(JobId::from_uuid(deps.ids.next_id()), user.id, now)
            .map_err(Unavailable::from_error)?;
        transaction
            .jobs()
            .enqueue(&welcome)
            .await
            .map_err(Unavailable::from)?;
        idempotency::complete(idempotency, transaction.as_ref(), &user).await?;
        transaction.commit().await.map_err(Unavailable::from)?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }
}
