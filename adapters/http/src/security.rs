//! Browser-facing protections: security headers on every response and CORS from an allow-list.

use actix_cors::Cors;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::DefaultHeaders;

/// Headers every response carries unless its route set them (added by the request-context
/// middleware, so that re-rendered errors get them too): no MIME sniffing, no referrer leaks,
/// never framed (clickjacking). The live page adds its own Content-Security-Policy; the others get
/// [`DEFAULT_CONTENT_SECURITY_POLICY`] (see [`default_csp_applies`]).
pub const SECURITY_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The Content-Security-Policy of responses whose route set none (JSON, images, errors): nothing
/// may load or run, should a browser ever render one as a document, and nothing may frame it.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Where the API docs page (Swagger UI) is served: it runs inline scripts and styles, so it gets
/// no default Content-Security-Policy.
pub const DOCS_PATH: &str = "/api/docs";

/// Whether a response to `path` gets [`DEFAULT_CONTENT_SECURITY_POLICY`] when its route set no
/// policy: every path but the docs page's.
#[must_use]
pub fn default_csp_applies(path: &str) -> bool {
    let docs = path
        .strip_prefix(DOCS_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    !docs
}

/// `Strict-Transport-Security` when the binary terminates TLS: browsers use HTTPS only for this
/// host and its subdomains for a year.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Middleware adding [`STRICT_TRANSPORT_SECURITY`] to every response; wrap the app in it (as the
/// outermost layer) only when it is served over TLS: over plain HTTP the header means nothing and
/// would be wrong behind a proxy that terminates TLS and sets its own.
#[must_use]
pub fn hsts() -> DefaultHeaders {
    DefaultHeaders::new().add((header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY))
}

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
            crate::rate_limit::RATELIMIT_LIMIT.clone(),
            crate::rate_limit::RATELIMIT_REMAINING.clone(),
            crate::rate_limit::RATELIMIT_RESET.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_skips_only_the_docs_page() {
        for path in [
            "/api/docs",
            "/api/docs/",
            "/api/docs/index.html",
            "/api/docs/swagger-ui.css",
        ] {
            assert!(!default_csp_applies(path), "{path}");
        }
        for path in [
            "/api/v1/markets",
            "/api/openapi.json",
            "/live",
            "/api/docsx",
            "/health/live",
        ] {
            assert!(default_csp_applies(path), "{path}");
        }
    }
}
