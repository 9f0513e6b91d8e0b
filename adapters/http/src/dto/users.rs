//! User, registration, sign-in, session and user-administration bodies.

use application::users::{ProfileChange, UserChange};
use chrono::{DateTime, Utc};
use domain::listing::{EmailPrefix, UserFilter, UserListQuery};
use domain::{
    Actor, DisplayName, Email, Password, Permission, Role, Session, SessionId, SessionMode, User,
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::markets::{Problems, whole_number, window};
use super::{parses, parses_if_present, present};
use crate::error::ApiError;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An email address; compared case-insensitively.
    #[garde(custom(parses(Email::parse)))]
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = "^[!-?A-~]{1,64}@[!-\\-/-?A-~]+(\\.[!-\\-/-?A-~]+)+$"
    )]
    pub email: String,
    /// 8 to 128 characters, not one of the 10,000 most common passwords.
    #[garde(custom(parses(Password::parse)))]
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    pub password: String,
    /// Display name, 1 to 100 characters.
    #[garde(custom(parses(DisplayName::parse)))]
    #[schema(
        example = "Ada",
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
}

impl RegisterRequest {
    /// The use case's input. Validation has run, so the parses succeed; if they ever did not, the
    /// client still gets a 400 rather than a panic.
    pub fn into_registration(self) -> Result<application::users::Registration, ApiError> {
        Ok(application::users::Registration {
            email: Email::parse(&self.email).map_err(|e| ApiError::invalid_field("email", e))?,
            password: Password::parse(&self.password)
                .map_err(|e| ApiError::invalid_field("password", e))?,
            name: DisplayName::parse(&self.name).map_err(|e| ApiError::invalid_field("name", e))?,
        })
    }
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[garde(length(chars, min = 1, max = 254))]
    #[schema(example = "ada@example.com", min_length = 1, max_length = 254)]
    pub email: String,
    #[garde(length(chars, min = 1, max = 128))]
    #[schema(
        example = "correct horse battery staple",
        min_length = 1,
        max_length = 128
    )]
    pub password: String,
    /// `bearer` (default): an access token and a refresh token in the body. `cookie`: an
    /// `HttpOnly` session cookie and a CSRF token to echo in `X-CSRF-Token` on unsafe requests.
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, example = "bearer", pattern = "^(bearer|cookie)$")]
    pub mode: Option<LoginMode>,
}

/// How a client signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    Bearer,
    Cookie,
}

impl From<LoginMode> for SessionMode {
    fn from(mode: LoginMode) -> Self {
        match mode {
            LoginMode::Bearer => Self::Bearer,
            LoginMode::Cookie => Self::Cookie,
        }
    }
}

/// Bearer-mode credentials: a short-lived access token and the refresh token that renews it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A signed JWT (HS256) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Opaque, single use: `POST /api/v1/auth/refresh` trades it for new tokens. Presenting a
    /// used one again ends the session.
    pub refresh_token: String,
    /// The session these tokens belong to.
    pub session_id: Uuid,
}

/// Cookie-mode sign-in: the session cookie is in `Set-Cookie`; the CSRF token is only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CookieSessionResponse {
    pub session_id: Uuid,
    /// Send it as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE of this session.
    pub csrf_token: String,
    /// When the session ends at the latest (the idle timeout may end it sooner).
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[garde(length(min = 1, max = 256))]
    #[schema(min_length = 1, max_length = 256)]
    pub refresh_token: String,
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub id: Uuid,
    /// `bearer` or `cookie`.
    #[schema(example = "bearer")]
    pub mode: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless used (idle timeout), never after its absolute end.
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    /// Whether this is the session of the request.
    pub current: bool,
}

impl SessionResponse {
    #[must_use]
    pub fn of(session: &Session, current: SessionId) -> Self {
        Self {
            id: session.id.as_uuid(),
            mode: session.mode.as_str(),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            // Never after `expires_at` (`Session::start` and `touch` keep it so).
            expires_at: session.idle_expires_at,
            user_agent: session.user_agent.clone(),
            current: session.id == current,
        }
    }
}

/// Query parameters of `GET /api/v1/users`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// `admin`, `moderator` or `user`.
    #[param(pattern = "^(admin|moderator|user)$")]
    pub role: Option<String>,
    /// Users whose email starts with this (case-insensitive), 1 to 254 characters.
    #[param(
        min_length = 1,
        max_length = 254,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub email_prefix: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0, at most 1,000,000). Not together with `page`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    pub offset: Option<String>,
    /// 1-based page number, at most 10,001. Not together with `offset`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10_001)]
    pub page: Option<String>,
}

impl UserListParams {
    /// The filter and the page, every invalid parameter reported at once.
    pub fn into_query(self) -> Result<UserListQuery, ApiError> {
        let mut problems = Problems::default();
        let role = problems.take("role", self.role.as_deref(), |text| {
            Role::parse(text).map_err(|_| "must be admin, moderator or user")
        });
        let email_prefix = problems.take(
            "email_prefix",
            self.email_prefix.as_deref(),
            EmailPrefix::parse,
        );
        let limit = problems.take("limit", self.limit.as_deref(), whole_number);
        let offset = problems.take("offset", self.offset.as_deref(), whole_number);
        let page_number = problems.take("page", self.page.as_deref(), whole_number);
        let page = window(limit, offset, page_number, &mut problems);
        problems.into_result(UserListQuery {
            filter: UserFilter { role, email_prefix },
            page,
        })
    }
}

/// `PATCH /api/v1/users/{id}` (admins): any subset of these fields; no other field is accepted.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UserPatchRequest {
    /// Display name, 1 to 100 characters.
    #[garde(custom(parses_if_present(DisplayName::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// `admin`, `moderator` or `user`.
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, pattern = "^(admin|moderator|user)$")]
    pub role: Option<Role>,
    /// A disabled user cannot sign in, and every session of theirs ends at once.
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub disabled: Option<bool>,
}

impl UserPatchRequest {
    /// The use case's input; an empty body is refused.
    pub fn into_change(self) -> Result<UserChange, ApiError> {
        if self.name.is_none() && self.role.is_none() && self.disabled.is_none() {
            return Err(ApiError::invalid_field("body", "give at least one field"));
        }
        Ok(UserChange {
            name: self
                .name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()
                .map_err(|e| ApiError::invalid_field("name", e))?,
            role: self.role,
            disabled: self.disabled,
        })
    }
}

/// `PATCH /api/v1/users/me`: the caller's name, or password (with the current one). Role, email,
/// balance and the disabled flag are not the caller's to set: such a field is a 400
/// `validation_failed`, never silently ignored.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ProfilePatchRequest {
    /// Display name, 1 to 100 characters.
    #[garde(custom(parses_if_present(DisplayName::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// The new password: 8 to 128 characters, not a common one. Needs `current_password`; ends
    /// every other session.
    #[garde(custom(parses_if_present(Password::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// Required with `password`.
    #[garde(length(chars, max = 128))]
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, min_length = 1, max_length = 128)]
    pub current_password: Option<String>,
}

impl ProfilePatchRequest {
    /// The use case's input; `password` without `current_password` (or the reverse) is refused.
    pub fn into_change(self) -> Result<ProfileChange, ApiError> {
        if self.name.is_none() && self.password.is_none() && self.current_password.is_none() {
            return Err(ApiError::invalid_field("body", "give at least one field"));
        }
        let password = match (self.password, self.current_password) {
            (Some(new), Some(current)) => Some((
                current,
                Password::parse(&new).map_err(|e| ApiError::invalid_field("password", e))?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ApiError::invalid_field(
                    "current_password",
                    "required to change the password",
                ));
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid_field(
                    "current_password",
                    "only given with a new password",
                ));
            }
        };
        Ok(ProfileChange {
            name: self
                .name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()
                .map_err(|e| ApiError::invalid_field("name", e))?,
            password,
        })
    }
}

/// A user as others see them; `email` and `balance` only for the user themself and admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub name: String,
    #[schema(example = "user")]
    pub role: String,
    /// Credits, a decimal string with two places.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "1000.00")]
    pub balance: Option<String>,
    /// Whether an admin disabled the account; shown to the user themself and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    pub created_at: DateTime<Utc>,
}

impl UserResponse {
    /// The representation of `user` for `viewer` (`None`: anonymous).
    #[must_use]
    pub fn of(user: &User, viewer: Option<&Actor>) -> Self {
        let private = viewer
            .is_some_and(|actor| actor.user_id == user.id || actor.role.has(Permission::Admin));
        Self {
            id: user.id.as_uuid(),
            email: private.then(|| user.email.as_str().to_owned()),
            name: user.name.as_str().to_owned(),
            role: user.role.as_str().to_owned(),
            balance: private.then(|| user.balance.to_string()),
            disabled: private.then_some(user.disabled),
            created_at: user.created_at,
        }
    }
}
