//! Bad input sent to every endpoint: each gets a 4xx in the error envelope with a stable code,
//! never a 5xx, and nothing is written.

use reqwest::Method;
use serde_json::json;
use tests::TestApp;

tests::api_tests!(
    bad_input_to_every_endpoint_gets_a_clear_4xx_in_the_envelope,
    list_parameters_out_of_bounds_name_the_parameter,
    an_oversized_body_is_refused_before_it_is_parsed,
    unknown_routes_and_methods_answer_in_the_envelope,
    a_sane_client_request_id_is_echoed_and_a_bad_one_replaced,
    too_many_or_too_large_headers_are_refused_with_431,
);

struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(method: Method, path: &str, body: &[u8], status: u16, code: &'static str) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: body.to_vec(),
        status,
        code,
    }
}

async fn bad_input_to_every_endpoint_gets_a_clear_4xx_in_the_envelope(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Target market", "test").await;
    let market_path = format!("/api/v1/markets/{}", market["id"].as_str().expect("an id"));
    let long_name = format!(
        r#"{{"name":"{}","category":"test","end_date":"2030-01-01T00:00:00Z"}}"#,
        "n".repeat(10_000)
    );
    let mut cases = Vec::new();
    for (method, path) in [
        (Method::POST, "/api/v1/auth/register"),
        (Method::POST, "/api/v1/auth/login"),
        (Method::POST, "/api/v1/markets"),
        (Method::PUT, market_path.as_str()),
        (Method::PATCH, market_path.as_str()),
    ] {
        cases.extend([
            case(method.clone(), path, b"{bad", 400, "malformed_request"),
            case(method.clone(), path, b"", 400, "malformed_request"),
            case(
                method.clone(),
                path,
                b"\x00\x01\x02",
                400,
                "malformed_request",
            ),
            case(
                method.clone(),
                path,
                b"{\"\xff\xfe\": 1}",
                400,
                "malformed_request",
            ),
            case(method.clone(), path, b"[1, 2, 3]", 400, "validation_failed"),
            case(
                method.clone(),
                path,
                b"{\"unknown\": 1}",
                400,
                "validation_failed",
            ),
            case(
                method.clone(),
                path,
                long_name.as_bytes(),
                400,
                "validation_failed",
            ),
            Case {
                content_type: Some("text/plain"),
                ..case(method.clone(), path, b"{}", 415, "unsupported_media_type")
            },
            Case {
                content_type: None,
                ..case(method.clone(), path, b"{}", 415, "unsupported_media_type")
            },
        ]);
    }
    cases.extend([
        case(
            Method::POST,
            "/api/v1/auth/register",
            br#"{"email":"nul\u0000@example.com","password":"correct horse","name":"N"}"#,
            400,
            "validation_failed",
        ),
        case(
            Method::POST,
            "/api/v1/auth/register",
            br#"{"email":"a@example.com","password":"correct horse","name":"a\u0000b"}"#,
            400,
            "validation_failed",
        ),
        case(
            Method::POST,
            "/api/v1/markets",
            br#"{"name":"ok name","category":"Not A Slug","end_date":"2030-01-01T00:00:00Z"}"#,
            400,
            "validation_failed",
        ),
        case(
            Method::POST,
            "/api/v1/markets",
            br#"{"name":"ok name","category":"test","end_date":"tomorrow"}"#,
            400,
            "validation_failed",
        ),
        case(Method::PATCH, &market_path, b"{}", 400, "validation_failed"),
        case(
            Method::PATCH,
            &market_path,
            br#"{"status":"bogus"}"#,
            400,
            "validation_failed",
        ),
        case(
            Method::PATCH,
            &market_path,
            br#"{"outcome":"yes"}"#,
            400,
            "validation_failed",
        ),
        case(
            Method::GET,
            "/api/v1/markets/not-a-uuid",
            b"",
            400,
            "malformed_request",
        ),
        case(
            Method::PUT,
            "/api/v1/markets/not-a-uuid",
            br#"{}"#,
            400,
            "malformed_request",
        ),
        case(
            Method::DELETE,
            "/api/v1/markets/42",
            b"",
            400,
            "malformed_request",
        ),
        case(
            Method::GET,
            "/api/v1/users/not-a-uuid",
            b"",
            400,
            "malformed_request",
        ),
        case(
            Method::GET,
            "/api/v1/markets?foo=1",
            b"",
            400,
            "malformed_request",
        ),
        case(
            Method::GET,
            "/api/v1/markets?limit=1&limit=2",
            b"",
            400,
            "malformed_request",
        ),
        case(
            Method::GET,
            "/api/v1/markets?q=%00",
            b"",
            400,
            "validation_failed",
        ),
    ]);

    for case in cases {
        let mut request = app
            .client
            .request(case.method.clone(), app.url(&case.path))
            .bearer_auth(&token)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let reply = app.send(request).await;
        let label = format!(
            "{} {} {:?}",
            case.method,
            case.path,
            String::from_utf8_lossy(&case.body[..case.body.len().min(60)])
        );
        assert_eq!(reply.status, case.status, "{label}: {}", reply.text);
        assert_eq!(reply.body["success"], false, "{label}");
        assert_eq!(reply.body["code"], case.code, "{label}: {}", reply.text);
        assert!(reply.body["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(
            reply.body["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }

    let after = app.get(&market_path).await;
    assert_eq!(
        after.body["data"]["version"], 1,
        "no bad request changed the market"
    );
    assert_eq!(app.get("/api/v1/markets").await.body["meta"]["total"], 1);
}

async fn list_parameters_out_of_bounds_name_the_parameter(app: TestApp) {
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=1000001", "offset"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=2&offset=3", "page"),
        ("sort=password_hash", "sort"),
        ("sort=name,name", "sort"),
        ("sort=", "sort"),
        ("sort=name,volume,end_date,created_at,updated_at", "sort"),
        ("fields=secret", "fields"),
        ("status=open", "status"),
        ("category=Bad%20Category", "category"),
        ("creator_id=me", "creator_id"),
        ("min_volume=-5", "min_volume"),
        ("min_volume=1.234", "min_volume"),
        ("end_before=yesterday", "end_before"),
        ("end_after=2030-13-01T00:00:00Z", "end_after"),
        ("q=", "q"),
    ] {
        let reply = app.get(&format!("/api/v1/markets?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed", "{query}");
        assert_eq!(
            reply.body["details"][0]["field"], field,
            "{query}: {}",
            reply.text
        );
    }
    let long_q = app
        .get(&format!("/api/v1/markets?q={}", "q".repeat(101)))
        .await;
    assert_eq!(long_q.status, 400);
    let many = app.get("/api/v1/markets?limit=0&sort=nope&status=x").await;
    assert_eq!(
        many.body["details"].as_array().map(Vec::len),
        Some(3),
        "every invalid parameter is reported at once: {}",
        many.text
    );
}

async fn an_oversized_body_is_refused_before_it_is_parsed(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let description = "d".repeat(70 * 1024);
    let reply = app
        .post_json_as(
            &token,
            "/api/v1/markets",
            &json!({"name": "Big", "category": "test", "end_date": "2030-01-01T00:00:00Z", "description": description}),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.body["code"], "payload_too_large");
}

async fn unknown_routes_and_methods_answer_in_the_envelope(app: TestApp) {
    let missing = app.get("/api/v1/nothing-here").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], "not_found");
    let wrong_method = app
        .send(app.client.delete(app.url("/api/v1/markets")))
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["code"], "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, POST"));
    let wrong_on_item = app
        .send(
            app.client
                .post(app.url("/api/v1/markets/00000000-0000-7000-8000-000000000000")),
        )
        .await;
    assert_eq!(wrong_on_item.status, 405);
    assert_eq!(
        wrong_on_item.header("allow"),
        Some("GET, PUT, PATCH, DELETE")
    );
}

async fn a_sane_client_request_id_is_echoed_and_a_bad_one_replaced(app: TestApp) {
    let kept = app
        .send(
            app.client
                .get(app.url("/api/v1/markets/not-a-uuid"))
                .header("x-request-id", "trace-42.a_b:c"),
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-42.a_b:c"));
    assert_eq!(kept.body["request_id"], "trace-42.a_b:c");
    let replaced = app
        .send(
            app.client
                .get(app.url("/health/live"))
                .header("x-request-id", "bad id <script>"),
        )
        .await;
    let id = replaced.header("x-request-id").expect("an id");
    assert_ne!(id, "bad id <script>");
    assert_eq!(id.len(), 36, "a generated UUID");
}

/// actix-web refuses a request head with more than 96 headers or over 128 KiB with 431 (a bound
/// of the HTTP layer, documented in docs/operations.md) before any handler runs.
async fn too_many_or_too_large_headers_are_refused_with_431(app: TestApp) {
    let mut many = app.client.get(app.url("/health/live"));
    for n in 0..100 {
        many = many.header(format!("x-filler-{n}"), "1");
    }
    let response = many.send().await.expect("an answer");
    assert_eq!(response.status(), 431);

    let huge = app
        .client
        .get(app.url("/health/live"))
        .header("x-filler", "a".repeat(140 * 1024))
        .send()
        .await
        .expect("an answer");
    assert_eq!(huge.status(), 431);

    let fine = app.get("/health/live").await;
    assert_eq!(fine.status, 200, "the service is unaffected");
}
