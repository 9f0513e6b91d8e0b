//! Invariants under concurrency, through HTTP: parallel position storms never overdraw a balance
//! and keep every market's volume equal to the sum of its positions; concurrent changes of a
//! market are never lost.

use serde_json::{Value, json};
use tests::TestApp;

tests::api_tests!(
    fifty_parallel_orders_never_overdraw_the_balance,
    a_markets_volume_always_equals_the_sum_of_its_positions,
    two_concurrent_changes_of_a_market_are_both_kept,
    two_concurrent_conditional_changes_let_exactly_one_win,
);

fn cents(text: &Value) -> i64 {
    let text = text.as_str().expect("an amount");
    let (whole, fraction) = text.split_once('.').expect("two places");
    whole.parse::<i64>().expect("digits") * 100 + fraction.parse::<i64>().expect("digits")
}

async fn all_positions(app: &TestApp, market_id: &str) -> Vec<Value> {
    let mut positions = Vec::new();
    for page in 1.. {
        let reply = app
            .get(&format!(
                "/api/v1/markets/{market_id}/positions?limit=100&page={page}"
            ))
            .await;
        let items = reply.body["data"].as_array().expect("a list").clone();
        if items.is_empty() {
            break;
        }
        positions.extend(items);
    }
    positions
}

async fn fifty_parallel_orders_never_overdraw_the_balance(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, trader) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Storm", "test").await;
    let market_id = market["id"].as_str().expect("an id").to_owned();
    // 50 orders of 30.00 against a balance of 1000.00: at most 33 fit.
    let orders = (0..50).map(|i| {
        app.send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&trader)
                .json(&json!({"side": if i % 2 == 0 { "yes" } else { "no" }, "amount": "30.00"})),
        )
    });
    let replies = futures_util::future::join_all(orders).await;
    let accepted = replies.iter().filter(|r| r.status == 201).count();
    for reply in &replies {
        assert!(
            reply.status == 201
                || (reply.status == 409 && reply.body["code"] == "insufficient_balance"),
            "{}: {}",
            reply.status,
            reply.text
        );
    }
    assert_eq!(accepted, 33, "every order that fits is accepted, none more");
    let me = app.get_as(&trader, "/api/v1/users/me").await;
    assert_eq!(me.body["data"]["balance"], "10.00");
    let positions = all_positions(&app, &market_id).await;
    assert_eq!(positions.len(), 33);
    let after = app.get(&format!("/api/v1/markets/{market_id}")).await;
    assert_eq!(cents(&after.body["data"]["volume"]), 33 * 3_000);
}

async fn a_markets_volume_always_equals_the_sum_of_its_positions(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Ledger", "test").await;
    let market_id = market["id"].as_str().expect("an id").to_owned();
    let mut traders = Vec::new();
    for _ in 0..5 {
        traders.push(app.signed_in_user().await.1);
    }
    let orders = (0..40).map(|i| {
        let token = traders[i % traders.len()].clone();
        let amount = format!("{}.{:02}", 1 + i % 7, (i * 13) % 100);
        app.send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(token)
                .json(&json!({"side": if i % 3 == 0 { "no" } else { "yes" }, "amount": amount})),
        )
    });
    let replies = futures_util::future::join_all(orders).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "all fit the balances"
    );
    let positions = all_positions(&app, &market_id).await;
    assert_eq!(positions.len(), 40);
    let sum = |side: &str| -> i64 {
        positions
            .iter()
            .filter(|p| p["side"] == side)
            .map(|p| cents(&p["amount"]))
            .sum()
    };
    let after = app.get(&format!("/api/v1/markets/{market_id}")).await.body["data"].clone();
    assert_eq!(cents(&after["yes_volume"]), sum("yes"));
    assert_eq!(cents(&after["no_volume"]), sum("no"));
    assert_eq!(
        after["version"], 41,
        "every position bumped the version once"
    );
}

async fn two_concurrent_changes_of_a_market_are_both_kept(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Edited twice", "test").await;
    let path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
    let patch = |body: Value| {
        app.send(
            app.client
                .patch(app.url(&path))
                .bearer_auth(&owner)
                .json(&body),
        )
    };
    let (a, b) = tokio::join!(
        patch(json!({"name": "Edited twice, renamed"})),
        patch(json!({"description": "and described"}))
    );
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);
    let after = app.get(&path).await.body["data"].clone();
    assert_eq!(after["name"], "Edited twice, renamed");
    assert_eq!(after["description"], "and described");
    assert_eq!(after["version"], 3);
}

async fn two_concurrent_conditional_changes_let_exactly_one_win(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let market = app.create_market(&owner, "If-Match race", "test").await;
    let path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
    let patch = |name: &'static str| {
        app.send(
            app.client
                .patch(app.url(&path))
                .bearer_auth(&owner)
                .header("if-match", "\"1\"")
                .json(&json!({"name": name})),
        )
    };
    let (a, b) = tokio::join!(patch("Winner A"), patch("Winner B"));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{} / {}", a.text, b.text);
    let after = app.get(&path).await.body["data"].clone();
    assert_eq!(after["version"], 2);
    let winner = if a.status == 200 {
        "Winner A"
    } else {
        "Winner B"
    };
    assert_eq!(after["name"], winner);
}
