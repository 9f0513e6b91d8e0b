//! Signing in: check an email and password, start a session, and hand out its credentials.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ports::{IssuedToken, Quota, RateLimiter};
use domain::{Actor, Email, Password, RefreshToken, Session, SessionId, SessionMode, User};

use crate::{Unavailable, UseCases};

/// What a client asks for when it signs in.
#[derive(Debug, Clone, Copy)]
pub struct SignInRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub mode: SessionMode,
    /// The client's `User-Agent`, kept to tell sessions apart in the list.
    pub user_agent: Option<&'a str>,
}

/// The secrets of a new session, shown to the client once and stored only as digests.
#[derive(Debug, Clone)]
pub enum Credentials {
    Bearer {
        access_token: IssuedToken,
        refresh_token: String,
    },
    Cookie {
        /// The cookie's value.
        secret: String,
        /// Echoed in `X-CSRF-Token` by every unsafe request of the session.
        csrf_token: String,
    },
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub session: Session,
    pub credentials: Credentials,
}

/// How many sign-in attempts one account gets, counted per email address whether it exists or
/// not (so that the limit tells nothing about which accounts exist), before the password is
/// checked, in a limiter that all instances share when it is Redis.
#[derive(Clone)]
pub struct SignInThrottle {
    pub limiter: Arc<dyn RateLimiter>,
    pub per_account: Quota,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many attempts for this account: try again after `retry_after`.
    #[error("too many sign-in attempts for this account")]
    Throttled { retry_after: Duration },
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
    /// Verifies the credentials and starts a session: a bearer access token and a refresh token
    /// (a new family), or a cookie secret and a CSRF token.
    ///
    /// An unknown or malformed email costs the same password verification as a known one (against
    /// a dummy hash), so that neither the answer nor its timing tells which accounts exist.
    ///
    /// # Errors
    /// [`LoginError::Throttled`], [`LoginError::InvalidCredentials`],
    /// [`LoginError::AccountDisabled`] (only after the right password), or
    /// [`LoginError::Unavailable`].
    pub async fn login(&self, request: SignInRequest<'_>) -> Result<SignedIn, LoginError> {
        let SignInRequest {
            email,
            password,
            mode,
            user_agent,
        } = request;
        let deps = self.deps();
        self.throttle_sign_in(email).await?;
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
        let (session, credentials) = self.start_session(&user, mode, user_agent).await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, %mode, "user signed in");
        Ok(SignedIn {
            user,
            session,
            credentials,
        })
    }

    /// Stores a new session (and, in bearer mode, the first refresh token of its family) in one
    /// transaction, and makes its credentials.
    async fn start_session(
        &self,
        user: &User,
        mode: SessionMode,
        user_agent: Option<&str>,
    ) -> Result<(Session, Credentials), Unavailable> {
        let deps = self.deps();
        let now = deps.clock.now();
        let mut session = Session::start(
            SessionId::from_uuid(deps.ids.next_id()),
            user.id,
            mode,
            self.settings().sessions.lifetime(mode),
            now,
            user_agent,
        );
        let transaction = deps.unit_of_work.begin().await?;
        let credentials = match mode {
            SessionMode::Bearer => {
                transaction.sessions().insert(&session).await?;
                let refresh_token = self
                    .next_refresh_token(transaction.sessions(), &session, now)
                    .await?;
                let access_token = self.access_token(user, &session)?;
                Credentials::Bearer {
                    access_token,
                    refresh_token,
                }
            }
            SessionMode::Cookie => {
                let secret = deps.secrets.generate();
                let csrf = deps.secrets.generate();
                session.secret_digest = Some(secret.digest);
                session.csrf_digest = Some(csrf.digest);
                transaction.sessions().insert(&session).await?;
                Credentials::Cookie {
                    secret: secret.secret,
                    csrf_token: csrf.secret,
                }
            }
        };
        transaction.commit().await?;
        Ok((session, credentials))
    }

    /// A new access token for `user` in `session`.
    pub(super) fn access_token(
        &self,
        user: &User,
        session: &Session,
    ) -> Result<IssuedToken, Unavailable> {
        let actor = Actor {
            user_id: user.id,
            role: user.role,
        };
        self.deps()
            .tokens
            .issue(&actor, session.id)
            .map_err(Unavailable::from_error)
    }

    /// Makes and stores the next refresh token of `session`'s family; returns its secret.
    pub(super) async fn next_refresh_token(
        &self,
        sessions: &dyn domain::ports::SessionRepository,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<String, Unavailable> {
        let new = self.deps().secrets.generate();
        sessions
            .insert_refresh_token(&RefreshToken {
                digest: new.digest,
                session_id: session.id,
                issued_at: now,
                used_at: None,
            })
            .await?;
        Ok(new.secret)
    }

    /// Counts one attempt against the account's quota. A limiter that cannot decide lets the
    /// attempt through (the per-IP limit of the HTTP layer still applies).
    async fn throttle_sign_in(&self, email: &str) -> Result<(), LoginError> {
        let Some(throttle) = &self.deps().sign_in_throttle else {
            return Ok(());
        };
        let account = Email::parse(email).map_or_else(
            |_| email.trim().to_lowercase(),
            |email| email.as_str().to_owned(),
        );
        match throttle
            .limiter
            .check(&format!("sign-in:{account}"), throttle.per_account)
            .await
        {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => {
                tracing::warn!("sign-in attempts for one account throttled");
                Err(LoginError::Throttled {
                    retry_after: decision.retry_after.unwrap_or(Duration::from_secs(1)),
                })
            }
            Err(error) => {
                tracing::warn!(%error, "the sign-in throttle cannot decide; the attempt goes through");
                Ok(())
            }
        }
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
