//! `InMemoryUserRepository`: users in a map, with the email uniqueness rule of the SQL schema.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use domain::listing::{Page, UserListQuery};
use domain::ports::{RepositoryError, UserRepository};
use domain::{Email, User, UserId};

use crate::failure::OutageSwitch;
use crate::paging::window;
use crate::store::{Scope, State};

/// The users table and its unique index on email.
#[derive(Debug, Clone, Default)]
pub(crate) struct Users {
    pub(crate) by_id: HashMap<UserId, User>,
    /// The unique index on email. [`Email`] is already normalised to lower case, so exact
    /// comparison is the case-insensitive comparison the contract asks for.
    ids_by_email: HashMap<Email, UserId>,
}

impl Users {
    pub(crate) fn contains(&self, id: UserId) -> bool {
        self.by_id.contains_key(&id)
    }
}

/// The domain's [`UserRepository`] over the users of an [`crate::InMemoryStore`], or of one of
/// its transactions.
///
/// - `insert` checks email uniqueness first (`Conflict("email")`), then id uniqueness
///   (`Conflict("id")`), as the port says;
/// - `update` answers `NotFound` for an unknown id before looking at the email (an SQL `UPDATE`
///   that matches no row never reaches the unique index), then `Conflict("email")` when the new
///   email belongs to another user;
/// - `find_many` returns each matching user once, however often its id is repeated.
#[derive(Debug)]
pub struct InMemoryUserRepository {
    scope: Scope,
    outage: OutageSwitch,
}

impl InMemoryUserRepository {
    /// An empty repository over a store of its own (the same as `InMemoryStore::new().users()`,
    /// without a handle on the rest of the store).
    #[must_use]
    pub fn new() -> Self {
        Self::in_scope(Scope::standalone())
    }

    pub(crate) fn in_scope(scope: Scope) -> Self {
        Self {
            scope,
            outage: OutageSwitch::default(),
        }
    }

    /// The scope, for repositories that share this repository's store.
    pub(crate) const fn scope(&self) -> &Scope {
        &self.scope
    }

    /// While `true`, every operation of this repository fails with
    /// [`RepositoryError::Unavailable`] and changes nothing, as a database that cannot be reached
    /// would. [`crate::InMemoryStore::set_unavailable`] switches the whole store off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }

    fn read<R>(&self, read: impl FnOnce(&Users) -> R) -> Result<R, RepositoryError> {
        self.outage.check()?;
        self.scope.read(|state| read(&state.users))
    }

    async fn write(
        &self,
        write: impl FnOnce(&mut State) -> Result<(), RepositoryError> + Send,
    ) -> Result<(), RepositoryError> {
        self.outage.check()?;
        self.scope.write(write).await
    }
}

impl Default for InMemoryUserRepository {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl UserRepository for InMemoryUserRepository {
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        self.write(|state| {
            if state.users.ids_by_email.contains_key(&user.email) {
                return Err(RepositoryError::Conflict("email"));
            }
            if state.users.by_id.contains_key(&user.id) {
                return Err(RepositoryError::Conflict("id"));
            }
            let users = Arc::make_mut(&mut state.users);
            users.ids_by_email.insert(user.email.clone(), user.id);
            users.by_id.insert(user.id, user.clone());
            Ok(())
        })
        .await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        self.read(|users| users.by_id.get(&id).cloned())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        self.read(|users| {
            users
                .ids_by_email
                .get(email)
                .and_then(|id| users.by_id.get(id))
                .cloned()
        })
    }

    async fn find_many(&self, ids: &[UserId]) -> Result<Vec<User>, RepositoryError> {
        let ids: BTreeSet<UserId> = ids.iter().copied().collect();
        self.read(|users| {
            ids.iter()
                .filter_map(|id| users.by_id.get(id))
                .cloned()
                .collect()
        })
    }

    async fn update(&self, user: &User) -> Result<(), RepositoryError> {
        self.write(|state| {
            let stored = state
                .users
                .by_id
                .get(&user.id)
                .ok_or(RepositoryError::NotFound)?;
            let old_email = stored.email.clone();
            if state
                .users
                .ids_by_email
                .get(&user.email)
                .is_some_and(|owner| *owner != user.id)
            {
                return Err(RepositoryError::Conflict("email"));
            }
            let users = Arc::make_mut(&mut state.users);
            if old_email != user.email {
                users.ids_by_email.remove(&old_email);
                users.ids_by_email.insert(user.email.clone(), user.id);
            }
            users.by_id.insert(user.id, user.clone());
            Ok(())
        })
        .await
    }

    async fn list(&self, query: &UserListQuery) -> Result<Page<User>, RepositoryError> {
        let filter = &query.filter;
        let mut matching = self.read(|users| {
            users
                .by_id
                .values()
                .filter(|user| filter.role.is_none_or(|role| user.role == role))
                .filter(|user| {
                    filter
                        .email_prefix
                        .as_ref()
                        .is_none_or(|prefix| user.email.as_str().starts_with(prefix.as_str()))
                })
                .cloned()
                .collect::<Vec<_>>()
        })?;
        matching.sort_by_key(|user| (user.created_at, user.id));
        Ok(window(matching, query.page))
    }

    async fn delete(&self, id: UserId) -> Result<(), RepositoryError> {
        self.write(|state| {
            if !state.users.by_id.contains_key(&id) {
                return Err(RepositoryError::NotFound);
            }
            if state.markets.values().any(|market| market.creator_id == id) {
                return Err(RepositoryError::Conflict("markets"));
            }
            if state
                .positions
                .values()
                .any(|position| position.user_id == id)
            {
                return Err(RepositoryError::Conflict("positions"));
            }
            let users = Arc::make_mut(&mut state.users);
            if let Some(user) = users.by_id.remove(&id) {
                users.ids_by_email.remove(&user.email);
            }
            Arc::make_mut(&mut state.sessions).delete_user(id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use domain::{Amount, DisplayName, PasswordHash, Role};
    use uuid::Uuid;

    use super::*;

    fn user(email: &str) -> User {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        User {
            id: UserId::from_uuid(Uuid::now_v7()),
            email: Email::parse(email).expect("valid email"),
            name: DisplayName::parse("Ada").expect("valid name"),
            password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$x$y".into()),
            role: Role::User,
            balance: Amount::ZERO,
            disabled: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn a_stored_user_is_found_by_id_and_by_email() {
        let repository = InMemoryUserRepository::new();
        let ada = user("ada@example.com");
        repository.insert(&ada).await.expect("inserts");
        assert_eq!(
            repository.find_by_id(ada.id).await.expect("reads"),
            Some(ada.clone())
        );
        let email = Email::parse("ADA@Example.com").expect("valid email");
        assert_eq!(
            repository.find_by_email(&email).await.expect("reads"),
            Some(ada)
        );
    }

    #[tokio::test]
    async fn unknown_users_are_none() {
        let repository = InMemoryUserRepository::new();
        repository
            .insert(&user("ada@example.com"))
            .await
            .expect("inserts");
        let id = UserId::from_uuid(Uuid::now_v7());
        assert_eq!(repository.find_by_id(id).await.expect("reads"), None);
        let email = Email::parse("bob@example.com").expect("valid email");
        assert_eq!(repository.find_by_email(&email).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn an_email_can_be_registered_once_whatever_its_case() {
        let repository = InMemoryUserRepository::new();
        repository
            .insert(&user("ada@example.com"))
            .await
            .expect("inserts");
        let again = user("Ada@EXAMPLE.com");
        assert!(matches!(
            repository.insert(&again).await,
            Err(RepositoryError::Conflict("email"))
        ));
        assert_eq!(repository.find_by_id(again.id).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn an_id_can_be_used_once() {
        let repository = InMemoryUserRepository::new();
        let ada = user("ada@example.com");
        repository.insert(&ada).await.expect("inserts");
        let twin = User {
            email: Email::parse("twin@example.com").expect("valid email"),
            ..ada.clone()
        };
        assert!(matches!(
            repository.insert(&twin).await,
            Err(RepositoryError::Conflict("id"))
        ));
        assert!(matches!(
            repository.insert(&ada).await,
            Err(RepositoryError::Conflict("email"))
        ));
        let email = Email::parse("twin@example.com").expect("valid email");
        assert_eq!(repository.find_by_email(&email).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn a_switched_off_store_is_unavailable_and_changes_nothing() {
        let repository = InMemoryUserRepository::new();
        let ada = user("ada@example.com");
        repository.set_unavailable(true);
        assert!(matches!(
            repository.insert(&ada).await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            repository.find_by_id(ada.id).await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            repository.find_by_email(&ada.email).await,
            Err(RepositoryError::Unavailable(_))
        ));
        repository.set_unavailable(false);
        assert_eq!(repository.find_by_id(ada.id).await.expect("reads"), None);
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_unavailable_not_a_panic() {
        let repository = InMemoryUserRepository::new();
        crate::store::testing::poison(repository.scope().shared());
        assert!(matches!(
            repository
                .find_by_id(UserId::from_uuid(Uuid::now_v7()))
                .await,
            Err(RepositoryError::Unavailable(_))
        ));
        assert!(matches!(
            repository.insert(&user("ada@example.com")).await,
            Err(RepositoryError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn find_many_returns_each_known_user_once() {
        let repository = InMemoryUserRepository::new();
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        repository.insert(&ada).await.expect("inserts");
        repository.insert(&bob).await.expect("inserts");
        let unknown = UserId::from_uuid(Uuid::now_v7());
        let mut found = repository
            .find_many(&[bob.id, unknown, ada.id, bob.id])
            .await
            .expect("reads");
        found.sort_by_key(|found| found.id);
        let mut expected = vec![ada, bob];
        expected.sort_by_key(|expected| expected.id);
        assert_eq!(found, expected);
        assert_eq!(repository.find_many(&[]).await.expect("reads"), vec![]);
    }

    #[tokio::test]
    async fn an_update_replaces_the_user_and_moves_the_email() {
        let repository = InMemoryUserRepository::new();
        let ada = user("ada@example.com");
        repository.insert(&ada).await.expect("inserts");
        let renamed = User {
            email: Email::parse("lovelace@example.com").expect("valid email"),
            balance: Amount::from_cents(500).expect("an amount"),
            ..ada.clone()
        };
        repository.update(&renamed).await.expect("updates");
        assert_eq!(
            repository.find_by_id(ada.id).await.expect("reads"),
            Some(renamed.clone())
        );
        assert_eq!(
            repository.find_by_email(&ada.email).await.expect("reads"),
            None
        );
        assert_eq!(
            repository
                .find_by_email(&renamed.email)
                .await
                .expect("reads"),
            Some(renamed)
        );
        // The old email is free again.
        repository
            .insert(&user("ada@example.com"))
            .await
            .expect("inserts");
    }

    #[tokio::test]
    async fn an_update_needs_an_existing_user_and_a_free_email() {
        let repository = InMemoryUserRepository::new();
        let (ada, bob) = (user("ada@example.com"), user("bob@example.com"));
        repository.insert(&ada).await.expect("inserts");
        repository.insert(&bob).await.expect("inserts");
        // An unknown id is not found, even with a taken email.
        let stranger = user("bob@example.com");
        assert!(matches!(
            repository.update(&stranger).await,
            Err(RepositoryError::NotFound)
        ));
        let thief = User {
            email: Email::parse("BOB@example.com").expect("valid email"),
            ..ada.clone()
        };
        assert!(matches!(
            repository.update(&thief).await,
            Err(RepositoryError::Conflict("email"))
        ));
        assert_eq!(
            repository.find_by_id(ada.id).await.expect("reads"),
            Some(ada.clone())
        );
        assert_eq!(
            repository.find_by_email(&bob.email).await.expect("reads"),
            Some(bob)
        );
        // Keeping one's own email is no conflict.
        repository.update(&ada).await.expect("updates");
    }
}
