//! Register: create an account with role `user` and the starting balance.

use domain::ports::RepositoryError;
use domain::{DisplayName, Email, Password, Role, User, UserId};

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
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Creates a user with role `user` and the configured starting balance.
    ///
    /// # Errors
    /// [`RegisterError::EmailTaken`] when the email is registered, [`RegisterError::Unavailable`]
    /// when hashing or storage fails.
    pub async fn register(&self, registration: Registration) -> Result<User, RegisterError> {
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
        match deps.users.insert(&user).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "user registered");
                Ok(user)
            }
            Err(RepositoryError::Conflict(_)) => Err(RegisterError::EmailTaken),
            Err(other) => Err(Unavailable::from(other).into()),
        }
    }
}
