//! Read replica routing, proven by giving the "replica" different contents from the primary (two
//! separate databases): lists read the replica, writes go to the primary, and a caller who just
//! wrote reads the primary for the read-your-own-writes window. That routing is what lists do with
//! caching off; with caching on, a page that will be shared through the cache is built from the
//! primary (ADR 0010), which the last test shows.

use std::sync::Arc;
use std::time::Duration;

use adapter_persistence::{SeaMarketRepository, SeaUserRepository};
use chrono::{TimeDelta, Utc};
use domain::market::MarketDraft;
use domain::ports::{MarketRepository, UserRepository};
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    PasswordHash, Role, User, UserId,
};
use secrecy::SecretString;
use tests::{Backend, TestApp, TestDatabase, test_config};
use uuid::Uuid;

/// A market that only the replica has.
async fn replica_only_market(replica: &TestDatabase) {
    let replica_pools = replica.migrated().await;
    let ghost = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse("ghost@example.com").expect("an email"),
        name: DisplayName::parse("Ghost").expect("a name"),
        password_hash: PasswordHash::from_phc(String::new()),
        role: Role::User,
        balance: Amount::ZERO,
        disabled: false,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    SeaUserRepository::new(replica_pools.clone())
        .insert(&ghost)
        .await
        .expect("a user on the replica");
    let replica_only = Market::open(
        MarketId::from_uuid(Uuid::now_v7()),
        MarketDraft {
            name: MarketName::parse("Only on the replica").expect("a name"),
            description: MarketDescription::default(),
            category: Category::parse("test").expect("a category"),
            end_date: Utc::now() + TimeDelta::days(30),
        },
        ghost.id,
        Utc::now(),
    )
    .expect("a market");
    Arc::new(SeaMarketRepository::new(replica_pools))
        .insert(&replica_only)
        .await
        .expect("a market on the replica");
}

fn names(reply: &tests::Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["name"].as_str().expect("a name").to_owned())
        .collect()
}

async fn reads_go_to_the_replica_and_a_writer_reads_its_own_writes(backend: Backend) {
    let (Some(primary), Some(replica)) = (
        TestDatabase::of(backend).await,
        TestDatabase::of(backend).await,
    ) else {
        return;
    };
    replica_only_market(&replica).await;
    let replica_url = replica.url().to_owned();
    let app = TestApp::spawn_with(backend, primary, move |url| {
        let mut config = test_config(url);
        config.database.read_url = Some(SecretString::from(replica_url));
        config.database.read_your_writes_ms = 1_500;
        config.cache.enabled = false;
        config
    })
    .await;

    assert_eq!(
        names(&app.get("/api/v1/markets").await),
        ["Only on the replica"],
        "an anonymous list reads the replica"
    );
    let (_, writer) = app.signed_in_user().await;
    let (_, reader) = app.signed_in_user().await;
    app.create_market(&writer, "Written to the primary", "test")
        .await;
    assert_eq!(
        names(&app.get_as(&writer, "/api/v1/markets").await),
        ["Written to the primary"],
        "the writer reads its own write from the primary"
    );
    assert_eq!(
        names(&app.get_as(&reader, "/api/v1/markets").await),
        ["Only on the replica"],
        "someone who did not write still reads the replica"
    );
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(
        names(&app.get_as(&writer, "/api/v1/markets").await),
        ["Only on the replica"],
        "after the window the writer reads the replica again"
    );
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_go_to_the_replica_and_a_writer_reads_its_own_writes() {
    reads_go_to_the_replica_and_a_writer_reads_its_own_writes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_go_to_the_replica_and_a_writer_reads_its_own_writes() {
    reads_go_to_the_replica_and_a_writer_reads_its_own_writes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_caching_on_shared_pages_are_built_from_the_primary() {
    let (Some(primary), Some(replica)) = (
        TestDatabase::of(Backend::Postgres).await,
        TestDatabase::of(Backend::Postgres).await,
    ) else {
        return;
    };
    replica_only_market(&replica).await;
    let replica_url = replica.url().to_owned();
    let app = TestApp::spawn_with(Backend::Postgres, primary, move |url| {
        let mut config = test_config(url);
        config.database.read_url = Some(SecretString::from(replica_url));
        config
    })
    .await;
    let (_, writer) = app.signed_in_user().await;
    app.create_market(&writer, "Written to the primary", "test")
        .await;
    assert_eq!(
        names(&app.get("/api/v1/markets").await),
        ["Written to the primary"],
        "a page shared through the cache never shows a replica's lag"
    );
    drop(replica);
}
