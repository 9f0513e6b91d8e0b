//! Market image uploads and their `make_thumbnail` jobs on in-memory adapters: the happy path, a full blob store at upload and in the job, a corrupt image, reruns, and access.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use adapter_memory::{
    FixedClock, InMemoryBlobStore, InMemoryStore, InProcessRecentWrites, UuidV7Generator,
};
use application::caching::{CachedMarketRepository, MarketRenderer};
use application::jobs::{JobFailure, JobHandler, Outcome, Worker, WorkerSettings};
use application::markets::{MarketList, ThumbnailHandler, UploadImageError};
use application::{Deps, Settings, UseCases};
use chrono::TimeDelta;
use domain::market::MarketDraft;
use domain::ports::{
    BlobKey, BlobStore, Clock, JobQueue, MarketRepository, MockPasswordHasher, MockTokenIssuer,
    Outbox, RepositoryError, Transaction, UnitOfWork, UserRepository,
};
use domain::{
    Actor, Amount, Category, DisplayName, DomainEvent, Email, Job, JobId, JobState, Market,
    MarketDescription, MarketId, MarketName, PasswordHash, Role, User, UserId,
};

struct NoRenderer;

impl MarketRenderer for NoRenderer {
    fn market(&self, _: &Market) -> Vec<u8> {
        Vec::new()
    }

    fn list(&self, _: &MarketList, _: bool) -> Vec<u8> {
        Vec::new()
    }
}

/// The store's unit of work, that can be made to fail to begin (the job queue unreachable).
struct SwitchableUnitOfWork {
    inner: Arc<dyn UnitOfWork>,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl UnitOfWork for SwitchableUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepositoryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(RepositoryError::Unavailable("switched off".into()));
        }
        self.inner.begin().await
    }
}

struct World {
    use_cases: UseCases,
    store: InMemoryStore,
    blobs: Arc<InMemoryBlobStore>,
    clock: Arc<FixedClock>,
    transactions: Arc<SwitchableUnitOfWork>,
    owner: Actor,
    market: Market,
}

async fn world() -> World {
    let clock = Arc::new(FixedClock::default());
    let store = InMemoryStore::new();
    let blobs = Arc::new(InMemoryBlobStore::new());
    let transactions = Arc::new(SwitchableUnitOfWork {
        inner: store.unit_of_work(),
        down: AtomicBool::new(false),
    });
    let use_cases = UseCases::new(
        Deps {
            users: store.users(),
            cached_markets: CachedMarketRepository::uncached(store.markets(), Arc::new(NoRenderer)),
            markets: store.markets(),
            market_reads: store.markets(),
            positions: store.positions(),
            position_reads: store.positions(),
            unit_of_work: transactions.clone(),
            idempotency: store.idempotency(),
            jobs: store.jobs(),
            sessions: store.sessions(),
            session_cache: application::sessions::SessionCache::new(
                std::time::Duration::from_millis(500),
            ),
            secrets: Arc::new(adapter_crypto::RandomSecrets),
            sign_in_throttle: None,
            recent_writes: Arc::new(InProcessRecentWrites::new(std::time::Duration::from_secs(
                5,
            ))),
            hasher: Arc::new(MockPasswordHasher::new()),
            tokens: Arc::new(MockTokenIssuer::new()),
            clock: clock.clone(),
            ids: Arc::new(UuidV7Generator),
            blobs: blobs.clone(),
            search: application::markets::SearchEngine {
                keywords: store.keyword_search(),
                embedder: Arc::new(adapter_search::LocalEmbedder),
                vectors: Arc::new(adapter_search::InProcessVectorIndex::new(
                    adapter_search::LocalEmbedder::DIMENSIONS,
                )),
            },
        },
        Settings {
            max_image_bytes: 200_000,
            ..Settings::default()
        },
    );
    let owner = Actor {
        user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
        role: Role::User,
    };
    store
        .users()
        .insert(&User {
            id: owner.user_id,
            email: Email::parse(&format!("{}@example.com", owner.user_id)).expect("an email"),
            name: DisplayName::parse("Owner").expect("a name"),
            password_hash: PasswordHash::from_phc("$argon2id$unused".to_owned()),
            role: Role::User,
            balance: Amount::ZERO,
            disabled: false,
            created_at: clock.now(),
            updated_at: clock.now(),
        })
        .await
        .expect("a user");
    let market = Market::open(
        MarketId::from_uuid(uuid::Uuid::now_v7()),
        MarketDraft {
            name: MarketName::parse("Will it snow?").expect("a name"),
            description: MarketDescription::default(),
            category: Category::parse("weather").expect("a category"),
            end_date: clock.now() + TimeDelta::days(10),
        },
        owner.user_id,
        clock.now(),
    )
    .expect("a market");
    store.markets().insert(&market).await.expect("inserted");
    World {
        use_cases,
        store,
        blobs,
        clock,
        transactions,
        owner,
        market,
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut bytes = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(pixels)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("a PNG");
    bytes.into_inner()
}

impl World {
    async fn stored_market(&self) -> Market {
        self.store
            .markets()
            .find_by_id(self.market.id)
            .await
            .expect("read")
            .expect("the market")
    }

    async fn job(&self, id: JobId) -> Job {
        self.store
            .jobs()
            .find(id)
            .await
            .expect("read")
            .expect("the job")
    }

    fn handler(&self) -> ThumbnailHandler {
        ThumbnailHandler::new(self.use_cases.clone())
    }

    async fn upload(&self, bytes: &[u8]) -> JobId {
        self.use_cases
            .upload_market_image(&self.owner, self.market.id, bytes)
            .await
            .expect("accepted")
    }
}

#[tokio::test]
async fn an_upload_is_stored_and_its_job_records_both_images_in_one_change() {
    let world = world().await;
    let job_id = world.upload(&png(640, 480)).await;
    let job = world.job(job_id).await;
    assert_eq!(job.kind.as_str(), "make_thumbnail");
    assert_eq!(job.owner, Some(world.owner.user_id));
    assert_eq!(job.state, JobState::Available);
    let keys = world.blobs.keys();
    assert_eq!(keys.len(), 1, "the original only: {keys:?}");
    let original = keys[0].to_string();
    assert!(original.starts_with(&format!("markets/{}/", world.market.id)));
    assert!(original.ends_with(".png"));

    world
        .handler()
        .run(&job)
        .await
        .expect("the thumbnail is made");

    let market = world.stored_market().await;
    assert_eq!(market.version, world.market.version + 1);
    let image_url = market.image_url.clone().expect("an image");
    let thumbnail_url = market.thumbnail_url.clone().expect("a thumbnail");
    assert!(image_url.starts_with(&format!("/api/v1/markets/{}/image?v=", market.id)));
    assert!(thumbnail_url.starts_with(&format!("/api/v1/markets/{}/thumbnail?v=", market.id)));
    let thumbnail_key = original.replace(".png", "-thumb.png");
    let thumbnail = world
        .blobs
        .get(&BlobKey::parse(&thumbnail_key).expect("a key"))
        .await
        .expect("read")
        .expect("the thumbnail");
    assert_eq!(thumbnail.content_type, "image/png");
    let decoded = image::load_from_memory(&thumbnail.bytes).expect("a PNG");
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    let events = world.store.outbox().after(0, 100).await.expect("events");
    assert!(events.iter().any(|stored| stored.event.event
        == DomainEvent::MarketUpdated {
            market_id: market.id,
            version: market.version,
        }));

    // At least once: a rerun changes nothing.
    world.handler().run(&job).await.expect("a rerun succeeds");
    assert_eq!(world.stored_market().await, market);

    // The served images are the stored ones.
    let served = world
        .use_cases
        .market_image(market.id, application::markets::MarketImage::Thumbnail)
        .await
        .expect("served");
    assert_eq!(served.blob, thumbnail);
}

#[tokio::test]
async fn a_second_upload_replaces_the_first_and_its_files() {
    let world = world().await;
    let first = world.upload(&png(50, 50)).await;
    world
        .handler()
        .run(&world.job(first).await)
        .await
        .expect("first");
    let second = world.upload(&png(60, 40)).await;
    world
        .handler()
        .run(&world.job(second).await)
        .await
        .expect("second");
    let keys = world.blobs.keys();
    assert_eq!(
        keys.len(),
        2,
        "only the second original and thumbnail: {keys:?}"
    );
    let market = world.stored_market().await;
    assert_eq!(market.version, world.market.version + 2);
    let version = |url: &str| url.split_once("?v=").expect("a version").1.to_owned();
    let original_file = version(&market.image_url.expect("an image"));
    assert!(
        keys.iter()
            .any(|key| key.to_string().ends_with(&original_file))
    );
}

#[tokio::test]
async fn a_full_store_at_upload_refuses_it_and_keeps_nothing() {
    let world = world().await;
    world.blobs.set_full(true);
    let refused = world
        .use_cases
        .upload_market_image(&world.owner, world.market.id, &png(10, 10))
        .await;
    assert!(
        matches!(refused, Err(UploadImageError::StorageFull)),
        "{refused:?}"
    );
    assert!(world.blobs.keys().is_empty());
    let jobs = world
        .store
        .jobs()
        .list(None, domain::PageRequest::default())
        .await
        .expect("jobs");
    assert_eq!(jobs.total, 0, "no job without its original");
}

#[tokio::test]
async fn a_full_store_in_the_job_is_a_clear_retry_and_the_market_is_unchanged() {
    let world = world().await;
    let job_id = world.upload(&png(400, 400)).await;
    world.blobs.set_full(true);

    let worker = Worker::new(
        world.store.jobs(),
        world.clock.clone(),
        "test-worker",
        WorkerSettings::default(),
    )
    .with_handler(Arc::new(world.handler()));
    let fetched = worker.fetch_batch(1).await.expect("fetched");
    assert_eq!(fetched.len(), 1);
    let outcome = worker.execute(&fetched[0]).await.expect("recorded");
    assert!(matches!(outcome, Outcome::Retrying(_)), "{outcome:?}");
    let job = world.job(job_id).await;
    assert_eq!(job.state, JobState::Available, "retried later");
    let error = job.last_error.expect("the error is kept");
    assert!(error.contains("storage is full"), "{error}");
    assert!(error.contains("market was not changed"), "{error}");
    assert_eq!(world.stored_market().await, world.market, "unchanged");
    assert_eq!(
        world.blobs.keys().len(),
        1,
        "the original only, no thumbnail"
    );

    // Space again: the retry succeeds.
    world.blobs.set_full(false);
    world.clock.advance(TimeDelta::hours(1));
    let fetched = worker.fetch_batch(1).await.expect("fetched");
    assert_eq!(
        worker.execute(&fetched[0]).await.expect("recorded"),
        Outcome::Succeeded
    );
    assert!(world.stored_market().await.thumbnail_url.is_some());
}

#[tokio::test]
async fn an_unavailable_store_in_the_job_is_a_retry_too() {
    let world = world().await;
    let job_id = world.upload(&png(10, 10)).await;
    world.blobs.set_unavailable(true);
    let failure = world.handler().run(&world.job(job_id).await).await;
    assert!(
        matches!(&failure, Err(JobFailure::Retry(message)) if message.contains("unavailable")),
        "{failure:?}"
    );
    world.blobs.set_unavailable(false);
    assert_eq!(world.stored_market().await, world.market);
}

#[tokio::test]
async fn a_corrupt_image_fails_for_good_and_leaves_nothing() {
    let world = world().await;
    let mut corrupt = b"\x89PNG\r\n\x1a\n".to_vec();
    corrupt.extend(std::iter::repeat_n(0x5a_u8, 500));
    let job_id = world.upload(&corrupt).await;
    let failure = world.handler().run(&world.job(job_id).await).await;
    assert!(
        matches!(&failure, Err(JobFailure::Permanent(message)) if message.starts_with("the image could not be decoded")),
        "{failure:?}"
    );
    assert_eq!(world.stored_market().await, world.market, "unchanged");
    assert!(world.blobs.keys().is_empty(), "the original is deleted too");
}

#[tokio::test]
async fn a_market_deleted_meanwhile_fails_for_good() {
    let world = world().await;
    let job_id = world.upload(&png(10, 10)).await;
    world
        .store
        .markets()
        .delete(world.market.id, world.market.version)
        .await
        .expect("deleted");
    let failure = world.handler().run(&world.job(job_id).await).await;
    assert!(
        matches!(&failure, Err(JobFailure::Permanent(message)) if message.contains("no longer exists")),
        "{failure:?}"
    );
    assert!(world.blobs.keys().is_empty());
}

#[tokio::test]
async fn uploads_are_checked_before_anything_is_stored() {
    let world = world().await;
    let stranger = Actor {
        user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
        role: Role::User,
    };
    let cases: Vec<(Actor, MarketId, Vec<u8>)> = vec![
        (stranger, world.market.id, png(10, 10)),
        (
            world.owner,
            MarketId::from_uuid(uuid::Uuid::now_v7()),
            png(10, 10),
        ),
        (
            world.owner,
            world.market.id,
            b"just some text, called image.png".to_vec(),
        ),
        (world.owner, world.market.id, {
            let mut big = png(10, 10);
            big.resize(200_001, 0);
            big
        }),
    ];
    let mut errors = Vec::new();
    for (actor, market_id, bytes) in cases {
        errors.push(
            world
                .use_cases
                .upload_market_image(&actor, market_id, &bytes)
                .await
                .expect_err("refused"),
        );
    }
    assert!(
        matches!(errors[0], UploadImageError::Forbidden(_)),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(errors[1], UploadImageError::NotFound),
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(errors[2], UploadImageError::UnsupportedImage),
        "{:?}",
        errors[2]
    );
    assert!(
        matches!(errors[3], UploadImageError::TooLarge { limit: 200_000 }),
        "{:?}",
        errors[3]
    );
    assert!(world.blobs.keys().is_empty());
}

#[tokio::test]
async fn an_upload_whose_job_cannot_be_enqueued_leaves_no_file() {
    let world = world().await;
    world.transactions.down.store(true, Ordering::SeqCst);
    let refused = world
        .use_cases
        .upload_market_image(&world.owner, world.market.id, &png(10, 10))
        .await;
    assert!(
        matches!(refused, Err(UploadImageError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(
        world.blobs.keys().is_empty(),
        "the original was deleted again"
    );
    world.transactions.down.store(false, Ordering::SeqCst);
    world.upload(&png(10, 10)).await;
    assert_eq!(world.blobs.keys().len(), 1);
}

#[tokio::test]
async fn an_older_upload_whose_job_runs_last_does_not_replace_a_newer_one() {
    let world = world().await;
    let older = world.upload(&png(30, 30)).await;
    let newer = world.upload(&png(20, 20)).await;
    world
        .handler()
        .run(&world.job(newer).await)
        .await
        .expect("newer");
    let shown = world.stored_market().await;
    world
        .handler()
        .run(&world.job(older).await)
        .await
        .expect("older, superseded");
    assert_eq!(world.stored_market().await, shown, "the newer image stays");
    assert_eq!(
        world.blobs.keys().len(),
        2,
        "the older upload's files are gone"
    );
}
