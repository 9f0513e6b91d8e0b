//! `User` to and from a `users` row.

use domain::{Amount, DisplayName, Email, PasswordHash, Role, User, UserId};
use sea_orm::ActiveValue::Set;

use super::stored;
use crate::entity::users;
use crate::error::CorruptRow;

const TABLE: &str = "users";

/// The row that stores `user`.
pub(crate) fn to_active_model(user: &User) -> users::ActiveModel {
    users::ActiveModel {
        id: Set(user.id.as_uuid()),
        email: Set(user.email.as_str().to_owned()),
        name: Set(user.name.as_str().to_owned()),
        password_hash: Set(user.password_hash.as_phc().to_owned()),
        role: Set(user.role.as_str().to_owned()),
        balance_cents: Set(user.balance.cents()),
        disabled: Set(user.disabled),
        created_at: Set(stored(user.created_at)),
        updated_at: Set(stored(user.updated_at)),
    }
}

/// The user a row stores.
///
/// # Errors
/// [`CorruptRow`] when a column does not hold a valid value.
pub(crate) fn to_domain(row: users::Model) -> Result<User, CorruptRow> {
    let id = row.id;
    Ok(User {
        id: UserId::from_uuid(id),
        email: Email::parse(&row.email).map_err(CorruptRow::at(TABLE, id, "email"))?,
        name: DisplayName::parse(&row.name).map_err(CorruptRow::at(TABLE, id, "name"))?,
        password_hash: PasswordHash::from_phc(row.password_hash),
        role: Role::parse(&row.role).map_err(CorruptRow::at(TABLE, id, "role"))?,
        balance: Amount::from_cents(row.balance_cents)
            .ok_or("out of range")
            .map_err(CorruptRow::at(TABLE, id, "balance_cents"))?,
        disabled: row.disabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
