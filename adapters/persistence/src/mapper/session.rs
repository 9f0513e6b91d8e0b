//! `Session` and `RefreshToken` to and from `sessions` and `refresh_tokens` rows.

use domain::{RefreshToken, RevokeReason, SecretDigest, Session, SessionId, SessionMode, UserId};
use sea_orm::ActiveValue::Set;

use super::stored;
use crate::entity::{refresh_tokens, sessions};
use crate::error::CorruptRow;

const TABLE: &str = "sessions";

/// The row that stores `session`.
pub(crate) fn to_active_model(session: &Session) -> sessions::ActiveModel {
    sessions::ActiveModel {
        id: Set(session.id.as_uuid()),
        user_id: Set(session.user_id.as_uuid()),
        mode: Set(session.mode.as_str().to_owned()),
        created_at: Set(stored(session.created_at)),
        last_used_at: Set(stored(session.last_used_at)),
        idle_expires_at: Set(stored(session.idle_expires_at)),
        expires_at: Set(stored(session.expires_at)),
        revoked_at: Set(session.revoked_at.map(stored)),
        revoke_reason: Set(session
            .revoke_reason
            .map(|reason| reason.as_str().to_owned())),
        user_agent: Set(session.user_agent.clone()),
        secret_digest: Set(session.secret_digest.as_ref().map(|d| d.0.clone())),
        csrf_digest: Set(session.csrf_digest.as_ref().map(|d| d.0.clone())),
    }
}

/// The session a row stores.
///
/// # Errors
/// [`CorruptRow`] when a column does not hold a valid value.
pub(crate) fn to_domain(row: sessions::Model) -> Result<Session, CorruptRow> {
    let id = row.id;
    let revoke_reason = row
        .revoke_reason
        .as_deref()
        .map(|text| RevokeReason::parse(text).ok_or("unknown reason"))
        .transpose()
        .map_err(CorruptRow::at(TABLE, id, "revoke_reason"))?;
    Ok(Session {
        id: SessionId::from_uuid(id),
        user_id: UserId::from_uuid(row.user_id),
        mode: SessionMode::parse(&row.mode).map_err(CorruptRow::at(TABLE, id, "mode"))?,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        idle_expires_at: row.idle_expires_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        revoke_reason,
        user_agent: row.user_agent,
        secret_digest: row.secret_digest.map(SecretDigest),
        csrf_digest: row.csrf_digest.map(SecretDigest),
    })
}

/// The row that stores `token`.
pub(crate) fn token_to_active_model(token: &RefreshToken) -> refresh_tokens::ActiveModel {
    refresh_tokens::ActiveModel {
        digest: Set(token.digest.0.clone()),
        session_id: Set(token.session_id.as_uuid()),
        issued_at: Set(stored(token.issued_at)),
        used_at: Set(token.used_at.map(stored)),
    }
}

/// The refresh token a row stores.
pub(crate) fn token_to_domain(row: refresh_tokens::Model) -> RefreshToken {
    RefreshToken {
        digest: SecretDigest(row.digest),
        session_id: SessionId::from_uuid(row.session_id),
        issued_at: row.issued_at,
        used_at: row.used_at,
    }
}
