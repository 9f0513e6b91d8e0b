//! The `PositionRepository` contract, run against every adapter: in memory, SeaORM on SQLite and
//! SeaORM on PostgreSQL. Each test gets fresh, empty repositories.
//!
//! Positions reference a market and a user (foreign keys on SQL), and markets reference their
//! creator, so every test stores its users and markets first.

use chrono::{DateTime, Utc};
use domain::listing::{Page, PageRequest, PositionFilter, PositionListQuery, PositionSort};
use domain::market::MarketDraft;
use domain::ports::RepositoryError;
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    PasswordHash, Position, PositionId, Role, Side, User, UserId,
};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    a_stored_position_is_listed_with_every_field_intact,
    an_empty_store_lists_no_positions_with_a_total_of_zero,
    the_market_filter_alone_keeps_only_that_markets_positions,
    the_user_filter_alone_keeps_only_that_users_positions,
    the_side_filter_alone_keeps_only_that_side,
    all_present_position_filters_must_hold_together,
    positions_sort_by_creation_time_both_ways_with_ties_broken_by_id,
    positions_sort_by_amount_both_ways_with_ties_broken_by_id,
    position_sort_keys_apply_in_order_then_id_ascending,
    the_default_position_sort_is_newest_first_then_id_ascending,
    position_pages_are_windows_over_all_matches_with_the_full_total,
    a_taken_position_id_is_a_conflict_and_the_stored_position_is_kept,
    a_position_on_a_market_that_does_not_exist_is_refused,
    a_position_of_a_user_who_does_not_exist_is_refused,
);

// ---------------------------------------------------------------------------------------------
// Building blocks

/// An arbitrary microsecond-precise instant (the domain's clock truncates to microseconds).
const BASE_MICROS: i64 = 1_780_000_000_123_456;

/// `micros` microseconds after the base instant.
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_MICROS + micros).expect("a timestamp in range")
}

fn pid(n: u128) -> PositionId {
    PositionId::from_uuid(Uuid::from_u128(n))
}

/// A position id whose first byte is `first` and whose last byte is `last`, to check that ties
/// are broken by the UUID's bytes as unsigned values.
fn pid_with(first: u8, last: u8) -> PositionId {
    pid((u128::from(first) << 120) | u128::from(last))
}

fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

fn sort(text: &str) -> PositionSort {
    PositionSort::parse(text).expect("a valid sort")
}

fn page(limit: u64, offset: u64) -> PageRequest {
    PageRequest::new(limit, offset).expect("a valid page")
}

/// Stores a user and returns their id.
async fn user(repositories: &Repositories, tag: &str) -> UserId {
    let user = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{tag}@example.com")).expect("a valid email"),
        name: DisplayName::parse(tag).expect("a valid display name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role: Role::User,
        balance: cents(1_000_000),
        disabled: false,
        created_at: at(0),
        updated_at: at(0),
    };
    repositories
        .users
        .insert(&user)
        .await
        .expect("the user is stored");
    user.id
}

/// Stores an active market created by `creator` and returns its id.
async fn market(repositories: &Repositories, title: &str, creator: UserId) -> MarketId {
    let draft = MarketDraft {
        name: MarketName::parse(title).expect("a valid market name"),
        description: MarketDescription::default(),
        category: Category::parse("general").expect("a valid category"),
        end_date: at(86_400_000_000),
    };
    let market = Market::open(MarketId::from_uuid(Uuid::now_v7()), draft, creator, at(0))
        .expect("the market opens");
    repositories
        .markets
        .insert(&market)
        .await
        .expect("the market is stored");
    market.id
}

/// Two users and two markets to hang positions on.
struct World {
    alice: UserId,
    bob: UserId,
    rain: MarketId,
    snow: MarketId,
}

async fn world(repositories: &Repositories) -> World {
    let alice = user(repositories, "alice").await;
    let bob = user(repositories, "bob").await;
    let rain = market(repositories, "Will it rain?", alice).await;
    let snow = market(repositories, "Will it snow?", bob).await;
    World {
        alice,
        bob,
        rain,
        snow,
    }
}

fn position(
    id: PositionId,
    market_id: MarketId,
    user_id: UserId,
    side: Side,
    amount: i64,
    created_at: DateTime<Utc>,
) -> Position {
    Position {
        id,
        market_id,
        user_id,
        side,
        amount: cents(amount),
        payout: None,
        created_at,
    }
}

async fn store(repositories: &Repositories, positions: &[Position]) {
    for position in positions {
        repositories
            .positions
            .insert(position)
            .await
            .expect("the position is stored");
    }
}

async fn list(repositories: &Repositories, query: &PositionListQuery) -> Page<Position> {
    let page = repositories
        .positions
        .list(query)
        .await
        .expect("the store lists");
    assert_eq!(page.request, query.page, "the page echoes its request");
    page
}

/// The ids listed, in order, and the total.
async fn listed(repositories: &Repositories, query: &PositionListQuery) -> (Vec<PositionId>, u64) {
    let page = list(repositories, query).await;
    (page.items.iter().map(|item| item.id).collect(), page.total)
}

/// Every position matching `filter`, as a sorted list of ids, and the total.
async fn matching(repositories: &Repositories, filter: PositionFilter) -> (Vec<PositionId>, u64) {
    let query = PositionListQuery {
        filter,
        page: page(PageRequest::MAX_LIMIT, 0),
        ..PositionListQuery::default()
    };
    let (mut ids, total) = listed(repositories, &query).await;
    ids.sort();
    (ids, total)
}

/// The first page of everything in `text` order.
fn sorted_by(text: &str) -> PositionListQuery {
    PositionListQuery {
        sort: sort(text),
        page: page(PageRequest::MAX_LIMIT, 0),
        ..PositionListQuery::default()
    }
}

/// Eight positions, one per (market, user, side) combination, with distinct amounts and times.
async fn every_combination(repositories: &Repositories) -> (World, Vec<Position>) {
    let world = world(repositories).await;
    let mut positions = Vec::new();
    let mut n = 0;
    for market in [world.rain, world.snow] {
        for user in [world.alice, world.bob] {
            for side in [Side::Yes, Side::No] {
                n += 1;
                let micros = i64::try_from(n).expect("small");
                positions.push(position(
                    pid(n),
                    market,
                    user,
                    side,
                    100 * micros,
                    at(micros),
                ));
            }
        }
    }
    store(repositories, &positions).await;
    (world, positions)
}

/// The sorted ids of the positions for which `keep` holds.
fn ids_where(positions: &[Position], keep: impl Fn(&Position) -> bool) -> Vec<PositionId> {
    let mut ids: Vec<PositionId> = positions.iter().filter(|p| keep(p)).map(|p| p.id).collect();
    ids.sort();
    ids
}

fn counted(ids: Vec<PositionId>) -> (Vec<PositionId>, u64) {
    let total = u64::try_from(ids.len()).expect("small");
    (ids, total)
}

// ---------------------------------------------------------------------------------------------
// Round trip

async fn a_stored_position_is_listed_with_every_field_intact(repositories: Repositories) {
    let world = world(&repositories).await;
    let positions = [
        position(
            pid(1),
            world.rain,
            world.alice,
            Side::Yes,
            2_501,
            at(654_321),
        ),
        position(pid(2), world.snow, world.bob, Side::No, 1, at(-123_456)),
        Position {
            amount: Amount::MAX,
            payout: None,
            ..position(pid(3), world.snow, world.alice, Side::No, 0, at(1))
        },
    ];
    store(&repositories, &positions).await;

    for expected in &positions {
        let query = PositionListQuery {
            filter: PositionFilter {
                market_id: Some(expected.market_id),
                user_id: Some(expected.user_id),
                side: Some(expected.side),
            },
            ..PositionListQuery::default()
        };
        let page = list(&repositories, &query).await;
        assert_eq!(page.items, vec![expected.clone()]);
        assert_eq!(page.total, 1);
    }

    let page = list(&repositories, &sorted_by("created_at")).await;
    assert_eq!(
        page.items,
        vec![
            positions[1].clone(),
            positions[2].clone(),
            positions[0].clone()
        ]
    );
    assert_eq!(page.total, 3);
}

async fn an_empty_store_lists_no_positions_with_a_total_of_zero(repositories: Repositories) {
    assert_eq!(
        listed(&repositories, &PositionListQuery::default()).await,
        (vec![], 0)
    );
    // Users and markets alone are no positions.
    let world = world(&repositories).await;
    let filter = PositionFilter {
        market_id: Some(world.rain),
        ..PositionFilter::default()
    };
    assert_eq!(matching(&repositories, filter).await, (vec![], 0));
}

// ---------------------------------------------------------------------------------------------
// Filters

async fn the_market_filter_alone_keeps_only_that_markets_positions(repositories: Repositories) {
    let (world, positions) = every_combination(&repositories).await;
    for market in [world.rain, world.snow] {
        let filter = PositionFilter {
            market_id: Some(market),
            ..PositionFilter::default()
        };
        assert_eq!(
            matching(&repositories, filter).await,
            counted(ids_where(&positions, |p| p.market_id == market))
        );
    }
    let unknown = PositionFilter {
        market_id: Some(MarketId::from_uuid(Uuid::now_v7())),
        ..PositionFilter::default()
    };
    assert_eq!(matching(&repositories, unknown).await, (vec![], 0));
}

async fn the_user_filter_alone_keeps_only_that_users_positions(repositories: Repositories) {
    let (world, positions) = every_combination(&repositories).await;
    for user in [world.alice, world.bob] {
        let filter = PositionFilter {
            user_id: Some(user),
            ..PositionFilter::default()
        };
        assert_eq!(
            matching(&repositories, filter).await,
            counted(ids_where(&positions, |p| p.user_id == user))
        );
    }
    // A user with no positions.
    let carol = self::user(&repositories, "carol").await;
    let filter = PositionFilter {
        user_id: Some(carol),
        ..PositionFilter::default()
    };
    assert_eq!(matching(&repositories, filter).await, (vec![], 0));
}

async fn the_side_filter_alone_keeps_only_that_side(repositories: Repositories) {
    let (_, positions) = every_combination(&repositories).await;
    for side in [Side::Yes, Side::No] {
        let filter = PositionFilter {
            side: Some(side),
            ..PositionFilter::default()
        };
        assert_eq!(
            matching(&repositories, filter).await,
            counted(ids_where(&positions, |p| p.side == side))
        );
    }
}

async fn all_present_position_filters_must_hold_together(repositories: Repositories) {
    let (world, positions) = every_combination(&repositories).await;
    // One more position, so that no combination is a single row by construction.
    let extra = position(pid(99), world.rain, world.alice, Side::Yes, 5, at(99));
    store(&repositories, std::slice::from_ref(&extra)).await;
    let mut positions = positions;
    positions.push(extra);

    for market in [world.rain, world.snow] {
        for user in [world.alice, world.bob] {
            let filter = PositionFilter {
                market_id: Some(market),
                user_id: Some(user),
                side: None,
            };
            assert_eq!(
                matching(&repositories, filter).await,
                counted(ids_where(&positions, |p| p.market_id == market && p.user_id == user))
            );
            for side in [Side::Yes, Side::No] {
                let filter = PositionFilter {
                    market_id: Some(market),
                    user_id: Some(user),
                    side: Some(side),
                };
                assert_eq!(
                    matching(&repositories, filter).await,
                    counted(ids_where(&positions, |p| p.market_id == market
                        && p.user_id == user
                        && p.side == side))
                );
            }
        }
        for side in [Side::Yes, Side::No] {
            let filter = PositionFilter {
                market_id: Some(market),
                user_id: None,
                side: Some(side),
            };
            assert_eq!(
                matching(&repositories, filter).await,
                counted(ids_where(&positions, |p| p.market_id == market && p.side == side))
            );
        }
    }
    for user in [world.alice, world.bob] {
        for side in [Side::Yes, Side::No] {
            let filter = PositionFilter {
                market_id: None,
                user_id: Some(user),
                side: Some(side),
            };
            assert_eq!(
                matching(&repositories, filter).await,
                counted(ids_where(&positions, |p| p.user_id == user && p.side == side))
            );
        }
    }
    assert_eq!(
        matching(
            &repositories,
            PositionFilter {
                market_id: Some(world.rain),
                user_id: Some(world.alice),
                side: Some(Side::Yes),
            }
        )
        .await,
        (vec![pid(1), pid(99)], 2)
    );
}

// ---------------------------------------------------------------------------------------------
// Sorting

/// Positions whose ties on the sort key can only be broken by id: two groups with equal time and
/// amount, ids inserted out of order, with first bytes above and below 0x80.
async fn ties(repositories: &Repositories) -> World {
    let world = world(repositories).await;
    let early = at(10);
    let late = at(20);
    store(
        repositories,
        &[
            position(
                pid_with(0xf0, 1),
                world.rain,
                world.alice,
                Side::Yes,
                300,
                late,
            ),
            position(
                pid_with(0x10, 2),
                world.rain,
                world.bob,
                Side::No,
                100,
                early,
            ),
            position(
                pid_with(0x80, 3),
                world.snow,
                world.alice,
                Side::No,
                300,
                late,
            ),
            position(
                pid_with(0x7f, 4),
                world.snow,
                world.bob,
                Side::Yes,
                100,
                early,
            ),
            position(
                pid_with(0x01, 5),
                world.rain,
                world.alice,
                Side::No,
                100,
                early,
            ),
            position(
                pid_with(0x00, 6),
                world.snow,
                world.bob,
                Side::Yes,
                300,
                late,
            ),
        ],
    )
    .await;
    world
}

async fn positions_sort_by_creation_time_both_ways_with_ties_broken_by_id(
    repositories: Repositories,
) {
    ties(&repositories).await;
    let early = vec![pid_with(0x01, 5), pid_with(0x10, 2), pid_with(0x7f, 4)];
    let late = vec![pid_with(0x00, 6), pid_with(0x80, 3), pid_with(0xf0, 1)];

    let ascending = [early.clone(), late.clone()].concat();
    assert_eq!(
        listed(&repositories, &sorted_by("created_at")).await,
        (ascending, 6)
    );
    let descending = [late, early].concat();
    assert_eq!(
        listed(&repositories, &sorted_by("-created_at")).await,
        (descending, 6)
    );
}

async fn positions_sort_by_amount_both_ways_with_ties_broken_by_id(repositories: Repositories) {
    ties(&repositories).await;
    let small = vec![pid_with(0x01, 5), pid_with(0x10, 2), pid_with(0x7f, 4)];
    let large = vec![pid_with(0x00, 6), pid_with(0x80, 3), pid_with(0xf0, 1)];

    assert_eq!(
        listed(&repositories, &sorted_by("amount")).await,
        ([small.clone(), large.clone()].concat(), 6)
    );
    assert_eq!(
        listed(&repositories, &sorted_by("-amount")).await,
        ([large, small].concat(), 6)
    );

    // Amounts compare as numbers, not as text: 9.00 < 10.00 < 100.00 < 1000.00.
    let world = world_for_amounts(&repositories).await;
    let query = PositionListQuery {
        filter: PositionFilter {
            market_id: Some(world),
            ..PositionFilter::default()
        },
        sort: sort("amount"),
        page: page(PageRequest::MAX_LIMIT, 0),
    };
    assert_eq!(
        listed(&repositories, &query).await,
        (vec![pid(903), pid(901), pid(904), pid(902)], 4)
    );
}

/// A market of its own with amounts whose text order differs from their numeric order.
async fn world_for_amounts(repositories: &Repositories) -> MarketId {
    let dora = user(repositories, "dora").await;
    let market = market(repositories, "Amounts as numbers", dora).await;
    store(
        repositories,
        &[
            position(pid(901), market, dora, Side::Yes, 1_000, at(1)),
            position(pid(902), market, dora, Side::Yes, 100_000, at(2)),
            position(pid(903), market, dora, Side::Yes, 900, at(3)),
            position(pid(904), market, dora, Side::Yes, 10_000, at(4)),
        ],
    )
    .await;
    market
}

async fn position_sort_keys_apply_in_order_then_id_ascending(repositories: Repositories) {
    let world = ties(&repositories).await;
    // A position that is small but late, and one that is large but early, so that the two keys
    // disagree.
    store(
        &repositories,
        &[
            position(
                pid_with(0x50, 7),
                world.rain,
                world.alice,
                Side::Yes,
                100,
                at(20),
            ),
            position(
                pid_with(0x60, 8),
                world.rain,
                world.alice,
                Side::Yes,
                300,
                at(10),
            ),
        ],
    )
    .await;

    // Amount ascending, then newest first, then id ascending.
    let expected = vec![
        pid_with(0x50, 7),
        pid_with(0x01, 5),
        pid_with(0x10, 2),
        pid_with(0x7f, 4),
        pid_with(0x00, 6),
        pid_with(0x80, 3),
        pid_with(0xf0, 1),
        pid_with(0x60, 8),
    ];
    assert_eq!(
        listed(&repositories, &sorted_by("amount,-created_at")).await,
        (expected, 8)
    );

    // Time descending, then amount descending, then id ascending.
    let expected = vec![
        pid_with(0x00, 6),
        pid_with(0x80, 3),
        pid_with(0xf0, 1),
        pid_with(0x50, 7),
        pid_with(0x60, 8),
        pid_with(0x01, 5),
        pid_with(0x10, 2),
        pid_with(0x7f, 4),
    ];
    assert_eq!(
        listed(&repositories, &sorted_by("-created_at,-amount")).await,
        (expected, 8)
    );
}

async fn the_default_position_sort_is_newest_first_then_id_ascending(repositories: Repositories) {
    ties(&repositories).await;
    let query = PositionListQuery::default();
    assert_eq!(query.sort, sort("-created_at"));
    let expected = vec![
        pid_with(0x00, 6),
        pid_with(0x80, 3),
        pid_with(0xf0, 1),
        pid_with(0x01, 5),
        pid_with(0x10, 2),
        pid_with(0x7f, 4),
    ];
    assert_eq!(listed(&repositories, &query).await, (expected, 6));
}

// ---------------------------------------------------------------------------------------------
// Pages

async fn position_pages_are_windows_over_all_matches_with_the_full_total(
    repositories: Repositories,
) {
    let world = world(&repositories).await;
    let positions: Vec<Position> = (1..=7)
        .map(|n| {
            let side = if n % 2 == 0 { Side::No } else { Side::Yes };
            let micros = i64::try_from(n).expect("small");
            position(pid(n), world.rain, world.alice, side, 100, at(micros))
        })
        .collect();
    store(&repositories, &positions).await;
    let all: Vec<PositionId> = (1..=7).map(pid).collect();

    let window = |limit, offset| PositionListQuery {
        sort: sort("created_at"),
        page: page(limit, offset),
        ..PositionListQuery::default()
    };
    assert_eq!(
        listed(&repositories, &window(3, 0)).await,
        (all[0..3].to_vec(), 7)
    );
    assert_eq!(
        listed(&repositories, &window(3, 3)).await,
        (all[3..6].to_vec(), 7)
    );
    assert_eq!(
        listed(&repositories, &window(3, 6)).await,
        (all[6..7].to_vec(), 7)
    );
    assert_eq!(listed(&repositories, &window(3, 7)).await, (vec![], 7));
    assert_eq!(listed(&repositories, &window(1, 1_000)).await, (vec![], 7));
    assert_eq!(
        listed(&repositories, &window(2, 5)).await,
        (all[5..7].to_vec(), 7)
    );
    assert_eq!(listed(&repositories, &window(100, 0)).await, (all, 7));

    // The whole row comes back on every page, not only the id.
    assert_eq!(
        list(&repositories, &window(1, 4)).await.items,
        vec![positions[4].clone()]
    );

    // Windows over a filtered list count only the matches.
    let yes = |limit, offset| PositionListQuery {
        filter: PositionFilter {
            side: Some(Side::Yes),
            ..PositionFilter::default()
        },
        sort: sort("-created_at"),
        page: page(limit, offset),
    };
    assert_eq!(
        listed(&repositories, &yes(2, 0)).await,
        (vec![pid(7), pid(5)], 4)
    );
    assert_eq!(
        listed(&repositories, &yes(2, 2)).await,
        (vec![pid(3), pid(1)], 4)
    );
    assert_eq!(listed(&repositories, &yes(2, 4)).await, (vec![], 4));
}

// ---------------------------------------------------------------------------------------------
// Conflicts

async fn a_taken_position_id_is_a_conflict_and_the_stored_position_is_kept(
    repositories: Repositories,
) {
    let world = world(&repositories).await;
    let original = position(pid(1), world.rain, world.alice, Side::Yes, 500, at(1));
    store(&repositories, std::slice::from_ref(&original)).await;

    // The same id with other values throughout, and the very same position again.
    let other = position(pid(1), world.snow, world.bob, Side::No, 700, at(2));
    for duplicate in [other, original.clone()] {
        let result = repositories.positions.insert(&duplicate).await;
        assert!(
            matches!(result, Err(RepositoryError::Conflict("id"))),
            "{result:?}"
        );
    }

    let page = list(&repositories, &PositionListQuery::default()).await;
    assert_eq!(page.items, vec![original]);
    assert_eq!(page.total, 1);
}

async fn a_position_on_a_market_that_does_not_exist_is_refused(repositories: Repositories) {
    let world = world(&repositories).await;
    let ghost = MarketId::from_uuid(Uuid::now_v7());
    let orphan = position(pid(1), ghost, world.alice, Side::Yes, 500, at(1));
    let result = repositories.positions.insert(&orphan).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("market_id"))),
        "{result:?}"
    );
    assert_eq!(
        listed(&repositories, &PositionListQuery::default()).await,
        (vec![], 0)
    );

    // The id was not taken by the refused insert.
    let real = position(pid(1), world.rain, world.alice, Side::Yes, 500, at(1));
    store(&repositories, std::slice::from_ref(&real)).await;
    assert_eq!(
        list(&repositories, &PositionListQuery::default())
            .await
            .items,
        vec![real]
    );
}

async fn a_position_of_a_user_who_does_not_exist_is_refused(repositories: Repositories) {
    let world = world(&repositories).await;
    let ghost = UserId::from_uuid(Uuid::now_v7());
    let orphan = position(pid(1), world.rain, ghost, Side::No, 500, at(1));
    let result = repositories.positions.insert(&orphan).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("user_id"))),
        "{result:?}"
    );
    let filter = PositionFilter {
        user_id: Some(ghost),
        ..PositionFilter::default()
    };
    assert_eq!(matching(&repositories, filter).await, (vec![], 0));
    assert_eq!(
        listed(&repositories, &PositionListQuery::default()).await,
        (vec![], 0)
    );

    let real = position(pid(1), world.rain, world.bob, Side::No, 500, at(1));
    store(&repositories, std::slice::from_ref(&real)).await;
    assert_eq!(
        listed(&repositories, &PositionListQuery::default()).await,
        (vec![pid(1)], 1)
    );
}
