//! The `MarketRepository` contract, run against every adapter: in memory, SeaORM on SQLite and
//! SeaORM on PostgreSQL. Each test gets fresh, empty repositories.
//!
//! Markets reference their creator (a foreign key on SQL), so every test stores its creators
//! first through `repositories.users`.

use chrono::{DateTime, TimeDelta, Utc};
use domain::listing::{
    FieldSet, MarketField, MarketFilter, MarketListQuery, MarketProjection, MarketSort,
    MarketSortKey, Page, PageRequest, SearchText, SortKey as _,
};
use domain::market::{MarketChanges, MarketDraft, StatusChange};
use domain::ports::RepositoryError;
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    MarketStatus, Outcome, PasswordHash, Role, User, UserId,
};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    a_stored_market_is_found_by_id_with_every_field_intact,
    an_unknown_market_id_is_none,
    a_taken_market_id_is_a_conflict_and_the_stored_market_is_kept,
    a_market_whose_creator_does_not_exist_is_refused,
    an_empty_store_lists_nothing_with_a_total_of_zero,
    the_status_filter_alone_keeps_only_that_status,
    the_category_filter_alone_keeps_only_that_category,
    the_creator_filter_alone_keeps_only_that_creators_markets,
    min_volume_is_inclusive_on_yes_plus_no,
    end_date_bounds_are_strict,
    end_date_bounds_between_stored_microseconds_are_honoured,
    timestamps_with_and_without_a_fraction_compare_in_time_order,
    text_matches_the_name_or_the_description_ignoring_ascii_case,
    percent_underscore_and_backslash_in_the_text_are_literal,
    the_text_filter_folds_only_ascii_letters,
    all_present_filters_must_hold_together,
    markets_sort_by_creation_time_both_ways_with_ties_broken_by_id,
    markets_sort_by_update_time_both_ways_with_ties_broken_by_id,
    markets_sort_by_end_date_both_ways_with_ties_broken_by_id,
    markets_sort_by_total_volume_both_ways_with_ties_broken_by_id,
    markets_sort_by_name_bytes_both_ways_with_ties_broken_by_id,
    names_sort_by_their_utf8_bytes,
    sort_keys_apply_in_order_then_id_ascending,
    the_default_sort_is_newest_first_then_id_ascending,
    pages_are_windows_over_all_matches_with_the_full_total,
    a_page_past_the_end_is_empty_with_the_right_total,
    only_the_requested_fields_are_loaded_with_the_stored_values,
    the_default_field_set_gives_complete_projections,
    an_update_with_the_version_read_stores_the_market_exactly_as_given,
    an_update_with_an_old_version_is_stale_and_changes_nothing,
    updating_a_missing_market_is_not_found_and_creates_nothing,
    a_delete_with_the_version_read_removes_only_that_market,
    a_delete_with_an_old_version_is_stale_and_keeps_the_market,
    deleting_a_missing_market_is_not_found,
);

// ---------------------------------------------------------------------------------------------
// Building blocks

/// An arbitrary microsecond-precise instant (the domain's clock truncates to microseconds).
const BASE_MICROS: i64 = 1_780_000_000_123_456;
const DAY_MICROS: i64 = 86_400_000_000;

/// `micros` microseconds after the base instant.
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_MICROS + micros).expect("a timestamp in range")
}

/// The default end date of a test market: thirty days after the base instant.
fn default_end() -> DateTime<Utc> {
    at(30 * DAY_MICROS)
}

fn id(n: u128) -> MarketId {
    MarketId::from_uuid(Uuid::from_u128(n))
}

/// An id whose first byte is `first` (and whose last byte is `last`), to check that ties are
/// broken by the UUID's bytes as unsigned values.
fn id_with(first: u8, last: u8) -> MarketId {
    id((u128::from(first) << 120) | u128::from(last))
}

fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

fn name(text: &str) -> MarketName {
    MarketName::parse(text).expect("a valid market name")
}

fn category(text: &str) -> Category {
    Category::parse(text).expect("a valid category")
}

fn search(text: &str) -> SearchText {
    SearchText::parse(text).expect("a valid search text")
}

fn sort(text: &str) -> MarketSort {
    MarketSort::parse(text).expect("a valid sort")
}

fn fields(text: &str) -> FieldSet {
    FieldSet::parse(text).expect("a valid field set")
}

/// Stores a user who can create markets and returns their id.
async fn creator(repositories: &Repositories, tag: &str) -> UserId {
    let user = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{tag}@example.com")).expect("a valid email"),
        name: DisplayName::parse(tag).expect("a valid display name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role: Role::User,
        balance: Amount::ZERO,
        disabled: false,
        created_at: at(0),
        updated_at: at(0),
    };
    repositories
        .users
        .insert(&user)
        .await
        .expect("the creator is stored");
    user.id
}

/// A fresh, active market opened at the base instant, ending thirty days later, in `general`.
fn market(id: MarketId, title: &str, creator: UserId) -> Market {
    let draft = MarketDraft {
        name: name(title),
        description: MarketDescription::default(),
        category: category("general"),
        end_date: default_end(),
    };
    Market::open(id, draft, creator, at(0)).expect("the market opens")
}

async fn store(repositories: &Repositories, markets: &[Market]) {
    for market in markets {
        repositories
            .markets
            .insert(market)
            .await
            .expect("the market is stored");
    }
}

async fn find(repositories: &Repositories, id: MarketId) -> Option<Market> {
    repositories
        .markets
        .find_by_id(id)
        .await
        .expect("the store reads")
}

async fn list(repositories: &Repositories, query: &MarketListQuery) -> Page<MarketProjection> {
    let page = repositories
        .markets
        .list(query)
        .await
        .expect("the store lists");
    assert_eq!(page.request, query.page, "the page echoes its request");
    page
}

/// The ids listed, in order, and the total.
async fn listed(repositories: &Repositories, query: &MarketListQuery) -> (Vec<MarketId>, u64) {
    let page = list(repositories, query).await;
    (page.items.iter().map(|item| item.id).collect(), page.total)
}

/// Every market matching `filter`, as a sorted list of ids, and the total.
async fn matching(repositories: &Repositories, filter: MarketFilter) -> (Vec<MarketId>, u64) {
    let query = MarketListQuery {
        filter,
        page: PageRequest::new(PageRequest::MAX_LIMIT, 0).expect("a valid page"),
        ..MarketListQuery::default()
    };
    let (mut ids, total) = listed(repositories, &query).await;
    ids.sort();
    (ids, total)
}

fn sorted(mut ids: Vec<MarketId>) -> Vec<MarketId> {
    ids.sort();
    ids
}

fn text_filter(text: &str) -> MarketFilter {
    MarketFilter {
        text: Some(search(text)),
        ..MarketFilter::default()
    }
}

/// Every query parameter at once: the first page of everything, sorted by `text`.
fn sorted_by(text: &str) -> MarketListQuery {
    MarketListQuery {
        sort: sort(text),
        page: PageRequest::new(PageRequest::MAX_LIMIT, 0).expect("a valid page"),
        ..MarketListQuery::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Insert and find

async fn a_stored_market_is_found_by_id_with_every_field_intact(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;

    let mut resolved = market(id(1), "Will it rain in Zürich on 1 June? 🌧", alice);
    resolved.description = MarketDescription::parse(
        "Resolves YES if MeteoSwiss records rain.\n\tSee: https://example.com/?a=1&b=50%_off\\",
    )
    .expect("a valid description");
    resolved.category = category("weather-2026");
    resolved.end_date = at(10 * DAY_MICROS + 999_999);
    resolved.yes_volume = cents(123_456);
    resolved.no_volume = cents(7);
    resolved.image_url = Some("https://cdn.example.com/m/1.png?x=%20".into());
    resolved.thumbnail_url = Some("https://cdn.example.com/m/1-thumb.png".into());
    resolved
        .apply(
            MarketChanges {
                status: Some(StatusChange {
                    status: MarketStatus::Resolved,
                    outcome: Some(Outcome::No),
                }),
                ..MarketChanges::default()
            },
            at(1),
        )
        .expect("the market resolves");
    resolved.version = 7;
    resolved.created_at = at(-1);

    // Nullable fields empty, the largest volume, whole-second timestamps.
    let mut plain = market(id(2), "Plain", alice);
    plain.yes_volume = Amount::MAX;
    plain.created_at = DateTime::from_timestamp(1_780_000_000, 0).expect("in range");
    plain.updated_at = DateTime::from_timestamp(1_780_000_001, 0).expect("in range");

    let mut cancelled = market(id(3), "Cancelled with a picture", alice);
    cancelled.status = MarketStatus::Cancelled;
    cancelled.image_url = Some(String::new());
    cancelled.no_volume = cents(1);

    let mut closed = market(id(4), "Closed and resolved yes later", alice);
    closed.status = MarketStatus::Closed;
    let mut yes = market(id(5), "Resolved yes", alice);
    yes.status = MarketStatus::Resolved;
    yes.outcome = Some(Outcome::Yes);

    let all = [resolved, plain, cancelled, closed, yes];
    store(&repositories, &all).await;

    for stored in &all {
        assert_eq!(find(&repositories, stored.id).await.as_ref(), Some(stored));
    }
}

async fn an_unknown_market_id_is_none(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    store(&repositories, &[market(id(1), "Present", alice)]).await;

    assert_eq!(find(&repositories, id(2)).await, None);
    assert_eq!(
        find(&repositories, MarketId::from_uuid(Uuid::now_v7())).await,
        None
    );
    assert!(find(&repositories, id(1)).await.is_some());
}

async fn a_taken_market_id_is_a_conflict_and_the_stored_market_is_kept(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let original = market(id(1), "Original", alice);
    store(&repositories, std::slice::from_ref(&original)).await;

    let mut impostor = market(id(1), "Impostor", alice);
    impostor.yes_volume = cents(100);
    impostor.version = 9;
    let result = repositories.markets.insert(&impostor).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("id"))),
        "{result:?}"
    );
    let result = repositories.markets.insert(&original).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("id"))),
        "{result:?}"
    );

    assert_eq!(find(&repositories, id(1)).await, Some(original));
    let (ids, total) = listed(&repositories, &MarketListQuery::default()).await;
    assert_eq!((ids, total), (vec![id(1)], 1));
}

// ---------------------------------------------------------------------------------------------
// Filters

async fn an_empty_store_lists_nothing_with_a_total_of_zero(repositories: Repositories) {
    let page = list(&repositories, &MarketListQuery::default()).await;
    assert_eq!(page.items, vec![]);
    assert_eq!(page.total, 0);

    let alice = creator(&repositories, "alice").await;
    store(&repositories, &[market(id(1), "Something", alice)]).await;
    let (ids, total) = matching(&repositories, text_filter("nothing like it")).await;
    assert_eq!((ids, total), (vec![], 0));
}

async fn the_status_filter_alone_keeps_only_that_status(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let markets: Vec<Market> = (1_u128..)
        .zip(MarketStatus::ALL)
        .flat_map(|(n, status)| {
            [n, n + 10].map(|n| {
                let mut m = market(id(n), &format!("Market {n}"), alice);
                m.status = status;
                m
            })
        })
        .collect();
    store(&repositories, &markets).await;

    for (n, status) in (1_u128..).zip(MarketStatus::ALL) {
        let filter = MarketFilter {
            status: Some(status),
            ..MarketFilter::default()
        };
        assert_eq!(
            matching(&repositories, filter).await,
            (vec![id(n), id(n + 10)], 2),
            "{status}"
        );
    }
}

async fn the_category_filter_alone_keeps_only_that_category(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let in_category = |n: u128, slug: &str| {
        let mut m = market(id(n), &format!("Market {n}"), alice);
        m.category = category(slug);
        m
    };
    store(
        &repositories,
        &[
            in_category(1, "sports"),
            in_category(2, "politics"),
            in_category(3, "sports"),
            // Prefixes and look-alikes are other categories.
            in_category(4, "sports-2026"),
            in_category(5, "sport"),
        ],
    )
    .await;

    let only = |slug: &str| MarketFilter {
        category: Some(category(slug)),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, only("sports")).await,
        (vec![id(1), id(3)], 2)
    );
    assert_eq!(
        matching(&repositories, only("politics")).await,
        (vec![id(2)], 1)
    );
    assert_eq!(
        matching(&repositories, only("sport")).await,
        (vec![id(5)], 1)
    );
    assert_eq!(matching(&repositories, only("weather")).await, (vec![], 0));
}

async fn the_creator_filter_alone_keeps_only_that_creators_markets(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let bob = creator(&repositories, "bob").await;
    let carol = creator(&repositories, "carol").await;
    store(
        &repositories,
        &[
            market(id(1), "By Alice", alice),
            market(id(2), "By Bob", bob),
            market(id(3), "Also by Alice", alice),
        ],
    )
    .await;

    let by = |creator: UserId| MarketFilter {
        creator_id: Some(creator),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, by(alice)).await,
        (vec![id(1), id(3)], 2)
    );
    assert_eq!(matching(&repositories, by(bob)).await, (vec![id(2)], 1));
    assert_eq!(matching(&repositories, by(carol)).await, (vec![], 0));
}

async fn min_volume_is_inclusive_on_yes_plus_no(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let with_volume = |n: u128, yes: i64, no: i64| {
        let mut m = market(id(n), &format!("Market {n}"), alice);
        m.yes_volume = cents(yes);
        m.no_volume = cents(no);
        m
    };
    store(
        &repositories,
        &[
            with_volume(1, 499, 0),
            // Neither side reaches the minimum; the sum does, exactly.
            with_volume(2, 200, 300),
            with_volume(3, 0, 501),
            with_volume(4, 500, 0),
            with_volume(5, 250, 249),
            with_volume(6, 0, 0),
        ],
    )
    .await;

    let at_least = |amount: i64| MarketFilter {
        min_volume: Some(cents(amount)),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, at_least(500)).await,
        (vec![id(2), id(3), id(4)], 3)
    );
    assert_eq!(
        matching(&repositories, at_least(501)).await,
        (vec![id(3)], 1)
    );
    assert_eq!(
        matching(&repositories, at_least(499)).await,
        (vec![id(1), id(2), id(3), id(4), id(5)], 5)
    );
    assert_eq!(
        matching(&repositories, at_least(0)).await,
        (vec![id(1), id(2), id(3), id(4), id(5), id(6)], 6)
    );
    assert_eq!(matching(&repositories, at_least(502)).await, (vec![], 0));
}

async fn end_date_bounds_are_strict(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let edge = default_end();
    let ending = |n: u128, end: DateTime<Utc>| {
        let mut m = market(id(n), &format!("Market {n}"), alice);
        m.end_date = end;
        m
    };
    let micro = TimeDelta::microseconds(1);
    store(
        &repositories,
        &[
            ending(1, edge - TimeDelta::days(1)),
            ending(2, edge - micro),
            ending(3, edge),
            ending(4, edge + micro),
            ending(5, edge + TimeDelta::days(1)),
        ],
    )
    .await;

    let before = MarketFilter {
        end_before: Some(edge),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, before).await,
        (vec![id(1), id(2)], 2)
    );
    let after = MarketFilter {
        end_after: Some(edge),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, after).await,
        (vec![id(4), id(5)], 2)
    );
    let between = MarketFilter {
        end_after: Some(edge - micro),
        end_before: Some(edge + micro),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, between).await, (vec![id(3)], 1));
    let empty_range = MarketFilter {
        end_after: Some(edge),
        end_before: Some(edge + micro),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, empty_range).await, (vec![], 0));
}

/// Bounds are `DateTime<Utc>`, which holds nanoseconds; "strictly before" and "strictly after"
/// hold for them too, whatever precision the store keeps.
async fn end_date_bounds_between_stored_microseconds_are_honoured(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let edge = default_end();
    let ending = |n: u128, end: DateTime<Utc>| {
        let mut m = market(id(n), &format!("Market {n}"), alice);
        m.end_date = end;
        m
    };
    let micro = TimeDelta::microseconds(1);
    store(
        &repositories,
        &[
            ending(1, edge - micro),
            ending(2, edge),
            ending(3, edge + micro),
        ],
    )
    .await;

    for nanos in [1, 499, 500, 501, 999] {
        let half = TimeDelta::nanoseconds(nanos);
        let before = MarketFilter {
            end_before: Some(edge + half),
            ..MarketFilter::default()
        };
        assert_eq!(
            matching(&repositories, before).await,
            (vec![id(1), id(2)], 2),
            "end_before = edge + {nanos} ns"
        );
        let after = MarketFilter {
            end_after: Some(edge - half),
            ..MarketFilter::default()
        };
        assert_eq!(
            matching(&repositories, after).await,
            (vec![id(2), id(3)], 2),
            "end_after = edge - {nanos} ns"
        );
    }
}

/// Whole seconds, short fractions and six-digit fractions side by side (a store that keeps
/// timestamps as text must still compare them as instants).
async fn timestamps_with_and_without_a_fraction_compare_in_time_order(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let second = DateTime::from_timestamp(1_790_000_000, 0).expect("in range");
    let offsets_micros = [
        (1, -1_000_000),
        (2, -1),
        (3, 0),
        (4, 1),
        (5, 10_000),
        (6, 500_000),
        (7, 999_999),
        (8, 1_000_000),
    ];
    let markets: Vec<Market> = offsets_micros
        .iter()
        .map(|&(n, offset)| {
            let time = second + TimeDelta::microseconds(offset);
            // Ids in the opposite order, so that only the times can give the expected order.
            let mut m = market(id(100 - n), &format!("Market {n}"), alice);
            m.created_at = time;
            m.updated_at = time;
            m.end_date = time + TimeDelta::days(3_650);
            m
        })
        .collect();
    store(&repositories, &markets).await;
    let in_time_order: Vec<MarketId> = markets.iter().map(|m| m.id).collect();

    for key in ["created_at", "updated_at", "end_date"] {
        assert_eq!(
            listed(&repositories, &sorted_by(key)).await,
            (in_time_order.clone(), 8),
            "{key}"
        );
    }
    for stored in &markets {
        assert_eq!(find(&repositories, stored.id).await.as_ref(), Some(stored));
    }

    let end = second + TimeDelta::days(3_650);
    let before = MarketFilter {
        end_before: Some(end),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, before).await,
        (sorted(in_time_order[0..2].to_vec()), 2)
    );
    let after = MarketFilter {
        end_after: Some(end),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, after).await,
        (sorted(in_time_order[3..8].to_vec()), 5)
    );
    let within_the_second = MarketFilter {
        end_after: Some(end),
        end_before: Some(end + TimeDelta::seconds(1)),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, within_the_second).await,
        (sorted(in_time_order[3..7].to_vec()), 4)
    );
}

async fn text_matches_the_name_or_the_description_ignoring_ascii_case(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let mut described = market(id(2), "Election night", alice);
    described.description =
        MarketDescription::parse("Resolves YES if it RAINS in Paris.\nOtherwise NO.")
            .expect("a valid description");
    let mut both = market(id(4), "Rainfall record", alice);
    both.description = MarketDescription::parse("More rain than ever").expect("valid");
    store(
        &repositories,
        &[
            market(id(1), "Will it rain in London?", alice),
            described,
            market(id(3), "Drought in 2027?", alice),
            both,
            market(id(5), "Sunny days", alice),
        ],
    )
    .await;

    for text in ["rain", "RAIN", "RaIn", "  rAiN  "] {
        assert_eq!(
            matching(&repositories, text_filter(text)).await,
            (vec![id(1), id(2), id(4)], 3),
            "{text:?}"
        );
    }
    // Anywhere in the text, spaces and line breaks included; a match in both fields counts once.
    assert_eq!(
        matching(&repositories, text_filter("in 20")).await,
        (vec![id(3)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("PARIS.")).await,
        (vec![id(2)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("record")).await,
        (vec![id(4)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("Sunny days")).await,
        (vec![id(5)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("snow")).await,
        (vec![], 0)
    );
}

async fn percent_underscore_and_backslash_in_the_text_are_literal(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let mut described = market(id(6), "Plain name", alice);
    described.description = MarketDescription::parse("A 50% chance").expect("valid");
    store(
        &repositories,
        &[
            market(id(1), "Rain in 50% of cities", alice),
            market(id(2), "Rain in 500 cities", alice),
            market(id(3), "snake_case names win", alice),
            market(id(4), "snakeXcase names win", alice),
            market(id(5), r"C:\temp is full", alice),
            described,
            market(id(7), "C:temp is empty", alice),
        ],
    )
    .await;

    let cases: [(&str, Vec<MarketId>); 9] = [
        // A search for "50%" must not match "500".
        ("50%", vec![id(1), id(6)]),
        ("0% of", vec![id(1)]),
        ("%", vec![id(1), id(6)]),
        ("%%", vec![]),
        ("e_c", vec![id(3)]),
        ("_", vec![id(3)]),
        (r"\", vec![id(5)]),
        (r"C:\t", vec![id(5)]),
        (r"\%", vec![]),
    ];
    for (text, expected) in cases {
        let total = u64::try_from(expected.len()).expect("small");
        assert_eq!(
            matching(&repositories, text_filter(text)).await,
            (expected, total),
            "{text:?}"
        );
    }
}

async fn the_text_filter_folds_only_ascii_letters(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let mut described = market(id(3), "Pastry prices", alice);
    described.description = MarketDescription::parse("Crème BRÛLÉE index").expect("valid");
    store(
        &repositories,
        &[
            market(id(1), "Éclair sales double", alice),
            market(id(2), "éclair sales halve", alice),
            described,
        ],
    )
    .await;

    // ASCII letters fold; `É` and `é` stay different letters.
    assert_eq!(
        matching(&repositories, text_filter("ÉCLAIR")).await,
        (vec![id(1)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("éCLAIR")).await,
        (vec![id(2)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("CLAIR SALES")).await,
        (vec![id(1), id(2)], 2)
    );
    assert_eq!(
        matching(&repositories, text_filter("brûlée")).await,
        (vec![], 0)
    );
    assert_eq!(
        matching(&repositories, text_filter("brÛlÉe")).await,
        (vec![id(3)], 1)
    );
    assert_eq!(
        matching(&repositories, text_filter("crème")).await,
        (vec![id(3)], 1)
    );
}

async fn all_present_filters_must_hold_together(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let bob = creator(&repositories, "bob").await;
    let low = default_end() - TimeDelta::days(5);
    let high = default_end() + TimeDelta::days(5);

    // The target meets every condition; each decoy misses exactly one.
    let target = |n: u128| {
        let mut m = market(id(n), &format!("Rain market {n}"), alice);
        m.status = MarketStatus::Closed;
        m.category = category("weather");
        m.yes_volume = cents(300);
        m.no_volume = cents(200);
        m
    };
    let mut wrong_status = target(2);
    wrong_status.status = MarketStatus::Active;
    let mut wrong_category = target(3);
    wrong_category.category = category("sports");
    let mut wrong_creator = target(4);
    wrong_creator.creator_id = bob;
    let mut too_small = target(5);
    too_small.no_volume = cents(199);
    let mut too_early = target(6);
    too_early.end_date = low;
    let mut too_late = target(7);
    too_late.end_date = high;
    let mut no_text = target(8);
    no_text.name = name("Sunshine market");
    store(
        &repositories,
        &[
            target(1),
            wrong_status,
            wrong_category,
            wrong_creator,
            too_small,
            too_early,
            too_late,
            no_text,
            target(9),
        ],
    )
    .await;

    let everything = MarketFilter {
        status: Some(MarketStatus::Closed),
        category: Some(category("weather")),
        creator_id: Some(alice),
        min_volume: Some(cents(500)),
        end_before: Some(high),
        end_after: Some(low),
        text: Some(search("RAIN")),
    };
    assert_eq!(
        matching(&repositories, everything.clone()).await,
        (vec![id(1), id(9)], 2)
    );

    // Any two conditions together are an AND, not an OR.
    let two = MarketFilter {
        status: Some(MarketStatus::Active),
        category: Some(category("sports")),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, two).await, (vec![], 0));
    let creator_and_text = MarketFilter {
        creator_id: Some(bob),
        text: Some(search("rain")),
        ..MarketFilter::default()
    };
    assert_eq!(
        matching(&repositories, creator_and_text).await,
        (vec![id(4)], 1)
    );

    // Filters and paging together: the total counts the matches.
    let query = MarketListQuery {
        filter: everything,
        sort: sort("name"),
        page: PageRequest::new(1, 1).expect("a valid page"),
        fields: FieldSet::default(),
    };
    assert_eq!(listed(&repositories, &query).await, (vec![id(9)], 2));
}

// ---------------------------------------------------------------------------------------------
// Sorting

/// Gives `market` a value of `key` that sorts after rank 1 when `rank` is 2. Rank 1 and rank 2
/// differ by one microsecond, one cent of total volume, or one byte of the name.
fn rank(market: &mut Market, key: MarketSortKey, rank: i64) {
    match key {
        MarketSortKey::CreatedAt => market.created_at = at(rank),
        MarketSortKey::UpdatedAt => market.updated_at = at(rank),
        MarketSortKey::EndDate => market.end_date = default_end() + TimeDelta::microseconds(rank),
        // Rank 1 has the larger yes side but the smaller total.
        MarketSortKey::Volume if rank == 1 => {
            market.yes_volume = cents(900);
            market.no_volume = cents(99);
        }
        MarketSortKey::Volume => {
            market.yes_volume = cents(100);
            market.no_volume = cents(900);
        }
        // Upper case sorts before lower case by bytes (and after it in most locales).
        MarketSortKey::Name if rank == 1 => market.name = name("Zebra crossing"),
        MarketSortKey::Name => market.name = name("apple harvest"),
    }
}

/// Three markets: one with the lowest value of `key` and the largest id, and two that tie on a
/// higher value, stored with the larger id first. The two ids differ in their first byte only,
/// `0x7f` against `0x80`, so a signed comparison of bytes would order them the other way round.
async fn check_sort_key(repositories: Repositories, key: MarketSortKey) {
    let alice = creator(&repositories, "alice").await;
    let (lowest, tie_first, tie_second) = (id_with(0xff, 1), id_with(0x7f, 2), id_with(0x80, 0));

    let mut low = market(lowest, "Zebra crossing", alice);
    rank(&mut low, key, 1);
    let mut second = market(tie_second, "apple harvest", alice);
    rank(&mut second, key, 2);
    let mut first = market(tie_first, "apple harvest", alice);
    rank(&mut first, key, 2);
    store(&repositories, &[second, low, first]).await;

    let ascending = sorted_by(key.as_str());
    assert_eq!(
        listed(&repositories, &ascending).await,
        (vec![lowest, tie_first, tie_second], 3),
        "{}",
        key.as_str()
    );
    let descending = sorted_by(&format!("-{}", key.as_str()));
    assert_eq!(
        listed(&repositories, &descending).await,
        (vec![tie_first, tie_second, lowest], 3),
        "-{}",
        key.as_str()
    );
}

async fn markets_sort_by_creation_time_both_ways_with_ties_broken_by_id(
    repositories: Repositories,
) {
    check_sort_key(repositories, MarketSortKey::CreatedAt).await;
}

async fn markets_sort_by_update_time_both_ways_with_ties_broken_by_id(repositories: Repositories) {
    check_sort_key(repositories, MarketSortKey::UpdatedAt).await;
}

async fn markets_sort_by_end_date_both_ways_with_ties_broken_by_id(repositories: Repositories) {
    check_sort_key(repositories, MarketSortKey::EndDate).await;
}

async fn markets_sort_by_total_volume_both_ways_with_ties_broken_by_id(repositories: Repositories) {
    check_sort_key(repositories, MarketSortKey::Volume).await;
}

async fn markets_sort_by_name_bytes_both_ways_with_ties_broken_by_id(repositories: Repositories) {
    check_sort_key(repositories, MarketSortKey::Name).await;
}

async fn names_sort_by_their_utf8_bytes(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let names = [
        (1, "banana"),
        (2, "Cherry"),
        (3, "apple"),
        (4, "Apple"),
        (5, "Éclair"),
        (6, "zucchini"),
        (7, "apple pie"),
        (8, "_underscore"),
        (9, "123 numbers"),
        (10, "apple-pie"),
    ];
    let markets: Vec<Market> = names
        .iter()
        .map(|&(n, title)| market(id(n), title, alice))
        .collect();
    store(&repositories, &markets).await;

    // By bytes: digits < upper case < `_` < lower case < multi-byte letters; a prefix first;
    // ' ' (0x20) < '-' (0x2d).
    let expected = [9, 4, 2, 8, 3, 7, 10, 1, 6, 5].map(id).to_vec();
    assert_eq!(
        listed(&repositories, &sorted_by("name")).await,
        (expected.clone(), 10)
    );
    let reversed: Vec<MarketId> = expected.into_iter().rev().collect();
    assert_eq!(
        listed(&repositories, &sorted_by("-name")).await,
        (reversed, 10)
    );
}

async fn sort_keys_apply_in_order_then_id_ascending(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let make = |n: u128, volume: i64, title: &str, end_days: i64, created: i64| {
        let mut m = market(id(n), title, alice);
        m.yes_volume = cents(volume / 2);
        m.no_volume = cents(volume - volume / 2);
        m.end_date = default_end() + TimeDelta::days(end_days);
        m.created_at = at(created);
        m.updated_at = at(created);
        m
    };
    // m3 and m4 tie on every key; only their ids differ.
    let m1 = make(0x40, 500, "Bravo", 3, 4);
    let m2 = make(0x30, 500, "Alpha", 1, 3);
    let m3 = make(0x20, 100, "Bravo", 2, 1);
    let m4 = make(0x10, 100, "Bravo", 2, 1);
    store(&repositories, &[m3, m1, m4, m2]).await;
    let [m1, m2, m3, m4] = [0x40, 0x30, 0x20, 0x10].map(id);

    let cases = [
        ("-volume,name", vec![m2, m1, m4, m3]),
        ("volume,-name", vec![m4, m3, m1, m2]),
        ("-name,volume", vec![m4, m3, m1, m2]),
        ("name,-end_date", vec![m2, m1, m4, m3]),
        ("end_date,-volume", vec![m2, m4, m3, m1]),
        ("-end_date,name", vec![m1, m4, m3, m2]),
        ("-created_at,volume", vec![m1, m2, m4, m3]),
        ("volume,name,-end_date,-created_at", vec![m4, m3, m2, m1]),
        ("-updated_at,-volume,-name,end_date", vec![m1, m2, m4, m3]),
    ];
    for (text, expected) in cases {
        assert_eq!(
            listed(&repositories, &sorted_by(text)).await,
            (expected, 4),
            "{text}"
        );
    }
}

async fn the_default_sort_is_newest_first_then_id_ascending(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let created = |n: u128, micros: i64| {
        let mut m = market(id(n), &format!("Market {n}"), alice);
        m.created_at = at(micros);
        m
    };
    store(
        &repositories,
        &[
            created(3, 10),
            created(1, 30),
            created(4, 20),
            created(2, 20),
            created(5, 0),
        ],
    )
    .await;

    let (ids, total) = listed(&repositories, &MarketListQuery::default()).await;
    assert_eq!((ids, total), ([1, 2, 4, 3, 5].map(id).to_vec(), 5));
}

// ---------------------------------------------------------------------------------------------
// Pagination

async fn pages_are_windows_over_all_matches_with_the_full_total(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let markets: Vec<Market> = (1..=7)
        .map(|n| {
            let mut m = market(id(100 - n), &format!("Market {n}"), alice);
            if n % 2 == 0 {
                m.category = category("even");
            }
            m
        })
        .collect();
    store(&repositories, &markets).await;
    let all: Vec<MarketId> = markets.iter().map(|m| m.id).collect();

    let window = |limit, offset| MarketListQuery {
        sort: sort("name"),
        page: PageRequest::new(limit, offset).expect("a valid page"),
        ..MarketListQuery::default()
    };
    let cases = [
        ((3, 0), all[0..3].to_vec()),
        ((3, 3), all[3..6].to_vec()),
        ((3, 6), all[6..7].to_vec()),
        ((7, 0), all.clone()),
        ((6, 1), all[1..7].to_vec()),
        ((1, 4), all[4..5].to_vec()),
        ((100, 0), all.clone()),
        ((2, 5), all[5..7].to_vec()),
    ];
    for ((limit, offset), expected) in cases {
        assert_eq!(
            listed(&repositories, &window(limit, offset)).await,
            (expected, 7),
            "limit {limit} offset {offset}"
        );
    }

    // Walking the pages yields every market once, in order.
    let mut walked = Vec::new();
    for offset in (0..7).step_by(2) {
        walked.extend(listed(&repositories, &window(2, offset)).await.0);
    }
    assert_eq!(walked, all);

    // With a filter, the total counts the matches, not the stored rows.
    let evens = |limit, offset| MarketListQuery {
        filter: MarketFilter {
            category: Some(category("even")),
            ..MarketFilter::default()
        },
        ..window(limit, offset)
    };
    let even: Vec<MarketId> = [1, 3, 5].map(|i| all[i]).to_vec();
    assert_eq!(
        listed(&repositories, &evens(2, 0)).await,
        (even[0..2].to_vec(), 3)
    );
    assert_eq!(
        listed(&repositories, &evens(2, 2)).await,
        (even[2..3].to_vec(), 3)
    );
    assert_eq!(
        listed(&repositories, &evens(1, 1)).await,
        (even[1..2].to_vec(), 3)
    );
    assert_eq!(listed(&repositories, &evens(3, 0)).await, (even, 3));
}

async fn a_page_past_the_end_is_empty_with_the_right_total(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let markets: Vec<Market> = (1..=4)
        .map(|n| market(id(n), &format!("Market {n}"), alice))
        .collect();
    store(&repositories, &markets).await;

    for (limit, offset) in [
        (2, 4),
        (1, 4),
        (3, 5),
        (100, 4),
        (100, 1_000),
        (1, PageRequest::MAX_OFFSET),
    ] {
        let query = MarketListQuery {
            page: PageRequest::new(limit, offset).expect("a valid page"),
            ..MarketListQuery::default()
        };
        let page = list(&repositories, &query).await;
        assert_eq!(page.items, vec![], "limit {limit} offset {offset}");
        assert_eq!(page.total, 4, "limit {limit} offset {offset}");
    }

    // Past the end of a filtered list.
    let query = MarketListQuery {
        filter: MarketFilter {
            text: Some(search("Market 3")),
            ..MarketFilter::default()
        },
        page: PageRequest::new(5, 1).expect("a valid page"),
        ..MarketListQuery::default()
    };
    assert_eq!(listed(&repositories, &query).await, (vec![], 1));
}

// ---------------------------------------------------------------------------------------------
// Field sets

/// Two markets: one with every nullable field set, one with none.
async fn two_full_markets(repositories: &Repositories) -> [Market; 2] {
    let alice = creator(repositories, "alice").await;
    let mut rich = market(id(1), "A rich market", alice);
    rich.description = MarketDescription::parse("Described\nat length").expect("valid");
    rich.category = category("economy");
    rich.status = MarketStatus::Resolved;
    rich.outcome = Some(Outcome::Yes);
    rich.yes_volume = cents(250);
    rich.no_volume = cents(50);
    rich.image_url = Some("https://cdn.example.com/1.png".into());
    rich.thumbnail_url = Some("https://cdn.example.com/1-thumb.png".into());
    rich.version = 4;
    rich.end_date = at(3 * DAY_MICROS + 1);
    rich.updated_at = at(17);
    let bare = market(id(2), "B bare market", alice);
    store(repositories, &[rich.clone(), bare.clone()]).await;
    [rich, bare]
}

async fn only_the_requested_fields_are_loaded_with_the_stored_values(repositories: Repositories) {
    let markets = two_full_markets(&repositories).await;
    let query = |set: FieldSet| MarketListQuery {
        sort: sort("name"),
        fields: set,
        ..MarketListQuery::default()
    };

    let mut sets: Vec<FieldSet> = MarketField::ALL
        .iter()
        .map(|field| fields(field.as_str()))
        .collect();
    sets.extend(
        [
            "name,volume,outcome,image_url",
            "yes_volume,no_volume,thumbnail_url,version",
            "created_at,updated_at,end_date,creator_id,status,category,description",
            "volume,yes_volume",
        ]
        .map(fields),
    );
    for set in sets {
        let page = list(&repositories, &query(set.clone())).await;
        let expected: Vec<MarketProjection> = markets
            .iter()
            .map(|market| MarketProjection::of(market, &set))
            .collect();
        assert_eq!(page.items, expected, "{:?}", set.fields());
        assert_eq!(page.total, 2);
    }

    // Spelled out once: only `id` and what was asked for are present.
    let page = list(&repositories, &query(fields("name,volume,outcome"))).await;
    let rich = &page.items[0];
    assert_eq!(rich.id, id(1));
    assert_eq!(
        rich.name.as_ref().map(MarketName::as_str),
        Some("A rich market")
    );
    assert_eq!(rich.volume, Some(cents(300)));
    assert_eq!(rich.outcome, Some(Some(Outcome::Yes)));
    assert_eq!(page.items[1].outcome, Some(None), "asked for, and null");
    assert_eq!(rich.description, None);
    assert_eq!(rich.category, None);
    assert_eq!(rich.status, None);
    assert_eq!(rich.end_date, None);
    assert_eq!(rich.creator_id, None);
    assert_eq!(rich.yes_volume, None);
    assert_eq!(rich.no_volume, None);
    assert_eq!(rich.image_url, None, "not asked for");
    assert_eq!(rich.thumbnail_url, None);
    assert_eq!(rich.version, None);
    assert_eq!(rich.created_at, None);
    assert_eq!(rich.updated_at, None);
}

async fn the_default_field_set_gives_complete_projections(repositories: Repositories) {
    let markets = two_full_markets(&repositories).await;
    let query = MarketListQuery {
        sort: sort("name"),
        ..MarketListQuery::default()
    };
    assert_eq!(query.fields, FieldSet::all());

    let page = list(&repositories, &query).await;
    let expected: Vec<MarketProjection> = markets
        .iter()
        .map(|market| MarketProjection::of(market, &FieldSet::all()))
        .collect();
    assert_eq!(page.items, expected);
    for item in &page.items {
        assert!(
            item.name.is_some()
                && item.description.is_some()
                && item.category.is_some()
                && item.status.is_some()
                && item.end_date.is_some()
                && item.creator_id.is_some()
                && item.yes_volume.is_some()
                && item.no_volume.is_some()
                && item.volume.is_some()
                && item.outcome.is_some()
                && item.image_url.is_some()
                && item.thumbnail_url.is_some()
                && item.version.is_some()
                && item.created_at.is_some()
                && item.updated_at.is_some(),
            "{item:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Update and delete

async fn an_update_with_the_version_read_stores_the_market_exactly_as_given(
    repositories: Repositories,
) {
    let alice = creator(&repositories, "alice").await;
    let bob = creator(&repositories, "bob").await;
    let original = market(id(1), "Original question", alice);
    let bystander = market(id(2), "Bystander", alice);
    store(&repositories, &[original.clone(), bystander.clone()]).await;

    let mut changed = original.clone();
    changed
        .apply(
            MarketChanges {
                name: Some(name("Renamed question")),
                description: Some(MarketDescription::parse("Now with details").expect("valid")),
                category: Some(category("renamed")),
                end_date: Some(default_end() + TimeDelta::microseconds(12_345)),
                status: Some(StatusChange {
                    status: MarketStatus::Resolved,
                    outcome: Some(Outcome::No),
                }),
            },
            at(5_000_001),
        )
        .expect("the changes apply");
    assert_eq!(changed.version, 2);
    changed.creator_id = bob;
    changed.yes_volume = cents(700);
    changed.no_volume = cents(301);
    changed.image_url = Some("https://cdn.example.com/2.png".into());
    changed.thumbnail_url = Some("https://cdn.example.com/2-thumb.png".into());
    changed.created_at = at(-3);

    repositories
        .markets
        .update(&changed, original.version)
        .await
        .expect("the update is accepted");

    assert_eq!(find(&repositories, id(1)).await.as_ref(), Some(&changed));
    assert_eq!(find(&repositories, id(2)).await, Some(bystander));

    // Listings see the new values too, the total volume included.
    let rich = MarketFilter {
        min_volume: Some(cents(1_001)),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, rich).await, (vec![id(1)], 1));
    let too_rich = MarketFilter {
        min_volume: Some(cents(1_002)),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, too_rich).await, (vec![], 0));
    let old_name = text_filter("original");
    assert_eq!(matching(&repositories, old_name).await, (vec![], 0));
    let new = MarketFilter {
        text: Some(search("renamed")),
        category: Some(category("renamed")),
        creator_id: Some(bob),
        status: Some(MarketStatus::Resolved),
        ..MarketFilter::default()
    };
    assert_eq!(matching(&repositories, new).await, (vec![id(1)], 1));
    let page = list(
        &repositories,
        &MarketListQuery {
            filter: text_filter("renamed"),
            ..MarketListQuery::default()
        },
    )
    .await;
    assert_eq!(
        page.items,
        vec![MarketProjection::of(&changed, &FieldSet::all())]
    );

    // The next writer must have read the new version; the version stored is the one given.
    let mut again = changed.clone();
    again.version = 10;
    again.image_url = None;
    again.outcome = None;
    again.status = MarketStatus::Cancelled;
    repositories
        .markets
        .update(&again, 2)
        .await
        .expect("the second update is accepted");
    assert_eq!(find(&repositories, id(1)).await, Some(again));
}

async fn an_update_with_an_old_version_is_stale_and_changes_nothing(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let original = market(id(1), "Original", alice);
    store(&repositories, std::slice::from_ref(&original)).await;

    let mut first = original.clone();
    first.name = name("First writer");
    first.version = 2;
    repositories
        .markets
        .update(&first, 1)
        .await
        .expect("the first writer wins");

    // A second writer who also read version 1 loses, whatever version they propose.
    let mut late = original.clone();
    late.name = name("Second writer");
    late.yes_volume = cents(100);
    for proposed in [2, 3, 1] {
        late.version = proposed;
        let result = repositories.markets.update(&late, 1).await;
        assert!(matches!(result, Err(RepositoryError::Stale)), "{result:?}");
    }
    // A version from the future is stale too.
    let result = repositories.markets.update(&late, 3).await;
    assert!(matches!(result, Err(RepositoryError::Stale)), "{result:?}");

    assert_eq!(find(&repositories, id(1)).await, Some(first));
    assert_eq!(
        matching(&repositories, text_filter("second")).await,
        (vec![], 0)
    );
}

async fn updating_a_missing_market_is_not_found_and_creates_nothing(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let present = market(id(1), "Present", alice);
    store(&repositories, std::slice::from_ref(&present)).await;

    let absent = market(id(2), "Absent", alice);
    for expected_version in [absent.version, 0] {
        let result = repositories.markets.update(&absent, expected_version).await;
        assert!(
            matches!(result, Err(RepositoryError::NotFound)),
            "{result:?}"
        );
    }

    assert_eq!(find(&repositories, id(2)).await, None);
    assert_eq!(find(&repositories, id(1)).await, Some(present));
    let (ids, total) = listed(&repositories, &MarketListQuery::default()).await;
    assert_eq!((ids, total), (vec![id(1)], 1));
}

async fn a_delete_with_the_version_read_removes_only_that_market(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let mut doomed = market(id(1), "Doomed", alice);
    doomed.version = 3;
    let survivor = market(id(2), "Survivor", alice);
    store(&repositories, &[doomed.clone(), survivor.clone()]).await;

    repositories
        .markets
        .delete(doomed.id, 3)
        .await
        .expect("the delete is accepted");

    assert_eq!(find(&repositories, doomed.id).await, None);
    assert_eq!(find(&repositories, survivor.id).await, Some(survivor));
    let (ids, total) = listed(&repositories, &MarketListQuery::default()).await;
    assert_eq!((ids, total), (vec![id(2)], 1));

    // Gone means gone: a second delete finds nothing.
    let result = repositories.markets.delete(doomed.id, 3).await;
    assert!(
        matches!(result, Err(RepositoryError::NotFound)),
        "{result:?}"
    );
    // And the id is free again.
    store(&repositories, &[market(id(1), "Reborn", alice)]).await;
}

async fn a_delete_with_an_old_version_is_stale_and_keeps_the_market(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let original = market(id(1), "Kept", alice);
    store(&repositories, std::slice::from_ref(&original)).await;
    let mut edited = original.clone();
    edited.name = name("Kept and edited");
    edited.version = 2;
    repositories
        .markets
        .update(&edited, 1)
        .await
        .expect("the edit is accepted");

    for expected_version in [1, 3, 0] {
        let result = repositories.markets.delete(id(1), expected_version).await;
        assert!(
            matches!(result, Err(RepositoryError::Stale)),
            "{expected_version}: {result:?}"
        );
    }
    assert_eq!(find(&repositories, id(1)).await, Some(edited));

    repositories
        .markets
        .delete(id(1), 2)
        .await
        .expect("the delete with the current version is accepted");
    assert_eq!(find(&repositories, id(1)).await, None);
}

async fn deleting_a_missing_market_is_not_found(repositories: Repositories) {
    let alice = creator(&repositories, "alice").await;
    let present = market(id(1), "Present", alice);
    store(&repositories, std::slice::from_ref(&present)).await;

    for expected_version in [1, 0] {
        let result = repositories.markets.delete(id(2), expected_version).await;
        assert!(
            matches!(result, Err(RepositoryError::NotFound)),
            "{result:?}"
        );
    }
    assert_eq!(find(&repositories, id(1)).await, Some(present));
    let (ids, _) = listed(&repositories, &MarketListQuery::default()).await;
    assert_eq!(sorted(ids), vec![id(1)]);
}

async fn a_market_whose_creator_does_not_exist_is_refused(repositories: Repositories) {
    let ghost = UserId::from_uuid(Uuid::now_v7());
    let orphan = market(id(1), "Who made me?", ghost);
    assert!(matches!(
        repositories.markets.insert(&orphan).await,
        Err(RepositoryError::Conflict("creator_id"))
    ));
    assert_eq!(
        repositories
            .markets
            .find_by_id(orphan.id)
            .await
            .expect("a read"),
        None
    );

    let real = creator(&repositories, "real-creator").await;
    let owned = market(id(2), "I have a maker", real);
    store(&repositories, std::slice::from_ref(&owned)).await;
    let mut moved = owned.clone();
    moved.creator_id = ghost;
    moved.version += 1;
    assert!(matches!(
        repositories.markets.update(&moved, owned.version).await,
        Err(RepositoryError::Conflict("creator_id"))
    ));
    assert_eq!(
        repositories
            .markets
            .find_by_id(owned.id)
            .await
            .expect("a read"),
        Some(owned)
    );
}
