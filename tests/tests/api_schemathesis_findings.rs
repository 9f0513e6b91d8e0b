//! What schemathesis (tests/schemathesis/run) found, kept as fast regression tests: error bodies
//! asked for with `Accept-Encoding: gzip` are not labelled with an encoding they do not have, the
//! fields of a PATCH are never `null`, and page numbers stay within the documented bound.

use reqwest::Method;
use serde_json::json;
use tests::TestApp;

tests::api_tests!(
    errors_re_rendered_with_the_request_id_carry_no_stale_content_encoding,
    patch_fields_may_be_left_out_but_not_null,
    page_numbers_stop_at_the_documented_bound,
);

async fn errors_re_rendered_with_the_request_id_carry_no_stale_content_encoding(app: TestApp) {
    for (method, path) in [
        (Method::POST, "/health/live"),
        (Method::GET, "/api/v1/markets/not-a-uuid"),
        (Method::GET, "/api/v1/markets?limit=0"),
        (Method::GET, "/api/v1/no-such-route"),
    ] {
        let reply = app
            .send(
                app.client
                    .request(method.clone(), app.url(path))
                    .header("accept-encoding", "gzip"),
            )
            .await;
        assert!((400..500).contains(&reply.status), "{method} {path}");
        match reply.header("content-encoding") {
            // Compressed: then the body really is (it is no longer readable JSON).
            Some("gzip") => assert!(reply.body.is_null(), "{method} {path}: {}", reply.text),
            Some(other) => panic!("{method} {path}: unexpected content-encoding {other}"),
            None => {
                assert_eq!(reply.body["success"], false, "{method} {path}");
                assert!(reply.body["request_id"].is_string(), "{method} {path}");
            }
        }
    }
}

async fn patch_fields_may_be_left_out_but_not_null(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Will it snow?", "weather").await;
    let path = format!(
        "/api/v1/markets/{}",
        market["id"].as_str().unwrap_or_default()
    );
    let patch = |body: serde_json::Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .json(&body)
    };
    for body in [json!({}), json!({"name": null}), json!({"category": null})] {
        let reply = app.send(patch(body.clone())).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed", "{body}");
    }
    let reply = app
        .send(patch(json!({"name": "Will it snow in May?"})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn page_numbers_stop_at_the_documented_bound(app: TestApp) {
    let reply = app.get("/api/v1/markets?page=10001&limit=100").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for query in ["page=10002", "page=10002&limit=1"] {
        let reply = app.get(&format!("/api/v1/markets?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.body["details"][0]["field"], "page", "{query}");
    }
}
