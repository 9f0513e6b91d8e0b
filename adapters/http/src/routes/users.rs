//! `/api/v1/users`: the current user, public profiles, self-service and users administration.

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use domain::UserId;

use crate::AppState;
use crate::dto::users::{ProfilePatchRequest, UserListParams, UserPatchRequest, UserResponse};
use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, MaybeAuthUser, SessionAuth, ValidJson};

/// The signed-in user, with private fields.
#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = Envelope<UserResponse>),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn me(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user = state.use_cases.current_user(&actor).await?;
    Ok(HttpResponse::Ok().json(Envelope::of(UserResponse::of(&user, Some(&actor)))))
}

/// A user's public profile; `email` and `balance` only for the user themself and admins.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = Envelope<UserResponse>),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired`, `session_revoked`, ... when bad credentials are sent", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn get_user(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    MaybeAuthUser(viewer): MaybeAuthUser,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .use_cases
        .user_profile(domain::UserId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(Envelope::of(UserResponse::of(&user, viewer.as_ref()))))
}

/// List users, oldest first, by role or email prefix; admins only.
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    params(UserListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users (with private fields)", body = ListEnvelope<UserResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed` (role, email_prefix, paging)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    params: web::Query<UserListParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.into_inner().into_query()?;
    let users = state.use_cases.list_users(&actor, &query).await?;
    Ok(HttpResponse::Ok().json(ListEnvelope::of(
        users.map(|user| UserResponse::of(&user, Some(&actor))),
    )))
}

/// Change a user's name, role or disabled flag; admins only. Disabling ends every session of
/// the user at once. Any other field is a 400 `validation_failed`.
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UserPatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed user", body = Envelope<UserResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed` (an unknown or empty field too)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin; `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: admins cannot demote or disable themselves", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn update_user(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    json: ValidJson<UserPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = json.body.into_change()?;
    let user = state
        .use_cases
        .update_user(&actor, UserId::from_uuid(id.into_inner()), change)
        .await?;
    Ok(HttpResponse::Ok().json(Envelope::of(UserResponse::of(&user, Some(&actor)))))
}

/// Delete an account: your own, or anyone's as an admin; its sessions end with it. Accounts with
/// markets or positions are kept (409 `user_has_history`): disable them instead.
#[utoipa::path(
    delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not yours and not an admin; `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`user_has_history`; `conflict`: admins cannot delete themselves", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn delete_user(
    state: web::Data<AppState>,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .use_cases
        .delete_user(&actor, UserId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Change your own name, or your password (with the current one; every other session ends).
/// `role`, `email`, `balance`, `disabled` or any other field is a 400 `validation_failed`.
#[utoipa::path(
    patch, path = "/api/v1/users/me", tag = "users",
    request_body = ProfilePatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed user", body = Envelope<UserResponse>),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`wrong_password`: the current password is wrong; `csrf_failed`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn update_me(
    state: web::Data<AppState>,
    SessionAuth(auth): SessionAuth,
    json: ValidJson<ProfilePatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = json.body.into_change()?;
    let user = state
        .use_cases
        .update_profile(&auth.actor, auth.session_id, change)
        .await?;
    Ok(HttpResponse::Ok().json(Envelope::of(UserResponse::of(&user, Some(&auth.actor)))))
}
