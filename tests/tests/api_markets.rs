//! Black-box tests of the markets resource, on SQLite and PostgreSQL.

use domain::Role;
use serde_json::{Value, json};
use tests::TestApp;

tests::api_tests!(
    a_created_market_can_be_read_back_with_an_etag,
    if_none_match_answers_not_modified_until_the_market_changes,
    lists_are_filtered_sorted_paginated_and_trimmed_to_the_requested_fields,
    the_text_filter_treats_wildcards_literally,
    the_owner_may_edit_and_delete_an_untouched_market,
    others_may_not_edit_or_delete_a_market,
    only_moderators_and_admins_change_a_markets_status,
    a_stale_if_match_is_a_precondition_failure,
    creating_a_market_needs_a_signed_in_user_and_a_future_end_date,
);

fn ids(reply: &Value) -> Vec<String> {
    reply["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> tests::Reply {
    app.send(
        app.client
            .patch(app.url(&format!("/api/v1/markets/{id}")))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn a_created_market_can_be_read_back_with_an_etag(app: TestApp) {
    let (user_id, token) = app.signed_in_user().await;
    let reply = app
        .post_json_as(
            &token,
            "/api/v1/markets",
            &json!({"name": "Will it rain in Paris?", "category": "weather", "end_date": "2030-06-01T12:00:00Z"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let market = &reply.body["data"];
    let id = market["id"].as_str().expect("an id");
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/v1/markets/{id}").as_str())
    );
    assert_eq!(market["status"], "active");
    assert_eq!(market["creator_id"], user_id.as_str());
    assert_eq!(market["volume"], "0.00");
    assert_eq!(market["outcome"], Value::Null);
    assert_eq!(market["version"], 1);
    assert_eq!(market["description"], "");

    let read = app.get(&format!("/api/v1/markets/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(&read.body["data"], market);
    assert_eq!(read.header("etag"), Some("\"1\""));
}

async fn if_none_match_answers_not_modified_until_the_market_changes(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Cached market", "test").await;
    let id = market["id"].as_str().expect("an id");
    let path = format!("/api/v1/markets/{id}");
    let conditional =
        |tag: &'static str| app.client.get(app.url(&path)).header("if-none-match", tag);
    let unchanged = app.send(conditional("\"1\"")).await;
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.text.is_empty());
    let changed = patch(&app, &token, id, json!({"name": "Cached market, renamed"})).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    let stale = app.send(conditional("\"1\"")).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body["data"]["name"], "Cached market, renamed");
}

async fn lists_are_filtered_sorted_paginated_and_trimmed_to_the_requested_fields(app: TestApp) {
    let (alice, alice_token) = app.signed_in_user().await;
    let (_, bob_token) = app.signed_in_user().await;
    let a = app
        .create_market(&alice_token, "Alpha rain market", "weather")
        .await;
    let b = app
        .create_market(&alice_token, "Bravo election market", "politics")
        .await;
    let c = app
        .create_market(&bob_token, "Charlie rain market", "weather")
        .await;
    let id = |m: &Value| m["id"].as_str().expect("an id").to_owned();

    let all = app.get("/api/v1/markets").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(
        all.body["meta"],
        json!({"total": 3, "page": 1, "limit": 20})
    );
    assert_eq!(
        ids(&all.body),
        [id(&c), id(&b), id(&a)],
        "newest first by default"
    );

    let weather = app.get("/api/v1/markets?category=weather&sort=name").await;
    assert_eq!(ids(&weather.body), [id(&a), id(&c)]);
    let by_alice = app
        .get(&format!("/api/v1/markets?creator_id={alice}&sort=-name"))
        .await;
    assert_eq!(ids(&by_alice.body), [id(&b), id(&a)]);
    let text = app.get("/api/v1/markets?q=RAIN&status=active").await;
    assert_eq!(text.body["meta"]["total"], 2);
    let none = app.get("/api/v1/markets?status=resolved").await;
    assert_eq!(none.body["meta"]["total"], 0);
    let ending = app
        .get("/api/v1/markets?end_after=2029-12-31T00:00:00Z&end_before=2030-01-02T00:00:00Z&min_volume=0")
        .await;
    assert_eq!(ending.body["meta"]["total"], 3);

    let page_two = app.get("/api/v1/markets?sort=name&limit=2&page=2").await;
    assert_eq!(
        page_two.body["meta"],
        json!({"total": 3, "page": 2, "limit": 2})
    );
    assert_eq!(ids(&page_two.body), [id(&c)]);
    let by_offset = app.get("/api/v1/markets?sort=name&limit=1&offset=1").await;
    assert_eq!(ids(&by_offset.body), [id(&b)]);

    let trimmed = app
        .get("/api/v1/markets?fields=name,volume&sort=name&limit=1")
        .await;
    let first = trimmed.body["data"][0].as_object().expect("an object");
    let mut keys: Vec<&String> = first.keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "name", "volume"]);
    assert_eq!(first["name"], "Alpha rain market");
}

async fn the_text_filter_treats_wildcards_literally(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    app.create_market(&token, "Will turnout pass 50% this year?", "politics")
        .await;
    app.create_market(&token, "Will 500 people attend?", "culture")
        .await;
    app.create_market(&token, "snake_case or camelCase?", "technology")
        .await;
    let percent = app.get("/api/v1/markets?q=50%25").await;
    assert_eq!(percent.body["meta"]["total"], 1, "{}", percent.text);
    let underscore = app.get("/api/v1/markets?q=e_c").await;
    assert_eq!(underscore.body["meta"]["total"], 1, "{}", underscore.text);
}

async fn the_owner_may_edit_and_delete_an_untouched_market(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Owner's market", "test").await;
    let id = market["id"].as_str().expect("an id");
    let replaced = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&json!({"name": "Owner's market v2", "description": "now with text", "category": "test", "end_date": "2031-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["data"]["description"], "now with text");
    assert_eq!(replaced.body["data"]["end_date"], "2031-01-01T00:00:00Z");
    assert_eq!(replaced.body["data"]["version"], 2);
    let deleted = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(app.get(&format!("/api/v1/markets/{id}")).await.status, 404);
}

async fn others_may_not_edit_or_delete_a_market(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, other) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Not yours", "test").await;
    let id = market["id"].as_str().expect("an id");
    let edit = patch(&app, &other, id, json!({"name": "Hijacked"})).await;
    assert_eq!(edit.status, 403, "{}", edit.text);
    assert_eq!(edit.body["code"], "forbidden");
    let delete = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(delete.status, 403);
    let (_, moderator) = app.signed_in_with_role(Role::Moderator).await;
    let moderator_delete = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&moderator),
        )
        .await;
    assert_eq!(
        moderator_delete.status, 403,
        "moderators cancel, admins delete"
    );
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let admin_delete = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(admin_delete.status, 204, "{}", admin_delete.text);
    let unchanged = app.get(&format!("/api/v1/markets/{id}")).await;
    assert_eq!(unchanged.status, 404);
}

async fn only_moderators_and_admins_change_a_markets_status(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Who resolves?", "test").await;
    let id = market["id"].as_str().expect("an id");
    let by_owner = patch(
        &app,
        &owner,
        id,
        json!({"status": "resolved", "outcome": "yes"}),
    )
    .await;
    assert_eq!(by_owner.status, 403, "{}", by_owner.text);

    let (_, moderator) = app.signed_in_with_role(Role::Moderator).await;
    let no_outcome = patch(&app, &moderator, id, json!({"status": "resolved"})).await;
    assert_eq!(no_outcome.status, 400, "{}", no_outcome.text);
    assert_eq!(no_outcome.body["details"][0]["field"], "outcome");
    let resolved = patch(
        &app,
        &moderator,
        id,
        json!({"status": "resolved", "outcome": "yes"}),
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(resolved.body["data"]["status"], "resolved");
    assert_eq!(resolved.body["data"]["outcome"], "yes");
    let again = patch(&app, &moderator, id, json!({"status": "cancelled"})).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["code"], "conflict");
}

async fn a_stale_if_match_is_a_precondition_failure(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Versioned", "test").await;
    let id = market["id"].as_str().expect("an id");
    let first = patch(&app, &token, id, json!({"description": "first"})).await;
    assert_eq!(first.status, 200);
    for tag in ["\"1\"", "W/\"1\"", "garbage"] {
        let stale = app
            .send(
                app.client
                    .patch(app.url(&format!("/api/v1/markets/{id}")))
                    .bearer_auth(&token)
                    .header("if-match", tag)
                    .json(&json!({"description": "second"})),
            )
            .await;
        assert_eq!(stale.status, 412, "{tag}: {}", stale.text);
        assert_eq!(stale.body["code"], "precondition_failed");
    }
    let current = app.get(&format!("/api/v1/markets/{id}")).await;
    assert_eq!(current.body["data"]["description"], "first");
}

async fn creating_a_market_needs_a_signed_in_user_and_a_future_end_date(app: TestApp) {
    let body =
        json!({"name": "Past market", "category": "test", "end_date": "2001-01-01T00:00:00Z"});
    let anonymous = app.post_json("/api/v1/markets", &body).await;
    assert_eq!(anonymous.status, 401);
    let (_, token) = app.signed_in_user().await;
    let past = app.post_json_as(&token, "/api/v1/markets", &body).await;
    assert_eq!(past.status, 400, "{}", past.text);
    assert_eq!(past.body["code"], "validation_failed");
    assert_eq!(past.body["details"][0]["field"], "end_date");
    let listed = app.get("/api/v1/markets").await;
    assert_eq!(listed.body["meta"]["total"], 0, "nothing half-written");
}
