//! `server serve` as a real process: on SIGTERM readiness fails at once while requests are still
//! served for `http.shutdown_drain_secs`, then the listener closes and the process exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_while_draining_then_stops_cleanly() {
    let folder =
        std::env::temp_dir().join(format!("serve-process-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&folder).expect("a temp folder");
    let database = format!("sqlite://{}/markets.db?mode=rwc", folder.display());
    let child = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "test")
        .env("PORT", "0")
        .env("DATABASE_URL", &database)
        .env("APP_UPLOADS__DIR", folder.join("uploads"))
        .env("JWT_SECRET", "a-test-secret-that-is-at-least-32-bytes-long")
        .env("APP_HTTP__SHUTDOWN_DRAIN_SECS", "2")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start `server serve`");
    let mut child = KillOnDrop(child);
    let child = &mut child.0;

    // The bound address is logged (on stderr, with every log line) once listening.
    let stdout = child.stderr.take().expect("stderr");
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                let address: String = rest.chars().take_while(|c| *c != '"').collect();
                address_tx.send(address).ok();
            }
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{address}/health/ready"))
        .send()
        .await
        .expect("a readiness answer");
    assert_eq!(ready.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let draining = client
        .get(format!("{address}/health/ready"))
        .send()
        .await
        .expect("still answering while draining");
    assert_eq!(draining.status(), 503);
    let body: serde_json::Value = draining.json().await.expect("a JSON error");
    assert_eq!(body["code"], "service_unavailable");
    let live = client
        .get(format!("{address}/api/v1/markets"))
        .send()
        .await
        .expect("requests are still served while draining");
    assert_eq!(live.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("the child's state") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a clean exit: {exit}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "it drained for http.shutdown_drain_secs before stopping"
    );
    let refused = client.get(format!("{address}/health/live")).send().await;
    assert!(refused.is_err(), "nothing listens any more");
    std::fs::remove_dir_all(&folder).ok();
}

/// Kills the server if the test fails before it stops.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
