//! The `VectorIndex` contract on the in-process index and on pgvector, and how the service
//! chooses between them (`search.vector_index`): pgvector when PostgreSQL has the extension and
//! the role may create it, the in-process index otherwise, and which one is used is reported.
//!
//! pgvector is not packaged for PostgreSQL 15 on Debian 12: where the server lacks it, the
//! pgvector cases assert that it is reported unavailable (and fail instead when
//! `REQUIRE_PGVECTOR=1`). The fallback cases run everywhere: they use a role that may not create
//! the extension.

use std::time::{Duration, Instant};

use adapter_persistence::{Database, PgVectorIndex, PgVectorUnavailable};
use adapter_search::InProcessVectorIndex;
use bootstrap::config::VectorIndexKind;
use domain::MarketId;
use domain::ports::{VectorIndex, VectorIndexError};
use domain::search::Embedding;
use sea_orm::ConnectionTrait;
use tests::{Backend, TestApp, TestDatabase};
use uuid::Uuid;

/// A PostgreSQL database with `n` markets (vectors refer to markets), and their ids.
async fn database_with_markets(n: usize) -> Option<(TestDatabase, Database, Vec<MarketId>)> {
    let database = TestDatabase::postgres().await?;
    let pools = database.migrated().await;
    let names: Vec<String> = (0..n).map(|n| format!("Market number {n}")).collect();
    let drafts: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|name| {
            (
                name.as_str(),
                "A market of the vector index contract.",
                "tests",
            )
        })
        .collect();
    let ids = tests::insert_markets(&pools, &drafts).await;
    Some((database, pools, ids))
}

fn unit(values: &[f32]) -> Embedding {
    Embedding::normalized(values.to_vec())
}

/// The contract every index keeps: nearest first with cosine similarity, replace on upsert,
/// remove, count, dimensions checked, batches.
async fn keeps_the_contract(index: &dyn VectorIndex, ids: &[MarketId]) {
    let (east, north_east, north, west) = (ids[0], ids[1], ids[2], ids[3]);
    index
        .upsert_many(&[
            (east, unit(&[1.0, 0.0, 0.0])),
            (north_east, unit(&[1.0, 1.0, 0.0])),
            (north, unit(&[0.0, 1.0, 0.0])),
        ])
        .await
        .expect("a batch");
    index
        .upsert(west, &unit(&[-1.0, 0.0, 0.0]))
        .await
        .expect("one");
    assert_eq!(index.count().await.expect("a count"), 4);

    let found = index
        .nearest(&unit(&[1.0, 0.1, 0.0]), 3)
        .await
        .expect("nearest");
    let order: Vec<MarketId> = found.iter().map(|f| f.market_id).collect();
    assert_eq!(order, [east, north_east, north], "{found:?}");
    assert!((found[0].score - 0.995).abs() < 0.02, "{found:?}");
    assert!(found[0].score >= found[1].score && found[1].score >= found[2].score);

    // Replacing moves a market; removing forgets it (twice is fine).
    index
        .upsert(west, &unit(&[1.0, 0.05, 0.0]))
        .await
        .expect("replaced");
    index.remove(east).await.expect("removed");
    index.remove(east).await.expect("removed again");
    let found = index
        .nearest(&unit(&[1.0, 0.0, 0.0]), 10)
        .await
        .expect("nearest");
    let order: Vec<MarketId> = found.iter().map(|f| f.market_id).collect();
    assert_eq!(order[0], west);
    assert!(!order.contains(&east));
    assert_eq!(index.count().await.expect("a count"), 3);
    assert!(
        index
            .nearest(&unit(&[1.0, 0.0, 0.0]), 0)
            .await
            .expect("none")
            .is_empty()
    );

    let wrong = unit(&[1.0, 0.0]);
    assert_eq!(
        index.nearest(&wrong, 5).await.expect_err("2 dimensions"),
        VectorIndexError::Dimensions {
            expected: 3,
            got: 2
        }
    );
    assert!(matches!(
        index.upsert(east, &wrong).await,
        Err(VectorIndexError::Dimensions { .. })
    ));
}

#[tokio::test]
async fn the_in_process_index_keeps_the_contract() {
    let ids: Vec<MarketId> = (1..=4)
        .map(|n| MarketId::from_uuid(Uuid::from_u128(n)))
        .collect();
    let index = InProcessVectorIndex::new(3);
    assert!(!index.persistent());
    keeps_the_contract(&index, &ids).await;
}

#[tokio::test]
async fn pgvector_keeps_the_contract_and_its_vectors() {
    let Some((_database, pools, ids)) = database_with_markets(5).await else {
        return;
    };
    if !tests::pgvector_usable(&pools).await {
        return;
    }
    let index = PgVectorIndex::open(pools.clone(), 3, "test-embedder")
        .await
        .expect("opened");
    assert!(index.persistent());
    assert_eq!(index.kind(), "pgvector hnsw");
    keeps_the_contract(&index, &ids).await;

    // Kept across a restart (opening again), and the HNSW index answers more than its default
    // 40 candidates when asked.
    let again = PgVectorIndex::open(pools.clone(), 3, "test-embedder")
        .await
        .expect("opened again");
    assert_eq!(again.count().await.expect("a count"), 3);

    // A vector of a market deleted meanwhile is skipped in a batch; a deleted market's vector
    // goes with it.
    let ghost = MarketId::from_uuid(Uuid::now_v7());
    again
        .upsert_many(&[
            (ghost, unit(&[0.0, 0.0, 1.0])),
            (ids[4], unit(&[0.0, 0.0, 1.0])),
        ])
        .await
        .expect("the batch skips the unknown market");
    assert_eq!(again.count().await.expect("a count"), 4);
    pools
        .writer()
        .execute_unprepared(&format!(
            "DELETE FROM markets WHERE id = '{}'",
            ids[4].as_uuid()
        ))
        .await
        .expect("deleted");
    assert_eq!(again.count().await.expect("a count"), 3);

    // Another embedder's vectors are not comparable: opening with it forgets them.
    let other = PgVectorIndex::open(pools.clone(), 3, "another-model")
        .await
        .expect("opened for another embedder");
    assert_eq!(other.count().await.expect("a count"), 0);
    pools.close().await.ok();
}

#[tokio::test]
async fn pgvector_returns_more_than_its_default_candidate_list() {
    let Some((_database, pools, ids)) = database_with_markets(120).await else {
        return;
    };
    if !tests::pgvector_usable(&pools).await {
        return;
    }
    let index = PgVectorIndex::open(pools.clone(), 3, "test-embedder")
        .await
        .expect("opened");
    #[allow(clippy::cast_precision_loss)]
    let entries: Vec<(MarketId, Embedding)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (*id, unit(&[1.0, n as f32 / 100.0, 0.5])))
        .collect();
    index.upsert_many(&entries).await.expect("a batch");
    let found = index
        .nearest(&unit(&[1.0, 0.0, 0.5]), 100)
        .await
        .expect("nearest");
    assert_eq!(found.len(), 100, "hnsw.ef_search follows the limit");
    assert_eq!(found[0].market_id, ids[0]);
    pools.close().await.ok();
}

/// The first result's name of a search, once the market's event has been indexed (up to 5 s).
async fn first_found(app: &TestApp, query: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = app.get(&format!("/api/v1/markets/search?{query}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let first = reply.body["data"][0]["market"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if first == name || Instant::now() > deadline {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A role that may not create extensions, owning a fresh database; both are dropped with it.
struct OrdinaryRole {
    /// The database, connected to as the role.
    url: String,
    role: String,
    /// Dropped before the role (fields drop in order).
    database: Option<TestDatabase>,
}

impl OrdinaryRole {
    async fn create() -> Option<Self> {
        let database = TestDatabase::postgres().await?;
        let name = database
            .url()
            .rsplit_once('/')
            .map(|(_, name)| name.to_owned())
            .expect("a database name");
        let role = format!("ordinary_{}", Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(tests::admin_url())
            .await
            .expect("PostgreSQL");
        admin
            .execute_unprepared(&format!(
                "CREATE ROLE {role} LOGIN NOSUPERUSER; ALTER DATABASE \"{name}\" OWNER TO {role}"
            ))
            .await
            .expect("an ordinary role");
        admin.close().await.ok();
        let url = database.url().replacen("postgres@", &format!("{role}@"), 1);
        assert_ne!(
            url,
            database.url(),
            "TEST_DATABASE_URL names the user postgres"
        );
        Some(Self {
            url,
            role,
            database: Some(database),
        })
    }
}

impl Drop for OrdinaryRole {
    fn drop(&mut self) {
        drop(self.database.take());
        let role = self.role.clone();
        // Drop runs inside the test's runtime: a thread with its own runtime can block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(tests::admin_url()).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP ROLE IF EXISTS {role}"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

#[tokio::test]
async fn auto_reports_the_index_it_chose_and_searches_either_way() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let installed = {
        let pools = database.migrated().await;
        let usable = tests::pgvector_usable(&pools).await;
        pools.close().await.ok();
        usable
    };
    let app = TestApp::spawn_with(Backend::Postgres, database, |url| {
        let mut config = tests::test_config(url);
        config.search.vector_index = VectorIndexKind::Auto;
        config
    })
    .await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let expected = if installed {
        "pgvector hnsw"
    } else {
        "in-process exact"
    };
    assert_eq!(ready.body["data"]["search"]["vector_index"], expected);
    assert_eq!(
        ready.body["data"]["search"]["embedder"],
        "local-hashed-ngrams-256"
    );

    // Created markets are embedded through their events, into whichever index it is.
    let (_, token) = app.signed_in_user().await;
    app.create_market(&token, "Will Bitcoin close above 150k?", "crypto")
        .await;
    app.create_market(&token, "Will the football final go to penalties?", "sports")
        .await;
    // A misspelling only the vectors can match (keyword search needs the exact stem).
    let bitcoin = "Will Bitcoin close above 150k?";
    assert_eq!(first_found(&app, "q=bitcoim", bitcoin).await, bitcoin);
}

#[tokio::test]
async fn without_the_right_to_create_pgvector_auto_keeps_vectors_in_process() {
    let Some(mut ordinary) = OrdinaryRole::create().await else {
        return;
    };
    let mut config = tests::test_config(&ordinary.url);
    config.search.vector_index = VectorIndexKind::Auto;
    let database = TestDatabase::existing(&ordinary.url);
    let app = TestApp::spawn_with(Backend::Postgres, database, move |_| config).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body["data"]["search"]["vector_index"],
        "in-process exact"
    );
    let (_, token) = app.signed_in_user().await;
    app.create_market(&token, "Will Bitcoin close above 150k?", "crypto")
        .await;
    let bitcoin = "Will Bitcoin close above 150k?";
    assert_eq!(first_found(&app, "q=bitcoim", bitcoin).await, bitcoin);
    drop(app);
    drop(ordinary.database.take());
}

#[tokio::test]
async fn pgvector_required_but_unusable_stops_the_start_with_the_reason() {
    let Some(ordinary) = OrdinaryRole::create().await else {
        return;
    };
    let mut config = tests::test_config(&ordinary.url);
    config.search.vector_index = VectorIndexKind::Pgvector;
    let error = bootstrap::Application::build(&config, true)
        .await
        .err()
        .expect("no start without pgvector");
    let message = error.to_string();
    assert!(
        message.contains("search.vector_index = \"pgvector\""),
        "{message}"
    );
    assert!(
        message.contains("no \"vector\" extension")
            || message.contains("preparing pgvector failed"),
        "{message}"
    );
    drop(ordinary);
}

#[tokio::test]
async fn pgvector_refuses_wider_vectors_than_its_index_takes() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let pools = database.migrated().await;
    assert!(matches!(
        PgVectorIndex::open(pools.clone(), 2_001, "wide").await,
        Err(PgVectorUnavailable::TooManyDimensions {
            dimensions: 2_001,
            max: 2_000
        })
    ));
    pools.close().await.ok();
}

#[tokio::test]
async fn sqlite_never_uses_pgvector() {
    let database = TestDatabase::sqlite();
    let pools = database.migrated().await;
    assert!(matches!(
        PgVectorIndex::open(pools.clone(), 256, "local").await,
        Err(PgVectorUnavailable::NotPostgres)
    ));
    pools.close().await.ok();
}
