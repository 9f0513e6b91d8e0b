//! The live page in a real browser: `tests/browser/live_page.mjs` drives headless Chromium against
//! the spawned app and checks that a position opened through the API shows in the page within 2 s.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium` or `CHROMIUM_PATH`) and `tests/browser/node_modules`
//! (`npm ci` there). Without them the test is skipped with a loud message, or fails when
//! `REQUIRE_SERVICES=1` (as in CI, whose `.ci/run` installs them).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Backend, TestApp};

/// The whole browser run, launch included.
const BROWSER_PATIENCE: Duration = Duration::from_secs(90);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run the browser test, if anything.
fn missing() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("`node` is not installed".to_owned());
    }
    if !chromium().exists() {
        return Some(format!(
            "Chromium is not at {} (apt-get install chromium, or set CHROMIUM_PATH)",
            chromium().display()
        ));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "tests/browser/node_modules is missing (run `npm ci` in tests/browser)".to_owned(),
        );
    }
    None
}

/// Whether the browser test can run; `false` (after a loud message) when it cannot and is not
/// required.
///
/// # Panics
/// When it cannot run and `REQUIRE_SERVICES=1`.
fn browser_available() -> bool {
    let Some(what) = missing() else {
        return true;
    };
    assert!(
        !std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1"),
        "the browser test is required (REQUIRE_SERVICES=1) but {what}"
    );
    eprintln!(
        "\n!!! SKIPPED: the live page browser test; {what}.\n\
         !!! CI sets REQUIRE_SERVICES=1 and fails instead.\n"
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_new_position_within_two_seconds() {
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let (_, token) = app.signed_in_user().await;
    let market = app.create_market(&token, "Shown live", "test").await;
    let market = market["id"].as_str().expect("an id");

    let mut child = Command::new("node")
        .arg(browser_dir().join("live_page.mjs"))
        .arg(&app.address)
        .arg(market)
        .env("LIVE_TOKEN", &token)
        .env("CHROMIUM_PATH", chromium())
        .current_dir(browser_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    // Read both pipes as the browser runs, so that a chatty run never blocks on a full pipe.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_string(&mut text).ok();
            }
            text
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the browser run") {
            break status;
        }
        if started.elapsed() > BROWSER_PATIENCE {
            child.kill().ok();
            child.wait().ok();
            panic!("the browser test did not finish within {BROWSER_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    println!("{stdout}");
    assert!(
        status.success(),
        "the live page browser test failed ({status}):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("live page: ok"), "{stdout}\n{stderr}");
}
