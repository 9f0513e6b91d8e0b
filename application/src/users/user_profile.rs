//! User profile: any user by id (what of it is shown is the HTTP adapter's concern).

use domain::{User, UserId};

use crate::{Unavailable, UseCases};

/// Why a user could not be returned.
#[derive(Debug, thiserror::Error)]
pub enum UserProfileError {
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// The user with this id.
    ///
    /// # Errors
    /// [`UserProfileError::NotFound`] or [`UserProfileError::Unavailable`].
    pub async fn user_profile(&self, id: UserId) -> Result<User, UserProfileError> {
        self.deps()
            .users
            .find_by_id(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(UserProfileError::NotFound)
    }
}
