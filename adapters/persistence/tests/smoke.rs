//! Smoke test of the adapter against SQLite (a temporary file, and in memory) and, when
//! `TEST_DATABASE_URL` names a PostgreSQL server, against a scratch database created on it.

use adapter_persistence::{
    Database, DatabaseProbe, PoolOptions, SeaMarketRepository, SeaUserRepository, connect,
    migrate_up, migration_status,
};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use domain::listing::{
    FieldSet, MarketFilter, MarketListQuery, MarketSort, PageRequest, SearchText,
};
use domain::market::MarketDraft;
use domain::ports::{HealthProbe, MarketRepository, RepositoryError, UserRepository};
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    MarketStatus, Outcome, PasswordHash, Role, User, UserId,
};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

#[tokio::test]
async fn sqlite() {
    let folder = std::env::temp_dir().join(format!("adapter-persistence-{}", Uuid::new_v4()));
    let url = format!("sqlite://{}", folder.join("nested/smoke.db").display());
    let database = connect(&url, None, &PoolOptions::default())
        .await
        .expect("connects, creating the folder and file");
    exercise(&database).await;
    database.close().await.expect("closes");
    std::fs::remove_dir_all(folder).expect("removes the scratch folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory() {
    let database = connect("sqlite::memory:", None, &PoolOptions::default())
        .await
        .expect("connects");
    exercise(&database).await;
}

#[tokio::test]
async fn postgres() {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping PostgreSQL");
        return;
    };
    let admin = connect(&server, None, &PoolOptions::default())
        .await
        .expect("connects to the server");
    let name = format!("smoke_{}", Uuid::new_v4().simple());
    admin
        .writer()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creates a scratch database");
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    let database = connect(&format!("{base}/{name}"), None, &PoolOptions::default())
        .await
        .expect("connects to the scratch database");
    // Run in a task so that the scratch database is dropped even when an assertion fails.
    let outcome = tokio::spawn({
        let database = database.clone();
        async move { exercise(&database).await }
    })
    .await;
    database.close().await.expect("closes");
    admin
        .writer()
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .expect("drops the scratch database");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn exercise(database: &Database) {
    migrations(database).await;
    users(database).await;
    markets(database).await;
    listing(database).await;
    corrupt_rows(database).await;
    DatabaseProbe::new(database.clone())
        .check()
        .await
        .expect("the probe passes");
}

async fn migrations(database: &Database) {
    let before = migration_status(database).await.expect("reads the status");
    assert!(before.applied.is_empty());
    assert_eq!(
        before.pending,
        [
            "m20261122_000001_create_users",
            "m20261122_000002_create_markets"
        ]
    );
    migrate_up(database).await.expect("migrates");
    migrate_up(database)
        .await
        .expect("migrating again does nothing");
    let after = migration_status(database).await.expect("reads the status");
    assert!(after.is_up_to_date());
    assert_eq!(after.applied, before.pending);
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn user(email: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(email).expect("valid email"),
        name: DisplayName::parse("Ada").expect("valid name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$stub".into()),
        role: Role::Moderator,
        balance: Amount::parse("12.34").expect("valid amount"),
        disabled: false,
        created_at: now(),
        updated_at: now(),
    }
}

async fn users(database: &Database) {
    let repository = SeaUserRepository::new(database.clone());
    let ada = user("Ada@Example.com");
    repository.insert(&ada).await.expect("inserts");
    assert_eq!(
        repository.find_by_id(ada.id).await.expect("reads"),
        Some(ada.clone())
    );
    assert_eq!(
        repository.find_by_email(&ada.email).await.expect("reads"),
        Some(ada.clone())
    );
    assert!(matches!(
        repository.insert(&user("ADA@example.COM")).await,
        Err(RepositoryError::Conflict("email"))
    ));
    assert!(matches!(
        repository.insert(&ada).await,
        Err(RepositoryError::Conflict(_))
    ));
    // A row written behind the domain's back, in upper case, is still found and still unique.
    database
        .writer()
        .execute_unprepared(
            "UPDATE users SET email = 'ADA@EXAMPLE.COM' WHERE email = 'ada@example.com'",
        )
        .await
        .expect("updates");
    assert_eq!(
        repository
            .find_by_email(&ada.email)
            .await
            .expect("reads")
            .map(|found| found.id),
        Some(ada.id)
    );
    assert!(matches!(
        repository.insert(&user("ada@example.com")).await,
        Err(RepositoryError::Conflict("email"))
    ));
    assert_eq!(
        repository
            .find_by_email(&Email::parse("nobody@example.com").expect("valid"))
            .await
            .expect("reads"),
        None
    );
}

async fn creator(database: &Database) -> UserId {
    let creator = user(&format!("{}@example.com", Uuid::new_v4().simple()));
    SeaUserRepository::new(database.clone())
        .insert(&creator)
        .await
        .expect("inserts the creator");
    creator.id
}

fn market(creator: UserId, name: &str, created_at: DateTime<Utc>) -> Market {
    let draft = MarketDraft {
        name: MarketName::parse(name).expect("valid name"),
        description: MarketDescription::parse("A question.").expect("valid description"),
        category: Category::parse("weather").expect("valid category"),
        end_date: created_at + Duration::days(30),
    };
    Market::open(
        MarketId::from_uuid(Uuid::now_v7()),
        draft,
        creator,
        created_at,
    )
    .expect("opens")
}

async fn markets(database: &Database) {
    let repository = SeaMarketRepository::new(database.clone());
    let creator = creator(database).await;
    let mut original = market(creator, "Will it rain?", now());
    original.yes_volume = Amount::parse("10.00").expect("valid");
    original.no_volume = Amount::parse("2.50").expect("valid");
    original.image_url = Some("https://example.com/rain.png".into());
    repository.insert(&original).await.expect("inserts");
    assert_eq!(
        repository.find_by_id(original.id).await.expect("reads"),
        Some(original.clone())
    );
    assert!(matches!(
        repository.insert(&original).await,
        Err(RepositoryError::Conflict("id"))
    ));
    let orphan = market(UserId::from_uuid(Uuid::now_v7()), "Orphan market", now());
    assert!(matches!(
        repository.insert(&orphan).await,
        Err(RepositoryError::Conflict("creator_id"))
    ));

    let mut resolved = original.clone();
    resolved.status = MarketStatus::Resolved;
    resolved.outcome = Some(Outcome::Yes);
    resolved.version = 2;
    resolved.updated_at = now();
    repository.update(&resolved, 1).await.expect("updates");
    assert_eq!(
        repository.find_by_id(original.id).await.expect("reads"),
        Some(resolved.clone())
    );
    assert!(matches!(
        repository.update(&resolved, 1).await,
        Err(RepositoryError::Stale)
    ));
    assert!(matches!(
        repository.update(&orphan, 1).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        repository.delete(original.id, 1).await,
        Err(RepositoryError::Stale)
    ));
    repository.delete(original.id, 2).await.expect("deletes");
    assert!(matches!(
        repository.delete(original.id, 2).await,
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(
        repository.find_by_id(original.id).await.expect("reads"),
        None
    );
}

async fn listing(database: &Database) {
    let repository = SeaMarketRepository::new(database.clone());
    let creator = creator(database).await;
    let other = creator_with_market(database).await;
    // Whole seconds and fractions mixed, to check that SQLite's text timestamps order correctly.
    let base = Utc
        .with_ymd_and_hms(2030, 1, 1, 12, 0, 0)
        .single()
        .expect("valid");
    let times = [
        base,
        base + Duration::microseconds(1),
        base + Duration::milliseconds(500),
        base + Duration::seconds(1),
    ];
    let names = ["100% sure_thing", "Rain in Paris", "rainbow", "Sunny days"];
    let volumes = [700, 300, 700, 0];
    let mut markets = Vec::new();
    for ((time, name), cents) in times.into_iter().zip(names).zip(volumes) {
        let mut market = market(creator, name, time);
        market.yes_volume = Amount::from_cents(cents).expect("valid");
        repository.insert(&market).await.expect("inserts");
        markets.push(market);
    }
    let id = |index: usize| markets[index].id;
    let only_creator = MarketFilter {
        creator_id: Some(creator),
        ..MarketFilter::default()
    };
    let list = |filter: MarketFilter, sort: &str, fields: &str, page: PageRequest| {
        let repository = repository.clone();
        let query = MarketListQuery {
            filter,
            sort: MarketSort::parse(sort).expect("valid sort"),
            page,
            fields: FieldSet::parse(fields).expect("valid fields"),
        };
        async move { repository.list(&query).await.expect("lists") }
    };
    let ids = |page: &domain::Page<domain::listing::MarketProjection>| {
        page.items.iter().map(|item| item.id).collect::<Vec<_>>()
    };

    let page = list(
        only_creator.clone(),
        "created_at",
        "name",
        PageRequest::default(),
    )
    .await;
    assert_eq!(ids(&page), [id(0), id(1), id(2), id(3)]);
    assert_eq!(page.total, 4);
    let page = list(
        only_creator.clone(),
        "-created_at",
        "name",
        PageRequest::default(),
    )
    .await;
    assert_eq!(ids(&page), [id(3), id(2), id(1), id(0)]);

    // Ties on volume are broken by id ascending; volume is total volume.
    let page = list(
        only_creator.clone(),
        "-volume",
        "volume",
        PageRequest::default(),
    )
    .await;
    assert_eq!(ids(&page), [id(0), id(2), id(1), id(3)]);
    assert_eq!(
        page.items[0].volume,
        Some(Amount::from_cents(700).expect("valid"))
    );

    // Names order by bytes: digits, upper case, then lower case.
    let page = list(only_creator.clone(), "name", "name", PageRequest::default()).await;
    assert_eq!(ids(&page), [id(0), id(1), id(3), id(2)]);

    // Only the requested fields come back.
    let item = &list(
        only_creator.clone(),
        "name",
        "name,outcome,image_url",
        PageRequest::default(),
    )
    .await
    .items[0];
    assert_eq!(item.name, Some(markets[0].name.clone()));
    assert_eq!(item.outcome, Some(None));
    assert_eq!(item.image_url, Some(None));
    assert_eq!(item.status, None);
    assert_eq!(item.volume, None);
    assert_eq!(item.created_at, None);
    let everything = list(
        only_creator.clone(),
        "name",
        &all_fields(),
        PageRequest::default(),
    )
    .await;
    assert_eq!(
        everything.items[0],
        domain::listing::MarketProjection::of(&markets[0], &FieldSet::all())
    );

    // Paging, with the total counted past the first page.
    let second = list(
        only_creator.clone(),
        "created_at",
        "id",
        PageRequest::new(2, 2).expect("valid page"),
    )
    .await;
    assert_eq!(ids(&second), [id(2), id(3)]);
    assert_eq!(second.total, 4);
    let first = list(
        only_creator.clone(),
        "created_at",
        "id",
        PageRequest::new(3, 0).expect("valid page"),
    )
    .await;
    assert_eq!((ids(&first).len(), first.total), (3, 4));
    let beyond = list(
        only_creator.clone(),
        "created_at",
        "id",
        PageRequest::new(2, 10).expect("valid page"),
    )
    .await;
    assert_eq!((ids(&beyond).len(), beyond.total), (0, 4));

    // Filters.
    let search = |text: &str| MarketFilter {
        text: Some(SearchText::parse(text).expect("valid text")),
        ..only_creator.clone()
    };
    let by_text = |text: &'static str| {
        let filter = search(text);
        let list = &list;
        async move { ids(&list(filter, "created_at", "id", PageRequest::default()).await) }
    };
    assert_eq!(by_text("RAIN").await, [id(1), id(2)]);
    assert_eq!(by_text("0%").await, [id(0)]);
    assert_eq!(by_text("e_t").await, [id(0)]);
    assert_eq!(by_text("n_p").await, Vec::<MarketId>::new());
    assert_eq!(by_text("%").await, [id(0)]);
    assert_eq!(by_text("question").await, [id(0), id(1), id(2), id(3)]);
    let filtered = |filter: MarketFilter| {
        let list = &list;
        async move { ids(&list(filter, "created_at", "id", PageRequest::default()).await) }
    };
    assert_eq!(
        filtered(MarketFilter {
            min_volume: Amount::from_cents(300),
            ..only_creator.clone()
        })
        .await,
        [id(0), id(1), id(2)]
    );
    let end = |index: usize| markets[index].end_date;
    assert_eq!(
        filtered(MarketFilter {
            end_before: Some(end(2)),
            ..only_creator.clone()
        })
        .await,
        [id(0), id(1)]
    );
    // Bounds finer than the stored microseconds still compare exactly.
    assert_eq!(
        filtered(MarketFilter {
            end_before: Some(end(2) + Duration::nanoseconds(1)),
            end_after: Some(end(1) - Duration::nanoseconds(1)),
            ..only_creator.clone()
        })
        .await,
        [id(1), id(2)]
    );
    assert_eq!(
        filtered(MarketFilter {
            end_after: Some(end(0)),
            end_before: Some(end(3)),
            ..only_creator.clone()
        })
        .await,
        [id(1), id(2)]
    );
    assert_eq!(
        filtered(MarketFilter {
            status: Some(MarketStatus::Active),
            category: Some(Category::parse("weather").expect("valid")),
            ..only_creator.clone()
        })
        .await
        .len(),
        4
    );
    assert_eq!(
        filtered(MarketFilter {
            status: Some(MarketStatus::Closed),
            ..only_creator.clone()
        })
        .await,
        Vec::<MarketId>::new()
    );
    assert_eq!(
        filtered(MarketFilter {
            creator_id: Some(other),
            ..MarketFilter::default()
        })
        .await
        .len(),
        1
    );
}

fn all_fields() -> String {
    domain::listing::MarketField::ALL
        .map(domain::listing::MarketField::as_str)
        .join(",")
}

async fn creator_with_market(database: &Database) -> UserId {
    let creator = creator(database).await;
    SeaMarketRepository::new(database.clone())
        .insert(&market(creator, "Someone else's", now()))
        .await
        .expect("inserts");
    creator
}

async fn corrupt_rows(database: &Database) {
    let repository = SeaMarketRepository::new(database.clone());
    let creator = creator(database).await;
    let market = market(creator, "Soon corrupt", now());
    repository.insert(&market).await.expect("inserts");
    database
        .writer()
        .execute_unprepared("UPDATE markets SET name = 'ab' WHERE name = 'Soon corrupt'")
        .await
        .expect("corrupts");
    match repository.find_by_id(market.id).await {
        Err(RepositoryError::Unavailable(cause)) => {
            assert!(cause.to_string().contains("corrupt"), "{cause}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
