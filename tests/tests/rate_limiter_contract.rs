//! The rate-limiter port's contract, against the in-process limiter, the Redis limiter and the fallback between them; then what only Redis and the fallback promise: limits shared by two instances, and limits kept (in process) while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use adapter_ratelimit::{
    FallbackRateLimiter, InProcessRateLimiter, RedisRateLimiter, RedisRateLimiterConfig,
};
use domain::ports::{Quota, RateDecision, RateLimiter};
use tests::TestRedis;
use tests::redis_server::PrivateRedis;

/// Generous timeouts: the contract is about what the limiter says, not how fast.
fn redis_config(prefix: &str) -> RedisRateLimiterConfig {
    RedisRateLimiterConfig {
        key_prefix: prefix.to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
    }
}

fn redis_limiter(url: &str, prefix: &str) -> RedisRateLimiter {
    RedisRateLimiter::connect(url, redis_config(prefix)).expect("a valid Redis URL")
}

fn quota(limit: u32, period: Duration) -> Quota {
    Quota::new(limit, period).expect("a valid quota")
}

async fn check(limiter: &dyn RateLimiter, key: &str, quota: Quota) -> RateDecision {
    limiter
        .check(key, quota)
        .await
        .expect("the limiter decides")
}

/// How many of `n` checks in a row are allowed.
async fn allowed_of(limiter: &dyn RateLimiter, key: &str, quota: Quota, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        if check(limiter, key, quota).await.allowed {
            allowed += 1;
        }
    }
    allowed
}

/// Generates one test per limiter for each listed `async fn(Arc<dyn RateLimiter>)`:
/// `in_process::<name>`, `redis::<name>` and `fallback::<name>` (Redis with the in-process
/// fallback; the last two skipped loudly when Redis is unavailable).
macro_rules! limiter_tests {
    ($($test:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(std::sync::Arc::new(adapter_ratelimit::InProcessRateLimiter::default())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    // `redis` deletes the test's keys when the test ends.
                    if let Some(redis) = tests::TestRedis::start().await {
                        let limiter = super::redis_limiter(redis.url(), redis.prefix());
                        super::$test(std::sync::Arc::new(limiter)).await;
                    }
                }
            )*
        }
        mod fallback {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(redis) = tests::TestRedis::start().await {
                        let limiter = adapter_ratelimit::FallbackRateLimiter::new(
                            std::sync::Arc::new(super::redis_limiter(redis.url(), redis.prefix())),
                            std::sync::Arc::new(adapter_ratelimit::InProcessRateLimiter::default()),
                            std::time::Duration::from_millis(200),
                        );
                        super::$test(std::sync::Arc::new(limiter)).await;
                    }
                }
            )*
        }
    };
}

limiter_tests!(
    it_allows_the_limit_at_once_then_refuses_with_a_retry_after,
    capacity_comes_back_over_time,
    keys_are_independent,
    concurrent_checks_never_get_more_than_the_limit,
);

async fn it_allows_the_limit_at_once_then_refuses_with_a_retry_after(
    limiter: Arc<dyn RateLimiter>,
) {
    let quota = quota(5, Duration::from_secs(10));
    for expected_remaining in (0..5).rev() {
        let decision = check(&*limiter, "burst", quota).await;
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.limit, 5);
        assert_eq!(decision.remaining, expected_remaining, "{decision:?}");
        assert_eq!(decision.retry_after, None);
        assert!(
            decision.reset_after <= Duration::from_secs(10),
            "{decision:?}"
        );
    }
    let refused = check(&*limiter, "burst", quota).await;
    assert!(!refused.allowed, "{refused:?}");
    assert_eq!((refused.limit, refused.remaining), (5, 0));
    let retry = refused.retry_after.expect("a refusal says when to retry");
    // One request comes back every 2 s; a little of it has passed already.
    assert!(
        retry > Duration::from_millis(1_000) && retry <= Duration::from_secs(2),
        "{refused:?}"
    );
    assert!(
        refused.reset_after > Duration::from_secs(9)
            && refused.reset_after <= Duration::from_secs(10),
        "{refused:?}"
    );
    let again = check(&*limiter, "burst", quota).await;
    assert!(
        !again.allowed,
        "a refused request is not counted, but does not pass either"
    );
    assert!(again.retry_after <= refused.retry_after, "{again:?}");
}

async fn capacity_comes_back_over_time(limiter: Arc<dyn RateLimiter>) {
    let quota = quota(2, Duration::from_secs(1));
    assert_eq!(allowed_of(&*limiter, "refill", quota, 2).await, 2);
    let refused = check(&*limiter, "refill", quota).await;
    assert!(!refused.allowed);
    let retry = refused.retry_after.expect("a retry_after");
    assert!(retry <= Duration::from_millis(500), "{refused:?}");
    tokio::time::sleep(retry + Duration::from_millis(30)).await;
    assert!(
        check(&*limiter, "refill", quota).await.allowed,
        "one request's worth came back after retry_after"
    );
    assert!(
        !check(&*limiter, "refill", quota).await.allowed,
        "and only one"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        allowed_of(&*limiter, "refill", quota, 3).await,
        2,
        "a rested key has its whole limit again, no more"
    );
}

async fn keys_are_independent(limiter: Arc<dyn RateLimiter>) {
    let quota = quota(3, Duration::from_secs(60));
    assert_eq!(allowed_of(&*limiter, "ip:203.0.113.1", quota, 5).await, 3);
    let other = check(&*limiter, "ip:203.0.113.2", quota).await;
    assert!(other.allowed);
    assert_eq!(other.remaining, 2, "another key starts full");
    assert!(!check(&*limiter, "ip:203.0.113.1", quota).await.allowed);
}

async fn concurrent_checks_never_get_more_than_the_limit(limiter: Arc<dyn RateLimiter>) {
    let quota = quota(10, Duration::from_secs(60));
    let checks = (0..40).map(|_| {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.check("storm", quota).await })
    });
    let mut allowed = 0;
    for handle in checks {
        if handle
            .await
            .expect("the task ends")
            .expect("a decision")
            .allowed
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_share_the_limit() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    // Two pools, as two processes would have.
    let first = redis_limiter(redis.url(), redis.prefix());
    let second = redis_limiter(redis.url(), redis.prefix());
    let quota = quota(6, Duration::from_secs(60));
    let mut allowed = 0;
    for round in 0..6 {
        let limiter: &dyn RateLimiter = if round % 2 == 0 { &first } else { &second };
        allowed += allowed_of(limiter, "shared", quota, 2).await;
    }
    assert_eq!(allowed, 6, "six between them, not six each");
    let elsewhere = redis_limiter(redis.url(), &format!("{}other:", redis.prefix()));
    assert!(
        check(&elsewhere, "shared", quota).await.allowed,
        "another key prefix is another service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_fallback_limits_in_process_then_shares_again() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let primary = RedisRateLimiter::connect(
        &redis.url(),
        RedisRateLimiterConfig {
            key_prefix: "fallback:".to_owned(),
            pool_size: 2,
            connect_timeout: Duration::from_millis(300),
            command_timeout: Duration::from_millis(300),
        },
    )
    .expect("a valid URL");
    let limiter = FallbackRateLimiter::new(
        Arc::new(primary.clone()),
        Arc::new(InProcessRateLimiter::default()),
        Duration::from_millis(300),
    );
    let quota = quota(3, Duration::from_secs(60));
    assert!(
        check(&primary, "warm", quota).await.allowed,
        "Redis answers"
    );
    redis.kill();

    let started = std::time::Instant::now();
    assert_eq!(
        allowed_of(&limiter, "down", quota, 5).await,
        3,
        "still limited"
    );
    assert!(limiter.is_degraded());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "Redis is skipped after its first failure: {:?}",
        started.elapsed()
    );
    let refused = check(&limiter, "down", quota).await;
    assert!(!refused.allowed);
    assert!(
        refused
            .retry_after
            .is_some_and(|retry| retry > Duration::ZERO)
    );
    assert!(
        primary.check("down", quota).await.is_err(),
        "Redis alone cannot decide"
    );

    redis.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while limiter.is_degraded() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fallback never tried Redis again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = limiter.check("probe", quota).await;
    }
    // Back on Redis (restarted empty): the key's count starts again there.
    let shared = check(&limiter, "after", quota).await;
    assert!(shared.allowed);
    assert_eq!(shared.remaining, 2);
    assert_eq!(
        check(&primary, "after", quota).await.remaining,
        1,
        "the fallback counted in Redis again"
    );
}

/// Quotas of 32 or more per period lease cells in batches: far fewer Redis calls than checks,
/// the same decisions for the requests that fit, and never more than the quota across instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_quotas_lease_cells_in_batches_and_never_exceed_the_quota_between_instances() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let first = redis_limiter(redis.url(), redis.prefix());
    let second = redis_limiter(redis.url(), redis.prefix());
    // 640 per hour (leases of 40 cells): a cell comes back every 5.6 s, so the run sees at most
    // `refilled` of them.
    let large = quota(640, Duration::from_secs(3_600));
    let started = std::time::Instant::now();
    let mut allowed = 0;
    let mut remaining = Vec::new();
    for round in 0..1_000 {
        let limiter = if round % 2 == 0 { &first } else { &second };
        let decision = check(limiter, "leased", large).await;
        if decision.allowed {
            allowed += 1;
            remaining.push(decision.remaining);
        } else {
            assert!(decision.retry_after.is_some(), "{decision:?}");
        }
    }
    let refilled = started.elapsed().as_millis() / 5_625 + 1;
    assert!(
        allowed <= 640 + refilled,
        "never more than the quota: {allowed}"
    );
    assert!(
        allowed >= 640 - 2 * 40,
        "at most a lease per instance unused: {allowed}"
    );
    assert!(
        remaining.windows(2).all(|pair| pair[1] <= pair[0] + 40),
        "remaining counts down within a lease"
    );
    let trips = first.round_trips() + second.round_trips();
    assert!(
        trips < 1_000 / 10,
        "{trips} Redis calls for 1,000 checks: leases serve the allowed ones, and a refusal holds until its retry time"
    );

    // A small quota leases one cell at a time: one Redis call per allowed check; the refusals
    // after it wait for the retry time without asking again.
    let small = quota(8, Duration::from_secs(60));
    let before = first.round_trips();
    assert_eq!(allowed_of(&first, "small", small, 20).await, 8);
    assert_eq!(first.round_trips() - before, 9);
}
