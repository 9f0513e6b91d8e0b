//! The `server` binary as a user runs it: help, the OpenAPI printout, configuration errors,
//! migrations and seeding.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("server-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("a scratch folder");
        Self(path)
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}/cli.db?mode=rwc", self.0.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Runs `server` with only the given environment (nothing inherited but `PATH`).
fn server(args: &[&str], env: &[(&str, &str)], cwd: &Scratch) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_AUTH__ARGON2_MEMORY_KIB", "8")
        .env("APP_AUTH__ARGON2_ITERATIONS", "1")
        .current_dir(&cwd.0);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the server binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    let scratch = Scratch::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["openapi", "--help"],
        vec!["seed", "--help"],
        vec!["worker", "--help"],
    ] {
        let output = server(&args, &[], &scratch);
        assert!(output.status.success(), "{args:?}");
        let help = text(&output.stdout);
        assert!(help.contains("Usage: server"), "{args:?}: {help}");
    }
    let top = text(&server(&["--help"], &[], &scratch).stdout);
    for subcommand in ["serve", "migrate", "openapi", "seed", "worker"] {
        assert!(top.contains(subcommand), "{subcommand} in {top}");
    }
}

#[test]
fn openapi_prints_the_document_the_service_serves() {
    let scratch = Scratch::new();
    let output = server(&["openapi"], &[], &scratch);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let built = serde_json::to_value(adapter_http::openapi::document()).expect("JSON");
    assert_eq!(printed, built);
    assert!(
        !scratch.0.join("data").exists(),
        "printing the document touches no database"
    );
}

#[test]
fn bad_configuration_is_one_line_naming_the_key() {
    let scratch = Scratch::new();
    for (env, key) in [
        (vec![("PORT", "abc")], "PORT"),
        (vec![("APP_ENV", "production")], "JWT_SECRET"),
        (
            vec![("APP_ENV", "local"), ("JWT_SECRET", "short")],
            "JWT_SECRET",
        ),
        (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
    ] {
        let output = server(&["migrate", "--status"], &env, &scratch);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{env:?} must fail");
        assert_eq!(stderr.trim().lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.contains(key), "{env:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
    let missing = server(&["--config", "nope.toml", "openapi"], &[], &scratch);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("nope.toml"));
}

#[test]
fn migrate_applies_pending_migrations_and_reports_status() {
    let scratch = Scratch::new();
    let url = scratch.database_url();
    let env = [("DATABASE_URL", url.as_str())];
    let before = text(&server(&["migrate", "--status"], &env, &scratch).stdout);
    assert!(before.lines().count() >= 2, "{before}");
    assert!(
        before.lines().all(|line| line.starts_with("pending")),
        "{before}"
    );
    let applied = server(&["migrate"], &env, &scratch);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let after = text(&server(&["migrate", "--status"], &env, &scratch).stdout);
    assert!(
        after.lines().all(|line| line.starts_with("applied")),
        "{after}"
    );
    assert_eq!(before.lines().count(), after.lines().count());
}

#[test]
fn seeding_is_idempotent_and_prints_the_demo_admin() {
    let scratch = Scratch::new();
    let url = scratch.database_url();
    let env = [("DATABASE_URL", url.as_str())];
    let first = server(&["seed", "--users", "5", "--markets", "40"], &env, &scratch);
    let first_out = text(&first.stdout);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        first_out.contains("5 new user(s), 40 new market(s) and "),
        "{first_out}"
    );
    assert!(
        first_out.contains("admin@example.com / demo-admin-password"),
        "{first_out}"
    );
    let second = server(&["seed", "--users", "5", "--markets", "40"], &env, &scratch);
    let second_out = text(&second.stdout);
    assert!(second.status.success());
    assert!(
        second_out.contains("0 new user(s), 0 new market(s) and 0 position(s)"),
        "{second_out}"
    );
    let refused = server(
        &["seed"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("APP_ENV", "production"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
        &scratch,
    );
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("production"));
}

#[test]
fn an_unreachable_database_is_waited_for_then_reported() {
    let scratch = Scratch::new();
    // Nothing listens on port 1.
    let unreachable = "postgres://postgres@127.0.0.1:1/postgres";
    let started = std::time::Instant::now();
    let patient = server(
        &["migrate"],
        &[
            ("DATABASE_URL", unreachable),
            ("APP_DATABASE__CONNECT_RETRY_SECS", "1"),
            ("LOG_FORMAT", "json"),
        ],
        &scratch,
    );
    let waited = started.elapsed();
    assert!(!patient.status.success());
    let logs = text(&patient.stdout) + &text(&patient.stderr);
    assert!(
        logs.contains("the database is not reachable yet"),
        "the retries are logged: {logs}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "gave up after {waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(15), "{waited:?}");

    let started = std::time::Instant::now();
    let impatient = server(
        &["migrate"],
        &[
            ("DATABASE_URL", unreachable),
            ("APP_DATABASE__CONNECT_RETRY_SECS", "0"),
        ],
        &scratch,
    );
    assert!(!impatient.status.success());
    assert!(
        !(text(&impatient.stdout) + &text(&impatient.stderr)).contains("not reachable yet"),
        "no retry with 0"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
