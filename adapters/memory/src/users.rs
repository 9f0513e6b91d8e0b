//! `InMemoryUserRepository`: users in a map, with the email uniqueness rule of the SQL schema.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use domain::ports::{RepositoryError, UserRepository};
use domain::{Email, User, UserId};

use crate::failure::{OutageSwitch, poisoned};

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<UserId, User>,
    /// The unique index on email. [`Email`] is already normalised to lower case, so exact
    /// comparison is the case-insensitive comparison the contract asks for.
    ids_by_email: HashMap<Email, UserId>,
}

/// The domain's [`UserRepository`] over a map behind a lock.
///
/// `insert` checks email uniqueness first (`Conflict("email")`), then id uniqueness
/// (`Conflict("id")`), as the port says.
#[derive(Debug, Default)]
pub struct InMemoryUserRepository {
    users: RwLock<Users>,
    outage: OutageSwitch,
}

impl InMemoryUserRepository {
    /// An empty repository.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every operation fails with [`RepositoryError::Unavailable`] and changes
    /// nothing, as a database that cannot be reached would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.outage.set(unavailable);
    }

    /// Whether a user has this id: the reference check of [`crate::InMemoryMarketRepository`].
    pub(crate) fn contains(&self, id: UserId) -> Result<bool, RepositoryError> {
        self.outage.check()?;
        Ok(self.users.read().map_err(poisoned)?.by_id.contains_key(&id))
    }
}

#[async_trait]
impl UserRepository for InMemoryUserRepository {
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        self.outage.check()?;
        let mut users = self.users.write().map_err(poisoned)?;
        if users.ids_by_email.contains_key(&user.email) {
            return Err(RepositoryError::Conflict("email"));
        }
        if users.by_id.contains_key(&user.id) {
            return Err(RepositoryError::Conflict("id"));
        }
        users.ids_by_email.insert(user.email.clone(), user.id);
        users.by_id.insert(user.id, user.clone());
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        self.outage.check()?;
        let users = self.users.read().map_err(poisoned)?;
        Ok(users.by_id.get(&id).cloned())
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepositoryError> {
        self.outage.check()?;
        let users = self.users.read().map_err(poisoned)?;
        Ok(users
            .ids_by_email
            .get(email)
            .and_then(|id| users.by_id.get(id))
            .cloned())
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
        let repository = std::sync::Arc::new(InMemoryUserRepository::new());
        let poisoner = std::sync::Arc::clone(&repository);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.users.write().expect("not yet poisoned");
            panic!("poison the lock");
        })
        .join();
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
}
