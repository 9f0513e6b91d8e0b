//! `/api/v1/auth`: registration and sign-in.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::AppState;
use crate::dto::users::{LoginRequest, RegisterRequest, TokenResponse, UserResponse};
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;

/// Create an account (role `user`).
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; `Location` names the new user", body = Envelope<UserResponse>,
            headers(("Location" = String, description = "URL of the new user"))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 409, description = "`conflict`: the email is registered", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = state.use_cases.register(body.into_registration()?).await?;
    let view = UserResponse::of(
        &user,
        Some(&domain::Actor {
            user_id: user.id,
            role: user.role,
        }),
    );
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", user.id)))
        .json(Envelope::of(view)))
}

/// Sign in with email and password; returns a bearer access token.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Envelope<TokenResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: unknown email or wrong password (indistinguishable)", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let signed_in = state.use_cases.login(&body.email, &body.password).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Envelope::of(TokenResponse {
            access_token: signed_in.access_token.token,
            token_type: "Bearer",
            expires_in: signed_in.access_token.expires_in_seconds,
        })))
}
