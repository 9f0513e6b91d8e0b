//! `LogMailer`: "sends" an email as a log line; the local default, where no mail server exists.

use async_trait::async_trait;
use domain::ports::{Email, MailError, Mailer};
use lettre::message::Mailbox;

/// Logs each email: recipient and subject at `info`, the body only at `debug`. Never fails.
#[derive(Debug, Clone)]
pub struct LogMailer {
    from: Mailbox,
}

impl LogMailer {
    /// A mailer that logs emails as sent by `from`.
    #[must_use]
    pub const fn new(from: Mailbox) -> Self {
        Self { from }
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        tracing::info!(
            from = %self.from,
            to = %email.to(),
            subject = email.subject(),
            "email (log transport: not sent)"
        );
        tracing::debug!(to = %email.to(), body = email.body(), "email body");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::Email as Address;

    use super::*;

    #[tokio::test]
    async fn logging_an_email_always_succeeds() {
        let mailer = LogMailer::new("noreply@example.com".parse().expect("a mailbox"));
        let email = Email::new(
            Address::parse("ada@example.com").expect("an address"),
            None,
            "Hi",
            "Body",
        )
        .expect("an email");
        assert_eq!(mailer.send(&email).await, Ok(()));
    }
}
