//! Use-case tests over the in-memory adapters and the real (cheaply parameterised) crypto: whole
//! flows in microseconds, with a clock the test controls.

use std::sync::Arc;

use adapter_crypto::{Argon2Hasher, HashingConfig, JwtConfig, JwtIssuer};
use adapter_memory::{
    FixedClock, InMemoryMarketRepository, InMemoryUserRepository, UuidV7Generator,
};
use application::markets::{ChangeMarketError, Precondition};
use application::users::{LoginError, RegisterError, Registration};
use application::{Deps, Settings, UseCases};
use chrono::TimeDelta;
use domain::listing::{FieldSet, MarketField, MarketFilter, MarketListQuery};
use domain::market::{MarketChanges, MarketDraft};
use domain::ports::{Clock, TokenError};
use domain::{Actor, Category, DisplayName, Email, MarketDescription, MarketName, Password, Role};

struct World {
    use_cases: UseCases,
    clock: Arc<FixedClock>,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::default());
    let tokens = JwtIssuer::new(
        &JwtConfig::new(
            "an-in-memory-test-secret-of-32-bytes!".to_owned().into(),
            "tests",
            "tests-api",
        ),
        clock.clone(),
    )
    .expect("a token issuer");
    let users = Arc::new(InMemoryUserRepository::new());
    let use_cases = UseCases::new(
        Deps {
            users: users.clone(),
            markets: Arc::new(InMemoryMarketRepository::new(users)),
            hasher: Arc::new(
                Argon2Hasher::new(&HashingConfig::insecure_for_tests()).expect("a hasher"),
            ),
            tokens: Arc::new(tokens),
            clock: clock.clone(),
            ids: Arc::new(UuidV7Generator),
        },
        Settings::default(),
    );
    World { use_cases, clock }
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

#[tokio::test]
async fn a_registered_user_signs_in_and_the_token_names_them() {
    let world = world();
    let user = world
        .use_cases
        .register(registration("Eve@Example.com"))
        .await
        .expect("registered");
    let signed_in = world
        .use_cases
        .login("eve@example.com", "correct horse battery")
        .await
        .expect("signed in");
    let claims = world
        .use_cases
        .deps()
        .tokens
        .verify(&signed_in.access_token.token)
        .expect("a valid token");
    assert_eq!(claims.actor.user_id, user.id);
    assert_eq!(claims.actor.role, Role::User);
    let me = world
        .use_cases
        .current_user(&claims.actor)
        .await
        .expect("the current user");
    assert_eq!(me.email.as_str(), "eve@example.com");

    world.clock.advance(TimeDelta::minutes(16));
    assert!(matches!(
        world
            .use_cases
            .deps()
            .tokens
            .verify(&signed_in.access_token.token),
        Err(TokenError::Expired)
    ));
}

#[tokio::test]
async fn registration_is_unique_by_email_and_sign_in_refuses_wrong_passwords() {
    let world = world();
    world
        .use_cases
        .register(registration("dup@example.com"))
        .await
        .expect("registered");
    assert!(matches!(
        world
            .use_cases
            .register(registration("DUP@example.com"))
            .await,
        Err(RegisterError::EmailTaken)
    ));
    assert!(matches!(
        world
            .use_cases
            .login("dup@example.com", "wrong horse")
            .await,
        Err(LoginError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn markets_are_created_changed_listed_and_deleted_under_the_policy() {
    let world = world();
    let owner = world
        .use_cases
        .register(registration("owner@example.com"))
        .await
        .expect("registered");
    let owner = Actor {
        user_id: owner.id,
        role: owner.role,
    };
    let market = world
        .use_cases
        .create_market(&owner, draft(&world, "First market"))
        .await
        .expect("created");
    world
        .use_cases
        .create_market(&owner, draft(&world, "Second market"))
        .await
        .expect("created");

    let renamed = world
        .use_cases
        .update_market(
            &owner,
            market.id,
            MarketChanges {
                name: MarketName::parse("First market, renamed").ok(),
                ..MarketChanges::default()
            },
            Precondition::Version(1),
        )
        .await
        .expect("renamed");
    assert_eq!(renamed.version, 2);

    let stranger = Actor {
        user_id: domain::UserId::from_uuid(uuid_v7()),
        role: Role::User,
    };
    assert!(matches!(
        world
            .use_cases
            .update_market(
                &stranger,
                market.id,
                MarketChanges {
                    name: MarketName::parse("Hijacked").ok(),
                    ..MarketChanges::default()
                },
                Precondition::None,
            )
            .await,
        Err(ChangeMarketError::Forbidden(_))
    ));

    let page = world
        .use_cases
        .list_markets(&MarketListQuery {
            filter: MarketFilter {
                creator_id: Some(owner.user_id),
                ..MarketFilter::default()
            },
            fields: FieldSet::parse("name").expect("fields"),
            ..MarketListQuery::default()
        })
        .await
        .expect("a page");
    assert_eq!(page.total, 2);
    assert!(
        page.items
            .iter()
            .all(|m| m.name.is_some() && m.version.is_none())
    );
    assert!(
        FieldSet::parse("name")
            .expect("fields")
            .contains(MarketField::Id)
    );

    world
        .use_cases
        .delete_market(&owner, market.id, Precondition::None)
        .await
        .expect("deleted");
    assert!(world.use_cases.get_market(market.id).await.is_err());
}

fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
