//! The one mapping from errors to HTTP: every rejection becomes an [`ApiError`] with a status and a
//! stable `code`, rendered in the error envelope. Use-case errors are translated here and nowhere
//! else.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use application::Unavailable;
use application::idempotency::IdempotencyError;
use application::job_status::JobStatusError;
use application::markets::{
    ChangeMarketError, CreateMarketError, DeleteMarketError, GetImageError, GetMarketError,
    ListMarketsError, UploadImageError,
};
use application::positions::{ListPositionsError, OpenPositionError};
use application::sessions::{AuthError, LoginError, RefreshError, SessionError};
use application::users::{
    CurrentUserError, RegisterError, UserListError, UserProfileError, UserUpdateError,
};
use domain::access::AccessDenied;
use domain::market::MarketError;
use domain::ports::{BoxError, TokenError};
use domain::position::PositionError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::stream::ConnectError;

/// One invalid input field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a path into the request (`name`, `initial_position.amount`, or a query
    /// parameter such as `limit`).
    pub field: String,
    pub message: String,
}

/// The error envelope every failed request receives.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A human-readable message. Never contains internals.
    pub error: String,
    /// A stable, machine-readable code; see the table in the API documentation.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Per-field problems, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    /// The `X-Request-Id` of this request, for support and logs.
    pub request_id: String,
}

/// A rejection on its way to the client.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    details: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The underlying failure of a 5xx, logged with its cause chain, never sent.
    cause: Option<BoxError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// 400 `malformed_request`: the request could not be parsed.
    pub fn malformed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// 400 `validation_failed` with per-field details.
    #[must_use]
    pub fn validation(details: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "the request is invalid; see details",
        );
        error.details = details;
        error
    }

    /// 400 `validation_failed` for one field.
    pub fn invalid_field(field: &str, message: impl fmt::Display) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            message: message.to_string(),
        }])
    }

    /// 401: no credentials, or credentials that do not authenticate.
    pub fn unauthorized(code: &'static str, message: &'static str) -> Self {
        let mut error = Self::new(StatusCode::UNAUTHORIZED, code, message);
        error.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"api\""),
        ));
        error
    }

    /// 403 `forbidden`.
    #[must_use]
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you are not allowed to do this",
        )
    }

    /// 403 `forbidden_origin`: a browser page of another origin tried to open the stream.
    #[must_use]
    pub fn forbidden_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "pages of this origin may not open the stream",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(what: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 405 `method_not_allowed` with the `Allow` header.
    #[must_use]
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this resource",
        );
        error
            .headers
            .push((header::ALLOW, HeaderValue::from_static(allow)));
        error
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 412 `precondition_failed`.
    pub fn precondition_failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            message,
        )
    }

    /// 413 `payload_too_large`.
    #[must_use]
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    #[must_use]
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        )
    }

    /// 415 `unsupported_media_type` saying what was expected.
    pub fn unsupported_media_type_because(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 507 `storage_full`: no space is left to store an upload.
    pub fn storage_full(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage_full", message)
    }

    /// 503 `service_unavailable`: a dependency is down.
    pub fn service_unavailable(cause: impl Into<BoxError>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a dependency is unavailable; try again later",
        );
        error.cause = Some(cause.into());
        error
    }

    /// 503 `too_many_connections`: this instance holds as many stream connections as it may.
    #[must_use]
    pub fn too_many_connections(max: usize) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("this instance holds its maximum of {max} stream connections; try again later"),
        );
        error
            .headers
            .push((header::RETRY_AFTER, HeaderValue::from_static("5")));
        error
    }

    /// 429 `rate_limited`: the client used up its quota; `Retry-After` says in how many seconds
    /// one more request fits, and `headers` (the `RateLimit-*` ones) go with it.
    pub fn rate_limited(
        retry_after_secs: u64,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    ) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; try again in {retry_after_secs} s"),
        );
        error
            .headers
            .push((header::RETRY_AFTER, HeaderValue::from(retry_after_secs)));
        error.headers.extend(headers);
        error
    }

    /// 500 `internal_error`: anything unexpected. The cause is logged, never sent.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        );
        error.cause = Some(cause.into());
        error
    }

    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// The cause and its chain of sources, one line, for logs.
    #[must_use]
    pub fn cause_chain(&self) -> Option<String> {
        let cause = self.cause.as_deref()?;
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        Some(chain)
    }

    /// The response, with the request id in the body.
    #[must_use]
    pub fn render(&self, request_id: &str) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.json(ErrorBody {
            success: false,
            error: self.message.to_string(),
            code: self.code.to_owned(),
            details: (!self.details.is_empty()).then(|| self.details.clone()),
            request_id: request_id.to_owned(),
        })
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("cause", &self.cause_chain())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// Rendered without a request id; the request-context middleware re-renders every `ApiError`
    /// with the id of its request.
    fn error_response(&self) -> HttpResponse {
        self.render("")
    }
}

// ---- use-case errors, each mapped once ----

impl From<ConnectError> for ApiError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::TooManyConnections(max) => Self::too_many_connections(max),
            ConnectError::ShuttingDown => Self::service_unavailable(error),
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(error: Unavailable) -> Self {
        Self::service_unavailable(error)
    }
}

impl From<AccessDenied> for ApiError {
    fn from(_: AccessDenied) -> Self {
        Self::forbidden()
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Expired => Self::unauthorized("token_expired", "the access token expired"),
            TokenError::NotYetValid => {
                Self::unauthorized("token_not_yet_valid", "the access token is not valid yet")
            }
            TokenError::Invalid => {
                Self::unauthorized("invalid_token", "the access token is invalid")
            }
            TokenError::Issuing(cause) => Self::internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidToken => {
                Self::unauthorized("invalid_token", "the credentials are invalid")
            }
            AuthError::TokenExpired => {
                Self::unauthorized("token_expired", "the access token expired")
            }
            AuthError::TokenNotYetValid => {
                Self::unauthorized("token_not_yet_valid", "the access token is not valid yet")
            }
            AuthError::SessionRevoked => {
                Self::unauthorized("session_revoked", "the session has ended; sign in again")
            }
            AuthError::SessionExpired => {
                Self::unauthorized("session_expired", "the session has expired; sign in again")
            }
            AuthError::AccountDisabled => {
                Self::unauthorized("account_disabled", "this account is disabled")
            }
            AuthError::CsrfFailed => Self::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "cookie sessions must send the session's X-CSRF-Token with unsafe methods",
            ),
            AuthError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Invalid => {
                Self::unauthorized("invalid_refresh_token", "the refresh token is invalid")
            }
            RefreshError::Reused => Self::unauthorized(
                "refresh_token_reused",
                "the refresh token was used already; the session has been ended",
            ),
            RefreshError::SessionRevoked => {
                Self::unauthorized("session_revoked", "the session has ended; sign in again")
            }
            RefreshError::SessionExpired => {
                Self::unauthorized("session_expired", "the session has expired; sign in again")
            }
            RefreshError::AccountDisabled => {
                Self::unauthorized("account_disabled", "this account is disabled")
            }
            RefreshError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::NotFound => Self::not_found("no such session"),
            SessionError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<UserListError> for ApiError {
    fn from(error: UserListError) -> Self {
        match error {
            UserListError::Forbidden => Self::forbidden(),
            UserListError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<UserUpdateError> for ApiError {
    fn from(error: UserUpdateError) -> Self {
        match error {
            UserUpdateError::Forbidden => Self::forbidden(),
            UserUpdateError::NotFound => Self::not_found("no such user"),
            UserUpdateError::WrongPassword => Self::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "the current password is wrong",
            ),
            UserUpdateError::OwnAdminRights => {
                Self::conflict("admins cannot demote, disable or delete themselves")
            }
            UserUpdateError::HasHistory(what) => Self::new(
                StatusCode::CONFLICT,
                "user_has_history",
                format!("the account has {what}; disable it instead"),
            ),
            UserUpdateError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<MarketError> for ApiError {
    fn from(error: MarketError) -> Self {
        match error {
            MarketError::EndDateNotInFuture => Self::invalid_field("end_date", error),
            MarketError::OutcomeRequired | MarketError::OutcomeNotAllowed => {
                Self::invalid_field("outcome", error)
            }
            MarketError::InvalidTransition { .. } | MarketError::AlreadyActive => {
                Self::conflict(error.to_string())
            }
        }
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(error: IdempotencyError) -> Self {
        match error {
            IdempotencyError::InProgress => Self::new(
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                error.to_string(),
            ),
            IdempotencyError::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                error.to_string(),
            ),
        }
    }
}

impl From<PositionError> for ApiError {
    fn from(error: PositionError) -> Self {
        match error {
            PositionError::MarketNotActive(_) | PositionError::MarketEnded => {
                Self::new(StatusCode::CONFLICT, "market_not_open", error.to_string())
            }
            PositionError::InsufficientBalance { .. } => Self::new(
                StatusCode::CONFLICT,
                "insufficient_balance",
                error.to_string(),
            ),
            PositionError::VolumeOverflow => Self::invalid_field("amount", error),
        }
    }
}

impl From<OpenPositionError> for ApiError {
    fn from(error: OpenPositionError) -> Self {
        match error {
            OpenPositionError::MarketNotFound => Self::not_found("no such market"),
            OpenPositionError::Forbidden(denied) => denied.into(),
            OpenPositionError::AccountGone => {
                Self::unauthorized("invalid_token", "the account behind this token is gone")
            }
            OpenPositionError::Rule(rule) => rule.into(),
            OpenPositionError::Idempotency(refusal) => refusal.into(),
            OpenPositionError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<ListPositionsError> for ApiError {
    fn from(error: ListPositionsError) -> Self {
        match error {
            ListPositionsError::MarketNotFound => Self::not_found("no such market"),
            ListPositionsError::UserNotFound => Self::not_found("no such user"),
            ListPositionsError::Forbidden(denied) => denied.into(),
            ListPositionsError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::EmailTaken => Self::conflict(error.to_string()),
            RegisterError::Idempotency(refusal) => refusal.into(),
            RegisterError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => {
                Self::unauthorized("unauthorized", "invalid email or password")
            }
            LoginError::Throttled { retry_after } => {
                let whole = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Self::rate_limited(whole.max(1), [])
            }
            LoginError::AccountDisabled => Self::new(
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account is disabled",
            ),
            LoginError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<CurrentUserError> for ApiError {
    fn from(error: CurrentUserError) -> Self {
        match error {
            CurrentUserError::AccountGone => {
                Self::unauthorized("invalid_token", "the account behind this token is gone")
            }
            CurrentUserError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<UserProfileError> for ApiError {
    fn from(error: UserProfileError) -> Self {
        match error {
            UserProfileError::NotFound => Self::not_found("no such user"),
            UserProfileError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<CreateMarketError> for ApiError {
    fn from(error: CreateMarketError) -> Self {
        match error {
            CreateMarketError::Forbidden(denied) => denied.into(),
            CreateMarketError::Rule(rule) => rule.into(),
            CreateMarketError::CreatorGone => {
                Self::unauthorized("invalid_token", "the account behind this token is gone")
            }
            CreateMarketError::Position(rule) => rule.into(),
            CreateMarketError::Idempotency(refusal) => refusal.into(),
            CreateMarketError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<GetMarketError> for ApiError {
    fn from(error: GetMarketError) -> Self {
        match error {
            GetMarketError::NotFound => Self::not_found("no such market"),
            GetMarketError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<application::markets::SearchMarketsError> for ApiError {
    fn from(error: application::markets::SearchMarketsError) -> Self {
        match error {
            application::markets::SearchMarketsError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<ListMarketsError> for ApiError {
    fn from(error: ListMarketsError) -> Self {
        match error {
            ListMarketsError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<ChangeMarketError> for ApiError {
    fn from(error: ChangeMarketError) -> Self {
        match error {
            ChangeMarketError::NotFound => Self::not_found("no such market"),
            ChangeMarketError::Forbidden(denied) => denied.into(),
            ChangeMarketError::PreconditionFailed { .. } => {
                Self::precondition_failed(error.to_string())
            }
            ChangeMarketError::Contended => Self::conflict(error.to_string()),
            ChangeMarketError::Rule(rule) => rule.into(),
            ChangeMarketError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<JobStatusError> for ApiError {
    fn from(error: JobStatusError) -> Self {
        match error {
            JobStatusError::NotFound => Self::not_found("no such job"),
            JobStatusError::Forbidden(denied) => denied.into(),
            JobStatusError::NotDead(_) => {
                Self::new(StatusCode::CONFLICT, "job_not_dead", error.to_string())
            }
            JobStatusError::Duplicate => Self::conflict(error.to_string()),
            JobStatusError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<DeleteMarketError> for ApiError {
    fn from(error: DeleteMarketError) -> Self {
        match error {
            DeleteMarketError::NotFound => Self::not_found("no such market"),
            DeleteMarketError::Forbidden(denied) => denied.into(),
            DeleteMarketError::PreconditionFailed { .. } => {
                Self::precondition_failed(error.to_string())
            }
            DeleteMarketError::Contended | DeleteMarketError::HasPositions => {
                Self::conflict(error.to_string())
            }
            DeleteMarketError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<UploadImageError> for ApiError {
    fn from(error: UploadImageError) -> Self {
        match error {
            UploadImageError::NotFound => Self::not_found("no such market"),
            UploadImageError::Forbidden(denied) => denied.into(),
            UploadImageError::TooLarge { limit } => Self::payload_too_large(limit),
            UploadImageError::UnsupportedImage => Self::unsupported_media_type_because(
                "the file is not a PNG, JPEG or WebP image (judged by its content)",
            ),
            UploadImageError::StorageFull => Self::storage_full(error.to_string()),
            UploadImageError::Idempotency(refusal) => refusal.into(),
            UploadImageError::Unavailable(cause) => cause.into(),
        }
    }
}

impl From<GetImageError> for ApiError {
    fn from(error: GetImageError) -> Self {
        match error {
            GetImageError::NotFound => Self::not_found("the market has no such image"),
            GetImageError::Unavailable(cause) => cause.into(),
        }
    }
}

/// Every `code` this service can answer with, for the OpenAPI document and tests.
pub const ERROR_CODES: &[&str] = &[
    "malformed_request",
    "validation_failed",
    "unauthorized",
    "invalid_token",
    "token_expired",
    "forbidden",
    "forbidden_origin",
    "account_disabled",
    "not_found",
    "method_not_allowed",
    "conflict",
    "market_not_open",
    "insufficient_balance",
    "job_not_dead",
    "idempotency_in_progress",
    "idempotency_key_reused",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "service_unavailable",
    "too_many_connections",
    "rate_limited",
    "storage_full",
    "internal_error",
];
