//! Sessions: one sign-in of one user, its lifetime rules, and the refresh tokens of its family.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::id::{SessionId, UserId};

/// How the client holds the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionMode {
    /// A bearer access token (carrying the session id) and a rotating refresh token.
    Bearer,
    /// An opaque `HttpOnly` cookie and a CSRF token, for browsers.
    Cookie,
}

impl SessionMode {
    /// The mode's name as stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Cookie => "cookie",
        }
    }

    /// Parses a stored mode name.
    ///
    /// # Errors
    /// [`UnknownSessionMode`] for any other text.
    pub fn parse(text: &str) -> Result<Self, UnknownSessionMode> {
        match text {
            "bearer" => Ok(Self::Bearer),
            "cookie" => Ok(Self::Cookie),
            _ => Err(UnknownSessionMode),
        }
    }
}

impl fmt::Display for SessionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a session mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session mode")]
pub struct UnknownSessionMode;

/// Why a session ended, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// The user signed out.
    Logout,
    /// The user ended it from their list of sessions.
    Revoked,
    /// The user changed their password (from another session).
    PasswordChanged,
    /// An admin disabled the account.
    AccountDisabled,
    /// An already used refresh token of the family was presented again.
    RefreshTokenReused,
}

impl RevokeReason {
    /// The reason's name as stored.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::PasswordChanged => "password_changed",
            Self::AccountDisabled => "account_disabled",
            Self::RefreshTokenReused => "refresh_token_reused",
        }
    }

    /// Parses a stored reason; `None` for any other text.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Logout,
            Self::Revoked,
            Self::PasswordChanged,
            Self::AccountDisabled,
            Self::RefreshTokenReused,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// How long sessions of one mode live: idle (since last use) and absolute (since sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    pub idle: Duration,
    pub absolute: Duration,
}

/// The SHA-256 digest (lower-case hex) of an opaque secret: what is stored instead of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretDigest(pub String);

/// One sign-in. A session is usable while it is neither revoked nor past either expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub mode: SessionMode,
    pub created_at: DateTime<Utc>,
    /// When it was last used (a refresh, or a cookie request); moved at most once a minute.
    pub last_used_at: DateTime<Utc>,
    /// Ends the session unless it is used before: `last_used_at` + the idle timeout, never after
    /// `expires_at`.
    pub idle_expires_at: DateTime<Utc>,
    /// Ends the session whatever happens: sign-in + the absolute timeout.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<RevokeReason>,
    /// The client's `User-Agent` at sign-in, at most [`Session::MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    /// Cookie mode: the digest of the cookie's secret.
    pub secret_digest: Option<SecretDigest>,
    /// Cookie mode: the digest of the CSRF token that unsafe requests must echo.
    pub csrf_digest: Option<SecretDigest>,
}

/// Whether a session can be used now, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    Expired,
    Revoked(RevokeReason),
}

impl Session {
    /// User agents longer than this are cut.
    pub const MAX_USER_AGENT: usize = 256;
    /// A session in use is marked used at most this often (a write per minute per session, not
    /// per request).
    pub const TOUCH_INTERVAL: TimeDelta = TimeDelta::minutes(1);

    /// A new session starting `now`.
    #[must_use]
    pub fn start(
        id: SessionId,
        user_id: UserId,
        mode: SessionMode,
        lifetime: SessionLifetime,
        now: DateTime<Utc>,
        user_agent: Option<&str>,
    ) -> Self {
        let expires_at = now + delta(lifetime.absolute);
        Self {
            id,
            user_id,
            mode,
            created_at: now,
            last_used_at: now,
            idle_expires_at: (now + delta(lifetime.idle)).min(expires_at),
            expires_at,
            revoked_at: None,
            revoke_reason: None,
            user_agent: user_agent.map(|agent| agent.chars().take(Self::MAX_USER_AGENT).collect()),
            secret_digest: None,
            csrf_digest: None,
        }
    }

    /// Whether the session can be used at `now`.
    #[must_use]
    pub fn state(&self, now: DateTime<Utc>) -> SessionState {
        match (self.revoked_at, self.revoke_reason) {
            (Some(_), reason) => SessionState::Revoked(reason.unwrap_or(RevokeReason::Revoked)),
            _ if now >= self.idle_expires_at || now >= self.expires_at => SessionState::Expired,
            _ => SessionState::Active,
        }
    }

    /// Whether the last use is old enough that this one should be recorded.
    #[must_use]
    pub fn due_for_touch(&self, now: DateTime<Utc>) -> bool {
        now - self.last_used_at >= Self::TOUCH_INTERVAL
    }

    /// Records a use at `now`: the idle expiry moves, the absolute one never does.
    pub fn touch(&mut self, lifetime: SessionLifetime, now: DateTime<Utc>) {
        self.last_used_at = now;
        self.idle_expires_at = (now + delta(lifetime.idle)).min(self.expires_at);
    }

    /// Ends the session at `now` (a session revoked already keeps its first reason).
    pub fn revoke(&mut self, reason: RevokeReason, now: DateTime<Utc>) {
        if self.revoked_at.is_none() {
            self.revoked_at = Some(now);
            self.revoke_reason = Some(reason);
        }
    }
}

/// One refresh token of a session's family, by digest. A token is used once: refreshing marks it
/// used and issues the next one; presenting a used one again revokes the family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub digest: SecretDigest,
    pub session_id: SessionId,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const LIFETIME: SessionLifetime = SessionLifetime {
        idle: Duration::from_secs(30 * 60),
        absolute: Duration::from_secs(2 * 60 * 60),
    };

    fn session(now: DateTime<Utc>) -> Session {
        Session::start(
            SessionId::from_uuid(Uuid::now_v7()),
            UserId::from_uuid(Uuid::now_v7()),
            SessionMode::Cookie,
            LIFETIME,
            now,
            Some(&"x".repeat(1000)),
        )
    }

    #[test]
    fn a_session_expires_when_idle_and_at_its_absolute_end_whatever_the_use() {
        let start = Utc::now();
        let mut session = session(start);
        assert_eq!(session.user_agent.as_ref().map(String::len), Some(256));
        assert_eq!(session.state(start), SessionState::Active);
        assert_eq!(
            session.state(start + TimeDelta::minutes(30)),
            SessionState::Expired
        );
        // Used every 20 minutes it stays alive, but never past two hours.
        let mut now = start;
        while now + TimeDelta::minutes(20) < start + TimeDelta::hours(2) {
            now += TimeDelta::minutes(20);
            assert_eq!(session.state(now), SessionState::Active, "at {now}");
            session.touch(LIFETIME, now);
        }
        assert!(session.idle_expires_at <= session.expires_at);
        assert_eq!(
            session.state(start + TimeDelta::hours(2)),
            SessionState::Expired
        );
    }

    #[test]
    fn revoking_keeps_the_first_reason() {
        let now = Utc::now();
        let mut session = session(now);
        session.revoke(RevokeReason::Logout, now);
        session.revoke(RevokeReason::PasswordChanged, now + TimeDelta::seconds(1));
        assert_eq!(
            session.state(now),
            SessionState::Revoked(RevokeReason::Logout)
        );
        assert_eq!(session.revoked_at, Some(now));
    }

    #[test]
    fn touching_is_due_once_a_minute() {
        let now = Utc::now();
        let session = session(now);
        assert!(!session.due_for_touch(now + TimeDelta::seconds(59)));
        assert!(session.due_for_touch(now + TimeDelta::seconds(60)));
    }

    #[test]
    fn modes_and_reasons_round_trip() {
        for mode in [SessionMode::Bearer, SessionMode::Cookie] {
            assert_eq!(SessionMode::parse(mode.as_str()), Ok(mode));
        }
        assert_eq!(SessionMode::parse("jwt"), Err(UnknownSessionMode));
        for reason in [
            RevokeReason::Logout,
            RevokeReason::Revoked,
            RevokeReason::PasswordChanged,
            RevokeReason::AccountDisabled,
            RevokeReason::RefreshTokenReused,
        ] {
            assert_eq!(RevokeReason::parse(reason.as_str()), Some(reason));
        }
    }
}
