//! `InMemorySessionRepository`: sessions and refresh tokens in maps, with the references of the SQL schema.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{RepositoryError, SessionRepository};
use domain::{RefreshToken, RevokeReason, SecretDigest, Session, SessionId, SessionState, UserId};

use crate::store::{Scope, State};

/// The sessions and refresh-tokens tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sessions {
    by_id: HashMap<SessionId, Session>,
    refresh_tokens: HashMap<SecretDigest, RefreshToken>,
}

impl Sessions {
    /// Deletes a user's sessions and their refresh tokens (`ON DELETE CASCADE`).
    pub(crate) fn delete_user(&mut self, user: UserId) {
        self.by_id.retain(|_, session| session.user_id != user);
        let by_id = &self.by_id;
        self.refresh_tokens
            .retain(|_, token| by_id.contains_key(&token.session_id));
    }
}

/// The domain's [`SessionRepository`] over an [`crate::InMemoryStore`] or one of its transactions.
#[derive(Debug)]
pub struct InMemorySessionRepository {
    scope: Scope,
}

impl InMemorySessionRepository {
    pub(crate) const fn in_scope(scope: Scope) -> Self {
        Self { scope }
    }

    fn read<R>(&self, read: impl FnOnce(&Sessions) -> R) -> Result<R, RepositoryError> {
        self.scope.read(|state| read(&state.sessions))
    }

    async fn write<R>(
        &self,
        write: impl FnOnce(&mut State) -> Result<R, RepositoryError> + Send,
    ) -> Result<R, RepositoryError> {
        self.scope.write(write).await
    }
}

#[async_trait]
impl SessionRepository for InMemorySessionRepository {
    async fn insert(&self, session: &Session) -> Result<(), RepositoryError> {
        self.write(|state| {
            if !state.users.contains(session.user_id) {
                return Err(RepositoryError::Conflict("user_id"));
            }
            if state.sessions.by_id.contains_key(&session.id) {
                return Err(RepositoryError::Conflict("id"));
            }
            Arc::make_mut(&mut state.sessions)
                .by_id
                .insert(session.id, session.clone());
            Ok(())
        })
        .await
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>, RepositoryError> {
        self.read(|sessions| sessions.by_id.get(&id).cloned())
    }

    async fn find_by_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<Session>, RepositoryError> {
        self.read(|sessions| {
            sessions
                .by_id
                .values()
                .find(|session| session.secret_digest.as_ref() == Some(digest))
                .cloned()
        })
    }

    async fn list_active(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Session>, RepositoryError> {
        self.read(|sessions| {
            let mut active: Vec<Session> = sessions
                .by_id
                .values()
                .filter(|s| s.user_id == user && s.state(now) == SessionState::Active)
                .cloned()
                .collect();
            active.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
            active.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            active
        })
    }

    async fn touch(&self, session: &Session) -> Result<bool, RepositoryError> {
        self.write(|state| {
            let sessions = Arc::make_mut(&mut state.sessions);
            Ok(sessions.by_id.get_mut(&session.id).is_some_and(|stored| {
                stored.last_used_at = session.last_used_at;
                stored.idle_expires_at = session.idle_expires_at;
                true
            }))
        })
        .await
    }

    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.write(|state| {
            let sessions = Arc::make_mut(&mut state.sessions);
            Ok(sessions.by_id.get_mut(&id).is_some_and(|session| {
                let revoked = session.revoked_at.is_none();
                session.revoke(reason, now);
                revoked
            }))
        })
        .await
    }

    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        self.write(|state| {
            let sessions = Arc::make_mut(&mut state.sessions);
            let mut revoked = 0;
            for session in sessions.by_id.values_mut() {
                if session.user_id == user
                    && Some(session.id) != keep
                    && session.revoked_at.is_none()
                {
                    session.revoke(reason, now);
                    revoked += 1;
                }
            }
            Ok(revoked)
        })
        .await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), RepositoryError> {
        self.write(|state| {
            if !state.sessions.by_id.contains_key(&token.session_id) {
                return Err(RepositoryError::Conflict("session_id"));
            }
            if state.sessions.refresh_tokens.contains_key(&token.digest) {
                return Err(RepositoryError::Conflict("digest"));
            }
            Arc::make_mut(&mut state.sessions)
                .refresh_tokens
                .insert(token.digest.clone(), token.clone());
            Ok(())
        })
        .await
    }

    async fn find_refresh_token(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<RefreshToken>, RepositoryError> {
        self.read(|sessions| sessions.refresh_tokens.get(digest).cloned())
    }

    async fn use_refresh_token(
        &self,
        digest: &SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.write(|state| {
            let unused = state
                .sessions
                .refresh_tokens
                .get(digest)
                .is_some_and(|token| token.used_at.is_none());
            if unused {
                let sessions = Arc::make_mut(&mut state.sessions);
                if let Some(token) = sessions.refresh_tokens.get_mut(digest) {
                    token.used_at = Some(now);
                }
            }
            Ok(unused)
        })
        .await
    }
}
