//! `server serve` as a real process: its JSON logs carry the request id and the user id, a client
//! that sends its request head too slowly gets 408, and on SIGTERM under load readiness fails at
//! once while requests are still served for `http.shutdown_drain_secs` (a load balancer stops
//! sending meanwhile), then the listener closes, no request fails, and the process exits cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills the server if the test fails before it stops.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// A `server serve` child on a fresh SQLite file, and every line it logged so far.
struct Served {
    child: KillOnDrop,
    address: String,
    logs: Arc<Mutex<Vec<String>>>,
    folder: std::path::PathBuf,
}

impl Served {
    /// Starts the server; `head_timeout_ms` is `http.client_request_timeout_ms`.
    fn start(head_timeout_ms: u64) -> Self {
        let folder =
            std::env::temp_dir().join(format!("serve-process-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).expect("a temp folder");
        let database = format!("sqlite://{}/markets.db?mode=rwc", folder.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "test")
            .env("PORT", "0")
            .env("DATABASE_URL", &database)
            .env("APP_UPLOADS__DIR", folder.join("uploads"))
            .env("JWT_SECRET", "a-test-secret-that-is-at-least-32-bytes-long")
            .env("APP_HTTP__SHUTDOWN_DRAIN_SECS", "2")
            .env(
                "APP_HTTP__CLIENT_REQUEST_TIMEOUT_MS",
                head_timeout_ms.to_string(),
            )
            .env("APP_RATE_LIMIT__ENABLED", "false")
            .env("APP_AUTH__ARGON2_MEMORY_KIB", "8")
            .env("APP_AUTH__ARGON2_ITERATIONS", "1")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `server serve`");
        // Every log line goes to stderr; the bound address is logged once listening.
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let address: String = rest.chars().take_while(|c| *c != '"').collect();
                    address_tx.send(address).ok();
                }
                kept.lock().expect("the log").push(line);
            }
        });
        let child = KillOnDrop(child);
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address");
        Self {
            child,
            address,
            logs,
            folder,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn logged(&self) -> Vec<String> {
        self.logs.lock().expect("the log").clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.folder).ok();
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_request_names_its_request_id_and_its_user() {
    let served = Served::start(5_000);
    let client = reqwest::Client::new();
    let registered = client
        .post(served.url("/api/v1/auth/register"))
        .json(&json!({"email": "logs@example.com", "password": "correct horse battery", "name": "Logs"}))
        .send()
        .await
        .expect("registered");
    assert_eq!(registered.status(), 201);
    let user_id = json_of(registered).await["data"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let signed_in = client
        .post(served.url("/api/v1/auth/login"))
        .json(&json!({"email": "logs@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("signed in");
    let token = json_of(signed_in).await["data"]["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let me = client
        .get(served.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-0001")
        .send()
        .await
        .expect("an answer");
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-0001")
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    let completed = loop {
        let lines: Vec<String> = served
            .logged()
            .into_iter()
            .filter(|line| line.contains("trace-me-0001"))
            .collect();
        if lines.iter().any(|line| line.contains("request completed")) {
            break lines;
        }
        assert!(Instant::now() < deadline, "no log line for the request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in &completed {
        let entry: Value = serde_json::from_str(line).expect("a JSON log line");
        // Span fields are flattened into each line (bootstrap/src/telemetry.rs).
        assert_eq!(entry["request_id"], "trace-me-0001", "{line}");
        assert_eq!(entry["user_id"], user_id.as_str(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_too_slowly_gets_408() {
    let served = Served::start(500);
    let address = served.address.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        // Half a head, then nothing: http.client_request_timeout_ms is 500 ms here.
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n")
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok();
        answer
    })
    .await
    .expect("the client thread");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let live = reqwest::get(served.url("/health/live"))
        .await
        .expect("an answer");
    assert_eq!(live.status(), 200, "the service is unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_then_stops_without_failing_an_accepted_request() {
    let mut served = Served::start(5_000);
    // The load behaves like a load balancer: a new connection per request, and no new request
    // once it has seen readiness fail (which the drain period leaves it time to see).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    let ready = client
        .get(served.url("/health/ready"))
        .send()
        .await
        .expect("a readiness answer");
    assert_eq!(ready.status(), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let url = served.url("/api/v1/markets?limit=5");
        let stop = Arc::clone(&stop);
        let drained = Arc::clone(&drained);
        load.push(tokio::spawn(async move {
            let (mut answered, mut refused) = (0_u32, 0_u32);
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) && !drained.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => answered += 1,
                    Ok(response) => failures.push(format!("status {}", response.status())),
                    Err(error) if error.is_connect() => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(error) => failures.push(format!("{error:?}")),
                }
            }
            (answered, refused, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let status = Command::new("kill")
        .args(["-TERM", &served.child.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draining = client
        .get(served.url("/health/ready"))
        .send()
        .await
        .expect("still answering while draining");
    assert_eq!(draining.status(), 503);
    assert_eq!(json_of(draining).await["code"], "service_unavailable");
    // Requests are still served while draining; then the balancer stops sending.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drained.store(true, Ordering::Relaxed);

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = served.child.0.try_wait().expect("the child's state") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopped_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for task in load {
        let (ok, refused, failures) = task.await.expect("a load task");
        assert!(
            failures.is_empty(),
            "accepted requests failed: {failures:?}"
        );
        assert_eq!(refused, 0, "the listener stayed open while draining");
        answered += ok;
    }
    let after = client.get(served.url("/health/live")).send().await;
    assert!(
        after.is_err_and(|error| error.is_connect()),
        "after the stop new connections are refused"
    );
    assert!(exit.success(), "a clean exit: {exit}");
    assert!(
        stopped_after >= Duration::from_secs(2),
        "it drained for http.shutdown_drain_secs before stopping ({stopped_after:?})"
    );
    assert!(answered > 20, "the load ran: {answered} answered");
}
