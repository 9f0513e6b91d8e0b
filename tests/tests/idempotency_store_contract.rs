//! The `IdempotencyStore` contract, run against every adapter: in memory, SeaORM on SQLite and
//! SeaORM on PostgreSQL. Each test gets fresh, empty repositories.
//!
//! As in the request flow: `claim`, `release` and `purge_expired` go through
//! `repositories.idempotency` (they commit at once); `complete` goes through the business
//! transaction's store. Times are given by the caller (`now`), never read from a clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::ports::{
    Claim, ClaimRequest, IdempotencyScope, IdempotencyStore, RepositoryError, StoredResponse,
};
use tests::Repositories;

tests::contract_tests!(
    the_first_claim_of_a_key_acquires_it,
    claiming_again_while_the_work_is_in_progress_is_in_progress,
    a_different_request_with_the_same_key_is_a_mismatch_in_progress_or_completed,
    a_key_completed_in_a_committed_transaction_replays_the_exact_response,
    empty_headers_and_an_empty_body_replay_as_empty,
    a_completion_in_a_dropped_transaction_leaves_the_key_in_progress,
    a_released_claim_can_be_acquired_again,
    releasing_a_completed_key_keeps_its_response,
    an_expired_record_counts_as_absent_and_is_taken_over,
    an_unfinished_claim_whose_lease_ended_is_taken_over,
    a_record_expiring_exactly_now_counts_as_expired,
    a_lease_ending_exactly_now_can_be_taken_over,
    purging_at_the_expiry_instant_deletes_the_record,
    an_expired_or_abandoned_record_counts_as_absent_even_for_a_different_request,
    two_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once,
    many_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once,
    scopes_differing_in_caller_route_or_key_are_independent,
    completing_a_key_that_is_not_claimed_is_not_found,
    purging_deletes_only_expired_records_and_counts_them,
    a_duplicate_claim_during_the_first_requests_transaction_never_acquires_the_key,
);

tests::parallel_contract_tests!(
    two_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once,
    many_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once,
);

// ---------------------------------------------------------------------------------------------
// Building blocks

const BASE_MICROS: i64 = 1_780_000_000_123_456;
const ROUTE: &str = "POST /api/v1/markets/{id}/positions";
/// How long a completed record is kept in these tests.
const KEEP: TimeDelta = TimeDelta::hours(24);
/// How long an unfinished claim is honoured in these tests.
const LEASE: TimeDelta = TimeDelta::seconds(30);
const MICRO: TimeDelta = TimeDelta::microseconds(1);

/// The base instant plus `offset`.
fn at(offset: TimeDelta) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(BASE_MICROS).expect("a timestamp in range") + offset
}

fn t0() -> DateTime<Utc> {
    at(TimeDelta::zero())
}

fn scope(caller: &str, route: &str, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        caller: caller.into(),
        route: route.into(),
        key: key.into(),
    }
}

/// Alice's scope for `key` on the usual route.
fn key(key: &str) -> IdempotencyScope {
    scope("0190c7d2-0000-7000-8000-00000000a11c", ROUTE, key)
}

/// A claim at `now`, kept for [`KEEP`] and leased for [`LEASE`].
fn request(scope: &IdempotencyScope, fingerprint: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        scope: scope.clone(),
        fingerprint: fingerprint.into(),
        now,
        expires_at: now + KEEP,
        lease_until: now + LEASE,
    }
}

/// A response worth replaying: headers in a deliberate (non-alphabetical) order and a body that
/// holds every byte value, NUL and invalid UTF-8 included.
fn response() -> StoredResponse {
    let mut body = b"{\"data\":{\"id\":\"p-1\"}}\n".to_vec();
    body.extend(0_u8..=255);
    body.extend([0xff, 0xfe, 0x00, 0xc3, 0x28]);
    StoredResponse {
        status: 201,
        headers: vec![
            ("Location".into(), "/api/v1/positions/p-1".into()),
            ("ETag".into(), "\"2\"".into()),
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
        ],
        body,
    }
}

fn another_response() -> StoredResponse {
    StoredResponse {
        status: 409,
        headers: vec![("Content-Type".into(), "application/problem+json".into())],
        body: "{\"error\":{\"code\":\"conflict\",\"message\":\"déjà\"}}".into(),
    }
}

async fn claim(repositories: &Repositories, request: &ClaimRequest) -> Claim {
    repositories
        .idempotency
        .claim(request)
        .await
        .expect("the claim is answered")
}

/// Completes `scope` with `response` inside a transaction that commits.
async fn complete(
    repositories: &Repositories,
    scope: &IdempotencyScope,
    response: &StoredResponse,
) {
    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    transaction
        .idempotency()
        .complete(scope, response)
        .await
        .expect("the key is completed");
    transaction.commit().await.expect("the commit");
}

async fn release(repositories: &Repositories, scope: &IdempotencyScope) {
    repositories
        .idempotency
        .release(scope)
        .await
        .expect("the release");
}

// ---------------------------------------------------------------------------------------------
// Claims

async fn the_first_claim_of_a_key_acquires_it(repositories: Repositories) {
    assert_eq!(
        claim(&repositories, &request(&key("k-1"), "f-1", t0())).await,
        Claim::Acquired
    );
    // Another key is another record.
    assert_eq!(
        claim(&repositories, &request(&key("k-2"), "f-1", t0())).await,
        Claim::Acquired
    );
}

async fn claiming_again_while_the_work_is_in_progress_is_in_progress(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    for offset in [
        TimeDelta::zero(),
        MICRO,
        TimeDelta::seconds(10),
        LEASE - MICRO,
    ] {
        // Each retry asks for a lease of its own; none of them takes the key.
        assert_eq!(
            claim(&repositories, &request(&k, "f", at(offset))).await,
            Claim::InProgress,
            "{offset}"
        );
    }
}

async fn a_different_request_with_the_same_key_is_a_mismatch_in_progress_or_completed(
    repositories: Repositories,
) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f-original", t0())).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f-other", t0())).await,
        Claim::Mismatch
    );
    // A fingerprint is compared exactly.
    for other in ["F-ORIGINAL", "f-original ", "f-origina", ""] {
        assert_eq!(
            claim(&repositories, &request(&k, other, t0())).await,
            Claim::Mismatch,
            "{other:?}"
        );
    }
    // The mismatch changed nothing: the original request is still in progress.
    assert_eq!(
        claim(&repositories, &request(&k, "f-original", t0())).await,
        Claim::InProgress
    );

    complete(&repositories, &k, &response()).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f-other", at(MICRO))).await,
        Claim::Mismatch
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f-original", at(MICRO))).await,
        Claim::Replay(response())
    );
}

async fn a_key_completed_in_a_committed_transaction_replays_the_exact_response(
    repositories: Repositories,
) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &k, &response()).await;

    for offset in [TimeDelta::zero(), LEASE + MICRO, KEEP - MICRO] {
        assert_eq!(
            claim(&repositories, &request(&k, "f", at(offset))).await,
            Claim::Replay(response()),
            "{offset}"
        );
    }

    // A second key keeps its own response.
    let other = key("other");
    assert_eq!(
        claim(&repositories, &request(&other, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &other, &another_response()).await;
    assert_eq!(
        claim(&repositories, &request(&other, "f", t0())).await,
        Claim::Replay(another_response())
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Replay(response())
    );
}

async fn empty_headers_and_an_empty_body_replay_as_empty(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    let empty = StoredResponse {
        status: 204,
        headers: vec![],
        body: vec![],
    };
    complete(&repositories, &k, &empty).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Replay(empty)
    );
}

async fn a_completion_in_a_dropped_transaction_leaves_the_key_in_progress(
    repositories: Repositories,
) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    transaction
        .idempotency()
        .complete(&k, &response())
        .await
        .expect("the key is completed");
    drop(transaction);

    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::InProgress,
        "no response without the change it belongs to"
    );
    // The claim is still there to complete for real.
    complete(&repositories, &k, &another_response()).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::Replay(another_response())
    );
}

async fn a_released_claim_can_be_acquired_again(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    release(&repositories, &k).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::InProgress
    );

    // Released means forgotten: another request may now use the key.
    release(&repositories, &k).await;
    release(&repositories, &k).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f-other", at(MICRO))).await,
        Claim::Acquired
    );

    // Releasing a key nobody claimed is harmless and claims nothing.
    let never = key("never");
    release(&repositories, &never).await;
    assert_eq!(
        claim(&repositories, &request(&never, "f", t0())).await,
        Claim::Acquired
    );
}

async fn releasing_a_completed_key_keeps_its_response(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &k, &response()).await;
    release(&repositories, &k).await;

    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::Replay(response())
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f-other", at(MICRO))).await,
        Claim::Mismatch
    );
}

// ---------------------------------------------------------------------------------------------
// Expiry and leases

async fn an_expired_record_counts_as_absent_and_is_taken_over(repositories: Repositories) {
    let done = key("done");
    assert_eq!(
        claim(&repositories, &request(&done, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &done, &response()).await;
    assert_eq!(
        claim(&repositories, &request(&done, "f", at(KEEP - MICRO))).await,
        Claim::Replay(response()),
        "not expired yet"
    );

    let later = at(KEEP + MICRO);
    assert_eq!(
        claim(&repositories, &request(&done, "f", later)).await,
        Claim::Acquired,
        "expired: taken over"
    );
    // The new claim is a record of its own: in progress, then completed with the new response.
    assert_eq!(
        claim(&repositories, &request(&done, "f", later)).await,
        Claim::InProgress
    );
    complete(&repositories, &done, &another_response()).await;
    assert_eq!(
        claim(&repositories, &request(&done, "f", later + MICRO)).await,
        Claim::Replay(another_response())
    );

    // An unfinished claim that expired (its lease ended long before) counts as absent too.
    let stuck = key("stuck");
    assert_eq!(
        claim(&repositories, &request(&stuck, "f", t0())).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&stuck, "f", at(KEEP + MICRO))).await,
        Claim::Acquired
    );
}

async fn an_unfinished_claim_whose_lease_ended_is_taken_over(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(LEASE - MICRO))).await,
        Claim::InProgress,
        "the lease still holds"
    );

    // The first worker crashed: after its lease, the key is someone else's.
    let takeover = at(LEASE + MICRO);
    assert_eq!(
        claim(&repositories, &request(&k, "f", takeover)).await,
        Claim::Acquired
    );
    // The new claim has a lease of its own, counted from the takeover.
    assert_eq!(
        claim(&repositories, &request(&k, "f", takeover + LEASE - MICRO)).await,
        Claim::InProgress
    );
    complete(&repositories, &k, &response()).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f", takeover + LEASE + MICRO)).await,
        Claim::Replay(response()),
        "a completed record has no lease to end"
    );
}

/// `expires_at` is "when a completed record may be forgotten": at that instant it is expired.
async fn a_record_expiring_exactly_now_counts_as_expired(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &k, &response()).await;
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(KEEP))).await,
        Claim::Acquired
    );
}

/// `lease_until` is "until when an unfinished claim is honoured": at that instant it may be taken
/// over.
async fn a_lease_ending_exactly_now_can_be_taken_over(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(LEASE))).await,
        Claim::Acquired
    );
}

/// Purging and claiming agree on when a record has expired.
async fn purging_at_the_expiry_instant_deletes_the_record(repositories: Repositories) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &k, &response()).await;
    assert_eq!(
        repositories
            .idempotency
            .purge_expired(at(KEEP - MICRO))
            .await
            .expect("a purge"),
        0
    );
    assert_eq!(
        repositories
            .idempotency
            .purge_expired(at(KEEP))
            .await
            .expect("a purge"),
        1
    );
}

/// A record that counts as absent is as good as purged: whether a purge ran before must not
/// change the answer, so a different request gets the key rather than a mismatch.
async fn an_expired_or_abandoned_record_counts_as_absent_even_for_a_different_request(
    repositories: Repositories,
) {
    let expired = key("expired");
    assert_eq!(
        claim(&repositories, &request(&expired, "f", t0())).await,
        Claim::Acquired
    );
    complete(&repositories, &expired, &response()).await;
    assert_eq!(
        claim(
            &repositories,
            &request(&expired, "f-other", at(KEEP + MICRO))
        )
        .await,
        Claim::Acquired
    );
    assert_eq!(
        claim(&repositories, &request(&expired, "f", at(KEEP + MICRO))).await,
        Claim::Mismatch,
        "the key now belongs to the other request"
    );

    let abandoned = key("abandoned");
    assert_eq!(
        claim(&repositories, &request(&abandoned, "f", t0())).await,
        Claim::Acquired
    );
    assert_eq!(
        claim(
            &repositories,
            &request(&abandoned, "f-other", at(LEASE + MICRO))
        )
        .await,
        Claim::Acquired
    );
    assert_eq!(
        claim(
            &repositories,
            &request(&abandoned, "f-other", at(LEASE + MICRO))
        )
        .await,
        Claim::InProgress
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency

async fn two_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once(repositories: Repositories) {
    for round in 0..5 {
        let k = key(&format!("k-{round}"));
        let first = request(&k, "f", t0());
        let second = request(&k, "f", t0());
        let (a, b) = tokio::join!(
            repositories.idempotency.claim(&first),
            repositories.idempotency.claim(&second)
        );
        let mut answers = vec![
            a.expect("the first claim is answered"),
            b.expect("the second claim is answered"),
        ];
        answers.sort_by_key(|claim| matches!(claim, Claim::InProgress));
        assert_eq!(
            answers,
            vec![Claim::Acquired, Claim::InProgress],
            "round {round}"
        );
    }
}

async fn many_concurrent_claims_of_a_fresh_key_acquire_it_exactly_once(repositories: Repositories) {
    let k = key("k");
    let claims: Vec<_> = (0..10)
        .map(|_| {
            let store: Arc<dyn IdempotencyStore> = Arc::clone(&repositories.idempotency);
            let request = request(&k, "f", t0());
            tokio::spawn(async move { store.claim(&request).await })
        })
        .collect();
    let mut acquired = 0;
    for task in claims {
        match task
            .await
            .expect("the task finished")
            .expect("the claim is answered")
        {
            Claim::Acquired => acquired += 1,
            Claim::InProgress => {}
            other => panic!("a concurrent duplicate got {other:?}"),
        }
    }
    assert_eq!(acquired, 1);
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::InProgress
    );
}

/// The first request has claimed the key and is inside its transaction (it has completed the key
/// but not committed yet) when a duplicate arrives. The duplicate must not get the key: it sees
/// the work in progress, or (where the store serialises writers) waits and gets the replay.
async fn a_duplicate_claim_during_the_first_requests_transaction_never_acquires_the_key(
    repositories: Repositories,
) {
    let k = key("k");
    assert_eq!(
        claim(&repositories, &request(&k, "f", t0())).await,
        Claim::Acquired
    );
    let transaction = repositories
        .unit_of_work
        .begin()
        .await
        .expect("a transaction");
    transaction
        .idempotency()
        .complete(&k, &response())
        .await
        .expect("the key is completed");

    let store = Arc::clone(&repositories.idempotency);
    let duplicate = request(&k, "f", at(MICRO));
    let mut answer = tokio::spawn(async move { store.claim(&duplicate).await });
    let early = tokio::time::timeout(Duration::from_secs(2), &mut answer).await;
    match early {
        Ok(joined) => {
            let claimed = joined
                .expect("the task finished")
                .expect("the claim is answered");
            assert_eq!(
                claimed,
                Claim::InProgress,
                "answered while the first request's transaction is open"
            );
            transaction.commit().await.expect("the commit");
        }
        Err(_) => {
            eprintln!("note: the duplicate claim waits for the open transaction");
            transaction.commit().await.expect("the commit");
            let claimed = answer
                .await
                .expect("the task finished")
                .expect("the claim is answered");
            assert!(
                matches!(&claimed, Claim::Replay(replayed) if *replayed == response()),
                "answered after the commit: {claimed:?}"
            );
        }
    }
    assert_eq!(
        claim(&repositories, &request(&k, "f", at(MICRO))).await,
        Claim::Replay(response())
    );
}

// ---------------------------------------------------------------------------------------------
// Scopes, completion and purging

async fn scopes_differing_in_caller_route_or_key_are_independent(repositories: Repositories) {
    let base = scope("user-1", ROUTE, "k");
    let others = [
        scope("user-2", ROUTE, "k"),
        scope("anonymous", ROUTE, "k"),
        scope("user-1", "POST /api/v1/markets", "k"),
        scope("user-1", "PUT /api/v1/markets/{id}/positions", "k"),
        scope("user-1", ROUTE, "K"),
        scope("user-1", ROUTE, "k "),
        // Parts that would be equal if the three were glued together.
        scope("user-1P", "OST /api/v1/markets/{id}/positions", "k"),
        scope("user-1", "POST /api/v1/markets/{id}/position", "sk"),
    ];

    assert_eq!(
        claim(&repositories, &request(&base, "f-base", t0())).await,
        Claim::Acquired
    );
    // Neither the fingerprint nor the state of the base record leaks into the others.
    for other in &others {
        assert_eq!(
            claim(&repositories, &request(other, "f-other", t0())).await,
            Claim::Acquired,
            "{other:?}"
        );
    }
    complete(&repositories, &base, &response()).await;
    for other in &others {
        assert_eq!(
            claim(&repositories, &request(other, "f-other", t0())).await,
            Claim::InProgress,
            "{other:?}"
        );
    }
    complete(&repositories, &others[0], &another_response()).await;
    release(&repositories, &others[1]).await;

    assert_eq!(
        claim(&repositories, &request(&base, "f-base", t0())).await,
        Claim::Replay(response())
    );
    assert_eq!(
        claim(&repositories, &request(&others[0], "f-other", t0())).await,
        Claim::Replay(another_response())
    );
    assert_eq!(
        claim(&repositories, &request(&others[1], "f-base", t0())).await,
        Claim::Acquired,
        "released"
    );
    for other in &others[2..] {
        assert_eq!(
            claim(&repositories, &request(other, "f-other", t0())).await,
            Claim::InProgress,
            "{other:?}"
        );
    }
}

async fn completing_a_key_that_is_not_claimed_is_not_found(repositories: Repositories) {
    let claimed = key("claimed");
    assert_eq!(
        claim(&repositories, &request(&claimed, "f", t0())).await,
        Claim::Acquired
    );
    let released = key("released");
    assert_eq!(
        claim(&repositories, &request(&released, "f", t0())).await,
        Claim::Acquired
    );
    release(&repositories, &released).await;

    for unclaimed in [
        key("never"),
        released.clone(),
        scope("someone-else", ROUTE, "claimed"),
        scope(&claimed.caller, "POST /api/v1/markets", "claimed"),
    ] {
        let transaction = repositories
            .unit_of_work
            .begin()
            .await
            .expect("a transaction");
        let result = transaction
            .idempotency()
            .complete(&unclaimed, &response())
            .await;
        assert!(
            matches!(result, Err(RepositoryError::NotFound)),
            "{unclaimed:?}: {result:?}"
        );
        drop(transaction);
        // Nothing was stored for it.
        assert_eq!(
            claim(&repositories, &request(&unclaimed, "f-later", at(MICRO))).await,
            Claim::Acquired,
            "{unclaimed:?}"
        );
    }
    assert_eq!(
        claim(&repositories, &request(&claimed, "f", at(MICRO))).await,
        Claim::InProgress
    );
}

async fn purging_deletes_only_expired_records_and_counts_them(repositories: Repositories) {
    assert_eq!(
        repositories
            .idempotency
            .purge_expired(t0())
            .await
            .expect("a purge"),
        0,
        "nothing to purge"
    );

    let short = |scope: &IdempotencyScope, fingerprint: &str| ClaimRequest {
        expires_at: at(TimeDelta::hours(1)),
        ..request(scope, fingerprint, t0())
    };
    let long = |scope: &IdempotencyScope, fingerprint: &str| ClaimRequest {
        expires_at: at(TimeDelta::days(7)),
        lease_until: at(TimeDelta::days(7)),
        ..request(scope, fingerprint, t0())
    };
    let expired_done = key("expired-done");
    let expired_open = key("expired-open");
    let kept_done = key("kept-done");
    let kept_open = key("kept-open");
    for claimed in [
        short(&expired_done, "f"),
        short(&expired_open, "f"),
        long(&kept_done, "f"),
        long(&kept_open, "f"),
    ] {
        assert_eq!(claim(&repositories, &claimed).await, Claim::Acquired);
    }
    complete(&repositories, &expired_done, &response()).await;
    complete(&repositories, &kept_done, &another_response()).await;

    let purge_time = at(TimeDelta::hours(2));
    assert_eq!(
        repositories
            .idempotency
            .purge_expired(purge_time)
            .await
            .expect("a purge"),
        2
    );
    assert_eq!(
        repositories
            .idempotency
            .purge_expired(purge_time)
            .await
            .expect("a purge"),
        0,
        "already purged"
    );

    // The expired records are gone: even a different request may use their keys now.
    for gone in [&expired_done, &expired_open] {
        assert_eq!(
            claim(&repositories, &request(gone, "f-new", purge_time)).await,
            Claim::Acquired,
            "{gone:?}"
        );
    }
    // The others are untouched.
    assert_eq!(
        claim(&repositories, &request(&kept_done, "f", purge_time)).await,
        Claim::Replay(another_response())
    );
    assert_eq!(
        claim(&repositories, &request(&kept_open, "f", purge_time)).await,
        Claim::InProgress
    );
    assert_eq!(
        claim(&repositories, &request(&kept_open, "f-other", purge_time)).await,
        Claim::Mismatch
    );
}
