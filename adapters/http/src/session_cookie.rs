//! The session cookie of cookie-mode sign-ins: its name, attributes, and how it is set and cleared.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};

/// How the session cookie is written. `Secure` cookies get the `__Host-` prefix, which browsers
/// only accept with `Secure`, `Path=/` and no `Domain`: the cookie cannot be set or read by a
/// sibling subdomain. Without TLS (the `local` profile) the cookie is plain `session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    pub secure: bool,
}

impl SessionCookie {
    pub const HOST_NAME: &'static str = "__Host-session";
    pub const PLAIN_NAME: &'static str = "session";

    /// The cookie's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        if self.secure {
            Self::HOST_NAME
        } else {
            Self::PLAIN_NAME
        }
    }

    /// The cookie carrying `secret`, living `max_age`: `HttpOnly` (no script reads it),
    /// `SameSite=Strict` (no cross-site request sends it), `Path=/`, `Secure` when configured.
    #[must_use]
    pub fn set(&self, secret: String, max_age: std::time::Duration) -> Cookie<'static> {
        Cookie::build(self.name(), secret)
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .secure(self.secure)
            .max_age(CookieDuration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .finish()
    }

    /// A cookie that makes the browser forget the session cookie.
    #[must_use]
    pub fn clear(&self) -> Cookie<'static> {
        let mut cookie = self.set(String::new(), std::time::Duration::ZERO);
        cookie.make_removal();
        cookie
    }
}
