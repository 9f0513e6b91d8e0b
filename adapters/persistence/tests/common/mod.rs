//! Shared by the integration tests: a scratch database per test (a SQLite file, SQLite in memory,
//! or a PostgreSQL database created and dropped here when `TEST_DATABASE_URL` is set) and
//! fixtures.

#![allow(dead_code)]

use std::future::Future;

use adapter_persistence::{
    Database, PoolOptions, SeaMarketRepository, SeaUserRepository, connect, migrate_up,
};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use domain::market::MarketDraft;
use domain::ports::{MarketRepository, UserRepository};
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    PasswordHash, Role, User, UserId,
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

/// Runs `scenario` on a migrated SQLite file of its own.
pub async fn on_sqlite_file<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let folder = std::env::temp_dir().join(format!("adapter-persistence-{}", Uuid::new_v4()));
    let url = format!("sqlite://{}", folder.join("test.db").display());
    let database = migrated(&url).await;
    let outcome = tokio::spawn(scenario(database.clone())).await;
    database.close().await.expect("closes");
    std::fs::remove_dir_all(folder).expect("removes the scratch folder");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Runs `scenario` on a migrated SQLite database in memory.
pub async fn on_sqlite_memory<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    scenario(migrated("sqlite::memory:").await).await;
}

/// Runs `scenario` on a migrated scratch PostgreSQL database, when `TEST_DATABASE_URL` is set.
pub async fn on_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping PostgreSQL");
        return;
    };
    let admin = connect(&server, None, &PoolOptions::default())
        .await
        .expect("connects to the server");
    let name = format!("persistence_{}", Uuid::new_v4().simple());
    admin
        .writer()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creates a scratch database");
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    let database = migrated(&format!("{base}/{name}")).await;
    // Run in a task so that the scratch database is dropped even when an assertion fails.
    let outcome = tokio::spawn(scenario(database.clone())).await;
    database.close().await.expect("closes");
    admin
        .writer()
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drops the scratch database");
    admin.close().await.expect("closes");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn migrated(url: &str) -> Database {
    let database = connect(url, None, &PoolOptions::default())
        .await
        .expect("connects");
    migrate_up(&database).await.expect("migrates");
    database
}

/// Now, in whole microseconds as the `Clock` port promises.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

/// A user with a unique email and `balance` cents.
pub fn user(balance: i64) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple()))
            .expect("valid email"),
        name: DisplayName::parse("Ada").expect("valid name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$stub".into()),
        role: Role::User,
        balance: cents(balance),
        disabled: false,
        created_at: now(),
        updated_at: now(),
    }
}

/// An active market created by `creator`, ending in 30 days.
pub fn market(creator: UserId) -> Market {
    let draft = MarketDraft {
        name: MarketName::parse("Will it rain?").expect("valid name"),
        description: MarketDescription::parse("A question.").expect("valid description"),
        category: Category::parse("weather").expect("valid category"),
        end_date: now() + Duration::days(30),
    };
    Market::open(MarketId::from_uuid(Uuid::now_v7()), draft, creator, now()).expect("opens")
}

/// A stored user with `balance` cents.
pub async fn stored_user(database: &Database, balance: i64) -> User {
    let user = user(balance);
    SeaUserRepository::new(database.clone())
        .insert(&user)
        .await
        .expect("inserts the user");
    user
}

/// A stored market, with its stored creator.
pub async fn stored_market(database: &Database) -> Market {
    let creator = stored_user(database, 0).await;
    let market = market(creator.id);
    SeaMarketRepository::new(database.clone())
        .insert(&market)
        .await
        .expect("inserts the market");
    market
}
