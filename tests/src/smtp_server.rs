//! `TestSmtp`: a real SMTP server of a test's own (`aiosmtpd`, run by `tests/smtp/server.py`) on a free port, saving what it receives and failing on demand.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

/// How long a starting server may take to listen.
const STARTUP: Duration = Duration::from_secs(10);

/// Where `.ci/run` installs aiosmtpd, under `$HOME`.
const DEFAULT_VENV_PYTHON: &str = ".cache/rust-svc-venv/bin/python";

/// The SMTP command a [`SmtpFailure`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpCommand {
    Rcpt,
    Data,
}

impl SmtpCommand {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Rcpt => "rcpt",
            Self::Data => "data",
        }
    }
}

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpFailure {
    /// It accepts everything.
    None,
    /// It answers the first `times` of these commands with `451` (transient), then accepts.
    Transient { times: u32, at: SmtpCommand },
    /// It answers every one of these commands with `550` (permanent).
    Permanent { at: SmtpCommand },
}

/// One message the server accepted, as `server.py` decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The decoded `From`, `To` and `Subject` headers.
    pub from: String,
    pub to: String,
    pub subject: String,
    /// The plain-text body, decoded, with `\n` line ends.
    pub body: String,
    /// The message as received (RFC 5322 text).
    pub raw: String,
}

/// The Python that runs the server: `SMTP_PYTHON`, else the virtual environment `.ci/run`
/// makes (`$HOME/.cache/rust-svc-venv`).
fn python() -> PathBuf {
    std::env::var_os("SMTP_PYTHON")
        .filter(|path| !path.is_empty())
        .map_or_else(
            || {
                let home = std::env::var_os("HOME").unwrap_or_default();
                PathBuf::from(home).join(DEFAULT_VENV_PYTHON)
            },
            PathBuf::from,
        )
}

/// Whether `python` can import aiosmtpd.
fn aiosmtpd_available(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A free local port (nothing listens on it once this returns).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

/// An `aiosmtpd` server on `127.0.0.1:<free port>` writing into a folder of its own; killed (and
/// the folder removed) when dropped.
pub struct TestSmtp {
    port: u16,
    folder: PathBuf,
    child: Option<Child>,
}

impl TestSmtp {
    /// A server that accepts everything; see [`Self::start_with`].
    pub async fn start() -> Option<Self> {
        Self::start_with(SmtpFailure::None).await
    }

    /// A new server failing as `failure` says, listening; `None` (after a loud message) when
    /// aiosmtpd cannot be run and services are not required.
    ///
    /// # Panics
    /// When aiosmtpd cannot be run and `REQUIRE_SERVICES=1`, or when the server does not listen
    /// within 10 seconds.
    pub async fn start_with(failure: SmtpFailure) -> Option<Self> {
        let python = python();
        if !aiosmtpd_available(&python) {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "aiosmtpd is required (REQUIRE_SERVICES=1) but {} cannot import it; \
                 .ci/run installs it (or set SMTP_PYTHON)",
                python.display()
            );
            eprintln!(
                "\n!!! SKIPPED: a test needing its own SMTP server; {} cannot import aiosmtpd.\n\
                 !!! Run `python3 -m venv ~/.cache/rust-svc-venv && ~/.cache/rust-svc-venv/bin/pip \
                 install aiosmtpd==1.4.6` (or set SMTP_PYTHON); CI sets REQUIRE_SERVICES=1 and fails instead.\n",
                python.display()
            );
            return None;
        }
        let folder = std::env::temp_dir().join(format!("smtp-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        let (fail, at) = match failure {
            SmtpFailure::None => ("none".to_owned(), SmtpCommand::Rcpt),
            SmtpFailure::Transient { times, at } => (format!("transient:{times}"), at),
            SmtpFailure::Permanent { at } => ("permanent".to_owned(), at),
        };
        let log = std::fs::File::create(folder.join("server.log")).expect("a log file");
        let port = free_port();
        let child = Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/server.py"))
            .arg(port.to_string())
            .arg(&folder)
            .env("SMTP_TEST_FAIL", fail)
            .env("SMTP_TEST_FAIL_AT", at.as_str())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
        let mut server = Self {
            port,
            folder,
            child: Some(child),
        };
        server.wait_until_listening().await;
        Some(server)
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            assert!(
                !exited,
                "the SMTP server exited at start: {}",
                self.server_log()
            );
            assert!(
                Instant::now() < deadline,
                "the SMTP server on port {} does not listen: {}",
                self.port,
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the server wrote on stderr (its log), for failure messages.
    #[must_use]
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.folder.join("server.log")).unwrap_or_default()
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, no credentials).
    #[must_use]
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The messages accepted so far, in the order they arrived.
    ///
    /// # Panics
    /// When a saved message cannot be read.
    #[must_use]
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.folder)
            .expect("the server's folder")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let n = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, path))
            })
            .collect();
        numbered.sort();
        numbered
            .into_iter()
            .map(|(_, path)| {
                let summary: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).expect("a saved message"))
                        .expect("a JSON summary");
                let text = |key: &str| {
                    summary[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("{key} in {summary}"))
                        .to_owned()
                };
                ReceivedMessage {
                    mail_from: text("mail_from"),
                    rcpt_tos: summary["rcpt_tos"]
                        .as_array()
                        .expect("recipients")
                        .iter()
                        .filter_map(|to| to.as_str().map(str::to_owned))
                        .collect(),
                    from: text("from"),
                    to: text("to"),
                    subject: text("subject"),
                    body: text("body").replace("\r\n", "\n"),
                    raw: std::fs::read_to_string(path.with_extension("eml"))
                        .expect("the raw message"),
                }
            })
            .collect()
    }

    /// The `RCPT` and `DATA` commands answered so far, as `("RCPT", 451)`.
    #[must_use]
    pub fn commands(&self) -> Vec<(String, u16)> {
        std::fs::read_to_string(self.folder.join("commands.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (command, code) = line.split_once(' ')?;
                Some((command.to_owned(), code.parse().ok()?))
            })
            .collect()
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_dir_all(&self.folder).ok();
    }
}
