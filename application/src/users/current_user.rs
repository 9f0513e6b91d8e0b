//! Current user: the signed-in user's own record.

use domain::{Actor, User};

use crate::{Unavailable, UseCases};

/// Why the current user could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum CurrentUserError {
    /// The token is valid but its user no longer exists or is disabled.
    #[error("the account behind this token is gone or disabled")]
    AccountGone,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// The actor's own user record.
    ///
    /// # Errors
    /// [`CurrentUserError::AccountGone`] or [`CurrentUserError::Unavailable`].
    pub async fn current_user(&self, actor: &Actor) -> Result<User, CurrentUserError> {
        match self
            .deps()
            .users
            .find_by_id(actor.user_id)
            .await
            .map_err(Unavailable::from)?
        {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(CurrentUserError::AccountGone),
        }
    }
}
