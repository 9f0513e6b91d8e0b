//! The `make_thumbnail` job: decode an uploaded market image (bounded), make a thumbnail, store it, and record both images on the market in one transaction.

use std::io::Cursor;

use async_trait::async_trait;
use domain::market::MarketChanges;
use domain::ports::{BlobError, BlobKey, RepositoryError};
use domain::{DomainEvent, ImageFormat, Job, JobKind, Market, MarketId};

use super::market_image::{
    MAKE_THUMBNAIL, MarketImage, ThumbnailPayload, image_url, market_blob_key, version_of,
};
use crate::UseCases;
use crate::jobs::{JobFailure, JobHandler};

/// A thumbnail fits in a square of this many pixels (aspect ratio kept, never enlarged).
pub const THUMBNAIL_SIZE: u32 = 320;

/// The widest and tallest image decoded; larger ones are refused before their pixels are read.
pub const MAX_DECODED_SIDE: u32 = 8_192;

/// The most memory one decoding may allocate.
pub const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Runs `make_thumbnail` jobs (see [`UseCases::make_thumbnail`]).
#[derive(Clone)]
pub struct ThumbnailHandler {
    use_cases: UseCases,
}

impl ThumbnailHandler {
    #[must_use]
    pub const fn new(use_cases: UseCases) -> Self {
        Self { use_cases }
    }
}

#[async_trait]
impl JobHandler for ThumbnailHandler {
    fn kind(&self) -> JobKind {
        JobKind::parse(MAKE_THUMBNAIL)
            .unwrap_or_else(|_| unreachable!("`make_thumbnail` is a valid kind"))
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let payload: ThumbnailPayload = serde_json::from_str(&job.payload).map_err(|error| {
            JobFailure::Permanent(format!("the job's payload is not valid: {error}"))
        })?;
        self.use_cases.make_thumbnail(&payload).await
    }
}

/// A passing failure of the blob store, said clearly.
fn blob_failure(doing: &str, error: &BlobError) -> JobFailure {
    match error {
        BlobError::Full => JobFailure::Retry(format!(
            "the image storage is full while {doing}; the market was not changed"
        )),
        BlobError::Unavailable(cause) => JobFailure::Retry(format!(
            "the image storage is unavailable while {doing} ({cause}); the market was not changed"
        )),
    }
}

fn retry(doing: &str, error: impl std::fmt::Display) -> JobFailure {
    JobFailure::Retry(format!(
        "{doing} failed: {error}; the market was not changed"
    ))
}

/// Decodes `bytes` as `format` within the decoding limits and returns the thumbnail, PNG-encoded.
///
/// # Errors
/// The decoder's or encoder's message.
pub fn make_thumbnail_png(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
    });
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|error| error.to_string())?;
    let fitted = if decoded.width() > THUMBNAIL_SIZE || decoded.height() > THUMBNAIL_SIZE {
        decoded.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    } else {
        decoded
    };
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(fitted.to_rgba8())
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|error| error.to_string())?;
    Ok(png)
}

impl UseCases {
    /// The `make_thumbnail` job: loads the original, decodes it (on the blocking pool, within
    /// [`MAX_DECODED_SIDE`] and [`MAX_DECODE_ALLOC`]), stores a PNG thumbnail that fits in
    /// [`THUMBNAIL_SIZE`] beside it, then, in one transaction, sets the market's `image_url` and
    /// `thumbnail_url`, bumps its version and records `MarketUpdated`. The previous images are
    /// deleted after the commit (best effort). Running it again after success changes nothing.
    ///
    /// A corrupt image, or a market deleted meanwhile, fails for good (the original is deleted);
    /// a full or unavailable blob store or database is retried. The market is changed only when
    /// everything succeeded; a thumbnail stored for a transaction that failed is deleted.
    ///
    /// # Errors
    /// [`JobFailure`] with a message that says what happened.
    pub async fn make_thumbnail(&self, payload: &ThumbnailPayload) -> Result<(), JobFailure> {
        let deps = self.deps();
        let market_id = payload.market_id;
        let original_key = BlobKey::parse(&payload.original_key).map_err(|error| {
            JobFailure::Permanent(format!("the job's original key is not valid: {error}"))
        })?;
        let format = ImageFormat::parse(&payload.format).ok_or_else(|| {
            JobFailure::Permanent(format!("unknown image format `{}`", payload.format))
        })?;
        let original_file = original_key
            .segments()
            .last()
            .unwrap_or_default()
            .to_owned();
        let upload = original_file
            .split_once('.')
            .map_or(original_file.as_str(), |(stem, _)| stem);
        let thumbnail_file = format!("{upload}-thumb.png");
        let thumbnail_key = market_blob_key(market_id, &thumbnail_file).ok_or_else(|| {
            JobFailure::Permanent("the thumbnail's key would not be valid".to_owned())
        })?;
        let new_image_url = image_url(market_id, MarketImage::Original, &original_file);
        let new_thumbnail_url = image_url(market_id, MarketImage::Thumbnail, &thumbnail_file);

        let Some(market) = deps
            .markets
            .find_by_id(market_id)
            .await
            .map_err(|error| retry("reading the market", error))?
        else {
            self.discard(&[&original_key]).await;
            return Err(JobFailure::Permanent(format!(
                "the market {market_id} no longer exists"
            )));
        };
        if market.image_url.as_deref() == Some(new_image_url.as_str())
            && market.thumbnail_url.as_deref() == Some(new_thumbnail_url.as_str())
        {
            return Ok(()); // done by an earlier run of this job
        }

        let original = deps
            .blobs
            .get(&original_key)
            .await
            .map_err(|error| blob_failure("reading the original", &error))?
            .ok_or_else(|| {
                JobFailure::Permanent(format!(
                    "the original image {original_key} is missing; upload it again"
                ))
            })?;
        let decoded =
            tokio::task::spawn_blocking(move || make_thumbnail_png(&original.bytes, format)).await;
        let thumbnail = match decoded {
            Ok(Ok(thumbnail)) => thumbnail,
            Ok(Err(message)) => {
                self.discard(&[&original_key]).await;
                return Err(JobFailure::Permanent(format!(
                    "the image could not be decoded: {message}"
                )));
            }
            Err(join) => {
                self.discard(&[&original_key]).await;
                return Err(JobFailure::Permanent(format!(
                    "the image could not be decoded: the decoder failed ({join})"
                )));
            }
        };
        deps.blobs
            .put(&thumbnail_key, &thumbnail, "image/png")
            .await
            .map_err(|error| blob_failure("storing the thumbnail", &error))?;

        match self
            .record_images(market_id, upload, new_image_url, new_thumbnail_url)
            .await
        {
            Ok(None) => {
                // A later upload's job got there first: this one is out of date.
                self.discard(&[&thumbnail_key, &original_key]).await;
                tracing::info!(%market_id, upload, "market image superseded by a later upload");
                Ok(())
            }
            Ok(Some((market, previous))) => {
                deps.cached_markets.market_changed(&market).await;
                let stale: Vec<BlobKey> = previous
                    .iter()
                    .flatten()
                    .filter_map(|url| version_of(url))
                    .filter(|file| *file != original_file && *file != thumbnail_file)
                    .filter_map(|file| market_blob_key(market_id, file))
                    .collect();
                self.discard(&stale.iter().collect::<Vec<_>>()).await;
                tracing::info!(%market_id, version = market.version, "market image recorded");
                Ok(())
            }
            Err(failure) => {
                self.discard(&[&thumbnail_key]).await;
                if matches!(failure, JobFailure::Permanent(_)) {
                    self.discard(&[&original_key]).await;
                }
                Err(failure)
            }
        }
    }

    /// Sets the image URLs of the locked market, bumps its version and records `MarketUpdated`,
    /// all in one transaction; returns the market and its previous URLs, or `None` (changing
    /// nothing) when the market already shows a later upload (upload ids are time-ordered UUIDs).
    async fn record_images(
        &self,
        market_id: MarketId,
        upload: &str,
        new_image_url: String,
        new_thumbnail_url: String,
    ) -> Result<Option<(Market, [Option<String>; 2])>, JobFailure> {
        let deps = self.deps();
        let transaction = deps
            .unit_of_work
            .begin()
            .await
            .map_err(|error| retry("starting a transaction", error))?;
        let mut market = transaction
            .lock_market(market_id)
            .await
            .map_err(|error| retry("locking the market", error))?
            .ok_or_else(|| {
                JobFailure::Permanent(format!("the market {market_id} no longer exists"))
            })?;
        let current_upload = market
            .image_url
            .as_deref()
            .and_then(version_of)
            .and_then(|file| file.split_once('.'))
            .map(|(stem, _)| stem);
        if current_upload.is_some_and(|current| current > upload) {
            return Ok(None);
        }
        let read_version = market.version;
        market
            .apply(MarketChanges::default(), deps.clock.now())
            .map_err(|error| JobFailure::Permanent(error.to_string()))?;
        let previous = [
            market.image_url.replace(new_image_url),
            market.thumbnail_url.replace(new_thumbnail_url),
        ];
        match transaction.markets().update(&market, read_version).await {
            Ok(()) => {}
            Err(RepositoryError::NotFound) => {
                return Err(JobFailure::Permanent(format!(
                    "the market {market_id} no longer exists"
                )));
            }
            Err(error) => return Err(retry("updating the market", error)),
        }
        transaction
            .outbox()
            .record(&self.event(DomainEvent::MarketUpdated {
                market_id,
                version: market.version,
            }))
            .await
            .map_err(|error| retry("recording the event", error))?;
        transaction
            .commit()
            .await
            .map_err(|error| retry("committing", error))?;
        Ok(Some((market, previous)))
    }

    /// Deletes blobs that are no longer wanted, logging what could not be deleted.
    async fn discard(&self, keys: &[&BlobKey]) {
        for key in keys {
            if let Err(error) = self.deps().blobs.delete(key).await {
                tracing::warn!(%key, %error, "could not delete an unused image");
            }
        }
    }
}
