//! The blob store port: opaque files (uploaded images and what is made from them) kept under validated keys.

use std::fmt;

use async_trait::async_trait;

use super::BoxError;

/// Where a blob is kept: a relative path of `/`-separated segments, each 1 or more of
/// `[a-z0-9-_.]`, never `.` or `..`, at most [`BlobKey::MAX_LEN`] bytes in all. Safe to use as a
/// relative file path or an object-store key as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

/// Why a text is not a [`BlobKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob key: {0}")]
pub struct InvalidBlobKey(&'static str);

impl BlobKey {
    /// The longest key, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Checks `key` (see [`BlobKey`]).
    ///
    /// # Errors
    /// [`InvalidBlobKey`] naming the broken rule.
    pub fn parse(key: &str) -> Result<Self, InvalidBlobKey> {
        if key.is_empty() {
            return Err(InvalidBlobKey("it is empty"));
        }
        if key.len() > Self::MAX_LEN {
            return Err(InvalidBlobKey("it is longer than 255 bytes"));
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return Err(InvalidBlobKey(
                    "it has an empty segment (a leading, trailing or doubled `/`)",
                ));
            }
            if segment == "." || segment == ".." {
                return Err(InvalidBlobKey("it has a `.` or `..` segment"));
            }
            if !segment.bytes().all(|byte| {
                byte.is_ascii_lowercase()
                    || byte.is_ascii_digit()
                    || matches!(byte, b'-' | b'_' | b'.')
            }) {
                return Err(InvalidBlobKey(
                    "it has a character other than a-z, 0-9, `-`, `_`, `.` and `/`",
                ));
            }
        }
        Ok(Self(key.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored blob and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Vec<u8>,
    /// `image/png`, ...: as given to [`BlobStore::put`].
    pub content_type: String,
}

/// Why a blob store failed. Nothing was stored (a failed `put` leaves no partial blob).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No space left: the disk is full or a quota is reached. Passing, once space is freed.
    #[error("the blob storage is full")]
    Full,
    /// The store failed otherwise (I/O error, permissions, an unreachable service).
    #[error("the blob storage is unavailable: {0}")]
    Unavailable(String),
}

impl BlobError {
    /// [`BlobError::Unavailable`] describing `cause`.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        Self::Unavailable(cause.to_string())
    }

    /// This error as the cause of another one.
    #[must_use]
    pub fn boxed(self) -> BoxError {
        Box::new(self)
    }
}

/// Files kept outside the database, under [`BlobKey`]s. Writes are atomic: a blob is either
/// stored whole or not at all, and a `put` on an existing key replaces it whole.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` of `content_type` under `key`, replacing what was there.
    ///
    /// # Errors
    /// - [`BlobError::Full`] when there is no space left (nothing was stored);
    /// - [`BlobError::Unavailable`] when the store fails otherwise (nothing was stored).
    async fn put(&self, key: &BlobKey, bytes: &[u8], content_type: &str) -> Result<(), BlobError>;

    /// The blob under `key`, or `None`.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError>;

    /// Removes the blob under `key`; removing a missing blob is not an error.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_safe_relative_paths() {
        for good in [
            "markets/0192/abc.png",
            "a",
            "a-b_c.d/e",
            "markets/019a6e2c-1b2c-7def-8000-000000000000/x-thumb.png",
        ] {
            assert_eq!(
                BlobKey::parse(good).map(|k| k.to_string()),
                Ok(good.to_owned())
            );
        }
        for bad in [
            "",
            "/abs",
            "trailing/",
            "a//b",
            "../up",
            "a/../b",
            "./a",
            "A.png",
            "a b",
            "a\\b",
            "é",
            "a\0b",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BlobKey::parse(&"a".repeat(255)).is_ok());
        assert!(BlobKey::parse(&"a".repeat(256)).is_err());
    }
}
