//! `RandomSecrets`: 256-bit opaque secrets from a cryptographically secure generator, stored as SHA-256 digests.

use domain::SecretDigest;
use domain::ports::{NewSecret, SecretGenerator};
use rand::RngExt as _;
use sha2::{Digest, Sha256};

/// Secrets are this many random bytes, written as lower-case hex (64 characters).
pub const SECRET_BYTES: usize = 32;

/// The domain's [`SecretGenerator`]: [`SECRET_BYTES`] bytes from `rand`'s thread generator (a
/// CSPRNG seeded and periodically reseeded from the operating system), hex encoded; digests are SHA-256 in hex. A plain hash is enough for secrets with 256 bits of
/// entropy (no dictionary to try), and it lets the store find a secret by its digest.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSecrets;

impl SecretGenerator for RandomSecrets {
    fn generate(&self) -> NewSecret {
        let mut bytes = [0_u8; SECRET_BYTES];
        rand::rng().fill(&mut bytes[..]);
        let secret = hex(&bytes);
        let digest = self.digest(&secret);
        NewSecret { secret, digest }
    }

    fn digest(&self, presented: &str) -> SecretDigest {
        SecretDigest(hex(&Sha256::digest(presented.as_bytes())))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_hex_and_never_repeat() {
        let secrets = RandomSecrets;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let new = secrets.generate();
            assert_eq!(new.secret.len(), 64);
            assert!(new.secret.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(secrets.digest(&new.secret), new.digest);
            assert_ne!(new.digest.0, new.secret, "the digest is not the secret");
            assert!(seen.insert(new.secret));
        }
    }

    #[test]
    fn the_digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            RandomSecrets.digest("abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let new = RandomSecrets.generate();
        assert!(!format!("{new:?}").contains(&new.secret));
    }
}
