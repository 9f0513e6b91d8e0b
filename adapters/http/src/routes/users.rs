//! `/api/v1/users`: the current user and public profiles.

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use crate::AppState;
use crate::dto::users::UserResponse;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, MaybeAuthUser};

/// The signed-in user, with private fields.
#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = Envelope<UserResponse>),
        (status = 401, description = "`unauthorized`, `invalid_token` or `token_expired`", body = ErrorBody),
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
        (status = 401, description = "`invalid_token` or `token_expired` when a bad token is sent", body = ErrorBody),
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
