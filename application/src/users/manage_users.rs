//! Users administration and self-service: list users, change a user (admins), change one's own
//! profile or password, delete an account.

use domain::listing::{Page, UserListQuery};
use domain::ports::RepositoryError;
use domain::{
    Actor, DisplayName, Password, RevokeReason, Role, SessionId, User, UserAction, UserId,
};

use crate::{Unavailable, UseCases};

/// What an admin may change about any user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<DisplayName>,
    pub role: Option<Role>,
    /// Disabling ends every session of the user at once.
    pub disabled: Option<bool>,
}

/// What users may change about themselves.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<DisplayName>,
    /// The current password (checked) and the new one. Changing it ends every other session.
    pub password: Option<(String, Password)>,
}

/// Why listing users failed.
#[derive(Debug, thiserror::Error)]
pub enum UserListError {
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why changing or deleting a user failed.
#[derive(Debug, thiserror::Error)]
pub enum UserUpdateError {
    #[error("not allowed")]
    Forbidden,
    #[error("no such user")]
    NotFound,
    /// The current password given with a password change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Admins may not take their own admin role away or disable themselves (the service must
    /// keep an admin who can undo it).
    #[error("admins cannot demote or disable themselves")]
    OwnAdminRights,
    /// The account has markets or positions (named): history is kept; disable it instead.
    #[error("the account has {0}; disable it instead")]
    HasHistory(&'static str),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<RepositoryError> for UserUpdateError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::NotFound => Self::NotFound,
            RepositoryError::Conflict(what) => Self::HasHistory(what),
            other => Self::Unavailable(other.into()),
        }
    }
}

impl UseCases {
    /// One page of users (admins only).
    ///
    /// # Errors
    /// [`UserListError::Forbidden`] for anyone but admins.
    pub async fn list_users(
        &self,
        actor: &Actor,
        query: &UserListQuery,
    ) -> Result<Page<User>, UserListError> {
        actor
            .may_user(UserAction::List, actor.user_id)
            .map_err(|_| UserListError::Forbidden)?;
        Ok(self
            .deps()
            .users
            .list(query)
            .await
            .map_err(Unavailable::from)?)
    }

    /// Changes a user's name, role or disabled flag (admins only). Disabling revokes every
    /// session of the user in the same transaction.
    ///
    /// # Errors
    /// [`UserUpdateError::Forbidden`], [`UserUpdateError::NotFound`],
    /// [`UserUpdateError::OwnAdminRights`] or [`UserUpdateError::Unavailable`].
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        change: UserChange,
    ) -> Result<User, UserUpdateError> {
        actor
            .may_user(UserAction::Administer, id)
            .map_err(|_| UserUpdateError::Forbidden)?;
        let demotes_self = change.role.is_some_and(|role| role != Role::Admin);
        if id == actor.user_id && (demotes_self || change.disabled == Some(true)) {
            return Err(UserUpdateError::OwnAdminRights);
        }
        let deps = self.deps();
        let now = deps.clock.now();
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let mut user = transaction
            .lock_user(id)
            .await?
            .ok_or(UserUpdateError::NotFound)?;
        let disabling = change.disabled == Some(true) && !user.disabled;
        if let Some(name) = change.name {
            user.name = name;
        }
        if let Some(role) = change.role {
            user.role = role;
        }
        if let Some(disabled) = change.disabled {
            user.disabled = disabled;
        }
        user.updated_at = now;
        transaction.users().update(&user).await?;
        if disabling {
            transaction
                .sessions()
                .revoke_all(id, None, RevokeReason::AccountDisabled, now)
                .await?;
        }
        transaction.commit().await.map_err(Unavailable::from)?;
        deps.session_cache.clear();
        tracing::info!(user_id = %id, role = %user.role, disabled = user.disabled, "user changed by an admin");
        Ok(user)
    }

    /// Changes the caller's own name or password. A password change needs the current password
    /// and ends every other session of the user in the same transaction; `current` stays.
    ///
    /// # Errors
    /// [`UserUpdateError::WrongPassword`], [`UserUpdateError::NotFound`] (the account is gone) or
    /// [`UserUpdateError::Unavailable`].
    pub async fn update_profile(
        &self,
        actor: &Actor,
        current: SessionId,
        change: ProfileChange,
    ) -> Result<User, UserUpdateError> {
        actor
            .may_user(UserAction::ChangeOwnProfile, actor.user_id)
            .map_err(|_| UserUpdateError::Forbidden)?;
        let deps = self.deps();
        let new_hash = match &change.password {
            Some((current_password, new_password)) => {
                let stored = deps
                    .users
                    .find_by_id(actor.user_id)
                    .await
                    .map_err(Unavailable::from)?
                    .ok_or(UserUpdateError::NotFound)?;
                let matches = deps
                    .hasher
                    .verify(current_password, Some(stored.password_hash))
                    .await
                    .map_err(Unavailable::from_error)?;
                if !matches {
                    return Err(UserUpdateError::WrongPassword);
                }
                Some(
                    deps.hasher
                        .hash(new_password)
                        .await
                        .map_err(Unavailable::from_error)?,
                )
            }
            None => None,
        };
        let now = deps.clock.now();
        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        let mut user = transaction
            .lock_user(actor.user_id)
            .await?
            .ok_or(UserUpdateError::NotFound)?;
        if let Some(name) = change.name {
            user.name = name;
        }
        let password_changed = new_hash.is_some();
        if let Some(hash) = new_hash {
            user.password_hash = hash;
        }
        user.updated_at = now;
        transaction.users().update(&user).await?;
        if password_changed {
            transaction
                .sessions()
                .revoke_all(user.id, Some(current), RevokeReason::PasswordChanged, now)
                .await?;
        }
        transaction.commit().await.map_err(Unavailable::from)?;
        if password_changed {
            deps.session_cache.clear();
            tracing::info!(user_id = %user.id, "password changed; the other sessions are ended");
        }
        Ok(user)
    }

    /// Deletes an account (its own user, or an admin) and with it every session. An account with
    /// markets or positions is kept: history must stay whole.
    ///
    /// # Errors
    /// [`UserUpdateError::Forbidden`], [`UserUpdateError::NotFound`],
    /// [`UserUpdateError::HasHistory`] or [`UserUpdateError::Unavailable`].
    pub async fn delete_user(&self, actor: &Actor, id: UserId) -> Result<(), UserUpdateError> {
        actor
            .may_user(UserAction::Delete, id)
            .map_err(|_| UserUpdateError::Forbidden)?;
        if id == actor.user_id && actor.role == Role::Admin {
            return Err(UserUpdateError::OwnAdminRights);
        }
        let deps = self.deps();
        deps.users.delete(id).await?;
        deps.session_cache.clear();
        tracing::info!(user_id = %id, "user deleted");
        Ok(())
    }
}
