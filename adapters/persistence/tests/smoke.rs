//! What the port contract suites (in `tests/`) do not cover: connecting (a SQLite file in folders
//! that do not exist yet, SQLite in memory, PostgreSQL when `TEST_DATABASE_URL` is set), migration
//! status, the health probe, and rows that no longer map back into the domain.

use adapter_persistence::{
    Database, DatabaseProbe, PoolOptions, SeaMarketRepository, SeaUserRepository, connect,
    migrate_up, migration_status,
};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use domain::market::MarketDraft;
use domain::ports::{HealthProbe, MarketRepository, RepositoryError, UserRepository};
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    PasswordHash, Role, User, UserId,
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

#[tokio::test]
async fn sqlite() {
    let folder = std::env::temp_dir().join(format!("adapter-persistence-{}", Uuid::new_v4()));
    let url = format!("sqlite://{}", folder.join("nested/smoke.db").display());
    let database = connect(&url, None, &PoolOptions::default())
        .await
        .expect("connects, creating the folder and file");
    exercise(&database).await;
    database.close().await.expect("closes");
    std::fs::remove_dir_all(folder).expect("removes the scratch folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory() {
    let database = connect("sqlite::memory:", None, &PoolOptions::default())
        .await
        .expect("connects");
    exercise(&database).await;
}

#[tokio::test]
async fn postgres() {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping PostgreSQL");
        return;
    };
    let admin = connect(&server, None, &PoolOptions::default())
        .await
        .expect("connects to the server");
    let name = format!("smoke_{}", Uuid::new_v4().simple());
    admin
        .writer()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creates a scratch database");
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    let database = connect(&format!("{base}/{name}"), None, &PoolOptions::default())
        .await
        .expect("connects to the scratch database");
    // Run in a task so that the scratch database is dropped even when an assertion fails.
    let outcome = tokio::spawn({
        let database = database.clone();
        async move { exercise(&database).await }
    })
    .await;
    database.close().await.expect("closes");
    admin
        .writer()
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .expect("drops the scratch database");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn exercise(database: &Database) {
    migrations(database).await;
    corrupt_rows(database).await;
    DatabaseProbe::new(database.clone())
        .check()
        .await
        .expect("the probe passes");
}

async fn migrations(database: &Database) {
    let before = migration_status(database).await.expect("reads the status");
    assert!(before.applied.is_empty());
    assert_eq!(
        before.pending,
        [
            "m20261122_000001_create_users",
            "m20261122_000002_create_markets",
            "m20261122_000003_create_positions_outbox_idempotency",
            "m20261122_000004_create_relay_cursors",
            "m20261122_000005_create_jobs",
            "m20261122_000006_add_position_payouts",
            "m20261122_000007_create_sessions",
            "m20261122_000008_add_market_search",
        ]
    );
    migrate_up(database).await.expect("migrates");
    migrate_up(database)
        .await
        .expect("migrating again does nothing");
    let after = migration_status(database).await.expect("reads the status");
    assert!(after.is_up_to_date());
    assert_eq!(after.applied, before.pending);
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn user(email: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(email).expect("valid email"),
        name: DisplayName::parse("Ada").expect("valid name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$stub".into()),
        role: Role::Moderator,
        balance: Amount::parse("12.34").expect("valid amount"),
        disabled: false,
        created_at: now(),
        updated_at: now(),
    }
}

async fn creator(database: &Database) -> UserId {
    let creator = user(&format!("{}@example.com", Uuid::new_v4().simple()));
    SeaUserRepository::new(database.clone())
        .insert(&creator)
        .await
        .expect("inserts the creator");
    creator.id
}

fn market(creator: UserId, name: &str, created_at: DateTime<Utc>) -> Market {
    let draft = MarketDraft {
        name: MarketName::parse(name).expect("valid name"),
        description: MarketDescription::parse("A question.").expect("valid description"),
        category: Category::parse("weather").expect("valid category"),
        end_date: created_at + Duration::days(30),
    };
    Market::open(
        MarketId::from_uuid(Uuid::now_v7()),
        draft,
        creator,
        created_at,
    )
    .expect("opens")
}

async fn corrupt_rows(database: &Database) {
    let repository = SeaMarketRepository::new(database.clone());
    let creator = creator(database).await;
    let market = market(creator, "Soon corrupt", now());
    repository.insert(&market).await.expect("inserts");
    database
        .writer()
        .execute_unprepared("UPDATE markets SET name = 'ab' WHERE name = 'Soon corrupt'")
        .await
        .expect("corrupts");
    match repository.find_by_id(market.id).await {
        Err(RepositoryError::Unavailable(cause)) => {
            assert!(cause.to_string().contains("corrupt"), "{cause}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
