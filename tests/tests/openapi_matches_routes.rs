//! The served OpenAPI document is the one the code builds, and every operation it lists is really
//! routed (no 404 "no such route", no 405).

use serde_json::Value;
use tests::{Backend, TestApp};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_one_the_code_builds() {
    let app = app().await;
    let served = app.get("/api/openapi.json").await;
    assert_eq!(served.status, 200);
    let built = serde_json::to_value(adapter_http::openapi::document()).expect("JSON");
    assert_eq!(served.body, built);
    assert!(
        built["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_documents_its_errors() {
    let app = app().await;
    let document = serde_json::to_value(adapter_http::openapi::document()).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 8, "{paths:?}");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
        for (method, operation) in item.as_object().expect("a path item") {
            let method: reqwest::Method = method.to_uppercase().parse().expect("a method");
            let reply = app
                .send(app.client.request(method.clone(), app.url(&concrete)))
                .await;
            let label = format!("{method} {path}");
            assert_ne!(reply.status, 405, "{label} is documented but not routed");
            assert!(
                !(reply.status == 404 && reply.body["error"] == "no such route"),
                "{label} is documented but not routed"
            );
            assert!(reply.status < 500, "{label}: {}", reply.text);
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.contains_key("500"), "{label} documents 500");
            assert_eq!(
                responses.contains_key("429"),
                path.starts_with("/api/v1/"),
                "{label}: 429 exactly on the rate-limited /api/v1 operations"
            );
            let documented = responses.contains_key(&reply.status.to_string());
            assert!(
                documented,
                "{label} answered {} which is not documented: {}",
                reply.status, reply.text
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema,
                        &Value::from("#/components/schemas/ErrorBody"),
                        "{label} {status} uses the error schema"
                    );
                }
            }
            operations += 1;
        }
    }
    assert!(operations >= 12, "{operations} operations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_is_served_without_any_network() {
    let app = app().await;
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.to_lowercase().contains("swagger"));
    assert!(
        !page.text.contains("unpkg.com") && !page.text.contains("cdn."),
        "assets are embedded, not fetched from a CDN"
    );
    let script = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script.text.len() > 100_000,
        "the bundle is served from the binary"
    );
}
