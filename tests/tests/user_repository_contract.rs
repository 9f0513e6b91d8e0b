//! The `UserRepository` contract, run against every adapter: in memory, SeaORM on SQLite and
//! SeaORM on PostgreSQL. Each test gets fresh, empty repositories.

use chrono::{DateTime, Utc};
use domain::ports::RepositoryError;
use domain::{Amount, DisplayName, Email, PasswordHash, Role, User, UserId};
use tests::Repositories;
use uuid::Uuid;

tests::contract_tests!(
    a_stored_user_is_found_by_id_with_every_field_intact,
    a_stored_user_is_found_by_email_typed_in_any_case,
    unknown_ids_and_emails_are_none,
    every_role_round_trips_with_its_balance_and_disabled_flag,
    timestamps_keep_every_microsecond,
    the_largest_balance_and_unicode_text_round_trip,
    an_email_is_taken_whatever_the_case_it_is_typed_in,
    an_email_with_non_ascii_letters_is_taken_whatever_its_case,
    a_taken_id_with_a_free_email_is_an_id_conflict,
    inserting_the_same_user_twice_is_an_email_conflict,
    a_rejected_insert_leaves_the_stored_user_unchanged,
);

/// A microsecond-precise instant, as the domain's clock produces.
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("a timestamp in range")
}

fn email(text: &str) -> Email {
    Email::parse(text).expect("a valid email")
}

fn cents(cents: i64) -> Amount {
    Amount::from_cents(cents).expect("a valid amount")
}

/// A user with every field set to something other than a default.
fn user(address: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: email(address),
        name: DisplayName::parse("Ada Lovelace").expect("a valid name"),
        password_hash: PasswordHash::from_phc(
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into(),
        ),
        role: Role::Moderator,
        balance: cents(12_345),
        disabled: true,
        created_at: at(1_780_000_000_123_456),
        updated_at: at(1_780_000_100_654_321),
    }
}

async fn insert(repositories: &Repositories, user: &User) {
    repositories
        .users
        .insert(user)
        .await
        .expect("the user is stored");
}

async fn by_id(repositories: &Repositories, id: UserId) -> Option<User> {
    repositories
        .users
        .find_by_id(id)
        .await
        .expect("the store reads")
}

async fn by_email(repositories: &Repositories, address: &str) -> Option<User> {
    repositories
        .users
        .find_by_email(&email(address))
        .await
        .expect("the store reads")
}

async fn a_stored_user_is_found_by_id_with_every_field_intact(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    let found = by_id(&repositories, ada.id)
        .await
        .expect("the user is found");

    assert_eq!(found, ada);
    // `PasswordHash` hides itself from `Debug`: compare the secret explicitly too.
    assert_eq!(found.password_hash.as_phc(), ada.password_hash.as_phc());
}

async fn a_stored_user_is_found_by_email_typed_in_any_case(repositories: Repositories) {
    let ada = user("Ada.Lovelace@Example.com");
    insert(&repositories, &ada).await;

    for typed in [
        "ada.lovelace@example.com",
        "ADA.LOVELACE@EXAMPLE.COM",
        " Ada.Lovelace@example.COM ",
    ] {
        let found = by_email(&repositories, typed).await;
        assert_eq!(found.as_ref(), Some(&ada), "{typed}");
        let found = found.expect("found");
        assert_eq!(
            found.password_hash.as_phc(),
            ada.password_hash.as_phc(),
            "{typed}"
        );
    }
}

async fn unknown_ids_and_emails_are_none(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    assert_eq!(
        by_id(&repositories, UserId::from_uuid(Uuid::now_v7())).await,
        None
    );
    assert_eq!(
        by_id(&repositories, UserId::from_uuid(Uuid::nil())).await,
        None
    );
    assert_eq!(by_email(&repositories, "bob@example.com").await, None);
    // Near misses are not matches: the lookup is exact apart from case.
    assert_eq!(by_email(&repositories, "ada@example.co").await, None);
    assert_eq!(by_email(&repositories, "da@example.com").await, None);
    assert_eq!(by_email(&repositories, "ada@example.com.au").await, None);
    // The stored user is still there.
    assert_eq!(by_email(&repositories, "ada@example.com").await, Some(ada));
}

async fn every_role_round_trips_with_its_balance_and_disabled_flag(repositories: Repositories) {
    let mut stored = Vec::new();
    for (n, role) in (0_i64..).zip(Role::ALL) {
        let mut person = user(&format!("{}@example.com", role.as_str()));
        person.role = role;
        person.disabled = n % 2 == 0;
        person.balance = cents(n * 1_000 + 7);
        insert(&repositories, &person).await;
        stored.push(person);
    }
    // A disabled user with no credit and an enabled one with some, for every role.
    for (n, role) in (0_i64..).zip(Role::ALL) {
        let mut person = user(&format!("second-{}@example.com", role.as_str()));
        person.role = role;
        person.disabled = n % 2 == 1;
        person.balance = if n == 0 { Amount::ZERO } else { cents(n) };
        insert(&repositories, &person).await;
        stored.push(person);
    }

    for person in &stored {
        assert_eq!(
            by_id(&repositories, person.id).await.as_ref(),
            Some(person),
            "{}",
            person.role
        );
        assert_eq!(
            by_email(&repositories, person.email.as_str())
                .await
                .as_ref(),
            Some(person),
            "{}",
            person.role
        );
    }
}

async fn timestamps_keep_every_microsecond(repositories: Repositories) {
    let cases = [
        // One microsecond past a whole second, and the last microsecond before one.
        (1_780_000_000_000_001, 1_780_000_000_999_999),
        // Whole seconds (no fraction at all).
        (1_780_000_000_000_000, 1_780_000_001_000_000),
        // A fraction with trailing zeros, and one with a leading zero.
        (1_780_000_000_500_000, 1_780_000_000_050_000),
        // Updated before created is not the repository's business.
        (1_780_000_000_000_010, 1_700_000_000_000_100),
    ];
    let mut stored = Vec::new();
    for (n, (created, updated)) in cases.into_iter().enumerate() {
        let mut person = user(&format!("time-{n}@example.com"));
        person.created_at = at(created);
        person.updated_at = at(updated);
        insert(&repositories, &person).await;
        stored.push(person);
    }
    for person in &stored {
        let found = by_id(&repositories, person.id).await.expect("found");
        assert_eq!(found.created_at, person.created_at);
        assert_eq!(found.updated_at, person.updated_at);
        assert_eq!(&found, person);
    }
}

async fn the_largest_balance_and_unicode_text_round_trip(repositories: Repositories) {
    let mut rich = user("zoë.ünïcode@exämple.com");
    rich.name = DisplayName::parse("Zoë 🚀 O'Brien \"the\" 100% _real_ \\ one").expect("valid");
    rich.balance = Amount::MAX;
    rich.role = Role::Admin;
    rich.disabled = false;
    insert(&repositories, &rich).await;

    assert_eq!(by_id(&repositories, rich.id).await.as_ref(), Some(&rich));
    assert_eq!(
        by_email(&repositories, "ZOË.ÜNÏCODE@EXÄMPLE.COM").await,
        Some(rich)
    );
}

async fn an_email_is_taken_whatever_the_case_it_is_typed_in(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    for typed in ["ada@example.com", "ADA@EXAMPLE.COM", "Ada@Example.Com"] {
        let impostor = user(typed);
        let result = repositories.users.insert(&impostor).await;
        assert!(
            matches!(result, Err(RepositoryError::Conflict("email"))),
            "{typed}: {result:?}"
        );
        assert_eq!(by_id(&repositories, impostor.id).await, None, "{typed}");
    }
    assert_eq!(by_email(&repositories, "ADA@example.com").await, Some(ada));
}

async fn an_email_with_non_ascii_letters_is_taken_whatever_its_case(repositories: Repositories) {
    let first = user("Łukasz.Öberg@Exämple.com");
    insert(&repositories, &first).await;

    let second = user("łUKASZ.öBERG@EXÄMPLE.COM");
    let result = repositories.users.insert(&second).await;

    assert!(
        matches!(result, Err(RepositoryError::Conflict("email"))),
        "{result:?}"
    );
    assert_eq!(by_id(&repositories, second.id).await, None);
    assert_eq!(
        by_email(&repositories, "łukasz.öberg@exämple.com").await,
        Some(first)
    );
}

async fn a_taken_id_with_a_free_email_is_an_id_conflict(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    let twin = User {
        email: email("twin@example.com"),
        name: DisplayName::parse("Twin").expect("valid"),
        ..user("unused@example.com")
    };
    let twin = User { id: ada.id, ..twin };
    let result = repositories.users.insert(&twin).await;

    assert!(
        matches!(result, Err(RepositoryError::Conflict("id"))),
        "{result:?}"
    );
    assert_eq!(by_email(&repositories, "twin@example.com").await, None);
    assert_eq!(by_id(&repositories, ada.id).await, Some(ada));
}

/// Both rules are broken; the contract names the email first ("`Conflict("id")` when the email
/// is free but the id exists").
async fn inserting_the_same_user_twice_is_an_email_conflict(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    let result = repositories.users.insert(&ada).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("email"))),
        "{result:?}"
    );

    let shouting = User {
        email: email("ADA@EXAMPLE.COM"),
        ..ada.clone()
    };
    let result = repositories.users.insert(&shouting).await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict("email"))),
        "{result:?}"
    );
    assert_eq!(by_id(&repositories, ada.id).await, Some(ada));
}

async fn a_rejected_insert_leaves_the_stored_user_unchanged(repositories: Repositories) {
    let ada = user("ada@example.com");
    insert(&repositories, &ada).await;

    let mut rival = user("ADA@example.com");
    rival.role = Role::Admin;
    rival.balance = Amount::MAX;
    rival.disabled = false;
    assert!(repositories.users.insert(&rival).await.is_err());

    let mut same_id = user("other@example.com");
    same_id.id = ada.id;
    same_id.role = Role::Admin;
    assert!(repositories.users.insert(&same_id).await.is_err());

    let found = by_email(&repositories, "ada@example.com").await;
    assert_eq!(found.as_ref(), Some(&ada));
    assert_eq!(
        found.expect("found").password_hash.as_phc(),
        ada.password_hash.as_phc()
    );
    assert_eq!(by_id(&repositories, ada.id).await, Some(ada));
}
