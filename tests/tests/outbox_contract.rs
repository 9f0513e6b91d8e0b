//! The `Outbox` contract, run against every adapter: in memory, SeaORM on SQLite and SeaORM on
//! PostgreSQL. Each test gets fresh, empty repositories.
//!
//! Events are recorded through a transaction's outbox (where use cases record them) and read back
//! through `repositories.outbox` (where a relay reads them).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ports::StoredEvent;
use domain::{
    Amount, DomainEvent, EventId, MarketId, MarketStatus, Outcome, PositionId, RecordedEvent, Side,
    UserId,
};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    events_of_a_committed_transaction_come_back_exactly_in_recording_order,
    every_kind_of_event_round_trips_exactly,
    events_of_later_transactions_follow_those_of_earlier_ones,
    after_resumes_strictly_after_the_given_sequence,
    the_limit_caps_how_many_events_come_back,
    a_limit_larger_than_any_count_returns_every_event,
    events_recorded_in_a_dropped_transaction_never_appear,
    a_relay_resuming_after_the_last_sequence_it_saw_misses_no_later_commit,
);

// ---------------------------------------------------------------------------------------------
// Building blocks

const BASE_MICROS: i64 = 1_780_000_000_123_456;

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_MICROS + micros).expect("a timestamp in range")
}

fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A `MarketDeleted` event numbered `n`: a distinct id, market and time per `n`.
fn event(n: u128) -> RecordedEvent {
    RecordedEvent {
        id: EventId::from_uuid(uuid(0xe000 + n)),
        occurred_at: at(i64::try_from(n).expect("small") * 1_001),
        event: DomainEvent::MarketDeleted {
            market_id: MarketId::from_uuid(uuid(0xa000 + n)),
        },
    }
}

/// One event of every kind (and of every status and outcome), with every field set to something
/// other than a default, and timestamps with and without a fraction of a second.
fn every_kind() -> Vec<RecordedEvent> {
    let market = MarketId::from_uuid(uuid(0x00ff_0000_0000_0000_0000_0000_0000_0001));
    let user = UserId::from_uuid(uuid(0xff00_0000_0000_0000_0000_0000_0000_0002));
    let mut kinds = vec![
        DomainEvent::UserRegistered { user_id: user },
        DomainEvent::MarketCreated {
            market_id: market,
            creator_id: user,
        },
        DomainEvent::MarketUpdated {
            market_id: market,
            version: i64::MAX,
        },
    ];
    for (status, outcome, version) in [
        (MarketStatus::Active, None, 2),
        (MarketStatus::Closed, None, 3),
        (MarketStatus::Resolved, Some(Outcome::Yes), 4),
        (MarketStatus::Resolved, Some(Outcome::No), 5),
        (MarketStatus::Cancelled, None, 6),
    ] {
        kinds.push(DomainEvent::MarketStatusChanged {
            market_id: market,
            status,
            outcome,
            version,
        });
    }
    kinds.extend([
        DomainEvent::PositionOpened {
            position_id: PositionId::from_uuid(uuid(7)),
            market_id: market,
            user_id: user,
            side: Side::Yes,
            amount: cents(2_501),
            yes_volume: Amount::MAX,
            no_volume: Amount::ZERO,
            version: 8,
        },
        DomainEvent::PositionOpened {
            position_id: PositionId::from_uuid(uuid(8)),
            market_id: market,
            user_id: user,
            side: Side::No,
            amount: cents(1),
            yes_volume: cents(99),
            no_volume: cents(100_001),
            version: 9,
        },
        DomainEvent::MarketDeleted { market_id: market },
    ]);
    kinds
        .into_iter()
        .zip(0_i64..)
        .map(|(event, n)| RecordedEvent {
            id: EventId::from_uuid(Uuid::now_v7()),
            occurred_at: if n % 2 == 0 {
                at(n * 1_000_003)
            } else {
                DateTime::from_timestamp(1_780_000_000 + n, 0).expect("in range")
            },
            event,
        })
        .collect()
}

/// Records `events` in one transaction and commits it.
async fn commit(repositories: &Repositories, events: &[RecordedEvent]) {
    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    for event in events {
        transaction
            .outbox()
            .record(event)
            .await
            .expect("the event is recorded");
    }
    transaction.commit().await.expect("the commit");
}

async fn after(repositories: &Repositories, sequence: i64, limit: u64) -> Vec<StoredEvent> {
    repositories
        .outbox
        .after(sequence, limit)
        .await
        .expect("the outbox reads")
}

async fn everything(repositories: &Repositories) -> Vec<StoredEvent> {
    after(repositories, 0, 1_000).await
}

fn events_of(stored: &[StoredEvent]) -> Vec<RecordedEvent> {
    stored.iter().map(|stored| stored.event.clone()).collect()
}

fn sequences_of(stored: &[StoredEvent]) -> Vec<i64> {
    stored.iter().map(|stored| stored.sequence).collect()
}

fn assert_increasing(sequences: &[i64]) {
    assert!(
        sequences.windows(2).all(|pair| pair[0] < pair[1]),
        "sequences must increase: {sequences:?}"
    );
    assert!(
        sequences.iter().all(|sequence| *sequence > 0),
        "after(0, ..) returns sequences above 0: {sequences:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Recording and reading

async fn events_of_a_committed_transaction_come_back_exactly_in_recording_order(
    repositories: Repositories,
) {
    // Recorded out of their id order, so that an adapter ordering by id is caught.
    let events: Vec<RecordedEvent> = [5, 1, 4, 2, 3].into_iter().map(event).collect();
    commit(&repositories, &events).await;

    let stored = everything(&repositories).await;
    assert_eq!(events_of(&stored), events);
    assert_increasing(&sequences_of(&stored));

    // Reading does not consume: the same events with the same sequences come back again.
    assert_eq!(everything(&repositories).await, stored);
}

async fn every_kind_of_event_round_trips_exactly(repositories: Repositories) {
    let events = every_kind();
    commit(&repositories, &events).await;

    let stored = everything(&repositories).await;
    assert_eq!(stored.len(), events.len());
    for (stored, recorded) in stored.iter().zip(&events) {
        assert_eq!(&stored.event, recorded);
    }
    assert_increasing(&sequences_of(&stored));
}

async fn events_of_later_transactions_follow_those_of_earlier_ones(repositories: Repositories) {
    commit(&repositories, &[event(3), event(1)]).await;
    commit(&repositories, &[event(2)]).await;
    commit(&repositories, &[]).await;
    commit(&repositories, &[event(5), event(4)]).await;

    let stored = everything(&repositories).await;
    assert_eq!(
        events_of(&stored),
        vec![event(3), event(1), event(2), event(5), event(4)]
    );
    assert_increasing(&sequences_of(&stored));
}

async fn after_resumes_strictly_after_the_given_sequence(repositories: Repositories) {
    let events: Vec<RecordedEvent> = (1..=6).map(event).collect();
    commit(&repositories, &events[..2]).await;
    commit(&repositories, &events[2..]).await;
    let stored = everything(&repositories).await;
    assert_eq!(events_of(&stored), events);
    let sequences = sequences_of(&stored);

    for (index, sequence) in sequences.iter().enumerate() {
        assert_eq!(
            after(&repositories, *sequence, 1_000).await,
            stored[index + 1..].to_vec(),
            "after {sequence}"
        );
        // Any number between two sequences resumes at the next one.
        assert_eq!(
            after(&repositories, *sequence - 1, 1_000).await,
            stored[index..].to_vec(),
            "after {}",
            sequence - 1
        );
    }
    let last = *sequences.last().expect("six events");
    assert_eq!(after(&repositories, last, 1_000).await, vec![]);
    assert_eq!(after(&repositories, last + 1_000, 1_000).await, vec![]);
    assert_eq!(after(&repositories, i64::MAX, 1_000).await, vec![]);
    // Below the first sequence, everything.
    assert_eq!(after(&repositories, -1, 1_000).await, stored);
    assert_eq!(after(&repositories, i64::MIN, 1_000).await, stored);
}

async fn the_limit_caps_how_many_events_come_back(repositories: Repositories) {
    let events: Vec<RecordedEvent> = (1..=7).map(event).collect();
    commit(&repositories, &events).await;
    let stored = everything(&repositories).await;
    assert_eq!(stored.len(), 7);

    assert_eq!(after(&repositories, 0, 0).await, vec![]);
    assert_eq!(after(&repositories, 0, 1).await, stored[..1].to_vec());
    assert_eq!(after(&repositories, 0, 3).await, stored[..3].to_vec());
    assert_eq!(after(&repositories, 0, 7).await, stored);
    assert_eq!(after(&repositories, 0, 8).await, stored);
    assert_eq!(
        after(&repositories, stored[1].sequence, 2).await,
        stored[2..4].to_vec()
    );
    assert_eq!(
        after(&repositories, stored[5].sequence, 5).await,
        stored[6..].to_vec()
    );

    // A relay reading two at a time sees every event once, in order.
    let mut relayed = Vec::new();
    let mut cursor = 0;
    loop {
        let batch = after(&repositories, cursor, 2).await;
        assert!(batch.len() <= 2, "{batch:?}");
        let Some(last) = batch.last() else { break };
        cursor = last.sequence;
        relayed.extend(batch);
    }
    assert_eq!(relayed, stored);
}

async fn a_limit_larger_than_any_count_returns_every_event(repositories: Repositories) {
    let events: Vec<RecordedEvent> = (1..=3).map(event).collect();
    commit(&repositories, &events).await;
    let stored = everything(&repositories).await;
    assert_eq!(events_of(&stored), events);

    for limit in [
        u64::from(u32::MAX),
        u64::try_from(i64::MAX).expect("fits"),
        u64::MAX,
    ] {
        assert_eq!(
            after(&repositories, 0, limit).await,
            stored,
            "limit {limit}"
        );
        assert_eq!(
            after(&repositories, stored[0].sequence, limit).await,
            stored[1..].to_vec(),
            "limit {limit}"
        );
    }
}

async fn events_recorded_in_a_dropped_transaction_never_appear(repositories: Repositories) {
    let dropped = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    dropped.outbox().record(&event(1)).await.expect("recorded");
    dropped.outbox().record(&event(2)).await.expect("recorded");
    drop(dropped);
    assert_eq!(everything(&repositories).await, vec![]);

    commit(&repositories, &[event(3)]).await;
    assert_eq!(events_of(&everything(&repositories).await), vec![event(3)]);

    // Dropped between two commits: the committed events are all there, in order, and nothing
    // else.
    let dropped = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    dropped.outbox().record(&event(4)).await.expect("recorded");
    drop(dropped);
    // The dropped events' ids were never stored: recording them again is fine.
    commit(&repositories, &[event(1), event(5)]).await;

    let stored = everything(&repositories).await;
    assert_eq!(events_of(&stored), vec![event(3), event(1), event(5)]);
    assert_increasing(&sequences_of(&stored));
    // Not even a relay that resumes after the first event sees a dropped one.
    assert_eq!(
        events_of(&after(&repositories, stored[0].sequence, 1_000).await),
        vec![event(1), event(5)]
    );
}

/// Transaction A records an event; transaction B starts later, records one and tries to commit
/// while A is still open; a relay reads what is committed and remembers the last sequence; then A
/// commits. Where transactions run one at a time B waits for A. Where they overlap (PostgreSQL)
/// and B commits first, A's event must still be numbered after everything the relay saw, or the
/// relay, resuming after its last sequence, never publishes it.
async fn a_relay_resuming_after_the_last_sequence_it_saw_misses_no_later_commit(
    repositories: Repositories,
) {
    let first = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    first
        .outbox()
        .record(&event(1))
        .await
        .expect("the first event is recorded");

    let unit_of_work = std::sync::Arc::clone(&repositories.unit_of_work);
    let mut second = tokio::spawn(async move {
        let transaction = unit_of_work.begin().await?;
        transaction.outbox().record(&event(2)).await?;
        transaction.commit().await
    });
    // Give the second transaction every chance to commit before the first (it cannot where
    // transactions are serialised; then this just times out).
    let second_done = match tokio::time::timeout(Duration::from_millis(500), &mut second).await {
        Ok(joined) => {
            joined
                .expect("the second task finished")
                .expect("the second transaction committed");
            true
        }
        Err(_) => false,
    };

    let seen = everything(&repositories).await;
    if second_done {
        assert_eq!(
            events_of(&seen),
            vec![event(2)],
            "only the committed event is visible"
        );
    } else {
        assert_eq!(seen, vec![], "nothing is committed yet");
    }
    let cursor = seen.last().map_or(0, |stored| stored.sequence);

    first.commit().await.expect("the first transaction commits");
    if !second_done {
        second
            .await
            .expect("the second task finished")
            .expect("the second transaction committed");
    }

    let rest = after(&repositories, cursor, 1_000).await;
    let mut relayed = events_of(&seen);
    relayed.extend(events_of(&rest));
    relayed.sort_by_key(|recorded| recorded.id);
    assert_eq!(
        relayed,
        vec![event(1), event(2)],
        "a relay that saw {seen:?} and resumed after {cursor} got {rest:?}"
    );

    // Sequences follow the commit order.
    let stored = everything(&repositories).await;
    assert_increasing(&sequences_of(&stored));
    let expected = if second_done {
        vec![event(2), event(1)]
    } else {
        vec![event(1), event(2)]
    };
    assert_eq!(events_of(&stored), expected);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: writers take no lock, so a number can be committed after a larger one. A reader
// stops before such a hole until the transaction holding it has ended.

/// A raw PostgreSQL transaction that has inserted `recorded` into the outbox (taking a sequence
/// number) and not committed yet.
async fn holding_a_number(url: &str, recorded: &RecordedEvent) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let connection = sea_orm::Database::connect(url).await.expect("connect");
    let transaction = connection.begin().await.expect("begin");
    let payload = serde_json::to_string(recorded).expect("serialises");
    transaction
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO outbox_events (id, event_type, payload, occurred_at) VALUES ($1, $2, $3, $4)",
            [
                recorded.id.as_uuid().into(),
                recorded.event.name().into(),
                payload.into(),
                recorded.occurred_at.into(),
            ],
        ))
        .await
        .expect("insert an event");
    transaction
}

async fn postgres_repositories() -> Option<(Repositories, String)> {
    let repositories = Repositories::of(tests::Backend::Postgres).await?;
    let url = repositories
        .database
        .as_ref()
        .expect("a database")
        .url()
        .to_owned();
    Some((repositories, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_reader_waits_at_a_number_still_being_committed_then_reads_it() {
    let Some((repositories, url)) = postgres_repositories().await else {
        return;
    };
    commit(&repositories, &[event(1)]).await;
    let first = everything(&repositories).await;
    let cursor = first[0].sequence;

    let slow = holding_a_number(&url, &event(2)).await;
    commit(&repositories, &[event(3)]).await;
    // Event 3 is committed but numbered after event 2, which is not: nothing after the cursor
    // may be passed yet, however often the reader asks.
    for _ in 0..3 {
        assert_eq!(after(&repositories, cursor, 100).await, vec![]);
    }
    slow.commit().await.expect("commit");
    assert_eq!(
        events_of(&after(&repositories, cursor, 100).await),
        vec![event(2), event(3)],
        "once the slow transaction committed, both come in number order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_reader_passes_a_number_whose_transaction_rolled_back() {
    let Some((repositories, url)) = postgres_repositories().await else {
        return;
    };
    commit(&repositories, &[event(1)]).await;
    let cursor = everything(&repositories).await[0].sequence;

    let abandoned = holding_a_number(&url, &event(2)).await;
    commit(&repositories, &[event(3)]).await;
    assert_eq!(after(&repositories, cursor, 100).await, vec![]);
    abandoned.rollback().await.expect("rollback");
    // The hole is passed once every transaction of the cluster that could hold it has ended
    // (other tests' transactions are short), long before the reader's 30 s fallback.
    let mut read = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read.is_empty() && std::time::Instant::now() < deadline {
        read = after(&repositories, cursor, 100).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events_of(&read), vec![event(3)]);
}
