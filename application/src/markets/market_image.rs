//! Market images: an upload is checked by its content, stored as it is, and handed to a `make_thumbnail` job; the stored images are served back.

use domain::access::AccessDenied;
use domain::ports::{Blob, BlobError, BlobKey};
use domain::{Actor, ImageFormat, JobId, JobKind, MarketAction, MarketId, NewJob};
use serde::{Deserialize, Serialize};

use crate::idempotency::{IdempotencyError, Idempotent, Replayable};
use crate::{Unavailable, UseCases};

/// The kind of the job that makes a market image's thumbnail.
pub const MAKE_THUMBNAIL: &str = "make_thumbnail";

/// What a `make_thumbnail` job is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailPayload {
    pub market_id: MarketId,
    /// The uploaded original, `markets/{market_id}/{upload}.{extension}`.
    pub original_key: String,
    /// Its format, as sniffed at upload (`png`, `jpeg`, `webp`).
    pub format: String,
}

/// Why an image could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum UploadImageError {
    #[error("no such market")]
    NotFound,
    #[error(transparent)]
    Forbidden(#[from] AccessDenied),
    /// Larger than [`crate::Settings::max_image_bytes`].
    #[error("the image is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The content is not a PNG, JPEG or WebP image, whatever it was called.
    #[error("the content is not a PNG, JPEG or WebP image")]
    UnsupportedImage,
    /// The blob store has no space left; nothing was kept.
    #[error("the image storage is full; try again later")]
    StorageFull,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Which stored image of a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketImage {
    /// The uploaded original.
    Original,
    /// The thumbnail the job made.
    Thumbnail,
}

/// A market image to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedImage {
    pub blob: Blob,
    /// The version of the image (its blob's file name): it changes with every upload.
    pub version: String,
}

/// Why a market image could not be served.
#[derive(Debug, thiserror::Error)]
pub enum GetImageError {
    /// No such market, or it has no such image (yet).
    #[error("the market has no image")]
    NotFound,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// The key of a market's blob named `file`.
pub(crate) fn market_blob_key(market_id: MarketId, file: &str) -> Option<BlobKey> {
    BlobKey::parse(&format!("markets/{market_id}/{file}")).ok()
}

/// The path a market's image is served at; `version` is the blob's file name, so the URL changes
/// with every upload and clients may cache it for long.
pub(crate) fn image_url(market_id: MarketId, which: MarketImage, version: &str) -> String {
    let route = match which {
        MarketImage::Original => "image",
        MarketImage::Thumbnail => "thumbnail",
    };
    format!("/api/v1/markets/{market_id}/{route}?v={version}")
}

/// The blob file name (the `v` of the URL) of an image URL set by [`image_url`].
pub(crate) fn version_of(url: &str) -> Option<&str> {
    url.rsplit_once("?v=").map(|(_, version)| version)
}

impl UseCases {
    /// Accepts a market image: the actor must be allowed to update the market, the bytes must fit
    /// [`crate::Settings::max_image_bytes`] and be a PNG, JPEG or WebP image by their content.
    /// The original is stored under `markets/{market_id}/{upload}.{extension}`, then a
    /// `make_thumbnail` job owned by the actor is enqueued (and committed); its id is returned.
    /// When the job cannot be enqueued, the stored original is deleted again (best effort).
    ///
    /// # Errors
    /// See [`UploadImageError`].
    pub async fn upload_market_image(
        &self,
        actor: &Actor,
        market_id: MarketId,
        bytes: &[u8],
    ) -> Result<JobId, UploadImageError> {
        match self
            .upload_market_image_idempotently(actor, market_id, bytes, None)
            .await?
        {
            Replayable::Done(job) => Ok(job),
            Replayable::Replay(_) => unreachable!("no idempotency key, no replay"),
        }
    }

    /// [`Self::upload_market_image`] under an `Idempotency-Key`: the first request's response is
    /// stored with the job, in its transaction, and replayed for the same key and request.
    ///
    /// # Errors
    /// See [`UploadImageError`].
    pub async fn upload_market_image_idempotently(
        &self,
        actor: &Actor,
        market_id: MarketId,
        bytes: &[u8],
        idempotency: Option<&Idempotent<'_, JobId>>,
    ) -> Result<Replayable<JobId>, UploadImageError> {
        self.idempotently(
            idempotency,
            self.upload_market_image_once(actor, market_id, bytes, idempotency),
        )
        .await
    }

    async fn upload_market_image_once(
        &self,
        actor: &Actor,
        market_id: MarketId,
        bytes: &[u8],
        idempotency: Option<&Idempotent<'_, JobId>>,
    ) -> Result<JobId, UploadImageError> {
        let deps = self.deps();
        let market = deps
            .markets
            .find_by_id(market_id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(UploadImageError::NotFound)?;
        actor.may(MarketAction::Update, &market)?;
        let limit = self.settings().max_image_bytes;
        if bytes.len() > limit {
            return Err(UploadImageError::TooLarge { limit });
        }
        let format = ImageFormat::sniff(bytes).ok_or(UploadImageError::UnsupportedImage)?;
        let upload = deps.ids.next_id();
        let file = format!("{upload}.{}", format.extension());
        let key = market_blob_key(market_id, &file)
            .ok_or_else(|| Unavailable::from_error(BlobError::unavailable("a bad blob key")))?;
        deps.blobs
            .put(&key, bytes, format.content_type())
            .await
            .map_err(|error| match error {
                BlobError::Full => UploadImageError::StorageFull,
                other @ BlobError::Unavailable(_) => Unavailable::from_error(other).into(),
            })?;
        match self
            .enqueue_thumbnail(actor, market_id, &key, format, idempotency)
            .await
        {
            Ok(job) => {
                tracing::info!(%market_id, %job, key = %key, "market image accepted");
                Ok(job)
            }
            Err(error) => {
                if let Err(cleanup) = deps.blobs.delete(&key).await {
                    tracing::warn!(%key, error = %cleanup, "could not delete an orphaned upload");
                }
                Err(error.into())
            }
        }
    }

    async fn enqueue_thumbnail(
        &self,
        actor: &Actor,
        market_id: MarketId,
        key: &BlobKey,
        format: ImageFormat,
        idempotency: Option<&Idempotent<'_, JobId>>,
    ) -> Result<JobId, Unavailable> {
        let deps = self.deps();
        let payload = serde_json::to_string(&ThumbnailPayload {
            market_id,
            original_key: key.to_string(),
            format: format.as_str().to_owned(),
        })
        .map_err(Unavailable::from_error)?;
        let kind = JobKind::parse(MAKE_THUMBNAIL).map_err(Unavailable::from_error)?;
        let job = NewJob::new(
            JobId::from_uuid(deps.ids.next_id()),
            kind,
            payload,
            deps.clock.now(),
        )
        .map_err(Unavailable::from_error)?
        .with_owner(actor.user_id);
        let transaction = deps.unit_of_work.begin().await?;
        let job_id = transaction.jobs().enqueue(&job).await?.id();
        crate::idempotency::complete(idempotency, transaction.as_ref(), &job_id).await?;
        transaction.commit().await?;
        Ok(job_id)
    }

    /// The stored image (or thumbnail) of a market.
    ///
    /// # Errors
    /// See [`GetImageError`].
    pub async fn market_image(
        &self,
        market_id: MarketId,
        which: MarketImage,
    ) -> Result<ServedImage, GetImageError> {
        let deps = self.deps();
        let market = deps
            .markets
            .find_by_id(market_id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(GetImageError::NotFound)?;
        let url = match which {
            MarketImage::Original => market.image_url,
            MarketImage::Thumbnail => market.thumbnail_url,
        };
        let version = url
            .as_deref()
            .and_then(version_of)
            .ok_or(GetImageError::NotFound)?
            .to_owned();
        let key = market_blob_key(market_id, &version).ok_or(GetImageError::NotFound)?;
        let blob = deps
            .blobs
            .get(&key)
            .await
            .map_err(Unavailable::from_error)?
            .ok_or(GetImageError::NotFound)?;
        Ok(ServedImage { blob, version })
    }
}
