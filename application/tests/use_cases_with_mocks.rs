//! Use-case tests with mockall mocks: error paths and the calls a use case must (not) make.

use std::sync::Arc;

use application::markets::{ChangeMarketError, DeleteMarketError, Precondition};
use application::users::{LoginError, RegisterError, Registration};
use application::{Deps, Settings, UseCases};
use chrono::{DateTime, Duration, Utc};
use domain::market::{MarketChanges, MarketDraft, StatusChange};
use domain::ports::{
    HashError, MockClock, MockIdGenerator, MockMarketRepository, MockPasswordHasher,
    MockTokenIssuer, MockUserRepository, RepositoryError,
};
use domain::{
    Actor, Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    MarketStatus, Outcome, Password, PasswordHash, Role, User, UserId,
};
use mockall::predicate::{always, eq};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("a timestamp")
        .with_timezone(&Utc)
}

struct Mocks {
    users: MockUserRepository,
    markets: MockMarketRepository,
    hasher: MockPasswordHasher,
    tokens: MockTokenIssuer,
}

impl Mocks {
    fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            markets: MockMarketRepository::new(),
            hasher: MockPasswordHasher::new(),
            tokens: MockTokenIssuer::new(),
        }
    }

    fn into_use_cases(self) -> UseCases {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().returning(Uuid::now_v7);
        UseCases::new(
            Deps {
                users: Arc::new(self.users),
                markets: Arc::new(self.markets),
                hasher: Arc::new(self.hasher),
                tokens: Arc::new(self.tokens),
                clock: Arc::new(clock),
                ids: Arc::new(ids),
            },
            Settings::default(),
        )
    }
}

fn registration() -> Registration {
    Registration {
        email: Email::parse("ada@example.com").expect("an email"),
        password: Password::parse("correct horse battery").expect("a password"),
        name: DisplayName::parse("Ada").expect("a name"),
    }
}

fn user(disabled: bool) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse("ada@example.com").expect("an email"),
        name: DisplayName::parse("Ada").expect("a name"),
        password_hash: PasswordHash::from_phc("$argon2id$stored".into()),
        role: Role::User,
        balance: Amount::ZERO,
        disabled,
        created_at: now(),
        updated_at: now(),
    }
}

fn market_by(creator: UserId) -> Market {
    Market::open(
        MarketId::from_uuid(Uuid::now_v7()),
        MarketDraft {
            name: MarketName::parse("Will it snow?").expect("a name"),
            description: MarketDescription::default(),
            category: Category::parse("weather").expect("a category"),
            end_date: now() + Duration::days(7),
        },
        creator,
        now(),
    )
    .expect("a market")
}

#[tokio::test]
async fn registering_a_taken_email_is_a_conflict() {
    let mut mocks = Mocks::new();
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Ok(PasswordHash::from_phc("$argon2id$x".into())));
    mocks
        .users
        .expect_insert()
        .times(1)
        .returning(|_| Err(RepositoryError::Conflict("email")));
    let result = mocks.into_use_cases().register(registration()).await;
    assert!(matches!(result, Err(RegisterError::EmailTaken)));
}

#[tokio::test]
async fn a_failing_hasher_stores_nothing() {
    let mut mocks = Mocks::new();
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Err(HashError("out of memory".into())));
    mocks.users.expect_insert().never();
    let result = mocks.into_use_cases().register(registration()).await;
    assert!(matches!(result, Err(RegisterError::Unavailable(_))));
}

#[tokio::test]
async fn a_new_user_gets_role_user_and_the_starting_balance() {
    let mut mocks = Mocks::new();
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Ok(PasswordHash::from_phc("$argon2id$x".into())));
    mocks
        .users
        .expect_insert()
        .withf(|user| user.role == Role::User && !user.disabled)
        .times(1)
        .returning(|_| Ok(()));
    let user = mocks
        .into_use_cases()
        .register(registration())
        .await
        .expect("registered");
    assert_eq!(user.balance, Settings::default().starting_balance);
}

#[tokio::test]
async fn an_unknown_email_still_costs_a_password_verification() {
    let mut mocks = Mocks::new();
    mocks.users.expect_find_by_email().returning(|_| Ok(None));
    mocks
        .hasher
        .expect_verify()
        .with(always(), eq(None))
        .times(1)
        .returning(|_, _| Ok(false));
    mocks.tokens.expect_issue().never();
    let result = mocks
        .into_use_cases()
        .login("nobody@example.com", "whatever1")
        .await;
    assert!(matches!(result, Err(LoginError::InvalidCredentials)));
}

#[tokio::test]
async fn a_malformed_email_is_treated_like_an_unknown_one() {
    let mut mocks = Mocks::new();
    mocks.users.expect_find_by_email().never();
    mocks
        .hasher
        .expect_verify()
        .with(always(), eq(None))
        .times(1)
        .returning(|_, _| Ok(false));
    let result = mocks
        .into_use_cases()
        .login("not an email", "whatever1")
        .await;
    assert!(matches!(result, Err(LoginError::InvalidCredentials)));
}

#[tokio::test]
async fn a_disabled_account_is_refused_only_after_the_right_password() {
    for (password_matches, expect_disabled) in [(true, true), (false, false)] {
        let mut mocks = Mocks::new();
        mocks
            .users
            .expect_find_by_email()
            .returning(|_| Ok(Some(user(true))));
        mocks
            .hasher
            .expect_verify()
            .returning(move |_, _| Ok(password_matches));
        mocks.tokens.expect_issue().never();
        let result = mocks
            .into_use_cases()
            .login("ada@example.com", "whatever1")
            .await;
        if expect_disabled {
            assert!(matches!(result, Err(LoginError::AccountDisabled)));
        } else {
            assert!(matches!(result, Err(LoginError::InvalidCredentials)));
        }
    }
}

#[tokio::test]
async fn a_change_that_loses_a_race_is_reapplied_on_the_fresh_version() {
    let owner = Actor {
        user_id: UserId::from_uuid(Uuid::now_v7()),
        role: Role::User,
    };
    let market = market_by(owner.user_id);
    let id = market.id;
    let mut mocks = Mocks::new();
    let mut fresh = market.clone();
    fresh.version = 2;
    let mut reads = vec![fresh, market];
    mocks
        .markets
        .expect_find_by_id()
        .times(2)
        .returning(move |_| Ok(reads.pop()));
    let mut writes = vec![Ok(()), Err(RepositoryError::Stale)];
    mocks
        .markets
        .expect_update()
        .times(2)
        .returning(move |_, _| writes.pop().expect("two writes"));
    let changes = MarketChanges {
        name: MarketName::parse("Will it snow a lot?").ok(),
        ..MarketChanges::default()
    };
    let updated = mocks
        .into_use_cases()
        .update_market(&owner, id, changes, Precondition::None)
        .await
        .expect("updated");
    assert_eq!(updated.version, 3);
    assert_eq!(updated.name.as_str(), "Will it snow a lot?");
}

#[tokio::test]
async fn a_stale_if_match_is_refused_without_writing() {
    let owner = Actor {
        user_id: UserId::from_uuid(Uuid::now_v7()),
        role: Role::User,
    };
    let market = market_by(owner.user_id);
    let id = market.id;
    let mut mocks = Mocks::new();
    mocks
        .markets
        .expect_find_by_id()
        .returning(move |_| Ok(Some(market.clone())));
    mocks.markets.expect_update().never();
    let changes = MarketChanges {
        name: MarketName::parse("Renamed").ok(),
        ..MarketChanges::default()
    };
    let result = mocks
        .into_use_cases()
        .update_market(&owner, id, changes, Precondition::Version(7))
        .await;
    assert!(matches!(
        result,
        Err(ChangeMarketError::PreconditionFailed { expected: 7 })
    ));
}

#[tokio::test]
async fn an_owner_cannot_resolve_their_own_market() {
    let owner = Actor {
        user_id: UserId::from_uuid(Uuid::now_v7()),
        role: Role::User,
    };
    let market = market_by(owner.user_id);
    let id = market.id;
    let mut mocks = Mocks::new();
    mocks
        .markets
        .expect_find_by_id()
        .returning(move |_| Ok(Some(market.clone())));
    mocks.markets.expect_update().never();
    let changes = MarketChanges {
        status: Some(StatusChange {
            status: MarketStatus::Resolved,
            outcome: Some(Outcome::Yes),
        }),
        ..MarketChanges::default()
    };
    let result = mocks
        .into_use_cases()
        .update_market(&owner, id, changes, Precondition::None)
        .await;
    assert!(matches!(result, Err(ChangeMarketError::Forbidden(_))));
}

#[tokio::test]
async fn endless_races_end_in_contention_not_a_loop() {
    let admin = Actor {
        user_id: UserId::from_uuid(Uuid::now_v7()),
        role: Role::Admin,
    };
    let market = market_by(UserId::from_uuid(Uuid::now_v7()));
    let id = market.id;
    let mut mocks = Mocks::new();
    mocks
        .markets
        .expect_find_by_id()
        .returning(move |_| Ok(Some(market.clone())));
    let attempts = Settings::default().optimistic_retries as usize + 1;
    mocks
        .markets
        .expect_delete()
        .times(attempts)
        .returning(|_, _| Err(RepositoryError::Stale));
    let result = mocks
        .into_use_cases()
        .delete_market(&admin, id, Precondition::None)
        .await;
    assert!(matches!(result, Err(DeleteMarketError::Contended)));
}
