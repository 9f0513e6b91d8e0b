//! Browser-facing protections: security headers on every response and CORS from an allow-list.

use actix_cors::Cors;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};

/// Headers every response carries unless its route set them (added by the request-context
/// middleware, so that re-rendered errors get them too): no MIME sniffing, no referrer leaks,
/// never framed (clickjacking). The live page adds its own Content-Security-Policy.
pub const SECURITY_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Cross-origin requests from `origins` (`https://app.example.com`, scheme, host and port when
/// not the default), or from any origin with `*`. Empty: same-origin only (no CORS headers).
///
/// Credentials (cookies) are never allowed cross-origin: the API authenticates with bearer
/// tokens, which a cross-origin page sends explicitly, so a wildcard can never be combined with
/// ambient credentials.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(3600);
    if origins.iter().any(|origin| origin == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}
