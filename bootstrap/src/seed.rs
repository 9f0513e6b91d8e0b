//! `server seed`: realistic demo users and markets, inserted through the repository ports.
//!
//! Idempotent: ids and emails are derived from the row number, so a second run inserts nothing
//! new (rows that exist are skipped). Refused with `APP_ENV=production`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use application::positions::{OpenPositionError, PositionOrder};
use chrono::{Duration, TimeZone as _, Utc};
use domain::market::{MarketChanges, MarketDraft, StatusChange};
use domain::ports::RepositoryError;
use domain::position::PositionError;
use domain::{
    Actor, Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    MarketStatus, Outcome, Password, Role, Side, Stake, User, UserId,
};
use futures_util::{StreamExt as _, stream};
use uuid::Uuid;

use crate::app;
use crate::cli::SeedArgs;
use crate::config::{AppEnv, Config};

/// The demo admin's credentials, printed by every run. Demo data never reaches production: the
/// command refuses to run there.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "demo-admin-password";
/// The password of every other demo user.
pub const USER_PASSWORD: &str = "demo-user-password";

/// Rows written at once.
const CONCURRENCY: usize = 16;
/// New active markets that get positions (1 to 4 each).
const POSITIONED_MARKETS: usize = 1_000;

/// Categories with the subjects and predicates that make sense in them.
const TOPICS: &[(&str, &[&str], &[&str])] = &[
    (
        "politics",
        &[
            "the incumbent",
            "the challenger",
            "the coalition",
            "the referendum",
        ],
        &[
            "win the vote",
            "lead in the polls",
            "pass the budget",
            "form a government",
        ],
    ),
    (
        "sports",
        &[
            "the home team",
            "the defending champion",
            "the rookie",
            "the national side",
        ],
        &[
            "finish the season on top",
            "reach the final",
            "break the record",
            "win away",
        ],
    ),
    (
        "crypto",
        &[
            "Bitcoin",
            "Ethereum",
            "the largest stablecoin",
            "the new exchange",
        ],
        &[
            "close above its record",
            "double in a year",
            "lose its peg",
            "list 100 tokens",
        ],
    ),
    (
        "weather",
        &["Paris", "Tokyo", "New York", "Sydney"],
        &[
            "see snow",
            "break the heat record",
            "have a dry month",
            "flood",
        ],
    ),
    (
        "science",
        &[
            "the Mars lander",
            "the fusion reactor",
            "the space telescope",
            "the vaccine trial",
        ],
        &[
            "land on schedule",
            "reach net energy",
            "find water",
            "report results",
        ],
    ),
    (
        "economics",
        &[
            "inflation",
            "unemployment",
            "the central bank",
            "GDP growth",
        ],
        &[
            "fall below 2%",
            "rise above 5%",
            "cut rates",
            "beat forecasts",
        ],
    ),
    (
        "technology",
        &[
            "the new phone",
            "the open-source model",
            "the chip maker",
            "the browser",
        ],
        &[
            "ship before the holidays",
            "top the benchmark",
            "sell out",
            "reach a billion users",
        ],
    ),
    (
        "culture",
        &["the film festival", "the album", "the novel", "the musical"],
        &[
            "sell out",
            "win the top prize",
            "top the charts",
            "open on Broadway",
        ],
    ),
];

/// Who settles a market of each of [`TOPICS`], in the same order.
const SOURCES: [&str; 8] = [
    "certified by the electoral commission",
    "shown in the league's official standings",
    "quoted by the major exchanges",
    "measured by the national weather service",
    "published in a peer-reviewed journal",
    "reported by the statistics office",
    "announced by the company",
    "listed by the organisers",
];

const _: () = assert!(SOURCES.len() == TOPICS.len(), "one source per topic");

/// A cheap, deterministic mix of a row number (splitmix64), so runs agree.
const fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(items: &[&'a str], seed: u64) -> &'a str {
    let index = usize::try_from(seed % items.len() as u64).unwrap_or(0);
    items[index]
}

/// Deterministic ids: a fixed prefix marks demo rows, the low bits are the row number.
fn demo_id(kind: u128, n: u64) -> Uuid {
    Uuid::from_u128(0xd3d0_0000_0000_7000_8000_0000_0000_0000 | (kind << 64) | u128::from(n))
}

/// Runs the seeding.
///
/// # Errors
/// In production, or when the database or hashing fails.
pub async fn run(config: &Config, args: SeedArgs) -> anyhow::Result<()> {
    if config.env == AppEnv::Production {
        bail!("refusing to seed demo data with APP_ENV=production");
    }
    let started = Instant::now();
    let database = app::open_database(config).await?;
    adapter_persistence::migrate_up(&database).await?;
    // Seeding writes through the same cache as the servers, so that they never serve what it
    // replaced.
    let redis = app::redis_cache(config)?;
    let use_cases = app::use_cases(config, &database, redis.as_ref(), None).await?;
    let deps = use_cases.deps().clone();
    let now = deps.clock.now();

    let admin_hash = deps
        .hasher
        .hash(&Password::parse(ADMIN_PASSWORD).context("demo admin password")?)
        .await?;
    let user_hash = deps
        .hasher
        .hash(&Password::parse(USER_PASSWORD).context("demo user password")?)
        .await?;
    let balance = config
        .markets
        .starting_balance_amount()
        .context("APP_MARKETS__STARTING_BALANCE")?;
    let user = |n: u64, email: String, name: String, role: Role, hash| -> anyhow::Result<User> {
        Ok(User {
            id: UserId::from_uuid(demo_id(1, n)),
            email: Email::parse(&email)?,
            name: DisplayName::parse(&name)?,
            password_hash: hash,
            role,
            balance,
            disabled: false,
            created_at: now,
            updated_at: now,
        })
    };
    let mut users = vec![
        user(
            0,
            ADMIN_EMAIL.into(),
            "Demo Admin".into(),
            Role::Admin,
            admin_hash,
        )?,
        user(
            1,
            "moderator@example.com".into(),
            "Demo Moderator".into(),
            Role::Moderator,
            user_hash.clone(),
        )?,
    ];
    for n in 2..u64::from(args.users).max(2) {
        users.push(user(
            n,
            format!("user{n}@example.com"),
            format!("Demo User {n}"),
            Role::User,
            user_hash.clone(),
        )?);
    }
    let creators: Arc<Vec<UserId>> = Arc::new(users.iter().map(|u| u.id).collect());
    let repository = Arc::clone(&deps.users);
    let new_users = count_inserted(
        stream::iter(users)
            .map(|user| {
                let repository = Arc::clone(&repository);
                async move { repository.insert(&user).await }
            })
            .buffer_unordered(CONCURRENCY),
    )
    .await?;

    let epoch = Utc.timestamp_opt(0, 0).single().unwrap_or(now);
    let markets = (0..u64::from(args.markets)).map(|n| {
        let seed = mix(n);
        let topic = usize::try_from(seed % TOPICS.len() as u64).unwrap_or(0);
        let (category, subjects, predicates) = TOPICS[topic];
        let (subject, predicate) = (pick(subjects, seed >> 8), pick(predicates, seed >> 16));
        let year = 2027 + (seed >> 24) % 3;
        let draft = MarketDraft {
            name: MarketName::parse(&format!("Will {subject} {predicate} by {year}? (#{n})"))?,
            // Words of its own topic only, like real descriptions (a sentence shared by every
            // market would make each of its words match them all: bench Q1/Q2).
            description: MarketDescription::parse(&format!(
                "Resolves YES if {subject} {predicate} before the end of {year}, as {}.",
                SOURCES[topic]
            ))?,
            category: Category::parse(category)?,
            end_date: now + Duration::days(1 + i64::try_from((seed >> 32) % 720).unwrap_or(0)),
        };
        let creator = creators[usize::try_from(seed % creators.len() as u64).unwrap_or(0)];
        let created_at = now - Duration::minutes(i64::try_from(n).unwrap_or(0));
        let mut market = Market::open(
            MarketId::from_uuid(demo_id(2, n)),
            draft,
            creator,
            created_at.max(epoch),
        )?;
        let status = match (seed >> 40) % 10 {
            0 => Some((MarketStatus::Closed, None)),
            1 => Some((
                MarketStatus::Resolved,
                Some(if seed & 1 == 0 {
                    Outcome::Yes
                } else {
                    Outcome::No
                }),
            )),
            2 => Some((MarketStatus::Cancelled, None)),
            _ => None,
        };
        if let Some((status, outcome)) = status {
            market.apply(
                MarketChanges {
                    status: Some(StatusChange { status, outcome }),
                    ..MarketChanges::default()
                },
                created_at.max(epoch),
            )?;
        }
        Ok::<_, anyhow::Error>(market)
    });
    let markets: Vec<Market> = markets.collect::<Result<_, _>>()?;
    let repository = Arc::clone(&deps.markets);
    let inserted = stream::iter(markets)
        .map(|market| {
            let repository = Arc::clone(&repository);
            async move { repository.insert(&market).await.map(|()| market) }
        })
        .buffer_unordered(CONCURRENCY);
    let new_markets = keep_inserted(inserted).await?;

    // Volume: a few positions on some of the new active markets, opened through the use case (one
    // transaction each, like real orders), so that balances and volumes agree.
    let orders: Vec<_> = new_markets
        .iter()
        .filter(|market| market.status == MarketStatus::Active)
        .take(POSITIONED_MARKETS)
        .flat_map(|market| {
            let seed = mix(market.id.as_uuid().as_u128() as u64 ^ 0x5eed);
            let creators = Arc::clone(&creators);
            (0..1 + seed % 4).map(move |k| {
                let seed = mix(seed + k);
                let trader = creators[usize::try_from(seed % creators.len() as u64).unwrap_or(0)];
                let side = if seed & 1 == 0 { Side::Yes } else { Side::No };
                let cents = i64::try_from(100 + (seed >> 8) % 4_900).unwrap_or(100);
                (market.id, trader, side, cents)
            })
        })
        .collect();
    let mut positions = 0;
    let mut results = stream::iter(orders)
        .map(|(market_id, trader, side, cents)| {
            let use_cases = use_cases.clone();
            async move {
                let actor = Actor {
                    user_id: trader,
                    role: Role::User,
                };
                let stake = Stake::new(Amount::from_cents(cents).unwrap_or(Stake::MIN))?;
                match use_cases
                    .open_position(&actor, market_id, PositionOrder { side, stake }, None)
                    .await
                {
                    Ok(_) => Ok(true),
                    // A demo user out of credits simply stops trading.
                    Err(OpenPositionError::Rule(PositionError::InsufficientBalance { .. })) => {
                        Ok(false)
                    }
                    Err(other) => Err(anyhow::Error::from(other)),
                }
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(opened) = results.next().await {
        if opened.context("seeding positions failed")? {
            positions += 1;
        }
    }
    database.close().await.ok();

    println!(
        "seeded {new_users} new user(s), {} new market(s) and {positions} position(s) in {:.1?} \
         (rows that existed were kept)",
        new_markets.len(),
        started.elapsed()
    );
    println!("demo admin:     {ADMIN_EMAIL} / {ADMIN_PASSWORD}");
    println!("demo moderator: moderator@example.com / {USER_PASSWORD}");
    println!("demo users:     user2@example.com ... / {USER_PASSWORD}");
    Ok(())
}

/// The rows actually inserted; an existing row (conflict) is skipped, anything else stops.
async fn keep_inserted<T>(
    results: impl futures_util::Stream<Item = Result<T, RepositoryError>>,
) -> anyhow::Result<Vec<T>> {
    let mut results = std::pin::pin!(results);
    let mut inserted = Vec::new();
    while let Some(result) = results.next().await {
        match result {
            Ok(row) => inserted.push(row),
            Err(RepositoryError::Conflict(_)) => {}
            Err(other) => return Err(other).context("seeding failed"),
        }
    }
    Ok(inserted)
}

/// Counts successful inserts; an existing row (conflict) is skipped, anything else stops.
async fn count_inserted(
    results: impl futures_util::Stream<Item = Result<(), RepositoryError>>,
) -> anyhow::Result<usize> {
    let mut results = std::pin::pin!(results);
    let mut inserted = 0;
    while let Some(result) = results.next().await {
        match result {
            Ok(()) => inserted += 1,
            Err(RepositoryError::Conflict(_)) => {}
            Err(other) => return Err(other).context("seeding failed"),
        }
    }
    Ok(inserted)
}
