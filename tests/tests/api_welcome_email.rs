//! Registration and its welcome email: the job is committed with the user, on SQLite and PostgreSQL.

use adapter_persistence::SeaJobQueue;
use domain::PageRequest;
use domain::ports::JobQueue;
use serde_json::json;
use std::time::{Duration, Instant};

use adapter_mail::MailTransport;
use tests::{Backend, TestApp, TestDatabase, api_tests, test_config};
use uuid::Uuid;

api_tests!(registering_enqueues_one_welcome_email_job_for_the_user);

async fn registering_enqueues_one_welcome_email_job_for_the_user(app: TestApp) {
    let email = format!("welcome-{}@example.com", Uuid::new_v4().simple());
    let user_id = app.register(&email, "correct horse battery").await;
    // A registration that fails (the email is taken) leaves no job behind.
    let again = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": "correct horse battery", "name": "Again"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);

    let jobs = SeaJobQueue::new(app.pools.clone())
        .list(None, PageRequest::new(100, 0).expect("a page"))
        .await
        .expect("the jobs");
    let welcomes: Vec<_> = jobs
        .items
        .iter()
        .filter(|job| job.kind.as_str() == "welcome_email")
        .collect();
    assert_eq!(welcomes.len(), 1, "{:?}", jobs.items);
    let job = welcomes[0];
    assert_eq!(
        job.owner.map(|owner| owner.to_string()),
        Some(user_id.clone())
    );
    assert_eq!(
        job.unique_key.as_deref(),
        Some(format!("welcome_email:{user_id}").as_str())
    );
    let payload: serde_json::Value = serde_json::from_str(&job.payload).expect("JSON");
    assert_eq!(payload, json!({ "user_id": user_id }));
}

/// Registers a user on an app whose mail goes to `.eml` files, and waits (10 s at most) for
/// the welcome email that the job workers running inside `serve` send.
async fn a_registered_user_receives_a_welcome_email(backend: Backend) {
    let Some(database) = TestDatabase::of(backend).await else {
        return;
    };
    let folder = std::env::temp_dir().join(format!("welcome-mail-{}", Uuid::new_v4()));
    let mail_folder = folder.clone();
    let app = TestApp::spawn_with(backend, database, move |url| {
        let mut config = test_config(url);
        config.mail.transport = MailTransport::File;
        config.mail.file_dir = mail_folder;
        config
    })
    .await;
    let email = format!("welcome-{}@example.com", Uuid::new_v4().simple());
    app.register(&email, "correct horse battery").await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let found = std::fs::read_dir(&folder).ok().and_then(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                .filter_map(|path| std::fs::read_to_string(path).ok())
                .find(|text| text.contains(&format!("<{email}>")))
        });
        if let Some(text) = found {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no welcome email for {email} in {} within 10 s",
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        message.contains("Subject: Welcome to Prediction Markets\r\n"),
        "{message}"
    );
    assert!(message.contains("Hello Test User"), "{message}");
    std::fs::remove_dir_all(&folder).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_registered_user_receives_a_welcome_email() {
    a_registered_user_receives_a_welcome_email(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_registered_user_receives_a_welcome_email() {
    a_registered_user_receives_a_welcome_email(Backend::Postgres).await;
}
