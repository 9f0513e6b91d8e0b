//! Access control as pure functions, the one policy every use case asks: role-based permissions
//! (RBAC, the table in [`crate::Role::permissions`]) and attribute-based rules on markets, users,
//! sessions and jobs (ABAC: ownership, whether a market already has positions).

use crate::id::UserId;
use crate::market::Market;
use crate::user::Role;

/// A coarse capability granted by a [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See resources.
    Read,
    /// Create resources and change one's own.
    Write,
    /// Moderate: change or remove what others made (within the rules of each resource).
    Delete,
    /// Administer users and anything else.
    Admin,
}

/// Who is asking: the signed-in user and their role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
}

/// Something an actor may want to do to an existing market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketAction {
    /// Change what the market says (name, description, category, end date).
    Update,
    /// Close, resolve or cancel it.
    ChangeStatus,
    /// Remove it.
    Delete,
}

/// Something an actor may want to do to a user account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// See private fields (email, balance).
    ViewPrivate,
    /// List and filter all users.
    List,
    /// Change one's own name or password.
    ChangeOwnProfile,
    /// Change anyone's name, role or disabled flag.
    Administer,
    /// Delete the account.
    Delete,
}

/// The actor lacks the permission or the relationship the action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not allowed")]
pub struct AccessDenied;

impl Actor {
    /// RBAC: whether the actor's role grants `permission`.
    ///
    /// # Errors
    /// [`AccessDenied`] when it does not.
    pub fn require(&self, permission: Permission) -> Result<(), AccessDenied> {
        if self.role.has(permission) {
            Ok(())
        } else {
            Err(AccessDenied)
        }
    }

    /// ABAC for markets:
    /// - the owner may update or delete their own market while it has no positions;
    /// - moderators and admins (the `delete` permission) may update any market and change any
    ///   market's status;
    /// - only admins may delete a market that is not theirs, or one that has positions.
    ///
    /// # Errors
    /// [`AccessDenied`] when none of the rules allows the action.
    pub fn may(&self, action: MarketAction, market: &Market) -> Result<(), AccessDenied> {
        let owns_untouched = market.creator_id == self.user_id && !market.has_positions();
        let allowed = match action {
            MarketAction::Update => {
                self.role.has(Permission::Delete)
                    || (owns_untouched && self.role.has(Permission::Write))
            }
            MarketAction::ChangeStatus => self.role.has(Permission::Delete),
            MarketAction::Delete => {
                self.role.has(Permission::Admin)
                    || (owns_untouched && self.role.has(Permission::Write))
            }
        };
        if allowed { Ok(()) } else { Err(AccessDenied) }
    }

    /// ABAC for user accounts: everyone may see their own private fields, change their own
    /// profile and delete their own account; listing, administering (role, disabled) and acting
    /// on other accounts take the `admin` permission.
    ///
    /// # Errors
    /// [`AccessDenied`] when none of the rules allows the action.
    pub fn may_user(&self, action: UserAction, target: UserId) -> Result<(), AccessDenied> {
        let own = target == self.user_id;
        let admin = self.role.has(Permission::Admin);
        let allowed = match action {
            UserAction::ViewPrivate | UserAction::Delete => own || admin,
            UserAction::ChangeOwnProfile => own,
            UserAction::List | UserAction::Administer => admin,
        };
        if allowed { Ok(()) } else { Err(AccessDenied) }
    }

    /// A session is its user's alone: only they may see or end it (admins end other users'
    /// sessions by disabling the account).
    ///
    /// # Errors
    /// [`AccessDenied`] when the session belongs to someone else.
    pub fn may_manage_session(&self, owner: UserId) -> Result<(), AccessDenied> {
        if owner == self.user_id {
            Ok(())
        } else {
            Err(AccessDenied)
        }
    }

    /// A job is visible to the user it acts for (the uploader of an image, say) and to admins;
    /// a job acting for nobody (settlement, scheduled work) to admins only.
    ///
    /// # Errors
    /// [`AccessDenied`] for anyone else.
    pub fn may_see_job(&self, owner: Option<UserId>) -> Result<(), AccessDenied> {
        if owner == Some(self.user_id) || self.role.has(Permission::Admin) {
            Ok(())
        } else {
            Err(AccessDenied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Category, MarketDescription, MarketDraft, MarketName};
    use crate::money::Amount;
    use crate::{MarketId, Role};
    use chrono::{Duration, Utc};
    use uuid::Uuid;

    fn market_of(creator: UserId, with_positions: bool) -> Market {
        let now = Utc::now();
        let mut market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse("Policy market").unwrap_or_else(|e| panic!("{e}")),
                description: MarketDescription::default(),
                category: Category::parse("test").unwrap_or_else(|e| panic!("{e}")),
                end_date: now + Duration::days(1),
            },
            creator,
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if with_positions {
            market.yes_volume = Amount::from_cents(100).unwrap_or_default();
        }
        market
    }

    #[test]
    fn roles_grant_the_catalogue_permissions() {
        use Permission::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Moderator, [true, true, true, false]),
            (Role::User, [true, true, false, false]),
        ];
        for (role, expected) in table {
            for (permission, granted) in [Read, Write, Delete, Admin].into_iter().zip(expected) {
                assert_eq!(role.has(permission), granted, "{role} {permission:?}");
            }
        }
    }

    /// Every role x action x ownership x has-positions case, against a table written out by hand.
    #[test]
    fn market_policy_is_exhaustively_as_specified() {
        use MarketAction::*;
        // (role, action, is_owner, has_positions) -> allowed
        let expected =
            |role: Role, action: MarketAction, owner: bool, positions: bool| match (role, action) {
                (Role::Admin, _) => true,
                (Role::Moderator, Update | ChangeStatus) => true,
                (Role::Moderator, Delete) => owner && !positions,
                (Role::User, Update | Delete) => owner && !positions,
                (Role::User, ChangeStatus) => false,
            };
        let mut cases = 0;
        for role in Role::ALL {
            for action in [Update, ChangeStatus, Delete] {
                for owner in [true, false] {
                    for positions in [true, false] {
                        let me = UserId::from_uuid(Uuid::now_v7());
                        let creator = if owner {
                            me
                        } else {
                            UserId::from_uuid(Uuid::now_v7())
                        };
                        let actor = Actor { user_id: me, role };
                        let market = market_of(creator, positions);
                        assert_eq!(
                            actor.may(action, &market).is_ok(),
                            expected(role, action, owner, positions),
                            "{role} {action:?} owner={owner} positions={positions}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 3 * 2 * 2);
    }

    #[test]
    fn user_policy_is_exhaustively_as_specified() {
        use UserAction::*;
        let expected = |role: Role, action: UserAction, own: bool| match action {
            ViewPrivate | Delete => own || role == Role::Admin,
            ChangeOwnProfile => own,
            List | Administer => role == Role::Admin,
        };
        for role in Role::ALL {
            for action in [ViewPrivate, List, ChangeOwnProfile, Administer, Delete] {
                for own in [true, false] {
                    let me = UserId::from_uuid(Uuid::now_v7());
                    let target = if own {
                        me
                    } else {
                        UserId::from_uuid(Uuid::now_v7())
                    };
                    let actor = Actor { user_id: me, role };
                    assert_eq!(
                        actor.may_user(action, target).is_ok(),
                        expected(role, action, own),
                        "{role} {action:?} own={own}"
                    );
                }
            }
        }
    }

    #[test]
    fn sessions_are_their_users_and_jobs_their_owners_and_the_admins() {
        let me = UserId::from_uuid(Uuid::now_v7());
        let other = UserId::from_uuid(Uuid::now_v7());
        for role in Role::ALL {
            let actor = Actor { user_id: me, role };
            assert!(actor.may_manage_session(me).is_ok());
            assert!(actor.may_manage_session(other).is_err(), "{role}");
            assert!(actor.may_see_job(Some(me)).is_ok());
            let admin = role == Role::Admin;
            assert_eq!(actor.may_see_job(Some(other)).is_ok(), admin, "{role}");
            assert_eq!(actor.may_see_job(None).is_ok(), admin, "{role}");
        }
    }

    #[test]
    fn require_checks_the_role() {
        let user = Actor {
            user_id: UserId::from_uuid(Uuid::now_v7()),
            role: Role::User,
        };
        assert_eq!(user.require(Permission::Write), Ok(()));
        assert_eq!(user.require(Permission::Admin), Err(AccessDenied));
    }
}
