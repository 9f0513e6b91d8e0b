//! Use-case tests over the in-memory adapters and the real (cheaply parameterised) crypto: whole
//! flows in microseconds, with a clock the test controls.

use std::sync::{Arc, Mutex};

use adapter_cache::InProcessCache;
use adapter_crypto::{Argon2Hasher, HashingConfig, JwtConfig, JwtIssuer};
use adapter_memory::{FixedClock, InMemoryStore, InProcessRecentWrites, UuidV7Generator};
use application::caching::{CachePolicy, CachedMarketRepository, MarketRenderer};
use application::idempotency::{IdempotencyError, Idempotent, IdempotentRequest, Replayable};
use application::markets::{
    ChangeMarketError, CreateMarketError, DeleteMarketError, InitialPosition, MarketList,
    Precondition,
};
use application::positions::{OpenPositionError, PositionOrder};
use application::sessions::{
    AuthError, Credentials, LoginError, RefreshError, SignInRequest, SignedIn,
};
use application::users::{RegisterError, Registration};
use application::{Deps, Settings, UseCases};
use chrono::TimeDelta;
use domain::listing::{FieldSet, MarketField, MarketFilter, MarketListQuery, PositionListQuery};
use domain::market::{MarketChanges, MarketDraft, StatusChange};
use domain::ports::{Clock, IdempotencyScope, Outbox, StoredResponse, TokenError, UserRepository};
use domain::position::PositionError;
use domain::{
    Actor, Amount, Category, DisplayName, DomainEvent, Email, Market, MarketDescription, MarketId,
    MarketName, MarketStatus, Outcome, Password, Position, Role, Side, Stake,
};

/// What a renderer was asked to render.
#[derive(Debug, Clone)]
enum Rendering {
    Market(Market),
    List(MarketList),
}

/// Renders a market or a page as the index of a record of what it was asked, so that a test can
/// tell what a (possibly cached) body shows.
#[derive(Default)]
struct RecordingRenderer {
    renderings: Mutex<Vec<Rendering>>,
}

impl RecordingRenderer {
    fn record(&self, rendering: Rendering) -> Vec<u8> {
        let mut renderings = self.renderings.lock().expect("not poisoned");
        renderings.push(rendering);
        (renderings.len() - 1).to_string().into_bytes()
    }

    fn shown_by(&self, body: &[u8]) -> Rendering {
        let index: usize = std::str::from_utf8(body)
            .expect("text")
            .parse()
            .expect("an index");
        self.renderings.lock().expect("not poisoned")[index].clone()
    }
}

impl MarketRenderer for RecordingRenderer {
    fn market(&self, market: &Market) -> Vec<u8> {
        self.record(Rendering::Market(market.clone()))
    }

    fn list(&self, list: &MarketList, _include_creators: bool) -> Vec<u8> {
        self.record(Rendering::List(list.clone()))
    }
}

struct World {
    use_cases: UseCases,
    store: InMemoryStore,
    clock: Arc<FixedClock>,
    renderer: Arc<RecordingRenderer>,
}

impl World {
    /// The market as `get_market` shows it (through the cache).
    async fn market(&self, id: MarketId) -> Market {
        let rendered = self.use_cases.get_market(id).await.expect("the market");
        match self.renderer.shown_by(&rendered.body) {
            Rendering::Market(market) => {
                assert_eq!(market.version, rendered.version);
                market
            }
            Rendering::List(_) => panic!("a page where a market was expected"),
        }
    }

    /// The page as `list_markets` shows it (through the cache).
    async fn list(
        &self,
        query: &MarketListQuery,
        include_creators: bool,
        viewer: Option<&Actor>,
    ) -> MarketList {
        let rendered = self
            .use_cases
            .list_markets(query, include_creators, viewer)
            .await
            .expect("a page");
        match self.renderer.shown_by(&rendered.body) {
            Rendering::List(list) => list,
            Rendering::Market(_) => panic!("a market where a page was expected"),
        }
    }
}

fn world() -> World {
    let clock = Arc::new(FixedClock::default());
    let store = InMemoryStore::new();
    let tokens = JwtIssuer::new(
        &JwtConfig::new(
            "an-in-memory-test-secret-of-32-bytes!".to_owned().into(),
            "tests",
            "tests-api",
        ),
        clock.clone(),
    )
    .expect("a token issuer");
    let renderer = Arc::new(RecordingRenderer::default());
    let use_cases = UseCases::new(
        Deps {
            users: store.users(),
            cached_markets: CachedMarketRepository::new(
                store.markets(),
                Arc::new(InProcessCache::new(1024 * 1024)),
                renderer.clone(),
                CachePolicy::default(),
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
            recent_writes: Arc::new(InProcessRecentWrites::new(std::time::Duration::from_secs(
                5,
            ))),
            hasher: Arc::new(
                Argon2Hasher::new(&HashingConfig::insecure_for_tests()).expect("a hasher"),
            ),
            tokens: Arc::new(tokens),
            clock: clock.clone(),
            ids: Arc::new(UuidV7Generator),
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
    );
    World {
        use_cases,
        store,
        clock,
        renderer,
    }
}

fn registration(email: &str) -> Registration {
    Registration {
        email: Email::parse(email).expect("an email"),
        password: Password::parse("correct horse battery").expect("a password"),
        name: DisplayName::parse("Tester").expect("a name"),
    }
}

fn draft(world: &World, name: &str) -> MarketDraft {
    MarketDraft {
        name: MarketName::parse(name).expect("a name"),
        description: MarketDescription::default(),
        category: Category::parse("test").expect("a category"),
        end_date: world.clock.now() + TimeDelta::days(10),
    }
}

fn done<T>(outcome: Replayable<T>) -> T {
    match outcome {
        Replayable::Done(value) => value,
        Replayable::Replay(_) => panic!("expected a fresh result, got a replay"),
    }
}

async fn signed_up(world: &World, email: &str) -> Actor {
    let user = done(
        world
            .use_cases
            .register(registration(email), None)
            .await
            .expect("registered"),
    );
    Actor {
        user_id: user.id,
        role: user.role,
    }
}

fn order(side: Side, cents: i64) -> PositionOrder {
    PositionOrder {
        side,
        stake: Stake::new(Amount::from_cents(cents).expect("an amount")).expect("a stake"),
    }
}

async fn events(world: &World) -> Vec<DomainEvent> {
    world
        .store
        .outbox()
        .after(0, 100)
        .await
        .expect("events")
        .into_iter()
        .map(|stored| stored.event.event)
        .collect()
}

#[tokio::test]
async fn a_registered_user_signs_in_and_the_token_names_them() {
    let world = world();
    let actor = signed_up(&world, "Eve@Example.com").await;
    let signed_in = sign_in(&world, "eve@example.com", "correct horse battery")
        .await
        .expect("signed in");
    let (access_token, _) = bearer(&signed_in);
    let claims = world
        .use_cases
        .deps()
        .tokens
        .verify(&access_token)
        .expect("a valid token");
    assert_eq!(claims.session_id, signed_in.session.id);
    assert_eq!(claims.actor, actor);
    assert_eq!(
        events(&world).await,
        [DomainEvent::UserRegistered {
            user_id: actor.user_id
        }]
    );
    world.clock.advance(TimeDelta::minutes(16));
    assert!(matches!(
        world.use_cases.deps().tokens.verify(&access_token),
        Err(TokenError::Expired)
    ));
}

async fn sign_in(world: &World, email: &str, password: &str) -> Result<SignedIn, LoginError> {
    world
        .use_cases
        .login(SignInRequest {
            email,
            password,
            mode: domain::SessionMode::Bearer,
            user_agent: Some("tests"),
        })
        .await
}

fn bearer(signed_in: &SignedIn) -> (String, String) {
    match &signed_in.credentials {
        Credentials::Bearer {
            access_token,
            refresh_token,
        } => (access_token.token.clone(), refresh_token.clone()),
        Credentials::Cookie { .. } => panic!("a bearer sign-in"),
    }
}

/// Rotation: each refresh token works once; presenting a used one again ends the session, and
/// with it the access tokens issued to it.
#[tokio::test]
async fn a_reused_refresh_token_ends_its_whole_family() {
    let world = world();
    signed_up(&world, "rot@example.com").await;
    let signed_in = sign_in(&world, "rot@example.com", "correct horse battery")
        .await
        .expect("signed in");
    let (_, first) = bearer(&signed_in);
    let second = world.use_cases.refresh(&first).await.expect("rotates");
    assert_ne!(second.refresh_token, first);
    let third = world
        .use_cases
        .refresh(&second.refresh_token)
        .await
        .expect("rotates again");
    let access = &third.access_token.token;
    assert!(world.use_cases.authenticate_bearer(access).await.is_ok());

    assert!(matches!(
        world.use_cases.refresh(&first).await,
        Err(RefreshError::Reused)
    ));
    assert!(matches!(
        world.use_cases.refresh(&third.refresh_token).await,
        Err(RefreshError::SessionRevoked)
    ));
    assert!(matches!(
        world.use_cases.authenticate_bearer(access).await,
        Err(AuthError::SessionRevoked)
    ));
    assert!(matches!(
        world.use_cases.refresh("not a token").await,
        Err(RefreshError::Invalid)
    ));
}

#[tokio::test]
async fn registration_is_unique_by_email_and_sign_in_refuses_wrong_passwords() {
    let world = world();
    signed_up(&world, "dup@example.com").await;
    assert!(matches!(
        world
            .use_cases
            .register(registration("DUP@example.com"), None)
            .await,
        Err(RegisterError::EmailTaken)
    ));
    assert!(matches!(
        sign_in(&world, "dup@example.com", "wrong horse").await,
        Err(LoginError::InvalidCredentials)
    ));
    assert_eq!(
        events(&world).await.len(),
        1,
        "no event for the refused one"
    );
}

#[tokio::test]
async fn opening_a_position_changes_balance_volume_and_records_the_event_together() {
    let world = world();
    let owner = signed_up(&world, "owner@example.com").await;
    let trader = signed_up(&world, "trader@example.com").await;
    let market = done(
        world
            .use_cases
            .create_market(&owner, draft(&world, "Will it hail?"), None, None)
            .await
            .expect("created"),
    )
    .market;
    let position = done(
        world
            .use_cases
            .open_position(&trader, market.id, order(Side::No, 2_500), None)
            .await
            .expect("opened"),
    );
    assert_eq!(
        position.amount,
        Amount::from_cents(2_500).expect("an amount")
    );
    let user = world
        .store
        .users()
        .find_by_id(trader.user_id)
        .await
        .expect("a read")
        .expect("the trader");
    assert_eq!(user.balance, Amount::from_cents(97_500).expect("an amount"));
    let market = world.market(market.id).await;
    assert_eq!(market.no_volume, position.amount);
    assert!(matches!(
        events(&world).await.last(),
        Some(DomainEvent::PositionOpened { amount, .. }) if *amount == position.amount
    ));

    let too_much = world
        .use_cases
        .open_position(&trader, market.id, order(Side::Yes, 10_000_000), None)
        .await;
    assert!(matches!(
        too_much,
        Err(OpenPositionError::Rule(
            PositionError::InsufficientBalance { .. }
        ))
    ));
    let page = world
        .use_cases
        .list_user_positions(&trader, trader.user_id, PositionListQuery::default(), true)
        .await
        .expect("a page");
    assert_eq!(page.page.total, 1, "the refused order left nothing");
    assert_eq!(page.markets.len(), 1);
}

#[tokio::test]
async fn a_market_and_its_initial_position_commit_together_or_not_at_all() {
    let world = world();
    let owner = signed_up(&world, "owner@example.com").await;
    let events_before = events(&world).await.len();
    let refused = world
        .use_cases
        .create_market(
            &owner,
            draft(&world, "Too rich"),
            Some(InitialPosition {
                side: Side::Yes,
                stake: Stake::new(Amount::from_cents(10_000_000).expect("an amount"))
                    .expect("a stake"),
            }),
            None,
        )
        .await;
    assert!(matches!(refused, Err(CreateMarketError::Position(_))));
    let all = world.list(&MarketListQuery::default(), false, None).await;
    assert_eq!(all.page.total, 0);
    assert_eq!(events(&world).await.len(), events_before);

    let created = done(
        world
            .use_cases
            .create_market(
                &owner,
                draft(&world, "Just right"),
                Some(InitialPosition {
                    side: Side::Yes,
                    stake: Stake::new(Amount::from_cents(1_000).expect("an amount"))
                        .expect("a stake"),
                }),
                None,
            )
            .await
            .expect("created"),
    );
    assert!(created.position.is_some());
    assert_eq!(
        created.market.yes_volume,
        Amount::from_cents(1_000).expect("an amount")
    );
}

#[tokio::test]
async fn markets_are_changed_under_the_policy_and_preconditions() {
    let world = world();
    let owner = signed_up(&world, "owner@example.com").await;
    let market = done(
        world
            .use_cases
            .create_market(&owner, draft(&world, "First market"), None, None)
            .await
            .expect("created"),
    )
    .market;
    let rename = |name: &str| MarketChanges {
        name: MarketName::parse(name).ok(),
        ..MarketChanges::default()
    };
    let renamed = world
        .use_cases
        .update_market(
            &owner,
            market.id,
            rename("Renamed"),
            Precondition::Version(1),
        )
        .await
        .expect("renamed");
    assert_eq!(renamed.version, 2);
    assert!(matches!(
        world
            .use_cases
            .update_market(&owner, market.id, rename("Stale"), Precondition::Version(1))
            .await,
        Err(ChangeMarketError::PreconditionFailed { expected: 1 })
    ));
    let resolve = MarketChanges {
        status: Some(StatusChange {
            status: MarketStatus::Resolved,
            outcome: Some(Outcome::Yes),
        }),
        ..MarketChanges::default()
    };
    assert!(matches!(
        world
            .use_cases
            .update_market(&owner, market.id, resolve.clone(), Precondition::None)
            .await,
        Err(ChangeMarketError::Forbidden(_))
    ));
    let moderator = Actor {
        user_id: owner.user_id,
        role: Role::Moderator,
    };
    world
        .use_cases
        .update_market(&moderator, market.id, resolve, Precondition::None)
        .await
        .expect("resolved");
    assert!(matches!(
        events(&world).await.last(),
        Some(DomainEvent::MarketStatusChanged {
            status: MarketStatus::Resolved,
            outcome: Some(Outcome::Yes),
            ..
        })
    ));
}

#[tokio::test]
async fn a_market_with_positions_is_cancelled_not_deleted() {
    let world = world();
    let owner = signed_up(&world, "owner@example.com").await;
    let market = done(
        world
            .use_cases
            .create_market(&owner, draft(&world, "Staked"), None, None)
            .await
            .expect("created"),
    )
    .market;
    world
        .use_cases
        .open_position(&owner, market.id, order(Side::Yes, 100), None)
        .await
        .expect("opened");
    let admin = Actor {
        user_id: owner.user_id,
        role: Role::Admin,
    };
    assert!(matches!(
        world
            .use_cases
            .delete_market(&admin, market.id, Precondition::None)
            .await,
        Err(DeleteMarketError::HasPositions)
    ));
}

#[tokio::test]
async fn an_idempotent_order_is_executed_once_and_replayed_after() {
    let world = world();
    let trader = signed_up(&world, "trader@example.com").await;
    let market = done(
        world
            .use_cases
            .create_market(&trader, draft(&world, "Retried"), None, None)
            .await
            .expect("created"),
    )
    .market;
    let request = |fingerprint: &str| IdempotentRequest {
        scope: IdempotencyScope {
            caller: trader.user_id.to_string(),
            route: "POST /positions".into(),
            key: "k-1".into(),
        },
        fingerprint: fingerprint.into(),
    };
    let render = |position: &Position| StoredResponse {
        status: 201,
        headers: Vec::new(),
        body: position.id.to_string().into_bytes(),
    };
    let first_request = request("a");
    let idempotent = Idempotent {
        request: &first_request,
        render: &render,
    };
    let first = done(
        world
            .use_cases
            .open_position(&trader, market.id, order(Side::Yes, 500), Some(&idempotent))
            .await
            .expect("opened"),
    );
    let again = world
        .use_cases
        .open_position(&trader, market.id, order(Side::Yes, 500), Some(&idempotent))
        .await
        .expect("replayed");
    assert_eq!(
        again,
        Replayable::Replay(StoredResponse {
            status: 201,
            headers: Vec::new(),
            body: first.id.to_string().into_bytes(),
        })
    );
    let other_request = request("b");
    let reused = world
        .use_cases
        .open_position(
            &trader,
            market.id,
            order(Side::Yes, 600),
            Some(&Idempotent {
                request: &other_request,
                render: &render,
            }),
        )
        .await;
    assert!(matches!(
        reused,
        Err(OpenPositionError::Idempotency(IdempotencyError::KeyReused))
    ));
    let market = world.market(market.id).await;
    assert_eq!(
        market.yes_volume,
        Amount::from_cents(500).expect("an amount")
    );
}

#[tokio::test]
async fn lists_filter_and_trim_fields() {
    let world = world();
    let owner = signed_up(&world, "owner@example.com").await;
    for name in ["First market", "Second market"] {
        world
            .use_cases
            .create_market(&owner, draft(&world, name), None, None)
            .await
            .expect("created");
    }
    let list = world
        .list(
            &MarketListQuery {
                filter: MarketFilter {
                    creator_id: Some(owner.user_id),
                    ..MarketFilter::default()
                },
                fields: FieldSet::parse("name").expect("fields"),
                ..MarketListQuery::default()
            },
            true,
            Some(&owner),
        )
        .await;
    assert_eq!(list.page.total, 2);
    assert!(
        list.page
            .items
            .iter()
            .all(|m| m.name.is_some() && m.version.is_none())
    );
    assert_eq!(list.creators.len(), 1, "each creator once");
    assert!(
        FieldSet::parse("name")
            .expect("fields")
            .contains(MarketField::Id)
    );
}
