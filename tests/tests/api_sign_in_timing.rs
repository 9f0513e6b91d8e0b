//! Sign-in must not tell which accounts exist by its timing: an unknown email costs the same
//! argon2id verification (against a dummy hash) as a wrong password for a known one.
//!
//! Not a speed target: the hash costs are raised so that one verification dominates a request,
//! and the two medians must agree within a wide margin. Skipping the dummy verification makes
//! unknown emails answer tens of times faster, which this catches.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{Backend, TestApp, TestDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_and_wrong_passwords_take_the_same_time() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), |url| {
        let mut config = tests::test_config(url);
        config.auth.argon2_memory_kib = 4096;
        config.auth.argon2_iterations = 2;
        config
    })
    .await;
    app.register("timed@example.com", "correct horse battery")
        .await;
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let reply = app
                .post_json(
                    "/api/v1/auth/login",
                    &json!({"email": email, "password": "wrong horse battery"}),
                )
                .await;
            assert_eq!(reply.status, 401);
            assert_eq!(reply.body["code"], "unauthorized");
            started.elapsed()
        }
    };
    // Warm up (connections, the dummy hash).
    attempt("nobody@example.com").await;
    attempt("timed@example.com").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        known.push(attempt("timed@example.com").await);
        unknown.push(attempt("nobody@example.com").await);
    }
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median(known), median(unknown));
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown {unknown:?} vs known {known:?} (ratio {ratio:.2})"
    );
}
