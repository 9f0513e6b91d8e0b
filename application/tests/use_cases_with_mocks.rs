//! Use-case tests with mockall mocks where a port's behaviour is the point (the hasher, the token
//! issuer, the user lookup of sign-in); the stores that need transactions are in memory.

use std::sync::Arc;

use adapter_memory::{InMemoryStore, InProcessRecentWrites};
use application::caching::{CachedMarketRepository, MarketRenderer};
use application::markets::MarketList;
use application::sessions::{Credentials, LoginError, SignInRequest};
use application::users::{RegisterError, Registration};
use application::{Deps, Settings, UseCases};
use chrono::{DateTime, Utc};
use domain::ports::{
    HashError, IssuedToken, MockClock, MockIdGenerator, MockPasswordHasher, MockTokenIssuer,
    MockUserRepository, UserRepository,
};
use domain::{Amount, DisplayName, Email, Password, PasswordHash, Role, User, UserId};
use mockall::predicate::{always, eq};
use uuid::Uuid;

/// These tests never read markets.
struct NoRenderer;

impl MarketRenderer for NoRenderer {
    fn market(&self, _: &domain::Market) -> Vec<u8> {
        Vec::new()
    }

    fn list(&self, _: &MarketList, _: bool) -> Vec<u8> {
        Vec::new()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("a timestamp")
        .with_timezone(&Utc)
}

struct Mocks {
    users: MockUserRepository,
    hasher: MockPasswordHasher,
    tokens: MockTokenIssuer,
    store: InMemoryStore,
}

impl Mocks {
    fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            hasher: MockPasswordHasher::new(),
            tokens: MockTokenIssuer::new(),
            store: InMemoryStore::new(),
        }
    }

    fn into_use_cases(self) -> UseCases {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().returning(Uuid::now_v7);
        let store = self.store;
        UseCases::new(
            Deps {
                users: Arc::new(self.users),
                cached_markets: CachedMarketRepository::uncached(
                    store.markets(),
                    Arc::new(NoRenderer),
                ),
                markets: store.markets(),
                market_reads: store.markets(),
                positions: store.positions(),
                position_reads: store.positions(),
                unit_of_work: store.unit_of_work(),
                idempotency: store.idempotency(),
                jobs: store.jobs(),
                sessions: store.sessions(),
                session_cache: application::sessions::SessionCache::new(
                    std::time::Duration::from_millis(500),
                ),
                secrets: Arc::new(adapter_crypto::RandomSecrets),
                sign_in_throttle: None,
                recent_writes: Arc::new(InProcessRecentWrites::new(
                    std::time::Duration::from_secs(5),
                )),
                hasher: Arc::new(self.hasher),
                tokens: Arc::new(self.tokens),
                clock: Arc::new(clock),
                ids: Arc::new(ids),
                blobs: Arc::new(adapter_memory::InMemoryBlobStore::new()),
                search: application::markets::SearchEngine {
                    keywords: store.keyword_search(),
                    embedder: Arc::new(adapter_search::LocalEmbedder),
                    vectors: Arc::new(adapter_search::InProcessVectorIndex::new(
                        adapter_search::LocalEmbedder::DIMENSIONS,
                    )),
                },
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

#[tokio::test]
async fn a_failing_hasher_stores_nothing() {
    let mut mocks = Mocks::new();
    mocks
        .hasher
        .expect_hash()
        .returning(|_| Err(HashError("out of memory".into())));
    let store = mocks.store.clone();
    let result = mocks.into_use_cases().register(registration(), None).await;
    assert!(matches!(result, Err(RegisterError::Unavailable(_))));
    let email = Email::parse("ada@example.com").expect("an email");
    assert_eq!(
        store.users().find_by_email(&email).await.expect("a read"),
        None
    );
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
        .login(bearer("nobody@example.com", "whatever1"))
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
        .login(bearer("not an email", "whatever1"))
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
            .login(bearer("ada@example.com", "whatever1"))
            .await;
        if expect_disabled {
            assert!(matches!(result, Err(LoginError::AccountDisabled)));
        } else {
            assert!(matches!(result, Err(LoginError::InvalidCredentials)));
        }
    }
}

#[tokio::test]
async fn a_right_password_issues_a_token_for_the_users_role() {
    let mut mocks = Mocks::new();
    let stored = user(false);
    let id = stored.id;
    // The session refers to the user: the store behind the transactions must know them.
    mocks.store.users().insert(&stored).await.expect("stored");
    mocks
        .users
        .expect_find_by_email()
        .returning(move |_| Ok(Some(stored.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(true));
    mocks.hasher.expect_needs_rehash().returning(|_| false);
    mocks.hasher.expect_hash().never();
    mocks
        .tokens
        .expect_issue()
        .withf(move |actor, _| actor.user_id == id && actor.role == Role::User)
        .times(1)
        .returning(|_, _| {
            Ok(IssuedToken {
                token: "signed".into(),
                expires_in_seconds: 900,
            })
        });
    let signed_in = mocks
        .into_use_cases()
        .login(bearer("ada@example.com", "whatever1"))
        .await
        .expect("signed in");
    match signed_in.credentials {
        Credentials::Bearer { access_token, .. } => assert_eq!(access_token.token, "signed"),
        Credentials::Cookie { .. } => panic!("a bearer sign-in"),
    }
}

fn bearer<'a>(email: &'a str, password: &'a str) -> SignInRequest<'a> {
    SignInRequest {
        email,
        password,
        mode: domain::SessionMode::Bearer,
        user_agent: None,
    }
}
