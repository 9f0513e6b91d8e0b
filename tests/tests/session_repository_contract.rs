//! The `SessionRepository` contract (and the users-listing and deletion rules that touch
//! sessions), run against every adapter: in memory, SeaORM on SQLite and on PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::listing::{EmailPrefix, PageRequest, UserFilter, UserListQuery};
use domain::ports::RepositoryError;
use domain::{
    Amount, DisplayName, Email, PasswordHash, RefreshToken, RevokeReason, Role, SecretDigest,
    Session, SessionId, SessionLifetime, SessionMode, SessionState, User, UserId,
};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    a_session_round_trips_with_every_field,
    a_session_of_an_unknown_user_is_a_reference_conflict,
    active_sessions_are_listed_newest_first_without_revoked_or_expired_ones,
    revoking_keeps_the_first_reason_and_revoke_all_spares_the_kept_one,
    a_refresh_token_is_used_exactly_once,
    touching_moves_the_idle_expiry,
    deleting_a_user_deletes_their_sessions_unless_they_have_history,
    users_are_listed_oldest_first_by_role_and_literal_email_prefix,
);

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("a timestamp in range")
}

const START: i64 = 1_780_000_000_123_456;
const LIFETIME: SessionLifetime = SessionLifetime {
    idle: Duration::from_secs(3600),
    absolute: Duration::from_secs(86_400),
};

fn user(address: &str, role: Role, created: i64) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(address).expect("an email"),
        name: DisplayName::parse("Ada").expect("a name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role,
        balance: Amount::ZERO,
        disabled: false,
        created_at: at(created),
        updated_at: at(created),
    }
}

async fn stored_user(repositories: &Repositories, address: &str) -> User {
    let user = user(address, Role::User, START);
    repositories.users.insert(&user).await.expect("stored");
    user
}

fn session(user: UserId, mode: SessionMode, start: i64) -> Session {
    let mut session = Session::start(
        SessionId::from_uuid(Uuid::now_v7()),
        user,
        mode,
        LIFETIME,
        at(start),
        Some("Mozilla/5.0 (tests) ünïcode"),
    );
    if mode == SessionMode::Cookie {
        session.secret_digest = Some(SecretDigest(format!("{:064x}", start)));
        session.csrf_digest = Some(SecretDigest(format!("{:064x}", start + 1)));
    }
    session
}

async fn a_session_round_trips_with_every_field(repositories: Repositories) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let mut cookie = session(ada.id, SessionMode::Cookie, START);
    cookie.revoke(RevokeReason::PasswordChanged, at(START + 5));
    repositories.sessions.insert(&cookie).await.expect("stored");
    let found = repositories.sessions.find(cookie.id).await.expect("read");
    assert_eq!(found, Some(cookie.clone()));
    let digest = cookie.secret_digest.clone().expect("a digest");
    assert_eq!(
        repositories
            .sessions
            .find_by_secret(&digest)
            .await
            .expect("read"),
        Some(cookie.clone())
    );
    assert_eq!(
        repositories
            .sessions
            .find_by_secret(&SecretDigest("0".repeat(64)))
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        repositories
            .sessions
            .insert(&cookie)
            .await
            .err()
            .map(|e| e.to_string()),
        Some(RepositoryError::Conflict("id").to_string())
    );
}

async fn a_session_of_an_unknown_user_is_a_reference_conflict(repositories: Repositories) {
    let orphan = session(
        UserId::from_uuid(Uuid::now_v7()),
        SessionMode::Bearer,
        START,
    );
    assert!(matches!(
        repositories.sessions.insert(&orphan).await,
        Err(RepositoryError::Conflict("user_id"))
    ));
    let token = RefreshToken {
        digest: SecretDigest("a".repeat(64)),
        session_id: orphan.id,
        issued_at: at(START),
        used_at: None,
    };
    assert!(matches!(
        repositories.sessions.insert_refresh_token(&token).await,
        Err(RepositoryError::Conflict("session_id"))
    ));
}

async fn active_sessions_are_listed_newest_first_without_revoked_or_expired_ones(
    repositories: Repositories,
) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let bob = stored_user(&repositories, "bob@example.com").await;
    let old = session(ada.id, SessionMode::Bearer, START);
    let new = session(ada.id, SessionMode::Cookie, START + 1_000_000);
    let mut revoked = session(ada.id, SessionMode::Bearer, START + 2_000_000);
    revoked.revoke(RevokeReason::Logout, at(START + 3_000_000));
    let expired = session(ada.id, SessionMode::Bearer, START - 7_200_000_000);
    let bobs = session(bob.id, SessionMode::Bearer, START);
    for session in [&old, &new, &revoked, &expired, &bobs] {
        repositories.sessions.insert(session).await.expect("stored");
    }
    let now = at(START + 10_000_000);
    let listed = repositories
        .sessions
        .list_active(ada.id, now, 10)
        .await
        .expect("listed");
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [new.id, old.id]
    );
    assert_eq!(expired.state(now), SessionState::Expired);
    let one = repositories
        .sessions
        .list_active(ada.id, now, 1)
        .await
        .expect("listed");
    assert_eq!(one.len(), 1);
}

async fn revoking_keeps_the_first_reason_and_revoke_all_spares_the_kept_one(
    repositories: Repositories,
) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let sessions: Vec<Session> = (0..3)
        .map(|n| session(ada.id, SessionMode::Bearer, START + n))
        .collect();
    for session in &sessions {
        repositories.sessions.insert(session).await.expect("stored");
    }
    let sessions_repo = &repositories.sessions;
    assert!(
        sessions_repo
            .revoke(sessions[0].id, RevokeReason::Logout, at(START + 10))
            .await
            .expect("revoked")
    );
    assert!(
        !sessions_repo
            .revoke(sessions[0].id, RevokeReason::Revoked, at(START + 20))
            .await
            .expect("no-op"),
        "revoked already"
    );
    assert!(
        !sessions_repo
            .revoke(
                SessionId::from_uuid(Uuid::now_v7()),
                RevokeReason::Revoked,
                at(START)
            )
            .await
            .expect("no-op")
    );
    let revoked = sessions_repo
        .revoke_all(
            ada.id,
            Some(sessions[2].id),
            RevokeReason::PasswordChanged,
            at(START + 30),
        )
        .await
        .expect("revoked");
    assert_eq!(revoked, 1, "only the one not revoked yet and not kept");
    let state = |session: Option<Session>| session.expect("found").state(at(START + 40));
    assert_eq!(
        state(sessions_repo.find(sessions[0].id).await.expect("read")),
        SessionState::Revoked(RevokeReason::Logout)
    );
    assert_eq!(
        state(sessions_repo.find(sessions[1].id).await.expect("read")),
        SessionState::Revoked(RevokeReason::PasswordChanged)
    );
    assert_eq!(
        state(sessions_repo.find(sessions[2].id).await.expect("read")),
        SessionState::Active
    );
}

async fn a_refresh_token_is_used_exactly_once(repositories: Repositories) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let bearer = session(ada.id, SessionMode::Bearer, START);
    repositories.sessions.insert(&bearer).await.expect("stored");
    let token = RefreshToken {
        digest: SecretDigest("b".repeat(64)),
        session_id: bearer.id,
        issued_at: at(START),
        used_at: None,
    };
    repositories
        .sessions
        .insert_refresh_token(&token)
        .await
        .expect("stored");
    assert!(matches!(
        repositories.sessions.insert_refresh_token(&token).await,
        Err(RepositoryError::Conflict("digest"))
    ));
    assert_eq!(
        repositories
            .sessions
            .find_refresh_token(&token.digest)
            .await
            .expect("read"),
        Some(token.clone())
    );
    let used = at(START + 99);
    let (first, second) = tokio::join!(
        repositories.sessions.use_refresh_token(&token.digest, used),
        repositories.sessions.use_refresh_token(&token.digest, used),
    );
    let wins = [first.expect("used"), second.expect("used")];
    assert_eq!(wins.iter().filter(|won| **won).count(), 1, "{wins:?}");
    assert_eq!(
        repositories
            .sessions
            .find_refresh_token(&token.digest)
            .await
            .expect("read")
            .and_then(|token| token.used_at),
        Some(used)
    );
    assert!(
        !repositories
            .sessions
            .use_refresh_token(&SecretDigest("c".repeat(64)), used)
            .await
            .expect("no such token")
    );
}

async fn touching_moves_the_idle_expiry(repositories: Repositories) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let mut cookie = session(ada.id, SessionMode::Cookie, START);
    repositories.sessions.insert(&cookie).await.expect("stored");
    cookie.touch(LIFETIME, at(START) + TimeDelta::minutes(45));
    assert!(repositories.sessions.touch(&cookie).await.expect("touched"));
    assert_eq!(
        repositories.sessions.find(cookie.id).await.expect("read"),
        Some(cookie.clone())
    );
    let unknown = session(ada.id, SessionMode::Cookie, START + 1);
    assert!(!repositories.sessions.touch(&unknown).await.expect("no row"));
}

async fn deleting_a_user_deletes_their_sessions_unless_they_have_history(
    repositories: Repositories,
) {
    let ada = stored_user(&repositories, "ada@example.com").await;
    let bearer = session(ada.id, SessionMode::Bearer, START);
    repositories.sessions.insert(&bearer).await.expect("stored");
    let token = RefreshToken {
        digest: SecretDigest("d".repeat(64)),
        session_id: bearer.id,
        issued_at: at(START),
        used_at: None,
    };
    repositories
        .sessions
        .insert_refresh_token(&token)
        .await
        .expect("stored");
    repositories.users.delete(ada.id).await.expect("deleted");
    assert_eq!(
        repositories.users.find_by_id(ada.id).await.expect("read"),
        None
    );
    assert_eq!(
        repositories.sessions.find(bearer.id).await.expect("read"),
        None
    );
    assert_eq!(
        repositories
            .sessions
            .find_refresh_token(&token.digest)
            .await
            .expect("read"),
        None
    );
    assert!(matches!(
        repositories.users.delete(ada.id).await,
        Err(RepositoryError::NotFound)
    ));

    // A user with a market is kept.
    let bob = stored_user(&repositories, "bob@example.com").await;
    let market = domain::Market::open(
        domain::MarketId::from_uuid(Uuid::now_v7()),
        domain::market::MarketDraft {
            name: domain::MarketName::parse("Will Bob stay?").expect("a name"),
            description: domain::MarketDescription::default(),
            category: domain::Category::parse("test").expect("a category"),
            end_date: at(START) + TimeDelta::days(30),
        },
        bob.id,
        at(START),
    )
    .expect("a market");
    repositories.markets.insert(&market).await.expect("stored");
    assert!(matches!(
        repositories.users.delete(bob.id).await,
        Err(RepositoryError::Conflict("markets"))
    ));
    assert!(
        repositories
            .users
            .find_by_id(bob.id)
            .await
            .expect("read")
            .is_some()
    );
}

async fn users_are_listed_oldest_first_by_role_and_literal_email_prefix(
    repositories: Repositories,
) {
    let rows = [
        ("b_1@example.com", Role::User, 3),
        ("bx1@example.com", Role::User, 1),
        ("b_2@example.com", Role::Admin, 2),
        ("c%@example.com", Role::Moderator, 4),
    ];
    let mut ids = Vec::new();
    for (email, role, created) in rows {
        let user = user(email, role, START + created);
        repositories.users.insert(&user).await.expect("stored");
        ids.push(user.id);
    }
    let list = |filter: UserFilter, limit: u64, offset: u64| {
        let repositories = &repositories;
        async move {
            repositories
                .users
                .list(&UserListQuery {
                    filter,
                    page: PageRequest::new(limit, offset).expect("a page"),
                })
                .await
                .expect("listed")
        }
    };
    let all = list(UserFilter::default(), 2, 0).await;
    assert_eq!(all.total, 4);
    assert_eq!(
        all.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[1], ids[2]]
    );
    let prefix = |text: &str| Some(EmailPrefix::parse(text).expect("a prefix"));
    let underscore = list(
        UserFilter {
            email_prefix: prefix("B_"),
            ..UserFilter::default()
        },
        10,
        0,
    )
    .await;
    assert_eq!(
        underscore.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[2], ids[0]],
        "`_` matches itself only"
    );
    let percent = list(
        UserFilter {
            email_prefix: prefix("c%"),
            ..UserFilter::default()
        },
        10,
        0,
    )
    .await;
    assert_eq!(percent.total, 1);
    let admins = list(
        UserFilter {
            role: Some(Role::Admin),
            email_prefix: prefix("b"),
        },
        10,
        0,
    )
    .await;
    assert_eq!(
        admins.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[2]]
    );
    assert_eq!(admins.total, 1);
}
