//! Readiness covers every configured dependency: the database always (required), Redis when
//! `REDIS_URL` is set (optional: reads fall back to the database, so it only degrades);
//! liveness only says the process is up.

use secrecy::SecretString;
use tests::{Backend, TestApp, TestDatabase, test_config};

async fn app_with_redis(url: String) -> Option<TestApp> {
    let database = TestDatabase::of(Backend::Sqlite).await?;
    Some(
        TestApp::spawn_with(Backend::Sqlite, database, move |database_url| {
            let mut config = test_config(database_url);
            config.redis.url = Some(SecretString::from(url));
            config
        })
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_redis_when_it_is_configured() {
    let Some(redis) = tests::TestRedis::start().await else {
        return;
    };
    let Some(app) = app_with_redis(redis.url().to_owned()).await else {
        return;
    };
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(
        ready.body["data"]["checks"],
        serde_json::json!(["database", "cache"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_the_service_without_making_it_unready() {
    let Some(app) = app_with_redis("redis://127.0.0.1:1".to_owned()).await else {
        return;
    };
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["data"]["status"], "degraded");
    assert_eq!(
        ready.body["data"]["checks"],
        serde_json::json!(["database"])
    );
    assert_eq!(ready.body["data"]["degraded"], serde_json::json!(["cache"]));
    assert!(
        !ready.text.contains("127.0.0.1"),
        "no internals: {}",
        ready.text
    );
    assert_eq!(app.get("/health/live").await.status, 200);
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Without Redis", "test").await;
    let path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
    for _ in 0..3 {
        assert_eq!(app.get(&path).await.status, 200, "reads go to the database");
        assert_eq!(app.get("/api/v1/markets").await.status, 200);
    }
}
