//! Readiness covers every configured dependency: the database always (required), Redis when
//! `REDIS_URL` is set and the job queue's lag (optional: the service works on, so they only
//! degrade it); liveness only says the process is up.

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
        serde_json::json!(["database", "cache", "job_queue"])
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
        serde_json::json!(["database", "job_queue"])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_job_queue_degrades_readiness_without_failing_it() {
    use domain::ports::JobQueue as _;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.body["data"]["status"], "ok", "{}", ready.text);
    // A job due an hour ago that no worker of this service runs (no handler for its kind): the
    // oldest due job has waited longer than jobs.max_lag_secs (300 s).
    let job = domain::NewJob::new(
        domain::JobId::from_uuid(uuid::Uuid::now_v7()),
        domain::JobKind::parse("nobody_runs_this").expect("a kind"),
        "{}",
        chrono::Utc::now(),
    )
    .expect("a job")
    .with_run_at(chrono::Utc::now() - chrono::Duration::hours(1));
    adapter_persistence::SeaJobQueue::new(app.pools.clone())
        .enqueue(&job)
        .await
        .expect("enqueue");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["data"]["status"], "degraded");
    assert_eq!(
        ready.body["data"]["degraded"],
        serde_json::json!(["job_queue"])
    );
    assert_eq!(
        ready.body["data"]["checks"],
        serde_json::json!(["database"])
    );
}
