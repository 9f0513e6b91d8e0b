//! `InMemoryStore`: the one shared state behind every in-memory repository, and how it is read and written.
//!
//! # Consistency model
//!
//! The committed state lives in a [`State`] behind a `std::sync::RwLock`, next to a
//! `tokio::sync::Mutex<()>`, the *writer turn*, that serialises every change:
//!
//! - a transaction ([`crate::InMemoryUnitOfWork::begin`]) takes the writer turn for its whole life,
//!   clones the committed state into a private working copy, works on the copy and, on commit,
//!   swaps the copy in (dropping it discards every write);
//! - a write outside a transaction (`insert`, `update`, `delete`, `claim`, ... on the repositories
//!   that [`InMemoryStore`] hands out) takes the same writer turn, applies the change to the
//!   committed state and gives the turn back. So it waits for an open transaction to end, and a
//!   commit can never swap away a change made after its working copy was taken: without the turn,
//!   "copy, change the copy, swap the copy in" would lose that change;
//! - reads outside transactions take only the read lock: they never wait for a transaction and
//!   see the last committed state, never a transaction's uncommitted writes.
//!
//! The std lock is only held inside synchronous sections, never across an `.await`.
//!
//! Each table is an `Arc`, so cloning the state for a transaction is cheap; the first write to a
//! table in a transaction copies that table (`Arc::make_mut`). Events recorded in a transaction
//! are kept apart and appended to the outbox at commit, so the outbox is never copied.
//!
//! **Waiting on yourself**: the writer turn is not re-entrant. A task that holds a transaction
//! and then writes through a repository from [`InMemoryStore`] (instead of the transaction's own
//! views), or begins a second transaction, waits for itself forever. Reads are fine.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use domain::ports::{IdempotencyScope, RepositoryError, StoredEvent};
use domain::{Market, MarketId, Position, PositionId};

use crate::failure::{OutageSwitch, poisoned};
use crate::idempotency::{IdempotencyRecord, InMemoryIdempotencyStore};
use crate::jobs::{InMemoryJobQueue, Jobs};
use crate::markets::InMemoryMarketRepository;
use crate::outbox::InMemoryOutbox;
use crate::positions::InMemoryPositionRepository;
use crate::sessions::{InMemorySessionRepository, Sessions};
use crate::transaction::InMemoryUnitOfWork;
use crate::users::{InMemoryUserRepository, Users};

/// Every table of the store. Cloning it clones `Arc`s only.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) users: Arc<Users>,
    pub(crate) markets: Arc<BTreeMap<MarketId, Market>>,
    pub(crate) positions: Arc<BTreeMap<PositionId, Position>>,
    /// Committed events, in sequence order.
    pub(crate) events: Arc<Vec<StoredEvent>>,
    /// The sequence of the last event handed out; the next one is this plus one.
    pub(crate) last_sequence: i64,
    pub(crate) idempotency: Arc<HashMap<IdempotencyScope, IdempotencyRecord>>,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) sessions: Arc<Sessions>,
}

/// What every repository of one store shares: the committed state, the writer turn and the
/// store-wide outage switch.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    /// Held by an open transaction, and briefly by every write outside one.
    pub(crate) writer: Arc<tokio::sync::Mutex<()>>,
    pub(crate) outage: OutageSwitch,
}

/// A transaction's private copy of the state, and the events it recorded.
#[derive(Debug, Default)]
pub(crate) struct WorkingCopy {
    pub(crate) state: State,
    /// Events recorded in the transaction, numbered already; appended to the outbox at commit.
    pub(crate) recorded: Vec<StoredEvent>,
}

/// The working copy of one open transaction, shared by its repository views.
#[derive(Debug)]
pub(crate) struct Working {
    pub(crate) shared: Arc<Shared>,
    pub(crate) copy: Mutex<WorkingCopy>,
}

/// Where a repository reads and writes: the committed state, or a transaction's working copy.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    Committed(Arc<Shared>),
    Working(Arc<Working>),
}

impl Scope {
    /// A scope over a new, empty store of its own.
    pub(crate) fn standalone() -> Self {
        Self::Committed(Arc::new(Shared::default()))
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        match self {
            Self::Committed(shared) => shared,
            Self::Working(working) => &working.shared,
        }
    }

    /// Runs `read` on the state this scope sees.
    ///
    /// # Errors
    /// `Unavailable` when the store is switched off or a lock is poisoned.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&State) -> R) -> Result<R, RepositoryError> {
        self.shared().outage.check()?;
        match self {
            Self::Committed(shared) => Ok(read(&*shared.state.read().map_err(poisoned)?)),
            Self::Working(working) => Ok(read(&working.copy.lock().map_err(poisoned)?.state)),
        }
    }

    /// Runs `write` on the state this scope changes. Outside a transaction it first waits for the
    /// writer turn (see the module documentation). `write` must check everything before changing
    /// anything, so that an error leaves the state as it was.
    ///
    /// # Errors
    /// `Unavailable` when the store is switched off or a lock is poisoned; whatever `write`
    /// returns.
    pub(crate) async fn write<R>(
        &self,
        write: impl FnOnce(&mut State) -> Result<R, RepositoryError> + Send,
    ) -> Result<R, RepositoryError> {
        self.write_recording(|state, _| write(state)).await
    }

    /// Like [`Scope::write`], with a list to push numbered events onto: they join the outbox at
    /// once outside a transaction, at commit inside one.
    pub(crate) async fn write_recording<R>(
        &self,
        write: impl FnOnce(&mut State, &mut Vec<StoredEvent>) -> Result<R, RepositoryError> + Send,
    ) -> Result<R, RepositoryError> {
        self.shared().outage.check()?;
        match self {
            Self::Committed(shared) => {
                let _turn = shared.writer.lock().await;
                shared.outage.check()?;
                let mut state = shared.state.write().map_err(poisoned)?;
                let mut recorded = Vec::new();
                let result = write(&mut state, &mut recorded);
                append(&mut state, recorded);
                result
            }
            Self::Working(working) => {
                let mut copy = working.copy.lock().map_err(poisoned)?;
                let WorkingCopy { state, recorded } = &mut *copy;
                write(state, recorded)
            }
        }
    }
}

/// Appends events recorded (and numbered) in a working copy to the outbox of `state`.
pub(crate) fn append(state: &mut State, recorded: Vec<StoredEvent>) {
    if !recorded.is_empty() {
        Arc::make_mut(&mut state.events).extend(recorded);
    }
}

/// One in-memory database: users, markets, positions, the outbox, idempotency records and jobs, with
/// transactions. Cloning it is cheap and gives another handle on the same data.
///
/// Every accessor returns the same repository each time (so a repository's own
/// `set_unavailable` sticks); all of them read and write the same state. See the module
/// documentation of `store.rs` for the consistency model: transactions run one at a time, writes
/// outside transactions wait for the open transaction (and are never lost by its commit), reads
/// never wait and see committed data only.
#[derive(Debug, Clone)]
pub struct InMemoryStore {
    shared: Arc<Shared>,
    users: Arc<InMemoryUserRepository>,
    markets: Arc<InMemoryMarketRepository>,
    positions: Arc<InMemoryPositionRepository>,
    outbox: Arc<InMemoryOutbox>,
    idempotency: Arc<InMemoryIdempotencyStore>,
    jobs: Arc<InMemoryJobQueue>,
    sessions: Arc<InMemorySessionRepository>,
    unit_of_work: Arc<InMemoryUnitOfWork>,
}

impl InMemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::over(Scope::standalone())
    }

    /// A store whose repositories all use `scope` (a committed scope).
    fn over(scope: Scope) -> Self {
        let shared = Arc::clone(scope.shared());
        Self {
            users: Arc::new(InMemoryUserRepository::in_scope(scope.clone())),
            markets: Arc::new(InMemoryMarketRepository::in_scope(scope.clone())),
            positions: Arc::new(InMemoryPositionRepository::in_scope(scope.clone())),
            outbox: Arc::new(InMemoryOutbox::in_scope(scope.clone())),
            idempotency: Arc::new(InMemoryIdempotencyStore::in_scope(scope.clone())),
            jobs: Arc::new(InMemoryJobQueue::in_scope(scope.clone())),
            sessions: Arc::new(InMemorySessionRepository::in_scope(scope)),
            unit_of_work: Arc::new(InMemoryUnitOfWork::new(Arc::clone(&shared))),
            shared,
        }
    }

    /// The users, outside any transaction.
    #[must_use]
    pub fn users(&self) -> Arc<InMemoryUserRepository> {
        Arc::clone(&self.users)
    }

    /// The markets, outside any transaction.
    #[must_use]
    pub fn markets(&self) -> Arc<InMemoryMarketRepository> {
        Arc::clone(&self.markets)
    }

    /// The positions, outside any transaction.
    #[must_use]
    pub fn positions(&self) -> Arc<InMemoryPositionRepository> {
        Arc::clone(&self.positions)
    }

    /// The outbox, outside any transaction (a `record` here commits at once).
    #[must_use]
    pub fn outbox(&self) -> Arc<InMemoryOutbox> {
        Arc::clone(&self.outbox)
    }

    /// The idempotency records, outside any transaction (where `claim` belongs).
    #[must_use]
    pub fn idempotency(&self) -> Arc<InMemoryIdempotencyStore> {
        Arc::clone(&self.idempotency)
    }

    /// The job queue, outside any transaction (each call commits at once).
    #[must_use]
    pub fn jobs(&self) -> Arc<InMemoryJobQueue> {
        Arc::clone(&self.jobs)
    }

    /// Keyword search over the store's markets.
    #[must_use]
    pub fn keyword_search(&self) -> Arc<crate::InMemoryKeywordSearch> {
        Arc::new(crate::InMemoryKeywordSearch::in_scope(Scope::Committed(
            Arc::clone(&self.shared),
        )))
    }

    /// The sessions, outside any transaction.
    #[must_use]
    pub fn sessions(&self) -> Arc<InMemorySessionRepository> {
        Arc::clone(&self.sessions)
    }

    /// Begins transactions over this store.
    #[must_use]
    pub fn unit_of_work(&self) -> Arc<InMemoryUnitOfWork> {
        Arc::clone(&self.unit_of_work)
    }

    /// While `true`, every operation of every repository and transaction of this store (begin
    /// and commit included) fails with [`RepositoryError::Unavailable`] and changes nothing, as a
    /// database that cannot be reached would. Independent of the repositories' own switches.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.outage.set(unavailable);
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fixtures shared by the unit tests of this crate.

    use chrono::{DateTime, TimeDelta, Utc};
    use domain::event::DomainEvent;
    use domain::{
        Amount, Category, DisplayName, Email, EventId, Market, MarketDescription, MarketId,
        MarketName, MarketStatus, PasswordHash, Position, PositionId, RecordedEvent, Role, Side,
        User, UserId,
    };
    use uuid::Uuid;

    use super::Shared;

    /// Poisons the committed state's lock, as a panic while writing would.
    pub(crate) fn poison(shared: &Shared) {
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    let _guard = shared.state.write().expect("not yet poisoned");
                    panic!("poison the lock");
                })
                .join();
        });
    }

    /// 2026-01-01T00:00:00Z.
    pub(crate) fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).expect("in range")
    }

    pub(crate) fn cents(cents: i64) -> Amount {
        Amount::from_cents(cents).expect("a valid amount")
    }

    pub(crate) fn user_id(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(1_000 + n))
    }

    pub(crate) fn market_id(n: u128) -> MarketId {
        MarketId::from_uuid(Uuid::from_u128(2_000 + n))
    }

    pub(crate) fn position_id(n: u128) -> PositionId {
        PositionId::from_uuid(Uuid::from_u128(3_000 + n))
    }

    /// User `n`, `user{n}@example.com`, with `balance` cents.
    pub(crate) fn user(n: u128, balance: i64) -> User {
        User {
            id: user_id(n),
            email: Email::parse(&format!("user{n}@example.com")).expect("an email"),
            name: DisplayName::parse("User").expect("a name"),
            password_hash: PasswordHash::from_phc(String::new()),
            role: Role::User,
            balance: cents(balance),
            disabled: false,
            created_at: start(),
            updated_at: start(),
        }
    }

    /// Market `n`, created by user `creator`.
    pub(crate) fn market(n: u128, creator: u128) -> Market {
        Market {
            id: market_id(n),
            name: MarketName::parse(&format!("Market {n}")).expect("a name"),
            description: MarketDescription::default(),
            category: Category::parse("general").expect("a category"),
            status: MarketStatus::Active,
            end_date: start() + TimeDelta::days(30),
            creator_id: user_id(creator),
            yes_volume: Amount::ZERO,
            no_volume: Amount::ZERO,
            outcome: None,
            image_url: None,
            thumbnail_url: None,
            version: 1,
            created_at: start(),
            updated_at: start(),
        }
    }

    /// Position `n` of user `user` on market `market`, created `n` minutes after the start.
    pub(crate) fn position(n: u128, market: u128, user: u128, side: Side, amount: i64) -> Position {
        Position {
            id: position_id(n),
            market_id: market_id(market),
            user_id: user_id(user),
            side,
            amount: cents(amount),
            payout: None,
            created_at: start() + TimeDelta::minutes(i64::try_from(n).expect("small")),
        }
    }

    /// An event about market `n`.
    pub(crate) fn event(n: u128) -> RecordedEvent {
        RecordedEvent {
            id: EventId::from_uuid(Uuid::from_u128(4_000 + n)),
            occurred_at: start(),
            event: DomainEvent::MarketDeleted {
                market_id: market_id(n),
            },
        }
    }
}
