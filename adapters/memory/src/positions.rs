//! `InMemoryPositionRepository`: positions in an ordered map, with the foreign keys, filters, order and paging of the SQL adapter.

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use domain::listing::{Page, PositionFilter, PositionListQuery, PositionSort, PositionSortKey};
use domain::ports::{PositionRepository, RepositoryError};
use domain::{Amount, MarketId, Position, PositionId, SortDirection};

use crate::failure::OutageSwitch;
use crate::paging::window;
use crate::store::{Scope, State};

/// The domain's [`PositionRepository`] over the positions of an [`crate::InMemoryStore`], or of
/// one of its transactions.
///
/// - `insert` answers `Conflict("id")` for a taken id, then `Conflict("market_id")` when the
///   market does not exist, then `Conflict("user_id")` when the user does not exist: the primary
///   key first and the foreign keys in the order of the port's documentation;
/// - `list` keeps the positions for which every present filter condition (`market_id`,
///   `user_id`, `side`) holds, orders them by the [`PositionSort`] keys in turn and then by id
///   ascending, and returns the requested window with the total number of matches.
#[derive(Debug)]
pub struct InMemoryPositionRepository {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryPositionRepository {
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
}

fn matches(filter: &PositionFilter, position: &Position) -> bool {
    filter.market_id.is_none_or(|id| position.market_id == id)
        && filter.user_id.is_none_or(|id| position.user_id == id)
        && filter.side.is_none_or(|side| position.side == side)
}

fn compare(sort: &PositionSort, a: &Position, b: &Position) -> Ordering {
    sort.keys()
        .iter()
        .map(|&(key, direction)| {
            let ascending = match key {
                PositionSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
                PositionSortKey::Amount => a.amount.cmp(&b.amount),
            };
            match direction {
                SortDirection::Ascending => ascending,
                SortDirection::Descending => ascending.reverse(),
            }
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or_else(|| a.id.cmp(&b.id))
}

fn check_references(state: &State, position: &Position) -> Result<(), RepositoryError> {
    if state.positions.contains_key(&position.id) {
        Err(RepositoryError::Conflict("id"))
    } else if !state.markets.contains_key(&position.market_id) {
        Err(RepositoryError::Conflict("market_id"))
    } else if !state.users.contains(position.user_id) {
        Err(RepositoryError::Conflict("user_id"))
    } else {
        Ok(())
    }
}

#[async_trait]
impl PositionRepository for InMemoryPositionRepository {
    async fn insert(&self, position: &Position) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                check_references(state, position)?;
                Arc::make_mut(&mut state.positions).insert(position.id, position.clone());
                Ok(())
            })
            .await
    }

    async fn list(&self, query: &PositionListQuery) -> Result<Page<Position>, RepositoryError> {
        self.outage.check()?;
        self.scope.read(|state| {
            let mut matching: Vec<&Position> = state
                .positions
                .values()
                .filter(|position| matches(&query.filter, position))
                .collect();
            matching.sort_by(|a, b| compare(&query.sort, a, b));
            window(matching, query.page).map(Position::clone)
        })
    }

    async fn unsettled(
        &self,
        market: MarketId,
        limit: u64,
    ) -> Result<Vec<Position>, RepositoryError> {
        self.outage.check()?;
        self.scope.read(|state| {
            state
                .positions
                .values()
                .filter(|position| position.market_id == market && position.payout.is_none())
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect()
        })
    }

    async fn record_payout(&self, id: PositionId, payout: Amount) -> Result<bool, RepositoryError> {
        self.outage.check()?;
        self.scope
            .write(|state| {
                let positions = Arc::make_mut(&mut state.positions);
                match positions.get_mut(&id) {
                    Some(position) if position.payout.is_none() => {
                        position.payout = Some(payout);
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use domain::listing::{PageRequest, PositionFilter};
    use domain::ports::{MarketRepository as _, UserRepository as _};
    use domain::{PositionId, Side};

    use super::*;
    use crate::InMemoryStore;
    use crate::store::testing::{market, market_id, position, position_id, user, user_id};

    /// Users 1 and 2, markets 1 and 2 by user 1.
    async fn store() -> InMemoryStore {
        let store = InMemoryStore::new();
        for n in [1, 2] {
            store.users().insert(&user(n, 0)).await.expect("a user");
        }
        for n in [1, 2] {
            store
                .markets()
                .insert(&market(n, 1))
                .await
                .expect("a market");
        }
        store
    }

    async fn ids(store: &InMemoryStore, query: &PositionListQuery) -> (Vec<PositionId>, u64) {
        let page = store.positions().list(query).await.expect("a list");
        assert_eq!(page.request, query.page);
        (page.items.iter().map(|p| p.id).collect(), page.total)
    }

    fn query(filter: PositionFilter, sort: &str) -> PositionListQuery {
        PositionListQuery {
            filter,
            sort: PositionSort::parse(sort).expect("a sort"),
            ..PositionListQuery::default()
        }
    }

    #[tokio::test]
    async fn a_position_needs_a_free_id_an_existing_market_and_an_existing_user() {
        let store = store().await;
        let positions = store.positions();
        let stored = position(1, 1, 1, Side::Yes, 100);
        positions.insert(&stored).await.expect("a position");
        let conflict = |result| match result {
            Err(RepositoryError::Conflict(field)) => field,
            other => panic!("expected a conflict, got {other:?}"),
        };
        // The id is checked first, then the market, then the user.
        assert_eq!(
            conflict(positions.insert(&position(1, 9, 9, Side::No, 5)).await),
            "id"
        );
        assert_eq!(
            conflict(positions.insert(&position(2, 9, 9, Side::No, 5)).await),
            "market_id"
        );
        assert_eq!(
            conflict(positions.insert(&position(2, 1, 9, Side::No, 5)).await),
            "user_id"
        );
        let page = positions.list(&PositionListQuery::default()).await;
        assert_eq!(page.expect("a list").items, vec![stored]);
    }

    #[tokio::test]
    async fn positions_are_filtered_by_market_user_and_side() {
        let store = store().await;
        for p in [
            position(1, 1, 1, Side::Yes, 100),
            position(2, 1, 2, Side::No, 100),
            position(3, 2, 1, Side::No, 100),
            position(4, 2, 2, Side::Yes, 100),
            position(5, 1, 1, Side::No, 100),
        ] {
            store.positions().insert(&p).await.expect("a position");
        }
        let by_market = PositionFilter {
            market_id: Some(market_id(1)),
            ..PositionFilter::default()
        };
        let found = ids(&store, &query(by_market, "created_at")).await;
        assert_eq!(
            found,
            (vec![position_id(1), position_id(2), position_id(5)], 3)
        );
        let by_user_and_side = PositionFilter {
            user_id: Some(user_id(1)),
            side: Some(Side::No),
            ..PositionFilter::default()
        };
        let found = ids(&store, &query(by_user_and_side, "created_at")).await;
        assert_eq!(found, (vec![position_id(3), position_id(5)], 2));
        let everything = PositionFilter {
            market_id: Some(market_id(2)),
            user_id: Some(user_id(2)),
            side: Some(Side::Yes),
        };
        let found = ids(&store, &query(everything, "created_at")).await;
        assert_eq!(found, (vec![position_id(4)], 1));
        let nothing = PositionFilter {
            market_id: Some(market_id(9)),
            ..PositionFilter::default()
        };
        assert_eq!(
            ids(&store, &query(nothing, "created_at")).await,
            (vec![], 0)
        );
    }

    #[tokio::test]
    async fn positions_sort_by_their_keys_then_id_and_are_paged() {
        let store = store().await;
        // Position n is created n minutes after the start.
        let mut same_time = position(4, 1, 1, Side::Yes, 300);
        same_time.created_at = position(2, 1, 1, Side::Yes, 1).created_at;
        for p in [
            position(3, 1, 1, Side::Yes, 200),
            position(1, 1, 1, Side::Yes, 300),
            same_time,
            position(2, 1, 1, Side::Yes, 100),
        ] {
            store.positions().insert(&p).await.expect("a position");
        }
        let all = PositionFilter::default;
        let (newest_first, total) = ids(&store, &PositionListQuery::default()).await;
        assert_eq!(total, 4);
        assert_eq!(
            newest_first,
            [3, 2, 4, 1].map(position_id).to_vec(),
            "the default is newest first, ties by id ascending"
        );
        let (by_amount, _) = ids(&store, &query(all(), "-amount")).await;
        assert_eq!(by_amount, [1, 4, 3, 2].map(position_id).to_vec());
        let (by_amount_then_time, _) = ids(&store, &query(all(), "-amount,-created_at")).await;
        assert_eq!(by_amount_then_time, [4, 1, 3, 2].map(position_id).to_vec());
        let (by_amount_then_time, _) = ids(&store, &query(all(), "-amount,created_at")).await;
        assert_eq!(by_amount_then_time, [1, 4, 3, 2].map(position_id).to_vec());
        let (by_time, _) = ids(&store, &query(all(), "created_at,amount")).await;
        assert_eq!(by_time, [1, 2, 4, 3].map(position_id).to_vec());

        let second_page = PositionListQuery {
            page: PageRequest::new(3, 3).expect("a page"),
            ..query(all(), "amount")
        };
        // Amounts ascending: 2, 3, then 1 and 4 (300 each, by id).
        assert_eq!(ids(&store, &second_page).await, (vec![position_id(4)], 4));
        let past_the_end = PositionListQuery {
            page: PageRequest::new(3, 10).expect("a page"),
            ..query(all(), "amount")
        };
        assert_eq!(ids(&store, &past_the_end).await, (vec![], 4));
    }

    #[tokio::test]
    async fn a_switched_off_repository_stores_nothing() {
        let store = store().await;
        store.positions().set_unavailable(true);
        assert!(matches!(
            store
                .positions()
                .insert(&position(1, 1, 1, Side::Yes, 100))
                .await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            store.positions().list(&PositionListQuery::default()).await,
            Err(RepositoryError::Unavailable(_))
        ));
        store.positions().set_unavailable(false);
        assert_eq!(
            ids(&store, &PositionListQuery::default()).await,
            (vec![], 0)
        );
    }
}
