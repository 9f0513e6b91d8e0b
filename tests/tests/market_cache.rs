//! The cached market reads (`CachedMarketRepository`) over every cache adapter: the stale-set race
//! with the delay injected deterministically, stampedes on a cold key, tombstones and negative
//! entries, and list pages retired by writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use application::caching::{CachePolicy, CachedMarketRepository, MarketRenderer, Rendered};
use application::markets::MarketList;
use async_trait::async_trait;
use domain::listing::{MarketListQuery, MarketProjection};
use domain::market::{MarketChanges, MarketDraft};
use domain::ports::{Cache, MarketRepository, RepositoryError, UserRepository};
use domain::{
    Category, DisplayName, DomainEvent, Email, Market, MarketDescription, MarketId, MarketName,
    Page, PasswordHash, Role, User, UserId,
};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

tests::cache_tests!(
    a_reader_that_loaded_an_old_version_cannot_store_it_over_a_newer_write,
    a_reader_that_loaded_a_market_cannot_bring_it_back_after_a_delete,
    a_reader_that_found_nothing_cannot_hide_a_market_created_meanwhile,
    concurrent_misses_on_one_key_load_once,
    concurrent_misses_on_one_page_load_once,
    a_hit_is_served_without_loading_and_not_found_is_cached,
    every_market_write_retires_the_list_pages,
    an_event_repairs_an_entry_whose_write_through_was_lost,
);

/// Renders a market as `id@version`, a page as its market ids and versions.
struct PlainRenderer;

impl MarketRenderer for PlainRenderer {
    fn market(&self, market: &Market) -> Vec<u8> {
        format!("{}@{}", market.id, market.version).into_bytes()
    }

    fn list(&self, list: &MarketList, _include_creators: bool) -> Vec<u8> {
        let items: Vec<String> = list
            .page
            .items
            .iter()
            .map(|market| format!("{}@{}", market.id, market.version.unwrap_or_default()))
            .collect();
        items.join(",").into_bytes()
    }
}

/// A load held until the test releases it, and the signal that it read the store.
struct Hold {
    loaded: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// Markets in memory, counting loads, optionally slow, and able to hold the next load after it
/// has read the store (the reader's delay, injected where the race needs it).
struct ObservedMarkets {
    inner: Arc<dyn MarketRepository>,
    loads: AtomicUsize,
    delay: Duration,
    hold: Mutex<Option<Hold>>,
}

impl ObservedMarkets {
    fn new(inner: Arc<dyn MarketRepository>, delay: Duration) -> Self {
        Self {
            inner,
            loads: AtomicUsize::new(0),
            delay,
            hold: Mutex::new(None),
        }
    }

    /// Holds the next load after it read the store: returns "it has read" and "let it go".
    fn hold_next_load(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (loaded, has_loaded) = oneshot::channel();
        let (let_go, release) = oneshot::channel();
        *self.hold.lock().expect("not poisoned") = Some(Hold { loaded, release });
        (has_loaded, let_go)
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    async fn after_load(&self) {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let hold = self.hold.lock().expect("not poisoned").take();
        if let Some(hold) = hold {
            let _ = hold.loaded.send(());
            let _ = hold.release.await;
        }
    }
}

#[async_trait]
impl MarketRepository for ObservedMarkets {
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError> {
        self.inner.insert(market).await
    }

    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        let found = self.inner.find_by_id(id).await;
        self.after_load().await;
        found
    }

    async fn find_many(&self, ids: &[MarketId]) -> Result<Vec<Market>, RepositoryError> {
        self.inner.find_many(ids).await
    }

    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError> {
        let page = self.inner.list(query).await;
        self.after_load().await;
        page
    }

    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError> {
        self.inner.update(market, expected_version).await
    }

    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError> {
        self.inner.delete(id, expected_version).await
    }
}

/// A store with one user, markets observed, and reads of them through `cache`.
struct Setup {
    markets: Arc<ObservedMarkets>,
    reads: CachedMarketRepository,
    owner: UserId,
}

async fn setup(cache: Arc<dyn Cache>, delay: Duration) -> Setup {
    let store = adapter_memory::InMemoryStore::new();
    let owner = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).expect("email"),
        name: DisplayName::parse("Owner").expect("a name"),
        password_hash: PasswordHash::from_phc(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".to_owned(),
        ),
        role: Role::User,
        balance: domain::Amount::ZERO,
        disabled: false,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    store.users().insert(&owner).await.expect("the owner");
    let markets = Arc::new(ObservedMarkets::new(store.markets(), delay));
    let reads = CachedMarketRepository::new(
        markets.clone(),
        cache,
        Arc::new(PlainRenderer),
        CachePolicy::default(),
    );
    Setup {
        markets,
        reads,
        owner: owner.id,
    }
}

impl Setup {
    async fn new_market(&self, name: &str) -> Market {
        let now = chrono::Utc::now();
        let market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse(name).expect("a name"),
                description: MarketDescription::parse("A market of the cache tests")
                    .expect("a text"),
                category: Category::parse("tests").expect("a category"),
                end_date: now + chrono::Duration::days(30),
            },
            self.owner,
            now,
        )
        .expect("an open market");
        self.markets.insert(&market).await.expect("stored");
        market
    }

    /// Renames `market`, committing the new version, then writes it through as the use cases do.
    async fn rename(&self, market: &Market, name: &str) -> Market {
        let mut changed = market.clone();
        changed
            .apply(
                MarketChanges {
                    name: Some(MarketName::parse(name).expect("a name")),
                    ..MarketChanges::default()
                },
                chrono::Utc::now(),
            )
            .expect("a valid change");
        self.markets
            .update(&changed, market.version)
            .await
            .expect("committed");
        self.reads.market_changed(&changed).await;
        changed
    }

    async fn read(&self, id: MarketId) -> Option<Rendered> {
        self.reads.find_by_id(id).await.expect("a read")
    }

    async fn page(&self) -> Rendered {
        let markets = Arc::clone(&self.markets);
        let load = || async move {
            let page = markets.list(&MarketListQuery::default()).await?;
            Ok::<_, RepositoryError>(MarketList {
                page,
                creators: Vec::new(),
            })
        };
        let markets = Arc::clone(&self.markets);
        let uncached = || async move {
            let page = markets.list(&MarketListQuery::default()).await?;
            Ok::<_, RepositoryError>(MarketList {
                page,
                creators: Vec::new(),
            })
        };
        self.reads
            .list(&MarketListQuery::default(), false, load, uncached)
            .await
            .expect("a page")
    }
}

fn shows(rendered: Option<&Rendered>, market: &Market) -> bool {
    rendered.is_some_and(|rendered| {
        rendered.version == market.version
            && rendered.body == format!("{}@{}", market.id, market.version).into_bytes()
    })
}

async fn a_reader_that_loaded_an_old_version_cannot_store_it_over_a_newer_write(
    cache: Arc<dyn Cache>,
) {
    let setup = setup(cache, Duration::ZERO).await;
    let v1 = setup.new_market("Version one").await;
    let (has_loaded, let_go) = setup.markets.hold_next_load();
    let reads = setup.reads.clone();
    let id = v1.id;
    let reader = tokio::spawn(async move { reads.find_by_id(id).await });

    // The reader has loaded v1 and is held before storing it; the writer commits v2 and writes
    // it through; then the reader stores what it loaded.
    has_loaded.await.expect("the reader loaded");
    let v2 = setup.rename(&v1, "Version two").await;
    let_go.send(()).expect("the reader waits");
    let served = reader.await.expect("the reader ran").expect("a read");
    assert!(
        shows(served.as_ref(), &v1),
        "the reader serves what it read"
    );

    let loads = setup.markets.loads();
    assert!(
        shows(setup.read(v1.id).await.as_ref(), &v2),
        "the stale v1 did not replace v2"
    );
    assert_eq!(setup.markets.loads(), loads, "v2 came from the cache");
}

async fn a_reader_that_loaded_a_market_cannot_bring_it_back_after_a_delete(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::ZERO).await;
    let market = setup.new_market("Soon deleted").await;
    let (has_loaded, let_go) = setup.markets.hold_next_load();
    let reads = setup.reads.clone();
    let id = market.id;
    let reader = tokio::spawn(async move { reads.find_by_id(id).await });

    has_loaded.await.expect("the reader loaded");
    setup
        .markets
        .delete(market.id, market.version)
        .await
        .expect("deleted");
    setup.reads.market_deleted(market.id, market.version).await;
    let_go.send(()).expect("the reader waits");
    reader.await.expect("the reader ran").expect("a read");

    let loads = setup.markets.loads();
    assert_eq!(
        setup.read(market.id).await,
        None,
        "the deleted market stays gone"
    );
    assert_eq!(setup.markets.loads(), loads, "the tombstone answered");
}

async fn a_reader_that_found_nothing_cannot_hide_a_market_created_meanwhile(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::ZERO).await;
    let (has_loaded, let_go) = setup.markets.hold_next_load();
    let now = chrono::Utc::now();
    let id = MarketId::from_uuid(Uuid::now_v7());
    let reads = setup.reads.clone();
    let reader = tokio::spawn(async move { reads.find_by_id(id).await });

    has_loaded.await.expect("the reader found nothing");
    let market = Market::open(
        id,
        MarketDraft {
            name: MarketName::parse("Created meanwhile").expect("a name"),
            description: MarketDescription::parse("Appears while a reader is held")
                .expect("a text"),
            category: Category::parse("tests").expect("a category"),
            end_date: now + chrono::Duration::days(1),
        },
        setup.owner,
        now,
    )
    .expect("an open market");
    setup.markets.insert(&market).await.expect("stored");
    setup.reads.market_changed(&market).await;
    let_go.send(()).expect("the reader waits");
    assert_eq!(reader.await.expect("the reader ran").expect("a read"), None);

    assert!(
        shows(setup.read(id).await.as_ref(), &market),
        "the late \"not found\" did not hide the new market"
    );
}

async fn concurrent_misses_on_one_key_load_once(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::from_millis(100)).await;
    let market = setup.new_market("Suddenly popular").await;
    let start = Arc::new(Notify::new());
    let mut readers = Vec::new();
    for _ in 0..64 {
        let reads = setup.reads.clone();
        let start = Arc::clone(&start);
        readers.push(tokio::spawn(async move {
            start.notified().await;
            reads.find_by_id(market.id).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    start.notify_waiters();
    for reader in readers {
        let served = reader.await.expect("a reader ran").expect("a read");
        assert!(shows(served.as_ref(), &market));
    }
    assert_eq!(setup.markets.loads(), 1, "64 concurrent misses, one load");
}

async fn concurrent_misses_on_one_page_load_once(cache: Arc<dyn Cache>) {
    let setup = Arc::new(setup(cache, Duration::from_millis(100)).await);
    let market = setup.new_market("On every page").await;
    let start = Arc::new(Notify::new());
    let mut readers = Vec::new();
    for _ in 0..64 {
        let setup = Arc::clone(&setup);
        let start = Arc::clone(&start);
        readers.push(tokio::spawn(async move {
            start.notified().await;
            setup.page().await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    start.notify_waiters();
    let expected = format!("{}@{}", market.id, market.version).into_bytes();
    for reader in readers {
        assert_eq!(reader.await.expect("a reader ran").body, expected);
    }
    assert_eq!(setup.markets.loads(), 1, "64 concurrent misses, one load");
}

async fn a_hit_is_served_without_loading_and_not_found_is_cached(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::ZERO).await;
    let market = setup.new_market("Cached").await;
    assert!(shows(setup.read(market.id).await.as_ref(), &market));
    assert!(shows(setup.read(market.id).await.as_ref(), &market));
    assert_eq!(setup.markets.loads(), 1);

    let missing = MarketId::from_uuid(Uuid::now_v7());
    assert_eq!(setup.read(missing).await, None);
    assert_eq!(setup.read(missing).await, None);
    assert_eq!(setup.markets.loads(), 2, "\"not found\" was cached");
}

async fn every_market_write_retires_the_list_pages(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::ZERO).await;
    let first = setup.new_market("First").await;
    setup.reads.market_changed(&first).await;
    let page = setup.page().await;
    assert_eq!(setup.page().await, page, "the page is cached");
    assert_eq!(setup.markets.loads(), 1);

    let renamed = setup.rename(&first, "First, renamed").await;
    let after = setup.page().await;
    assert_eq!(setup.markets.loads(), 2, "the write retired the page");
    assert_eq!(
        after.body,
        format!("{}@{}", renamed.id, renamed.version).into_bytes()
    );
}

async fn an_event_repairs_an_entry_whose_write_through_was_lost(cache: Arc<dyn Cache>) {
    let setup = setup(cache, Duration::ZERO).await;
    let v1 = setup.new_market("Before the outage").await;
    assert!(shows(setup.read(v1.id).await.as_ref(), &v1));
    // v2 commits, but its write-through never reaches the cache (an outage).
    let mut v2 = v1.clone();
    v2.apply(
        MarketChanges {
            name: Some(MarketName::parse("After the outage").expect("a name")),
            ..MarketChanges::default()
        },
        chrono::Utc::now(),
    )
    .expect("a valid change");
    setup
        .markets
        .update(&v2, v1.version)
        .await
        .expect("committed");
    assert!(
        shows(setup.read(v1.id).await.as_ref(), &v1),
        "stale until repaired"
    );

    // The relay hands the committed event over: the entry is repaired; seeing it again is a no-op.
    let updated = DomainEvent::MarketUpdated {
        market_id: v2.id,
        version: v2.version,
    };
    setup.reads.reconcile(&updated).await;
    assert!(shows(setup.read(v1.id).await.as_ref(), &v2));
    let loads = setup.markets.loads();
    setup.reads.reconcile(&updated).await;
    assert_eq!(
        setup.markets.loads(),
        loads,
        "an event already reflected loads nothing"
    );

    // A delete whose tombstone was lost.
    setup
        .markets
        .delete(v2.id, v2.version)
        .await
        .expect("deleted");
    setup
        .reads
        .reconcile(&DomainEvent::MarketDeleted { market_id: v2.id })
        .await;
    assert_eq!(setup.read(v2.id).await, None);
}
