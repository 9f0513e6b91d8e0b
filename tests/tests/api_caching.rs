//! Cached market reads seen from outside: hits run no SQL, every committed write is visible on the
//! next read (on this instance and on another sharing Redis), HTTP revalidation, caching off, and
//! reads served from the database with no 5xx while Redis is paused or stopped.

use std::time::{Duration, Instant};

use bootstrap::config::Config;
use secrecy::SecretString;
use serde_json::{Value, json};
use tests::fault_proxy::FaultProxy;
use tests::{Backend, TestApp, TestDatabase, TestRedis, test_config};

tests::api_tests!(
    a_cached_read_runs_no_sql_and_every_write_is_seen_by_the_next_read,
    single_markets_revalidate_with_etags,
);

fn market_path(market: &Value) -> String {
    format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"))
}

/// Statements the app ran for one `GET path`, and the reply's body.
async fn read(app: &TestApp, path: &str) -> (u64, Value) {
    app.wait_for_idle_jobs().await;
    let before = app.pools.statement_count();
    let reply = app.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    (app.pools.statement_count() - before, reply.body)
}

async fn a_cached_read_runs_no_sql_and_every_write_is_seen_by_the_next_read(app: TestApp) {
    let (_, token) = app.signed_in_with_role(domain::Role::Moderator).await;
    let market = app.create_market(&token, "Cached market", "test").await;
    let path = market_path(&market);
    let list = "/api/v1/markets?sort=-volume&limit=5";

    let (_, first) = read(&app, &path).await;
    let (statements, again) = read(&app, &path).await;
    assert_eq!(statements, 0, "a hit runs no SQL");
    assert_eq!(again, first);
    read(&app, list).await;
    let (statements, _) = read(&app, list).await;
    assert_eq!(statements, 0, "a cached page runs no SQL");

    let patched = app
        .send(
            app.client
                .patch(app.url(&path))
                .bearer_auth(&token)
                .json(&json!({"name": "Renamed while cached"})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let (statements, after_patch) = read(&app, &path).await;
    assert_eq!(after_patch["data"]["name"], "Renamed while cached");
    assert_eq!(statements, 0, "the new version was written through");
    let (_, page) = read(&app, list).await;
    assert!(
        page["data"]
            .as_array()
            .expect("a page")
            .iter()
            .any(|m| m["name"] == "Renamed while cached"),
        "the write retired the cached page: {page}"
    );

    let (_, trader) = app.signed_in_user().await;
    let opened = app
        .post_json_as(
            &trader,
            &format!("{path}/positions"),
            &json!({"side": "yes", "amount": "12.34"}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.text);
    let (_, after_position) = read(&app, &path).await;
    assert_eq!(after_position["data"]["yes_volume"], "12.34");
    let (_, page) = read(&app, list).await;
    assert_eq!(page["data"][0]["yes_volume"], "12.34", "{page}");

    let other = app
        .create_market(&token, "Deleted while cached", "test")
        .await;
    let other_path = market_path(&other);
    read(&app, &other_path).await;
    let deleted = app
        .send(app.client.delete(app.url(&other_path)).bearer_auth(&token))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.wait_for_idle_jobs().await;
    let before = app.pools.statement_count();
    assert_eq!(app.get(&other_path).await.status, 404);
    assert_eq!(app.get(&other_path).await.status, 404);
    assert_eq!(
        app.pools.statement_count(),
        before,
        "the tombstone answers 404 without SQL"
    );
}

async fn single_markets_revalidate_with_etags(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Revalidated", "test").await;
    let path = market_path(&market);
    let reply = app.get(&path).await;
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let etag = reply.header("etag").expect("an ETag").to_owned();
    assert_eq!(etag, format!("\"{}\"", market["version"]));

    let not_modified = app
        .send(
            app.client
                .get(app.url(&path))
                .header("If-None-Match", &etag),
        )
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert!(not_modified.text.is_empty());

    let (_, trader) = app.signed_in_user().await;
    let opened = app
        .post_json_as(
            &trader,
            &format!("{path}/positions"),
            &json!({"side": "no", "amount": "1.00"}),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.text);
    let changed = app
        .send(
            app.client
                .get(app.url(&path))
                .header("If-None-Match", &etag),
        )
        .await;
    assert_eq!(changed.status, 200, "the position changed the market");
    assert_ne!(changed.header("etag"), Some(etag.as_str()));

    // Everything else must not be kept by anyone in between: private, or changed by every write.
    let missing = app
        .get(&format!("/api/v1/markets/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    let me = app.get_as(&token, "/api/v1/users/me").await;
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let page = app.get("/api/v1/markets").await;
    assert_eq!(page.header("cache-control"), Some("no-cache"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_caching_off_every_read_goes_to_the_database() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), |url| {
        let mut config = test_config(url);
        config.cache.enabled = false;
        config
    })
    .await;
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Never cached", "test").await;
    let path = market_path(&market);
    for _ in 0..3 {
        let (statements, body) = read(&app, &path).await;
        assert!(statements >= 1, "caching is off");
        assert_eq!(body["data"]["name"], "Never cached");
    }
}

/// The configuration of an instance on `url` whose cache is Redis at `redis_url` under `redis`'s
/// prefix.
fn with_redis(url: &str, redis: &TestRedis, redis_url: &str, command_timeout_ms: u64) -> Config {
    let mut config = test_config(url);
    config.redis.url = Some(SecretString::from(redis_url.to_owned()));
    config.redis.key_prefix = redis.prefix().to_owned();
    config.cache.redis_command_timeout_ms = command_timeout_ms;
    config.cache.breaker_open_ms = 200;
    config
}

/// Two instances on one PostgreSQL database and one Redis; `None` when a service is missing.
async fn two_instances(
    redis_url: impl Fn(&TestRedis) -> String,
    command_timeout_ms: u64,
) -> Option<(TestRedis, TestApp, TestApp)> {
    let redis = TestRedis::start().await?;
    let database = TestDatabase::postgres().await?;
    let url = database.url().to_owned();
    let target = redis_url(&redis);
    let first = TestApp::spawn_with(Backend::Postgres, database, |url| {
        with_redis(url, &redis, &target, command_timeout_ms)
    })
    .await;
    let second = TestApp::spawn_with(Backend::Postgres, TestDatabase::existing(&url), |url| {
        with_redis(url, &redis, &target, command_timeout_ms)
    })
    .await;
    Some((redis, first, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_is_seen_on_the_next_read_through_the_other() {
    let Some((_redis, first, second)) = two_instances(|redis| redis.url().to_owned(), 1_000).await
    else {
        return;
    };
    let (_, token) = first.signed_in_user().await;
    let market = first.create_market(&token, "Shared", "test").await;
    let path = market_path(&market);
    let list = "/api/v1/markets?status=active&sort=-volume&limit=20";
    for round in 1..=20 {
        // Both instances hold the market and the page in their in-process tier.
        for app in [&first, &second] {
            read(app, &path).await;
            read(app, &path).await;
            read(app, list).await;
        }
        let (writer, reader) = if round % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let opened = writer
            .post_json_as(
                &token,
                &format!("{path}/positions"),
                &json!({"side": "yes", "amount": "1.00"}),
            )
            .await;
        assert_eq!(opened.status, 201, "{}", opened.text);
        let expected = format!("{round}.00");
        let (_, seen) = read(reader, &path).await;
        assert_eq!(
            seen["data"]["yes_volume"],
            expected.as_str(),
            "round {round}"
        );
        let (_, page) = read(reader, list).await;
        assert_eq!(
            page["data"][0]["yes_volume"],
            expected.as_str(),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reads_on_a_cold_key_loads_it_at_most_once_per_instance() {
    let Some((redis, first, second)) = two_instances(|redis| redis.url().to_owned(), 1_000).await
    else {
        return;
    };
    let (_, token) = first.signed_in_user().await;
    let market = first.create_market(&token, "Cold", "test").await;
    let path = market_path(&market);
    // The create wrote the market through: a new cache epoch voids every entry in Redis and
    // clears every instance's memory tier (published), so that the key is cold everywhere.
    redis.cache().bump_epoch().await.expect("Redis answers");
    tokio::time::sleep(Duration::from_millis(100)).await;

    first.wait_for_idle_jobs().await;
    second.wait_for_idle_jobs().await;
    let before = first.pools.statement_count() + second.pools.statement_count();
    let mut readers = Vec::new();
    for n in 0..64 {
        let app = if n % 2 == 0 { &first } else { &second };
        let request = app.client.get(app.url(&path));
        readers.push(tokio::spawn(async move {
            request.send().await.expect("sent").status().as_u16()
        }));
    }
    for reader in readers {
        assert_eq!(reader.await.expect("a reader"), 200);
    }
    let loads = first.pools.statement_count() + second.pools.statement_count() - before;
    assert!(
        (1..=2).contains(&loads),
        "64 reads over two instances ran {loads} statements"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_served_from_the_database_while_redis_is_paused_or_stopped() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let upstream = redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = FaultProxy::start(&upstream).await;
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let app = TestApp::spawn_with(Backend::Postgres, database, |url| {
        with_redis(url, &redis, &proxy.redis_url(), 50)
    })
    .await;
    let (_, token) = app.signed_in_with_role(domain::Role::Moderator).await;
    let market = app.create_market(&token, "Before the outage", "test").await;
    let path = market_path(&market);
    read(&app, &path).await;
    app.wait_for_idle_jobs().await;
    let (statements, _) = read(&app, &path).await;
    assert_eq!(statements, 0, "cached before the outage");

    for outage in ["paused", "stopped"] {
        if outage == "paused" {
            proxy.pause();
        } else {
            proxy.cut();
        }
        let mut slowest = Duration::ZERO;
        for _ in 0..30 {
            let started = Instant::now();
            let reply = app.get(&path).await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(reply.status, 200, "Redis {outage}: {}", reply.text);
            let page = app.get("/api/v1/markets?limit=5").await;
            assert_eq!(page.status, 200, "Redis {outage}: {}", page.text);
        }
        assert!(
            slowest < Duration::from_millis(800),
            "Redis {outage}: a read took {slowest:?}"
        );
        // A write while Redis is unreachable: its write-through is lost.
        let patched = app
            .send(
                app.client
                    .patch(app.url(&path))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("Renamed while Redis is {outage}")})),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.text);
        if outage == "paused" {
            proxy.resume();
        } else {
            proxy.restore();
        }
        // Caching resumes by itself, and the version cached before the outage is never served.
        let expected = format!("Renamed while Redis is {outage}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (statements, body) = read(&app, &path).await;
            assert_eq!(body["data"]["name"], expected.as_str(), "Redis {outage}");
            if statements == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "caching did not resume after Redis was {outage}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_and_writers_on_two_instances_leave_no_stale_value() {
    let Some((_redis, first, second)) = two_instances(|redis| redis.url().to_owned(), 1_000).await
    else {
        return;
    };
    let first = std::sync::Arc::new(first);
    let second = std::sync::Arc::new(second);
    let (_, token) = first.signed_in_user().await;
    let market = first.create_market(&token, "Contended", "test").await;
    let path = market_path(&market);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));

    // Readers: each reads one instance in a loop; the versions it sees never go backwards.
    let mut readers = Vec::new();
    for n in 0..4 {
        let app = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (path, writing) = (path.clone(), writing.clone());
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            let mut reads = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                let reply = app.get(&path).await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                let version = reply.body["data"]["version"].as_i64().expect("a version");
                assert!(version >= last, "saw version {version} after {last}");
                last = version;
                reads += 1;
            }
            reads
        }));
    }
    // Writers: 40 positions of 1.00, spread over both instances.
    let mut writers = Vec::new();
    for n in 0..4 {
        let app = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (path, token) = (path.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            for _ in 0..10 {
                let opened = app
                    .post_json_as(
                        &token,
                        &format!("{path}/positions"),
                        &json!({"side": "no", "amount": "1.00"}),
                    )
                    .await;
                assert_eq!(opened.status, 201, "{}", opened.text);
            }
        }));
    }
    for writer in writers {
        writer.await.expect("a writer");
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.expect("a reader") > 0);
    }
    for app in [&first, &second] {
        let (_, body) = read(app, &path).await;
        assert_eq!(body["data"]["no_volume"], "40.00", "{body}");
        assert_eq!(body["data"]["version"], 41);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_never_fails_a_read_and_caching_resumes() {
    let Some(mut redis) = tests::redis_server::PrivateRedis::start().await else {
        return;
    };
    let Some(prefix) = TestRedis::start().await else {
        return;
    };
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let app = std::sync::Arc::new(
        TestApp::spawn_with(Backend::Postgres, database, |url| {
            with_redis(url, &prefix, &redis.url(), 50)
        })
        .await,
    );
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Through a crash", "test").await;
    let path = market_path(&market);
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (app, path, reading) = (app.clone(), path.clone(), reading.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0_u32;
            while reading.load(std::sync::atomic::Ordering::SeqCst) {
                let reply = app.get(&path).await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                let page = app.get("/api/v1/markets?limit=5").await;
                assert_eq!(page.status, 200, "{}", page.text);
                reads += 1;
            }
            reads
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reading.store(false, std::sync::atomic::Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.expect("a reader") > 0);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (statements, body) = read(&app, &path).await;
        assert_eq!(body["data"]["name"], "Through a crash");
        if statements == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "caching did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
