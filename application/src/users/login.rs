//! Login: check an email and password and issue an access token.

use domain::ports::IssuedToken;
use domain::{Actor, Email, User};

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
        let actor = Actor {
            user_id: user.id,
            role: user.role,
        };
        let access_token = deps.tokens.issue(&actor).map_err(Unavailable::from_error)?;
        tracing::info!(user_id = %user.id, "user signed in");
        Ok(SignedIn { user, access_token })
    }
}
