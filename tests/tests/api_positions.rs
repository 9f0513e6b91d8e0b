//! Black-box tests of positions and balances: the unit of work, bounds, the lifecycle, idempotent
//! POSTs and batched includes, on SQLite and PostgreSQL.

use domain::Role;
use serde_json::{Value, json};
use tests::{Reply, TestApp};

tests::api_tests!(
    opening_a_position_moves_credits_from_the_balance_to_the_market,
    a_stake_above_the_balance_is_refused_and_changes_nothing,
    stakes_and_sides_are_bounded,
    closed_resolved_and_cancelled_markets_take_no_positions,
    a_users_positions_are_for_that_user_and_admins_only,
    a_market_and_its_initial_position_are_created_together_or_not_at_all,
    a_market_with_positions_cannot_be_deleted,
    the_same_idempotency_key_and_body_replays_the_first_response,
    the_same_idempotency_key_with_another_body_is_refused,
    concurrent_duplicates_with_one_key_open_one_position,
    includes_load_related_rows,
);

async fn open(app: &TestApp, token: &str, market_id: &str, side: &str, amount: &str) -> Reply {
    app.post_json_as(
        token,
        &format!("/api/v1/markets/{market_id}/positions"),
        &json!({"side": side, "amount": amount}),
    )
    .await
}

async fn balance(app: &TestApp, token: &str) -> String {
    app.get_as(token, "/api/v1/users/me").await.body["data"]["balance"]
        .as_str()
        .expect("a balance")
        .to_owned()
}

async fn market(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/markets/{id}")).await.body["data"].clone()
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

async fn opening_a_position_moves_credits_from_the_balance_to_the_market(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (trader_id, trader) = app.signed_in_user().await;
    let created = app.create_market(&owner, "Will it snow?", "weather").await;
    let market_id = id(&created);

    let reply = open(&app, &trader, &market_id, "yes", "25.50").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let position = &reply.body["data"];
    assert_eq!(position["side"], "yes");
    assert_eq!(position["amount"], "25.50");
    assert_eq!(position["user_id"], trader_id.as_str());
    assert_eq!(position["market_id"], market_id.as_str());
    assert!(reply.header("location").is_some());
    open(&app, &trader, &market_id, "no", "10").await;

    assert_eq!(balance(&app, &trader).await, "964.50");
    let after = market(&app, &market_id).await;
    assert_eq!(after["yes_volume"], "25.50");
    assert_eq!(after["no_volume"], "10.00");
    assert_eq!(after["volume"], "35.50");
    assert_eq!(after["version"], 3);

    let listed = app
        .get(&format!(
            "/api/v1/markets/{market_id}/positions?sort=amount"
        ))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["meta"]["total"], 2);
    assert_eq!(listed.body["data"][0]["amount"], "10.00");
    let only_yes = app
        .get(&format!("/api/v1/markets/{market_id}/positions?side=yes"))
        .await;
    assert_eq!(only_yes.body["meta"]["total"], 1);
}

async fn a_stake_above_the_balance_is_refused_and_changes_nothing(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Too rich for me", "test").await);
    let reply = open(&app, &token, &market_id, "no", "1000.01").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["code"], "insufficient_balance");
    assert_eq!(balance(&app, &token).await, "1000.00");
    assert_eq!(market(&app, &market_id).await["volume"], "0.00");
    let all_in = open(&app, &token, &market_id, "no", "1000.00").await;
    assert_eq!(all_in.status, 201, "{}", all_in.text);
    assert_eq!(balance(&app, &token).await, "0.00");
}

async fn stakes_and_sides_are_bounded(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Bounds", "test").await);
    for (side, amount, field) in [
        ("yes", "0.99", "amount"),
        ("yes", "100000.01", "amount"),
        ("yes", "1.001", "amount"),
        ("yes", "-5", "amount"),
        ("yes", "abc", "amount"),
        ("maybe", "5", "side"),
    ] {
        let reply = open(&app, &token, &market_id, side, amount).await;
        assert_eq!(reply.status, 400, "{side} {amount}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed");
        assert_eq!(reply.body["details"][0]["field"], field, "{}", reply.text);
    }
    let missing = open(
        &app,
        &token,
        "00000000-0000-7000-8000-000000000000",
        "yes",
        "5",
    )
    .await;
    assert_eq!(missing.status, 404);
    let anonymous = app
        .post_json(
            &format!("/api/v1/markets/{market_id}/positions"),
            &json!({"side": "yes", "amount": "5"}),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(balance(&app, &token).await, "1000.00");
}

async fn closed_resolved_and_cancelled_markets_take_no_positions(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, moderator) = app.signed_in_with_role(Role::Moderator).await;
    for (status, outcome) in [
        ("closed", None),
        ("resolved", Some("no")),
        ("cancelled", None),
    ] {
        let market_id = id(&app.create_market(&owner, "Lifecycle", "test").await);
        let mut body = json!({"status": status});
        if let Some(outcome) = outcome {
            body["outcome"] = json!(outcome);
        }
        let changed = app
            .send(
                app.client
                    .patch(app.url(&format!("/api/v1/markets/{market_id}")))
                    .bearer_auth(&moderator)
                    .json(&body),
            )
            .await;
        assert_eq!(changed.status, 200, "{}", changed.text);
        let reply = open(&app, &owner, &market_id, "yes", "5").await;
        assert_eq!(reply.status, 409, "{status}: {}", reply.text);
        assert_eq!(reply.body["code"], "market_not_open");
    }
    assert_eq!(balance(&app, &owner).await, "1000.00");
}

async fn a_users_positions_are_for_that_user_and_admins_only(app: TestApp) {
    let (trader_id, trader) = app.signed_in_user().await;
    let (_, other) = app.signed_in_user().await;
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let market_id = id(&app.create_market(&trader, "Mine", "test").await);
    open(&app, &trader, &market_id, "yes", "5").await;
    let path = format!("/api/v1/users/{trader_id}/positions");
    let own = app.get_as(&trader, &path).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["meta"]["total"], 1);
    assert_eq!(app.get_as(&other, &path).await.status, 403);
    assert_eq!(app.get(&path).await.status, 401);
    assert_eq!(app.get_as(&admin, &path).await.body["meta"]["total"], 1);
}

async fn a_market_and_its_initial_position_are_created_together_or_not_at_all(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let body = |amount: &str| {
        json!({
            "name": "With a first stake",
            "category": "test",
            "end_date": "2030-01-01T00:00:00Z",
            "initial_position": {"side": "no", "amount": amount},
        })
    };
    let too_much = app
        .post_json_as(&token, "/api/v1/markets", &body("5000.00"))
        .await;
    assert_eq!(too_much.status, 409, "{}", too_much.text);
    assert_eq!(too_much.body["code"], "insufficient_balance");
    assert_eq!(app.get("/api/v1/markets").await.body["meta"]["total"], 0);
    assert_eq!(balance(&app, &token).await, "1000.00");

    let created = app
        .post_json_as(&token, "/api/v1/markets", &body("40.00"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["data"]["no_volume"], "40.00");
    assert_eq!(created.body["data"]["version"], 2);
    assert_eq!(balance(&app, &token).await, "960.00");
    let positions = app
        .get(&format!(
            "/api/v1/markets/{}/positions",
            id(&created.body["data"])
        ))
        .await;
    assert_eq!(positions.body["meta"]["total"], 1);
}

async fn a_market_with_positions_cannot_be_deleted(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let market_id = id(&app.create_market(&owner, "Staked", "test").await);
    open(&app, &owner, &market_id, "yes", "5").await;
    let delete = |token: &str| {
        app.client
            .delete(app.url(&format!("/api/v1/markets/{market_id}")))
            .bearer_auth(token.to_owned())
    };
    let by_owner = app.send(delete(&owner)).await;
    assert_eq!(
        by_owner.status, 403,
        "the owner may not once it has positions"
    );
    let by_admin = app.send(delete(&admin)).await;
    assert_eq!(by_admin.status, 409, "{}", by_admin.text);
    assert_eq!(by_admin.body["code"], "conflict");
    assert_eq!(market(&app, &market_id).await["volume"], "5.00");
}

async fn the_same_idempotency_key_and_body_replays_the_first_response(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Retry me", "test").await);
    let post = |key: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&json!({"side": "yes", "amount": "12.00"}))
    };
    let first = app.send(post("retry-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = app.send(post("retry-1")).await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.text, first.text, "the same bytes");
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.header("location"), first.header("location"));
    assert_eq!(balance(&app, &token).await, "988.00", "debited once");
    let third = app.send(post("retry-2")).await;
    assert_eq!(third.status, 201);
    assert_ne!(third.body["data"]["id"], first.body["data"]["id"]);
    assert_eq!(balance(&app, &token).await, "976.00");

    // The same key from another caller is another scope.
    let (_, other) = app.signed_in_user().await;
    let theirs = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&other)
                .header("idempotency-key", "retry-1")
                .json(&json!({"side": "yes", "amount": "12.00"})),
        )
        .await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["data"]["id"], first.body["data"]["id"]);

    // Registration and market creation are idempotent too.
    let register = || {
        app.client
            .post(app.url("/api/v1/auth/register"))
            .header("idempotency-key", "signup-1")
            .json(
                &json!({"email": "once@example.com", "password": "correct horse", "name": "Once"}),
            )
    };
    let signed_up = app.send(register()).await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.text);
    let again = app.send(register()).await;
    assert_eq!(
        again.status, 201,
        "a replay, not a conflict: {}",
        again.text
    );
    assert_eq!(again.text, signed_up.text);
}

async fn the_same_idempotency_key_with_another_body_is_refused(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Key reuse", "test").await);
    let post = |amount: &str| {
        app.client
            .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
            .bearer_auth(&token)
            .header("idempotency-key", "reused")
            .json(&json!({"side": "no", "amount": amount}))
    };
    assert_eq!(app.send(post("3.00")).await.status, 201);
    let reused = app.send(post("4.00")).await;
    assert_eq!(reused.status, 422, "{}", reused.text);
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    assert_eq!(balance(&app, &token).await, "997.00");
    let bad_key = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&token)
                .header("idempotency-key", "k".repeat(256))
                .json(&json!({"side": "no", "amount": "1"})),
        )
        .await;
    assert_eq!(bad_key.status, 400);
    assert_eq!(bad_key.body["details"][0]["field"], "Idempotency-Key");

    // A failed request gives its key up: the same key may be retried.
    let failing = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&token)
                .header("idempotency-key", "after-failure")
                .json(&json!({"side": "no", "amount": "5000.00"})),
        )
        .await;
    assert_eq!(failing.status, 409);
    let retried = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&token)
                .header("idempotency-key", "after-failure")
                .json(&json!({"side": "no", "amount": "5000.00"})),
        )
        .await;
    assert_eq!(retried.status, 409, "executed again, not replayed");
    assert_eq!(retried.header("idempotent-replayed"), None);
}

async fn concurrent_duplicates_with_one_key_open_one_position(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Racing duplicates", "test").await);
    let requests = (0..8).map(|_| {
        app.send(
            app.client
                .post(app.url(&format!("/api/v1/markets/{market_id}/positions")))
                .bearer_auth(&token)
                .header("idempotency-key", "racing")
                .json(&json!({"side": "yes", "amount": "7.00"})),
        )
    });
    let replies = futures_util::future::join_all(requests).await;
    for reply in &replies {
        assert!(
            reply.status == 201
                || (reply.status == 409 && reply.body["code"] == "idempotency_in_progress"),
            "{}: {}",
            reply.status,
            reply.text
        );
    }
    assert!(replies.iter().any(|r| r.status == 201));
    assert_eq!(
        balance(&app, &token).await,
        "993.00",
        "exactly one position"
    );
    let positions = app
        .get(&format!("/api/v1/markets/{market_id}/positions"))
        .await;
    assert_eq!(positions.body["meta"]["total"], 1);
}

async fn includes_load_related_rows(app: TestApp) {
    let (creator_id, token) = app.signed_in_user().await;
    let market_id = id(&app.create_market(&token, "Included", "test").await);
    open(&app, &token, &market_id, "yes", "2").await;
    let markets = app.get("/api/v1/markets?include=creator").await;
    assert_eq!(markets.status, 200, "{}", markets.text);
    let creator = &markets.body["data"][0]["creator"];
    assert_eq!(creator["id"], creator_id.as_str());
    assert_eq!(creator["name"], "Test User");
    assert!(creator.get("email").is_none(), "public profile only");
    let positions = app
        .get(&format!(
            "/api/v1/markets/{market_id}/positions?include=market"
        ))
        .await;
    assert_eq!(
        positions.body["data"][0]["market"]["id"],
        market_id.as_str()
    );
    let bad = app.get("/api/v1/markets?include=everything").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["details"][0]["field"], "include");
}
