//! The mail adapters against real servers: `SmtpMailer` talking to a private aiosmtpd (delivery, transient failures retried, permanent ones not, an unreachable or silent server), and `FileMailer` writing readable `.eml` files.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use adapter_mail::{MailSettings, MailTransport, build_mailer};
use domain::ports::{Email, MailError, Mailer};
use domain::{DisplayName, Email as Address};
use secrecy::SecretString;
use tests::smtp_server::{SmtpCommand, SmtpFailure, TestSmtp, free_port};
use uuid::Uuid;

const FROM: &str = "Prediction Markets <noreply@markets.example.com>";

/// SMTP settings for `url`: quick retries so that the tests stay fast.
fn smtp_settings(url: &str, retries: u32) -> MailSettings {
    MailSettings {
        transport: MailTransport::Smtp,
        from: FROM.to_owned(),
        smtp_url: Some(SecretString::from(url.to_owned())),
        timeout_ms: 5_000,
        retries,
        retry_base_ms: 20,
        ..MailSettings::default()
    }
}

fn mailer(settings: &MailSettings) -> Arc<dyn Mailer> {
    build_mailer(settings).unwrap_or_else(|error| panic!("a mailer: {error}"))
}

fn email(subject: &str, body: &str) -> Email {
    Email::new(
        Address::parse("ada@example.com").expect("an address"),
        Some(DisplayName::parse("Ada Lovelace").expect("a name")),
        subject,
        body,
    )
    .expect("a valid email")
}

#[tokio::test]
async fn an_email_sent_over_smtp_arrives_with_its_headers_and_body() {
    let Some(server) = TestSmtp::start().await else {
        return;
    };
    let mailer = mailer(&smtp_settings(&server.url(), 3));
    let body = "Hello Ada,\n\nYour account is ready: café, 10.00 credits.\n";
    mailer
        .send(&email("Bienvenue, Ada — welcome", body))
        .await
        .unwrap_or_else(|error| panic!("sent: {error}; server: {}", server.server_log()));

    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.mail_from, "noreply@markets.example.com");
    assert_eq!(message.rcpt_tos, vec!["ada@example.com".to_owned()]);
    assert_eq!(
        message.from,
        "Prediction Markets <noreply@markets.example.com>"
    );
    assert_eq!(message.to, "Ada Lovelace <ada@example.com>");
    assert_eq!(message.subject, "Bienvenue, Ada — welcome");
    assert_eq!(message.body.trim_end(), body.trim_end());
    assert!(message.raw.contains("Message-ID: <"), "{}", message.raw);
    assert!(message.raw.contains("Date: "), "{}", message.raw);
    assert_eq!(
        server.commands(),
        vec![("RCPT".to_owned(), 250), ("DATA".to_owned(), 250)]
    );
}

#[tokio::test]
async fn two_transient_refusals_are_retried_and_the_email_is_delivered_once() {
    for at in [SmtpCommand::Rcpt, SmtpCommand::Data] {
        let Some(server) = TestSmtp::start_with(SmtpFailure::Transient { times: 2, at }).await
        else {
            return;
        };
        let mailer = mailer(&smtp_settings(&server.url(), 3));
        mailer
            .send(&email("Retried", "Body"))
            .await
            .unwrap_or_else(|error| panic!("sent after retries ({at:?}): {error}"));
        assert_eq!(server.messages().len(), 1, "delivered once ({at:?})");
        let commands = server.commands();
        let answers: Vec<u16> = commands
            .iter()
            .filter(|(command, _)| command.eq_ignore_ascii_case(at_name(at)))
            .map(|(_, code)| *code)
            .collect();
        assert_eq!(answers, vec![451, 451, 250], "{commands:?}");
    }
}

fn at_name(at: SmtpCommand) -> &'static str {
    match at {
        SmtpCommand::Rcpt => "RCPT",
        SmtpCommand::Data => "DATA",
    }
}

#[tokio::test]
async fn transient_refusals_beyond_the_retries_are_transient() {
    let Some(server) = TestSmtp::start_with(SmtpFailure::Transient {
        times: 10,
        at: SmtpCommand::Rcpt,
    })
    .await
    else {
        return;
    };
    let mailer = mailer(&smtp_settings(&server.url(), 2));
    let error = mailer
        .send(&email("Never", "Body"))
        .await
        .expect_err("the server keeps refusing");
    assert!(
        matches!(&error, MailError::Transient(message) if message.contains("451")),
        "{error:?}"
    );
    assert_eq!(server.commands().len(), 3, "one attempt and two retries");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_permanent_refusal_is_rejected_without_a_retry() {
    let Some(server) = TestSmtp::start_with(SmtpFailure::Permanent {
        at: SmtpCommand::Rcpt,
    })
    .await
    else {
        return;
    };
    let mailer = mailer(&smtp_settings(&server.url(), 3));
    let error = mailer
        .send(&email("Refused", "Body"))
        .await
        .expect_err("the server refuses");
    assert!(
        matches!(&error, MailError::Rejected(message) if message.contains("550")),
        "{error:?}"
    );
    assert_eq!(
        server.commands(),
        vec![("RCPT".to_owned(), 550)],
        "exactly one attempt"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_transient_after_the_retries() {
    let url = format!("smtp://mailer:hunter2@127.0.0.1:{}", free_port());
    let mailer = mailer(&smtp_settings(&url, 2));
    let started = Instant::now();
    let error = mailer
        .send(&email("Nobody there", "Body"))
        .await
        .expect_err("nothing listens");
    assert!(error.is_transient(), "{error:?}");
    assert!(
        !error.to_string().contains("hunter2"),
        "the password leaked: {error}"
    );
    // Two retries: at least the base delay and its double.
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "{:?}",
        started.elapsed()
    );
}

/// A TCP server that is no SMTP server: it accepts connections and closes them at once
/// (`hang_up`) or holds them without a word; returns its URL and the number of connections.
async fn raw_server(hang_up: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let url = format!(
        "smtp://127.0.0.1:{}",
        listener.local_addr().expect("an address").port()
    );
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            if !hang_up {
                // Silent: keep the connection open, never greet.
                held.push(socket);
            }
        }
    });
    (url, connections)
}

#[tokio::test]
async fn a_server_that_hangs_up_is_tried_once_per_attempt() {
    let (url, connections) = raw_server(true).await;
    let mailer = mailer(&smtp_settings(&url, 2));
    let error = mailer
        .send(&email("Hung up", "Body"))
        .await
        .expect_err("the server hangs up");
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "1 attempt + 2 retries"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient() {
    let (url, connections) = raw_server(false).await;
    let settings = MailSettings {
        timeout_ms: 300,
        ..smtp_settings(&url, 0)
    };
    let started = Instant::now();
    let error = mailer(&settings)
        .send(&email("Silence", "Body"))
        .await
        .expect_err("the server never greets");
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "no retry configured");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_file_mailer_writes_a_readable_eml_file() {
    let folder = std::env::temp_dir().join(format!("file-mailer-{}", Uuid::new_v4()));
    let settings = MailSettings {
        transport: MailTransport::File,
        from: FROM.to_owned(),
        file_dir: folder.clone(),
        ..MailSettings::default()
    };
    let mailer = mailer(&settings);
    mailer
        .send(&email("Your statement", "Line one\nLine two\n"))
        .await
        .expect("written");

    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("the folder exists")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].extension().and_then(|e| e.to_str()),
        Some("eml"),
        "{files:?}"
    );
    let text = std::fs::read_to_string(&files[0]).expect("UTF-8 text");
    let (headers, body) = text.split_once("\r\n\r\n").expect("headers, then a body");
    let header = |name: &str| {
        headers
            .split("\r\n")
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} in {headers}"))
    };
    assert_eq!(
        header("From"),
        "\"Prediction Markets\" <noreply@markets.example.com>"
    );
    assert_eq!(header("To"), "\"Ada Lovelace\" <ada@example.com>");
    assert_eq!(header("Subject"), "Your statement");
    assert_eq!(header("Content-Type"), "text/plain; charset=utf-8");
    assert_eq!(body.replace("\r\n", "\n"), "Line one\nLine two\n");
    std::fs::remove_dir_all(&folder).ok();
}
