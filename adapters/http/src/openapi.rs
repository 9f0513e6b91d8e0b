//! The OpenAPI 3.1 document: every route, every status it returns, and the error schema.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::session_cookie::SessionCookie;
use crate::{dto, envelope, error, metrics, routes, stream};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prediction markets API",
        description = "A hexagonal Rust service template: every response is an envelope `{success, data, meta}` or `{success: false, error, code, details, request_id}`.",
    ),
    paths(
        routes::health::live,
        routes::health::ready,
        metrics::scrape,
        routes::auth::register,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::list_sessions,
        routes::auth::revoke_session,
        routes::users::list_users,
        routes::users::me,
        routes::users::update_me,
        routes::users::get_user,
        routes::users::update_user,
        routes::users::delete_user,
        routes::markets::list_markets,
        routes::search::search_markets,
        routes::markets::create_market,
        routes::markets::get_market,
        routes::markets::replace_market,
        routes::markets::update_market,
        routes::markets::delete_market,
        routes::images::upload_image,
        routes::images::get_image,
        routes::images::get_thumbnail,
        stream::route::market_stream,
        routes::positions::open_position,
        routes::positions::list_market_positions,
        routes::positions::list_user_positions,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::retry_job,
    ),
    components(schemas(error::ErrorBody, error::FieldError, envelope::PageMeta, dto::markets::MarketResponse, dto::users::UserResponse, dto::users::SessionResponse, dto::positions::PositionResponse, dto::jobs::JobResponse, routes::search::SearchHit)),
    modifiers(&Authentication, &InternalErrors, &RateLimited, &RequestHeaders),
    tags(
        (name = "auth", description = "Registration, sign-in (bearer tokens or a session cookie), refresh, logout and sessions"),
        (name = "users", description = "Users"),
        (name = "markets", description = "Prediction markets"),
        (name = "positions", description = "Stakes on markets"),
        (name = "jobs", description = "Background jobs: progress for their owners, the dead-letter queue for admins"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// The two ways to sign a request in: a bearer access token, or the session cookie of a
/// cookie-mode sign-in (with `X-CSRF-Token` on unsafe methods). Every operation that takes the
/// bearer token takes the cookie too, as the one `AuthUser` extractor does.
struct Authentication;

impl Modify for Authentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SessionCookie::HOST_NAME,
                "The session cookie of `POST /api/v1/auth/login` with `\"mode\": \"cookie\"` \
                 (`session` without TLS). Unsafe methods also need `X-CSRF-Token`.",
            ))),
        );
        for operation in operations(openapi, "") {
            if let Some(security) = operation.security.as_mut().filter(|s| !s.is_empty()) {
                security.push(SecurityRequirement::new("cookie", Vec::<String>::new()));
            }
        }
    }
}

/// Every operation of the document whose path starts with `prefix` (`""` for all).
fn operations<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    prefix: &'a str,
) -> impl Iterator<Item = &'a mut utoipa::openapi::path::Operation> {
    openapi
        .paths
        .paths
        .iter_mut()
        .filter(move |(path, _)| path.starts_with(prefix))
        .flat_map(|(_, item)| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
        })
}

/// A response in the error envelope (`ErrorBody`).
fn error_response(description: &str) -> utoipa::openapi::ResponseBuilder {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
}

/// Documents `response` under `status` on every operation under `prefix` that does not say
/// otherwise.
fn add_to_every_operation(
    openapi: &mut utoipa::openapi::OpenApi,
    prefix: &str,
    status: &str,
    response: &utoipa::openapi::Response,
) {
    for operation in operations(openapi, prefix) {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| response.clone().into());
    }
}

/// Every operation can fail unexpectedly: `500 internal_error`, documented once for all.
struct InternalErrors;

impl Modify for InternalErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let response = error_response(
            "`internal_error`: something unexpected; the body carries only the request id",
        )
        .build();
        add_to_every_operation(openapi, "", "500", &response);
    }
}

/// Every operation under `/api/v1` is rate limited: `429 rate_limited`, documented once for all,
/// with its `Retry-After` and `RateLimit-*` headers.
struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let seconds = |description: &str| {
            utoipa::openapi::HeaderBuilder::new()
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::Integer)
                        .minimum(Some(0)),
                ))
                .description(Some(description))
                .build()
        };
        let response = error_response(
            "`rate_limited`: this client (its IP address, or its user with a valid token) used \
             up its quota; stricter quotas apply to sign-in, registration and uploads",
        )
        .header(
            "Retry-After",
            seconds("Seconds until one more request is allowed"),
        )
        .header("RateLimit-Limit", seconds("Requests allowed per period"))
        .header("RateLimit-Remaining", seconds("Requests still allowed now"))
        .header(
            "RateLimit-Reset",
            seconds("Seconds until the whole limit is available again"),
        )
        .build();
        add_to_every_operation(openapi, "/api/v1/", "429", &response);
    }
}

/// The request headers that several operations take, described once with the syntax their
/// extractors (`extract.rs`) accept: when sent, they are strings of that form, never `null`.
struct RequestHeaders;

impl Modify for RequestHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
        let string = |pattern: &str, max_length: usize| -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(max_length))
                .pattern(Some(pattern))
                .into()
        };
        // `IdempotencyKey`: 1 to 255 visible ASCII characters (inner spaces allowed).
        let idempotency_key = string(r"^[!-~]([ -~]{0,253}[!-~])?$", 255);
        // `IfMatch`: `*` or one entity tag as `ETag` sends it (anything else matches no version).
        let if_match = string(r#"^(\*|(W/)?"[0-9]{1,18}")$"#, 64);
        for operation in operations(openapi, "") {
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                let schema = match parameter.name.to_ascii_lowercase().as_str() {
                    "idempotency-key" => &idempotency_key,
                    "if-match" => &if_match,
                    _ => continue,
                };
                parameter.schema = Some(schema.clone());
            }
        }
    }
}

/// The document served at `/api/openapi.json` and printed by `server openapi`.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}
