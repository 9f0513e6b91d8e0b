//! Positions, the outbox and idempotency records on SQLite and PostgreSQL (when
//! `TEST_DATABASE_URL` is set): the SQL of each store and how each database reports broken rules.
//! The full port contracts are in the workspace's `tests/`.

mod common;

use std::sync::Arc;

use adapter_persistence::{
    Database, SeaIdempotencyStore, SeaMarketRepository, SeaOutbox, SeaPositionRepository,
    SeaUnitOfWork, SeaUserRepository,
};
use chrono::{DateTime, Duration, Utc};
use common::{cents, now, stored_market, stored_user};
use domain::listing::{PageRequest, PositionFilter, PositionListQuery, PositionSort};
use domain::ports::{
    Claim, ClaimRequest, IdempotencyScope, IdempotencyStore, MarketRepository, Outbox,
    PositionRepository, RepositoryError, StoredResponse, UnitOfWork, UserRepository,
};
use domain::{DomainEvent, EventId, MarketId, Position, PositionId, RecordedEvent, Side, UserId};
use uuid::Uuid;

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::common::on_sqlite_file(super::$scenario).await;
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
    positions_report_broken_references_by_field,
    positions_are_listed_filtered_sorted_and_counted,
    users_and_markets_are_found_many_at_once_and_users_updated,
    the_outbox_returns_committed_events_in_sequence_order,
    a_relay_reading_while_transactions_commit_misses_no_event,
    idempotency_claims_replay_refuse_and_expire,
    only_one_of_concurrent_claims_acquires_the_key,
);

fn position(
    market_id: MarketId,
    user_id: UserId,
    side: Side,
    amount: i64,
    at: DateTime<Utc>,
) -> Position {
    Position {
        id: PositionId::from_uuid(Uuid::now_v7()),
        market_id,
        user_id,
        side,
        amount: cents(amount),
        payout: None,
        created_at: at,
    }
}

async fn positions_report_broken_references_by_field(database: Database) {
    let repository = SeaPositionRepository::new(database.clone());
    let market = stored_market(&database).await;
    let user = stored_user(&database, 0).await;
    let unknown_market = MarketId::from_uuid(Uuid::now_v7());
    let unknown_user = UserId::from_uuid(Uuid::now_v7());
    let kept = position(market.id, user.id, Side::Yes, 100, now());
    repository.insert(&kept).await.expect("inserts");

    let mut same_id = position(market.id, user.id, Side::No, 200, now());
    same_id.id = kept.id;
    let cases = [
        (same_id, "id"),
        (
            position(unknown_market, user.id, Side::Yes, 100, now()),
            "market_id",
        ),
        (
            position(market.id, unknown_user, Side::Yes, 100, now()),
            "user_id",
        ),
        (
            position(unknown_market, unknown_user, Side::Yes, 100, now()),
            "market_id",
        ),
    ];
    for (position, field) in cases {
        match repository.insert(&position).await {
            Err(RepositoryError::Conflict(reported)) => assert_eq!(reported, field),
            other => panic!("expected Conflict({field}), got {other:?}"),
        }
    }
}

async fn positions_are_listed_filtered_sorted_and_counted(database: Database) {
    let repository = SeaPositionRepository::new(database.clone());
    let market = stored_market(&database).await;
    let other_market = stored_market(&database).await;
    let (ada, bob) = (
        stored_user(&database, 0).await,
        stored_user(&database, 0).await,
    );
    let start = now();
    let at = |minutes| start + Duration::minutes(minutes);
    let first = position(market.id, ada.id, Side::Yes, 300, at(0));
    let second = position(market.id, bob.id, Side::No, 500, at(1));
    let third = position(market.id, ada.id, Side::No, 300, at(2));
    let elsewhere = position(other_market.id, ada.id, Side::Yes, 900, at(3));
    for position in [&first, &second, &third, &elsewhere] {
        repository.insert(position).await.expect("inserts");
    }
    let list = async |filter: PositionFilter, sort: &str, limit: u64, offset: u64| {
        SeaPositionRepository::on_primary(database.clone())
            .list(&PositionListQuery {
                filter,
                sort: PositionSort::parse(sort).expect("a valid sort"),
                page: PageRequest::new(limit, offset).expect("a valid page"),
            })
            .await
            .expect("lists")
    };
    let by_market = PositionFilter {
        market_id: Some(market.id),
        ..PositionFilter::default()
    };

    let page = list(by_market.clone(), "-created_at", 10, 0).await;
    assert_eq!(page.items, [third.clone(), second.clone(), first.clone()]);
    assert_eq!(page.total, 3);

    // Ties on the amount are broken by id, ascending.
    let page = list(by_market.clone(), "-amount", 2, 0).await;
    assert_eq!(page.items, [second.clone(), first.clone()]);
    assert_eq!(page.total, 3, "a full page counts the matches");
    let page = list(by_market.clone(), "amount,-created_at", 10, 1).await;
    assert_eq!(page.items, [first.clone(), second.clone()]);

    let by_ada_no = PositionFilter {
        user_id: Some(ada.id),
        side: Some(Side::No),
        ..PositionFilter::default()
    };
    assert_eq!(list(by_ada_no, "created_at", 10, 0).await.items, [third]);
    let by_ada = PositionFilter {
        user_id: Some(ada.id),
        ..PositionFilter::default()
    };
    let page = list(by_ada, "-created_at", 1, 5).await;
    assert!(page.items.is_empty());
    assert_eq!(page.total, 3);
    // The default repository reads the reader, which is the writer here.
    assert_eq!(
        repository
            .list(&PositionListQuery::default())
            .await
            .expect("lists")
            .total,
        4
    );
}

async fn users_and_markets_are_found_many_at_once_and_users_updated(database: Database) {
    let users = SeaUserRepository::new(database.clone());
    let markets = SeaMarketRepository::new(database.clone());
    let (ada, bob) = (
        stored_user(&database, 0).await,
        stored_user(&database, 5).await,
    );
    let unknown = UserId::from_uuid(Uuid::now_v7());
    let mut found = users
        .find_many(&[bob.id, unknown, ada.id, bob.id])
        .await
        .expect("finds");
    found.sort_by_key(|user| user.id);
    assert_eq!(found, [ada.clone(), bob.clone()]);
    assert!(users.find_many(&[]).await.expect("finds").is_empty());
    // More than a batch is split, not refused.
    let many: Vec<UserId> = (0..2_500)
        .map(|_| UserId::from_uuid(Uuid::now_v7()))
        .chain([ada.id])
        .collect();
    assert_eq!(
        users.find_many(&many).await.expect("finds"),
        std::slice::from_ref(&ada)
    );

    let mut changed = ada.clone();
    changed.balance = cents(42);
    changed.updated_at = now() + Duration::seconds(1);
    users.update(&changed).await.expect("updates");
    assert_eq!(
        users.find_by_id(ada.id).await.expect("reads"),
        Some(changed.clone())
    );
    changed.email = bob.email.clone();
    assert!(matches!(
        users.update(&changed).await,
        Err(RepositoryError::Conflict("email"))
    ));
    let mut missing = common::user(0);
    missing.id = unknown;
    assert!(matches!(
        users.update(&missing).await,
        Err(RepositoryError::NotFound)
    ));

    let (first, second) = (
        stored_market(&database).await,
        stored_market(&database).await,
    );
    let mut found = SeaMarketRepository::on_primary(database.clone())
        .find_many(&[second.id, first.id, MarketId::from_uuid(Uuid::now_v7())])
        .await
        .expect("finds");
    found.sort_by_key(|market| market.id);
    assert_eq!(found, [first.clone(), second]);
    assert_eq!(
        markets.find_many(&[first.id]).await.expect("finds"),
        [first]
    );
}

fn event(at: DateTime<Utc>) -> RecordedEvent {
    RecordedEvent {
        id: EventId::from_uuid(Uuid::now_v7()),
        occurred_at: at,
        event: DomainEvent::MarketDeleted {
            market_id: MarketId::from_uuid(Uuid::now_v7()),
        },
    }
}

async fn the_outbox_returns_committed_events_in_sequence_order(database: Database) {
    let outbox = SeaOutbox::new(database.clone());
    let unit_of_work = SeaUnitOfWork::new(database.clone());
    let (first, second, third) = (event(now()), event(now()), event(now()));
    outbox.record(&first).await.expect("records");
    let transaction = unit_of_work.begin().await.expect("begins");
    transaction.outbox().record(&second).await.expect("records");
    transaction.outbox().record(&third).await.expect("records");
    assert_eq!(
        outbox.after(0, 10).await.expect("reads").len(),
        1,
        "not committed yet"
    );
    transaction.commit().await.expect("commits");

    let stored = outbox.after(0, 10).await.expect("reads");
    let events: Vec<_> = stored.iter().map(|stored| stored.event.clone()).collect();
    assert_eq!(events, [first, second.clone(), third]);
    assert!(
        stored
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    let next = outbox.after(stored[0].sequence, 1).await.expect("reads");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event, second);
    assert!(
        outbox
            .after(stored[2].sequence, 10)
            .await
            .expect("reads")
            .is_empty()
    );
    assert!(outbox.after(0, 0).await.expect("reads").is_empty());
}

/// A relay resumes after the last sequence it saw: an event committed later with a smaller
/// sequence would be lost to it.
async fn a_relay_reading_while_transactions_commit_misses_no_event(database: Database) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let unit_of_work = Arc::new(SeaUnitOfWork::new(database.clone()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let unit_of_work = Arc::clone(&unit_of_work);
            tokio::spawn(async move {
                for _ in 0..EACH {
                    let transaction = unit_of_work.begin().await.expect("begins");
                    transaction
                        .outbox()
                        .record(&event(now()))
                        .await
                        .expect("records");
                    transaction.commit().await.expect("commits");
                }
            })
        })
        .collect();
    let outbox = SeaOutbox::new(database);
    let (mut last, mut seen) = (0, 0);
    let mut relay = async |outbox: &SeaOutbox| {
        for event in outbox.after(last, 1_000).await.expect("reads") {
            last = event.sequence;
            seen += 1;
        }
    };
    while !writers.iter().all(tokio::task::JoinHandle::is_finished) {
        relay(&outbox).await;
    }
    for writer in writers {
        writer.await.expect("the writer ran");
    }
    relay(&outbox).await;
    assert_eq!(seen, WRITERS * EACH);
}

fn scope(key: &str) -> IdempotencyScope {
    IdempotencyScope {
        caller: Uuid::now_v7().to_string(),
        route: "POST /api/v1/markets/{id}/positions".into(),
        key: key.into(),
    }
}

fn claim(scope: &IdempotencyScope, fingerprint: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        scope: scope.clone(),
        fingerprint: fingerprint.into(),
        now,
        expires_at: now + Duration::hours(24),
        lease_until: now + Duration::seconds(30),
    }
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("Location".into(), "/api/v1/positions/1".into()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: br#"{"id":"1"}"#.to_vec(),
    }
}

async fn idempotency_claims_replay_refuse_and_expire(database: Database) {
    let store = SeaIdempotencyStore::new(database.clone());
    let unit_of_work = SeaUnitOfWork::new(database.clone());
    let start = now();
    let key = scope("key-1");
    assert_eq!(
        store.claim(&claim(&key, "a", start)).await.expect("claims"),
        Claim::Acquired
    );
    assert_eq!(
        store.claim(&claim(&key, "a", start)).await.expect("claims"),
        Claim::InProgress
    );
    assert_eq!(
        store.claim(&claim(&key, "b", start)).await.expect("claims"),
        Claim::Mismatch
    );

    // Completed in a transaction that is dropped: still in progress.
    let transaction = unit_of_work.begin().await.expect("begins");
    transaction
        .idempotency()
        .complete(&key, &response())
        .await
        .expect("completes");
    drop(transaction);
    assert_eq!(
        store.claim(&claim(&key, "a", start)).await.expect("claims"),
        Claim::InProgress
    );
    let transaction = unit_of_work.begin().await.expect("begins");
    transaction
        .idempotency()
        .complete(&key, &response())
        .await
        .expect("completes");
    transaction.commit().await.expect("commits");
    assert_eq!(
        store.claim(&claim(&key, "a", start)).await.expect("claims"),
        Claim::Replay(response())
    );
    assert_eq!(
        store.claim(&claim(&key, "b", start)).await.expect("claims"),
        Claim::Mismatch
    );
    assert!(matches!(
        store.complete(&key, &response()).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        store.complete(&scope("never-claimed"), &response()).await,
        Err(RepositoryError::NotFound)
    ));
    store.release(&key).await.expect("releases");
    assert_eq!(
        store.claim(&claim(&key, "a", start)).await.expect("claims"),
        Claim::Replay(response()),
        "a completed record is not released"
    );

    // A released claim may be claimed again.
    let released = scope("key-2");
    assert_eq!(
        store
            .claim(&claim(&released, "a", start))
            .await
            .expect("claims"),
        Claim::Acquired
    );
    store.release(&released).await.expect("releases");
    assert_eq!(
        store
            .claim(&claim(&released, "a", start))
            .await
            .expect("claims"),
        Claim::Acquired
    );

    // After its lease, an unfinished claim counts as absent; after its expiry, any record does.
    let later = start + Duration::minutes(1);
    assert_eq!(
        store
            .claim(&claim(&released, "c", later))
            .await
            .expect("claims"),
        Claim::Acquired
    );
    assert_eq!(
        store
            .claim(&claim(&released, "c", later))
            .await
            .expect("claims"),
        Claim::InProgress
    );
    let much_later = start + Duration::days(2);
    assert_eq!(
        store
            .claim(&claim(&key, "b", much_later))
            .await
            .expect("claims"),
        Claim::Acquired
    );

    // `key` was renewed at `much_later`; `released` expires a day after `later`.
    assert_eq!(
        store
            .purge_expired(start + Duration::days(1))
            .await
            .expect("purges"),
        0
    );
    assert_eq!(
        store
            .purge_expired(later + Duration::days(1))
            .await
            .expect("purges"),
        1
    );
    assert_eq!(
        store
            .claim(&claim(&released, "d", much_later))
            .await
            .expect("claims"),
        Claim::Acquired
    );
}

async fn only_one_of_concurrent_claims_acquires_the_key(database: Database) {
    let store = Arc::new(SeaIdempotencyStore::new(database));
    let start = now();
    let race = async |key: &IdempotencyScope, at: DateTime<Utc>| {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (store, request) = (Arc::clone(&store), claim(key, "a", at));
                tokio::spawn(async move { store.claim(&request).await.expect("claims") })
            })
            .collect();
        let mut acquired = 0;
        for task in tasks {
            match task.await.expect("the claim ran") {
                Claim::Acquired => acquired += 1,
                Claim::InProgress => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        acquired
    };
    let key = scope("raced");
    assert_eq!(race(&key, start).await, 1, "a fresh key");
    assert_eq!(
        race(&key, start + Duration::minutes(1)).await,
        1,
        "a claim whose lease ended"
    );
}
