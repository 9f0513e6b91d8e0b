//! The mail port: sending one plain-text email, and the bounded message it sends.

use async_trait::async_trait;

use crate::user::{DisplayName, Email as Address};

/// Why a message is not a valid [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("a subject must not be blank")]
    SubjectBlank,
    #[error("a subject is at most {max} characters")]
    SubjectTooLong { max: usize },
    /// Line breaks (which would start new headers) and other control characters.
    #[error("a subject must not contain line breaks or other control characters")]
    SubjectControlCharacter,
    #[error("a body is at most {max} bytes")]
    BodyTooLarge { max: usize },
}

/// One plain-text email to one recipient, validated: a subject of 1 to 200 characters on one
/// line, a body of at most 64 KiB. The sender is the adapter's (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    to: Address,
    to_name: Option<DisplayName>,
    subject: String,
    body: String,
}

impl Email {
    /// The longest subject, in characters.
    pub const MAX_SUBJECT_CHARS: usize = 200;
    /// The largest body, in bytes of UTF-8 text.
    pub const MAX_BODY_BYTES: usize = 64 * 1024;

    /// A message to `to` (shown as `to_name` when given).
    ///
    /// # Errors
    /// [`InvalidEmail`] naming the first rule `subject` or `body` breaks.
    pub fn new(
        to: Address,
        to_name: Option<DisplayName>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Result<Self, InvalidEmail> {
        let subject = subject.into();
        let body = body.into();
        if subject.trim().is_empty() {
            return Err(InvalidEmail::SubjectBlank);
        }
        if subject.chars().count() > Self::MAX_SUBJECT_CHARS {
            return Err(InvalidEmail::SubjectTooLong {
                max: Self::MAX_SUBJECT_CHARS,
            });
        }
        if subject.chars().any(char::is_control) {
            return Err(InvalidEmail::SubjectControlCharacter);
        }
        if body.len() > Self::MAX_BODY_BYTES {
            return Err(InvalidEmail::BodyTooLarge {
                max: Self::MAX_BODY_BYTES,
            });
        }
        Ok(Self {
            to,
            to_name,
            subject,
            body,
        })
    }

    /// The recipient's address.
    #[must_use]
    pub const fn to(&self) -> &Address {
        &self.to
    }

    /// The recipient's name, if given.
    #[must_use]
    pub const fn to_name(&self) -> Option<&DisplayName> {
        self.to_name.as_ref()
    }

    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plain-text body.
    #[must_use]
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Why an email was not sent. Messages are for logs; they never hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// A passing failure, worth retrying later: connection refused or reset, a timeout, an SMTP
    /// 4xx reply.
    #[error("mail not sent (transient): {0}")]
    Transient(String),
    /// The message will never be accepted as it is, do not retry: an SMTP 5xx reply, an invalid
    /// address.
    #[error("mail rejected: {0}")]
    Rejected(String),
}

impl MailError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// Sends emails. Adapters may retry [`MailError::Transient`] failures themselves before giving
/// up; callers (job handlers) retry what is left later.
///
/// Delivery is at least once from the caller's point of view: a send that timed out may have
/// been delivered, so a retried job may send the same email twice.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email` from the adapter's configured sender.
    ///
    /// # Errors
    /// - [`MailError::Transient`] when it was not sent but may be later (connection refused or
    ///   reset, timeout, SMTP 4xx), after the adapter's own retries if it has any;
    /// - [`MailError::Rejected`] when it will never be accepted (SMTP 5xx, an address the
    ///   transport refuses); nothing was retried.
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

impl std::fmt::Debug for dyn Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Mailer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address::parse("ada@example.com").expect("an address")
    }

    #[test]
    fn a_valid_message_keeps_what_it_was_given() {
        let name = DisplayName::parse("Ada").expect("a name");
        let email = Email::new(address(), Some(name.clone()), "Welcome", "Hello\nAda")
            .expect("a valid email");
        assert_eq!(email.to(), &address());
        assert_eq!(email.to_name(), Some(&name));
        assert_eq!(email.subject(), "Welcome");
        assert_eq!(email.body(), "Hello\nAda");
    }

    #[test]
    fn subjects_are_one_bounded_line() {
        let new = |subject: &str| Email::new(address(), None, subject, "");
        assert_eq!(new(" "), Err(InvalidEmail::SubjectBlank));
        assert!(new(&"é".repeat(Email::MAX_SUBJECT_CHARS)).is_ok());
        assert_eq!(
            new(&"a".repeat(Email::MAX_SUBJECT_CHARS + 1)),
            Err(InvalidEmail::SubjectTooLong { max: 200 })
        );
        for injected in [
            "Hi\r\nBcc: x@example.com",
            "Hi\nthere",
            "Hi\rthere",
            "a\u{0}b",
        ] {
            assert_eq!(new(injected), Err(InvalidEmail::SubjectControlCharacter));
        }
    }

    #[test]
    fn bodies_are_bounded_in_bytes() {
        let new = |body: String| Email::new(address(), None, "Hi", body);
        assert!(new("a".repeat(Email::MAX_BODY_BYTES)).is_ok());
        assert_eq!(
            new("a".repeat(Email::MAX_BODY_BYTES + 1)),
            Err(InvalidEmail::BodyTooLarge { max: 65_536 })
        );
    }

    #[test]
    fn only_transient_failures_are_worth_retrying() {
        assert!(MailError::Transient("451".into()).is_transient());
        assert!(!MailError::Rejected("550".into()).is_transient());
    }
}
