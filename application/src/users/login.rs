//! Login: check an email and password and issue an access token.

use domain::ports::IssuedToken;
use domain::{Actor, Email, Password, User};

use crate::{Unavailable, UseCases};

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub access_token: IssuedToken,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email or wrong password: deliberately indistinguishable.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The password was right but an admin has disabled the account.
    #[error("this account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Verifies the credentials and issues an access token.
    ///
    /// An unknown or malformed email costs the same password verification as a known one (against
    /// a dummy hash), so that neither the answer nor its timing tells which accounts exist.
    ///
    /// # Errors
    /// [`LoginError::InvalidCredentials`], [`LoginError::AccountDisabled`] (only after the right
    /// password), or [`LoginError::Unavailable`].
    pub async fn login(&self, email: &str, password: &str) -> Result<SignedIn, LoginError> {
        let deps = self.deps();
        let user = match Email::parse(email) {
            Ok(email) => deps
                .users
                .find_by_email(&email)
                .await
                .map_err(Unavailable::from)?,
            Err(_) => None,
        };
        let matches = deps
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await
            .map_err(Unavailable::from_error)?;
        let user = match user {
            Some(user) if matches => user,
            _ => return Err(LoginError::InvalidCredentials),
        };
        if user.disabled {
            return Err(LoginError::AccountDisabled);
        }
        let user = self.upgrade_hash(user, password).await;
        let actor = Actor {
            user_id: user.id,
            role: user.role,
        };
        let access_token = deps.tokens.issue(&actor).map_err(Unavailable::from_error)?;
        tracing::info!(user_id = %user.id, "user signed in");
        Ok(SignedIn { user, access_token })
    }

    /// Re-hashes the password with the configured costs when the stored hash was made with other
    /// ones (the parameters were raised since), and stores it. Best effort: a failure is logged
    /// and the sign-in goes on with the old hash.
    async fn upgrade_hash(&self, mut user: User, password: &str) -> User {
        let deps = self.deps();
        if !deps.hasher.needs_rehash(&user.password_hash) {
            return user;
        }
        // The password verified against the stored hash, but an older policy may have accepted
        // it: only a password the current policy accepts is re-hashed.
        let Ok(password) = Password::parse(password) else {
            return user;
        };
        let upgraded = async {
            let hash = deps
                .hasher
                .hash(&password)
                .await
                .map_err(Unavailable::from_error)?;
            let transaction = deps.unit_of_work.begin().await?;
            let Some(mut locked) = transaction.lock_user(user.id).await? else {
                return Ok::<_, Unavailable>(None);
            };
            locked.password_hash = hash;
            locked.updated_at = deps.clock.now();
            transaction.users().update(&locked).await?;
            transaction.commit().await?;
            Ok(Some(locked))
        };
        match upgraded.await {
            Ok(Some(locked)) => {
                tracing::info!(user_id = %user.id, "password hash upgraded to the current parameters");
                user = locked;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(user_id = %user.id, error = %error.0, "upgrading a password hash failed");
            }
        }
        user
    }
}
