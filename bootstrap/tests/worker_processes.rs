//! `server worker` as separate processes on PostgreSQL: one killed with SIGKILL in the middle of a
//! settlement (another finishes it after the lease, paying nothing twice), and two sharing 1,000
//! settlement jobs (each paid once).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adapter_persistence::{
    Database, SeaJobQueue, SeaMarketRepository, SeaPositionRepository, SeaUserRepository,
};
use application::markets::settle_market_job;
use chrono::Utc;
use domain::market::{Category, MarketDescription, MarketDraft, MarketName, Outcome};
use domain::ports::{JobQueue, MarketRepository, PositionRepository, UserRepository};
use domain::{
    Amount, DisplayName, Email, JobId, Market, MarketId, MarketStatus, PasswordHash, Position,
    PositionId, Role, Side, User, UserId,
};
use sea_orm::{ConnectionTrait, Statement};
use tests::TestDatabase;
use uuid::Uuid;

/// Balance every seeded user starts with.
const START: i64 = 1_000_000;

/// A `server worker` child process, killed (SIGKILL) when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    /// Starts `server worker` on `database_url` with short leases and one position per
    /// settlement transaction (so that a kill lands between batches).
    fn start(database_url: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "test")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", "a-test-secret-that-is-at-least-32-bytes-long")
            .env("APP_JOBS__LEASE_SECS", "2")
            .env("APP_JOBS__HEARTBEAT_SECS", "1")
            .env("APP_JOBS__POLL_MS", "20")
            .env("APP_JOBS__SETTLEMENT_BATCH", "1")
            .env("APP_JOBS__CONCURRENCY", "4")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start `server worker`");
        Self(child)
    }

    fn kill(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn postgres() -> Option<(TestDatabase, Database)> {
    let database = TestDatabase::postgres().await?;
    let pools = database.migrated().await;
    Some((database, pools))
}

fn cents(value: i64) -> Amount {
    Amount::from_cents(value).unwrap_or_else(|| panic!("{value} cents"))
}

async fn seed_users(pools: &Database, count: usize) -> Vec<UserId> {
    let users = SeaUserRepository::new(pools.clone());
    let now = Utc::now();
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let id = UserId::from_uuid(Uuid::now_v7());
        users
            .insert(&User {
                id,
                email: Email::parse(&format!("holder{n}@example.com")).expect("an email"),
                name: DisplayName::parse(&format!("Holder {n}")).expect("a name"),
                password_hash: PasswordHash::from_phc(String::new()),
                role: Role::User,
                balance: cents(START),
                disabled: false,
                created_at: now,
                updated_at: now,
            })
            .await
            .expect("insert a user");
        ids.push(id);
    }
    ids
}

/// A market resolved `yes` by `creator` with `stakes` (holder, side, cents) as positions; its
/// volumes match them, as if they had been opened before the resolution.
async fn seed_resolved_market(
    pools: &Database,
    creator: UserId,
    stakes: &[(UserId, Side, i64)],
) -> MarketId {
    let now = Utc::now();
    let mut market = Market::open(
        MarketId::from_uuid(Uuid::now_v7()),
        MarketDraft {
            name: MarketName::parse("Will the worker survive?").expect("a name"),
            description: MarketDescription::default(),
            category: Category::parse("test").expect("a category"),
            end_date: now + chrono::Duration::days(1),
        },
        creator,
        now,
    )
    .expect("a market");
    let volume = |side| {
        stakes
            .iter()
            .filter(|(_, s, _)| *s == side)
            .map(|(_, _, amount)| amount)
            .sum::<i64>()
    };
    market.yes_volume = cents(volume(Side::Yes));
    market.no_volume = cents(volume(Side::No));
    market.status = MarketStatus::Resolved;
    market.outcome = Some(Outcome::Yes);
    SeaMarketRepository::new(pools.clone())
        .insert(&market)
        .await
        .expect("insert a market");
    let positions = SeaPositionRepository::new(pools.clone());
    for &(user_id, side, amount) in stakes {
        positions
            .insert(&Position {
                id: PositionId::from_uuid(Uuid::now_v7()),
                market_id: market.id,
                user_id,
                side,
                amount: cents(amount),
                payout: None,
                created_at: now,
            })
            .await
            .expect("insert a position");
    }
    market.id
}

async fn enqueue_settlement(pools: &Database, market: MarketId) -> JobId {
    let job = settle_market_job(JobId::from_uuid(Uuid::now_v7()), market, Utc::now())
        .expect("a settlement job");
    SeaJobQueue::new(pools.clone())
        .enqueue(&job)
        .await
        .expect("enqueue")
        .id()
}

async fn count(pools: &Database, sql: &str) -> i64 {
    let row = pools
        .writer()
        .query_one_raw(Statement::from_string(
            pools.writer().get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("a count")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a number")
}

/// Every user's balance minus the start balance, and the payouts of their positions: the two
/// must be equal for every user when each position was paid exactly once.
async fn credits_and_payouts(pools: &Database) -> HashMap<Uuid, (i64, i64)> {
    let backend = pools.writer().get_database_backend();
    let rows = pools
        .writer()
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT u.id, u.balance_cents - {START}, \
                 COALESCE((SELECT SUM(p.payout_cents) FROM positions p WHERE p.user_id = u.id), 0)::BIGINT \
                 FROM users u"
            ),
        ))
        .await
        .expect("balances");
    rows.into_iter()
        .map(|row| {
            (
                row.try_get_by_index::<Uuid>(0).expect("an id"),
                (
                    row.try_get_by_index::<i64>(1).expect("a credit"),
                    row.try_get_by_index::<i64>(2).expect("a payout sum"),
                ),
            )
        })
        .collect()
}

/// Waits until `done`; on timeout fails with the state of the job queue.
async fn wait_for(
    pools: &Database,
    what: &str,
    timeout: Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        if Instant::now() >= deadline {
            let rows = pools
                .writer()
                .query_all_raw(Statement::from_string(
                    pools.writer().get_database_backend(),
                        "SELECT CONCAT(state, ' ', kind, ' attempts=', attempts, ' ', last_error), COUNT(*) FROM jobs GROUP BY 1 ORDER BY 2 DESC LIMIT 10".to_owned(),
                ))
                .await
                .expect("the job states");
            let states: Vec<String> = rows
                .iter()
                .map(|row| {
                    format!(
                        "{} x{}",
                        row.try_get_by_index::<String>(0).expect("a state"),
                        row.try_get_by_index::<i64>(1).expect("a count")
                    )
                })
                .collect();
            panic!("timed out waiting for {what}; jobs: {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_whose_worker_is_killed_is_finished_by_another_paying_each_position_once() {
    let Some((database, pools)) = postgres().await else {
        return;
    };
    let holders = seed_users(&pools, 40).await;
    let stakes: Vec<_> = (0..2_000)
        .map(|n| {
            let side = if n % 3 == 0 { Side::No } else { Side::Yes };
            (
                holders[n % holders.len()],
                side,
                100 + i64::try_from(n % 7).unwrap_or(0) * 37,
            )
        })
        .collect();
    let market = seed_resolved_market(&pools, holders[0], &stakes).await;
    let pool: i64 = stakes.iter().map(|(_, _, amount)| amount).sum();
    let job = enqueue_settlement(&pools, market).await;

    let mut first = WorkerProcess::start(database.url());
    wait_for(
        &pools,
        "the first payouts",
        Duration::from_secs(60),
        async || {
            count(
                &pools,
                "SELECT COUNT(*) FROM positions WHERE payout_cents IS NOT NULL",
            )
            .await
                >= 200
        },
    )
    .await;
    first.kill();
    let paid_at_kill = count(
        &pools,
        "SELECT COUNT(*) FROM positions WHERE payout_cents IS NOT NULL",
    )
    .await;
    assert!(
        paid_at_kill < 2_000,
        "the worker finished before it was killed: the test proves nothing (make the market larger)"
    );
    let state = count(
        &pools,
        &format!("SELECT COUNT(*) FROM jobs WHERE id = '{job}' AND state = 'running'"),
    )
    .await;
    assert_eq!(state, 1, "the killed worker's job is still held by it");

    let _second = WorkerProcess::start(database.url());
    wait_for(
        &pools,
        "the settlement to succeed after the lease",
        Duration::from_secs(60),
        async || {
            count(
                &pools,
                &format!("SELECT COUNT(*) FROM jobs WHERE id = '{job}' AND state = 'succeeded'"),
            )
            .await
                == 1
        },
    )
    .await;

    assert_eq!(
        count(
            &pools,
            "SELECT COUNT(*) FROM positions WHERE payout_cents IS NULL"
        )
        .await,
        0,
        "every position is paid"
    );
    let attempts = count(
        &pools,
        &format!("SELECT attempts::BIGINT FROM jobs WHERE id = '{job}'"),
    )
    .await;
    assert_eq!(attempts, 2, "one attempt killed, one that finished");
    for (user, (credited, paid)) in credits_and_payouts(&pools).await {
        assert_eq!(
            credited, paid,
            "user {user} was credited exactly their payouts"
        );
    }
    let paid = count(
        &pools,
        "SELECT COALESCE(SUM(payout_cents), 0)::BIGINT FROM positions",
    )
    .await;
    let winners = count(&pools, "SELECT COUNT(*) FROM positions WHERE side = 'yes'").await;
    assert!(paid <= pool, "never more than the pool ({paid} > {pool})");
    assert!(
        pool - paid < winners,
        "only rounding (under a cent per winner) stays with the house: {pool} - {paid}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_a_thousand_settlements_and_pay_each_once() {
    let Some((database, pools)) = postgres().await else {
        return;
    };
    let holders = seed_users(&pools, 50).await;
    for n in 0..1_000 {
        let yes = holders[n % holders.len()];
        let no = holders[(n * 7 + 3) % holders.len()];
        let market =
            seed_resolved_market(&pools, yes, &[(yes, Side::Yes, 300), (no, Side::No, 200)]).await;
        enqueue_settlement(&pools, market).await;
    }

    assert_eq!(count(&pools, "SELECT COUNT(*) FROM jobs").await, 1_000);
    let workers = [
        WorkerProcess::start(database.url()),
        WorkerProcess::start(database.url()),
    ];
    wait_for(
        &pools,
        "1,000 settlements",
        Duration::from_secs(40),
        async || {
            count(
                &pools,
                "SELECT COUNT(*) FROM jobs WHERE kind = 'settle_market' AND state = 'succeeded'",
            )
            .await
                == 1_000
        },
    )
    .await;
    drop(workers);

    assert_eq!(
        count(
            &pools,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'settle_market' AND attempts <> 1"
        )
        .await,
        0,
        "no job ran twice"
    );
    assert_eq!(
        count(
            &pools,
            "SELECT COUNT(DISTINCT worker) FROM jobs WHERE kind = 'settle_market'"
        )
        .await,
        2,
        "both processes worked"
    );
    assert_eq!(
        count(
            &pools,
            "SELECT COUNT(*) FROM positions WHERE payout_cents IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pools, "SELECT SUM(payout_cents)::BIGINT FROM positions").await,
        1_000 * 500,
        "each market paid its whole pool to its winner, once"
    );
    for (user, (credited, paid)) in credits_and_payouts(&pools).await {
        assert_eq!(
            credited, paid,
            "user {user} was credited exactly their payouts"
        );
    }
}
