//! Extractors: the signed-in user (bearer token or session cookie), validated JSON bodies, `If-Match`, and the error handlers that
//! turn actix's own extraction failures into the envelope.

use std::future::{Ready, ready};

use actix_web::HttpMessage as _;
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use application::markets::Precondition;
use application::sessions::{Authenticated, CookieCredentials};
use domain::Actor;
use futures_util::future::LocalBoxFuture;
use garde::Validate;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, FieldError};

/// The signed-in user, from `Authorization: Bearer <access token>` or the session cookie (with
/// `X-CSRF-Token` on unsafe methods); both go through [`authenticate`].
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Actor);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { authenticate(&request).await.map(|auth| Self(auth.actor)) })
    }
}

/// The signed-in user and the session the request came with, for the session endpoints.
#[derive(Debug, Clone, Copy)]
pub struct SessionAuth(pub Authenticated);

impl FromRequest for SessionAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { authenticate(&request).await.map(Self) })
    }
}

/// The signed-in user if credentials were sent; anonymous if none were. Credentials that were sent
/// but do not authenticate are still a 401, never silently anonymous.
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthUser(pub Option<Actor>);

impl FromRequest for MaybeAuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            if presents_credentials(&request) {
                authenticate(&request)
                    .await
                    .map(|auth| Self(Some(auth.actor)))
            } else {
                Ok(Self(None))
            }
        })
    }
}

/// The bearer token of `Authorization: Bearer <token>`: `None` without the header, an error
/// when the header is not of that form.
///
/// # Errors
/// 401 `invalid_token` for any other `Authorization` value.
pub fn bearer_token(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .map(Some)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "expected the header 'Authorization: Bearer <token>'",
            )
        })
}

/// Whether the request carries an `Authorization` header or a session cookie.
fn presents_credentials(request: &HttpRequest) -> bool {
    request.headers().contains_key(header::AUTHORIZATION)
        || state(request).is_ok_and(|state| request.cookie(state.session_cookie.name()).is_some())
}

fn state(request: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state is not registered"))
}

/// Authenticates the request once (the result is kept in the request's extensions for the other
/// extractors): a bearer token when `Authorization` is sent, else the session cookie.
///
/// # Errors
/// 401 with the reason's code (see [`application::sessions::AuthError`]); 401 `unauthorized`
/// without credentials; 403 `csrf_failed`.
pub async fn authenticate(request: &HttpRequest) -> Result<Authenticated, ApiError> {
    if let Some(done) = request.extensions().get::<Authenticated>() {
        return Ok(*done);
    }
    let state = state(request)?;
    let use_cases = &state.use_cases;
    let authenticated = if let Some(token) = bearer_token(request)? {
        use_cases.authenticate_bearer(token).await?
    } else if let Some(cookie) = request.cookie(state.session_cookie.name()) {
        let csrf_token = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok());
        use_cases
            .authenticate_cookie(CookieCredentials {
                secret: cookie.value(),
                csrf_token,
                unsafe_method: !request.method().is_safe(),
            })
            .await?
    } else {
        return Err(ApiError::unauthorized("unauthorized", "sign in to do this"));
    };
    // Every later line of this request's logs names the user.
    tracing::Span::current().record(
        "user_id",
        tracing::field::display(authenticated.actor.user_id),
    );
    request.extensions_mut().insert(authenticated);
    Ok(authenticated)
}

/// The header cookie-mode clients echo the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body that deserialised and passed its `garde` rules, with a digest of its content for
/// idempotency fingerprints.
#[derive(Debug)]
pub struct ValidJson<T> {
    pub body: T,
    /// SHA-256 (hex) of the body's JSON in canonical form (object keys sorted, no whitespace), so
    /// that the same request sent twice has the same digest however it was formatted.
    pub digest: String,
}

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate<Context = ()> + 'static,
{
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Content type, size limit and syntax are checked by `web::Json` (see `json_error`).
        let json = web::Json::<serde_json::Value>::from_request(request, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            let canonical = serde_json::to_vec(&value).unwrap_or_default();
            let digest = format!("{:x}", Sha256::digest(&canonical));
            let body =
                T::deserialize(value).map_err(|error| ApiError::invalid_field("body", error))?;
            body.validate().map_err(|report| {
                ApiError::validation(
                    report
                        .iter()
                        .map(|(path, error)| FieldError {
                            field: path.to_string(),
                            message: error.message().to_owned(),
                        })
                        .collect(),
                )
            })?;
            Ok(Self { body, digest })
        })
    }
}

/// The client's `Idempotency-Key`, if it sent one: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = request.headers().get("idempotency-key") else {
            return ready(Ok(Self(None)));
        };
        let key = value.to_str().ok().filter(|key| {
            (1..=Self::MAX_LEN).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        });
        ready(match key {
            Some(key) => Ok(Self(Some(key.to_owned()))),
            None => Err(ApiError::invalid_field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        })
    }
}

/// The `If-Match` precondition of a write: a version in an entity tag (`"3"` or `W/"3"`), `*`
/// (no precondition), or absent. Anything else can match no version: 412.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Precondition);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = request.headers().get(header::IF_MATCH) else {
            return ready(Ok(Self(Precondition::None)));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return ready(Ok(Self(Precondition::None)));
        }
        ready(
            parse_entity_tag(text)
                .map(|version| Self(Precondition::Version(version)))
                .ok_or_else(|| {
                    ApiError::precondition_failed(
                        "If-Match must be an entity tag from an ETag header, such as \"3\"",
                    )
                }),
        )
    }
}

/// The version in an entity tag written by [`entity_tag`].
#[must_use]
pub fn parse_entity_tag(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

/// The entity tag of a resource version.
#[must_use]
pub fn entity_tag(version: i64) -> String {
    format!("\"{version}\"")
}

/// JSON extraction failures in the envelope: 413, 415, or 400.
pub fn json_error(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::payload_too_large(*limit),
        JsonPayloadError::ContentType => ApiError::unsupported_media_type(),
        JsonPayloadError::Deserialize(cause) if cause.is_data() => {
            ApiError::invalid_field("body", cause)
        }
        JsonPayloadError::Deserialize(cause) => {
            ApiError::malformed(format!("the body is not valid JSON: {cause}"))
        }
        _ => ApiError::malformed("the body could not be read"),
    };
    api_error.into()
}

/// Query-string failures in the envelope: 400 `malformed_request`.
pub fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::malformed(format!("bad query string: {error}")).into()
}

/// Path-parameter failures in the envelope: 400 `malformed_request`.
pub fn path_error(_: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::malformed("bad path parameter: ids are UUIDs").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_round_trip_and_junk_matches_nothing() {
        assert_eq!(parse_entity_tag(&entity_tag(7)), Some(7));
        assert_eq!(parse_entity_tag("W/\"7\""), Some(7));
        assert_eq!(parse_entity_tag("7"), None);
        assert_eq!(parse_entity_tag("\"seven\""), None);
    }
}
