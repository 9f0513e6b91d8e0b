//! `MailSettings`: which mail transport to use and how, as read from configuration, and its validation.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where emails go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// A log line per email (recipient and subject; never the body at `info`).
    #[default]
    Log,
    /// One `.eml` file per email in `file_dir`.
    File,
    /// An SMTP server at `smtp_url`.
    Smtp,
}

impl MailTransport {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::File => "file",
            Self::Smtp => "smtp",
        }
    }
}

impl fmt::Display for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[mail]`: how the service sends email. `Debug` does not show the SMTP URL (it may hold a
/// password).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `log` (default), `file` or `smtp`.
    pub transport: MailTransport,
    /// The sender, `name@example.com` or `Name <name@example.com>`.
    pub from: String,
    /// With `smtp`: `smtp://[user:password@]host[:port]` (plain, or `?tls=required` for
    /// STARTTLS) or `smtps://...` (TLS from the start).
    pub smtp_url: Option<SecretString>,
    /// With `file`: the folder the `.eml` files are written to (created if missing).
    pub file_dir: PathBuf,
    /// With `smtp`: the limit of one attempt (connecting and the whole SMTP exchange).
    pub timeout_ms: u64,
    /// With `smtp`: how many times a send that failed transiently is tried again (0: never).
    pub retries: u32,
    /// With `smtp`: the delay before the first retry; it doubles per retry, with jitter.
    pub retry_base_ms: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransport::Log,
            from: "Prediction Markets <noreply@example.com>".to_owned(),
            smtp_url: None,
            file_dir: PathBuf::from("data/mail"),
            timeout_ms: 10_000,
            retries: 3,
            retry_base_ms: 500,
        }
    }
}

/// Why mail settings are unusable: the key (under `mail.`) and what is wrong with it. Never
/// holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail.{key}: {message}")]
pub struct MailConfigError {
    /// The key under `[mail]`: `from`, `smtp_url`, `file_dir`, ...
    pub key: &'static str,
    pub message: String,
}

impl MailConfigError {
    pub(crate) fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

pub(crate) const TIMEOUT_MS: RangeInclusive<u64> = 1..=300_000;
pub(crate) const RETRIES: RangeInclusive<u32> = 0..=10;
pub(crate) const RETRY_BASE_MS: RangeInclusive<u64> = 1..=60_000;

fn in_range<T: PartialOrd + fmt::Display>(
    key: &'static str,
    value: T,
    range: &RangeInclusive<T>,
    unit: &str,
) -> Result<(), MailConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(MailConfigError::new(
            key,
            format!(
                "must be {}{unit} to {}{unit}, not {value}{unit}",
                range.start(),
                range.end()
            ),
        ))
    }
}

impl MailSettings {
    /// Checks every key the chosen transport uses (and the sender, always).
    ///
    /// # Errors
    /// [`MailConfigError`] for the first invalid key.
    pub fn validate(&self) -> Result<(), MailConfigError> {
        self.sender()?;
        in_range("timeout_ms", self.timeout_ms, &TIMEOUT_MS, " ms")?;
        in_range("retries", self.retries, &RETRIES, "")?;
        in_range("retry_base_ms", self.retry_base_ms, &RETRY_BASE_MS, " ms")?;
        match self.transport {
            MailTransport::Log => Ok(()),
            MailTransport::File => {
                if self.file_dir.as_os_str().is_empty() {
                    Err(MailConfigError::new(
                        "file_dir",
                        "is required with transport = \"file\"",
                    ))
                } else {
                    Ok(())
                }
            }
            MailTransport::Smtp => self.smtp_url().map(|_| ()),
        }
    }

    /// The sender as a mailbox.
    pub(crate) fn sender(&self) -> Result<Mailbox, MailConfigError> {
        self.from.trim().parse::<Mailbox>().map_err(|_| {
            MailConfigError::new(
                "from",
                "must be an address such as noreply@example.com or Name <noreply@example.com>",
            )
        })
    }

    /// The SMTP URL, checked for its scheme and host.
    pub(crate) fn smtp_url(&self) -> Result<&str, MailConfigError> {
        let url = self
            .smtp_url
            .as_ref()
            .map(|url| url.expose_secret().trim())
            .filter(|url| !url.is_empty())
            .ok_or_else(|| {
                MailConfigError::new("smtp_url", "is required with transport = \"smtp\"")
            })?;
        let (scheme, rest) = url.split_once("://").unwrap_or(("", ""));
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if !matches!(scheme, "smtp" | "smtps") || host.is_empty() || host.starts_with(':') {
            return Err(MailConfigError::new(
                "smtp_url",
                "must be smtp://[user:password@]host[:port] or smtps://...",
            ));
        }
        Ok(url)
    }

    pub(crate) const fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) const fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(url: &str) -> MailSettings {
        MailSettings {
            transport: MailTransport::Smtp,
            smtp_url: Some(SecretString::from(url.to_owned())),
            ..MailSettings::default()
        }
    }

    #[test]
    fn the_defaults_are_valid_and_log() {
        let settings = MailSettings::default();
        assert_eq!(settings.transport, MailTransport::Log);
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn the_sender_must_be_an_address() {
        let settings = MailSettings {
            from: "not an address".to_owned(),
            ..MailSettings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("from"));
        let named = MailSettings {
            from: "Markets <noreply@example.com>".to_owned(),
            ..MailSettings::default()
        };
        assert_eq!(named.validate(), Ok(()));
    }

    #[test]
    fn smtp_needs_a_url_with_an_smtp_scheme_and_a_host() {
        let missing = MailSettings {
            transport: MailTransport::Smtp,
            ..MailSettings::default()
        };
        assert_eq!(missing.validate().map_err(|e| e.key), Err("smtp_url"));
        for bad in [
            "",
            "http://mail.example.com",
            "smtp://",
            "smtp://user:pw@:25",
        ] {
            assert_eq!(
                smtp(bad).validate().map_err(|e| e.key),
                Err("smtp_url"),
                "{bad}"
            );
        }
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://user:secret@mail.example.com:587?tls=required",
            "smtps://mail.example.com",
        ] {
            assert_eq!(smtp(good).validate(), Ok(()), "{good}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let error = smtp("ftp://user:hunter2@mail.example.com")
            .validate()
            .expect_err("a wrong scheme");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let debug = format!("{:?}", smtp("smtp://user:hunter2@mail.example.com"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn numbers_are_bounded() {
        let settings = MailSettings {
            timeout_ms: 0,
            ..MailSettings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("timeout_ms"));
        let settings = MailSettings {
            retries: 11,
            ..MailSettings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("retries"));
        let settings = MailSettings {
            retry_base_ms: 0,
            ..MailSettings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("retry_base_ms"));
    }

    #[test]
    fn the_file_transport_needs_a_folder() {
        let settings = MailSettings {
            transport: MailTransport::File,
            file_dir: PathBuf::new(),
            ..MailSettings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.key), Err("file_dir"));
    }

    #[test]
    fn settings_deserialize_with_defaults_for_missing_keys() {
        let settings: MailSettings = serde_json_like();
        assert_eq!(settings.transport, MailTransport::File);
        assert_eq!(settings.retries, 3);
    }

    fn serde_json_like() -> MailSettings {
        use serde::de::value::{Error, MapDeserializer};
        let map = MapDeserializer::<_, Error>::new(
            [("transport", "file"), ("file_dir", "/tmp/mail")].into_iter(),
        );
        MailSettings::deserialize(map).expect("settings")
    }
}
