//! Users: the `User` entity, its role, and the value objects that guard its fields.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Permission;
use crate::id::UserId;
use crate::money::Amount;

/// What a user may do, coarsely; see [`Role::permissions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Moderator,
    User,
}

impl Role {
    /// Every role, for exhaustive tests and documentation.
    pub const ALL: [Self; 3] = [Self::Admin, Self::Moderator, Self::User];

    /// The role's name as written in tokens, the database and the API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Moderator => "moderator",
            Self::User => "user",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    /// [`UnknownRole`] for any other text.
    pub fn parse(text: &str) -> Result<Self, UnknownRole> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or(UnknownRole)
    }

    /// The role-based half of access control: the permissions this role grants.
    #[must_use]
    pub const fn permissions(self) -> &'static [Permission] {
        match self {
            Self::Admin => &[
                Permission::Read,
                Permission::Write,
                Permission::Delete,
                Permission::Admin,
            ],
            Self::Moderator => &[Permission::Read, Permission::Write, Permission::Delete],
            Self::User => &[Permission::Read, Permission::Write],
        }
    }

    /// Whether this role grants `permission`.
    #[must_use]
    pub fn has(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role")]
pub struct UnknownRole;

/// Why a text is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must be an address such as name@example.com")]
    Malformed,
}

/// An email address, normalised to lower case so that uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// RFC 5321 limits a path to 254 characters.
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises an address: trimmed, lower-cased, one `@` with a non-empty local part
    /// and a dotted domain, no whitespace or control characters.
    ///
    /// # Errors
    /// [`EmailError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let text = text.trim();
        if text.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong { max: Self::MAX_LEN });
        }
        let normalised = text.to_lowercase();
        let (local, domain) = normalised.split_once('@').ok_or(EmailError::Malformed)?;
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !normalised
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        if well_formed {
            Ok(Self(normalised))
        } else {
            Err(EmailError::Malformed)
        }
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not a [`DisplayName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// The name a user shows to others: 1..=100 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// [`DisplayNameError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, DisplayNameError> {
        let text = text.trim();
        if text.is_empty() {
            Err(DisplayNameError::Blank)
        } else if text.chars().count() > Self::MAX_LEN {
            Err(DisplayNameError::TooLong { max: Self::MAX_LEN })
        } else if text.chars().any(char::is_control) {
            Err(DisplayNameError::ControlCharacters)
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a text is not an acceptable [`Password`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {min} characters")]
    TooShort { min: usize },
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    /// One of the 10,000 most common passwords (`domain/data/common-passwords.txt`).
    #[error("is one of the most common passwords; choose another")]
    TooCommon,
}

/// The most common passwords that the length rule alone would accept, lower case, one per line;
/// where the list comes from is in `domain/data/README.md`.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Whether `text` is on the common list, compared without regard to case.
fn is_common(text: &str) -> bool {
    static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| COMMON_PASSWORDS.lines().collect());
    COMMON.contains(text.to_lowercase().as_str())
}

/// A plain-text password that meets the policy (8..=128 characters, not one of the 10,000 most
/// common). Never serialised, never printed: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    /// Checks the policy. Characters are Unicode scalar values; nothing is trimmed.
    ///
    /// # Errors
    /// [`PasswordError`] naming the bound that was missed.
    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        let length = text.chars().count();
        if length < Self::MIN_LEN {
            Err(PasswordError::TooShort { min: Self::MIN_LEN })
        } else if length > Self::MAX_LEN {
            Err(PasswordError::TooLong { max: Self::MAX_LEN })
        } else if is_common(text) {
            Err(PasswordError::TooCommon)
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    /// The secret itself, for the password hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a [`crate::ports::PasswordHasher`] or read from storage.
    #[must_use]
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    #[must_use]
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: DisplayName,
    pub password_hash: PasswordHash,
    pub role: Role,
    pub balance: Amount,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised_to_lower_case() {
        let email = Email::parse("  Alice@Example.COM ").map(|e| e.as_str().to_owned());
        assert_eq!(email, Ok("alice@example.com".to_owned()));
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "al ice@example.com",
            "alice@.example.com",
            "alice@example..com",
            "alice@example.com.",
            "a\0b@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong { max: 254 }));
    }

    #[test]
    fn password_policy_is_eight_to_one_hundred_twenty_eight_characters() {
        assert_eq!(
            Password::parse("1234567"),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert!(Password::parse("x7#kq!2m").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(129)),
            Err(PasswordError::TooLong { max: 128 })
        );
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(COMMON_PASSWORDS.lines().count(), 10_000);
        for common in ["password", "12345678", "PassWord", "iloveyou", "trustno1"] {
            assert_eq!(
                Password::parse(common),
                Err(PasswordError::TooCommon),
                "{common}"
            );
        }
        assert!(Password::parse("correct horse battery").is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let password = Password::parse("hunter22hunter22").map(|p| format!("{p:?}"));
        assert_eq!(password, Ok("Password(<redacted>)".to_owned()));
        let hash = PasswordHash::from_phc("$argon2id$secret".into());
        assert!(!format!("{hash:?}").contains("secret"));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  "), Err(DisplayNameError::Blank));
        assert_eq!(
            DisplayName::parse(&"n".repeat(101)),
            Err(DisplayNameError::TooLong { max: 100 })
        );
        assert_eq!(
            DisplayName::parse("a\u{7}b"),
            Err(DisplayNameError::ControlCharacters)
        );
        assert_eq!(
            DisplayName::parse(" Ada ").map(|n| n.as_str().to_owned()),
            Ok("Ada".to_owned())
        );
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("root"), Err(UnknownRole));
    }

    proptest! {
        #[test]
        fn email_parsing_never_panics_and_accepts_only_normalised_output(text in "\\PC{0,300}") {
            if let Ok(email) = Email::parse(&text) {
                prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                prop_assert!(email.as_str().chars().count() <= Email::MAX_LEN);
            }
        }
    }
}
