//! How storage failures become `RepositoryError`s, and the error for a row that is not a valid domain value.

use std::fmt::Display;

use domain::ports::RepositoryError;
use sea_orm::DbErr;
use uuid::Uuid;

/// A stored row that does not make a valid domain value: the data is corrupt (or was edited by
/// hand). Reported as [`RepositoryError::Unavailable`], since no caller can do anything about it.
#[derive(Debug, thiserror::Error)]
#[error("corrupt data: {table} row {id} has an invalid {column}: {reason}")]
pub struct CorruptRow {
    table: &'static str,
    id: Uuid,
    column: &'static str,
    reason: String,
}

impl CorruptRow {
    /// The error for `column` of the row `id` of `table`, from the reason the domain gave; the
    /// stored value itself is not repeated (it may be personal data).
    pub(crate) fn at<E: Display>(
        table: &'static str,
        id: Uuid,
        column: &'static str,
    ) -> impl FnOnce(E) -> Self {
        move |reason| Self {
            table,
            id,
            column,
            reason: reason.to_string(),
        }
    }
}

impl From<CorruptRow> for RepositoryError {
    fn from(error: CorruptRow) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// Any storage failure that is not a broken rule of the data.
pub(crate) fn unavailable(error: DbErr) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(error))
}
