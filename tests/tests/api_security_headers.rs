//! Browser-facing protections seen from outside: security headers on every response (errors
//! included), Content-Security-Policies (the live page's, the API's default, none on the docs
//! page), and CORS only for configured origins, never with credentials.

use tests::{Backend, TestApp, TestDatabase, test_config};

tests::api_tests!(
    every_response_carries_the_security_headers,
    content_security_policies_are_strict_except_on_the_docs_page,
);

async fn every_response_carries_the_security_headers(app: TestApp) {
    for path in [
        "/api/v1/markets",
        "/api/v1/markets/not-a-uuid",
        "/health/live",
        "/api/openapi.json",
    ] {
        let reply = app.get(path).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
    }
}

async fn content_security_policies_are_strict_except_on_the_docs_page(app: TestApp) {
    for path in ["/live", "/live/live.js", "/live/live.css"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-security-policy"),
            Some(adapter_http::stream::live::CONTENT_SECURITY_POLICY),
            "{path}"
        );
    }
    let page = app.get("/live").await;
    let policy = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");

    for path in [
        "/api/v1/markets",
        "/api/v1/markets/not-a-uuid",
        "/api/v1/no-such-route",
        "/health/live",
        "/api/openapi.json",
    ] {
        let reply = app.get(path).await;
        assert_eq!(
            reply.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{path}"
        );
    }

    // Swagger UI runs inline scripts and styles: no default policy, and it still serves.
    let docs = app.get("/api/docs/").await;
    assert_eq!(docs.status, 200, "{}", docs.text);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    assert_eq!(docs.header("content-security-policy"), None);
    let initializer = app.get("/api/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status, 200);
    assert_eq!(initializer.header("content-security-policy"), None);
}

async fn app_with_cors(origins: &str) -> TestApp {
    let origins = origins.to_owned();
    TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), move |url| {
        let mut config = test_config(url);
        config.http.cors_allowed_origins = origins;
        config
    })
    .await
}

async fn preflight(app: &TestApp, origin: &str) -> tests::Reply {
    app.send(
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/markets"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_origins_get_cors_and_never_credentials() {
    let app = app_with_cors("https://app.example.com").await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .expect("allowed methods");
    assert!(methods.contains("POST"), "{methods}");
    assert_eq!(allowed.header("access-control-allow-credentials"), None);

    let simple = app
        .send(
            app.client
                .get(app.url("/api/v1/markets"))
                .header("origin", "https://app.example.com"),
        )
        .await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let exposed = simple
        .header("access-control-expose-headers")
        .expect("exposed headers")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("x-request-id"),
        "{exposed}"
    );

    let refused = preflight(&app, "https://evil.example.com").await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let other = app
        .send(
            app.client
                .get(app.url("/api/v1/markets"))
                .header("origin", "https://evil.example.com"),
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_sends_star_without_credentials_and_no_list_means_no_cors() {
    let any = app_with_cors("*").await;
    let reply = preflight(&any, "https://anyone.example.org").await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);

    let none = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    let reply = none
        .send(
            none.client
                .get(none.url("/api/v1/markets"))
                .header("origin", "https://app.example.com"),
        )
        .await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}
