//! The session lifecycle over HTTP as a client drives it, on SQLite and PostgreSQL: bearer and
//! cookie sign-in, refresh rotation and reuse detection, logout, session management, password
//! change and an admin disabling the account, each taking effect for access tokens at once.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{Reply, TestApp};

tests::api_tests!(
    bearer_sign_in_refresh_rotation_and_reuse_detection,
    logout_ends_the_access_token_within_a_second,
    cookie_sessions_need_their_csrf_token_for_unsafe_methods,
    sessions_are_listed_and_ended_by_their_owner_only,
    a_password_change_ends_every_other_session,
    disabling_a_user_ends_their_sessions_and_sign_in,
    a_deleted_users_token_stops_working,
);

const PASSWORD: &str = "correct horse battery";

/// Signs in (bearer mode) and returns the reply's `data`.
async fn sign_in(app: &TestApp, email: &str) -> Value {
    let reply = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"].clone()
}

fn text(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh_token}),
    )
    .await
}

fn code(reply: &Reply) -> &str {
    reply.body["code"].as_str().unwrap_or_default()
}

async fn registered(app: &TestApp) -> (String, String) {
    let email = format!("s-{}@example.com", uuid::Uuid::new_v4().simple());
    let id = app.register(&email, PASSWORD).await;
    (id, email)
}

async fn bearer_sign_in_refresh_rotation_and_reuse_detection(app: TestApp) {
    let (id, email) = registered(&app).await;
    let first = sign_in(&app, &email).await;
    assert_eq!(first["token_type"], "Bearer");
    let refresh_token = text(&first["refresh_token"]);
    assert_eq!(refresh_token.len(), 64, "256 random bits in hex");
    assert_eq!(
        app.get_as(&text(&first["access_token"]), "/api/v1/users/me")
            .await
            .body["data"]["id"],
        id.as_str()
    );

    // Rotation: a new refresh token each time, the same session.
    let second = refresh(&app, &refresh_token).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.header("cache-control"), Some("no-store"));
    let second = second.body["data"].clone();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["session_id"], first["session_id"]);
    let access = text(&second["access_token"]);
    assert_eq!(app.get_as(&access, "/api/v1/users/me").await.status, 200);

    // The first token again: reuse, and the whole family ends.
    let reused = refresh(&app, &refresh_token).await;
    assert_eq!(reused.status, 401);
    assert_eq!(code(&reused), "refresh_token_reused");
    let newest = refresh(&app, &text(&second["refresh_token"])).await;
    assert_eq!((newest.status, code(&newest)), (401, "session_revoked"));
    let me = app.get_as(&access, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "session_revoked"));

    // Never issued, and a refresh token presented as an access token.
    for malformed in [String::new(), "0".repeat(257)] {
        let reply = refresh(&app, &malformed).await;
        assert_eq!((reply.status, code(&reply)), (400, "validation_failed"));
    }
    let unknown = refresh(&app, &"0".repeat(64)).await;
    assert_eq!(
        (unknown.status, code(&unknown)),
        (401, "invalid_refresh_token")
    );
    let other = sign_in(&app, &email).await;
    let as_access = app
        .get_as(&text(&other["refresh_token"]), "/api/v1/users/me")
        .await;
    assert_eq!((as_access.status, code(&as_access)), (401, "invalid_token"));
}

async fn logout_ends_the_access_token_within_a_second(app: TestApp) {
    let (_, email) = registered(&app).await;
    let session = sign_in(&app, &email).await;
    let access = text(&session["access_token"]);
    let out = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let me = app.get_as(&access, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "session_revoked"));
    let renewed = refresh(&app, &text(&session["refresh_token"])).await;
    assert_eq!((renewed.status, code(&renewed)), (401, "session_revoked"));
}

/// The `__Host-session` cookie from a `Set-Cookie` header, and its attributes.
fn session_cookie(reply: &Reply) -> (String, String) {
    let header = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("__Host-session="))
        .expect("a session cookie")
        .to_owned();
    let value = header
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("a value");
    (value, header)
}

async fn cookie_sessions_need_their_csrf_token_for_unsafe_methods(app: TestApp) {
    let (id, email) = registered(&app).await;
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PASSWORD, "mode": "cookie"}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert!(login.body["data"].get("access_token").is_none());
    let csrf = text(&login.body["data"]["csrf_token"]);
    let (secret, header) = session_cookie(&login);
    assert_eq!(secret.len(), 64);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    assert!(!header.contains("Domain"), "{header}");
    let cookie = format!("__Host-session={secret}");

    // Safe methods need only the cookie.
    let me = app
        .send(
            app.client
                .get(app.url("/api/v1/users/me"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["data"]["id"], id.as_str());

    // Unsafe ones need the CSRF token too: without it (or with another) nothing happens.
    let market = json!({
        "name": "Will cookies crumble?", "description": "", "category": "test",
        "end_date": "2030-01-01T00:00:00Z",
    });
    for token in [None, Some("0".repeat(64))] {
        let mut request = app
            .client
            .post(app.url("/api/v1/markets"))
            .header("cookie", &cookie)
            .json(&market);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        let refused = app.send(request).await;
        assert_eq!((refused.status, code(&refused)), (403, "csrf_failed"));
    }
    assert_eq!(app.get("/api/v1/markets").await.body["meta"]["total"], 0);
    let created = app
        .send(
            app.client
                .post(app.url("/api/v1/markets"))
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&market),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);

    // Logout clears the cookie and ends the session.
    let out = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    let (cleared, _) = session_cookie(&out);
    assert!(cleared.is_empty());
    let after = app
        .send(
            app.client
                .get(app.url("/api/v1/users/me"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!((after.status, code(&after)), (401, "session_revoked"));
}

async fn sessions_are_listed_and_ended_by_their_owner_only(app: TestApp) {
    let (_, email) = registered(&app).await;
    let phone = sign_in(&app, &email).await;
    let laptop = sign_in(&app, &email).await;
    let laptop_token = text(&laptop["access_token"]);
    let listed = app.get_as(&laptop_token, "/api/v1/auth/sessions").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let sessions = listed.body["data"].as_array().expect("a list").clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["id"], laptop["session_id"], "newest first");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["current"], false);

    // Someone else cannot end (or even see) the phone's session.
    let (_, stranger) = registered(&app).await;
    let stranger = sign_in(&app, &stranger).await;
    let phone_session = text(&phone["session_id"]);
    let path = format!("/api/v1/auth/sessions/{phone_session}");
    let foreign = app
        .send(
            app.client
                .delete(app.url(&path))
                .bearer_auth(text(&stranger["access_token"])),
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        app.get_as(&text(&phone["access_token"]), "/api/v1/users/me")
            .await
            .status,
        200
    );

    // The owner ends it from the laptop.
    let ended = app
        .send(app.client.delete(app.url(&path)).bearer_auth(&laptop_token))
        .await;
    assert_eq!(ended.status, 204, "{}", ended.text);
    let phone_me = app
        .get_as(&text(&phone["access_token"]), "/api/v1/users/me")
        .await;
    assert_eq!((phone_me.status, code(&phone_me)), (401, "session_revoked"));
    let left = app.get_as(&laptop_token, "/api/v1/auth/sessions").await;
    assert_eq!(left.body["data"].as_array().map(Vec::len), Some(1));
}

async fn a_password_change_ends_every_other_session(app: TestApp) {
    let (_, email) = registered(&app).await;
    let here = sign_in(&app, &email).await;
    let elsewhere = sign_in(&app, &email).await;
    let token = text(&here["access_token"]);
    let patch = |body: Value| {
        app.send(
            app.client
                .patch(app.url("/api/v1/users/me"))
                .bearer_auth(&token)
                .json(&body),
        )
    };
    let wrong =
        patch(json!({"password": "a new horse battery", "current_password": "nope nope"})).await;
    assert_eq!((wrong.status, code(&wrong)), (403, "wrong_password"));
    let missing = patch(json!({"password": "a new horse battery"})).await;
    assert_eq!((missing.status, code(&missing)), (400, "validation_failed"));

    let changed =
        patch(json!({"password": "a new horse battery", "current_password": PASSWORD})).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let other = app
        .get_as(&text(&elsewhere["access_token"]), "/api/v1/users/me")
        .await;
    assert_eq!((other.status, code(&other)), (401, "session_revoked"));
    let renewed = refresh(&app, &text(&elsewhere["refresh_token"])).await;
    assert_eq!(renewed.status, 401);
    assert_eq!(app.get_as(&token, "/api/v1/users/me").await.status, 200);

    let old = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status, 401);
    app.login(&email, "a new horse battery").await;
}

async fn disabling_a_user_ends_their_sessions_and_sign_in(app: TestApp) {
    let (id, email) = registered(&app).await;
    let session = sign_in(&app, &email).await;
    let token = text(&session["access_token"]);
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let disabled = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&admin)
                .json(&json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.body["data"]["disabled"], true);
    let me = app.get_as(&token, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "account_disabled"));
    let renewed = refresh(&app, &text(&session["refresh_token"])).await;
    assert_eq!((renewed.status, code(&renewed)), (401, "account_disabled"));
    let again = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!((again.status, code(&again)), (403, "account_disabled"));

    // Enabled again: old sessions stay ended, a new sign-in works.
    let enabled = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&admin)
                .json(&json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(app.get_as(&token, "/api/v1/users/me").await.status, 401);
    app.login(&email, PASSWORD).await;
}

async fn a_deleted_users_token_stops_working(app: TestApp) {
    let (id, email) = registered(&app).await;
    let session = sign_in(&app, &email).await;
    let token = text(&session["access_token"]);
    let deleted = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let me = app.get_as(&token, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "session_revoked"));
    assert_eq!(app.get(&format!("/api/v1/users/{id}")).await.status, 404);
}

/// A revocation made through one instance is seen by another within a second (its session
/// check trusts what it read for at most `auth.session_check_ttl_ms`).
async fn revocation_reaches_another_instance_within_a_second(backend: tests::Backend) {
    let Some(database) = tests::TestDatabase::of(backend).await else {
        return;
    };
    let url = database.url().to_owned();
    let first = TestApp::spawn_with(backend, database, tests::test_config).await;
    let second = TestApp::spawn_with(
        backend,
        tests::TestDatabase::existing(&url),
        tests::test_config,
    )
    .await;
    let (_, email) = registered(&first).await;
    let session = sign_in(&first, &email).await;
    let token = text(&session["access_token"]);
    // The second instance has read (and cached) the session.
    assert_eq!(second.get_as(&token, "/api/v1/users/me").await.status, 200);
    let out = first
        .send(
            first
                .client
                .post(first.url("/api/v1/auth/logout"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(out.status, 204);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let me = second.get_as(&token, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "session_revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_another_instance_within_a_second() {
    revocation_reaches_another_instance_within_a_second(tests::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocation_reaches_another_instance_within_a_second() {
    revocation_reaches_another_instance_within_a_second(tests::Backend::Postgres).await;
}

/// The PostgreSQL + Redis profile with Redis killed: sign-in, refresh, logout and the revocation
/// check never needed Redis (ADR 0014), and the rate limiter and cache fall back in process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_working_and_revoking_with_redis_down() {
    let Some(mut redis) = tests::redis_server::PrivateRedis::start().await else {
        return;
    };
    let Some(database) = tests::TestDatabase::of(tests::Backend::Postgres).await else {
        return;
    };
    let redis_url = redis.url();
    let app = TestApp::spawn_with(tests::Backend::Postgres, database, |url| {
        let mut config = tests::test_config(url);
        config.redis.url = Some(secrecy::SecretString::from(redis_url));
        config.cache.redis_command_timeout_ms = 200;
        config.rate_limit.enabled = true;
        config.rate_limit.anonymous_per_minute = 10_000;
        config.rate_limit.user_per_minute = 10_000;
        config.rate_limit.sign_in_per_minute = 10_000;
        config.rate_limit.register_per_hour = 10_000;
        config
    })
    .await;
    let (_, email) = registered(&app).await;
    redis.kill();

    let session = sign_in(&app, &email).await;
    let renewed = refresh(&app, &text(&session["refresh_token"])).await;
    assert_eq!(renewed.status, 200, "{}", renewed.text);
    let access = text(&renewed.body["data"]["access_token"]);
    assert_eq!(app.get_as(&access, "/api/v1/users/me").await.status, 200);
    let out = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let me = app.get_as(&access, "/api/v1/users/me").await;
    assert_eq!((me.status, code(&me)), (401, "session_revoked"));
}
