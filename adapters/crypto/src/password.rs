//! `Argon2Hasher`: argon2id password hashing off the async executor, bounded by a semaphore.

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as PhcHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use domain::ports::{HashError, PasswordHasher};
use domain::{Password, PasswordHash};
use rand::RngExt as _;
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Candidates longer than this many bytes are rejected (`Ok(false)`) without being hashed.
///
/// The domain's password policy accepts at most 128 characters (512 bytes of UTF-8), so no real
/// password is longer; the bound stops a client from making the server hash megabytes of input.
/// The answer takes no time, but says nothing about the account: it is the same for every one.
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// The cost of hashing, and how many hashes may run at once.
///
/// The defaults are one of OWASP's equally strong argon2id settings (Password Storage Cheat
/// Sheet: 19 MiB x 2 passes, 12 MiB x 3, 9 MiB x 4, 7 MiB x 5; one lane): 9 MiB and four passes,
/// about the CPU time of 19 MiB x 2 for half the memory, which a service holding its peak resident
/// set under 64 MiB needs (docs/performance.md, finding 13). With the defaults, `max_concurrent`
/// hashes need at most `max_concurrent * 9 MiB` of memory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    /// Memory per hash in KiB (argon2 `m`).
    pub memory_kib: u32,
    /// Number of passes (argon2 `t`).
    pub iterations: u32,
    /// Degree of parallelism (argon2 `p`).
    pub parallelism: u32,
    /// Hashes or verifications running at the same time; further callers wait their turn.
    pub max_concurrent: usize,
}

impl HashingConfig {
    /// The cheapest parameters argon2 accepts (8 KiB, one pass), for tests only: hashes made with
    /// them are trivial to brute-force.
    #[must_use]
    pub fn insecure_for_tests() -> Self {
        Self {
            memory_kib: Params::MIN_M_COST,
            iterations: Params::MIN_T_COST,
            parallelism: Params::MIN_P_COST,
            ..Self::default()
        }
    }

    fn params(&self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|error| HashError(Box::new(error)))
    }
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 9_216,
            iterations: 4,
            parallelism: Params::DEFAULT_P_COST,
            max_concurrent: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// The domain's [`PasswordHasher`] over argon2id (version 0x13), producing PHC strings.
///
/// Every hash and verification runs on tokio's blocking pool, never on the async executor, and
/// at most [`HashingConfig::max_concurrent`] run at once. The permit moves into the blocking task,
/// so a caller that gives up (a dropped request) does not free its slot before the work really
/// stops.
///
/// **Memory.** argon2's working memory (9 MiB with the defaults) is not allocated per hash: each
/// running hash borrows one of at most `max_concurrent` buffers, allocated on first use and kept.
/// Allocating and freeing 19 MiB per sign-in made glibc keep freed blocks in per-thread arenas on
/// the blocking pool's threads: the benchmark saw the resident set grow past 1 GiB under sign-in
/// load. With the pool, argon2 needs `max_concurrent * memory` at most, for the life of the
/// process. (A stored hash made with more memory than configured borrows a temporary buffer.)
///
/// Verification uses the parameters written in the stored hash, so hashes made under older
/// settings still verify after the configuration changes.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Working memory for the hashes running now; never more buffers than permits.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of a random password, made once with the configured parameters: what unknown
    /// accounts are verified against.
    dummy: Arc<PhcHash>,
}

impl Argon2Hasher {
    /// A hasher with `config`. Computes the dummy hash right away, on the calling thread: call it
    /// once at start-up, not inside a request.
    ///
    /// # Errors
    /// [`HashError`] when the parameters are out of argon2's bounds, or `max_concurrent` is 0.
    pub fn new(config: &HashingConfig) -> Result<Self, HashError> {
        if config.max_concurrent == 0 {
            return Err(HashError("max_concurrent must be at least 1".into()));
        }
        let params = config.params()?;
        let buffers = Arc::new(Mutex::new(Vec::new()));
        let dummy = hash_with(&buffers, &params, uuid::Uuid::new_v4().as_bytes())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(
                config.max_concurrent.min(Semaphore::MAX_PERMITS),
            )),
            buffers,
            dummy: Arc::new(dummy),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free, holding the permit until it ends.
    async fn run_bounded<T, F>(&self, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|error| HashError(Box::new(error)))?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|error| HashError(Box::new(error)))
    }
}

fn failure(error: impl std::error::Error + Send + Sync + 'static) -> HashError {
    HashError(Box::new(error))
}

/// Runs `work` with a working-memory buffer of at least `blocks` blocks: a pooled one when it is
/// big enough, else a temporary one.
fn with_memory<T>(
    buffers: &Mutex<Vec<Vec<Block>>>,
    blocks: usize,
    work: impl FnOnce(&mut [Block]) -> T,
) -> T {
    let pooled = buffers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let mut buffer = pooled.unwrap_or_default();
    if buffer.len() < blocks {
        buffer = vec![Block::new(); blocks];
    }
    let result = work(&mut buffer[..blocks]);
    buffers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(buffer);
    result
}

/// A new argon2id PHC hash of `secret` with a random salt.
fn hash_with(
    buffers: &Mutex<Vec<Vec<Block>>>,
    params: &Params,
    secret: &[u8],
) -> Result<PhcHash, HashError> {
    let mut salt = [0_u8; 16];
    rand::rng().fill(&mut salt[..]);
    let mut output = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(buffers, params.block_count(), |memory| {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(secret, &salt, &mut output, memory)
    })
    .map_err(failure)?;
    Ok(PhcHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failure)?,
        salt: Some(Salt::new(&salt).map_err(failure)?),
        hash: Some(Output::new(&output).map_err(failure)?),
    })
}

/// Whether `candidate` hashes to `stored`, with the algorithm, version, costs and salt written in
/// `stored`; the outputs are compared in constant time.
fn verify_with(
    buffers: &Mutex<Vec<Vec<Block>>>,
    candidate: &[u8],
    stored: &PhcHash,
) -> Result<bool, HashError> {
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(failure)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failure)?
        .unwrap_or_default();
    let params = Params::try_from(stored).map_err(failure)?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(HashError("the stored hash has no salt or no output".into()));
    };
    let mut output = vec![0_u8; expected.len()];
    with_memory(buffers, params.block_count(), |memory| {
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            candidate,
            salt.as_ref(),
            &mut output,
            memory,
        )
    })
    .map_err(failure)?;
    Ok(Output::new(&output).map_err(failure)? == *expected)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let params = self.params.clone();
        let buffers = Arc::clone(&self.buffers);
        let secret = password.expose().to_owned();
        let phc = self
            .run_bounded(move || hash_with(&buffers, &params, secret.as_bytes()))
            .await??;
        Ok(PasswordHash::from_phc(phc.to_string()))
    }

    /// Compares the algorithm (argon2id), version (0x13) and costs (`m`, `t`, `p`) written in the
    /// hash with the configured ones.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(stored) = PhcHash::new(hash.as_phc()) else {
            return true;
        };
        let current = stored.algorithm.as_str() == Algorithm::Argon2id.as_str()
            && stored.version == Some(Version::V0x13.into())
            && Params::try_from(&stored).is_ok_and(|params| {
                params.m_cost() == self.params.m_cost()
                    && params.t_cost() == self.params.t_cost()
                    && params.p_cost() == self.params.p_cost()
            });
        !current
    }

    /// Also returns `Ok(false)` at once, without hashing, for a candidate longer than
    /// [`MAX_CANDIDATE_BYTES`] (after checking that a stored hash is readable).
    async fn verify(&self, candidate: &str, hash: Option<PasswordHash>) -> Result<bool, HashError> {
        let (stored, known) = match hash {
            Some(hash) => (PhcHash::new(hash.as_phc()).map_err(failure)?, true),
            None => (PhcHash::clone(&self.dummy), false),
        };
        if candidate.len() > MAX_CANDIDATE_BYTES {
            return Ok(false);
        }
        let buffers = Arc::clone(&self.buffers);
        let candidate = candidate.to_owned();
        let matches = self
            .run_bounded(move || verify_with(&buffers, candidate.as_bytes(), &stored))
            .await??;
        Ok(matches && known)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[tokio::test]
    async fn a_hash_with_other_costs_needs_rehashing_and_a_current_one_does_not() {
        let weak = Argon2Hasher::new(&HashingConfig::insecure_for_tests()).expect("a hasher");
        let strong = Argon2Hasher::new(&HashingConfig {
            memory_kib: 64,
            iterations: 2,
            ..HashingConfig::insecure_for_tests()
        })
        .expect("a hasher");
        let password = Password::parse("correct horse battery").expect("a password");
        let hash = weak.hash(&password).await.expect("a hash");
        assert!(!weak.needs_rehash(&hash));
        assert!(strong.needs_rehash(&hash));
        let upgraded = strong.hash(&password).await.expect("a hash");
        assert!(!strong.needs_rehash(&upgraded));
        assert!(strong.needs_rehash(&PasswordHash::from_phc("not a hash".to_owned())));
        assert!(
            strong
                .verify("correct horse battery", Some(hash))
                .await
                .expect("verifies"),
            "an old hash still verifies: it is upgraded only after a successful sign-in"
        );
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crate_itself() {
        let params = HashingConfig::insecure_for_tests()
            .params()
            .expect("params");
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password(b"correct horse")
            .expect("a hash")
            .to_string();
        let ours = hasher();
        assert!(
            ours.verify(
                "correct horse",
                Some(PasswordHash::from_phc(theirs.clone()))
            )
            .await
            .expect("verifies")
        );
        assert!(
            !ours
                .verify("wrong horse", Some(PasswordHash::from_phc(theirs)))
                .await
                .expect("verifies")
        );
        let mine = ours.hash(&password("correct horse")).await.expect("a hash");
        let parsed = PhcHash::new(mine.as_phc()).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_reused_never_more_buffers_than_permits() {
        let config = HashingConfig {
            max_concurrent: 3,
            ..HashingConfig::insecure_for_tests()
        };
        let hasher = Argon2Hasher::new(&config).expect("a hasher");
        let work = (0..24).map(|i| {
            let hasher = hasher.clone();
            async move { hasher.hash(&password(&format!("password-{i}"))).await }
        });
        for result in futures_like_join_all(work).await {
            result.expect("hashed");
        }
        let pooled = hasher.buffers.lock().map(|b| b.len()).unwrap_or(usize::MAX);
        assert!((1..=3).contains(&pooled), "{pooled} buffers");
    }

    /// Runs every future to completion concurrently (the crate has no futures dependency).
    async fn futures_like_join_all<F: std::future::Future + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.expect("the task ran"));
        }
        outputs
    }

    fn hasher() -> Argon2Hasher {
        Argon2Hasher::new(&HashingConfig::insecure_for_tests()).expect("cheap params are valid")
    }

    fn password(text: &str) -> Password {
        Password::parse(text).expect("test password meets the policy")
    }

    #[test]
    fn defaults_are_the_owasp_parameters() {
        let config = HashingConfig::default();
        assert_eq!(
            (config.memory_kib, config.iterations, config.parallelism),
            (9 * 1024, 4, 1)
        );
        assert!(config.max_concurrent >= 1);
    }

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_with_the_configured_costs() {
        let hash = hasher()
            .hash(&password("correct horse"))
            .await
            .expect("hashing works");
        assert!(
            hash.as_phc().starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
            "{}",
            hash.as_phc()
        );
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let hasher = hasher();
        let hash = hasher
            .hash(&password("correct horse"))
            .await
            .expect("hashing works");
        assert!(
            hasher
                .verify("correct horse", Some(hash.clone()))
                .await
                .expect("verifies")
        );
        assert!(
            !hasher
                .verify("Correct horse", Some(hash))
                .await
                .expect("verifies")
        );
    }

    #[tokio::test]
    async fn the_same_password_gets_a_new_salt_every_time() {
        let hasher = hasher();
        let first = hasher.hash(&password("same password")).await.expect("hash");
        let second = hasher.hash(&password("same password")).await.expect("hash");
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let hasher = hasher();
        assert!(!hasher.verify("anything", None).await.expect("verifies"));
        assert!(!hasher.verify("", None).await.expect("verifies"));
    }

    #[tokio::test]
    async fn an_unknown_account_costs_a_real_verification() {
        // With costly parameters the dummy verification must take about as long as a real one;
        // a shortcut would answer in microseconds.
        let hasher = Argon2Hasher::new(&HashingConfig {
            memory_kib: 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 1,
        })
        .expect("valid params");
        let hash = hasher.hash(&password("correct horse")).await.expect("hash");
        let started = Instant::now();
        let _ = hasher.verify("wrong horse", Some(hash)).await;
        let known = started.elapsed();
        let started = Instant::now();
        let _ = hasher.verify("wrong horse", None).await;
        let unknown = started.elapsed();
        assert!(
            unknown * 3 > known,
            "dummy verification took {unknown:?}, a real one {known:?}"
        );
    }

    #[tokio::test]
    async fn hashes_made_with_other_costs_still_verify() {
        let old = Argon2Hasher::new(&HashingConfig {
            memory_kib: 64,
            iterations: 3,
            ..HashingConfig::insecure_for_tests()
        })
        .expect("valid params");
        let hash = old.hash(&password("correct horse")).await.expect("hash");
        assert!(
            hasher()
                .verify("correct horse", Some(hash))
                .await
                .expect("verifies")
        );
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_is_an_error() {
        let hasher = hasher();
        for garbage in [
            "",
            "not a hash",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            let result = hasher
                .verify(
                    "correct horse",
                    Some(PasswordHash::from_phc(garbage.into())),
                )
                .await;
            assert!(result.is_err(), "{garbage:?} gave {result:?}");
        }
    }

    #[tokio::test]
    async fn overlong_candidates_are_refused_without_hashing() {
        let hasher = hasher();
        let hash = hasher.hash(&password("correct horse")).await.expect("hash");
        let long = "x".repeat(MAX_CANDIDATE_BYTES + 1);
        assert!(!hasher.verify(&long, Some(hash)).await.expect("answers"));
        assert!(!hasher.verify(&long, None).await.expect("answers"));
        let unreadable = PasswordHash::from_phc("garbage".into());
        assert!(hasher.verify(&long, Some(unreadable)).await.is_err());
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let no_memory = HashingConfig {
            memory_kib: 1,
            ..HashingConfig::insecure_for_tests()
        };
        assert!(Argon2Hasher::new(&no_memory).is_err());
        let no_permits = HashingConfig {
            max_concurrent: 0,
            ..HashingConfig::insecure_for_tests()
        };
        assert!(Argon2Hasher::new(&no_permits).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_by_the_semaphore() {
        let hasher = Argon2Hasher::new(&HashingConfig {
            max_concurrent: 1,
            ..HashingConfig::insecure_for_tests()
        })
        .expect("valid params");
        let hash = hasher.hash(&password("correct horse")).await.expect("hash");
        // Hold the only permit: a verification must wait for it.
        let permit = Arc::clone(&hasher.permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.verify("correct horse", Some(hash)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "ran without a permit");
        drop(permit);
        let verified = waiting.await.expect("task ran").expect("verifies");
        assert!(verified);
    }
}
