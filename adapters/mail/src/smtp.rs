//! `SmtpMailer`: sends through an SMTP server with lettre, retrying transient failures with exponential backoff and jitter.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use domain::ports::{Email, MailError, Mailer};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::message::render;
use crate::settings::{MailConfigError, MailSettings};

/// Sends each email over SMTP (a new connection per email), from the configured sender. Each
/// attempt, connection included, is bounded by the timeout.
///
/// A send that fails transiently (connection refused or reset, timeout, a 4xx reply) is tried
/// again up to `retries` times, after `retry_base`, doubling, with jitter; a permanent failure
/// (a 5xx reply) is returned at once as [`MailError::Rejected`]. Error messages never hold the
/// password of the URL.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for logs (no credentials).
    server: String,
    /// The limit of one attempt: connecting and the whole SMTP exchange.
    timeout: Duration,
    retries: u32,
    retry_base: Duration,
    /// The password as written in the URL and percent-decoded: scrubbed from every message.
    secrets: Vec<String>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("retries", &self.retries)
            .field("retry_base", &self.retry_base)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `settings.smtp_url`, sending as `settings.from`, with `settings.timeout_ms`
    /// for each attempt (connecting and the whole exchange), and the retry settings.
    ///
    /// # Errors
    /// [`MailConfigError`] when the settings are invalid or lettre refuses the URL.
    pub fn from_settings(settings: &MailSettings) -> Result<Self, MailConfigError> {
        settings.validate()?;
        Self::build(settings, settings.sender()?)
    }

    pub(crate) fn build(settings: &MailSettings, from: Mailbox) -> Result<Self, MailConfigError> {
        let url = settings.smtp_url()?;
        let secrets = password_forms(url);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| {
                MailConfigError::new(
                    "smtp_url",
                    redact(&format!("is not usable: {error}"), &secrets),
                )
            })?
            .timeout(Some(settings.timeout()))
            .build();
        Ok(Self {
            transport,
            from,
            server: server_of(url),
            timeout: settings.timeout(),
            retries: settings.retries,
            retry_base: settings.retry_base(),
            secrets,
        })
    }

    /// The URL from a secret, for callers holding one.
    ///
    /// # Errors
    /// See [`Self::from_settings`].
    pub fn new(
        url: &SecretString,
        from: &str,
        timeout: Duration,
        retries: u32,
        retry_base: Duration,
    ) -> Result<Self, MailConfigError> {
        Self::from_settings(&MailSettings {
            transport: crate::MailTransport::Smtp,
            from: from.to_owned(),
            smtp_url: Some(SecretString::from(url.expose_secret().to_owned())),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            retries,
            retry_base_ms: u64::try_from(retry_base.as_millis()).unwrap_or(u64::MAX),
            ..MailSettings::default()
        })
    }

    /// One attempt, bounded by the timeout as a whole: lettre's async transport bounds only the
    /// TCP connect, and a server that accepts but never answers must not hold a worker.
    async fn send_once(&self, message: &Message) -> Result<(), MailError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message.clone())).await {
            Ok(sent) => sent.map(|_| ()).map_err(|error| self.classify(&error)),
            Err(_) => Err(MailError::Transient(format!(
                "no answer from {} within {} ms",
                self.server,
                self.timeout.as_millis()
            ))),
        }
    }

    /// 5xx replies are permanent; everything else (4xx replies, connection, I/O, TLS, timeouts,
    /// unreadable replies) may pass.
    fn classify(&self, error: &lettre::transport::smtp::Error) -> MailError {
        let message = redact(&error.to_string(), &self.secrets);
        let permanent = error.is_permanent()
            || error
                .status()
                .is_some_and(|code| code.to_string().starts_with('5'));
        if permanent {
            MailError::Rejected(message)
        } else {
            MailError::Transient(message)
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = render(&self.from, email)?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.retry_base.saturating_mul(64))
            .with_jitter()
            .with_max_times(usize::try_from(self.retries).unwrap_or(usize::MAX));
        let sent = (|| self.send_once(&message))
            .retry(backoff)
            .when(MailError::is_transient)
            .notify(|error, wait| {
                tracing::warn!(
                    server = %self.server,
                    to = %email.to(),
                    %error,
                    retry_in_ms = wait.as_millis(),
                    "sending an email failed; retrying"
                );
            })
            .await;
        match &sent {
            Ok(()) => tracing::info!(
                server = %self.server,
                to = %email.to(),
                subject = email.subject(),
                "email sent"
            ),
            Err(error) => tracing::warn!(
                server = %self.server,
                to = %email.to(),
                %error,
                "email not sent"
            ),
        }
        sent
    }
}

/// `host[:port]` of an SMTP URL, without credentials.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// The URL's password as written and percent-decoded (empty when there is none).
fn password_forms(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let Some((user_info, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_, password)) = user_info.split_once(':') else {
        return Vec::new();
    };
    let mut forms = vec![password.to_owned(), percent_decode(password)];
    forms.retain(|form| !form.is_empty());
    forms.dedup();
    forms
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `message` with every secret replaced by `***`.
fn redact(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_owned(), |message, secret| {
        message.replace(secret.as_str(), "***")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_named_without_credentials() {
        assert_eq!(
            server_of("smtp://u:p@mail.example.com:587?tls=required"),
            "mail.example.com:587"
        );
        assert_eq!(server_of("smtps://mail.example.com"), "mail.example.com");
    }

    #[test]
    fn passwords_are_found_in_both_forms_and_scrubbed() {
        let forms = password_forms("smtp://user:p%40ss@mail.example.com:25");
        assert_eq!(forms, vec!["p%40ss".to_owned(), "p@ss".to_owned()]);
        assert_eq!(
            redact("auth p@ss failed, p%40ss", &forms),
            "auth *** failed, ***"
        );
        assert!(password_forms("smtp://mail.example.com").is_empty());
        assert!(password_forms("smtp://user@mail.example.com").is_empty());
    }

    #[test]
    fn a_url_lettre_refuses_is_a_configuration_error_without_the_password() {
        let settings = MailSettings {
            transport: crate::MailTransport::Smtp,
            smtp_url: Some(SecretString::from(
                "smtp://user:hunter2@mail.example.com?tls=sometimes".to_owned(),
            )),
            ..MailSettings::default()
        };
        let error = SmtpMailer::from_settings(&settings).expect_err("an unknown tls mode");
        assert_eq!(error.key, "smtp_url");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
