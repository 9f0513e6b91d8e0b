//! `Idempotency-Key` on POST: the request's scope and fingerprint, responses rendered once as
//! bytes (kept for replay inside the business transaction), and replays.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use application::idempotency::IdempotentRequest;
use domain::Actor;
use domain::ports::{IdempotencyScope, StoredResponse};
use serde::Serialize;

use crate::extract::IdempotencyKey;

/// The header set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

/// The idempotency request of a POST: `None` without an `Idempotency-Key`. The fingerprint covers
/// the route and the canonical body, so the same key with another body is told apart.
#[must_use]
pub fn request(
    key: IdempotencyKey,
    caller: Option<&Actor>,
    route: &'static str,
    body_digest: &str,
) -> Option<IdempotentRequest> {
    key.0.map(|key| IdempotentRequest {
        scope: IdempotencyScope {
            caller: caller.map_or_else(|| "anonymous".to_owned(), |a| a.user_id.to_string()),
            route: route.to_owned(),
            key,
        },
        fingerprint: format!("{route}\n{body_digest}"),
    })
}

/// A JSON response rendered to bytes, so that the first answer and every replay are identical.
#[must_use]
pub fn render_json<T: Serialize>(
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: &T,
) -> StoredResponse {
    let mut headers = headers;
    headers.push(("content-type".to_owned(), "application/json".to_owned()));
    StoredResponse {
        status: status.as_u16(),
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// The HTTP response of a rendered (or replayed) response.
#[must_use]
pub fn respond(stored: StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.insert_header((name, value));
        }
    }
    if replayed {
        response.insert_header((REPLAYED, "true"));
    }
    response.body(stored.body)
}
