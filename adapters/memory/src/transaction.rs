//! `InMemoryUnitOfWork`: transactions that run one at a time on a private copy of the store and swap it in on commit.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::ports::{
    IdempotencyStore, JobQueue, MarketRepository, Outbox, PositionRepository, RepositoryError,
    SessionRepository, Transaction, UnitOfWork, UserRepository,
};
use domain::{Market, MarketId, User, UserId};
use tokio::sync::OwnedMutexGuard;

use crate::failure::poisoned;
use crate::idempotency::InMemoryIdempotencyStore;
use crate::jobs::InMemoryJobQueue;
use crate::markets::InMemoryMarketRepository;
use crate::outbox::InMemoryOutbox;
use crate::positions::InMemoryPositionRepository;
use crate::sessions::InMemorySessionRepository;
use crate::store::{Scope, Shared, Working, WorkingCopy, append};
use crate::users::InMemoryUserRepository;

/// The domain's [`UnitOfWork`] over an [`crate::InMemoryStore`].
///
/// `begin` waits for the store's writer turn (see `store.rs`): at most one transaction is open
/// at a time, and writes outside transactions wait for it, so `lock_user` and `lock_market` are
/// plain reads that nobody else can invalidate before the commit. The transaction works on a
/// copy of the committed state taken at `begin`; `commit` swaps the copy in at once and appends
/// the recorded events to the outbox; dropping the transaction discards the copy.
///
/// A task that holds a transaction must not begin another one or write through the store's own
/// repositories: it would wait for itself forever.
#[derive(Debug)]
pub struct InMemoryUnitOfWork {
    shared: Arc<Shared>,
}

impl InMemoryUnitOfWork {
    pub(crate) const fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl UnitOfWork for InMemoryUnitOfWork {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepositoryError> {
        self.shared.outage.check()?;
        let turn = Arc::clone(&self.shared.writer).lock_owned().await;
        self.shared.outage.check()?;
        let state = self.shared.state.read().map_err(poisoned)?.clone();
        let working = Arc::new(Working {
            shared: Arc::clone(&self.shared),
            copy: Mutex::new(WorkingCopy {
                state,
                recorded: Vec::new(),
            }),
        });
        let scope = Scope::Working(Arc::clone(&working));
        Ok(Box::new(InMemoryTransaction {
            users: InMemoryUserRepository::in_scope(scope.clone()),
            markets: InMemoryMarketRepository::in_scope(scope.clone()),
            positions: InMemoryPositionRepository::in_scope(scope.clone()),
            outbox: InMemoryOutbox::in_scope(scope.clone()),
            idempotency: InMemoryIdempotencyStore::in_scope(scope.clone()),
            jobs: InMemoryJobQueue::in_scope(scope.clone()),
            sessions: InMemorySessionRepository::in_scope(scope),
            working,
            _turn: turn,
        }))
    }
}

/// One open transaction: repository views over its working copy, and the writer turn.
#[derive(Debug)]
struct InMemoryTransaction {
    users: InMemoryUserRepository,
    markets: InMemoryMarketRepository,
    positions: InMemoryPositionRepository,
    outbox: InMemoryOutbox,
    idempotency: InMemoryIdempotencyStore,
    jobs: InMemoryJobQueue,
    sessions: InMemorySessionRepository,
    working: Arc<Working>,
    /// Held until the transaction is committed or dropped (declared last: dropped last).
    _turn: OwnedMutexGuard<()>,
}

#[async_trait]
impl Transaction for InMemoryTransaction {
    fn users(&self) -> &dyn UserRepository {
        &self.users
    }

    fn markets(&self) -> &dyn MarketRepository {
        &self.markets
    }

    fn positions(&self) -> &dyn PositionRepository {
        &self.positions
    }

    fn outbox(&self) -> &dyn Outbox {
        &self.outbox
    }

    fn idempotency(&self) -> &dyn IdempotencyStore {
        &self.idempotency
    }

    fn jobs(&self) -> &dyn JobQueue {
        &self.jobs
    }

    fn sessions(&self) -> &dyn SessionRepository {
        &self.sessions
    }

    async fn lock_user(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        // The writer turn already keeps every other writer out until the end.
        self.users.find_by_id(id).await
    }

    async fn lock_market(&self, id: MarketId) -> Result<Option<Market>, RepositoryError> {
        self.markets.find_by_id(id).await
    }

    async fn commit(self: Box<Self>) -> Result<(), RepositoryError> {
        let shared = &self.working.shared;
        shared.outage.check()?;
        let WorkingCopy { state, recorded } =
            std::mem::take(&mut *self.working.copy.lock().map_err(poisoned)?);
        let mut committed = shared.state.write().map_err(poisoned)?;
        // Drop the old state before appending, so that the outbox is not copied.
        drop(std::mem::replace(&mut *committed, state));
        append(&mut committed, recorded);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::listing::PositionListQuery;
    use domain::{Amount, Side};

    use super::*;
    use crate::InMemoryStore;
    use crate::store::testing::{cents, event, market, position, user, user_id};

    async fn store_with_user(balance: i64) -> InMemoryStore {
        let store = InMemoryStore::new();
        store
            .users()
            .insert(&user(1, balance))
            .await
            .expect("a user");
        store
    }

    async fn balance(store: &InMemoryStore, n: u128) -> Amount {
        store
            .users()
            .find_by_id(user_id(n))
            .await
            .expect("a read")
            .expect("the user")
            .balance
    }

    #[tokio::test]
    async fn a_commit_makes_every_write_visible_at_once() {
        let store = store_with_user(1_000).await;
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        let mut debited = tx
            .lock_user(user_id(1))
            .await
            .expect("a read")
            .expect("the user");
        debited.balance = cents(900);
        tx.users().update(&debited).await.expect("an update");
        tx.markets().insert(&market(1, 1)).await.expect("a market");
        tx.positions()
            .insert(&position(1, 1, 1, Side::Yes, 100))
            .await
            .expect("a position on the market of this transaction");
        tx.outbox().record(&event(1)).await.expect("an event");

        // Not visible outside before the commit; visible inside.
        assert_eq!(balance(&store, 1).await, cents(1_000));
        let outside = store.markets().find_by_id(market(1, 1).id).await;
        assert_eq!(outside.expect("a read"), None);
        assert_eq!(store.outbox().after(0, 10).await.expect("a read"), vec![]);
        let inside = tx.lock_market(market(1, 1).id).await.expect("a read");
        assert_eq!(inside, Some(market(1, 1)));

        tx.commit().await.expect("a commit");
        assert_eq!(balance(&store, 1).await, cents(900));
        let committed = store.markets().find_by_id(market(1, 1).id).await;
        assert_eq!(committed.expect("a read"), Some(market(1, 1)));
        let positions = store
            .positions()
            .list(&PositionListQuery::default())
            .await
            .expect("a list");
        assert_eq!(positions.items, vec![position(1, 1, 1, Side::Yes, 100)]);
        let events = store.outbox().after(0, 10).await.expect("a read");
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].sequence, &events[0].event), (1, &event(1)));
    }

    #[tokio::test]
    async fn a_dropped_transaction_leaves_no_trace() {
        let store = store_with_user(1_000).await;
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        let mut debited = user(1, 1);
        debited.balance = cents(1);
        tx.users().update(&debited).await.expect("an update");
        tx.users().insert(&user(2, 0)).await.expect("a user");
        tx.markets().insert(&market(1, 1)).await.expect("a market");
        tx.positions()
            .insert(&position(1, 1, 1, Side::No, 100))
            .await
            .expect("a position");
        tx.outbox().record(&event(1)).await.expect("an event");
        drop(tx);

        assert_eq!(balance(&store, 1).await, cents(1_000));
        let users = store.users().find_many(&[user_id(1), user_id(2)]).await;
        assert_eq!(users.expect("a read"), vec![user(1, 1_000)]);
        let markets = store.markets().find_by_id(market(1, 1).id).await;
        assert_eq!(markets.expect("a read"), None);
        let positions = store.positions().list(&PositionListQuery::default()).await;
        assert_eq!(positions.expect("a list").total, 0);
        assert_eq!(store.outbox().after(0, 10).await.expect("a read"), vec![]);

        // The store is free again, and the dropped event's number is handed out again.
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        tx.outbox().record(&event(2)).await.expect("an event");
        tx.commit().await.expect("a commit");
        let events = store.outbox().after(0, 10).await.expect("a read");
        assert_eq!((events[0].sequence, &events[0].event), (1, &event(2)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_transactions_that_lock_the_same_user_run_one_after_the_other() {
        let store = store_with_user(1_000).await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let unit_of_work = store.unit_of_work();
                tokio::spawn(async move {
                    let tx = unit_of_work.begin().await.expect("a transaction");
                    let mut locked = tx
                        .lock_user(user_id(1))
                        .await
                        .expect("a read")
                        .expect("the user");
                    // Give the others every chance to interleave.
                    tokio::task::yield_now().await;
                    locked.balance = locked.balance.checked_sub(cents(1)).expect("enough");
                    tx.users().update(&locked).await.expect("an update");
                    tokio::task::yield_now().await;
                    tx.commit().await.expect("a commit");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task finished");
        }
        assert_eq!(balance(&store, 1).await, cents(980));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_outside_a_transaction_waits_for_it_and_is_not_lost() {
        let store = store_with_user(1_000).await;
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        let mut debited = tx
            .lock_user(user_id(1))
            .await
            .expect("a read")
            .expect("the user");

        let users = store.users();
        let outside = tokio::spawn(async move { users.insert(&user(2, 50)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !outside.is_finished(),
            "the outside write waits for the open transaction"
        );
        // Reads outside do not wait, and see the committed state only.
        assert_eq!(balance(&store, 1).await, cents(1_000));

        debited.balance = cents(400);
        tx.users().update(&debited).await.expect("an update");
        tx.commit().await.expect("a commit");
        outside
            .await
            .expect("the task finished")
            .expect("the outside insert");
        assert_eq!(balance(&store, 1).await, cents(400));
        assert_eq!(balance(&store, 2).await, cents(50));
    }

    #[tokio::test]
    async fn a_transaction_begun_after_an_outside_write_sees_it() {
        let store = store_with_user(1_000).await;
        store
            .markets()
            .insert(&market(1, 1))
            .await
            .expect("a market");
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        assert_eq!(
            tx.lock_market(market(1, 1).id).await.expect("a read"),
            Some(market(1, 1))
        );
        assert_eq!(
            tx.lock_user(user_id(9)).await.expect("a read"),
            None,
            "an unknown user is none"
        );
    }

    #[tokio::test]
    async fn a_switched_off_store_neither_begins_nor_commits() {
        let store = store_with_user(1_000).await;
        store.set_unavailable(true);
        assert!(matches!(
            store.unit_of_work().begin().await.map(drop),
            Err(RepositoryError::Unavailable(_))
        ));
        store.set_unavailable(false);
        let tx = store.unit_of_work().begin().await.expect("a transaction");
        tx.users().insert(&user(2, 0)).await.expect("a user");
        store.set_unavailable(true);
        assert!(matches!(
            tx.lock_user(user_id(1)).await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            tx.commit().await,
            Err(RepositoryError::Unavailable(_))
        ));
        store.set_unavailable(false);
        let found = store.users().find_by_id(user_id(2)).await;
        assert_eq!(
            found.expect("a read"),
            None,
            "a failed commit wrote nothing"
        );
        // The failed transaction gave the writer turn back.
        store.users().insert(&user(3, 0)).await.expect("a user");
    }
}
