//! Users administration and self-service over HTTP, on SQLite and PostgreSQL: listing and
//! filtering (admins), role changes that take effect on live tokens, mass assignment refused with
//! `validation_failed`, account deletion.

use serde_json::{Value, json};
use tests::{Reply, TestApp};

tests::api_tests!(
    admins_list_users_by_role_and_email_prefix,
    a_role_change_applies_to_the_users_live_token,
    fields_the_caller_may_not_set_are_refused_not_ignored,
    accounts_are_deleted_by_their_owner_or_an_admin_unless_they_have_history,
);

async fn patch(app: &TestApp, token: &str, path: &str, body: &Value) -> Reply {
    app.send(
        app.client
            .patch(app.url(path))
            .bearer_auth(token)
            .json(body),
    )
    .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> Reply {
    app.send(app.client.delete(app.url(path)).bearer_auth(token))
        .await
}

async fn admins_list_users_by_role_and_email_prefix(app: TestApp) {
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let (_, moderator) = app.signed_in_with_role(domain::Role::Moderator).await;
    for n in 0..3 {
        app.register(&format!("list_{n}@example.com"), "correct horse battery")
            .await;
    }
    app.register("list%x@example.com", "correct horse battery")
        .await;

    let all = app.get_as(&admin, "/api/v1/users?limit=2").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["meta"]["total"], 6);
    assert_eq!(all.body["data"].as_array().map(Vec::len), Some(2));
    assert!(
        all.body["data"][0]["email"].is_string(),
        "admins see emails"
    );

    let moderators = app.get_as(&admin, "/api/v1/users?role=moderator").await;
    assert_eq!(moderators.body["meta"]["total"], 1);
    assert_eq!(moderators.body["data"][0]["role"], "moderator");

    // `_` and `%` match themselves, not any character.
    let prefixed = app.get_as(&admin, "/api/v1/users?email_prefix=LIST_").await;
    let emails: Vec<&str> = prefixed.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|user| user["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        [
            "list_0@example.com",
            "list_1@example.com",
            "list_2@example.com"
        ]
    );
    let percent = app
        .get_as(&admin, "/api/v1/users?email_prefix=list%25")
        .await;
    assert_eq!(percent.body["meta"]["total"], 1);

    let bad = app.get_as(&admin, "/api/v1/users?role=root&limit=0").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["code"], "validation_failed");
    let fields: Vec<&str> = bad.body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"role") && fields.contains(&"limit"),
        "{fields:?}"
    );

    assert_eq!(app.get_as(&moderator, "/api/v1/users").await.status, 403);
    assert_eq!(app.get("/api/v1/users").await.status, 401);
}

async fn a_role_change_applies_to_the_users_live_token(app: TestApp) {
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let (user_id, user) = app.signed_in_user().await;
    let market = app
        .create_market(&admin, "Will roles change?", "test")
        .await;
    let close = |token: String| {
        let path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
        let app = &app;
        async move { patch(app, &token, &path, &json!({"status": "closed"})).await }
    };
    assert_eq!(close(user.clone()).await.status, 403);

    let promoted = patch(
        &app,
        &admin,
        &format!("/api/v1/users/{user_id}"),
        &json!({"role": "moderator"}),
    )
    .await;
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    assert_eq!(promoted.body["data"]["role"], "moderator");
    // The same token, issued while a user: the session check reads the current role.
    let closed = close(user.clone()).await;
    assert_eq!(closed.status, 200, "{}", closed.text);

    // Only admins change roles; an admin cannot demote themselves.
    let (other_id, _) = app.signed_in_user().await;
    let by_moderator = patch(
        &app,
        &user,
        &format!("/api/v1/users/{other_id}"),
        &json!({"role": "admin"}),
    )
    .await;
    assert_eq!(by_moderator.status, 403);
    let me = app.get_as(&admin, "/api/v1/users/me").await;
    let admin_id = me.body["data"]["id"].as_str().expect("an id").to_owned();
    let demoted = patch(
        &app,
        &admin,
        &format!("/api/v1/users/{admin_id}"),
        &json!({"role": "user"}),
    )
    .await;
    assert_eq!(demoted.status, 409);
    assert_eq!(demoted.body["code"], "conflict");
    for refused in [
        patch(
            &app,
            &admin,
            &format!("/api/v1/users/{admin_id}"),
            &json!({"disabled": true}),
        )
        .await,
        delete(&app, &admin, &format!("/api/v1/users/{admin_id}")).await,
    ] {
        assert_eq!(refused.status, 409, "{}", refused.text);
    }
    assert_eq!(
        app.get_as(&admin, "/api/v1/users/me").await.body["data"]["role"],
        "admin"
    );
}

async fn fields_the_caller_may_not_set_are_refused_not_ignored(app: TestApp) {
    let (id, user) = app.signed_in_user().await;
    let before = app.get_as(&user, "/api/v1/users/me").await.body["data"].clone();
    for body in [
        json!({"role": "admin"}),
        json!({"name": "Mallory", "role": "admin"}),
        json!({"balance": "1000000.00"}),
        json!({"disabled": false}),
        json!({"email": "mallory@example.com"}),
        json!({"id": "00000000-0000-0000-0000-000000000000"}),
        json!({"name": null}),
        json!({}),
    ] {
        let reply = patch(&app, &user, "/api/v1/users/me", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed", "{body}");
    }
    assert_eq!(
        app.get_as(&user, "/api/v1/users/me").await.body["data"],
        before,
        "nothing changed"
    );
    let renamed = patch(&app, &user, "/api/v1/users/me", &json!({"name": "Ada"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["data"]["name"], "Ada");

    // Admins too can only set what the admin body has.
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    for body in [
        json!({"balance": "5.00"}),
        json!({"email": "x@example.com"}),
    ] {
        let reply = patch(&app, &admin, &format!("/api/v1/users/{id}"), &body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["code"], "validation_failed");
    }
    let on_someone = patch(
        &app,
        &user,
        &format!("/api/v1/users/{id}"),
        &json!({"name": "Eve"}),
    )
    .await;
    assert_eq!(
        on_someone.status, 403,
        "users change themselves through /users/me"
    );
}

async fn accounts_are_deleted_by_their_owner_or_an_admin_unless_they_have_history(app: TestApp) {
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let (victim, _) = app.signed_in_user().await;
    let (_, attacker) = app.signed_in_user().await;
    let path = format!("/api/v1/users/{victim}");
    assert_eq!(delete(&app, &attacker, &path).await.status, 403);
    assert_eq!(app.get(&path).await.status, 200);
    assert_eq!(delete(&app, &admin, &path).await.status, 204);
    assert_eq!(app.get(&path).await.status, 404);
    assert_eq!(delete(&app, &admin, &path).await.status, 404);
    // Nothing of the account is listed either (schemathesis ST301: it was an empty 200).
    let positions = app.get_as(&admin, &format!("{path}/positions")).await;
    assert_eq!(positions.status, 404, "{}", positions.text);
    assert_eq!(positions.body["code"], "not_found");

    let (creator_id, creator) = app.signed_in_user().await;
    app.create_market(&creator, "Will history be kept?", "test")
        .await;
    let kept = delete(&app, &creator, &format!("/api/v1/users/{creator_id}")).await;
    assert_eq!(kept.status, 409, "{}", kept.text);
    assert_eq!(kept.body["code"], "user_has_history");
    assert_eq!(app.get_as(&creator, "/api/v1/users/me").await.status, 200);
}
