//! `/api/v1/auth`: registration, sign-in in both modes, refresh, logout and the caller's sessions.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use application::idempotency::{Idempotent, Replayable};
use application::sessions::{Credentials, SignInRequest};
use domain::{SessionId, SessionMode, User};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::dto::users::{
    CookieSessionResponse, LoginMode, LoginRequest, RefreshRequest, RegisterRequest,
    SessionResponse, TokenResponse, UserResponse,
};
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdempotencyKey, SessionAuth, ValidJson};
use crate::idempotency;

/// What a sign-in returns, by mode.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Bearer(TokenResponse),
    Cookie(CookieSessionResponse),
}

/// The 201 of a registration, rendered once (for the client and for idempotent replays).
fn registered(user: &User) -> domain::ports::StoredResponse {
    let own = domain::Actor {
        user_id: user.id,
        role: user.role,
    };
    idempotency::render_json(
        StatusCode::CREATED,
        vec![(
            header::LOCATION.to_string(),
            format!("/api/v1/users/{}", user.id),
        )],
        &Envelope::of(UserResponse::of(user, Some(&own))),
    )
}

/// Create an account (role `user`).
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Registered; `Location` names the new user", body = Envelope<UserResponse>,
            headers(("Location" = String, description = "URL of the new user"))),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 409, description = "`conflict`: the email is registered; `idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: the key was used for another request", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    key: IdempotencyKey,
    json: ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = idempotency::request(key, None, "POST /api/v1/auth/register", &json.digest);
    let idempotent = request.as_ref().map(|request| Idempotent {
        request,
        render: &registered,
    });
    let outcome = state
        .use_cases
        .register(json.body.into_registration()?, idempotent.as_ref())
        .await?;
    Ok(match outcome {
        Replayable::Done(user) => idempotency::respond(registered(&user), false),
        Replayable::Replay(stored) => idempotency::respond(stored, true),
    })
}

/// Sign in with email and password. `"mode": "bearer"` (default) returns an access token and a
/// refresh token; `"mode": "cookie"` sets an `HttpOnly` session cookie and returns the CSRF token
/// to echo in `X-CSRF-Token`. Either way a new session starts (see `GET /api/v1/auth/sessions`).
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: tokens (bearer mode) or a session cookie and its CSRF token (cookie mode)", body = Envelope<LoginResponse>,
            headers(("Set-Cookie" = String, description = "Cookie mode: the session cookie (`__Host-session` over TLS, `HttpOnly`, `SameSite=Strict`)"))),
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
    request: HttpRequest,
    json: ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = json.body;
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let signed_in = state
        .use_cases
        .login(SignInRequest {
            email: &body.email,
            password: &body.password,
            mode: body.mode.unwrap_or(LoginMode::Bearer).into(),
            user_agent,
        })
        .await?;
    let session = &signed_in.session;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    Ok(match signed_in.credentials {
        Credentials::Bearer {
            access_token,
            refresh_token,
        } => response.json(Envelope::of(LoginResponse::Bearer(TokenResponse {
            access_token: access_token.token,
            token_type: "Bearer",
            expires_in: access_token.expires_in_seconds,
            refresh_token,
            session_id: session.id.as_uuid(),
        }))),
        Credentials::Cookie { secret, csrf_token } => {
            let lifetime = state.use_cases.settings().sessions.cookie.absolute;
            response
                .cookie(state.session_cookie.set(secret, lifetime))
                .json(Envelope::of(LoginResponse::Cookie(CookieSessionResponse {
                    session_id: session.id.as_uuid(),
                    csrf_token,
                    expires_at: session.expires_at,
                })))
        }
    })
}

/// Trade a refresh token for a new access token and a new refresh token (the old one is used
/// up). Presenting a refresh token that was used already ends its whole session: a stolen token
/// and the legitimate client both lose it, and the client signs in again.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens for the same session", body = Envelope<TokenResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` (the session is now ended), `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn refresh(
    state: web::Data<AppState>,
    json: ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = json.body.refresh_token;
    let refreshed = state.use_cases.refresh(&presented).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Envelope::of(TokenResponse {
            access_token: refreshed.access_token.token,
            token_type: "Bearer",
            expires_in: refreshed.access_token.expires_in_seconds,
            refresh_token: refreshed.refresh_token,
            session_id: refreshed.session_id.as_uuid(),
        })))
}

/// Sign out: the session of the request ends at once (its access token and refresh token stop
/// working; a cookie is cleared).
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`: a cookie session without its `X-CSRF-Token`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    SessionAuth(auth): SessionAuth,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.logout(&auth.actor, auth.session_id).await?;
    let mut response = HttpResponse::NoContent();
    if auth.mode == SessionMode::Cookie {
        response.cookie(state.session_cookie.clear());
    }
    Ok(response.finish())
}

/// The caller's active sessions, newest first (at most 100); `current` marks this one.
#[utoipa::path(
    get, path = "/api/v1/auth/sessions", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Active sessions", body = Envelope<Vec<SessionResponse>>),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_sessions(
    state: web::Data<AppState>,
    SessionAuth(auth): SessionAuth,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.use_cases.list_sessions(&auth.actor).await?;
    let body: Vec<SessionResponse> = sessions
        .iter()
        .map(|session| SessionResponse::of(session, auth.session_id))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Envelope::of(body)))
}

/// End one of the caller's sessions (a lost phone, say). Someone else's session is a 404.
#[utoipa::path(
    delete, path = "/api/v1/auth/sessions/{id}", tag = "auth",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended (or ended already)"),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`: a cookie session without its `X-CSRF-Token`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such session of yours", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn revoke_session(
    state: web::Data<AppState>,
    SessionAuth(auth): SessionAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .use_cases
        .revoke_session(&auth.actor, SessionId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
