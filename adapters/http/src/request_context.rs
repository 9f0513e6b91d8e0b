//! Request context middleware: the request id (accepted from `X-Request-Id` if sane, generated
//! otherwise), the request's tracing span, one log line per request, error bodies that carry the
//! request id, and the security headers (with a default Content-Security-Policy) on every response.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

use crate::error::ApiError;
use crate::security::{DEFAULT_CONTENT_SECURITY_POLICY, SECURITY_HEADERS, default_csp_applies};

/// The `X-Request-Id` header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, available from request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Longest id accepted from a client.
    pub const MAX_LEN: usize = 128;

    /// Accepts a client's id if it is 1..=128 characters of `[A-Za-z0-9._:-]`.
    #[must_use]
    pub fn from_client(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let sane = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        sane.then(|| Self(text.to_owned()))
    }

    /// A new random id: a UUID v4 from the thread's random generator (no system call per
    /// request, unlike `Uuid::new_v4`).
    #[must_use]
    pub fn generate() -> Self {
        Self(
            uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string(),
        )
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a header describes the encoding or length of a body (so it must not outlive that body).
fn describes_the_body(name: &HeaderName) -> bool {
    [
        header::CONTENT_ENCODING,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ]
    .contains(name)
}

/// The middleware function; register with `actix_web::middleware::from_fn(request_context)`.
///
/// # Errors
/// Passes on errors of the inner service that are not responses.
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.as_str(),
        method = %request.method(),
        path = %request.path(),
        user_id = tracing::field::Empty,
    );
    let metrics = request
        .app_data::<actix_web::web::Data<crate::AppState>>()
        .map(|state| std::sync::Arc::clone(&state.metrics));
    let started = Instant::now();
    let response = next.call(request).instrument(span.clone()).await?;
    let _entered = span.enter();

    let mut response = match response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    {
        Some(error) => {
            if let Some(chain) = error.cause_chain() {
                tracing::error!(code = error.code(), error = %chain, "request failed");
            }
            let mut rendered = error.render(request_id.as_str());
            // Headers that inner layers added (such as `RateLimit-*`) survive the re-rendering;
            // those that described the replaced body (`Content-Encoding` from compression) do not.
            let added: Vec<_> = response
                .headers()
                .iter()
                .filter(|(name, _)| {
                    !rendered.headers().contains_key(*name) && !describes_the_body(name)
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            for (name, value) in added {
                rendered.headers_mut().append(name, value);
            }
            response.into_response(rendered.map_into_boxed_body())
        }
        None => response.map_into_boxed_body(),
    };
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    // Responses are private or change with every write unless their route says otherwise (single
    // markets revalidate with their ETag): nothing in between may keep them.
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    for (name, value) in SECURITY_HEADERS {
        if !response.headers().contains_key(&name) {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
    }
    if !response
        .headers()
        .contains_key(header::CONTENT_SECURITY_POLICY)
        && default_csp_applies(response.request().path())
    {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY),
        );
    }
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        let route = response.request().match_pattern();
        metrics.observe_request(
            response.request().method().as_str(),
            route.as_deref().unwrap_or("unmatched"),
            response.status().as_u16(),
            elapsed,
        );
    }
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request completed"
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_version_4_uuids() {
        let first = RequestId::generate();
        let second = RequestId::generate();
        assert_ne!(first, second);
        let parsed = uuid::Uuid::parse_str(first.as_str()).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn sane_client_ids_are_kept_and_others_replaced() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(
            RequestId::from_client(&keep).map(|id| id.0),
            Some("abc-123_x.y:z".to_owned())
        );
        for bad in ["", "has space", "semi;colon", "<script>"] {
            let value = HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static("x y"));
            assert_eq!(RequestId::from_client(&value), None, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap_or(HeaderValue::from_static(" "));
        assert_eq!(RequestId::from_client(&long), None);
    }
}
