//! `JwtIssuer`: short-lived HS256 access tokens (RFC 7519) with pinned algorithm, issuer and audience.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::ports::{AccessClaims, Clock, IssuedToken, TokenError, TokenIssuer};
use domain::{Actor, Role, SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output, 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

/// Presented tokens longer than this are rejected before any parsing. Ours are about 350 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The longest time-to-live accepted: access tokens are meant to be short-lived.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How [`JwtIssuer`] signs and checks tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The HMAC key, at least [`MIN_SECRET_BYTES`] bytes (its UTF-8 encoding is used as is).
    pub secret: SecretString,
    /// Written to `iss` and required on verification.
    pub issuer: String,
    /// Written to `aud` and required on verification.
    pub audience: String,
    /// How long a token lives; whole seconds, 1 s to [`MAX_TTL`]. Default 15 minutes.
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `iat`. Default 5 seconds.
    pub leeway: Duration,
}

impl JwtConfig {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

    /// A configuration with the default time-to-live and leeway.
    #[must_use]
    pub fn new(
        secret: SecretString,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            secret,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: Self::DEFAULT_TTL,
            leeway: Self::DEFAULT_LEEWAY,
        }
    }

    /// The same configuration with another time-to-live.
    #[must_use]
    pub const fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The same configuration with another leeway.
    #[must_use]
    pub const fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// Why a [`JwtConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    #[error("the token secret must be at least {min} bytes")]
    SecretTooShort { min: usize },
    #[error("the token issuer must not be empty")]
    EmptyIssuer,
    #[error("the token audience must not be empty")]
    EmptyAudience,
    #[error("the token time-to-live must be whole seconds between 1 s and {max:?}")]
    TtlOutOfRange { max: Duration },
    #[error("the token leeway must be at most {max:?}")]
    LeewayTooLarge { max: Duration },
}

/// The registered and private claims of our access tokens. Every field is required: a token
/// missing any of them does not deserialise and is [`TokenError::Invalid`]. `aud` is the single
/// string we issue; the array form RFC 7519 also allows is refused, as are fractional times.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The user id.
    sub: String,
    /// The user's role, as [`Role::as_str`].
    role: String,
    /// Issued at, seconds since the epoch.
    iat: i64,
    /// Expires at, seconds since the epoch.
    exp: i64,
    /// A random UUID (v4), naming this token in logs.
    jti: String,
    /// The session the token belongs to: revoking the session ends the token (ADR 0014).
    sid: String,
    /// Not before, seconds since the epoch. Never issued by us; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

/// The domain's [`TokenIssuer`] over `jsonwebtoken`, HS256 only.
///
/// # Time
/// One clock decides everything: the injected [`Clock`] stamps `iat` and `exp` when issuing and
/// is the "now" that `exp` and `iat` are checked against when verifying. `jsonwebtoken`'s own
/// `exp` check reads the system clock directly, so it is switched off (`validate_exp = false`;
/// `exp` stays a required claim) and the check is done here, after the signature, algorithm,
/// issuer and audience have been verified. Production wires the system clock, so the result is
/// what `jsonwebtoken` would decide; tests wire a fixed clock and can cross an expiry exactly.
/// Both claims are whole seconds (`NumericDate`): `iat` is the clock's time rounded down.
pub struct JwtIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_seconds: u64,
    ttl: TimeDelta,
    leeway: TimeDelta,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    /// An issuer signing with `config.secret` and reading the time from `clock`.
    ///
    /// # Errors
    /// [`JwtConfigError`] when the secret is shorter than [`MIN_SECRET_BYTES`], the issuer or
    /// audience is empty, or the time-to-live or leeway is out of range.
    pub fn new(config: &JwtConfig, clock: Arc<dyn Clock>) -> Result<Self, JwtConfigError> {
        let secret = config.secret.expose_secret().as_bytes();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtConfigError::SecretTooShort {
                min: MIN_SECRET_BYTES,
            });
        }
        if config.issuer.is_empty() {
            return Err(JwtConfigError::EmptyIssuer);
        }
        if config.audience.is_empty() {
            return Err(JwtConfigError::EmptyAudience);
        }
        let ttl_in_range = config.ttl >= Duration::from_secs(1)
            && config.ttl <= MAX_TTL
            && config.ttl.subsec_nanos() == 0;
        let ttl = TimeDelta::from_std(config.ttl)
            .ok()
            .filter(|_| ttl_in_range)
            .ok_or(JwtConfigError::TtlOutOfRange { max: MAX_TTL })?;
        let leeway = TimeDelta::from_std(config.leeway)
            .ok()
            .filter(|_| config.leeway <= MAX_TTL)
            .ok_or(JwtConfigError::LeewayTooLarge { max: MAX_TTL })?;

        // Accepts HS256 and nothing else: `alg: none`, HS512, RS256 (key confusion)... are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        // `jsonwebtoken` only knows exp, nbf, iss, aud and sub here; `iat`, `role` and `jti` are
        // required by `Claims` itself.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // See "Time" above: expiry is checked against the injected clock, not here.
        validation.validate_exp = false;
        validation.validate_nbf = false;

        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl_seconds: config.ttl.as_secs(),
            ttl,
            leeway,
            clock,
        })
    }
}

impl TokenIssuer for JwtIssuer {
    fn issue(&self, actor: &Actor, session: SessionId) -> Result<IssuedToken, TokenError> {
        let issued_at = self.clock.now().timestamp();
        let expires_at = issued_at
            .checked_add(self.ttl.num_seconds())
            .ok_or_else(|| TokenError::Issuing("expiry out of range".into()))?;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: actor.user_id.to_string(),
            role: actor.role.as_str().to_owned(),
            iat: issued_at,
            exp: expires_at,
            jti: uuid::Uuid::new_v4().to_string(),
            sid: session.to_string(),
            nbf: None,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .map_err(|error| TokenError::Issuing(Box::new(error)))?;
        Ok(IssuedToken {
            token,
            expires_in_seconds: self.ttl_seconds,
        })
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        // Header, algorithm (HS256 only: `none`, HS512, RS256... are refused), signature, `iss`,
        // `aud`, presence of the required claims, then the shape of `Claims`.
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?
            .claims;
        let user_id: UserId = claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        let role = Role::parse(&claims.role).map_err(|_| TokenError::Invalid)?;
        let session_id: SessionId = claims.sid.parse().map_err(|_| TokenError::Invalid)?;
        let issued_at = DateTime::from_timestamp(claims.iat, 0).ok_or(TokenError::Invalid)?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(TokenError::Invalid)?;
        if claims.jti.is_empty() || expires_at <= issued_at {
            return Err(TokenError::Invalid);
        }
        let now: DateTime<Utc> = self.clock.now();
        if issued_at > now + self.leeway {
            // Issued in the future: not by us, or under a badly wrong clock.
            return Err(TokenError::Invalid);
        }
        // Valid while now < exp (RFC 7519 §4.1.4), give or take the leeway.
        if now >= expires_at + self.leeway {
            return Err(TokenError::Expired);
        }
        if let Some(not_before) = claims.nbf {
            let not_before = DateTime::from_timestamp(not_before, 0).ok_or(TokenError::Invalid)?;
            if now + self.leeway < not_before {
                return Err(TokenError::NotYetValid);
            }
        }
        Ok(AccessClaims {
            actor: Actor { user_id, role },
            session_id,
            token_id: claims.jti,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
    const ISSUER: &str = "https://markets.example";
    const AUDIENCE: &str = "markets-api";

    /// A settable clock, kept here so that this crate does not depend on another adapter.
    struct TestClock(Mutex<DateTime<Utc>>);

    impl TestClock {
        fn new() -> Arc<Self> {
            let start = DateTime::from_timestamp(1_780_000_000, 123_456_000).expect("in range");
            Arc::new(Self(Mutex::new(start)))
        }

        fn advance(&self, by: TimeDelta) {
            let mut now = self.0.lock().expect("clock lock");
            *now += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock lock")
        }
    }

    fn config() -> JwtConfig {
        JwtConfig::new(SecretString::from(SECRET), ISSUER, AUDIENCE)
    }

    fn issuer_with(config: &JwtConfig, clock: Arc<TestClock>) -> JwtIssuer {
        JwtIssuer::new(config, clock).expect("valid config")
    }

    fn actor() -> Actor {
        Actor {
            user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
            role: Role::Moderator,
        }
    }

    fn session() -> SessionId {
        SessionId::from_uuid(uuid::Uuid::now_v7())
    }

    fn encode_raw<T: Serialize>(algorithm: Algorithm, claims: &T, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encodes")
    }

    /// Claims that may each be left out.
    #[derive(Debug, Clone, Serialize)]
    struct LooseClaims {
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        iat: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        jti: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<i64>,
    }

    fn complete_claims(now: DateTime<Utc>) -> LooseClaims {
        LooseClaims {
            iss: Some(ISSUER.into()),
            aud: Some(AUDIENCE.into()),
            sub: Some(uuid::Uuid::now_v7().to_string()),
            role: Some("user".into()),
            iat: Some(now.timestamp()),
            exp: Some(now.timestamp() + 600),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            sid: Some(uuid::Uuid::now_v7().to_string()),
            nbf: None,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_actor() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        let actor = actor();
        let issued = issuer.issue(&actor, session()).expect("issues");
        assert_eq!(issued.expires_in_seconds, 15 * 60);
        let claims = issuer.verify(&issued.token).expect("verifies");
        assert_eq!(claims.actor, actor);
        assert_eq!(
            claims.expires_at.timestamp(),
            clock.now().timestamp() + 15 * 60
        );
        let jti: uuid::Uuid = claims.token_id.parse().expect("jti is a UUID");
        assert_eq!(jti.get_version_num(), 4);
    }

    #[test]
    fn every_token_has_its_own_id() {
        let issuer = issuer_with(&config(), TestClock::new());
        let actor = actor();
        let first = issuer.issue(&actor, session()).expect("issues");
        let second = issuer.issue(&actor, session()).expect("issues");
        let id = |token: &str| issuer.verify(token).expect("verifies").token_id;
        assert_ne!(id(&first.token), id(&second.token));
    }

    #[test]
    fn every_role_round_trips() {
        let issuer = issuer_with(&config(), TestClock::new());
        for role in Role::ALL {
            let actor = Actor { role, ..actor() };
            let token = issuer.issue(&actor, session()).expect("issues").token;
            assert_eq!(issuer.verify(&token).expect("verifies").actor, actor);
        }
    }

    #[test]
    fn a_token_expires_after_its_ttl_plus_the_leeway() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config().with_ttl(Duration::from_secs(60)), clock.clone());
        let token = issuer.issue(&actor(), session()).expect("issues").token;
        // `iat` was rounded down, so the token ends at most 1 s before `now + ttl`.
        clock.advance(TimeDelta::seconds(60 + 3));
        assert!(issuer.verify(&token).is_ok(), "within the leeway");
        clock.advance(TimeDelta::seconds(3));
        assert!(matches!(issuer.verify(&token), Err(TokenError::Expired)));
        clock.advance(TimeDelta::days(365));
        assert!(matches!(issuer.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn a_token_issued_in_the_future_is_invalid() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        let claims = LooseClaims {
            iat: Some(clock.now().timestamp() + 60),
            exp: Some(clock.now().timestamp() + 600),
            ..complete_claims(clock.now())
        };
        let token = encode_raw(Algorithm::HS256, &claims, SECRET);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn an_expired_token_with_a_bad_signature_is_invalid_not_expired() {
        let clock = TestClock::new();
        let forger = issuer_with(
            &JwtConfig::new(
                SecretString::from("another-secret-that-is-long-enough-too"),
                ISSUER,
                AUDIENCE,
            ),
            clock.clone(),
        );
        let token = forger.issue(&actor(), session()).expect("issues").token;
        clock.advance(TimeDelta::days(1));
        let issuer = issuer_with(&config(), clock);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let clock = TestClock::new();
        let other = JwtConfig::new(
            SecretString::from("another-secret-that-is-long-enough-too"),
            ISSUER,
            AUDIENCE,
        );
        let token = issuer_with(&other, clock.clone())
            .issue(&actor(), session())
            .expect("issues")
            .token;
        let issuer = issuer_with(&config(), clock);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_from_another_issuer_is_invalid() {
        let clock = TestClock::new();
        let other = JwtConfig {
            issuer: "https://elsewhere.example".into(),
            ..config()
        };
        let token = issuer_with(&other, clock.clone())
            .issue(&actor(), session())
            .expect("issues")
            .token;
        let issuer = issuer_with(&config(), clock);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_for_another_audience_is_invalid() {
        let clock = TestClock::new();
        let other = JwtConfig {
            audience: "admin-console".into(),
            ..config()
        };
        let token = issuer_with(&other, clock.clone())
            .issue(&actor(), session())
            .expect("issues")
            .token;
        let issuer = issuer_with(&config(), clock);
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_invalid() {
        let issuer = issuer_with(&config(), TestClock::new());
        let token = issuer.issue(&actor(), session()).expect("issues").token;
        let payload = token.split('.').nth(1).expect("three parts");
        // base64url of {"alg":"none","typ":"JWT"}
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        for forged in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}"),
        ] {
            assert!(matches!(issuer.verify(&forged), Err(TokenError::Invalid)));
        }
    }

    #[test]
    fn a_token_with_another_algorithm_is_invalid_even_with_the_right_secret() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = encode_raw(algorithm, &complete_claims(clock.now()), SECRET);
            assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
        }
        // The control: the same claims under HS256 are accepted.
        let token = encode_raw(Algorithm::HS256, &complete_claims(clock.now()), SECRET);
        assert!(issuer.verify(&token).is_ok());
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let issuer = issuer_with(&config(), TestClock::new());
        let user = issuer
            .issue(
                &Actor {
                    role: Role::User,
                    ..actor()
                },
                session(),
            )
            .expect("issues")
            .token;
        let admin = issuer
            .issue(
                &Actor {
                    role: Role::Admin,
                    ..actor()
                },
                session(),
            )
            .expect("issues")
            .token;
        let user_parts: Vec<&str> = user.split('.').collect();
        let admin_parts: Vec<&str> = admin.split('.').collect();
        let forged = format!("{}.{}.{}", user_parts[0], admin_parts[1], user_parts[2]);
        assert!(matches!(issuer.verify(&forged), Err(TokenError::Invalid)));
        let mut flipped = user.clone().into_bytes();
        let middle = user_parts[0].len() + 5;
        flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ASCII");
        assert!(matches!(issuer.verify(&flipped), Err(TokenError::Invalid)));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused_beyond_the_leeway() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        let now = clock.now().timestamp();
        let mut claims = complete_claims(clock.now());
        claims.nbf = Some(now + 60);
        let token = encode_raw(Algorithm::HS256, &claims, SECRET);
        assert!(matches!(
            issuer.verify(&token),
            Err(TokenError::NotYetValid)
        ));
        claims.nbf = Some(now + 5);
        let token = encode_raw(Algorithm::HS256, &claims, SECRET);
        assert!(issuer.verify(&token).is_ok(), "within the leeway");
    }

    #[test]
    fn the_session_id_round_trips() {
        let issuer = issuer_with(&config(), TestClock::new());
        let session = session();
        let token = issuer.issue(&actor(), session).expect("issues").token;
        assert_eq!(issuer.verify(&token).expect("valid").session_id, session);
    }

    #[test]
    fn garbage_is_invalid() {
        let issuer = issuer_with(&config(), TestClock::new());
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for garbage in [
            "",
            ".",
            "..",
            "a.b.c",
            "not a token",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9..",
            "eyJhbGciOiJIUzI1NiJ9.e30.",
            "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
            "\u{0}\u{1}\u{2}",
            long.as_str(),
        ] {
            assert!(
                matches!(issuer.verify(garbage), Err(TokenError::Invalid)),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_token_missing_any_claim_is_invalid() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        let complete = complete_claims(clock.now());
        let token = encode_raw(Algorithm::HS256, &complete, SECRET);
        assert!(issuer.verify(&token).is_ok(), "the control is valid");
        type Removal = fn(&mut LooseClaims);
        let without: [(&str, Removal); 8] = [
            ("iss", |c| c.iss = None),
            ("aud", |c| c.aud = None),
            ("sub", |c| c.sub = None),
            ("role", |c| c.role = None),
            ("iat", |c| c.iat = None),
            ("exp", |c| c.exp = None),
            ("jti", |c| c.jti = None),
            ("sid", |c| c.sid = None),
        ];
        for (name, remove) in without {
            let mut claims = complete.clone();
            remove(&mut claims);
            let token = encode_raw(Algorithm::HS256, &claims, SECRET);
            assert!(
                matches!(issuer.verify(&token), Err(TokenError::Invalid)),
                "without {name}"
            );
        }
    }

    #[test]
    fn malformed_claims_are_invalid() {
        let clock = TestClock::new();
        let issuer = issuer_with(&config(), clock.clone());
        let complete = complete_claims(clock.now());
        let cases = [
            LooseClaims {
                role: Some("root".into()),
                ..complete.clone()
            },
            LooseClaims {
                role: Some("Admin".into()),
                ..complete.clone()
            },
            LooseClaims {
                sub: Some("42".into()),
                ..complete.clone()
            },
            LooseClaims {
                jti: Some(String::new()),
                ..complete.clone()
            },
            LooseClaims {
                sid: Some("not-a-session".into()),
                ..complete.clone()
            },
            LooseClaims {
                exp: complete.iat,
                ..complete.clone()
            },
        ];
        for claims in cases {
            let token = encode_raw(Algorithm::HS256, &claims, SECRET);
            assert!(
                matches!(issuer.verify(&token), Err(TokenError::Invalid)),
                "{claims:?}"
            );
        }
    }

    #[test]
    fn weak_or_incomplete_configurations_are_refused() {
        let clock: Arc<dyn Clock> = TestClock::new();
        let short = JwtConfig::new(SecretString::from("too short"), ISSUER, AUDIENCE);
        assert_eq!(
            JwtIssuer::new(&short, clock.clone()).err(),
            Some(JwtConfigError::SecretTooShort { min: 32 })
        );
        let no_issuer = JwtConfig {
            issuer: String::new(),
            ..config()
        };
        assert_eq!(
            JwtIssuer::new(&no_issuer, clock.clone()).err(),
            Some(JwtConfigError::EmptyIssuer)
        );
        let no_audience = JwtConfig {
            audience: String::new(),
            ..config()
        };
        assert_eq!(
            JwtIssuer::new(&no_audience, clock.clone()).err(),
            Some(JwtConfigError::EmptyAudience)
        );
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(1500),
            MAX_TTL + Duration::from_secs(1),
        ] {
            assert!(matches!(
                JwtIssuer::new(&config().with_ttl(ttl), clock.clone()),
                Err(JwtConfigError::TtlOutOfRange { .. })
            ));
        }
    }

    #[test]
    fn debug_output_does_not_show_the_secret() {
        let issuer = issuer_with(&config(), TestClock::new());
        assert!(!format!("{issuer:?}").contains(SECRET));
        assert!(!format!("{:?}", config()).contains(SECRET));
    }
}
