//! Rate limits over HTTP: one client beyond its limit, the stricter sign-in quota, signed-in users counted apart, two instances sharing Redis, Redis killed under load, and `X-Forwarded-For` honoured only from a trusted proxy.

use std::time::Duration;

use bootstrap::config::Config;
use secrecy::SecretString;
use serde_json::json;
use tests::redis_server::PrivateRedis;
use tests::{Backend, Reply, TestApp, TestDatabase, TestRedis, test_config};

/// `test_config` with rate limits on: `anonymous` per minute for anonymous clients, and `adjust`
/// for the rest.
fn limited(url: &str, anonymous: u32, adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = test_config(url);
    config.rate_limit.enabled = true;
    config.rate_limit.anonymous_per_minute = anonymous;
    adjust(&mut config);
    config
}

async fn spawn(anonymous: u32, adjust: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), |url| {
        limited(url, anonymous, adjust)
    })
    .await
}

fn number(reply: &Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("{name} missing: {reply:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a whole number: {reply:?}"))
}

fn assert_rate_limited(reply: &Reply, limit: u64) {
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.body["code"], "rate_limited", "{}", reply.text);
    assert_eq!(reply.body["success"], false);
    assert!(
        reply.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(reply.header("x-request-id").is_some());
    let retry = number(reply, "retry-after");
    assert!(
        retry >= 1,
        "Retry-After is whole seconds, rounded up: {retry}"
    );
    assert_eq!(number(reply, "ratelimit-limit"), limit);
    assert_eq!(number(reply, "ratelimit-remaining"), 0);
    assert!(number(reply, "ratelimit-reset") >= retry);
}

async fn login(app: &TestApp, password: &str) -> Reply {
    app.post_json(
        "/api/v1/auth/login",
        &json!({"email": "ada@example.com", "password": password}),
    )
    .await
}

/// A request that a proxy at 127.0.0.1 forwarded for `client`.
async fn from(app: &TestApp, client: &str) -> Reply {
    app.send(
        app.client
            .get(app.url("/api/v1/markets"))
            .header("x-forwarded-for", format!("{client}, 127.0.0.1")),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_beyond_its_limit_gets_429_with_retry_after_and_the_headers() {
    let app = spawn(5, |_| {}).await;
    let missing = format!("/api/v1/markets/{}", uuid::Uuid::now_v7());
    for remaining in (1..5).rev() {
        let reply = app.get("/api/v1/markets").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(number(&reply, "ratelimit-limit"), 5);
        assert_eq!(number(&reply, "ratelimit-remaining"), remaining);
        let reset = number(&reply, "ratelimit-reset");
        assert!(
            (1..=60).contains(&reset),
            "seconds until full again: {reset}"
        );
    }
    // An error answer of a limited route carries the headers too.
    let not_found = app.get(&missing).await;
    assert_eq!(not_found.status, 404, "{}", not_found.text);
    assert_eq!(number(&not_found, "ratelimit-remaining"), 0);

    let refused = app.get("/api/v1/markets").await;
    assert_rate_limited(&refused, 5);
    // 5 per minute: one more every 12 s.
    assert!(number(&refused, "retry-after") <= 12);
    let posted = app
        .post_json("/api/v1/markets", &json!({"name": "x"}))
        .await;
    assert_rate_limited(&posted, 5);

    // Health checks and metrics are never limited.
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(reply.header("ratelimit-limit").is_none(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_more_strictly_per_client() {
    let app = spawn(100, |config| config.rate_limit.sign_in_per_minute = 3).await;
    app.register("ada@example.com", "correct horse battery")
        .await;
    for remaining in (0..3).rev() {
        let reply = login(&app, "wrong horse battery").await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(number(&reply, "ratelimit-limit"), 3);
        assert_eq!(number(&reply, "ratelimit-remaining"), remaining);
    }
    let refused = login(&app, "correct horse battery").await;
    assert_rate_limited(&refused, 3);
    assert!(
        number(&refused, "retry-after") <= 20,
        "3 per minute: one more every 20 s"
    );

    // Other routes count against the anonymous quota, untouched.
    let other = app.get("/api/v1/markets").await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(number(&other, "ratelimit-limit"), 100);
    assert_eq!(number(&other, "ratelimit-remaining"), 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_uploads_have_quotas_of_their_own() {
    let app = spawn(100, |config| {
        config.rate_limit.register_per_hour = 2;
        config.rate_limit.uploads_per_hour = 1;
        config.rate_limit.user_per_minute = 100;
    })
    .await;
    let (_, token) = app.signed_in_user().await;
    let register = |n: u32| json!({"email": format!("user{n}@example.com"), "password": "correct horse battery", "name": "U"});
    let second = app.post_json("/api/v1/auth/register", &register(2)).await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(number(&second, "ratelimit-limit"), 2);
    let refused = app.post_json("/api/v1/auth/register", &register(3)).await;
    assert_rate_limited(&refused, 2);
    assert!(
        number(&refused, "retry-after") > 60,
        "2 per hour: one more every 30 minutes"
    );

    let market = app.create_market(&token, "Will it snow?", "weather").await;
    let image = format!(
        "/api/v1/markets/{}/image",
        market["id"].as_str().expect("an id")
    );
    let upload = || {
        app.client
            .post(app.url(&image))
            .bearer_auth(&token)
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x--\r\n")
    };
    let first = app.send(upload()).await;
    assert!(first.status < 500 && first.status != 429, "{}", first.text);
    assert_eq!(number(&first, "ratelimit-limit"), 1);
    assert_rate_limited(&app.send(upload()).await, 1);
    // The user's own quota is another one.
    let me = app.get_as(&token, "/api/v1/users/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(number(&me, "ratelimit-limit"), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_users_are_counted_per_user_and_bad_tokens_as_anonymous() {
    let app = spawn(2, |config| config.rate_limit.user_per_minute = 4).await;
    let (_, first) = app.signed_in_user().await;
    let (_, second) = app.signed_in_user().await;
    for _ in 0..4 {
        let reply = app.get_as(&first, "/api/v1/users/me").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(number(&reply, "ratelimit-limit"), 4);
    }
    assert_rate_limited(&app.get_as(&first, "/api/v1/users/me").await, 4);
    let other_user = app.get_as(&second, "/api/v1/users/me").await;
    assert_eq!(
        other_user.status, 200,
        "another user has a quota of their own"
    );

    // Anonymous from the same address: its own quota. A token that does not verify counts as
    // anonymous (and is still refused by the route).
    assert_eq!(app.get("/api/v1/markets").await.status, 200);
    let forged = app.get_as("not-a-token", "/api/v1/markets").await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    assert_eq!(number(&forged, "ratelimit-limit"), 2);
    assert_rate_limited(&app.get("/api/v1/markets").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_share_the_limit() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let with_redis = |config: &mut Config| {
        config.redis.url = Some(SecretString::from(redis.url().to_owned()));
        config.redis.key_prefix = redis.prefix().to_owned();
        config.cache.redis_command_timeout_ms = 1_000;
    };
    let first = TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), |url| {
        limited(url, 6, with_redis)
    })
    .await;
    let second = TestApp::spawn_with(
        Backend::Sqlite,
        TestDatabase::existing(first.database.url()),
        |url| limited(url, 6, with_redis),
    )
    .await;

    let mut statuses = Vec::new();
    for round in 0..10 {
        let app = if round % 2 == 0 { &first } else { &second };
        statuses.push(app.get("/api/v1/markets").await.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 429, 429, 429, 429],
        "six between the two instances, not six each"
    );
    assert_rate_limited(&second.get("/api/v1/markets").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_requests_are_limited_in_process_and_never_fail() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let url = redis.url();
    let app = spawn(4, |config| {
        config.redis.url = Some(SecretString::from(url));
        config.cache.redis_command_timeout_ms = 200;
        config.cache.breaker_open_ms = 500;
    })
    .await;
    redis.kill();

    let mut statuses = Vec::new();
    for _ in 0..8 {
        let reply = app.get("/api/v1/markets").await;
        assert!(reply.status < 500, "{}", reply.text);
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    let refused = app.get("/api/v1/markets").await;
    assert_rate_limited(&refused, 4);

    // Still limited after the cool-down, when Redis is tried again and still fails.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = app.get("/api/v1/markets").await;
    assert_rate_limited(&later, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    // The test client connects from 127.0.0.1: a trusted proxy here.
    let behind_proxy = spawn(2, |config| {
        config.rate_limit.trusted_proxies = "127.0.0.1".to_owned();
    })
    .await;
    assert_eq!(from(&behind_proxy, "203.0.113.1").await.status, 200);
    assert_eq!(from(&behind_proxy, "203.0.113.1").await.status, 200);
    assert_rate_limited(&from(&behind_proxy, "203.0.113.1").await, 2);
    assert_eq!(
        from(&behind_proxy, "203.0.113.2").await.status,
        200,
        "another client behind the same proxy"
    );

    // Not trusted: the header is the client's word, and the peer address is the client.
    let direct = spawn(2, |_| {}).await;
    assert_eq!(from(&direct, "203.0.113.1").await.status, 200);
    assert_eq!(from(&direct, "203.0.113.2").await.status, 200);
    assert_rate_limited(&from(&direct, "203.0.113.3").await, 2);
}

/// Sign-in attempts are also counted per account, from any IP, before the password is checked:
/// after the quota even the right password is refused for a while; another account is not
/// affected; an unknown address is throttled exactly like a known one (nothing to enumerate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_limited_per_account_whatever_the_password() {
    let app = spawn(10_000, |config| {
        config.rate_limit.sign_in_per_minute = 10_000;
        config.rate_limit.sign_in_per_account_per_hour = 3;
    })
    .await;
    app.register("ada@example.com", "correct horse battery")
        .await;
    app.register("bob@example.com", "correct horse battery")
        .await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("ada@example.com", "wrong horse battery")
                .await
                .status,
            401
        );
        assert_eq!(
            attempt("nobody@example.com", "wrong horse battery")
                .await
                .status,
            401
        );
    }
    let refused = attempt("ada@example.com", "correct horse battery").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["code"], "rate_limited");
    // An hour's quota of 3 comes back one attempt per 20 minutes.
    assert!(number(&refused, "retry-after") > 60, "{refused:?}");
    let unknown = attempt("nobody@example.com", "wrong horse battery").await;
    assert_eq!(
        unknown.status, 429,
        "an unknown address is throttled the same way"
    );
    assert_eq!(
        attempt("ADA@example.com ", "correct horse battery")
            .await
            .status,
        429,
        "the address is normalised before it is counted"
    );
    assert_eq!(
        attempt("bob@example.com", "correct horse battery")
            .await
            .status,
        200,
        "another account is not affected"
    );
}
