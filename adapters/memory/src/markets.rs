//! `InMemoryMarketRepository`: markets in an ordered map, listed with the same filter, sort, paging and version semantics as SQL.

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use domain::listing::{
    MarketFilter, MarketListQuery, MarketProjection, MarketSort, MarketSortKey, Page,
};
use domain::ports::{MarketRepository, RepositoryError};
use domain::{Market, MarketId, SortDirection};

use crate::failure::OutageSwitch;
use crate::paging::window;
use crate::store::{Scope, State};
use crate::users::InMemoryUserRepository;

/// The domain's [`MarketRepository`] over the markets of an [`crate::InMemoryStore`], or of one
/// of its transactions.
///
/// `list` follows the port contract field by field:
/// - every present [`MarketFilter`] condition must hold: `status`, `category`, `creator_id`
///   equal; total volume (`yes + no`) at least `min_volume`; end date strictly before
///   `end_before` and strictly after `end_after`; `text` a substring of the name or the
///   description after ASCII lower-casing of both sides (`%` and `_` have no special meaning;
///   non-ASCII letters match only in the same case);
/// - ordered by the [`MarketSort`] keys in turn, then by id ascending (UUID byte order, as
///   PostgreSQL's `uuid` type and SQLite's lower-case text both sort);
/// - `Name` compares the names' UTF-8 bytes, which is SQL's binary / `"C"` collation. A database
///   with a linguistic collation (PostgreSQL's default `en_US.UTF-8`) orders mixed case and
///   punctuation differently, so the contract for name order is only defined for ASCII names of
///   the same case;
/// - `total` counts every match; `items` are the window `offset..offset + limit` of them, each
///   reduced to the requested fields with [`MarketProjection::of`].
///
/// `update` and `delete` compare the stored `version` with `expected_version`; `update` stores
/// the given market as it is, its `version` included (the caller bumps it, as
/// `Market::apply` does).
///
/// `insert` and `update` check that `creator_id` names a user of the same store, as the SQL
/// foreign key does (`Conflict("creator_id")`; `insert` checks the id first, `update` the
/// version first, as the SQL statements do).
///
/// `delete` also deletes the market's positions, as `ON DELETE CASCADE` would: the port lists no
/// error for a market that still has positions.
#[derive(Debug)]
pub struct InMemoryMarketRepository {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryMarketRepository {
    /// An empty repository over the store of `creators`: its markets must be created by users of
    /// `creators` (the same as `InMemoryStore::markets()`, for code that holds only the users).
    #[must_use]
    pub fn new(creators: Arc<InMemoryUserRepository>) -> Self {
        Self::in_scope(creators.scope().clone())
    }

    pub(crate) fn in_scope(scope: Scope) -> Self {
        Self {
            scope,
            outage: OutageSwitch::default(),
        }
    }

    /// While `true`, every operation of this repository fails with
    /// [`RepositoryError::Unavailable`] and changes nothing, as a database that cannot be reached
    /// would. [`crate::InMemoryStore::set_unavailable`] switches the whole store off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }

    fn read<R>(&self, read: impl FnOnce(&State) -> R) -> Result<R, RepositoryError> {
        self.outage.check()?;
        self.scope.read(read)
    }

    async fn write(
        &self,
        write: impl FnOnce(&mut State) -> Result<(), RepositoryError> + Send,
    ) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope.write(write).await
    }
}

fn check_creator(state: &State, market: &Market) -> Result<(), RepositoryError> {
    if state.users.contains(market.creator_id) {
        Ok(())
    } else {
        Err(RepositoryError::Conflict("creator_id"))
    }
}

/// The stored version of market `id`: `NotFound` or `Stale` unless it is `expected_version`.
fn check_version(
    state: &State,
    id: MarketId,
    expected_version: i64,
) -> Result<(), RepositoryError> {
    let stored = state.markets.get(&id).ok_or(RepositoryError::NotFound)?;
    if stored.version == expected_version {
        Ok(())
    } else {
        Err(RepositoryError::Stale)
    }
}

fn matches(filter: &MarketFilter, market: &Market) -> bool {
    filter.status.is_none_or(|status| market.status == status)
        && filter
            .category
            .as_ref()
            .is_none_or(|category| market.category == *category)
        && filter
            .creator_id
            .is_none_or(|creator| market.creator_id == creator)
        && filter
            .min_volume
            .is_none_or(|minimum| market.volume() >= minimum)
        && filter
            .end_before
            .is_none_or(|before| market.end_date < before)
        && filter.end_after.is_none_or(|after| market.end_date > after)
        && filter.text.as_ref().is_none_or(|text| {
            let needle = text.as_str().to_ascii_lowercase();
            market.name.as_str().to_ascii_lowercase().contains(&needle)
                || market
                    .description
                    .as_str()
                    .to_ascii_lowercase()
                    .contains(&needle)
        })
}

fn compare(sort: &MarketSort, a: &Market, b: &Market) -> Ordering {
    sort.keys()
        .iter()
        .map(|&(key, direction)| {
            let ascending = match key {
                MarketSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                MarketSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
                MarketSortKey::EndDate => a.end_date.cmp(&b.end_date),
                MarketSortKey::Volume => a.volume().cmp(&b.volume()),
                MarketSortKey::Name => a.name.as_str().cmp(b.name.as_str()),
            };
            match direction {
                SortDirection::Ascending => ascending,
                SortDirection::Descending => ascending.reverse(),
            }
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or_else(|| a.id.cmp(&b.id))
}

#[async_trait]
impl MarketRepository for InMemoryMarketRepository {
    async fn insert(&self, market: &Market) -> Result<(), RepositoryError> {
        self.write(|state| {
            if state.markets.contains_key(&market.id) {
                return Err(RepositoryError::Conflict("id"));
            }
            check_creator(state, market)?;
            Arc::make_mut(&mut state.markets).insert(market.id, market.clone());
            Ok(())
        })
        .await
    }

    async fn find_by_id(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        self.read(|state| state.markets.get(&id).cloned())
    }

    async fn find_many(&self, ids: &[MarketId]) -> Result<Vec<Market>, RepositoryError> {
        let ids: std::collections::BTreeSet<MarketId> = ids.iter().copied().collect();
        self.read(|state| {
            ids.iter()
                .filter_map(|id| state.markets.get(id))
                .cloned()
                .collect()
        })
    }

    async fn list(
        &self,
        query: &MarketListQuery,
    ) -> Result<Page<MarketProjection>, RepositoryError> {
        self.read(|state| {
            let mut matching: Vec<&Market> = state
                .markets
                .values()
                .filter(|market| matches(&query.filter, market))
                .collect();
            matching.sort_by(|a, b| compare(&query.sort, a, b));
            window(matching, query.page).map(|market| MarketProjection::of(market, &query.fields))
        })
    }

    async fn update(&self, market: &Market, expected_version: i64) -> Result<(), RepositoryError> {
        self.write(|state| {
            check_version(state, market.id, expected_version)?;
            check_creator(state, market)?;
            Arc::make_mut(&mut state.markets).insert(market.id, market.clone());
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: MarketId, expected_version: i64) -> Result<(), RepositoryError> {
        self.write(|state| {
            check_version(state, id, expected_version)?;
            if state
                .positions
                .values()
                .any(|position| position.market_id == id)
            {
                return Err(RepositoryError::Conflict("positions"));
            }
            Arc::make_mut(&mut state.markets).remove(&id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};
    use domain::listing::{FieldSet, MarketField, PageRequest, SearchText};
    use domain::{Amount, Category, MarketDescription, MarketName, MarketStatus, UserId};
    use uuid::Uuid;

    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).expect("in range")
    }

    fn id(n: u128) -> MarketId {
        MarketId::from_uuid(Uuid::from_u128(n))
    }

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(1_000 + n))
    }

    fn cents(n: i64) -> Amount {
        Amount::from_cents(n).expect("valid amount")
    }

    /// Market `n`: created `n` minutes after the start, ending `n` days after it.
    fn market(n: u128, name: &str) -> Market {
        let minutes = i64::try_from(n).expect("small");
        let created = start() + TimeDelta::minutes(minutes);
        Market {
            id: id(n),
            name: MarketName::parse(name).expect("valid name"),
            description: MarketDescription::default(),
            category: Category::parse("general").expect("valid category"),
            status: MarketStatus::Active,
            end_date: start() + TimeDelta::days(minutes),
            creator_id: user(1),
            yes_volume: Amount::ZERO,
            no_volume: Amount::ZERO,
            outcome: None,
            image_url: None,
            thumbnail_url: None,
            version: 1,
            created_at: created,
            updated_at: created,
        }
    }

    /// A repository whose creators `user(1)` and `user(2)` exist.
    async fn empty_repository() -> InMemoryMarketRepository {
        use domain::ports::UserRepository as _;
        let users = Arc::new(InMemoryUserRepository::new());
        for n in [1, 2] {
            users
                .insert(&domain::User {
                    id: user(n),
                    email: domain::Email::parse(&format!("creator{n}@example.com"))
                        .expect("an email"),
                    name: domain::DisplayName::parse("Creator").expect("a name"),
                    password_hash: domain::PasswordHash::from_phc(String::new()),
                    role: domain::Role::User,
                    balance: Amount::ZERO,
                    disabled: false,
                    created_at: start(),
                    updated_at: start(),
                })
                .await
                .expect("a creator");
        }
        InMemoryMarketRepository::new(users)
    }

    async fn repository_with(markets: &[Market]) -> InMemoryMarketRepository {
        let repository = empty_repository().await;
        for market in markets {
            repository.insert(market).await.expect("inserts");
        }
        repository
    }

    async fn ids(
        repository: &InMemoryMarketRepository,
        query: &MarketListQuery,
    ) -> (Vec<MarketId>, u64) {
        let page = repository.list(query).await.expect("lists");
        (page.items.iter().map(|item| item.id).collect(), page.total)
    }

    fn filtered(filter: MarketFilter) -> MarketListQuery {
        MarketListQuery {
            filter,
            sort: MarketSort::parse("created_at").expect("valid sort"),
            ..MarketListQuery::default()
        }
    }

    fn sorted(sort: &str) -> MarketListQuery {
        MarketListQuery {
            sort: MarketSort::parse(sort).expect("valid sort"),
            ..MarketListQuery::default()
        }
    }

    #[tokio::test]
    async fn a_stored_market_is_found_by_id() {
        let stored = market(1, "Will it rain?");
        let repository = repository_with(std::slice::from_ref(&stored)).await;
        assert_eq!(
            repository.find_by_id(stored.id).await.expect("reads"),
            Some(stored)
        );
        assert_eq!(repository.find_by_id(id(2)).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn an_id_can_be_inserted_once() {
        let first = market(1, "Will it rain?");
        let repository = repository_with(std::slice::from_ref(&first)).await;
        let twin = market(1, "Will it snow?");
        assert!(matches!(
            repository.insert(&twin).await,
            Err(RepositoryError::Conflict("id"))
        ));
        assert_eq!(
            repository.find_by_id(first.id).await.expect("reads"),
            Some(first)
        );
    }

    #[tokio::test]
    async fn the_default_query_lists_newest_first_with_every_field() {
        let markets = [market(1, "One"), market(2, "Two"), market(3, "Three")];
        let repository = repository_with(&markets).await;
        let page = repository
            .list(&MarketListQuery::default())
            .await
            .expect("lists");
        assert_eq!(page.total, 3);
        assert_eq!(page.request, PageRequest::default());
        let expected: Vec<MarketProjection> = markets
            .iter()
            .rev()
            .map(|market| MarketProjection::of(market, &FieldSet::all()))
            .collect();
        assert_eq!(page.items, expected);
        assert_eq!(page.items[0].volume, Some(Amount::ZERO));
    }

    #[tokio::test]
    async fn an_empty_store_lists_an_empty_page() {
        let repository = empty_repository().await;
        let page = repository
            .list(&MarketListQuery::default())
            .await
            .expect("lists");
        assert!(page.items.is_empty());
        assert_eq!(page.total, 0);
    }

    #[tokio::test]
    async fn status_category_and_creator_filters_are_equalities() {
        let mut closed = market(2, "Closed");
        closed.status = MarketStatus::Closed;
        let mut sports = market(3, "Sports");
        sports.category = Category::parse("sports").expect("valid category");
        let mut other_creator = market(4, "Other creator");
        other_creator.creator_id = user(2);
        let repository =
            repository_with(&[market(1, "Plain"), closed, sports, other_creator.clone()]).await;

        let by_status = filtered(MarketFilter {
            status: Some(MarketStatus::Closed),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &by_status).await, (vec![id(2)], 1));

        let by_category = filtered(MarketFilter {
            category: Some(Category::parse("sports").expect("valid category")),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &by_category).await, (vec![id(3)], 1));

        let by_creator = filtered(MarketFilter {
            creator_id: Some(user(2)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &by_creator).await, (vec![id(4)], 1));

        let all_of_them = filtered(MarketFilter {
            status: Some(MarketStatus::Active),
            category: Some(Category::parse("general").expect("valid category")),
            creator_id: Some(user(1)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &all_of_them).await, (vec![id(1)], 1));
    }

    #[tokio::test]
    async fn min_volume_is_inclusive_on_the_total_volume() {
        let mut small = market(1, "Small");
        small.yes_volume = cents(499);
        let mut exact = market(2, "Exact");
        exact.yes_volume = cents(200);
        exact.no_volume = cents(300);
        let mut large = market(3, "Large");
        large.no_volume = cents(501);
        let repository = repository_with(&[small, exact, large]).await;
        let query = filtered(MarketFilter {
            min_volume: Some(cents(500)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &query).await, (vec![id(2), id(3)], 2));
    }

    #[tokio::test]
    async fn end_date_bounds_are_strict() {
        // Market n ends n days after the start.
        let repository = repository_with(&[
            market(1, "One"),
            market(2, "Two"),
            market(3, "Three"),
            market(4, "Four"),
        ])
        .await;
        let before = filtered(MarketFilter {
            end_before: Some(start() + TimeDelta::days(3)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &before).await, (vec![id(1), id(2)], 2));
        let after = filtered(MarketFilter {
            end_after: Some(start() + TimeDelta::days(2)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &after).await, (vec![id(3), id(4)], 2));
        let between = filtered(MarketFilter {
            end_after: Some(start() + TimeDelta::days(1)),
            end_before: Some(start() + TimeDelta::days(4)),
            ..MarketFilter::default()
        });
        assert_eq!(ids(&repository, &between).await, (vec![id(2), id(3)], 2));
    }

    #[tokio::test]
    async fn text_matches_name_or_description_ignoring_ascii_case() {
        let mut described = market(2, "Election");
        described.description =
            MarketDescription::parse("Resolves YES if it RAINS in Paris").expect("valid");
        let repository = repository_with(&[
            market(1, "Will it rain in London?"),
            described,
            market(3, "Drought in 2027?"),
            market(4, "100% sure_thing"),
            market(5, "100 percent sure thing"),
            market(6, "Éclair sales"),
        ])
        .await;
        let search = |text: &str| {
            filtered(MarketFilter {
                text: Some(SearchText::parse(text).expect("valid text")),
                ..MarketFilter::default()
            })
        };
        assert_eq!(
            ids(&repository, &search("RaIn")).await,
            (vec![id(1), id(2)], 2)
        );
        assert_eq!(ids(&repository, &search("in 20")).await, (vec![id(3)], 1));
        // `%` and `_` are literal, not wildcards.
        assert_eq!(ids(&repository, &search("0% s")).await, (vec![id(4)], 1));
        assert_eq!(ids(&repository, &search("e_t")).await, (vec![id(4)], 1));
        assert_eq!(ids(&repository, &search("%")).await, (vec![id(4)], 1));
        // Only ASCII letters are folded.
        assert_eq!(ids(&repository, &search("ÉCLAIR")).await, (vec![id(6)], 1));
        assert_eq!(ids(&repository, &search("éclair")).await, (vec![], 0));
        assert_eq!(ids(&repository, &search("snow")).await, (vec![], 0));
    }

    #[tokio::test]
    async fn sort_keys_apply_in_order_then_id_ascending() {
        // Volumes: 1 -> 5.00, 2 -> 1.00, 3 -> 5.00, 4 -> 1.00; names all distinct.
        let volume = |n: u128, c: i64, name: &str| {
            let mut m = market(n, name);
            m.yes_volume = cents(c);
            m
        };
        let repository = repository_with(&[
            volume(3, 500, "Charlie"),
            volume(1, 500, "Delta"),
            volume(4, 100, "Alpha"),
            volume(2, 100, "Bravo"),
        ])
        .await;
        let (by_volume_desc, _) = ids(&repository, &sorted("-volume")).await;
        assert_eq!(by_volume_desc, vec![id(1), id(3), id(2), id(4)]);
        let (by_volume_asc, _) = ids(&repository, &sorted("volume")).await;
        assert_eq!(by_volume_asc, vec![id(2), id(4), id(1), id(3)]);
        let (volume_then_name, _) = ids(&repository, &sorted("-volume,-name")).await;
        assert_eq!(volume_then_name, vec![id(1), id(3), id(2), id(4)]);
        let (volume_then_name, _) = ids(&repository, &sorted("volume,name")).await;
        assert_eq!(volume_then_name, vec![id(4), id(2), id(3), id(1)]);
        let (by_name, _) = ids(&repository, &sorted("name")).await;
        assert_eq!(by_name, vec![id(4), id(2), id(3), id(1)]);
        let (by_end_date, _) = ids(&repository, &sorted("-end_date")).await;
        assert_eq!(by_end_date, vec![id(4), id(3), id(2), id(1)]);
    }

    #[tokio::test]
    async fn timestamps_sort_both_ways() {
        let mut edited = market(1, "Edited last");
        edited.updated_at = start() + TimeDelta::days(1);
        let repository = repository_with(&[edited, market(2, "Second"), market(3, "Third")]).await;
        let (by_created, _) = ids(&repository, &sorted("created_at")).await;
        assert_eq!(by_created, vec![id(1), id(2), id(3)]);
        let (by_created_desc, _) = ids(&repository, &sorted("-created_at")).await;
        assert_eq!(by_created_desc, vec![id(3), id(2), id(1)]);
        let (by_updated_desc, _) = ids(&repository, &sorted("-updated_at")).await;
        assert_eq!(by_updated_desc, vec![id(1), id(3), id(2)]);
    }

    #[tokio::test]
    async fn names_sort_by_their_bytes() {
        let repository = repository_with(&[
            market(1, "banana"),
            market(2, "Cherry"),
            market(3, "apple"),
            market(4, "Apple"),
        ])
        .await;
        let (by_name, _) = ids(&repository, &sorted("name")).await;
        assert_eq!(by_name, vec![id(4), id(2), id(3), id(1)]);
    }

    #[tokio::test]
    async fn full_ties_are_broken_by_id_ascending_whatever_the_direction() {
        // Same creation time, name, end date and volume: only the id differs.
        let same = |n: u128| {
            let mut m = market(n, "Same");
            m.created_at = start();
            m.updated_at = start();
            m.end_date = start() + TimeDelta::days(1);
            m
        };
        let repository = repository_with(&[same(3), same(1), same(2)]).await;
        for sort in ["-created_at", "created_at", "-name,volume", "-end_date"] {
            let (ordered, _) = ids(&repository, &sorted(sort)).await;
            assert_eq!(ordered, vec![id(1), id(2), id(3)], "{sort}");
        }
    }

    #[tokio::test]
    async fn pages_are_windows_over_the_sorted_matches_with_the_full_total() {
        let markets: Vec<Market> = (1..=7).map(|n| market(n, &format!("Market {n}"))).collect();
        let repository = repository_with(&markets).await;
        let page = |limit, offset| MarketListQuery {
            sort: MarketSort::parse("created_at").expect("valid sort"),
            page: PageRequest::new(limit, offset).expect("valid page"),
            ..MarketListQuery::default()
        };
        assert_eq!(
            ids(&repository, &page(3, 0)).await,
            (vec![id(1), id(2), id(3)], 7)
        );
        assert_eq!(
            ids(&repository, &page(3, 3)).await,
            (vec![id(4), id(5), id(6)], 7)
        );
        assert_eq!(ids(&repository, &page(3, 6)).await, (vec![id(7)], 7));
        assert_eq!(ids(&repository, &page(3, 7)).await, (vec![], 7));
        assert_eq!(
            ids(&repository, &page(3, PageRequest::MAX_OFFSET)).await,
            (vec![], 7)
        );
        let returned = repository.list(&page(2, 4)).await.expect("lists");
        assert_eq!(
            returned.request,
            PageRequest::new(2, 4).expect("valid page")
        );

        // Paging and filtering together: the total counts matches, not rows.
        let filtered_page = MarketListQuery {
            filter: MarketFilter {
                end_after: Some(start() + TimeDelta::days(2)),
                ..MarketFilter::default()
            },
            ..page(2, 2)
        };
        assert_eq!(
            ids(&repository, &filtered_page).await,
            (vec![id(5), id(6)], 5)
        );
    }

    #[tokio::test]
    async fn only_the_requested_fields_are_returned() {
        let mut resolved = market(1, "Resolved");
        resolved.yes_volume = cents(250);
        resolved.no_volume = cents(50);
        let repository = repository_with(std::slice::from_ref(&resolved)).await;
        let query = MarketListQuery {
            fields: FieldSet::parse("name,volume,outcome").expect("valid fields"),
            ..MarketListQuery::default()
        };
        let page = repository.list(&query).await.expect("lists");
        let item = &page.items[0];
        assert_eq!(item.id, resolved.id);
        assert_eq!(item.name, Some(resolved.name.clone()));
        assert_eq!(item.volume, Some(cents(300)));
        assert_eq!(item.outcome, Some(None));
        assert_eq!(item.description, None);
        assert_eq!(item.yes_volume, None);
        assert_eq!(item.version, None);
        assert_eq!(item.image_url, None);
        assert_eq!(
            *item,
            MarketProjection::of(&resolved, &query.fields),
            "the same as the domain's projection"
        );
        assert!(query.fields.contains(MarketField::Id));
    }

    #[tokio::test]
    async fn an_update_needs_the_version_that_was_read() {
        let original = market(1, "Original");
        let repository = repository_with(std::slice::from_ref(&original)).await;
        let mut renamed = original.clone();
        renamed.name = MarketName::parse("Renamed").expect("valid name");
        renamed.version = 2;
        repository.update(&renamed, 1).await.expect("updates");
        assert_eq!(
            repository.find_by_id(original.id).await.expect("reads"),
            Some(renamed.clone())
        );
        // A second writer who also read version 1 loses.
        let mut late = original.clone();
        late.name = MarketName::parse("Too late").expect("valid name");
        late.version = 2;
        assert!(matches!(
            repository.update(&late, 1).await,
            Err(RepositoryError::Stale)
        ));
        assert_eq!(
            repository.find_by_id(original.id).await.expect("reads"),
            Some(renamed)
        );
    }

    #[tokio::test]
    async fn updating_a_missing_market_is_not_found() {
        let repository = repository_with(&[market(1, "Present")]).await;
        assert!(matches!(
            repository.update(&market(2, "Absent"), 1).await,
            Err(RepositoryError::NotFound)
        ));
        assert_eq!(repository.find_by_id(id(2)).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn a_delete_needs_the_version_that_was_read() {
        let mut stored = market(1, "Doomed");
        stored.version = 3;
        let repository = repository_with(std::slice::from_ref(&stored)).await;
        assert!(matches!(
            repository.delete(stored.id, 2).await,
            Err(RepositoryError::Stale)
        ));
        assert!(
            repository
                .find_by_id(stored.id)
                .await
                .expect("reads")
                .is_some()
        );
        repository.delete(stored.id, 3).await.expect("deletes");
        assert_eq!(repository.find_by_id(stored.id).await.expect("reads"), None);
        assert!(matches!(
            repository.delete(stored.id, 3).await,
            Err(RepositoryError::NotFound)
        ));
        let page = repository
            .list(&MarketListQuery::default())
            .await
            .expect("lists");
        assert_eq!(page.total, 0);
    }

    #[tokio::test]
    async fn a_switched_off_store_is_unavailable_and_changes_nothing() {
        let stored = market(1, "Stored");
        let repository = repository_with(std::slice::from_ref(&stored)).await;
        repository.set_unavailable(true);
        let unavailable = |result: Result<(), RepositoryError>| {
            matches!(result, Err(RepositoryError::Unavailable(_)))
        };
        assert!(unavailable(repository.insert(&market(2, "New")).await));
        assert!(unavailable(repository.update(&stored, 1).await));
        assert!(unavailable(repository.delete(stored.id, 1).await));
        assert!(unavailable(
            repository.find_by_id(stored.id).await.map(drop)
        ));
        assert!(unavailable(
            repository.list(&MarketListQuery::default()).await.map(drop)
        ));
        repository.set_unavailable(false);
        let (listed, total) = ids(&repository, &MarketListQuery::default()).await;
        assert_eq!((listed, total), (vec![stored.id], 1));
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_unavailable_not_a_panic() {
        let repository = empty_repository().await;
        crate::store::testing::poison(repository.scope.shared());
        assert!(matches!(
            repository.list(&MarketListQuery::default()).await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            repository.delete(id(1), 1).await,
            Err(RepositoryError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn find_many_returns_each_known_market_once() {
        let repository = repository_with(&[market(1, "One"), market(2, "Two")]).await;
        let mut found = repository
            .find_many(&[id(2), id(9), id(1), id(2)])
            .await
            .expect("reads");
        found.sort_by_key(|found| found.id);
        assert_eq!(found, vec![market(1, "One"), market(2, "Two")]);
        assert_eq!(repository.find_many(&[]).await.expect("reads"), vec![]);
    }

    #[tokio::test]
    async fn an_update_checks_the_version_before_the_creator() {
        let stored = market(1, "Stored");
        let repository = repository_with(std::slice::from_ref(&stored)).await;
        let mut orphaned = stored.clone();
        orphaned.creator_id = user(9);
        assert!(matches!(
            repository.update(&orphaned, 7).await,
            Err(RepositoryError::Stale)
        ));
        let absent_and_orphaned = Market {
            creator_id: user(9),
            ..market(2, "Absent")
        };
        assert!(matches!(
            repository.update(&absent_and_orphaned, 1).await,
            Err(RepositoryError::NotFound)
        ));
        assert!(matches!(
            repository.update(&orphaned, 1).await,
            Err(RepositoryError::Conflict("creator_id"))
        ));
    }

    #[tokio::test]
    async fn a_market_with_positions_is_not_deleted() {
        use domain::listing::PositionListQuery;
        use domain::ports::{PositionRepository as _, UserRepository as _};
        use domain::{Position, PositionId, Side};

        let store = crate::InMemoryStore::new();
        let creator = crate::store::testing::user(1, 0);
        store.users().insert(&creator).await.expect("a user");
        let (doomed, kept) = (
            Market {
                creator_id: creator.id,
                ..market(1, "Doomed")
            },
            Market {
                creator_id: creator.id,
                ..market(2, "Kept")
            },
        );
        let markets = store.markets();
        markets.insert(&doomed).await.expect("inserts");
        markets.insert(&kept).await.expect("inserts");
        for (n, on) in [(1, &doomed), (2, &kept), (3, &doomed)] {
            store
                .positions()
                .insert(&Position {
                    id: PositionId::from_uuid(Uuid::from_u128(n)),
                    market_id: on.id,
                    user_id: creator.id,
                    side: Side::Yes,
                    amount: cents(100),
                    payout: None,
                    created_at: start(),
                })
                .await
                .expect("a position");
        }
        assert!(matches!(
            markets.delete(doomed.id, 1).await,
            Err(RepositoryError::Conflict("positions"))
        ));
        let left = store
            .positions()
            .list(&PositionListQuery::default())
            .await
            .expect("lists");
        assert_eq!(left.total, 3, "every position is kept");
        assert!(
            markets
                .find_by_id(doomed.id)
                .await
                .expect("a read")
                .is_some()
        );
    }
}
