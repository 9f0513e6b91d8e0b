//! Authorization as data, proven route by route: every operation of the served OpenAPI document,
//! for each caller (anonymous, another user, the owner, a moderator, an admin), against the
//! expected statuses in `tests/data/authorization-matrix.json`. An operation the document has
//! and the matrix lacks fails the test, as does a stale entry: a new route needs a decision.

use std::collections::BTreeSet;
use std::io::Cursor;

use serde_json::{Value, json};
use tests::{Backend, Reply, TestApp, TestDatabase};

const PASSWORD: &str = "correct horse battery";
const CALLERS: [&str; 5] = ["anonymous", "user", "owner", "moderator", "admin"];

/// What the path placeholders and bodies of one cell refer to: a regular user (the owner) with a
/// market, a bearer session and a welcome-email job, all new for the cell.
struct Fixture {
    owner_id: String,
    owner_email: String,
    owner_token: String,
    owner_refresh_token: String,
    session: String,
    market: String,
    job: String,
}

async fn fixture(app: &TestApp, admin: &str) -> Fixture {
    let owner_email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
    let owner_id = app.register(&owner_email, PASSWORD).await;
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": owner_email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let data = &login.body["data"];
    let text = |value: &Value| value.as_str().expect("a string").to_owned();
    let owner_token = text(&data["access_token"]);
    let market = app
        .create_market(&owner_token, "Whose market is it?", "test")
        .await;
    let jobs = app.get_as(admin, "/api/v1/jobs?limit=100").await;
    let job = jobs.body["data"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|job| job["owner_id"] == owner_id.as_str())
        .map(|job| text(&job["id"]))
        .expect("the owner's welcome-email job");
    Fixture {
        owner_id,
        owner_email,
        owner_refresh_token: text(&data["refresh_token"]),
        session: text(&data["session_id"]),
        owner_token,
        market: text(&market["id"]),
        job,
    }
}

impl Fixture {
    fn fill(&self, text: &str) -> String {
        text.replace("{market}", &self.market)
            .replace("{owner}", &self.owner_id)
            .replace("{session}", &self.session)
            .replace("{job}", &self.job)
            .replace("{owner_email}", &self.owner_email)
            .replace("{owner_refresh_token}", &self.owner_refresh_token)
            .replace(
                "{new_email}",
                &format!("new-{}@example.com", uuid::Uuid::new_v4().simple()),
            )
    }

    fn fill_body(&self, body: &Value) -> Value {
        match body {
            Value::String(text) => Value::String(self.fill(text)),
            Value::Object(fields) => fields
                .iter()
                .map(|(name, value)| (name.clone(), self.fill_body(value)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => other.clone(),
        }
    }
}

/// `METHOD /path` of every operation in the served document, with `{id}` placeholders named by
/// the matrix's convention (the resource the path is about).
async fn documented_operations(app: &TestApp) -> BTreeSet<String> {
    let document = app.get("/api/openapi.json").await.body;
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                operations.insert(format!("{} {}", method.to_uppercase(), named(path)));
            }
        }
    }
    operations
}

/// `/api/v1/markets/{id}/image` -> `/api/v1/markets/{market}/image`, and so on.
fn named(path: &str) -> String {
    let resource = if path.starts_with("/api/v1/markets/") {
        "{market}"
    } else if path.starts_with("/api/v1/users/") {
        "{owner}"
    } else if path.starts_with("/api/v1/jobs/") {
        "{job}"
    } else if path.starts_with("/api/v1/auth/sessions/") {
        "{session}"
    } else {
        return path.to_owned();
    };
    path.replace("{id}", resource)
}

fn png() -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
        4,
        4,
        image::Rgba([10, 20, 30, 255]),
    ))
    .write_to(&mut bytes, image::ImageFormat::Png)
    .expect("a PNG");
    let boundary = "matrix-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bytes.into_inner());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

async fn call(
    app: &TestApp,
    operation: &str,
    entry: &Value,
    fixture: &Fixture,
    token: Option<&str>,
) -> Reply {
    let (method, path) = operation.split_once(' ').expect("METHOD /path");
    let body = entry.get("body");
    let mut url = app.url(&fixture.fill(path));
    if let Some(query) = entry["query"].as_str() {
        url = format!("{url}?{query}");
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = app.client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match body {
        Some(Value::String(kind)) if kind == "png" => request
            .header(
                "content-type",
                "multipart/form-data; boundary=matrix-boundary",
            )
            .body(png()),
        Some(body) => request.json(&fixture.fill_body(body)),
        None => request,
    };
    app.send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_each_caller_as_the_matrix_says() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, TestDatabase::sqlite(), tests::test_config).await;
    let matrix: Value = serde_json::from_str(include_str!("../data/authorization-matrix.json"))
        .expect("the matrix is JSON");
    assert_eq!(matrix["callers"], json!(CALLERS));
    let entries = matrix["operations"].as_object().expect("operations");

    let documented = documented_operations(&app).await;
    let listed: BTreeSet<String> = entries.keys().cloned().collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "operations without a decision in tests/data/authorization-matrix.json: {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "matrix entries the document does not have: {stale:?}"
    );

    // The first admin comes from the database; the other callers get their roles over HTTP.
    let (_, admin) = app.signed_in_with_role(domain::Role::Admin).await;
    let mut role_emails = Vec::new();
    for role in [
        domain::Role::User,
        domain::Role::Moderator,
        domain::Role::Admin,
    ] {
        let email = format!(
            "{}-{}@example.com",
            role.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        app.register(&email, PASSWORD).await;
        let id = app
            .get_as(&admin, &format!("/api/v1/users?email_prefix={email}"))
            .await
            .body["data"][0]["id"]
            .as_str()
            .expect("the user")
            .to_owned();
        let changed = app
            .send(
                app.client
                    .patch(app.url(&format!("/api/v1/users/{id}")))
                    .bearer_auth(&admin)
                    .json(&json!({"role": role.as_str()})),
            )
            .await;
        assert_eq!(changed.status, 200, "{}", changed.text);
        role_emails.push(email);
    }

    let mut failures = Vec::new();
    let mut cells = 0;
    for (operation, entry) in entries {
        let expected = entry["expect"].as_array().expect("expect");
        assert_eq!(expected.len(), CALLERS.len(), "{operation}");
        for (caller, expected) in CALLERS.iter().zip(expected) {
            // A fresh fixture and fresh tokens per cell: deletions, logouts and revocations of one
            // cell must not decide another.
            let fixture = fixture(&app, &admin).await;
            let token = match *caller {
                "anonymous" => None,
                "owner" => Some(fixture.owner_token.clone()),
                other => {
                    let index = ["user", "moderator", "admin"]
                        .iter()
                        .position(|name| name == &other)
                        .expect("a caller");
                    Some(app.login(&role_emails[index], PASSWORD).await)
                }
            };
            let reply = call(&app, operation, entry, &fixture, token.as_deref()).await;
            cells += 1;
            if Some(u64::from(reply.status)) != expected.as_u64() {
                failures.push(format!(
                    "{operation} as {caller}: expected {expected}, got {} {}",
                    reply.status,
                    reply.text.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, entries.len() * CALLERS.len());
}
