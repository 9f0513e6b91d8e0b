//! Refreshing: a refresh token is used once and replaced; a used one presented again ends its family.

use domain::ports::IssuedToken;
use domain::{RevokeReason, SessionMode, SessionState};

use crate::{Unavailable, UseCases};

/// New credentials for the same session.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub session_id: domain::SessionId,
    pub access_token: IssuedToken,
    pub refresh_token: String,
}

/// Why a refresh was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such refresh token (never issued, or its session was deleted).
    #[error("invalid refresh token")]
    Invalid,
    /// The token was used already: the whole family (session) has been revoked.
    #[error("refresh token reused; the session has been ended")]
    Reused,
    #[error("the session has ended")]
    SessionRevoked,
    #[error("the session has expired")]
    SessionExpired,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl UseCases {
    /// Uses `presented` once: marks it used, issues the next refresh token of the family and a
    /// new access token, and moves the session's idle expiry. Presenting a used token again
    /// revokes the session, so that a stolen token and its legitimate holder both lose it.
    ///
    /// # Errors
    /// Each [`RefreshError`] as documented there.
    pub async fn refresh(&self, presented: &str) -> Result<Refreshed, RefreshError> {
        let deps = self.deps();
        let now = deps.clock.now();
        let digest = deps.secrets.digest(presented);
        let Some(token) = deps
            .sessions
            .find_refresh_token(&digest)
            .await
            .map_err(Unavailable::from)?
        else {
            return Err(RefreshError::Invalid);
        };
        let Some(mut session) = deps
            .sessions
            .find(token.session_id)
            .await
            .map_err(Unavailable::from)?
        else {
            return Err(RefreshError::Invalid);
        };
        if session.mode != SessionMode::Bearer {
            return Err(RefreshError::Invalid);
        }
        if token.used_at.is_some() {
            self.end_family(session.id).await?;
            return Err(RefreshError::Reused);
        }
        match session.state(now) {
            SessionState::Active => {}
            SessionState::Expired => return Err(RefreshError::SessionExpired),
            SessionState::Revoked(RevokeReason::AccountDisabled) => {
                return Err(RefreshError::AccountDisabled);
            }
            SessionState::Revoked(_) => return Err(RefreshError::SessionRevoked),
        }
        let user = deps
            .users
            .find_by_id(session.user_id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(RefreshError::Invalid)?;
        if user.disabled {
            return Err(RefreshError::AccountDisabled);
        }

        let transaction = deps.unit_of_work.begin().await.map_err(Unavailable::from)?;
        // Exactly one of two concurrent refreshes with one token gets here with `true`; the
        // other is a reuse.
        if !transaction
            .sessions()
            .use_refresh_token(&digest, now)
            .await
            .map_err(Unavailable::from)?
        {
            drop(transaction);
            self.end_family(session.id).await?;
            return Err(RefreshError::Reused);
        }
        let refresh_token = self
            .next_refresh_token(transaction.sessions(), &session, now)
            .await?;
        session.touch(self.settings().sessions.bearer, now);
        transaction
            .sessions()
            .touch(&session)
            .await
            .map_err(Unavailable::from)?;
        transaction.commit().await.map_err(Unavailable::from)?;

        let access_token = self.access_token(&user, &session)?;
        Ok(Refreshed {
            session_id: session.id,
            access_token,
            refresh_token,
        })
    }

    /// Revokes a refresh-token family after a reuse, and says so in the logs (it means a token
    /// was stolen, or a client retried a refresh it had already completed).
    async fn end_family(&self, session: domain::SessionId) -> Result<(), Unavailable> {
        let deps = self.deps();
        deps.sessions
            .revoke(session, RevokeReason::RefreshTokenReused, deps.clock.now())
            .await?;
        deps.session_cache.clear();
        tracing::warn!(session_id = %session, "a used refresh token was presented again; the session is revoked");
        Ok(())
    }
}
