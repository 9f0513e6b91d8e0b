//! Jobs of the domain over HTTP, on SQLite and PostgreSQL: settlement of resolved and cancelled
//! markets (paid once, also when run again), the scheduled closing of ended markets, the
//! dead-letter queue inspected and replayed by an admin, and a job followed by its owner.

use std::time::{Duration, Instant};

use adapter_persistence::SeaJobQueue;
use application::markets::settle_market_job;
use chrono::Utc;
use domain::ports::JobQueue;
use domain::{JobId, JobKind, MarketId, NewJob, Role, UserId};
use serde_json::{Value, json};
use tests::{Backend, Reply, TestApp, TestDatabase, test_config};
use uuid::Uuid;

tests::api_tests!(
    a_resolved_market_pays_its_winners_once_even_when_settled_again,
    a_cancelled_market_refunds_every_stake,
    a_dead_job_is_listed_for_admins_and_replayed,
    a_job_is_visible_to_its_owner_and_admins_only,
    job_lists_reject_bad_parameters,
);

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> Reply {
    app.send(
        app.client
            .patch(app.url(&format!("/api/v1/markets/{id}")))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn open(app: &TestApp, token: &str, market_id: &str, side: &str, amount: &str) {
    let reply = app
        .post_json_as(
            token,
            &format!("/api/v1/markets/{market_id}/positions"),
            &json!({"side": side, "amount": amount}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

async fn balance(app: &TestApp, token: &str) -> String {
    app.get_as(token, "/api/v1/users/me").await.body["data"]["balance"]
        .as_str()
        .expect("a balance")
        .to_owned()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `seconds`.
async fn eventually<T>(seconds: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The positions of a market once every one of them has a payout: `user id -> payout`.
async fn payouts(app: &TestApp, market_id: &str) -> Vec<(String, String)> {
    eventually(20, "every position to be paid", async || {
        let reply = app
            .get(&format!("/api/v1/markets/{market_id}/positions?limit=100"))
            .await;
        let positions = reply.body["data"].as_array()?.clone();
        positions
            .iter()
            .map(|position| {
                Some((
                    position["user_id"].as_str()?.to_owned(),
                    position["payout"].as_str()?.to_owned(),
                ))
            })
            .collect()
    })
    .await
}

fn queue(app: &TestApp) -> SeaJobQueue {
    SeaJobQueue::new(app.pools.clone())
}

/// Waits until the job `id` is in `state`, as an admin sees it through the API.
async fn job_in_state(app: &TestApp, admin: &str, id: &str, state: &str) -> Value {
    eventually(20, &format!("job {id} to be {state}"), async || {
        let reply = app.get_as(admin, &format!("/api/v1/jobs/{id}")).await;
        (reply.body["data"]["state"] == state).then(|| reply.body["data"].clone())
    })
    .await
}

async fn a_resolved_market_pays_its_winners_once_even_when_settled_again(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, moderator) = app.signed_in_with_role(Role::Moderator).await;
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let (alice_id, alice) = app.signed_in_user().await;
    let (bob_id, bob) = app.signed_in_user().await;
    let (carol_id, carol) = app.signed_in_user().await;
    let market = app.create_market(&owner, "Will it settle?", "jobs").await;
    let market_id = market["id"].as_str().expect("an id").to_owned();
    open(&app, &alice, &market_id, "yes", "30.00").await;
    open(&app, &bob, &market_id, "yes", "10.00").await;
    open(&app, &carol, &market_id, "no", "60.00").await;

    let resolved = patch(
        &app,
        &moderator,
        &market_id,
        json!({"status": "resolved", "outcome": "yes"}),
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);

    // The pool of 100.00 goes to the YES side in proportion: 30/40 and 10/40.
    let mut paid = payouts(&app, &market_id).await;
    paid.sort();
    let mut expected = vec![
        (alice_id.clone(), "75.00".to_owned()),
        (bob_id.clone(), "25.00".to_owned()),
        (carol_id.clone(), "0.00".to_owned()),
    ];
    expected.sort();
    assert_eq!(paid, expected);
    let balances = [
        balance(&app, &alice).await,
        balance(&app, &bob).await,
        balance(&app, &carol).await,
    ];
    assert_eq!(balances, ["1045.00", "1015.00", "940.00"]);

    // The settlement job is listed as succeeded.
    let succeeded = app
        .get_as(&admin, "/api/v1/jobs?state=succeeded&limit=100")
        .await;
    assert_eq!(succeeded.status, 200, "{}", succeeded.text);
    let settlement = succeeded.body["data"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|job| {
            job["kind"] == "settle_market" && job["payload"]["market_id"] == market_id.as_str()
        })
        .cloned()
        .expect("the settlement job");
    assert_eq!(settlement["attempts"], 1);
    assert_eq!(settlement["priority"], "high");

    // Settling again (a duplicate delivery, an operator's re-run) pays nothing more.
    let again = settle_market_job(
        JobId::from_uuid(Uuid::now_v7()),
        MarketId::from_uuid(market_id.parse().expect("a uuid")),
        Utc::now(),
    )
    .expect("a job");
    let again = queue(&app).enqueue(&again).await.expect("enqueue").id();
    job_in_state(&app, &admin, &again.to_string(), "succeeded").await;
    assert_eq!(
        [
            balance(&app, &alice).await,
            balance(&app, &bob).await,
            balance(&app, &carol).await,
        ],
        balances,
        "a second settlement changes nothing"
    );
}

async fn a_cancelled_market_refunds_every_stake(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let (_, moderator) = app.signed_in_with_role(Role::Moderator).await;
    let (_, alice) = app.signed_in_user().await;
    let (_, bob) = app.signed_in_user().await;
    let market = app
        .create_market(&owner, "Will it be called off?", "jobs")
        .await;
    let market_id = market["id"].as_str().expect("an id").to_owned();
    open(&app, &alice, &market_id, "yes", "12.34").await;
    open(&app, &bob, &market_id, "no", "56.78").await;
    assert_eq!(balance(&app, &alice).await, "987.66");

    let cancelled = patch(&app, &moderator, &market_id, json!({"status": "cancelled"})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);

    let mut paid: Vec<String> = payouts(&app, &market_id)
        .await
        .into_iter()
        .map(|(_, payout)| payout)
        .collect();
    paid.sort();
    assert_eq!(paid, ["12.34", "56.78"]);
    assert_eq!(balance(&app, &alice).await, "1000.00");
    assert_eq!(balance(&app, &bob).await, "1000.00");
}

async fn a_dead_job_is_listed_for_admins_and_replayed(app: TestApp) {
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let (_, user) = app.signed_in_user().await;
    // A settlement of a market that does not exist can never succeed: dead at its first attempt.
    let doomed = settle_market_job(
        JobId::from_uuid(Uuid::now_v7()),
        MarketId::from_uuid(Uuid::now_v7()),
        Utc::now(),
    )
    .expect("a job");
    let id = queue(&app)
        .enqueue(&doomed)
        .await
        .expect("enqueue")
        .id()
        .to_string();
    let dead = job_in_state(&app, &admin, &id, "dead").await;
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["last_error"], "the market no longer exists");

    let letters = app.get_as(&admin, "/api/v1/jobs?state=dead").await;
    assert_eq!(letters.status, 200, "{}", letters.text);
    assert!(
        letters.body["data"]
            .as_array()
            .expect("jobs")
            .iter()
            .any(|job| job["id"] == id.as_str()),
        "{}",
        letters.text
    );
    assert!(letters.body["meta"]["total"].as_u64() >= Some(1));

    let not_admin = app.get_as(&user, "/api/v1/jobs?state=dead").await;
    assert_eq!(not_admin.status, 403, "{}", not_admin.text);
    let retry_path = format!("/api/v1/jobs/{id}/retry");
    let not_admin = app.post_json_as(&user, &retry_path, &json!({})).await;
    assert_eq!(not_admin.status, 403, "{}", not_admin.text);

    let retried = app.post_json_as(&admin, &retry_path, &json!({})).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.body["data"]["attempts"], 0);
    assert_eq!(
        retried.body["data"]["last_error"], "the market no longer exists",
        "the last error is kept until the job runs again"
    );
    // It runs again, fails the same way, and is a dead letter once more.
    let dead_again = eventually(20, "the replayed job to die again", async || {
        let reply = app.get_as(&admin, &format!("/api/v1/jobs/{id}")).await;
        (reply.body["data"]["state"] == "dead" && reply.body["data"]["attempts"] == 1)
            .then(|| reply.body["data"].clone())
    })
    .await;
    assert_eq!(dead_again["last_error"], "the market no longer exists");

    // Only a dead job can be retried.
    let job = NewJob::new(
        JobId::from_uuid(Uuid::now_v7()),
        JobKind::parse("noop").expect("a kind"),
        "{}",
        Utc::now(),
    )
    .expect("a job");
    let done = queue(&app)
        .enqueue(&job)
        .await
        .expect("enqueue")
        .id()
        .to_string();
    job_in_state(&app, &admin, &done, "succeeded").await;
    let refused = app
        .post_json_as(&admin, &format!("/api/v1/jobs/{done}/retry"), &json!({}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["code"], "job_not_dead");
    let missing = app
        .post_json_as(
            &admin,
            &format!("/api/v1/jobs/{}/retry", Uuid::now_v7()),
            &json!({}),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
}

async fn a_job_is_visible_to_its_owner_and_admins_only(app: TestApp) {
    let (owner_id, owner) = app.signed_in_user().await;
    let (_, stranger) = app.signed_in_user().await;
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let job = NewJob::new(
        JobId::from_uuid(Uuid::now_v7()),
        JobKind::parse("noop").expect("a kind"),
        "{}",
        Utc::now(),
    )
    .expect("a job")
    .with_owner(UserId::from_uuid(owner_id.parse().expect("a uuid")));
    let id = queue(&app)
        .enqueue(&job)
        .await
        .expect("enqueue")
        .id()
        .to_string();
    let path = format!("/api/v1/jobs/{id}");

    let mine = app.get_as(&owner, &path).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.body["data"]["owner_id"], owner_id.as_str());
    assert_eq!(mine.body["data"]["kind"], "noop");
    assert_eq!(app.get_as(&admin, &path).await.status, 200);
    let theirs = app.get_as(&stranger, &path).await;
    assert_eq!(theirs.status, 404, "another user's job is not revealed");
    assert_eq!(app.get(&path).await.status, 401);
    let unknown = app
        .get_as(&owner, &format!("/api/v1/jobs/{}", Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status, 404);
}

async fn job_lists_reject_bad_parameters(app: TestApp) {
    let (_, admin) = app.signed_in_with_role(Role::Admin).await;
    let reply = app
        .get_as(&admin, "/api/v1/jobs?state=exploded&limit=1000")
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["code"], "validation_failed");
    let fields: Vec<&str> = reply.body["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|detail| detail["field"].as_str())
        .collect();
    assert_eq!(fields, ["state", "limit"]);
    let reply = app.get_as(&admin, "/api/v1/jobs/not-a-uuid").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(app.get("/api/v1/jobs").await.status, 401);
}

/// The application with the closing of ended markets scheduled every second.
async fn app_closing_every_second(backend: Backend) -> Option<TestApp> {
    let database = TestDatabase::of(backend).await?;
    Some(
        TestApp::spawn_with(backend, database, |url| {
            let mut config = test_config(url);
            config.jobs.close_markets_every_secs = 1;
            config
        })
        .await,
    )
}

async fn an_ended_market_is_closed_by_the_scheduled_job(app: TestApp) {
    let (_, owner) = app.signed_in_user().await;
    let ends = Utc::now() + chrono::Duration::seconds(2);
    let created = app
        .post_json_as(
            &owner,
            "/api/v1/markets",
            &json!({
                "name": "Will this end soon?",
                "category": "jobs",
                "end_date": ends.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let lasting = app.create_market(&owner, "Will this last?", "jobs").await;

    let closed = eventually(20, "the ended market to close", async || {
        let market = app.get(&format!("/api/v1/markets/{id}")).await.body["data"].clone();
        (market["status"] == "closed").then_some(market)
    })
    .await;
    assert!(closed["version"].as_i64() > Some(1));
    let lasting = app
        .get(&format!(
            "/api/v1/markets/{}",
            lasting["id"].as_str().expect("an id")
        ))
        .await;
    assert_eq!(
        lasting.body["data"]["status"], "active",
        "a market still running stays open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_ended_market_is_closed_by_the_scheduled_job() {
    if let Some(app) = app_closing_every_second(Backend::Sqlite).await {
        an_ended_market_is_closed_by_the_scheduled_job(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_ended_market_is_closed_by_the_scheduled_job() {
    if let Some(app) = app_closing_every_second(Backend::Postgres).await {
        an_ended_market_is_closed_by_the_scheduled_job(app).await;
    }
}
