//! Forged, stale and misused access tokens against the real application, on SQLite and
//! PostgreSQL: each is a 401 with its own error code, and none reaches a handler (the `POST
//! /api/v1/markets` they are sent to creates nothing).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tests::TestApp;

tests::api_tests!(forged_and_misused_tokens_never_reach_a_handler);

/// The key `tests::test_config` signs with.
const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

fn sign(algorithm: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

/// The claims of a token issued by the application (read with the right key).
fn claims_of(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_audience(&["prediction-markets-api"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("our own token decodes")
    .claims
}

fn with(claims: &Value, changes: &[(&str, Value)]) -> Value {
    let mut claims = claims.clone();
    for (name, value) in changes {
        if value.is_null() {
            claims.as_object_mut().map(|c| c.remove(*name));
        } else {
            claims[*name] = value.clone();
        }
    }
    claims
}

async fn forged_and_misused_tokens_never_reach_a_handler(app: TestApp) {
    let (user_id, token) = app.signed_in_user().await;
    let claims = claims_of(&token);
    let now = chrono::Utc::now().timestamp();
    let valid = sign(Algorithm::HS256, &claims, SECRET);
    let (header, payload) = {
        let mut parts = token.split('.');
        (
            parts.next().expect("a header"),
            parts.next().expect("a payload"),
        )
    };
    // base64url of {"alg":"none","typ":"JWT"}
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let admin_payload = {
        let admin = with(&claims, &[("role", json!("admin"))]);
        let forged = sign(
            Algorithm::HS256,
            &admin,
            "some-other-secret-of-at-least-32-bytes!!",
        );
        forged.split('.').nth(1).expect("a payload").to_owned()
    };
    let signature = token.rsplit('.').next().expect("a signature");

    // A session of a user who is then disabled, and one of a user who is then deleted.
    let (disabled_id, disabled_token) = app.signed_in_user().await;
    let (deleted_id, deleted_token) = app.signed_in_user().await;
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let disable = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/users/{disabled_id}")))
                .bearer_auth(&admin)
                .json(&json!({"disabled": true})),
        )
        .await;
    assert_eq!(disable.status, 200, "{}", disable.text);
    let delete = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/users/{deleted_id}")))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    let refresh_token = {
        let reply = app
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": format!("nobody-{user_id}@example.com"), "password": "x"}),
            )
            .await;
        assert_eq!(reply.status, 401);
        let email = format!("r-{}@example.com", uuid::Uuid::new_v4().simple());
        app.register(&email, "correct horse battery").await;
        let login = app
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        login.body["data"]["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned()
    };

    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "alg none, no signature",
            format!("{none_header}.{payload}."),
            "invalid_token",
        ),
        (
            "alg none, signature kept",
            format!("{none_header}.{payload}.{signature}"),
            "invalid_token",
        ),
        (
            "HS512 with the right key",
            sign(Algorithm::HS512, &claims, SECRET),
            "invalid_token",
        ),
        (
            "HS384 with the right key",
            sign(Algorithm::HS384, &claims, SECRET),
            "invalid_token",
        ),
        (
            "HS256 with another key",
            sign(
                Algorithm::HS256,
                &claims,
                "another-secret-that-is-32-bytes-long!!",
            ),
            "invalid_token",
        ),
        (
            "expired beyond the leeway",
            sign(
                Algorithm::HS256,
                &with(
                    &claims,
                    &[("iat", json!(now - 3600)), ("exp", json!(now - 60))],
                ),
                SECRET,
            ),
            "token_expired",
        ),
        (
            "not valid before an hour from now",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("nbf", json!(now + 3600))]),
                SECRET,
            ),
            "token_not_yet_valid",
        ),
        (
            "another issuer",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("iss", json!("https://evil.example"))]),
                SECRET,
            ),
            "invalid_token",
        ),
        (
            "another audience",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("aud", json!("admin-console"))]),
                SECRET,
            ),
            "invalid_token",
        ),
        (
            "no exp",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("exp", Value::Null)]),
                SECRET,
            ),
            "invalid_token",
        ),
        (
            "no session id",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("sid", Value::Null)]),
                SECRET,
            ),
            "invalid_token",
        ),
        (
            "another user's id on this session",
            sign(
                Algorithm::HS256,
                &with(&claims, &[("sub", json!(disabled_id))]),
                SECRET,
            ),
            "invalid_token",
        ),
        (
            "payload tampered (role admin)",
            format!("{header}.{admin_payload}.{signature}"),
            "invalid_token",
        ),
        (
            "a refresh token as an access token",
            refresh_token,
            "invalid_token",
        ),
        (
            "a disabled user's token",
            disabled_token,
            "account_disabled",
        ),
        ("a deleted user's token", deleted_token, "session_revoked"),
        ("garbage", "a.b.c".to_owned(), "invalid_token"),
    ];
    let market = json!({
        "name": "Should never exist", "description": "", "category": "test",
        "end_date": "2030-01-01T00:00:00Z",
    });
    for (attack, forged, expected) in &attacks {
        let reply = app
            .send(
                app.client
                    .post(app.url("/api/v1/markets"))
                    .bearer_auth(forged)
                    .json(&market),
            )
            .await;
        assert_eq!(reply.status, 401, "{attack}: {}", reply.text);
        assert_eq!(reply.body["code"], *expected, "{attack}: {}", reply.text);
        assert!(reply.header("www-authenticate").is_some(), "{attack}");
    }
    assert_eq!(
        app.get("/api/v1/markets").await.body["meta"]["total"],
        0,
        "no forged request reached the handler"
    );
    // The control: the genuine token (re-signed unchanged) works.
    assert_eq!(app.get_as(&valid, "/api/v1/users/me").await.status, 200);
}
