//! Checking a presented credential: the access token's signature and claims, then its session and
//! user, read through a cache that is never older than `check_cache_ttl`.

use std::sync::Arc;
use std::time::Duration;

use domain::ports::TokenError;
use domain::{
    Actor, RevokeReason, SecretDigest, Session, SessionId, SessionMode, SessionState, User,
};

use crate::{Unavailable, UseCases};

/// A signed-in request: who, and through which session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The user with their current role (read with the session, not the one in the token).
    pub actor: Actor,
    pub session_id: SessionId,
    pub mode: SessionMode,
}

/// What a cookie-mode request presents.
#[derive(Debug, Clone, Copy)]
pub struct CookieCredentials<'a> {
    /// The session cookie's value.
    pub secret: &'a str,
    /// `X-CSRF-Token`, if sent.
    pub csrf_token: Option<&'a str>,
    /// Whether the method changes state (anything but GET, HEAD, OPTIONS): those need the CSRF
    /// token.
    pub unsafe_method: bool,
}

/// Why a credential does not sign the request in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Malformed, badly signed, wrong algorithm, issuer or audience, missing claims, or a
    /// credential of the other mode.
    #[error("invalid token")]
    InvalidToken,
    #[error("token expired")]
    TokenExpired,
    #[error("token not valid yet")]
    TokenNotYetValid,
    /// The session was ended (logout, revocation, password change, disabled account, refresh
    /// token reuse) or no longer exists (the user was deleted).
    #[error("the session has ended")]
    SessionRevoked,
    /// The session was idle too long or reached its absolute lifetime.
    #[error("the session has expired")]
    SessionExpired,
    #[error("this account is disabled")]
    AccountDisabled,
    /// A cookie-mode unsafe request without the session's CSRF token.
    #[error("missing or wrong CSRF token")]
    CsrfFailed,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// A session and its user as last read from the store; `None` when the session does not exist.
#[derive(Debug, Clone)]
struct Snapshot(Option<Arc<(Session, User)>>);

/// Sessions read from the store, kept at most `ttl`: the bound on how long a revocation made by
/// another instance goes unnoticed here. Revocations made by this instance clear it at once.
#[derive(Clone)]
pub struct SessionCache {
    by_id: moka::future::Cache<SessionId, Snapshot>,
    by_secret: moka::future::Cache<SecretDigest, Snapshot>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.by_id.entry_count())
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// Sessions checked at once per instance that the cache keeps; more are read again.
    pub const CAPACITY: u64 = 100_000;

    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            by_id: moka::future::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build(),
            by_secret: moka::future::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Forgets everything: after a change to sessions or users made by this instance.
    pub fn clear(&self) {
        self.by_id.invalidate_all();
        self.by_secret.invalidate_all();
    }
}

impl UseCases {
    /// Checks a bearer access token and its session.
    ///
    /// # Errors
    /// Each [`AuthError`] as documented there; [`AuthError::Unavailable`] when the store fails.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Authenticated, AuthError> {
        let claims = self
            .deps()
            .tokens
            .verify(token)
            .map_err(|error| match error {
                TokenError::Expired => AuthError::TokenExpired,
                TokenError::NotYetValid => AuthError::TokenNotYetValid,
                TokenError::Invalid | TokenError::Issuing(_) => AuthError::InvalidToken,
            })?;
        let deps = self.deps().clone();
        let id = claims.session_id;
        let snapshot = self
            .deps()
            .session_cache
            .by_id
            .try_get_with(id, async move {
                let session = deps.sessions.find(id).await?;
                load_user(&deps, session).await
            })
            .await
            .map_err(|error| Unavailable::from_error(SharedError(error)))?;
        let (session, user) = self.usable(snapshot, SessionMode::Bearer)?;
        if session.user_id != claims.actor.user_id {
            return Err(AuthError::InvalidToken);
        }
        Ok(Authenticated {
            actor: Actor {
                user_id: user.id,
                role: user.role,
            },
            session_id: session.id,
            mode: SessionMode::Bearer,
        })
    }

    /// Checks a session cookie and, for unsafe methods, its CSRF token; records the use (at most
    /// once a minute), which moves the idle expiry.
    ///
    /// # Errors
    /// Each [`AuthError`] as documented there; [`AuthError::Unavailable`] when the store fails.
    pub async fn authenticate_cookie(
        &self,
        credentials: CookieCredentials<'_>,
    ) -> Result<Authenticated, AuthError> {
        let deps = self.deps();
        let digest = deps.secrets.digest(credentials.secret);
        let loader = deps.clone();
        let key = digest.clone();
        let snapshot = deps
            .session_cache
            .by_secret
            .try_get_with(digest, async move {
                let session = loader.sessions.find_by_secret(&key).await?;
                load_user(&loader, session).await
            })
            .await
            .map_err(|error| Unavailable::from_error(SharedError(error)))?;
        let (session, user) = self.usable(snapshot, SessionMode::Cookie)?;
        if credentials.unsafe_method {
            let presented = credentials
                .csrf_token
                .map(|token| deps.secrets.digest(token));
            if presented.is_none() || presented != session.csrf_digest {
                return Err(AuthError::CsrfFailed);
            }
        }
        let now = deps.clock.now();
        if session.due_for_touch(now) {
            let mut touched = session.clone();
            touched.touch(self.settings().sessions.cookie, now);
            deps.sessions
                .touch(&touched)
                .await
                .map_err(Unavailable::from)?;
            if let Some(secret) = &session.secret_digest {
                deps.session_cache.by_secret.invalidate(secret).await;
            }
        }
        Ok(Authenticated {
            actor: Actor {
                user_id: user.id,
                role: user.role,
            },
            session_id: session.id,
            mode: SessionMode::Cookie,
        })
    }

    /// The session and user of a snapshot if the session is active, of `mode`, and the user
    /// enabled.
    fn usable(&self, snapshot: Snapshot, mode: SessionMode) -> Result<(Session, User), AuthError> {
        let Some(found) = snapshot.0 else {
            return Err(match mode {
                // A signed token naming a session that is gone: its user was deleted.
                SessionMode::Bearer => AuthError::SessionRevoked,
                SessionMode::Cookie => AuthError::InvalidToken,
            });
        };
        let (session, user) = found.as_ref();
        if session.mode != mode {
            return Err(AuthError::InvalidToken);
        }
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        match session.state(self.deps().clock.now()) {
            SessionState::Active => Ok((session.clone(), user.clone())),
            SessionState::Expired => Err(AuthError::SessionExpired),
            SessionState::Revoked(RevokeReason::AccountDisabled) => Err(AuthError::AccountDisabled),
            SessionState::Revoked(_) => Err(AuthError::SessionRevoked),
        }
    }
}

/// The session's user, read after the session; a session without a user counts as gone.
async fn load_user(
    deps: &crate::Deps,
    session: Option<Session>,
) -> Result<Snapshot, domain::ports::RepositoryError> {
    let Some(session) = session else {
        return Ok(Snapshot(None));
    };
    Ok(Snapshot(
        deps.users
            .find_by_id(session.user_id)
            .await?
            .map(|user| Arc::new((session, user))),
    ))
}

/// A load error shared by every request that waited for the same load.
#[derive(Debug, thiserror::Error)]
#[error("loading the session failed")]
struct SharedError(#[source] Arc<domain::ports::RepositoryError>);
