//! Turns a domain [`Email`] into a lettre [`Message`]: RFC 5322 text, plain-text UTF-8 body.

use domain::ports::{Email, MailError};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use uuid::Uuid;

/// `email` from `from`, with a `Date` and a new `Message-ID` (`<uuid@sender's domain>`).
///
/// # Errors
/// [`MailError::Rejected`] when lettre refuses the recipient address or the message (it will
/// never be accepted as it is).
pub(crate) fn render(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    let address = email
        .to()
        .as_str()
        .parse()
        .map_err(|_| MailError::Rejected("invalid recipient address".to_owned()))?;
    let to = Mailbox::new(
        email.to_name().map(|name| name.as_str().to_owned()),
        address,
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject())
        .message_id(Some(format!(
            "<{}@{}>",
            Uuid::new_v4().simple(),
            from.email.domain()
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(email.body().to_owned())
        .map_err(|error| MailError::Rejected(format!("the message cannot be built: {error}")))
}

#[cfg(test)]
mod tests {
    use domain::{DisplayName, Email as Address};

    use super::*;

    #[test]
    fn the_message_has_the_headers_and_the_body() {
        let from: Mailbox = "Markets <noreply@example.com>".parse().expect("a mailbox");
        let email = Email::new(
            Address::parse("ada@example.com").expect("an address"),
            Some(DisplayName::parse("Ada Lovelace").expect("a name")),
            "Welcome",
            "Hello Ada",
        )
        .expect("an email");
        let text = String::from_utf8(render(&from, &email).expect("a message").formatted())
            .expect("UTF-8");
        assert!(
            text.contains("From: Markets <noreply@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Ada Lovelace\" <ada@example.com>\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: Welcome\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8\r\n"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.contains("Date: "), "{text}");
        assert!(text.ends_with("\r\n\r\nHello Ada"), "{text}");
    }
}
