//! No N+1: no list endpoint runs more SQL statements for a page of many rows than for a page of
//! one; includes are loaded in one batch. Counted with SeaORM's metric callback on the app's own pools.

use serde_json::json;
use tests::TestApp;

tests::api_tests!(list_endpoints_run_a_constant_number_of_statements);

async fn statements_for(app: &TestApp, path: &str, token: &str) -> u64 {
    app.wait_for_idle_jobs().await;
    // The session check reads the session and its user (2 statements) at most once per
    // `auth.session_check_ttl_ms` (500 ms here): let it expire, so that every count has them.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = app.pools.statement_count();
    let reply = app.get_as(token, path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    app.pools.statement_count() - before
}

async fn list_endpoints_run_a_constant_number_of_statements(app: TestApp) {
    let mut tokens = Vec::new();
    let mut markets = Vec::new();
    for n in 0..6 {
        let (user_id, token) = app.signed_in_user().await;
        for m in 0..2 {
            let market = app
                .create_market(&token, &format!("Market {n}-{m}"), "test")
                .await;
            markets.push(market["id"].as_str().expect("an id").to_owned());
        }
        tokens.push((user_id, token));
    }
    let (trader_id, trader) = tokens[0].clone();
    for market_id in &markets {
        let reply = app
            .post_json_as(
                &trader,
                &format!("/api/v1/markets/{market_id}/positions"),
                &json!({"side": "yes", "amount": "1.00"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let first_market = &markets[0];
    for (small, large) in [
        (
            "/api/v1/markets?limit=1&include=creator".to_owned(),
            "/api/v1/markets?limit=100&include=creator".to_owned(),
        ),
        (
            "/api/v1/markets?limit=1&fields=name".to_owned(),
            "/api/v1/markets?limit=100&fields=name".to_owned(),
        ),
        (
            format!("/api/v1/users/{trader_id}/positions?limit=1&include=market"),
            format!("/api/v1/users/{trader_id}/positions?limit=100&include=market"),
        ),
        (
            format!("/api/v1/markets/{first_market}/positions?limit=1&include=market"),
            format!("/api/v1/markets/{first_market}/positions?limit=100&include=market"),
        ),
    ] {
        let one = statements_for(&app, &small, &trader).await;
        let hundred = statements_for(&app, &large, &trader).await;
        assert!(one > 0, "the counter counts ({small})");
        // A full page of 12 rows runs no more statements than a page of one (a short last page
        // may even skip the COUNT: its total is known from the rows).
        assert!(hundred <= one, "{small}: {one}, {large}: {hundred}");
        assert!(
            one <= 4 + 2,
            "{small} ran {one} statements (2 of them the session check)"
        );
    }
}
