//! The HTTP adapter (actix-web): routes, DTOs, extractors, middleware, the one error mapping and
//! the OpenAPI document.
//!
//! The composition root builds an [`AppState`] and calls [`configure`] inside its `App`, wrapped
//! by [`request_context`](request_context::request_context).

pub mod dto;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod rendering;
pub mod request_context;
pub mod routes;
pub mod security;
pub mod session_cookie;
pub mod stream;

use std::sync::Arc;

use actix_web::{HttpResponse, Route, web};
use application::UseCases;
use domain::ports::HealthProbe;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;

/// What handlers share.
pub struct AppState {
    pub use_cases: UseCases,
    /// Checked by `GET /health/ready`.
    pub probes: Vec<Arc<dyn HealthProbe>>,
    /// Live market events for `GET /api/v1/markets/stream`.
    pub stream: stream::MarketStream,
    /// Everything `GET /metrics` reports; the request middleware records into it.
    pub metrics: Arc<metrics::Metrics>,
    /// Set when the process starts shutting down: readiness answers 503 from then on.
    pub draining: Arc<routes::health::Draining>,
    /// Limits on `/api/v1` ([`rate_limit`]); `None` turns rate limiting off.
    pub rate_limits: Option<rate_limit::RateLimits>,
    /// How cookie-mode sessions are written.
    pub session_cookie: session_cookie::SessionCookie,
}

/// Limits the adapter enforces itself.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest JSON body accepted, in bytes.
    pub json_body_bytes: usize,
}

/// Registers state, extractor configuration, every route, the OpenAPI document and the docs page.
pub fn configure(config: &mut web::ServiceConfig, state: web::Data<AppState>, limits: HttpLimits) {
    config
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(limits.json_body_bytes)
                .error_handler(extract::json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(extract::query_error))
        .app_data(web::PathConfig::default().error_handler(extract::path_error))
        .service(resource(
            "/health/live",
            "GET",
            [web::get().to(routes::health::live)],
        ))
        .service(resource(
            "/health/ready",
            "GET",
            [web::get().to(routes::health::ready)],
        ))
        .service(resource(
            "/metrics",
            "GET",
            [web::get().to(metrics::scrape)],
        ))
        .service(resource(
            "/live",
            "GET",
            [web::get().to(stream::live::page)],
        ))
        .service(resource(
            "/live/live.js",
            "GET",
            [web::get().to(stream::live::script)],
        ))
        .service(resource(
            "/live/live.css",
            "GET",
            [web::get().to(stream::live::style)],
        ))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(rate_limit::rate_limit))
                .service(resource(
                    "/auth/register",
                    "POST",
                    [web::post().to(routes::auth::register)],
                ))
                .service(resource(
                    "/auth/login",
                    "POST",
                    [web::post().to(routes::auth::login)],
                ))
                .service(resource(
                    "/auth/refresh",
                    "POST",
                    [web::post().to(routes::auth::refresh)],
                ))
                .service(resource(
                    "/auth/logout",
                    "POST",
                    [web::post().to(routes::auth::logout)],
                ))
                .service(resource(
                    "/auth/sessions",
                    "GET",
                    [web::get().to(routes::auth::list_sessions)],
                ))
                .service(resource(
                    "/auth/sessions/{id}",
                    "DELETE",
                    [web::delete().to(routes::auth::revoke_session)],
                ))
                .service(resource(
                    "/users",
                    "GET",
                    [web::get().to(routes::users::list_users)],
                ))
                .service(resource(
                    "/users/me",
                    "GET, PATCH",
                    [
                        web::get().to(routes::users::me),
                        web::patch().to(routes::users::update_me),
                    ],
                ))
                .service(resource(
                    "/users/{id}",
                    "GET, PATCH, DELETE",
                    [
                        web::get().to(routes::users::get_user),
                        web::patch().to(routes::users::update_user),
                        web::delete().to(routes::users::delete_user),
                    ],
                ))
                .service(resource(
                    "/users/{id}/positions",
                    "GET",
                    [web::get().to(routes::positions::list_user_positions)],
                ))
                .service(resource(
                    "/jobs",
                    "GET",
                    [web::get().to(routes::jobs::list_jobs)],
                ))
                .service(resource(
                    "/jobs/{id}",
                    "GET",
                    [web::get().to(routes::jobs::get_job)],
                ))
                .service(resource(
                    "/jobs/{id}/retry",
                    "POST",
                    [web::post().to(routes::jobs::retry_job)],
                ))
                .service(resource(
                    "/markets",
                    "GET, POST",
                    [
                        web::get().to(routes::markets::list_markets),
                        web::post().to(routes::markets::create_market),
                    ],
                ))
                // Before `/markets/{id}`, which would take `stream` for an id.
                .service(resource(
                    "/markets/search",
                    "GET",
                    [web::get().to(routes::search::search_markets)],
                ))
                .service(resource(
                    "/markets/stream",
                    "GET",
                    [web::get().to(stream::route::market_stream)],
                ))
                .service(resource(
                    "/markets/{id}/positions",
                    "GET, POST",
                    [
                        web::get().to(routes::positions::list_market_positions),
                        web::post().to(routes::positions::open_position),
                    ],
                ))
                .service(resource(
                    "/markets/{id}/image",
                    "GET, POST",
                    [
                        web::get().to(routes::images::get_image),
                        web::post().to(routes::images::upload_image),
                    ],
                ))
                .service(resource(
                    "/markets/{id}/thumbnail",
                    "GET",
                    [web::get().to(routes::images::get_thumbnail)],
                ))
                .service(resource(
                    "/markets/{id}",
                    "GET, PUT, PATCH, DELETE",
                    [
                        web::get().to(routes::markets::get_market),
                        web::put().to(routes::markets::replace_market),
                        web::patch().to(routes::markets::update_market),
                        web::delete().to(routes::markets::delete_market),
                    ],
                )),
        )
        .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", openapi::document()))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::not_found("no such route"))
        }));
}

/// A resource whose other methods get `405` with an `Allow` header naming `allow`.
fn resource<const N: usize>(
    path: &str,
    allow: &'static str,
    routes: [Route; N],
) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), actix_web::Resource::route)
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(ApiError::method_not_allowed(allow))
        }))
}
