//! Faults seen from outside: when the database disappears, requests get a 503 in the envelope that
//! says nothing about the database, readiness fails, liveness does not; what the cache holds is
//! still served.

use tests::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_gives_503s_that_leak_nothing() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Before the outage", "test").await;
    assert_eq!(app.get("/health/ready").await.status, 200);

    app.database.destroy().await;

    let cached_path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
    assert_eq!(
        app.get(&cached_path).await.status,
        200,
        "a market the cache holds is still served"
    );
    let uncached_path = format!("/api/v1/markets/{}", uuid::Uuid::now_v7());
    for reply in [
        app.get("/api/v1/markets").await,
        app.get(&uncached_path).await,
        app.get_as(&token, "/api/v1/users/me").await,
        app.get("/health/ready").await,
    ] {
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert_eq!(reply.body["code"], "service_unavailable");
        assert!(
            reply.body["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        let lower = reply.text.to_lowercase();
        for leak in [
            "sql",
            "postgres",
            "relation",
            "database \"",
            "connection",
            "test_",
            "panicked",
        ] {
            assert!(!lower.contains(leak), "{leak:?} leaked: {}", reply.text);
        }
    }
    assert_eq!(app.get("/health/live").await.status, 200);
}
