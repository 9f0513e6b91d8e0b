//! `GET /metrics` read before and after a known workload: request counts by route template and
//! status, latency histograms, database statements, cache tiers, the job queue and build info.

use serde_json::json;
use tests::TestApp;

tests::api_tests!(metrics_count_a_known_workload);

/// The value of the sample whose line starts with `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("a scrape");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.expect("the text")
}

async fn metrics_count_a_known_workload(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = app
        .create_market(&token, "Will metrics add up?", "ops")
        .await;
    let id = market["id"].as_str().expect("an id");
    let before = scrape(&app).await;

    for _ in 0..3 {
        assert_eq!(app.get(&format!("/api/v1/markets/{id}")).await.status, 200);
    }
    let missing = uuid::Uuid::now_v7();
    assert_eq!(
        app.get(&format!("/api/v1/markets/{missing}")).await.status,
        404
    );
    let refused = app
        .post_json("/api/v1/markets", &json!({"name": "anonymous"}))
        .await;
    assert_eq!(refused.status, 401);

    let after = scrape(&app).await;
    let ok = r#"http_requests_total{method="GET",route="/api/v1/markets/{id}",status="200"}"#;
    let not_found =
        r#"http_requests_total{method="GET",route="/api/v1/markets/{id}",status="404"}"#;
    let unauthorized = r#"http_requests_total{method="POST",route="/api/v1/markets",status="401"}"#;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 3.0, "{after}");
    assert_eq!(sample(&after, not_found) - sample(&before, not_found), 1.0);
    assert_eq!(
        sample(&after, unauthorized) - sample(&before, unauthorized),
        1.0
    );
    let latency =
        r#"http_request_duration_seconds_count{method="GET",route="/api/v1/markets/{id}"}"#;
    assert_eq!(sample(&after, latency) - sample(&before, latency), 4.0);

    let statements = r#"db_statements_total{outcome="ok"}"#;
    assert!(
        sample(&after, statements) > sample(&before, statements),
        "the 404 read the database"
    );
    assert!(sample(&after, "db_statement_duration_seconds_count") > 0.0);
    assert!(
        sample(&after, r#"cache_hits_total{tier="memory"}"#) >= 2.0,
        "{after}"
    );
    assert!(after.contains(r#"jobs{state="dead"} "#), "{after}");
    assert!(after.contains("websocket_connections "), "{after}");
    assert_eq!(
        sample(
            &after,
            &format!(r#"build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
    assert!(after.trim_end().ends_with("# EOF"));
}

/// The metric names a PromQL query selects: identifiers followed by `{` or `[`.
fn selected_metrics(expr: &str) -> Vec<String> {
    expr.match_indices(['{', '['])
        .filter_map(|(at, _)| {
            let before = &expr[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// Every metric the Grafana dashboard in `docs/` queries is one the service exports, once a
/// little of everything happened (a request, a market event, a job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_exported_metrics() {
    let Some(app) = TestApp::spawn(tests::Backend::Sqlite).await else {
        return;
    };
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/grafana-dashboard.json"))
            .expect("the dashboard is JSON");
    let mut wanted: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| {
            let expr = panel["targets"][0]["expr"].as_str().expect("a query");
            let names = selected_metrics(expr);
            assert!(!names.is_empty(), "no metric found in {expr}");
            names
        })
        .collect();
    wanted.sort();
    wanted.dedup();

    let (_, token) = app.signed_in_user().await;
    let market = app
        .create_market(&token, "Will the dashboard work?", "ops")
        .await;
    let id = market["id"].as_str().expect("an id");
    app.get(&format!("/api/v1/markets/{id}")).await;
    let job = domain::NewJob::new(
        domain::JobId::from_uuid(uuid::Uuid::now_v7()),
        domain::JobKind::parse("noop").expect("a kind"),
        "{}",
        chrono::Utc::now(),
    )
    .expect("a job");
    domain::ports::JobQueue::enqueue(
        &adapter_persistence::SeaJobQueue::new(app.pools.clone()),
        &job,
    )
    .await
    .expect("enqueue");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let exported = scrape(&app).await;
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|name| {
                let family = name
                    .strip_suffix("_total")
                    .or_else(|| name.strip_suffix("_bucket"))
                    .unwrap_or(name);
                !exported.contains(&format!("# TYPE {family} "))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard queries {missing:?}, which /metrics does not export:\n{exported}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
