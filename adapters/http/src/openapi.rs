//! The OpenAPI 3.1 document: every route, every status it returns, and the error schema.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{dto, envelope, error, routes, stream};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prediction markets API",
        description = "A hexagonal Rust service template: every response is an envelope `{success, data, meta}` or `{success: false, error, code, details, request_id}`.",
    ),
    paths(
        routes::health::live,
        routes::health::ready,
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
        stream::route::market_stream,
        routes::positions::open_position,
        routes::positions::list_market_positions,
        routes::positions::list_user_positions,
    ),
    components(schemas(error::ErrorBody, error::FieldError, envelope::PageMeta, dto::markets::MarketResponse, dto::users::UserResponse, dto::positions::PositionResponse)),
    modifiers(&BearerAuth, &InternalErrors),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "users", description = "Users"),
        (name = "markets", description = "Prediction markets"),
        (name = "positions", description = "Stakes on markets"),
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

/// The document served at `/api/openapi.json` and printed by `server openapi`.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}
