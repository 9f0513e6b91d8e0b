//! The user's own sessions: list them, end one, sign out.

use domain::{Actor, RevokeReason, Session, SessionId};

use super::MAX_LISTED_SESSIONS;
use crate::{Unavailable, UseCases};

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session with this id belongs to the caller (other users' sessions are not revealed).
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// The caller's active sessions, newest first (at most [`MAX_LISTED_SESSIONS`]).
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn list_sessions(&self, actor: &Actor) -> Result<Vec<Session>, SessionError> {
        let deps = self.deps();
        Ok(deps
            .sessions
            .list_active(actor.user_id, deps.clock.now(), MAX_LISTED_SESSIONS)
            .await
            .map_err(Unavailable::from)?)
    }

    /// Ends one of the caller's sessions (the current one included). Ending one that has ended
    /// already succeeds and changes nothing.
    ///
    /// # Errors
    /// [`SessionError::NotFound`] when the session does not exist or is someone else's.
    pub async fn revoke_session(&self, actor: &Actor, id: SessionId) -> Result<(), SessionError> {
        self.end_session(actor, id, RevokeReason::Revoked).await
    }

    /// Ends the session the request came with.
    ///
    /// # Errors
    /// [`SessionError::Unavailable`] when the store fails.
    pub async fn logout(&self, actor: &Actor, current: SessionId) -> Result<(), SessionError> {
        self.end_session(actor, current, RevokeReason::Logout).await
    }

    async fn end_session(
        &self,
        actor: &Actor,
        id: SessionId,
        reason: RevokeReason,
    ) -> Result<(), SessionError> {
        let deps = self.deps();
        let session = deps
            .sessions
            .find(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(SessionError::NotFound)?;
        actor
            .may_manage_session(session.user_id)
            .map_err(|_| SessionError::NotFound)?;
        deps.sessions
            .revoke(id, reason, deps.clock.now())
            .await
            .map_err(Unavailable::from)?;
        deps.session_cache.clear();
        tracing::info!(session_id = %id, reason = reason.as_str(), "session ended");
        Ok(())
    }
}
