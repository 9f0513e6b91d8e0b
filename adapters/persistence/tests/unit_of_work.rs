//! The unit of work on SQLite (file and memory) and PostgreSQL (when `TEST_DATABASE_URL` is set):
//! rollback on drop, commit, row locks that serialise concurrent transactions, transactions that go
//! on after a broken rule, and statement counting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use adapter_persistence::{
    Database, SeaMarketRepository, SeaOutbox, SeaPositionRepository, SeaUnitOfWork,
    SeaUserRepository,
};
use common::{cents, market, now, stored_market, stored_user, user};
use domain::listing::{PositionFilter, PositionListQuery};
use domain::ports::{
    MarketRepository, Outbox, PositionRepository, RepositoryError, UnitOfWork, UserRepository,
};
use domain::{DomainEvent, EventId, Position, PositionId, RecordedEvent, Side, UserId};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, Query};
use uuid::Uuid;

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::common::on_sqlite_file(super::$scenario).await;
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::common::on_sqlite_memory(super::$scenario).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::common::on_postgres(super::$scenario).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_dropped_transaction_leaves_nothing_and_a_committed_one_is_visible,
    concurrent_transactions_locking_the_same_user_run_one_after_the_other,
    refusals_are_reported_and_the_recoverable_ones_leave_the_transaction_usable,
    statements_are_counted,
);

fn event(user_id: UserId) -> RecordedEvent {
    RecordedEvent {
        id: EventId::from_uuid(Uuid::now_v7()),
        occurred_at: now(),
        event: DomainEvent::UserRegistered { user_id },
    }
}

async fn a_dropped_transaction_leaves_nothing_and_a_committed_one_is_visible(database: Database) {
    let unit_of_work = SeaUnitOfWork::new(database.clone());
    let users = SeaUserRepository::new(database.clone());
    let markets = SeaMarketRepository::new(database.clone());
    let outbox = SeaOutbox::new(database.clone());
    let write = async |commit: bool| {
        let creator = user(500);
        let market = market(creator.id);
        let recorded = event(creator.id);
        let transaction = unit_of_work.begin().await.expect("begins");
        transaction
            .users()
            .insert(&creator)
            .await
            .expect("inserts the user");
        transaction
            .markets()
            .insert(&market)
            .await
            .expect("inserts the market");
        transaction
            .outbox()
            .record(&recorded)
            .await
            .expect("records");
        assert_eq!(
            transaction
                .users()
                .find_by_id(creator.id)
                .await
                .expect("reads"),
            Some(creator.clone()),
            "a transaction sees its own writes"
        );
        if commit {
            transaction.commit().await.expect("commits");
        } else {
            drop(transaction);
        }
        (creator, market, recorded)
    };

    let (creator, market, _) = write(false).await;
    assert_eq!(users.find_by_id(creator.id).await.expect("reads"), None);
    assert_eq!(markets.find_by_id(market.id).await.expect("reads"), None);
    assert!(outbox.after(0, 10).await.expect("reads").is_empty());

    // A new transaction starts at once: the dropped one let go of its locks.
    let (creator, market, recorded) = tokio::time::timeout(Duration::from_secs(2), write(true))
        .await
        .expect("the dropped transaction released the database");
    assert_eq!(
        users.find_by_id(creator.id).await.expect("reads"),
        Some(creator)
    );
    assert_eq!(
        markets.find_by_id(market.id).await.expect("reads"),
        Some(market)
    );
    let events = outbox.after(0, 10).await.expect("reads");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, recorded);
}

async fn concurrent_transactions_locking_the_same_user_run_one_after_the_other(database: Database) {
    let user = stored_user(&database, 10_000).await;
    let unit_of_work = Arc::new(SeaUnitOfWork::new(database.clone()));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let unit_of_work = Arc::clone(&unit_of_work);
            tokio::spawn(async move {
                let transaction = unit_of_work.begin().await.expect("begins");
                let mut locked = transaction
                    .lock_user(user.id)
                    .await
                    .expect("locks")
                    .expect("the user exists");
                // Without the lock, the others would read the same balance meanwhile.
                tokio::time::sleep(Duration::from_millis(5)).await;
                locked.balance = locked.balance.checked_sub(cents(1)).expect("enough");
                transaction.users().update(&locked).await.expect("updates");
                transaction.commit().await.expect("commits");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the transaction ran");
    }
    let after = SeaUserRepository::new(database)
        .find_by_id(user.id)
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(after.balance, cents(10_000 - 20));
}

/// On PostgreSQL a failed statement aborts the transaction. Refusals that callers act on and go
/// on after (a taken email or id at user insert, an update that matches no row or an old version,
/// a taken position id) leave the transaction usable; the other broken rules are reported
/// correctly and end it (the port says to drop it).
async fn refusals_are_reported_and_the_recoverable_ones_leave_the_transaction_usable(
    database: Database,
) {
    let market = stored_market(&database).await;
    let unit_of_work = SeaUnitOfWork::new(database.clone());
    let transaction = unit_of_work.begin().await.expect("begins");
    let users = transaction.users();
    let first = user(100);
    users.insert(&first).await.expect("inserts");

    let mut same_email = user(0);
    same_email.email = first.email.clone();
    let mut same_id = user(0);
    same_id.id = first.id;
    let mut missing = user(0);
    missing.email = first.email.clone();
    assert!(matches!(
        users.insert(&same_email).await,
        Err(RepositoryError::Conflict("email"))
    ));
    assert!(matches!(
        users.insert(&same_id).await,
        Err(RepositoryError::Conflict("id"))
    ));
    assert!(
        matches!(
            users.insert(&first.clone()).await,
            Err(RepositoryError::Conflict("email"))
        ),
        "the email wins over the id, looked up after the failed insert"
    );
    assert!(matches!(
        users.update(&missing).await,
        Err(RepositoryError::NotFound)
    ));
    let mut stale = market.clone();
    stale.version += 1;
    assert!(matches!(
        transaction.markets().update(&stale, 41).await,
        Err(RepositoryError::Stale)
    ));
    let position = |market_id, user_id| Position {
        id: PositionId::from_uuid(Uuid::now_v7()),
        market_id,
        user_id,
        side: Side::Yes,
        amount: cents(100),
        payout: None,
        created_at: now(),
    };
    let kept = position(market.id, first.id);
    let positions = transaction.positions();
    positions.insert(&kept).await.expect("inserts");
    assert!(matches!(
        positions.insert(&kept).await,
        Err(RepositoryError::Conflict("id"))
    ));
    transaction
        .commit()
        .await
        .expect("commits after the refusals");
    assert_eq!(
        SeaUserRepository::new(database.clone())
            .find_by_id(first.id)
            .await
            .expect("reads"),
        Some(first.clone())
    );
    let listed = SeaPositionRepository::on_primary(database.clone())
        .list(&PositionListQuery {
            filter: PositionFilter {
                user_id: Some(first.id),
                ..PositionFilter::default()
            },
            ..PositionListQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(listed.items, [kept]);

    // Broken rules: each reported as the port says, each in a transaction then dropped.
    let mut other = user(0);
    SeaUserRepository::new(database.clone())
        .insert(&other)
        .await
        .expect("inserts");
    other.email = first.email.clone();
    let transaction = unit_of_work.begin().await.expect("begins");
    assert!(matches!(
        transaction.users().update(&other).await,
        Err(RepositoryError::Conflict("email"))
    ));
    drop(transaction);
    let transaction = unit_of_work.begin().await.expect("begins");
    let unknown_market = position(domain::MarketId::from_uuid(Uuid::now_v7()), first.id);
    assert!(matches!(
        transaction.positions().insert(&unknown_market).await,
        Err(RepositoryError::Conflict("market_id"))
    ));
    drop(transaction);
    let transaction = unit_of_work.begin().await.expect("begins");
    let unknown_user = position(market.id, UserId::from_uuid(Uuid::now_v7()));
    assert!(matches!(
        transaction.positions().insert(&unknown_user).await,
        Err(RepositoryError::Conflict("user_id"))
    ));
}

async fn statements_are_counted(database: Database) {
    let user = stored_user(&database, 100).await;
    let clone = database.clone();
    let before = database.statement_count();
    assert!(before > 0, "migrating and inserting ran statements");

    SeaUserRepository::new(clone.clone())
        .find_by_id(user.id)
        .await
        .expect("reads");
    assert_eq!(
        database.statement_count(),
        before + 1,
        "clones share the count"
    );

    SeaUserRepository::new(database.clone())
        .find_many(&[])
        .await
        .expect("reads");
    assert_eq!(database.statement_count(), before + 1, "no ids, no query");

    let transaction = SeaUnitOfWork::new(database.clone())
        .begin()
        .await
        .expect("begins");
    let mut locked = transaction
        .lock_user(user.id)
        .await
        .expect("locks")
        .expect("exists");
    locked.balance = cents(99);
    transaction.users().update(&locked).await.expect("updates");
    transaction.commit().await.expect("commits");
    // BEGIN, COMMIT and savepoints are not counted.
    assert_eq!(database.statement_count(), before + 3);
    assert_eq!(clone.statement_count(), database.statement_count());
}

#[tokio::test]
async fn statements_on_the_replica_are_counted_with_the_primary() {
    let writer = sea_orm::Database::connect("sqlite::memory:")
        .await
        .expect("connects");
    let reader = sea_orm::Database::connect("sqlite::memory:")
        .await
        .expect("connects");
    let database = Database::with_replica(writer, reader);
    let select = Query::select().expr(Expr::val(1)).to_owned();
    database.writer().query_one(&select).await.expect("runs");
    database.reader().query_one(&select).await.expect("runs");
    database.reader().query_all(&select).await.expect("runs");
    assert_eq!(database.statement_count(), 3);
    // Raw SQL bypasses SeaORM's metric callback.
    database
        .reader()
        .execute_unprepared("SELECT 1")
        .await
        .expect("runs");
    assert_eq!(database.statement_count(), 3);
}
