//! Sessions: signing in by bearer tokens or a cookie, refreshing, checking a presented credential
//! against its session (cached for at most a second), listing and ending sessions (ADR 0014).

mod authenticate;
mod manage;
mod refresh;
mod sign_in;

use std::time::Duration;

use domain::{SessionLifetime, SessionMode};

pub use authenticate::{AuthError, Authenticated, CookieCredentials, SessionCache};
pub use manage::SessionError;
pub use refresh::{RefreshError, Refreshed};
pub use sign_in::{Credentials, LoginError, SignInRequest, SignInThrottle, SignedIn};

/// How long sessions live and how stale a session check may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Bearer mode: the refresh-token family. Idle = unused refresh token; absolute = since
    /// sign-in.
    pub bearer: SessionLifetime,
    /// Cookie mode.
    pub cookie: SessionLifetime,
    /// A session read from the store is trusted this long before it is read again; a revocation
    /// on another instance takes effect within it (at most 1 s, ADR 0014).
    pub check_cache_ttl: Duration,
}

impl SessionSettings {
    /// The longest `check_cache_ttl` allowed: revocations must take effect within a second.
    pub const MAX_CHECK_CACHE_TTL: Duration = Duration::from_secs(1);

    #[must_use]
    pub const fn lifetime(&self, mode: SessionMode) -> SessionLifetime {
        match mode {
            SessionMode::Bearer => self.bearer,
            SessionMode::Cookie => self.cookie,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            bearer: SessionLifetime {
                idle: Duration::from_secs(7 * 24 * 60 * 60),
                absolute: Duration::from_secs(30 * 24 * 60 * 60),
            },
            cookie: SessionLifetime {
                idle: Duration::from_secs(30 * 60),
                absolute: Duration::from_secs(12 * 60 * 60),
            },
            check_cache_ttl: Duration::from_millis(500),
        }
    }
}

/// The most sessions `list_sessions` returns (the newest).
pub const MAX_LISTED_SESSIONS: u64 = 100;
