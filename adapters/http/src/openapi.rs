//! The OpenAPI 3.1 document: every route, every status it returns, and the error schema.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        routes::users::me,
        routes::users::get_user,
        routes::markets::list_markets,
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
    components(schemas(error::ErrorBody, error::FieldError, envelope::PageMeta, dto::markets::MarketResponse, dto::users::UserResponse, dto::positions::PositionResponse, dto::jobs::JobResponse)),
    modifiers(&BearerAuth, &InternalErrors, &RateLimited, &RequestHeaders),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "users", description = "Users"),
        (name = "markets", description = "Prediction markets"),
        (name = "positions", description = "Stakes on markets"),
        (name = "jobs", description = "Background jobs: progress for their owners, the dead-letter queue for admins"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// Every operation can fail unexpectedly: `500 internal_error`, documented once for all.
struct InternalErrors;

impl Modify for InternalErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(
                "`internal_error`: something unexpected; the body carries only the request id",
            )
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("500".to_owned())
                    .or_insert_with(|| response.clone().into());
            }
        }
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
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(
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
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| response.clone().into());
            }
        }
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
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
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
}

/// The document served at `/api/openapi.json` and printed by `server openapi`.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}
