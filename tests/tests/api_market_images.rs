//! `POST /api/v1/markets/{id}/image` followed through to its job: valid PNG, JPEG and WebP images get thumbnails and are served back; oversized, mislabelled and corrupt uploads end as they should, leaving nothing behind.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Backend, Reply, TestApp, TestDatabase};
use uuid::Uuid;

/// The upload limit of these instances.
const LIMIT: usize = 256 * 1024;

/// An application with its own uploads folder and a small upload limit.
struct ImageApp {
    app: TestApp,
    uploads: PathBuf,
}

impl Drop for ImageApp {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.uploads).ok();
    }
}

async fn spawn(backend: Backend) -> Option<ImageApp> {
    let database = TestDatabase::of(backend).await?;
    let uploads = std::env::temp_dir().join(format!("markets-images-{}", Uuid::new_v4()));
    let folder = uploads.clone();
    let app = TestApp::spawn_with(backend, database, move |url| {
        let mut config = tests::test_config(url);
        config.uploads.dir = folder;
        config.uploads.max_image_bytes = LIMIT;
        config.jobs.poll_ms = 20;
        config
    })
    .await;
    Some(ImageApp { app, uploads })
}

macro_rules! image_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = super::spawn(tests::Backend::Sqlite).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = super::spawn(tests::Backend::Postgres).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

image_tests!(
    valid_images_get_thumbnails_and_are_served_back,
    oversized_images_are_refused_and_nothing_is_stored,
    mislabelled_uploads_are_refused,
    a_corrupt_image_ends_dead_with_a_clear_error_and_no_image,
    uploads_need_a_signed_in_owner_of_an_existing_market,
    an_idempotency_key_replays_the_first_upload,
);

fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let pixels = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    });
    let mut bytes = Cursor::new(Vec::new());
    let image = if format == image::ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(pixels).to_rgb8())
    } else {
        image::DynamicImage::ImageRgba8(pixels)
    };
    image
        .write_to(&mut bytes, format)
        .expect("an encoded image");
    bytes.into_inner()
}

const BOUNDARY: &str = "image-test-boundary-5d1c";

/// A `multipart/form-data` body with one file field.
fn form(field: &str, filename: &str, content_type: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
    )
    .into_bytes();
    if let Some(content_type) = content_type {
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl ImageApp {
    async fn upload_form(&self, token: Option<&str>, market: &str, body: Vec<u8>) -> Reply {
        let mut request = self
            .app
            .client
            .post(self.app.url(&format!("/api/v1/markets/{market}/image")))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.app.send(request).await
    }

    async fn upload(
        &self,
        token: &str,
        market: &str,
        filename: &str,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Reply {
        self.upload_form(
            Some(token),
            market,
            form("image", filename, content_type, bytes),
        )
        .await
    }

    /// The market's JSON.
    async fn market(&self, market: &str) -> Value {
        let reply = self.app.get(&format!("/api/v1/markets/{market}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"].clone()
    }

    /// Polls the market (10 s at most) until its `thumbnail_url` is `Some` and not `previous`.
    async fn wait_for_thumbnail(&self, market: &str, previous: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let current = self.market(market).await;
            if !current["thumbnail_url"].is_null() && current["thumbnail_url"] != *previous {
                return current;
            }
            assert!(
                Instant::now() < deadline,
                "no thumbnail after 10 s: {current}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the job as its owner (10 s at most) until it is `succeeded` or `dead`.
    async fn wait_for_job(&self, token: &str, location: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reply = self.app.get_as(token, location).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let job = reply.body["data"].clone();
            if job["state"] == "succeeded" || job["state"] == "dead" {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "the job did not end in 10 s: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The files stored for `market`, sorted.
    fn stored_files(&self, market: &str) -> Vec<String> {
        let folder = self.uploads.join("markets").join(market);
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

fn path_of(url: &Value) -> String {
    url.as_str().expect("a URL").to_owned()
}

async fn fetch_bytes(app: &TestApp, path: &str) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let response = app.client.get(app.url(path)).send().await.expect("sent");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, cache_control) = (header("content-type"), header("cache-control"));
    let bytes = response.bytes().await.expect("a body").to_vec();
    (status, content_type, cache_control, bytes)
}

fn assert_accepted(reply: &Reply) -> String {
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["success"], true);
    let job_id = reply.body["data"]["job_id"].as_str().expect("a job id");
    assert_eq!(reply.body["data"]["state"], "available");
    let location = reply.header("location").expect("a Location").to_owned();
    assert_eq!(location, format!("/api/v1/jobs/{job_id}"));
    location
}

async fn valid_images_get_thumbnails_and_are_served_back(app: ImageApp) {
    let (_, token) = app.app.signed_in_user().await;
    let market = app.app.create_market(&token, "Pictures", "art").await;
    let id = market["id"].as_str().expect("an id").to_owned();
    let mut previous = Value::Null;
    for (format, filename, content_type, (width, height), thumbnail_size) in [
        (
            image::ImageFormat::Png,
            "a.png",
            Some("image/png"),
            (800, 600),
            (320, 240),
        ),
        (
            image::ImageFormat::Jpeg,
            "b.jpg",
            Some("image/jpeg"),
            (300, 900),
            (107, 320),
        ),
        // No declared type: judged by the content alone.
        (
            image::ImageFormat::WebP,
            "c.webp",
            None,
            (120, 80),
            (120, 80),
        ),
    ] {
        let bytes = encoded(width, height, format);
        assert!(bytes.len() < LIMIT, "{format:?} is {} bytes", bytes.len());
        let reply = app
            .upload(&token, &id, filename, content_type, &bytes)
            .await;
        let location = assert_accepted(&reply);
        let updated = app.wait_for_thumbnail(&id, &previous).await;
        previous = updated["thumbnail_url"].clone();
        let job = app.wait_for_job(&token, &location).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["kind"], "make_thumbnail");

        let (status, served_type, cache, original) =
            fetch_bytes(&app.app, &path_of(&updated["image_url"])).await;
        assert_eq!(status, 200);
        assert_eq!(served_type.as_deref(), Some(format.to_mime_type()));
        assert!(
            cache
                .as_deref()
                .is_some_and(|c| c.contains("public") && c.contains("max-age=")),
            "{cache:?}"
        );
        assert_eq!(original, bytes, "the original as uploaded");
        let decoded = image::load_from_memory(&original).expect("the original decodes");
        assert_eq!((decoded.width(), decoded.height()), (width, height));

        let (status, served_type, _, thumbnail) =
            fetch_bytes(&app.app, &path_of(&updated["thumbnail_url"])).await;
        assert_eq!(status, 200);
        assert_eq!(served_type.as_deref(), Some("image/png"));
        let decoded = image::load_from_memory(&thumbnail).expect("the thumbnail decodes");
        assert!(decoded.width() <= 320 && decoded.height() <= 320);
        assert_eq!((decoded.width(), decoded.height()), thumbnail_size);

        // The plain routes serve the same images.
        let (status, _, _, plain) =
            fetch_bytes(&app.app, &format!("/api/v1/markets/{id}/thumbnail")).await;
        assert_eq!((status, plain), (200, thumbnail));
        // Only the current original and thumbnail are kept.
        assert_eq!(
            app.stored_files(&id).len(),
            2,
            "{:?}",
            app.stored_files(&id)
        );
    }
    let final_market = app.market(&id).await;
    assert!(final_market["version"].as_i64().expect("a version") >= 4);
}

async fn oversized_images_are_refused_and_nothing_is_stored(app: ImageApp) {
    let (_, token) = app.app.signed_in_user().await;
    let market = app.app.create_market(&token, "Big pictures", "art").await;
    let id = market["id"].as_str().expect("an id").to_owned();
    // Just over the limit: found while reading the stream.
    let mut just_over = encoded(16, 16, image::ImageFormat::Png);
    just_over.resize(LIMIT + 1, 0);
    // Far over: refused from Content-Length, before reading.
    let mut far_over = encoded(16, 16, image::ImageFormat::Png);
    far_over.resize(LIMIT * 3, 0);
    for bytes in [just_over, far_over] {
        let reply = app
            .upload(&token, &id, "big.png", Some("image/png"), &bytes)
            .await;
        assert_eq!(reply.status, 413, "{}", reply.text);
        assert_eq!(reply.body["code"], "payload_too_large");
    }
    assert!(
        app.stored_files(&id).is_empty(),
        "{:?}",
        app.stored_files(&id)
    );
    assert!(app.market(&id).await["image_url"].is_null());
    // Exactly the limit is accepted (a PNG decoder ignores what follows the image's end).
    let mut at_limit = encoded(16, 16, image::ImageFormat::Png);
    at_limit.resize(LIMIT, 0);
    let reply = app
        .upload(&token, &id, "edge.png", Some("image/png"), &at_limit)
        .await;
    let location = assert_accepted(&reply);
    let job = app.wait_for_job(&token, &location).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        app.stored_files(&id).len(),
        2,
        "{:?}",
        app.stored_files(&id)
    );
}

async fn mislabelled_uploads_are_refused(app: ImageApp) {
    let (_, token) = app.app.signed_in_user().await;
    let market = app.app.create_market(&token, "Odd pictures", "art").await;
    let id = market["id"].as_str().expect("an id").to_owned();
    let text = b"this is plain text, not a picture".to_vec();
    let jpeg = encoded(8, 8, image::ImageFormat::Jpeg);
    let cases: [(&str, Option<&str>, &[u8]); 4] = [
        ("notes.png", Some("image/png"), &text),
        ("notes.png", None, &text),
        ("photo.png", Some("image/png"), &jpeg),
        ("photo.jpg", Some("text/plain"), &jpeg),
    ];
    for (filename, content_type, bytes) in cases {
        let reply = app.upload(&token, &id, filename, content_type, bytes).await;
        assert_eq!(
            reply.status, 415,
            "{filename} {content_type:?}: {}",
            reply.text
        );
        assert_eq!(reply.body["code"], "unsupported_media_type");
    }
    // Not a form at all.
    let reply = app
        .app
        .send(
            app.app
                .client
                .post(app.app.url(&format!("/api/v1/markets/{id}/image")))
                .bearer_auth(&token)
                .header("content-type", "image/png")
                .body(encoded(8, 8, image::ImageFormat::Png)),
        )
        .await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    // A form without the `image` field.
    let png = encoded(8, 8, image::ImageFormat::Png);
    let reply = app
        .upload_form(
            Some(&token),
            &id,
            form("picture", "a.png", Some("image/png"), &png),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "validation_failed");
    assert!(
        app.stored_files(&id).is_empty(),
        "{:?}",
        app.stored_files(&id)
    );
    let reply = app.app.get(&format!("/api/v1/markets/{id}/image")).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.body["code"], "not_found");
}

async fn a_corrupt_image_ends_dead_with_a_clear_error_and_no_image(app: ImageApp) {
    let (_, token) = app.app.signed_in_user().await;
    let market = app
        .app
        .create_market(&token, "Broken pictures", "art")
        .await;
    let id = market["id"].as_str().expect("an id").to_owned();
    let mut corrupt = b"\x89PNG\r\n\x1a\n".to_vec();
    corrupt.extend((0..4_000u32).map(|i| (i * 7 % 251) as u8));
    let reply = app
        .upload(&token, &id, "broken.png", Some("image/png"), &corrupt)
        .await;
    let location = assert_accepted(&reply);
    let job = app.wait_for_job(&token, &location).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["attempts"], 1, "not retried: {job}");
    let error = job["last_error"].as_str().expect("an error");
    assert!(
        error.starts_with("the image could not be decoded"),
        "{error}"
    );
    let after = app.market(&id).await;
    assert!(
        after["image_url"].is_null() && after["thumbnail_url"].is_null(),
        "{after}"
    );
    assert_eq!(
        after["version"], market["version"],
        "the market is unchanged"
    );
    assert!(
        app.stored_files(&id).is_empty(),
        "{:?}",
        app.stored_files(&id)
    );
    let reply = app
        .app
        .get(&format!("/api/v1/markets/{id}/thumbnail"))
        .await;
    assert_eq!(reply.status, 404);
}

async fn uploads_need_a_signed_in_owner_of_an_existing_market(app: ImageApp) {
    let (_, owner) = app.app.signed_in_user().await;
    let (_, stranger) = app.app.signed_in_user().await;
    let market = app
        .app
        .create_market(&owner, "Private pictures", "art")
        .await;
    let id = market["id"].as_str().expect("an id").to_owned();
    let png = encoded(8, 8, image::ImageFormat::Png);
    let body = || form("image", "a.png", Some("image/png"), &png);

    let reply = app.upload_form(None, &id, body()).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    let reply = app.upload_form(Some(&stranger), &id, body()).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.body["code"], "forbidden");
    let unknown = Uuid::now_v7().to_string();
    let reply = app.upload_form(Some(&owner), &unknown, body()).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = app
        .app
        .get(&format!("/api/v1/markets/{unknown}/image"))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(app.stored_files(&id).is_empty());
    assert!(!Path::new(&app.uploads.join("markets").join(&unknown)).exists());
}

async fn an_idempotency_key_replays_the_first_upload(app: ImageApp) {
    let (_, token) = app.app.signed_in_user().await;
    let market = app
        .app
        .create_market(&token, "Retried pictures", "art")
        .await;
    let id = market["id"].as_str().expect("an id").to_owned();
    let png = encoded(40, 30, image::ImageFormat::Png);
    let send = |bytes: Vec<u8>| {
        app.app
            .client
            .post(app.app.url(&format!("/api/v1/markets/{id}/image")))
            .bearer_auth(&token)
            .header("idempotency-key", "upload-1")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(form("image", "a.png", Some("image/png"), &bytes))
    };
    let first = app.app.send(send(png.clone())).await;
    let location = assert_accepted(&first);
    let again = app.app.send(send(png.clone())).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert_eq!(again.body, first.body);
    let other = app
        .app
        .send(send(encoded(41, 30, image::ImageFormat::Png)))
        .await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.body["code"], "idempotency_key_reused");
    let job = app.wait_for_job(&token, &location).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        app.stored_files(&id).len(),
        2,
        "one upload only: {:?}",
        app.stored_files(&id)
    );
}
