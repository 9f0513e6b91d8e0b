//! `/api/v1/markets/{id}/image` and `/thumbnail`: multipart uploads handed to a thumbnail job (202), and the stored images served back.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use application::idempotency::{Idempotent, Replayable};
use application::markets::{MarketImage, ServedImage};
use domain::ports::StoredResponse;
use domain::{ImageFormat, JobId, JobState, MarketId};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuthUser, IdempotencyKey};
use crate::idempotency;

/// The one file field of an upload.
pub const IMAGE_FIELD: &str = "image";

/// Room for the multipart framing (boundaries, part headers) around the image itself.
const MULTIPART_OVERHEAD: usize = 16 * 1024;

/// How long a versioned image URL (`?v=` the current version) may be cached: a new upload gets a
/// new URL.
const VERSIONED_MAX_AGE: u32 = 365 * 24 * 60 * 60;

/// How long an image fetched without its current version may be cached.
const UNVERSIONED_MAX_AGE: u32 = 60;

/// The upload form (for the OpenAPI document): the one field `image`, nothing else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)] // the document says `additionalProperties: false`, as `read_image` does
#[allow(dead_code)] // documentation only: the body is read as a stream
pub struct ImageUpload {
    /// A PNG, JPEG or WebP image, recognised by its content; at most `uploads.max_image_bytes`.
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
}

/// The answer to an accepted upload: the job that makes the thumbnail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageJobResponse {
    pub job_id: Uuid,
    /// The job's state when accepted (`available`); follow it at `Location`.
    #[schema(example = "available")]
    pub state: String,
}

/// `?v=`: the version of the image the URL names (set in `image_url` and `thumbnail_url`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageParams {
    /// The image's version, as in the market's `image_url` / `thumbnail_url`; with the current
    /// version the response may be cached for a year.
    pub v: Option<String>,
}

/// Whether a media type declared for the file agrees with the content: no type, a generic one,
/// or the same format. A declared image type that is another format, or any other declared
/// type, is a mislabelled upload.
fn declared_type_agrees(declared: Option<&str>, content: Option<ImageFormat>) -> bool {
    match declared {
        None | Some("application/octet-stream") => true,
        Some(declared) => {
            ImageFormat::from_content_type(declared).is_some_and(|format| Some(format) == content)
        }
    }
}

/// Reads the `image` field of a multipart body, stopping as soon as it exceeds `limit` bytes.
async fn read_image(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(ApiError::payload_too_large(limit));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_form {
        return Err(ApiError::unsupported_media_type_because(
            "the body must be multipart/form-data with one file field `image`",
        ));
    }
    let mut form = Multipart::new(request.headers(), payload);
    let mut image: Option<(Vec<u8>, Option<String>)> = None;
    while let Some(field) = form.next().await {
        let mut field =
            field.map_err(|error| ApiError::malformed(format!("bad multipart body: {error}")))?;
        if field.name() != Some(IMAGE_FIELD) || image.is_some() {
            return Err(ApiError::invalid_field(
                IMAGE_FIELD,
                "the form must have exactly one field, the file `image`",
            ));
        }
        let declared = field
            .content_type()
            .map(|mime| mime.essence_str().to_ascii_lowercase());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|error| ApiError::malformed(format!("bad multipart body: {error}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::payload_too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        image = Some((bytes, declared));
    }
    let (bytes, declared) =
        image.ok_or_else(|| ApiError::invalid_field(IMAGE_FIELD, "the file `image` is missing"))?;
    if !declared_type_agrees(declared.as_deref(), ImageFormat::sniff(&bytes)) {
        return Err(ApiError::unsupported_media_type_because(
            "the file's declared type does not match its content; send a PNG, JPEG or WebP image",
        ));
    }
    Ok(bytes)
}

/// Upload a market's image (owner while it has no positions, moderator, admin): checked by its
/// content (PNG, JPEG or WebP) and size, stored, and handed to a job that makes the thumbnail and
/// then sets `image_url` and `thumbnail_url` on the market.
#[utoipa::path(
    post, path = "/api/v1/markets/{id}/image", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and image replay the first response")),
    request_body(content = ImageUpload, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: a job makes the thumbnail; `Location` names the job", body = Envelope<ImageJobResponse>,
            headers(("Location" = String))),
        (status = 400, description = "`malformed_request` (bad multipart body or path id) or `validation_failed` (no `image` field, or other fields)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`, `token_not_yet_valid`, `session_revoked`, `session_expired` or `account_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the owner while it has no positions, or a moderator or admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`idempotency_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the image is over `uploads.max_image_bytes`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not multipart, not a PNG, JPEG or WebP image by its content, or declared as another type", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
        (status = 507, description = "`storage_full`: no space left for images; try again later", body = ErrorBody),
    )
)]
pub async fn upload_image(
    state: web::Data<AppState>,
    request: HttpRequest,
    AuthUser(actor): AuthUser,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.use_cases.settings().max_image_bytes;
    let bytes = read_image(&request, payload, limit).await?;
    let market_id = MarketId::from_uuid(id.into_inner());
    let digest = format!("{market_id}\n{:x}", Sha256::digest(&bytes));
    let request = idempotency::request(
        key,
        Some(&actor),
        "POST /api/v1/markets/{id}/image",
        &digest,
    );
    let idempotent = request.as_ref().map(|request| Idempotent {
        request,
        render: &accepted,
    });
    let outcome = state
        .use_cases
        .upload_market_image_idempotently(&actor, market_id, &bytes, idempotent.as_ref())
        .await?;
    Ok(match outcome {
        Replayable::Done(job) => idempotency::respond(accepted(&job), false),
        Replayable::Replay(stored) => idempotency::respond(stored, true),
    })
}

/// The 202 of an accepted upload, rendered once (for the client and for idempotent replays).
fn accepted(job: &JobId) -> StoredResponse {
    idempotency::render_json(
        StatusCode::ACCEPTED,
        vec![(header::LOCATION.to_string(), format!("/api/v1/jobs/{job}"))],
        &Envelope::of(ImageJobResponse {
            job_id: job.as_uuid(),
            state: JobState::Available.as_str().to_owned(),
        }),
    )
}

fn image_response(served: ServedImage, params: &ImageParams) -> HttpResponse {
    let max_age = if params.v.as_deref() == Some(served.version.as_str()) {
        VERSIONED_MAX_AGE
    } else {
        UNVERSIONED_MAX_AGE
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, served.blob.content_type))
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(max_age),
        ]))
        .body(served.blob.bytes)
}

/// A market's uploaded image, as it was uploaded.
#[utoipa::path(
    get, path = "/api/v1/markets/{id}/image", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"), ImageParams),
    responses(
        (status = 200, description = "The image (`image/png`, `image/jpeg` or `image/webp`); cacheable, for a year with the current `v`",
            content(("image/png"), ("image/jpeg"), ("image/webp")), headers(("Cache-Control" = String))),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 404, description = "`not_found`: no such market, or it has no image yet", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn get_image(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<ImageParams>,
) -> Result<HttpResponse, ApiError> {
    let served = state
        .use_cases
        .market_image(MarketId::from_uuid(id.into_inner()), MarketImage::Original)
        .await?;
    Ok(image_response(served, &params))
}

/// A market's thumbnail (PNG, fits in 320 x 320), once the upload's job made it.
#[utoipa::path(
    get, path = "/api/v1/markets/{id}/thumbnail", tag = "markets",
    params(("id" = Uuid, Path, description = "Market id"), ImageParams),
    responses(
        (status = 200, description = "The thumbnail (`image/png`); cacheable, for a year with the current `v`",
            content(("image/png")), headers(("Cache-Control" = String))),
        (status = 400, description = "`malformed_request`: the id is not a UUID", body = ErrorBody),
        (status = 404, description = "`not_found`: no such market, or it has no thumbnail yet", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn get_thumbnail(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    params: web::Query<ImageParams>,
) -> Result<HttpResponse, ApiError> {
    let served = state
        .use_cases
        .market_image(MarketId::from_uuid(id.into_inner()), MarketImage::Thumbnail)
        .await?;
    Ok(image_response(served, &params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_type_must_agree_with_the_content() {
        let png = Some(ImageFormat::Png);
        assert!(declared_type_agrees(None, png));
        assert!(declared_type_agrees(Some("application/octet-stream"), png));
        assert!(declared_type_agrees(Some("image/png"), png));
        assert!(!declared_type_agrees(Some("image/jpeg"), png));
        assert!(!declared_type_agrees(Some("image/png"), None));
        assert!(!declared_type_agrees(Some("text/plain"), png));
    }
}
