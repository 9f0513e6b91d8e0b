//! User, registration and sign-in bodies.

use chrono::{DateTime, Utc};
use domain::{Actor, DisplayName, Email, Password, Permission, User};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::parses;
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
}

/// A bearer access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A signed JWT (HS256) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
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
            created_at: user.created_at,
        }
    }
}
