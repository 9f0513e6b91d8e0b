//! Black-box tests of registration, sign-in and the current user, on SQLite and PostgreSQL.

use serde_json::json;
use tests::{Reply, TestApp};

tests::api_tests!(
    registering_returns_the_user_with_a_location_and_a_normalised_email,
    registering_the_same_email_twice_in_any_case_is_a_conflict,
    registration_reports_every_invalid_field,
    signing_in_returns_a_bearer_token_that_opens_users_me,
    unknown_email_and_wrong_password_are_indistinguishable,
    users_me_needs_a_valid_token,
    a_token_signed_with_another_secret_is_rejected,
    a_public_profile_hides_private_fields_from_others,
);

fn without_request_id(reply: &Reply) -> serde_json::Value {
    let mut body = reply.body.clone();
    body.as_object_mut().map(|o| o.remove("request_id"));
    body
}

async fn registering_returns_the_user_with_a_location_and_a_normalised_email(app: TestApp) {
    let reply = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "  Ada.Lovelace@Example.COM ", "password": "correct horse", "name": " Ada "}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let user = &reply.body["data"];
    assert_eq!(reply.body["success"], true);
    assert_eq!(user["email"], "ada.lovelace@example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["role"], "user");
    assert_eq!(user["balance"], "1000.00");
    assert!(user.get("password_hash").is_none() && !reply.text.contains("argon2"));
    let id = user["id"].as_str().expect("an id");
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert!(reply.header("x-request-id").is_some());
}

async fn registering_the_same_email_twice_in_any_case_is_a_conflict(app: TestApp) {
    app.register("grace@example.com", "correct horse").await;
    let reply = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "GRACE@example.com", "password": "another one", "name": "G"}),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["success"], false);
    assert_eq!(reply.body["code"], "conflict");
    assert!(
        reply.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

async fn registration_reports_every_invalid_field(app: TestApp) {
    let reply = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "not-an-email", "password": "short", "name": "x".repeat(101)}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "validation_failed");
    let mut fields: Vec<&str> = reply.body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "name", "password"]);

    let too_long = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "a@example.com", "password": "p".repeat(129), "name": "A"}),
        )
        .await;
    assert_eq!(too_long.status, 400);
    assert_eq!(too_long.body["details"][0]["field"], "password");
}

async fn signing_in_returns_a_bearer_token_that_opens_users_me(app: TestApp) {
    let id = app.register("alan@example.com", "correct horse").await;
    let reply = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "Alan@Example.com", "password": "correct horse"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["token_type"], "Bearer");
    assert_eq!(reply.body["data"]["expires_in"], 900);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.body["data"]["access_token"]
        .as_str()
        .expect("a token");
    let me = app.get_as(token, "/api/v1/users/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["data"]["id"], id.as_str());
    assert_eq!(me.body["data"]["email"], "alan@example.com");
}

async fn unknown_email_and_wrong_password_are_indistinguishable(app: TestApp) {
    app.register("known@example.com", "correct horse").await;
    let wrong_password = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "known@example.com", "password": "wrong horse"}),
        )
        .await;
    let unknown_email = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "unknown@example.com", "password": "wrong horse"}),
        )
        .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_email.status, 401);
    assert_eq!(wrong_password.body["code"], "unauthorized");
    assert_eq!(
        without_request_id(&wrong_password),
        without_request_id(&unknown_email)
    );
}

async fn users_me_needs_a_valid_token(app: TestApp) {
    let anonymous = app.get("/api/v1/users/me").await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["code"], "unauthorized");
    assert!(anonymous.header("www-authenticate").is_some());
    for bad in [
        "Bearer",
        "Bearer not.a.jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
    ] {
        let reply = app
            .send(
                app.client
                    .get(app.url("/api/v1/users/me"))
                    .header("authorization", bad),
            )
            .await;
        assert_eq!(reply.status, 401, "{bad}: {}", reply.text);
        assert!(
            ["invalid_token", "unauthorized"].contains(&reply.body["code"].as_str().unwrap_or("")),
            "{bad}: {}",
            reply.text
        );
    }
}

async fn a_token_signed_with_another_secret_is_rejected(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    // Same header and claims, signature from another key: flip the last signature character.
    let mut forged = token.clone();
    let last = forged.pop().expect("a token");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let reply = app.get_as(&forged, "/api/v1/users/me").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["code"], "invalid_token");
    // `alg: none` with the same claims.
    let claims = token.split('.').nth(1).expect("claims");
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.");
    let reply = app.get_as(&none, "/api/v1/users/me").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["code"], "invalid_token");
}

async fn a_public_profile_hides_private_fields_from_others(app: TestApp) {
    let (id, own_token) = app.signed_in_user().await;
    let (_, other_token) = app.signed_in_user().await;
    let path = format!("/api/v1/users/{id}");
    let anonymous = app.get(&path).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.text);
    assert!(anonymous.body["data"].get("email").is_none());
    assert!(anonymous.body["data"].get("balance").is_none());
    let other = app.get_as(&other_token, &path).await;
    assert!(other.body["data"].get("email").is_none());
    let own = app.get_as(&own_token, &path).await;
    assert!(own.body["data"]["email"].is_string());
    let missing = app
        .get("/api/v1/users/00000000-0000-7000-8000-000000000000")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], "not_found");
}

/// A common password is refused at registration with its own message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_common_password_is_refused() {
    let Some(app) = TestApp::spawn(tests::Backend::Sqlite).await else {
        return;
    };
    let reply = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "common@example.com", "password": "Password1", "name": "Common"}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "validation_failed");
    assert_eq!(reply.body["details"][0]["field"], "password");
    assert_eq!(
        reply.body["details"][0]["message"],
        "is one of the most common passwords; choose another"
    );
}

/// A hash made with weaker argon2id costs than the configured ones is replaced at the next
/// successful sign-in (one instance with the old costs registers the user, another with raised
/// costs signs them in).
async fn a_weaker_hash_is_upgraded_at_the_next_sign_in(backend: tests::Backend) {
    let Some(database) = tests::TestDatabase::of(backend).await else {
        return;
    };
    let url = database.url().to_owned();
    let old = TestApp::spawn_with(backend, database, tests::test_config).await;
    let raised = TestApp::spawn_with(backend, tests::TestDatabase::existing(&url), |url| {
        let mut config = tests::test_config(url);
        config.auth.argon2_memory_kib = 16;
        config.auth.argon2_iterations = 2;
        config
    })
    .await;
    old.register("upgrade@example.com", "correct horse battery")
        .await;
    let stored = || async {
        let connection = sea_orm::Database::connect(&url).await.expect("connect");
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &connection,
            sea_orm::Statement::from_string(
                sea_orm::ConnectionTrait::get_database_backend(&connection),
                "SELECT password_hash FROM users WHERE email = 'upgrade@example.com'".to_owned(),
            ),
        )
        .await
        .expect("a query")
        .expect("a row");
        let hash: String = row.try_get_by_index(0).expect("a hash");
        connection.close().await.ok();
        hash
    };
    let before = stored().await;
    assert!(before.contains("m=8,t=1"), "{before}");

    // A wrong password changes nothing; the right one upgrades the hash, and both still sign in.
    let wrong = raised
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "upgrade@example.com", "password": "wrong horse battery"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(stored().await, before);
    raised
        .login("upgrade@example.com", "correct horse battery")
        .await;
    let after = stored().await;
    assert!(after.starts_with("$argon2id$v=19$m=16,t=2,p=1$"), "{after}");
    raised
        .login("upgrade@example.com", "correct horse battery")
        .await;
    assert_eq!(
        stored().await,
        after,
        "an upgraded hash is not upgraded again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_weaker_hash_is_upgraded_at_the_next_sign_in() {
    a_weaker_hash_is_upgraded_at_the_next_sign_in(tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_weaker_hash_is_upgraded_at_the_next_sign_in() {
    a_weaker_hash_is_upgraded_at_the_next_sign_in(tests::Backend::Postgres).await;
}
