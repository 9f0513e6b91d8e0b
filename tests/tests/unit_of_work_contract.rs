//! The `UnitOfWork` and `Transaction` contract, run against every adapter: in memory, SeaORM on
//! SQLite and SeaORM on PostgreSQL. Each test gets fresh, empty repositories.
//!
//! What is written through a transaction's views is checked from outside through
//! `repositories.*`. Outside a transaction these tests only read while a transaction is open:
//! where writers are serialised (in memory, SQLite) a write from the same task would wait for
//! the open transaction forever.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::listing::{PositionFilter, PositionListQuery};
use domain::market::MarketDraft;
use domain::ports::{RepositoryError, StoredEvent, UnitOfWork};
use domain::position::open_position;
use domain::{
    Amount, Category, DisplayName, DomainEvent, Email, EventId, Market, MarketDescription,
    MarketId, MarketName, MarketStatus, PasswordHash, Position, PositionId, RecordedEvent, Role,
    Side, Stake, User, UserId,
};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    writes_through_every_view_are_invisible_outside_until_the_commit_shows_them_all,
    a_transaction_reads_its_own_writes,
    a_dropped_transaction_leaves_no_trace_of_any_write,
    locks_return_the_current_row_or_none,
    the_next_locker_of_a_user_waits_for_the_holder_and_reads_what_it_left,
    the_next_locker_of_a_market_waits_for_the_holder_and_reads_what_it_left,
    twenty_concurrent_debits_of_one_locked_user_all_land,
    twenty_concurrent_version_bumps_of_one_locked_market_are_never_stale,
    twenty_concurrent_position_openings_keep_every_credit,
);

tests::parallel_contract_tests!(
    the_next_locker_of_a_user_waits_for_the_holder_and_reads_what_it_left,
    the_next_locker_of_a_market_waits_for_the_holder_and_reads_what_it_left,
    twenty_concurrent_debits_of_one_locked_user_all_land,
    twenty_concurrent_version_bumps_of_one_locked_market_are_never_stale,
    twenty_concurrent_position_openings_keep_every_credit,
);

// ---------------------------------------------------------------------------------------------
// Building blocks

const BASE_MICROS: i64 = 1_780_000_000_123_456;
const DAY_MICROS: i64 = 86_400_000_000;
const CONCURRENT: i64 = 20;

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_MICROS + micros).expect("a timestamp in range")
}

fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

fn user(tag: &str, balance: i64) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{tag}@example.com")).expect("a valid email"),
        name: DisplayName::parse(tag).expect("a valid display name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role: Role::User,
        balance: cents(balance),
        disabled: false,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn market(title: &str, creator: UserId) -> Market {
    let draft = MarketDraft {
        name: MarketName::parse(title).expect("a valid market name"),
        description: MarketDescription::default(),
        category: Category::parse("general").expect("a valid category"),
        end_date: at(30 * DAY_MICROS),
    };
    Market::open(MarketId::from_uuid(Uuid::now_v7()), draft, creator, at(0))
        .expect("the market opens")
}

fn event(n: u128, market_id: MarketId) -> RecordedEvent {
    RecordedEvent {
        id: EventId::from_uuid(Uuid::from_u128(0xe000 + n)),
        occurred_at: at(i64::try_from(n).expect("small")),
        event: DomainEvent::MarketUpdated {
            market_id,
            version: 2,
        },
    }
}

async fn stored_user(repositories: &Repositories, tag: &str, balance: i64) -> User {
    let user = user(tag, balance);
    repositories
        .users
        .insert(&user)
        .await
        .expect("the user is stored");
    user
}

async fn stored_market(repositories: &Repositories, title: &str, creator: UserId) -> Market {
    let market = market(title, creator);
    repositories
        .markets
        .insert(&market)
        .await
        .expect("the market is stored");
    market
}

async fn find_user(repositories: &Repositories, id: UserId) -> Option<User> {
    repositories
        .users
        .find_by_id(id)
        .await
        .expect("the users read")
}

async fn find_market(repositories: &Repositories, id: MarketId) -> Option<Market> {
    repositories
        .markets
        .find_by_id(id)
        .await
        .expect("the markets read")
}

async fn all_positions(repositories: &Repositories) -> Vec<Position> {
    let query = PositionListQuery {
        sort: domain::listing::PositionSort::parse("created_at").expect("a valid sort"),
        page: domain::PageRequest::new(100, 0).expect("a valid page"),
        ..PositionListQuery::default()
    };
    let page = repositories
        .positions
        .list(&query)
        .await
        .expect("the positions list");
    assert_eq!(
        u64::try_from(page.items.len()).expect("small"),
        page.total,
        "one page holds them all"
    );
    page.items
}

async fn all_events(repositories: &Repositories) -> Vec<StoredEvent> {
    repositories
        .outbox
        .after(0, 1_000)
        .await
        .expect("the outbox reads")
}

/// What a test writes in one transaction, and what was there before.
struct Scenario {
    /// Stored before the transaction; updated in it.
    alice: User,
    alice_updated: User,
    /// Inserted in the transaction.
    bob: User,
    /// Stored before the transaction (created by Alice); updated in it.
    rain: Market,
    rain_updated: Market,
    /// Inserted in the transaction, created by Bob (who is inserted in the same transaction).
    snow: Market,
    /// Inserted in the transaction, on `snow`, by `bob`.
    position: Position,
    event: RecordedEvent,
}

async fn scenario(repositories: &Repositories) -> Scenario {
    let alice = stored_user(repositories, "alice", 10_000).await;
    let rain = stored_market(repositories, "Will it rain?", alice.id).await;

    let mut alice_updated = alice.clone();
    alice_updated.balance = cents(7_525);
    alice_updated.name = DisplayName::parse("Alice Updated").expect("a valid display name");
    alice_updated.updated_at = at(5);

    let mut rain_updated = rain.clone();
    rain_updated.name = MarketName::parse("Will it pour?").expect("a valid market name");
    rain_updated.yes_volume = cents(2_475);
    rain_updated.status = MarketStatus::Closed;
    rain_updated.version = rain.version + 1;
    rain_updated.updated_at = at(5);

    let bob = user("bob", 500);
    let snow = market("Will it snow?", bob.id);
    let position = Position {
        id: PositionId::from_uuid(Uuid::from_u128(1)),
        market_id: snow.id,
        user_id: bob.id,
        side: Side::No,
        amount: cents(250),
        payout: None,
        created_at: at(7),
    };
    let event = event(1, rain.id);
    Scenario {
        alice,
        alice_updated,
        bob,
        rain,
        rain_updated,
        snow,
        position,
        event,
    }
}

/// Begins a transaction and writes the whole scenario through its views.
async fn write_scenario(
    repositories: &Repositories,
    scenario: &Scenario,
) -> Box<dyn domain::ports::Transaction> {
    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    transaction
        .users()
        .update(&scenario.alice_updated)
        .await
        .expect("the user is updated");
    transaction
        .users()
        .insert(&scenario.bob)
        .await
        .expect("the user is inserted");
    transaction
        .markets()
        .update(&scenario.rain_updated, scenario.rain.version)
        .await
        .expect("the market is updated");
    transaction
        .markets()
        .insert(&scenario.snow)
        .await
        .expect("the market is inserted");
    transaction
        .positions()
        .insert(&scenario.position)
        .await
        .expect("the position is inserted");
    transaction
        .outbox()
        .record(&scenario.event)
        .await
        .expect("the event is recorded");
    transaction
}

/// Checks from outside that the store holds what it held before the scenario.
async fn assert_untouched(repositories: &Repositories, scenario: &Scenario, when: &str) {
    assert_eq!(
        find_user(repositories, scenario.alice.id).await.as_ref(),
        Some(&scenario.alice),
        "{when}: the user update"
    );
    assert_eq!(
        find_user(repositories, scenario.bob.id).await,
        None,
        "{when}: the user insert"
    );
    assert_eq!(
        repositories
            .users
            .find_by_email(&scenario.bob.email)
            .await
            .expect("the users read"),
        None,
        "{when}: the user insert, by email"
    );
    assert_eq!(
        find_market(repositories, scenario.rain.id).await.as_ref(),
        Some(&scenario.rain),
        "{when}: the market update"
    );
    assert_eq!(
        find_market(repositories, scenario.snow.id).await,
        None,
        "{when}: the market insert"
    );
    assert_eq!(
        all_positions(repositories).await,
        vec![],
        "{when}: the position insert"
    );
    assert_eq!(
        all_events(repositories).await,
        vec![],
        "{when}: the recorded event"
    );
}

fn read_error(error: RepositoryError) -> String {
    format!("{error:?}")
}

// ---------------------------------------------------------------------------------------------
// Visibility

async fn writes_through_every_view_are_invisible_outside_until_the_commit_shows_them_all(
    repositories: Repositories,
) {
    let scenario = scenario(&repositories).await;
    let transaction = write_scenario(&repositories, &scenario).await;

    assert_untouched(&repositories, &scenario, "before the commit").await;

    transaction.commit().await.expect("the commit");

    assert_eq!(
        find_user(&repositories, scenario.alice.id).await,
        Some(scenario.alice_updated.clone())
    );
    assert_eq!(
        find_user(&repositories, scenario.bob.id).await,
        Some(scenario.bob.clone())
    );
    assert_eq!(
        find_market(&repositories, scenario.rain.id).await,
        Some(scenario.rain_updated.clone())
    );
    assert_eq!(
        find_market(&repositories, scenario.snow.id).await,
        Some(scenario.snow.clone())
    );
    assert_eq!(
        all_positions(&repositories).await,
        vec![scenario.position.clone()]
    );
    let events = all_events(&repositories).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, scenario.event);
}

async fn a_transaction_reads_its_own_writes(repositories: Repositories) {
    let scenario = scenario(&repositories).await;
    let transaction = write_scenario(&repositories, &scenario).await;

    assert_eq!(
        transaction
            .users()
            .find_by_id(scenario.bob.id)
            .await
            .expect("a read"),
        Some(scenario.bob.clone())
    );
    assert_eq!(
        transaction
            .lock_user(scenario.alice.id)
            .await
            .expect("a lock"),
        Some(scenario.alice_updated.clone())
    );
    assert_eq!(
        transaction
            .markets()
            .find_by_id(scenario.snow.id)
            .await
            .expect("a read"),
        Some(scenario.snow.clone())
    );
    assert_eq!(
        transaction
            .lock_market(scenario.rain.id)
            .await
            .expect("a lock"),
        Some(scenario.rain_updated.clone())
    );
    let mine = PositionListQuery {
        filter: PositionFilter {
            user_id: Some(scenario.bob.id),
            ..PositionFilter::default()
        },
        ..PositionListQuery::default()
    };
    let page = transaction.positions().list(&mine).await.expect("a list");
    assert_eq!(page.items, vec![scenario.position.clone()]);
    assert_eq!(page.total, 1);
    drop(transaction);
}

async fn a_dropped_transaction_leaves_no_trace_of_any_write(repositories: Repositories) {
    let scenario = scenario(&repositories).await;
    let transaction = write_scenario(&repositories, &scenario).await;
    drop(transaction);

    assert_untouched(&repositories, &scenario, "after the drop").await;

    // Nothing half-written blocks the same writes later: the store is free, the ids, the email
    // and the version read before are all as they were.
    let transaction = write_scenario(&repositories, &scenario).await;
    transaction.commit().await.expect("the commit");
    assert_eq!(
        find_user(&repositories, scenario.bob.id).await,
        Some(scenario.bob.clone())
    );
    assert_eq!(
        find_market(&repositories, scenario.rain.id).await,
        Some(scenario.rain_updated.clone())
    );
    assert_eq!(
        all_positions(&repositories).await,
        vec![scenario.position.clone()]
    );
    let events = all_events(&repositories).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, scenario.event);
}

async fn locks_return_the_current_row_or_none(repositories: Repositories) {
    let alice = stored_user(&repositories, "alice", 1_000).await;
    let rain = stored_market(&repositories, "Will it rain?", alice.id).await;
    let mut alice_now = alice.clone();
    alice_now.balance = cents(1);
    repositories
        .users
        .update(&alice_now)
        .await
        .expect("the user is updated");
    let mut rain_now = rain.clone();
    rain_now.no_volume = cents(999);
    rain_now.version = 2;
    repositories
        .markets
        .update(&rain_now, 1)
        .await
        .expect("the market is updated");

    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    assert_eq!(
        transaction.lock_user(alice.id).await.expect("a lock"),
        Some(alice_now.clone())
    );
    assert_eq!(
        transaction.lock_market(rain.id).await.expect("a lock"),
        Some(rain_now.clone())
    );
    // Locking twice in one transaction is fine and reads the same row.
    assert_eq!(
        transaction.lock_user(alice.id).await.expect("a lock"),
        Some(alice_now.clone())
    );
    assert_eq!(
        transaction
            .lock_user(UserId::from_uuid(Uuid::now_v7()))
            .await
            .expect("a lock"),
        None
    );
    assert_eq!(
        transaction
            .lock_market(MarketId::from_uuid(Uuid::now_v7()))
            .await
            .expect("a lock"),
        None
    );
    // A market id is not a user id, nor the other way round.
    assert_eq!(
        transaction
            .lock_user(UserId::from_uuid(rain.id.as_uuid()))
            .await
            .expect("a lock"),
        None
    );
    assert_eq!(
        transaction
            .lock_market(MarketId::from_uuid(alice.id.as_uuid()))
            .await
            .expect("a lock"),
        None
    );
    transaction.commit().await.expect("the commit");

    // Locking changes nothing.
    assert_eq!(find_user(&repositories, alice.id).await, Some(alice_now));
    assert_eq!(find_market(&repositories, rain.id).await, Some(rain_now));
}

// ---------------------------------------------------------------------------------------------
// Locking

async fn the_next_locker_of_a_user_waits_for_the_holder_and_reads_what_it_left(
    repositories: Repositories,
) {
    let alice = stored_user(&repositories, "alice", 10_000).await;

    for commit in [true, false] {
        let before = find_user(&repositories, alice.id)
            .await
            .expect("the user exists");
        let holder = repositories
            .unit_of_work
            .begin()
            .await
            .expect("a transaction");
        let mut held = holder
            .lock_user(alice.id)
            .await
            .expect("a lock")
            .expect("the user");
        held.balance = held.balance.checked_sub(cents(1_000)).expect("enough");
        holder.users().update(&held).await.expect("the update");

        let unit_of_work: Arc<dyn UnitOfWork> = Arc::clone(&repositories.unit_of_work);
        let id = alice.id;
        let mut next = tokio::spawn(async move {
            let transaction = unit_of_work.begin().await?;
            let seen = transaction.lock_user(id).await?;
            transaction.commit().await?;
            Ok::<_, RepositoryError>(seen)
        });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut next).await;
        assert!(
            early.is_err(),
            "the next locker got the row while the holder held it: {early:?}"
        );

        let expected = if commit {
            holder.commit().await.expect("the commit");
            held
        } else {
            drop(holder);
            before
        };
        let seen = next
            .await
            .expect("the task finished")
            .expect("the next locker's transaction");
        assert_eq!(seen, Some(expected.clone()), "committed: {commit}");
        assert_eq!(find_user(&repositories, alice.id).await, Some(expected));
    }
}

async fn the_next_locker_of_a_market_waits_for_the_holder_and_reads_what_it_left(
    repositories: Repositories,
) {
    let alice = stored_user(&repositories, "alice", 10_000).await;
    let rain = stored_market(&repositories, "Will it rain?", alice.id).await;

    for commit in [true, false] {
        let before = find_market(&repositories, rain.id)
            .await
            .expect("the market exists");
        let holder = repositories
            .unit_of_work
            .begin()
            .await
            .expect("a transaction");
        let mut held = holder
            .lock_market(rain.id)
            .await
            .expect("a lock")
            .expect("the market");
        let read_version = held.version;
        held.yes_volume = held.yes_volume.checked_add(cents(100)).expect("small");
        held.version += 1;
        holder
            .markets()
            .update(&held, read_version)
            .await
            .expect("the update");

        let unit_of_work: Arc<dyn UnitOfWork> = Arc::clone(&repositories.unit_of_work);
        let id = rain.id;
        let mut next = tokio::spawn(async move {
            let transaction = unit_of_work.begin().await?;
            let seen = transaction.lock_market(id).await?;
            transaction.commit().await?;
            Ok::<_, RepositoryError>(seen)
        });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut next).await;
        assert!(
            early.is_err(),
            "the next locker got the row while the holder held it: {early:?}"
        );

        let expected = if commit {
            holder.commit().await.expect("the commit");
            held
        } else {
            drop(holder);
            before
        };
        let seen = next
            .await
            .expect("the task finished")
            .expect("the next locker's transaction");
        assert_eq!(seen, Some(expected.clone()), "committed: {commit}");
        assert_eq!(find_market(&repositories, rain.id).await, Some(expected));
    }
}

/// Runs `CONCURRENT` copies of `work`, each in a task of its own, and returns the errors.
async fn run_concurrently<F, Fut>(work: F) -> Vec<String>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Result<(), RepositoryError>> + Send + 'static,
{
    let tasks: Vec<_> = (0..CONCURRENT).map(|n| tokio::spawn(work(n))).collect();
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(error) = task.await.expect("the task finished") {
            failures.push(read_error(error));
        }
    }
    failures
}

async fn twenty_concurrent_debits_of_one_locked_user_all_land(repositories: Repositories) {
    let alice = stored_user(&repositories, "alice", 10_000).await;
    let failures = run_concurrently(|_| {
        let unit_of_work = Arc::clone(&repositories.unit_of_work);
        let id = alice.id;
        async move {
            let transaction = unit_of_work.begin().await?;
            let mut locked = transaction
                .lock_user(id)
                .await?
                .ok_or(RepositoryError::NotFound)?;
            // Give the others every chance to interleave between the read and the write.
            tokio::task::yield_now().await;
            locked.balance = locked.balance.checked_sub(cents(100)).expect("enough");
            transaction.users().update(&locked).await?;
            tokio::task::yield_now().await;
            transaction.commit().await
        }
    })
    .await;
    assert_eq!(failures, Vec::<String>::new());

    let after = find_user(&repositories, alice.id)
        .await
        .expect("the user exists");
    assert_eq!(after.balance, cents(10_000 - CONCURRENT * 100));
}

async fn twenty_concurrent_version_bumps_of_one_locked_market_are_never_stale(
    repositories: Repositories,
) {
    let alice = stored_user(&repositories, "alice", 10_000).await;
    let rain = stored_market(&repositories, "Will it rain?", alice.id).await;
    let failures = run_concurrently(|_| {
        let unit_of_work = Arc::clone(&repositories.unit_of_work);
        let id = rain.id;
        async move {
            let transaction = unit_of_work.begin().await?;
            let mut locked = transaction
                .lock_market(id)
                .await?
                .ok_or(RepositoryError::NotFound)?;
            let read_version = locked.version;
            tokio::task::yield_now().await;
            locked.yes_volume = locked.yes_volume.checked_add(cents(100)).expect("small");
            locked.version = read_version + 1;
            transaction.markets().update(&locked, read_version).await?;
            tokio::task::yield_now().await;
            transaction.commit().await
        }
    })
    .await;
    assert_eq!(failures, Vec::<String>::new(), "no Stale, no failure");

    let after = find_market(&repositories, rain.id)
        .await
        .expect("the market exists");
    assert_eq!(after.version, rain.version + CONCURRENT);
    assert_eq!(after.yes_volume, cents(CONCURRENT * 100));
}

/// The whole of opening a position, twenty times at once on one user and one market: lock both,
/// apply the rule, write the user, the market (guarded by the version read), the position and
/// the event.
async fn twenty_concurrent_position_openings_keep_every_credit(repositories: Repositories) {
    let alice = stored_user(&repositories, "alice", 100_000).await;
    let rain = stored_market(&repositories, "Will it rain?", alice.id).await;
    let failures = run_concurrently(|n| {
        let unit_of_work = Arc::clone(&repositories.unit_of_work);
        let (user_id, market_id) = (alice.id, rain.id);
        async move {
            let transaction = unit_of_work.begin().await?;
            let mut user = transaction
                .lock_user(user_id)
                .await?
                .ok_or(RepositoryError::NotFound)?;
            tokio::task::yield_now().await;
            let mut market = transaction
                .lock_market(market_id)
                .await?
                .ok_or(RepositoryError::NotFound)?;
            let read_version = market.version;
            let side = if n % 2 == 0 { Side::Yes } else { Side::No };
            let stake = Stake::new(cents((n + 1) * 100)).expect("a valid stake");
            let id =
                PositionId::from_uuid(Uuid::from_u128(u128::try_from(n + 1).expect("positive")));
            let position = open_position(id, &mut user, &mut market, side, stake, at(n + 1))
                .expect("the position opens");
            tokio::task::yield_now().await;
            transaction.users().update(&user).await?;
            transaction.markets().update(&market, read_version).await?;
            transaction.positions().insert(&position).await?;
            transaction
                .outbox()
                .record(&RecordedEvent {
                    id: EventId::from_uuid(Uuid::now_v7()),
                    occurred_at: at(n + 1),
                    event: DomainEvent::PositionOpened {
                        position_id: position.id,
                        market_id,
                        user_id,
                        side,
                        amount: position.amount,
                        yes_volume: market.yes_volume,
                        no_volume: market.no_volume,
                        version: market.version,
                    },
                })
                .await?;
            tokio::task::yield_now().await;
            transaction.commit().await
        }
    })
    .await;
    assert_eq!(failures, Vec::<String>::new());

    // 1.00 + 2.00 + ... + 20.00 left the balance and arrived in the market.
    let staked = CONCURRENT * (CONCURRENT + 1) / 2 * 100;
    let user = find_user(&repositories, alice.id)
        .await
        .expect("the user exists");
    assert_eq!(user.balance, cents(100_000 - staked));
    let market = find_market(&repositories, rain.id)
        .await
        .expect("the market exists");
    assert_eq!(market.version, rain.version + CONCURRENT);
    assert_eq!(market.volume(), cents(staked));
    let yes: i64 = (0..CONCURRENT)
        .filter(|n| n % 2 == 0)
        .map(|n| (n + 1) * 100)
        .sum();
    assert_eq!(market.yes_volume, cents(yes));
    assert_eq!(market.no_volume, cents(staked - yes));

    let positions = all_positions(&repositories).await;
    assert_eq!(positions.len(), 20);
    let total: i64 = positions.iter().map(|p| p.amount.cents()).sum();
    assert_eq!(total, staked);

    // One event per opening; in sequence order they tell the market's history version by
    // version, each with the volumes of its moment.
    let events = all_events(&repositories).await;
    let versions: Vec<i64> = events
        .iter()
        .map(|stored| match &stored.event.event {
            DomainEvent::PositionOpened { version, .. } => *version,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let expected: Vec<i64> = (rain.version + 1..=rain.version + CONCURRENT).collect();
    assert_eq!(versions, expected);
    let Some(DomainEvent::PositionOpened {
        yes_volume,
        no_volume,
        ..
    }) = events.last().map(|stored| &stored.event.event)
    else {
        panic!("no last event")
    };
    assert_eq!(
        (*yes_volume, *no_volume),
        (market.yes_volume, market.no_volume)
    );
}
